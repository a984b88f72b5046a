//! The store contract, written once and run against every store.
