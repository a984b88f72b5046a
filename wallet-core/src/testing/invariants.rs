//! Checks the numbered invariants of the domain rules on stored state.
//!
//! Every store (in memory, Postgres, ...) must keep these after every
//! command; property tests, fuzzing and the store-contract suite call them
//! after each step. The checks are pure: hand them what the store returns
//! and they answer `Ok(())` or a sentence describing the first violation.
//!
//! What to pass:
//! - a wallet's state: its [`WalletView`] (or the [`Wallet`] aggregate),
//!   **every** hold it ever had (any status) and its **full** transaction
//!   log, in any order (the checks sort by `sequence`);
//! - a point account's state: its [`PointAccountView`] (or the
//!   [`PointAccount`] aggregate), its lots (every lot or only the live ones:
//!   a lot with nothing left is ignored) and its full transaction log, in
//!   any order.
//!
//! Invariant 6 of the domain rules (a failed command changes nothing) is
//! about two states, so the caller checks it by comparing the state read
//! before a failed command with the state read after it.
//!
//! ```
//! use wallet_core::testing::invariants;
//! # fn check(view: &wallet_core::WalletView, holds: &[wallet_core::Hold],
//! #          log: &[wallet_core::WalletTransaction]) {
//! invariants::check_wallet(view, holds, log).unwrap_or_else(|violation| panic!("{violation}"));
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;
use uuid::Uuid;

use crate::events::StoredEvent;
use crate::money::CurrencyCode;
use crate::points::PointTransactionType as PointType;
use crate::points::{LotState, PointAccount, PointAccountView, PointLot, PointTransaction};
use crate::wallet::{Hold, HoldStatus, TransactionType, Wallet, WalletTransaction, WalletView};

/// Runs every wallet check: invariants 1 to 5 of the domain rules, the
/// signs of each transaction type, and the agreement of each hold with the
/// transactions that name it.
///
/// `holds` must be every hold of the wallet and `transactions` its full log.
pub fn check_wallet(
    view: &WalletView,
    holds: &[Hold],
    transactions: &[WalletTransaction],
) -> Result<(), String> {
    check_amounts_not_negative(view)?;
    check_holds(view, holds)?;
    check_held_matches_holds(view, holds)?;
    check_transaction_log(view, transactions)?;
    check_holds_match_log(holds, transactions)?;
    check_money_conserved(view, holds, transactions)?;
    check_reversals_capped(transactions)?;
    Ok(())
}

/// The cap of the domain rules, on one wallet's log: each `Reversal` names
/// an earlier row of the same log of a kind that a reversal may name (a
/// reversible row, or a payout's payer row as the other leg of a payee's
/// reversal), moves money the opposite way, and the reversals of one row
/// add up to at most its amount. [`check_ledger_conserved`] checks that
/// the two legs of a transfer share one total.
pub fn check_reversals_capped(transactions: &[WalletTransaction]) -> Result<(), String> {
    let by_id: HashMap<Uuid, &WalletTransaction> = transactions.iter().map(|t| (t.id, t)).collect();
    let mut reversed: HashMap<Uuid, Decimal> = HashMap::new();
    for reversal in transactions {
        let named = reversal.reverses_transaction_id;
        if (reversal.transaction_type == TransactionType::Reversal) != named.is_some() {
            return Err(format!(
                "transaction {}: a reversed transaction id on a {} row, or a reversal without one",
                reversal.sequence, reversal.transaction_type
            ));
        }
        let Some(named) = named else { continue };
        let Some(original) = by_id.get(&named) else {
            return Err(format!(
                "reversal {}: names {named}, which is not a row of this wallet",
                reversal.sequence
            ));
        };
        let payout_payer = original.transaction_type == TransactionType::HoldExecute
            && original.transfer_id.is_some();
        let opposite = original.amount.is_sign_negative() != reversal.amount.is_sign_negative();
        if original.sequence >= reversal.sequence
            || !(original.is_reversible() || payout_payer)
            || !opposite
            || original.currency != reversal.currency
        {
            return Err(format!(
                "reversal {}: does not undo row {} ({})",
                reversal.sequence, original.sequence, original.transaction_type
            ));
        }
        let total = reversed.entry(named).or_default();
        *total += reversal.amount.abs();
        if *total > original.amount.abs() {
            return Err(format!(
                "row {} ({} {}): reversed {total}, more than its amount",
                original.sequence, original.transaction_type, original.amount
            ));
        }
    }
    Ok(())
}

/// [`check_wallet`] on the aggregate itself, plus the agreement of the
/// aggregate with the stored data: each hold the aggregate has loaded equals
/// the stored hold, every stored `Active` hold is loaded, and its
/// transaction count is the length of the log.
pub fn check_wallet_aggregate(
    wallet: &Wallet,
    holds: &[Hold],
    transactions: &[WalletTransaction],
) -> Result<(), String> {
    check_wallet(&wallet.view(), holds, transactions)?;
    for loaded in wallet.holds().values() {
        match holds.iter().find(|h| h.id == loaded.id) {
            Some(stored) if stored == loaded => {}
            Some(stored) => {
                return Err(format!(
                    "hold {}: the aggregate has {loaded:?} but the store has {stored:?}",
                    loaded.id
                ))
            }
            None => return Err(format!("hold {}: loaded but not stored", loaded.id)),
        }
    }
    for stored in holds.iter().filter(|h| h.status == HoldStatus::Active) {
        if !wallet.holds().contains_key(&stored.id) {
            return Err(format!(
                "hold {}: active in the store but not loaded in the aggregate",
                stored.id
            ));
        }
    }
    if wallet.transaction_count() != transactions.len() as u64 {
        return Err(format!(
            "the aggregate counts {} transactions, the log has {}",
            wallet.transaction_count(),
            transactions.len()
        ));
    }
    Ok(())
}

/// Invariant 1: `balance >= 0`, `held >= 0` and `held <= balance` for every
/// item (so `available >= 0`), and one item per currency.
pub fn check_amounts_not_negative(view: &WalletView) -> Result<(), String> {
    let mut seen = Vec::new();
    for item in &view.balances {
        if seen.contains(&item.currency) {
            return Err(format!("{}: listed twice", item.currency));
        }
        seen.push(item.currency);
        if item.balance < Decimal::ZERO {
            return Err(format!("{}: balance {} < 0", item.currency, item.balance));
        }
        if item.held < Decimal::ZERO {
            return Err(format!("{}: held {} < 0", item.currency, item.held));
        }
        if item.held > item.balance {
            return Err(format!(
                "{}: held {} > balance {}",
                item.currency, item.held, item.balance
            ));
        }
    }
    Ok(())
}

/// Invariant 2: `held == sum(remaining)` over the item's `Active` holds, per
/// currency (a currency with an active hold must have an item).
pub fn check_held_matches_holds(view: &WalletView, holds: &[Hold]) -> Result<(), String> {
    let mut remaining: BTreeMap<CurrencyCode, Decimal> = BTreeMap::new();
    for hold in holds.iter().filter(|h| h.status == HoldStatus::Active) {
        *remaining.entry(hold.currency).or_default() += hold.remaining_amount;
    }
    for item in &view.balances {
        let sum = remaining.remove(&item.currency).unwrap_or_default();
        if item.held != sum {
            return Err(format!(
                "{}: held {} but active holds have {} remaining",
                item.currency, item.held, sum
            ));
        }
    }
    if let Some((currency, sum)) = remaining.into_iter().next() {
        return Err(format!(
            "{currency}: active holds have {sum} remaining but the wallet has no such item"
        ));
    }
    Ok(())
}

/// Invariant 3: for each hold, `original == remaining + executed + released`,
/// all four >= 0 (original > 0), `remaining > 0` exactly while `Active`, and
/// the hold belongs to the wallet.
pub fn check_holds(view: &WalletView, holds: &[Hold]) -> Result<(), String> {
    for hold in holds {
        let id = hold.id;
        if hold.wallet_id != view.id {
            return Err(format!("hold {id}: belongs to wallet {}", hold.wallet_id));
        }
        let parts = [
            ("original", hold.original_amount),
            ("remaining", hold.remaining_amount),
            ("executed", hold.executed_amount),
            ("released", hold.released_amount),
        ];
        if let Some((name, value)) = parts.iter().find(|(_, v)| *v < Decimal::ZERO) {
            return Err(format!("hold {id}: {name} {value} < 0"));
        }
        if hold.original_amount <= Decimal::ZERO {
            return Err(format!("hold {id}: original {} <= 0", hold.original_amount));
        }
        let sum = hold.remaining_amount + hold.executed_amount + hold.released_amount;
        if hold.original_amount != sum {
            return Err(format!(
                "hold {id}: original {} != remaining {} + executed {} + released {}",
                hold.original_amount,
                hold.remaining_amount,
                hold.executed_amount,
                hold.released_amount
            ));
        }
        let active = hold.status == HoldStatus::Active;
        if active && hold.remaining_amount.is_zero() {
            return Err(format!("hold {id}: active with nothing remaining"));
        }
        if !active && !hold.remaining_amount.is_zero() {
            return Err(format!(
                "hold {id}: {} with {} remaining",
                hold.status, hold.remaining_amount
            ));
        }
        let ended_by_execute = hold.status == HoldStatus::Executed;
        if ended_by_execute && hold.executed_amount.is_zero() {
            return Err(format!("hold {id}: Executed but nothing was executed"));
        }
        let released = matches!(
            hold.status,
            HoldStatus::Released | HoldStatus::Cancelled | HoldStatus::Expired
        );
        if released && hold.released_amount.is_zero() {
            return Err(format!(
                "hold {id}: {} but nothing was released",
                hold.status
            ));
        }
    }
    Ok(())
}

/// Invariant 4: sequences run 1..=n without gaps; each transaction has the
/// signs its type prescribes; per currency, each transaction's
/// `balance_after` and `held_after` equal the running sums of `amount` and
/// `held_change`, and the final sums equal the item's `balance` and `held`.
pub fn check_transaction_log(
    view: &WalletView,
    transactions: &[WalletTransaction],
) -> Result<(), String> {
    let log = sorted_by_sequence(transactions, |t| t.sequence);
    let mut running: BTreeMap<CurrencyCode, (Decimal, Decimal)> = BTreeMap::new();
    for (index, transaction) in log.iter().enumerate() {
        let sequence = transaction.sequence;
        if sequence != index as u64 + 1 {
            return Err(format!(
                "transaction {}: sequence {sequence} where {} was due",
                transaction.id,
                index + 1
            ));
        }
        if transaction.wallet_id != view.id {
            return Err(format!(
                "transaction {sequence}: belongs to wallet {}",
                transaction.wallet_id
            ));
        }
        check_transaction_signs(transaction)?;
        let (balance, held) = running.entry(transaction.currency).or_default();
        *balance += transaction.amount;
        *held += transaction.held_change;
        if transaction.balance_after != *balance || transaction.held_after != *held {
            return Err(format!(
                "transaction {sequence} ({}): after = ({}, {}) but the running sums are ({balance}, {held})",
                transaction.transaction_type, transaction.balance_after, transaction.held_after
            ));
        }
        if *balance < Decimal::ZERO || *held < Decimal::ZERO || *held > *balance {
            return Err(format!(
                "transaction {sequence}: balance {balance} and held {held} break invariant 1"
            ));
        }
    }
    for item in &view.balances {
        let (balance, held) = running.remove(&item.currency).unwrap_or_default();
        if item.balance != balance || item.held != held {
            return Err(format!(
                "{}: balance {} and held {} but the log sums to {balance} and {held}",
                item.currency, item.balance, item.held
            ));
        }
    }
    if let Some((currency, _)) = running.into_iter().next() {
        return Err(format!(
            "{currency}: the log has transactions but the wallet has no such item"
        ));
    }
    Ok(())
}

/// Which of a transaction's optional links its type allows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    Never,
    Maybe,
    Always,
}

impl Link {
    fn admits(self, present: bool) -> bool {
        match self {
            Link::Never => !present,
            Link::Maybe => true,
            Link::Always => present,
        }
    }
}

/// Which links each transaction type carries: a hold id, a transfer id, a
/// counterparty.
fn links_of(kind: TransactionType) -> (Link, Link, Link) {
    match kind {
        TransactionType::Deposit
        | TransactionType::Withdraw
        | TransactionType::ExchangeIn
        | TransactionType::ExchangeOut => (Link::Never, Link::Never, Link::Never),
        TransactionType::Hold | TransactionType::HoldRelease => {
            (Link::Always, Link::Never, Link::Never)
        }
        TransactionType::HoldExecute => (Link::Always, Link::Maybe, Link::Never),
        TransactionType::TransferIn => (Link::Maybe, Link::Always, Link::Always),
        TransactionType::TransferOut => (Link::Never, Link::Always, Link::Always),
        // Between two wallets with both; on one wallet with neither (the
        // pairing is checked by `check_transaction_signs`).
        TransactionType::Reversal => (Link::Never, Link::Maybe, Link::Maybe),
    }
}

/// The table of the domain rules: the sign of `amount` and of `held_change`
/// per transaction type; a hold id exactly on the hold types and on a
/// payout's `TransferIn`; a transfer id and a counterparty on both legs of
/// a transfer, and a transfer id (without a counterparty) on a payout's
/// `HoldExecute`.
pub fn check_transaction_signs(transaction: &WalletTransaction) -> Result<(), String> {
    let (amount, held_change) = (transaction.amount, transaction.held_change);
    let zero = Decimal::ZERO;
    let kind = transaction.transaction_type;
    let signs_ok = match kind {
        TransactionType::Deposit | TransactionType::ExchangeIn | TransactionType::TransferIn => {
            amount > zero && held_change.is_zero()
        }
        TransactionType::Withdraw | TransactionType::ExchangeOut | TransactionType::TransferOut => {
            amount < zero && held_change.is_zero()
        }
        TransactionType::Hold => amount.is_zero() && held_change > zero,
        TransactionType::HoldExecute => amount < zero && held_change == amount,
        TransactionType::HoldRelease => amount.is_zero() && held_change < zero,
        TransactionType::Reversal => {
            !amount.is_zero()
                && held_change.is_zero()
                && transaction.transfer_id.is_some() == transaction.counterparty_user_id.is_some()
        }
    };
    let (hold, transfer, counterparty) = links_of(kind);
    if !signs_ok {
        return Err(format!(
            "transaction {} ({kind}): amount {amount} and held change {held_change} have the wrong signs",
            transaction.sequence
        ));
    }
    let links = [
        ("hold id", hold, transaction.hold_id.is_some()),
        ("transfer id", transfer, transaction.transfer_id.is_some()),
        (
            "counterparty",
            counterparty,
            transaction.counterparty_user_id.is_some(),
        ),
    ];
    if let Some((name, _, present)) = links
        .iter()
        .find(|(_, link, present)| !link.admits(*present))
    {
        return Err(format!(
            "transaction {} ({kind}): {name} {}",
            transaction.sequence,
            if *present {
                "where none belongs"
            } else {
                "missing"
            }
        ));
    }
    Ok(())
}

/// Each hold agrees with the transactions that name it: one `Hold`
/// transaction of `original` in its currency, `executed` is the sum of its
/// `HoldExecute` transactions, `released` the sum of its `HoldRelease`
/// transactions; and every hold a transaction names exists.
pub fn check_holds_match_log(
    holds: &[Hold],
    transactions: &[WalletTransaction],
) -> Result<(), String> {
    #[derive(Default)]
    struct Sums {
        created: Decimal,
        creations: u32,
        executed: Decimal,
        released: Decimal,
        currency: Option<CurrencyCode>,
    }
    let mut sums: HashMap<Uuid, Sums> = HashMap::new();
    for transaction in transactions {
        let Some(hold_id) = transaction.hold_id else {
            continue;
        };
        // A payout's `TransferIn` names the payer's hold, not one of this
        // wallet's; the ledger-wide check ties it to the payer's execution.
        if transaction.transaction_type == TransactionType::TransferIn {
            continue;
        }
        let entry = sums.entry(hold_id).or_default();
        if entry.currency.is_some_and(|c| c != transaction.currency) {
            return Err(format!("hold {hold_id}: transactions in two currencies"));
        }
        entry.currency = Some(transaction.currency);
        match transaction.transaction_type {
            TransactionType::Hold => {
                entry.created += transaction.held_change;
                entry.creations += 1;
            }
            TransactionType::HoldExecute => entry.executed -= transaction.amount,
            TransactionType::HoldRelease => entry.released -= transaction.held_change,
            other @ (TransactionType::Deposit
            | TransactionType::Withdraw
            | TransactionType::ExchangeIn
            | TransactionType::ExchangeOut
            | TransactionType::TransferIn
            | TransactionType::TransferOut
            | TransactionType::Reversal) => {
                return Err(format!("a {other} transaction names hold {hold_id}"))
            }
        }
    }
    for hold in holds {
        let id = hold.id;
        let Some(sum) = sums.remove(&id) else {
            return Err(format!("hold {id}: no transaction names it"));
        };
        if sum.creations != 1 || sum.created != hold.original_amount {
            return Err(format!(
                "hold {id}: original {} but {} Hold transactions of {}",
                hold.original_amount, sum.creations, sum.created
            ));
        }
        if sum.currency != Some(hold.currency) {
            return Err(format!("hold {id}: transactions in another currency"));
        }
        if sum.executed != hold.executed_amount {
            return Err(format!(
                "hold {id}: executed {} but its transactions executed {}",
                hold.executed_amount, sum.executed
            ));
        }
        if sum.released != hold.released_amount {
            return Err(format!(
                "hold {id}: released {} but its transactions released {}",
                hold.released_amount, sum.released
            ));
        }
    }
    if let Some(hold_id) = sums.keys().next() {
        return Err(format!(
            "transactions name hold {hold_id}, which is not stored"
        ));
    }
    Ok(())
}

/// Invariant 5, per wallet: per currency, deposits - withdrawals - executed
/// holds + exchange-in - exchange-out + transfers-in - transfers-out +-
/// reversals == balance, where the executed amounts come from the holds (not from the
/// log), so the two records are cross-checked. [`check_ledger_conserved`]
/// checks the same across wallets.
pub fn check_money_conserved(
    view: &WalletView,
    holds: &[Hold],
    transactions: &[WalletTransaction],
) -> Result<(), String> {
    let mut flows: BTreeMap<CurrencyCode, Decimal> = BTreeMap::new();
    for transaction in transactions {
        let size = transaction.amount.abs();
        let flow = flows.entry(transaction.currency).or_default();
        match transaction.transaction_type {
            TransactionType::Deposit
            | TransactionType::ExchangeIn
            | TransactionType::TransferIn => *flow += size,
            TransactionType::Withdraw
            | TransactionType::ExchangeOut
            | TransactionType::TransferOut => *flow -= size,
            TransactionType::Reversal => *flow += transaction.amount,
            TransactionType::Hold | TransactionType::HoldExecute | TransactionType::HoldRelease => {
            }
        }
    }
    for hold in holds {
        *flows.entry(hold.currency).or_default() -= hold.executed_amount;
    }
    for item in &view.balances {
        let expected = flows.remove(&item.currency).unwrap_or_default();
        if item.balance != expected {
            return Err(format!(
                "{}: balance {} but deposits - withdrawals - executed + exchanged in - out = {expected}",
                item.currency, item.balance
            ));
        }
    }
    if let Some((currency, flow)) = flows.into_iter().find(|(_, f)| !f.is_zero()) {
        return Err(format!(
            "{currency}: money moved ({flow}) but the wallet has no such item"
        ));
    }
    Ok(())
}

/// Invariant 5 across wallets, for every wallet of the ledger with its
/// full log:
/// - per currency, the sum of all balances equals what crossed the
///   ledger's edge: deposits - withdrawals - executions without payees +
///   exchange-in - exchange-out (transfers and payouts only move money
///   between wallets);
/// - each transfer id has exactly one debit leg (a `TransferOut`, or a
///   payout's `HoldExecute`) and its credit legs (`TransferIn`), all in one
///   currency, adding up to zero;
/// - each leg names the other side as its counterparty: a `TransferOut`
///   the payee, each `TransferIn` the payer, and a payout's `TransferIn`
///   the payer's hold;
/// - a reversal between two wallets is two mirrored `Reversal` rows, and
///   the two legs of each transfer share one reversed total
///   ([`check_transfer_totals_shared`]).
pub fn check_ledger_conserved<'a>(
    wallets: impl IntoIterator<Item = (&'a WalletView, &'a [WalletTransaction])>,
) -> Result<(), String> {
    let wallets: Vec<(&WalletView, &[WalletTransaction])> = wallets.into_iter().collect();
    check_transfer_totals_shared(wallets.iter().map(|(_, log)| *log))?;
    let mut balances: BTreeMap<CurrencyCode, Decimal> = BTreeMap::new();
    let mut edge: BTreeMap<CurrencyCode, Decimal> = BTreeMap::new();
    let mut legs: BTreeMap<Uuid, Vec<(Uuid, &WalletTransaction)>> = BTreeMap::new();
    for (view, transactions) in wallets {
        for item in &view.balances {
            *balances.entry(item.currency).or_default() += item.balance;
        }
        for transaction in transactions {
            if let Some(transfer_id) = transaction.transfer_id {
                legs.entry(transfer_id)
                    .or_default()
                    .push((view.user_id, transaction));
            } else {
                *edge.entry(transaction.currency).or_default() += transaction.amount;
            }
        }
    }
    edge.retain(|_, flow| !flow.is_zero());
    balances.retain(|_, balance| !balance.is_zero());
    if balances != edge {
        return Err(format!(
            "the balances sum to {balances:?} but the money that entered and left the ledger is {edge:?}"
        ));
    }
    legs.iter()
        .try_for_each(|(transfer_id, legs)| check_transfer_legs(*transfer_id, legs))
}

/// One transfer's legs, each with the user of the wallet it is on.
fn check_transfer_legs(
    transfer_id: Uuid,
    legs: &[(Uuid, &WalletTransaction)],
) -> Result<(), String> {
    if legs
        .iter()
        .any(|(_, t)| t.transaction_type == TransactionType::Reversal)
    {
        return check_reversal_legs(transfer_id, legs);
    }
    let is_debit = |t: &WalletTransaction| {
        matches!(
            t.transaction_type,
            TransactionType::TransferOut | TransactionType::HoldExecute
        )
    };
    let debits: Vec<&(Uuid, &WalletTransaction)> =
        legs.iter().filter(|(_, t)| is_debit(t)).collect();
    let [(payer, debit)] = debits.as_slice() else {
        return Err(format!(
            "transfer {transfer_id}: {} debit legs where one was due",
            debits.len()
        ));
    };
    let credits: Vec<&(Uuid, &WalletTransaction)> =
        legs.iter().filter(|(_, t)| !is_debit(t)).collect();
    let total: Decimal = legs.iter().map(|(_, t)| t.amount).sum();
    if !total.is_zero() || legs.iter().any(|(_, t)| t.currency != debit.currency) {
        return Err(format!(
            "transfer {transfer_id}: its legs add up to {total}, or span currencies"
        ));
    }
    for (payee, credit) in &credits {
        let named = credit.transaction_type == TransactionType::TransferIn
            && credit.counterparty_user_id == Some(*payer)
            && credit.hold_id == debit.hold_id;
        let sent_to_payee = debit.transaction_type == TransactionType::HoldExecute
            || (credits.len() == 1 && debit.counterparty_user_id == Some(*payee));
        if !named || !sent_to_payee || payee == payer {
            return Err(format!(
                "transfer {transfer_id}: the legs of {payer} and {payee} do not name each other"
            ));
        }
    }
    Ok(())
}

/// A reversal between two wallets: two `Reversal` rows, one giving back
/// and one getting, in one currency, adding up to zero, each naming the
/// other's user.
fn check_reversal_legs(
    transfer_id: Uuid,
    legs: &[(Uuid, &WalletTransaction)],
) -> Result<(), String> {
    let [(first, a), (second, b)] = legs else {
        return Err(format!(
            "reversal {transfer_id}: {} legs where two were due",
            legs.len()
        ));
    };
    let paired = a.transaction_type == TransactionType::Reversal
        && b.transaction_type == TransactionType::Reversal
        && a.currency == b.currency
        && (a.amount + b.amount).is_zero()
        && a.counterparty_user_id == Some(*second)
        && b.counterparty_user_id == Some(*first)
        && first != second;
    if !paired {
        return Err(format!(
            "reversal {transfer_id}: its legs do not mirror each other"
        ));
    }
    Ok(())
}

/// The two legs of every transfer share one total: for each transfer, the
/// reversals naming its payer's leg add up to those naming its payee's
/// (a payout's payer row, to those naming its payees' legs), across the
/// logs of every wallet of the ledger.
pub fn check_transfer_totals_shared<'a>(
    logs: impl IntoIterator<Item = &'a [WalletTransaction]>,
) -> Result<(), String> {
    let logs: Vec<&[WalletTransaction]> = logs.into_iter().collect();
    let rows = || logs.iter().flat_map(|log| log.iter());
    let mut reversed: HashMap<Uuid, Decimal> = HashMap::new();
    for reversal in rows() {
        if let Some(named) = reversal.reverses_transaction_id {
            *reversed.entry(named).or_default() += reversal.amount.abs();
        }
    }
    // Per transfer: (debit side's total, credit sides' total).
    let mut totals: BTreeMap<Uuid, (Decimal, Decimal)> = BTreeMap::new();
    for leg in rows() {
        let (Some(transfer_id), false) = (
            leg.transfer_id,
            leg.transaction_type == TransactionType::Reversal,
        ) else {
            continue;
        };
        let total = reversed.get(&leg.id).copied().unwrap_or_default();
        let entry = totals.entry(transfer_id).or_default();
        if leg.amount.is_sign_negative() {
            entry.0 += total;
        } else {
            entry.1 += total;
        }
    }
    match totals.iter().find(|(_, (debit, credit))| debit != credit) {
        Some((transfer_id, (debit, credit))) => Err(format!(
            "transfer {transfer_id}: its payer's leg was reversed by {debit}, its payees' by {credit}"
        )),
        None => Ok(()),
    }
}

/// Runs every point-account check: the view's sums, the lots, the running
/// sums of the log, and conservation of points.
///
/// `lots` may be every lot of the account or only the live ones (pending,
/// or available with points left); `transactions` must be the full log.
pub fn check_point_account(
    view: &PointAccountView,
    lots: &[PointLot],
    transactions: &[PointTransaction],
) -> Result<(), String> {
    check_point_totals(view)?;
    check_lots(view, lots)?;
    check_point_log(view, transactions)?;
    check_lots_match_log(lots, transactions)?;
    check_points_conserved(view, transactions)?;
    Ok(())
}

/// [`check_point_account`] on the aggregate and its live lots, plus its
/// transaction count against the log.
pub fn check_point_account_aggregate(
    account: &PointAccount,
    transactions: &[PointTransaction],
) -> Result<(), String> {
    let lots: Vec<PointLot> = account.lots().cloned().collect();
    check_point_account(&account.view(), &lots, transactions)?;
    if account.transaction_count() != transactions.len() as u64 {
        return Err(format!(
            "the account counts {} transactions, the log has {}",
            account.transaction_count(),
            transactions.len()
        ));
    }
    Ok(())
}

/// Nothing is negative and `total == available + pending`.
pub fn check_point_totals(view: &PointAccountView) -> Result<(), String> {
    let figures = [
        ("available", view.available_points),
        ("pending", view.pending_points),
        ("total", view.total_points),
        ("lifetime earned", view.lifetime_earned),
    ];
    if let Some((name, value)) = figures.iter().find(|(_, v)| *v < 0) {
        return Err(format!("{name} points {value} < 0"));
    }
    if view.available_points.checked_add(view.pending_points) != Some(view.total_points) {
        return Err(format!(
            "total {} != available {} + pending {}",
            view.total_points, view.available_points, view.pending_points
        ));
    }
    Ok(())
}

/// `available == sum(remaining)` over available lots and `pending ==
/// sum(points)` over live pending lots; each lot has `0 <= remaining <=
/// points`, `points > 0`, a live pending lot has all its points, and the
/// lot belongs to the account.
pub fn check_lots(view: &PointAccountView, lots: &[PointLot]) -> Result<(), String> {
    let (mut available, mut pending) = (0i64, 0i64);
    let mut seen = std::collections::HashSet::new();
    for lot in lots {
        let id = lot.id;
        if !seen.insert(id) {
            return Err(format!("lot {id}: listed twice"));
        }
        if lot.account_id != view.id {
            return Err(format!("lot {id}: belongs to account {}", lot.account_id));
        }
        if lot.points <= 0 || lot.remaining < 0 || lot.remaining > lot.points {
            return Err(format!(
                "lot {id}: points {} and remaining {} are out of bounds",
                lot.points, lot.remaining
            ));
        }
        match lot.state {
            LotState::Available => available = checked_sum(available, lot.remaining)?,
            // A pending lot that was cancelled or expired has nothing left.
            LotState::Pending if lot.remaining == 0 => {}
            LotState::Pending if lot.remaining != lot.points => {
                return Err(format!(
                    "lot {id}: pending with {} of {} points",
                    lot.remaining, lot.points
                ))
            }
            LotState::Pending => pending = checked_sum(pending, lot.points)?,
        }
    }
    if available != view.available_points {
        return Err(format!(
            "available {} but the available lots hold {available}",
            view.available_points
        ));
    }
    if pending != view.pending_points {
        return Err(format!(
            "pending {} but the pending lots hold {pending}",
            view.pending_points
        ));
    }
    Ok(())
}

/// What a point transaction did to the two balances, as read from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PointEffect {
    Available,
    Pending,
    Both,
}

/// The log: sequences 1..=n; each type has its sign (`Earn`,
/// `EarnPending`, `PendingConfirmed` > 0; `PendingCancelled`, `Spend`,
/// `Expire` < 0; `Adjust` != 0); each `balance_after` equals the running
/// sum of available points, which never goes below zero, nor does the
/// running sum of pending points; the final sums and the lifetime earned
/// equal the view's.
///
/// An `Expire` transaction is of an available lot when it moved
/// `balance_after`, of a pending lot when it did not.
pub fn check_point_log(
    view: &PointAccountView,
    transactions: &[PointTransaction],
) -> Result<(), String> {
    let log = sorted_by_sequence(transactions, |t| t.sequence);
    let (mut available, mut pending, mut lifetime) = (0i64, 0i64, 0i64);
    for (index, transaction) in log.iter().enumerate() {
        let sequence = transaction.sequence;
        if sequence != index as u64 + 1 {
            return Err(format!(
                "point transaction {}: sequence {sequence} where {} was due",
                transaction.id,
                index + 1
            ));
        }
        if transaction.account_id != view.id {
            return Err(format!(
                "point transaction {sequence}: belongs to account {}",
                transaction.account_id
            ));
        }
        let points = transaction.points;
        let kind = transaction.transaction_type;
        let sign_ok = match kind {
            PointType::Earn | PointType::EarnPending | PointType::PendingConfirmed => points > 0,
            PointType::PendingCancelled | PointType::Spend | PointType::Expire => points < 0,
            PointType::Adjust => points != 0,
        };
        if !sign_ok {
            return Err(format!(
                "point transaction {sequence} ({kind}): {points} has the wrong sign"
            ));
        }
        let effect = match kind {
            PointType::Earn | PointType::Spend | PointType::Adjust => PointEffect::Available,
            PointType::EarnPending | PointType::PendingCancelled => PointEffect::Pending,
            PointType::PendingConfirmed => PointEffect::Both,
            PointType::Expire if transaction.balance_after == available => PointEffect::Pending,
            PointType::Expire => PointEffect::Available,
        };
        match effect {
            PointEffect::Available => available = checked_sum(available, points)?,
            PointEffect::Pending => pending = checked_sum(pending, points)?,
            PointEffect::Both => {
                available = checked_sum(available, points)?;
                pending = checked_sum(pending, -points)?;
            }
        }
        let earns = matches!(kind, PointType::Earn | PointType::PendingConfirmed)
            || (kind == PointType::Adjust && points > 0);
        if earns {
            lifetime = checked_sum(lifetime, points)?;
        }
        if transaction.balance_after != available {
            return Err(format!(
                "point transaction {sequence} ({kind}): balance after {} but the running sum is {available}",
                transaction.balance_after
            ));
        }
        if available < 0 || pending < 0 {
            return Err(format!(
                "point transaction {sequence} ({kind}): available {available} or pending {pending} < 0"
            ));
        }
    }
    if available != view.available_points || pending != view.pending_points {
        return Err(format!(
            "available {} and pending {} but the log sums to {available} and {pending}",
            view.available_points, view.pending_points
        ));
    }
    if lifetime != view.lifetime_earned {
        return Err(format!(
            "lifetime earned {} but the log made {lifetime} available",
            view.lifetime_earned
        ));
    }
    Ok(())
}

/// Conservation of points: available = earned + confirmed + positive
/// adjustments - spent - negative adjustments - expired from available lots.
pub fn check_points_conserved(
    view: &PointAccountView,
    transactions: &[PointTransaction],
) -> Result<(), String> {
    let log = sorted_by_sequence(transactions, |t| t.sequence);
    let (mut made_available, mut taken, mut available) = (0i64, 0i64, 0i64);
    for transaction in log {
        let size = transaction.points.checked_abs().ok_or("points overflow")?;
        match transaction.transaction_type {
            PointType::Earn | PointType::PendingConfirmed => {
                made_available = checked_sum(made_available, size)?
            }
            PointType::Adjust if transaction.points > 0 => {
                made_available = checked_sum(made_available, size)?
            }
            PointType::Adjust | PointType::Spend => taken = checked_sum(taken, size)?,
            // An expiry of an available lot is the one that moves the balance.
            PointType::Expire if transaction.balance_after != available => {
                taken = checked_sum(taken, size)?
            }
            PointType::Expire | PointType::EarnPending | PointType::PendingCancelled => {}
        }
        available = transaction.balance_after;
    }
    let expected = made_available - taken;
    if expected != view.available_points {
        return Err(format!(
            "available {} but earned + confirmed + added {made_available} - spent, removed and expired {taken} = {expected}",
            view.available_points
        ));
    }
    Ok(())
}

/// Each lot agrees with the log: it was made by one `Earn`, `EarnPending`
/// or positive `Adjust` of its points naming it; a live pending lot was not
/// confirmed, cancelled or expired since; an available lot with points left
/// was not cancelled or expired.
pub fn check_lots_match_log(
    lots: &[PointLot],
    transactions: &[PointTransaction],
) -> Result<(), String> {
    let mut by_lot: HashMap<Uuid, Vec<&PointTransaction>> = HashMap::new();
    for transaction in transactions {
        if let Some(lot_id) = transaction.lot_id {
            by_lot.entry(lot_id).or_default().push(transaction);
        }
    }
    for lot in lots {
        let id = lot.id;
        let history = by_lot.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        let origins: Vec<_> = history
            .iter()
            .filter(|t| {
                matches!(t.transaction_type, PointType::Earn | PointType::EarnPending)
                    || (t.transaction_type == PointType::Adjust && t.points > 0)
            })
            .collect();
        match origins.as_slice() {
            [origin] if origin.points == lot.points => {}
            _ => {
                return Err(format!(
                    "lot {id}: {} transactions made it, not one of {} points",
                    origins.len(),
                    lot.points
                ))
            }
        }
        let has = |kind: PointType| history.iter().any(|t| t.transaction_type == kind);
        let live_pending = lot.state == LotState::Pending && lot.remaining > 0;
        if live_pending
            && (has(PointType::PendingConfirmed)
                || has(PointType::PendingCancelled)
                || has(PointType::Expire))
        {
            return Err(format!("lot {id}: pending, but the log ended it"));
        }
        let live_available = lot.state == LotState::Available && lot.remaining > 0;
        if live_available && (has(PointType::PendingCancelled) || has(PointType::Expire)) {
            return Err(format!("lot {id}: has points left, but the log ended it"));
        }
        if lot.state == LotState::Available
            && has(PointType::EarnPending)
            && !has(PointType::PendingConfirmed)
        {
            return Err(format!("lot {id}: available but never confirmed"));
        }
    }
    Ok(())
}

/// The outbox: sequences strictly increasing from 1 without gaps, and per
/// aggregate the versions never go down.
pub fn check_events(events: &[StoredEvent]) -> Result<(), String> {
    let mut versions: HashMap<Uuid, u64> = HashMap::new();
    for (index, stored) in events.iter().enumerate() {
        if stored.sequence != index as u64 + 1 {
            return Err(format!(
                "event {}: sequence {} where {} was due",
                stored.event.id,
                stored.sequence,
                index + 1
            ));
        }
        let event = &stored.event;
        let last = versions.entry(event.aggregate_id).or_insert(0);
        if event.aggregate_version < *last || event.aggregate_version == 0 {
            return Err(format!(
                "event {} ({}): version {} after {}",
                stored.sequence,
                event.event_type(),
                event.aggregate_version,
                last
            ));
        }
        *last = event.aggregate_version;
    }
    Ok(())
}

fn sorted_by_sequence<T>(items: &[T], sequence: impl Fn(&T) -> u64) -> Vec<&T> {
    let mut sorted: Vec<&T> = items.iter().collect();
    sorted.sort_by_key(|item| sequence(item));
    sorted
}

fn checked_sum(left: i64, right: i64) -> Result<i64, String> {
    left.checked_add(right)
        .ok_or_else(|| format!("{left} + {right} overflows"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregate;
    use crate::context::{Ctx, Policy, SequentialIdGenerator};
    use crate::money::Money;
    use crate::points::EarnRequest;
    use crate::wallet::HoldRequest;
    use chrono::{TimeZone, Utc};

    /// A context at the start of 2030 with no idempotency key.
    fn start_ctx<'a>(policy: &'a Policy, ids: &'a SequentialIdGenerator) -> Ctx<'a> {
        Ctx {
            now: Utc
                .with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
                .single()
                .expect("time"),
            ids,
            policy,
            idempotency_key: None,
        }
    }

    fn usd_money(policy: &Policy, units: i64) -> Money {
        let usd = CurrencyCode::parse("USD").expect("code");
        policy
            .currencies
            .money(Decimal::from(units), usd)
            .expect("money")
    }

    fn fixture() -> (Wallet, Vec<WalletTransaction>, Vec<Hold>) {
        let policy = Policy::default();
        let ids = SequentialIdGenerator::new();
        let ctx = start_ctx(&policy, &ids);
        let usd = CurrencyCode::parse("USD").expect("code");
        let money = |units: i64| usd_money(&policy, units);
        let mut wallet = Wallet::open(Uuid::from_u128(1), usd, &ctx).expect("open");
        wallet
            .deposit(money(100), None, None, &ctx)
            .expect("deposit");
        let hold = wallet
            .hold(
                HoldRequest {
                    money: money(30),
                    reference_type: "order".into(),
                    reference_id: Uuid::nil(),
                    description: None,
                    expires_at: None,
                },
                &ctx,
            )
            .expect("hold");
        wallet
            .execute_hold(hold.id, Some(Decimal::from(10)), None, &ctx)
            .expect("execute");
        let changes = wallet.take_changes();
        let holds = wallet.holds().values().cloned().collect();
        (wallet, changes.transactions, holds)
    }

    #[test]
    fn a_consistent_wallet_passes() {
        let (wallet, log, holds) = fixture();
        assert_eq!(check_wallet_aggregate(&wallet, &holds, &log), Ok(()));
    }

    #[test]
    fn each_broken_record_is_reported() {
        let (wallet, log, holds) = fixture();
        let view = wallet.view();

        let mut overdrawn = view.clone();
        overdrawn.balances[0].held = Decimal::from(1000);
        assert!(check_amounts_not_negative(&overdrawn).is_err());

        let mut wrong_held = view.clone();
        wrong_held.balances[0].held -= Decimal::ONE;
        assert!(check_held_matches_holds(&wrong_held, &holds).is_err());

        let mut leaky = holds.clone();
        leaky[0].executed_amount += Decimal::ONE;
        assert!(check_holds(&view, &leaky).is_err());
        assert!(check_holds_match_log(&leaky, &log).is_err());

        let mut gap = log.clone();
        gap.remove(1);
        assert!(check_transaction_log(&view, &gap).is_err());

        let mut wrong_after = log.clone();
        wrong_after[0].balance_after += Decimal::ONE;
        assert!(check_transaction_log(&view, &wrong_after).is_err());

        let mut wrong_sign = log.clone();
        wrong_sign[0].amount = -wrong_sign[0].amount;
        assert!(check_transaction_signs(&wrong_sign[0]).is_err());

        let mut minted = view.clone();
        minted.balances[0].balance += Decimal::ONE;
        assert!(check_money_conserved(&minted, &holds, &log).is_err());
        assert!(check_wallet(&minted, &holds, &log).is_err());
    }

    /// Two wallets after a deposit to the first and a transfer of 40 USD
    /// from it to the second: each view with its log.
    fn transferred() -> Vec<(WalletView, Vec<WalletTransaction>)> {
        let policy = Policy::default();
        let ids = SequentialIdGenerator::new();
        let ctx = start_ctx(&policy, &ids);
        let usd = CurrencyCode::parse("USD").expect("code");
        let money = |units: i64| usd_money(&policy, units);
        let (payer, payee) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut from = Wallet::open(payer, usd, &ctx).expect("open");
        let mut to = Wallet::open(payee, usd, &ctx).expect("open");
        from.deposit(money(100), None, None, &ctx).expect("deposit");
        let transfer_id = ctx.new_id();
        from.transfer_out(money(40), (transfer_id, payee), (None, None), &ctx)
            .expect("out");
        to.transfer_in(money(40), (transfer_id, payer), (None, None, None), &ctx)
            .expect("in");
        [from, to]
            .into_iter()
            .map(|mut wallet| {
                let log = wallet.take_changes().transactions;
                (wallet.view(), log)
            })
            .collect()
    }

    fn ledger(wallets: &[(WalletView, Vec<WalletTransaction>)]) -> Result<(), String> {
        for (view, log) in wallets {
            check_wallet(view, &[], log)?;
        }
        check_ledger_conserved(wallets.iter().map(|(v, log)| (v, log.as_slice())))
    }

    #[test]
    fn the_ledger_check_catches_a_one_sided_transfer() {
        let wallets = transferred();
        assert_eq!(ledger(&wallets), Ok(()));

        // The payee credited, the payer never debited.
        let mut minted = wallets.clone();
        let (view, log) = &mut minted[0];
        log.pop();
        view.balances[0].balance += Decimal::from(40);
        assert!(check_wallet(view, &[], log).is_ok());
        assert!(ledger(&minted).is_err());

        // A leg that names the wrong counterparty.
        let mut misnamed = wallets.clone();
        misnamed[1].1[0].counterparty_user_id = Some(Uuid::from_u128(3));
        assert!(ledger(&misnamed).is_err());

        // Legs that do not add up to zero.
        let mut uneven = wallets;
        let leg = &mut uneven[1].1[0];
        leg.amount += Decimal::ONE;
        leg.balance_after += Decimal::ONE;
        uneven[1].0.balances[0].balance += Decimal::ONE;
        assert!(ledger(&uneven).is_err());
    }

    #[test]
    fn point_checks_catch_a_lost_lot_and_a_wrong_running_sum() {
        let policy = Policy::default();
        let ids = SequentialIdGenerator::new();
        let ctx = Ctx {
            now: Utc
                .with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
                .single()
                .expect("time"),
            ids: &ids,
            policy: &policy,
            idempotency_key: None,
        };
        let mut account = PointAccount::open(Uuid::from_u128(1), &ctx);
        for (points, pending) in [(50, false), (20, true)] {
            let request = EarnRequest {
                points,
                source: "shop".into(),
                description: None,
                expires_at: None,
                pending,
            };
            account.earn(request, &ctx).expect("earn");
        }
        account.spend(10, "shop".into(), None, &ctx).expect("spend");
        let log = account.take_changes().transactions;
        assert_eq!(check_point_account_aggregate(&account, &log), Ok(()));

        let view = account.view();
        let lots: Vec<PointLot> = account.lots().cloned().collect();
        assert!(check_lots(&view, &lots[1..]).is_err());
        let mut wrong = log.clone();
        wrong[2].balance_after += 1;
        assert!(check_point_log(&view, &wrong).is_err());
        let mut inflated = view.clone();
        inflated.available_points += 1;
        inflated.total_points += 1;
        assert!(check_points_conserved(&inflated, &log).is_err());
    }
}
