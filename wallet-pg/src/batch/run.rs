//! Running a batch: lock and load what it names (or take a kept wallet),
//! apply each command, write once, commit once; and every way that can go
//! wrong: a stale kept wallet (run again with locks), a statement refused
//! for one command's sake (each command again as a batch of one), an
//! outage or a failed commit (every command gets the error).
//!
//! [`run_alone`] is the same run for one command without a writer: the
//! store with batching off, and the fall-back of a failed batch.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use sqlx::{PgConnection, PgPool};
use tokio::sync::mpsc;
use uuid::Uuid;
use wallet_core::{Applied, Wallet, WalletError};

use super::kept::WalletCache;
use super::queue::{Command, Job, Work, Writer};
use super::session::Session;
use super::settings::{Counters, Stage};
use super::state::BatchState;
use crate::idempotency::find_records;
use crate::points::lock_point_accounts;
use crate::reversals::remember_named;
use crate::unit::replay_or;
use crate::wallets::lock_wallets_knowing;

/// Each command's result, in the commands' order.
type Results = Vec<Result<Applied, WalletError>>;

/// Why a batch did not commit.
enum BatchFailure {
    /// Every command of the batch gets this error.
    Everyone(WalletError),
    /// Each command runs again on its own.
    OneByOne,
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

/// Applies one batch and answers its callers. Returns the session to carry
/// the next batch, when commands are waiting for one.
pub(crate) async fn run_batch(
    writer: &mut Writer,
    session: Option<Session>,
    jobs: Vec<Job>,
    queue: &mpsc::Receiver<Job>,
) -> Option<Session> {
    writer.counters.batch(jobs.len());
    if session.is_some() {
        Counters::bump(&writer.counters.chained);
    }
    let commands: Vec<&Command> = jobs.iter().map(|job| &job.command).collect();
    let (outcome, session) = apply_batch(writer, session, &commands, queue).await;
    let results = match outcome {
        Ok(results) => results,
        Err(failure) => fail_batch(writer, failure, &commands).await,
    };
    for (job, result) in jobs.into_iter().zip(results) {
        let _ = job.reply.send(result);
    }
    session
}

/// The answers of a batch that did not commit.
async fn fail_batch(writer: &mut Writer, failure: BatchFailure, commands: &[&Command]) -> Results {
    // Whether the batch committed may be unknown, or its commands are
    // about to change their wallets outside the writer's sight: keep
    // nothing.
    writer.cache.clear();
    match failure {
        BatchFailure::Everyone(error) => {
            Counters::bump(&writer.counters.failures);
            tracing::warn!(commands = commands.len(), %error, "a batch failed as a whole");
            commands.iter().map(|_| Err(error.clone())).collect()
        }
        BatchFailure::OneByOne => {
            Counters::bump(&writer.counters.fallbacks);
            tracing::warn!(
                commands = commands.len(),
                "a statement of a batch was refused; its commands run again one by one"
            );
            let mut results = Vec::with_capacity(commands.len());
            for command in commands {
                results.push(run_alone(&writer.pool, command, &writer.counters).await);
            }
            results
        }
    }
}

/// One transaction for the whole batch (on `session`, or a new one);
/// the results in the commands' order, and the session for the next
/// batch. A batch that found a kept wallet stale runs once more, without
/// kept wallets, in a transaction of its own.
async fn apply_batch(
    writer: &mut Writer,
    session: Option<Session>,
    commands: &[&Command],
    queue: &mpsc::Receiver<Job>,
) -> (Result<Results, BatchFailure>, Option<Session>) {
    let began = Instant::now();
    let mut session = match session {
        Some(session) => session,
        None => match Session::begin(&writer.pool, &writer.counters).await {
            Ok(session) => session,
            Err(error) => return (Err(BatchFailure::Everyone(error)), None),
        },
    };
    writer.counters.time(Stage::Begin, began, commands.len());
    writer.cache.check_connections();
    let run = Run {
        commands,
        cache: Some(&mut writer.cache),
        counters: &writer.counters,
    };
    let mut applied = run_in(&mut session, run).await;
    if matches!(applied, Err(Attempt::Stale)) {
        Counters::bump(&writer.counters.stale);
        tracing::warn!(
            commands = commands.len(),
            "a kept wallet was changed elsewhere; the batch runs again with locks"
        );
        session.roll_back().await;
        writer.cache.clear();
        session = match Session::begin(&writer.pool, &writer.counters).await {
            Ok(session) => session,
            Err(error) => return (Err(BatchFailure::Everyone(error)), None),
        };
        let run = Run {
            commands,
            cache: None,
            counters: &writer.counters,
        };
        applied = run_in(&mut session, run).await;
    }
    match applied {
        // The transaction ends whatever it did (replays, refusals and
        // sweeps with nothing due write nothing but hold row locks).
        Ok((results, state)) => {
            match timed_commit(session, queue, &writer.counters, commands).await {
                Ok(next) => {
                    state.keep_wallets(&mut writer.cache);
                    (Ok(results), next)
                }
                Err(error) => (Err(BatchFailure::Everyone(error)), None),
            }
        }
        Err(attempt) => {
            // The fall-back needs the writer's connection: give it back.
            session.roll_back().await;
            (Err(failure_of(attempt)), None)
        }
    }
}

/// Commits the batch's transaction (beginning the next one when commands
/// are waiting), timing it.
async fn timed_commit(
    session: Session,
    queue: &mpsc::Receiver<Job>,
    counters: &Counters,
    commands: &[&Command],
) -> Result<Option<Session>, WalletError> {
    let started = Instant::now();
    let committed = session.commit(!queue.is_empty()).await;
    counters.time(Stage::Commit, started, commands.len());
    committed
}

/// What a batch's failed run means for its commands.
fn failure_of(attempt: Attempt) -> BatchFailure {
    match attempt {
        // Only a run with kept wallets is stale, and the second run has
        // none.
        Attempt::Stale => BatchFailure::Everyone(WalletError::ConcurrencyConflict),
        Attempt::Failed(
            error @ (WalletError::Unavailable(_) | WalletError::ConcurrencyConflict),
        ) => BatchFailure::Everyone(error),
        Attempt::Failed(_) => BatchFailure::OneByOne,
    }
}

/// One command in a transaction of its own on a connection of `pool`: a
/// batch of one, through the same steps as any batch but without kept
/// wallets. Its failures are its own: a key another unit of work stored
/// first replays that record; any other refusal is the answer.
pub(crate) async fn run_alone(
    pool: &PgPool,
    command: &Command,
    counters: &Arc<Counters>,
) -> Result<Applied, WalletError> {
    let mut session = Session::begin(pool, counters).await?;
    let run = Run {
        commands: &[command],
        cache: None,
        counters,
    };
    match run_in(&mut session, run).await {
        Ok((mut results, _)) => {
            session.commit(false).await?;
            results.pop().unwrap_or_else(|| {
                Err(WalletError::Internal(
                    "a batch of one gave no result".into(),
                ))
            })
        }
        Err(attempt) => {
            let conn = session.rolled_back().await;
            match (attempt, conn) {
                (Attempt::Failed(WalletError::IdempotencyKeyInFlight), Some(mut conn)) => {
                    counters.sent(1);
                    replay_or(
                        &mut conn,
                        command.claim.as_ref(),
                        WalletError::ConcurrencyConflict,
                    )
                    .await
                }
                // The service retries a conflict, and finds the record.
                (Attempt::Failed(WalletError::IdempotencyKeyInFlight), None)
                | (Attempt::Stale, _) => Err(WalletError::ConcurrencyConflict),
                (Attempt::Failed(error), _) => Err(error),
            }
        }
    }
}

/// One run of a batch's commands: the wallets the writer keeps, to take
/// instead of a lock when usable (none for a run with locks only), and
/// the counters the run adds to.
struct Run<'r> {
    commands: &'r [&'r Command],
    cache: Option<&'r mut WalletCache>,
    counters: &'r Counters,
}

/// [`apply_in`] on the session's connection.
async fn run_in(session: &mut Session, run: Run<'_>) -> Result<(Results, BatchState), Attempt> {
    match session.conn() {
        Ok(conn) => apply_in(conn, run).await,
        Err(error) => Err(Attempt::Failed(error)),
    }
}

/// Locks and loads what the batch names (taking the wallet the run's
/// cache keeps instead, when given and usable), applies each command in
/// order, and writes what changed. Returns the results in the commands'
/// order and the batch's state.
async fn apply_in(conn: &mut PgConnection, run: Run<'_>) -> Result<(Results, BatchState), Attempt> {
    let Run {
        commands,
        cache,
        counters,
    } = run;
    let mut plan = Plan::of(commands);
    let (kept, copies) = plan.take_copies(cache);
    Counters::add(&counters.cached, kept.len());
    // With a kept wallet, any refusal of the write but an outage may come
    // from a stale copy: its version no longer matches, or a transaction
    // it numbers was already written by someone else. The run with locks
    // tells which (and meets a real refusal again).
    let used_cache = !kept.is_empty();
    let failed = |error: WalletError| match error {
        WalletError::Unavailable(_) => Attempt::Failed(error),
        _ if used_cache => Attempt::Stale,
        error => Attempt::Failed(error),
    };
    let started = Instant::now();
    let mut state = plan
        .load(conn, kept, copies, counters)
        .await
        .map_err(failed)?;
    counters.time(Stage::Lock, started, commands.len());
    let started = Instant::now();
    let results: Results = commands
        .iter()
        .map(|command| state.apply(command))
        .collect();
    counters.time(Stage::Apply, started, commands.len());
    let started = Instant::now();
    if state.write(conn).await.map_err(failed)? {
        counters.sent(1);
    }
    counters.time(Stage::Write, started, commands.len());
    Ok((results, state))
}

/// What a batch must lock and load, gathered from its commands.
#[derive(Default)]
struct Plan<'c> {
    /// Wallets to lock, in user id order.
    wallet_users: BTreeSet<Uuid>,
    /// Point accounts to lock, in user id order.
    account_users: BTreeSet<Uuid>,
    /// Holds the commands name, to load in any status.
    hold_ids: Vec<Uuid>,
    /// The same holds by user: a kept wallet serves a batch only if it
    /// holds every hold the batch names as active.
    named_holds: HashMap<Uuid, Vec<Uuid>>,
    /// Rows the commands name (the legs of reversals), loaded with their
    /// totals under the locks.
    transaction_ids: Vec<Uuid>,
    /// Lots the commands name.
    lot_ids: Vec<Uuid>,
    /// The `(user, key)` of every claim.
    claim_users: Vec<Uuid>,
    claim_keys: Vec<&'c str>,
}

impl<'c> Plan<'c> {
    /// Gathers what `commands` name, in their order.
    fn of(commands: &[&'c Command]) -> Self {
        let mut plan = Plan::default();
        for command in commands {
            match &command.work {
                Work::Wallet { hold_id, .. } => {
                    plan.wallet_users.insert(command.user_id);
                    if let Some(hold_id) = hold_id {
                        plan.hold_ids.push(*hold_id);
                        let named = plan.named_holds.entry(command.user_id).or_default();
                        named.push(*hold_id);
                    }
                }
                Work::Wallets {
                    user_ids,
                    hold_ids,
                    transaction_ids,
                    ..
                } => {
                    plan.transaction_ids.extend(transaction_ids.iter().copied());
                    plan.wallet_users.extend(user_ids.iter().copied());
                    plan.hold_ids.extend(hold_ids.iter().copied());
                    let named = plan.named_holds.entry(command.user_id).or_default();
                    named.extend(hold_ids.iter().copied());
                }
                Work::Points { lot_id, .. } => {
                    plan.account_users.insert(command.user_id);
                    plan.lot_ids.extend(*lot_id);
                }
            }
            if let Some(claim) = &command.claim {
                plan.claim_users.push(claim.user_id);
                plan.claim_keys.push(claim.key.as_str());
            }
        }
        plan
    }

    /// The writer's kept copies the batch can use: the one kept wallet of
    /// a batch that takes no other lock (first), or else copies of the
    /// wallets it locks (second), for the lock to answer without loading
    /// them while they are current.
    fn take_copies(&mut self, cache: Option<&mut WalletCache>) -> (Vec<Wallet>, Vec<Wallet>) {
        let Some(cache) = cache else {
            return (Vec::new(), Vec::new());
        };
        let kept = self.take_kept(cache);
        if !kept.is_empty() {
            return (kept, Vec::new());
        }
        (Vec::new(), self.take_known(cache))
    }

    /// A kept wallet is used without a lock statement only when it is the
    /// one lock the batch takes: its lock then comes with the write, and
    /// there is no other lock for it to be ordered with (see the module
    /// docs of [`super`]). Never for a batch that names a row (a
    /// reversal): the running totals are read under the wallets' locks,
    /// which a kept wallet takes only at the write, after the commands ran.
    fn take_kept(&mut self, cache: &mut WalletCache) -> Vec<Wallet> {
        if !self.account_users.is_empty() || !self.transaction_ids.is_empty() {
            return Vec::new();
        }
        let Some(&user) = self
            .wallet_users
            .first()
            .filter(|_| self.wallet_users.len() == 1)
        else {
            return Vec::new();
        };
        let named = self.named_holds.get(&user).map_or(&[][..], Vec::as_slice);
        match cache.take(user, named) {
            Some(wallet) => {
                self.wallet_users.clear();
                vec![wallet]
            }
            None => Vec::new(),
        }
    }

    /// Kept copies of the wallets the batch locks, which the lock statement
    /// answers without loading while each is current (locked at its
    /// version; see `lock_wallets_knowing`): they are locked in user id
    /// order with the others, so the lock order stays canonical. Only for
    /// a batch naming no hold: a fresh load adds a named hold, in whatever
    /// status, to the wallet that owns it, and which wallet that is cannot
    /// be told before loading.
    fn take_known(&self, cache: &mut WalletCache) -> Vec<Wallet> {
        if !self.hold_ids.is_empty() || !self.transaction_ids.is_empty() {
            return Vec::new();
        }
        self.wallet_users
            .iter()
            .filter_map(|&user| cache.take(user, &[]))
            .collect()
    }

    /// Locks and loads the batch's aggregates and the records of its keys,
    /// one statement each (plus a reload of what a lock waited for).
    async fn load(
        &self,
        conn: &mut PgConnection,
        kept: Vec<Wallet>,
        copies: Vec<Wallet>,
        counters: &Counters,
    ) -> Result<BatchState, WalletError> {
        let wallet_users: Vec<Uuid> = self.wallet_users.iter().copied().collect();
        let (mut wallets, sent, used) =
            lock_wallets_knowing(conn, &wallet_users, &self.hold_ids, copies).await?;
        counters.sent(sent);
        Counters::add(&counters.known, used);
        let sent = remember_named(conn, &mut wallets, &self.transaction_ids).await?;
        counters.sent(sent);
        let account_users: Vec<Uuid> = self.account_users.iter().copied().collect();
        let (accounts, sent) = lock_point_accounts(conn, &account_users, &self.lot_ids).await?;
        counters.sent(sent);
        let records = find_records(conn, &self.claim_users, &self.claim_keys).await?;
        if !self.claim_users.is_empty() {
            counters.sent(1);
        }
        Ok(BatchState::new(wallets, kept, accounts, records))
    }
}
