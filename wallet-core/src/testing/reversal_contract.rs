//! The store contract of reversals, single transaction reads and balances
//! at a point in time. Part of [`crate::testing::contract`], which
//! re-exports every scenario here and runs them with the others.

use chrono::Duration;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::command::{Command, CommandOutput};
use crate::error::WalletError;
use crate::events::EventData;
use crate::store::Store;
use crate::testing::contract::{
    assert_code, assert_error, balance, code, dec, deposit, exchange, execute, hold, hold_of,
    release, withdraw, Harness,
};
use crate::testing::transfer_contract::{payout, transfer, transfer_of};
use crate::wallet::{TransactionType, WalletItem, WalletTransaction, WalletView};

/// A reversal of `amount` (all that is left when `None`) of a transaction.
pub fn reverse(user_id: Uuid, transaction_id: Uuid, amount: Option<&str>) -> Command {
    Command::ReverseTransaction {
        user_id,
        transaction_id,
        amount: amount.map(dec),
        reason: "refund".into(),
    }
}

/// The parts of a reversal's result.
pub fn reversal_of(output: CommandOutput) -> (WalletView, Vec<WalletTransaction>, Decimal) {
    match output {
        CommandOutput::Reversal {
            wallet,
            transactions,
            reversed_amount,
        } => (wallet, transactions, reversed_amount),
        other => panic!("expected a reversal, got {other:?}"),
    }
}

/// The transaction of a deposit's or withdrawal's result.
pub fn transaction_of(output: CommandOutput) -> WalletTransaction {
    match output {
        CommandOutput::Transaction { transaction, .. } => transaction,
        other => panic!("expected a transaction, got {other:?}"),
    }
}

impl<S: Store> Harness<S> {
    /// One transaction as a single read shows it.
    pub async fn transaction(&self, user: Uuid, transaction_id: Uuid) -> WalletTransaction {
        self.service
            .transaction(user, transaction_id)
            .await
            .unwrap_or_else(|error| panic!("transaction {transaction_id}: {error:?}"))
    }

    /// The reversed amount of a transaction, read alone and in the history
    /// (which must agree).
    pub async fn reversed(&self, user: Uuid, transaction_id: Uuid) -> Option<Decimal> {
        let single = self.transaction(user, transaction_id).await;
        let paged = self
            .all_transactions(user)
            .await
            .into_iter()
            .find(|t| t.id == transaction_id)
            .unwrap_or_else(|| panic!("{transaction_id} is not in the history"));
        assert_eq!(single, paged, "a single read and a page disagree");
        single.reversed_amount
    }
}

/// Every row of the reversal table on one wallet: a deposit is debited
/// back, a withdrawal and an execution paid out of the ledger credited;
/// partial, then the rest by default; one `Reversal` row per reversal with
/// the reason, the row it reverses and no transfer; `TransactionReversed`;
/// the running total in single reads and pages, on every reversible row;
/// nothing left is `reversal_exceeds_original`; statistics count the type.
pub async fn reversals_on_one_wallet<S: Store>(store: S) {
    let h = Harness::new(store);
    let user = h.new_wallet(1).await;
    let deposited = transaction_of(h.ok(deposit(user, "100", "USD")).await);
    assert_eq!(deposited.reversed_amount, Some(dec("0.00")));
    assert_eq!(h.reversed(user, deposited.id).await, Some(dec("0.00")));
    let events_before = h.all_events().await.len();
    let (wallet, rows, total) = reversal_of(h.ok(reverse(user, deposited.id, Some("30"))).await);
    assert_eq!(total, dec("30.00"));
    assert_eq!(balance(&wallet, "USD"), (dec("70.00"), dec("0")));
    assert_eq!(wallet, h.wallet(user).await);
    let [row] = rows.as_slice() else {
        panic!("one wallet, one row: {rows:?}")
    };
    assert_eq!(row.transaction_type, TransactionType::Reversal);
    assert_eq!(
        (row.amount, row.held_change, row.balance_after),
        (dec("-30.00"), dec("0"), dec("70.00"))
    );
    assert_eq!(row.reverses_transaction_id, Some(deposited.id));
    assert_eq!((row.transfer_id, row.counterparty_user_id), (None, None));
    assert_eq!(row.description.as_deref(), Some("refund"));
    assert_eq!(row.reversed_amount, None, "a reversal is not reversible");
    assert_eq!(h.reversed(user, row.id).await, None);
    assert_eq!(h.reversed(user, deposited.id).await, Some(dec("30.00")));
    let events = h.all_events().await;
    let new: Vec<&EventData> = events[events_before..]
        .iter()
        .map(|e| &e.event.data)
        .collect();
    assert_eq!(
        new,
        [&EventData::TransactionReversed {
            transaction_id: row.id,
            reverses_transaction_id: deposited.id,
            transfer_id: None,
            counterparty_user_id: None,
            currency: code("USD"),
            amount: dec("-30.00"),
            balance_after: dec("70.00"),
            reason: "refund".into(),
        }]
    );
    let (_, _, total) = reversal_of(h.ok(reverse(user, deposited.id, None)).await);
    assert_eq!(total, dec("100.00"));
    assert_eq!(balance(&h.wallet(user).await, "USD").0, dec("0.00"));
    for amount in [None, Some("0.01")] {
        assert_error(
            h.run(reverse(user, deposited.id, amount)).await,
            WalletError::ReversalExceedsOriginal,
        );
    }

    h.ok(deposit(user, "50", "USD")).await;
    let withdrawn = transaction_of(h.ok(withdraw(user, "20", "USD")).await);
    let (wallet, rows, total) = reversal_of(h.ok(reverse(user, withdrawn.id, Some("5"))).await);
    assert_eq!((rows[0].amount, total), (dec("5.00"), dec("5.00")));
    assert_eq!(balance(&wallet, "USD").0, dec("35.00"));
    let held = hold_of(h.ok(hold(user, "10", "USD", None)).await);
    h.ok(execute(user, held.id, Some("4"))).await;
    let executed = h.last_transaction(user).await;
    assert_eq!(executed.reversed_amount, Some(dec("0.00")));
    let (wallet, rows, total) = reversal_of(h.ok(reverse(user, executed.id, None)).await);
    assert_eq!((rows[0].amount, total), (dec("4.00"), dec("4.00")));
    assert_eq!(balance(&wallet, "USD"), (dec("35.00"), dec("6.00")));
    let after = h
        .service
        .hold(user, held.id)
        .await
        .unwrap_or_else(|error| panic!("hold: {error:?}"));
    assert_eq!(
        after.executed_amount,
        dec("4.00"),
        "a reversal leaves the hold as it is"
    );

    let statistics = h
        .service
        .statistics(None, None)
        .await
        .unwrap_or_else(|error| panic!("statistics: {error:?}"));
    let row = statistics
        .transactions
        .iter()
        .find(|row| row.transaction_type == TransactionType::Reversal)
        .unwrap_or_else(|| panic!("no statistics for reversals"));
    assert_eq!((row.count, row.volume), (4, dec("109.00")));
    h.check_ledger(&[user]).await;
}

/// A transfer is reversed from either side's id, the money moving back
/// from the payee to the payer; both sides share one total. Each wallet
/// gets one `Reversal` row naming its own leg, both under one new transfer
/// id and naming each other; the request's wallet's row comes first. A
/// payout's payee is reversed alone, the payer's row naming its
/// `HoldExecute`.
pub async fn reversals_between_wallets<S: Store>(store: S) {
    let h = Harness::new(store);
    let payer = h.new_wallet(1).await;
    let payee = h.new_wallet(2).await;
    let courier = h.new_wallet(3).await;
    h.ok(deposit(payer, "200", "USD")).await;
    let (_, sent, transfer_id) = transfer_of(h.ok(transfer(payer, payee, "50", "USD")).await);
    let received = h.last_transaction(payee).await;
    let events_before = h.all_events().await.len();
    let (wallet, rows, total) = reversal_of(h.ok(reverse(payer, sent.id, Some("20"))).await);
    assert_eq!(total, dec("20.00"));
    assert_eq!(wallet.user_id, payer);
    assert_eq!(balance(&wallet, "USD").0, dec("170.00"));
    assert_eq!(balance(&h.wallet(payee).await, "USD").0, dec("30.00"));
    let [mine, theirs] = rows.as_slice() else {
        panic!("two wallets, two rows: {rows:?}")
    };
    assert_eq!(
        (mine.wallet_id, mine.amount, mine.reverses_transaction_id),
        (sent.wallet_id, dec("20.00"), Some(sent.id))
    );
    assert_eq!(
        (
            theirs.wallet_id,
            theirs.amount,
            theirs.reverses_transaction_id
        ),
        (received.wallet_id, dec("-20.00"), Some(received.id))
    );
    let reversal_id = mine.transfer_id.unwrap_or_else(|| panic!("no transfer id"));
    assert_ne!(reversal_id, transfer_id);
    assert_eq!(theirs.transfer_id, Some(reversal_id));
    assert_eq!(
        (mine.counterparty_user_id, theirs.counterparty_user_id),
        (Some(payee), Some(payer))
    );
    assert_eq!(theirs.idempotency_key, None);
    assert_eq!(theirs, &h.last_transaction(payee).await);
    let events = h.all_events().await;
    let reversed_events = events[events_before..]
        .iter()
        .filter(|e| matches!(e.event.data, EventData::TransactionReversed { .. }))
        .count();
    assert_eq!(reversed_events, 2);
    // The other side's id: the same transfer, one total.
    assert_eq!(h.reversed(payee, received.id).await, Some(dec("20.00")));
    let (wallet, rows, total) = reversal_of(h.ok(reverse(payee, received.id, None)).await);
    assert_eq!(total, dec("50.00"));
    assert_eq!(wallet.user_id, payee);
    assert_eq!(rows[0].wallet_id, received.wallet_id);
    assert_eq!(balance(&wallet, "USD").0, dec("0.00"));
    assert_eq!(h.reversed(payer, sent.id).await, Some(dec("50.00")));
    for (user, leg) in [(payer, sent.id), (payee, received.id)] {
        assert_error(
            h.run(reverse(user, leg, Some("0.01"))).await,
            WalletError::ReversalExceedsOriginal,
        );
    }

    let held = hold_of(h.ok(hold(payer, "100", "USD", None)).await);
    h.ok(payout(
        payer,
        held.id,
        None,
        &[(payee, "60"), (courier, "40")],
    ))
    .await;
    let execution = h.last_transaction(payer).await;
    let to_courier = h.last_transaction(courier).await;
    assert_eq!(
        execution.reversed_amount, None,
        "a payout is reversed per payee"
    );
    let (wallet, rows, total) =
        reversal_of(h.ok(reverse(courier, to_courier.id, Some("15"))).await);
    assert_eq!((wallet.user_id, total), (courier, dec("15.00")));
    assert_eq!(balance(&wallet, "USD").0, dec("25.00"));
    assert_eq!(rows[1].reverses_transaction_id, Some(execution.id));
    assert_eq!(rows[1].amount, dec("15.00"));
    assert_eq!(balance(&h.wallet(payer).await, "USD").0, dec("115.00"));
    let to_payee = h.all_transactions(payee).await;
    let to_payee = to_payee
        .iter()
        .find(|t| t.hold_id == Some(held.id))
        .unwrap_or_else(|| panic!("the payee's leg of the payout"));
    assert_eq!(to_payee.reversed_amount, Some(dec("0.00")));
    let (_, _, total) = reversal_of(h.ok(reverse(payee, to_payee.id, None)).await);
    assert_eq!(total, dec("60.00"));
    assert_error(
        h.run(reverse(courier, to_courier.id, Some("25.01"))).await,
        WalletError::ReversalExceedsOriginal,
    );
    h.check_ledger(&[payer, payee, courier]).await;
}

/// Every error of a reversal, each changing nothing and recording no key:
/// `not_reversible` for each kind it names, `transaction_not_found` for an
/// unknown id and for another wallet's transaction, `insufficient_funds` on
/// the debited side, Frozen wallets allowed, Closed ones refused.
pub async fn reversal_rules<S: Store>(store: S) {
    let h = Harness::new(store);
    let user = h.new_wallet(1).await;
    let other = h.new_wallet(2).await;
    let closing = h.new_wallet(3).await;
    let missing = Uuid::from_u128(99);
    let deposited = transaction_of(h.ok(deposit(user, "100", "USD")).await);
    let held = hold_of(h.ok(hold(user, "10", "USD", None)).await);
    let hold_row = h.last_transaction(user).await;
    h.ok(release(user, held.id, Some("1"))).await;
    let release_row = h.last_transaction(user).await;
    h.ok(exchange(user, "1", "USD", "VND")).await;
    let exchanged = h.all_transactions(user).await;
    let exchange_rows: Vec<Uuid> = exchanged
        .iter()
        .filter(|t| {
            matches!(
                t.transaction_type,
                TransactionType::ExchangeIn | TransactionType::ExchangeOut
            )
        })
        .map(|t| t.id)
        .collect();
    h.ok(payout(user, held.id, Some("2"), &[(other, "2")]))
        .await;
    let paid_out = h.last_transaction(user).await;
    let (_, rows, _) = reversal_of(h.ok(reverse(user, deposited.id, Some("1"))).await);
    let reversal_row = rows[0].id;
    let foreign = transaction_of(h.ok(deposit(other, "5", "USD")).await);
    let (_, spent, _) = transfer_of(h.ok(transfer(user, closing, "3", "USD")).await);
    let to_closing = h.last_transaction(closing).await;
    h.ok(withdraw(closing, "3", "USD")).await;
    let mut long = reverse(user, deposited.id, Some("1"));
    if let Command::ReverseTransaction { reason, .. } = &mut long {
        *reason = "x".repeat(501);
    }
    let mut blank = reverse(user, deposited.id, Some("1"));
    if let Command::ReverseTransaction { reason, .. } = &mut blank {
        *reason = " ".into();
    }
    let mut failing = vec![
        (reverse(missing, deposited.id, None), "wallet_not_found"),
        (
            reverse(user, Uuid::from_u128(77), None),
            "transaction_not_found",
        ),
        (reverse(user, foreign.id, None), "transaction_not_found"),
        (reverse(user, hold_row.id, None), "not_reversible"),
        (reverse(user, release_row.id, None), "not_reversible"),
        (reverse(user, paid_out.id, None), "not_reversible"),
        (reverse(user, reversal_row, None), "not_reversible"),
        (reverse(user, deposited.id, Some("0")), "invalid_amount"),
        (reverse(user, deposited.id, Some("1.001")), "invalid_amount"),
        (long, "validation_error"),
        (blank, "validation_error"),
        (
            reverse(user, deposited.id, Some("99.01")),
            "reversal_exceeds_original",
        ),
        (
            reverse(user, deposited.id, Some("90")),
            "insufficient_funds",
        ),
        // The payee spent what it got: it cannot give it back.
        (reverse(user, spent.id, None), "insufficient_funds"),
        (reverse(closing, to_closing.id, None), "insufficient_funds"),
    ];
    failing.extend(
        exchange_rows
            .iter()
            .map(|id| (reverse(user, *id, None), "not_reversible")),
    );
    let users = [user, other, closing];
    h.assert_all_fail(&users, failing).await;

    // Frozen wallets give back and receive, on either side.
    h.ok(deposit(closing, "3", "USD")).await;
    for frozen in [user, closing] {
        h.ok(Command::FreezeWallet {
            user_id: frozen,
            reason: "fraud review".into(),
        })
        .await;
    }
    h.ok(reverse(user, deposited.id, Some("1"))).await;
    h.ok(reverse(user, spent.id, Some("1"))).await;
    h.ok(reverse(closing, to_closing.id, Some("1"))).await;
    for frozen in [user, closing] {
        h.ok(Command::UnfreezeWallet { user_id: frozen }).await;
    }
    // A Closed wallet answers for its side.
    h.ok(withdraw(closing, "1", "USD")).await;
    h.ok(Command::CloseWallet { user_id: closing }).await;
    let failing = vec![
        (reverse(user, spent.id, Some("0.5")), "counterparty_closed"),
        (
            reverse(closing, to_closing.id, Some("0.5")),
            "wallet_closed",
        ),
    ];
    h.assert_all_fail(&users, failing).await;
    let applied = h
        .run_keyed(reverse(user, deposited.id, Some("1")), "failing-0")
        .await
        .unwrap_or_else(|error| panic!("a failed reversal's key is free: {error:?}"));
    assert!(!applied.replayed);
    h.check_ledger(&users).await;
}

/// A reversal with a key is done once: the repeat answers the first result
/// and changes nothing; the key on other parameters is refused.
pub async fn reversal_idempotency<S: Store>(store: S) {
    let h = Harness::new(store);
    let payer = h.new_wallet(1).await;
    let payee = h.new_wallet(2).await;
    h.ok(deposit(payer, "10", "USD")).await;
    let (_, sent, _) = transfer_of(h.ok(transfer(payer, payee, "10", "USD")).await);
    let first = h
        .run_keyed(reverse(payer, sent.id, Some("4")), "refund-1")
        .await
        .unwrap_or_else(|error| panic!("reversal: {error:?}"));
    let before = h.snapshots(&[payer, payee]).await;
    let again = h
        .run_keyed(reverse(payer, sent.id, Some("4.00")), "refund-1")
        .await
        .unwrap_or_else(|error| panic!("replay: {error:?}"));
    assert!(again.replayed);
    assert_eq!(again.output, first.output);
    assert_eq!(h.snapshots(&[payer, payee]).await, before);
    assert_code(
        h.run_keyed(reverse(payer, sent.id, Some("5")), "refund-1")
            .await,
        "idempotency_key_reused",
    );
    assert_eq!(h.reversed(payer, sent.id).await, Some(dec("4.00")));
}

/// One transaction read alone: the wallet's own, with its reversed amount;
/// another wallet's is `transaction_not_found`, as is an unknown id; a
/// user without a wallet is `wallet_not_found`.
pub async fn single_transaction_reads<S: Store>(store: S) {
    let h = Harness::new(store);
    let user = h.new_wallet(1).await;
    let other = h.new_wallet(2).await;
    let deposited = transaction_of(h.ok(deposit(user, "7", "VND")).await);
    assert_eq!(h.transaction(user, deposited.id).await, deposited);
    let not_found = [
        (other, deposited.id, WalletError::TransactionNotFound),
        (user, Uuid::from_u128(5), WalletError::TransactionNotFound),
        (
            Uuid::from_u128(99),
            deposited.id,
            WalletError::WalletNotFound,
        ),
    ];
    for (user_id, id, error) in not_found {
        assert_error(h.service.transaction(user_id, id).await, error);
    }
}

/// Balances at a point in time, from the log: before the first transaction
/// nothing; between two and at exactly a transaction's `created_at` what
/// it left; held as it was; after the last (and in the future) today's.
pub async fn balances_at_a_time<S: Store>(store: S) {
    let h = Harness::new(store);
    let user = h.new_wallet(1).await;
    let start = h.now();
    let at = |offset: i64| start + Duration::seconds(offset);
    let item = |currency: &str, balance: &str, held: &str| WalletItem {
        currency: code(currency),
        balance: dec(balance),
        held: dec(held),
    };
    let balances = |when| {
        let service = h.service.clone();
        async move {
            service
                .balances_at(user, Some(when))
                .await
                .unwrap_or_else(|error| panic!("balances at {when}: {error:?}"))
        }
    };
    h.advance(Duration::seconds(10));
    h.ok(deposit(user, "100", "USD")).await;
    h.advance(Duration::seconds(10));
    let held = hold_of(h.ok(hold(user, "30", "USD", None)).await);
    h.ok(deposit(user, "5000", "VND")).await;
    h.advance(Duration::seconds(10));
    h.ok(execute(user, held.id, Some("10"))).await;
    assert!(
        balances(at(5)).await.balances.is_empty(),
        "before the first"
    );
    assert_eq!(
        balances(at(10)).await.balances,
        [item("USD", "100.00", "0.00")]
    );
    assert_eq!(
        balances(at(15)).await.balances,
        [item("USD", "100.00", "0.00")]
    );
    assert_eq!(
        balances(at(20)).await.balances,
        [item("USD", "100.00", "30.00"), item("VND", "5000", "0")]
    );
    let now = balances(at(30)).await;
    assert_eq!(now.at, at(30));
    assert_eq!(
        now.balances,
        [item("USD", "90.00", "20.00"), item("VND", "5000", "0")]
    );
    assert_eq!(balances(at(3600)).await.balances, now.balances);
    let today = h
        .service
        .balances_at(user, None)
        .await
        .unwrap_or_else(|error| panic!("balances now: {error:?}"));
    assert_eq!(today.balances, h.wallet(user).await.balances);
    assert_error(
        h.service.balances_at(Uuid::from_u128(99), None).await,
        WalletError::WalletNotFound,
    );
}
