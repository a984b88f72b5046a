//! Reversals: a refund, a charge-back or a correction of one transaction,
//! in full or in part, in one unit of work over the wallets it changes.
//!
//! | original | the reversal |
//! |----------|--------------|
//! | `Deposit` | debits the wallet |
//! | `Withdraw`, `HoldExecute` paid out of the ledger | credits the wallet |
//! | `TransferOut` or `TransferIn` of a transfer (either side's id) | moves the money back from the payee to the payer |
//! | `TransferIn` of a hold payout | moves the money back from that payee to the payer |
//! | anything else | `not_reversible` |
//!
//! **The cap.** The reversed amounts of one transaction never add up to
//! more than its amount, and the two legs of a transfer share one total
//! (whichever side's id is named). Each leg's running total is a
//! [`crate::wallet::ReversalTotal`] that the store keeps beside the leg's
//! (immutable) row and loads with the wallet, under the wallet's lock, in
//! the unit of work that changes the wallets ([`Wallet::remember_transaction`]);
//! a reversal checks the total of the leg named and raises the totals of
//! both legs together. Nothing about the total is read outside the unit
//! of work: the legs the service reads first ([`ReversalPlan`]) only say
//! which wallets to lock and which rows to load, and their ids and
//! wallets never change.
//!
//! Checks run in this order: the wallet, the transaction (another wallet's
//! is `transaction_not_found`), its kind (`not_reversible`), the amount's
//! shape in the transaction's currency (`invalid_amount`), the other
//! wallet (`counterparty_not_found`), the statuses (Active and Frozen
//! allowed; `wallet_closed`, `counterparty_closed`), the reason's length,
//! the cap (`reversal_exceeds_original`), then the money
//! (`insufficient_funds` on the debited side, `balance_limit_exceeded` on
//! the credited one).

use rust_decimal::Decimal;
use uuid::Uuid;

use crate::command::CommandOutput;
use crate::context::{required_text, Ctx, REASON_LENGTH_MAX};
use crate::error::WalletError;
use crate::kinds::TransactionType;
use crate::transfer::{payee_ctx, WalletSet};
use crate::wallet::{TransferLink, Wallet, WalletTransaction};

/// The parameters of a reversal, as the caller gives them.
#[derive(Debug, Clone)]
pub struct ReversalRequest {
    /// The user whose transaction is reversed (whose key it is).
    pub user_id: Uuid,
    pub transaction_id: Uuid,
    /// Read in the transaction's currency; `None` is all that is left.
    pub amount: Option<Decimal>,
    pub reason: String,
}

impl ReversalRequest {
    /// Applies the reversal to the set, after expiring the overdue holds
    /// of every wallet in it.
    pub fn apply(&self, set: &mut WalletSet, ctx: &Ctx<'_>) -> Result<CommandOutput, WalletError> {
        set.expire_overdue_holds(self.user_id, ctx)?;
        reverse(set, self, ctx)
    }
}

/// Which wallets a reversal locks and which rows it loads under the locks,
/// worked out from the legs of the original read beforehand. The rows'
/// ids, wallets and counterparties never change, so reading them first is
/// safe; their totals are not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalPlan {
    /// The wallets to lock, in user id order.
    pub user_ids: Vec<Uuid>,
    /// The rows to load under the locks: the transaction named and, for a
    /// leg between wallets, the other wallet's leg.
    pub transaction_ids: Vec<Uuid>,
}

impl ReversalPlan {
    /// The plan of a reversal of `transaction_id` on `user_id`'s wallet,
    /// given the rows a store found for it
    /// ([`crate::store::WalletStore::transaction_legs`]). When the rows do
    /// not name it, the unit of work still runs on the user's wallet alone,
    /// so that the answer (`wallet_not_found`, `transaction_not_found`)
    /// comes from the state under the lock, after any replay.
    pub fn of(user_id: Uuid, transaction_id: Uuid, legs: &[WalletTransaction]) -> Self {
        let mut user_ids = vec![user_id];
        let mut transaction_ids = vec![transaction_id];
        let named = legs.iter().find(|leg| leg.id == transaction_id);
        if let Some((counterparty, other)) = named.and_then(|named| counterpart(named, legs)) {
            user_ids.push(counterparty);
            transaction_ids.push(other.id);
        }
        user_ids.sort_unstable();
        user_ids.dedup();
        ReversalPlan {
            user_ids,
            transaction_ids,
        }
    }
}

/// The other wallet's user and leg of a leg between wallets, among `legs`
/// (the rows sharing its transfer id): for a transfer's `TransferOut` the
/// payee's `TransferIn`; for a transfer's `TransferIn` the payer's
/// `TransferOut`; for a payout's `TransferIn` (it has the hold id) the
/// payer's `HoldExecute`. `None` for anything else.
fn counterpart<'a>(
    named: &WalletTransaction,
    legs: &'a [WalletTransaction],
) -> Option<(Uuid, &'a WalletTransaction)> {
    let transfer_id = named.transfer_id?;
    let counterparty = named.counterparty_user_id?;
    let wanted = match (named.transaction_type, named.hold_id) {
        (TransactionType::TransferOut, _) => TransactionType::TransferIn,
        (TransactionType::TransferIn, None) => TransactionType::TransferOut,
        (TransactionType::TransferIn, Some(_)) => TransactionType::HoldExecute,
        _ => return None,
    };
    legs.iter()
        .find(|leg| {
            leg.id != named.id
                && leg.transfer_id == Some(transfer_id)
                && leg.transaction_type == wanted
                && leg.wallet_id != named.wallet_id
        })
        .map(|leg| (counterparty, leg))
}

/// The wallets of a reversal between two wallets: the one that gives the
/// money back and the one that gets it, each with its own leg.
struct Sides {
    /// The payee of the original (debited).
    debited: (Uuid, Uuid),
    /// The payer of the original (credited).
    credited: (Uuid, Uuid),
}

/// Reverses `amount` (default: all that is left) of the user's
/// transaction, on the wallets of the set (see the module docs).
pub fn reverse(
    set: &mut WalletSet,
    request: &ReversalRequest,
    ctx: &Ctx<'_>,
) -> Result<CommandOutput, WalletError> {
    let user = request.user_id;
    let wallet = set.get(user).ok_or(WalletError::WalletNotFound)?;
    let original = wallet
        .named_transaction(request.transaction_id)
        .ok_or(WalletError::TransactionNotFound)?
        .clone();
    if !original.is_reversible() {
        return Err(WalletError::NotReversible);
    }
    let amount = match request.amount {
        Some(amount) => Some(ctx.policy.currencies.money(amount, original.currency)?),
        None => None,
    };
    let sides = sides_of(set, user, &original)?;
    match &sides {
        None => wallet.ensure_may_reverse(false)?,
        Some(sides) => {
            for (side_user, _) in [sides.debited, sides.credited] {
                let side = set
                    .get(side_user)
                    .ok_or(WalletError::CounterpartyNotFound)?;
                side.ensure_may_reverse(side_user != user)?;
            }
        }
    }
    let reason = required_text("reason", request.reason.clone(), REASON_LENGTH_MAX)?;
    let left = original.amount.abs() - original.reversed_amount.unwrap_or(Decimal::ZERO);
    let size = match amount {
        Some(money) if money.amount() <= left => money.amount(),
        Some(_) => return Err(WalletError::ReversalExceedsOriginal),
        None if left > Decimal::ZERO => left,
        None => return Err(WalletError::ReversalExceedsOriginal),
    };
    let transactions = match sides {
        None => vec![reverse_one(set, user, &original, size, &reason, ctx)?],
        Some(sides) => reverse_between(set, user, &sides, (original.currency, size), &reason, ctx)?,
    };
    let wallet = set.get(user).ok_or(WalletError::WalletNotFound)?;
    let reversed_amount = wallet
        .named_transaction(original.id)
        .and_then(|leg| leg.reversed_amount)
        .ok_or_else(|| WalletError::Internal("a reversed leg lost its total".into()))?;
    Ok(CommandOutput::Reversal {
        wallet: wallet.view(),
        transactions,
        reversed_amount,
    })
}

/// For a leg between wallets, which wallet gives back and which gets,
/// each with its leg; `None` for a transaction of one wallet.
fn sides_of(
    set: &WalletSet,
    user: Uuid,
    original: &WalletTransaction,
) -> Result<Option<Sides>, WalletError> {
    let (TransactionType::TransferIn | TransactionType::TransferOut) = original.transaction_type
    else {
        return Ok(None);
    };
    let Some(counterparty) = original.counterparty_user_id else {
        return Err(WalletError::Internal(
            "a leg between wallets without its counterparty".into(),
        ));
    };
    let other = set
        .get(counterparty)
        .ok_or(WalletError::CounterpartyNotFound)?;
    let other_leg = other_leg(other, original)?;
    let (mine, theirs) = ((user, original.id), (counterparty, other_leg));
    Ok(Some(match original.transaction_type {
        TransactionType::TransferOut => Sides {
            debited: theirs,
            credited: mine,
        },
        _ => Sides {
            debited: mine,
            credited: theirs,
        },
    }))
}

/// The other wallet's leg of `original`, among the rows the store
/// remembered on that wallet (exactly those the plan named).
fn other_leg(other: &Wallet, original: &WalletTransaction) -> Result<Uuid, WalletError> {
    let legs: Vec<WalletTransaction> = other.named_transactions().cloned().collect();
    counterpart(original, &legs)
        .map(|(_, leg)| leg.id)
        .ok_or_else(|| WalletError::Internal("the other leg of a transfer is missing".into()))
}

/// A reversal on one wallet: the opposite of the original's change.
fn reverse_one(
    set: &mut WalletSet,
    user: Uuid,
    original: &WalletTransaction,
    size: Decimal,
    reason: &str,
    ctx: &Ctx<'_>,
) -> Result<WalletTransaction, WalletError> {
    let amount = if original.amount.is_sign_negative() {
        size
    } else {
        -size
    };
    let wallet = set.get_mut(user).ok_or(WalletError::WalletNotFound)?;
    wallet.reverse_leg(original.id, amount, None, reason, ctx)
}

/// A reversal between two wallets: the money moves back from the payee to
/// the payer under one new transfer id, both checked before either
/// changes. Returns the rows, the request's wallet's first.
fn reverse_between(
    set: &mut WalletSet,
    user: Uuid,
    sides: &Sides,
    (currency, size): (crate::money::CurrencyCode, Decimal),
    reason: &str,
    ctx: &Ctx<'_>,
) -> Result<Vec<WalletTransaction>, WalletError> {
    let (debited, credited) = (sides.debited, sides.credited);
    for (side_user, amount) in [(debited.0, -size), (credited.0, size)] {
        set.get(side_user)
            .ok_or(WalletError::CounterpartyNotFound)?
            .ensure_movable(currency, amount, ctx)?;
    }
    let transfer_id = ctx.new_id();
    let mut rows = Vec::with_capacity(2);
    for ((side_user, leg), amount, other_user) in
        [(debited, -size, credited.0), (credited, size, debited.0)]
    {
        let link = Some(TransferLink {
            transfer_id,
            counterparty_user_id: Some(other_user),
        });
        let wallet = set
            .get_mut(side_user)
            .ok_or(WalletError::CounterpartyNotFound)?;
        // Only the request's wallet's row carries the idempotency key.
        let row = if side_user == user {
            wallet.reverse_leg(leg, amount, link, reason, ctx)?
        } else {
            wallet.reverse_leg(leg, amount, link, reason, &payee_ctx(ctx))?
        };
        rows.push((side_user == user, row));
    }
    rows.sort_by_key(|(mine, _)| !*mine);
    Ok(rows.into_iter().map(|(_, row)| row).collect())
}
