//! The migrations apply on an empty database, are idempotent on a migrated
//! one, and survive several processes migrating at once.

use wallet_pg::{PgConfig, PgStore};

const TABLES: &[&str] = &[
    "wallets",
    "wallet_items",
    "wallet_transactions",
    "holds",
    "point_accounts",
    "point_lots",
    "point_transactions",
    "idempotency_records",
    "outbox_events",
    "relay_positions",
    "wallet_transaction_reversals",
];

async fn tables(store: &PgStore) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(store.pool())
    .await
    .expect("list tables")
}

async fn applied(store: &PgStore) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(store.pool())
        .await
        .expect("count migrations")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_on_an_empty_database_concurrently_and_idempotently() {
    let database = wallet_pg::testing::empty_database().await;
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(
            PgStore::connect(&PgConfig::new(database.url.clone()))
                .await
                .expect("connect"),
        );
    }
    assert!(
        tables(&stores[0]).await.is_empty(),
        "the database starts empty"
    );

    // Three "processes" migrate at once: the migrator's advisory lock lets
    // one apply and the others find everything applied.
    let results = futures::future::join_all(stores.iter().map(|s| s.migrate())).await;
    for result in results {
        result.expect("a concurrent migrate succeeds");
    }
    let mut expected: Vec<String> = TABLES.iter().map(|t| t.to_string()).collect();
    expected.sort();
    assert_eq!(tables(&stores[0]).await, expected);
    let count = applied(&stores[0]).await;
    assert_eq!(count, wallet_pg::MIGRATOR.iter().count() as i64);

    // Again on the migrated database: nothing changes.
    stores[1].migrate().await.expect("migrate again");
    assert_eq!(applied(&stores[1]).await, count);
    assert_eq!(tables(&stores[1]).await, expected);
    for store in &stores {
        store.close().await;
    }
    wallet_pg::testing::drop_database(&database.name).await;
}

#[tokio::test]
async fn the_schema_names_its_constraints() {
    let store = wallet_pg::testing::fresh_store().await;
    let unnamed: Vec<String> = sqlx::query_scalar(
        "SELECT conname::text FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
         WHERE n.nspname = 'public' AND conname ~ '_check[0-9]*$'",
    )
    .fetch_all(store.pool())
    .await
    .expect("constraints");
    assert!(
        unnamed.is_empty(),
        "constraints without a chosen name: {unnamed:?}"
    );
}
