//! # wallet-pg
//!
//! The store traits of `wallet-core` ([`AggregateStore`] for wallets and
//! point accounts, [`WalletStore`], [`LedgerReader`], hence
//! [`wallet_core::Store`]) over PostgreSQL, giving
//! exactly the results of the in-memory store.
//!
//! ```no_run
//! # async fn run() -> Result<(), wallet_core::WalletError> {
//! use wallet_core::{Policy, WalletService};
//! use wallet_pg::{PgConfig, PgStore};
//!
//! let store = PgStore::connect(&PgConfig::new("postgres://postgres@127.0.0.1:5432/wallet")).await?;
//! store.migrate().await?;
//! let service = WalletService::new(store, Policy::default());
//! # let _ = service;
//! # Ok(())
//! # }
//! ```
//!
//! ## Design, in short (the README has the long form)
//!
//! - **Schema**: plain numbered SQL files in `migrations/`, embedded and
//!   applied by [`PgStore::migrate`]. Money is `NUMERIC` (exact, keeping
//!   each currency's scale; `BIGINT` minor units cannot hold the 10^15-unit
//!   limit of a currency with more than 3 decimals), points `BIGINT`.
//!   Named `CHECK` constraints repeat the aggregate invariants, and a
//!   violated one comes back as the precise domain error.
//! - **One write path**: every change goes through the steps of the
//!   batching writer ([`batch`]), a lone command being a batch of one. The
//!   aggregates' rows are locked in user id order (`SELECT ... FOR
//!   UPDATE`, loading them in the same statement), the mutations run, and
//!   every change (the rows, items, holds or lots, transactions, outbox
//!   events, the idempotency records) is written in one statement
//!   (`write.rs`), then committed. Commands on one wallet are serialised
//!   by the row lock; commands on different wallets never wait for each
//!   other.
//! - **Batching** (on by default, [`PgConfig::batching`]): concurrent
//!   commands are applied by writer tasks, many in one transaction: each
//!   aggregate locked once, each command applied in order on a copy (a
//!   failing one fails alone), every row written in one statement, one
//!   commit, and every reply held until it. With batching off, each
//!   command runs as a batch of one in the caller's task.
//! - **Idempotency**: the record is looked up under the row lock and
//!   inserted with the changes; a concurrent unit of work with the same key
//!   waits on the row lock or on the record's unique index, then replays
//!   the committed record.
//! - **Outbox order**: events are inserted unnumbered and numbered by
//!   readers under an advisory lock (see [`outbox`]), so a reader following
//!   the sequence never misses one.
//! - **Read replica**: with [`PgConfig::read_url`], queries go to the
//!   replica; commands, the sweep candidates and the outbox use the primary.
//!   [`PgStore::replica_lag`] measures how far behind it is ([`replica`]).
//! - **Audit** ([`audit`]): every invariant the stored data can show,
//!   checked over the whole ledger on the primary in one read-only
//!   snapshot that no writer waits for.

mod aggregate;
pub mod audit;
pub mod batch;
pub mod codec;
pub mod error;
pub mod idempotency;
mod lock;
pub mod outbox;
pub mod points;
mod reader;
mod relay;
pub mod replica;
mod reversals;
mod stored;
#[cfg(feature = "testing")]
pub mod testing;
mod unit;
pub mod wallets;
mod write;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use uuid::Uuid;
use wallet_core::{
    AggregateStore, Applied, Create, Hold, HoldStatus, IdempotencyStore, LedgerReader, Page,
    PageRequest, PointAccountView, PointTransaction, SetUpdate, Statistics, StoredEvent,
    TransactionFilter, Update, WalletError, WalletItem, WalletStatus, WalletStore,
    WalletTransaction, WalletView,
};

use crate::batch::{run_alone, Batcher, Command, Counters, Work};
pub use crate::batch::{BatchConfig, BatchStats};
use crate::error::{map_error, map_migrate_error};
pub use crate::replica::{ReplicaLag, REPLICA_LAG_MAX_DEFAULT};
use crate::stored::Stored;

/// The default size of each connection pool.
pub const MAX_CONNECTIONS_DEFAULT: u32 = 10;
/// The default wait for a free connection before a command is `Unavailable`.
pub const ACQUIRE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// The default limit on one statement, so a stuck query cannot hold a
/// wallet's lock forever.
pub const STATEMENT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// Where the database is and how to use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgConfig {
    /// The primary: commands, sweeps and the outbox.
    pub database_url: String,
    /// An optional read replica for queries (wallets, histories, holds,
    /// points, listings, statistics). Replicas lag: a query may not yet
    /// show a command that just returned.
    pub read_url: Option<String>,
    /// The delay above which [`PgStore::replica_lag`] reports the replica
    /// as lagging ([`REPLICA_LAG_MAX_DEFAULT`]).
    pub replica_lag_max: Duration,
    /// Connections per pool.
    pub max_connections: u32,
    /// Connections each pool keeps open when idle.
    pub min_connections: u32,
    /// The wait for a free connection before an operation is `Unavailable`.
    pub acquire_timeout: Duration,
    /// The longest a statement may run (`statement_timeout`); `None` for
    /// the server's setting.
    pub statement_timeout: Option<Duration>,
    /// Idle connections above `min_connections` are closed after this long.
    pub idle_timeout: Option<Duration>,
    /// The `application_name` the connections report to the server.
    pub application_name: String,
    /// Whether the pool checks a connection (one round trip) before handing
    /// it out. On (the default), a connection the server dropped (restart,
    /// terminated backend) is replaced before a command sees it; off, such a
    /// command fails once with `Unavailable` and the next gets a fresh one.
    pub test_before_acquire: bool,
    /// Applies concurrent wallet and point commands in shared transactions
    /// (see [`batch`]); on by default, with [`BatchConfig::default`].
    /// `None` runs each command in a transaction of its own (a batch of
    /// one, through the same code) in the caller's task.
    pub batching: Option<BatchConfig>,
}

impl PgConfig {
    /// A configuration with the defaults and no replica.
    pub fn new(database_url: impl Into<String>) -> Self {
        PgConfig {
            database_url: database_url.into(),
            read_url: None,
            replica_lag_max: REPLICA_LAG_MAX_DEFAULT,
            max_connections: MAX_CONNECTIONS_DEFAULT,
            min_connections: 0,
            acquire_timeout: ACQUIRE_TIMEOUT_DEFAULT,
            statement_timeout: Some(STATEMENT_TIMEOUT_DEFAULT),
            idle_timeout: Some(Duration::from_secs(600)),
            application_name: "wallet-pg".to_owned(),
            test_before_acquire: true,
            batching: Some(BatchConfig::default()),
        }
    }

    fn pool_options(&self) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(self.max_connections.max(1))
            .min_connections(self.min_connections.min(self.max_connections))
            .acquire_timeout(self.acquire_timeout)
            .idle_timeout(self.idle_timeout)
            .test_before_acquire(self.test_before_acquire)
    }

    /// The batching writers' own pool on the primary: one connection per
    /// writer, opened when first needed. Its sessions use generic plans:
    /// the batch statements take arrays whose lengths change with every
    /// batch, so PostgreSQL would otherwise plan them afresh each time
    /// (measured: about 1 ms of a 3 ms batch), and their generic plans are
    /// the same index lookups.
    ///
    /// Also returns a count of the connections the pool has opened: the
    /// writers forget the wallets they keep when it moves (see
    /// [`batch`](crate::batch)).
    fn writer_pool(&self, batching: &BatchConfig) -> Result<(PgPool, Arc<AtomicU64>), WalletError> {
        let writers = u32::try_from(batching.writers)
            .map_err(|_| WalletError::Validation("batching: too many writers".into()))?;
        let options = self
            .connect_options(&self.database_url)?
            .options([("plan_cache_mode", "force_generic_plan")]);
        let connections = Arc::new(AtomicU64::new(0));
        let opened = Arc::clone(&connections);
        let pool = self
            .pool_options()
            .max_connections(writers)
            .min_connections(0)
            .after_connect(move |_conn, _meta| {
                opened.fetch_add(1, Ordering::SeqCst);
                Box::pin(async { Ok(()) })
            })
            .connect_lazy_with(options);
        Ok((pool, connections))
    }

    fn connect_options(&self, url: &str) -> Result<PgConnectOptions, WalletError> {
        let mut options: PgConnectOptions = url
            .parse()
            .map_err(|_| WalletError::Validation("the database URL does not parse".into()))?;
        options = options.application_name(&self.application_name);
        if let Some(timeout) = self.statement_timeout {
            let millis = timeout.as_millis().max(1).to_string();
            options = options.options([("statement_timeout", millis)]);
        }
        Ok(options)
    }
}

/// The PostgreSQL store. Cheap to clone: clones share the pools (and the
/// batching writers, when on).
#[derive(Clone, Debug)]
pub struct PgStore {
    primary: PgPool,
    replica: Option<PgPool>,
    /// [`PgConfig::replica_lag_max`].
    replica_lag_max: Duration,
    batcher: Option<Arc<Batcher>>,
    /// The counters the batch steps update when commands run as batches
    /// of one in the caller's task (batching off). Not reported:
    /// [`PgStore::batch_stats`] describes the writers, and there are none.
    alone: Arc<Counters>,
}

impl PgStore {
    /// Connects the pools (one connection each, at once, so that a wrong
    /// address fails here): `Unavailable` if the server does not answer,
    /// `Validation` if the URL (or the batching configuration) does not
    /// parse. With [`PgConfig::batching`], starts the writers on the
    /// current tokio runtime.
    pub async fn connect(config: &PgConfig) -> Result<Self, WalletError> {
        if let Some(batching) = &config.batching {
            batching.validate()?;
        }
        let primary = config
            .pool_options()
            .connect_with(config.connect_options(&config.database_url)?)
            .await
            .map_err(map_error)?;
        let replica = match &config.read_url {
            Some(url) => Some(
                config
                    .pool_options()
                    .connect_with(config.connect_options(url)?)
                    .await
                    .map_err(map_error)?,
            ),
            None => None,
        };
        let batcher = match &config.batching {
            Some(batching) => {
                let (pool, connections) = config.writer_pool(batching)?;
                Some(Arc::new(Batcher::start(pool, connections, batching)?))
            }
            None => None,
        };
        Ok(PgStore {
            primary,
            replica,
            replica_lag_max: config.replica_lag_max,
            batcher,
            alone: Arc::default(),
        })
    }

    /// A store over existing pools (the replica optional), one transaction
    /// per command (and [`REPLICA_LAG_MAX_DEFAULT`]).
    pub fn from_pools(primary: PgPool, replica: Option<PgPool>) -> Self {
        PgStore {
            primary,
            replica,
            replica_lag_max: REPLICA_LAG_MAX_DEFAULT,
            batcher: None,
            alone: Arc::default(),
        }
    }

    /// What the batching writers have done, when batching is on.
    pub fn batch_stats(&self) -> Option<BatchStats> {
        self.batcher.as_ref().map(|batcher| batcher.stats())
    }

    /// Runs a command on the one write path: through the writers when
    /// batching is on, else as a batch of one in the caller's task.
    async fn submit(&self, command: Command) -> Result<Applied, WalletError> {
        match &self.batcher {
            Some(batcher) => batcher.submit(command).await,
            None => run_alone(&self.primary, &command, &self.alone).await,
        }
    }

    /// Applies the migrations that are not applied yet. Idempotent, and
    /// safe to run from several processes at once (the migrator holds an
    /// advisory lock while it works).
    pub async fn migrate(&self) -> Result<(), WalletError> {
        MIGRATOR.run(&self.primary).await.map_err(map_migrate_error)
    }

    /// Audits the whole ledger on the primary in one snapshot, without
    /// blocking writers (see [`audit`](crate::audit)).
    pub async fn audit(&self) -> Result<audit::AuditReport, WalletError> {
        audit::audit(&self.primary).await
    }

    /// The primary pool (commands, sweeps, the outbox).
    pub fn pool(&self) -> &PgPool {
        &self.primary
    }

    /// The pool queries use: the replica when configured, else the primary.
    pub fn read_pool(&self) -> &PgPool {
        self.replica.as_ref().unwrap_or(&self.primary)
    }

    /// How far the read replica is behind the primary, measured now (one
    /// query on each; see [`replica`]); `None` without a replica.
    /// `Unavailable` when either does not answer.
    pub async fn replica_lag(&self) -> Option<Result<ReplicaLag, WalletError>> {
        let replica = self.replica.as_ref()?;
        Some(replica::measure(&self.primary, replica, self.replica_lag_max).await)
    }

    /// Closes the pools, waiting for connections in use to come back.
    pub async fn close(&self) {
        if let Some(batcher) = &self.batcher {
            batcher.close().await;
        }
        self.primary.close().await;
        if let Some(replica) = &self.replica {
            replica.close().await;
        }
    }
}

/// The embedded migrations of `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The retention itself is the core's policy: `WalletService::purge_idempotency_records`
/// computes the bound.
impl IdempotencyStore for PgStore {
    async fn purge_idempotency_records(
        &self,
        older_than: DateTime<Utc>,
    ) -> Result<u64, WalletError> {
        idempotency::purge(&self.primary, older_than).await
    }
}

/// One implementation for wallets and point accounts; what differs between
/// the two is in [`Stored`].
impl<A: Stored> AggregateStore<A> for PgStore {
    async fn create(&self, unit: Create<A>) -> Result<Applied, WalletError> {
        unit::create(&self.primary, unit).await
    }

    async fn update(&self, unit: Update<A>) -> Result<Applied, WalletError> {
        self.submit(A::command(unit)).await
    }

    /// Candidates come from the primary. Several sweepers may get the same
    /// user: each expiry runs in `update` under the aggregate's row lock,
    /// and the second finds nothing due and writes nothing.
    async fn users_with_overdue(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Uuid>, WalletError> {
        stored::users_with_overdue::<A>(&self.primary, now, limit).await
    }
}

impl WalletStore for PgStore {
    /// The unit of work is a command of its own on the one write path:
    /// with batching on it goes to the payer's writer (the claim's user, or
    /// the first of the set), whose batch locks every wallet of the set
    /// together with its others in one statement, in user id order. Every
    /// writer and every other process locks in that order, so units whose
    /// wallets belong to different writers wait for each other but never
    /// deadlock; and a writer's kept copy of a wallet the unit changed is
    /// found stale by the version check of its next write.
    async fn update_wallets(&self, unit: SetUpdate) -> Result<Applied, WalletError> {
        let SetUpdate {
            user_ids,
            hold_ids,
            transaction_ids,
            claim,
            mutation,
        } = unit;
        let lead = claim
            .as_ref()
            .map(|claim| claim.user_id)
            .or_else(|| user_ids.first().copied())
            .ok_or_else(|| WalletError::Internal("a unit of work over no wallets".into()))?;
        self.submit(Command {
            user_id: lead,
            claim,
            work: Work::Wallets {
                user_ids,
                hold_ids,
                transaction_ids,
                mutation,
            },
        })
        .await
    }

    /// From the primary, so that a reversal of a row just written finds it.
    async fn transaction_legs(
        &self,
        user_id: Uuid,
        transaction_id: Uuid,
    ) -> Result<Vec<WalletTransaction>, WalletError> {
        reversals::transaction_legs(&self.primary, user_id, transaction_id).await
    }
}

impl LedgerReader for PgStore {
    async fn wallet(&self, user_id: Uuid) -> Result<Option<WalletView>, WalletError> {
        reader::wallet(self.read_pool(), user_id).await
    }

    async fn transactions(
        &self,
        user_id: Uuid,
        filter: TransactionFilter,
        page: PageRequest,
    ) -> Result<Page<WalletTransaction>, WalletError> {
        reader::transactions(self.read_pool(), user_id, filter, page).await
    }

    async fn holds(
        &self,
        user_id: Uuid,
        status: Option<HoldStatus>,
        page: PageRequest,
    ) -> Result<Page<Hold>, WalletError> {
        reader::holds(self.read_pool(), user_id, status, page).await
    }

    async fn transaction(
        &self,
        user_id: Uuid,
        transaction_id: Uuid,
    ) -> Result<Option<WalletTransaction>, WalletError> {
        let wallet_id = reader::wallet_id(self.read_pool(), user_id).await?;
        reversals::transaction(self.read_pool(), wallet_id, transaction_id).await
    }

    async fn balances_at(
        &self,
        user_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Vec<WalletItem>, WalletError> {
        let wallet_id = reader::wallet_id(self.read_pool(), user_id).await?;
        reversals::balances_at(self.read_pool(), wallet_id, at).await
    }

    async fn hold(&self, user_id: Uuid, hold_id: Uuid) -> Result<Option<Hold>, WalletError> {
        reader::hold(self.read_pool(), user_id, hold_id).await
    }

    async fn point_account(&self, user_id: Uuid) -> Result<Option<PointAccountView>, WalletError> {
        reader::point_account(self.read_pool(), user_id).await
    }

    async fn point_transactions(
        &self,
        user_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<PointTransaction>, WalletError> {
        reader::point_transactions(self.read_pool(), user_id, page).await
    }

    async fn wallets(
        &self,
        status: Option<WalletStatus>,
        page: PageRequest,
    ) -> Result<Page<WalletView>, WalletError> {
        reader::wallets(self.read_pool(), status, page).await
    }

    async fn statistics(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Statistics, WalletError> {
        reader::statistics(self.read_pool(), from, to).await
    }

    /// Always from the primary: the sequencer writes (see [`outbox`]).
    async fn events(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>, WalletError> {
        outbox::read_events(&self.primary, after, limit).await
    }

    async fn ping(&self) -> Result<(), WalletError> {
        sqlx::query("SELECT 1")
            .execute(&self.primary)
            .await
            .map_err(map_error)?;
        Ok(())
    }
}
