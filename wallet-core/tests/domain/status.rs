//! Every cell of the wallet status table, with the exact error.

use chrono::Duration;
use wallet_core::{HoldStatus, Uuid, WalletStatus};

use crate::common::Harness;
use crate::support::*;

/// A wallet in `status` with 100.00 USD, of which an active hold keeps
/// 10.00 (Active and Frozen). A closed wallet is empty, and its hold was
/// cancelled before it was closed.
fn wallet_in(status: WalletStatus) -> (Harness, Uuid) {
    let harness = funded();
    let hold_id = hold_of(ok(&harness, hold("10", "USD", None))).id;
    match status {
        WalletStatus::Active => {}
        WalletStatus::Frozen => {
            ok(&harness, freeze());
        }
        WalletStatus::Closed => {
            ok(&harness, cancel(hold_id));
            ok(&harness, withdraw("100", "USD"));
            ok(&harness, close());
        }
    }
    assert_eq!(wallet(&harness).status, status);
    (harness, hold_id)
}

type Operation = fn(Uuid) -> wallet_core::Command;

/// Operation, then the expected answer when Active, Frozen, Closed
/// (`None` is success).
const TABLE: &[(&str, Operation, [Option<&str>; 3])] = &[
    (
        "deposit",
        |_| deposit("1", "USD"),
        [None, None, Some("wallet_closed")],
    ),
    (
        "withdraw",
        |_| withdraw("1", "USD"),
        [None, Some("wallet_frozen"), Some("wallet_closed")],
    ),
    (
        "exchange",
        |_| exchange("1", "USD", "VND"),
        [None, Some("wallet_frozen"), Some("wallet_closed")],
    ),
    (
        "hold",
        |_| hold("1", "USD", None),
        [None, Some("wallet_frozen"), Some("wallet_closed")],
    ),
    (
        "execute hold",
        |id| execute(id, Some("1")),
        [None, Some("wallet_frozen"), Some("wallet_closed")],
    ),
    (
        "release hold",
        |id| release(id, Some("1")),
        [None, None, Some("wallet_closed")],
    ),
    ("cancel hold", cancel, [None, None, Some("wallet_closed")]),
    (
        "freeze",
        |_| freeze(),
        [None, Some("wallet_frozen"), Some("wallet_closed")],
    ),
    (
        "unfreeze",
        |_| unfreeze(),
        [Some("wallet_not_frozen"), None, Some("wallet_closed")],
    ),
    (
        "close with money",
        |_| close(),
        [
            Some("wallet_not_empty"),
            Some("wallet_not_empty"),
            Some("wallet_closed"),
        ],
    ),
];

#[test]
fn every_cell_of_the_status_table() {
    let statuses = [
        WalletStatus::Active,
        WalletStatus::Frozen,
        WalletStatus::Closed,
    ];
    for (name, operation, expected) in TABLE {
        for (status, expected) in statuses.iter().zip(expected) {
            let (harness, hold_id) = wallet_in(*status);
            let command = operation(hold_id);
            match expected {
                None => {
                    ok(&harness, command);
                }
                Some(code) => assert_eq!(
                    code_of(&harness, command),
                    *code,
                    "{name} on a {status:?} wallet"
                ),
            }
        }
    }
}

#[test]
fn close_succeeds_on_an_empty_wallet_active_or_frozen() {
    for frozen in [false, true] {
        let harness = Harness::new();
        ok(&harness, create_wallet());
        ok(&harness, deposit("5", "USD"));
        ok(&harness, withdraw("5", "USD"));
        if frozen {
            ok(&harness, freeze());
        }
        ok(&harness, close());
        assert_eq!(wallet(&harness).status, WalletStatus::Closed);
    }
}

#[test]
fn close_is_refused_while_a_hold_is_active_even_without_money_left() {
    let harness = funded();
    let hold_id = hold_of(ok(&harness, hold("100", "USD", None))).id;
    assert_eq!(code_of(&harness, close()), "wallet_not_empty");
    ok(&harness, execute(hold_id, None));
    ok(&harness, close());
}

#[test]
fn a_frozen_wallet_still_expires_its_holds() {
    let (harness, hold_id) = wallet_in(WalletStatus::Frozen);
    harness.advance(Duration::days(7));
    ok(&harness, deposit("1", "USD"));
    assert_eq!(stored_hold(&harness, hold_id).status, HoldStatus::Expired);
    assert_eq!(balance(&harness, "USD"), ("101.00".into(), "0.00".into()));
}

#[test]
fn a_closed_wallet_stays_readable_and_is_never_recreated() {
    let (harness, _) = wallet_in(WalletStatus::Closed);
    assert_eq!(wallet(&harness).status, WalletStatus::Closed);
    assert_eq!(code_of(&harness, create_wallet()), "wallet_exists");
    let page = futures::executor::block_on(harness.service.transactions(
        USER,
        Default::default(),
        Default::default(),
    ))
    .expect("the log stays readable");
    // Deposit, hold, cancel, withdraw.
    assert_eq!(page.items.len(), 4);
}

#[test]
fn freeze_records_the_reason_and_unfreeze_clears_it() {
    let harness = funded();
    ok(&harness, freeze());
    assert_eq!(wallet(&harness).frozen_reason.as_deref(), Some("review"));
    ok(&harness, unfreeze());
    assert_eq!(wallet(&harness).frozen_reason, None);
    assert_eq!(wallet(&harness).status, WalletStatus::Active);
}
