//! The NATS JetStream sink (feature `nats`, over `async-nats`).
//!
//! One client per sink, connected on the first [`EventSink::prepare`] and
//! reconnecting by itself for the life of the process (with a pause that
//! grows to at most [`RECONNECT_DELAY_MAX`], so it is back within seconds
//! of the broker). The stream is looked up before the first publish and
//! after every failure, and created when missing; an existing stream is
//! left exactly as it is, whatever its settings.
//!
//! A batch is sent as asynchronous publishes, one after the other on the
//! one connection (so the server receives them in order), and then every
//! acknowledgement is awaited together: a backlog drains at the speed of
//! the connection, not of one round trip per event.

use std::future::IntoFuture;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config as StreamConfig, StorageType};
use async_nats::jetstream::{self, Context};
use async_nats::{ConnectOptions, Event, ServerAddr};
use bytes::Bytes;
use tokio::sync::OnceCell;
use wallet_core::RelayName;

use crate::error::{RelayError, SinkError};
use crate::message::{Message, SubjectPrefix, SEQUENCE_HEADER};
use crate::sink::{EventSink, Published};

pub mod testing;

/// The stream's name when none is configured.
pub const STREAM_DEFAULT: &str = "WALLET_EVENTS";
/// The shortest duplicate window a created stream gets: a relay that
/// resumes within it never stores an event twice.
pub const DUPLICATE_WINDOW_MIN: Duration = Duration::from_secs(2 * 60);
/// The longest wait for the TCP connection to the broker.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest wait for an answer of the JetStream API or an acknowledgement.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(4);
/// The longest pause between two reconnection attempts.
pub const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(1);
/// The pause before the first reconnection attempt, grown per attempt.
const RECONNECT_DELAY_STEP: Duration = Duration::from_millis(100);

/// Where and how to publish.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// The server, such as `nats://127.0.0.1:4222`.
    pub url: String,
    /// The stream the events go to (created when missing).
    pub stream: RelayName,
    /// The first tokens of every subject; the stream takes `{prefix}.>`.
    pub subject_prefix: SubjectPrefix,
    /// The duplicate window of a stream this sink creates; raised to
    /// [`DUPLICATE_WINDOW_MIN`] when shorter.
    pub duplicate_window: Duration,
}

impl NatsConfig {
    /// The defaults for `url`: stream `WALLET_EVENTS`, prefix `wallet.events`.
    pub fn new(url: impl Into<String>) -> Self {
        NatsConfig {
            url: url.into(),
            stream: RelayName::parse(STREAM_DEFAULT)
                .unwrap_or_else(|_| unreachable!("the default stream name is valid")),
            subject_prefix: SubjectPrefix::default(),
            duplicate_window: DUPLICATE_WINDOW_MIN,
        }
    }

    /// Checks the server URL (each of a comma-separated list), so that a
    /// typo is reported at start-up instead of as a relay that never connects.
    pub fn validate(&self) -> Result<(), RelayError> {
        for url in self.url.split(',') {
            url.trim()
                .parse::<ServerAddr>()
                .map_err(|error| RelayError::Config(format!("NATS URL {url:?}: {error}")))?;
        }
        Ok(())
    }

    /// The configuration of the stream this sink creates when missing.
    pub fn stream_config(&self) -> StreamConfig {
        StreamConfig {
            name: self.stream.as_str().to_owned(),
            subjects: vec![self.subject_prefix.wildcard()],
            storage: StorageType::File,
            duplicate_window: self.duplicate_window.max(DUPLICATE_WINDOW_MIN),
            ..StreamConfig::default()
        }
    }
}

/// Publishes to a JetStream stream.
pub struct NatsSink {
    config: NatsConfig,
    context: OnceCell<Context>,
    stream_ready: AtomicBool,
}

impl NatsSink {
    /// A sink that connects on its first use.
    pub fn new(config: NatsConfig) -> Self {
        NatsSink {
            config,
            context: OnceCell::new(),
            stream_ready: AtomicBool::new(false),
        }
    }

    /// The JetStream context, connecting the client the first time. The
    /// client retries its first connection too, so this only fails on a
    /// URL it cannot use.
    async fn context(&self) -> Result<&Context, SinkError> {
        self.context
            .get_or_try_init(|| async {
                let client = ConnectOptions::new()
                    .retry_on_initial_connect()
                    .connection_timeout(CONNECT_TIMEOUT)
                    .max_reconnects(None)
                    .reconnect_delay_callback(reconnect_delay)
                    .event_callback(log_event)
                    .connect(self.config.url.as_str())
                    .await
                    .map_err(|error| SinkError::Rejected(format!("cannot connect: {error}")))?;
                Ok(jetstream::ContextBuilder::new()
                    .timeout(REQUEST_TIMEOUT)
                    .ack_timeout(REQUEST_TIMEOUT)
                    .build(client))
            })
            .await
    }
}

/// The pause before reconnection attempt `attempts`.
fn reconnect_delay(attempts: usize) -> Duration {
    let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
    RECONNECT_DELAY_STEP
        .saturating_mul(attempts)
        .min(RECONNECT_DELAY_MAX)
}

/// Logs what the client tells of its connection.
async fn log_event(event: Event) {
    match event {
        Event::Connected => tracing::info!("connected to the NATS server"),
        Event::Disconnected => tracing::warn!("lost the NATS server; reconnecting"),
        Event::LameDuckMode => tracing::warn!("the NATS server is shutting down (lame duck mode)"),
        Event::Draining | Event::Closed => {
            tracing::info!("the NATS connection is closing: {event}")
        }
        Event::SlowConsumer(_) | Event::ServerError(_) | Event::ClientError(_) => {
            tracing::warn!("NATS: {event}")
        }
    }
}

fn unavailable(error: impl std::fmt::Display) -> SinkError {
    SinkError::Unavailable(error.to_string())
}

impl EventSink for NatsSink {
    async fn prepare(&self) -> Result<(), SinkError> {
        let context = self.context().await?;
        if self.stream_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let stream = context
            .get_or_create_stream(self.config.stream_config())
            .await
            .map_err(|error| unavailable(format!("stream {}: {error}", self.config.stream)))?;
        let window = stream.cached_info().config.duplicate_window;
        if window < DUPLICATE_WINDOW_MIN {
            tracing::warn!(
                stream = %self.config.stream,
                window_seconds = window.as_secs(),
                "the existing stream's duplicate window is under 2 minutes: a relay that resumes later than that may store an event twice"
            );
        }
        self.stream_ready.store(true, Ordering::Release);
        Ok(())
    }

    async fn publish(&self, messages: &[Message]) -> Result<Published, SinkError> {
        let result = self.publish_batch(messages).await;
        if result.is_err() {
            // Look the stream up again before the next batch: it may have
            // been deleted, or the server replaced.
            self.stream_ready.store(false, Ordering::Release);
        }
        result
    }
}

impl NatsSink {
    async fn publish_batch(&self, messages: &[Message]) -> Result<Published, SinkError> {
        let context = self.context().await?;
        let mut acks = Vec::with_capacity(messages.len());
        for message in messages {
            let publish = PublishMessage::build()
                .payload(Bytes::from(message.body.clone()))
                .message_id(message.id.to_string())
                .header(SEQUENCE_HEADER, message.sequence.to_string());
            let ack = context
                .send_publish(message.subject.clone(), publish)
                .await
                .map_err(publish_error)?;
            acks.push(ack.into_future());
        }
        let mut published = Published::default();
        for ack in futures::future::join_all(acks).await {
            if ack.map_err(publish_error)?.duplicate {
                published.duplicates += 1;
            }
        }
        Ok(published)
    }
}

fn publish_error(error: jetstream::context::PublishError) -> SinkError {
    match error.kind() {
        PublishErrorKind::StreamNotFound
        | PublishErrorKind::WrongLastMessageId
        | PublishErrorKind::WrongLastSequence
        | PublishErrorKind::MaxPayloadExceeded => SinkError::Rejected(error.to_string()),
        PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::MaxAckPending
        | PublishErrorKind::Other => unavailable(error),
    }
}
