//! The writers' queues: what a command is on its way to a writer
//! ([`Command`], [`Job`]), which writer gets it (a hash of the user id, so
//! one user's commands always meet in one writer, in arrival order), the
//! back-pressure of a full queue, and each writer's loop taking what
//! queued as its next batch.

use std::hash::{Hash, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use wallet_core::store::{PointMutation, WalletMutation, WalletsMutation};
use wallet_core::{Applied, Claim, WalletError};

use super::kept::WalletCache;
use super::run::run_batch;
use super::session::Session;
use super::settings::{BatchConfig, BatchStats, Counters, Stage};

/// One command: what a batch applies. `user_id` names the aggregate of a
/// command on one aggregate, and the writer of every command (for a unit
/// of work over several wallets, the payer: see [`Work::Wallets`]).
pub(crate) struct Command {
    pub user_id: Uuid,
    pub claim: Option<Claim>,
    pub work: Work,
}

/// The aggregate a command changes, the part of it the command names
/// (loaded in any status), and the change.
pub(crate) enum Work {
    Wallet {
        hold_id: Option<Uuid>,
        mutation: WalletMutation,
    },
    /// A unit of work over several wallets (a transfer, a hold payout):
    /// the batch locks every wallet of `user_ids` with its others, in user
    /// id order, so the unit may share a batch with commands of other
    /// writers' users without a deadlock (every writer and every process
    /// locks in that one order), and the wallets the unit changes are
    /// written with the batch and bump their versions, so that any kept
    /// copy of them elsewhere fails its version check.
    Wallets {
        user_ids: Vec<Uuid>,
        hold_ids: Vec<Uuid>,
        /// Rows the unit of work names (a reversal's legs), loaded with
        /// their running totals under the locks.
        transaction_ids: Vec<Uuid>,
        mutation: WalletsMutation,
    },
    Points {
        lot_id: Option<Uuid>,
        mutation: PointMutation,
    },
}

type Reply = oneshot::Sender<Result<Applied, WalletError>>;

/// One command waiting for its writer, and where its answer goes.
pub(crate) struct Job {
    pub command: Command,
    pub reply: Reply,
    /// When its caller submitted it.
    pub submitted: Instant,
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
            let writer = Writer {
                pool: pool.clone(),
                max_batch: config.max_batch,
                cache: WalletCache::new(config.cached_wallets, Arc::clone(&connections)),
                counters: Arc::clone(&counters),
            };
            runtime.spawn(writer.run(receiver));
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

    /// Queues `command` for its user's writer and waits for the answer,
    /// which comes once the command's batch has committed (or failed).
    pub(crate) async fn submit(&self, command: Command) -> Result<Applied, WalletError> {
        let queue = self
            .queues
            .get(partition(command.user_id, self.queues.len()))
            .ok_or_else(|| WalletError::Internal("no batch writer".into()))?;
        let (reply, answer) = oneshot::channel();
        let submitted = Instant::now();
        let job = Job {
            command,
            reply,
            submitted,
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
        let answered = answer.await;
        self.counters.time(Stage::Store, submitted, 1);
        answered.map_err(|_| {
            WalletError::Unavailable("the batch writer stopped before answering".into())
        })?
    }
}

/// The writer of a user: the same one for every command of the user.
pub(crate) fn partition(user_id: Uuid, writers: usize) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    user_id.hash(&mut hasher);
    let writers = u64::try_from(writers.max(1)).unwrap_or(1);
    usize::try_from(hasher.finish() % writers).unwrap_or(0)
}

/// One writer task and what it keeps between batches.
pub(crate) struct Writer {
    pub pool: PgPool,
    pub max_batch: usize,
    pub cache: WalletCache,
    pub counters: Arc<Counters>,
}

impl Writer {
    /// Takes what queued (at least one command, at most `max_batch`),
    /// applies it as one batch, and again, until the queue closes.
    async fn run(mut self, mut queue: mpsc::Receiver<Job>) {
        let mut jobs = Vec::with_capacity(self.max_batch);
        let mut session: Option<Session> = None;
        while queue.recv_many(&mut jobs, self.max_batch).await > 0 {
            // A caller that gave up (its request timed out, its task was
            // cancelled) is not applied behind its back.
            let batch: Vec<Job> = jobs.drain(..).filter(|j| !j.reply.is_closed()).collect();
            for job in &batch {
                self.counters.time(Stage::Queued, job.submitted, 1);
            }
            if batch.is_empty() {
                if let Some(open) = session.take() {
                    open.end().await;
                }
                continue;
            }
            session = run_batch(&mut self, session, batch, &queue).await;
        }
        if let Some(open) = session.take() {
            open.end().await;
        }
    }
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
}
