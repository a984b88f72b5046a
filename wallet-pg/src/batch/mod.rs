//! The batching writer: concurrent commands applied in one database
//! transaction.
//!
//! One transaction per command is capped by what a commit costs and, on a
//! hot wallet, by the row lock: every command waits for the one before it
//! to commit. With [`PgConfig::batching`](crate::PgConfig::batching) on
//! (the default), [`PgStore`](crate::PgStore)'s `update` (of a wallet or
//! a point account) and `update_wallets` hand their unit of work to a
//! writer task, which applies many of them in one transaction. This is the
//! store's one write
//! path: with batching off, each command runs as a batch of one in the
//! caller's task (`run::run_alone`), through the same steps and the same
//! write statement (`write.rs`), only without a queue and without
//! kept wallets.
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
//!    A batch of several aggregates (naming no hold) locks all its wallets
//!    as in 3, and hands the lock statement the versions of the kept
//!    copies it has: a wallet locked at its copy's version (the newest,
//!    also after the lock waited) is not loaded and the copy is used; one
//!    changed since, by another writer or process, is loaded. The lock
//!    order stays canonical, and no stale copy is ever applied.
//!    Anything that changes a wallet outside this crate must bump its
//!    version (the locked path relies on that too).
//! 7. **Falling back.** When a statement of the batch fails for another
//!    reason (another process stored one of the batch's keys first, a
//!    constraint refused a row), the batch rolls back and each of its
//!    commands runs again as a batch of one, one transaction each, so each
//!    gets exactly the answer the unbatched store would give it.
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

//!
//! The modules, by concern: [`settings`] (the configuration, its limits
//! and the statistics), `queue` (the writers' queues and loops), `run` (a
//! batch from its locks to its commit, and its failures), `state` (the
//! pure application of commands to a batch's aggregates), `session` (the
//! writer's connection and transaction), `kept` (the kept wallets). The
//! writers log through `tracing`: a warning for a batch that failed as a
//! whole, for one that fell back to its commands one by one, and for a
//! kept wallet found stale.

mod kept;
mod queue;
mod run;
mod session;
pub mod settings;
mod state;

pub(crate) use queue::{Batcher, Command, Work};
pub(crate) use run::run_alone;
pub(crate) use settings::Counters;
pub use settings::{
    BatchConfig, BatchStats, BATCH_SIZE_BUCKETS, BATCH_STAGES, CACHED_WALLETS_DEFAULT,
    CACHED_WALLETS_LIMIT, ENQUEUE_TIMEOUT_DEFAULT, MAX_BATCH_DEFAULT, MAX_BATCH_LIMIT,
    QUEUE_DEPTH_DEFAULT, QUEUE_DEPTH_LIMIT, WRITERS_DEFAULT, WRITERS_LIMIT,
};
