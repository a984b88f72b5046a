//! The one write statement of the store. Every path that changes data (a
//! batch of commands, a batch of one, a create) gathers its rows into
//! [`WriteColumns`] and writes them with [`WriteColumns::write`]: the
//! aggregate rows, their items, holds, lots and log entries, the outbox
//! events in command order and the idempotency records, in **one**
//! statement. Each table's statement fragment and each column binding
//! exists once, in `wallets.rs`, `points.rs`, `outbox.rs` and
//! `idempotency.rs`; this module puts them together.

use std::sync::OnceLock;

use sqlx::PgConnection;
use wallet_core::{DomainEvent, IdempotencyRecord, WalletError};

use crate::codec::column;
use crate::error::map_error;
use crate::idempotency::{insert_records_sql, RecordColumns};
use crate::outbox::{insert_events_sql, EventColumns};
use crate::points::PointAccountColumns;
use crate::wallets::WalletColumns;

/// How the statement writes the aggregate rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowWrite {
    /// New aggregates: their rows are inserted (expected version 0).
    Insert,
    /// Loaded aggregates: each row is updated only while it still has the
    /// version it was loaded at.
    Update,
}

impl RowWrite {
    /// The row write of changes that say whether the aggregate is new.
    pub fn of(created: bool) -> Self {
        if created {
            RowWrite::Insert
        } else {
            RowWrite::Update
        }
    }
}

/// Everything one write statement binds, as parallel arrays.
#[derive(Default)]
pub(crate) struct WriteColumns<'a> {
    pub wallets: WalletColumns<'a>,
    pub accounts: PointAccountColumns<'a>,
    events: EventColumns<'a>,
    records: RecordColumns<'a>,
}

impl<'a> WriteColumns<'a> {
    /// How many parameters the statement binds (checked by the tests
    /// against the statement's text).
    #[cfg(test)]
    pub const PARAMETERS: usize = WalletColumns::PARAMETERS
        + PointAccountColumns::PARAMETERS
        + EventColumns::PARAMETERS
        + RecordColumns::PARAMETERS;

    /// Adds events, after those added before (the outbox keeps the order).
    pub fn push_events(&mut self, events: &'a [DomainEvent]) -> Result<(), WalletError> {
        events.iter().try_for_each(|event| self.events.push(event))
    }

    /// Adds idempotency records.
    pub fn push_records(&mut self, records: &'a [IdempotencyRecord]) {
        records.iter().for_each(|record| self.records.push(record));
    }

    /// Writes everything in one statement. Returns whether there was any
    /// aggregate row to write (events and records come with rows). Every
    /// row must be written: an update whose row no longer has its expected
    /// version (a kept wallet someone else changed; for a locked row it
    /// cannot happen, and if it did the version check kept a newer state
    /// from being overwritten) writes nothing of that aggregate and fails
    /// the statement's check as `concurrency_conflict`.
    pub async fn write(self, conn: &mut PgConnection, rows: RowWrite) -> Result<bool, WalletError> {
        let expected = (count(self.wallets.len()), count(self.accounts.len()));
        if expected == (0, 0) {
            return Ok(false);
        }
        let WriteColumns {
            wallets,
            accounts,
            events,
            records,
        } = self;
        let query = sqlx::query(write_sql(rows));
        let query = records.bind(events.bind(accounts.bind(wallets.bind(query))));
        let row = query.fetch_one(&mut *conn).await.map_err(map_error)?;
        let written = (
            column::<i64>(&row, "wallets")?,
            column::<i64>(&row, "accounts")?,
        );
        if written != expected {
            return Err(WalletError::ConcurrencyConflict);
        }
        Ok(true)
    }
}

fn count(rows: usize) -> i64 {
    i64::try_from(rows).unwrap_or(i64::MAX)
}

/// The statement text for each way of writing rows, built once.
fn write_sql(rows: RowWrite) -> &'static str {
    static INSERT: OnceLock<String> = OnceLock::new();
    static UPDATE: OnceLock<String> = OnceLock::new();
    let cell = match rows {
        RowWrite::Insert => &INSERT,
        RowWrite::Update => &UPDATE,
    };
    cell.get_or_init(|| build_write_sql(rows))
}

fn build_write_sql(rows: RowWrite) -> String {
    let accounts_first = 1 + WalletColumns::PARAMETERS;
    let events_first = accounts_first + PointAccountColumns::PARAMETERS;
    let records_first = events_first + EventColumns::PARAMETERS;
    format!(
        "WITH {wallets}, {accounts}, events AS ({events}), records AS ({records}) \
         SELECT (SELECT count(*) FROM wallet_rows) AS wallets, \
         (SELECT count(*) FROM account_rows) AS accounts",
        wallets = WalletColumns::ctes(1, rows),
        accounts = PointAccountColumns::ctes(accounts_first, rows),
        events = insert_events_sql(events_first),
        records = insert_records_sql(records_first),
    )
}

/// A query with positional parameters, as the column builders bind them.
pub(crate) type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Amounts travel as text and are cast in SQL, so they keep their scale:
/// `$n::text[]::numeric[]`.
pub(crate) const NUMERIC: &str = "text[]::numeric";

/// `$first::type[], $first+1::type[], ...`: the arguments of an `UNNEST`.
pub(crate) fn parameters(first: usize, types: &[&str]) -> String {
    types
        .iter()
        .enumerate()
        .map(|(offset, kind)| format!("${}::{kind}[]", first + offset))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_statement_numbers_its_parameters_without_gaps() {
        for rows in [RowWrite::Insert, RowWrite::Update] {
            let sql = write_sql(rows);
            let last = WriteColumns::PARAMETERS;
            for n in 1..=last {
                assert!(sql.contains(&format!("${n}::")), "${n} is missing");
            }
            assert!(!sql.contains(&format!("${}::", last + 1)));
        }
    }

    #[test]
    fn the_parameter_count_is_the_sum_of_the_tables() {
        // The wallet tables take 49 (the transactions 17, with the transfer
        // id, the counterparty and the row reversed; the reversal totals 4),
        // the point tables 30, the outbox 7, the idempotency records 5.
        assert_eq!(WriteColumns::PARAMETERS, 49 + 30 + 7 + 5);
    }
}
