//! A real read replica: a throwaway primary cluster and a streaming hot
//! standby of it (`pg_basebackup -R`), both of the test's own under
//! `target/` (never the shared server). The store's queries are served by
//! the standby and its commands by the primary: with the standby's replay
//! paused, a command's answer is current (and a command that depends on
//! the newest balance succeeds) while a read shows the older state, the
//! lag is measured and reported as lagging; after the replay resumes the
//! reads catch up and the lag goes back to zero. Run on both write paths.

use std::future::Future;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;
use wallet_core::testing::contract::{create_wallet, dec, deposit, withdraw};
use wallet_core::{CommandOutput, LedgerReader, Policy, WalletService};
use wallet_pg::testing::cluster::Cluster;
use wallet_pg::{BatchConfig, PgConfig, PgStore, ReplicaLag};

/// How long the standby may take to replay what the primary committed
/// before the test gives up (it takes milliseconds when not paused).
const CATCH_UP_MAX: Duration = Duration::from_secs(60);
/// The lag limit of the test's stores.
const LAG_LIMIT: Duration = Duration::from_millis(300);

/// Polls `probe` until it gives `Some`, or panics saying what never came.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + CATCH_UP_MAX;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {CATCH_UP_MAX:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn lag_of(store: &PgStore) -> ReplicaLag {
    store
        .replica_lag()
        .await
        .expect("the store has a replica")
        .expect("both servers answer")
}

/// Waits until the standby has replayed everything the primary wrote.
async fn caught_up(store: &PgStore) -> ReplicaLag {
    eventually("the standby catches up", || async {
        let lag = lag_of(store).await;
        (lag.bytes == Some(0)).then_some(lag)
    })
    .await
}

/// The VND balance of `user` as the read pool (the standby) sees it.
async fn read_balance(store: &PgStore, user: Uuid) -> Option<Decimal> {
    let wallet = store.wallet(user).await.expect("a read")?;
    Some(
        wallet
            .balances
            .iter()
            .find(|item| item.currency.as_str() == "VND")
            .map_or(Decimal::ZERO, |item| item.balance),
    )
}

fn balance_in(output: &CommandOutput) -> Decimal {
    match output {
        CommandOutput::Transaction { wallet, .. } => wallet.balances[0].balance,
        other => panic!("not a money movement: {other:?}"),
    }
}

async fn replay(standby: &mut PgConnection, function: &str) {
    sqlx::query(&format!("SELECT {function}()"))
        .execute(&mut *standby)
        .await
        .unwrap_or_else(|error| panic!("{function} on the standby: {error}"));
}

async fn queries_come_from_the_standby_and_commands_from_the_primary(
    primary: &Cluster,
    standby: &Cluster,
    batching: Option<BatchConfig>,
) {
    let mut config = PgConfig::new(primary.url());
    config.read_url = Some(standby.url());
    config.replica_lag_max = LAG_LIMIT;
    config.batching = batching;
    let store = PgStore::connect(&config).await.expect("connect");
    store.migrate().await.expect("migrate on the primary");
    let service = WalletService::new(store.clone(), Policy::default());
    let user = Uuid::now_v7();
    service
        .execute(create_wallet(user), None)
        .await
        .expect("create");
    service
        .execute(deposit(user, "10", "VND"), None)
        .await
        .expect("deposit");
    let lag = caught_up(&store).await;
    assert!(lag.standby, "the read database is the standby: {lag:?}");
    assert_eq!(lag.delay, Some(Duration::ZERO));
    assert!(!lag.lagging(), "{}", lag.describe());
    assert_eq!(read_balance(&store, user).await, Some(dec("10")));

    // The standby stops replaying: it still serves reads, of a state that
    // no longer advances.
    let mut control = PgConnection::connect(&standby.url())
        .await
        .expect("a connection to the standby");
    replay(&mut control, "pg_wal_replay_pause").await;
    eventually("the replay pauses", || async {
        let lag = lag_of(&store).await;
        lag.paused.then_some(())
    })
    .await;

    // Commands run on the primary: their answers are current, and a
    // withdrawal of the whole new balance (more than the standby shows)
    // succeeds.
    let deposited = service
        .execute(deposit(user, "5", "VND"), None)
        .await
        .expect("a deposit while the standby is paused");
    assert_eq!(balance_in(&deposited.output), dec("15"));
    let withdrawn = service
        .execute(withdraw(user, "15", "VND"), None)
        .await
        .expect("a withdrawal of the primary's balance");
    assert_eq!(balance_in(&withdrawn.output), dec("0"));

    // Queries run on the standby: they show the state before the pause.
    assert_eq!(read_balance(&store, user).await, Some(dec("10")));
    let history = service
        .transactions(user, Default::default(), Default::default())
        .await
        .expect("history");
    assert_eq!(history.items.len(), 1, "only the first deposit replayed");
    let unseen = Uuid::now_v7();
    service
        .execute(create_wallet(unseen), None)
        .await
        .expect("create another");
    assert_eq!(
        store.wallet(unseen).await,
        Ok(None),
        "a wallet created after the pause is not on the standby yet"
    );
    // The outbox is read from the primary: every event is there.
    let (events, _) = service.events(None, Some(100)).await.expect("events");
    let mine = events
        .iter()
        .filter(|event| event.event.user_id == user)
        .count();
    assert_eq!(mine, 4, "created, two deposits, a withdrawal");

    // The lag is measured: bytes behind, and a delay that keeps growing
    // past the limit while nothing is replayed.
    tokio::time::sleep(LAG_LIMIT * 2).await;
    let lag = lag_of(&store).await;
    assert!(lag.paused, "{lag:?}");
    assert!(lag.bytes.is_some_and(|bytes| bytes > 0), "{lag:?}");
    assert!(lag.delay.is_some_and(|delay| delay > LAG_LIMIT), "{lag:?}");
    assert!(lag.lagging(), "{}", lag.describe());

    // The replay resumes: the reads catch up and the lag is gone.
    replay(&mut control, "pg_wal_replay_resume").await;
    let lag = caught_up(&store).await;
    assert!(!lag.paused && !lag.lagging(), "{}", lag.describe());
    assert_eq!(read_balance(&store, user).await, Some(dec("0")));
    assert!(store.wallet(unseen).await.expect("read").is_some());
    let history = service
        .transactions(user, Default::default(), Default::default())
        .await
        .expect("history");
    assert_eq!(history.items.len(), 3);
    let _ = control.close().await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_streaming_standby_serves_the_queries_and_lags_while_its_replay_is_paused() {
    let (primary, standby) = Cluster::replicated("replica").await;
    for batching in [None, Some(BatchConfig::default())] {
        queries_come_from_the_standby_and_commands_from_the_primary(&primary, &standby, batching)
            .await;
    }
    // The standby goes first: dropped before the primary it follows.
    drop(standby);
    drop(primary);
}
