//! The bank test: the real service under faults, checked afterwards for
//! every cent and every command.
//!
//! It starts a throwaway PostgreSQL cluster (`wallet_pg::testing::cluster`),
//! two `wallet-http` instances on one database of it (batching on, kept
//! wallets on), and a stand-in identity provider. Many clients send
//! deposits, withdrawals, exchanges, transfers, holds with partial
//! executions and payouts, releases, cancellations, reversals and point
//! commands, each with its own idempotency key, to either instance, and
//! retry each with its key until a definite answer. Meanwhile faults come on a
//! schedule, in turn: an instance killed with SIGKILL (and restarted), an
//! immediate stop and start of PostgreSQL, every backend terminated
//! (`pg_terminate_backend`), an instance paused with SIGSTOP and resumed
//! with SIGCONT. Then the checker (`checker.rs`) proves what the answers
//! imply against what the service and the database hold, replays
//! commands, reads the event feed and runs the ledger audit. It prints
//! its figures and `N passed, M failed`, and exits non-zero on a failure.
//!
//! `cargo test -p wallet-http --test bank` runs it for 60 seconds of load
//! (as `scripts/test.sh` does); `-- --seconds 600` runs it longer. Other
//! flags: `--clients N`, `--users N`, `--fault-every-ms N`, `--seed N`.

mod checker;
mod clients;
mod faults;
#[path = "../common/idp.rs"]
mod idp;
mod instances;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wallet_pg::testing::cluster::Cluster;

use crate::clients::{Clients, Tokens};
use crate::faults::Faults;
use crate::instances::Instance;

/// Seconds of load by default (the suite's bounded run).
const SECONDS_DEFAULT: u64 = 60;
/// Clients sending commands at once.
const CLIENTS_DEFAULT: usize = 16;
/// Users (each with a wallet and a point account) the money moves among.
const USERS_DEFAULT: usize = 24;
/// Time between two faults.
const FAULT_EVERY_DEFAULT: Duration = Duration::from_secs(4);
/// Service instances on the one database.
const INSTANCES: usize = 2;
/// The database of the run on the throwaway cluster.
const DATABASE: &str = "bank";

/// The run's settings, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub seconds: u64,
    pub clients: usize,
    pub users: usize,
    pub fault_every: Duration,
    pub seed: u64,
}

fn parse_options() -> Result<Option<Options>, String> {
    let mut options = Options {
        seconds: SECONDS_DEFAULT,
        clients: CLIENTS_DEFAULT,
        users: USERS_DEFAULT,
        fault_every: FAULT_EVERY_DEFAULT,
        seed: u64::from(std::process::id()) ^ clients::seed_from_clock(),
    };
    let mut filters = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--seconds" => options.seconds = number("--seconds")?.max(1),
            "--clients" => options.clients = number("--clients")?.clamp(1, 256) as usize,
            "--users" => options.users = number("--users")?.clamp(4, 10_000) as usize,
            "--fault-every-ms" => {
                options.fault_every = Duration::from_millis(number("--fault-every-ms")?.max(500))
            }
            "--seed" => options.seed = number("--seed")?,
            // What `cargo test` may pass to every test binary.
            "--nocapture" | "--quiet" | "-q" | "--show-output" => {}
            other if other.starts_with("--test-threads") || other.starts_with("--color") => {}
            other if other.starts_with('-') => return Err(format!("unknown flag {other}")),
            filter => filters.push(filter.to_owned()),
        }
    }
    // A name filter (`cargo test foo`) that does not name this test runs
    // nothing, as libtest does.
    if !filters.is_empty() && !filters.iter().any(|f| "bank".contains(f.as_str())) {
        return Ok(None);
    }
    Ok(Some(options))
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("bank: 0 passed, 0 failed (filtered out)");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("bank: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bank: cannot start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let passed = runtime.block_on(run(options));
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The whole run; true when every check passed.
async fn run(options: Options) -> bool {
    println!(
        "bank: {} s of load, {} clients, {} users, a fault every {} ms, seed {}",
        options.seconds,
        options.clients,
        options.users,
        options.fault_every.as_millis(),
        options.seed
    );
    let cluster = Arc::new(
        tokio::task::spawn_blocking(|| Cluster::primary("bank"))
            .await
            .expect("the cluster starts"),
    );
    instances::create_database(&cluster, DATABASE).await;
    let database_url = cluster.url_of(DATABASE);
    instances::migrate(&database_url).await;
    let idp = idp::Idp::start().await;
    let mut fleet = Vec::new();
    for index in 0..INSTANCES {
        let mut instance = Instance::new(index, &database_url, &idp.url, cluster.root());
        instance.start().await;
        fleet.push(instance);
    }
    let urls: Vec<String> = fleet.iter().map(|i| i.url.clone()).collect();
    let tokens = Tokens::new(&idp, options.seconds);
    let clients = Clients::new(urls.clone(), tokens.clone(), &options);
    clients.open_accounts().await;

    let started = Instant::now();
    let deadline = started + Duration::from_secs(options.seconds);
    let faults = Faults::start(
        Arc::clone(&cluster),
        fleet,
        DATABASE,
        options.fault_every,
        deadline,
    );
    let records = clients.run_until(deadline).await;
    let (fleet, fault_counts) = faults.stop().await;
    let load_time = started.elapsed();

    let context = checker::Context {
        urls,
        tokens,
        database_url,
        users: clients.users(),
        seed: options.seed,
    };
    let passed = checker::check(&context, &records, &fault_counts, load_time).await;
    if !passed {
        for instance in &fleet {
            instance.print_log_tail();
        }
    }
    for mut instance in fleet {
        instance.stop().await;
    }
    drop(idp);
    passed
}
