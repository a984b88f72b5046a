//! # wallet-http
//!
//! The standalone HTTP service of the wallet ledger: the routes of the HTTP
//! contract over [`wallet_core::WalletService`], on the PostgreSQL store of
//! `wallet-pg` or the in-memory store of `wallet-core`.
//!
//! - [`routes`]: the route table (each route's description and handler);
//! - [`app`]: state, the caller extractor, the router and the layer around
//!   every request (request id, span, timeout, metrics, problem documents);
//! - [`auth`]: bearer tokens (OpenID discovery, key cache, RS256/ES256);
//! - [`problem`]: the one mapping from the core's errors to HTTP;
//! - [`dto`] and [`input`]: what goes out and what comes in;
//! - [`config`], [`server`], [`dev`]: running it;
//! - [`relay`]: the event relay to NATS, when `WALLET_NATS_URL` is set.

pub mod app;
pub mod auth;
pub mod backend;
pub mod config;
pub mod dev;
pub mod dto;
pub mod input;
pub mod metrics;
pub mod openapi;
pub mod pg;
pub mod problem;
pub mod relay;
pub mod routes;
pub mod server;
pub mod spec;

pub use app::{router, AppState, HttpOptions};
pub use auth::{JwtVerifier, KeyRing, TokenVerifier};
pub use backend::Backend;
pub use server::{application, serve, BackgroundOptions};

/// The version of the service.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The largest request body accepted, in bytes.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;
/// The API reference page: renders `/openapi.json` with no outside scripts.
pub const DOCS_HTML: &str = include_str!("docs.html");
