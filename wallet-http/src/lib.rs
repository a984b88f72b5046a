//! # wallet-http
//!
//! The standalone HTTP service of the wallet ledger: the routes of the HTTP
//! contract over [`wallet_core::WalletService`], on the PostgreSQL store of
//! `wallet-pg` or the in-memory store of `wallet-core`.
//!
//! - [`spec`]: what each route is (path, permission, success status), written
//!   once; it depends on nothing else of the crate;
//! - [`routes`]: the route table (each route's description and handler) and
//!   the router that serves it;
//! - [`gate`]: the one check of a route's permission, before its handler;
//! - [`openapi`] and [`docs`]: the OpenAPI document generated from the route
//!   table, and the Swagger UI page that renders it;
//! - [`app`]: state, the caller and body extractors, and the layer around
//!   every request (request id, span, timeout, metrics, problem documents);
//! - [`auth`]: bearer tokens (OpenID discovery, key cache, RS256/ES256);
//! - [`problem`]: the one mapping from the core's errors to HTTP;
//! - [`dto`] and [`input`]: what goes out and what comes in;
//! - [`constraints`]: what the OpenAPI document says of both, from the
//!   core's limits and the running currency table;
//! - [`config`], [`server`], [`dev`]: running it; [`audit`]: `wallet-http audit`;
//! - [`relay`]: the event relay to NATS, when `WALLET_NATS_URL` is set.

pub mod app;
pub mod audit;
pub mod auth;
pub mod backend;
pub mod config;
pub mod constraints;
pub mod dev;
pub mod docs;
pub mod dto;
pub mod gate;
pub mod input;
pub mod metrics;
pub mod openapi;
pub mod pg;
pub mod problem;
pub mod relay;
pub mod replica;
pub mod routes;
pub mod server;
pub mod spec;

pub use app::{AppState, HttpOptions};
pub use auth::{JwtVerifier, KeyRing, TokenVerifier};
pub use backend::Backend;
pub use routes::router;
pub use server::{application, serve, BackgroundOptions};

/// The version of the service.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The largest request body accepted, in bytes.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;
