//! The relay loop: from the outbox, through a sink, in order, once.
//!
//! # One step
//!
//! 1. Hold the lease: take it, or renew it once half of it has passed. A
//!    refusal means another instance relays: this one stands by and asks
//!    again every [`RelayConfig::standby_poll`].
//! 2. Read the next events after the position (the outbox's own order,
//!    which no concurrent writer can reorder behind a reader).
//! 3. Publish them as one batch and wait for every acknowledgement. The
//!    wait is cut off before the lease could expire, so a relay never
//!    publishes on a lease it may no longer hold.
//! 4. Move the position to the batch's last sequence. The store moves it
//!    only for the holder of a live lease, so a relay that lost its lease
//!    while publishing learns it here and stands by.
//!
//! A relay killed between 3 and 4 leaves the position before the batch:
//! whoever resumes publishes it again, and the broker drops the repeats by
//! message id (the event id). Any failure is retried after a backoff that
//! doubles from [`RelayConfig::backoff_min`] up to
//! [`RelayConfig::backoff_max`], so the relay resumes within seconds of the
//! broker's return. A stop request is seen between steps: a batch in
//! flight is finished (acknowledged and recorded) first, then the lease is
//! released so that another instance takes over at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;
use wallet_core::{
    Clock, LeaseOutcome, LedgerReader, PositionUpdate, RelayLease, RelayName, RelayStore,
    SystemClock,
};

use crate::error::{RelayError, SinkError};
use crate::message::{Message, SubjectPrefix};
use crate::sink::EventSink;

/// Events read and published per batch by default.
pub const BATCH_SIZE_DEFAULT: u32 = 1_000;
/// The largest batch a relay may be configured with.
pub const BATCH_SIZE_MAX: u32 = 5_000;
/// The longest pause between two tries after a failure (the contract's
/// bound: the relay resumes within seconds of the broker's return).
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The longest a lease may be taken for: another instance takes over
/// within this plus [`RelayConfig::standby_poll`] of the holder's death,
/// which must stay under the contract's 30 seconds.
pub const LEASE_DURATION_MAX: Duration = Duration::from_secs(20);
/// The longest time between two reads of the lag for the status.
pub const LAG_REFRESH_INTERVAL: Duration = Duration::from_millis(500);
/// The part of a lease kept free of publishing at its end, so that a
/// batch's acknowledgements are in before the lease could run out.
const LEASE_MARGIN: Duration = Duration::from_secs(1);

/// How a relay runs.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The position and lease it uses (named after the stream).
    pub name: RelayName,
    /// This instance's id, fresh for every process.
    pub owner: Uuid,
    /// The first tokens of every subject.
    pub subject_prefix: SubjectPrefix,
    /// Events per batch, 1..=[`BATCH_SIZE_MAX`].
    pub batch_size: u32,
    /// How long a taken lease lasts; renewed when half of it has passed.
    pub lease_duration: Duration,
    /// The pause between reads once the outbox is drained.
    pub idle_poll: Duration,
    /// The pause between two requests for the lease while another holds it.
    pub standby_poll: Duration,
    /// The first pause after a failure.
    pub backoff_min: Duration,
    /// The longest pause after failures, at most [`BACKOFF_MAX`].
    pub backoff_max: Duration,
    /// The longest wait for a batch's acknowledgements.
    pub publish_timeout: Duration,
}

impl RelayConfig {
    /// The defaults for the relay `name`, with a fresh owner id.
    pub fn new(name: RelayName) -> Self {
        RelayConfig {
            name,
            owner: Uuid::now_v7(),
            subject_prefix: SubjectPrefix::default(),
            batch_size: BATCH_SIZE_DEFAULT,
            lease_duration: Duration::from_secs(10),
            idle_poll: Duration::from_millis(50),
            standby_poll: Duration::from_secs(2),
            backoff_min: Duration::from_millis(100),
            backoff_max: BACKOFF_MAX,
            publish_timeout: Duration::from_secs(4),
        }
    }

    /// Checks the limits.
    pub fn validate(&self) -> Result<(), RelayError> {
        let invalid = |what: &str| Err(RelayError::Config(what.to_owned()));
        if !(1..=BATCH_SIZE_MAX).contains(&self.batch_size) {
            return invalid("the batch size is 1 to 5000 events");
        }
        if self.lease_duration > LEASE_DURATION_MAX || self.lease_duration < LEASE_MARGIN * 4 {
            return invalid("the lease lasts 4 to 20 seconds");
        }
        if self.backoff_max > BACKOFF_MAX || self.backoff_min > self.backoff_max {
            return invalid("the backoff grows from its minimum to at most 5 seconds");
        }
        if self.publish_timeout.is_zero() || self.standby_poll.is_zero() {
            return invalid("the publish timeout and the standby poll are above zero");
        }
        Ok(())
    }
}

/// What a relay is doing, for health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayHealth {
    /// This instance relays and the broker answers.
    Healthy,
    /// Another instance holds the lease (or this one has stopped).
    Standby,
    /// The broker or the store does not answer; the relay retries.
    Degraded,
}

impl RelayHealth {
    /// The name the health document uses.
    pub fn as_str(self) -> &'static str {
        match self {
            RelayHealth::Healthy => "Healthy",
            RelayHealth::Standby => "Standby",
            RelayHealth::Degraded => "Degraded",
        }
    }
}

/// A relay's state as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayStatus {
    pub health: RelayHealth,
    /// What it is doing or why it is degraded, for an operator.
    pub detail: String,
    /// Events in the outbox past the position, as last read.
    pub lag_events: u64,
}

/// A running relay: its status, its counters, and the way to stop it.
pub struct RelayHandle {
    status: watch::Receiver<RelayStatus>,
    published: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RelayHandle {
    /// The latest status.
    pub fn status(&self) -> RelayStatus {
        self.status.borrow().clone()
    }

    /// A receiver of every status change.
    pub fn watch(&self) -> watch::Receiver<RelayStatus> {
        self.status.clone()
    }

    /// Messages this process has had acknowledged, repeats included.
    pub fn published_total(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// A shared view of [`Self::published_total`], for metrics.
    pub fn published_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.published)
    }

    /// Stops the relay: waits for a batch in flight to be acknowledged and
    /// recorded, then releases the lease.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the event relay ended abnormally");
        }
    }

    /// Ends the relay at once, as a crash would: nothing is finished or
    /// released (for tests of what a successor does).
    pub fn abort(self) {
        self.task.abort();
    }
}

/// Starts a relay over `store` and `sink` on the current tokio runtime.
pub fn start<S, K>(
    store: Arc<S>,
    sink: K,
    config: RelayConfig,
    clock: Arc<dyn Clock>,
) -> Result<RelayHandle, RelayError>
where
    S: LedgerReader + RelayStore,
    K: EventSink,
{
    config.validate()?;
    let initial = RelayStatus {
        health: RelayHealth::Degraded,
        detail: "starting: not yet connected to the broker".to_owned(),
        lag_events: 0,
    };
    let (status_sender, status) = watch::channel(initial);
    let (stop, stop_receiver) = watch::channel(false);
    let published = Arc::new(AtomicU64::new(0));
    let relay = Relay {
        store,
        sink,
        config,
        clock,
        status: status_sender,
        published: Arc::clone(&published),
    };
    let task = tokio::spawn(relay.run(stop_receiver));
    Ok(RelayHandle {
        status,
        published,
        stop,
        task,
    })
}

/// [`start`] on the system clock.
pub fn start_on_system_clock<S, K>(
    store: Arc<S>,
    sink: K,
    config: RelayConfig,
) -> Result<RelayHandle, RelayError>
where
    S: LedgerReader + RelayStore,
    K: EventSink,
{
    start(store, sink, config, Arc::new(SystemClock))
}

struct Relay<S, K> {
    store: Arc<S>,
    sink: K,
    config: RelayConfig,
    clock: Arc<dyn Clock>,
    status: watch::Sender<RelayStatus>,
    published: Arc<AtomicU64>,
}

/// What the loop carries from one step to the next.
#[derive(Debug, Default)]
struct Progress {
    /// The lease as granted, while this instance believes it holds it.
    lease: Option<RelayLease>,
    /// The last sequence acknowledged and recorded.
    position: u64,
    /// Whether the sink was prepared since its last failure.
    prepared: bool,
    lag_read_at: Option<tokio::time::Instant>,
    lag_events: u64,
}

/// How a step ended, and so how long to pause.
enum Step {
    /// A batch went out: go on at once.
    Published,
    /// Nothing new.
    Drained,
    /// Another instance relays.
    Standby,
}

impl<S, K> Relay<S, K>
where
    S: LedgerReader + RelayStore,
    K: EventSink,
{
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut progress = Progress::default();
        let mut backoff = self.config.backoff_min;
        while !*stop.borrow() {
            let pause = match self.step(&mut progress).await {
                Ok(step) => {
                    backoff = self.config.backoff_min;
                    match step {
                        Step::Published => continue,
                        Step::Drained => self.config.idle_poll,
                        Step::Standby => self.config.standby_poll,
                    }
                }
                Err(error) => {
                    let pause = backoff;
                    backoff = (backoff * 2).min(self.config.backoff_max);
                    self.fail(&mut progress, &error);
                    pause
                }
            };
            tokio::select! {
                _ = stop.changed() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
        self.finish(&progress).await;
    }

    /// One pass of the module's steps.
    async fn step(&self, progress: &mut Progress) -> Result<Step, RelayError> {
        let Some(lease) = self.hold_lease(progress).await? else {
            self.refresh_lag(progress, true).await?;
            self.report(progress, RelayHealth::Standby, "another instance relays");
            return Ok(Step::Standby);
        };
        if !progress.prepared {
            self.sink.prepare().await?;
            progress.prepared = true;
            tracing::info!(relay = %self.config.name, "the event relay is connected to the broker");
        }
        let events = self
            .store
            .events(progress.position, self.config.batch_size)
            .await?;
        let Some(last) = events.last().map(|e| e.sequence) else {
            self.refresh_lag(progress, false).await?;
            self.report(
                progress,
                RelayHealth::Healthy,
                "relaying; the outbox is drained",
            );
            return Ok(Step::Drained);
        };
        let prefix = &self.config.subject_prefix;
        let messages = events
            .iter()
            .map(|event| Message::of(event, prefix))
            .collect::<Result<Vec<_>, _>>()?;
        self.publish(&messages, lease).await?;
        self.record(progress, last, messages.len()).await?;
        self.refresh_lag(progress, false).await?;
        self.report(progress, RelayHealth::Healthy, "relaying");
        Ok(Step::Published)
    }

    /// Takes or renews the lease when half of it has passed; `None` when
    /// another instance holds it.
    async fn hold_lease(&self, progress: &mut Progress) -> Result<Option<RelayLease>, RelayError> {
        let now = self.clock.now();
        let half = chrono_of(self.config.lease_duration / 2);
        if let Some(lease) = progress.lease.filter(|l| now + half < l.expires_at) {
            return Ok(Some(lease));
        }
        let outcome = self
            .store
            .take_relay_lease(
                &self.config.name,
                self.config.owner,
                now,
                chrono_of(self.config.lease_duration),
            )
            .await?;
        match outcome {
            LeaseOutcome::Held { lease, position } => {
                // A lease this instance let expire may have been another's
                // since: resume from the stored position, not its own.
                if progress.lease.is_none_or(|held| !held.is_live(now)) {
                    tracing::info!(relay = %self.config.name, position, "took the event relay's lease");
                    progress.position = position;
                }
                progress.lease = Some(lease);
                Ok(Some(lease))
            }
            LeaseOutcome::Refused { holder } => {
                if progress.lease.take().is_some() {
                    tracing::warn!(relay = %self.config.name, holder = %holder.owner, "lost the event relay's lease");
                }
                Ok(None)
            }
        }
    }

    /// Publishes a batch, giving up before the lease could expire.
    async fn publish(&self, messages: &[Message], lease: RelayLease) -> Result<(), RelayError> {
        let left = (lease.expires_at - self.clock.now())
            .to_std()
            .unwrap_or_default()
            .saturating_sub(LEASE_MARGIN);
        let timeout = self.config.publish_timeout.min(left);
        match tokio::time::timeout(timeout, self.sink.publish(messages)).await {
            Ok(Ok(published)) => {
                if published.duplicates > 0 {
                    tracing::info!(
                        relay = %self.config.name,
                        duplicates = published.duplicates,
                        "the broker already had some events of the batch (a re-publish after a restart)"
                    );
                }
                Ok(())
            }
            Ok(Err(error)) => Err(error.into()),
            Err(_) => Err(SinkError::Unavailable(format!(
                "no acknowledgement within {} ms",
                timeout.as_millis()
            ))
            .into()),
        }
    }

    /// Moves the stored position after an acknowledged batch.
    async fn record(
        &self,
        progress: &mut Progress,
        last: u64,
        count: usize,
    ) -> Result<(), RelayError> {
        debug_assert!(last > progress.position, "a batch lies past the position");
        let update = self
            .store
            .advance_relay_position(&self.config.name, self.config.owner, last, self.clock.now())
            .await?;
        self.published
            .fetch_add(u64::try_from(count).unwrap_or(u64::MAX), Ordering::Relaxed);
        match update {
            PositionUpdate::Moved => progress.position = last,
            PositionUpdate::LeaseNotHeld => {
                tracing::warn!(relay = %self.config.name, "lost the event relay's lease while publishing");
                progress.lease = None;
            }
            PositionUpdate::Behind { position } => {
                // Only a successor moves the position past ours: this
                // instance's lease was taken over, whatever it believed.
                tracing::warn!(relay = %self.config.name, position, "another instance relayed past this one");
                progress.lease = None;
            }
        }
        Ok(())
    }

    /// Reads the lag unless it was read less than [`LAG_REFRESH_INTERVAL`]
    /// ago (or always, with `now`).
    async fn refresh_lag(&self, progress: &mut Progress, now: bool) -> Result<(), RelayError> {
        let fresh = progress
            .lag_read_at
            .is_some_and(|at| at.elapsed() < LAG_REFRESH_INTERVAL);
        if now || !fresh {
            progress.lag_events = self.store.relay_lag(&self.config.name).await?;
            progress.lag_read_at = Some(tokio::time::Instant::now());
        }
        Ok(())
    }

    /// Publishes the status; logs the changes of health.
    fn report(&self, progress: &Progress, health: RelayHealth, detail: &str) {
        let before = self.status.borrow().health;
        if before != health {
            match health {
                RelayHealth::Healthy => {
                    tracing::info!(relay = %self.config.name, "the event relay is healthy")
                }
                RelayHealth::Standby => {
                    tracing::info!(relay = %self.config.name, "the event relay stands by: {detail}")
                }
                RelayHealth::Degraded => {
                    tracing::warn!(relay = %self.config.name, "the event relay is degraded: {detail}")
                }
            }
        }
        self.status.send_replace(RelayStatus {
            health,
            detail: detail.to_owned(),
            lag_events: progress.lag_events,
        });
    }

    /// Records a failed step: the sink is prepared again before the next
    /// publish, and the status says why.
    fn fail(&self, progress: &mut Progress, error: &RelayError) {
        if matches!(error, RelayError::Sink(_)) {
            progress.prepared = false;
        }
        self.report(progress, RelayHealth::Degraded, &error.to_string());
    }

    /// Releases the lease after the last step, so a standby takes over now.
    async fn finish(&self, progress: &Progress) {
        if progress.lease.is_some() {
            match self
                .store
                .release_relay_lease(&self.config.name, self.config.owner)
                .await
            {
                Ok(()) => {
                    tracing::info!(relay = %self.config.name, "released the event relay's lease")
                }
                Err(error) => {
                    tracing::warn!(relay = %self.config.name, %error, "cannot release the event relay's lease; it expires by itself")
                }
            }
        }
        self.report(progress, RelayHealth::Standby, "stopped");
    }
}

/// A configured duration as the store's; every one is bounded by
/// [`RelayConfig::validate`], far inside the range.
fn chrono_of(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}
