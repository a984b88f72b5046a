//! Differential property test: random command sequences (valid and
//! invalid, with clock jumps and sweeps) run through a `WalletService` on
//! the in-memory store and on PostgreSQL, each with its own manual clock and
//! id generator started identically, must give identical results, states,
//! histories and events.
//!
//! Reversals are in the mix: of any row of the case's wallets (both legs
//! of transfers and payouts, rows that cannot be reversed, reversals
//! themselves), by either user, in full or in part.
//!
//! 64 cases by default; set `PROPTEST_CASES` for more.
//!
//! Three runs: the unbatched store; the batching store, one command at a
//! time; and the batching store given runs of consecutive commands at once,
//! each run applied as one batch, which must equal the in-memory store
//! applying the same commands one after another in the same order.
//!
//! All cases share one scratch database. Each case runs at its own span of
//! time (earlier than every case before it, so a sweep never reaches a
//! finished case's holds or lots), with its own users and ids, and compares
//! only what it wrote: its users' state, the outbox events after the last
//! one seen, and the statistics of its own time window.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rust_decimal::Decimal;
use uuid::Uuid;
use wallet_core::testing::contract::{Harness, Snapshot};
use wallet_core::testing::invariants;
use wallet_core::{
    Clock, Command, CommandOutput, CurrencyCode, IdGenerator, IdempotencyKey, InMemoryStore,
    ManualClock, Payee, Policy, Store, WalletService,
};
use wallet_pg::PgStore;

/// Each case's span of time; cases run at most 30 steps of at most 8 days.
const CASE_SPAN_DAYS: i64 = 400;
/// Where the first case's clock starts: 9000-01-01. Later cases start
/// earlier, [`CASE_SPAN_DAYS`] apart.
const FIRST_CASE_START_SECONDS: i64 = 221_845_392_000;
const STEPS_MAX: usize = 30;
const CASES_DEFAULT: u32 = 64;
/// The most commands submitted at once in [`Mode::Batches`].
const BATCH_STEPS_MAX: usize = 8;

/// How the PostgreSQL side is given the commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One command at a time.
    OneByOne,
    /// Runs of consecutive commands (creates excepted) at once: on a
    /// current-thread runtime with one batching writer, each run is queued
    /// whole before the writer takes it, so it forms one batch, applied in
    /// submission order.
    Batches,
}

const AMOUNTS: &[&str] = &[
    "1",
    "5",
    "10.50",
    "0.01",
    "100",
    "2500",
    "25000",
    "0.001",
    "0",
    "1000000000000000",
];
const CURRENCIES: &[&str] = &["VND", "USD", "PPOINT", "XXX"];
const POINTS: &[i64] = &[1, 5, 10, 50, 100, 0, 1_000_000_000_001];
const DELTAS: &[i64] = &[-100, -5, -1, 0, 1, 7, 100];
const EXPIRIES_MINUTES: &[i64] = &[-10, 1, 30, 120, 60 * 24 * 3, 60 * 24 * 40];
const ADVANCES_MINUTES: &[i64] = &[1, 30, 120, 60 * 24, 60 * 24 * 8];
const KEYS: &[&str] = &["k1", "k2", "k3"];
/// Users a transfer or a payout may name: the case's two, and a third
/// that never has a wallet.
const TRANSFER_TARGETS: usize = 3;

#[derive(Debug, Clone)]
enum Kind {
    CreateWallet {
        currency: Option<usize>,
    },
    Deposit {
        amount: usize,
        currency: usize,
    },
    Withdraw {
        amount: usize,
        currency: usize,
    },
    Exchange {
        amount: usize,
        from: usize,
        to: usize,
    },
    Hold {
        amount: usize,
        currency: usize,
        expires: Option<usize>,
    },
    Execute {
        hold: usize,
        amount: Option<usize>,
    },
    Release {
        hold: usize,
        amount: Option<usize>,
    },
    Cancel {
        hold: usize,
    },
    /// To the case's user of index `to` (the other one, the payer itself,
    /// or one without a wallet).
    Transfer {
        to: usize,
        amount: usize,
        currency: usize,
    },
    /// A hold paid out to the case's users of the shares' indices, each
    /// with an amount of [`AMOUNTS`].
    Payout {
        hold: usize,
        amount: Option<usize>,
        shares: Vec<(usize, usize)>,
    },
    Freeze,
    Unfreeze,
    Close,
    CreatePoints,
    Earn {
        points: usize,
        expires: Option<usize>,
        pending: bool,
    },
    Spend {
        points: usize,
    },
    Adjust {
        delta: usize,
    },
    Confirm {
        lot: usize,
    },
    CancelPending {
        lot: usize,
    },
    /// Reverses a transaction the case has seen (or an unknown id), all
    /// that is left or an amount of [`AMOUNTS`].
    Reverse {
        transaction: usize,
        amount: Option<usize>,
    },
}

/// The ids the case's commands made, for later steps to name.
#[derive(Debug, Default)]
struct Seen {
    holds: Vec<Uuid>,
    lots: Vec<Uuid>,
    transactions: Vec<Uuid>,
}

#[derive(Debug, Clone)]
enum Step {
    Command {
        user: usize,
        kind: Kind,
        key: Option<usize>,
    },
    Advance {
        minutes: usize,
    },
    Sweep,
}

fn kind_strategy() -> impl Strategy<Value = Kind> {
    let amount = 0..AMOUNTS.len();
    let currency = 0..CURRENCIES.len();
    prop_oneof![
        1 => proptest::option::of(0..3usize).prop_map(|currency| Kind::CreateWallet { currency }),
        6 => (amount.clone(), 0..3usize).prop_map(|(amount, currency)| Kind::Deposit { amount, currency }),
        2 => (amount.clone(), currency.clone()).prop_map(|(amount, currency)| Kind::Deposit { amount, currency }),
        4 => (amount.clone(), currency.clone()).prop_map(|(amount, currency)| Kind::Withdraw { amount, currency }),
        3 => (amount.clone(), currency.clone(), currency.clone())
            .prop_map(|(amount, from, to)| Kind::Exchange { amount, from, to }),
        5 => (amount.clone(), currency.clone(), proptest::option::of(0..EXPIRIES_MINUTES.len()))
            .prop_map(|(amount, currency, expires)| Kind::Hold { amount, currency, expires }),
        4 => (any::<usize>(), proptest::option::of(amount.clone()))
            .prop_map(|(hold, amount)| Kind::Execute { hold, amount }),
        3 => (any::<usize>(), proptest::option::of(amount.clone()))
            .prop_map(|(hold, amount)| Kind::Release { hold, amount }),
        2 => any::<usize>().prop_map(|hold| Kind::Cancel { hold }),
        5 => (0..TRANSFER_TARGETS, amount.clone(), currency.clone())
            .prop_map(|(to, amount, currency)| Kind::Transfer { to, amount, currency }),
        3 => (
            any::<usize>(),
            proptest::option::weighted(0.2, amount.clone()),
            proptest::collection::vec((0..TRANSFER_TARGETS, amount.clone()), 0..4),
        )
            .prop_map(|(hold, amount, shares)| Kind::Payout { hold, amount, shares }),
        1 => Just(Kind::Freeze),
        1 => Just(Kind::Unfreeze),
        1 => Just(Kind::Close),
        1 => Just(Kind::CreatePoints),
        5 => (0..POINTS.len(), proptest::option::of(0..EXPIRIES_MINUTES.len()), any::<bool>())
            .prop_map(|(points, expires, pending)| Kind::Earn { points, expires, pending }),
        3 => (0..POINTS.len()).prop_map(|points| Kind::Spend { points }),
        2 => (0..DELTAS.len()).prop_map(|delta| Kind::Adjust { delta }),
        2 => any::<usize>().prop_map(|lot| Kind::Confirm { lot }),
        1 => any::<usize>().prop_map(|lot| Kind::CancelPending { lot }),
        5 => (any::<usize>(), proptest::option::weighted(0.7, amount))
            .prop_map(|(transaction, amount)| Kind::Reverse { transaction, amount }),
    ]
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => (0..2usize, kind_strategy(), proptest::option::weighted(0.3, 0..KEYS.len()))
            .prop_map(|(user, kind, key)| Step::Command { user, kind, key }),
        2 => (0..ADVANCES_MINUTES.len()).prop_map(|minutes| Step::Advance { minutes }),
        1 => Just(Step::Sweep),
    ]
}

/// Deterministic ids unique to a case: the UUID v7 layout, time from `now`,
/// the case's salt and a counter.
struct CaseIds {
    salt: u64,
    counter: AtomicU64,
}

impl IdGenerator for CaseIds {
    fn next_id(&self, now: DateTime<Utc>) -> Uuid {
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let mut bytes = [0u8; 10];
        bytes[..4].copy_from_slice(&(self.salt as u32).to_be_bytes());
        bytes[4..].copy_from_slice(&n.to_be_bytes()[2..]);
        let millis = now.timestamp_millis().max(0) as u64;
        uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid()
    }
}

struct Side<S: Store> {
    harness: Harness<S>,
}

fn side<S: Store>(store: Arc<S>, start: DateTime<Utc>, salt: u64) -> Side<S> {
    let clock = Arc::new(ManualClock::new(start));
    let service = WalletService::with_parts(
        store,
        Policy::default(),
        clock.clone() as Arc<dyn Clock>,
        Arc::new(CaseIds {
            salt,
            counter: AtomicU64::new(0),
        }),
    );
    Side {
        harness: Harness { service, clock },
    }
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str_exact(text).expect("test decimals parse")
}

fn currency(index: usize) -> CurrencyCode {
    CurrencyCode::parse(CURRENCIES[index]).expect("test currencies parse")
}

/// The command of a step, naming holds and lots the case has seen (or an
/// unknown id when there are none).
fn command(users: &[Uuid], user: usize, kind: &Kind, now: DateTime<Utc>, seen: &Seen) -> Command {
    let (holds, lots) = (seen.holds.as_slice(), seen.lots.as_slice());
    let user_id = users[user];
    let target = |index: usize| users.get(index).copied().unwrap_or(Uuid::from_u128(0xfeed));
    let pick = |ids: &[Uuid], index: usize| {
        if ids.is_empty() {
            Uuid::from_u128(0xdead_beef)
        } else {
            ids[index % ids.len()]
        }
    };
    let expiry = |index: Option<usize>| index.map(|i| now + Duration::minutes(EXPIRIES_MINUTES[i]));
    match kind.clone() {
        Kind::CreateWallet { currency: code } => Command::CreateWallet {
            user_id,
            default_currency: code.map(currency),
        },
        Kind::Deposit {
            amount,
            currency: code,
        } => Command::Deposit {
            user_id,
            amount: dec(AMOUNTS[amount]),
            currency: currency(code),
            description: Some("deposit".into()),
            reference: None,
        },
        Kind::Withdraw {
            amount,
            currency: code,
        } => Command::Withdraw {
            user_id,
            amount: dec(AMOUNTS[amount]),
            currency: currency(code),
            description: None,
            reference: Some("ref".into()),
        },
        Kind::Exchange { amount, from, to } => Command::Exchange {
            user_id,
            amount: dec(AMOUNTS[amount]),
            from_currency: currency(from),
            to_currency: currency(to),
        },
        Kind::Hold {
            amount,
            currency: code,
            expires,
        } => Command::CreateHold {
            user_id,
            amount: dec(AMOUNTS[amount]),
            currency: currency(code),
            reference_type: "order".into(),
            reference_id: Uuid::from_u128(7),
            description: None,
            expires_at: expiry(expires),
        },
        Kind::Execute { hold, amount } => Command::ExecuteHold {
            user_id,
            hold_id: pick(holds, hold),
            amount: amount.map(|a| dec(AMOUNTS[a])),
            reference: None,
            payees: None,
        },
        Kind::Transfer {
            to,
            amount,
            currency: code,
        } => Command::Transfer {
            user_id,
            to_user_id: target(to),
            amount: dec(AMOUNTS[amount]),
            currency: currency(code),
            description: Some("transfer".into()),
            reference: None,
        },
        Kind::Payout {
            hold,
            amount,
            shares,
        } => Command::ExecuteHold {
            user_id,
            hold_id: pick(holds, hold),
            amount: amount.map(|a| dec(AMOUNTS[a])),
            reference: Some("order".into()),
            payees: Some(
                shares
                    .iter()
                    .map(|&(to, amount)| Payee {
                        user_id: target(to),
                        amount: dec(AMOUNTS[amount]),
                    })
                    .collect(),
            ),
        },
        Kind::Release { hold, amount } => Command::ReleaseHold {
            user_id,
            hold_id: pick(holds, hold),
            amount: amount.map(|a| dec(AMOUNTS[a])),
        },
        Kind::Cancel { hold } => Command::CancelHold {
            user_id,
            hold_id: pick(holds, hold),
        },
        Kind::Freeze => Command::FreezeWallet {
            user_id,
            reason: "review".into(),
        },
        Kind::Unfreeze => Command::UnfreezeWallet { user_id },
        Kind::Close => Command::CloseWallet { user_id },
        Kind::CreatePoints => Command::CreatePointAccount { user_id },
        Kind::Earn {
            points,
            expires,
            pending,
        } => Command::EarnPoints {
            user_id,
            points: POINTS[points],
            source: "shop".into(),
            description: None,
            expires_at: expiry(expires),
            pending,
        },
        Kind::Spend { points } => Command::SpendPoints {
            user_id,
            points: POINTS[points],
            source: "checkout".into(),
            description: None,
        },
        Kind::Adjust { delta } => Command::AdjustPoints {
            user_id,
            delta: DELTAS[delta],
            source: "support".into(),
            description: None,
        },
        Kind::Confirm { lot } => Command::ConfirmPendingPoints {
            user_id,
            lot_id: pick(lots, lot),
        },
        Kind::CancelPending { lot } => Command::CancelPendingPoints {
            user_id,
            lot_id: pick(lots, lot),
        },
        Kind::Reverse {
            transaction,
            amount,
        } => Command::ReverseTransaction {
            user_id,
            transaction_id: pick(&seen.transactions, transaction),
            amount: amount.map(|a| dec(AMOUNTS[a])),
            reason: "refund".into(),
        },
    }
}

fn check<T: PartialEq + std::fmt::Debug>(
    what: &str,
    memory: T,
    postgres: T,
) -> Result<(), TestCaseError> {
    // Decimals compare equal whatever their scale (`0` == `0.00`), but
    // clients see the scale: the printed forms must match as well.
    if memory == postgres && format!("{memory:?}") == format!("{postgres:?}") {
        Ok(())
    } else {
        Err(TestCaseError::fail(format!(
            "{what} differ:\n in memory: {memory:?}\n  postgres: {postgres:?}"
        )))
    }
}

/// Snapshots compared, with the events told apart: the in-memory outbox is
/// the case's own, the database's is shared by all cases.
fn strip_events(mut snapshot: Snapshot) -> Snapshot {
    snapshot.events.clear();
    snapshot
}

async fn run_case(
    postgres: &Arc<PgStore>,
    mode: Mode,
    salt: u64,
    steps: &[Step],
    events_seen: &mut u64,
) -> Result<(), TestCaseError> {
    let start = DateTime::from_timestamp(
        FIRST_CASE_START_SECONDS - salt as i64 * CASE_SPAN_DAYS * 24 * 60 * 60,
        0,
    )
    .expect("case start");
    let memory = side(Arc::new(InMemoryStore::new()), start, salt);
    let database = side(Arc::clone(postgres), start, salt);
    // Skip what an earlier case left unread (one that failed half-way).
    loop {
        let (left_over, next) = database
            .harness
            .service
            .events(Some(*events_seen), Some(1000))
            .await
            .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        if left_over.is_empty() {
            break;
        }
        *events_seen = next;
    }
    let users = [
        Uuid::from_u128(((salt as u128) << 64) | 1),
        Uuid::from_u128(((salt as u128) << 64) | 2),
    ];
    let mut seen = Seen::default();
    let mut index = 0;
    while index < steps.len() {
        let run = match mode {
            Mode::OneByOne => 1,
            Mode::Batches => batchable_run(&steps[index..]),
        };
        if run > 1 {
            let chunk = &steps[index..index + run];
            run_batch(
                &memory, &database, postgres, &users, chunk, index, &mut seen,
            )
            .await?;
            index += run;
            continue;
        }
        let step = &steps[index];
        match step {
            Step::Advance { minutes } => {
                let by = Duration::minutes(ADVANCES_MINUTES[*minutes]);
                memory.harness.advance(by);
                database.harness.advance(by);
            }
            Step::Sweep => {
                let left = memory.harness.service.sweep_expired(100).await;
                let right = database.harness.service.sweep_expired(100).await;
                check(&format!("step {index}: sweep"), left, right)?;
            }
            Step::Command { user, kind, key } => {
                let command = command(&users, *user, kind, memory.harness.now(), &seen);
                let key = key.map(|k| IdempotencyKey::parse(KEYS[k]).expect("test keys parse"));
                let left = memory
                    .harness
                    .service
                    .execute(command.clone(), key.clone())
                    .await;
                let right = database.harness.service.execute(command.clone(), key).await;
                check(&format!("step {index}: {command:?}"), &left, &right)?;
                learn(&left, index, &mut seen)?;
                learn_rows(&memory, &users, &mut seen).await;
            }
        }
        index += 1;
    }
    for user in users {
        let left = strip_events(memory.harness.snapshot(user).await);
        let right = strip_events(database.harness.snapshot(user).await);
        if let Some(view) = &right.wallet {
            invariants::check_wallet(view, &right.holds, &right.transactions)
                .map_err(TestCaseError::fail)?;
        }
        check("the stored state", left, right)?;
    }
    let now = memory.harness.now();
    let left = memory
        .harness
        .service
        .statistics(Some(start), Some(now))
        .await
        .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    let right = database
        .harness
        .service
        .statistics(Some(start), Some(now))
        .await
        .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    check(
        "windowed transaction statistics",
        left.transactions,
        right.transactions,
    )?;
    check(
        "windowed point flows",
        (left.points.earned, left.points.spent, left.points.expired),
        (
            right.points.earned,
            right.points.spent,
            right.points.expired,
        ),
    )?;

    let left = memory.harness.all_events().await;
    let (right, _) = database
        .harness
        .service
        .events(Some(*events_seen), Some(1000))
        .await
        .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    let base = *events_seen;
    if let Some(last) = right.last() {
        *events_seen = last.sequence;
    }
    check("event counts", left.len(), right.len())?;
    for (memory_event, database_event) in left.iter().zip(&right) {
        check("events", &memory_event.event, &database_event.event)?;
        check(
            "event sequences",
            memory_event.sequence,
            database_event.sequence - base,
        )?;
    }
    Ok(())
}

/// How many steps from the start of `steps` can go in one batch: commands
/// that are not creates (a create is a single statement of its own, outside
/// the batching writer) nor reversals (which read their legs before they
/// queue, so they would not join the batch at once), at most
/// [`BATCH_STEPS_MAX`].
fn batchable_run(steps: &[Step]) -> usize {
    steps
        .iter()
        .take(BATCH_STEPS_MAX)
        .take_while(|step| {
            matches!(
                step,
                Step::Command { kind, .. }
                    if !matches!(
                        kind,
                        Kind::CreateWallet { .. } | Kind::CreatePoints | Kind::Reverse { .. }
                    )
            )
        })
        .count()
}

/// Notes the holds and lots a successful command made, so later steps can
/// name them; an error must be one of the domain's.
fn learn(
    result: &Result<wallet_core::Applied, wallet_core::WalletError>,
    index: usize,
    seen: &mut Seen,
) -> Result<(), TestCaseError> {
    match result {
        Ok(applied) => match &applied.output {
            CommandOutput::Hold { hold } if !seen.holds.contains(&hold.id) => {
                seen.holds.push(hold.id)
            }
            CommandOutput::Points {
                lot_id: Some(lot_id),
                ..
            } if !seen.lots.contains(lot_id) => seen.lots.push(*lot_id),
            _ => {}
        },
        Err(error) => prop_assert!(
            !matches!(
                error,
                wallet_core::WalletError::Internal(_) | wallet_core::WalletError::Unavailable(_)
            ),
            "step {index}: {error:?}"
        ),
    }
    Ok(())
}

/// Notes every row of the case's wallets (as the in-memory side has them),
/// so that reversals name rows of every kind, of either user.
async fn learn_rows(memory: &Side<InMemoryStore>, users: &[Uuid], seen: &mut Seen) {
    for user in users {
        if memory.harness.service.wallet(*user).await.is_err() {
            continue;
        }
        for row in memory.harness.all_transactions(*user).await {
            if !seen.transactions.contains(&row.id) {
                seen.transactions.push(row.id);
            }
        }
    }
}

/// A run of commands: one after another in memory; all at once on
/// PostgreSQL, where they form one batch. The results must be the same,
/// command by command.
async fn run_batch(
    memory: &Side<InMemoryStore>,
    database: &Side<PgStore>,
    postgres: &PgStore,
    users: &[Uuid],
    chunk: &[Step],
    first: usize,
    seen: &mut Seen,
) -> Result<(), TestCaseError> {
    let now = memory.harness.now();
    let mut commands = Vec::with_capacity(chunk.len());
    for step in chunk {
        if let Step::Command { user, kind, key } = step {
            let command = command(users, *user, kind, now, seen);
            let key = key.map(|k| IdempotencyKey::parse(KEYS[k]).expect("test keys parse"));
            commands.push((command, key));
        }
    }
    let mut left = Vec::with_capacity(commands.len());
    for (command, key) in &commands {
        left.push(
            memory
                .harness
                .service
                .execute(command.clone(), key.clone())
                .await,
        );
    }
    let before = postgres.batch_stats().unwrap_or_default();
    let right = futures::future::join_all(commands.iter().map(|(command, key)| {
        database
            .harness
            .service
            .execute(command.clone(), key.clone())
    }))
    .await;
    let after = postgres.batch_stats().unwrap_or_default();
    prop_assert!(
        after.batches - before.batches <= 1,
        "steps {first}..: {} commands submitted at once made {} batches",
        after.commands - before.commands,
        after.batches - before.batches
    );
    // Nothing else writes to the database: a batch that had to fall back
    // to one transaction per command, or failed, is a bug of the batch.
    prop_assert_eq!(
        (after.fallbacks, after.failures),
        (before.fallbacks, before.failures),
        "steps {}..: the batch fell back or failed",
        first
    );
    for (offset, ((command, _), (left, right))) in
        commands.iter().zip(left.iter().zip(&right)).enumerate()
    {
        let index = first + offset;
        check(
            &format!("step {index} (in a batch): {command:?}"),
            left,
            right,
        )?;
        learn(left, index, seen)?;
    }
    learn_rows(memory, users, seen).await;
    Ok(())
}

/// Runs the property over `postgres` on `runtime`.
fn run_property(runtime: &tokio::runtime::Runtime, postgres: PgStore, mode: Mode) {
    let postgres = Arc::new(postgres);
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES_DEFAULT);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let salt = AtomicU64::new(0);
    let events_seen = std::sync::Mutex::new(0u64);
    let result = runner.run(
        &proptest::collection::vec(step_strategy(), 1..=STEPS_MAX),
        |steps| {
            let salt = salt.fetch_add(1, Ordering::SeqCst);
            let mut seen = events_seen.lock().expect("not poisoned");
            runtime.block_on(run_case(&postgres, mode, salt, &steps, &mut seen))
        },
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

#[test]
fn postgres_matches_the_in_memory_store() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let postgres = runtime.block_on(wallet_pg::testing::fresh_store());
    run_property(&runtime, postgres, Mode::OneByOne);
}

#[test]
fn batched_postgres_matches_the_in_memory_store() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let postgres = runtime.block_on(wallet_pg::testing::fresh_batched_store());
    run_property(&runtime, postgres, Mode::OneByOne);
}

#[test]
fn commands_batched_together_match_the_in_memory_store_one_after_another() {
    // One thread: a run submitted at once is queued whole before the
    // writer runs. One writer: the batch is applied in submission order,
    // which is the order the in-memory side used (ids and times included).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let postgres = runtime.block_on(async {
        let mut config = wallet_pg::testing::batched_test_config("");
        if let Some(batching) = config.batching.as_mut() {
            batching.writers = 1;
        }
        wallet_pg::testing::fresh_store_with(config).await.0
    });
    run_property(&runtime, postgres, Mode::Batches);
}
