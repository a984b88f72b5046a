//! The stores the service can run on, and what it needs of them beyond the
//! ports of the core.

use wallet_core::{InMemoryStore, RelayStore, Store};

/// A store the service can run on; it keeps the event relay's position
/// and lease too.
pub trait Backend: Store + RelayStore {
    /// A short name for logs and the health document (`memory`, `postgres`).
    fn kind(&self) -> &'static str;

    /// What the store's batching writer has done, for `/metrics`; `None`
    /// for a store that does not batch.
    fn batch_stats(&self) -> Option<wallet_pg::BatchStats> {
        None
    }
}

impl Backend for InMemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }
}
