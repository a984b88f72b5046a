//! The point account unit of work, in the same three reusable steps as the
//! wallet's: [`lock_point_account`], the mutation, [`write_point_account`].

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;
use wallet_core::points::PointChanges;
use wallet_core::store::{PointAccountFactory, PointMutation};
use wallet_core::{
    Applied, Claim, IdempotencyRecord, LotState, PointAccount, PointLot, PointTransaction,
    WalletError,
};

use crate::codec::{column, from_json, signed, unsigned};
use crate::error::map_error;
use crate::idempotency::{
    find_record, insert_records_sql, record_of, replay, RecordColumns, RECORD_JSON,
};
use crate::outbox::{insert_events_sql, EventColumns};
use crate::wallets::{classify_write_error, parameters, replay_taken_key, Failure, PgQuery};
use crate::PgStore;

/// A point account loaded under its row lock, with the idempotency records
/// found for the keys asked about.
#[derive(Debug)]
pub struct LockedPointAccount {
    pub account: PointAccount,
    pub records: Vec<IdempotencyRecord>,
}

impl LockedPointAccount {
    /// The record stored for `key`, if any.
    pub fn record(&self, key: &str) -> Option<&IdempotencyRecord> {
        self.records.iter().find(|r| r.key.as_str() == key)
    }
}

/// Locks the user's point account row and loads the aggregate with its
/// live lots (pending, or available with points left). Each lot of
/// `lot_ids` that is the account's is remembered on the aggregate
/// ([`PointAccount::remember_lot`]), so a command naming a lot that is no
/// longer live answers `lot_not_pending`. Loads the user's idempotency
/// records for `keys`. `None` if there is no account. Must run inside a
/// transaction.
pub async fn lock_point_account(
    conn: &mut PgConnection,
    user_id: Uuid,
    lot_ids: &[Uuid],
    keys: &[&str],
) -> Result<Option<LockedPointAccount>, WalletError> {
    let Some(account_row) = sqlx::query(
        "SELECT id, user_id, lifetime_earned, version, transaction_count, created_at, updated_at \
         FROM point_accounts WHERE user_id = $1 FOR UPDATE",
    )
    .bind(user_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_error)?
    else {
        return Ok(None);
    };
    let account_id: Uuid = column(&account_row, "id")?;
    let row = sqlx::query(load_sql())
        .bind(account_id)
        .bind(lot_ids)
        .bind(user_id)
        .bind(keys)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_error)?;
    let lots: Vec<PointLot> = from_json(column(&row, "lots")?, "point lots")?;
    let known: Vec<Uuid> = column(&row, "known_lots")?;
    let records: Vec<IdempotencyRecord> =
        from_json(column(&row, "records")?, "idempotency records")?;
    let mut account = PointAccount::restore(
        account_id,
        column(&account_row, "user_id")?,
        lots,
        column(&account_row, "lifetime_earned")?,
        unsigned(column(&account_row, "version")?, "point account version")?,
        unsigned(
            column(&account_row, "transaction_count")?,
            "point transaction count",
        )?,
        column(&account_row, "created_at")?,
        column(&account_row, "updated_at")?,
    );
    for lot_id in known {
        account.remember_lot(lot_id);
    }
    Ok(Some(LockedPointAccount { account, records }))
}

fn load_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT \
             coalesce((SELECT json_agg(json_build_object('id', l.id, 'accountId', l.account_id, \
                 'points', l.points, 'remaining', l.remaining, 'state', l.state, \
                 'source', l.source, 'earnedAt', l.earned_at, 'expiresAt', l.expires_at)) \
                 FROM point_lots l WHERE l.account_id = $1 AND l.remaining > 0), \
                 '[]'::json) AS lots, \
             ARRAY(SELECT l.id FROM point_lots l WHERE l.id = ANY($2) AND l.account_id = $1) \
                 AS known_lots, \
             coalesce((SELECT json_agg({RECORD_JSON}) FROM idempotency_records r \
                 WHERE r.user_id = $3 AND r.key = ANY($4)), '[]'::json) AS records"
        )
    })
}

/// Persists a point account's changes and the given idempotency records in
/// one statement (see [`crate::wallets::write_wallet`]).
pub async fn write_point_account(
    conn: &mut PgConnection,
    account: &PointAccount,
    changes: &PointChanges,
    records: &[IdempotencyRecord],
) -> Result<(), WalletError> {
    let sql = write_sql(changes.created);
    // A lot may be touched more than once by one command; its last picture
    // is its state now.
    let mut order: Vec<Uuid> = Vec::new();
    let mut latest: HashMap<Uuid, &PointLot> = HashMap::new();
    for lot in &changes.touched_lots {
        if latest.insert(lot.id, lot).is_none() {
            order.push(lot.id);
        }
    }
    let lots: Vec<&PointLot> = order
        .iter()
        .filter_map(|id| latest.get(id).copied())
        .collect();
    let transactions = &changes.transactions;
    let events = EventColumns::of(&changes.events)?;
    let records = RecordColumns::of(records);
    let mut sequences = Vec::with_capacity(transactions.len());
    for transaction in transactions {
        sequences.push(signed(transaction.sequence, "point transaction sequence")?);
    }
    let view = account.view();
    let written: i64 = sqlx::query_scalar(sql)
        // The account row: $1 ..= $10.
        .bind(account.id)
        .bind(account.user_id)
        .bind(view.available_points)
        .bind(view.pending_points)
        .bind(account.lifetime_earned)
        .bind(signed(account.version, "point account version")?)
        .bind(signed(
            account.transaction_count,
            "point transaction count",
        )?)
        .bind(account.created_at)
        .bind(account.updated_at)
        .bind(signed(changes.expected_version, "point account version")?)
        // Lots: $11 ..= $17.
        .bind(lots.iter().map(|l| l.id).collect::<Vec<_>>())
        .bind(lots.iter().map(|l| l.points).collect::<Vec<_>>())
        .bind(lots.iter().map(|l| l.remaining).collect::<Vec<_>>())
        .bind(lots.iter().map(|l| lot_state(l.state)).collect::<Vec<_>>())
        .bind(lots.iter().map(|l| l.source.as_str()).collect::<Vec<_>>())
        .bind(lots.iter().map(|l| l.earned_at).collect::<Vec<_>>())
        .bind(lots.iter().map(|l| l.expires_at).collect::<Vec<_>>())
        // Transactions: $18 ..= $28.
        .bind(transactions.iter().map(|t| t.id).collect::<Vec<_>>())
        .bind(sequences)
        .bind(
            transactions
                .iter()
                .map(|t| t.transaction_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(transactions.iter().map(|t| t.points).collect::<Vec<_>>())
        .bind(
            transactions
                .iter()
                .map(|t| t.balance_after)
                .collect::<Vec<_>>(),
        )
        .bind(
            transactions
                .iter()
                .map(|t| t.source.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            transactions
                .iter()
                .map(|t| t.description.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(transactions.iter().map(|t| t.lot_id).collect::<Vec<_>>())
        .bind(
            transactions
                .iter()
                .map(|t| t.expires_at)
                .collect::<Vec<_>>(),
        )
        .bind(
            transactions
                .iter()
                .map(|t| t.idempotency_key.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            transactions
                .iter()
                .map(|t| t.created_at)
                .collect::<Vec<_>>(),
        )
        // Events: $29 ..= $35.
        .bind(events.ids)
        .bind(events.types)
        .bind(events.aggregate_ids)
        .bind(events.aggregate_versions)
        .bind(events.user_ids)
        .bind(events.occurred_at)
        .bind(events.data)
        // Idempotency records: $36 ..= $40.
        .bind(records.user_ids)
        .bind(records.keys)
        .bind(records.fingerprints)
        .bind(records.outputs)
        .bind(records.created_at)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_error)?;
    if written != 1 {
        return Err(WalletError::ConcurrencyConflict);
    }
    Ok(())
}

fn lot_state(state: LotState) -> &'static str {
    match state {
        LotState::Pending => "Pending",
        LotState::Available => "Available",
    }
}

fn write_sql(created: bool) -> &'static str {
    static INSERT: OnceLock<String> = OnceLock::new();
    static UPDATE: OnceLock<String> = OnceLock::new();
    let account_row = if created {
        "INSERT INTO point_accounts (id, user_id, available_points, pending_points, \
         lifetime_earned, version, transaction_count, created_at, updated_at) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE $10::bigint = 0 RETURNING 1"
    } else {
        "UPDATE point_accounts SET available_points = $3, pending_points = $4, \
         lifetime_earned = $5, version = $6, transaction_count = $7, updated_at = $9 \
         WHERE id = $1 AND user_id = $2 AND created_at = $8 AND version = $10 RETURNING 1"
    };
    let cell = if created { &INSERT } else { &UPDATE };
    cell.get_or_init(|| {
        format!(
            "WITH account_row AS ({account_row}), \
             lots AS (INSERT INTO point_lots (id, account_id, points, remaining, state, source, \
                 earned_at, expires_at) \
                 SELECT u.id, $1, u.points, u.remaining, u.state, u.source, u.earned_at, \
                 u.expires_at \
                 FROM UNNEST($11::uuid[], $12::bigint[], $13::bigint[], $14::text[], \
                 $15::text[], $16::timestamptz[], $17::timestamptz[]) \
                 AS u(id, points, remaining, state, source, earned_at, expires_at) \
                 ON CONFLICT (id) DO UPDATE SET remaining = EXCLUDED.remaining, \
                 state = EXCLUDED.state WHERE point_lots.account_id = EXCLUDED.account_id), \
             transactions AS (INSERT INTO point_transactions (account_id, sequence, id, \
                 transaction_type, points, balance_after, source, description, lot_id, \
                 expires_at, idempotency_key, created_at) \
                 SELECT $1, u.sequence, u.id, u.transaction_type, u.points, u.balance_after, \
                 u.source, u.description, u.lot_id, u.expires_at, u.idempotency_key, \
                 u.created_at \
                 FROM UNNEST($18::uuid[], $19::bigint[], $20::text[], $21::bigint[], \
                 $22::bigint[], $23::text[], $24::text[], $25::uuid[], $26::timestamptz[], \
                 $27::text[], $28::timestamptz[]) \
                 AS u(id, sequence, transaction_type, points, balance_after, source, \
                 description, lot_id, expires_at, idempotency_key, created_at)), \
             events AS ({events}), \
             records AS ({records}) \
             SELECT count(*) FROM account_row",
            events = insert_events_sql(29),
            records = insert_records_sql(36),
        )
    })
}

impl PgStore {
    pub(crate) async fn create_point_account_unit(
        &self,
        user_id: Uuid,
        claim: Option<Claim>,
        factory: PointAccountFactory,
    ) -> Result<Applied, WalletError> {
        let mut conn = self.primary.acquire().await.map_err(map_error)?;
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM point_accounts WHERE user_id = $1) AS taken, \
             (SELECT json_build_object('user_id', r.user_id, 'key', r.key, \
                 'fingerprint', r.fingerprint, 'output', r.output, 'created_at', r.created_at) \
              FROM idempotency_records r WHERE r.user_id = $2 AND r.key = $3) AS record",
        )
        .bind(user_id)
        .bind(claim.as_ref().map(|c| c.user_id))
        .bind(claim.as_ref().map(|c| c.key.as_str()))
        .fetch_one(&mut *conn)
        .await
        .map_err(map_error)?;
        let record: Option<serde_json::Value> = column(&row, "record")?;
        if let (Some(record), Some(claim)) = (record, claim.as_ref()) {
            let record: IdempotencyRecord = from_json(record, "idempotency record")?;
            return replay(&record, claim);
        }
        if column::<bool>(&row, "taken")? {
            return Err(WalletError::PointAccountExists);
        }
        let (mut account, output) = factory()?;
        if account.user_id != user_id {
            return Err(WalletError::Internal(
                "factory made an account for another user".into(),
            ));
        }
        let changes = account.take_changes();
        let records: Vec<IdempotencyRecord> = claim
            .clone()
            .map(|c| record_of(c, &output, account.created_at))
            .into_iter()
            .collect();
        match write_point_account(&mut conn, &account, &changes, &records).await {
            Ok(()) => Ok(Applied {
                output,
                replayed: false,
            }),
            Err(WalletError::PointAccountExists) => match claim.as_ref() {
                Some(claim) => {
                    match find_record(&mut conn, claim.user_id, claim.key.as_str()).await? {
                        Some(record) => replay(&record, claim),
                        None => Err(WalletError::PointAccountExists),
                    }
                }
                None => Err(WalletError::PointAccountExists),
            },
            Err(error) => match classify_write_error(error) {
                Failure::KeyTaken => replay_taken_key(&mut conn, claim.as_ref()).await,
                Failure::Error(error) => Err(error),
            },
        }
    }

    pub(crate) async fn update_point_account_unit(
        &self,
        user_id: Uuid,
        lot_id: Option<Uuid>,
        claim: Option<Claim>,
        mutation: PointMutation,
    ) -> Result<Applied, WalletError> {
        let mut conn = self.primary.acquire().await.map_err(map_error)?;
        let mut transaction = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(map_error)?;
        let result =
            update_point_account_in(&mut transaction, user_id, lot_id, claim.as_ref(), &mutation)
                .await;
        match result {
            Ok((applied, true)) => {
                transaction.commit().await.map_err(map_error)?;
                Ok(applied)
            }
            Ok((applied, false)) => {
                transaction.rollback().await.map_err(map_error)?;
                Ok(applied)
            }
            Err(Failure::KeyTaken) => {
                let _ = transaction.rollback().await;
                replay_taken_key(&mut conn, claim.as_ref()).await
            }
            Err(Failure::Error(error)) => {
                let _ = transaction.rollback().await;
                Err(error)
            }
        }
    }
}

/// The body of a point unit of work inside a transaction. Returns the
/// result and whether anything was written.
async fn update_point_account_in(
    conn: &mut PgConnection,
    user_id: Uuid,
    lot_id: Option<Uuid>,
    claim: Option<&Claim>,
    mutation: &PointMutation,
) -> Result<(Applied, bool), Failure> {
    let lot_ids: Vec<Uuid> = lot_id.into_iter().collect();
    let keys: Vec<&str> = claim.iter().map(|c| c.key.as_str()).collect();
    let Some(mut locked) = lock_point_account(conn, user_id, &lot_ids, &keys).await? else {
        // Like the in-memory store, a key that has a record answers from
        // it even when there is nothing to change.
        if let Some(claim) = claim {
            if let Some(record) = find_record(conn, claim.user_id, claim.key.as_str()).await? {
                return Ok((replay(&record, claim)?, false));
            }
        }
        return Err(WalletError::PointAccountNotFound.into());
    };
    if let Some(claim) = claim {
        if let Some(record) = locked.record(claim.key.as_str()) {
            return Ok((replay(record, claim)?, false));
        }
    }
    let output = mutation(&mut locked.account)?;
    if locked.account.changes().is_empty() {
        return Ok((
            Applied {
                output,
                replayed: false,
            },
            false,
        ));
    }
    let changes = locked.account.take_changes();
    let records: Vec<IdempotencyRecord> = claim
        .cloned()
        .map(|c| record_of(c, &output, locked.account.updated_at))
        .into_iter()
        .collect();
    write_point_account(conn, &locked.account, &changes, &records)
        .await
        .map_err(classify_write_error)?;
    Ok((
        Applied {
            output,
            replayed: false,
        },
        true,
    ))
}

// ---- many accounts at once (the batching writer) --------------------------

/// Locks the point accounts of `user_ids` (in user id order) and loads each
/// with its live lots; each lot of `lot_ids` that is an account's own is
/// remembered on it ([`PointAccount::remember_lot`]). Users without an
/// account are absent from the answer. Must run inside a transaction.
///
/// One statement locks and loads, with the consistency check of
/// [`crate::wallets::lock_wallets`]: accounts whose lock waited for a
/// change are loaded again in a second statement.
pub async fn lock_point_accounts(
    conn: &mut PgConnection,
    user_ids: &[Uuid],
    lot_ids: &[Uuid],
) -> Result<Vec<PointAccount>, WalletError> {
    if user_ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(lock_many_sql())
        .bind(user_ids)
        .bind(lot_ids)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_error)?;
    let mut contents: HashMap<Uuid, (Vec<PointLot>, Vec<Uuid>)> =
        HashMap::with_capacity(rows.len());
    let mut stale = Vec::new();
    for row in &rows {
        let id: Uuid = column(row, "id")?;
        let locked: i64 = column(row, "version")?;
        let seen: Option<i64> = column(row, "seen_version")?;
        if seen == Some(locked) {
            let lots: Vec<PointLot> = from_json(column(row, "lots")?, "point lots")?;
            let known: Vec<Uuid> = column(row, "known_lots")?;
            contents.insert(id, (lots, known));
        } else {
            stale.push(id);
        }
    }
    if !stale.is_empty() {
        let loaded = sqlx::query(load_many_sql())
            .bind(&stale)
            .bind(lot_ids)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_error)?;
        for row in &loaded {
            let lots: Vec<PointLot> = from_json(column(row, "lots")?, "point lots")?;
            let known: Vec<Uuid> = column(row, "known_lots")?;
            contents.insert(column(row, "id")?, (lots, known));
        }
    }
    let mut accounts = Vec::with_capacity(rows.len());
    for row in &rows {
        let account_id: Uuid = column(row, "id")?;
        let (lots, known) = contents
            .remove(&account_id)
            .ok_or_else(|| WalletError::Internal("a locked point account was not loaded".into()))?;
        let mut account = PointAccount::restore(
            account_id,
            column(row, "user_id")?,
            lots,
            column(row, "lifetime_earned")?,
            unsigned(column(row, "version")?, "point account version")?,
            unsigned(column(row, "transaction_count")?, "point transaction count")?,
            column(row, "created_at")?,
            column(row, "updated_at")?,
        );
        for lot_id in known {
            account.remember_lot(lot_id);
        }
        accounts.push(account);
    }
    Ok(accounts)
}

/// The live lots of an account as JSON, and the ids of `$2` that are its
/// own, for an account row `a`.
const LOTS_OF_ACCOUNT: &str = "coalesce((SELECT json_agg(json_build_object('id', l.id, \
     'accountId', l.account_id, 'points', l.points, 'remaining', l.remaining, \
     'state', l.state, 'source', l.source, 'earnedAt', l.earned_at, \
     'expiresAt', l.expires_at)) \
     FROM point_lots l WHERE l.account_id = a.id AND l.remaining > 0), '[]'::json) AS lots, \
     ARRAY(SELECT l.id FROM point_lots l WHERE l.id = ANY($2) AND l.account_id = a.id) \
     AS known_lots";

fn lock_many_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT a.id, a.user_id, a.lifetime_earned, a.version, a.transaction_count, \
             a.created_at, a.updated_at, \
             (SELECT s.version FROM point_accounts s WHERE s.id = a.id) AS seen_version, \
             {LOTS_OF_ACCOUNT} \
             FROM point_accounts a WHERE a.user_id = ANY($1) ORDER BY a.user_id FOR UPDATE"
        )
    })
}

fn load_many_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| format!("SELECT a.id, {LOTS_OF_ACCOUNT} FROM UNNEST($1::uuid[]) AS a(id)"))
}

/// The changes of many loaded point accounts as parallel arrays, bound into
/// the batching writer's one write statement (see
/// [`crate::wallets::WalletColumns`]): the account rows, the touched lots
/// and the new transactions.
#[derive(Default)]
pub(crate) struct PointAccountColumns<'a> {
    rows: AccountRowColumns,
    lots: LotColumns<'a>,
    transactions: PointTransactionColumns<'a>,
}

impl<'a> PointAccountColumns<'a> {
    /// How many parameters [`PointAccountColumns::bind`] binds.
    pub const PARAMETERS: usize = 28;

    /// Adds one account: as it is now, loaded at `expected_version`, with
    /// the transactions and the touched lots (pictures in the order taken:
    /// the last picture of a lot is its state now) of every command
    /// applied to it since.
    pub fn push(
        &mut self,
        account: &'a PointAccount,
        expected_version: u64,
        transactions: &'a [PointTransaction],
        touched_lots: &'a [PointLot],
    ) -> Result<(), WalletError> {
        self.rows.push(account, expected_version)?;
        // A lot touched by several commands is written once, as it is now.
        let mut order: Vec<Uuid> = Vec::new();
        let mut latest: HashMap<Uuid, &PointLot> = HashMap::new();
        for lot in touched_lots {
            if latest.insert(lot.id, lot).is_none() {
                order.push(lot.id);
            }
        }
        for lot_id in &order {
            if let Some(lot) = latest.get(lot_id) {
                self.lots.push(account.id, lot);
            }
        }
        for transaction in transactions {
            self.transactions.push(transaction)?;
        }
        Ok(())
    }

    /// How many account rows the statement must update.
    pub fn len(&self) -> usize {
        self.rows.ids.len()
    }

    /// The statement's common table expressions for point accounts, with
    /// their parameters numbered from `$first`: `account_rows` (one row
    /// per account updated), `point_lots_written`,
    /// `point_transactions_written`.
    pub fn ctes(first: usize) -> String {
        let p = |offset: usize| first + offset;
        format!(
            "account_rows AS (UPDATE point_accounts a SET \
                 available_points = u.available_points, pending_points = u.pending_points, \
                 lifetime_earned = u.lifetime_earned, version = u.version, \
                 transaction_count = u.transaction_count, updated_at = u.updated_at \
                 FROM UNNEST({rows}) \
                 AS u(id, available_points, pending_points, lifetime_earned, version, \
                 transaction_count, updated_at, expected_version) \
                 WHERE a.id = u.id AND a.version = u.expected_version RETURNING 1), \
             point_lots_written AS (INSERT INTO point_lots (id, account_id, points, remaining, \
                 state, source, earned_at, expires_at) \
                 SELECT u.id, u.account_id, u.points, u.remaining, u.state, u.source, \
                 u.earned_at, u.expires_at \
                 FROM UNNEST({lots}) \
                 AS u(id, account_id, points, remaining, state, source, earned_at, expires_at) \
                 ON CONFLICT (id) DO UPDATE SET remaining = EXCLUDED.remaining, \
                 state = EXCLUDED.state WHERE point_lots.account_id = EXCLUDED.account_id), \
             point_transactions_written AS (INSERT INTO point_transactions (account_id, \
                 sequence, id, transaction_type, points, balance_after, source, description, \
                 lot_id, expires_at, idempotency_key, created_at) \
                 SELECT u.account_id, u.sequence, u.id, u.transaction_type, u.points, \
                 u.balance_after, u.source, u.description, u.lot_id, u.expires_at, \
                 u.idempotency_key, u.created_at \
                 FROM UNNEST({transactions}) \
                 AS u(account_id, id, sequence, transaction_type, points, balance_after, \
                 source, description, lot_id, expires_at, idempotency_key, created_at))",
            rows = parameters(
                p(0),
                &[
                    "uuid",
                    "bigint",
                    "bigint",
                    "bigint",
                    "bigint",
                    "bigint",
                    "timestamptz",
                    "bigint"
                ]
            ),
            lots = parameters(
                p(8),
                &[
                    "uuid",
                    "uuid",
                    "bigint",
                    "bigint",
                    "text",
                    "text",
                    "timestamptz",
                    "timestamptz"
                ]
            ),
            transactions = parameters(
                p(16),
                &[
                    "uuid",
                    "uuid",
                    "bigint",
                    "text",
                    "bigint",
                    "bigint",
                    "text",
                    "text",
                    "uuid",
                    "timestamptz",
                    "text",
                    "timestamptz"
                ]
            ),
        )
    }

    /// Binds the [`PointAccountColumns::PARAMETERS`] arrays, in the order of
    /// [`PointAccountColumns::ctes`].
    pub fn bind<'q>(self, query: PgQuery<'q>) -> PgQuery<'q>
    where
        'a: 'q,
    {
        let PointAccountColumns {
            rows,
            lots,
            transactions,
        } = self;
        query
            .bind(rows.ids)
            .bind(rows.available)
            .bind(rows.pending)
            .bind(rows.lifetime_earned)
            .bind(rows.versions)
            .bind(rows.transaction_counts)
            .bind(rows.updated_at)
            .bind(rows.expected_versions)
            .bind(lots.ids)
            .bind(lots.account_ids)
            .bind(lots.points)
            .bind(lots.remaining)
            .bind(lots.states)
            .bind(lots.sources)
            .bind(lots.earned_at)
            .bind(lots.expires_at)
            .bind(transactions.account_ids)
            .bind(transactions.ids)
            .bind(transactions.sequences)
            .bind(transactions.types)
            .bind(transactions.points)
            .bind(transactions.balances_after)
            .bind(transactions.sources)
            .bind(transactions.descriptions)
            .bind(transactions.lot_ids)
            .bind(transactions.expires_at)
            .bind(transactions.keys)
            .bind(transactions.created_at)
    }
}

#[derive(Default)]
struct AccountRowColumns {
    ids: Vec<Uuid>,
    available: Vec<i64>,
    pending: Vec<i64>,
    lifetime_earned: Vec<i64>,
    versions: Vec<i64>,
    transaction_counts: Vec<i64>,
    updated_at: Vec<DateTime<Utc>>,
    expected_versions: Vec<i64>,
}

impl AccountRowColumns {
    fn push(&mut self, account: &PointAccount, expected_version: u64) -> Result<(), WalletError> {
        self.ids.push(account.id);
        self.available.push(account.available_points());
        self.pending.push(account.pending_points());
        self.lifetime_earned.push(account.lifetime_earned);
        self.versions
            .push(signed(account.version, "point account version")?);
        self.transaction_counts.push(signed(
            account.transaction_count,
            "point transaction count",
        )?);
        self.updated_at.push(account.updated_at);
        self.expected_versions
            .push(signed(expected_version, "point account version")?);
        Ok(())
    }
}

#[derive(Default)]
struct LotColumns<'a> {
    ids: Vec<Uuid>,
    account_ids: Vec<Uuid>,
    points: Vec<i64>,
    remaining: Vec<i64>,
    states: Vec<&'static str>,
    sources: Vec<&'a str>,
    earned_at: Vec<DateTime<Utc>>,
    expires_at: Vec<Option<DateTime<Utc>>>,
}

impl<'a> LotColumns<'a> {
    fn push(&mut self, account_id: Uuid, lot: &'a PointLot) {
        self.ids.push(lot.id);
        self.account_ids.push(account_id);
        self.points.push(lot.points);
        self.remaining.push(lot.remaining);
        self.states.push(lot_state(lot.state));
        self.sources.push(lot.source.as_str());
        self.earned_at.push(lot.earned_at);
        self.expires_at.push(lot.expires_at);
    }
}

#[derive(Default)]
struct PointTransactionColumns<'a> {
    account_ids: Vec<Uuid>,
    ids: Vec<Uuid>,
    sequences: Vec<i64>,
    types: Vec<&'static str>,
    points: Vec<i64>,
    balances_after: Vec<i64>,
    sources: Vec<&'a str>,
    descriptions: Vec<Option<&'a str>>,
    lot_ids: Vec<Option<Uuid>>,
    expires_at: Vec<Option<DateTime<Utc>>>,
    keys: Vec<Option<&'a str>>,
    created_at: Vec<DateTime<Utc>>,
}

impl<'a> PointTransactionColumns<'a> {
    fn push(&mut self, transaction: &'a PointTransaction) -> Result<(), WalletError> {
        self.account_ids.push(transaction.account_id);
        self.ids.push(transaction.id);
        self.sequences
            .push(signed(transaction.sequence, "point transaction sequence")?);
        self.types.push(transaction.transaction_type.as_str());
        self.points.push(transaction.points);
        self.balances_after.push(transaction.balance_after);
        self.sources.push(transaction.source.as_str());
        self.descriptions.push(transaction.description.as_deref());
        self.lot_ids.push(transaction.lot_id);
        self.expires_at.push(transaction.expires_at);
        self.keys.push(transaction.idempotency_key.as_deref());
        self.created_at.push(transaction.created_at);
        Ok(())
    }
}
