//! The store contract of units of work over several wallets: transfers and
//! hold payouts. Part of [`crate::testing::contract`], which re-exports
//! every scenario here and runs them with the others.

use std::sync::{Arc, Mutex};

use chrono::Duration;
use uuid::Uuid;

use crate::command::{Command, CommandOutput};
use crate::context::{Ctx, Policy, UuidV7Generator};
use crate::error::WalletError;
use crate::events::{EventData, PayeeShare};
use crate::store::{SetUpdate, Store, WalletsMutation};
use crate::testing::contract::{
    assert_code, assert_error, balance, code, create_wallet, dec, deposit, execute, hold, hold_of,
    Harness, Snapshot,
};
use crate::testing::invariants;
use crate::transfer::{Payee, WalletSet, PAYEES_MAX};
use crate::wallet::{HoldStatus, TransactionType, WalletTransaction, WalletView};

/// The largest balance, in whole units: a wallet holding it can take nothing more.
const BALANCE_MAX_TEXT: &str = "1000000000000000";

pub fn transfer(payer: Uuid, payee: Uuid, amount: &str, currency: &str) -> Command {
    Command::Transfer {
        user_id: payer,
        to_user_id: payee,
        amount: dec(amount),
        currency: crate::testing::contract::code(currency),
        description: Some("rent".into()),
        reference: Some("invoice-7".into()),
    }
}

pub fn payout(
    payer: Uuid,
    hold_id: Uuid,
    amount: Option<&str>,
    payees: &[(Uuid, &str)],
) -> Command {
    Command::ExecuteHold {
        user_id: payer,
        hold_id,
        amount: amount.map(dec),
        reference: Some("order-delivered".into()),
        payees: Some(
            payees
                .iter()
                .map(|(user_id, amount)| Payee {
                    user_id: *user_id,
                    amount: dec(amount),
                })
                .collect(),
        ),
    }
}

/// The parts of a transfer's result.
pub fn transfer_of(output: CommandOutput) -> (WalletView, WalletTransaction, Uuid) {
    match output {
        CommandOutput::Transfer {
            wallet,
            transaction,
            transfer_id,
        } => (wallet, transaction, transfer_id),
        other => panic!("expected a transfer, got {other:?}"),
    }
}

impl<S: Store> Harness<S> {
    /// Checks invariant 5 across the given wallets, which must be every
    /// wallet of the store, and the invariants of each.
    pub async fn check_ledger(&self, users: &[Uuid]) {
        let mut wallets = Vec::new();
        for user in users {
            self.check_wallet(*user).await;
            wallets.push((self.wallet(*user).await, self.all_transactions(*user).await));
        }
        invariants::check_ledger_conserved(wallets.iter().map(|(v, log)| (v, log.as_slice())))
            .unwrap_or_else(|violation| panic!("ledger invariant broken: {violation}"));
    }

    /// A snapshot of each user, in order.
    pub async fn snapshots(&self, users: &[Uuid]) -> Vec<Snapshot> {
        let mut snapshots = Vec::new();
        for user in users {
            snapshots.push(self.snapshot(*user).await);
        }
        snapshots
    }

    /// The last transaction of a wallet.
    pub async fn last_transaction(&self, user: Uuid) -> WalletTransaction {
        self.all_transactions(user)
            .await
            .into_iter()
            .max_by_key(|t| t.sequence)
            .unwrap_or_else(|| panic!("wallet {user} has no transaction"))
    }

    /// Runs each command with a key of its own, expects its code, and checks
    /// that no wallet of `users` and no event changed; then that the first
    /// key was not recorded.
    pub async fn assert_all_fail(&self, users: &[Uuid], failing: Vec<(Command, &str)>) {
        let before = self.snapshots(users).await;
        for (index, (command, expected)) in failing.into_iter().enumerate() {
            let name = format!("{command:?}");
            assert_code(
                self.run_keyed(command, &format!("failing-{index}")).await,
                expected,
            );
            assert_eq!(
                self.snapshots(users).await,
                before,
                "a failed command changed state: {name}"
            );
        }
    }
}

/// A transfer debits the payer and credits the payee in one step: one
/// `TransferOut` and one `TransferIn` sharing a transfer id and naming each
/// other, `TransferSent` and `TransferReceived`; a Frozen payee receives;
/// money goes both ways; the statistics count both types.
pub async fn transfers<S: Store>(store: S) {
    let h = Harness::new(store);
    let payer = h.new_wallet(1).await;
    let payee = h.new_wallet(2).await;
    h.ok(deposit(payer, "100", "USD")).await;
    let events_before = h.all_events().await.len();
    let (wallet, sent, transfer_id) =
        transfer_of(h.ok(transfer(payer, payee, "30.5", "USD")).await);
    assert_eq!(wallet.user_id, payer);
    assert_eq!(balance(&wallet, "USD"), (dec("69.50"), dec("0")));
    assert_eq!(wallet, h.wallet(payer).await);
    assert_eq!(sent.transaction_type, TransactionType::TransferOut);
    assert_eq!(
        (sent.amount, sent.held_change, sent.balance_after),
        (dec("-30.50"), dec("0"), dec("69.50"))
    );
    assert_eq!(
        (sent.transfer_id, sent.counterparty_user_id),
        (Some(transfer_id), Some(payee))
    );
    assert_eq!(sent.description.as_deref(), Some("rent"));
    assert_eq!(sent, h.last_transaction(payer).await);
    let received = h.last_transaction(payee).await;
    assert_eq!(received.transaction_type, TransactionType::TransferIn);
    assert_eq!(
        (received.amount, received.balance_after),
        (dec("30.50"), dec("30.50"))
    );
    assert_eq!(
        (
            received.transfer_id,
            received.counterparty_user_id,
            received.hold_id
        ),
        (Some(transfer_id), Some(payer), None)
    );
    assert_eq!(received.reference.as_deref(), Some("invoice-7"));
    assert_transfer_events(&h, events_before, &sent, &received).await;

    // A Frozen payee receives, as it takes deposits; as a payer it may not send.
    h.ok(Command::FreezeWallet {
        user_id: payee,
        reason: "review".into(),
    })
    .await;
    h.ok(transfer(payer, payee, "1", "USD")).await;
    assert_error(
        h.run(transfer(payee, payer, "1", "USD")).await,
        WalletError::WalletFrozen,
    );
    h.ok(Command::UnfreezeWallet { user_id: payee }).await;
    h.ok(transfer(payee, payer, "11.5", "USD")).await;
    assert_eq!(balance(&h.wallet(payer).await, "USD").0, dec("80.00"));
    assert_eq!(balance(&h.wallet(payee).await, "USD").0, dec("20.00"));

    let statistics = h
        .service
        .statistics(None, None)
        .await
        .unwrap_or_else(|error| panic!("statistics: {error:?}"));
    for kind in [TransactionType::TransferIn, TransactionType::TransferOut] {
        let row = statistics
            .transactions
            .iter()
            .find(|row| row.transaction_type == kind)
            .unwrap_or_else(|| panic!("no statistics for {kind}"));
        assert_eq!((row.count, row.volume), (3, dec("43.00")), "{kind}");
    }
    h.check_ledger(&[payer, payee]).await;
}

/// The transfer raised `TransferSent` on the payer's wallet and
/// `TransferReceived` on the payee's, with the rows and the transfer id.
async fn assert_transfer_events<S: Store>(
    h: &Harness<S>,
    events_before: usize,
    sent: &WalletTransaction,
    received: &WalletTransaction,
) {
    let events = h.all_events().await;
    let new: Vec<&EventData> = events[events_before..]
        .iter()
        .map(|e| &e.event.data)
        .collect();
    assert_eq!(new.len(), 2, "{new:?}");
    let expected_sent = EventData::TransferSent {
        transaction_id: sent.id,
        transfer_id: sent.transfer_id.unwrap_or_default(),
        counterparty_user_id: sent.counterparty_user_id.unwrap_or_default(),
        currency: sent.currency,
        amount: sent.amount,
        balance_after: sent.balance_after,
    };
    let expected_received = EventData::TransferReceived {
        transaction_id: received.id,
        transfer_id: sent.transfer_id.unwrap_or_default(),
        counterparty_user_id: received.counterparty_user_id.unwrap_or_default(),
        currency: received.currency,
        amount: received.amount,
        balance_after: received.balance_after,
        hold_id: None,
    };
    assert!(new.contains(&&expected_sent), "{new:?}");
    assert!(new.contains(&&expected_received), "{new:?}");
    for stored in &events[events_before..] {
        let wallet_id = match stored.event.data {
            EventData::TransferSent { .. } => sent.wallet_id,
            _ => received.wallet_id,
        };
        assert_eq!(stored.event.aggregate_id, wallet_id);
    }
}

/// Every error of a transfer, in the order of the domain rules (the
/// request's shape and amounts, the wallets' existence, their statuses,
/// then the money), and none of them changes anything or records its key.
pub async fn transfer_rules<S: Store>(store: S) {
    let h = Harness::new(store);
    let payer = h.new_wallet(1).await;
    let payee = h.new_wallet(2).await;
    let closed = h.new_wallet(3).await;
    let frozen = h.new_wallet(4).await;
    let full = h.new_wallet(5).await;
    let missing = Uuid::from_u128(99);
    h.ok(deposit(payer, "10", "USD")).await;
    h.ok(deposit(payer, "100", "VND")).await;
    h.ok(deposit(frozen, "10", "USD")).await;
    h.ok(deposit(full, BALANCE_MAX_TEXT, "VND")).await;
    h.ok(Command::CloseWallet { user_id: closed }).await;
    h.ok(Command::FreezeWallet {
        user_id: frozen,
        reason: "review".into(),
    })
    .await;
    let mut long = transfer(payer, payee, "1", "USD");
    if let Command::Transfer { description, .. } = &mut long {
        *description = Some("x".repeat(501));
    }
    let failing = vec![
        (transfer(payer, payer, "1", "USD"), "same_wallet"),
        (transfer(payer, payee, "0", "USD"), "invalid_amount"),
        (transfer(payer, payee, "-1", "USD"), "invalid_amount"),
        (transfer(payer, payee, "1.001", "USD"), "invalid_amount"),
        (transfer(payer, payee, "1", "XXX"), "unsupported_currency"),
        (transfer(missing, payee, "1", "USD"), "wallet_not_found"),
        (
            transfer(payer, missing, "1", "USD"),
            "counterparty_not_found",
        ),
        (
            transfer(frozen, missing, "1", "USD"),
            "counterparty_not_found",
        ),
        (transfer(frozen, payee, "1", "USD"), "wallet_frozen"),
        (transfer(closed, payee, "1", "USD"), "wallet_closed"),
        (transfer(payer, closed, "1", "USD"), "counterparty_closed"),
        (transfer(payer, closed, "11", "USD"), "counterparty_closed"),
        (long, "validation_error"),
        (transfer(payer, payee, "10.01", "USD"), "insufficient_funds"),
        (transfer(payer, full, "1", "VND"), "balance_limit_exceeded"),
        (transfer(payer, full, "101", "VND"), "insufficient_funds"),
    ];
    let users = [payer, payee, closed, frozen, full];
    h.assert_all_fail(&users, failing).await;
    let applied = h
        .run_keyed(transfer(payer, payee, "10", "USD"), "failing-0")
        .await
        .unwrap_or_else(|error| panic!("a failed command's key is free: {error:?}"));
    assert!(!applied.replayed);
    h.check_ledger(&users).await;
}

/// A hold payout executes the payer's hold and credits each payee: the
/// payer's `HoldExecute` and each payee's `TransferIn` (with the hold id)
/// share one transfer id; a Frozen payee receives; `amount` may be given
/// when it equals the payees' sum.
pub async fn hold_payouts<S: Store>(store: S) {
    let h = Harness::new(store);
    let buyer = h.new_wallet(1).await;
    let seller = h.new_wallet(2).await;
    let fee = h.new_wallet(3).await;
    let courier = h.new_wallet(4).await;
    h.ok(deposit(buyer, "100", "USD")).await;
    h.ok(Command::FreezeWallet {
        user_id: courier,
        reason: "review".into(),
    })
    .await;
    let held = hold_of(h.ok(hold(buyer, "60", "USD", None)).await);
    let events_before = h.all_events().await.len();
    let shares = [(seller, "40"), (fee, "5"), (courier, "3")];
    let paid = hold_of(h.ok(payout(buyer, held.id, None, &shares)).await);
    assert_eq!(
        (paid.executed_amount, paid.remaining_amount, paid.status),
        (dec("48.00"), dec("12.00"), HoldStatus::Active)
    );
    assert_eq!(
        balance(&h.wallet(buyer).await, "USD"),
        (dec("52.00"), dec("12.00"))
    );
    let executed = h.last_transaction(buyer).await;
    assert_eq!(executed.transaction_type, TransactionType::HoldExecute);
    assert_eq!(
        (executed.amount, executed.held_change),
        (dec("-48.00"), dec("-48.00"))
    );
    let transfer_id = executed
        .transfer_id
        .unwrap_or_else(|| panic!("no transfer id"));
    assert_eq!(executed.counterparty_user_id, None);
    for (payee, amount) in shares {
        let received = h.last_transaction(payee).await;
        assert_eq!(received.transaction_type, TransactionType::TransferIn);
        assert_eq!(received.amount, dec(amount));
        assert_eq!(
            (
                received.transfer_id,
                received.counterparty_user_id,
                received.hold_id
            ),
            (Some(transfer_id), Some(buyer), Some(held.id))
        );
    }
    assert_payout_events(&h, events_before, transfer_id, &shares).await;

    // The rest, with an amount equal to the payees' sum, ends the hold.
    let done = hold_of(
        h.ok(payout(
            buyer,
            held.id,
            Some("12"),
            &[(seller, "10"), (fee, "2")],
        ))
        .await,
    );
    assert_eq!(
        (done.remaining_amount, done.status),
        (dec("0.00"), HoldStatus::Executed)
    );
    assert_eq!(balance(&h.wallet(seller).await, "USD").0, dec("50.00"));
    h.check_ledger(&[buyer, seller, fee, courier]).await;
}

/// The payout raised `EscrowExecuted` naming the payees and the transfer
/// id, and one `TransferReceived` per payee.
async fn assert_payout_events<S: Store>(
    h: &Harness<S>,
    events_before: usize,
    transfer_id: Uuid,
    shares: &[(Uuid, &str)],
) {
    let events = h.all_events().await;
    let types: Vec<&str> = events[events_before..]
        .iter()
        .map(|e| e.event.event_type())
        .collect();
    assert_eq!(
        types.iter().filter(|t| **t == "TransferReceived").count(),
        shares.len()
    );
    let escrow = events[events_before..]
        .iter()
        .find_map(|e| match &e.event.data {
            EventData::EscrowExecuted {
                transfer_id: id,
                payees,
                ..
            } => Some((*id, payees.clone())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no EscrowExecuted in {types:?}"));
    let named: Vec<PayeeShare> = shares
        .iter()
        .map(|(user_id, amount)| PayeeShare {
            user_id: *user_id,
            amount: dec(amount),
        })
        .collect();
    assert_eq!(escrow, (Some(transfer_id), named));
}

/// A payout may name up to 16 payees; without payees, an execution still
/// pays out of the ledger.
pub async fn payout_to_sixteen_payees<S: Store>(store: S) {
    let h = Harness::new(store);
    let buyer = h.new_wallet(1).await;
    h.ok(deposit(buyer, "100", "USD")).await;
    let many: Vec<Uuid> = (0..PAYEES_MAX as u128)
        .map(|i| Uuid::from_u128(100 + i))
        .collect();
    for user in &many {
        h.ok(create_wallet(*user)).await;
    }
    let big = hold_of(h.ok(hold(buyer, "16", "USD", None)).await);
    let sixteen: Vec<(Uuid, &str)> = many.iter().map(|user| (*user, "1")).collect();
    let all = hold_of(h.ok(payout(buyer, big.id, None, &sixteen)).await);
    assert_eq!(all.status, HoldStatus::Executed);

    // Without payees, an execution pays out of the ledger, as before.
    let plain = hold_of(h.ok(hold(buyer, "1", "USD", None)).await);
    h.ok(execute(buyer, plain.id, None)).await;
    assert_eq!(h.last_transaction(buyer).await.transfer_id, None);
    let mut users = vec![buyer];
    users.extend(many);
    h.check_ledger(&users).await;
}

/// Every error of a payout, in order, and none of them changes anything.
pub async fn payout_rules<S: Store>(store: S) {
    let h = Harness::new(store);
    let buyer = h.new_wallet(1).await;
    let seller = h.new_wallet(2).await;
    let fee = h.new_wallet(3).await;
    let closed = h.new_wallet(4).await;
    let full = h.new_wallet(5).await;
    let missing = Uuid::from_u128(99);
    h.ok(deposit(buyer, "100", "USD")).await;
    h.ok(deposit(buyer, "100", "VND")).await;
    h.ok(deposit(full, BALANCE_MAX_TEXT, "VND")).await;
    h.ok(Command::CloseWallet { user_id: closed }).await;
    let held = hold_of(h.ok(hold(buyer, "50", "USD", None)).await).id;
    let vnd = hold_of(h.ok(hold(buyer, "10", "VND", None)).await).id;
    let ended = hold_of(h.ok(hold(buyer, "1", "USD", None)).await).id;
    h.ok(execute(buyer, ended, None)).await;
    let seventeen: Vec<(Uuid, &str)> = (0..=PAYEES_MAX as u128)
        .map(|i| (Uuid::from_u128(200 + i), "1"))
        .collect();
    let failing = vec![
        (payout(buyer, held, None, &[]), "validation_error"),
        (payout(buyer, held, None, &seventeen), "validation_error"),
        (
            payout(buyer, held, None, &[(seller, "1"), (seller, "2")]),
            "validation_error",
        ),
        (
            payout(buyer, held, None, &[(seller, "1"), (buyer, "1")]),
            "same_wallet",
        ),
        (
            payout(missing, held, None, &[(seller, "1")]),
            "wallet_not_found",
        ),
        (
            payout(buyer, Uuid::from_u128(98), None, &[(seller, "1")]),
            "hold_not_found",
        ),
        (
            payout(buyer, ended, None, &[(seller, "1")]),
            "hold_not_active",
        ),
        (
            payout(buyer, held, None, &[(seller, "0")]),
            "invalid_amount",
        ),
        (
            payout(buyer, held, None, &[(seller, "1.001")]),
            "invalid_amount",
        ),
        (
            payout(buyer, vnd, None, &[(seller, "0.5")]),
            "invalid_amount",
        ),
        (
            payout(buyer, held, Some("5"), &[(seller, "4")]),
            "validation_error",
        ),
        (
            payout(buyer, held, None, &[(seller, "1"), (missing, "1")]),
            "counterparty_not_found",
        ),
        (
            payout(buyer, held, None, &[(missing, "60")]),
            "counterparty_not_found",
        ),
        (
            payout(buyer, held, None, &[(closed, "1")]),
            "counterparty_closed",
        ),
        (
            payout(buyer, held, None, &[(closed, "60")]),
            "counterparty_closed",
        ),
        (
            payout(buyer, held, None, &[(seller, "30"), (fee, "20.01")]),
            "amount_exceeds_hold",
        ),
        (
            payout(buyer, vnd, None, &[(seller, "1"), (full, "1")]),
            "balance_limit_exceeded",
        ),
    ];
    let users = [buyer, seller, fee, closed, full];
    h.assert_all_fail(&users, failing).await;
    h.ok(Command::FreezeWallet {
        user_id: buyer,
        reason: "review".into(),
    })
    .await;
    assert_error(
        h.run(payout(buyer, held, None, &[(seller, "1")])).await,
        WalletError::WalletFrozen,
    );
    h.check_ledger(&users).await;
}

/// Every wallet of a transfer expires its own overdue holds first: the
/// payer's expired hold frees the money it sends, and the payee's expiry
/// is written too; a failed transfer writes no expiry either.
pub async fn transfers_expire_overdue_holds_first<S: Store>(store: S) {
    let h = Harness::new(store);
    let payer = h.new_wallet(1).await;
    let payee = h.new_wallet(2).await;
    h.ok(deposit(payer, "10", "USD")).await;
    h.ok(deposit(payee, "5", "USD")).await;
    let soon = Some(h.now() + Duration::hours(1));
    let payer_hold = hold_of(h.ok(hold(payer, "10", "USD", soon)).await);
    let payee_hold = hold_of(h.ok(hold(payee, "5", "USD", soon)).await);
    h.advance(Duration::hours(2));
    h.ok(transfer(payer, payee, "10", "USD")).await;
    for (user, hold_id) in [(payer, payer_hold.id), (payee, payee_hold.id)] {
        let stored = h
            .service
            .hold(user, hold_id)
            .await
            .unwrap_or_else(|error| panic!("hold: {error:?}"));
        assert_eq!(stored.status, HoldStatus::Expired);
        // Newest first: the transfer's leg, and before it the expiry.
        let log = h.all_transactions(user).await;
        let kinds: Vec<TransactionType> = log.iter().take(2).map(|t| t.transaction_type).collect();
        assert_eq!(kinds[1], TransactionType::HoldRelease, "{kinds:?}");
        assert!(kinds[0] != TransactionType::HoldRelease, "{kinds:?}");
    }
    assert_eq!(
        balance(&h.wallet(payee).await, "USD"),
        (dec("15.00"), dec("0.00"))
    );
    let later = Some(h.now() + Duration::hours(1));
    h.ok(hold(payee, "15", "USD", later)).await;
    h.advance(Duration::hours(2));
    h.assert_all_fail(
        &[payer, payee],
        vec![(transfer(payee, payer, "16", "USD"), "insufficient_funds")],
    )
    .await;
    h.check_ledger(&[payer, payee]).await;
}

/// A transfer's key is the payer's: a repeat replays the first answer and
/// moves nothing; other parameters are `idempotency_key_reused`; the payee
/// may use the same key for its own commands; only the payer's rows carry
/// it. A payout's payees are a set: listed in another order, it is the
/// same command.
pub async fn transfer_idempotency<S: Store>(store: S) {
    let h = Harness::new(store);
    let payer = h.new_wallet(1).await;
    let payee = h.new_wallet(2).await;
    let fee = h.new_wallet(3).await;
    h.ok(deposit(payer, "10", "USD")).await;
    let first = h
        .run_keyed(transfer(payer, payee, "3", "USD"), "t-1")
        .await
        .unwrap_or_else(|error| panic!("transfer: {error:?}"));
    let again = h
        .run_keyed(transfer(payer, payee, "3.00", "usd"), "t-1")
        .await
        .unwrap_or_else(|error| panic!("replay: {error:?}"));
    assert!(again.replayed && !first.replayed);
    assert_eq!(again.output, first.output);
    assert_eq!(balance(&h.wallet(payee).await, "USD").0, dec("3.00"));
    assert_error(
        h.run_keyed(transfer(payer, payee, "4", "USD"), "t-1").await,
        WalletError::IdempotencyKeyReused,
    );
    assert_error(
        h.run_keyed(transfer(payer, fee, "3", "USD"), "t-1").await,
        WalletError::IdempotencyKeyReused,
    );
    let (_, sent, _) = transfer_of(first.output);
    assert_eq!(sent.idempotency_key.as_deref(), Some("t-1"));
    assert_eq!(h.last_transaction(payee).await.idempotency_key, None);
    let theirs = h
        .run_keyed(transfer(payee, payer, "1", "USD"), "t-1")
        .await
        .unwrap_or_else(|error| panic!("the payee's own key: {error:?}"));
    assert!(!theirs.replayed);

    let held = hold_of(h.ok(hold(payer, "4", "USD", None)).await).id;
    let paid = h
        .run_keyed(
            payout(payer, held, None, &[(payee, "1"), (fee, "2")]),
            "p-1",
        )
        .await
        .unwrap_or_else(|error| panic!("payout: {error:?}"));
    let reordered = h
        .run_keyed(
            payout(payer, held, None, &[(fee, "2.00"), (payee, "1")]),
            "p-1",
        )
        .await
        .unwrap_or_else(|error| panic!("payout replay: {error:?}"));
    assert!(reordered.replayed);
    assert_eq!(reordered.output, paid.output);
    assert_error(
        h.run_keyed(
            payout(payer, held, None, &[(payee, "2"), (fee, "1")]),
            "p-1",
        )
        .await,
        WalletError::IdempotencyKeyReused,
    );
    assert_eq!(hold_of(paid.output).remaining_amount, dec("1.00"));
    h.check_ledger(&[payer, payee, fee]).await;
}

/// The port itself ([`crate::store::WalletStore::update_wallets`]): the
/// set holds every wallet asked for that exists, whatever order they are
/// asked in, and no other; a named hold and a named row are remembered by
/// the wallet they belong to (the row with its reversed amount); a mutation that changes nothing writes nothing; a failed one
/// writes nothing on any wallet; a successful one writes exactly the
/// wallets it changed.
pub async fn wallets_unit_of_work<S: Store>(store: S) {
    let h = Harness::new(store);
    let first = h.new_wallet(1).await;
    let second = h.new_wallet(2).await;
    let missing = Uuid::from_u128(99);
    let CommandOutput::Transaction {
        transaction: deposited,
        ..
    } = h.ok(deposit(second, "10", "USD")).await
    else {
        panic!("a deposit answers with its transaction");
    };
    let ended = hold_of(h.ok(hold(second, "1", "USD", None)).await).id;
    h.ok(execute(second, ended, None)).await;
    let users = [first, second];
    let before = h.snapshots(&users).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let look: WalletsMutation = Arc::new(move |set: &mut WalletSet| {
        let loaded: Vec<(Uuid, bool, Option<_>)> = set
            .iter()
            .map(|w| {
                let named = w.named_transaction(deposited.id);
                let named = named.map(|t| (t.amount, t.reversed_amount));
                (w.user_id(), w.find_hold(ended).is_some(), named)
            })
            .collect();
        if let Ok(mut record) = record.lock() {
            record.push(loaded);
        }
        let wallet = set.get(first).ok_or(WalletError::WalletNotFound)?.view();
        Ok(CommandOutput::Wallet { wallet })
    });
    let store = h.service.store();
    store
        .update_wallets(SetUpdate {
            user_ids: vec![missing, second, first],
            hold_ids: vec![ended],
            transaction_ids: vec![deposited.id, Uuid::from_u128(98)],
            claim: None,
            mutation: look,
        })
        .await
        .unwrap_or_else(|error| panic!("a unit of work that changes nothing: {error:?}"));
    let loaded = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let remembered = Some((dec("10.00"), Some(dec("0.00"))));
    assert_eq!(
        loaded.last(),
        Some(&vec![(first, false, None), (second, true, remembered)])
    );
    assert_eq!(
        h.snapshots(&users).await,
        before,
        "nothing changed, nothing written"
    );

    let now = h.now();
    let change = move |fail: bool, which: Vec<Uuid>| -> WalletsMutation {
        Arc::new(move |set: &mut WalletSet| {
            let ids = UuidV7Generator::new();
            let policy = Policy::default();
            let ctx = Ctx {
                now,
                ids: &ids,
                policy: &policy,
                idempotency_key: None,
            };
            let money = policy.currencies.money(dec("1"), code("USD"))?;
            for user in &which {
                if let Some(wallet) = set.get_mut(*user) {
                    wallet.deposit(money, None, None, &ctx)?;
                }
            }
            if fail {
                return Err(WalletError::InsufficientFunds);
            }
            let wallet = set.get(first).ok_or(WalletError::WalletNotFound)?.view();
            Ok(CommandOutput::Wallet { wallet })
        })
    };
    assert_error(
        store
            .update_wallets(SetUpdate::of(users.to_vec(), change(true, users.to_vec())))
            .await,
        WalletError::InsufficientFunds,
    );
    assert_eq!(
        h.snapshots(&users).await,
        before,
        "a failure writes nothing"
    );
    store
        .update_wallets(SetUpdate::of(users.to_vec(), change(false, vec![second])))
        .await
        .unwrap_or_else(|error| panic!("a unit of work that changes one wallet: {error:?}"));
    let after = h.snapshots(&users).await;
    assert_eq!(
        after[0].wallet, before[0].wallet,
        "the unchanged wallet is not written"
    );
    assert_eq!(after[0].transactions, before[0].transactions);
    let (old, new) = (before[1].wallet.as_ref(), after[1].wallet.as_ref());
    assert_eq!(new.map(|w| w.version), old.map(|w| w.version + 1));
    assert_eq!(balance(&h.wallet(second).await, "USD").0, dec("10.00"));
    h.check_ledger(&users).await;
}
