//! Single-thread cost of the core's aggregate operations (a transfer over a
//! set of two wallets included), and of a deposit through the service over
//! the in-memory store for reference.
//!
//! Targets (see the project's targets): deposit and withdraw under 250 ns,
//! no operation over 5 µs. The run ends with a table of each figure, its
//! ratio to its target, and its ratio to a plain decimal addition measured
//! in the same run (figures on a shared machine mean something only side by
//! side).
//!
//! `cargo bench --bench core` (add `-- --quick` for a shorter run).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use criterion::{criterion_group, Criterion};
use wallet::core::{
    apply_to_wallets, Aggregate, Command, Ctx, CurrencyCode, Decimal, EarnRequest, HoldRequest,
    InMemoryStore, ManualClock, Money, PointAccount, Policy, SequentialIdGenerator, Uuid,
    UuidV7Generator, Wallet, WalletService, WalletSet,
};

/// Per-iteration times of each benchmark, one entry per timed batch.
static FIGURES: Mutex<BTreeMap<&'static str, Vec<f64>>> = Mutex::new(BTreeMap::new());

/// Records a timed batch and hands the time back to criterion.
fn record(name: &'static str, iters: u64, elapsed: Duration) -> Duration {
    if iters > 0 {
        let per_iteration = elapsed.as_nanos() as f64 / iters as f64;
        if let Ok(mut figures) = FIGURES.lock() {
            figures.entry(name).or_default().push(per_iteration);
        }
    }
    elapsed
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid time")
}

fn code(text: &str) -> CurrencyCode {
    CurrencyCode::parse(text).expect("a valid code")
}

fn money(policy: &Policy, amount: &str, currency: &str) -> Money {
    let amount = Decimal::from_str_exact(amount).expect("a decimal");
    policy
        .currencies
        .money(amount, code(currency))
        .expect("valid money")
}

/// A wallet with 10^14 USD and 10^14 VND and no pending changes.
fn rich_wallet(ctx: &Ctx<'_>) -> Wallet {
    let mut wallet = Wallet::open(Uuid::from_u128(1), code("USD"), ctx).expect("open");
    let plenty = "100000000000000";
    wallet
        .deposit(money(ctx.policy, plenty, "USD"), None, None, ctx)
        .expect("deposit");
    wallet
        .deposit(money(ctx.policy, plenty, "VND"), None, None, ctx)
        .expect("deposit");
    wallet.take_changes();
    wallet
}

/// An account with `lots` available lots of 10 points, expiring on
/// different days (a few never), and no pending changes.
fn account_with_lots(ctx: &Ctx<'_>, lots: u32) -> PointAccount {
    let mut account = PointAccount::open(Uuid::from_u128(2), ctx);
    for i in 0..lots {
        let expires_at =
            (i % 10 != 0).then(|| ctx.now + chrono::Duration::days(1 + i64::from(i % 300)));
        let request = EarnRequest {
            points: 10,
            source: "shop".into(),
            description: None,
            expires_at,
            pending: false,
        };
        account.earn(request, ctx).expect("earn");
    }
    account.take_changes();
    account
}

fn aggregate_benches(c: &mut Criterion) {
    let policy = Policy::default();
    let ids = SequentialIdGenerator::new();
    let ctx = Ctx {
        now: now(),
        ids: &ids,
        policy: &policy,
        idempotency_key: None,
    };

    c.bench_function("reference: decimal addition", |b| {
        let (mut sum, step) = (Decimal::new(1, 2), Decimal::new(3, 2));
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                sum = black_box(black_box(sum) + step);
            }
            record("reference: decimal addition", iters, start.elapsed())
        })
    });

    c.bench_function("reference: push a transaction clone", |b| {
        let mut wallet = rich_wallet(&ctx);
        let transaction = wallet
            .deposit(money(&policy, "1", "USD"), None, None, &ctx)
            .expect("deposit");
        b.iter_custom(|iters| {
            // A short log, emptied when full, as a command's changes are.
            let mut log = Vec::with_capacity(64);
            let start = Instant::now();
            for _ in 0..iters {
                if log.len() == 64 {
                    log.clear();
                }
                log.push(black_box(&transaction).clone());
            }
            record(
                "reference: push a transaction clone",
                iters,
                start.elapsed(),
            )
        })
    });

    c.bench_function("deposit", |b| {
        let mut wallet = rich_wallet(&ctx);
        let amount = money(&policy, "0.01", "USD");
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let transaction = wallet.deposit(amount, None, None, &ctx).expect("deposit");
                black_box(transaction);
                black_box(wallet.take_changes());
            }
            record("deposit", iters, start.elapsed())
        })
    });

    c.bench_function("deposit, UUID v7 ids", |b| {
        let ids = UuidV7Generator::new();
        let ctx = Ctx {
            now: now(),
            ids: &ids,
            policy: &policy,
            idempotency_key: None,
        };
        let mut wallet = rich_wallet(&ctx);
        let amount = money(&policy, "0.01", "USD");
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let transaction = wallet.deposit(amount, None, None, &ctx).expect("deposit");
                black_box(transaction);
                black_box(wallet.take_changes());
            }
            record("deposit, UUID v7 ids", iters, start.elapsed())
        })
    });

    c.bench_function("withdraw", |b| {
        let mut wallet = rich_wallet(&ctx);
        let amount = money(&policy, "0.01", "USD");
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let transaction = wallet.withdraw(amount, None, None, &ctx).expect("withdraw");
                black_box(transaction);
                black_box(wallet.take_changes());
            }
            record("withdraw", iters, start.elapsed())
        })
    });

    c.bench_function("hold + execute", |b| {
        let mut wallet = rich_wallet(&ctx);
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let request = HoldRequest {
                    money: money(&policy, "1", "USD"),
                    reference_type: "order".into(),
                    reference_id: Uuid::nil(),
                    description: None,
                    expires_at: None,
                };
                let hold = wallet.hold(request, &ctx).expect("hold");
                black_box(wallet.take_changes());
                let executed = wallet
                    .execute_hold(hold.id, None, None, &ctx)
                    .expect("execute");
                black_box(wallet.take_changes());
                // The store keeps only active holds in the aggregate.
                wallet.forget_ended_holds();
                black_box(executed);
            }
            record("hold + execute", iters, start.elapsed())
        })
    });

    c.bench_function("exchange", |b| {
        let mut wallet = rich_wallet(&ctx);
        let amount = money(&policy, "0.01", "USD");
        let vnd = code("VND");
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(wallet.exchange(amount, vnd, &ctx).expect("exchange"));
                black_box(wallet.take_changes());
            }
            record("exchange", iters, start.elapsed())
        })
    });

    c.bench_function("transfer (two wallets)", |b| {
        let payer = rich_wallet(&ctx);
        let payee = Wallet::restore(
            Uuid::from_u128(9),
            Uuid::from_u128(3),
            payer.status(),
            code("USD"),
            None,
            Vec::new(),
            Vec::new(),
            1,
            0,
            now(),
            now(),
        );
        let mut set = WalletSet::new([payer, payee]);
        let transfer = Command::Transfer {
            user_id: Uuid::from_u128(1),
            to_user_id: Uuid::from_u128(3),
            amount: Decimal::new(1, 2),
            currency: code("USD"),
            description: None,
            reference: None,
        };
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(apply_to_wallets(&mut set, &transfer, &ctx).expect("transfer"));
                set.iter_mut().for_each(|wallet| {
                    black_box(wallet.take_changes());
                });
            }
            record("transfer (two wallets)", iters, start.elapsed())
        })
    });

    let account = account_with_lots(&ctx, 1000);
    let spend_bench = |c: &mut Criterion, name: &'static str, points: i64| {
        c.bench_function(name, |b| {
            b.iter_custom(|iters| {
                // Each spend needs a fresh copy of the account; copies are
                // made in batches outside the timed part.
                let mut elapsed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let batch = left.min(8);
                    let mut copies: Vec<PointAccount> =
                        (0..batch).map(|_| account.clone()).collect();
                    let mut changes = Vec::with_capacity(copies.len());
                    let start = Instant::now();
                    for copy in copies.iter_mut() {
                        let spent = copy
                            .spend(points, "shop".into(), None, &ctx)
                            .expect("spend");
                        black_box(spent);
                        // The store takes the changes; freeing them is its cost.
                        changes.push(copy.take_changes());
                    }
                    elapsed += start.elapsed();
                    drop(changes);
                    drop(copies);
                    left -= batch;
                }
                record(name, iters, elapsed)
            })
        });
    };
    spend_bench(c, "spend 25 points of 1,000 lots", 25);
    spend_bench(c, "spend all 1,000 lots", 10_000);
}

fn service_benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let service = WalletService::with_parts(
        Arc::new(InMemoryStore::new()),
        Policy::default(),
        Arc::new(ManualClock::new(now())),
        Arc::new(SequentialIdGenerator::new()),
    );
    let user_id = Uuid::from_u128(3);
    runtime
        .block_on(service.execute(
            Command::CreateWallet {
                user_id,
                default_currency: None,
            },
            None,
        ))
        .expect("a wallet");
    let deposit = Command::Deposit {
        user_id,
        amount: Decimal::new(1, 2),
        currency: code("USD"),
        description: None,
        reference: None,
    };
    c.bench_function("service deposit (in-memory store)", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let applied = runtime
                    .block_on(service.execute(deposit.clone(), None))
                    .expect("deposit");
                black_box(applied);
            }
            record("service deposit (in-memory store)", iters, start.elapsed())
        })
    });
}

/// (benchmark, target in ns); `None` for the references.
const TARGETS: &[(&str, Option<f64>)] = &[
    ("reference: decimal addition", None),
    ("reference: push a transaction clone", None),
    ("deposit", Some(250.0)),
    ("deposit, UUID v7 ids", Some(250.0)),
    ("withdraw", Some(250.0)),
    ("hold + execute", Some(5000.0)),
    ("exchange", Some(5000.0)),
    ("transfer (two wallets)", Some(5000.0)),
    ("spend 25 points of 1,000 lots", Some(5000.0)),
    ("spend all 1,000 lots", Some(5000.0)),
    ("service deposit (in-memory store)", Some(5000.0)),
];

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted.get(sorted.len() / 2).copied()
}

fn print_table() {
    let Ok(figures) = FIGURES.lock() else {
        return;
    };
    let figure = |name: &str| figures.get(name).and_then(|v| median(v));
    let reference = figure("reference: decimal addition");
    println!();
    println!("core, single thread: median time per operation over criterion's samples");
    println!(
        "{:<38} {:>12} {:>10} {:>9} {:>14}",
        "operation", "time", "target", "/ target", "/ decimal add"
    );
    for (name, target) in TARGETS {
        let Some(time) = figure(name) else {
            continue;
        };
        let target_text = target.map_or("-".to_string(), |t| format!("{t:.0} ns"));
        let ratio = target.map_or("-".to_string(), |t| format!("{:.2}", time / t));
        let reference_ratio = reference.map_or("-".to_string(), |r| format!("{:.1}", time / r));
        let verdict = match target {
            Some(t) if time > *t => "  MISSED",
            _ => "",
        };
        println!(
            "{name:<38} {:>9.1} ns {target_text:>10} {ratio:>9} {reference_ratio:>14}{verdict}",
            time
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = aggregate_benches, service_benches
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_table();
}
