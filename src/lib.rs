//! Facade over the wallet ledger crates.
//!
//! `wallet::core` is always there; `wallet::pg` comes with the `postgres`
//! feature, `wallet::http` with the `http` feature and `wallet::relay`
//! (the event relay and its NATS sink) with the `relay` feature.
pub use wallet_core as core;
#[cfg(feature = "http")]
pub use wallet_http as http;
#[cfg(feature = "postgres")]
pub use wallet_pg as pg;
#[cfg(feature = "relay")]
pub use wallet_relay as relay;
