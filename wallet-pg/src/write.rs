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
        + EventColumns::TYPES.len()
        + RecordColumns::TYPES.len();

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
    let ctes = chain_ctes(
        1,
        &[
            (WalletColumns::PARAMETERS, &|first| {
                WalletColumns::ctes(first, rows)
            }),
            (PointAccountColumns::PARAMETERS, &|first| {
                PointAccountColumns::ctes(first, rows)
            }),
            (EventColumns::TYPES.len(), &|first| {
                format!("events AS ({})", insert_events_sql(first))
            }),
            (RecordColumns::TYPES.len(), &|first| {
                format!("records AS ({})", insert_records_sql(first))
            }),
        ],
    );
    format!(
        "WITH {ctes} SELECT (SELECT count(*) FROM wallet_rows) AS wallets, \
         (SELECT count(*) FROM account_rows) AS accounts"
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

/// One table's part of the write statement: one array per column, bound
/// as the parameters of one `UNNEST` whose output columns are named after
/// the table's. Declared with [`unnest_columns!`], so that each column's
/// name, SQL type and binding are written once.
pub(crate) trait UnnestColumns<'a>: Default {
    /// The SQL type of each array, in binding order.
    const TYPES: &'static [&'static str];
    /// The column name of each array, in binding order.
    const NAMES: &'static [&'static str];

    /// Binds the arrays, in the order of [`UnnestColumns::TYPES`].
    fn bind<'q>(self, query: PgQuery<'q>) -> PgQuery<'q>
    where
        'a: 'q;

    /// `UNNEST($first::type[], ...) AS u(name, ...)`.
    fn source(first: usize) -> String {
        format!(
            "UNNEST({}) AS u({})",
            parameters(first, Self::TYPES),
            Self::NAMES.join(", ")
        )
    }

    /// `INSERT INTO table (name, ...) SELECT u.name, ... FROM` the
    /// [`UnnestColumns::source`], leaving out the `unstored` columns (those
    /// only the statement's conditions read).
    fn insert(table: &str, first: usize, unstored: &[&str]) -> String {
        let stored: Vec<&str> = Self::NAMES
            .iter()
            .copied()
            .filter(|name| !unstored.contains(name))
            .collect();
        let selected: Vec<String> = stored.iter().map(|name| format!("u.{name}")).collect();
        format!(
            "INSERT INTO {table} ({}) SELECT {} FROM {}",
            stored.join(", "),
            selected.join(", "),
            Self::source(first)
        )
    }

    /// `table_written AS (`the [`UnnestColumns::insert`]` filter)`.
    fn insert_cte((table, first): (&str, usize), filter: &str) -> String {
        format!(
            "{table}_written AS ({insert} {filter})",
            insert = Self::insert(table, first, &[])
        )
    }

    /// `table_written AS (`the [`UnnestColumns::insert`]` filter ON
    /// CONFLICT (conflict) DO UPDATE SET` each of `updated` to its new
    /// value`)`, the update only where the stored row's `owner` column
    /// equals the new row's (so that an id can never move a row to
    /// another wallet or account).
    fn upsert_cte(
        (table, first): (&str, usize),
        filter: &str,
        conflict: &str,
        updated: &[&str],
        owner: Option<&str>,
    ) -> String {
        let only = owner
            .map(|owner| format!(" WHERE {table}.{owner} = EXCLUDED.{owner}"))
            .unwrap_or_default();
        format!(
            "{table}_written AS ({insert} {filter} ON CONFLICT ({conflict}) \
             DO UPDATE SET {set}{only})",
            insert = Self::insert(table, first, &[]),
            set = assignments(updated, "EXCLUDED"),
        )
    }

    /// `name AS (`the write of an aggregate's rows to `table``)`, as
    /// `rows` says: an [`UnnestColumns::insert`] of the rows whose
    /// `expected_version` (a column only read) is 0, or an update of the
    /// `updated` columns of each stored row that still has the version
    /// the row expects. Either way it returns the id of each row written.
    fn rows_cte(
        (name, table, first): (&str, &str, usize),
        rows: RowWrite,
        updated: &[&str],
    ) -> String {
        match rows {
            RowWrite::Insert => format!(
                "{name} AS ({insert} WHERE u.expected_version = 0 RETURNING id)",
                insert = Self::insert(table, first, &["expected_version"])
            ),
            RowWrite::Update => format!(
                "{name} AS (UPDATE {table} SET {set} FROM {source} \
                 WHERE {table}.id = u.id AND {table}.version = u.expected_version \
                 RETURNING {table}.id)",
                set = assignments(updated, "u"),
                source = Self::source(first)
            ),
        }
    }
}

/// `name = source.name, ...` for each of `columns`.
fn assignments(columns: &[&str], source: &str) -> String {
    columns
        .iter()
        .map(|name| format!("{name} = {source}.{name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Declares a struct of one `Vec` per column (named as the column) and
/// its [`UnnestColumns`] implementation, from one list of
/// `column: RustType => "sql type"`.
macro_rules! unnest_columns {
    ($(#[$meta:meta])* $vis:vis struct $name:ident<$life:lifetime> {
        $($(#[$field_meta:meta])* $column:ident: $rust:ty => $sql:expr),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Default)]
        $vis struct $name<$life> {
            $($(#[$field_meta])* $column: Vec<$rust>,)+
            _borrowed: std::marker::PhantomData<&$life ()>,
        }

        impl<$life> $crate::write::UnnestColumns<$life> for $name<$life> {
            const TYPES: &'static [&'static str] = &[$($sql),+];
            const NAMES: &'static [&'static str] = &[$(stringify!($column)),+];

            fn bind<'q>(self, query: $crate::write::PgQuery<'q>) -> $crate::write::PgQuery<'q>
            where
                $life: 'q,
            {
                query$(.bind(self.$column))+
            }
        }
    };
}
pub(crate) use unnest_columns;

/// Declares an aggregate's part of the write statement: its row columns
/// (inserted or updated as the statement's [`RowWrite`] says; the rows'
/// `id` column counts them) followed by the columns of its other tables,
/// each with the function that makes its common table expression from the
/// number of its first parameter; the expressions come in that order and
/// bind their arrays in that order.
macro_rules! aggregate_columns {
    ($(#[$meta:meta])* struct $name:ident<$life:lifetime> {
        $rows:ident: $rows_ty:ident => $rows_cte:ident,
        $($part:ident: $part_ty:ident => $part_cte:ident),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Default)]
        pub(crate) struct $name<$life> {
            $rows: $rows_ty<$life>,
            $($part: $part_ty<$life>,)+
        }

        impl<$life> $name<$life> {
            /// How many parameters the part binds.
            pub const PARAMETERS: usize = $rows_ty::TYPES.len() $(+ $part_ty::TYPES.len())+;

            /// How many aggregate rows the statement must write.
            pub fn len(&self) -> usize {
                self.$rows.id.len()
            }

            /// The part's common table expressions, with their parameters
            /// numbered from `$first`.
            pub fn ctes(first: usize, rows: $crate::write::RowWrite) -> String {
                $crate::write::chain_ctes(
                    first,
                    &[
                        ($rows_ty::TYPES.len(), &|first| $rows_cte(first, rows)),
                        $(($part_ty::TYPES.len(), &$part_cte),)+
                    ],
                )
            }

            /// Binds the part's arrays, in the order of its expressions.
            pub fn bind<'q>(self, query: $crate::write::PgQuery<'q>) -> $crate::write::PgQuery<'q>
            where
                $life: 'q,
            {
                let query = self.$rows.bind(query);
                $(let query = self.$part.bind(query);)+
                query
            }
        }
    };
}
pub(crate) use aggregate_columns;

/// Joins common table expressions whose parameters follow one another:
/// each part is its parameter count and its text given its first
/// parameter's number.
pub(crate) fn chain_ctes(first: usize, parts: &[(usize, &dyn Fn(usize) -> String)]) -> String {
    let mut next = first;
    let mut ctes = Vec::with_capacity(parts.len());
    for (count, cte) in parts {
        ctes.push(cte(next));
        next += count;
    }
    ctes.join(", ")
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
