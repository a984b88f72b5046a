//! The batching writer: concurrent commands applied in one database
//! transaction.
//!
//! One transaction per command is capped by what a commit costs and, on a
//! hot wallet, by the row lock: every command waits for the one before it
//! to commit. With [`PgConfig::batching`](crate::PgConfig::batching) on,
//! [`PgStore`]'s `update_wallet` and `update_point_account`
//! hand their unit of work to a writer task instead, which applies many of
//! them in one transaction:
//!
//! 1. **Natural batching.** A writer takes every command that queued while
//!    its previous batch was committing, up to [`BatchConfig::max_batch`]. A
//!    lone command is applied at once; under load, batches grow by
//!    themselves. Nothing waits for a timer.
//! 2. **Partitions.** Users are spread over [`BatchConfig::writers`] writers
//!    by a hash of the user id, so one user's wallet and point account
//!    always go to the same writer (in the order their commands arrived)
//!    and two writers never contend on a row.
//! 3. **One lock per aggregate.** The batch locks all its wallets in one
//!    statement and all its point accounts in another, in user id order (so
//!    that writers of other processes locking overlapping sets cannot
//!    deadlock), loads them in the same statements, and loads the
//!    idempotency records of every key the batch names in one more. (A
//!    batch on one kept wallet skips the wallet's: see 6.)
//! 4. **Each command on its own.** Commands are applied in arrival order,
//!    each on a copy of its aggregate: one that fails leaves nothing behind
//!    and fails alone; one that succeeds becomes the aggregate the next
//!    command sees. Each still bumps the version by one and its events
//!    carry that version. A key already used earlier in the batch replays
//!    that command's result (or is `idempotency_key_reused`), exactly as a
//!    stored record would.
//! 5. **One write, one commit.** Every aggregate the batch changed (and a
//!    kept wallet it used, changed or not: see 6), the transactions, the
//!    outbox events (in command order) and the idempotency records are
//!    written in one statement, then the batch commits; when commands are
//!    already waiting, `COMMIT; BEGIN` goes in one round trip and the next
//!    batch runs on the same connection. Replies are held until the
//!    commit: if it fails, every command of the batch gets the error
//!    (`unavailable`, or a `concurrency_conflict` the service retries),
//!    never a result of a state that was not committed.
//! 6. **Wallets kept between batches.** A writer keeps the wallets its
//!    batches committed (up to [`BatchConfig::cached_wallets`], with only
//!    their active holds, as a fresh load would give them). A batch whose
//!    only aggregate is one kept wallet (the hot wallet's case) skips the
//!    lock-and-load statement: the write's `UPDATE ... WHERE version =
//!    <kept version>` takes the row lock before anything else of the
//!    wallet is written, and proves the kept copy is still the newest
//!    (every change of a wallet bumps its version); if the batch changed
//!    nothing, the wallet is written back as it was for the same proof, so
//!    a refusal too is an answer of the newest state. If another process
//!    changed the wallet meanwhile, the version does not match and nothing
//!    of the wallet is written: the batch rolls back, the writer forgets
//!    what it kept, and the batch runs again with locks and loads (as it
//!    does after any failure of a run with a kept wallet but an outage).
//!    A command naming a hold that the kept copy does not hold as active
//!    loads the wallet as before. Being the batch's one lock, it cannot be
//!    taken out of order with another. Kept wallets are forgotten whenever
//!    the writers' pool opens a connection (the server may have restarted
//!    or failed over without commits the writer saw, and hand out a
//!    version number again), and after any failed or fallen-back batch.
//!    On one hot wallet this takes a batch from three round trips to two.
//!    Anything that changes a wallet outside this crate must bump its
//!    version (the locked path relies on that too).
//! 7. **Falling back.** When a statement of the batch fails for another
//!    reason (another process stored one of the batch's keys first, a
//!    constraint refused a row), the batch rolls back and each of its
//!    commands runs again on its own, one transaction each, so each gets
//!    exactly the answer the unbatched store would give it.
//!
//! Limits: a queue holds at most [`BatchConfig::queue_depth`] commands per
//! writer; a caller finding it full waits up to
//! [`BatchConfig::enqueue_timeout`] for room, then gets `unavailable`
//! (back-pressure, not an unbounded backlog). When the database is down,
//! the batch's connection cannot be had within the pool's acquire timeout
//! and every command of it is `unavailable`.
//!
//! Creating a wallet or a point account stays a single statement of its
//! own: it locks nothing and gains nothing from a batch.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use wallet_core::store::{PointMutation, WalletMutation};
use wallet_core::{
    Applied, Claim, CommandOutput, DomainEvent, HoldStatus, IdempotencyKey, IdempotencyRecord,
    PointAccount, PointLot, PointTransaction, Wallet, WalletError, WalletTransaction,
};

use crate::codec::column;
use crate::error::map_error;
use crate::idempotency::{find_records, insert_records_sql, record_of, replay, RecordColumns};
use crate::outbox::{insert_events_sql, EventColumns};
use crate::points::{lock_point_accounts, PointAccountColumns};
use crate::wallets::{lock_wallets, WalletColumns};
use crate::PgStore;

/// The default most commands in one batch.
pub const MAX_BATCH_DEFAULT: usize = 256;
/// The default queue depth of each writer.
pub const QUEUE_DEPTH_DEFAULT: usize = 1024;
/// The default number of writers: two. Fewer writers make bigger batches,
/// more overlap one batch's commit with another's work; on two cores two
/// did best on spread load, with four well behind (see
/// docs/performance.md). More also hold up fewer commands behind a batch
/// that waits for a lock another process holds. A hot wallet is one
/// writer's whatever the number.
pub const WRITERS_DEFAULT: usize = 2;
/// The default wait for room in a full queue before `unavailable`.
pub const ENQUEUE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// The largest batch accepted: the write statement binds a few arrays of
/// this many elements per table.
pub const MAX_BATCH_LIMIT: usize = 4096;
/// The deepest queue accepted.
pub const QUEUE_DEPTH_LIMIT: usize = 1 << 20;
/// The most writers accepted (each holds a connection while it writes).
pub const WRITERS_LIMIT: usize = 256;
/// The default most wallets each writer keeps between batches: about a
/// kilobyte each with a few currencies and no active holds.
pub const CACHED_WALLETS_DEFAULT: usize = 10_000;
/// The most wallets a writer may be asked to keep.
pub const CACHED_WALLETS_LIMIT: usize = 1 << 20;

/// How the batching writer works (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchConfig {
    /// The most commands applied in one transaction.
    pub max_batch: usize,
    /// The most commands waiting for each writer.
    pub queue_depth: usize,
    /// Writer tasks; users are spread over them by a hash of the user id.
    /// The writers have a pool of their own on the primary, one connection
    /// each. More writers mean more transactions in parallel but smaller
    /// batches (see [`WRITERS_DEFAULT`]).
    pub writers: usize,
    /// How long a caller waits for room in a full queue before the command
    /// is `unavailable`.
    pub enqueue_timeout: Duration,
    /// The most wallets each writer keeps between batches (see the module
    /// docs); 0 keeps none, and every batch locks and loads.
    pub cached_wallets: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_batch: MAX_BATCH_DEFAULT,
            queue_depth: QUEUE_DEPTH_DEFAULT,
            writers: WRITERS_DEFAULT,
            enqueue_timeout: ENQUEUE_TIMEOUT_DEFAULT,
            cached_wallets: CACHED_WALLETS_DEFAULT,
        }
    }
}

impl BatchConfig {
    /// Checks the limits; the error names the setting.
    pub fn validate(&self) -> Result<(), WalletError> {
        let check = |name: &str, value: usize, limit: usize| {
            if value == 0 || value > limit {
                Err(WalletError::Validation(format!(
                    "batching: {name} must be 1 to {limit}"
                )))
            } else {
                Ok(())
            }
        };
        check("max_batch", self.max_batch, MAX_BATCH_LIMIT)?;
        check("queue_depth", self.queue_depth, QUEUE_DEPTH_LIMIT)?;
        check("writers", self.writers, WRITERS_LIMIT)?;
        if self.cached_wallets > CACHED_WALLETS_LIMIT {
            return Err(WalletError::Validation(format!(
                "batching: cached_wallets must be 0 to {CACHED_WALLETS_LIMIT}"
            )));
        }
        if self.enqueue_timeout.is_zero() {
            return Err(WalletError::Validation(
                "batching: enqueue_timeout must be above zero".into(),
            ));
        }
        Ok(())
    }
}

/// What the writers have done since the store was connected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Batches applied (each one transaction, or one fallback).
    pub batches: u64,
    /// Commands in those batches.
    pub commands: u64,
    /// The most commands one batch held.
    pub largest: u64,
    /// Batches whose commands ran again one by one (see the module docs).
    pub fallbacks: u64,
    /// Batches that failed as a whole (`unavailable`, conflicts).
    pub failures: u64,
    /// Batches that ran in a transaction begun by the previous batch's
    /// commit (commands were waiting when it committed).
    pub chained: u64,
    /// Wallets a batch took from its writer's kept copies instead of
    /// locking and loading them.
    pub cached: u64,
    /// Batches run again with locks and loads because their run with kept
    /// wallets failed (most often: someone else had changed one of them).
    pub stale: u64,
}

#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    commands: AtomicU64,
    largest: AtomicU64,
    fallbacks: AtomicU64,
    failures: AtomicU64,
    chained: AtomicU64,
    cached: AtomicU64,
    stale: AtomicU64,
}

impl Counters {
    fn batch(&self, size: usize) {
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.commands.fetch_add(size, Ordering::Relaxed);
        self.largest.fetch_max(size, Ordering::Relaxed);
    }

    fn snapshot(&self) -> BatchStats {
        BatchStats {
            batches: self.batches.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            largest: self.largest.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            chained: self.chained.load(Ordering::Relaxed),
            cached: self.cached.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
        }
    }
}

type Reply = oneshot::Sender<Result<Applied, WalletError>>;

/// One command waiting for its writer.
struct Job {
    user_id: Uuid,
    claim: Option<Claim>,
    work: Work,
    reply: Reply,
}

enum Work {
    Wallet {
        hold_id: Option<Uuid>,
        mutation: WalletMutation,
    },
    Points {
        lot_id: Option<Uuid>,
        mutation: PointMutation,
    },
}

/// The writers' queues. Dropping the last handle closes them, and each
/// writer ends once its queue is drained.
pub(crate) struct Batcher {
    pool: PgPool,
    queues: Vec<mpsc::Sender<Job>>,
    enqueue_timeout: Duration,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("writers", &self.queues.len())
            .field("enqueue_timeout", &self.enqueue_timeout)
            .field("stats", &self.counters.snapshot())
            .finish()
    }
}

impl Batcher {
    /// Starts the writers on the current tokio runtime, writing through
    /// `pool` (their own: see `PgConfig::writer_pool`).
    /// `connections` counts the connections `pool` has opened.
    pub(crate) fn start(
        pool: PgPool,
        connections: Arc<AtomicU64>,
        config: &BatchConfig,
    ) -> Result<Self, WalletError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            WalletError::Internal("batching needs a tokio runtime to run its writers".into())
        })?;
        let counters = Arc::new(Counters::default());
        let mut queues = Vec::with_capacity(config.writers);
        for _ in 0..config.writers {
            let (sender, receiver) = mpsc::channel(config.queue_depth);
            runtime.spawn(write_loop(
                pool.clone(),
                receiver,
                config.max_batch,
                WalletCache::new(config.cached_wallets, Arc::clone(&connections)),
                Arc::clone(&counters),
            ));
            queues.push(sender);
        }
        Ok(Batcher {
            pool,
            queues,
            enqueue_timeout: config.enqueue_timeout,
            counters,
        })
    }

    /// Closes the writers' pool: commands still queued, and any sent
    /// later, are `unavailable`.
    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn stats(&self) -> BatchStats {
        self.counters.snapshot()
    }

    pub(crate) async fn update_wallet(
        &self,
        user_id: Uuid,
        hold_id: Option<Uuid>,
        claim: Option<Claim>,
        mutation: WalletMutation,
    ) -> Result<Applied, WalletError> {
        self.submit(user_id, claim, Work::Wallet { hold_id, mutation })
            .await
    }

    pub(crate) async fn update_point_account(
        &self,
        user_id: Uuid,
        lot_id: Option<Uuid>,
        claim: Option<Claim>,
        mutation: PointMutation,
    ) -> Result<Applied, WalletError> {
        self.submit(user_id, claim, Work::Points { lot_id, mutation })
            .await
    }

    async fn submit(
        &self,
        user_id: Uuid,
        claim: Option<Claim>,
        work: Work,
    ) -> Result<Applied, WalletError> {
        let queue = self
            .queues
            .get(partition(user_id, self.queues.len()))
            .ok_or_else(|| WalletError::Internal("no batch writer".into()))?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            user_id,
            claim,
            work,
            reply,
        };
        queue
            .send_timeout(job, self.enqueue_timeout)
            .await
            .map_err(|error| match error {
                mpsc::error::SendTimeoutError::Timeout(_) => {
                    WalletError::Unavailable("the write queue is full; try again shortly".into())
                }
                mpsc::error::SendTimeoutError::Closed(_) => {
                    WalletError::Unavailable("the batch writer has stopped".into())
                }
            })?;
        answer.await.map_err(|_| {
            WalletError::Unavailable("the batch writer stopped before answering".into())
        })?
    }
}

/// The writer of a user: the same one for every command of the user.
fn partition(user_id: Uuid, writers: usize) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    user_id.hash(&mut hasher);
    let writers = u64::try_from(writers.max(1)).unwrap_or(1);
    usize::try_from(hasher.finish() % writers).unwrap_or(0)
}

/// Takes what queued (at least one command, at most `max_batch`), applies
/// it as one batch, and again, until the queue closes.
async fn write_loop(
    pool: PgPool,
    mut queue: mpsc::Receiver<Job>,
    max_batch: usize,
    mut cache: WalletCache,
    counters: Arc<Counters>,
) {
    let mut jobs = Vec::with_capacity(max_batch);
    let mut session: Option<Session> = None;
    while queue.recv_many(&mut jobs, max_batch).await > 0 {
        // A caller that gave up (its request timed out, its task was
        // cancelled) is not applied behind its back.
        let batch: Vec<Job> = jobs.drain(..).filter(|j| !j.reply.is_closed()).collect();
        if batch.is_empty() {
            if let Some(open) = session.take() {
                open.end().await;
            }
            continue;
        }
        session = run_batch(&pool, session, batch, &queue, &mut cache, &counters).await;
    }
    if let Some(open) = session.take() {
        open.end().await;
    }
}

/// A writer's connection with a transaction begun, kept from one batch to
/// the next while commands keep coming: the next batch then needs neither
/// the pool's hand-over nor a `BEGIN` of its own (the commit sends
/// `COMMIT; BEGIN` in one round trip). Dropped before its transaction has
/// ended (a failure, a cancelled task), the connection is closed, not
/// returned to the pool, so no lock or open transaction outlives it.
struct Session {
    conn: Option<PoolConnection<Postgres>>,
}

impl Session {
    /// A connection from the pool with a transaction begun.
    async fn begin(pool: &PgPool) -> Result<Self, WalletError> {
        let conn = pool.acquire().await.map_err(map_error)?;
        let mut session = Session { conn: Some(conn) };
        session.simple("BEGIN").await?;
        Ok(session)
    }

    fn conn(&mut self) -> Result<&mut PgConnection, WalletError> {
        self.conn
            .as_deref_mut()
            .ok_or_else(|| WalletError::Internal("the batch session has ended".into()))
    }

    /// Runs `sql` (transaction control, possibly two statements) in one
    /// round trip of the simple query protocol.
    async fn simple(&mut self, sql: &'static str) -> Result<(), WalletError> {
        let conn = self.conn()?;
        sqlx::Executor::execute(conn, sql)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    /// Commits; with `again`, begins the next transaction in the same round
    /// trip and keeps the session, else hands the connection back.
    async fn commit(mut self, again: bool) -> Result<Option<Self>, WalletError> {
        self.simple(if again { "COMMIT; BEGIN" } else { "COMMIT" })
            .await?;
        if again {
            return Ok(Some(self));
        }
        // The transaction has ended: the connection may go back.
        drop(self.conn.take());
        Ok(None)
    }

    /// Rolls back and hands the connection back (closed if the rollback
    /// did not go through).
    async fn roll_back(mut self) {
        if self.simple("ROLLBACK").await.is_ok() {
            drop(self.conn.take());
        }
    }

    /// Ends a begun transaction that carried nothing.
    async fn end(self) {
        if let Ok(Some(session)) = self.commit(false).await {
            drop(session);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.close_on_drop();
        }
    }
}

/// Why a batch did not commit.
enum BatchFailure {
    /// Every command of the batch gets this error.
    Everyone(WalletError),
    /// Each command runs again on its own.
    OneByOne,
}

/// Applies one batch and answers its callers. Returns the session to carry
/// the next batch, when commands are waiting for one.
async fn run_batch(
    pool: &PgPool,
    session: Option<Session>,
    jobs: Vec<Job>,
    queue: &mpsc::Receiver<Job>,
    cache: &mut WalletCache,
    counters: &Counters,
) -> Option<Session> {
    counters.batch(jobs.len());
    if session.is_some() {
        counters.chained.fetch_add(1, Ordering::Relaxed);
    }
    let (outcome, session) = apply_batch(pool, session, &jobs, queue, cache, counters).await;
    match outcome {
        Ok(results) => {
            for (job, result) in jobs.into_iter().zip(results) {
                let _ = job.reply.send(result);
            }
        }
        Err(BatchFailure::Everyone(error)) => {
            counters.failures.fetch_add(1, Ordering::Relaxed);
            // Whether the batch committed may be unknown: keep nothing.
            cache.clear();
            for job in jobs {
                let _ = job.reply.send(Err(error.clone()));
            }
        }
        Err(BatchFailure::OneByOne) => {
            counters.fallbacks.fetch_add(1, Ordering::Relaxed);
            // The commands are about to change their wallets outside the
            // writer's sight.
            cache.clear();
            let store = PgStore::from_pools(pool.clone(), None);
            for job in jobs {
                let result = match job.work {
                    Work::Wallet { hold_id, mutation } => {
                        store
                            .update_wallet_unit(job.user_id, hold_id, job.claim, mutation)
                            .await
                    }
                    Work::Points { lot_id, mutation } => {
                        store
                            .update_point_account_unit(job.user_id, lot_id, job.claim, mutation)
                            .await
                    }
                };
                let _ = job.reply.send(result);
            }
        }
    }
    session
}

/// One transaction for the whole batch (on `session`, or a new one);
/// the results in the jobs' order, and the session for the next batch.
/// A batch that found a kept wallet stale runs once more, without kept
/// wallets, in a transaction of its own.
async fn apply_batch(
    pool: &PgPool,
    session: Option<Session>,
    jobs: &[Job],
    queue: &mpsc::Receiver<Job>,
    cache: &mut WalletCache,
    counters: &Counters,
) -> (
    Result<Vec<Result<Applied, WalletError>>, BatchFailure>,
    Option<Session>,
) {
    let mut session = match session {
        Some(session) => session,
        None => match Session::begin(pool).await {
            Ok(session) => session,
            Err(error) => return (Err(BatchFailure::Everyone(error)), None),
        },
    };
    cache.check_connections();
    let mut applied = match session.conn() {
        Ok(conn) => apply_in(conn, jobs, Some(&mut *cache), counters).await,
        Err(error) => Err(Attempt::Failed(error)),
    };
    if matches!(applied, Err(Attempt::Stale)) {
        counters.stale.fetch_add(1, Ordering::Relaxed);
        session.roll_back().await;
        cache.clear();
        session = match Session::begin(pool).await {
            Ok(session) => session,
            Err(error) => return (Err(BatchFailure::Everyone(error)), None),
        };
        applied = match session.conn() {
            Ok(conn) => apply_in(conn, jobs, None, counters).await,
            Err(error) => Err(Attempt::Failed(error)),
        };
    }
    match applied {
        // The transaction ends whatever it did (replays, refusals and
        // sweeps with nothing due write nothing but hold row locks).
        Ok((results, state)) => match session.commit(!queue.is_empty()).await {
            Ok(next) => {
                state.keep_wallets(cache);
                (Ok(results), next)
            }
            Err(error) => (Err(BatchFailure::Everyone(error)), None),
        },
        Err(attempt) => {
            // The fallback needs the writer's connection: give it back.
            session.roll_back().await;
            match attempt {
                // Only a run with kept wallets is stale, and the second
                // run has none.
                Attempt::Stale => (
                    Err(BatchFailure::Everyone(WalletError::ConcurrencyConflict)),
                    None,
                ),
                Attempt::Failed(
                    error @ (WalletError::Unavailable(_) | WalletError::ConcurrencyConflict),
                ) => (Err(BatchFailure::Everyone(error)), None),
                Attempt::Failed(_) => (Err(BatchFailure::OneByOne), None),
            }
        }
    }
}

/// Why one run of a batch did not reach its commit.
enum Attempt {
    /// A run with kept wallets failed for a reason other than an outage
    /// (most often a kept wallet someone else changed since): run again
    /// with locks.
    Stale,
    /// Any other failure.
    Failed(WalletError),
}

/// Locks and loads what the batch names (taking the wallets `cache` keeps
/// instead, when given), applies each command in order, and writes what
/// changed. Returns the results in the jobs' order and the batch's state.
async fn apply_in(
    conn: &mut PgConnection,
    jobs: &[Job],
    cache: Option<&mut WalletCache>,
    counters: &Counters,
) -> Result<(Vec<Result<Applied, WalletError>>, BatchState), Attempt> {
    let mut wallet_users = BTreeSet::new();
    let mut account_users = BTreeSet::new();
    let mut hold_ids = Vec::new();
    let mut named_holds: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    let mut lot_ids = Vec::new();
    let mut claim_users = Vec::new();
    let mut claim_keys = Vec::new();
    for job in jobs {
        match &job.work {
            Work::Wallet { hold_id, .. } => {
                wallet_users.insert(job.user_id);
                if let Some(hold_id) = hold_id {
                    hold_ids.push(*hold_id);
                    named_holds.entry(job.user_id).or_default().push(*hold_id);
                }
            }
            Work::Points { lot_id, .. } => {
                account_users.insert(job.user_id);
                lot_ids.extend(*lot_id);
            }
        }
        if let Some(claim) = &job.claim {
            claim_users.push(claim.user_id);
            claim_keys.push(claim.key.as_str());
        }
    }
    // A kept wallet is used only when it is the one lock the batch takes:
    // its lock then comes with the write, and there is no other lock for
    // it to be ordered with (see the module docs).
    let mut kept = Vec::new();
    let mut to_lock: Vec<Uuid> = wallet_users.into_iter().collect();
    if let ([user], true) = (to_lock.as_slice(), account_users.is_empty()) {
        let named = named_holds.get(user).map_or(&[][..], Vec::as_slice);
        if let Some(wallet) = cache.and_then(|cache| cache.take(*user, named)) {
            kept.push(wallet);
            to_lock.clear();
        }
    }
    let used_cache = !kept.is_empty();
    counters
        .cached
        .fetch_add(u64::try_from(kept.len()).unwrap_or(0), Ordering::Relaxed);
    // With kept wallets, any refusal of the write but an outage may come
    // from a stale copy: its version no longer matches, or a transaction
    // it numbers was already written by someone else. The run with locks
    // tells which (and meets a real refusal again).
    let failed = |error: WalletError| match error {
        WalletError::Unavailable(_) => Attempt::Failed(error),
        _ if used_cache => Attempt::Stale,
        error => Attempt::Failed(error),
    };
    let account_users: Vec<Uuid> = account_users.into_iter().collect();
    let wallets = lock_wallets(conn, &to_lock, &hold_ids)
        .await
        .map_err(failed)?;
    let accounts = lock_point_accounts(conn, &account_users, &lot_ids)
        .await
        .map_err(failed)?;
    let records = find_records(conn, &claim_users, &claim_keys)
        .await
        .map_err(failed)?;
    let mut state = BatchState::new(wallets, kept, accounts, records);
    let results: Vec<Result<Applied, WalletError>> =
        jobs.iter().map(|job| state.apply(job)).collect();
    state.write(conn).await.map_err(failed)?;
    Ok((results, state))
}

/// The wallets a writer's batches committed, as a fresh load would give
/// them (every item, the active holds), so that a later batch on one of
/// them needs no lock-and-load statement (see the module docs). Bounded:
/// when full, an arbitrary wallet makes room.
struct WalletCache {
    wallets: HashMap<Uuid, Wallet>,
    capacity: usize,
    /// Connections the writers' pool has opened, and how many it had when
    /// these wallets were kept.
    connections: Arc<AtomicU64>,
    seen_connections: u64,
}

impl WalletCache {
    fn new(capacity: usize, connections: Arc<AtomicU64>) -> Self {
        let seen_connections = connections.load(Ordering::SeqCst);
        WalletCache {
            wallets: HashMap::new(),
            capacity,
            connections,
            seen_connections,
        }
    }

    /// Forgets every kept wallet if the pool has opened a connection since
    /// they were kept: the server may be another one (a failover, a
    /// restart) that lost commits the writer saw, and a version number it
    /// hands out again must not pass for the kept one. Called once the
    /// batch has its connection.
    fn check_connections(&mut self) {
        let now = self.connections.load(Ordering::SeqCst);
        if now != self.seen_connections {
            self.wallets.clear();
            self.seen_connections = now;
        }
    }

    /// Takes the user's kept wallet out, if it holds every hold of `named`
    /// as active (a fresh load would add the others, in whatever status
    /// they are). Taken, not copied: a batch that commits keeps its
    /// wallets again, and one that does not clears the cache.
    fn take(&mut self, user_id: Uuid, named: &[Uuid]) -> Option<Wallet> {
        let wallet = self.wallets.get(&user_id)?;
        let usable = named.iter().all(|id| {
            wallet
                .holds()
                .get(id)
                .is_some_and(|hold| hold.status == HoldStatus::Active)
        });
        if usable {
            self.wallets.remove(&user_id)
        } else {
            None
        }
    }

    /// Keeps a committed wallet (without its changes, which are written).
    fn keep(&mut self, mut wallet: Wallet) {
        if self.capacity == 0 {
            return;
        }
        if self.wallets.len() >= self.capacity && !self.wallets.contains_key(&wallet.user_id()) {
            if let Some(any) = self.wallets.keys().next().copied() {
                self.wallets.remove(&any);
            }
        }
        wallet.forget_ended_holds();
        self.wallets.insert(wallet.user_id(), wallet);
    }

    fn clear(&mut self) {
        self.wallets.clear();
    }
}

/// A wallet in a batch: as the commands applied so far left it.
struct WorkingWallet {
    wallet: Wallet,
    loaded_version: u64,
    changed: bool,
    /// Taken from the writer's kept copies: written even if unchanged, so
    /// that the write's version check proves the copy was the newest.
    kept: bool,
    transactions: Vec<WalletTransaction>,
    touched_holds: BTreeSet<Uuid>,
}

/// A point account in a batch.
struct WorkingAccount {
    account: PointAccount,
    loaded_version: u64,
    changed: bool,
    transactions: Vec<PointTransaction>,
    touched_lots: Vec<PointLot>,
}

/// The batch's aggregates, the records its keys have (stored, or made by
/// an earlier command of the batch), and what it will write.
struct BatchState {
    wallets: HashMap<Uuid, WorkingWallet>,
    accounts: HashMap<Uuid, WorkingAccount>,
    records: HashMap<(Uuid, IdempotencyKey), IdempotencyRecord>,
    new_records: Vec<IdempotencyRecord>,
    events: Vec<DomainEvent>,
}

impl BatchState {
    fn new(
        loaded: Vec<Wallet>,
        kept: Vec<Wallet>,
        accounts: Vec<PointAccount>,
        records: Vec<IdempotencyRecord>,
    ) -> Self {
        let loaded = loaded.into_iter().map(|wallet| (wallet, false));
        let kept = kept.into_iter().map(|wallet| (wallet, true));
        let wallets = loaded
            .chain(kept)
            .map(|(wallet, kept)| {
                let working = WorkingWallet {
                    loaded_version: wallet.version(),
                    wallet,
                    changed: false,
                    kept,
                    transactions: Vec::new(),
                    touched_holds: BTreeSet::new(),
                };
                (working.wallet.user_id(), working)
            })
            .collect();
        let accounts = accounts
            .into_iter()
            .map(|account| {
                let working = WorkingAccount {
                    loaded_version: account.version,
                    account,
                    changed: false,
                    transactions: Vec::new(),
                    touched_lots: Vec::new(),
                };
                (working.account.user_id, working)
            })
            .collect();
        let records = records
            .into_iter()
            .map(|record| ((record.user_id, record.key.clone()), record))
            .collect();
        BatchState {
            wallets,
            accounts,
            records,
            new_records: Vec::new(),
            events: Vec::new(),
        }
    }

    /// One command, exactly as the unbatched unit of work would run it on
    /// the state the earlier commands of the batch left.
    fn apply(&mut self, job: &Job) -> Result<Applied, WalletError> {
        if let Some(claim) = &job.claim {
            if let Some(record) = self.records.get(&(claim.user_id, claim.key.clone())) {
                return replay(record, claim);
            }
        }
        match &job.work {
            Work::Wallet { mutation, .. } => self.apply_to_wallet(job, mutation),
            Work::Points { mutation, .. } => self.apply_to_account(job, mutation),
        }
    }

    fn apply_to_wallet(
        &mut self,
        job: &Job,
        mutation: &WalletMutation,
    ) -> Result<Applied, WalletError> {
        let working = self
            .wallets
            .get_mut(&job.user_id)
            .ok_or(WalletError::WalletNotFound)?;
        // On a copy: a command that fails leaves nothing behind.
        let mut trial = working.wallet.clone();
        let output = guarded(|| mutation(&mut trial))?;
        if trial.changes().is_empty() {
            return Ok(Applied {
                output,
                replayed: false,
            });
        }
        let mut changes = trial.take_changes();
        working.changed = true;
        working.transactions.append(&mut changes.transactions);
        working.touched_holds.extend(changes.touched_holds);
        self.events.append(&mut changes.events);
        let updated_at = trial.updated_at();
        working.wallet = trial;
        self.remember(job.claim.as_ref(), &output, updated_at);
        Ok(Applied {
            output,
            replayed: false,
        })
    }

    fn apply_to_account(
        &mut self,
        job: &Job,
        mutation: &PointMutation,
    ) -> Result<Applied, WalletError> {
        let working = self
            .accounts
            .get_mut(&job.user_id)
            .ok_or(WalletError::PointAccountNotFound)?;
        let mut trial = working.account.clone();
        let output = guarded(|| mutation(&mut trial))?;
        if trial.changes().is_empty() {
            return Ok(Applied {
                output,
                replayed: false,
            });
        }
        let mut changes = trial.take_changes();
        // A lot this command spent, cancelled or expired has left the live
        // set; a later command naming it must still hear `lot_not_pending`,
        // as it would from a fresh load.
        for lot in &changes.touched_lots {
            trial.remember_lot(lot.id);
        }
        working.changed = true;
        working.transactions.append(&mut changes.transactions);
        working.touched_lots.append(&mut changes.touched_lots);
        self.events.append(&mut changes.events);
        let updated_at = trial.updated_at;
        working.account = trial;
        self.remember(job.claim.as_ref(), &output, updated_at);
        Ok(Applied {
            output,
            replayed: false,
        })
    }

    /// Keeps the record of a successful command's claim: written with the
    /// batch, and replayed to a later command of the batch with its key.
    fn remember(
        &mut self,
        claim: Option<&Claim>,
        output: &CommandOutput,
        now: chrono::DateTime<chrono::Utc>,
    ) {
        if let Some(claim) = claim {
            let record = record_of(claim.clone(), output, now);
            self.records
                .insert((claim.user_id, claim.key.clone()), record.clone());
            self.new_records.push(record);
        }
    }

    /// Writes every change of the batch in one statement. Returns whether
    /// there was anything to write.
    async fn write(&self, conn: &mut PgConnection) -> Result<bool, WalletError> {
        let mut wallets = WalletColumns::default();
        for working in self.wallets.values().filter(|w| w.changed || w.kept) {
            wallets.push(
                &working.wallet,
                working.loaded_version,
                &working.transactions,
                &working.touched_holds,
            )?;
        }
        let mut accounts = PointAccountColumns::default();
        for working in self.accounts.values().filter(|a| a.changed) {
            accounts.push(
                &working.account,
                working.loaded_version,
                &working.transactions,
                &working.touched_lots,
            )?;
        }
        let (wallet_rows, account_rows) = (wallets.len(), accounts.len());
        if wallet_rows == 0 && account_rows == 0 {
            return Ok(false);
        }
        let mut events = EventColumns::default();
        for event in &self.events {
            events.push(event)?;
        }
        let records = RecordColumns::of(&self.new_records);
        let query = sqlx::query(write_sql());
        let query = wallets.bind(query);
        let query = accounts.bind(query);
        let row = query
            .bind(events.ids)
            .bind(events.types)
            .bind(events.aggregate_ids)
            .bind(events.aggregate_versions)
            .bind(events.user_ids)
            .bind(events.occurred_at)
            .bind(events.data)
            .bind(records.user_ids)
            .bind(records.keys)
            .bind(records.fingerprints)
            .bind(records.outputs)
            .bind(records.created_at)
            .fetch_one(&mut *conn)
            .await
            .map_err(map_error)?;
        let written = (
            column::<i64>(&row, "wallets")?,
            column::<i64>(&row, "accounts")?,
        );
        let expected = (
            i64::try_from(wallet_rows).unwrap_or(i64::MAX),
            i64::try_from(account_rows).unwrap_or(i64::MAX),
        );
        if written != expected {
            // A kept wallet that someone else changed since (the caller
            // runs the batch again with locks). For locked rows it cannot
            // happen; if it does anyway, the version checks kept the batch
            // from overwriting a newer state.
            return Err(WalletError::ConcurrencyConflict);
        }
        Ok(true)
    }

    /// Hands the batch's wallets, as committed, to the writer's cache.
    fn keep_wallets(self, cache: &mut WalletCache) {
        for (_, working) in self.wallets {
            cache.keep(working.wallet);
        }
    }
}

/// Runs a mutation; a panic in it fails that command alone (as
/// `internal`) instead of the writer and every command behind it.
fn guarded<T>(mutation: impl FnOnce() -> Result<T, WalletError>) -> Result<T, WalletError> {
    std::panic::catch_unwind(AssertUnwindSafe(mutation)).unwrap_or_else(|_| {
        Err(WalletError::Internal(
            "the command's mutation panicked".into(),
        ))
    })
}

/// The batch's one write statement: wallets, point accounts, events in
/// command order, idempotency records.
fn write_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let accounts_first = 1 + WalletColumns::PARAMETERS;
        let events_first = accounts_first + PointAccountColumns::PARAMETERS;
        let records_first = events_first + 7;
        format!(
            "WITH {wallets}, {accounts}, events AS ({events}), records AS ({records}) \
             SELECT (SELECT count(*) FROM wallet_rows) AS wallets, \
             (SELECT count(*) FROM account_rows) AS accounts",
            wallets = WalletColumns::ctes(1),
            accounts = PointAccountColumns::ctes(accounts_first),
            events = insert_events_sql(events_first),
            records = insert_records_sql(records_first),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_always_goes_to_the_same_writer_and_users_spread() {
        let users: Vec<Uuid> = (0..1000).map(|_| Uuid::now_v7()).collect();
        let mut counts = [0usize; 4];
        for user in &users {
            let writer = partition(*user, 4);
            assert_eq!(writer, partition(*user, 4));
            counts[writer] += 1;
        }
        assert!(counts.iter().all(|&c| c > 150), "{counts:?}");
        assert_eq!(partition(users[0], 1), 0);
    }

    #[test]
    fn limits_are_checked() {
        assert!(BatchConfig::default().validate().is_ok());
        assert!(BatchConfig {
            cached_wallets: 0,
            ..BatchConfig::default()
        }
        .validate()
        .is_ok());
        for config in [
            BatchConfig {
                max_batch: 0,
                ..BatchConfig::default()
            },
            BatchConfig {
                max_batch: MAX_BATCH_LIMIT + 1,
                ..BatchConfig::default()
            },
            BatchConfig {
                queue_depth: 0,
                ..BatchConfig::default()
            },
            BatchConfig {
                writers: 0,
                ..BatchConfig::default()
            },
            BatchConfig {
                enqueue_timeout: Duration::ZERO,
                ..BatchConfig::default()
            },
            BatchConfig {
                cached_wallets: CACHED_WALLETS_LIMIT + 1,
                ..BatchConfig::default()
            },
        ] {
            assert!(
                matches!(config.validate(), Err(WalletError::Validation(_))),
                "{config:?}"
            );
        }
    }

    #[test]
    fn the_write_statement_numbers_its_parameters_without_gaps() {
        let sql = write_sql();
        let last = 1 + WalletColumns::PARAMETERS + PointAccountColumns::PARAMETERS + 7 + 5 - 1;
        for n in 1..=last {
            assert!(sql.contains(&format!("${n}::")), "${n} is missing");
        }
        assert!(!sql.contains(&format!("${}::", last + 1)));
    }
}
