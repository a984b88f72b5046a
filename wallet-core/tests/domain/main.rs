//! One test for each rule of the domain: the status table, every error the
//! core produces, money and limits, holds, lazy expiry, points, events,
//! transaction signs, idempotency and the service's retries. Each runs the
//! service over the in-memory store on a manual clock with sequential ids.

#[path = "../common/mod.rs"]
mod common;

mod errors;
mod events;
mod holds;
mod idempotency;
mod money;
mod points;
mod status;
mod support;
