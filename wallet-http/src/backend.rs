//! The stores the service can run on, and what it needs of them beyond the
//! ports of the core.

use std::future::Future;

use wallet_core::{InMemoryStore, RelayStore, Store, WalletError};
use wallet_pg::ReplicaLag;

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

    /// How far the read replica is behind, measured now, for `/health` and
    /// `/metrics`; `None` for a store without one.
    fn replica_lag(&self) -> impl Future<Output = Option<Result<ReplicaLag, WalletError>>> + Send {
        std::future::ready(None)
    }
}

impl Backend for InMemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }
}
