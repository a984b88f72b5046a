//! What can go wrong while relaying.

use thiserror::Error;
use wallet_core::WalletError;

/// Why a sink could not publish.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SinkError {
    /// The broker cannot be reached or did not acknowledge in time.
    #[error("the broker is unreachable: {0}")]
    Unavailable(String),
    /// The broker answered with a refusal (no such stream, a bad setting).
    #[error("the broker refused: {0}")]
    Rejected(String),
}

/// Why a relay step failed. Every one is retried after a backoff.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RelayError {
    /// The store did not answer.
    #[error("the store failed: {0}")]
    Store(#[from] WalletError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// An event could not be turned into a message.
    #[error("cannot encode an event: {0}")]
    Encode(String),
    /// A setting is invalid (found before the relay starts).
    #[error("invalid relay setting: {0}")]
    Config(String),
}
