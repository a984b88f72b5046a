//! The port the relay publishes through.

use std::future::Future;

use crate::error::SinkError;
use crate::message::Message;

/// What a sink reports of one published batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Published {
    /// Messages the broker acknowledged as repeats of ones it already had.
    pub duplicates: u64,
}

/// A broker the relay publishes to.
pub trait EventSink: Send + Sync + 'static {
    /// Makes the broker ready: connects, and creates the destination when
    /// missing (leaving an existing one as it is). Called before the first
    /// publish and again after any failure; MUST be cheap when already
    /// ready, and MUST NOT change an existing destination's settings.
    fn prepare(&self) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Publishes `messages` in their order and returns once the broker has
    /// acknowledged every one of them. It MAY send them all before awaiting
    /// the acknowledgements (that is what makes a backlog drain fast).
    /// MUST NOT return `Ok` unless each message is stored by the broker;
    /// when it fails, any of them MAY have been stored: the relay publishes
    /// them again, and the broker MUST drop a message whose id it already
    /// has (within its duplicate window), answering it as a duplicate.
    fn publish(
        &self,
        messages: &[Message],
    ) -> impl Future<Output = Result<Published, SinkError>> + Send;
}

/// A shared sink is a sink.
impl<T: EventSink> EventSink for std::sync::Arc<T> {
    async fn prepare(&self) -> Result<(), SinkError> {
        self.as_ref().prepare().await
    }

    async fn publish(&self, messages: &[Message]) -> Result<Published, SinkError> {
        self.as_ref().publish(messages).await
    }
}
