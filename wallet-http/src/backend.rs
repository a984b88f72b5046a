//! The stores the service can run on, and what it needs of them beyond the
//! ports of the core.

use std::future::Future;

use chrono::{DateTime, Utc};
use wallet_core::{InMemoryStore, RelayStore, Store, WalletError};

/// A store the service can run on; it keeps the event relay's position
/// and lease too.
pub trait Backend: Store + RelayStore {
    /// A short name for logs and the health document (`memory`, `postgres`).
    fn kind(&self) -> &'static str;

    /// Deletes idempotency records created before `older_than`; returns how
    /// many went.
    fn purge_idempotency_records(
        &self,
        older_than: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, WalletError>> + Send;
}

impl Backend for InMemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    /// The in-memory store keeps its records for the life of the process,
    /// which is all it keeps anything for.
    async fn purge_idempotency_records(
        &self,
        _older_than: DateTime<Utc>,
    ) -> Result<u64, WalletError> {
        Ok(0)
    }
}
