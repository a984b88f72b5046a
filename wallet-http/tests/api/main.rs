//! End-to-end tests of the HTTP service: one test binary, the service
//! spawned on 127.0.0.1:0 per test against a fresh PostgreSQL database
//! (`DATABASE_URL`, see `wallet_pg::testing`) and a stand-in identity
//! provider.

mod audit;
mod auth;
mod bad_input;
mod binary;
mod document;
mod errors;
mod helpers;
mod idempotency;
#[path = "../common/idp.rs"]
mod idp;
mod operations;
mod permissions;
mod persistence;
mod relay;
mod replica;
mod reversals;
mod routes;
mod transfers;
