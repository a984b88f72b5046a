//! Faults: connections ended under the store, a command cut while it holds
//! its wallet's lock, and a real server restart in the middle of a load (on
//! a throwaway cluster of the test's own, never the shared one). Each test
//! runs twice: on the store with one transaction per command, and with the
//! batching writer on.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;
use wallet_core::command::apply_to_wallet;
use wallet_core::store::WalletMutation;
use wallet_core::testing::contract::{create_wallet, dec, deposit};
use wallet_core::{
    AggregateStore, Claim, Ctx, IdempotencyKey, Policy, Update, UuidV7Generator, Wallet,
    WalletError, WalletService,
};
use wallet_pg::testing::cluster::Cluster;
use wallet_pg::{PgConfig, PgStore};

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(text).expect("a valid key")
}

/// Which write path of the store a test runs on.
#[derive(Debug, Clone, Copy)]
enum Path {
    Unbatched,
    Batched,
}

async fn fresh_store_in(path: Path) -> (PgStore, wallet_pg::testing::ScratchDatabase) {
    match path {
        Path::Unbatched => wallet_pg::testing::fresh_store_in().await,
        Path::Batched => wallet_pg::testing::fresh_batched_store_in().await,
    }
}

/// Each test, on both write paths.
macro_rules! on_both_paths {
    ($($name:ident: $threads:literal),* $(,)?) => {
        mod unbatched {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = $threads)]
                async fn $name() {
                    super::$name(super::Path::Unbatched).await
                }
            )*
        }
        mod batched {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = $threads)]
                async fn $name() {
                    super::$name(super::Path::Batched).await
                }
            )*
        }
    };
}

on_both_paths!(
    the_pool_recovers_after_its_connections_are_ended: 2,
    a_command_cut_inside_its_transaction_is_not_applied_and_its_retry_is: 4,
    a_server_restart_in_the_middle_of_a_load_loses_and_doubles_nothing: 4,
);

async fn the_pool_recovers_after_its_connections_are_ended(path: Path) {
    let (store, database) = fresh_store_in(path).await;
    let service = WalletService::new(store, Policy::default());
    let user = Uuid::now_v7();
    service
        .execute(create_wallet(user), None)
        .await
        .expect("create");
    // Several connections in the pool, then all of them ended at once.
    let reads = (0..4).map(|_| service.wallet(user));
    for read in futures::future::join_all(reads).await {
        read.expect("read");
    }
    let ended = wallet_pg::testing::terminate_connections(&database.name).await;
    assert!(ended >= 1, "the store had connections to end");
    // The pool tests a connection before handing it out, so the very next
    // command gets a live one.
    service
        .execute(deposit(user, "5", "VND"), None)
        .await
        .expect("a command after the connections were ended");
    assert_eq!(
        service.wallet(user).await.expect("read").balances[0].balance,
        dec("5")
    );
    // And again, with commands in flight while the connections go.
    let writes = (0..8).map(|i| {
        let service = service.clone();
        tokio::spawn(async move {
            service
                .execute(deposit(user, "1", "VND"), Some(key(&format!("w{i}"))))
                .await
        })
    });
    let ended = wallet_pg::testing::terminate_connections(&database.name).await;
    let mut retries = Vec::new();
    for (i, write) in futures::future::join_all(writes)
        .await
        .into_iter()
        .enumerate()
    {
        match write.expect("a task finished") {
            Ok(_) => {}
            Err(WalletError::Unavailable(_)) => retries.push(i),
            Err(other) => panic!("a cut connection gave {other:?}"),
        }
    }
    for i in retries {
        service
            .execute(deposit(user, "1", "VND"), Some(key(&format!("w{i}"))))
            .await
            .expect("the retry with the key completes");
    }
    // Each keyed deposit happened exactly once, however it was cut.
    for i in 0..8 {
        let replay = service
            .execute(deposit(user, "1", "VND"), Some(key(&format!("w{i}"))))
            .await
            .expect("replay");
        assert!(replay.replayed);
    }
    assert_eq!(
        service.wallet(user).await.expect("read").balances[0].balance,
        dec("13"),
        "{ended} connections were ended"
    );
}

async fn a_command_cut_inside_its_transaction_is_not_applied_and_its_retry_is(path: Path) {
    let (store, database) = fresh_store_in(path).await;
    let store = Arc::new(store);
    let policy = Arc::new(Policy::default());
    let service = WalletService::with_parts(
        Arc::clone(&store),
        (*policy).clone(),
        Arc::new(wallet_core::SystemClock),
        Arc::new(UuidV7Generator::new()),
    );
    let user = Uuid::now_v7();
    service
        .execute(create_wallet(user), None)
        .await
        .expect("create");
    service
        .execute(deposit(user, "100", "USD"), None)
        .await
        .expect("deposit");
    let before = service.wallet(user).await.expect("read");
    let (events_before, _) = service.events(None, Some(1000)).await.expect("events");

    // A deposit whose mutation tells us it runs (its transaction is open
    // by then: on the single path it holds the wallet's row lock; a
    // batching writer that kept the wallet takes the lock in its write)
    // and waits until we have ended its connection.
    let command = deposit(user, "7", "USD");
    let (locked_tx, locked_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = std::sync::Mutex::new(go_rx);
    let ids = Arc::new(UuidV7Generator::new());
    let mutation: WalletMutation = {
        let command = command.clone();
        let policy = Arc::clone(&policy);
        Arc::new(move |wallet: &mut Wallet| {
            let _ = locked_tx.send(());
            // The mutation is synchronous: tell the runtime this worker
            // blocks, so the tasks queued on it move to another worker.
            tokio::task::block_in_place(|| {
                if let Ok(go) = go_rx.lock() {
                    let _ = go.recv_timeout(Duration::from_secs(30));
                }
            });
            let ctx = Ctx {
                now: wallet_core::context::truncate_to_micros(chrono::Utc::now()),
                ids: &*ids,
                policy: &policy,
                idempotency_key: Some("cut"),
            };
            apply_to_wallet(wallet, &command, &ctx)
        })
    };
    let claim = Claim {
        user_id: user,
        key: key("cut"),
        fingerprint: command.fingerprint(),
    };
    let cut = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let unit = Update {
                claim: Some(claim),
                ..Update::of(user, mutation)
            };
            store.update(unit).await
        })
    };
    tokio::task::spawn_blocking(move || locked_rx.recv_timeout(Duration::from_secs(30)))
        .await
        .expect("joined")
        .expect("the mutation ran");
    // The command's connection is the one of the scratch database with a
    // transaction open and waiting for its client (the mutation).
    let mut admin = PgConnection::connect(&wallet_pg::testing::server_url())
        .await
        .expect("an admin connection");
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND state = 'idle in transaction'",
    )
    .bind(&database.name)
    .fetch_all(&mut admin)
    .await
    .expect("terminate");
    assert_eq!(
        ended,
        vec![true],
        "exactly the command's connection was ended"
    );
    go_tx.send(()).expect("the mutation waits");
    let result = cut.await.expect("joined");
    assert!(
        matches!(result, Err(WalletError::Unavailable(_))),
        "a cut command reports the store unavailable, got {result:?}"
    );

    // Nothing of it was applied: no balance, no transaction, no event, no key.
    assert_eq!(service.wallet(user).await.expect("read"), before);
    let (events_after, _) = service.events(None, Some(1000)).await.expect("events");
    assert_eq!(events_after, events_before);
    // Its retry with the same key takes effect exactly once.
    let retried = service
        .execute(command.clone(), Some(key("cut")))
        .await
        .expect("the retry");
    assert!(!retried.replayed);
    let again = service
        .execute(command, Some(key("cut")))
        .await
        .expect("the replay");
    assert!(again.replayed);
    assert_eq!(again.output, retried.output);
    let after = service.wallet(user).await.expect("read");
    assert_eq!(after.balances[0].balance, dec("107"));
}

async fn a_server_restart_in_the_middle_of_a_load_loses_and_doubles_nothing(path: Path) {
    const COMMANDS: usize = 60;
    let cluster = Arc::new(
        tokio::task::spawn_blocking(|| Cluster::primary("restart"))
            .await
            .expect("the cluster started"),
    );
    let mut config = PgConfig::new(cluster.url());
    config.max_connections = 4;
    config.acquire_timeout = Duration::from_secs(2);
    config.batching = match path {
        Path::Unbatched => None,
        Path::Batched => Some(wallet_pg::BatchConfig::default()),
    };
    let store = PgStore::connect(&config).await.expect("connect");
    store.migrate().await.expect("migrate");
    let service = WalletService::new(store, Policy::default());
    let user = Uuid::now_v7();
    service
        .execute(create_wallet(user), None)
        .await
        .expect("create");
    let started_at = || async {
        sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>("SELECT pg_postmaster_start_time()")
            .fetch_one(service.store().pool())
            .await
            .expect("the server's start time")
    };
    let first_start = started_at().await;

    // A load of keyed deposits; the server restarts a third of the way in.
    let load = {
        let service = service.clone();
        tokio::spawn(async move {
            let mut unavailable = Vec::new();
            for i in 0..COMMANDS {
                let result = service
                    .execute(deposit(user, "1", "VND"), Some(key(&format!("d{i}"))))
                    .await;
                match result {
                    Ok(_) => {}
                    Err(WalletError::Unavailable(_)) => unavailable.push(i),
                    Err(other) => panic!("a restart gave {other:?}"),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            unavailable
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let restarting = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || restarting.restart())
        .await
        .expect("the cluster restarted");
    let unavailable = load.await.expect("the load finished");
    eprintln!(
        "restart: {} of {COMMANDS} commands were cut and are retried",
        unavailable.len()
    );

    // Every command the restart cut is retried with its key until it
    // completes; the ones that had committed replay.
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in &unavailable {
        loop {
            match service
                .execute(deposit(user, "1", "VND"), Some(key(&format!("d{i}"))))
                .await
            {
                Ok(_) => break,
                Err(WalletError::Unavailable(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(other) => panic!("the retry of d{i} gave {other:?}"),
            }
        }
    }
    assert!(started_at().await > first_start, "the server did restart");
    let wallet = service.wallet(user).await.expect("read after the restart");
    assert_eq!(
        wallet.balances[0].balance,
        Decimal::from(COMMANDS as i64),
        "every deposit exactly once ({} were cut)",
        unavailable.len()
    );
    let (events, _) = service.events(None, Some(1000)).await.expect("events");
    assert_eq!(events.len(), 1 + COMMANDS);
    service.store().close().await;
}
