//! Test support that embedders and the other crates of the workspace share:
//! the invariant checker and the store-contract suite. Pure code, no I/O.
//!
//! Compiled only with the `testing` feature, which dependents enable in
//! their dev-dependencies, so that no normal build carries test code.

pub mod contract;
pub mod invariants;
mod reversal_contract;
mod transfer_contract;
