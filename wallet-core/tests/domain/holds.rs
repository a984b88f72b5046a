//! The hold lifecycle and lazy expiry.

use chrono::Duration;
use wallet_core::{Command, Decimal, EventData, HoldStatus, ReleaseCause, TransactionType, Uuid};

use crate::common::Harness;
use crate::support::*;

#[test]
fn partial_executes_many_times_then_the_rest() {
    let harness = funded();
    let id = hold_of(ok(&harness, hold("60", "USD", None))).id;
    for round in 1..=3 {
        let after = hold_of(ok(&harness, execute(id, Some("10"))));
        assert_eq!(after.status, HoldStatus::Active);
        assert_eq!(text(after.executed_amount), format!("{}.00", 10 * round));
        assert_eq!(
            text(after.remaining_amount),
            format!("{}.00", 60 - 10 * round)
        );
    }
    assert_eq!(balance(&harness, "USD"), ("70.00".into(), "30.00".into()));
    let last = hold_of(ok(&harness, execute(id, None)));
    assert_eq!(last.status, HoldStatus::Executed);
    assert_eq!(
        (
            text(last.remaining_amount),
            text(last.executed_amount),
            text(last.released_amount)
        ),
        ("0.00".into(), "60.00".into(), "0.00".into())
    );
    assert_eq!(balance(&harness, "USD"), ("40.00".into(), "0.00".into()));
    assert_eq!(stored_hold(&harness, id), last);
}

#[test]
fn partial_releases_keep_the_money_in_the_wallet() {
    let harness = funded();
    let id = hold_of(ok(&harness, hold("60", "USD", None))).id;
    let after = hold_of(ok(&harness, release(id, Some("15.50"))));
    assert_eq!(after.status, HoldStatus::Active);
    assert_eq!(balance(&harness, "USD"), ("100.00".into(), "44.50".into()));
    let last = hold_of(ok(&harness, release(id, None)));
    assert_eq!(last.status, HoldStatus::Released);
    assert_eq!(text(last.released_amount), "60.00");
    assert_eq!(balance(&harness, "USD"), ("100.00".into(), "0.00".into()));
}

#[test]
fn the_final_status_is_named_after_what_ended_the_hold() {
    let harness = funded();
    let executed = hold_of(ok(&harness, hold("10", "USD", None))).id;
    ok(&harness, release(executed, Some("4")));
    assert_eq!(
        hold_of(ok(&harness, execute(executed, None))).status,
        HoldStatus::Executed
    );

    let released = hold_of(ok(&harness, hold("10", "USD", None))).id;
    ok(&harness, execute(released, Some("4")));
    let after = hold_of(ok(&harness, release(released, None)));
    assert_eq!(after.status, HoldStatus::Released);
    assert_eq!(
        (text(after.executed_amount), text(after.released_amount)),
        ("4.00".into(), "6.00".into())
    );

    let cancelled = hold_of(ok(&harness, hold("10", "USD", None))).id;
    ok(&harness, execute(cancelled, Some("1")));
    let after = hold_of(ok(&harness, cancel(cancelled)));
    assert_eq!(after.status, HoldStatus::Cancelled);
    assert_eq!(text(after.released_amount), "9.00");
    // Executed: 6.00 + 4.00 + 1.00.
    assert_eq!(balance(&harness, "USD"), ("89.00".into(), "0.00".into()));
}

#[test]
fn an_ended_hold_accepts_nothing_and_says_so_before_looking_at_the_amount() {
    let harness = funded();
    let id = hold_of(ok(&harness, hold("10", "USD", None))).id;
    ok(&harness, execute(id, None));
    for amount in [
        Some("0"),
        Some("-1"),
        Some("0.001"),
        Some("1000"),
        Some("1"),
        None,
    ] {
        assert_eq!(
            code_of(&harness, execute(id, amount)),
            "hold_not_active",
            "{amount:?}"
        );
        assert_eq!(
            code_of(&harness, release(id, amount)),
            "hold_not_active",
            "{amount:?}"
        );
    }
    assert_eq!(code_of(&harness, cancel(id)), "hold_not_active");
}

#[test]
fn settlement_amounts_are_validated_against_the_hold() {
    let harness = funded();
    let id = hold_of(ok(&harness, hold("10", "USD", None))).id;
    assert_eq!(
        code_of(&harness, execute(id, Some("10.01"))),
        "amount_exceeds_hold"
    );
    assert_eq!(
        code_of(&harness, release(id, Some("11"))),
        "amount_exceeds_hold"
    );
    assert_eq!(code_of(&harness, execute(id, Some("0"))), "invalid_amount");
    assert_eq!(
        code_of(&harness, release(id, Some("0.005"))),
        "invalid_amount"
    );
    assert_eq!(
        code_of(&harness, execute(wallet_core::Uuid::from_u128(9), None)),
        "hold_not_found"
    );
    assert_eq!(
        code_of(&harness, cancel(wallet_core::Uuid::from_u128(9))),
        "hold_not_found"
    );
}

#[test]
fn a_hold_needs_available_money() {
    let harness = funded();
    ok(&harness, hold("60", "USD", None));
    assert_eq!(
        code_of(&harness, hold("40.01", "USD", None)),
        "insufficient_funds"
    );
    assert_eq!(
        code_of(&harness, withdraw("40.01", "USD")),
        "insufficient_funds"
    );
    ok(&harness, hold("40", "USD", None));
    assert_eq!(balance(&harness, "USD"), ("100.00".into(), "100.00".into()));
    assert_eq!(
        code_of(&harness, hold("1", "VND", None)),
        "insufficient_funds"
    );
}

#[test]
fn lifetimes_default_to_7_days_and_are_at_most_30() {
    let harness = funded();
    let now = harness.now();
    let default = hold_of(ok(&harness, hold("1", "USD", None)));
    assert_eq!(default.expires_at, now + Duration::days(7));
    let longest = hold_of(ok(
        &harness,
        hold("1", "USD", Some(now + Duration::days(30))),
    ));
    assert_eq!(longest.expires_at, now + Duration::days(30));
    let too_long = now + Duration::days(30) + Duration::microseconds(1);
    assert_eq!(
        code_of(&harness, hold("1", "USD", Some(too_long))),
        "validation_error"
    );
    assert_eq!(
        code_of(&harness, hold("1", "USD", Some(now))),
        "validation_error"
    );
    let past = now - Duration::seconds(1);
    assert_eq!(
        code_of(&harness, hold("1", "USD", Some(past))),
        "validation_error"
    );
}

#[test]
fn an_expiry_below_the_stored_precision_is_not_in_the_future() {
    // Stores keep microseconds: 500 ns from now would be stored as now,
    // a hold that is overdue the moment it is made.
    let harness = funded();
    let now = harness.now();
    let almost_now = now + Duration::nanoseconds(500);
    assert_eq!(
        code_of(&harness, hold("1", "USD", Some(almost_now))),
        "validation_error"
    );
    let soon = now + Duration::nanoseconds(1500);
    let created = hold_of(ok(&harness, hold("1", "USD", Some(soon))));
    assert_eq!(created.expires_at, now + Duration::microseconds(1));
    assert!(created.expires_at > created.created_at);
}

#[test]
fn a_hold_expires_exactly_at_expires_at() {
    let harness = funded();
    let id = hold_of(ok(
        &harness,
        hold("30", "USD", Some(harness.now() + Duration::hours(1))),
    ))
    .id;
    harness.advance(Duration::hours(1) - Duration::microseconds(1));
    ok(&harness, deposit("1", "USD"));
    assert_eq!(stored_hold(&harness, id).status, HoldStatus::Active);
    harness.advance(Duration::microseconds(1));
    ok(&harness, deposit("1", "USD"));
    let expired = stored_hold(&harness, id);
    assert_eq!(expired.status, HoldStatus::Expired);
    assert_eq!(
        (
            text(expired.remaining_amount),
            text(expired.released_amount)
        ),
        ("0.00".into(), "30.00".into())
    );
    assert_eq!(balance(&harness, "USD"), ("102.00".into(), "0.00".into()));
}

/// A wallet with 100.00 USD of which 80.00 is in a hold that expired an
/// hour ago, and a second hold of 5.00 that is still good.
fn with_overdue_hold() -> (Harness, wallet_core::Uuid, wallet_core::Uuid) {
    let harness = funded();
    let overdue = hold_of(ok(
        &harness,
        hold("80", "USD", Some(harness.now() + Duration::days(1))),
    ))
    .id;
    let good = hold_of(ok(
        &harness,
        hold("5", "USD", Some(harness.now() + Duration::days(20))),
    ))
    .id;
    harness.advance(Duration::days(1) + Duration::hours(1));
    // Queries show the stored state: nothing has expired the hold yet.
    assert_eq!(stored_hold(&harness, overdue).status, HoldStatus::Active);
    (harness, overdue, good)
}

#[test]
fn every_wallet_command_first_expires_overdue_holds() {
    type MakeCommand = fn(wallet_core::Uuid) -> wallet_core::Command;
    let commands: Vec<(&str, MakeCommand)> = vec![
        ("deposit", |_| deposit("1", "USD")),
        // Only the released money makes these possible.
        ("withdraw", |_| withdraw("90", "USD")),
        ("exchange", |_| exchange("90", "USD", "VND")),
        ("hold", |_| hold("90", "USD", None)),
        ("execute", |good| execute(good, Some("1"))),
        ("release", |good| release(good, None)),
        ("cancel", cancel),
        ("freeze", |_| freeze()),
    ];
    for (name, command) in commands {
        let (harness, overdue, good) = with_overdue_hold();
        let log_before = harness
            .store
            .stored_wallet(USER)
            .map_or(0, |w| w.transactions.len());
        let events_before = harness.store.stored_events().len();
        ok(&harness, command(good));
        assert_eq!(
            stored_hold(&harness, overdue).status,
            HoldStatus::Expired,
            "{name}"
        );
        let stored = harness.store.stored_wallet(USER).expect("wallet");
        let first = &stored.transactions[log_before];
        assert_eq!(
            first.transaction_type,
            TransactionType::HoldRelease,
            "{name}"
        );
        assert_eq!(first.hold_id, Some(overdue), "{name}");
        assert_eq!(text(first.held_change), "-80.00", "{name}");
        assert_eq!(first.description.as_deref(), Some("hold expired"), "{name}");
        let events = harness.store.stored_events();
        match &events[events_before].event.data {
            EventData::EscrowReleased {
                hold_id,
                cause,
                amount,
                remaining,
                ..
            } => {
                assert_eq!(
                    (*hold_id, *cause),
                    (overdue, ReleaseCause::Expiry),
                    "{name}"
                );
                assert_eq!(
                    (text(*amount), text(*remaining)),
                    ("80.00".into(), "0.00".into())
                );
            }
            other => panic!("{name}: first event {other:?}"),
        }
    }
}

#[test]
fn a_failed_command_does_not_write_the_expiry_either() {
    let (harness, overdue, _) = with_overdue_hold();
    assert_eq!(
        code_of(&harness, withdraw("96", "USD")),
        "insufficient_funds"
    );
    assert_eq!(stored_hold(&harness, overdue).status, HoldStatus::Active);
}

#[test]
fn the_sweep_expires_holds_without_a_command() {
    let (harness, overdue, good) = with_overdue_hold();
    let report = futures::executor::block_on(harness.service.sweep_expired(10)).expect("sweep");
    assert_eq!(
        (report.wallets, report.point_accounts, report.failures),
        (1, 0, 0)
    );
    assert_eq!(stored_hold(&harness, overdue).status, HoldStatus::Expired);
    assert_eq!(stored_hold(&harness, good).status, HoldStatus::Active);
    assert_eq!(balance(&harness, "USD"), ("100.00".into(), "5.00".into()));
    harness.check(USER).expect("invariants");
    let again = futures::executor::block_on(harness.service.sweep_expired(10)).expect("sweep");
    assert_eq!(again.wallets, 0);
}

#[test]
fn one_sweep_catches_up_in_rounds_when_a_batch_is_full() {
    let harness = Harness::new();
    let users: Vec<Uuid> = (1..=5).map(|n| Uuid::from_u128(0xb0b0 + n)).collect();
    for user_id in &users {
        let user_id = *user_id;
        harness
            .run(Command::CreateWallet {
                user_id,
                default_currency: None,
            })
            .expect("create");
        let usd = wallet_core::CurrencyCode::parse("USD").expect("code");
        harness
            .run(Command::Deposit {
                user_id,
                amount: Decimal::TEN,
                currency: usd,
                description: None,
                reference: None,
            })
            .expect("deposit");
        harness
            .run(Command::CreateHold {
                user_id,
                amount: Decimal::ONE,
                currency: usd,
                reference_type: "order".into(),
                reference_id: Uuid::from_u128(7),
                description: None,
                expires_at: Some(harness.now() + Duration::hours(1)),
            })
            .expect("hold");
    }
    harness.advance(Duration::hours(2));
    // A batch of 2 finds 2, 2, then 1 overdue wallets: three rounds, one call.
    let report = futures::executor::block_on(harness.service.sweep_expired(2)).expect("sweep");
    assert_eq!((report.wallets, report.failures), (5, 0));
    for user_id in &users {
        let wallet = futures::executor::block_on(harness.service.wallet(*user_id)).expect("wallet");
        assert_eq!(wallet.balances[0].held.to_string(), "0.00");
    }
}

#[test]
fn an_expired_hold_cannot_be_executed() {
    let (harness, overdue, _) = with_overdue_hold();
    assert_eq!(code_of(&harness, execute(overdue, None)), "hold_not_active");
}
