//! Conversions between rows and domain values, checked both ways: stored
//! data that does not parse is an `Internal` error, never a panic.

use std::str::FromStr;

use serde::de::DeserializeOwned;
use sqlx::postgres::PgRow;
use sqlx::Row;
use wallet_core::{
    CurrencyCode, Decimal, Hold, PointTransaction, PointTransactionType, TransactionType, Wallet,
    WalletError, WalletItem, WalletStatus, WalletTransaction, WalletView,
};

use crate::error::map_error;

/// A stored value that does not parse.
pub(crate) fn corrupt(what: &str) -> WalletError {
    WalletError::Internal(format!("stored {what} does not parse"))
}

/// A column of a row.
pub(crate) fn column<'r, T>(row: &'r PgRow, name: &str) -> Result<T, WalletError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(name).map_err(map_error)
}

/// A non-negative `bigint` as `u64`.
pub(crate) fn unsigned(value: i64, what: &str) -> Result<u64, WalletError> {
    u64::try_from(value).map_err(|_| corrupt(what))
}

/// A `u64` as a `bigint`, for counters and versions (never near the limit).
pub(crate) fn signed(value: u64, what: &str) -> Result<i64, WalletError> {
    i64::try_from(value).map_err(|_| WalletError::Internal(format!("{what} is out of range")))
}

/// A `u64` bound from outside (a cursor, an events position), saturated to
/// the `bigint` range: no stored sequence comes near it.
pub(crate) fn saturate(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn currency(text: &str) -> Result<CurrencyCode, WalletError> {
    CurrencyCode::parse(text).map_err(|_| corrupt("currency"))
}

pub(crate) fn parse<T: FromStr>(text: &str, what: &str) -> Result<T, WalletError> {
    text.parse().map_err(|_| corrupt(what))
}

/// An amount read as text (`column::text`), so that it keeps its scale.
///
/// The binary `NUMERIC` codec drops the scale of zero (`0.00` comes back as
/// `0`), so amounts travel as text both ways: bound as text and cast to
/// `numeric` in SQL, read with `::text`.
pub(crate) fn amount(row: &PgRow, name: &str) -> Result<Decimal, WalletError> {
    let text: String = column(row, name)?;
    decimal(&text)
}

/// Parses a stored decimal.
pub(crate) fn decimal(text: &str) -> Result<Decimal, WalletError> {
    Decimal::from_str_exact(text).map_err(|_| corrupt("amount"))
}

/// An amount as the text that is bound for a `numeric` column.
pub(crate) fn amount_text(value: &Decimal) -> String {
    value.to_string()
}

/// A JSON document built by the database (`json_agg`) as domain values.
pub(crate) fn from_json<T: DeserializeOwned>(
    value: serde_json::Value,
    what: &str,
) -> Result<T, WalletError> {
    serde_json::from_value(value)
        .map_err(|error| WalletError::Internal(format!("stored {what} does not parse: {error}")))
}

/// The columns of a wallet row, in the order [`wallet_from_row`] reads them.
pub(crate) const WALLET_COLUMNS: &str = "w.id, w.user_id, w.status, w.default_currency, \
     w.frozen_reason, w.version, w.transaction_count, w.created_at, w.updated_at";

/// The wallet's items as a JSON array (amounts as text, so they keep their scale).
pub(crate) const WALLET_ITEMS_JSON: &str = "coalesce((SELECT json_agg(json_build_object(\
     'currency', i.currency, 'balance', i.balance::text, 'held', i.held::text)) \
     FROM wallet_items i WHERE i.wallet_id = w.id), '[]'::json) AS items";

/// A hold as a JSON object in the shape of [`Hold`] (amounts as text).
pub(crate) const HOLD_JSON: &str = "json_build_object(\
     'id', h.id, 'walletId', h.wallet_id, 'currency', h.currency, \
     'originalAmount', h.original_amount::text, 'remainingAmount', h.remaining_amount::text, \
     'executedAmount', h.executed_amount::text, 'releasedAmount', h.released_amount::text, \
     'status', h.status, 'referenceType', h.reference_type, 'referenceId', h.reference_id, \
     'description', h.description, 'expiresAt', h.expires_at, 'createdAt', h.created_at, \
     'updatedAt', h.updated_at)";

/// A wallet (without holds) from a row of [`WALLET_COLUMNS`], with the
/// items of `items` (a JSON array) and the given holds.
pub(crate) fn wallet_from_row(
    row: &PgRow,
    items: Vec<WalletItem>,
    holds: Vec<Hold>,
) -> Result<Wallet, WalletError> {
    let status: String = column(row, "status")?;
    let default_currency: String = column(row, "default_currency")?;
    Ok(Wallet::restore(
        column(row, "id")?,
        column(row, "user_id")?,
        parse::<WalletStatus>(&status, "wallet status")?,
        currency(&default_currency)?,
        column(row, "frozen_reason")?,
        items,
        holds,
        unsigned(column(row, "version")?, "wallet version")?,
        unsigned(column(row, "transaction_count")?, "transaction count")?,
        column(row, "created_at")?,
        column(row, "updated_at")?,
    ))
}

/// A wallet view from a row of [`WALLET_COLUMNS`] plus [`WALLET_ITEMS_JSON`].
pub(crate) fn wallet_view_from_row(row: &PgRow) -> Result<WalletView, WalletError> {
    let items: Vec<WalletItem> = from_json(column(row, "items")?, "wallet items")?;
    Ok(wallet_from_row(row, items, Vec::new())?.view())
}

/// The columns of a hold row, in the order [`hold_from_row`] reads them.
pub(crate) const HOLD_COLUMNS: &str = "h.id, h.wallet_id, h.currency, \
     h.original_amount::text AS original_amount, h.remaining_amount::text AS remaining_amount, \
     h.executed_amount::text AS executed_amount, h.released_amount::text AS released_amount, \
     h.status, h.reference_type, h.reference_id, h.description, h.expires_at, h.created_at, \
     h.updated_at";

/// A struct literal of `$ty` whose plain fields are read from the row's
/// columns of the same names, and whose other fields are given, so that
/// each column a decoder reads is named once.
macro_rules! read_row {
    ($row:expr, $($ty:ident)::+ { $($field:ident),* ; $($other:ident: $value:expr),* $(,)? }) => {
        $($ty)::+ { $($field: column($row, stringify!($field))?,)* $($other: $value,)* }
    };
}

pub(crate) fn hold_from_row(row: &PgRow) -> Result<Hold, WalletError> {
    let code: String = column(row, "currency")?;
    let status: String = column(row, "status")?;
    Ok(read_row!(row, Hold {
        id, wallet_id, reference_type, reference_id, description, expires_at, created_at,
        updated_at;
        currency: currency(&code)?,
        original_amount: amount(row, "original_amount")?,
        remaining_amount: amount(row, "remaining_amount")?,
        executed_amount: amount(row, "executed_amount")?,
        released_amount: amount(row, "released_amount")?,
        status: parse(&status, "hold status")?,
    }))
}

/// The columns of a wallet transaction row, with the running total of its
/// reversals (`reversed_amount`, null before the first) kept beside it.
pub(crate) const TRANSACTION_COLUMNS: &str = "t.id, t.wallet_id, t.sequence, \
     t.transaction_type, t.currency, t.amount::text AS amount, \
     t.held_change::text AS held_change, t.balance_after::text AS balance_after, \
     t.held_after::text AS held_after, t.description, t.reference, t.hold_id, \
     t.idempotency_key, t.created_at, t.transfer_id, t.counterparty_user_id, \
     t.reverses_transaction_id, (SELECT r.reversed_amount::text \
         FROM wallet_transaction_reversals r WHERE r.transaction_id = t.id) AS reversed_amount";

pub(crate) fn transaction_from_row(row: &PgRow) -> Result<WalletTransaction, WalletError> {
    let code: String = column(row, "currency")?;
    let kind: String = column(row, "transaction_type")?;
    let reversed = column::<Option<String>>(row, "reversed_amount")?
        .map(|text| decimal(&text))
        .transpose()?;
    let transaction = read_row!(row, WalletTransaction {
        id, wallet_id, description, reference, hold_id, idempotency_key, created_at,
        transfer_id, counterparty_user_id, reverses_transaction_id;
        sequence: unsigned(column(row, "sequence")?, "transaction sequence")?,
        transaction_type: parse::<TransactionType>(&kind, "transaction type")?,
        currency: currency(&code)?,
        amount: amount(row, "amount")?,
        held_change: amount(row, "held_change")?,
        balance_after: amount(row, "balance_after")?,
        held_after: amount(row, "held_after")?,
        reversed_amount: None,
    });
    Ok(transaction.with_reversed_amount(reversed))
}

/// The columns of a point transaction row.
pub(crate) const POINT_TRANSACTION_COLUMNS: &str = "t.id, t.account_id, t.sequence, \
     t.transaction_type, t.points, t.balance_after, t.source, t.description, t.lot_id, \
     t.expires_at, t.idempotency_key, t.created_at";

pub(crate) fn point_transaction_from_row(row: &PgRow) -> Result<PointTransaction, WalletError> {
    let kind: String = column(row, "transaction_type")?;
    Ok(read_row!(row, PointTransaction {
        id, account_id, points, balance_after, source, description, lot_id, expires_at,
        idempotency_key, created_at;
        sequence: unsigned(column(row, "sequence")?, "point transaction sequence")?,
        transaction_type: parse::<PointTransactionType>(&kind, "point transaction type")?,
    }))
}

/// The columns of a point account row.
pub(crate) const POINT_ACCOUNT_COLUMNS: &str = "a.id, a.user_id, a.available_points, \
     a.pending_points, a.lifetime_earned, a.version, a.transaction_count, a.created_at, \
     a.updated_at";

pub(crate) fn point_account_view_from_row(
    row: &PgRow,
) -> Result<wallet_core::PointAccountView, WalletError> {
    let available: i64 = column(row, "available_points")?;
    let pending: i64 = column(row, "pending_points")?;
    Ok(read_row!(row, wallet_core::PointAccountView {
        id, user_id, lifetime_earned, created_at, updated_at;
        total_points: available
            .checked_add(pending)
            .ok_or_else(|| corrupt("point totals"))?,
        available_points: available,
        pending_points: pending,
        version: unsigned(column(row, "version")?, "point account version")?,
    }))
}
