//! Commands, their results, idempotency keys and fingerprints, and the one
//! function that applies a command to an aggregate.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::aggregate::Aggregate;
use crate::context::{truncate_to_micros, Ctx, Policy};
use crate::error::WalletError;
use crate::money::{CurrencyCode, Money};
use crate::points::{
    validate_delta, validate_points, EarnRequest, PointAccount, PointAccountView, PointTransaction,
};
use crate::reversal::ReversalRequest;
use crate::transfer::{
    pay_out, transfer, validate_payees, Payee, PayoutRequest, TransferRequest, WalletSet,
};
use crate::wallet::{Exchange, Hold, HoldRequest, Wallet, WalletTransaction, WalletView};

/// The longest idempotency key, in characters.
pub const IDEMPOTENCY_KEY_LENGTH_MAX: usize = 255;

/// A client-chosen key that makes a command safe to retry: 1 to 255
/// printable ASCII characters (space to tilde).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Validates a key.
    pub fn parse(text: &str) -> Result<Self, WalletError> {
        let valid = !text.is_empty()
            && text.len() <= IDEMPOTENCY_KEY_LENGTH_MAX
            && text.bytes().all(|b| (0x20..=0x7e).contains(&b));
        if valid {
            Ok(IdempotencyKey(text.to_owned()))
        } else {
            Err(WalletError::Validation(format!(
                "an idempotency key is 1 to {IDEMPOTENCY_KEY_LENGTH_MAX} printable ASCII characters"
            )))
        }
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = WalletError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        IdempotencyKey::parse(&value)
    }
}

impl From<IdempotencyKey> for String {
    fn from(key: IdempotencyKey) -> Self {
        key.0
    }
}

/// A command's idempotency key with the fingerprint of its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub user_id: Uuid,
    pub key: IdempotencyKey,
    pub fingerprint: String,
}

/// What a store keeps for a key: the fingerprint and the first result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub user_id: Uuid,
    pub key: IdempotencyKey,
    pub fingerprint: String,
    pub output: CommandOutput,
    pub created_at: DateTime<Utc>,
}

impl IdempotencyRecord {
    /// The answer to a repeat of `claim`: the first result when the
    /// fingerprints match, `idempotency_key_reused` when they differ.
    pub fn replay(&self, claim: &Claim) -> Result<CommandOutput, WalletError> {
        if self.fingerprint == claim.fingerprint {
            Ok(self.output.clone())
        } else {
            Err(WalletError::IdempotencyKeyReused)
        }
    }
}

/// Every command that changes state. Each names the user it acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all_fields = "camelCase")]
pub enum Command {
    CreateWallet {
        user_id: Uuid,
        default_currency: Option<CurrencyCode>,
    },
    Deposit {
        user_id: Uuid,
        amount: Decimal,
        currency: CurrencyCode,
        description: Option<String>,
        reference: Option<String>,
    },
    Withdraw {
        user_id: Uuid,
        amount: Decimal,
        currency: CurrencyCode,
        description: Option<String>,
        reference: Option<String>,
    },
    Exchange {
        user_id: Uuid,
        amount: Decimal,
        from_currency: CurrencyCode,
        to_currency: CurrencyCode,
    },
    CreateHold {
        user_id: Uuid,
        amount: Decimal,
        currency: CurrencyCode,
        reference_type: String,
        reference_id: Uuid,
        description: Option<String>,
        expires_at: Option<DateTime<Utc>>,
    },
    /// Without `payees`, pays out of the ledger; with them, to their
    /// wallets in one unit of work.
    ExecuteHold {
        user_id: Uuid,
        hold_id: Uuid,
        amount: Option<Decimal>,
        reference: Option<String>,
        /// Left out of the serialised command when absent, so that the
        /// fingerprint of an execution without payees is what it was
        /// before payouts existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payees: Option<Vec<Payee>>,
    },
    ReleaseHold {
        user_id: Uuid,
        hold_id: Uuid,
        amount: Option<Decimal>,
    },
    CancelHold {
        user_id: Uuid,
        hold_id: Uuid,
    },
    FreezeWallet {
        user_id: Uuid,
        reason: String,
    },
    UnfreezeWallet {
        user_id: Uuid,
    },
    CloseWallet {
        user_id: Uuid,
    },
    /// Moves money from `user_id`'s wallet (the payer, whose idempotency
    /// key it is) to `to_user_id`'s.
    Transfer {
        user_id: Uuid,
        to_user_id: Uuid,
        amount: Decimal,
        currency: CurrencyCode,
        description: Option<String>,
        reference: Option<String>,
    },
    /// Reverses all (without `amount`) or part of a transaction of
    /// `user_id`'s wallet, whose idempotency key it is.
    ReverseTransaction {
        user_id: Uuid,
        transaction_id: Uuid,
        amount: Option<Decimal>,
        reason: String,
    },
    CreatePointAccount {
        user_id: Uuid,
    },
    EarnPoints {
        user_id: Uuid,
        points: i64,
        source: String,
        description: Option<String>,
        expires_at: Option<DateTime<Utc>>,
        pending: bool,
    },
    SpendPoints {
        user_id: Uuid,
        points: i64,
        source: String,
        description: Option<String>,
    },
    AdjustPoints {
        user_id: Uuid,
        delta: i64,
        source: String,
        description: Option<String>,
    },
    ConfirmPendingPoints {
        user_id: Uuid,
        lot_id: Uuid,
    },
    CancelPendingPoints {
        user_id: Uuid,
        lot_id: Uuid,
    },
}

impl Command {
    /// The user whose wallet or point account the command acts on.
    pub fn user_id(&self) -> Uuid {
        match self {
            Command::CreateWallet { user_id, .. }
            | Command::Deposit { user_id, .. }
            | Command::Withdraw { user_id, .. }
            | Command::Exchange { user_id, .. }
            | Command::CreateHold { user_id, .. }
            | Command::ExecuteHold { user_id, .. }
            | Command::ReleaseHold { user_id, .. }
            | Command::CancelHold { user_id, .. }
            | Command::FreezeWallet { user_id, .. }
            | Command::UnfreezeWallet { user_id }
            | Command::CloseWallet { user_id }
            | Command::Transfer { user_id, .. }
            | Command::ReverseTransaction { user_id, .. }
            | Command::CreatePointAccount { user_id }
            | Command::EarnPoints { user_id, .. }
            | Command::SpendPoints { user_id, .. }
            | Command::AdjustPoints { user_id, .. }
            | Command::ConfirmPendingPoints { user_id, .. }
            | Command::CancelPendingPoints { user_id, .. } => *user_id,
        }
    }

    /// The command's name, such as `Deposit`.
    pub fn name(&self) -> &'static str {
        match self {
            Command::CreateWallet { .. } => "CreateWallet",
            Command::Deposit { .. } => "Deposit",
            Command::Withdraw { .. } => "Withdraw",
            Command::Exchange { .. } => "Exchange",
            Command::CreateHold { .. } => "CreateHold",
            Command::ExecuteHold { .. } => "ExecuteHold",
            Command::ReleaseHold { .. } => "ReleaseHold",
            Command::CancelHold { .. } => "CancelHold",
            Command::FreezeWallet { .. } => "FreezeWallet",
            Command::UnfreezeWallet { .. } => "UnfreezeWallet",
            Command::CloseWallet { .. } => "CloseWallet",
            Command::Transfer { .. } => "Transfer",
            Command::ReverseTransaction { .. } => "ReverseTransaction",
            Command::CreatePointAccount { .. } => "CreatePointAccount",
            Command::EarnPoints { .. } => "EarnPoints",
            Command::SpendPoints { .. } => "SpendPoints",
            Command::AdjustPoints { .. } => "AdjustPoints",
            Command::ConfirmPendingPoints { .. } => "ConfirmPendingPoints",
            Command::CancelPendingPoints { .. } => "CancelPendingPoints",
        }
    }

    /// The fingerprint of the command: its kind, target ids and parameters
    /// as parsed values. Amounts are normalised (`10`, `10.0` and `10.00`
    /// are one amount) and times truncated to the stored precision.
    pub fn fingerprint(&self) -> String {
        let mut canonical = self.clone();
        let normalise = |amount: &mut Decimal| *amount = amount.normalize();
        let truncate = |at: &mut Option<DateTime<Utc>>| *at = at.map(truncate_to_micros);
        match &mut canonical {
            Command::Deposit { amount, .. }
            | Command::Withdraw { amount, .. }
            | Command::Exchange { amount, .. }
            | Command::Transfer { amount, .. } => normalise(amount),
            Command::CreateHold {
                amount, expires_at, ..
            } => {
                normalise(amount);
                truncate(expires_at);
            }
            Command::ExecuteHold { amount, payees, .. } => {
                if let Some(amount) = amount {
                    normalise(amount);
                }
                // The payees are a set: their order is not a parameter.
                if let Some(payees) = payees {
                    payees.iter_mut().for_each(|p| normalise(&mut p.amount));
                    payees.sort_by_key(|p| p.user_id);
                }
            }
            Command::ReleaseHold { amount, .. } | Command::ReverseTransaction { amount, .. } => {
                if let Some(amount) = amount {
                    normalise(amount);
                }
            }
            Command::EarnPoints { expires_at, .. } => truncate(expires_at),
            // Nothing else in these commands has more than one spelling.
            Command::CreateWallet { .. }
            | Command::CancelHold { .. }
            | Command::FreezeWallet { .. }
            | Command::UnfreezeWallet { .. }
            | Command::CloseWallet { .. }
            | Command::CreatePointAccount { .. }
            | Command::SpendPoints { .. }
            | Command::AdjustPoints { .. }
            | Command::ConfirmPendingPoints { .. }
            | Command::CancelPendingPoints { .. } => {}
        }
        // Serialising plain data into a string cannot fail.
        serde_json::to_string(&canonical).unwrap_or_else(|_| self.name().to_owned())
    }
}

/// The result of a successful command: what a replay returns again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all_fields = "camelCase")]
#[allow(clippy::large_enum_variant)]
pub enum CommandOutput {
    /// Create, freeze, unfreeze, close.
    Wallet { wallet: WalletView },
    /// Deposit, withdraw.
    Transaction {
        wallet: WalletView,
        transaction: WalletTransaction,
    },
    Exchange {
        wallet: WalletView,
        exchange: Exchange,
    },
    /// Create, execute (with or without payees), release, cancel a hold.
    Hold { hold: Hold },
    /// A transfer: the payer's wallet and its `TransferOut` leg.
    Transfer {
        wallet: WalletView,
        transaction: WalletTransaction,
        transfer_id: Uuid,
    },
    /// A reversal: the request's wallet, the `Reversal` rows (that
    /// wallet's first) and the original's reversed amount after it.
    Reversal {
        wallet: WalletView,
        transactions: Vec<WalletTransaction>,
        reversed_amount: Decimal,
    },
    /// Create a point account.
    PointAccount { account: PointAccountView },
    /// Earn, spend, adjust, confirm, cancel pending.
    Points {
        account: PointAccountView,
        transaction: PointTransaction,
        lot_id: Option<Uuid>,
    },
}

/// A command whose parameters passed every check that needs no state: its
/// currencies are in the table, its amounts are valid [`Money`], its points
/// are within bounds. [`Command::validate`] is the one place that checks
/// them, so the service's check before any store work and the application
/// inside the unit of work cannot drift apart. What depends on state (the
/// status table, balances, a hold's currency, times relative to `now`, text
/// limits, which come after the status in the order of errors) is checked
/// by the aggregate.
#[derive(Debug, Clone)]
pub enum ValidCommand {
    /// Creates the user's wallet; without a currency, the policy's default.
    CreateWallet {
        user_id: Uuid,
        default_currency: Option<CurrencyCode>,
    },
    /// Changes the user's wallet.
    Wallet(WalletCommand),
    /// Moves money from the user's wallet to others, in one unit of work
    /// over all of them.
    Wallets(WalletsCommand),
    /// Reverses a transaction: a unit of work over the wallets its legs
    /// are on, which the service finds first.
    Reversal(ReversalRequest),
    /// Creates the user's point account.
    CreatePointAccount { user_id: Uuid },
    /// Changes the user's point account.
    PointAccount(PointCommand),
}

/// A validated command on an existing wallet.
#[derive(Debug, Clone)]
pub enum WalletCommand {
    Deposit {
        money: Money,
        description: Option<String>,
        reference: Option<String>,
    },
    Withdraw {
        money: Money,
        description: Option<String>,
        reference: Option<String>,
    },
    Exchange {
        money: Money,
        to_currency: CurrencyCode,
    },
    CreateHold(HoldRequest),
    /// The amount is checked against the hold's currency once it is loaded.
    ExecuteHold {
        hold_id: Uuid,
        amount: Option<Decimal>,
        reference: Option<String>,
    },
    /// The amount is checked against the hold's currency once it is loaded.
    ReleaseHold {
        hold_id: Uuid,
        amount: Option<Decimal>,
    },
    CancelHold {
        hold_id: Uuid,
    },
    Freeze {
        reason: String,
    },
    Unfreeze,
    Close,
}

/// A validated command over several wallets: the payer's and its payees'.
#[derive(Debug, Clone)]
pub enum WalletsCommand {
    Transfer(TransferRequest),
    /// The payees' amounts are checked against the hold's currency once it
    /// is loaded.
    PayOutHold(PayoutRequest),
}

/// A validated command on an existing point account.
#[derive(Debug, Clone)]
pub enum PointCommand {
    Earn(EarnRequest),
    Spend {
        points: i64,
        source: String,
        description: Option<String>,
    },
    Adjust {
        delta: i64,
        source: String,
        description: Option<String>,
    },
    ConfirmPending {
        lot_id: Uuid,
    },
    CancelPending {
        lot_id: Uuid,
    },
}

impl Command {
    /// Checks the parameters that need no state, in the order the errors
    /// are reported (for an exchange: both currencies, then the same
    /// currency, then the amount), and returns them parsed.
    pub fn validate(&self, policy: &Policy) -> Result<ValidCommand, WalletError> {
        let currencies = &policy.currencies;
        let wallet = |command| Ok(ValidCommand::Wallet(command));
        let points = |command| Ok(ValidCommand::PointAccount(command));
        match self {
            Command::CreateWallet {
                user_id,
                default_currency,
            } => {
                if let Some(code) = default_currency {
                    currencies.get(*code)?;
                }
                Ok(ValidCommand::CreateWallet {
                    user_id: *user_id,
                    default_currency: *default_currency,
                })
            }
            Command::Deposit {
                amount,
                currency,
                description,
                reference,
                ..
            } => wallet(WalletCommand::Deposit {
                money: currencies.money(*amount, *currency)?,
                description: description.clone(),
                reference: reference.clone(),
            }),
            Command::Withdraw {
                amount,
                currency,
                description,
                reference,
                ..
            } => wallet(WalletCommand::Withdraw {
                money: currencies.money(*amount, *currency)?,
                description: description.clone(),
                reference: reference.clone(),
            }),
            Command::Exchange {
                amount,
                from_currency,
                to_currency,
                ..
            } => {
                currencies.get(*from_currency)?;
                currencies.get(*to_currency)?;
                if from_currency == to_currency {
                    return Err(WalletError::SameCurrency);
                }
                wallet(WalletCommand::Exchange {
                    money: currencies.money(*amount, *from_currency)?,
                    to_currency: *to_currency,
                })
            }
            Command::CreateHold {
                amount,
                currency,
                reference_type,
                reference_id,
                description,
                expires_at,
                ..
            } => wallet(WalletCommand::CreateHold(HoldRequest {
                money: currencies.money(*amount, *currency)?,
                reference_type: reference_type.clone(),
                reference_id: *reference_id,
                description: description.clone(),
                expires_at: *expires_at,
            })),
            Command::ExecuteHold {
                user_id,
                hold_id,
                amount,
                reference,
                payees: Some(payees),
            } => {
                validate_payees(*user_id, payees)?;
                Ok(ValidCommand::Wallets(WalletsCommand::PayOutHold(
                    PayoutRequest {
                        payer: *user_id,
                        hold_id: *hold_id,
                        amount: *amount,
                        reference: reference.clone(),
                        payees: payees.clone(),
                    },
                )))
            }
            Command::Transfer {
                user_id,
                to_user_id,
                amount,
                currency,
                description,
                reference,
            } => {
                // The same wallet on both sides is the first error, as
                // the domain rules list it.
                if user_id == to_user_id {
                    return Err(WalletError::SameWallet);
                }
                let request = TransferRequest {
                    payer: *user_id,
                    payee: *to_user_id,
                    money: currencies.money(*amount, *currency)?,
                    description: description.clone(),
                    reference: reference.clone(),
                };
                Ok(ValidCommand::Wallets(WalletsCommand::Transfer(request)))
            }
            Command::ReverseTransaction {
                user_id,
                transaction_id,
                amount,
                reason,
            } => Ok(ValidCommand::Reversal(ReversalRequest {
                user_id: *user_id,
                transaction_id: *transaction_id,
                amount: *amount,
                reason: reason.clone(),
            })),
            Command::ExecuteHold {
                hold_id,
                amount,
                reference,
                payees: None,
                ..
            } => wallet(WalletCommand::ExecuteHold {
                hold_id: *hold_id,
                amount: *amount,
                reference: reference.clone(),
            }),
            Command::ReleaseHold {
                hold_id, amount, ..
            } => wallet(WalletCommand::ReleaseHold {
                hold_id: *hold_id,
                amount: *amount,
            }),
            Command::CancelHold { hold_id, .. } => {
                wallet(WalletCommand::CancelHold { hold_id: *hold_id })
            }
            Command::FreezeWallet { reason, .. } => wallet(WalletCommand::Freeze {
                reason: reason.clone(),
            }),
            Command::UnfreezeWallet { .. } => wallet(WalletCommand::Unfreeze),
            Command::CloseWallet { .. } => wallet(WalletCommand::Close),
            Command::CreatePointAccount { user_id } => {
                Ok(ValidCommand::CreatePointAccount { user_id: *user_id })
            }
            Command::EarnPoints {
                points: earned,
                source,
                description,
                expires_at,
                pending,
                ..
            } => points(PointCommand::Earn(EarnRequest {
                points: validate_points(*earned)?,
                source: source.clone(),
                description: description.clone(),
                expires_at: *expires_at,
                pending: *pending,
            })),
            Command::SpendPoints {
                points: spent,
                source,
                description,
                ..
            } => points(PointCommand::Spend {
                points: validate_points(*spent)?,
                source: source.clone(),
                description: description.clone(),
            }),
            Command::AdjustPoints {
                delta,
                source,
                description,
                ..
            } => points(PointCommand::Adjust {
                delta: validate_delta(*delta)?,
                source: source.clone(),
                description: description.clone(),
            }),
            Command::ConfirmPendingPoints { lot_id, .. } => {
                points(PointCommand::ConfirmPending { lot_id: *lot_id })
            }
            Command::CancelPendingPoints { lot_id, .. } => {
                points(PointCommand::CancelPending { lot_id: *lot_id })
            }
        }
    }
}

/// A validated command on one existing aggregate: [`WalletCommand`] on a
/// wallet, [`PointCommand`] on a point account. The service runs both
/// through one generic path.
pub trait AggregateCommand: Clone + Send + Sync + 'static {
    /// The aggregate the command changes.
    type Target: Aggregate;

    /// The part of the aggregate the command names, which the store loads
    /// whatever its status: a hold of a wallet; a lot of a point account,
    /// which the store tells the account about even when it is no longer
    /// live.
    fn named(&self) -> Option<Uuid>;

    /// Applies the command to the aggregate, after expiring what is overdue
    /// in it (holds, lots).
    fn apply(&self, target: &mut Self::Target, ctx: &Ctx<'_>)
        -> Result<CommandOutput, WalletError>;
}

impl AggregateCommand for WalletCommand {
    type Target = Wallet;

    fn named(&self) -> Option<Uuid> {
        match self {
            WalletCommand::ExecuteHold { hold_id, .. }
            | WalletCommand::ReleaseHold { hold_id, .. }
            | WalletCommand::CancelHold { hold_id } => Some(*hold_id),
            WalletCommand::Deposit { .. }
            | WalletCommand::Withdraw { .. }
            | WalletCommand::Exchange { .. }
            | WalletCommand::CreateHold(_)
            | WalletCommand::Freeze { .. }
            | WalletCommand::Unfreeze
            | WalletCommand::Close => None,
        }
    }

    fn apply(&self, wallet: &mut Wallet, ctx: &Ctx<'_>) -> Result<CommandOutput, WalletError> {
        wallet.expire_overdue_holds(ctx)?;
        match self {
            WalletCommand::Deposit {
                money,
                description,
                reference,
            } => {
                let transaction =
                    wallet.deposit(*money, description.clone(), reference.clone(), ctx)?;
                Ok(CommandOutput::Transaction {
                    wallet: wallet.view(),
                    transaction,
                })
            }
            WalletCommand::Withdraw {
                money,
                description,
                reference,
            } => {
                let transaction =
                    wallet.withdraw(*money, description.clone(), reference.clone(), ctx)?;
                Ok(CommandOutput::Transaction {
                    wallet: wallet.view(),
                    transaction,
                })
            }
            WalletCommand::Exchange { money, to_currency } => {
                let exchange = wallet.exchange(*money, *to_currency, ctx)?;
                Ok(CommandOutput::Exchange {
                    wallet: wallet.view(),
                    exchange,
                })
            }
            WalletCommand::CreateHold(request) => Ok(CommandOutput::Hold {
                hold: wallet.hold(request.clone(), ctx)?,
            }),
            WalletCommand::ExecuteHold {
                hold_id,
                amount,
                reference,
            } => Ok(CommandOutput::Hold {
                hold: wallet.execute_hold(*hold_id, *amount, reference.clone(), ctx)?,
            }),
            WalletCommand::ReleaseHold { hold_id, amount } => Ok(CommandOutput::Hold {
                hold: wallet.release_hold(*hold_id, *amount, ctx)?,
            }),
            WalletCommand::CancelHold { hold_id } => Ok(CommandOutput::Hold {
                hold: wallet.cancel_hold(*hold_id, ctx)?,
            }),
            WalletCommand::Freeze { reason } => {
                wallet.freeze(reason.clone(), ctx)?;
                Ok(wallet_output(wallet))
            }
            WalletCommand::Unfreeze => {
                wallet.unfreeze(ctx)?;
                Ok(wallet_output(wallet))
            }
            WalletCommand::Close => {
                wallet.close(ctx)?;
                Ok(wallet_output(wallet))
            }
        }
    }
}

/// The result of a command whose answer is the wallet itself.
pub(crate) fn wallet_output(wallet: &Wallet) -> CommandOutput {
    CommandOutput::Wallet {
        wallet: wallet.view(),
    }
}

impl WalletsCommand {
    /// Every user whose wallet the unit of work touches, in user id order
    /// (the canonical order stores lock them in), each once.
    pub fn user_ids(&self) -> Vec<Uuid> {
        let mut users = match self {
            WalletsCommand::Transfer(request) => vec![request.payer, request.payee],
            WalletsCommand::PayOutHold(request) => std::iter::once(request.payer)
                .chain(request.payees.iter().map(|p| p.user_id))
                .collect(),
        };
        users.sort_unstable();
        users.dedup();
        users
    }

    /// The holds the command names, which the store loads in whatever
    /// status they are.
    pub fn hold_ids(&self) -> Vec<Uuid> {
        match self {
            WalletsCommand::Transfer(_) => Vec::new(),
            WalletsCommand::PayOutHold(request) => vec![request.hold_id],
        }
    }

    /// Applies the command to the set, after expiring the overdue holds of
    /// every wallet in it.
    pub fn apply(&self, set: &mut WalletSet, ctx: &Ctx<'_>) -> Result<CommandOutput, WalletError> {
        let payer = match self {
            WalletsCommand::Transfer(request) => request.payer,
            WalletsCommand::PayOutHold(request) => request.payer,
        };
        set.expire_overdue_holds(payer, ctx)?;
        match self {
            WalletsCommand::Transfer(request) => transfer(set, request, ctx),
            WalletsCommand::PayOutHold(request) => pay_out(set, request, ctx),
        }
    }
}

/// The result of a command whose answer is the point account itself.
pub(crate) fn account_output(account: &PointAccount) -> CommandOutput {
    CommandOutput::PointAccount {
        account: account.view(),
    }
}

impl AggregateCommand for PointCommand {
    type Target = PointAccount;

    fn named(&self) -> Option<Uuid> {
        match self {
            PointCommand::ConfirmPending { lot_id } | PointCommand::CancelPending { lot_id } => {
                Some(*lot_id)
            }
            PointCommand::Earn(_) | PointCommand::Spend { .. } | PointCommand::Adjust { .. } => {
                None
            }
        }
    }

    fn apply(
        &self,
        account: &mut PointAccount,
        ctx: &Ctx<'_>,
    ) -> Result<CommandOutput, WalletError> {
        account.expire_overdue_lots(ctx);
        let (transaction, lot_id) = match self {
            PointCommand::Earn(request) => {
                let (transaction, lot_id) = account.earn(request.clone(), ctx)?;
                (transaction, Some(lot_id))
            }
            PointCommand::Spend {
                points,
                source,
                description,
            } => (
                account.spend(*points, source.clone(), description.clone(), ctx)?,
                None,
            ),
            PointCommand::Adjust {
                delta,
                source,
                description,
            } => {
                let transaction =
                    account.adjust(*delta, source.clone(), description.clone(), ctx)?;
                let lot_id = transaction.lot_id;
                (transaction, lot_id)
            }
            PointCommand::ConfirmPending { lot_id } => {
                (account.confirm_pending(*lot_id, ctx)?, Some(*lot_id))
            }
            PointCommand::CancelPending { lot_id } => {
                (account.cancel_pending(*lot_id, ctx)?, Some(*lot_id))
            }
        };
        Ok(CommandOutput::Points {
            account: account.view(),
            transaction,
            lot_id,
        })
    }
}

/// Validates a wallet command and applies it to a wallet, after expiring
/// its overdue holds. Commands for other aggregates are an internal error.
pub fn apply_to_wallet(
    wallet: &mut Wallet,
    command: &Command,
    ctx: &Ctx<'_>,
) -> Result<CommandOutput, WalletError> {
    match command.validate(ctx.policy)? {
        ValidCommand::Wallet(valid) => valid.apply(wallet, ctx),
        ValidCommand::CreateWallet { .. }
        | ValidCommand::Wallets(_)
        | ValidCommand::Reversal(_)
        | ValidCommand::CreatePointAccount { .. }
        | ValidCommand::PointAccount(_) => Err(WalletError::Internal(format!(
            "{} is not a command on one existing wallet",
            command.name()
        ))),
    }
}

/// Validates a command over several wallets (a transfer, a hold payout, a
/// reversal) and
/// applies it to the set, after expiring the overdue holds of each wallet.
/// Other commands are an internal error.
pub fn apply_to_wallets(
    set: &mut WalletSet,
    command: &Command,
    ctx: &Ctx<'_>,
) -> Result<CommandOutput, WalletError> {
    match command.validate(ctx.policy)? {
        ValidCommand::Wallets(valid) => valid.apply(set, ctx),
        ValidCommand::Reversal(request) => request.apply(set, ctx),
        ValidCommand::CreateWallet { .. }
        | ValidCommand::Wallet(_)
        | ValidCommand::CreatePointAccount { .. }
        | ValidCommand::PointAccount(_) => Err(WalletError::Internal(format!(
            "{} is not a command over several wallets",
            command.name()
        ))),
    }
}

/// Validates a point command and applies it to a point account, after
/// expiring its overdue lots. Commands for other aggregates are an internal
/// error.
pub fn apply_to_point_account(
    account: &mut PointAccount,
    command: &Command,
    ctx: &Ctx<'_>,
) -> Result<CommandOutput, WalletError> {
    match command.validate(ctx.policy)? {
        ValidCommand::PointAccount(valid) => valid.apply(account, ctx),
        ValidCommand::CreateWallet { .. }
        | ValidCommand::Wallet(_)
        | ValidCommand::Wallets(_)
        | ValidCommand::Reversal(_)
        | ValidCommand::CreatePointAccount { .. } => Err(WalletError::Internal(format!(
            "{} is not a command on an existing point account",
            command.name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_printable_ascii() {
        assert!(IdempotencyKey::parse("order-42").is_ok());
        assert!(IdempotencyKey::parse(" spaced key ~").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("tab\tkey").is_err());
        assert!(IdempotencyKey::parse("ключ").is_err());
    }

    #[test]
    fn fingerprints_compare_amounts_as_values() {
        let user_id = Uuid::nil();
        let usd = CurrencyCode::parse("usd").expect("code");
        let deposit = |amount: &str| Command::Deposit {
            user_id,
            amount: Decimal::from_str_exact(amount).expect("decimal"),
            currency: usd,
            description: None,
            reference: None,
        };
        assert_eq!(deposit("10").fingerprint(), deposit("10.00").fingerprint());
        assert_ne!(deposit("10").fingerprint(), deposit("10.01").fingerprint());
        let withdraw = Command::Withdraw {
            user_id,
            amount: Decimal::TEN,
            currency: usd,
            description: None,
            reference: None,
        };
        assert_ne!(deposit("10").fingerprint(), withdraw.fingerprint());
    }

    #[test]
    fn validation_parses_once_in_the_order_errors_are_reported() {
        let policy = Policy::default();
        let user_id = Uuid::nil();
        let code = |text: &str| CurrencyCode::parse(text).expect("code");
        let exchange = |amount: &str, from: &str, to: &str| Command::Exchange {
            user_id,
            amount: Decimal::from_str_exact(amount).expect("decimal"),
            from_currency: code(from),
            to_currency: code(to),
        };
        let error = |command: Command| command.validate(&policy).map(|_| ()).unwrap_err();
        // The unknown currency wins over the same currency, which wins over the amount.
        assert_eq!(
            error(exchange("0", "EUR", "EUR")).code(),
            "unsupported_currency"
        );
        assert_eq!(
            error(exchange("0", "USD", "USD")),
            WalletError::SameCurrency
        );
        assert_eq!(
            error(exchange("0.001", "USD", "VND")).code(),
            "invalid_amount"
        );
        let Ok(ValidCommand::Wallet(WalletCommand::Exchange { money, to_currency })) =
            exchange("10", "USD", "VND").validate(&policy)
        else {
            panic!("a valid exchange");
        };
        assert_eq!(money.amount().to_string(), "10.00");
        assert_eq!(to_currency, code("VND"));
        let adjust = |delta: i64| Command::AdjustPoints {
            user_id,
            delta,
            source: "support".into(),
            description: None,
        };
        assert_eq!(error(adjust(0)).code(), "validation_error");
        assert_eq!(error(adjust(i64::MIN)).code(), "validation_error");
        assert!(adjust(-5).validate(&policy).is_ok());
    }

    #[test]
    fn a_validated_command_names_the_hold_or_lot_the_store_loads() {
        let policy = Policy::default();
        let (user_id, id) = (Uuid::nil(), Uuid::from_u128(7));
        let valid = |command: Command| command.validate(&policy).expect("valid");
        let ValidCommand::Wallet(release) = valid(Command::ReleaseHold {
            user_id,
            hold_id: id,
            amount: None,
        }) else {
            panic!("a wallet command");
        };
        assert_eq!(release.named(), Some(id));
        let ValidCommand::PointAccount(confirm) = valid(Command::ConfirmPendingPoints {
            user_id,
            lot_id: id,
        }) else {
            panic!("a point command");
        };
        assert_eq!(confirm.named(), Some(id));
        let ValidCommand::Wallet(close) = valid(Command::CloseWallet { user_id }) else {
            panic!("a wallet command");
        };
        assert_eq!(close.named(), None);
    }
}
