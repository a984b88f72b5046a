//! The stores the service can run on, and what it needs of them beyond the
//! ports of the core.

use wallet_core::{InMemoryStore, Store};

/// A store the service can run on.
pub trait Backend: Store {
    /// A short name for logs and the health document (`memory`, `postgres`).
    fn kind(&self) -> &'static str;
}

impl Backend for InMemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }
}
