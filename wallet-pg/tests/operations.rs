//! Operations: the read replica option, idempotency record retention, and
//! the errors of an unreachable or misconfigured server.

use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;
use wallet_core::testing::contract::{create_wallet, deposit};
use wallet_core::{
    IdempotencyKey, IdempotencyStore, LedgerReader, Policy, WalletError, WalletService,
};
use wallet_pg::{PgConfig, PgStore};

#[tokio::test]
async fn queries_go_to_the_replica_and_commands_to_the_primary() {
    let primary = wallet_pg::testing::fresh_database().await;
    // A stand-in replica: another database with the schema, which never
    // receives the primary's writes, so any read served from it shows it.
    let replica = wallet_pg::testing::fresh_database().await;
    let mut config = PgConfig::new(primary.url.clone());
    config.read_url = Some(replica.url.clone());
    let store = PgStore::connect(&config).await.expect("connect");
    let service = WalletService::new(store.clone(), Policy::default());
    let user = Uuid::now_v7();
    service
        .execute(create_wallet(user), None)
        .await
        .expect("create");
    service
        .execute(deposit(user, "1", "VND"), None)
        .await
        .expect("a command sees the primary's wallet");
    assert_eq!(
        store.wallet(user).await,
        Ok(None),
        "reads come from the replica"
    );
    let (events, _) = service.events(None, Some(10)).await.expect("events");
    assert_eq!(events.len(), 2, "the outbox is read from the primary");
    // A database of its own is no standby: it never follows the primary,
    // and its lag says so.
    let lag = store
        .replica_lag()
        .await
        .expect("a replica is configured")
        .expect("both answer");
    assert!(!lag.standby && lag.lagging(), "{lag:?}");
    assert!(lag.describe().contains("not a standby"));
    store.close().await;
    wallet_pg::testing::drop_database(&primary.name).await;
    wallet_pg::testing::drop_database(&replica.name).await;
}

#[tokio::test]
async fn purged_keys_are_forgotten_and_kept_ones_replay() {
    let store = wallet_pg::testing::fresh_store().await;
    assert!(
        store.replica_lag().await.is_none(),
        "no replica, no lag to measure"
    );
    let service = WalletService::new(store.clone(), Policy::default());
    let user = Uuid::now_v7();
    let key = |k: &str| Some(IdempotencyKey::parse(k).expect("key"));
    service
        .execute(create_wallet(user), key("a"))
        .await
        .expect("create");
    service
        .execute(deposit(user, "1", "VND"), key("b"))
        .await
        .expect("deposit");
    assert_eq!(
        service.purge_idempotency_records().await.expect("purge"),
        0,
        "records younger than the retention stay"
    );
    let replay = service
        .execute(deposit(user, "1", "VND"), key("b"))
        .await
        .expect("replay");
    assert!(replay.replayed);
    let purged = store
        .purge_idempotency_records(Utc::now() + chrono::Duration::seconds(1))
        .await
        .expect("purge");
    assert_eq!(purged, 2);
    let again = service
        .execute(deposit(user, "1", "VND"), key("b"))
        .await
        .expect("a purged key is a new command");
    assert!(!again.replayed);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_a_bad_url_is_invalid() {
    let mut config = PgConfig::new("postgres://postgres@127.0.0.1:1/postgres");
    config.acquire_timeout = Duration::from_secs(2);
    match PgStore::connect(&config).await {
        Err(WalletError::Unavailable(_)) => {}
        other => panic!("expected unavailable, got {other:?}"),
    }
    match PgStore::connect(&PgConfig::new("not a url")).await {
        Err(WalletError::Validation(_)) => {}
        other => panic!("expected a validation error, got {other:?}"),
    }
    // The harness itself answers.
    let store = wallet_pg::testing::fresh_store().await;
    store.ping().await.expect("ping");
}
