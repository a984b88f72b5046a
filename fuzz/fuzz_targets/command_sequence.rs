//! Decodes arbitrary bytes into a sequence of wallet and point commands and
//! clock jumps, runs them through the service over the in-memory store and
//! through the reference model, and checks every invariant after each step.
//!
//! The driver is the one the wallet-core tests run (`tests/common`), so the
//! regular test suite exercises this body too.
#![no_main]

#[allow(dead_code, unused_imports)]
#[path = "../../wallet-core/tests/common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(problem) = common::model::Driver::run_bytes(data) {
        panic!("{problem}");
    }
});
