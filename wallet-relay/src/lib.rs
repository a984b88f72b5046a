//! # wallet-relay
//!
//! Delivers the wallet's domain events to other services: a relay that
//! reads the transactional outbox after its stored position, publishes the
//! events in order through an [`EventSink`], waits for the broker's
//! acknowledgements, and only then moves the position. The loop is written
//! once against ports (the store's [`wallet_core::RelayStore`] and
//! [`wallet_core::LedgerReader`], and the sink), so it runs over any store
//! and is tested with the [`InMemorySink`].
//!
//! The NATS JetStream sink is behind the `nats` feature ([`nats`]).
//!
//! What "once" means: the relay delivers every event at least once, and
//! after a crash between the broker's acknowledgement and the position's
//! move it publishes the same events again with the same message ids
//! (the event ids). JetStream drops those repeats within the stream's
//! duplicate window (at least 2 minutes), so a consumer of the stream sees
//! each event once. A re-publish later than the window (a relay stopped
//! for longer, with its position behind what the stream holds) would be
//! stored again: consumers that must be exact de-duplicate on the event id
//! or keep the highest `Wallet-Sequence` they applied.

mod error;
mod memory;
mod message;
mod relay;
mod sink;

#[cfg(feature = "nats")]
pub mod nats;

pub use error::{RelayError, SinkError};
pub use memory::InMemorySink;
pub use message::{
    Message, SubjectPrefix, MESSAGE_ID_HEADER, SEQUENCE_HEADER, SUBJECT_PREFIX_DEFAULT,
    SUBJECT_PREFIX_LENGTH_MAX,
};
pub use relay::{
    start, start_on_system_clock, RelayConfig, RelayHandle, RelayHealth, RelayStatus, BACKOFF_MAX,
    BATCH_SIZE_DEFAULT, BATCH_SIZE_MAX, LAG_REFRESH_INTERVAL, LEASE_DURATION_MAX,
};
pub use sink::{EventSink, Published};
