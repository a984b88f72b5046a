//! Point accounts: lots, spend order, pending lots, adjustments, expiry.

use chrono::Duration;
use wallet_core::{EventData, LotState, PointTransactionType, Uuid};

use crate::common::Harness;
use crate::support::*;

fn with_account() -> Harness {
    let harness = Harness::new();
    ok(&harness, create_points());
    harness
}

/// The live lots: id -> remaining.
fn remaining(harness: &Harness) -> Vec<(Uuid, i64, LotState)> {
    let stored = harness.store.stored_point_account(USER).expect("account");
    let mut lots: Vec<_> = stored
        .account
        .lots()
        .map(|lot| (lot.id, lot.remaining, lot.state))
        .collect();
    lots.sort_by_key(|(id, _, _)| *id);
    lots
}

fn left(harness: &Harness, lot_id: Uuid) -> i64 {
    remaining(harness)
        .iter()
        .find(|(id, _, _)| *id == lot_id)
        .map_or(0, |(_, left, _)| *left)
}

#[test]
fn spending_takes_the_soonest_expiring_first_and_the_non_expiring_last() {
    let harness = with_account();
    let now = harness.now();
    let never = lot_of(ok(&harness, earn(100, None, false)));
    let late = lot_of(ok(
        &harness,
        earn(100, Some(now + Duration::days(10)), false),
    ));
    let soon = lot_of(ok(
        &harness,
        earn(100, Some(now + Duration::days(2)), false),
    ));
    harness.advance(Duration::seconds(1));
    // Same expiry as `soon`, earned later: spent after it (FIFO).
    let soon_later = lot_of(ok(
        &harness,
        earn(100, Some(now + Duration::days(2)), false),
    ));

    ok(&harness, spend(150));
    assert_eq!(
        [
            left(&harness, soon),
            left(&harness, soon_later),
            left(&harness, late),
            left(&harness, never)
        ],
        [0, 50, 100, 100]
    );
    ok(&harness, spend(120));
    assert_eq!(
        [
            left(&harness, soon_later),
            left(&harness, late),
            left(&harness, never)
        ],
        [0, 30, 100]
    );
    ok(&harness, spend(80));
    assert_eq!([left(&harness, late), left(&harness, never)], [0, 50]);
    assert_eq!(account(&harness).available_points, 50);
    assert_eq!(code_of(&harness, spend(51)), "insufficient_points");
}

#[test]
fn pending_points_wait_for_confirmation() {
    let harness = with_account();
    let lot = lot_of(ok(&harness, earn(70, None, true)));
    let view = account(&harness);
    assert_eq!(
        (
            view.available_points,
            view.pending_points,
            view.total_points,
            view.lifetime_earned
        ),
        (0, 70, 70, 0)
    );
    assert_eq!(code_of(&harness, spend(1)), "insufficient_points");
    ok(&harness, confirm(lot));
    let view = account(&harness);
    assert_eq!(
        (
            view.available_points,
            view.pending_points,
            view.total_points,
            view.lifetime_earned
        ),
        (70, 0, 70, 70)
    );
    assert_eq!(code_of(&harness, confirm(lot)), "lot_not_pending");
    assert_eq!(code_of(&harness, cancel_pending(lot)), "lot_not_pending");
}

#[test]
fn a_cancelled_pending_lot_is_gone() {
    let harness = with_account();
    let lot = lot_of(ok(&harness, earn(70, None, true)));
    ok(&harness, cancel_pending(lot));
    let view = account(&harness);
    assert_eq!(
        (view.pending_points, view.total_points, view.lifetime_earned),
        (0, 0, 0)
    );
    assert_eq!(code_of(&harness, confirm(lot)), "lot_not_pending");
    assert_eq!(code_of(&harness, cancel_pending(lot)), "lot_not_pending");
}

#[test]
fn unknown_lots_are_not_found_even_when_they_belong_to_someone_else() {
    let harness = with_account();
    assert_eq!(
        code_of(&harness, confirm(Uuid::from_u128(5))),
        "lot_not_found"
    );
    let other = Uuid::from_u128(0xb0b);
    harness
        .run(wallet_core::Command::CreatePointAccount { user_id: other })
        .expect("account");
    let their_lot = lot_of(
        harness
            .run(wallet_core::Command::EarnPoints {
                user_id: other,
                points: 5,
                source: "shop".into(),
                description: None,
                expires_at: None,
                pending: true,
            })
            .expect("earn")
            .output,
    );
    assert_eq!(code_of(&harness, confirm(their_lot)), "lot_not_found");
    assert_eq!(
        code_of(&harness, cancel_pending(their_lot)),
        "lot_not_found"
    );
}

#[test]
fn a_pending_lot_that_expires_while_pending_cannot_be_confirmed() {
    let harness = with_account();
    let lot = lot_of(ok(
        &harness,
        earn(40, Some(harness.now() + Duration::days(1)), true),
    ));
    harness.advance(Duration::days(1));
    assert_eq!(code_of(&harness, confirm(lot)), "lot_not_pending");
    // The sweep writes the expiry: pending points gone, available untouched.
    futures::executor::block_on(harness.service.sweep_expired(10)).expect("sweep");
    let view = account(&harness);
    assert_eq!(
        (
            view.available_points,
            view.pending_points,
            view.lifetime_earned
        ),
        (0, 0, 0)
    );
    let stored = harness.store.stored_point_account(USER).expect("account");
    let last = stored.transactions.last().expect("a transaction");
    assert_eq!(
        (
            last.transaction_type,
            last.points,
            last.balance_after,
            last.lot_id
        ),
        (PointTransactionType::Expire, -40, 0, Some(lot))
    );
    harness.check(USER).expect("invariants");
    assert_eq!(code_of(&harness, confirm(lot)), "lot_not_pending");
}

#[test]
fn expiry_takes_what_is_left_of_each_overdue_lot_one_transaction_each() {
    let harness = with_account();
    let now = harness.now();
    ok(&harness, earn(100, Some(now + Duration::hours(1)), false));
    ok(&harness, earn(50, Some(now + Duration::hours(2)), false));
    ok(&harness, earn(10, None, false));
    ok(&harness, spend(30));
    harness.advance(Duration::hours(2));
    let before = harness
        .store
        .stored_point_account(USER)
        .expect("account")
        .transactions
        .len();
    ok(&harness, earn(1, None, false));
    let stored = harness.store.stored_point_account(USER).expect("account");
    let expiries: Vec<(i64, i64)> = stored.transactions[before..]
        .iter()
        .filter(|t| t.transaction_type == PointTransactionType::Expire)
        .map(|t| (t.points, t.balance_after))
        .collect();
    assert_eq!(expiries, vec![(-70, 60), (-50, 10)]);
    assert_eq!(account(&harness).available_points, 11);
    assert_eq!(account(&harness).lifetime_earned, 161);
}

#[test]
fn an_expiry_in_the_past_is_rejected() {
    let harness = with_account();
    let now = harness.now();
    assert_eq!(
        code_of(&harness, earn(1, Some(now), false)),
        "validation_error"
    );
    assert_eq!(
        code_of(&harness, earn(1, Some(now - Duration::days(1)), true)),
        "validation_error"
    );
    let almost_now = now + Duration::nanoseconds(999);
    assert_eq!(
        code_of(&harness, earn(1, Some(almost_now), false)),
        "validation_error"
    );
}

#[test]
fn an_expiry_beyond_the_longest_lot_lifetime_is_rejected() {
    let harness = with_account();
    let longest = harness.now() + Duration::days(wallet_core::points::POINT_LOT_LIFETIME_MAX_DAYS);
    assert_eq!(
        code_of(
            &harness,
            earn(1, Some(longest + Duration::microseconds(1)), false)
        ),
        "validation_error"
    );
    assert_eq!(
        code_of(&harness, earn(1, Some(longest + Duration::days(1)), true)),
        "validation_error"
    );
    ok(&harness, earn(1, Some(longest), false));
    assert_eq!(account(&harness).available_points, 1);
}

#[test]
fn adjustments_add_non_expiring_lots_and_take_like_a_spend() {
    let harness = with_account();
    ok(
        &harness,
        earn(10, Some(harness.now() + Duration::days(1)), false),
    );
    let added = lot_of(ok(&harness, adjust(25)));
    let lots = harness.store.stored_point_account(USER).expect("account");
    let lot = lots
        .account
        .lots()
        .find(|l| l.id == added)
        .expect("the new lot");
    assert_eq!(
        (lot.expires_at, lot.state, lot.points),
        (None, LotState::Available, 25)
    );
    assert_eq!(code_of(&harness, adjust(-36)), "insufficient_points");
    ok(&harness, adjust(-15));
    // The expiring lot went first.
    assert_eq!(left(&harness, added), 20);
    let view = account(&harness);
    assert_eq!((view.available_points, view.lifetime_earned), (20, 35));
}

#[test]
fn lifetime_earned_counts_everything_ever_made_available() {
    let harness = with_account();
    ok(&harness, earn(100, None, false));
    let pending = lot_of(ok(&harness, earn(50, None, true)));
    let cancelled = lot_of(ok(&harness, earn(7, None, true)));
    ok(&harness, confirm(pending));
    ok(&harness, cancel_pending(cancelled));
    ok(&harness, adjust(20));
    ok(&harness, adjust(-30));
    ok(&harness, spend(40));
    let view = account(&harness);
    assert_eq!((view.available_points, view.lifetime_earned), (100, 170));
}

#[test]
fn the_point_account_stands_apart_from_the_wallet() {
    let harness = with_account();
    ok(&harness, earn(5, None, false));
    assert_eq!(code_of(&harness, deposit("1", "USD")), "wallet_not_found");
    ok(&harness, create_wallet());
    ok(&harness, freeze());
    ok(&harness, spend(5));
    assert_eq!(code_of(&harness, create_points()), "point_account_exists");
}

#[test]
fn point_transactions_carry_signs_and_balance_after() {
    let harness = with_account();
    let pending = lot_of(ok(&harness, earn(30, None, true)));
    let cancelled = lot_of(ok(&harness, earn(5, None, true)));
    ok(&harness, earn(100, None, false));
    ok(&harness, confirm(pending));
    ok(&harness, cancel_pending(cancelled));
    ok(&harness, spend(20));
    ok(&harness, adjust(-10));
    ok(&harness, adjust(3));
    let stored = harness.store.stored_point_account(USER).expect("account");
    let log: Vec<(PointTransactionType, i64, i64)> = stored
        .transactions
        .iter()
        .map(|t| (t.transaction_type, t.points, t.balance_after))
        .collect();
    use PointTransactionType::*;
    assert_eq!(
        log,
        vec![
            (EarnPending, 30, 0),
            (EarnPending, 5, 0),
            (Earn, 100, 100),
            (PendingConfirmed, 30, 130),
            (PendingCancelled, -5, 130),
            (Spend, -20, 110),
            (Adjust, -10, 100),
            (Adjust, 3, 103),
        ]
    );
    assert!(stored
        .transactions
        .iter()
        .all(|t| t.source == "shop" || t.source == "admin"));
    let events: Vec<&str> = harness
        .store
        .stored_events()
        .iter()
        .map(|e| e.event.event_type())
        .collect();
    assert_eq!(
        events,
        vec![
            "PointAccountCreated",
            "PointsEarned",
            "PointsEarned",
            "PointsEarned",
            "PendingPointsConfirmed",
            "PendingPointsCancelled",
            "PointsSpent",
            "PointsAdjusted",
            "PointsAdjusted",
        ]
    );
    let expired = harness.store.stored_events();
    assert!(expired
        .iter()
        .all(|e| !matches!(e.event.data, EventData::PointsExpired { .. })));
}
