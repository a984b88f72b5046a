//! The one place where database errors become domain errors.
//!
//! Named constraints are the last line of defence behind the aggregates: a
//! violated one comes back as the precise [`WalletError`] it stands for.
//! Serialisation failures and deadlocks are conflicts the service retries;
//! anything that means the server cannot be reached is `Unavailable`.

use std::future::Future;

use sqlx::error::DatabaseError;
use sqlx::{Encode, Postgres, Type};
use wallet_core::WalletError;

use crate::write::PgQuery;

/// The unique index of idempotency records. A violation means another unit
/// of work stored a record for the same `(user, key)` first: the store
/// replays that record instead of reporting the violation.
pub(crate) const IDEMPOTENCY_KEY_CONSTRAINT: &str = "idempotency_records_pkey";
/// The unique index that keeps one wallet per user.
pub(crate) const WALLET_USER_CONSTRAINT: &str = "wallets_user_id_key";
/// The unique index that keeps one point account per user.
pub(crate) const POINT_ACCOUNT_USER_CONSTRAINT: &str = "point_accounts_user_id_key";

/// Each named constraint with the domain error its violation stands for.
/// Constraints not listed here (foreign keys, enumerations, sequences) can
/// only be violated by a bug, and come back as `Internal`.
/// Makes the domain error of one constraint.
type ErrorOf = fn() -> WalletError;

pub(crate) const CONSTRAINT_ERRORS: &[(&str, ErrorOf)] = &[
    (WALLET_USER_CONSTRAINT, || WalletError::WalletExists),
    (POINT_ACCOUNT_USER_CONSTRAINT, || {
        WalletError::PointAccountExists
    }),
    (IDEMPOTENCY_KEY_CONSTRAINT, || {
        WalletError::IdempotencyKeyInFlight
    }),
    ("wallet_items_balance_non_negative", || {
        WalletError::InsufficientFunds
    }),
    ("wallet_items_held_non_negative", || {
        WalletError::AmountExceedsHold
    }),
    ("wallet_items_held_within_balance", || {
        WalletError::InsufficientFunds
    }),
    ("wallet_items_balance_within_limit", || {
        WalletError::BalanceLimitExceeded
    }),
    ("wallet_transactions_balance_after_non_negative", || {
        WalletError::InsufficientFunds
    }),
    ("wallet_transactions_held_after_non_negative", || {
        WalletError::AmountExceedsHold
    }),
    ("wallet_transactions_held_after_within_balance", || {
        WalletError::InsufficientFunds
    }),
    ("wallet_transaction_reversals_within_original", || {
        WalletError::ReversalExceedsOriginal
    }),
    ("holds_original_positive", || {
        WalletError::InvalidAmount("a hold must be of a positive amount".into())
    }),
    ("holds_amounts_non_negative", || {
        WalletError::AmountExceedsHold
    }),
    ("holds_amounts_add_up", || WalletError::AmountExceedsHold),
    ("holds_ended_hold_empty", || WalletError::HoldNotActive),
    ("point_accounts_available_non_negative", || {
        WalletError::InsufficientPoints
    }),
    ("point_accounts_pending_non_negative", || {
        WalletError::InsufficientPoints
    }),
    ("point_lots_remaining_non_negative", || {
        WalletError::InsufficientPoints
    }),
    ("point_transactions_balance_after_non_negative", || {
        WalletError::InsufficientPoints
    }),
];

/// SQLSTATEs of conflicts that a retry of the whole unit of work resolves.
const CONFLICT_STATES: &[&str] = &[
    "40001", // serialization_failure
    "40P01", // deadlock_detected
    "55P03", // lock_not_available
];

/// SQLSTATEs (or their classes, two characters) meaning the server cannot
/// serve us now.
const UNAVAILABLE_STATES: &[&str] = &[
    "08",    // connection exception
    "53",    // insufficient resources (too many connections, disk full, ...)
    "57P01", // admin_shutdown: the backend was terminated
    "57P02", // crash_shutdown
    "57P03", // cannot_connect_now: the server is starting up
    "57014", // query_canceled: statement timeout or cancel request
    "25006", // read_only_sql_transaction: a replica, or a failover in progress
    "58",    // system error (I/O)
];

/// The domain error of a violated constraint, by the constraint's name.
pub(crate) fn constraint_error(name: &str) -> WalletError {
    CONSTRAINT_ERRORS
        .iter()
        .find(|(constraint, _)| *constraint == name)
        .map(|(_, error)| error())
        .unwrap_or_else(|| WalletError::Internal(format!("constraint {name} violated")))
}

/// Turns any database error into the domain error it stands for.
pub(crate) fn map_error(error: sqlx::Error) -> WalletError {
    match error {
        sqlx::Error::Database(database) => map_database_error(&*database),
        sqlx::Error::Io(io) => WalletError::Unavailable(format!("database connection: {io}")),
        sqlx::Error::Tls(_) => WalletError::Unavailable("database connection: TLS failure".into()),
        sqlx::Error::Protocol(message) => {
            WalletError::Unavailable(format!("database protocol: {message}"))
        }
        sqlx::Error::PoolTimedOut => {
            WalletError::Unavailable("no database connection became free in time".into())
        }
        sqlx::Error::PoolClosed => WalletError::Unavailable("the database pool is closed".into()),
        sqlx::Error::WorkerCrashed => {
            WalletError::Unavailable("the database connection worker stopped".into())
        }
        sqlx::Error::Configuration(reason) => {
            WalletError::Validation(format!("database configuration: {reason}"))
        }
        other => WalletError::Internal(format!("database: {other}")),
    }
}

fn map_database_error(error: &dyn DatabaseError) -> WalletError {
    let state = error.code().map(|c| c.into_owned()).unwrap_or_default();
    if CONFLICT_STATES.contains(&state.as_str()) {
        return WalletError::ConcurrencyConflict;
    }
    let unavailable = UNAVAILABLE_STATES.iter().any(|known| {
        if known.len() == 2 {
            state.starts_with(known)
        } else {
            state == *known
        }
    });
    if unavailable {
        return WalletError::Unavailable(format!("database: {} ({state})", error.message()));
    }
    if let Some(name) = error.constraint() {
        return constraint_error(name);
    }
    WalletError::Internal(format!("database: {} ({state})", error.message()))
}

/// A value a query binds as one of its parameters.
pub(crate) trait Param<'q>: 'q + Encode<'q, Postgres> + Type<Postgres> {}

impl<'q, T: 'q + Encode<'q, Postgres> + Type<Postgres>> Param<'q> for T {}

/// Runs `sql` with `$1` bound to `first` and `$2` to `second`, as `run`
/// says (`fetch_all`, `fetch_optional`, `fetch_one` or `execute` on an
/// executor); a failure comes back as the domain error it stands for.
pub(crate) async fn run_with<'q, T, F>(
    sql: &'q str,
    (first, second): (impl Param<'q>, impl Param<'q>),
    run: impl FnOnce(PgQuery<'q>) -> F,
) -> Result<T, WalletError>
where
    F: Future<Output = Result<T, sqlx::Error>>,
{
    run(sqlx::query(sql).bind(first).bind(second))
        .await
        .map_err(map_error)
}

/// Errors of the migrator.
pub(crate) fn map_migrate_error(error: sqlx::migrate::MigrateError) -> WalletError {
    match error {
        sqlx::migrate::MigrateError::Execute(inner) => map_error(inner),
        other => WalletError::Internal(format!("migration: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every migration, in order: a constraint may be declared (or
    /// declared again) by any of them.
    const SCHEMA: &str = concat!(
        include_str!("../migrations/0001_ledger.sql"),
        include_str!("../migrations/0003_transfers.sql"),
        include_str!("../migrations/0004_reversals.sql")
    );

    #[test]
    fn every_mapped_constraint_exists_in_the_schema() {
        for (name, _) in CONSTRAINT_ERRORS {
            assert!(
                SCHEMA.contains(&format!("CONSTRAINT {name} ")),
                "{name} is mapped but not declared in the migrations"
            );
        }
    }

    #[test]
    fn unknown_constraints_are_internal() {
        assert_eq!(
            constraint_error("wallet_items_held_within_balance"),
            WalletError::InsufficientFunds
        );
        assert!(matches!(
            constraint_error("no_such_constraint"),
            WalletError::Internal(_)
        ));
    }

    #[test]
    fn pool_failures_are_unavailable() {
        assert!(matches!(
            map_error(sqlx::Error::PoolTimedOut),
            WalletError::Unavailable(_)
        ));
        assert!(matches!(
            map_error(sqlx::Error::RowNotFound),
            WalletError::Internal(_)
        ));
    }
}
