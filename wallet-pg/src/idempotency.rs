//! Idempotency records: stored in the same statement as the changes of the
//! unit of work that earned them, looked up under the aggregate's row lock.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;
use wallet_core::{Applied, Claim, CommandOutput, IdempotencyRecord, WalletError};

use crate::codec::{column, from_json};
use crate::error::run_with;
use crate::write::{unnest_columns, UnnestColumns};

/// A record as a JSON object in the shape of [`IdempotencyRecord`].
pub(crate) const RECORD_JSON: &str = "json_build_object('user_id', r.user_id, 'key', r.key, \
     'fingerprint', r.fingerprint, 'output', r.output, 'created_at', r.created_at)";

/// The record a successful unit of work stores for its claim.
pub fn record_of(claim: Claim, output: &CommandOutput, now: DateTime<Utc>) -> IdempotencyRecord {
    IdempotencyRecord {
        user_id: claim.user_id,
        key: claim.key,
        fingerprint: claim.fingerprint,
        output: output.clone(),
        created_at: now,
    }
}

/// The answer to a claim whose key already has a record.
pub(crate) fn replay(record: &IdempotencyRecord, claim: &Claim) -> Result<Applied, WalletError> {
    record.replay(claim).map(|output| Applied {
        output,
        replayed: true,
    })
}

/// The stored record of a claim's key, if any.
pub async fn find_record(
    conn: &mut PgConnection,
    user_id: Uuid,
    key: &str,
) -> Result<Option<IdempotencyRecord>, WalletError> {
    let sql = format!("SELECT {RECORD_JSON} AS record FROM idempotency_records r WHERE r.user_id = $1 AND r.key = $2");
    let row = run_with(&sql, (user_id, key), |query| query.fetch_optional(conn)).await?;
    match row {
        Some(row) => Ok(Some(from_json(
            column(&row, "record")?,
            "idempotency record",
        )?)),
        None => Ok(None),
    }
}

/// The stored records of many `(user, key)` pairs, in one statement (the
/// batching writer asks for all the claims of a batch at once).
pub async fn find_records(
    conn: &mut PgConnection,
    user_ids: &[Uuid],
    keys: &[&str],
) -> Result<Vec<IdempotencyRecord>, WalletError> {
    if user_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT coalesce(json_agg({RECORD_JSON}), '[]'::json) AS records \
         FROM idempotency_records r \
         WHERE (r.user_id, r.key) IN (SELECT * FROM UNNEST($1::uuid[], $2::text[]))"
    );
    let row = run_with(&sql, (user_ids, keys), |query| query.fetch_one(conn)).await?;
    from_json(column(&row, "records")?, "idempotency records")
}

unnest_columns! {
    /// Idempotency records as parallel arrays, for the write statement.
    pub(crate) struct RecordColumns<'a> {
        user_id: Uuid => "uuid",
        key: &'a str => "text",
        fingerprint: &'a str => "text",
        output: Json<&'a CommandOutput> => "jsonb",
        created_at: DateTime<Utc> => "timestamptz",
    }
}

impl<'a> RecordColumns<'a> {
    pub fn push(&mut self, record: &'a IdempotencyRecord) {
        self.user_id.push(record.user_id);
        self.key.push(record.key.as_str());
        self.fingerprint.push(record.fingerprint.as_str());
        self.output.push(Json(&record.output));
        self.created_at.push(record.created_at);
    }
}

/// The insert of records, with its array parameters from `$first`.
pub(crate) fn insert_records_sql(first: usize) -> String {
    RecordColumns::insert("idempotency_records", first, &[])
}

/// Deletes the records created before `older_than`, in bounded batches so
/// that no single statement holds many row locks. Returns how many went.
pub(crate) async fn purge(
    pool: &sqlx::PgPool,
    older_than: DateTime<Utc>,
) -> Result<u64, WalletError> {
    const PURGE_BATCH: i64 = 10_000;
    let mut purged = 0u64;
    loop {
        let sql = "DELETE FROM idempotency_records WHERE (user_id, key) IN \
             (SELECT user_id, key FROM idempotency_records WHERE created_at < $1 LIMIT $2)";
        let deleted = run_with(sql, (older_than, PURGE_BATCH), |query| query.execute(pool))
            .await?
            .rows_affected();
        purged += deleted;
        if deleted < PURGE_BATCH as u64 {
            return Ok(purged);
        }
    }
}
