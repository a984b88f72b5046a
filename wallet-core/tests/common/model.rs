//! A reference model of one user's wallet and point account, the wallets
//! of two peers that money moves to and from (transfers both ways, hold
//! payouts to them), and the driver that runs random steps through the
//! real service and the model side by side.
//!
//! The model is plain integers (minor units per currency, points as `i64`)
//! and a list of holds and lots; it predicts, for every command, either the
//! exact error code or the exact outcome: balances, hold and lot states, and
//! the types of the transactions and events the command appends (lazy expiry
//! included). After every step the driver checks every invariant on the
//! stored state of every wallet, money conserved across them (invariant 5:
//! the sum of all balances is what entered and left the ledger), compares
//! it with the model, and for a failed command or an idempotent replay
//! checks that nothing at all changed, on any wallet.
//!
//! Reversals name the legs the model learnt from the rows each successful
//! command appended; the model keeps one reversed total per reversible
//! transaction, shared by both legs of a transfer, so a store that capped
//! each side on its own, or lost a total, disagrees with it.
//!
//! Steps derive `Arbitrary`, so the fuzz target decodes raw bytes into the
//! same steps and runs the same driver.

use std::collections::{BTreeMap, HashMap};

use arbitrary::Arbitrary;
use chrono::{DateTime, Duration, Utc};
use wallet_core::{
    Applied, Command, CommandOutput, CurrencyCode, Decimal, HoldStatus, LotState, Payee,
    PointTransactionType, TransactionType, Uuid, WalletStatus,
};

use wallet_core::testing::invariants;
use wallet_core::{StoredWallet, WalletTransaction, WalletView};

use super::{code, Harness, Snapshot};

/// The user most steps act on.
pub const USER: Uuid = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
/// The peers money moves to and from: one user id below [`USER`] and one
/// above, so that units of work list their wallets in both orders.
pub const PEERS: [Uuid; 2] = [Uuid::from_u128(0x0042), Uuid::from_u128(u128::MAX - 0x42)];
/// A user who never has a wallet.
pub const STRANGER: Uuid = Uuid::from_u128(0x5757);
/// How many distinct idempotency keys steps draw from.
pub const KEY_COUNT: u8 = 4;
/// The most steps one run takes (fuzz input beyond it is ignored).
pub const STEPS_MAX: usize = 64;

const AMOUNT_MAX_UNITS: i128 = 1_000_000_000_000_000;
const POINTS_MAX: i64 = 1_000_000_000_000;
const POINTS_BALANCE_MAX: i64 = 1_000_000_000_000_000;
const TEXT_MAX: usize = 500;
const PAYEES_MAX: usize = 16;

// ---- steps ---------------------------------------------------------------

/// A currency: the three configured ones and one that is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum Cur {
    Vnd,
    Usd,
    Ppoint,
    Eur,
}

impl Cur {
    pub fn code(self) -> CurrencyCode {
        code(match self {
            Cur::Vnd => "VND",
            Cur::Usd => "USD",
            Cur::Ppoint => "PPOINT",
            Cur::Eur => "EUR",
        })
    }
}

/// An amount, valid or not, given in the scale of the currency it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum Amount {
    /// This many minor units (0 is invalid).
    Minor(u8),
    /// This many whole units (0 is invalid).
    Units(u16),
    /// A larger number of minor units.
    Big(u32),
    Zero,
    Negative,
    /// One digit more than the currency's scale.
    TooPrecise,
    /// Exactly the largest amount, 10^15 units.
    Max,
    /// One minor unit over the largest amount.
    OverMax,
    /// The whole balance of the currency (of a hold: what remains).
    Balance,
    /// What is available in the currency (of a hold: what remains).
    Available,
    /// One minor unit more than [`Amount::Available`].
    AvailablePlusOne,
}

impl Amount {
    /// The decimal sent for `currency` (an unknown currency gets scale 2),
    /// given the balance and the available amount of the currency (of a
    /// hold: what remains, twice), in minor units.
    pub fn decimal(self, currency: CurrencyCode, balance: i128, available: i128) -> Decimal {
        let scale = scale_of(currency).unwrap_or(2);
        let max_minor = AMOUNT_MAX_UNITS * 10i128.pow(scale);
        match self {
            Amount::Balance => Decimal::from_i128_with_scale(balance, scale),
            Amount::Available => Decimal::from_i128_with_scale(available, scale),
            Amount::AvailablePlusOne => Decimal::from_i128_with_scale(available + 1, scale),
            Amount::Minor(n) => Decimal::new(i64::from(n), scale),
            Amount::Units(n) => Decimal::from(n),
            Amount::Big(n) => Decimal::new(i64::from(n), scale),
            Amount::Zero => Decimal::ZERO,
            Amount::Negative => Decimal::new(-1, scale),
            Amount::TooPrecise => Decimal::new(1, scale + 1),
            Amount::Max => Decimal::from_i128_with_scale(max_minor, scale),
            Amount::OverMax => Decimal::from_i128_with_scale(max_minor + 1, scale),
        }
    }
}

/// When a hold expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum HoldLife {
    Default,
    Minutes(u16),
    Hours(u8),
    Past,
    /// Exactly the longest lifetime.
    Max,
    /// One second over the longest lifetime.
    TooLong,
}

/// When a lot expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum LotLife {
    Never,
    Minutes(u16),
    Days(u8),
    Past,
}

/// A number of points, valid or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum Points {
    Small(u16),
    Zero,
    Max,
    OverMax,
    Extreme,
}

impl Points {
    pub fn value(self, negative: bool) -> i64 {
        let value = match self {
            Points::Small(n) => i64::from(n),
            Points::Zero => 0,
            Points::Max => POINTS_MAX,
            Points::OverMax => POINTS_MAX + 1,
            Points::Extreme => i64::MAX,
        };
        match (negative, self) {
            (true, Points::Extreme) => i64::MIN,
            (true, _) => -value,
            (false, _) => value,
        }
    }
}

/// A jump of the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum Jump {
    Seconds(u16),
    Hours(u8),
    Days(u8),
}

impl Jump {
    pub fn duration(self) -> Duration {
        match self {
            Jump::Seconds(n) => Duration::seconds(i64::from(n)),
            Jump::Hours(n) => Duration::hours(i64::from(n)),
            Jump::Days(n) => Duration::days(i64::from(n % 40)),
        }
    }
}

/// One command, before its holds, lots and times are resolved. `hold` and
/// `lot` pick a known id by index, or an unknown id past the end.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Op {
    CreateWallet {
        currency: Option<Cur>,
    },
    Deposit {
        amount: Amount,
        currency: Cur,
        long_text: bool,
    },
    Withdraw {
        amount: Amount,
        currency: Cur,
        long_text: bool,
    },
    Exchange {
        amount: Amount,
        from: Cur,
        to: Cur,
    },
    Hold {
        amount: Amount,
        currency: Cur,
        life: HoldLife,
    },
    Execute {
        hold: u8,
        amount: Option<Amount>,
    },
    Release {
        hold: u8,
        amount: Option<Amount>,
    },
    Cancel {
        hold: u8,
    },
    Freeze {
        blank_reason: bool,
    },
    Unfreeze,
    Close,
    CreatePointAccount,
    Earn {
        points: Points,
        life: LotLife,
        pending: bool,
    },
    Spend {
        points: Points,
    },
    Adjust {
        points: Points,
        negative: bool,
    },
    Confirm {
        lot: u8,
    },
    CancelPending {
        lot: u8,
    },
    /// Money moving between wallets, and the peers' own commands. One
    /// variant, so that fuzz input picks the single-wallet commands about
    /// as often as before there were several wallets.
    Between(Between),
}

/// The steps that involve the peers.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Between {
    /// A command on a peer's wallet.
    Peer { peer: u8, op: PeerOp },
    /// From [`USER`] to a party ([`party`]: a peer, the user itself or a
    /// stranger).
    TransferTo {
        to: u8,
        amount: Amount,
        currency: Cur,
        long_text: bool,
    },
    /// From a party to [`USER`].
    TransferFrom {
        from: u8,
        amount: Amount,
        currency: Cur,
    },
    /// Executes a hold of [`USER`] to payees (parties), each share
    /// relative to what the hold has left; `total` also states the amount.
    PayOut {
        hold: u8,
        payees: Vec<(u8, Amount)>,
        total: Option<Amount>,
    },
    /// Reverses a transaction: `target` picks a leg of a reversible
    /// transaction, a row that is not reversible, or an unknown id past
    /// the end; the caller is the leg's owner unless `caller` picks a
    /// party; the amount is relative to what is left to reverse.
    Reverse {
        target: u8,
        amount: Option<Amount>,
        caller: Option<u8>,
        blank_reason: bool,
    },
}

/// What a peer's wallet may be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum PeerOp {
    Create,
    Deposit { amount: Amount, currency: Cur },
    Freeze,
    Unfreeze,
    Close,
}

/// A known id by index, or an unknown id past the end.
fn pick(ids: &[Uuid], index: u8) -> Uuid {
    let index = usize::from(index) % (ids.len() + 1);
    ids.get(index)
        .copied()
        .unwrap_or(Uuid::from_u128(0xdead_0000 + u128::from(index as u32)))
}

/// The party of a transfer or payout an index picks: the peers, then
/// [`USER`] itself, then [`STRANGER`].
pub fn party(index: u8) -> Uuid {
    match usize::from(index) % (PEERS.len() + 2) {
        i if i < PEERS.len() => PEERS[i],
        i if i == PEERS.len() => USER,
        _ => STRANGER,
    }
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Step {
    /// A command, with one of [`KEY_COUNT`] idempotency keys or none.
    Command {
        op: Op,
        key: Option<u8>,
    },
    /// Sends an earlier command again, with the key it had: `back` counts
    /// from the latest.
    Repeat {
        back: u8,
    },
    Advance(Jump),
    Sweep,
}

// ---- the model -----------------------------------------------------------

fn scale_of(currency: CurrencyCode) -> Option<u32> {
    match currency.as_str() {
        "VND" | "PPOINT" => Some(0),
        "USD" => Some(2),
        _ => None,
    }
}

fn base_rate_of(currency: CurrencyCode) -> i128 {
    match currency.as_str() {
        "USD" => 25_000,
        _ => 1,
    }
}

fn limit_minor(currency: CurrencyCode) -> i128 {
    AMOUNT_MAX_UNITS * 10i128.pow(scale_of(currency).unwrap_or(0))
}

fn to_decimal(minor: i128, currency: CurrencyCode) -> Decimal {
    Decimal::from_i128_with_scale(minor, scale_of(currency).unwrap_or(0))
}

type Expected<T> = Result<T, &'static str>;

/// A valid amount in minor units, or why not.
fn minor_units(amount: Decimal, currency: CurrencyCode) -> Expected<i128> {
    let scale = scale_of(currency).ok_or("unsupported_currency")?;
    if amount <= Decimal::ZERO || amount > Decimal::from(AMOUNT_MAX_UNITS as i64) {
        return Err("invalid_amount");
    }
    let mut value = amount.normalize();
    if value.scale() > scale {
        return Err("invalid_amount");
    }
    value.rescale(scale);
    Ok(value.mantissa())
}

/// The shape of a payout's payees: 1 to 16 distinct users, not the payer.
fn payees_shape(payer: Uuid, payees: &[Payee]) -> Expected<()> {
    let mut users: Vec<Uuid> = payees.iter().map(|p| p.user_id).collect();
    users.sort_unstable();
    users.dedup();
    if payees.is_empty() || payees.len() > PAYEES_MAX || users.len() != payees.len() {
        return Err("validation_error");
    }
    if users.contains(&payer) {
        return Err("same_wallet");
    }
    Ok(())
}

fn valid_points(points: i64) -> Expected<i64> {
    if (1..=POINTS_MAX).contains(&points) {
        Ok(points)
    } else {
        Err("validation_error")
    }
}

fn text_ok(text: &Option<String>) -> Expected<()> {
    match text {
        Some(t) if t.chars().count() > TEXT_MAX || t.trim().is_empty() => Err("validation_error"),
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelHold {
    pub currency: CurrencyCode,
    pub original: i128,
    pub remaining: i128,
    pub executed: i128,
    pub released: i128,
    pub status: HoldStatus,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelWallet {
    pub status: WalletStatus,
    /// Balance and held, in minor units.
    pub items: BTreeMap<CurrencyCode, (i128, i128)>,
    pub holds: BTreeMap<Uuid, ModelHold>,
}

/// Who a reversal of a transaction changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReversalShape {
    /// Takes the money back from the wallet (a deposit).
    Debit(Uuid),
    /// Gives the money back to the wallet (a withdrawal, an execution
    /// paid out of the ledger).
    Credit(Uuid),
    /// Moves the money back from the payee to the payer (a transfer, a
    /// payee's share of a payout).
    Between { payer: Uuid, payee: Uuid },
}

/// A reversible transaction: the legs a reversal may name (the two sides
/// of a transfer share it, and its one total), and what is reversed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelReversible {
    pub currency: CurrencyCode,
    /// In minor units, without its sign.
    pub amount: i128,
    pub reversed: i128,
    /// `(owner, transaction id)` of each leg that names it.
    pub legs: Vec<(Uuid, Uuid)>,
    pub shape: ReversalShape,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelLot {
    pub id: Uuid,
    pub points: i64,
    pub remaining: i64,
    pub pending: bool,
    /// Pending, or available with points left.
    pub alive: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub earned_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPoints {
    /// Every lot, in creation order.
    pub lots: Vec<ModelLot>,
    pub lifetime: i64,
}

impl ModelPoints {
    fn available(&self) -> i64 {
        self.lots
            .iter()
            .filter(|l| l.alive && !l.pending)
            .map(|l| l.remaining)
            .sum()
    }

    fn pending(&self) -> i64 {
        self.lots
            .iter()
            .filter(|l| l.alive && l.pending)
            .map(|l| l.points)
            .sum()
    }

    /// Takes points from available lots: soonest expiry first,
    /// non-expiring last, ties by earn time then creation order.
    fn consume(&mut self, mut points: i64) {
        let mut order: Vec<usize> = (0..self.lots.len())
            .filter(|&i| self.lots[i].alive && !self.lots[i].pending)
            .collect();
        order.sort_by_key(|&i| {
            let lot = &self.lots[i];
            (lot.expires_at.is_none(), lot.expires_at, lot.earned_at, i)
        });
        for i in order {
            if points == 0 {
                break;
            }
            let lot = &mut self.lots[i];
            let taken = lot.remaining.min(points);
            lot.remaining -= taken;
            points -= taken;
            lot.alive = lot.remaining > 0;
        }
    }
}

/// What a successful command is predicted to append, and the hold or lot
/// it creates (whose id the store picks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub events: Vec<&'static str>,
    pub wallet_transactions: Vec<TransactionType>,
    pub point_transactions: Vec<PointTransactionType>,
    pub new_hold: Option<ModelHold>,
    pub new_lot: Option<ModelLot>,
    /// What each peer's log gains.
    pub peer_transactions: BTreeMap<Uuid, Vec<TransactionType>>,
}

impl Outcome {
    /// A transaction appended to the log of `user_id`.
    fn record(&mut self, user_id: Uuid, kind: TransactionType) {
        if user_id == USER {
            self.wallet_transactions.push(kind);
        } else {
            self.peer_transactions
                .entry(user_id)
                .or_default()
                .push(kind);
        }
    }
}

/// The model's prediction for a command.
#[derive(Debug, Clone)]
pub enum Prediction {
    Fails(&'static str),
    Replays(Box<CommandOutput>),
    Succeeds(Box<Model>, Box<Outcome>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub now: DateTime<Utc>,
    pub wallet: Option<ModelWallet>,
    pub points: Option<ModelPoints>,
    /// The peers' wallets, which hold no holds.
    pub peers: BTreeMap<Uuid, ModelWallet>,
    /// Keys of successful commands, by the user they are scoped to: the
    /// command and its output.
    pub keys: HashMap<(Uuid, String), (Command, CommandOutput)>,
    /// Every hold ever made, in creation order.
    pub hold_ids: Vec<Uuid>,
    /// Every lot ever made, in creation order.
    pub lot_ids: Vec<Uuid>,
    /// Every reversible transaction, in creation order.
    pub reversibles: Vec<ModelReversible>,
    /// `(owner, transaction id)` of rows that cannot be reversed.
    pub fixed_rows: Vec<(Uuid, Uuid)>,
}

impl Model {
    pub fn new(now: DateTime<Utc>) -> Self {
        Model {
            now,
            wallet: None,
            points: None,
            peers: BTreeMap::new(),
            keys: HashMap::new(),
            hold_ids: Vec::new(),
            lot_ids: Vec::new(),
            reversibles: Vec::new(),
            fixed_rows: Vec::new(),
        }
    }

    /// Checks of parameters alone, made before the idempotency key.
    fn precheck(command: &Command) -> Expected<()> {
        match command {
            Command::CreateWallet {
                default_currency: Some(currency),
                ..
            } => scale_of(*currency)
                .map(|_| ())
                .ok_or("unsupported_currency"),
            Command::Deposit {
                amount, currency, ..
            }
            | Command::Withdraw {
                amount, currency, ..
            }
            | Command::CreateHold {
                amount, currency, ..
            } => minor_units(*amount, *currency).map(|_| ()),
            Command::Exchange {
                amount,
                from_currency,
                to_currency,
                ..
            } => {
                scale_of(*from_currency).ok_or("unsupported_currency")?;
                scale_of(*to_currency).ok_or("unsupported_currency")?;
                if from_currency == to_currency {
                    return Err("same_currency");
                }
                minor_units(*amount, *from_currency).map(|_| ())
            }
            Command::EarnPoints { points, .. } | Command::SpendPoints { points, .. } => {
                valid_points(*points).map(|_| ())
            }
            Command::AdjustPoints { delta, .. } => {
                if *delta == 0 {
                    return Err("validation_error");
                }
                valid_points(delta.checked_abs().unwrap_or(i64::MAX)).map(|_| ())
            }
            Command::Transfer {
                user_id,
                to_user_id,
                amount,
                currency,
                ..
            } => {
                if user_id == to_user_id {
                    return Err("same_wallet");
                }
                minor_units(*amount, *currency).map(|_| ())
            }
            Command::ExecuteHold {
                user_id,
                payees: Some(payees),
                ..
            } => payees_shape(*user_id, payees),
            Command::CreateWallet {
                default_currency: None,
                ..
            }
            | Command::ExecuteHold { payees: None, .. }
            | Command::ReleaseHold { .. }
            | Command::CancelHold { .. }
            | Command::FreezeWallet { .. }
            | Command::UnfreezeWallet { .. }
            | Command::CloseWallet { .. }
            | Command::CreatePointAccount { .. }
            | Command::ReverseTransaction { .. }
            | Command::ConfirmPendingPoints { .. }
            | Command::CancelPendingPoints { .. } => Ok(()),
        }
    }

    /// What the command will do.
    pub fn predict(&self, command: &Command, key: Option<&str>) -> Prediction {
        if let Err(code) = Self::precheck(command) {
            return Prediction::Fails(code);
        }
        let scoped = key.map(|k| (command.user_id(), k.to_string()));
        if let Some((first, output)) = scoped.and_then(|k| self.keys.get(&k)) {
            return if first == command {
                Prediction::Replays(Box::new(output.clone()))
            } else {
                Prediction::Fails("idempotency_key_reused")
            };
        }
        let mut next = self.clone();
        let mut outcome = Outcome::default();
        match next.apply(command, &mut outcome) {
            Ok(()) => Prediction::Succeeds(Box::new(next), Box::new(outcome)),
            Err(code) => Prediction::Fails(code),
        }
    }

    fn apply(&mut self, command: &Command, outcome: &mut Outcome) -> Expected<()> {
        match command {
            Command::CreateWallet { user_id, .. } => {
                if self.wallet_ref(*user_id).is_some() {
                    return Err("wallet_exists");
                }
                let fresh = ModelWallet {
                    status: WalletStatus::Active,
                    items: BTreeMap::new(),
                    holds: BTreeMap::new(),
                };
                if *user_id == USER {
                    self.wallet = Some(fresh);
                } else {
                    self.peers.insert(*user_id, fresh);
                }
                outcome.events.push("WalletCreated");
                Ok(())
            }
            Command::CreatePointAccount { .. } => {
                if self.points.is_some() {
                    return Err("point_account_exists");
                }
                self.points = Some(ModelPoints {
                    lots: Vec::new(),
                    lifetime: 0,
                });
                outcome.events.push("PointAccountCreated");
                Ok(())
            }
            Command::EarnPoints { .. }
            | Command::SpendPoints { .. }
            | Command::AdjustPoints { .. }
            | Command::ConfirmPendingPoints { .. }
            | Command::CancelPendingPoints { .. } => {
                let now = self.now;
                let points = self.points.as_mut().ok_or("point_account_not_found")?;
                expire_lots(points, now, outcome);
                apply_points(points, command, now, outcome)
            }
            Command::Transfer { .. } => self.transfer(command, outcome),
            Command::ReverseTransaction { .. } => self.reverse(command, outcome),
            Command::ExecuteHold {
                payees: Some(_), ..
            } => self.pay_out(command, outcome),
            Command::Deposit { .. }
            | Command::Withdraw { .. }
            | Command::Exchange { .. }
            | Command::CreateHold { .. }
            | Command::ExecuteHold { .. }
            | Command::ReleaseHold { .. }
            | Command::CancelHold { .. }
            | Command::FreezeWallet { .. }
            | Command::UnfreezeWallet { .. }
            | Command::CloseWallet { .. } => {
                let now = self.now;
                let user_id = command.user_id();
                let wallet = self.wallet_mut(user_id).ok_or("wallet_not_found")?;
                expire_holds(wallet, now, outcome);
                apply_wallet(wallet, command, now, outcome)?;
                if user_id != USER {
                    let appended = std::mem::take(&mut outcome.wallet_transactions);
                    outcome
                        .peer_transactions
                        .entry(user_id)
                        .or_default()
                        .extend(appended);
                }
                Ok(())
            }
        }
    }

    fn wallet_ref(&self, user_id: Uuid) -> Option<&ModelWallet> {
        if user_id == USER {
            self.wallet.as_ref()
        } else {
            self.peers.get(&user_id)
        }
    }

    fn wallet_mut(&mut self, user_id: Uuid) -> Option<&mut ModelWallet> {
        if user_id == USER {
            self.wallet.as_mut()
        } else {
            self.peers.get_mut(&user_id)
        }
    }

    /// A transfer between [`USER`] and a peer, either way: existence, then
    /// statuses, then texts, then the money, each wallet's overdue holds
    /// expired first.
    fn transfer(&mut self, command: &Command, outcome: &mut Outcome) -> Expected<()> {
        let Command::Transfer {
            user_id: payer,
            to_user_id: payee,
            amount,
            currency,
            description,
            reference,
        } = command
        else {
            return Err("internal_error");
        };
        let (payer, payee, currency) = (*payer, *payee, *currency);
        let minor = minor_units(*amount, currency)?;
        self.wallet_ref(payer).ok_or("wallet_not_found")?;
        self.wallet_ref(payee).ok_or("counterparty_not_found")?;
        let now = self.now;
        for user in [payer, payee] {
            if let Some(wallet) = self.wallet_mut(user) {
                expire_holds(wallet, now, outcome);
            }
        }
        let from = self.wallet_ref(payer).ok_or("wallet_not_found")?;
        let to = self.wallet_ref(payee).ok_or("counterparty_not_found")?;
        ensure_active(from)?;
        if to.status == WalletStatus::Closed {
            return Err("counterparty_closed");
        }
        text_ok(description)?;
        text_ok(reference)?;
        let (balance, held) = from.items.get(&currency).copied().unwrap_or_default();
        if balance - held < minor {
            return Err("insufficient_funds");
        }
        let target = to.items.get(&currency).copied().unwrap_or_default();
        if target.0 + minor > limit_minor(currency) {
            return Err("balance_limit_exceeded");
        }
        if let Some(from) = self.wallet_mut(payer) {
            from.items.insert(currency, (balance - minor, held));
        }
        if let Some(to) = self.wallet_mut(payee) {
            to.items.insert(currency, (target.0 + minor, target.1));
        }
        outcome.events.extend(["TransferSent", "TransferReceived"]);
        outcome.record(payer, TransactionType::TransferOut);
        outcome.record(payee, TransactionType::TransferIn);
        Ok(())
    }

    /// A payout of a hold of [`USER`] to peers: the payer's status and the
    /// hold first (their amounts are read in the hold's currency), then the
    /// amounts, the payees' existence and statuses, the hold's remaining
    /// amount and the payees' balance limits.
    fn pay_out(&mut self, command: &Command, outcome: &mut Outcome) -> Expected<()> {
        let Command::ExecuteHold {
            hold_id,
            amount,
            reference,
            payees: Some(payees),
            ..
        } = command
        else {
            return Err("internal_error");
        };
        let now = self.now;
        let wallet = self.wallet.as_mut().ok_or("wallet_not_found")?;
        expire_holds(wallet, now, outcome);
        ensure_active(wallet)?;
        text_ok(reference)?;
        let hold = wallet.holds.get(hold_id).ok_or("hold_not_found")?;
        if hold.status != HoldStatus::Active {
            return Err("hold_not_active");
        }
        let currency = hold.currency;
        let shares = payees
            .iter()
            .map(|p| Ok((p.user_id, minor_units(p.amount, currency)?)))
            .collect::<Expected<Vec<(Uuid, i128)>>>()?;
        let sum: i128 = shares.iter().map(|(_, minor)| minor).sum();
        if let Some(amount) = amount {
            if minor_units(*amount, currency)? != sum {
                return Err("validation_error");
            }
        }
        for (user, _) in &shares {
            self.peers.get(user).ok_or("counterparty_not_found")?;
        }
        for (user, _) in &shares {
            if self.peers.get(user).map(|p| p.status) == Some(WalletStatus::Closed) {
                return Err("counterparty_closed");
            }
        }
        if sum > hold.remaining {
            return Err("amount_exceeds_hold");
        }
        for (user, minor) in &shares {
            let balance = self.peers.get(user).and_then(|p| p.items.get(&currency));
            if balance.map_or(0, |b| b.0) + minor > limit_minor(currency) {
                return Err("balance_limit_exceeded");
            }
        }
        let hold = wallet.holds.get_mut(hold_id).ok_or("hold_not_found")?;
        hold.remaining -= sum;
        hold.executed += sum;
        if hold.remaining == 0 {
            hold.status = HoldStatus::Executed;
        }
        let item = wallet.items.entry(currency).or_default();
        item.0 -= sum;
        item.1 -= sum;
        outcome
            .events
            .extend(["WalletBalanceChanged", "EscrowExecuted"]);
        outcome.record(USER, TransactionType::HoldExecute);
        for (user, minor) in shares {
            if let Some(peer) = self.peers.get_mut(&user) {
                peer.items.entry(currency).or_default().0 += minor;
            }
            outcome.events.push("TransferReceived");
            outcome.record(user, TransactionType::TransferIn);
        }
        Ok(())
    }

    /// A reversal, in the order of the domain rules: the wallet, the
    /// transaction (the caller's own), its kind, the amount's shape, each
    /// wallet's overdue holds expired, the statuses (debited side first),
    /// the reason, the cap shared by every leg, then the money.
    fn reverse(&mut self, command: &Command, outcome: &mut Outcome) -> Expected<()> {
        let Command::ReverseTransaction {
            user_id,
            transaction_id,
            amount,
            reason,
        } = command
        else {
            return Err("internal_error");
        };
        let user = *user_id;
        self.wallet_ref(user).ok_or("wallet_not_found")?;
        let named = (user, *transaction_id);
        let Some(index) = self
            .reversibles
            .iter()
            .position(|r| r.legs.contains(&named))
        else {
            return Err(if self.fixed_rows.contains(&named) {
                "not_reversible"
            } else {
                "transaction_not_found"
            });
        };
        let unit = self.reversibles[index].clone();
        let asked = amount
            .map(|amount| minor_units(amount, unit.currency))
            .transpose()?;
        let (debited, credited) = match unit.shape {
            ReversalShape::Debit(owner) => (Some(owner), None),
            ReversalShape::Credit(owner) => (None, Some(owner)),
            ReversalShape::Between { payer, payee } => (Some(payee), Some(payer)),
        };
        let now = self.now;
        for side in debited.iter().chain(credited.iter()) {
            let wallet = self.wallet_mut(*side).ok_or("counterparty_not_found")?;
            expire_holds(wallet, now, outcome);
        }
        for side in debited.iter().chain(credited.iter()) {
            let wallet = self.wallet_ref(*side).ok_or("counterparty_not_found")?;
            if wallet.status == WalletStatus::Closed {
                return Err(if *side == user {
                    "wallet_closed"
                } else {
                    "counterparty_closed"
                });
            }
        }
        if reason.chars().count() > TEXT_MAX || reason.trim().is_empty() {
            return Err("validation_error");
        }
        let left = unit.amount - unit.reversed;
        let minor = match asked {
            Some(minor) if minor <= left => minor,
            None if left > 0 => left,
            _ => return Err("reversal_exceeds_original"),
        };
        let currency = unit.currency;
        if let Some(side) = debited {
            let (balance, held) = self.item_of(side, currency);
            if balance - held < minor {
                return Err("insufficient_funds");
            }
        }
        if let Some(side) = credited {
            if self.item_of(side, currency).0 + minor > limit_minor(currency) {
                return Err("balance_limit_exceeded");
            }
        }
        for (side, change) in [(debited, -minor), (credited, minor)] {
            let Some(side) = side else { continue };
            let wallet = self.wallet_mut(side).ok_or("counterparty_not_found")?;
            wallet.items.entry(currency).or_default().0 += change;
            outcome.events.push("TransactionReversed");
            outcome.record(side, TransactionType::Reversal);
        }
        self.reversibles[index].reversed += minor;
        Ok(())
    }

    /// Balance and held of a currency in a wallet, zero when untouched.
    fn item_of(&self, user_id: Uuid, currency: CurrencyCode) -> (i128, i128) {
        self.wallet_ref(user_id)
            .and_then(|w| w.items.get(&currency))
            .copied()
            .unwrap_or_default()
    }

    /// Learns the rows a successful command appended: each reversible
    /// transaction with the legs that name it, and the rows that cannot
    /// be reversed.
    fn learn(&mut self, appended: &[(Uuid, WalletTransaction)]) {
        for (owner, row) in appended {
            let Ok(amount) = minor_units(row.amount.abs(), row.currency) else {
                continue;
            };
            let unit = |legs, shape| ModelReversible {
                currency: row.currency,
                amount,
                reversed: 0,
                legs,
                shape,
            };
            match (
                row.transaction_type,
                row.transfer_id,
                row.counterparty_user_id,
            ) {
                (TransactionType::Deposit, _, _) => self
                    .reversibles
                    .push(unit(vec![(*owner, row.id)], ReversalShape::Debit(*owner))),
                (TransactionType::Withdraw, _, _) | (TransactionType::HoldExecute, None, _) => self
                    .reversibles
                    .push(unit(vec![(*owner, row.id)], ReversalShape::Credit(*owner))),
                (TransactionType::TransferOut, Some(transfer_id), Some(payee)) => {
                    let received = appended.iter().find(|(user, other)| {
                        *user == payee
                            && other.transfer_id == Some(transfer_id)
                            && other.transaction_type == TransactionType::TransferIn
                    });
                    if let Some((_, received)) = received {
                        let legs = vec![(*owner, row.id), (payee, received.id)];
                        let shape = ReversalShape::Between {
                            payer: *owner,
                            payee,
                        };
                        self.reversibles.push(unit(legs, shape));
                    }
                }
                // A transfer's `TransferIn` is learnt with its `TransferOut`.
                (TransactionType::TransferIn, _, _) if row.hold_id.is_none() => {}
                (TransactionType::TransferIn, _, Some(payer)) => {
                    let shape = ReversalShape::Between {
                        payer,
                        payee: *owner,
                    };
                    self.reversibles.push(unit(vec![(*owner, row.id)], shape));
                }
                _ => self.fixed_rows.push((*owner, row.id)),
            }
        }
    }

    /// The legs a reversal step may name, then the fixed rows: `(owner,
    /// transaction id, the reversible it names)`.
    fn reversal_targets(&self) -> Vec<(Uuid, Uuid, Option<&ModelReversible>)> {
        let legs = self
            .reversibles
            .iter()
            .flat_map(|r| r.legs.iter().map(move |(owner, id)| (*owner, *id, Some(r))));
        let fixed = self
            .fixed_rows
            .iter()
            .map(|(owner, id)| (*owner, *id, None));
        legs.chain(fixed).collect()
    }

    /// The sweep: expires overdue holds and lots; returns how many wallets
    /// and accounts it touched.
    pub fn sweep(&mut self, outcome: &mut Outcome) -> (usize, usize) {
        let now = self.now;
        let mut swept = (0, 0);
        if let Some(wallet) = self.wallet.as_mut() {
            if expire_holds(wallet, now, outcome) > 0 {
                swept.0 = 1;
            }
        }
        if let Some(points) = self.points.as_mut() {
            if expire_lots(points, now, outcome) > 0 {
                swept.1 = 1;
            }
        }
        swept
    }
}

fn expire_holds(wallet: &mut ModelWallet, now: DateTime<Utc>, outcome: &mut Outcome) -> usize {
    let mut expired = 0;
    for hold in wallet.holds.values_mut() {
        if hold.status == HoldStatus::Active && hold.expires_at <= now {
            let item = wallet.items.entry(hold.currency).or_default();
            item.1 -= hold.remaining;
            hold.released += hold.remaining;
            hold.remaining = 0;
            hold.status = HoldStatus::Expired;
            outcome.events.push("EscrowReleased");
            outcome
                .wallet_transactions
                .push(TransactionType::HoldRelease);
            expired += 1;
        }
    }
    expired
}

fn expire_lots(points: &mut ModelPoints, now: DateTime<Utc>, outcome: &mut Outcome) -> usize {
    let mut expired = 0;
    for lot in points.lots.iter_mut() {
        if lot.alive && lot.expires_at.is_some_and(|at| at <= now) {
            lot.alive = false;
            lot.remaining = 0;
            outcome.events.push("PointsExpired");
            outcome
                .point_transactions
                .push(PointTransactionType::Expire);
            expired += 1;
        }
    }
    expired
}

fn ensure_active(wallet: &ModelWallet) -> Expected<()> {
    match wallet.status {
        WalletStatus::Active => Ok(()),
        WalletStatus::Frozen => Err("wallet_frozen"),
        WalletStatus::Closed => Err("wallet_closed"),
    }
}

fn ensure_not_closed(wallet: &ModelWallet) -> Expected<()> {
    match wallet.status {
        WalletStatus::Closed => Err("wallet_closed"),
        WalletStatus::Active | WalletStatus::Frozen => Ok(()),
    }
}

/// The amount an execute or release settles, or why not.
fn settlement(wallet: &ModelWallet, hold_id: Uuid, amount: Option<Decimal>) -> Expected<i128> {
    let hold = wallet.holds.get(&hold_id).ok_or("hold_not_found")?;
    if hold.status != HoldStatus::Active {
        return Err("hold_not_active");
    }
    let amount = match amount {
        None => hold.remaining,
        Some(value) => minor_units(value, hold.currency)?,
    };
    if amount > hold.remaining {
        return Err("amount_exceeds_hold");
    }
    Ok(amount)
}

fn apply_wallet(
    wallet: &mut ModelWallet,
    command: &Command,
    now: DateTime<Utc>,
    outcome: &mut Outcome,
) -> Expected<()> {
    match command {
        Command::Deposit {
            amount,
            currency,
            description,
            reference,
            ..
        } => {
            let minor = minor_units(*amount, *currency)?;
            ensure_not_closed(wallet)?;
            text_ok(description)?;
            text_ok(reference)?;
            let item = wallet.items.entry(*currency).or_default();
            if item.0 + minor > limit_minor(*currency) {
                return Err("balance_limit_exceeded");
            }
            item.0 += minor;
            outcome.events.push("WalletBalanceChanged");
            outcome.wallet_transactions.push(TransactionType::Deposit);
        }
        Command::Withdraw {
            amount,
            currency,
            description,
            reference,
            ..
        } => {
            let minor = minor_units(*amount, *currency)?;
            ensure_active(wallet)?;
            text_ok(description)?;
            text_ok(reference)?;
            let item = wallet.items.get(currency).copied().unwrap_or_default();
            if item.0 - item.1 < minor {
                return Err("insufficient_funds");
            }
            wallet.items.insert(*currency, (item.0 - minor, item.1));
            outcome.events.push("WalletBalanceChanged");
            outcome.wallet_transactions.push(TransactionType::Withdraw);
        }
        Command::Exchange {
            amount,
            from_currency: from,
            to_currency: to,
            ..
        } => {
            let minor = minor_units(*amount, *from)?;
            ensure_active(wallet)?;
            let source = wallet.items.get(from).copied().unwrap_or_default();
            if source.0 - source.1 < minor {
                return Err("insufficient_funds");
            }
            let (scale_from, scale_to) = (scale_of(*from).unwrap_or(0), scale_of(*to).unwrap_or(0));
            let converted = minor * base_rate_of(*from) * 10i128.pow(scale_to)
                / (10i128.pow(scale_from) * base_rate_of(*to));
            if converted > limit_minor(*to) {
                return Err("balance_limit_exceeded");
            }
            if converted == 0 {
                return Err("amount_too_small");
            }
            let target = wallet.items.get(to).copied().unwrap_or_default();
            if target.0 + converted > limit_minor(*to) {
                return Err("balance_limit_exceeded");
            }
            wallet.items.insert(*from, (source.0 - minor, source.1));
            wallet.items.insert(*to, (target.0 + converted, target.1));
            outcome.events.push("WalletExchanged");
            outcome
                .wallet_transactions
                .extend([TransactionType::ExchangeOut, TransactionType::ExchangeIn]);
        }
        Command::CreateHold {
            amount,
            currency,
            expires_at,
            ..
        } => {
            let minor = minor_units(*amount, *currency)?;
            ensure_active(wallet)?;
            let expires_at = match expires_at {
                None => now + Duration::days(7),
                Some(at) if *at <= now || *at > now + Duration::days(30) => {
                    return Err("validation_error")
                }
                Some(at) => *at,
            };
            let item = wallet.items.get(currency).copied().unwrap_or_default();
            if item.0 - item.1 < minor {
                return Err("insufficient_funds");
            }
            wallet.items.insert(*currency, (item.0, item.1 + minor));
            outcome.new_hold = Some(ModelHold {
                currency: *currency,
                original: minor,
                remaining: minor,
                executed: 0,
                released: 0,
                status: HoldStatus::Active,
                expires_at,
            });
            outcome.events.push("EscrowHeld");
            outcome.wallet_transactions.push(TransactionType::Hold);
        }
        Command::ExecuteHold {
            hold_id,
            amount,
            payees: None,
            ..
        } => {
            ensure_active(wallet)?;
            let minor = settlement(wallet, *hold_id, *amount)?;
            let hold = wallet.holds.get_mut(hold_id).ok_or("hold_not_found")?;
            hold.remaining -= minor;
            hold.executed += minor;
            if hold.remaining == 0 {
                hold.status = HoldStatus::Executed;
            }
            let item = wallet.items.entry(hold.currency).or_default();
            item.0 -= minor;
            item.1 -= minor;
            outcome
                .events
                .extend(["WalletBalanceChanged", "EscrowExecuted"]);
            outcome
                .wallet_transactions
                .push(TransactionType::HoldExecute);
        }
        Command::ReleaseHold {
            hold_id, amount, ..
        } => {
            ensure_not_closed(wallet)?;
            let minor = settlement(wallet, *hold_id, *amount)?;
            release(wallet, *hold_id, minor, HoldStatus::Released, outcome)?;
        }
        Command::CancelHold { hold_id, .. } => {
            ensure_not_closed(wallet)?;
            let minor = settlement(wallet, *hold_id, None)?;
            release(wallet, *hold_id, minor, HoldStatus::Cancelled, outcome)?;
        }
        Command::FreezeWallet { reason, .. } => {
            ensure_active(wallet)?;
            text_ok(&Some(reason.clone()))?;
            wallet.status = WalletStatus::Frozen;
            outcome.events.push("WalletFrozen");
        }
        Command::UnfreezeWallet { .. } => {
            ensure_not_closed(wallet)?;
            if wallet.status != WalletStatus::Frozen {
                return Err("wallet_not_frozen");
            }
            wallet.status = WalletStatus::Active;
            outcome.events.push("WalletUnfrozen");
        }
        Command::CloseWallet { .. } => {
            ensure_not_closed(wallet)?;
            let has_money = wallet.items.values().any(|(b, h)| *b != 0 || *h != 0);
            let has_hold = wallet
                .holds
                .values()
                .any(|h| h.status == HoldStatus::Active);
            if has_money || has_hold {
                return Err("wallet_not_empty");
            }
            wallet.status = WalletStatus::Closed;
            outcome.events.push("WalletClosed");
        }
        Command::CreateWallet { .. }
        | Command::Transfer { .. }
        | Command::ReverseTransaction { .. }
        | Command::ExecuteHold {
            payees: Some(_), ..
        }
        | Command::CreatePointAccount { .. }
        | Command::EarnPoints { .. }
        | Command::SpendPoints { .. }
        | Command::AdjustPoints { .. }
        | Command::ConfirmPendingPoints { .. }
        | Command::CancelPendingPoints { .. } => return Err("internal_error"),
    }
    Ok(())
}

fn release(
    wallet: &mut ModelWallet,
    hold_id: Uuid,
    minor: i128,
    final_status: HoldStatus,
    outcome: &mut Outcome,
) -> Expected<()> {
    let hold = wallet.holds.get_mut(&hold_id).ok_or("hold_not_found")?;
    hold.remaining -= minor;
    hold.released += minor;
    if hold.remaining == 0 {
        hold.status = final_status;
    }
    wallet.items.entry(hold.currency).or_default().1 -= minor;
    outcome.events.push("EscrowReleased");
    outcome
        .wallet_transactions
        .push(TransactionType::HoldRelease);
    Ok(())
}

fn apply_points(
    points: &mut ModelPoints,
    command: &Command,
    now: DateTime<Utc>,
    outcome: &mut Outcome,
) -> Expected<()> {
    match command {
        Command::EarnPoints {
            points: earned,
            source,
            description,
            expires_at,
            pending,
            ..
        } => {
            let earned = valid_points(*earned)?;
            text_ok(&Some(source.clone()))?;
            text_ok(description)?;
            if expires_at.is_some_and(|at| at <= now) {
                return Err("validation_error");
            }
            if points.available() + points.pending() + earned > POINTS_BALANCE_MAX {
                return Err("balance_limit_exceeded");
            }
            if !pending {
                points.lifetime += earned;
            }
            outcome.new_lot = Some(ModelLot {
                id: Uuid::nil(),
                points: earned,
                remaining: earned,
                pending: *pending,
                alive: true,
                expires_at: *expires_at,
                earned_at: now,
            });
            outcome.events.push("PointsEarned");
            outcome.point_transactions.push(if *pending {
                PointTransactionType::EarnPending
            } else {
                PointTransactionType::Earn
            });
        }
        Command::SpendPoints {
            points: spent,
            source,
            description,
            ..
        } => {
            let spent = valid_points(*spent)?;
            text_ok(&Some(source.clone()))?;
            text_ok(description)?;
            if points.available() < spent {
                return Err("insufficient_points");
            }
            points.consume(spent);
            outcome.events.push("PointsSpent");
            outcome.point_transactions.push(PointTransactionType::Spend);
        }
        Command::AdjustPoints {
            delta,
            source,
            description,
            ..
        } => {
            valid_points(delta.checked_abs().unwrap_or(i64::MAX))?;
            text_ok(&Some(source.clone()))?;
            text_ok(description)?;
            if *delta > 0 {
                if points.available() + points.pending() + delta > POINTS_BALANCE_MAX {
                    return Err("balance_limit_exceeded");
                }
                points.lifetime += delta;
                outcome.new_lot = Some(ModelLot {
                    id: Uuid::nil(),
                    points: *delta,
                    remaining: *delta,
                    pending: false,
                    alive: true,
                    expires_at: None,
                    earned_at: now,
                });
            } else {
                if points.available() < -delta {
                    return Err("insufficient_points");
                }
                points.consume(-delta);
            }
            outcome.events.push("PointsAdjusted");
            outcome
                .point_transactions
                .push(PointTransactionType::Adjust);
        }
        Command::ConfirmPendingPoints { lot_id, .. }
        | Command::CancelPendingPoints { lot_id, .. } => {
            let lot = points
                .lots
                .iter_mut()
                .find(|l| l.id == *lot_id)
                .ok_or("lot_not_found")?;
            if !(lot.alive && lot.pending) {
                return Err("lot_not_pending");
            }
            if matches!(command, Command::ConfirmPendingPoints { .. }) {
                lot.pending = false;
                points.lifetime += lot.points;
                outcome.events.push("PendingPointsConfirmed");
                outcome
                    .point_transactions
                    .push(PointTransactionType::PendingConfirmed);
            } else {
                lot.alive = false;
                lot.remaining = 0;
                outcome.events.push("PendingPointsCancelled");
                outcome
                    .point_transactions
                    .push(PointTransactionType::PendingCancelled);
            }
        }
        Command::CreateWallet { .. }
        | Command::Deposit { .. }
        | Command::Withdraw { .. }
        | Command::Exchange { .. }
        | Command::CreateHold { .. }
        | Command::ExecuteHold { .. }
        | Command::ReleaseHold { .. }
        | Command::CancelHold { .. }
        | Command::FreezeWallet { .. }
        | Command::UnfreezeWallet { .. }
        | Command::CloseWallet { .. }
        | Command::Transfer { .. }
        | Command::ReverseTransaction { .. }
        | Command::CreatePointAccount { .. } => return Err("internal_error"),
    }
    Ok(())
}

// ---- the driver ----------------------------------------------------------

/// A wallet with 1,000.00 USD (100.00 of it held) and 5,000,000 VND, a
/// point account with 500 points, 30 more expiring in an hour and 50 pending
/// for three days, and the two peers' wallets, one with 500.00 USD, as the
/// first steps of a run.
pub fn prologue() -> Vec<Step> {
    let command = |op| Step::Command { op, key: None };
    let earn = |points, life, pending| {
        command(Op::Earn {
            points: Points::Small(points),
            life,
            pending,
        })
    };
    vec![
        command(Op::CreateWallet { currency: None }),
        command(Op::Deposit {
            amount: Amount::Big(100_000),
            currency: Cur::Usd,
            long_text: false,
        }),
        command(Op::Deposit {
            amount: Amount::Big(5_000_000),
            currency: Cur::Vnd,
            long_text: false,
        }),
        command(Op::Hold {
            amount: Amount::Units(100),
            currency: Cur::Usd,
            life: HoldLife::Default,
        }),
        command(Op::CreatePointAccount),
        earn(500, LotLife::Never, false),
        earn(30, LotLife::Minutes(60), false),
        earn(50, LotLife::Days(3), true),
        command(Op::Between(Between::Peer {
            peer: 0,
            op: PeerOp::Create,
        })),
        command(Op::Between(Between::Peer {
            peer: 0,
            op: PeerOp::Deposit {
                amount: Amount::Big(50_000),
                currency: Cur::Usd,
            },
        })),
        command(Op::Between(Between::Peer {
            peer: 1,
            op: PeerOp::Create,
        })),
    ]
}

/// Adds a finished run's outcomes to `seen`.
pub fn tally(seen: &mut BTreeMap<String, usize>, driver: Driver) {
    for (what, count) in driver.outcomes {
        *seen.entry(what).or_insert(0) += count;
    }
}

/// Fails unless every outcome of `wanted` was seen.
pub fn assert_reached(seen: &BTreeMap<String, usize>, wanted: &[&str]) {
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|what| !seen.contains_key(*what))
        .collect();
    assert!(
        missing.is_empty(),
        "never reached {missing:?}; reached {seen:?}"
    );
}

/// Runs steps through the service and the model side by side.
pub struct Driver {
    pub harness: Harness,
    pub model: Model,
    /// Commands sent so far, with their keys, for [`Step::Repeat`].
    history: Vec<(Command, Option<String>)>,
    /// How often each command ended how (`"Deposit ok"`, `"Withdraw
    /// insufficient_funds"`, `"Cancel replayed"`, `"hold expired"`...), to
    /// tell that runs reach deep states.
    pub outcomes: BTreeMap<String, usize>,
}

impl Default for Driver {
    fn default() -> Self {
        Self::new()
    }
}

impl Driver {
    pub fn new() -> Self {
        let harness = Harness::new();
        let model = Model::new(harness.now());
        Driver {
            harness,
            model,
            history: Vec::new(),
            outcomes: BTreeMap::new(),
        }
    }

    /// Runs every step, checking after each one.
    /// The error names the step and what went wrong.
    pub fn run(&mut self, steps: &[Step]) -> Result<(), String> {
        for (index, step) in steps.iter().enumerate() {
            self.step(step)
                .map_err(|problem| format!("step {index} {step:?}: {problem}"))?;
        }
        Ok(())
    }

    /// Decodes raw bytes into steps and runs them: the fuzz body. Unless the
    /// first byte is odd, the run starts from a funded wallet and point
    /// account ([`prologue`]), so short inputs reach deep states.
    pub fn run_bytes(bytes: &[u8]) -> Result<(), String> {
        let mut driver = Driver::new();
        driver.run_decoded(bytes)?;
        Ok(())
    }

    /// [`Driver::run_bytes`] on this driver, which it returns for inspection.
    pub fn run_decoded(&mut self, bytes: &[u8]) -> Result<(), String> {
        let mut steps = match bytes.first() {
            Some(first) if first % 2 == 1 => Vec::new(),
            _ => prologue(),
        };
        let mut input = arbitrary::Unstructured::new(bytes.get(1..).unwrap_or(&[]));
        while steps.len() < STEPS_MAX && !input.is_empty() {
            match Step::arbitrary(&mut input) {
                Ok(step) => steps.push(step),
                Err(_) => break,
            }
            if input.is_empty() {
                break;
            }
        }
        self.run(&steps)
    }

    pub fn step(&mut self, step: &Step) -> Result<(), String> {
        match step {
            Step::Command { op, key } => {
                let command = self.resolve(op);
                let key = key.map(|k| format!("key-{}", k % KEY_COUNT));
                self.command(command, key)
            }
            Step::Repeat { back } => {
                if self.history.is_empty() {
                    return Ok(());
                }
                let index = self.history.len() - 1 - usize::from(*back) % self.history.len();
                let (command, key) = self.history[index].clone();
                self.command(command, key)
            }
            Step::Advance(jump) => {
                self.harness.advance(jump.duration());
                self.model.now = self.harness.now();
                self.world().check()
            }
            Step::Sweep => self.sweep(),
        }
    }

    /// Turns an op into a command: picks holds and lots, converts amounts,
    /// sets times from the clock.
    pub fn resolve(&self, op: &Op) -> Command {
        let user_id = USER;
        let now = self.model.now;
        let long_text = |long: bool| long.then(|| "x".repeat(TEXT_MAX + 1));
        let wallet = self.model.wallet.as_ref();
        // An amount of a currency, relative to what the wallet has of it.
        let money = |amount: Amount, currency: CurrencyCode| {
            let (balance, held) = wallet
                .and_then(|w| w.items.get(&currency))
                .copied()
                .unwrap_or_default();
            amount.decimal(currency, balance, balance - held)
        };
        // An amount to settle, relative to what the hold has left.
        let settle = |amount: Amount, hold_id: Uuid| {
            let hold = wallet.and_then(|w| w.holds.get(&hold_id));
            let currency = hold.map_or(code("USD"), |h| h.currency);
            let remaining = hold.map_or(0, |h| h.remaining);
            amount.decimal(currency, remaining, remaining)
        };
        match *op {
            Op::CreateWallet { currency } => Command::CreateWallet {
                user_id,
                default_currency: currency.map(Cur::code),
            },
            Op::Deposit {
                amount,
                currency,
                long_text: long,
            } => Command::Deposit {
                user_id,
                amount: money(amount, currency.code()),
                currency: currency.code(),
                description: long_text(long),
                reference: Some("ref".into()),
            },
            Op::Withdraw {
                amount,
                currency,
                long_text: long,
            } => Command::Withdraw {
                user_id,
                amount: money(amount, currency.code()),
                currency: currency.code(),
                description: None,
                reference: long_text(long),
            },
            Op::Exchange { amount, from, to } => Command::Exchange {
                user_id,
                amount: money(amount, from.code()),
                from_currency: from.code(),
                to_currency: to.code(),
            },
            Op::Hold {
                amount,
                currency,
                life,
            } => Command::CreateHold {
                user_id,
                amount: money(amount, currency.code()),
                currency: currency.code(),
                reference_type: "order".into(),
                reference_id: Uuid::from_u128(7),
                description: None,
                expires_at: match life {
                    HoldLife::Default => None,
                    HoldLife::Minutes(n) => Some(now + Duration::minutes(i64::from(n))),
                    HoldLife::Hours(n) => Some(now + Duration::hours(i64::from(n))),
                    HoldLife::Past => Some(now - Duration::seconds(1)),
                    HoldLife::Max => Some(now + Duration::days(30)),
                    HoldLife::TooLong => Some(now + Duration::days(30) + Duration::seconds(1)),
                },
            },
            Op::Execute { hold, amount } => {
                let hold_id = pick(&self.model.hold_ids, hold);
                Command::ExecuteHold {
                    user_id,
                    hold_id,
                    amount: amount.map(|a| settle(a, hold_id)),
                    reference: None,
                    payees: None,
                }
            }
            Op::Release { hold, amount } => {
                let hold_id = pick(&self.model.hold_ids, hold);
                Command::ReleaseHold {
                    user_id,
                    hold_id,
                    amount: amount.map(|a| settle(a, hold_id)),
                }
            }
            Op::Cancel { hold } => Command::CancelHold {
                user_id,
                hold_id: pick(&self.model.hold_ids, hold),
            },
            Op::Freeze { blank_reason } => Command::FreezeWallet {
                user_id,
                reason: if blank_reason { "  " } else { "review" }.into(),
            },
            Op::Unfreeze => Command::UnfreezeWallet { user_id },
            Op::Close => Command::CloseWallet { user_id },
            Op::CreatePointAccount => Command::CreatePointAccount { user_id },
            Op::Earn {
                points,
                life,
                pending,
            } => Command::EarnPoints {
                user_id,
                points: points.value(false),
                source: "shop".into(),
                description: None,
                expires_at: match life {
                    LotLife::Never => None,
                    LotLife::Minutes(n) => Some(now + Duration::minutes(i64::from(n))),
                    LotLife::Days(n) => Some(now + Duration::days(i64::from(n % 60))),
                    LotLife::Past => Some(now - Duration::seconds(1)),
                },
                pending,
            },
            Op::Spend { points } => Command::SpendPoints {
                user_id,
                points: points.value(false),
                source: "shop".into(),
                description: None,
            },
            Op::Adjust { points, negative } => Command::AdjustPoints {
                user_id,
                delta: points.value(negative),
                source: "admin".into(),
                description: Some("correction".into()),
            },
            Op::Confirm { lot } => Command::ConfirmPendingPoints {
                user_id,
                lot_id: pick(&self.model.lot_ids, lot),
            },
            Op::CancelPending { lot } => Command::CancelPendingPoints {
                user_id,
                lot_id: pick(&self.model.lot_ids, lot),
            },
            Op::Between(ref between) => self.resolve_between(between),
        }
    }

    /// An amount of a currency, relative to what `user_id`'s wallet has.
    fn money_of(&self, user_id: Uuid, amount: Amount, currency: Cur) -> Decimal {
        let (balance, held) = self
            .model
            .wallet_ref(user_id)
            .and_then(|w| w.items.get(&currency.code()))
            .copied()
            .unwrap_or_default();
        amount.decimal(currency.code(), balance, balance - held)
    }

    /// An amount to settle, relative to what a hold of [`USER`] has left.
    fn settle(&self, amount: Amount, hold_id: Uuid) -> Decimal {
        let hold = self
            .model
            .wallet
            .as_ref()
            .and_then(|w| w.holds.get(&hold_id));
        let currency = hold.map_or(code("USD"), |h| h.currency);
        let remaining = hold.map_or(0, |h| h.remaining);
        amount.decimal(currency, remaining, remaining)
    }

    /// Turns a step between wallets into a command.
    fn resolve_between(&self, between: &Between) -> Command {
        let user_id = USER;
        match *between {
            Between::Peer { peer, op } => {
                self.resolve_peer(PEERS[usize::from(peer) % PEERS.len()], op)
            }
            Between::TransferTo {
                to,
                amount,
                currency,
                long_text: long,
            } => Command::Transfer {
                user_id,
                to_user_id: party(to),
                amount: self.money_of(user_id, amount, currency),
                currency: currency.code(),
                description: long.then(|| "x".repeat(TEXT_MAX + 1)),
                reference: Some("invoice".into()),
            },
            Between::TransferFrom {
                from,
                amount,
                currency,
            } => {
                let payer = party(from);
                Command::Transfer {
                    user_id: payer,
                    to_user_id: user_id,
                    amount: self.money_of(payer, amount, currency),
                    currency: currency.code(),
                    description: None,
                    reference: None,
                }
            }
            Between::PayOut {
                hold,
                ref payees,
                total,
            } => {
                let hold_id = pick(&self.model.hold_ids, hold);
                Command::ExecuteHold {
                    user_id,
                    hold_id,
                    amount: total.map(|a| self.settle(a, hold_id)),
                    reference: None,
                    payees: Some(
                        payees
                            .iter()
                            .map(|(to, amount)| Payee {
                                user_id: party(*to),
                                amount: self.settle(*amount, hold_id),
                            })
                            .collect(),
                    ),
                }
            }
            Between::Reverse {
                target,
                amount,
                caller,
                blank_reason,
            } => {
                let targets = self.model.reversal_targets();
                let index = usize::from(target) % (targets.len() + 1);
                let (owner, transaction_id, unit) = targets.get(index).copied().unwrap_or((
                    user_id,
                    Uuid::from_u128(0xbeef_0000 + u128::from(target)),
                    None,
                ));
                let (currency, left) =
                    unit.map_or((code("USD"), 0), |r| (r.currency, r.amount - r.reversed));
                Command::ReverseTransaction {
                    user_id: caller.map_or(owner, party),
                    transaction_id,
                    amount: amount.map(|a| a.decimal(currency, left, left)),
                    reason: if blank_reason { " " } else { "refund" }.into(),
                }
            }
        }
    }

    /// A command on a peer's wallet; amounts are relative to what the
    /// peer has.
    fn resolve_peer(&self, peer: Uuid, op: PeerOp) -> Command {
        match op {
            PeerOp::Create => Command::CreateWallet {
                user_id: peer,
                default_currency: None,
            },
            PeerOp::Deposit { amount, currency } => Command::Deposit {
                user_id: peer,
                amount: self.money_of(peer, amount, currency),
                currency: currency.code(),
                description: None,
                reference: None,
            },
            PeerOp::Freeze => Command::FreezeWallet {
                user_id: peer,
                reason: "review".into(),
            },
            PeerOp::Unfreeze => Command::UnfreezeWallet { user_id: peer },
            PeerOp::Close => Command::CloseWallet { user_id: peer },
        }
    }

    fn command(&mut self, command: Command, key: Option<String>) -> Result<(), String> {
        self.history.push((command.clone(), key.clone()));
        let prediction = self.model.predict(&command, key.as_deref());
        let before = self.world();
        let result = match &key {
            Some(k) => self.harness.run_keyed(command.clone(), k),
            None => self.harness.run(command.clone()),
        };
        let after = self.world();
        after.check()?;
        let outcome = match (&prediction, &result) {
            (Prediction::Fails(expected), _) => expected.to_string(),
            (Prediction::Replays(_), _) => "replayed".into(),
            (Prediction::Succeeds(_, outcome), _) => {
                let expired = outcome
                    .events
                    .iter()
                    .filter(|e| **e == "EscrowReleased")
                    .count();
                let lots = outcome
                    .events
                    .iter()
                    .filter(|e| **e == "PointsExpired")
                    .count();
                self.count("hold expired", expired);
                self.count("lot expired", lots);
                "ok".into()
            }
        };
        // A payout is told apart from a plain execution.
        let name = match &command {
            Command::ExecuteHold {
                payees: Some(_), ..
            } => "PayOut",
            other => other.name(),
        };
        self.count(&format!("{name} {outcome}"), 1);
        match (prediction, result) {
            (Prediction::Fails(expected), Err(error)) => {
                if error.code() != expected {
                    return Err(format!("expected {expected}, got {error:?}"));
                }
                unchanged(&before, &after)
            }
            (Prediction::Replays(output), Ok(applied)) => {
                if !applied.replayed || applied.output != *output {
                    return Err(format!("expected a replay of {output:?}, got {applied:?}"));
                }
                unchanged(&before, &after)
            }
            (Prediction::Succeeds(next, outcome), Ok(applied)) => {
                self.accept(*next, *outcome, &command, key, applied, &before, &after)
            }
            (prediction, result) => Err(format!(
                "the model predicted {prediction:?}, the service answered {result:?}"
            )),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn accept(
        &mut self,
        mut next: Model,
        outcome: Outcome,
        command: &Command,
        key: Option<String>,
        applied: Applied,
        before: &World,
        after: &World,
    ) -> Result<(), String> {
        if applied.replayed {
            return Err("a first command came back as a replay".into());
        }
        check_appended(before, after, &outcome)?;
        next.learn(&appended_rows(before, after));
        if let Some(hold) = outcome.new_hold {
            let CommandOutput::Hold { hold: created } = &applied.output else {
                return Err(format!("a hold command answered {:?}", applied.output));
            };
            next.hold_ids.push(created.id);
            if let Some(wallet) = next.wallet.as_mut() {
                wallet.holds.insert(created.id, hold);
            }
        }
        if let Some(mut lot) = outcome.new_lot {
            let CommandOutput::Points {
                lot_id: Some(lot_id),
                ..
            } = &applied.output
            else {
                return Err(format!("an earn answered {:?}", applied.output));
            };
            lot.id = *lot_id;
            next.lot_ids.push(*lot_id);
            if let Some(points) = next.points.as_mut() {
                points.lots.push(lot);
            }
        }
        if let Some(key) = key {
            next.keys
                .insert((command.user_id(), key), (command.clone(), applied.output));
        }
        self.model = next;
        compare(&self.model, after)
    }

    fn count(&mut self, what: &str, times: usize) {
        if times > 0 {
            *self.outcomes.entry(what.to_string()).or_default() += times;
        }
    }

    fn sweep(&mut self) -> Result<(), String> {
        let mut next = self.model.clone();
        let mut outcome = Outcome::default();
        let (wallets, accounts) = next.sweep(&mut outcome);
        let before = self.world();
        let report = futures::executor::block_on(self.harness.service.sweep_expired(100))
            .map_err(|e| format!("sweep failed: {e:?}"))?;
        let after = self.world();
        after.check()?;
        if (report.wallets, report.point_accounts, report.failures) != (wallets, accounts, 0) {
            return Err(format!(
                "sweep report {report:?}, expected {wallets} wallets and {accounts} accounts"
            ));
        }
        check_appended(&before, &after, &outcome)?;
        self.count("sweep swept", wallets + accounts);
        self.model = next;
        compare(&self.model, &after)
    }
}

impl Driver {
    /// Everything stored for [`USER`] and the peers.
    pub fn world(&self) -> World {
        World {
            user: self.harness.snapshot(USER),
            peers: PEERS
                .iter()
                .map(|peer| self.harness.store.stored_wallet(*peer))
                .collect(),
        }
    }
}

/// The stored state of [`USER`] (with the outbox) and of each of [`PEERS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct World {
    pub user: Snapshot,
    pub peers: Vec<Option<StoredWallet>>,
}

impl World {
    /// Every invariant on each wallet, and money conserved across them
    /// (invariant 5: the sum of the balances is what crossed the ledger's
    /// edge, and each transfer's legs add up to zero).
    pub fn check(&self) -> Result<(), String> {
        self.user.check()?;
        let stored: Vec<&StoredWallet> = self
            .user
            .wallet
            .iter()
            .chain(self.peers.iter().flatten())
            .collect();
        for peer in self.peers.iter().flatten() {
            invariants::check_wallet_aggregate(&peer.wallet, &peer.holds, &peer.transactions)
                .map_err(|violation| format!("peer wallet: {violation}"))?;
        }
        let views: Vec<WalletView> = stored.iter().map(|s| s.wallet.view()).collect();
        invariants::check_ledger_conserved(
            views
                .iter()
                .zip(&stored)
                .map(|(view, s)| (view, s.transactions.as_slice())),
        )
        .map_err(|violation| format!("ledger: {violation}"))
    }
}

/// The rows each wallet's log gained, with the wallet's user.
fn appended_rows(before: &World, after: &World) -> Vec<(Uuid, WalletTransaction)> {
    let logs = |w: &World| {
        let user = w
            .user
            .wallet
            .as_ref()
            .map(|s| (USER, s.transactions.clone()));
        let peers = PEERS
            .iter()
            .zip(&w.peers)
            .filter_map(|(peer, s)| s.as_ref().map(|s| (*peer, s.transactions.clone())));
        user.into_iter()
            .chain(peers)
            .collect::<BTreeMap<Uuid, Vec<WalletTransaction>>>()
    };
    let (old, new) = (logs(before), logs(after));
    new.into_iter()
        .flat_map(|(user, log)| {
            let seen = old.get(&user).map_or(0, Vec::len).min(log.len());
            log[seen..]
                .iter()
                .map(|row| (user, row.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The stored balance and held amount of each currency of a wallet.
fn items_of(view: &WalletView) -> BTreeMap<CurrencyCode, (Decimal, Decimal)> {
    view.balances
        .iter()
        .map(|i| (i.currency, (i.balance, i.held)))
        .collect()
}

/// The model's balance and held amount of each currency of a wallet.
fn modelled_items(wallet: &ModelWallet) -> BTreeMap<CurrencyCode, (Decimal, Decimal)> {
    wallet
        .items
        .iter()
        .map(|(c, (b, h))| (*c, (to_decimal(*b, *c), to_decimal(*h, *c))))
        .collect()
}

/// A failed command or a replay left everything as it was.
fn unchanged(before: &World, after: &World) -> Result<(), String> {
    if before == after {
        Ok(())
    } else {
        Err(format!(
            "state changed although nothing should have:\nbefore {before:?}\nafter {after:?}"
        ))
    }
}

/// The transactions and events appended are the predicted ones, and every
/// new event carries its aggregate's new version.
fn check_appended(before: &World, after: &World, outcome: &Outcome) -> Result<(), String> {
    for (index, peer) in PEERS.iter().enumerate() {
        let log = |w: &World| {
            w.peers[index]
                .as_ref()
                .map_or(Vec::new(), |s| s.transactions.clone())
        };
        let (old, new) = (log(before), log(after));
        let mut appended: Vec<TransactionType> = new[old.len().min(new.len())..]
            .iter()
            .map(|t| t.transaction_type)
            .collect();
        let mut expected = outcome
            .peer_transactions
            .get(peer)
            .cloned()
            .unwrap_or_default();
        appended.sort_unstable();
        expected.sort_unstable();
        if appended != expected {
            return Err(format!(
                "peer {index} transactions {appended:?}, expected {expected:?}"
            ));
        }
    }
    let (before, peers, after) = (&before.user, &after.peers, &after.user);
    let new_events = &after.events[before.events.len().min(after.events.len())..];
    let mut actual: Vec<&str> = new_events.iter().map(|e| e.event.event_type()).collect();
    let mut expected = outcome.events.clone();
    actual.sort_unstable();
    expected.sort_unstable();
    if actual != expected {
        return Err(format!("events {actual:?}, expected {expected:?}"));
    }
    let wallet_log = |s: &Snapshot| s.wallet.as_ref().map_or(0, |w| w.transactions.len());
    let point_log = |s: &Snapshot| s.points.as_ref().map_or(0, |p| p.transactions.len());
    let mut wallet_types: Vec<TransactionType> = after
        .wallet
        .iter()
        .flat_map(|w| w.transactions[wallet_log(before)..].iter())
        .map(|t| t.transaction_type)
        .collect();
    let mut expected_types = outcome.wallet_transactions.clone();
    wallet_types.sort_unstable();
    expected_types.sort_unstable();
    if wallet_types != expected_types {
        return Err(format!(
            "wallet transactions {wallet_types:?}, expected {expected_types:?}"
        ));
    }
    let mut point_types: Vec<PointTransactionType> = after
        .points
        .iter()
        .flat_map(|p| p.transactions[point_log(before)..].iter())
        .map(|t| t.transaction_type)
        .collect();
    let mut expected_point_types = outcome.point_transactions.clone();
    point_types.sort_unstable();
    expected_point_types.sort_unstable();
    if point_types != expected_point_types {
        return Err(format!(
            "point transactions {point_types:?}, expected {expected_point_types:?}"
        ));
    }
    for stored in new_events {
        let event = &stored.event;
        let peer = peers
            .iter()
            .flatten()
            .find(|p| p.wallet.id() == event.aggregate_id);
        let version = if let Some(peer) = peer {
            Some(peer.wallet.version())
        } else if after
            .wallet
            .as_ref()
            .is_some_and(|w| w.wallet.id() == event.aggregate_id)
        {
            after.wallet.as_ref().map(|w| w.wallet.version())
        } else {
            after.points.as_ref().map(|p| p.account.version())
        };
        if Some(event.aggregate_version) != version {
            return Err(format!(
                "event {} has version {}, the aggregate is at {version:?}",
                event.event_type(),
                event.aggregate_version
            ));
        }
    }
    Ok(())
}

/// The stored state equals the model.
fn compare(model: &Model, world: &World) -> Result<(), String> {
    for (index, peer) in PEERS.iter().enumerate() {
        let stored = world.peers[index].as_ref().map(|s| s.wallet.view());
        let expected = model.peers.get(peer);
        let same = match (expected, &stored) {
            (None, None) => true,
            (Some(expected), Some(view)) => {
                view.status == expected.status && items_of(view) == modelled_items(expected)
            }
            _ => false,
        };
        if !same {
            return Err(format!("peer {index} {stored:?}, expected {expected:?}"));
        }
    }
    let after = &world.user;
    match (&model.wallet, &after.wallet) {
        (None, None) => {}
        (Some(expected), Some(stored)) => {
            let view = stored.wallet.view();
            if view.status != expected.status {
                return Err(format!(
                    "status {:?}, expected {:?}",
                    view.status, expected.status
                ));
            }
            let items = items_of(&view);
            let modelled = modelled_items(expected);
            if items != modelled {
                return Err(format!("balances {items:?}, expected {modelled:?}"));
            }
            for (id, hold) in &expected.holds {
                let stored_hold = stored
                    .holds
                    .iter()
                    .find(|h| h.id == *id)
                    .ok_or_else(|| format!("hold {id} is not stored"))?;
                let c = hold.currency;
                let same = stored_hold.status == hold.status
                    && stored_hold.original_amount == to_decimal(hold.original, c)
                    && stored_hold.remaining_amount == to_decimal(hold.remaining, c)
                    && stored_hold.executed_amount == to_decimal(hold.executed, c)
                    && stored_hold.released_amount == to_decimal(hold.released, c)
                    && stored_hold.expires_at == hold.expires_at;
                if !same {
                    return Err(format!("hold {stored_hold:?}, expected {hold:?}"));
                }
            }
            if stored.holds.len() != expected.holds.len() {
                return Err(format!(
                    "{} holds stored, {} expected",
                    stored.holds.len(),
                    expected.holds.len()
                ));
            }
        }
        (expected, stored) => {
            return Err(format!(
                "wallet {:?}, expected {expected:?}",
                stored.as_ref().map(|s| s.wallet.view())
            ))
        }
    }
    match (&model.points, &after.points) {
        (None, None) => Ok(()),
        (Some(expected), Some(stored)) => {
            let view = stored.account.view();
            let figures = (
                view.available_points,
                view.pending_points,
                view.lifetime_earned,
            );
            let modelled = (expected.available(), expected.pending(), expected.lifetime);
            if figures != modelled {
                return Err(format!(
                    "points (available, pending, lifetime) {figures:?}, expected {modelled:?}"
                ));
            }
            let mut live: Vec<(Uuid, i64, bool)> = stored
                .account
                .lots()
                .map(|l| (l.id, l.remaining, l.state == LotState::Pending))
                .collect();
            let mut modelled_live: Vec<(Uuid, i64, bool)> = expected
                .lots
                .iter()
                .filter(|l| l.alive)
                .map(|l| (l.id, l.remaining, l.pending))
                .collect();
            live.sort_unstable();
            modelled_live.sort_unstable();
            if live != modelled_live {
                return Err(format!("lots {live:?}, expected {modelled_live:?}"));
            }
            Ok(())
        }
        (expected, stored) => Err(format!(
            "point account {:?}, expected {expected:?}",
            stored.as_ref().map(|s| s.account.view())
        )),
    }
}
