//! Events per operation, with their aggregate versions, and the signs of
//! every transaction type.

use chrono::Duration;
use wallet_core::{EventData, ReleaseCause, TransactionType};

use crate::common::Harness;
use crate::support::*;

/// The events appended by one command: (type, aggregate version).
fn appended(harness: &Harness, command: wallet_core::Command) -> Vec<(&'static str, u64)> {
    let before = harness.store.stored_events().len();
    ok(harness, command);
    harness.store.stored_events()[before..]
        .iter()
        .map(|stored| {
            assert_eq!(stored.event.user_id, USER);
            (stored.event.event_type(), stored.event.aggregate_version)
        })
        .collect()
}

#[test]
fn each_wallet_operation_raises_its_events_at_the_next_version() {
    let harness = Harness::new();
    assert_eq!(appended(&harness, create_wallet()), [("WalletCreated", 1)]);
    assert_eq!(
        appended(&harness, deposit("100", "USD")),
        [("WalletBalanceChanged", 2)]
    );
    assert_eq!(
        appended(&harness, withdraw("10", "USD")),
        [("WalletBalanceChanged", 3)]
    );
    assert_eq!(
        appended(&harness, exchange("1", "USD", "VND")),
        [("WalletExchanged", 4)]
    );
    let before = harness.store.stored_events().len();
    let id = hold_of(ok(&harness, hold("20", "USD", None))).id;
    let held = &harness.store.stored_events()[before];
    assert_eq!(
        (held.event.event_type(), held.event.aggregate_version),
        ("EscrowHeld", 5)
    );
    assert_eq!(
        appended(&harness, execute(id, Some("5"))),
        [("WalletBalanceChanged", 6), ("EscrowExecuted", 6)]
    );
    assert_eq!(
        appended(&harness, release(id, Some("5"))),
        [("EscrowReleased", 7)]
    );
    assert_eq!(appended(&harness, cancel(id)), [("EscrowReleased", 8)]);
    assert_eq!(appended(&harness, freeze()), [("WalletFrozen", 9)]);
    assert_eq!(appended(&harness, unfreeze()), [("WalletUnfrozen", 10)]);
    let short = hold_of(ok(
        &harness,
        hold("1", "USD", Some(harness.now() + Duration::hours(1))),
    ))
    .id;
    harness.advance(Duration::hours(2));
    assert_eq!(
        appended(&harness, deposit("1", "USD")),
        [("EscrowReleased", 12), ("WalletBalanceChanged", 12)]
    );
    assert_eq!(
        stored_hold(&harness, short).status,
        wallet_core::HoldStatus::Expired
    );
    ok(&harness, withdraw("85", "USD"));
    ok(&harness, withdraw("25000", "VND"));
    assert_eq!(appended(&harness, close()), [("WalletClosed", 15)]);
    let view = wallet(&harness);
    assert_eq!(view.version, 15);
    let events = harness.store.stored_events();
    assert!(events.iter().all(|e| e.event.aggregate_id == view.id));
    assert_eq!(
        events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        (1..=events.len() as u64).collect::<Vec<_>>()
    );
}

#[test]
fn event_data_tells_what_happened() {
    let harness = funded();
    let id = hold_of(ok(&harness, hold("20", "USD", None))).id;
    ok(&harness, execute(id, Some("5")));
    ok(&harness, cancel(id));
    ok(&harness, exchange("1", "USD", "VND"));
    let data: Vec<EventData> = harness
        .store
        .stored_events()
        .into_iter()
        .map(|e| e.event.data)
        .collect();
    let tail = &data[data.len() - 5..];
    let EventData::EscrowHeld {
        hold_id, amount, ..
    } = &tail[0]
    else {
        panic!("{:?}", tail[0])
    };
    assert_eq!((*hold_id, text(*amount)), (id, "20.00".into()));
    let EventData::WalletBalanceChanged {
        transaction_type,
        amount,
        balance_after,
        ..
    } = &tail[1]
    else {
        panic!("{:?}", tail[1])
    };
    assert_eq!(
        (*transaction_type, text(*amount), text(*balance_after)),
        (TransactionType::HoldExecute, "-5.00".into(), "95.00".into())
    );
    let EventData::EscrowExecuted {
        amount, remaining, ..
    } = &tail[2]
    else {
        panic!("{:?}", tail[2])
    };
    assert_eq!(
        (text(*amount), text(*remaining)),
        ("5.00".into(), "15.00".into())
    );
    let EventData::EscrowReleased {
        amount,
        remaining,
        cause,
        ..
    } = &tail[3]
    else {
        panic!("{:?}", tail[3])
    };
    assert_eq!(
        (text(*amount), text(*remaining), *cause),
        ("15.00".into(), "0.00".into(), ReleaseCause::Cancel)
    );
    let EventData::WalletExchanged {
        from_amount,
        to_amount,
        rate,
        ..
    } = &tail[4]
    else {
        panic!("{:?}", tail[4])
    };
    assert_eq!(
        (text(*from_amount), text(*to_amount), rate.to_string()),
        ("1.00".into(), "25000".into(), "25000".into())
    );
}

#[test]
fn point_events_carry_the_account_version() {
    let harness = Harness::new();
    assert_eq!(
        appended(&harness, create_points()),
        [("PointAccountCreated", 1)]
    );
    assert_eq!(
        appended(
            &harness,
            earn(10, Some(harness.now() + Duration::hours(1)), false)
        ),
        [("PointsEarned", 2)]
    );
    harness.advance(Duration::hours(1));
    assert_eq!(
        appended(&harness, earn(5, None, false)),
        [("PointsExpired", 3), ("PointsEarned", 3)]
    );
    assert_eq!(appended(&harness, spend(1)), [("PointsSpent", 4)]);
}

/// Type, amount, held change, balance after, held after, description.
type Row<'a> = (
    TransactionType,
    String,
    String,
    String,
    String,
    Option<&'a str>,
);

#[test]
fn every_transaction_type_has_its_signs() {
    let harness = funded();
    let id = hold_of(ok(
        &harness,
        hold("30", "USD", Some(harness.now() + Duration::hours(1))),
    ))
    .id;
    ok(&harness, execute(id, Some("10")));
    ok(&harness, release(id, Some("5")));
    let other = hold_of(ok(&harness, hold("7", "USD", None))).id;
    ok(&harness, cancel(other));
    ok(&harness, withdraw("1", "USD"));
    ok(&harness, exchange("2", "USD", "VND"));
    harness.advance(Duration::hours(1));
    ok(&harness, deposit("3", "USD"));
    let stored = harness.store.stored_wallet(USER).expect("wallet");
    let log: Vec<Row<'_>> = stored
        .transactions
        .iter()
        .map(|t| {
            (
                t.transaction_type,
                text(t.amount),
                text(t.held_change),
                text(t.balance_after),
                text(t.held_after),
                t.description.as_deref(),
            )
        })
        .collect();
    use TransactionType::*;
    let row = |kind, amount: &str, held: &str, balance: &str, held_after: &str, description| {
        (
            kind,
            amount.to_string(),
            held.to_string(),
            balance.to_string(),
            held_after.to_string(),
            description,
        )
    };
    assert_eq!(
        log,
        vec![
            row(Deposit, "100.00", "0", "100.00", "0.00", None),
            row(Hold, "0", "30.00", "100.00", "30.00", None),
            row(HoldExecute, "-10.00", "-10.00", "90.00", "20.00", None),
            row(
                HoldRelease,
                "0",
                "-5.00",
                "90.00",
                "15.00",
                Some("hold released")
            ),
            row(Hold, "0", "7.00", "90.00", "22.00", None),
            row(
                HoldRelease,
                "0",
                "-7.00",
                "90.00",
                "15.00",
                Some("hold cancelled")
            ),
            row(Withdraw, "-1.00", "0", "89.00", "15.00", None),
            row(
                ExchangeOut,
                "-2.00",
                "0",
                "87.00",
                "15.00",
                Some("exchange USD to VND at 25000")
            ),
            row(
                ExchangeIn,
                "50000",
                "0",
                "50000",
                "0",
                Some("exchange USD to VND at 25000")
            ),
            row(
                HoldRelease,
                "0",
                "-15.00",
                "87.00",
                "0.00",
                Some("hold expired")
            ),
            row(Deposit, "3.00", "0", "90.00", "0.00", None),
        ]
    );
    let sequences: Vec<u64> = stored.transactions.iter().map(|t| t.sequence).collect();
    assert_eq!(sequences, (1..=11).collect::<Vec<u64>>());
    assert!(stored
        .transactions
        .iter()
        .all(|t| t.wallet_id == stored.wallet.id()));
    let hold_ids: Vec<bool> = stored
        .transactions
        .iter()
        .map(|t| t.hold_id.is_some())
        .collect();
    assert_eq!(
        hold_ids,
        [false, true, true, true, true, true, false, false, false, true, false]
    );
}
