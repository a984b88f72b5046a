//! A sink in memory, for tests: it keeps what it is given, drops repeats by
//! message id like JetStream (with a window that never closes), and can be
//! told to fail.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use uuid::Uuid;

use crate::error::SinkError;
use crate::message::Message;
use crate::sink::{EventSink, Published};

/// The in-memory sink. Share it with an `Arc`.
#[derive(Debug, Default)]
pub struct InMemorySink {
    state: Mutex<SinkState>,
}

#[derive(Debug, Default)]
struct SinkState {
    stored: Vec<Message>,
    ids: HashSet<Uuid>,
    down: bool,
    /// Store the next batch, then answer as if its acknowledgements were
    /// lost.
    lose_next_acks: bool,
    publishes: u64,
    /// How long each batch waits for its acknowledgements.
    ack_delay: Duration,
}

impl InMemorySink {
    /// An empty, working sink.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, SinkState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every message stored, in the order stored, repeats dropped.
    pub fn messages(&self) -> Vec<Message> {
        self.state().stored.clone()
    }

    /// Every message offered, counting repeats.
    pub fn publishes(&self) -> u64 {
        self.state().publishes
    }

    /// While down, every call fails with `Unavailable` and stores nothing.
    pub fn set_down(&self, down: bool) {
        self.state().down = down;
    }

    /// Every batch waits `delay` for its acknowledgements (after it is
    /// stored), as over a slow link.
    pub fn delay_acknowledgements(&self, delay: Duration) {
        self.state().ack_delay = delay;
    }

    /// The next batch is stored but reported as failed, as when a broker's
    /// acknowledgements are lost on the way back.
    pub fn lose_next_acknowledgements(&self) {
        self.state().lose_next_acks = true;
    }
}

impl EventSink for InMemorySink {
    async fn prepare(&self) -> Result<(), SinkError> {
        if self.state().down {
            return Err(SinkError::Unavailable("the in-memory sink is down".into()));
        }
        Ok(())
    }

    async fn publish(&self, messages: &[Message]) -> Result<Published, SinkError> {
        let (result, delay) = self.store(messages);
        tokio::time::sleep(delay).await;
        result
    }
}

impl InMemorySink {
    /// Stores a batch at once; the answer and how long to wait before it.
    fn store(&self, messages: &[Message]) -> (Result<Published, SinkError>, Duration) {
        let mut state = self.state();
        let delay = state.ack_delay;
        if state.down {
            let down = SinkError::Unavailable("the in-memory sink is down".into());
            return (Err(down), Duration::ZERO);
        }
        let mut published = Published::default();
        for message in messages {
            state.publishes += 1;
            if state.ids.insert(message.id) {
                state.stored.push(message.clone());
            } else {
                published.duplicates += 1;
            }
        }
        if std::mem::take(&mut state.lose_next_acks) {
            let lost = SinkError::Unavailable("acknowledgements lost".into());
            return (Err(lost), delay);
        }
        (Ok(published), delay)
    }
}
