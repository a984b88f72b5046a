//! The one error type of the ledger.
//!
//! Every variant has a stable machine-readable [`WalletError::code`], which is
//! the `code` field of the HTTP problem document. Adapters map codes to their
//! own status codes; nothing here knows about HTTP.

use thiserror::Error;

/// Everything that can go wrong with a command or a query.
///
/// Domain rule violations, input validation and store failures share one enum
/// so that the application service can pass any of them through unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WalletError {
    /// Input that is malformed or out of its bounds (text too long, bad
    /// cursor, `expires_at` in the past, ...).
    #[error("validation failed: {0}")]
    Validation(String),
    /// An amount that is not > 0, too precise for its currency, or too large.
    #[error("invalid amount: {0}")]
    InvalidAmount(String),
    /// A currency code that is not in the configured currency table.
    #[error("unsupported currency: {0}")]
    UnsupportedCurrency(String),
    /// An exchange from a currency to itself.
    #[error("cannot exchange a currency into itself")]
    SameCurrency,
    /// A transfer to the payer's own wallet, or a payout that lists the
    /// payer among its payees.
    #[error("cannot move money from a wallet to itself")]
    SameWallet,

    /// The caller may not do this (or may not see this wallet).
    #[error("forbidden")]
    Forbidden,

    /// The user has no wallet.
    #[error("wallet not found")]
    WalletNotFound,
    /// The wallet has no hold with that id.
    #[error("hold not found")]
    HoldNotFound,
    /// The user has no point account.
    #[error("point account not found")]
    PointAccountNotFound,
    /// The point account has no such lot.
    #[error("point lot not found")]
    LotNotFound,
    /// The wallet has no transaction with that id (another wallet's
    /// transaction included).
    #[error("transaction not found")]
    TransactionNotFound,

    /// The user already has a wallet (in any status, closed included).
    #[error("the user already has a wallet")]
    WalletExists,
    /// The user already has a point account.
    #[error("the user already has a point account")]
    PointAccountExists,
    /// The store kept detecting concurrent changes until retries ran out.
    #[error("concurrent modification, retries exhausted")]
    ConcurrencyConflict,
    /// A command with the same idempotency key is still running.
    #[error("a command with this idempotency key is still in flight")]
    IdempotencyKeyInFlight,

    /// `available` is smaller than the amount asked for.
    #[error("insufficient funds")]
    InsufficientFunds,
    /// Available points are fewer than asked for.
    #[error("insufficient points")]
    InsufficientPoints,
    /// The wallet is frozen and the operation is not allowed while frozen.
    #[error("wallet is frozen")]
    WalletFrozen,
    /// The wallet is closed: only reads are allowed.
    #[error("wallet is closed")]
    WalletClosed,
    /// Unfreeze of a wallet that is not frozen.
    #[error("wallet is not frozen")]
    WalletNotFrozen,
    /// Close of a wallet with money or an active hold.
    #[error("wallet still has a balance or an active hold")]
    WalletNotEmpty,
    /// The hold has ended (executed, released, cancelled or expired).
    #[error("hold is not active")]
    HoldNotActive,
    /// Execute or release of more than the hold's remaining amount.
    #[error("amount exceeds the hold's remaining amount")]
    AmountExceedsHold,
    /// An exchange whose result rounds down to zero.
    #[error("amount too small: the converted amount rounds to zero")]
    AmountTooSmall,
    /// A balance would exceed [`crate::money::BALANCE_MAX_UNITS`].
    #[error("balance limit exceeded")]
    BalanceLimitExceeded,
    /// Confirm or cancel of a lot that is not pending (or has expired).
    #[error("lot is not pending")]
    LotNotPending,
    /// The idempotency key was used before for another command.
    #[error("idempotency key reused with different parameters")]
    IdempotencyKeyReused,
    /// The other wallet of a transfer or payout (the payee) does not exist.
    #[error("the counterparty has no wallet")]
    CounterpartyNotFound,
    /// The other wallet of a transfer or payout (the payee) is closed.
    #[error("the counterparty's wallet is closed")]
    CounterpartyClosed,
    /// A reversal of a transaction of a kind that cannot be reversed.
    #[error("this kind of transaction cannot be reversed")]
    NotReversible,
    /// A reversal of more than the transaction has left to reverse.
    #[error("the reversals would exceed the original amount")]
    ReversalExceedsOriginal,

    /// The store is down or overloaded; the command may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A fault that is nobody's input: a broken invariant in stored data, a
    /// serialisation bug. Adapters log it and answer with a generic error.
    #[error("internal error: {0}")]
    Internal(String),
}

impl WalletError {
    /// The stable machine-readable code of this error (snake case).
    pub fn code(&self) -> &'static str {
        match self {
            WalletError::Validation(_) => "validation_error",
            WalletError::InvalidAmount(_) => "invalid_amount",
            WalletError::UnsupportedCurrency(_) => "unsupported_currency",
            WalletError::SameCurrency => "same_currency",
            WalletError::SameWallet => "same_wallet",
            WalletError::Forbidden => "forbidden",
            WalletError::WalletNotFound => "wallet_not_found",
            WalletError::HoldNotFound => "hold_not_found",
            WalletError::PointAccountNotFound => "point_account_not_found",
            WalletError::LotNotFound => "lot_not_found",
            WalletError::TransactionNotFound => "transaction_not_found",
            WalletError::WalletExists => "wallet_exists",
            WalletError::PointAccountExists => "point_account_exists",
            WalletError::ConcurrencyConflict => "concurrency_conflict",
            WalletError::IdempotencyKeyInFlight => "idempotency_key_in_flight",
            WalletError::InsufficientFunds => "insufficient_funds",
            WalletError::InsufficientPoints => "insufficient_points",
            WalletError::WalletFrozen => "wallet_frozen",
            WalletError::WalletClosed => "wallet_closed",
            WalletError::WalletNotFrozen => "wallet_not_frozen",
            WalletError::WalletNotEmpty => "wallet_not_empty",
            WalletError::HoldNotActive => "hold_not_active",
            WalletError::AmountExceedsHold => "amount_exceeds_hold",
            WalletError::AmountTooSmall => "amount_too_small",
            WalletError::BalanceLimitExceeded => "balance_limit_exceeded",
            WalletError::LotNotPending => "lot_not_pending",
            WalletError::IdempotencyKeyReused => "idempotency_key_reused",
            WalletError::CounterpartyNotFound => "counterparty_not_found",
            WalletError::CounterpartyClosed => "counterparty_closed",
            WalletError::NotReversible => "not_reversible",
            WalletError::ReversalExceedsOriginal => "reversal_exceeds_original",
            WalletError::Unavailable(_) => "unavailable",
            WalletError::Internal(_) => "internal_error",
        }
    }

    /// Whether the application service may retry the command on its own.
    pub fn is_retryable_conflict(&self) -> bool {
        matches!(self, WalletError::ConcurrencyConflict)
    }
}
