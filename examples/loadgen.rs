//! Load generator: drives wallet-pg through the application service with N
//! concurrent clients for a fixed time and prints ops/s, p50, p99 and errors,
//! on the store with one transaction per command (`single`) and with the
//! batching writer (`batched`), side by side in one run; `--path all` adds
//! the batching writer keeping no wallets between batches
//! (`batched-unkept`), to show what kept wallets are worth.
//!
//! ```text
//! cargo run --release --features postgres --example loadgen -- \
//!     --workload all --path both --clients 16 --seconds 10 [--json] [--reference-tps 8700]
//! ```
//!
//! Workloads:
//! - `spread`: deposits spread over 10,000 wallets;
//! - `hot`: every client on one wallet: deposit, withdraw, hold then execute;
//! - `mixed`: 1,000 wallets; deposits, withdrawals, exchanges, holds with
//!   execute or release, point earns and spends;
//! - `hot-deposit` (not in `all`): every client deposits into one wallet,
//!   the library's side of the HTTP benchmark's hot workload
//!   (`scripts/bench-http.sh`);
//! - `transfer-spread` (not in `all`): transfers between random pairs of
//!   10,000 wallets;
//! - `transfer-hot` (not in `all`): transfers back and forth between 2
//!   wallets.
//!
//! Each client runs one command at a time (a closed loop); every command is
//! one operation (a hold and its execute are two). The wallets of a
//! workload are made once (concurrently, not timed) and used by both paths.
//! Each measurement starts with a short warm-up that is not counted.
//!
//! `DATABASE_URL` (or `--database-url`) names the server; the generator
//! migrates it and creates its own wallets (fresh user ids every run).
//! `--reference-tps` is the `pgbench -N` figure of the same server and
//! client count measured in the same run (see `scripts/bench.sh`); with it
//! every result also carries the ratio.
//!
//! The pool's liveness check before each acquire (`test_before_acquire`)
//! costs a round trip per command on the single path; it is off here
//! unless `--test-before-acquire` is given, as a deployment that cares for
//! throughput would set it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wallet::core::{
    Applied, Command, CommandOutput, CurrencyCode, Decimal, Policy, Store, Uuid, WalletError,
    WalletService,
};
use wallet::pg::{BatchConfig, BatchStats, PgConfig, PgStore};

/// Wallets of the `spread` workload.
const SPREAD_WALLETS: usize = 10_000;
/// Wallets of the `mixed` workload.
const MIXED_WALLETS: usize = 1_000;
/// Wallets of the `transfer-hot` workload: money goes back and forth.
const TRANSFER_HOT_WALLETS: usize = 2;
/// The most clients accepted.
const CLIENTS_MAX: usize = 1024;
/// The longest run accepted, in seconds.
const SECONDS_MAX: u64 = 3600;
/// Tasks creating wallets at once during setup.
const SETUP_TASKS: usize = 32;
/// The warm-up before each measurement, not counted.
const WARMUP: Duration = Duration::from_secs(1);
/// The most batching writers accepted.
const WRITERS_MAX: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Spread,
    Hot,
    Mixed,
    HotDeposit,
    TransferSpread,
    TransferHot,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Spread => "spread",
            Workload::Hot => "hot",
            Workload::Mixed => "mixed",
            Workload::HotDeposit => "hot-deposit",
            Workload::TransferSpread => "transfer-spread",
            Workload::TransferHot => "transfer-hot",
        }
    }
}

/// The store's write path under measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WritePath {
    /// One transaction per command.
    Single,
    /// The batching writer.
    Batched,
    /// The batching writer keeping no wallets between batches
    /// (`cached_wallets = 0`): every batch locks and loads.
    BatchedUnkept,
}

impl WritePath {
    fn name(self) -> &'static str {
        match self {
            WritePath::Single => "single",
            WritePath::Batched => "batched",
            WritePath::BatchedUnkept => "batched-unkept",
        }
    }
}

struct Options {
    database_url: String,
    workloads: Vec<Workload>,
    paths: Vec<WritePath>,
    clients: usize,
    seconds: u64,
    json: bool,
    reference_tps: Option<f64>,
    max_connections: u32,
    writers: usize,
    max_batch: usize,
    cached_wallets: usize,
    test_before_acquire: bool,
}

fn usage() -> &'static str {
    "usage: loadgen [--database-url URL] [--workload spread|hot|mixed|all|hot-deposit|transfer-spread|transfer-hot] \
     [--path single|batched|batched-unkept|both|all] [--clients N] [--seconds S] [--json] [--reference-tps TPS] \
     [--max-connections N] [--writers N] [--max-batch N] [--cached-wallets N] \
     [--test-before-acquire]"
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{flag} takes a number, not {text}"))
}

fn parse_options() -> Result<Options, String> {
    let defaults = BatchConfig::default();
    let mut options = Options {
        database_url: std::env::var("DATABASE_URL").unwrap_or_default(),
        workloads: vec![Workload::Spread, Workload::Hot, Workload::Mixed],
        paths: vec![WritePath::Single, WritePath::Batched],
        clients: 16,
        seconds: 10,
        json: false,
        reference_tps: None,
        max_connections: 0,
        writers: defaults.writers,
        max_batch: defaults.max_batch,
        cached_wallets: defaults.cached_wallets,
        test_before_acquire: false,
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
                    "hot-deposit" => vec![Workload::HotDeposit],
                    "transfer-spread" => vec![Workload::TransferSpread],
                    "transfer-hot" => vec![Workload::TransferHot],
                    "all" => vec![Workload::Spread, Workload::Hot, Workload::Mixed],
                    other => return Err(format!("unknown workload {other}\n{}", usage())),
                }
            }
            "--path" => {
                options.paths = match value()?.as_str() {
                    "single" => vec![WritePath::Single],
                    "batched" => vec![WritePath::Batched],
                    "batched-unkept" => vec![WritePath::BatchedUnkept],
                    "both" => vec![WritePath::Single, WritePath::Batched],
                    "all" => vec![
                        WritePath::Single,
                        WritePath::Batched,
                        WritePath::BatchedUnkept,
                    ],
                    other => return Err(format!("unknown path {other}\n{}", usage())),
                }
            }
            "--clients" => options.clients = number("--clients", &value()?)?,
            "--seconds" => options.seconds = number("--seconds", &value()?)?,
            "--reference-tps" => {
                let tps: f64 = number("--reference-tps", &value()?)?;
                options.reference_tps = (tps.is_finite() && tps > 0.0).then_some(tps);
            }
            "--max-connections" => {
                options.max_connections = number("--max-connections", &value()?)?
            }
            "--writers" => options.writers = number("--writers", &value()?)?,
            "--max-batch" => options.max_batch = number("--max-batch", &value()?)?,
            "--cached-wallets" => options.cached_wallets = number("--cached-wallets", &value()?)?,
            "--test-before-acquire" => options.test_before_acquire = true,
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
    if options.writers == 0 || options.writers > WRITERS_MAX {
        return Err(format!("--writers must be 1 to {WRITERS_MAX}"));
    }
    if options.max_connections == 0 {
        let clients = u32::try_from(options.clients).unwrap_or(u32::MAX);
        options.max_connections = clients.saturating_add(4).min(200);
    }
    Ok(options)
}

/// A tiny per-client random sequence (xorshift64*), so runs need no extra crate.
struct Random(u64);

impl Random {
    fn for_client(client: usize) -> Self {
        let salt = u64::try_from(client).unwrap_or(0).wrapping_add(1);
        Random(0x9e37_79b9_7f4a_7c15 ^ salt.wrapping_mul(0xbf58_476d_1ce4_e5b9))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` at least 1).
    fn below(&mut self, n: usize) -> usize {
        let n = u64::try_from(n.max(1)).unwrap_or(u64::MAX);
        usize::try_from(self.next() % n).unwrap_or(0)
    }
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

/// How a workload's wallets start.
#[derive(Clone, Copy)]
struct Setup {
    funded: bool,
    points: bool,
}

/// Makes one user's wallet (and account), funded as `setup` says.
async fn create_user<S: Store>(
    service: &WalletService<S>,
    codes: &Codes,
    setup: Setup,
) -> Result<Uuid, WalletError> {
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
    if setup.funded {
        let funding = [
            (codes.vnd, Decimal::from(1_000_000_000_000i64)),
            (codes.usd, Decimal::from(1_000_000_000i64)),
        ];
        for (currency, amount) in funding {
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
    if setup.points {
        service
            .execute(Command::CreatePointAccount { user_id }, None)
            .await?;
        let earn = Command::EarnPoints {
            user_id,
            points: 1_000_000_000,
            source: "load test funding".into(),
            description: None,
            expires_at: None,
            pending: false,
        };
        service.execute(earn, None).await?;
    }
    Ok(user_id)
}

/// Makes `count` users with [`SETUP_TASKS`] tasks at once.
async fn create_users<S: Store>(
    service: &WalletService<S>,
    count: usize,
    setup: Setup,
) -> Result<Vec<Uuid>, WalletError> {
    let tasks = SETUP_TASKS.min(count.max(1));
    let mut handles = Vec::with_capacity(tasks);
    for task in 0..tasks {
        let service = service.clone();
        let share = count / tasks + usize::from(task < count % tasks);
        handles.push(tokio::spawn(async move {
            let codes = codes()?;
            let mut users = Vec::with_capacity(share);
            for _ in 0..share {
                users.push(create_user(&service, &codes, setup).await?);
            }
            Ok::<_, WalletError>(users)
        }));
    }
    let mut users = Vec::with_capacity(count);
    for handle in handles {
        let made = handle
            .await
            .map_err(|e| WalletError::Internal(format!("a setup task failed: {e}")))??;
        users.extend(made);
    }
    Ok(users)
}

async fn setup_workload<S: Store>(
    service: &WalletService<S>,
    workload: Workload,
) -> Result<Vec<Uuid>, WalletError> {
    match workload {
        Workload::Spread => {
            let setup = Setup {
                funded: false,
                points: false,
            };
            create_users(service, SPREAD_WALLETS, setup).await
        }
        Workload::Hot | Workload::HotDeposit => {
            let setup = Setup {
                funded: true,
                points: false,
            };
            create_users(service, 1, setup).await
        }
        Workload::Mixed => {
            let setup = Setup {
                funded: true,
                points: true,
            };
            create_users(service, MIXED_WALLETS, setup).await
        }
        Workload::TransferSpread | Workload::TransferHot => {
            let setup = Setup {
                funded: true,
                points: false,
            };
            let count = if workload == Workload::TransferHot {
                TRANSFER_HOT_WALLETS
            } else {
                SPREAD_WALLETS
            };
            create_users(service, count, setup).await
        }
    }
}

/// What the clients did in the timed window.
#[derive(Default)]
struct Outcome {
    latencies_us: Vec<u32>,
    errors: u64,
    error_kinds: BTreeMap<&'static str, u64>,
}

impl Outcome {
    fn record(&mut self, started: Instant, result: &Result<Applied, WalletError>) {
        let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        self.latencies_us.push(micros);
        if let Err(error) = result {
            self.errors += 1;
            *self.error_kinds.entry(error.code()).or_default() += 1;
        }
    }

    fn merge(&mut self, other: Outcome) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        for (kind, count) in other.error_kinds {
            *self.error_kinds.entry(kind).or_default() += count;
        }
    }
}

/// Phases of a measurement, shared by the clients.
const WARMING_UP: u8 = 0;
const MEASURING: u8 = 1;
const STOPPED: u8 = 2;

/// One step of a client: one command, or a hold and its settlement.
async fn one_step<S: Store>(
    service: &WalletService<S>,
    workload: Workload,
    users: &[Uuid],
    random: &mut Random,
    codes: &Codes,
    phase: &AtomicU8,
    outcome: &mut Outcome,
) {
    let user_id = users[random.below(users.len())];
    let small = Decimal::from(1 + random.below(100) as i64);
    let choice = match workload {
        Workload::Spread | Workload::HotDeposit => 0,
        Workload::Hot => random.below(4),
        Workload::Mixed => random.below(8),
        Workload::TransferSpread | Workload::TransferHot => {
            let command = transfer(user_id, users, small, random, codes);
            let counted = phase.load(Ordering::Relaxed) == MEASURING;
            let started = Instant::now();
            let result = service.execute(command, None).await;
            if counted {
                outcome.record(started, &result);
            }
            return;
        }
    };
    let command = match choice {
        0 => Command::Deposit {
            user_id,
            amount: small,
            currency: codes.vnd,
            description: None,
            reference: None,
        },
        1 => Command::Withdraw {
            user_id,
            amount: small,
            currency: codes.vnd,
            description: None,
            reference: None,
        },
        2..=4 => Command::CreateHold {
            user_id,
            amount: small,
            currency: codes.vnd,
            reference_type: "order".into(),
            reference_id: Uuid::now_v7(),
            description: None,
            expires_at: None,
        },
        5 => Command::Exchange {
            user_id,
            amount: Decimal::new(1 + random.below(500) as i64, 2),
            from_currency: codes.usd,
            to_currency: codes.vnd,
        },
        6 => Command::EarnPoints {
            user_id,
            points: 10,
            source: "order".into(),
            description: None,
            expires_at: None,
            pending: false,
        },
        _ => Command::SpendPoints {
            user_id,
            points: 5,
            source: "checkout".into(),
            description: None,
        },
    };
    let counted = phase.load(Ordering::Relaxed) == MEASURING;
    let started = Instant::now();
    let result = service.execute(command, None).await;
    if counted {
        outcome.record(started, &result);
    }
    let Ok(Applied {
        output: CommandOutput::Hold { hold },
        ..
    }) = result
    else {
        return;
    };
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
            payees: None,
        }
    };
    let counted = phase.load(Ordering::Relaxed) == MEASURING;
    let started = Instant::now();
    let result = service.execute(settle, None).await;
    if counted {
        outcome.record(started, &result);
    }
}

/// A transfer of `amount` VND from `payer` to another of `users`, drawn
/// at random (with two users, the other one).
fn transfer(
    payer: Uuid,
    users: &[Uuid],
    amount: Decimal,
    random: &mut Random,
    codes: &Codes,
) -> Command {
    let mut payee = users[random.below(users.len())];
    if payee == payer {
        let at = users.iter().position(|u| *u == payer).unwrap_or(0);
        payee = users[(at + 1) % users.len()];
    }
    Command::Transfer {
        user_id: payer,
        to_user_id: payee,
        amount,
        currency: codes.vnd,
        description: None,
        reference: None,
    }
}

/// What one measurement gives.
struct Measured {
    outcome: Outcome,
    elapsed: Duration,
    /// The batches formed in the measured window (batched path only).
    batches: Option<BatchStats>,
    /// The CPU time the load generator (clients, service and store code
    /// alike) used in the measured window, in clock ticks.
    cpu_ticks: Option<u64>,
}

/// Runs the clients: a warm-up, then `seconds` measured.
async fn measure(
    service: &WalletService<PgStore>,
    workload: Workload,
    users: Arc<Vec<Uuid>>,
    options: &Options,
) -> Result<Measured, WalletError> {
    let phase = Arc::new(AtomicU8::new(WARMING_UP));
    let mut tasks = Vec::with_capacity(options.clients);
    for client in 0..options.clients {
        let service = service.clone();
        let users = Arc::clone(&users);
        let phase = Arc::clone(&phase);
        tasks.push(tokio::spawn(async move {
            let codes = codes()?;
            let mut random = Random::for_client(client);
            let mut outcome = Outcome {
                latencies_us: Vec::with_capacity(1 << 16),
                ..Outcome::default()
            };
            while phase.load(Ordering::Relaxed) != STOPPED {
                one_step(
                    &service,
                    workload,
                    &users,
                    &mut random,
                    &codes,
                    &phase,
                    &mut outcome,
                )
                .await;
            }
            Ok::<_, WalletError>(outcome)
        }));
    }
    tokio::time::sleep(WARMUP).await;
    phase.store(MEASURING, Ordering::Relaxed);
    let before = service.store().batch_stats();
    let cpu_before = process_cpu_ticks();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(options.seconds)).await;
    phase.store(STOPPED, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let cpu_ticks = process_cpu_ticks()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let after = service.store().batch_stats();
    let mut outcome = Outcome::default();
    for task in tasks {
        let done = task
            .await
            .map_err(|e| WalletError::Internal(format!("a client task failed: {e}")))??;
        outcome.merge(done);
    }
    let batches = match (before, after) {
        (Some(before), Some(after)) => Some(after.since(&before)),
        _ => None,
    };
    Ok(Measured {
        outcome,
        elapsed,
        batches,
        cpu_ticks,
    })
}

/// Clock ticks a second in `/proc/<pid>/stat` (Linux's `USER_HZ`).
const CLOCK_TICKS_PER_S: f64 = 100.0;

/// The CPU time this process has used (user and system, every thread), in
/// clock ticks, from `/proc/self/stat`; `None` where there is no such file.
fn process_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (which may hold spaces), from the
    // third: utime is the 14th field and stime the 15th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(user + system)
}

/// The mean milliseconds a command spent in each batching stage (the
/// figures the service's `wallet_batch_stage_seconds_total` gives).
fn stages_ms(stats: &BatchStats) -> serde_json::Map<String, serde_json::Value> {
    let commands = stats.commands.max(1) as f64;
    wallet::pg::batch::BATCH_STAGES
        .iter()
        .zip(stats.stage_nanos)
        .map(|(stage, nanos)| {
            let ms = (nanos as f64 / commands / 1e4).round() / 100.0;
            ((*stage).to_owned(), serde_json::json!(ms))
        })
        .collect()
}

fn percentile_ms(sorted_us: &[u32], fraction: f64) -> f64 {
    let Some(last) = sorted_us.len().checked_sub(1) else {
        return 0.0;
    };
    let index = ((last as f64) * fraction).round() as usize;
    f64::from(sorted_us[index.min(last)]) / 1000.0
}

/// One measured result, printed as a line of text or of JSON.
struct Report<'a> {
    workload: Workload,
    path: WritePath,
    options: &'a Options,
    outcome: Outcome,
    elapsed: Duration,
    batches: Option<BatchStats>,
    cpu_ticks: Option<u64>,
}

impl Report<'_> {
    fn print(mut self) {
        self.outcome.latencies_us.sort_unstable();
        let operations = self.outcome.latencies_us.len() as f64;
        let ops_per_s = operations / self.elapsed.as_secs_f64().max(f64::EPSILON);
        let p50 = percentile_ms(&self.outcome.latencies_us, 0.50);
        let p99 = percentile_ms(&self.outcome.latencies_us, 0.99);
        let reference = self.options.reference_tps;
        let ratio = reference.map(|r| ops_per_s / r);
        // The load generator's own CPU per operation, in microseconds (the
        // figure to set beside wallet-http's CPU per request).
        let cpu_us_per_op = self
            .cpu_ticks
            .filter(|_| operations > 0.0)
            .map(|ticks| (ticks as f64 / CLOCK_TICKS_PER_S * 1e6 / operations).round());
        let mean_batch = self
            .batches
            .filter(|b| b.batches > 0)
            .map(|b| b.commands as f64 / b.batches as f64);
        if self.options.json {
            let line = serde_json::json!({
                "workload": self.workload.name(),
                "path": self.path.name(),
                "clients": self.options.clients,
                "seconds": self.elapsed.as_secs_f64(),
                "ops_per_s": ops_per_s,
                "p50_ms": p50,
                "p99_ms": p99,
                "errors": self.outcome.errors,
                "reference_tps": reference,
                "ratio": ratio,
                "mean_batch": mean_batch,
                "largest_batch": self.batches.map(|b| b.largest),
                "kept_wallets": self.batches.map(|b| b.cached),
                "stale_batches": self.batches.map(|b| b.stale),
                "stages_ms": self.batches.map(|b| stages_ms(&b)),
                "cpu_us_per_op": cpu_us_per_op,
            });
            println!("{line}");
            return;
        }
        let reference = reference.map_or("-".to_string(), |r| format!("{r:.0}"));
        let ratio = ratio.map_or("-".to_string(), |r| format!("{r:.2}"));
        let batch = match (mean_batch, self.batches) {
            (Some(mean), Some(b)) => format!(
                " mean_batch={mean:.1} kept_wallets={} stale_batches={}",
                b.cached, b.stale
            ),
            _ => String::new(),
        };
        println!(
            "{:<7} {:<8} clients={:<4} seconds={:<5.1} ops/s={:<8.0} p50={:<7.2}ms \
             p99={:<8.2}ms errors={:<5} reference_tps={reference} ratio={ratio}{batch}",
            self.workload.name(),
            self.path.name(),
            self.options.clients,
            self.elapsed.as_secs_f64(),
            ops_per_s,
            p50,
            p99,
            self.outcome.errors,
        );
        for (kind, count) in &self.outcome.error_kinds {
            println!("        error {kind}: {count}");
        }
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

fn config(options: &Options, path: WritePath) -> PgConfig {
    let mut config = PgConfig::new(options.database_url.clone());
    config.max_connections = options.max_connections;
    config.test_before_acquire = options.test_before_acquire;
    config.application_name = format!("loadgen-{}", path.name());
    // The library batches by default: the single path turns it off.
    config.batching = (path != WritePath::Single).then(|| BatchConfig {
        writers: options.writers,
        max_batch: options.max_batch,
        cached_wallets: if path == WritePath::BatchedUnkept {
            0
        } else {
            options.cached_wallets
        },
        ..BatchConfig::default()
    });
    config
}

async fn run(options: Options) -> Result<(), WalletError> {
    let setup_store = PgStore::connect(&config(&options, WritePath::Single)).await?;
    setup_store.migrate().await?;
    let setup = WalletService::new(setup_store, Policy::default());
    for workload in &options.workloads {
        let started = Instant::now();
        let users = Arc::new(setup_workload(&setup, *workload).await?);
        if !options.json {
            eprintln!(
                "loadgen: {} wallets for {} made in {:.1}s",
                users.len(),
                workload.name(),
                started.elapsed().as_secs_f64()
            );
        }
        for path in &options.paths {
            let store = PgStore::connect(&config(&options, *path)).await?;
            let service = WalletService::new(store, Policy::default());
            let measured = measure(&service, *workload, Arc::clone(&users), &options).await?;
            service.store().close().await;
            Report {
                workload: *workload,
                path: *path,
                options: &options,
                outcome: measured.outcome,
                elapsed: measured.elapsed,
                batches: measured.batches,
                cpu_ticks: measured.cpu_ticks,
            }
            .print();
        }
    }
    setup.store().close().await;
    Ok(())
}
