//! The `Wallet` aggregate: balances per currency, the status table, holds
//! (escrow) and the transactions each change appends.
//!
//! Every operation validates everything before it changes anything, so an
//! error leaves the aggregate exactly as it was (invariant 6). Successful
//! operations record their transactions, events and touched holds in
//! [`WalletChanges`], which the store persists atomically with the new state.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::aggregate::{aggregate, Changes};
use crate::context::{
    bounded_text, required_text, Ctx, DESCRIPTION_LENGTH_MAX, REASON_LENGTH_MAX,
    REFERENCE_LENGTH_MAX, REFERENCE_TYPE_LENGTH_MAX,
};
use crate::error::WalletError;
use crate::events::{EventData, PayeeShare};
use crate::money::{add_within_limit, CurrencyCode, Money};

pub use crate::kinds::{HoldStatus, ReleaseCause, TransactionType, WalletStatus};

/// The balance of one currency in a wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletItem {
    pub currency: CurrencyCode,
    pub balance: Decimal,
    pub held: Decimal,
}

impl WalletItem {
    /// `balance - held`.
    pub fn available(&self) -> Decimal {
        self.balance - self.held
    }
}

/// Money put aside in escrow; executed (paid out) or released later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    pub id: Uuid,
    pub wallet_id: Uuid,
    pub currency: CurrencyCode,
    pub original_amount: Decimal,
    pub remaining_amount: Decimal,
    pub executed_amount: Decimal,
    pub released_amount: Decimal,
    pub status: HoldStatus,
    pub reference_type: String,
    pub reference_id: Uuid,
    pub description: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One immutable line of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WalletTransaction {
    pub id: Uuid,
    pub wallet_id: Uuid,
    /// Position in the wallet's log, from 1, without gaps.
    pub sequence: u64,
    #[serde(rename = "type")]
    pub transaction_type: TransactionType,
    pub currency: CurrencyCode,
    /// Signed change of the balance.
    pub amount: Decimal,
    /// Signed change of the held amount.
    pub held_change: Decimal,
    pub balance_after: Decimal,
    pub held_after: Decimal,
    pub description: Option<String>,
    pub reference: Option<String>,
    pub hold_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The transfer or payout this row is a leg of; every leg of one unit
    /// of work carries the same id.
    #[serde(default)]
    pub transfer_id: Option<Uuid>,
    /// The user of the other wallet of a transfer leg (a payout's payer on
    /// each payee's row; absent on the payer's row, which has many).
    #[serde(default)]
    pub counterparty_user_id: Option<Uuid>,
    /// On a `Reversal`: this wallet's own leg of the transaction reversed.
    #[serde(default)]
    pub reverses_transaction_id: Option<Uuid>,
    /// On a reversible transaction: the sum of its reversals so far (of
    /// both legs of a transfer together), zero included; `None` on the
    /// kinds that cannot be reversed. Not part of the row, which never
    /// changes: stores keep the total beside it and fill it in on reads.
    #[serde(default)]
    pub reversed_amount: Option<Decimal>,
}

impl WalletTransaction {
    /// Whether a reversal may name this transaction: deposits,
    /// withdrawals, executions paid out of the ledger and both legs of
    /// transfers and payouts (a payout's payer row, a `HoldExecute` with a
    /// transfer id, is not: each payee's leg is reversed on its own).
    pub fn is_reversible(&self) -> bool {
        match self.transaction_type {
            TransactionType::Deposit
            | TransactionType::Withdraw
            | TransactionType::TransferIn
            | TransactionType::TransferOut => true,
            TransactionType::HoldExecute => self.transfer_id.is_none(),
            TransactionType::ExchangeIn
            | TransactionType::ExchangeOut
            | TransactionType::Hold
            | TransactionType::HoldRelease
            | TransactionType::Reversal => false,
        }
    }

    /// The reversed amount as reads show it: `total` (zero when `None`, at
    /// the scale of the transaction's amount) on a reversible transaction,
    /// `None` on the others. Stores call it with the total they keep.
    pub fn with_reversed_amount(mut self, total: Option<Decimal>) -> Self {
        self.reversed_amount = if self.is_reversible() {
            let mut total = total.unwrap_or(Decimal::ZERO);
            total.rescale(self.amount.scale());
            Some(total)
        } else {
            None
        };
        self
    }
}

/// The running total of the reversals of one leg, as a reversal left it
/// ([`Wallet::reversal_totals`]): stores keep it beside the (immutable) row
/// of the leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalTotal {
    /// The leg reversed (a row of this wallet).
    pub transaction_id: Uuid,
    /// The leg's own amount, without its sign: the most its reversals may
    /// add up to.
    pub original_amount: Decimal,
    /// The sum of its reversals, this one included.
    pub reversed_amount: Decimal,
}

/// What ties a transaction to the other legs of its transfer or payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferLink {
    pub transfer_id: Uuid,
    /// The other wallet's user, when there is exactly one.
    pub counterparty_user_id: Option<Uuid>,
}

/// What a successful command changed in a wallet: its touched holds are
/// hold ids.
pub type WalletChanges = Changes<WalletTransaction, Uuid>;

aggregate!(
    Wallet,
    "wallet",
    WalletTransaction,
    Uuid,
    WalletError::WalletNotFound,
    WalletError::WalletExists
);

/// A read-only picture of a wallet, as queries and command results show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WalletView {
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: WalletStatus,
    pub default_currency: CurrencyCode,
    pub frozen_reason: Option<String>,
    /// Every currency the wallet has touched, ordered by code.
    pub balances: Vec<WalletItem>,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The wallet aggregate.
///
/// It holds every item and the holds that are still `Active` (plus any ended
/// hold the store loaded because a command names it). Transactions are not
/// kept here: only the ones a command appends, in [`WalletChanges`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wallet {
    id: Uuid,
    user_id: Uuid,
    status: WalletStatus,
    default_currency: CurrencyCode,
    frozen_reason: Option<String>,
    items: BTreeMap<CurrencyCode, WalletItem>,
    holds: BTreeMap<Uuid, Hold>,
    /// Rows of the wallet's log that a command names (the original of a
    /// reversal), with their reversed amounts as the store loaded them
    /// under the wallet's lock and as the commands since changed them.
    named_transactions: BTreeMap<Uuid, WalletTransaction>,
    version: u64,
    /// How many transactions the wallet's log has.
    transaction_count: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    changes: WalletChanges,
}

impl Wallet {
    /// Opens a new, active wallet and raises `WalletCreated`.
    pub fn open(
        user_id: Uuid,
        default_currency: CurrencyCode,
        ctx: &Ctx<'_>,
    ) -> Result<Self, WalletError> {
        ctx.policy.currencies.get(default_currency)?;
        let mut wallet = Wallet {
            id: ctx.new_id(),
            user_id,
            status: WalletStatus::Active,
            default_currency,
            frozen_reason: None,
            items: BTreeMap::new(),
            holds: BTreeMap::new(),
            named_transactions: BTreeMap::new(),
            version: 0,
            transaction_count: 0,
            created_at: ctx.now,
            updated_at: ctx.now,
            changes: WalletChanges {
                created: true,
                ..WalletChanges::default()
            },
        };
        let wallet_id = wallet.id;
        wallet.raise(
            ctx,
            EventData::WalletCreated {
                wallet_id,
                default_currency,
            },
        );
        Ok(wallet)
    }

    /// Rebuilds a wallet from stored state, with no pending changes.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        id: Uuid,
        user_id: Uuid,
        status: WalletStatus,
        default_currency: CurrencyCode,
        frozen_reason: Option<String>,
        items: Vec<WalletItem>,
        holds: Vec<Hold>,
        version: u64,
        transaction_count: u64,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Self {
        Wallet {
            id,
            user_id,
            status,
            default_currency,
            frozen_reason,
            items: items.into_iter().map(|i| (i.currency, i)).collect(),
            holds: holds.into_iter().map(|h| (h.id, h)).collect(),
            named_transactions: BTreeMap::new(),
            version,
            transaction_count,
            created_at,
            updated_at,
            changes: WalletChanges {
                expected_version: version,
                ..WalletChanges::default()
            },
        }
    }

    /// The read-only picture of this wallet.
    pub fn view(&self) -> WalletView {
        WalletView {
            id: self.id,
            user_id: self.user_id,
            status: self.status,
            default_currency: self.default_currency,
            frozen_reason: self.frozen_reason.clone(),
            balances: self.items.values().cloned().collect(),
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// The status in the status table.
    pub fn status(&self) -> WalletStatus {
        self.status
    }

    /// The currency the wallet was opened with.
    pub fn default_currency(&self) -> CurrencyCode {
        self.default_currency
    }

    /// Why the wallet is frozen, while it is.
    pub fn frozen_reason(&self) -> Option<&str> {
        self.frozen_reason.as_deref()
    }

    /// Every item the wallet has touched, by currency.
    pub fn items(&self) -> &BTreeMap<CurrencyCode, WalletItem> {
        &self.items
    }

    /// The holds the aggregate has loaded, by id: every active one, and
    /// any ended one a command names or the current command ended.
    pub fn holds(&self) -> &BTreeMap<Uuid, Hold> {
        &self.holds
    }

    /// Tells the wallet about a hold of its own that a command names but
    /// that is not loaded (an ended hold), so that the command answers
    /// `hold_not_active` rather than `hold_not_found`. Stores call this
    /// when they load the hold a command names; a hold of another wallet,
    /// or one already loaded, changes nothing.
    pub fn remember_hold(&mut self, hold: Hold) {
        if hold.wallet_id == self.id {
            self.holds.entry(hold.id).or_insert(hold);
        }
    }

    /// Tells the wallet about a row of its own log that a command names
    /// (the original of a reversal), with its reversed amount as stored.
    /// Stores call this under the wallet's lock, in the unit of work that
    /// runs the command, so that the total the command checks and raises
    /// is the newest; a row of another wallet, or one already remembered
    /// (whose total the commands since may have raised), changes nothing.
    pub fn remember_transaction(&mut self, transaction: WalletTransaction) {
        if transaction.wallet_id == self.id {
            self.named_transactions
                .entry(transaction.id)
                .or_insert(transaction);
        }
    }

    /// A row of the log the store loaded because a command names it.
    pub fn named_transaction(&self, transaction_id: Uuid) -> Option<&WalletTransaction> {
        self.named_transactions.get(&transaction_id)
    }

    /// The rows of the log the store loaded because a command names them.
    pub fn named_transactions(&self) -> impl Iterator<Item = &WalletTransaction> {
        self.named_transactions.values()
    }

    /// The running totals to store for the legs that `transactions` (rows
    /// appended to this wallet since it was loaded) reverse, as the wallet
    /// now remembers them: one per leg, with the newest total, in leg id
    /// order. A leg without a total of its own (a payout's payer row, whose
    /// cap is its payees') has none.
    pub fn reversal_totals(&self, transactions: &[WalletTransaction]) -> Vec<ReversalTotal> {
        let legs: BTreeSet<Uuid> = transactions
            .iter()
            .filter_map(|row| row.reverses_transaction_id)
            .collect();
        legs.into_iter()
            .filter_map(|leg| self.named_transaction(leg))
            .filter_map(|leg| {
                Some(ReversalTotal {
                    transaction_id: leg.id,
                    original_amount: leg.amount.abs(),
                    reversed_amount: leg.reversed_amount?,
                })
            })
            .collect()
    }

    /// Drops the remembered rows once the changes are persisted: between
    /// units of work a wallet keeps no total, so a kept copy can never
    /// answer a reversal from a total read outside its unit of work.
    pub fn forget_named_transactions(&mut self) {
        self.named_transactions.clear();
    }

    /// Drops the ended holds from the aggregate once their changes are
    /// persisted, so that it keeps only the active ones between commands.
    pub fn forget_ended_holds(&mut self) {
        debug_assert!(
            self.changes.touched.is_empty(),
            "ended holds are forgotten only after their changes are taken"
        );
        self.holds
            .retain(|_, hold| hold.status == HoldStatus::Active);
    }

    /// The item of a currency, if the wallet has touched it.
    pub fn item(&self, currency: CurrencyCode) -> Option<&WalletItem> {
        self.items.get(&currency)
    }

    /// Money available in a currency (zero when untouched).
    pub fn available(&self, currency: CurrencyCode) -> Decimal {
        self.items
            .get(&currency)
            .map_or(Decimal::ZERO, WalletItem::available)
    }

    /// A hold the aggregate has loaded.
    pub fn find_hold(&self, hold_id: Uuid) -> Option<&Hold> {
        self.holds.get(&hold_id)
    }

    // ---- status table -------------------------------------------------

    /// A wallet that is to receive money from another: as for a deposit,
    /// but a Closed one answers with the counterparty's code.
    pub(crate) fn ensure_receivable(&self) -> Result<(), WalletError> {
        match self.status {
            WalletStatus::Active | WalletStatus::Frozen => Ok(()),
            WalletStatus::Closed => Err(WalletError::CounterpartyClosed),
        }
    }

    /// Whether `money` is available to be taken out.
    pub(crate) fn ensure_available(&self, money: Money, ctx: &Ctx<'_>) -> Result<(), WalletError> {
        let (balance, held) = self.balance_and_held(money.currency(), ctx);
        if balance - held < money.amount() {
            return Err(WalletError::InsufficientFunds);
        }
        Ok(())
    }

    /// The balance after receiving `money`, if it stays within the limit.
    pub(crate) fn ensure_room_for(
        &self,
        money: Money,
        ctx: &Ctx<'_>,
    ) -> Result<Decimal, WalletError> {
        let (balance, _) = self.balance_and_held(money.currency(), ctx);
        add_within_limit(balance, money.amount())
    }

    fn ensure_not_closed(&self) -> Result<(), WalletError> {
        if self.status == WalletStatus::Closed {
            return Err(WalletError::WalletClosed);
        }
        Ok(())
    }

    pub(crate) fn ensure_active(&self) -> Result<(), WalletError> {
        match self.status {
            WalletStatus::Active => Ok(()),
            WalletStatus::Frozen => Err(WalletError::WalletFrozen),
            WalletStatus::Closed => Err(WalletError::WalletClosed),
        }
    }

    // ---- operations ----------------------------------------------------

    /// Releases every active hold whose `expires_at` has passed, writing a
    /// `HoldRelease` transaction and an `EscrowReleased` event for each.
    /// Returns how many holds expired. Every command runs this first.
    pub fn expire_overdue_holds(&mut self, ctx: &Ctx<'_>) -> Result<usize, WalletError> {
        let overdue: Vec<Uuid> = self
            .holds
            .values()
            .filter(|h| h.status == HoldStatus::Active && h.expires_at <= ctx.now)
            .map(|h| h.id)
            .collect();
        for hold_id in &overdue {
            self.finish_release(*hold_id, None, ReleaseCause::Expiry, ctx)?;
        }
        Ok(overdue.len())
    }

    /// The earliest `expires_at` among active holds.
    pub fn next_hold_expiry(&self) -> Option<DateTime<Utc>> {
        self.holds
            .values()
            .filter(|h| h.status == HoldStatus::Active)
            .map(|h| h.expires_at)
            .min()
    }

    /// Adds money. Allowed while active or frozen.
    pub fn deposit(
        &mut self,
        money: Money,
        description: Option<String>,
        reference: Option<String>,
        ctx: &Ctx<'_>,
    ) -> Result<WalletTransaction, WalletError> {
        self.ensure_not_closed()?;
        self.move_available(
            TransactionType::Deposit,
            money,
            (description, reference),
            ctx,
        )
    }

    /// Takes money out of the available balance. Active wallets only.
    pub fn withdraw(
        &mut self,
        money: Money,
        description: Option<String>,
        reference: Option<String>,
        ctx: &Ctx<'_>,
    ) -> Result<WalletTransaction, WalletError> {
        self.ensure_active()?;
        self.move_available(
            TransactionType::Withdraw,
            money,
            (description, reference),
            ctx,
        )
    }

    /// The balance change of a deposit (credit, within the balance limit)
    /// or a withdrawal (debit, at most the available amount), after the
    /// caller checked the status: one transaction and its event.
    fn move_available(
        &mut self,
        kind: TransactionType,
        money: Money,
        (description, reference): (Option<String>, Option<String>),
        ctx: &Ctx<'_>,
    ) -> Result<WalletTransaction, WalletError> {
        let description = bounded_text("description", description, DESCRIPTION_LENGTH_MAX)?;
        let reference = bounded_text("reference", reference, REFERENCE_LENGTH_MAX)?;
        let currency = money.currency();
        let (balance, held) = self.balance_and_held(currency, ctx);
        let (amount, balance_after) = if kind == TransactionType::Withdraw {
            if balance - held < money.amount() {
                return Err(WalletError::InsufficientFunds);
            }
            (-money.amount(), balance - money.amount())
        } else {
            (money.amount(), add_within_limit(balance, money.amount())?)
        };
        let transaction = self.append(
            kind,
            currency,
            amount,
            Decimal::ZERO,
            (balance_after, held),
            (description, reference, None),
            None,
            ctx,
        );
        self.raise_balance_changed(&transaction, ctx);
        Ok(transaction)
    }

    /// Converts `money` into `to`, rounding down. Debits exactly the amount
    /// given, credits the conversion; both legs in one step.
    pub fn exchange(
        &mut self,
        money: Money,
        to: CurrencyCode,
        ctx: &Ctx<'_>,
    ) -> Result<Exchange, WalletError> {
        let from = money.currency();
        if from == to {
            return Err(WalletError::SameCurrency);
        }
        ctx.policy.currencies.get(to)?;
        self.ensure_active()?;
        let (from_balance, from_held) = self.balance_and_held(from, ctx);
        if from_balance - from_held < money.amount() {
            return Err(WalletError::InsufficientFunds);
        }
        let to_amount = ctx.policy.currencies.convert(money, to)?;
        if to_amount.is_zero() {
            return Err(WalletError::AmountTooSmall);
        }
        let rate = ctx.policy.currencies.rate(from, to)?;
        let (to_balance, to_held) = self.balance_and_held(to, ctx);
        let to_balance_after = add_within_limit(to_balance, to_amount)?;
        let description = Some(format!("exchange {from} to {to} at {rate}"));
        let out = self.append(
            TransactionType::ExchangeOut,
            from,
            -money.amount(),
            Decimal::ZERO,
            (from_balance - money.amount(), from_held),
            (description.clone(), None, None),
            None,
            ctx,
        );
        let into = self.append(
            TransactionType::ExchangeIn,
            to,
            to_amount,
            Decimal::ZERO,
            (to_balance_after, to_held),
            (description, None, None),
            None,
            ctx,
        );
        self.raise(
            ctx,
            EventData::WalletExchanged {
                from_currency: from,
                to_currency: to,
                from_amount: money.amount(),
                to_amount,
                rate,
            },
        );
        Ok(Exchange {
            from_amount: money.amount(),
            to_amount,
            rate,
            transactions: [out, into],
        })
    }

    /// Puts money in escrow. `expires_at` defaults to the policy's default
    /// lifetime; it must be in the future and within the maximum lifetime.
    pub fn hold(&mut self, request: HoldRequest, ctx: &Ctx<'_>) -> Result<Hold, WalletError> {
        self.ensure_active()?;
        let reference_type = required_text(
            "referenceType",
            request.reference_type,
            REFERENCE_TYPE_LENGTH_MAX,
        )?;
        let description = bounded_text("description", request.description, DESCRIPTION_LENGTH_MAX)?;
        // Truncated first, to the precision stores keep: an expiry less than
        // a microsecond ahead would be stored as `now`, already overdue.
        let expires_at = match request.expires_at.map(crate::context::truncate_to_micros) {
            None => ctx
                .now
                .checked_add_signed(ctx.policy.hold_lifetime_default)
                .ok_or_else(|| WalletError::Validation("expiresAt is out of range".into()))?,
            Some(at) if at <= ctx.now => {
                return Err(WalletError::Validation(
                    "expiresAt must be in the future".into(),
                ))
            }
            Some(at)
                if ctx
                    .now
                    .checked_add_signed(ctx.policy.hold_lifetime_max)
                    .is_some_and(|latest| at > latest) =>
            {
                return Err(WalletError::Validation(
                    "expiresAt is beyond the maximum hold lifetime".into(),
                ))
            }
            Some(at) => at,
        };
        let money = request.money;
        let currency = money.currency();
        let (balance, held) = self.balance_and_held(currency, ctx);
        if balance - held < money.amount() {
            return Err(WalletError::InsufficientFunds);
        }
        let zero = ctx.policy.currencies.zero(currency);
        let hold = Hold {
            id: ctx.new_id(),
            wallet_id: self.id,
            currency,
            original_amount: money.amount(),
            remaining_amount: money.amount(),
            executed_amount: zero,
            released_amount: zero,
            status: HoldStatus::Active,
            reference_type: reference_type.clone(),
            reference_id: request.reference_id,
            description: description.clone(),
            expires_at,
            created_at: ctx.now,
            updated_at: ctx.now,
        };
        let hold_id = hold.id;
        self.holds.insert(hold_id, hold.clone());
        self.touch_hold(hold_id);
        self.append(
            TransactionType::Hold,
            currency,
            Decimal::ZERO,
            money.amount(),
            (balance, held + money.amount()),
            (description, None, Some(hold_id)),
            None,
            ctx,
        );
        self.raise(
            ctx,
            EventData::EscrowHeld {
                hold_id,
                currency,
                amount: money.amount(),
                reference_type,
                reference_id: request.reference_id,
                expires_at,
            },
        );
        Ok(hold)
    }

    /// Pays out part or all (the default) of what a hold has left.
    pub fn execute_hold(
        &mut self,
        hold_id: Uuid,
        amount: Option<Decimal>,
        reference: Option<String>,
        ctx: &Ctx<'_>,
    ) -> Result<Hold, WalletError> {
        self.ensure_active()?;
        let reference = bounded_text("reference", reference, REFERENCE_LENGTH_MAX)?;
        let amount = self.settlement_amount(hold_id, amount, ctx)?;
        self.finish_execute(hold_id, amount, reference, None, ctx)
    }

    /// The payer's side of a hold payout: executes `amount` of the hold as
    /// [`Wallet::execute_hold`] does, with the transfer's id on its
    /// `HoldExecute` row and the payees in its `EscrowExecuted` event. The
    /// payees' own legs are [`Wallet::transfer_in`]; the unit of work over
    /// the wallet set checks them before either side changes.
    pub fn execute_hold_to_payees(
        &mut self,
        hold_id: Uuid,
        amount: Decimal,
        reference: Option<String>,
        (transfer_id, payees): (Uuid, Vec<PayeeShare>),
        ctx: &Ctx<'_>,
    ) -> Result<Hold, WalletError> {
        self.ensure_active()?;
        let reference = bounded_text("reference", reference, REFERENCE_LENGTH_MAX)?;
        let amount = self.settlement_amount(hold_id, Some(amount), ctx)?;
        self.finish_execute(hold_id, amount, reference, Some((transfer_id, payees)), ctx)
    }

    /// The payer's leg of a transfer: checked as a withdrawal (Active,
    /// enough available), recorded as `TransferOut` with `TransferSent`.
    pub fn transfer_out(
        &mut self,
        money: Money,
        (transfer_id, payee_user_id): (Uuid, Uuid),
        (description, reference): (Option<String>, Option<String>),
        ctx: &Ctx<'_>,
    ) -> Result<WalletTransaction, WalletError> {
        self.ensure_active()?;
        let description = bounded_text("description", description, DESCRIPTION_LENGTH_MAX)?;
        let reference = bounded_text("reference", reference, REFERENCE_LENGTH_MAX)?;
        self.ensure_available(money, ctx)?;
        let (balance, held) = self.balance_and_held(money.currency(), ctx);
        let transaction = self.append(
            TransactionType::TransferOut,
            money.currency(),
            -money.amount(),
            Decimal::ZERO,
            (balance - money.amount(), held),
            (description, reference, None),
            Some(TransferLink {
                transfer_id,
                counterparty_user_id: Some(payee_user_id),
            }),
            ctx,
        );
        self.raise(
            ctx,
            EventData::TransferSent {
                transaction_id: transaction.id,
                transfer_id,
                counterparty_user_id: payee_user_id,
                currency: transaction.currency,
                amount: transaction.amount,
                balance_after: transaction.balance_after,
            },
        );
        Ok(transaction)
    }

    /// A payee's leg of a transfer or payout: checked as a deposit (not
    /// Closed, the balance within its limit) but with the counterparty's
    /// codes, recorded as `TransferIn` with `TransferReceived`.
    pub fn transfer_in(
        &mut self,
        money: Money,
        (transfer_id, payer_user_id): (Uuid, Uuid),
        (description, reference, hold_id): (Option<String>, Option<String>, Option<Uuid>),
        ctx: &Ctx<'_>,
    ) -> Result<WalletTransaction, WalletError> {
        self.ensure_receivable()?;
        let description = bounded_text("description", description, DESCRIPTION_LENGTH_MAX)?;
        let reference = bounded_text("reference", reference, REFERENCE_LENGTH_MAX)?;
        let balance_after = self.ensure_room_for(money, ctx)?;
        let (_, held) = self.balance_and_held(money.currency(), ctx);
        let transaction = self.append(
            TransactionType::TransferIn,
            money.currency(),
            money.amount(),
            Decimal::ZERO,
            (balance_after, held),
            (description, reference, hold_id),
            Some(TransferLink {
                transfer_id,
                counterparty_user_id: Some(payer_user_id),
            }),
            ctx,
        );
        self.raise(
            ctx,
            EventData::TransferReceived {
                transaction_id: transaction.id,
                transfer_id,
                counterparty_user_id: payer_user_id,
                currency: transaction.currency,
                amount: transaction.amount,
                balance_after: transaction.balance_after,
                hold_id,
            },
        );
        Ok(transaction)
    }

    /// Gives part or all (the default) of a hold back to available.
    pub fn release_hold(
        &mut self,
        hold_id: Uuid,
        amount: Option<Decimal>,
        ctx: &Ctx<'_>,
    ) -> Result<Hold, WalletError> {
        self.ensure_not_closed()?;
        let amount = self.settlement_amount(hold_id, amount, ctx)?;
        self.finish_release(hold_id, Some(amount), ReleaseCause::Release, ctx)
    }

    /// Releases all that remains of a hold and marks it `Cancelled`.
    pub fn cancel_hold(&mut self, hold_id: Uuid, ctx: &Ctx<'_>) -> Result<Hold, WalletError> {
        self.ensure_not_closed()?;
        self.settlement_amount(hold_id, None, ctx)?;
        self.finish_release(hold_id, None, ReleaseCause::Cancel, ctx)
    }

    /// Freezes an active wallet.
    pub fn freeze(&mut self, reason: String, ctx: &Ctx<'_>) -> Result<(), WalletError> {
        self.ensure_active()?;
        let reason = required_text("reason", reason, REASON_LENGTH_MAX)?;
        self.status = WalletStatus::Frozen;
        self.frozen_reason = Some(reason.clone());
        self.raise(ctx, EventData::WalletFrozen { reason });
        Ok(())
    }

    /// Unfreezes a frozen wallet.
    pub fn unfreeze(&mut self, ctx: &Ctx<'_>) -> Result<(), WalletError> {
        self.ensure_not_closed()?;
        if self.status != WalletStatus::Frozen {
            return Err(WalletError::WalletNotFrozen);
        }
        self.status = WalletStatus::Active;
        self.frozen_reason = None;
        self.raise(ctx, EventData::WalletUnfrozen {});
        Ok(())
    }

    /// Closes a wallet whose every balance is zero and that has no active hold.
    pub fn close(&mut self, ctx: &Ctx<'_>) -> Result<(), WalletError> {
        self.ensure_not_closed()?;
        let has_money = self
            .items
            .values()
            .any(|i| !i.balance.is_zero() || !i.held.is_zero());
        let has_hold = self.holds.values().any(|h| h.status == HoldStatus::Active);
        if has_money || has_hold {
            return Err(WalletError::WalletNotEmpty);
        }
        self.status = WalletStatus::Closed;
        self.raise(ctx, EventData::WalletClosed {});
        Ok(())
    }

    /// One wallet's side of a reversal of its leg `leg_id` (a remembered
    /// row): `amount` is the signed change of the balance (`-x` takes the
    /// money back, `+x` gives it back). A debit needs `x` available
    /// (`insufficient_funds`), a credit room under the balance limit. The
    /// caller has checked the statuses (with the codes of the side this
    /// wallet is on), the reason and the cap. Appends one `Reversal` row
    /// naming the leg, raises `TransactionReversed`, and raises the leg's
    /// running total by `x`.
    pub(crate) fn reverse_leg(
        &mut self,
        leg_id: Uuid,
        amount: Decimal,
        link: Option<TransferLink>,
        reason: &str,
        ctx: &Ctx<'_>,
    ) -> Result<WalletTransaction, WalletError> {
        let leg = self
            .named_transactions
            .get(&leg_id)
            .ok_or(WalletError::TransactionNotFound)?;
        let (currency, original_amount) = (leg.currency, leg.amount.abs());
        // Only reversible rows keep a total: a payout's payer row is the
        // other leg of each payee's reversal, capped by the payee's own leg.
        let capped = leg.is_reversible();
        let reversed_before = leg.reversed_amount.unwrap_or(Decimal::ZERO);
        let reversed_amount = reversed_before
            .checked_add(amount.abs())
            .filter(|total| !capped || *total <= original_amount)
            .ok_or(WalletError::ReversalExceedsOriginal)?;
        self.ensure_movable(currency, amount, ctx)?;
        let (balance, held) = self.balance_and_held(currency, ctx);
        // Within the limits just checked: a balance of at most 10^15 units.
        let balance_after = balance
            .checked_add(amount)
            .ok_or_else(|| WalletError::Internal("reversal balance overflow".into()))?;
        let mut transaction = self.append(
            TransactionType::Reversal,
            currency,
            amount,
            Decimal::ZERO,
            (balance_after, held),
            (Some(reason.to_owned()), None, None),
            link,
            ctx,
        );
        transaction.reverses_transaction_id = Some(leg_id);
        if let Some(last) = self.changes.transactions.last_mut() {
            last.reverses_transaction_id = Some(leg_id);
        }
        if capped {
            if let Some(leg) = self.named_transactions.get_mut(&leg_id) {
                leg.reversed_amount = Some(reversed_amount);
            }
        }
        self.raise(
            ctx,
            EventData::TransactionReversed {
                transaction_id: transaction.id,
                reverses_transaction_id: leg_id,
                transfer_id: transaction.transfer_id,
                counterparty_user_id: transaction.counterparty_user_id,
                currency,
                amount,
                balance_after,
                reason: reason.to_owned(),
            },
        );
        Ok(transaction)
    }

    /// A wallet that is to give money back in a reversal, or receive it:
    /// Active or Frozen; Closed answers `wallet_closed` for the wallet of
    /// the request and `counterparty_closed` for the other one.
    pub(crate) fn ensure_may_reverse(&self, counterparty: bool) -> Result<(), WalletError> {
        match (self.status, counterparty) {
            (WalletStatus::Active | WalletStatus::Frozen, _) => Ok(()),
            (WalletStatus::Closed, false) => Err(WalletError::WalletClosed),
            (WalletStatus::Closed, true) => Err(WalletError::CounterpartyClosed),
        }
    }

    /// Whether `amount` (signed, as [`Wallet::reverse_leg`] takes it) can
    /// move on this wallet: a debit needs it available, a credit room
    /// under the balance limit.
    pub(crate) fn ensure_movable(
        &self,
        currency: CurrencyCode,
        amount: Decimal,
        ctx: &Ctx<'_>,
    ) -> Result<(), WalletError> {
        let (balance, held) = self.balance_and_held(currency, ctx);
        if amount.is_sign_negative() {
            if balance - held < amount.abs() {
                return Err(WalletError::InsufficientFunds);
            }
            return Ok(());
        }
        add_within_limit(balance, amount).map(|_| ())
    }

    // ---- helpers ---------------------------------------------------------

    /// Validates the amount of an execute or release: the hold exists and is
    /// active (checked before any amount), the amount is a valid amount of
    /// the hold's currency, and at most what remains. `None` means all.
    fn settlement_amount(
        &self,
        hold_id: Uuid,
        amount: Option<Decimal>,
        ctx: &Ctx<'_>,
    ) -> Result<Decimal, WalletError> {
        let hold = self.active_hold(hold_id)?;
        let amount = match amount {
            None => hold.remaining_amount,
            Some(value) => ctx.policy.currencies.money(value, hold.currency)?.amount(),
        };
        if amount > hold.remaining_amount {
            return Err(WalletError::AmountExceedsHold);
        }
        Ok(amount)
    }

    /// A loaded hold that is still active: `hold_not_found` or
    /// `hold_not_active` otherwise, checked before any amount.
    pub(crate) fn active_hold(&self, hold_id: Uuid) -> Result<&Hold, WalletError> {
        let hold = self.holds.get(&hold_id).ok_or(WalletError::HoldNotFound)?;
        if hold.status != HoldStatus::Active {
            return Err(WalletError::HoldNotActive);
        }
        Ok(hold)
    }

    /// Executes `amount` of a hold, paid out of the ledger or, with a
    /// payout, to the payees. The caller has checked the hold is active and
    /// the amount fits.
    fn finish_execute(
        &mut self,
        hold_id: Uuid,
        amount: Decimal,
        reference: Option<String>,
        payout: Option<(Uuid, Vec<PayeeShare>)>,
        ctx: &Ctx<'_>,
    ) -> Result<Hold, WalletError> {
        let hold = self
            .holds
            .get_mut(&hold_id)
            .ok_or(WalletError::HoldNotFound)?;
        hold.remaining_amount -= amount;
        hold.executed_amount += amount;
        hold.updated_at = ctx.now;
        if hold.remaining_amount.is_zero() {
            hold.status = HoldStatus::Executed;
        }
        let (currency, remaining, snapshot) = (hold.currency, hold.remaining_amount, hold.clone());
        self.touch_hold(hold_id);
        let (balance, held) = self.balance_and_held(currency, ctx);
        let (transfer_id, payees) = payout.map_or((None, Vec::new()), |(id, p)| (Some(id), p));
        let link = transfer_id.map(|transfer_id| TransferLink {
            transfer_id,
            counterparty_user_id: None,
        });
        let transaction = self.append(
            TransactionType::HoldExecute,
            currency,
            -amount,
            -amount,
            (balance - amount, held - amount),
            (None, reference, Some(hold_id)),
            link,
            ctx,
        );
        self.raise_balance_changed(&transaction, ctx);
        self.raise(
            ctx,
            EventData::EscrowExecuted {
                hold_id,
                currency,
                amount,
                remaining,
                transfer_id,
                payees,
            },
        );
        Ok(snapshot)
    }

    /// Moves `amount` (default: all remaining) of a hold back to available.
    /// The caller has checked the hold is active and the amount fits.
    fn finish_release(
        &mut self,
        hold_id: Uuid,
        amount: Option<Decimal>,
        cause: ReleaseCause,
        ctx: &Ctx<'_>,
    ) -> Result<Hold, WalletError> {
        let hold = self
            .holds
            .get_mut(&hold_id)
            .ok_or(WalletError::HoldNotFound)?;
        let amount = amount.unwrap_or(hold.remaining_amount);
        hold.remaining_amount -= amount;
        hold.released_amount += amount;
        hold.updated_at = ctx.now;
        if hold.remaining_amount.is_zero() {
            hold.status = match cause {
                ReleaseCause::Release => HoldStatus::Released,
                ReleaseCause::Cancel => HoldStatus::Cancelled,
                ReleaseCause::Expiry => HoldStatus::Expired,
            };
        }
        let (currency, remaining, snapshot) = (hold.currency, hold.remaining_amount, hold.clone());
        self.touch_hold(hold_id);
        let (balance, held) = self.balance_and_held(currency, ctx);
        let description = Some(
            match cause {
                ReleaseCause::Release => "hold released",
                ReleaseCause::Cancel => "hold cancelled",
                ReleaseCause::Expiry => "hold expired",
            }
            .to_string(),
        );
        self.append(
            TransactionType::HoldRelease,
            currency,
            Decimal::ZERO,
            -amount,
            (balance, held - amount),
            (description, None, Some(hold_id)),
            None,
            ctx,
        );
        self.raise(
            ctx,
            EventData::EscrowReleased {
                hold_id,
                currency,
                amount,
                remaining,
                cause,
            },
        );
        Ok(snapshot)
    }

    /// Balance and held of a currency, zero (in the currency's scale) when the
    /// wallet has not touched it yet.
    fn balance_and_held(&self, currency: CurrencyCode, ctx: &Ctx<'_>) -> (Decimal, Decimal) {
        match self.items.get(&currency) {
            Some(item) => (item.balance, item.held),
            None => {
                let zero = ctx.policy.currencies.zero(currency);
                (zero, zero)
            }
        }
    }

    /// Appends a transaction and sets the item to the given after-values.
    #[allow(clippy::too_many_arguments)]
    fn append(
        &mut self,
        transaction_type: TransactionType,
        currency: CurrencyCode,
        amount: Decimal,
        held_change: Decimal,
        (balance_after, held_after): (Decimal, Decimal),
        (description, reference, hold_id): (Option<String>, Option<String>, Option<Uuid>),
        link: Option<TransferLink>,
        ctx: &Ctx<'_>,
    ) -> WalletTransaction {
        self.begin_change(ctx);
        self.items.insert(
            currency,
            WalletItem {
                currency,
                balance: balance_after,
                held: held_after,
            },
        );
        self.transaction_count += 1;
        let transaction = WalletTransaction {
            id: ctx.new_id(),
            wallet_id: self.id,
            sequence: self.transaction_count,
            transaction_type,
            currency,
            amount,
            held_change,
            balance_after,
            held_after,
            description,
            reference,
            hold_id,
            idempotency_key: ctx.idempotency_key.map(str::to_owned),
            created_at: ctx.now,
            transfer_id: link.map(|l| l.transfer_id),
            counterparty_user_id: link.and_then(|l| l.counterparty_user_id),
            reverses_transaction_id: None,
            reversed_amount: None,
        }
        .with_reversed_amount(None);
        self.changes.transactions.push(transaction.clone());
        transaction
    }

    fn touch_hold(&mut self, hold_id: Uuid) {
        if !self.changes.touched.contains(&hold_id) {
            self.changes.touched.push(hold_id);
        }
    }

    fn raise_balance_changed(&mut self, transaction: &WalletTransaction, ctx: &Ctx<'_>) {
        self.raise(
            ctx,
            EventData::WalletBalanceChanged {
                transaction_id: transaction.id,
                transaction_type: transaction.transaction_type,
                currency: transaction.currency,
                amount: transaction.amount,
                balance_after: transaction.balance_after,
            },
        );
    }
}

/// The parameters of a new hold.
#[derive(Debug, Clone)]
pub struct HoldRequest {
    pub money: Money,
    pub reference_type: String,
    pub reference_id: Uuid,
    pub description: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The result of an exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exchange {
    pub from_amount: Decimal,
    pub to_amount: Decimal,
    pub rate: Decimal,
    /// The `ExchangeOut` leg, then the `ExchangeIn` leg.
    pub transactions: [WalletTransaction; 2],
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregate;
    use crate::context::{Policy, SequentialIdGenerator};
    use chrono::{Duration, TimeZone};

    fn usd() -> CurrencyCode {
        CurrencyCode::parse("USD").expect("code")
    }

    fn setup() -> (Policy, SequentialIdGenerator, DateTime<Utc>) {
        let now = Utc
            .with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
            .single()
            .expect("time");
        (Policy::default(), SequentialIdGenerator::new(), now)
    }

    fn ctx<'a>(policy: &'a Policy, ids: &'a SequentialIdGenerator, now: DateTime<Utc>) -> Ctx<'a> {
        Ctx {
            now,
            ids,
            policy,
            idempotency_key: None,
        }
    }

    fn money(policy: &Policy, units: i64) -> Money {
        policy
            .currencies
            .money(Decimal::from(units), usd())
            .expect("money")
    }

    fn request(policy: &Policy, units: i64, expires_at: Option<DateTime<Utc>>) -> HoldRequest {
        HoldRequest {
            money: money(policy, units),
            reference_type: "order".into(),
            reference_id: Uuid::nil(),
            description: None,
            expires_at,
        }
    }

    #[test]
    fn a_failed_operation_leaves_the_aggregate_exactly_as_it_was() {
        let (policy, ids, now) = setup();
        let ctx = ctx(&policy, &ids, now);
        let mut wallet = Wallet::open(Uuid::nil(), usd(), &ctx).expect("open");
        wallet
            .deposit(money(&policy, 10), None, None, &ctx)
            .expect("deposit");
        let hold = wallet.hold(request(&policy, 4, None), &ctx).expect("hold");
        let before = wallet.clone();
        let failures: Vec<Result<(), WalletError>> = vec![
            wallet
                .withdraw(money(&policy, 7), None, None, &ctx)
                .map(|_| ()),
            wallet.hold(request(&policy, 7, None), &ctx).map(|_| ()),
            wallet
                .hold(request(&policy, 1, Some(now)), &ctx)
                .map(|_| ()),
            wallet
                .execute_hold(hold.id, Some(Decimal::from(5)), None, &ctx)
                .map(|_| ()),
            wallet
                .release_hold(hold.id, Some(Decimal::new(1, 3)), &ctx)
                .map(|_| ()),
            wallet.unfreeze(&ctx),
            wallet.close(&ctx),
            wallet.freeze(" ".into(), &ctx),
            wallet
                .deposit(money(&policy, 1), Some("x".repeat(501)), None, &ctx)
                .map(|_| ()),
        ];
        assert!(failures.iter().all(Result::is_err), "{failures:?}");
        assert_eq!(wallet, before);
    }

    #[test]
    fn the_legs_of_a_transfer_check_their_own_wallet_and_change_nothing_on_failure() {
        let (policy, ids, now) = setup();
        let ctx = ctx(&policy, &ids, now);
        let (payer, payee) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut sender = Wallet::open(payer, usd(), &ctx).expect("open");
        let mut receiver = Wallet::open(payee, usd(), &ctx).expect("open");
        sender
            .deposit(money(&policy, 10), None, None, &ctx)
            .expect("deposit");
        let link = |counterparty| (Uuid::from_u128(77), counterparty);
        let before = (sender.clone(), receiver.clone());
        assert_eq!(
            sender.transfer_out(money(&policy, 11), link(payee), (None, None), &ctx),
            Err(WalletError::InsufficientFunds)
        );
        receiver.close(&ctx).expect("close");
        let closed = receiver.clone();
        assert_eq!(
            receiver.transfer_in(money(&policy, 1), link(payer), (None, None, None), &ctx),
            Err(WalletError::CounterpartyClosed)
        );
        assert_eq!((&sender, &receiver), (&before.0, &closed));
        let mut frozen = before.1.clone();
        frozen.freeze("review".into(), &ctx).expect("freeze");
        let received = frozen
            .transfer_in(money(&policy, 4), link(payer), (None, None, None), &ctx)
            .expect("a frozen wallet receives");
        assert_eq!(received.transaction_type, TransactionType::TransferIn);
        assert_eq!(
            (received.transfer_id, received.counterparty_user_id),
            (Some(Uuid::from_u128(77)), Some(payer))
        );
        assert_eq!(
            frozen.transfer_out(money(&policy, 1), link(payee), (None, None), &ctx),
            Err(WalletError::WalletFrozen)
        );
    }

    #[test]
    fn one_command_bumps_the_version_once_and_its_events_share_it() {
        let (policy, ids, now) = setup();
        let ctx = ctx(&policy, &ids, now);
        let mut wallet = Wallet::open(Uuid::nil(), usd(), &ctx).expect("open");
        assert_eq!(wallet.version, 1);
        let created = wallet.take_changes();
        assert!(created.created);
        wallet
            .deposit(money(&policy, 10), None, None, &ctx)
            .expect("deposit");
        wallet.take_changes();
        let hold = wallet.hold(request(&policy, 4, None), &ctx).expect("hold");
        wallet.take_changes();
        assert_eq!(wallet.version, 3);
        wallet
            .execute_hold(hold.id, None, None, &ctx)
            .expect("execute");
        let changes = wallet.take_changes();
        assert_eq!(changes.expected_version, 3);
        assert_eq!(wallet.version, 4);
        let versions: Vec<u64> = changes.events.iter().map(|e| e.aggregate_version).collect();
        assert_eq!(versions, [4, 4]);
        assert_eq!(changes.touched, [hold.id]);
        assert_eq!(changes.transactions[0].sequence, 3);
        assert!(wallet.take_changes().is_empty());
    }

    #[test]
    fn expiry_releases_only_holds_that_are_due() {
        let (policy, ids, now) = setup();
        let ctx_then = ctx(&policy, &ids, now);
        let mut wallet = Wallet::open(Uuid::nil(), usd(), &ctx_then).expect("open");
        wallet
            .deposit(money(&policy, 10), None, None, &ctx_then)
            .expect("deposit");
        let due = wallet
            .hold(
                request(&policy, 3, Some(now + Duration::hours(1))),
                &ctx_then,
            )
            .expect("hold");
        let later = wallet
            .hold(
                request(&policy, 2, Some(now + Duration::hours(2))),
                &ctx_then,
            )
            .expect("hold");
        wallet.take_changes();
        let ctx_later = ctx(&policy, &ids, now + Duration::hours(1));
        assert_eq!(wallet.next_hold_expiry(), Some(now + Duration::hours(1)));
        assert_eq!(wallet.expire_overdue_holds(&ctx_later), Ok(1));
        assert_eq!(wallet.holds[&due.id].status, HoldStatus::Expired);
        assert_eq!(wallet.holds[&later.id].status, HoldStatus::Active);
        assert_eq!(
            wallet.item(usd()).map(|i| i.held),
            Some(Decimal::new(200, 2))
        );
        assert_eq!(wallet.available(usd()), Decimal::new(800, 2));
        assert_eq!(wallet.expire_overdue_holds(&ctx_later), Ok(0));
    }

    #[test]
    fn a_store_loads_only_the_wallets_own_holds_and_forgets_the_ended_ones() {
        let (policy, ids, now) = setup();
        let ctx = ctx(&policy, &ids, now);
        let mut wallet = Wallet::open(Uuid::nil(), usd(), &ctx).expect("open");
        wallet
            .deposit(money(&policy, 10), None, None, &ctx)
            .expect("deposit");
        let ended = wallet.hold(request(&policy, 3, None), &ctx).expect("hold");
        let ended = wallet.cancel_hold(ended.id, &ctx).expect("cancel");
        let active = wallet.hold(request(&policy, 2, None), &ctx).expect("hold");
        wallet.take_changes();
        wallet.forget_ended_holds();
        assert_eq!(wallet.holds().keys().collect::<Vec<_>>(), [&active.id]);
        assert_eq!(
            wallet.cancel_hold(ended.id, &ctx),
            Err(WalletError::HoldNotFound)
        );
        let foreign = Hold {
            wallet_id: Uuid::from_u128(9),
            ..ended.clone()
        };
        wallet.remember_hold(foreign);
        assert_eq!(
            wallet.cancel_hold(ended.id, &ctx),
            Err(WalletError::HoldNotFound)
        );
        wallet.remember_hold(ended.clone());
        assert_eq!(
            wallet.cancel_hold(ended.id, &ctx),
            Err(WalletError::HoldNotActive)
        );
        assert_eq!(wallet.holds().len(), 2);
        assert!(wallet.changes().is_empty());
    }
}
