//! Load generator: drives wallet-pg through the application service with N
//! concurrent clients for a fixed time and prints ops/s, p50, p99 and errors.
//!
//! ```text
//! cargo run --release --features postgres --example loadgen -- \
//!     --workload all --clients 16 --seconds 10 [--json] [--reference-tps 8700]
//! ```
//!
//! Workloads:
//! - `spread`: deposits spread over 10,000 wallets;
//! - `hot`: every client on one wallet: deposit, withdraw, hold, execute;
//! - `mixed`: 1,000 wallets; deposits, withdrawals, exchanges, holds with
//!   execute and release, point earns and spends.
//!
//! `DATABASE_URL` (or `--database-url`) names the server; the generator
//! migrates it and creates its own wallets (fresh user ids every run).
//! `--reference-tps` is the `pgbench -N` figure of the same server and client
//! count measured in the same run (see `scripts/bench.sh`); with it every
//! result also carries the ratio.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wallet::core::{
    Command, CurrencyCode, Decimal, Policy, Store, Uuid, WalletError, WalletService,
};
use wallet::pg::{PgConfig, PgStore};

/// Wallets of the `spread` workload.
const SPREAD_WALLETS: usize = 10_000;
/// Wallets of the `mixed` workload.
const MIXED_WALLETS: usize = 1_000;
/// The most clients accepted.
const CLIENTS_MAX: usize = 1024;
/// The longest run accepted, in seconds.
const SECONDS_MAX: u64 = 3600;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Spread,
    Hot,
    Mixed,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Spread => "spread",
            Workload::Hot => "hot",
            Workload::Mixed => "mixed",
        }
    }
}

struct Options {
    database_url: String,
    workloads: Vec<Workload>,
    clients: usize,
    seconds: u64,
    json: bool,
    reference_tps: Option<f64>,
    max_connections: u32,
}

fn usage() -> &'static str {
    "usage: loadgen [--database-url URL] [--workload spread|hot|mixed|all] [--clients N] \
     [--seconds S] [--json] [--reference-tps TPS] [--max-connections N]"
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        database_url: std::env::var("DATABASE_URL").unwrap_or_default(),
        workloads: vec![Workload::Spread, Workload::Hot, Workload::Mixed],
        clients: 16,
        seconds: 10,
        json: false,
        reference_tps: None,
        max_connections: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))
        };
        match flag.as_str() {
            "--database-url" => options.database_url = value()?,
            "--workload" => {
                options.workloads = match value()?.as_str() {
                    "spread" => vec![Workload::Spread],
                    "hot" => vec![Workload::Hot],
                    "mixed" => vec![Workload::Mixed],
                    "all" => vec![Workload::Spread, Workload::Hot, Workload::Mixed],
                    other => return Err(format!("unknown workload {other}\n{}", usage())),
                }
            }
            "--clients" => {
                options.clients = value()?
                    .parse()
                    .map_err(|_| "--clients takes a number".to_string())?;
            }
            "--seconds" => {
                options.seconds = value()?
                    .parse()
                    .map_err(|_| "--seconds takes a number".to_string())?;
            }
            "--reference-tps" => {
                let tps: f64 = value()?
                    .parse()
                    .map_err(|_| "--reference-tps takes a number".to_string())?;
                options.reference_tps = (tps > 0.0).then_some(tps);
            }
            "--max-connections" => {
                options.max_connections = value()?
                    .parse()
                    .map_err(|_| "--max-connections takes a number".to_string())?;
            }
            "--json" => options.json = true,
            "--help" | "-h" => return Err(usage().to_string()),
            other => return Err(format!("unknown argument {other}\n{}", usage())),
        }
    }
    if options.database_url.is_empty() {
        return Err(format!(
            "set DATABASE_URL or pass --database-url\n{}",
            usage()
        ));
    }
    if options.clients == 0 || options.clients > CLIENTS_MAX {
        return Err(format!("--clients must be 1 to {CLIENTS_MAX}"));
    }
    if options.seconds == 0 || options.seconds > SECONDS_MAX {
        return Err(format!("--seconds must be 1 to {SECONDS_MAX}"));
    }
    if options.max_connections == 0 {
        options.max_connections = (options.clients as u32 + 4).min(200);
    }
    Ok(options)
}

/// A tiny per-client random sequence (xorshift64*), so runs need no extra crate.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Outcome {
    latencies_us: Vec<u32>,
    errors: u64,
}

struct Codes {
    vnd: CurrencyCode,
    usd: CurrencyCode,
}

fn codes() -> Result<Codes, WalletError> {
    Ok(Codes {
        vnd: CurrencyCode::parse("VND")?,
        usd: CurrencyCode::parse("USD")?,
    })
}

async fn create_wallets<S: Store>(
    service: &WalletService<S>,
    count: usize,
    funded: bool,
    points: bool,
) -> Result<Vec<Uuid>, WalletError> {
    let codes = codes()?;
    let mut users = Vec::with_capacity(count);
    for _ in 0..count {
        let user_id = Uuid::now_v7();
        service
            .execute(
                Command::CreateWallet {
                    user_id,
                    default_currency: None,
                },
                None,
            )
            .await?;
        if funded {
            for (currency, amount) in [
                (codes.vnd, Decimal::from(1_000_000_000_000i64)),
                (codes.usd, Decimal::from(1_000_000_000i64)),
            ] {
                let deposit = Command::Deposit {
                    user_id,
                    amount,
                    currency,
                    description: Some("load test funding".into()),
                    reference: None,
                };
                service.execute(deposit, None).await?;
            }
        }
        if points {
            service
                .execute(Command::CreatePointAccount { user_id }, None)
                .await?;
        }
        users.push(user_id);
    }
    Ok(users)
}

/// One operation of a workload. Holds are executed by the same client right
/// after, and count as two operations.
async fn one_operation<S: Store>(
    service: &WalletService<S>,
    workload: Workload,
    users: &[Uuid],
    random: &mut Random,
    codes: &Codes,
    latencies: &mut Vec<u32>,
) -> u64 {
    let mut errors = 0;
    let mut timed = |result: Result<wallet::core::Applied, WalletError>,
                     started: Instant,
                     latencies: &mut Vec<u32>| {
        latencies.push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        match result {
            Ok(applied) => Some(applied),
            Err(_) => {
                errors += 1;
                None
            }
        }
    };
    let user_id = users[random.below(users.len())];
    let small = Decimal::from(1 + random.below(100) as i64);
    let deposit = Command::Deposit {
        user_id,
        amount: small,
        currency: codes.vnd,
        description: None,
        reference: None,
    };
    let choice = match workload {
        Workload::Spread => 0,
        Workload::Hot => random.below(4),
        Workload::Mixed => random.below(8),
    };
    let started = Instant::now();
    match choice {
        0 => {
            timed(service.execute(deposit, None).await, started, latencies);
        }
        1 => {
            let withdraw = Command::Withdraw {
                user_id,
                amount: small,
                currency: codes.vnd,
                description: None,
                reference: None,
            };
            timed(service.execute(withdraw, None).await, started, latencies);
        }
        2..=4 => {
            let hold = Command::CreateHold {
                user_id,
                amount: small,
                currency: codes.vnd,
                reference_type: "order".into(),
                reference_id: Uuid::now_v7(),
                description: None,
                expires_at: None,
            };
            let held = timed(service.execute(hold, None).await, started, latencies);
            if let Some(wallet::core::CommandOutput::Hold { hold }) = held.map(|a| a.output) {
                let started = Instant::now();
                let settle = if choice == 4 {
                    Command::ReleaseHold {
                        user_id,
                        hold_id: hold.id,
                        amount: None,
                    }
                } else {
                    Command::ExecuteHold {
                        user_id,
                        hold_id: hold.id,
                        amount: None,
                        reference: None,
                    }
                };
                timed(service.execute(settle, None).await, started, latencies);
            }
        }
        5 => {
            let exchange = Command::Exchange {
                user_id,
                amount: Decimal::new(1 + random.below(500) as i64, 2),
                from_currency: codes.usd,
                to_currency: codes.vnd,
            };
            timed(service.execute(exchange, None).await, started, latencies);
        }
        6 => {
            let earn = Command::EarnPoints {
                user_id,
                points: 10,
                source: "order".into(),
                description: None,
                expires_at: None,
                pending: false,
            };
            timed(service.execute(earn, None).await, started, latencies);
        }
        _ => {
            let spend = Command::SpendPoints {
                user_id,
                points: 5,
                source: "checkout".into(),
                description: None,
            };
            timed(service.execute(spend, None).await, started, latencies);
        }
    }
    errors
}

async fn run_workload<S: Store>(
    service: &WalletService<S>,
    workload: Workload,
    options: &Options,
) -> Result<Outcome, WalletError> {
    let users = Arc::new(match workload {
        Workload::Spread => create_wallets(service, SPREAD_WALLETS, false, false).await?,
        Workload::Hot => create_wallets(service, 1, true, false).await?,
        Workload::Mixed => {
            let users = create_wallets(service, MIXED_WALLETS, true, true).await?;
            for user_id in &users {
                let earn = Command::EarnPoints {
                    user_id: *user_id,
                    points: 1_000_000,
                    source: "load test funding".into(),
                    description: None,
                    expires_at: None,
                    pending: false,
                };
                service.execute(earn, None).await?;
            }
            users
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(options.clients);
    for client in 0..options.clients {
        let service = service.clone();
        let users = Arc::clone(&users);
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let codes = codes()?;
            let mut random = Random(
                0x9e37_79b9_7f4a_7c15 ^ (client as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9),
            );
            let mut latencies = Vec::with_capacity(1 << 16);
            let mut errors = 0;
            while !stop.load(Ordering::Relaxed) {
                errors += one_operation(
                    &service,
                    workload,
                    &users,
                    &mut random,
                    &codes,
                    &mut latencies,
                )
                .await;
            }
            Ok::<_, WalletError>(Outcome {
                latencies_us: latencies,
                errors,
            })
        }));
    }
    tokio::time::sleep(Duration::from_secs(options.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = Outcome {
        latencies_us: Vec::new(),
        errors: 0,
    };
    for task in tasks {
        let outcome = task
            .await
            .map_err(|e| WalletError::Internal(format!("client task failed: {e}")))??;
        total.latencies_us.extend(outcome.latencies_us);
        total.errors += outcome.errors;
    }
    Ok(total)
}

fn percentile_ms(sorted_us: &[u32], fraction: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let index = ((sorted_us.len() as f64 - 1.0) * fraction).round() as usize;
    f64::from(sorted_us[index.min(sorted_us.len() - 1)]) / 1000.0
}

fn report(workload: Workload, options: &Options, mut outcome: Outcome, elapsed: Duration) {
    outcome.latencies_us.sort_unstable();
    let ops = outcome.latencies_us.len() as f64;
    let ops_per_s = ops / elapsed.as_secs_f64();
    let p50 = percentile_ms(&outcome.latencies_us, 0.50);
    let p99 = percentile_ms(&outcome.latencies_us, 0.99);
    let ratio = options.reference_tps.map(|r| ops_per_s / r);
    if options.json {
        let line = serde_json::json!({
            "workload": workload.name(),
            "clients": options.clients,
            "seconds": elapsed.as_secs_f64(),
            "ops_per_s": ops_per_s,
            "p50_ms": p50,
            "p99_ms": p99,
            "errors": outcome.errors,
            "reference_tps": options.reference_tps,
            "ratio": ratio,
        });
        println!("{line}");
    } else {
        let reference = options
            .reference_tps
            .map_or("-".to_string(), |r| format!("{r:.0}"));
        let ratio = ratio.map_or("-".to_string(), |r| format!("{r:.2}"));
        println!(
            "{:<8} clients={:<4} seconds={:<6.1} ops/s={:<10.0} p50={:<8.2}ms p99={:<8.2}ms errors={:<6} reference_tps={reference} ratio={ratio}",
            workload.name(),
            options.clients,
            elapsed.as_secs_f64(),
            ops_per_s,
            p50,
            p99,
            outcome.errors,
        );
    }
}

fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            std::process::exit(1);
        }
    };
    if let Err(error) = runtime.block_on(run(options)) {
        eprintln!("loadgen failed: {error}");
        std::process::exit(1);
    }
}

async fn run(options: Options) -> Result<(), WalletError> {
    let mut config = PgConfig::new(options.database_url.clone());
    config.max_connections = options.max_connections;
    let store = PgStore::connect(&config).await?;
    store.migrate().await?;
    let service = WalletService::new(store, Policy::default());
    for workload in &options.workloads {
        let started = Instant::now();
        let outcome = run_workload(&service, *workload, &options).await?;
        // Setup time is not counted: only the timed window.
        let elapsed = Duration::from_secs(options.seconds).min(started.elapsed());
        report(*workload, &options, outcome, elapsed);
    }
    Ok(())
}
