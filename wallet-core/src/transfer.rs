//! Moving money between wallets: transfers and hold payouts, in one unit of
//! work over a set of wallets.
//!
//! A transfer debits the payer (checked as a withdrawal) and credits the
//! payee (checked as a deposit, but answering with the counterparty's
//! codes); a payout executes the payer's hold and credits each payee. The
//! store loads every wallet of the unit of work into one [`WalletSet`],
//! locked or version-checked together in user id order, so that two
//! transfers in opposite directions never deadlock and either every leg is
//! written or none is.
//!
//! The checks run in the order of the domain rules, over all the wallets
//! before any of them changes: the request's shape and amounts (in
//! [`crate::Command::validate`]), the wallets' existence, their statuses,
//! then the money. Each leg ([`Wallet::transfer_out`],
//! [`Wallet::transfer_in`], [`Wallet::execute_hold_to_payees`]) checks its
//! own wallet again, so a leg can never change a wallet it should not; if
//! one failed after the checks passed, the mutation's error makes the store
//! write nothing at all.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::aggregate::Aggregate;
use crate::command::CommandOutput;
use crate::context::{bounded_text, Ctx, DESCRIPTION_LENGTH_MAX, REFERENCE_LENGTH_MAX};
use crate::error::WalletError;
use crate::events::PayeeShare;
use crate::money::Money;
use crate::wallet::{Hold, Wallet};

/// The most payees one hold payout may name.
pub const PAYEES_MAX: usize = 16;

/// One payee of a hold payout, as the caller names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payee {
    pub user_id: Uuid,
    /// Read in the hold's currency once the hold is loaded.
    pub amount: Decimal,
}

/// The wallets of one unit of work, by user id.
///
/// A user the store found no wallet for is simply absent, so that the
/// mutation answers `wallet_not_found` for the payer and
/// `counterparty_not_found` for a payee. Iteration is in user id order,
/// the order in which stores lock and write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalletSet {
    wallets: BTreeMap<Uuid, Wallet>,
}

impl WalletSet {
    /// A set of the given wallets, keyed by their users.
    pub fn new(wallets: impl IntoIterator<Item = Wallet>) -> Self {
        wallets.into_iter().collect()
    }

    /// The user's wallet, if the set has one.
    pub fn get(&self, user_id: Uuid) -> Option<&Wallet> {
        self.wallets.get(&user_id)
    }

    /// The user's wallet, to change, if the set has one.
    pub fn get_mut(&mut self, user_id: Uuid) -> Option<&mut Wallet> {
        self.wallets.get_mut(&user_id)
    }

    /// Adds or replaces a wallet.
    pub fn insert(&mut self, wallet: Wallet) {
        self.wallets.insert(wallet.user_id(), wallet);
    }

    /// The wallets, in user id order.
    pub fn iter(&self) -> impl Iterator<Item = &Wallet> {
        self.wallets.values()
    }

    /// The wallets, to change, in user id order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Wallet> {
        self.wallets.values_mut()
    }

    /// The users of the wallets, in order.
    pub fn user_ids(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.wallets.keys().copied()
    }

    /// How many wallets the set has.
    pub fn len(&self) -> usize {
        self.wallets.len()
    }

    /// Whether the set has no wallet.
    pub fn is_empty(&self) -> bool {
        self.wallets.is_empty()
    }

    /// Whether any wallet of the set has changes to persist.
    pub fn is_changed(&self) -> bool {
        self.iter().any(|wallet| !wallet.changes().is_empty())
    }

    /// Expires the overdue holds of every wallet, in user id order: every
    /// wallet a unit of work touches does so before anything else. Only the
    /// payer's rows carry the command's idempotency key (see [`payee_ctx`]).
    pub fn expire_overdue_holds(
        &mut self,
        payer: Uuid,
        ctx: &Ctx<'_>,
    ) -> Result<usize, WalletError> {
        let mut expired = 0;
        for wallet in self.iter_mut() {
            expired += if wallet.user_id() == payer {
                wallet.expire_overdue_holds(ctx)?
            } else {
                wallet.expire_overdue_holds(&payee_ctx(ctx))?
            };
        }
        Ok(expired)
    }

    fn payer(&self, user_id: Uuid) -> Result<&Wallet, WalletError> {
        self.get(user_id).ok_or(WalletError::WalletNotFound)
    }

    fn payee(&self, user_id: Uuid) -> Result<&Wallet, WalletError> {
        self.get(user_id).ok_or(WalletError::CounterpartyNotFound)
    }

    fn payer_mut(&mut self, user_id: Uuid) -> Result<&mut Wallet, WalletError> {
        self.get_mut(user_id).ok_or(WalletError::WalletNotFound)
    }

    fn payee_mut(&mut self, user_id: Uuid) -> Result<&mut Wallet, WalletError> {
        self.get_mut(user_id)
            .ok_or(WalletError::CounterpartyNotFound)
    }
}

impl FromIterator<Wallet> for WalletSet {
    fn from_iter<I: IntoIterator<Item = Wallet>>(wallets: I) -> Self {
        WalletSet {
            wallets: wallets.into_iter().map(|w| (w.user_id(), w)).collect(),
        }
    }
}

impl IntoIterator for WalletSet {
    type Item = Wallet;
    type IntoIter = std::collections::btree_map::IntoValues<Uuid, Wallet>;

    /// The wallets, in user id order.
    fn into_iter(self) -> Self::IntoIter {
        self.wallets.into_values()
    }
}

/// The context of a payee's changes: the same time, ids and policy, but no
/// idempotency key. The key is the payer's, scoped to the payer's wallet;
/// written on a payee's rows it would name a key the payee never used.
pub fn payee_ctx<'a>(ctx: &Ctx<'a>) -> Ctx<'a> {
    Ctx {
        now: ctx.now,
        ids: ctx.ids,
        policy: ctx.policy,
        idempotency_key: None,
    }
}

/// Checks the shape of a payout's payees, which needs no state: 1 to
/// [`PAYEES_MAX`] distinct users (`validation_error`), none of them the
/// payer (`same_wallet`). Their amounts are read in the hold's currency
/// once it is loaded.
pub fn validate_payees(payer: Uuid, payees: &[Payee]) -> Result<(), WalletError> {
    if payees.is_empty() || payees.len() > PAYEES_MAX {
        return Err(WalletError::Validation(format!(
            "a payout names 1 to {PAYEES_MAX} payees"
        )));
    }
    let mut users: Vec<Uuid> = payees.iter().map(|p| p.user_id).collect();
    users.sort_unstable();
    if users.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(WalletError::Validation(
            "a payout names each payee once".into(),
        ));
    }
    if users.binary_search(&payer).is_ok() {
        return Err(WalletError::SameWallet);
    }
    Ok(())
}

/// The parameters of a transfer, validated.
#[derive(Debug, Clone)]
pub struct TransferRequest {
    pub payer: Uuid,
    pub payee: Uuid,
    pub money: Money,
    pub description: Option<String>,
    pub reference: Option<String>,
}

/// The parameters of a hold payout whose shape is validated.
#[derive(Debug, Clone)]
pub struct PayoutRequest {
    pub payer: Uuid,
    pub hold_id: Uuid,
    /// When given, it must equal the payees' sum.
    pub amount: Option<Decimal>,
    pub reference: Option<String>,
    pub payees: Vec<Payee>,
}

/// Moves money from the payer's wallet to the payee's: one `TransferOut`
/// and one `TransferIn` under one new transfer id.
pub fn transfer(
    set: &mut WalletSet,
    request: &TransferRequest,
    ctx: &Ctx<'_>,
) -> Result<CommandOutput, WalletError> {
    let (payer, payee, money) = (request.payer, request.payee, request.money);
    set.payer(payer)?;
    set.payee(payee)?;
    set.payer(payer)?.ensure_active()?;
    set.payee(payee)?.ensure_receivable()?;
    let description = bounded_text(
        "description",
        request.description.clone(),
        DESCRIPTION_LENGTH_MAX,
    )?;
    let reference = bounded_text("reference", request.reference.clone(), REFERENCE_LENGTH_MAX)?;
    set.payer(payer)?.ensure_available(money, ctx)?;
    set.payee(payee)?.ensure_room_for(money, ctx)?;
    let transfer_id = ctx.new_id();
    let sender = set.payer_mut(payer)?;
    let texts = (description.clone(), reference.clone());
    let transaction = sender.transfer_out(money, (transfer_id, payee), texts, ctx)?;
    let wallet = sender.view();
    set.payee_mut(payee)?.transfer_in(
        money,
        (transfer_id, payer),
        (description, reference, None),
        &payee_ctx(ctx),
    )?;
    Ok(CommandOutput::Transfer {
        wallet,
        transaction,
        transfer_id,
    })
}

/// Executes the payer's hold and pays the executed money to the payees:
/// the payer's `HoldExecute` and one `TransferIn` per payee, all under one
/// new transfer id. Answers with the hold, as an execution does.
pub fn pay_out(
    set: &mut WalletSet,
    request: &PayoutRequest,
    ctx: &Ctx<'_>,
) -> Result<CommandOutput, WalletError> {
    let payer = request.payer;
    set.payer(payer)?.ensure_active()?;
    let reference = bounded_text("reference", request.reference.clone(), REFERENCE_LENGTH_MAX)?;
    let hold = set.payer(payer)?.active_hold(request.hold_id)?;
    let shares = payee_shares(hold, request, ctx)?;
    let total = shares_total(&shares)?;
    let remaining = hold.remaining_amount;
    for (user_id, _) in &shares {
        set.payee(*user_id)?;
    }
    for (user_id, _) in &shares {
        set.payee(*user_id)?.ensure_receivable()?;
    }
    if total > remaining {
        return Err(WalletError::AmountExceedsHold);
    }
    for (user_id, money) in &shares {
        set.payee(*user_id)?.ensure_room_for(*money, ctx)?;
    }
    let transfer_id = ctx.new_id();
    let named = shares
        .iter()
        .map(|(user_id, money)| PayeeShare {
            user_id: *user_id,
            amount: money.amount(),
        })
        .collect();
    let hold = set.payer_mut(payer)?.execute_hold_to_payees(
        request.hold_id,
        total,
        reference.clone(),
        (transfer_id, named),
        ctx,
    )?;
    for (user_id, money) in &shares {
        let leg = (None, reference.clone(), Some(request.hold_id));
        set.payee_mut(*user_id)?
            .transfer_in(*money, (transfer_id, payer), leg, &payee_ctx(ctx))?;
    }
    Ok(CommandOutput::Hold { hold })
}

/// Each payee's amount read in the hold's currency (`invalid_amount`), and
/// the given total, if any, equal to their sum (`validation_error`).
fn payee_shares(
    hold: &Hold,
    request: &PayoutRequest,
    ctx: &Ctx<'_>,
) -> Result<Vec<(Uuid, Money)>, WalletError> {
    let currencies = &ctx.policy.currencies;
    let shares = request
        .payees
        .iter()
        .map(|p| Ok((p.user_id, currencies.money(p.amount, hold.currency)?)))
        .collect::<Result<Vec<_>, WalletError>>()?;
    if let Some(amount) = request.amount {
        let amount = currencies.money(amount, hold.currency)?;
        if amount.amount() != shares_total(&shares)? {
            return Err(WalletError::Validation(
                "amount must equal the sum of the payees' amounts".into(),
            ));
        }
    }
    Ok(shares)
}

/// The sum of the payees' amounts. It may exceed what one amount may be
/// (16 amounts of up to 10^15), so it stays a plain decimal, checked against
/// the hold's remaining amount; [`PAYEES_MAX`] amounts of at most 10^15
/// cannot overflow a decimal, and the check keeps any input from panicking.
fn shares_total(shares: &[(Uuid, Money)]) -> Result<Decimal, WalletError> {
    shares.iter().try_fold(Decimal::ZERO, |total, (_, money)| {
        total
            .checked_add(money.amount())
            .ok_or_else(|| WalletError::Internal("payout total overflow".into()))
    })
}
