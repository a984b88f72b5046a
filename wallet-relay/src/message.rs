//! What the relay publishes for one outbox event, whatever the broker.

use uuid::Uuid;
use wallet_core::{FeedEvent, StoredEvent};

use crate::error::RelayError;

/// The subject prefix when none is configured.
pub const SUBJECT_PREFIX_DEFAULT: &str = "wallet.events";
/// The longest subject prefix, in bytes (NATS subjects stay short).
pub const SUBJECT_PREFIX_LENGTH_MAX: usize = 128;
/// The header JetStream de-duplicates on: the event id.
pub const MESSAGE_ID_HEADER: &str = "Nats-Msg-Id";
/// The header carrying the event's place in the outbox.
pub const SEQUENCE_HEADER: &str = "Wallet-Sequence";

/// The first tokens of every subject, such as `wallet.events`: dot-separated
/// tokens of printable ASCII, none empty, no wildcards (`*`, `>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectPrefix(String);

impl SubjectPrefix {
    /// Checks the prefix.
    pub fn parse(text: &str) -> Result<Self, RelayError> {
        let token_ok = |token: &str| {
            !token.is_empty()
                && token
                    .chars()
                    .all(|c| c.is_ascii_graphic() && c != '*' && c != '>')
        };
        if text.len() > SUBJECT_PREFIX_LENGTH_MAX || !text.split('.').all(token_ok) {
            return Err(RelayError::Config(format!(
                "a subject prefix is dot-separated tokens of printable ASCII without '*' or '>', \
                 at most {SUBJECT_PREFIX_LENGTH_MAX} bytes: {text:?}"
            )));
        }
        Ok(SubjectPrefix(text.to_owned()))
    }

    /// The prefix as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The subjects of every event type: `{prefix}.>`.
    pub fn wildcard(&self) -> String {
        format!("{}.>", self.0)
    }
}

impl Default for SubjectPrefix {
    fn default() -> Self {
        SubjectPrefix(SUBJECT_PREFIX_DEFAULT.to_owned())
    }
}

/// One event ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `{prefix}.{type}`.
    pub subject: String,
    /// The event id: the broker drops a repeat of it (`Nats-Msg-Id`).
    pub id: Uuid,
    /// The event's sequence in the outbox (`Wallet-Sequence`).
    pub sequence: u64,
    /// The event object of the admin feed, as JSON.
    pub body: Vec<u8>,
}

impl Message {
    /// The message for `event` under `prefix`.
    pub fn of(event: &StoredEvent, prefix: &SubjectPrefix) -> Result<Self, RelayError> {
        let feed = FeedEvent::from(event);
        let body = serde_json::to_vec(&feed)
            .map_err(|error| RelayError::Encode(format!("event {}: {error}", event.event.id)))?;
        Ok(Message {
            subject: format!("{}.{}", prefix.as_str(), feed.event_type),
            id: event.event.id,
            sequence: event.sequence,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_checked() {
        assert_eq!(SubjectPrefix::default().wildcard(), "wallet.events.>");
        assert!(SubjectPrefix::parse("a.b-c_d").is_ok());
        for bad in ["", ".", "a.", ".a", "a..b", "a.*", "a.>", "a b", "é"] {
            assert!(SubjectPrefix::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(SubjectPrefix::parse(&"a".repeat(SUBJECT_PREFIX_LENGTH_MAX + 1)).is_err());
    }
}
