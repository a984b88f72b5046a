//! The writer's settings ([`BatchConfig`], with its defaults and limits)
//! and what it reports ([`BatchStats`]): kept apart from the machinery so
//! that a reader tuning the writer, or charting it, finds everything here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wallet_core::WalletError;

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
    /// Wallets a batch locked without loading them, its writer's kept copy
    /// being current (locked at the copy's version).
    pub known: u64,
    /// Statements the writers sent (transaction control included; the
    /// pool's liveness check on acquiring a connection is not counted):
    /// a batch's round trips to the server.
    pub statements: u64,
    /// How many batches held how many commands: `size_counts[i]` counts
    /// the batches of at most [`BATCH_SIZE_BUCKETS`]`[i]` commands and more
    /// than the bucket before.
    pub size_counts: [u64; BATCH_SIZE_BUCKETS.len()],
    /// Time spent in each stage of [`BATCH_STAGES`], in nanoseconds summed
    /// over commands: a batch's stage counts once for each command it
    /// holds, since each of them waits through it. Divided by `commands`,
    /// the mean time a command spent in the stage.
    pub stage_nanos: [u64; BATCH_STAGES.len()],
}

/// The stages of a command on the batching writer, as
/// [`BatchStats::stage_nanos`] times them: `queued` (from its caller's
/// submission until its writer took it), `begin` (a connection and a
/// transaction, when the batch did not inherit them), `lock` (locking and
/// loading the batch's aggregates and records), `apply` (every command of
/// the batch applied in memory), `write` (the write statement), `commit`,
/// and `store` (from the submission until the caller has its answer: all
/// of the above and the hand-over of the answer).
pub const BATCH_STAGES: [&str; 7] = [
    "queued", "begin", "lock", "apply", "write", "commit", "store",
];

/// A stage of [`BATCH_STAGES`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stage {
    Queued = 0,
    Begin,
    Lock,
    Apply,
    Write,
    Commit,
    Store,
}

impl BatchStats {
    /// What happened between `earlier` and these statistics (both of one
    /// store): every count is the difference, except `largest`, which is
    /// the largest batch since the store connected (a maximum has no
    /// difference).
    pub fn since(&self, earlier: &BatchStats) -> BatchStats {
        BatchStats {
            batches: self.batches.saturating_sub(earlier.batches),
            commands: self.commands.saturating_sub(earlier.commands),
            largest: self.largest,
            fallbacks: self.fallbacks.saturating_sub(earlier.fallbacks),
            failures: self.failures.saturating_sub(earlier.failures),
            chained: self.chained.saturating_sub(earlier.chained),
            cached: self.cached.saturating_sub(earlier.cached),
            stale: self.stale.saturating_sub(earlier.stale),
            known: self.known.saturating_sub(earlier.known),
            statements: self.statements.saturating_sub(earlier.statements),
            size_counts: std::array::from_fn(|i| {
                self.size_counts[i].saturating_sub(earlier.size_counts[i])
            }),
            stage_nanos: std::array::from_fn(|i| {
                self.stage_nanos[i].saturating_sub(earlier.stage_nanos[i])
            }),
        }
    }
}

/// The upper bounds of the batch size histogram of [`BatchStats`]; the
/// last bucket is [`MAX_BATCH_LIMIT`], so every batch falls in one.
pub const BATCH_SIZE_BUCKETS: [u64; 10] =
    [1, 2, 4, 8, 16, 32, 64, 128, 256, MAX_BATCH_LIMIT as u64];

/// The live counters behind [`BatchStats`], shared by the writers.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    batches: AtomicU64,
    commands: AtomicU64,
    largest: AtomicU64,
    pub fallbacks: AtomicU64,
    pub failures: AtomicU64,
    pub chained: AtomicU64,
    pub cached: AtomicU64,
    pub stale: AtomicU64,
    pub known: AtomicU64,
    pub statements: AtomicU64,
    size_counts: [AtomicU64; BATCH_SIZE_BUCKETS.len()],
    stage_nanos: [AtomicU64; BATCH_STAGES.len()],
}

impl Counters {
    /// Counts a batch of `size` commands.
    pub fn batch(&self, size: usize) {
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.commands.fetch_add(size, Ordering::Relaxed);
        self.largest.fetch_max(size, Ordering::Relaxed);
        let bucket = BATCH_SIZE_BUCKETS
            .iter()
            .position(|&bound| size <= bound)
            .unwrap_or(BATCH_SIZE_BUCKETS.len() - 1);
        if let Some(count) = self.size_counts.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Adds the time since `started` to `stage`, once for each of
    /// `commands` (see [`BatchStats::stage_nanos`]).
    pub fn time(&self, stage: Stage, started: Instant, commands: usize) {
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let commands = u64::try_from(commands).unwrap_or(u64::MAX);
        if let Some(sum) = self.stage_nanos.get(stage as usize) {
            sum.fetch_add(nanos.saturating_mul(commands), Ordering::Relaxed);
        }
    }

    /// Counts statements sent to the server.
    pub fn sent(&self, statements: u64) {
        self.statements.fetch_add(statements, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> BatchStats {
        BatchStats {
            batches: self.batches.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            largest: self.largest.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            chained: self.chained.load(Ordering::Relaxed),
            cached: self.cached.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
            known: self.known.load(Ordering::Relaxed),
            statements: self.statements.load(Ordering::Relaxed),
            size_counts: std::array::from_fn(|i| self.size_counts[i].load(Ordering::Relaxed)),
            stage_nanos: std::array::from_fn(|i| self.stage_nanos[i].load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn every_batch_size_falls_in_one_bucket_of_the_histogram() {
        let counters = Counters::default();
        for size in [1, 2, 3, 256, 257, MAX_BATCH_LIMIT] {
            counters.batch(size);
        }
        let stats = counters.snapshot();
        assert_eq!(stats.size_counts, [1, 1, 1, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(stats.size_counts.iter().sum::<u64>(), stats.batches);
        assert_eq!(stats.largest, MAX_BATCH_LIMIT as u64);
        counters.batch(3);
        let since = counters.snapshot().since(&stats);
        assert_eq!((since.batches, since.commands), (1, 3));
        assert_eq!(since.size_counts, [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(since.largest, MAX_BATCH_LIMIT as u64);
    }
}
