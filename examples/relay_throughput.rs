//! Throughput of the event relay (a benchmark, not a test): how fast it
//! drains a backlog from PostgreSQL into JetStream, and how far it lags
//! behind a spread deposit load.
//!
//! ```text
//! cargo run --release --features relay,postgres --example relay_throughput -- \
//!     [--events 20000] [--rounds 3] [--clients 16] [--seconds 10]
//! ```
//!
//! Each round uses a scratch database of its own on `DATABASE_URL` and a
//! `nats-server` of its own (a free port, its own store directory; never
//! the machine's server):
//! 1. *drain*: `--events` events are written first (wallets created and
//!    funded by `--clients` concurrent clients, not timed); then the relay
//!    starts, with the default batch of 1,000, and the time until its
//!    stored position reaches the last event gives events/s (connecting
//!    and creating the stream included);
//! 2. *spread*: with the relay running and drained, `--clients` clients
//!    deposit into random wallets for `--seconds`; the lag (events in the
//!    outbox past the position) is sampled every 100 ms.
//!
//! It prints every round and the medians; the target is 5,000 events/s
//! draining, and a lag that stays bounded under the spread load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wallet::core::{
    Command, CurrencyCode, Decimal, LedgerReader, Policy, RelayName, RelayStore, Uuid,
    WalletService,
};
use wallet::pg::PgStore;
use wallet::relay::nats::testing::NatsServer;
use wallet::relay::nats::{NatsConfig, NatsSink, STREAM_DEFAULT};
use wallet::relay::{start_on_system_clock, RelayConfig};

/// Events each wallet contributes to the backlog: its creation and nine
/// deposits.
const EVENTS_PER_WALLET: u64 = 10;
/// The drain target of the targets document, in events per second.
const DRAIN_TARGET_PER_SECOND: f64 = 5_000.0;
/// How often the lag is sampled.
const LAG_SAMPLE: Duration = Duration::from_millis(100);
/// The longest a drain may take before the round fails.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);
/// The most rounds, clients, seconds and events accepted.
const ROUNDS_MAX: usize = 20;
const CLIENTS_MAX: usize = 256;
const SECONDS_MAX: u64 = 600;
const EVENTS_MAX: u64 = 1_000_000;

struct Options {
    events: u64,
    rounds: usize,
    clients: usize,
    seconds: u64,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        events: 20_000,
        rounds: 3,
        clients: 16,
        seconds: 10,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value: u64 = args
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or(format!("{flag} needs a number"))?;
        match flag.as_str() {
            "--events" if (EVENTS_PER_WALLET..=EVENTS_MAX).contains(&value) => {
                options.events = value
            }
            "--rounds" if (1..=ROUNDS_MAX as u64).contains(&value) => {
                options.rounds = value as usize
            }
            "--clients" if (1..=CLIENTS_MAX as u64).contains(&value) => {
                options.clients = value as usize
            }
            "--seconds" if (1..=SECONDS_MAX).contains(&value) => options.seconds = value,
            other => {
                return Err(format!(
                    "unknown flag or value out of range: {other} {value}"
                ))
            }
        }
    }
    Ok(options)
}

fn usd() -> CurrencyCode {
    CurrencyCode::parse("USD").unwrap_or_else(|_| unreachable!("USD is a currency"))
}

fn deposit(user_id: Uuid) -> Command {
    Command::Deposit {
        user_id,
        amount: Decimal::new(100, 2),
        currency: usd(),
        description: None,
        reference: None,
    }
}

/// Creates `wallets` wallets with nine deposits each, `clients` at a time.
async fn backlog(service: &WalletService<PgStore>, wallets: u64, clients: usize) -> Vec<Uuid> {
    let users: Vec<Uuid> = (0..wallets).map(|_| Uuid::now_v7()).collect();
    let chunks: Vec<Vec<Uuid>> = users
        .chunks(users.len().div_ceil(clients))
        .map(<[Uuid]>::to_vec)
        .collect();
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let service = service.clone();
            tokio::spawn(async move {
                for user_id in chunk {
                    let create = Command::CreateWallet {
                        user_id,
                        default_currency: None,
                    };
                    service
                        .execute(create, None)
                        .await
                        .expect("create a wallet");
                    for _ in 1..EVENTS_PER_WALLET {
                        service
                            .execute(deposit(user_id), None)
                            .await
                            .expect("deposit");
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a backlog client");
    }
    users
}

/// The last sequence of the outbox.
async fn last_sequence(store: &PgStore) -> u64 {
    let mut after = 0;
    loop {
        let events = store.events(after, 10_000).await.expect("read the outbox");
        match events.last() {
            Some(event) => after = event.sequence,
            None => return after,
        }
    }
}

/// Deposits into random wallets with `clients` clients for `seconds`,
/// sampling the lag; returns (deposits, lag samples).
async fn spread(
    service: &WalletService<PgStore>,
    users: Arc<Vec<Uuid>>,
    clients: usize,
    seconds: u64,
    relay: &RelayName,
) -> (u64, Vec<u64>) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let done = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let (service, users, done) = (service.clone(), Arc::clone(&users), Arc::clone(&done));
            tokio::spawn(async move {
                let mut index = client;
                while Instant::now() < deadline {
                    index = (index * 7919 + 104_729) % users.len();
                    service
                        .execute(deposit(users[index]), None)
                        .await
                        .expect("deposit");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut lags = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(LAG_SAMPLE).await;
        lags.push(service.store().relay_lag(relay).await.expect("lag"));
    }
    for task in tasks {
        task.await.expect("a spread client");
    }
    (done.load(Ordering::Relaxed), lags)
}

struct Round {
    drain_per_second: f64,
    spread_per_second: f64,
    lag_p50: u64,
    lag_p99: u64,
    lag_max: u64,
}

async fn round(options: &Options) -> Round {
    let (store, database) = wallet::pg::testing::fresh_store_in().await;
    let service = WalletService::new(store, Policy::default());
    let wallets = options.events / EVENTS_PER_WALLET;
    let users = Arc::new(backlog(&service, wallets, options.clients).await);
    let last = last_sequence(service.store()).await;
    let server = NatsServer::start().await;
    let name = RelayName::parse(STREAM_DEFAULT).expect("stream name");
    let sink = NatsSink::new(NatsConfig::new(server.url()));
    let started = Instant::now();
    let relay = start_on_system_clock(
        Arc::clone(service.store()),
        sink,
        RelayConfig::new(name.clone()),
    )
    .expect("start the relay");
    while service
        .store()
        .relay_state(&name)
        .await
        .expect("state")
        .position
        < last
    {
        assert!(started.elapsed() < DRAIN_TIMEOUT, "the drain took too long");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drained = started.elapsed();
    let (deposits, mut lags) =
        spread(&service, users, options.clients, options.seconds, &name).await;
    relay.stop().await;
    service.store().close().await;
    wallet::pg::testing::drop_database(&database.name).await;
    lags.sort_unstable();
    let at = |q: f64| {
        lags.get(((lags.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    Round {
        drain_per_second: last as f64 / drained.as_secs_f64(),
        spread_per_second: deposits as f64 / options.seconds as f64,
        lag_p50: at(0.5),
        lag_p99: at(0.99),
        lag_max: lags.last().copied().unwrap_or(0),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

#[tokio::main]
async fn main() {
    let options = match options() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("relay_throughput: {error}");
            std::process::exit(2);
        }
    };
    println!(
        "relay drain: {} events backlog, batch 1000; spread: {} clients depositing for {} s",
        options.events, options.clients, options.seconds
    );
    let mut rounds = Vec::new();
    for index in 1..=options.rounds {
        let round = round(&options).await;
        println!(
            "round {index}: drain {:.0} events/s ({:.2} x the 5,000 target); spread {:.0} deposits/s, lag p50 {} p99 {} max {} events",
            round.drain_per_second,
            round.drain_per_second / DRAIN_TARGET_PER_SECOND,
            round.spread_per_second,
            round.lag_p50,
            round.lag_p99,
            round.lag_max
        );
        rounds.push(round);
    }
    let drain = median(rounds.iter().map(|r| r.drain_per_second).collect());
    let spread = median(rounds.iter().map(|r| r.spread_per_second).collect());
    let lag_max = rounds.iter().map(|r| r.lag_max).max().unwrap_or(0);
    println!(
        "median: drain {drain:.0} events/s ({:.2} x target); spread {spread:.0} deposits/s; worst lag {lag_max} events",
        drain / DRAIN_TARGET_PER_SECOND
    );
}
