//! Commands, their results, idempotency keys and fingerprints, and the one
//! function that applies a command to an aggregate.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::context::{truncate_to_micros, Ctx};
use crate::error::WalletError;
use crate::money::CurrencyCode;
use crate::points::{EarnRequest, PointAccount, PointAccountView, PointTransaction};
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
    ExecuteHold {
        user_id: Uuid,
        hold_id: Uuid,
        amount: Option<Decimal>,
        reference: Option<String>,
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

/// Which aggregate a command acts on, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Creates the user's wallet.
    NewWallet,
    /// Changes the user's wallet; a hold the command names.
    Wallet { hold_id: Option<Uuid> },
    /// Creates the user's point account.
    NewPointAccount,
    /// Changes the user's point account; a lot the command names.
    PointAccount { lot_id: Option<Uuid> },
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
            | Command::CreatePointAccount { user_id }
            | Command::EarnPoints { user_id, .. }
            | Command::SpendPoints { user_id, .. }
            | Command::AdjustPoints { user_id, .. }
            | Command::ConfirmPendingPoints { user_id, .. }
            | Command::CancelPendingPoints { user_id, .. } => *user_id,
        }
    }

    /// The aggregate the command acts on.
    pub fn target(&self) -> Target {
        match self {
            Command::CreateWallet { .. } => Target::NewWallet,
            Command::ExecuteHold { hold_id, .. }
            | Command::ReleaseHold { hold_id, .. }
            | Command::CancelHold { hold_id, .. } => Target::Wallet {
                hold_id: Some(*hold_id),
            },
            Command::Deposit { .. }
            | Command::Withdraw { .. }
            | Command::Exchange { .. }
            | Command::CreateHold { .. }
            | Command::FreezeWallet { .. }
            | Command::UnfreezeWallet { .. }
            | Command::CloseWallet { .. } => Target::Wallet { hold_id: None },
            Command::CreatePointAccount { .. } => Target::NewPointAccount,
            Command::ConfirmPendingPoints { lot_id, .. }
            | Command::CancelPendingPoints { lot_id, .. } => Target::PointAccount {
                lot_id: Some(*lot_id),
            },
            Command::EarnPoints { .. }
            | Command::SpendPoints { .. }
            | Command::AdjustPoints { .. } => Target::PointAccount { lot_id: None },
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
            | Command::Exchange { amount, .. } => normalise(amount),
            Command::CreateHold {
                amount, expires_at, ..
            } => {
                normalise(amount);
                truncate(expires_at);
            }
            Command::ExecuteHold { amount, .. } | Command::ReleaseHold { amount, .. } => {
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
    /// Create, execute, release, cancel a hold.
    Hold { hold: Hold },
    /// Create a point account.
    PointAccount { account: PointAccountView },
    /// Earn, spend, adjust, confirm, cancel pending.
    Points {
        account: PointAccountView,
        transaction: PointTransaction,
        lot_id: Option<Uuid>,
    },
}

/// Applies a wallet command to a wallet, after expiring its overdue holds.
/// Commands for other aggregates are an internal error.
pub fn apply_to_wallet(
    wallet: &mut Wallet,
    command: &Command,
    ctx: &Ctx<'_>,
) -> Result<CommandOutput, WalletError> {
    wallet.expire_overdue_holds(ctx)?;
    let currencies = &ctx.policy.currencies;
    match command {
        Command::Deposit {
            amount,
            currency,
            description,
            reference,
            ..
        } => {
            let money = currencies.money(*amount, *currency)?;
            let transaction = wallet.deposit(money, description.clone(), reference.clone(), ctx)?;
            Ok(CommandOutput::Transaction {
                wallet: wallet.view(),
                transaction,
            })
        }
        Command::Withdraw {
            amount,
            currency,
            description,
            reference,
            ..
        } => {
            let money = currencies.money(*amount, *currency)?;
            let transaction =
                wallet.withdraw(money, description.clone(), reference.clone(), ctx)?;
            Ok(CommandOutput::Transaction {
                wallet: wallet.view(),
                transaction,
            })
        }
        Command::Exchange {
            amount,
            from_currency,
            to_currency,
            ..
        } => {
            // The service's precheck order: both currencies, then same
            // currency, then the amount.
            currencies.get(*from_currency)?;
            currencies.get(*to_currency)?;
            if from_currency == to_currency {
                return Err(WalletError::SameCurrency);
            }
            let money = currencies.money(*amount, *from_currency)?;
            let exchange = wallet.exchange(money, *to_currency, ctx)?;
            Ok(CommandOutput::Exchange {
                wallet: wallet.view(),
                exchange,
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
        } => {
            let money = currencies.money(*amount, *currency)?;
            let hold = wallet.hold(
                HoldRequest {
                    money,
                    reference_type: reference_type.clone(),
                    reference_id: *reference_id,
                    description: description.clone(),
                    expires_at: *expires_at,
                },
                ctx,
            )?;
            Ok(CommandOutput::Hold { hold })
        }
        Command::ExecuteHold {
            hold_id,
            amount,
            reference,
            ..
        } => Ok(CommandOutput::Hold {
            hold: wallet.execute_hold(*hold_id, *amount, reference.clone(), ctx)?,
        }),
        Command::ReleaseHold {
            hold_id, amount, ..
        } => Ok(CommandOutput::Hold {
            hold: wallet.release_hold(*hold_id, *amount, ctx)?,
        }),
        Command::CancelHold { hold_id, .. } => Ok(CommandOutput::Hold {
            hold: wallet.cancel_hold(*hold_id, ctx)?,
        }),
        Command::FreezeWallet { reason, .. } => {
            wallet.freeze(reason.clone(), ctx)?;
            Ok(CommandOutput::Wallet {
                wallet: wallet.view(),
            })
        }
        Command::UnfreezeWallet { .. } => {
            wallet.unfreeze(ctx)?;
            Ok(CommandOutput::Wallet {
                wallet: wallet.view(),
            })
        }
        Command::CloseWallet { .. } => {
            wallet.close(ctx)?;
            Ok(CommandOutput::Wallet {
                wallet: wallet.view(),
            })
        }
        other @ (Command::CreateWallet { .. }
        | Command::CreatePointAccount { .. }
        | Command::EarnPoints { .. }
        | Command::SpendPoints { .. }
        | Command::AdjustPoints { .. }
        | Command::ConfirmPendingPoints { .. }
        | Command::CancelPendingPoints { .. }) => Err(WalletError::Internal(format!(
            "{} is not a command on an existing wallet",
            other.name()
        ))),
    }
}

/// Applies a point command to a point account, after expiring its overdue
/// lots. Commands for other aggregates are an internal error.
pub fn apply_to_point_account(
    account: &mut PointAccount,
    command: &Command,
    ctx: &Ctx<'_>,
) -> Result<CommandOutput, WalletError> {
    account.expire_overdue_lots(ctx);
    let (transaction, lot_id) = match command {
        Command::EarnPoints {
            points,
            source,
            description,
            expires_at,
            pending,
            ..
        } => {
            let (transaction, lot_id) = account.earn(
                EarnRequest {
                    points: *points,
                    source: source.clone(),
                    description: description.clone(),
                    expires_at: *expires_at,
                    pending: *pending,
                },
                ctx,
            )?;
            (transaction, Some(lot_id))
        }
        Command::SpendPoints {
            points,
            source,
            description,
            ..
        } => (
            account.spend(*points, source.clone(), description.clone(), ctx)?,
            None,
        ),
        Command::AdjustPoints {
            delta,
            source,
            description,
            ..
        } => {
            let transaction = account.adjust(*delta, source.clone(), description.clone(), ctx)?;
            let lot_id = transaction.lot_id;
            (transaction, lot_id)
        }
        Command::ConfirmPendingPoints { lot_id, .. } => {
            (account.confirm_pending(*lot_id, ctx)?, Some(*lot_id))
        }
        Command::CancelPendingPoints { lot_id, .. } => {
            (account.cancel_pending(*lot_id, ctx)?, Some(*lot_id))
        }
        other @ (Command::CreateWallet { .. }
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
        | Command::CreatePointAccount { .. }) => {
            return Err(WalletError::Internal(format!(
                "{} is not a command on an existing point account",
                other.name()
            )))
        }
    };
    Ok(CommandOutput::Points {
        account: account.view(),
        transaction,
        lot_id,
    })
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
}
