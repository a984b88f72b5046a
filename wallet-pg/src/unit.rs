//! The create unit of work, one generic shape for both aggregates, and
//! the answer to a key another unit of work stored first.
//!
//! Creating a wallet or a point account is a single statement on a pool
//! connection, with no explicit transaction: after one check (is there
//! one already, or a record for the key?), the one write statement
//! inserts the row, the events and the record, atomically by itself. A
//! race between creators ends on the unique index of `user_id` or of the
//! key. Updates go through the batching writer ([`crate::batch`]), a lone
//! command being a batch of one.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use wallet_core::{Applied, Claim, Create, IdempotencyRecord, WalletError};

use crate::aggregate::{Aggregate, AggregateColumns};
use crate::codec::{column, from_json};
use crate::error::map_error;
use crate::idempotency::{find_record, record_of, replay, RECORD_JSON};
use crate::write::{RowWrite, WriteColumns};

/// Creates the aggregate `factory` makes for `user_id`, storing the
/// claim's record with it; a claim whose key has a record replays it.
pub(crate) async fn create<A: Aggregate>(
    pool: &PgPool,
    unit: Create<A>,
) -> Result<Applied, WalletError> {
    let Create {
        user_id,
        claim,
        factory,
    } = unit;
    let mut conn = pool.acquire().await.map_err(map_error)?;
    if let Some(answer) = existing::<A>(&mut conn, user_id, claim.as_ref()).await? {
        return answer;
    }
    let (mut aggregate, output) = factory()?;
    if aggregate.user_id() != user_id {
        return Err(WalletError::Internal(
            "the factory made an aggregate for another user".into(),
        ));
    }
    let changes = aggregate.take();
    let records: Vec<IdempotencyRecord> = claim
        .clone()
        .map(|c| record_of(c, &output, aggregate.created_at()))
        .into_iter()
        .collect();
    let mut columns = WriteColumns::default();
    A::columns(&mut columns).push(
        &aggregate,
        changes.expected_version,
        &changes.transactions,
        &changes.touched,
    )?;
    columns.push_events(&changes.events)?;
    columns.push_records(&records);
    match columns
        .write(&mut conn, RowWrite::of(changes.created))
        .await
    {
        Ok(_) => Ok(Applied {
            output,
            replayed: false,
        }),
        // Another creator won the race: replay its record when it used
        // the same key, else the aggregate exists.
        Err(error) if error == A::EXISTS => replay_or(&mut conn, claim.as_ref(), error).await,
        Err(WalletError::IdempotencyKeyInFlight) => {
            replay_or(&mut conn, claim.as_ref(), WalletError::ConcurrencyConflict).await
        }
        Err(error) => Err(error),
    }
}

/// The answer before any write: the replay of the claim's record if its
/// key has one, else the aggregate's `exists` error if the user has one.
async fn existing<A: Aggregate>(
    conn: &mut PgConnection,
    user_id: Uuid,
    claim: Option<&Claim>,
) -> Result<Option<Result<Applied, WalletError>>, WalletError> {
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM {table} WHERE user_id = $1) AS taken, \
         (SELECT {RECORD_JSON} FROM idempotency_records r \
          WHERE r.user_id = $2 AND r.key = $3) AS record",
        table = A::TABLE
    );
    let row = sqlx::query(&sql)
        .bind(user_id)
        .bind(claim.map(|c| c.user_id))
        .bind(claim.map(|c| c.key.as_str()))
        .fetch_one(&mut *conn)
        .await
        .map_err(map_error)?;
    let record: Option<serde_json::Value> = column(&row, "record")?;
    if let (Some(record), Some(claim)) = (record, claim) {
        let record: IdempotencyRecord = from_json(record, "idempotency record")?;
        return Ok(Some(replay(&record, claim)));
    }
    if column::<bool>(&row, "taken")? {
        return Ok(Some(Err(A::EXISTS)));
    }
    Ok(None)
}

/// After a unit of work lost a race on its key (or on the aggregate): the
/// replay of the record the winner stored for the claim's key, or
/// `otherwise` when there is no claim or no record (a record purged again
/// in between answers `otherwise` too, which for a lost key is a
/// `concurrency_conflict` the service retries).
pub(crate) async fn replay_or(
    conn: &mut PgConnection,
    claim: Option<&Claim>,
    otherwise: WalletError,
) -> Result<Applied, WalletError> {
    let Some(claim) = claim else {
        return Err(otherwise);
    };
    match find_record(conn, claim.user_id, claim.key.as_str()).await? {
        Some(record) => replay(&record, claim),
        None => Err(otherwise),
    }
}
