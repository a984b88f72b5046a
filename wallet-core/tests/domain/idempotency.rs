//! Idempotency keys: replays, reuse with other parameters, retries of
//! failures, and their scope.

use wallet_core::{Command, CommandOutput, Uuid};

use crate::common::{dec, key, Harness};
use crate::support::*;

#[test]
fn a_repeat_with_the_same_parameters_replays_the_first_result() {
    let harness = funded();
    let first = harness
        .run_keyed(withdraw("10", "USD"), "order-1")
        .expect("first");
    assert!(!first.replayed);
    let before = harness.snapshot(USER);
    // "10.00" is the same amount as "10".
    let again = harness
        .run_keyed(withdraw("10.00", "USD"), "order-1")
        .expect("replay");
    assert!(again.replayed);
    assert_eq!(again.output, first.output);
    assert_eq!(harness.snapshot(USER), before);
    assert_eq!(balance(&harness, "USD"), ("90.00".into(), "0.00".into()));
    let CommandOutput::Transaction { transaction, .. } = &first.output else {
        panic!("{:?}", first.output)
    };
    assert_eq!(transaction.idempotency_key.as_deref(), Some("order-1"));
}

#[test]
fn the_same_key_with_other_parameters_is_refused() {
    let harness = funded();
    harness
        .run_keyed(withdraw("10", "USD"), "order-1")
        .expect("first");
    let before = harness.snapshot(USER);
    for other in [
        withdraw("11", "USD"),
        deposit("10", "USD"),
        freeze(),
        create_points(),
    ] {
        let name = other.name();
        let error = harness.run_keyed(other, "order-1").expect_err(name);
        assert_eq!(error.code(), "idempotency_key_reused", "{name}");
    }
    assert_eq!(harness.snapshot(USER), before);
}

#[test]
fn a_failed_command_may_be_retried_with_its_key() {
    let harness = funded();
    let error = harness
        .run_keyed(withdraw("150", "USD"), "order-2")
        .expect_err("too much");
    assert_eq!(error.code(), "insufficient_funds");
    ok(&harness, deposit("50", "USD"));
    let retried = harness
        .run_keyed(withdraw("150", "USD"), "order-2")
        .expect("now it fits");
    assert!(!retried.replayed);
    assert_eq!(balance(&harness, "USD"), ("0.00".into(), "0.00".into()));
}

#[test]
fn keys_are_scoped_to_the_user() {
    let harness = funded();
    let other = Uuid::from_u128(0xb0b);
    harness
        .run(Command::CreateWallet {
            user_id: other,
            default_currency: None,
        })
        .expect("wallet");
    harness
        .run_keyed(deposit("1", "USD"), "shared")
        .expect("mine");
    let theirs = Command::Deposit {
        user_id: other,
        amount: dec("1"),
        currency: crate::common::code("USD"),
        description: None,
        reference: None,
    };
    let applied = harness.run_keyed(theirs, "shared").expect("theirs");
    assert!(!applied.replayed);
    // One scope for the wallet and the point account of a user.
    ok(&harness, create_points());
    let error = harness
        .run_keyed(earn(1, None, false), "shared")
        .expect_err("reused");
    assert_eq!(error.code(), "idempotency_key_reused");
}

#[test]
fn hold_commands_replay_the_hold_as_it_was() {
    let harness = funded();
    let created = harness
        .run_keyed(hold("10", "USD", None), "hold-1")
        .expect("hold");
    let id = hold_of(created.output.clone()).id;
    ok(&harness, execute(id, Some("4")));
    let replay = harness
        .run_keyed(hold("10", "USD", None), "hold-1")
        .expect("replay");
    assert!(replay.replayed);
    assert_eq!(replay.output, created.output);
    assert_eq!(hold_of(replay.output).remaining_amount, dec("10.00"));
}

#[test]
fn keys_are_validated_before_use() {
    assert!(wallet_core::IdempotencyKey::parse("").is_err());
    let harness = Harness::new();
    let applied =
        futures::executor::block_on(harness.service.execute(create_wallet(), Some(key("k"))))
            .expect("created");
    assert!(!applied.replayed);
}

#[test]
fn the_purge_keeps_records_for_the_policy_retention() {
    let retention = chrono::Duration::hours(48);
    let policy = wallet_core::Policy::default()
        .with_idempotency_retention(retention)
        .expect("two days");
    let harness = Harness::with_policy(policy);
    ok(&harness, create_wallet());
    harness
        .run_keyed(deposit("10", "USD"), "order-1")
        .expect("deposit");
    let purge = || futures::executor::block_on(harness.service.purge_idempotency_records());
    // Past the default retention, but within this policy's.
    harness.advance(chrono::Duration::hours(24) + chrono::Duration::microseconds(1));
    assert_eq!(purge(), Ok(0));
    let replay = harness
        .run_keyed(deposit("10", "USD"), "order-1")
        .expect("replay");
    assert!(replay.replayed);
    harness.advance(chrono::Duration::hours(24));
    assert_eq!(purge(), Ok(1));
    let again = harness
        .run_keyed(deposit("10", "USD"), "order-1")
        .expect("a new command");
    assert!(!again.replayed);
    assert_eq!(balance(&harness, "USD"), ("20.00".into(), "0.00".into()));
}
