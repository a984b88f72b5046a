//! The one test harness for PostgreSQL tests, in this crate and the others.
//!
//! [`fresh_store`] reads `DATABASE_URL` (a server where the user may create
//! databases), creates a scratch database named `wallet_test_<unix
//! seconds>_<random>`, migrates it and returns a store connected to it.
//! Without `DATABASE_URL`, or when the server does not answer, it panics
//! with a message that says how to provide one: tests that need PostgreSQL
//! fail loudly, they never skip. Scratch databases older than a day (left
//! by earlier runs) are dropped on a best-effort basis when older than two
//! hours and no longer in use.
//!
//! [`cluster`] starts PostgreSQL clusters of a test's own (a primary, a
//! streaming standby of it) for tests that stop, restart or replicate a
//! server.

pub mod cluster;

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::{BatchConfig, PgConfig, PgStore};

/// The prefix of scratch database names.
pub const SCRATCH_PREFIX: &str = "wallet_test_";
/// Scratch databases older than this are dropped by later runs (no test
/// run lasts this long; one that is still connected is left alone).
const SCRATCH_AGE_MAX_SECONDS: u64 = 2 * 60 * 60;
/// Connections per pool of a test store: tests run many stores at once.
pub const TEST_MAX_CONNECTIONS: u32 = 8;

const HOW_TO: &str = "set DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres, \
     a user that may create databases) or run scripts/test.sh, which starts PostgreSQL";

/// `DATABASE_URL`, or a panic that says how to provide it.
pub fn server_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!("DATABASE_URL is not set: {HOW_TO}"),
    }
}

/// A scratch database, migrated.
#[derive(Debug, Clone)]
pub struct ScratchDatabase {
    /// The database's name.
    pub name: String,
    /// A URL that connects to it (the server's URL with its name).
    pub url: String,
}

/// `url` with its database name replaced by `name`.
pub fn url_with_database(url: &str, name: &str) -> String {
    // postgres://user@host:port/dbname?params
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{}", &base[..path_start], name);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

async fn admin_connection(url: &str) -> PgConnection {
    match PgConnection::connect(url).await {
        Ok(conn) => conn,
        Err(error) => {
            panic!("the PostgreSQL server at DATABASE_URL does not answer ({error}): {HOW_TO}")
        }
    }
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Drops scratch databases whose name says they are older than a day.
async fn drop_stale_databases(admin: &mut PgConnection) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'wallet\\_test\\_%'",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap_or_default();
    let now = unix_seconds();
    for name in names {
        let created = name
            .strip_prefix(SCRATCH_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|seconds| seconds.parse::<u64>().ok());
        if created.is_some_and(|at| now.saturating_sub(at) > SCRATCH_AGE_MAX_SECONDS) {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\""))
                .execute(&mut *admin)
                .await;
        }
    }
}

/// Creates and migrates a scratch database on the `DATABASE_URL` server.
pub async fn fresh_database() -> ScratchDatabase {
    let mut admin = admin_connection(&server_url()).await;
    drop_stale_databases(&mut admin).await;
    let _ = admin.close().await;
    let ScratchDatabase { name, url } = empty_database().await;
    let store = connect_to(&url).await;
    store
        .migrate()
        .await
        .unwrap_or_else(|error| panic!("cannot migrate the scratch database {name}: {error}"));
    store.close().await;
    ScratchDatabase { name, url }
}

/// The test configuration of a store on `url`, with batching off: each
/// command a batch of one in the caller's task, so that the suites run on
/// both settings ([`batched_test_config`] turns it on).
pub fn test_config(url: &str) -> PgConfig {
    let mut config = PgConfig::new(url);
    config.max_connections = TEST_MAX_CONNECTIONS;
    config.acquire_timeout = Duration::from_secs(30);
    config.batching = None;
    config
}

/// The test configuration with the batching writer on: two writers, so
/// that tests see users spread over writers as well as sharing one.
pub fn batched_test_config(url: &str) -> PgConfig {
    let mut config = test_config(url);
    config.batching = Some(BatchConfig {
        writers: TEST_BATCH_WRITERS,
        ..BatchConfig::default()
    });
    config
}

/// Writers of a batched test store.
pub const TEST_BATCH_WRITERS: usize = 2;

async fn connect_with(config: &PgConfig) -> PgStore {
    PgStore::connect(config).await.unwrap_or_else(|error| {
        panic!(
            "cannot connect to {}: {error}; {HOW_TO}",
            config.database_url
        )
    })
}

async fn connect_to(url: &str) -> PgStore {
    connect_with(&test_config(url)).await
}

/// A store on a new, migrated scratch database. Panics (never skips) when
/// there is no server: see the module docs.
pub async fn fresh_store() -> PgStore {
    fresh_store_with_url().await.0
}

/// A store on a new, migrated scratch database, with the batching writer
/// on ([`batched_test_config`]): the suites that run against
/// [`fresh_store`] run against this too.
pub async fn fresh_batched_store() -> PgStore {
    fresh_batched_store_in().await.0
}

/// [`fresh_batched_store`], with the scratch database's name and URL.
pub async fn fresh_batched_store_in() -> (PgStore, ScratchDatabase) {
    let database = fresh_database().await;
    let store = connect_with(&batched_test_config(&database.url)).await;
    (store, database)
}

/// A store on a new scratch database with `config` (its URL replaced by
/// the scratch database's), for tests that tune the pool or the batching.
pub async fn fresh_store_with(mut config: PgConfig) -> (PgStore, ScratchDatabase) {
    let database = fresh_database().await;
    config.database_url = database.url.clone();
    let store = connect_with(&config).await;
    (store, database)
}

/// [`fresh_store`], with the scratch database's URL for tests that need
/// their own connections to it.
pub async fn fresh_store_with_url() -> (PgStore, String) {
    let database = fresh_database().await;
    let store = connect_to(&database.url).await;
    (store, database.url)
}

/// [`fresh_store`], with the scratch database's name and URL.
pub async fn fresh_store_in() -> (PgStore, ScratchDatabase) {
    let database = fresh_database().await;
    let store = connect_to(&database.url).await;
    (store, database)
}

/// Ends every connection to the database `name` but the caller's (as an
/// operator's `pg_terminate_backend` would), from a separate connection to
/// the `DATABASE_URL` server. Returns how many were ended. For fault tests.
pub async fn terminate_connections(name: &str) -> u64 {
    let mut admin = admin_connection(&server_url()).await;
    let ended: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()) ended",
    )
    .bind(name)
    .fetch_one(&mut admin)
    .await
    .unwrap_or_else(|error| panic!("cannot end the connections to {name}: {error}"));
    let _ = admin.close().await;
    u64::try_from(ended).unwrap_or(0)
}

/// Creates an empty scratch database (not migrated) and returns it.
pub async fn empty_database() -> ScratchDatabase {
    let server = server_url();
    let mut admin = admin_connection(&server).await;
    let name = format!(
        "{SCRATCH_PREFIX}{}_{}",
        unix_seconds(),
        Uuid::new_v4().simple()
    );
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|error| panic!("cannot create the scratch database {name}: {error}"));
    let _ = admin.close().await;
    let url = url_with_database(&server, &name);
    ScratchDatabase { name, url }
}

/// Drops a scratch database (best effort: the connections to it are ended).
pub async fn drop_database(name: &str) {
    let mut admin = admin_connection(&server_url()).await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await;
}

#[cfg(test)]
mod tests {
    use super::url_with_database;

    #[test]
    fn database_names_are_replaced_in_urls() {
        assert_eq!(
            url_with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            url_with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(url_with_database("postgres://h:1", "x"), "postgres://h:1/x");
    }
}
