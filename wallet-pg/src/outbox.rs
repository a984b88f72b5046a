//! The transactional outbox and its total order.
//!
//! # Why a sequence assigned at insert time is not enough
//!
//! Two writers A and B take numbers 7 and 8 from a sequence; B commits
//! first; a reader sees 8 and moves its position past 7; A commits 7, which
//! that reader never sees.
//!
//! # The design
//!
//! Writers insert their events with `sequence NULL`, in the same statement
//! as the state change (so an event exists exactly when its change does).
//! `insert_order` (an identity) keeps the order of events within a
//! transaction and roughly across transactions.
//!
//! Before reading, a reader runs the *sequencer*: a short transaction that
//! takes a transaction-level advisory lock and then, in a new statement
//! (hence a new snapshot, which sees every transaction committed before the
//! lock was granted), numbers all committed unnumbered events in
//! `insert_order`, starting after the largest number in use. It commits,
//! then the reader reads `sequence > after ORDER BY sequence`.
//!
//! Why no reader can miss an event:
//! - sequencers are serialised by the lock, and each commits before it
//!   releases the lock (PostgreSQL makes a commit visible before it releases
//!   the transaction's locks), so each sequencer sees every number handed
//!   out before it, and hands out only larger ones;
//! - numbers become visible only at their sequencer's commit, all at once,
//!   and every number visible to a reader was committed by a sequencer that
//!   finished before any sequencer that hands out a larger one began;
//! - an event committed after a sequencer's snapshot is numbered by a later
//!   sequencer, above everything visible at that point.
//!
//! So once a reader has seen number `n`, every event that later becomes
//! visible has a number above `n`. Events of one aggregate keep their order:
//! a later unit of work on the aggregate starts after the earlier one
//! committed, so its events have a larger `insert_order` and are never
//! numbered before the earlier ones.
//!
//! The sequencer numbers at most [`SEQUENCER_BATCH`] events per run; a
//! reader that asks for more simply sees the rest on its next read.

use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use wallet_core::{DomainEvent, EventData, StoredEvent, WalletError};

use crate::codec::{column, saturate, signed, unsigned};
use crate::error::{map_error, run_with};
use crate::write::{parameters, unnest_columns, UnnestColumns};

/// Key of the advisory lock that serialises sequencers ("OUTBOX" in ASCII).
pub(crate) const SEQUENCER_LOCK_KEY: i64 = 0x4f55_5442_4f58;
/// The most events one sequencer run numbers.
pub(crate) const SEQUENCER_BATCH: i64 = 10_000;

unnest_columns! {
    /// The outbox part of the write statement: one array per column.
    pub(crate) struct EventColumns<'a> {
        id: Uuid => "uuid",
        event_type: &'static str => "text",
        aggregate_id: Uuid => "uuid",
        aggregate_version: i64 => "bigint",
        user_id: Uuid => "uuid",
        occurred_at: chrono::DateTime<chrono::Utc> => "timestamptz",
        data: Json<&'a EventData> => "jsonb",
    }
}

impl<'a> EventColumns<'a> {
    /// Appends one event (a batch gathers many aggregates').
    pub fn push(&mut self, event: &'a DomainEvent) -> Result<(), WalletError> {
        self.id.push(event.id);
        self.event_type.push(event.event_type());
        self.aggregate_id.push(event.aggregate_id);
        self.aggregate_version
            .push(signed(event.aggregate_version, "event version")?);
        self.user_id.push(event.user_id);
        self.occurred_at.push(event.occurred_at);
        self.data.push(Json(&event.data));
        Ok(())
    }
}

/// The insert of events, with its array parameters from `$first`, keeping
/// their order in `insert_order`.
pub(crate) fn insert_events_sql(first: usize) -> String {
    let names = EventColumns::NAMES.join(", ");
    format!(
        "INSERT INTO outbox_events ({names}) \
         SELECT {selected} FROM UNNEST({parameters}) WITH ORDINALITY \
         AS u({names}, position) ORDER BY u.position",
        selected = EventColumns::NAMES
            .iter()
            .map(|name| format!("u.{name}"))
            .collect::<Vec<_>>()
            .join(", "),
        parameters = parameters(first, EventColumns::TYPES),
    )
}

/// Numbers the committed, unnumbered events (see the module docs). Returns
/// how many it numbered.
pub async fn run_sequencer(conn: &mut PgConnection) -> Result<u64, WalletError> {
    let pending: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM outbox_events WHERE sequence IS NULL)")
            .fetch_one(&mut *conn)
            .await
            .map_err(map_error)?;
    if !pending {
        // Nothing to number; a number handed out later will still be above
        // every number visible now, so skipping is safe.
        return Ok(0);
    }
    let mut transaction = sqlx::Connection::begin(&mut *conn)
        .await
        .map_err(map_error)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SEQUENCER_LOCK_KEY)
        .execute(&mut *transaction)
        .await
        .map_err(map_error)?;
    let numbered = sqlx::query(
        "WITH last AS (SELECT coalesce(max(sequence), 0) AS value FROM outbox_events), \
         pending AS ( \
             SELECT p.id, row_number() OVER (ORDER BY p.insert_order) AS position \
             FROM (SELECT id, insert_order FROM outbox_events WHERE sequence IS NULL \
                   ORDER BY insert_order LIMIT $1) p) \
         UPDATE outbox_events o SET sequence = last.value + pending.position \
         FROM last, pending WHERE o.id = pending.id",
    )
    .bind(SEQUENCER_BATCH)
    .execute(&mut *transaction)
    .await
    .map_err(map_error)?
    .rows_affected();
    transaction.commit().await.map_err(map_error)?;
    Ok(numbered)
}

/// Numbers what is pending, then reads up to `limit` events after `after`.
pub(crate) async fn read_events(
    pool: &PgPool,
    after: u64,
    limit: u32,
) -> Result<Vec<StoredEvent>, WalletError> {
    let mut conn = pool.acquire().await.map_err(map_error)?;
    run_sequencer(&mut conn).await?;
    let sql = "SELECT sequence, id, aggregate_id, aggregate_version, user_id, occurred_at, data \
         FROM outbox_events WHERE sequence > $1 ORDER BY sequence LIMIT $2";
    let rows = run_with(sql, (saturate(after), i64::from(limit)), |query| {
        query.fetch_all(&mut *conn)
    })
    .await?;
    rows.iter()
        .map(|row| {
            let Json(data): Json<EventData> = column(row, "data")?;
            Ok(StoredEvent {
                sequence: unsigned(column(row, "sequence")?, "event sequence")?,
                event: DomainEvent {
                    id: column(row, "id")?,
                    aggregate_id: column(row, "aggregate_id")?,
                    aggregate_version: unsigned(
                        column(row, "aggregate_version")?,
                        "event version",
                    )?,
                    user_id: column(row, "user_id")?,
                    occurred_at: column(row, "occurred_at")?,
                    data,
                },
            })
        })
        .collect()
}
