//! The ledger audit against a real PostgreSQL: a ledger built by every
//! kind of command reports nothing; the same ledger damaged with SQL, in
//! one way per test, reports the damage under the check whose rule it
//! breaks; audits taken while writers commit report nothing.

use std::collections::BTreeSet;

use rust_decimal::Decimal;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;
use wallet_core::testing::contract::{
    adjust, code, create_wallet, dec, deposit, earn, exchange, execute, hold, hold_of, lot_of,
    release, spend, withdraw,
};
use wallet_core::{Command, CommandOutput, IdempotencyKey, Payee, Policy, WalletService};
use wallet_pg::audit::AuditReport;
use wallet_pg::PgStore;

/// A ledger with every kind of effect, and the ids the damages aim at.
struct Ledger {
    service: WalletService<PgStore>,
    url: String,
    /// The payer of the transfer and of the payout.
    alice: Uuid,
    /// The transfer's payee, whose last USD row is its `TransferIn`.
    bob: Uuid,
    /// A payee of the payout.
    carol: Uuid,
    /// Alice's hold that is still active (partly executed).
    active_hold: Uuid,
    transfer_id: Uuid,
    /// Alice's `Reversal` row of the transfer to Dave, 4 of its 10 USD.
    reversal: Uuid,
}

fn key(text: &str) -> Option<IdempotencyKey> {
    Some(IdempotencyKey::parse(text).expect("a test key"))
}

async fn run(service: &WalletService<PgStore>, command: Command) -> CommandOutput {
    service
        .execute(command, None)
        .await
        .expect("a ledger command")
        .output
}

/// Builds the ledger: deposits, a withdrawal, an exchange, holds executed
/// in part, paid out to payees, released and cancelled, a transfer, a
/// frozen and unfrozen wallet, a closed one, and points earned, pending,
/// confirmed, cancelled, spent and adjusted.
async fn ledger() -> Ledger {
    let (store, url) = wallet_pg::testing::fresh_store_with_url().await;
    let service = WalletService::new(store, Policy::default());
    let [alice, bob, carol, dave] = [(); 4].map(|_| Uuid::now_v7());
    for user in [alice, bob, carol, dave] {
        run(&service, create_wallet(user)).await;
        run(&service, Command::CreatePointAccount { user_id: user }).await;
    }
    run(&service, deposit(alice, "500.00", "USD")).await;
    run(&service, deposit(alice, "1000000", "VND")).await;
    let refunded = run(&service, deposit(bob, "20", "USD")).await;
    run(&service, withdraw(alice, "12.34", "USD")).await;
    run(&service, exchange(alice, "250001", "VND", "USD")).await;
    let active = hold_of(run(&service, hold(alice, "100", "USD", None)).await);
    run(&service, execute(alice, active.id, Some("30"))).await;
    run(&service, release(alice, active.id, Some("10"))).await;
    let paid = hold_of(run(&service, hold(alice, "80", "USD", None)).await);
    let payout = Command::ExecuteHold {
        user_id: alice,
        hold_id: paid.id,
        amount: None,
        reference: Some("order delivered".into()),
        payees: Some(vec![
            Payee {
                user_id: carol,
                amount: dec("50"),
            },
            Payee {
                user_id: dave,
                amount: dec("5"),
            },
        ]),
    };
    run(&service, payout).await;
    run(&service, release(alice, paid.id, None)).await;
    let cancelled = hold_of(run(&service, hold(alice, "7", "USD", None)).await);
    run(
        &service,
        Command::CancelHold {
            user_id: alice,
            hold_id: cancelled.id,
        },
    )
    .await;
    run(
        &service,
        Command::FreezeWallet {
            user_id: carol,
            reason: "review".into(),
        },
    )
    .await;
    run(&service, deposit(carol, "1", "USD")).await;
    run(&service, Command::UnfreezeWallet { user_id: carol }).await;
    let closing = Uuid::now_v7();
    run(&service, create_wallet(closing)).await;
    run(&service, Command::CloseWallet { user_id: closing }).await;
    let confirmed = lot_of(&run(&service, earn(bob, 300, None, true)).await);
    run(
        &service,
        Command::ConfirmPendingPoints {
            user_id: bob,
            lot_id: confirmed,
        },
    )
    .await;
    let dropped = lot_of(&run(&service, earn(bob, 40, None, true)).await);
    run(
        &service,
        Command::CancelPendingPoints {
            user_id: bob,
            lot_id: dropped,
        },
    )
    .await;
    run(&service, earn(bob, 100, None, false)).await;
    run(&service, earn(bob, 9, None, true)).await;
    run(&service, spend(bob, 120)).await;
    run(&service, adjust(bob, 25)).await;
    run(&service, adjust(bob, -5)).await;
    // Reversals: part of Bob's deposit clawed back, and part of a transfer
    // from Alice to Dave moved back (named by the payer's leg).
    run(&service, reverse(bob, transaction_of(&refunded), "5")).await;
    let lent = run(
        &service,
        Command::Transfer {
            user_id: alice,
            to_user_id: dave,
            amount: dec("10"),
            currency: code("USD"),
            description: None,
            reference: None,
        },
    )
    .await;
    let reversed = run(&service, reverse(alice, transaction_of(&lent), "4")).await;
    let CommandOutput::Reversal { transactions, .. } = reversed else {
        panic!("a reversal answers with its rows");
    };
    let reversal = transactions[0].id;
    // The transfer last, so that it is the last USD row of Bob's log.
    let transfer = Command::Transfer {
        user_id: alice,
        to_user_id: bob,
        amount: dec("42.50"),
        currency: code("USD"),
        description: Some("rent".into()),
        reference: None,
    };
    let applied = service
        .execute(transfer, key("rent"))
        .await
        .expect("the transfer");
    let CommandOutput::Transfer { transfer_id, .. } = applied.output else {
        panic!("a transfer answers with its transfer id");
    };
    // Number the events, as a reader of the feed does.
    service.events(None, Some(1000)).await.expect("the feed");
    Ledger {
        service,
        url,
        alice,
        bob,
        carol,
        active_hold: active.id,
        transfer_id,
        reversal,
    }
}

fn reverse(user_id: Uuid, transaction_id: Uuid, amount: &str) -> Command {
    Command::ReverseTransaction {
        user_id,
        transaction_id,
        amount: Some(dec(amount)),
        reason: "refund".into(),
    }
}

/// The transaction a deposit or a transfer answered with (the payer's leg).
fn transaction_of(output: &CommandOutput) -> Uuid {
    match output {
        CommandOutput::Transaction { transaction, .. }
        | CommandOutput::Transfer { transaction, .. } => transaction.id,
        other => panic!("no transaction in {other:?}"),
    }
}

impl Ledger {
    async fn audit(&self) -> AuditReport {
        self.service.store().audit().await.expect("the audit runs")
    }

    /// Runs `statements` on a connection of its own, as an operator's
    /// mistake or a bad migration would.
    async fn damage(&self, statements: &[String]) {
        let mut conn = PgConnection::connect(&self.url).await.expect("connect");
        for statement in statements {
            sqlx::query(statement)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|error| panic!("the damage `{statement}` failed: {error}"));
        }
        conn.close().await.expect("close");
    }

    async fn wallet_id(&self, user: Uuid) -> Uuid {
        self.service.wallet(user).await.expect("the wallet").id
    }

    /// Damages the ledger and returns the names of the checks that report.
    async fn damaged(&self, statements: &[String]) -> BTreeSet<&'static str> {
        assert!(self.audit().await.is_clean(), "clean before the damage");
        self.damage(statements).await;
        let report = self.audit().await;
        assert!(!report.is_clean(), "the damage is found");
        report.findings.iter().map(|f| f.check).collect()
    }
}

fn assert_reported(found: &BTreeSet<&'static str>, expected: &[&str]) {
    for check in expected {
        assert!(found.contains(check), "`{check}` reports; found {found:?}");
    }
}

#[tokio::test]
async fn a_ledger_of_every_kind_of_command_reports_nothing_and_its_figures() {
    let ledger = ledger().await;
    let report = ledger.audit().await;
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert_eq!(report.checks.len(), wallet_pg::audit::CHECKS.len());
    assert_eq!(report.figures.wallets, 5);
    assert_eq!(report.figures.point_accounts, 4);
    assert_eq!(report.figures.holds, 3);
    // Deposits of 521, less 5 of them reversed, less 12.34 withdrawn, plus
    // 10.00 from the exchange, less 30 executed out of the ledger; the
    // payout, the transfers and the transfer's reversal move money between
    // wallets.
    let usd = report
        .figures
        .currencies
        .iter()
        .find(|c| c.currency == "USD")
        .expect("USD figures");
    assert_eq!(usd.balance, dec("483.66"));
    assert_eq!(usd.held, dec("60"));
    // Bob: 300 + 100 - 120 + 25 - 5 available, 9 pending.
    assert_eq!(report.figures.points_available, 300);
    assert_eq!(report.figures.points_pending, 9);
    let feed = ledger
        .service
        .events(None, Some(1000))
        .await
        .expect("feed")
        .0;
    assert_eq!(report.figures.events, feed.len() as u64);
    let json = serde_json::to_value(&report).expect("the report is JSON");
    assert_eq!(json["findings"], serde_json::json!([]));
    assert_eq!(json["figures"]["currencies"][0]["currency"], "USD");
}

#[tokio::test]
async fn a_deleted_transaction_row_is_reported() {
    let ledger = ledger().await;
    let wallet = ledger.wallet_id(ledger.alice).await;
    let found = ledger
        .damaged(&[format!(
            "DELETE FROM wallet_transactions WHERE wallet_id = '{wallet}' \
             AND transaction_type = 'Withdraw'"
        )])
        .await;
    assert_reported(
        &found,
        &[
            "item_totals",
            "transaction_chain",
            "transaction_sequence",
            "currency_conservation",
            "events_per_effect",
        ],
    );
}

#[tokio::test]
async fn a_changed_balance_is_reported() {
    let ledger = ledger().await;
    let wallet = ledger.wallet_id(ledger.bob).await;
    let found = ledger
        .damaged(&[format!(
            "UPDATE wallet_items SET balance = balance + 1 \
             WHERE wallet_id = '{wallet}' AND currency = 'USD'"
        )])
        .await;
    assert_reported(&found, &["item_totals", "currency_conservation"]);
    let report = ledger.audit().await;
    let finding = report.findings_of("item_totals").next().expect("a finding");
    assert!(finding.subject.contains(&wallet.to_string()), "{finding:?}");
    assert!(finding.detail.contains("58.50"), "{finding:?}");
}

#[tokio::test]
async fn a_changed_balance_after_is_reported_where_the_chain_breaks() {
    let ledger = ledger().await;
    let wallet = ledger.wallet_id(ledger.alice).await;
    let found = ledger
        .damaged(&[format!(
            "UPDATE wallet_transactions SET balance_after = balance_after + 0.01 \
             WHERE wallet_id = '{wallet}' AND transaction_type = 'Withdraw'"
        )])
        .await;
    assert_eq!(found, BTreeSet::from(["transaction_chain"]));
}

#[tokio::test]
async fn a_hold_whose_amounts_disagree_is_reported() {
    let ledger = ledger().await;
    let hold = ledger.active_hold;
    let found = ledger
        .damaged(&[
            "ALTER TABLE holds DROP CONSTRAINT holds_amounts_add_up".into(),
            format!("UPDATE holds SET executed_amount = executed_amount + 5 WHERE id = '{hold}'"),
        ])
        .await;
    assert_reported(&found, &["hold_amounts", "hold_transactions"]);
}

#[tokio::test]
async fn an_active_hold_marked_ended_is_reported() {
    let ledger = ledger().await;
    let hold = ledger.active_hold;
    let found = ledger
        .damaged(&[
            "ALTER TABLE holds DROP CONSTRAINT holds_ended_hold_empty".into(),
            format!("UPDATE holds SET status = 'Cancelled' WHERE id = '{hold}'"),
        ])
        .await;
    assert_reported(&found, &["hold_amounts", "held_by_holds"]);
}

#[tokio::test]
async fn a_removed_transfer_leg_is_reported() {
    let ledger = ledger().await;
    let transfer = ledger.transfer_id;
    let found = ledger
        .damaged(&[format!(
            "DELETE FROM wallet_transactions WHERE transfer_id = '{transfer}' \
             AND transaction_type = 'TransferIn'"
        )])
        .await;
    assert_reported(
        &found,
        &[
            "transfer_legs",
            "item_totals",
            "transaction_sequence",
            "events_per_effect",
        ],
    );
}

#[tokio::test]
async fn a_forged_credit_kept_consistent_in_its_wallet_still_breaks_conservation() {
    // Five dollars more on Bob's leg of the transfer, with his chain and
    // his balance made to agree: his wallet adds up; the ledger does not.
    let ledger = ledger().await;
    let transfer = ledger.transfer_id;
    let wallet = ledger.wallet_id(ledger.bob).await;
    let found = ledger
        .damaged(&[
            format!(
                "UPDATE wallet_transactions SET amount = amount + 5, \
                 balance_after = balance_after + 5 \
                 WHERE transfer_id = '{transfer}' AND transaction_type = 'TransferIn'"
            ),
            format!(
                "UPDATE wallet_items SET balance = balance + 5 \
                 WHERE wallet_id = '{wallet}' AND currency = 'USD'"
            ),
        ])
        .await;
    assert_eq!(
        found,
        BTreeSet::from(["currency_conservation", "transfer_legs"])
    );
}

#[tokio::test]
async fn a_counterparty_changed_is_reported() {
    let ledger = ledger().await;
    let transfer = ledger.transfer_id;
    let carol = ledger.carol;
    let found = ledger
        .damaged(&[format!(
            "UPDATE wallet_transactions SET counterparty_user_id = '{carol}' \
             WHERE transfer_id = '{transfer}' AND transaction_type = 'TransferIn'"
        )])
        .await;
    assert_eq!(found, BTreeSet::from(["transfer_counterparties"]));
}

#[tokio::test]
async fn a_duplicated_event_is_reported() {
    let ledger = ledger().await;
    let found = ledger
        .damaged(&["INSERT INTO outbox_events \
             (id, event_type, aggregate_id, aggregate_version, user_id, occurred_at, data) \
             SELECT gen_random_uuid(), event_type, aggregate_id, aggregate_version, user_id, \
             occurred_at, data FROM outbox_events WHERE event_type = 'TransferSent'"
            .into()])
        .await;
    assert_eq!(
        found,
        BTreeSet::from(["events_duplicated", "events_per_effect"])
    );
}

#[tokio::test]
async fn a_deleted_event_is_reported_with_the_gap_it_leaves() {
    let ledger = ledger().await;
    let found = ledger
        .damaged(&[
            "DELETE FROM outbox_events WHERE id = (SELECT id FROM outbox_events \
             WHERE event_type = 'EscrowReleased' ORDER BY sequence LIMIT 1)"
                .into(),
        ])
        .await;
    assert_eq!(
        found,
        BTreeSet::from(["events_per_effect", "events_sequence"])
    );
}

#[tokio::test]
async fn events_out_of_an_aggregates_order_are_reported() {
    let ledger = ledger().await;
    let wallet = ledger.wallet_id(ledger.alice).await;
    // Swap the numbers of Alice's first and last events (through negative
    // numbers, so that no two rows share one on the way).
    let found = ledger
        .damaged(&[
            "ALTER TABLE outbox_events DROP CONSTRAINT outbox_events_sequence_positive".into(),
            format!(
                "WITH ends AS (SELECT min(sequence) AS first, max(sequence) AS last \
                     FROM outbox_events WHERE aggregate_id = '{wallet}') \
                 UPDATE outbox_events o SET sequence = CASE WHEN o.sequence = ends.first \
                     THEN -ends.last ELSE -ends.first END \
                 FROM ends WHERE o.sequence IN (ends.first, ends.last)"
            ),
            "UPDATE outbox_events SET sequence = -sequence WHERE sequence < 0".into(),
        ])
        .await;
    assert_eq!(found, BTreeSet::from(["events_sequence"]));
}

#[tokio::test]
async fn a_removed_exchange_leg_is_reported() {
    let ledger = ledger().await;
    let wallet = ledger.wallet_id(ledger.alice).await;
    let found = ledger
        .damaged(&[format!(
            "DELETE FROM wallet_transactions WHERE wallet_id = '{wallet}' \
             AND transaction_type = 'ExchangeIn'"
        )])
        .await;
    assert_reported(&found, &["exchange_legs", "item_totals"]);
}

#[tokio::test]
async fn a_transaction_of_the_wrong_type_is_reported() {
    let ledger = ledger().await;
    let wallet = ledger.wallet_id(ledger.bob).await;
    let found = ledger
        .damaged(&[format!(
            "UPDATE wallet_transactions SET transaction_type = 'Withdraw' \
             WHERE wallet_id = '{wallet}' AND transaction_type = 'Deposit'"
        )])
        .await;
    assert_eq!(found, BTreeSet::from(["transaction_shape"]));
}

#[tokio::test]
async fn changed_point_figures_are_reported() {
    let ledger = ledger().await;
    let bob = ledger.bob;
    let found = ledger
        .damaged(&[format!(
            "UPDATE point_accounts SET available_points = available_points + 10 \
             WHERE user_id = '{bob}'"
        )])
        .await;
    assert_eq!(
        found,
        BTreeSet::from(["point_chain", "point_lots", "point_totals"])
    );
}

#[tokio::test]
async fn a_point_lot_changed_is_reported() {
    let ledger = ledger().await;
    let bob = ledger.bob;
    let found = ledger
        .damaged(&[format!(
            "UPDATE point_lots SET remaining = remaining - 1 WHERE remaining > 0 AND \
             state = 'Available' AND account_id = (SELECT id FROM point_accounts \
             WHERE user_id = '{bob}')"
        )])
        .await;
    assert_eq!(found, BTreeSet::from(["point_lots"]));
}

#[tokio::test]
async fn a_deleted_point_transaction_is_reported() {
    let ledger = ledger().await;
    let bob = ledger.bob;
    let found = ledger
        .damaged(&[format!(
            "DELETE FROM point_transactions WHERE transaction_type = 'Spend' AND \
             account_id = (SELECT id FROM point_accounts WHERE user_id = '{bob}')"
        )])
        .await;
    assert_reported(
        &found,
        &["point_chain", "point_totals", "events_per_effect"],
    );
}

#[tokio::test]
async fn a_changed_lifetime_total_is_reported() {
    let ledger = ledger().await;
    let bob = ledger.bob;
    let found = ledger
        .damaged(&[format!(
            "UPDATE point_accounts SET lifetime_earned = lifetime_earned + 1 \
             WHERE user_id = '{bob}'"
        )])
        .await;
    assert_eq!(found, BTreeSet::from(["point_totals"]));
}

#[tokio::test]
async fn a_held_amount_without_its_hold_is_reported() {
    let ledger = ledger().await;
    let wallet = ledger.wallet_id(ledger.bob).await;
    let found = ledger
        .damaged(&[format!(
            "UPDATE wallet_items SET held = held + 1 \
             WHERE wallet_id = '{wallet}' AND currency = 'USD'"
        )])
        .await;
    assert_eq!(found, BTreeSet::from(["held_by_holds", "item_totals"]));
}

#[tokio::test]
async fn many_findings_are_capped_per_check_and_say_so() {
    let ledger = ledger().await;
    let alice = ledger.alice;
    for i in 0..120 {
        ledger
            .service
            .execute(deposit(alice, "1", "VND"), None)
            .await
            .unwrap_or_else(|error| panic!("deposit {i}: {error}"));
    }
    ledger
        .damage(&[
            "UPDATE wallet_transactions SET transaction_type = 'Withdraw' \
             WHERE transaction_type = 'Deposit'"
                .into(),
        ])
        .await;
    let report = ledger.audit().await;
    let shape = report
        .checks
        .iter()
        .find(|c| c.name == "transaction_shape")
        .expect("the check ran");
    assert_eq!(
        shape.findings as i64,
        wallet_pg::audit::FINDINGS_PER_CHECK_MAX
    );
    assert!(shape.truncated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audits_taken_while_writers_commit_report_nothing() {
    let ledger = ledger().await;
    let (alice, bob) = (ledger.alice, ledger.bob);
    let writers: Vec<_> = (0..4)
        .map(|task| {
            let service = ledger.service.clone();
            tokio::spawn(async move {
                for round in 0..40 {
                    let (from, to) = if (task + round) % 2 == 0 {
                        (alice, bob)
                    } else {
                        (bob, alice)
                    };
                    let command = Command::Transfer {
                        user_id: from,
                        to_user_id: to,
                        amount: Decimal::new(1, 2),
                        currency: code("USD"),
                        description: None,
                        reference: None,
                    };
                    service.execute(command, None).await.expect("a transfer");
                    service
                        .execute(deposit(from, "1", "VND"), None)
                        .await
                        .expect("a deposit");
                }
            })
        })
        .collect();
    let mut audits = 0;
    while writers.iter().any(|w| !w.is_finished()) {
        let report = ledger.audit().await;
        assert!(report.is_clean(), "{:#?}", report.findings);
        audits += 1;
    }
    for writer in writers {
        writer.await.expect("the writer");
    }
    assert!(audits >= 2, "audits ran during the writes ({audits})");
    assert!(ledger.audit().await.is_clean());
}

#[tokio::test]
async fn a_reversal_total_raised_without_a_reversal_is_reported() {
    let ledger = ledger().await;
    let found = ledger
        .damaged(&[format!(
            "UPDATE wallet_transaction_reversals SET reversed_amount = reversed_amount + 1 \
             WHERE transaction_id = (SELECT reverses_transaction_id FROM wallet_transactions \
                 WHERE id = '{}')",
            ledger.reversal
        )])
        .await;
    assert_reported(&found, &["reversal_totals"]);
}

#[tokio::test]
async fn a_reversal_naming_a_row_of_another_wallet_is_reported() {
    let ledger = ledger().await;
    let found = ledger
        .damaged(&[format!(
            "UPDATE wallet_transactions SET reverses_transaction_id = \
                 (SELECT id FROM wallet_transactions WHERE transfer_id = '{}' AND amount > 0) \
             WHERE id = '{}'",
            ledger.transfer_id, ledger.reversal
        )])
        .await;
    assert!(found.contains("reversal_legs"), "{found:?}");
}
