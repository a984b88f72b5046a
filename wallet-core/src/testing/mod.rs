//! Test support that embedders and the other crates of the workspace share:
//! the invariant checker and the store-contract suite. Pure code, no I/O.

pub mod contract;
pub mod invariants;
