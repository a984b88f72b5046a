//! Runs the fuzz target's body (decode bytes into steps, drive them through
//! the service and the reference model, check every invariant after each
//! step) on random byte strings, so the regular test suite exercises it.
//! `PROPTEST_CASES` raises the number of inputs.

mod common;

use common::model::{assert_reached, tally, Driver};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn random_bytes_never_break_an_invariant(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Err(problem) = Driver::run_bytes(&bytes) {
            prop_assert!(false, "{}", problem);
        }
    }
}

/// Inputs that once mattered, replayed on every run.
#[test]
fn seed_inputs_run_clean() {
    for seed in [
        &b""[..],
        &[0u8; 64][..],
        &[255u8; 64][..],
        &(0u8..=255).collect::<Vec<_>>()[..],
    ] {
        Driver::run_bytes(seed).unwrap_or_else(|problem| panic!("{problem}"));
    }
}

/// Random inputs reach deep states: every kind of command succeeds, and
/// the interesting failures, replays and expiries all happen. Without this
/// the tests above could pass by never getting past `wallet_not_found`.
#[test]
fn random_inputs_reach_every_kind_of_outcome() {
    let mut seen = std::collections::BTreeMap::new();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    // Steps between wallets share the input with the single-wallet ones,
    // so the rarer outcomes (an exchange rounding to zero) need this many.
    for _ in 0..2000 {
        let length = 64 + (state % 448) as usize;
        let bytes: Vec<u8> = (0..length)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let mut driver = Driver::new();
        driver
            .run_decoded(&bytes)
            .unwrap_or_else(|problem| panic!("{problem}"));
        tally(&mut seen, driver);
    }
    let wanted = [
        "Deposit ok",
        "Withdraw ok",
        "Exchange ok",
        "CreateHold ok",
        "ExecuteHold ok",
        "ReleaseHold ok",
        "CancelHold ok",
        "FreezeWallet ok",
        "UnfreezeWallet ok",
        "EarnPoints ok",
        "SpendPoints ok",
        "AdjustPoints ok",
        "ConfirmPendingPoints ok",
        "CancelPendingPoints ok",
        "Withdraw insufficient_funds",
        "Withdraw wallet_frozen",
        "Deposit invalid_amount",
        "Deposit balance_limit_exceeded",
        "Exchange same_currency",
        "Exchange amount_too_small",
        "ExecuteHold hold_not_found",
        "ExecuteHold hold_not_active",
        "ReleaseHold amount_exceeds_hold",
        "CreateHold validation_error",
        "SpendPoints insufficient_points",
        "ConfirmPendingPoints lot_not_pending",
        "ConfirmPendingPoints lot_not_found",
        "hold expired",
        "lot expired",
        "sweep swept",
        "Transfer ok",
        "Transfer same_wallet",
        "Transfer counterparty_not_found",
        "Transfer insufficient_funds",
        "PayOut ok",
        "PayOut validation_error",
        "ReverseTransaction ok",
        "ReverseTransaction reversal_exceeds_original",
        "ReverseTransaction not_reversible",
        "ReverseTransaction transaction_not_found",
    ];
    assert_reached(&seen, &wanted);
    let replayed: usize = seen
        .iter()
        .filter(|(what, _)| what.ends_with("replayed"))
        .map(|(_, count)| count)
        .sum();
    let reused: usize = seen
        .iter()
        .filter(|(what, _)| what.ends_with("idempotency_key_reused"))
        .map(|(_, count)| count)
        .sum();
    assert!(
        replayed > 0 && reused > 0,
        "replays {replayed}, reuses {reused}"
    );
}
