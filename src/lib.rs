//! Facade over the wallet ledger crates.
//!
//! `wallet::core` is always there; `wallet::pg` comes with the `postgres`
//! feature and `wallet::http` with the `http` feature.
pub use wallet_core as core;
#[cfg(feature = "http")]
pub use wallet_http as http;
#[cfg(feature = "postgres")]
pub use wallet_pg as pg;
