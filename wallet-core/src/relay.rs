//! What a store keeps for the event relay: how far it has delivered the
//! outbox (its position) and which instance may deliver (its lease).
//!
//! The relay publishes the outbox to a message broker. Its position is the
//! last sequence the broker acknowledged, so a relay that stops at any point
//! resumes from there and skips nothing. Several service instances may run
//! a relay; the lease makes one of them the deliverer at a time, and its
//! expiry lets another take over when the holder dies. Only the holder of
//! an unexpired lease moves the position, and only forward, so a relay that
//! lost its lease (paused, cut off) cannot move the position back over what
//! its successor has delivered. The port is [`crate::store::RelayStore`].

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::WalletError;

/// The longest relay name, in characters.
pub const RELAY_NAME_LENGTH_MAX: usize = 64;

/// The name of one relay's position and lease: the stream it feeds, so a
/// new stream starts from the beginning of the outbox. ASCII letters,
/// digits, `-` and `_`, at most [`RELAY_NAME_LENGTH_MAX`] characters (what
/// a JetStream stream name may be, and a key every store can hold).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelayName(String);

impl RelayName {
    /// Checks the name.
    pub fn parse(text: &str) -> Result<Self, WalletError> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if text.is_empty() || text.len() > RELAY_NAME_LENGTH_MAX || !text.chars().all(allowed) {
            return Err(WalletError::Validation(format!(
                "a relay name is 1 to {RELAY_NAME_LENGTH_MAX} ASCII letters, digits, '-' or '_'"
            )));
        }
        Ok(RelayName(text.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RelayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who holds a relay's lease, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayLease {
    /// The instance's id, fresh for every process.
    pub owner: Uuid,
    /// The lease is free from this instant on, unless renewed before.
    pub expires_at: DateTime<Utc>,
}

impl RelayLease {
    /// Whether the lease still binds at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }
}

/// A relay's stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayState {
    /// The last sequence delivered; 0 before the first delivery.
    pub position: u64,
    /// The lease, live or expired, as last written; `None` if never taken
    /// or released.
    pub lease: Option<RelayLease>,
}

impl RelayState {
    /// Whether `owner` holds a lease live at `now`.
    pub fn is_held_by(&self, owner: Uuid, now: DateTime<Utc>) -> bool {
        self.lease
            .is_some_and(|lease| lease.owner == owner && lease.is_live(now))
    }
}

/// The answer to a request for the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The caller holds the lease until `lease.expires_at`; `position` is
    /// where delivery resumes.
    Held { lease: RelayLease, position: u64 },
    /// Another owner holds a live lease.
    Refused { holder: RelayLease },
}

/// The answer to a request to move the position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionUpdate {
    /// The position is now the one asked for.
    Moved,
    /// The caller does not hold a live lease; nothing changed.
    LeaseNotHeld,
    /// The stored position is past the one asked for; nothing changed.
    Behind { position: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_names_are_checked() {
        assert_eq!(
            RelayName::parse("WALLET_EVENTS").map(|n| n.to_string()),
            Ok("WALLET_EVENTS".to_owned())
        );
        assert!(RelayName::parse("a-b_9").is_ok());
        assert!(RelayName::parse(&"x".repeat(RELAY_NAME_LENGTH_MAX)).is_ok());
        for bad in [
            "",
            "a.b",
            "a b",
            "a>",
            "é",
            &"x".repeat(RELAY_NAME_LENGTH_MAX + 1),
        ] {
            assert!(RelayName::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_lease_binds_until_its_expiry() {
        let expires_at = DateTime::from_timestamp(100, 0).unwrap_or_default();
        let lease = RelayLease {
            owner: Uuid::nil(),
            expires_at,
        };
        assert!(lease.is_live(expires_at - chrono::Duration::microseconds(1)));
        assert!(!lease.is_live(expires_at));
    }
}
