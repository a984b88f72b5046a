//! The wallet unit of work, in three steps over one connection:
//! [`lock_wallet`] (load the aggregate under its row lock), the caller's
//! mutation, and [`write_wallet`] (persist the changes, the transactions,
//! the outbox events and the idempotency records in one statement). The
//! batching writer ([`crate::batch`]) uses the many-wallet twins:
//! [`lock_wallets`] and the bulk columns of `WalletColumns`.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;
use wallet_core::store::{WalletFactory, WalletMutation};
use wallet_core::wallet::WalletChanges;
use wallet_core::{
    Applied, Claim, CommandOutput, CurrencyCode, Hold, IdempotencyRecord, Wallet, WalletError,
    WalletItem, WalletTransaction,
};

use crate::codec::{
    amount_text, column, from_json, signed, wallet_from_row, HOLD_JSON, WALLET_COLUMNS,
};
use crate::error::map_error;
use crate::idempotency::RECORD_JSON;
use crate::idempotency::{find_record, insert_records_sql, record_of, replay, RecordColumns};
use crate::outbox::{insert_events_sql, EventColumns};
use crate::PgStore;

/// A wallet loaded under its row lock, with the idempotency records found
/// for the keys asked about.
#[derive(Debug)]
pub struct LockedWallet {
    pub wallet: Wallet,
    pub records: Vec<IdempotencyRecord>,
}

impl LockedWallet {
    /// The record stored for `key`, if any.
    pub fn record(&self, key: &str) -> Option<&IdempotencyRecord> {
        self.records.iter().find(|r| r.key.as_str() == key)
    }
}

/// Locks the user's wallet row (`FOR UPDATE`, so units of work on one
/// wallet run one after another) and loads the aggregate: its items, its
/// active holds, the holds `hold_ids` (of this wallet, in any status), and
/// the user's idempotency records for `keys`. `None` if there is no wallet.
///
/// Must run inside a transaction; the lock lasts until it ends. The loads
/// run in a statement after the lock is granted, so they see everything a
/// unit of work that held the lock before has committed.
pub async fn lock_wallet(
    conn: &mut PgConnection,
    user_id: Uuid,
    hold_ids: &[Uuid],
    keys: &[&str],
) -> Result<Option<LockedWallet>, WalletError> {
    let lock_sql =
        format!("SELECT {WALLET_COLUMNS} FROM wallets w WHERE w.user_id = $1 FOR UPDATE");
    let Some(wallet_row) = sqlx::query(&lock_sql)
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_error)?
    else {
        return Ok(None);
    };
    let wallet_id: Uuid = column(&wallet_row, "id")?;
    let row = sqlx::query(load_sql())
        .bind(wallet_id)
        .bind(hold_ids)
        .bind(user_id)
        .bind(keys)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_error)?;
    let items: Vec<WalletItem> = from_json(column(&row, "items")?, "wallet items")?;
    let holds: Vec<Hold> = from_json(column(&row, "holds")?, "holds")?;
    let records: Vec<IdempotencyRecord> =
        from_json(column(&row, "records")?, "idempotency records")?;
    let wallet = wallet_from_row(&wallet_row, items, holds)?;
    Ok(Some(LockedWallet { wallet, records }))
}

fn load_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT \
             coalesce((SELECT json_agg(json_build_object('currency', i.currency, \
                 'balance', i.balance::text, 'held', i.held::text)) \
                 FROM wallet_items i WHERE i.wallet_id = $1), '[]'::json) AS items, \
             coalesce((SELECT json_agg({HOLD_JSON}) FROM holds h \
                 WHERE h.wallet_id = $1 AND (h.status = 'Active' OR h.id = ANY($2))), \
                 '[]'::json) AS holds, \
             coalesce((SELECT json_agg({RECORD_JSON}) FROM idempotency_records r \
                 WHERE r.user_id = $3 AND r.key = ANY($4)), '[]'::json) AS records"
        )
    })
}

/// Persists a wallet's changes (taken with `take_changes`) and the given
/// idempotency records in one statement: the wallet row (inserted when the
/// changes say it is new, else updated from `changes.expected_version`,
/// which the row must still have), the touched items and holds, the new
/// transactions and the outbox events. The caller holds the row lock (or
/// is inserting the wallet).
pub async fn write_wallet(
    conn: &mut PgConnection,
    wallet: &Wallet,
    changes: &WalletChanges,
    records: &[IdempotencyRecord],
) -> Result<(), WalletError> {
    let sql = if changes.created {
        write_sql(true)
    } else {
        write_sql(false)
    };
    // Items of every currency a transaction touched, as they are now.
    let currencies: BTreeSet<CurrencyCode> =
        changes.transactions.iter().map(|t| t.currency).collect();
    let items: Vec<&WalletItem> = currencies
        .iter()
        .filter_map(|c| wallet.items().get(c))
        .collect();
    let holds: Vec<&Hold> = changes
        .touched_holds
        .iter()
        .filter_map(|id| wallet.holds().get(id))
        .collect();
    let transactions = &changes.transactions;
    let events = EventColumns::of(&changes.events)?;
    let records = RecordColumns::of(records);
    let mut sequences = Vec::with_capacity(transactions.len());
    for transaction in transactions {
        sequences.push(signed(transaction.sequence, "transaction sequence")?);
    }
    let written: i64 = sqlx::query_scalar(sql)
        // The wallet row: $1 ..= $10.
        .bind(wallet.id())
        .bind(wallet.user_id())
        .bind(wallet.status().as_str())
        .bind(wallet.default_currency().as_str())
        .bind(wallet.frozen_reason())
        .bind(signed(wallet.version(), "wallet version")?)
        .bind(signed(wallet.transaction_count(), "transaction count")?)
        .bind(wallet.created_at())
        .bind(wallet.updated_at())
        .bind(signed(changes.expected_version, "wallet version")?)
        // Items: $11 ..= $13.
        .bind(
            items
                .iter()
                .map(|i| i.currency.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            items
                .iter()
                .map(|i| amount_text(&i.balance))
                .collect::<Vec<_>>(),
        )
        .bind(
            items
                .iter()
                .map(|i| amount_text(&i.held))
                .collect::<Vec<_>>(),
        )
        // Holds: $14 ..= $26.
        .bind(holds.iter().map(|h| h.id).collect::<Vec<_>>())
        .bind(
            holds
                .iter()
                .map(|h| h.currency.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            holds
                .iter()
                .map(|h| amount_text(&h.original_amount))
                .collect::<Vec<_>>(),
        )
        .bind(
            holds
                .iter()
                .map(|h| amount_text(&h.remaining_amount))
                .collect::<Vec<_>>(),
        )
        .bind(
            holds
                .iter()
                .map(|h| amount_text(&h.executed_amount))
                .collect::<Vec<_>>(),
        )
        .bind(
            holds
                .iter()
                .map(|h| amount_text(&h.released_amount))
                .collect::<Vec<_>>(),
        )
        .bind(holds.iter().map(|h| h.status.as_str()).collect::<Vec<_>>())
        .bind(
            holds
                .iter()
                .map(|h| h.reference_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(holds.iter().map(|h| h.reference_id).collect::<Vec<_>>())
        .bind(
            holds
                .iter()
                .map(|h| h.description.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(holds.iter().map(|h| h.expires_at).collect::<Vec<_>>())
        .bind(holds.iter().map(|h| h.created_at).collect::<Vec<_>>())
        .bind(holds.iter().map(|h| h.updated_at).collect::<Vec<_>>())
        // Transactions: $27 ..= $39.
        .bind(transactions.iter().map(|t| t.id).collect::<Vec<_>>())
        .bind(sequences)
        .bind(
            transactions
                .iter()
                .map(|t| t.transaction_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            transactions
                .iter()
                .map(|t| t.currency.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            transactions
                .iter()
                .map(|t| amount_text(&t.amount))
                .collect::<Vec<_>>(),
        )
        .bind(
            transactions
                .iter()
                .map(|t| amount_text(&t.held_change))
                .collect::<Vec<_>>(),
        )
        .bind(
            transactions
                .iter()
                .map(|t| amount_text(&t.balance_after))
                .collect::<Vec<_>>(),
        )
        .bind(
            transactions
                .iter()
                .map(|t| amount_text(&t.held_after))
                .collect::<Vec<_>>(),
        )
        .bind(
            transactions
                .iter()
                .map(|t| t.description.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            transactions
                .iter()
                .map(|t| t.reference.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(transactions.iter().map(|t| t.hold_id).collect::<Vec<_>>())
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
                .collect::<Vec<DateTime<Utc>>>(),
        )
        // Events: $40 ..= $46.
        .bind(events.ids)
        .bind(events.types)
        .bind(events.aggregate_ids)
        .bind(events.aggregate_versions)
        .bind(events.user_ids)
        .bind(events.occurred_at)
        .bind(events.data)
        // Idempotency records: $47 ..= $51.
        .bind(records.user_ids)
        .bind(records.keys)
        .bind(records.fingerprints)
        .bind(records.outputs)
        .bind(records.created_at)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_error)?;
    if written != 1 {
        // The row lock makes this impossible; if it happens anyway, the
        // version check kept us from overwriting a newer state.
        return Err(WalletError::ConcurrencyConflict);
    }
    Ok(())
}

fn write_sql(created: bool) -> &'static str {
    static INSERT: OnceLock<String> = OnceLock::new();
    static UPDATE: OnceLock<String> = OnceLock::new();
    let wallet_row = if created {
        "INSERT INTO wallets (id, user_id, status, default_currency, frozen_reason, version, \
         transaction_count, created_at, updated_at) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE $10::bigint = 0 RETURNING 1"
    } else {
        "UPDATE wallets SET status = $3, frozen_reason = $5, version = $6, \
         transaction_count = $7, updated_at = $9 \
         WHERE id = $1 AND user_id = $2 AND default_currency = $4 AND created_at = $8 \
         AND version = $10 RETURNING 1"
    };
    let cell = if created { &INSERT } else { &UPDATE };
    cell.get_or_init(|| {
        format!(
            "WITH wallet_row AS ({wallet_row}), \
             items AS (INSERT INTO wallet_items (wallet_id, currency, balance, held) \
                 SELECT $1, u.currency, u.balance, u.held \
                 FROM UNNEST($11::text[], $12::text[]::numeric[], $13::text[]::numeric[]) AS u(currency, balance, held) \
                 ON CONFLICT (wallet_id, currency) \
                 DO UPDATE SET balance = EXCLUDED.balance, held = EXCLUDED.held), \
             holds_written AS (INSERT INTO holds (id, wallet_id, currency, original_amount, \
                 remaining_amount, executed_amount, released_amount, status, reference_type, \
                 reference_id, description, expires_at, created_at, updated_at) \
                 SELECT u.id, $1, u.currency, u.original_amount, u.remaining_amount, \
                 u.executed_amount, u.released_amount, u.status, u.reference_type, \
                 u.reference_id, u.description, u.expires_at, u.created_at, u.updated_at \
                 FROM UNNEST($14::uuid[], $15::text[], $16::text[]::numeric[], $17::text[]::numeric[], \
                 $18::text[]::numeric[], $19::text[]::numeric[], $20::text[], $21::text[], $22::uuid[], \
                 $23::text[], $24::timestamptz[], $25::timestamptz[], $26::timestamptz[]) \
                 AS u(id, currency, original_amount, remaining_amount, executed_amount, \
                 released_amount, status, reference_type, reference_id, description, \
                 expires_at, created_at, updated_at) \
                 ON CONFLICT (id) DO UPDATE SET remaining_amount = EXCLUDED.remaining_amount, \
                 executed_amount = EXCLUDED.executed_amount, \
                 released_amount = EXCLUDED.released_amount, status = EXCLUDED.status, \
                 updated_at = EXCLUDED.updated_at \
                 WHERE holds.wallet_id = EXCLUDED.wallet_id), \
             transactions AS (INSERT INTO wallet_transactions (wallet_id, sequence, id, \
                 transaction_type, currency, amount, held_change, balance_after, held_after, \
                 description, reference, hold_id, idempotency_key, created_at) \
                 SELECT $1, u.sequence, u.id, u.transaction_type, u.currency, u.amount, \
                 u.held_change, u.balance_after, u.held_after, u.description, u.reference, \
                 u.hold_id, u.idempotency_key, u.created_at \
                 FROM UNNEST($27::uuid[], $28::bigint[], $29::text[], $30::text[], \
                 $31::text[]::numeric[], $32::text[]::numeric[], $33::text[]::numeric[], \
                 $34::text[]::numeric[], $35::text[], \
                 $36::text[], $37::uuid[], $38::text[], $39::timestamptz[]) \
                 AS u(id, sequence, transaction_type, currency, amount, held_change, \
                 balance_after, held_after, description, reference, hold_id, idempotency_key, \
                 created_at)), \
             events AS ({events}), \
             records AS ({records}) \
             SELECT count(*) FROM wallet_row",
            events = insert_events_sql(40),
            records = insert_records_sql(47),
        )
    })
}

impl PgStore {
    pub(crate) async fn create_wallet_unit(
        &self,
        user_id: Uuid,
        claim: Option<Claim>,
        factory: WalletFactory,
    ) -> Result<Applied, WalletError> {
        let mut conn = self.primary.acquire().await.map_err(map_error)?;
        // Writing the new wallet is one statement, atomic by itself, so no
        // explicit transaction is needed: a race with another creator ends
        // on the unique index of the wallet or of the idempotency key.
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM wallets WHERE user_id = $1) AS taken, \
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
            return Err(WalletError::WalletExists);
        }
        let (mut wallet, output) = factory()?;
        if wallet.user_id() != user_id {
            return Err(WalletError::Internal(
                "factory made a wallet for another user".into(),
            ));
        }
        let changes = wallet.take_changes();
        let records: Vec<IdempotencyRecord> = claim
            .clone()
            .map(|c| record_of(c, &output, wallet.created_at()))
            .into_iter()
            .collect();
        match write_wallet(&mut conn, &wallet, &changes, &records).await {
            Ok(()) => Ok(Applied {
                output,
                replayed: false,
            }),
            // Another creator won the race: replay its record when it used
            // the same key, else the wallet exists.
            Err(WalletError::WalletExists) => match claim.as_ref() {
                Some(claim) => {
                    match find_record(&mut conn, claim.user_id, claim.key.as_str()).await? {
                        Some(record) => replay(&record, claim),
                        None => Err(WalletError::WalletExists),
                    }
                }
                None => Err(WalletError::WalletExists),
            },
            Err(error) => match classify_write_error(error) {
                Failure::KeyTaken => replay_taken_key(&mut conn, claim.as_ref()).await,
                Failure::Error(error) => Err(error),
            },
        }
    }

    pub(crate) async fn update_wallet_unit(
        &self,
        user_id: Uuid,
        hold_id: Option<Uuid>,
        claim: Option<Claim>,
        mutation: WalletMutation,
    ) -> Result<Applied, WalletError> {
        let mut conn = self.primary.acquire().await.map_err(map_error)?;
        let mut transaction = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(map_error)?;
        let result = update_wallet_in(
            &mut transaction,
            user_id,
            hold_id,
            claim.as_ref(),
            &mutation,
        )
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

/// Why a unit of work did not commit.
pub(crate) enum Failure {
    /// A concurrent unit of work (on the user's other aggregate) stored a
    /// record for the same key first.
    KeyTaken,
    Error(WalletError),
}

impl From<WalletError> for Failure {
    fn from(error: WalletError) -> Self {
        Failure::Error(error)
    }
}

/// Classifies a write error: a violation of the idempotency key's unique
/// index (the only source of `IdempotencyKeyInFlight` in this store, see
/// [`crate::error::CONSTRAINT_ERRORS`]) is not an error but a replay.
pub(crate) fn classify_write_error(error: WalletError) -> Failure {
    match error {
        WalletError::IdempotencyKeyInFlight => Failure::KeyTaken,
        other => Failure::Error(other),
    }
}

/// After [`Failure::KeyTaken`]: the record that took the key.
pub(crate) async fn replay_taken_key(
    conn: &mut PgConnection,
    claim: Option<&Claim>,
) -> Result<Applied, WalletError> {
    let Some(claim) = claim else {
        return Err(WalletError::ConcurrencyConflict);
    };
    match find_record(conn, claim.user_id, claim.key.as_str()).await? {
        Some(record) => replay(&record, claim),
        // The record went away again (purged): let the service retry.
        None => Err(WalletError::ConcurrencyConflict),
    }
}

/// The body of a wallet unit of work inside a transaction. Returns the
/// result and whether anything was written.
async fn update_wallet_in(
    conn: &mut PgConnection,
    user_id: Uuid,
    hold_id: Option<Uuid>,
    claim: Option<&Claim>,
    mutation: &WalletMutation,
) -> Result<(Applied, bool), Failure> {
    let hold_ids: Vec<Uuid> = hold_id.into_iter().collect();
    let keys: Vec<&str> = claim.iter().map(|c| c.key.as_str()).collect();
    let Some(mut locked) = lock_wallet(conn, user_id, &hold_ids, &keys).await? else {
        // Like the in-memory store, a key that has a record answers from
        // it even when there is nothing to change.
        if let Some(claim) = claim {
            if let Some(record) = find_record(conn, claim.user_id, claim.key.as_str()).await? {
                return Ok((replay(&record, claim)?, false));
            }
        }
        return Err(WalletError::WalletNotFound.into());
    };
    if let Some(claim) = claim {
        if let Some(record) = locked.record(claim.key.as_str()) {
            return Ok((replay(record, claim)?, false));
        }
    }
    let output: CommandOutput = mutation(&mut locked.wallet)?;
    if locked.wallet.changes().is_empty() {
        return Ok((
            Applied {
                output,
                replayed: false,
            },
            false,
        ));
    }
    let changes = locked.wallet.take_changes();
    let records: Vec<IdempotencyRecord> = claim
        .cloned()
        .map(|c| record_of(c, &output, locked.wallet.updated_at()))
        .into_iter()
        .collect();
    write_wallet_classified(conn, &locked.wallet, &changes, &records).await?;
    Ok((
        Applied {
            output,
            replayed: false,
        },
        true,
    ))
}

/// [`write_wallet`], with a taken idempotency key told apart.
async fn write_wallet_classified(
    conn: &mut PgConnection,
    wallet: &Wallet,
    changes: &WalletChanges,
    records: &[IdempotencyRecord],
) -> Result<(), Failure> {
    write_wallet(conn, wallet, changes, records)
        .await
        .map_err(classify_write_error)
}

// ---- many wallets at once (the batching writer) ---------------------------

/// Locks the wallets of `user_ids` (in user id order, so that two callers
/// locking overlapping sets never deadlock) and loads each with its items,
/// its active holds and those of `hold_ids` that are its own, in any
/// status. Users without a wallet are simply absent from the answer. Must
/// run inside a transaction; the locks last until it ends.
///
/// One statement locks and loads. Its loads read the statement's snapshot,
/// taken before any lock was granted: if a lock had to wait for another
/// transaction that changed the wallet, they are stale. Every change of a
/// wallet's items, holds or log also bumps the wallet row's version, so the
/// statement compares the version the snapshot saw with the version it
/// locked (the newest); the wallets where they differ are loaded again in
/// a second statement, which sees everything committed before the locks.
pub async fn lock_wallets(
    conn: &mut PgConnection,
    user_ids: &[Uuid],
    hold_ids: &[Uuid],
) -> Result<Vec<Wallet>, WalletError> {
    if user_ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(lock_many_sql())
        .bind(user_ids)
        .bind(hold_ids)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_error)?;
    let mut wallets = Vec::with_capacity(rows.len());
    let mut stale = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let locked: i64 = column(row, "version")?;
        let seen: Option<i64> = column(row, "seen_version")?;
        if seen == Some(locked) {
            let items: Vec<WalletItem> = from_json(column(row, "items")?, "wallet items")?;
            let holds: Vec<Hold> = from_json(column(row, "holds")?, "holds")?;
            wallets.push(wallet_from_row(row, items, holds)?);
        } else {
            stale.push(index);
            wallets.push(wallet_from_row(row, Vec::new(), Vec::new())?);
        }
    }
    if stale.is_empty() {
        return Ok(wallets);
    }
    let stale_ids: Vec<Uuid> = stale.iter().map(|&index| wallets[index].id()).collect();
    let loaded = sqlx::query(load_many_sql())
        .bind(&stale_ids)
        .bind(hold_ids)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_error)?;
    let mut contents: HashMap<Uuid, (Vec<WalletItem>, Vec<Hold>)> =
        HashMap::with_capacity(loaded.len());
    for row in &loaded {
        let items: Vec<WalletItem> = from_json(column(row, "items")?, "wallet items")?;
        let holds: Vec<Hold> = from_json(column(row, "holds")?, "holds")?;
        contents.insert(column(row, "id")?, (items, holds));
    }
    for index in stale {
        let (items, holds) = contents
            .remove(&wallets[index].id())
            .ok_or_else(|| WalletError::Internal("a locked wallet was not loaded".into()))?;
        wallets[index] = wallet_from_row(&rows[index], items, holds)?;
    }
    Ok(wallets)
}

/// The contents of wallet `w.id` as the JSON columns `items` (every item)
/// and `holds` (the active ones and those among `$2`): what the lock and
/// the reload of [`lock_wallets`] both load.
fn contents_columns() -> String {
    format!(
        "coalesce((SELECT json_agg(json_build_object('currency', i.currency, \
             'balance', i.balance::text, 'held', i.held::text)) \
             FROM wallet_items i WHERE i.wallet_id = w.id), '[]'::json) AS items, \
         coalesce((SELECT json_agg({HOLD_JSON}) FROM holds h \
             WHERE h.wallet_id = w.id AND (h.status = 'Active' OR h.id = ANY($2))), \
             '[]'::json) AS holds"
    )
}

fn lock_many_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT {WALLET_COLUMNS}, \
             (SELECT s.version FROM wallets s WHERE s.id = w.id) AS seen_version, \
             {contents} \
             FROM wallets w WHERE w.user_id = ANY($1) ORDER BY w.user_id FOR UPDATE",
            contents = contents_columns()
        )
    })
}

fn load_many_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT w.id, \
             {contents} \
             FROM UNNEST($1::uuid[]) AS w(id)",
            contents = contents_columns()
        )
    })
}

/// The changes of many loaded wallets as parallel arrays, bound into the
/// batching writer's one write statement ([`WalletColumns::ctes`]): the
/// wallet rows (updated from the loaded version, which each row must still
/// have), the touched items and holds and the new transactions. The
/// events and idempotency records are written by the caller, in the
/// order of the commands.
#[derive(Default)]
pub(crate) struct WalletColumns<'a> {
    rows: WalletRowColumns<'a>,
    items: ItemColumns<'a>,
    holds: HoldColumns<'a>,
    transactions: TransactionColumns<'a>,
}

impl<'a> WalletColumns<'a> {
    /// How many parameters [`WalletColumns::bind`] binds.
    pub const PARAMETERS: usize = 39;

    /// Adds one wallet: as it is now, with the transactions and touched
    /// holds of every command applied to it since it was loaded at
    /// `expected_version`.
    pub fn push(
        &mut self,
        wallet: &'a Wallet,
        expected_version: u64,
        transactions: &'a [WalletTransaction],
        touched_holds: &BTreeSet<Uuid>,
    ) -> Result<(), WalletError> {
        self.rows.push(wallet, expected_version)?;
        // Items of every currency a transaction touched, as they are now.
        let currencies: BTreeSet<CurrencyCode> = transactions.iter().map(|t| t.currency).collect();
        for currency in &currencies {
            if let Some(item) = wallet.items().get(currency) {
                self.items.push(wallet.id(), item);
            }
        }
        for hold_id in touched_holds {
            if let Some(hold) = wallet.holds().get(hold_id) {
                self.holds.push(hold);
            }
        }
        for transaction in transactions {
            self.transactions.push(transaction)?;
        }
        Ok(())
    }

    /// How many wallet rows the statement must update.
    pub fn len(&self) -> usize {
        self.rows.ids.len()
    }

    /// The statement's common table expressions for wallets, with their
    /// parameters numbered from `$first`: `wallet_rows` (the id of each
    /// wallet updated), `wallet_items_written`, `holds_written`,
    /// `wallet_transactions_written`. Items, holds and transactions are
    /// written only for the wallets `wallet_rows` updated: so the wallet's
    /// row lock comes first, and a wallet whose version no longer matches
    /// writes nothing (the caller sees it missing from the count).
    pub fn ctes(first: usize) -> String {
        let p = |offset: usize| first + offset;
        format!(
            "wallet_rows AS (UPDATE wallets w SET status = u.status, \
                 frozen_reason = u.frozen_reason, version = u.version, \
                 transaction_count = u.transaction_count, updated_at = u.updated_at \
                 FROM UNNEST({rows}) \
                 AS u(id, status, frozen_reason, version, transaction_count, updated_at, \
                 expected_version) \
                 WHERE w.id = u.id AND w.version = u.expected_version RETURNING w.id), \
             wallet_items_written AS (INSERT INTO wallet_items (wallet_id, currency, balance, held) \
                 SELECT u.wallet_id, u.currency, u.balance, u.held \
                 FROM UNNEST({items}) AS u(wallet_id, currency, balance, held) \
                 WHERE u.wallet_id IN (SELECT id FROM wallet_rows) \
                 ON CONFLICT (wallet_id, currency) \
                 DO UPDATE SET balance = EXCLUDED.balance, held = EXCLUDED.held), \
             holds_written AS (INSERT INTO holds (id, wallet_id, currency, original_amount, \
                 remaining_amount, executed_amount, released_amount, status, reference_type, \
                 reference_id, description, expires_at, created_at, updated_at) \
                 SELECT u.id, u.wallet_id, u.currency, u.original_amount, u.remaining_amount, \
                 u.executed_amount, u.released_amount, u.status, u.reference_type, \
                 u.reference_id, u.description, u.expires_at, u.created_at, u.updated_at \
                 FROM UNNEST({holds}) \
                 AS u(id, wallet_id, currency, original_amount, remaining_amount, \
                 executed_amount, released_amount, status, reference_type, reference_id, \
                 description, expires_at, created_at, updated_at) \
                 WHERE u.wallet_id IN (SELECT id FROM wallet_rows) \
                 ON CONFLICT (id) DO UPDATE SET remaining_amount = EXCLUDED.remaining_amount, \
                 executed_amount = EXCLUDED.executed_amount, \
                 released_amount = EXCLUDED.released_amount, status = EXCLUDED.status, \
                 updated_at = EXCLUDED.updated_at \
                 WHERE holds.wallet_id = EXCLUDED.wallet_id), \
             wallet_transactions_written AS (INSERT INTO wallet_transactions (wallet_id, \
                 sequence, id, transaction_type, currency, amount, held_change, balance_after, \
                 held_after, description, reference, hold_id, idempotency_key, created_at) \
                 SELECT u.wallet_id, u.sequence, u.id, u.transaction_type, u.currency, \
                 u.amount, u.held_change, u.balance_after, u.held_after, u.description, \
                 u.reference, u.hold_id, u.idempotency_key, u.created_at \
                 FROM UNNEST({transactions}) \
                 AS u(wallet_id, id, sequence, transaction_type, currency, amount, held_change, \
                 balance_after, held_after, description, reference, hold_id, idempotency_key, \
                 created_at) \
                 WHERE u.wallet_id IN (SELECT id FROM wallet_rows))",
            rows = parameters(
                p(0),
                &["uuid", "text", "text", "bigint", "bigint", "timestamptz", "bigint"]
            ),
            items = parameters(p(7), &["uuid", "text", NUMERIC, NUMERIC]),
            holds = parameters(
                p(11),
                &[
                    "uuid",
                    "uuid",
                    "text",
                    NUMERIC,
                    NUMERIC,
                    NUMERIC,
                    NUMERIC,
                    "text",
                    "text",
                    "uuid",
                    "text",
                    "timestamptz",
                    "timestamptz",
                    "timestamptz"
                ]
            ),
            transactions = parameters(
                p(25),
                &[
                    "uuid",
                    "uuid",
                    "bigint",
                    "text",
                    "text",
                    NUMERIC,
                    NUMERIC,
                    NUMERIC,
                    NUMERIC,
                    "text",
                    "text",
                    "uuid",
                    "text",
                    "timestamptz"
                ]
            ),
        )
    }

    /// Binds the [`WalletColumns::PARAMETERS`] arrays, in the order of
    /// [`WalletColumns::ctes`].
    pub fn bind<'q>(self, query: PgQuery<'q>) -> PgQuery<'q>
    where
        'a: 'q,
    {
        let WalletColumns {
            rows,
            items,
            holds,
            transactions,
        } = self;
        query
            .bind(rows.ids)
            .bind(rows.statuses)
            .bind(rows.frozen_reasons)
            .bind(rows.versions)
            .bind(rows.transaction_counts)
            .bind(rows.updated_at)
            .bind(rows.expected_versions)
            .bind(items.wallet_ids)
            .bind(items.currencies)
            .bind(items.balances)
            .bind(items.held)
            .bind(holds.ids)
            .bind(holds.wallet_ids)
            .bind(holds.currencies)
            .bind(holds.original)
            .bind(holds.remaining)
            .bind(holds.executed)
            .bind(holds.released)
            .bind(holds.statuses)
            .bind(holds.reference_types)
            .bind(holds.reference_ids)
            .bind(holds.descriptions)
            .bind(holds.expires_at)
            .bind(holds.created_at)
            .bind(holds.updated_at)
            .bind(transactions.wallet_ids)
            .bind(transactions.ids)
            .bind(transactions.sequences)
            .bind(transactions.types)
            .bind(transactions.currencies)
            .bind(transactions.amounts)
            .bind(transactions.held_changes)
            .bind(transactions.balances_after)
            .bind(transactions.held_after)
            .bind(transactions.descriptions)
            .bind(transactions.references)
            .bind(transactions.hold_ids)
            .bind(transactions.keys)
            .bind(transactions.created_at)
    }
}

/// A query with positional parameters, as the bulk writers bind them.
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
#[derive(Default)]
struct WalletRowColumns<'a> {
    ids: Vec<Uuid>,
    statuses: Vec<&'static str>,
    frozen_reasons: Vec<Option<&'a str>>,
    versions: Vec<i64>,
    transaction_counts: Vec<i64>,
    updated_at: Vec<DateTime<Utc>>,
    expected_versions: Vec<i64>,
}

impl<'a> WalletRowColumns<'a> {
    fn push(&mut self, wallet: &'a Wallet, expected_version: u64) -> Result<(), WalletError> {
        self.ids.push(wallet.id());
        self.statuses.push(wallet.status().as_str());
        self.frozen_reasons.push(wallet.frozen_reason());
        self.versions
            .push(signed(wallet.version(), "wallet version")?);
        self.transaction_counts
            .push(signed(wallet.transaction_count(), "transaction count")?);
        self.updated_at.push(wallet.updated_at());
        self.expected_versions
            .push(signed(expected_version, "wallet version")?);
        Ok(())
    }
}

#[derive(Default)]
struct ItemColumns<'a> {
    wallet_ids: Vec<Uuid>,
    currencies: Vec<&'a str>,
    balances: Vec<String>,
    held: Vec<String>,
}

impl<'a> ItemColumns<'a> {
    fn push(&mut self, wallet_id: Uuid, item: &'a WalletItem) {
        self.wallet_ids.push(wallet_id);
        self.currencies.push(item.currency.as_str());
        self.balances.push(amount_text(&item.balance));
        self.held.push(amount_text(&item.held));
    }
}

#[derive(Default)]
struct HoldColumns<'a> {
    ids: Vec<Uuid>,
    wallet_ids: Vec<Uuid>,
    currencies: Vec<&'a str>,
    original: Vec<String>,
    remaining: Vec<String>,
    executed: Vec<String>,
    released: Vec<String>,
    statuses: Vec<&'static str>,
    reference_types: Vec<&'a str>,
    reference_ids: Vec<Uuid>,
    descriptions: Vec<Option<&'a str>>,
    expires_at: Vec<DateTime<Utc>>,
    created_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
}

impl<'a> HoldColumns<'a> {
    fn push(&mut self, hold: &'a Hold) {
        self.ids.push(hold.id);
        self.wallet_ids.push(hold.wallet_id);
        self.currencies.push(hold.currency.as_str());
        self.original.push(amount_text(&hold.original_amount));
        self.remaining.push(amount_text(&hold.remaining_amount));
        self.executed.push(amount_text(&hold.executed_amount));
        self.released.push(amount_text(&hold.released_amount));
        self.statuses.push(hold.status.as_str());
        self.reference_types.push(hold.reference_type.as_str());
        self.reference_ids.push(hold.reference_id);
        self.descriptions.push(hold.description.as_deref());
        self.expires_at.push(hold.expires_at);
        self.created_at.push(hold.created_at);
        self.updated_at.push(hold.updated_at);
    }
}

#[derive(Default)]
struct TransactionColumns<'a> {
    wallet_ids: Vec<Uuid>,
    ids: Vec<Uuid>,
    sequences: Vec<i64>,
    types: Vec<&'static str>,
    currencies: Vec<&'a str>,
    amounts: Vec<String>,
    held_changes: Vec<String>,
    balances_after: Vec<String>,
    held_after: Vec<String>,
    descriptions: Vec<Option<&'a str>>,
    references: Vec<Option<&'a str>>,
    hold_ids: Vec<Option<Uuid>>,
    keys: Vec<Option<&'a str>>,
    created_at: Vec<DateTime<Utc>>,
}

impl<'a> TransactionColumns<'a> {
    fn push(&mut self, transaction: &'a WalletTransaction) -> Result<(), WalletError> {
        self.wallet_ids.push(transaction.wallet_id);
        self.ids.push(transaction.id);
        self.sequences
            .push(signed(transaction.sequence, "transaction sequence")?);
        self.types.push(transaction.transaction_type.as_str());
        self.currencies.push(transaction.currency.as_str());
        self.amounts.push(amount_text(&transaction.amount));
        self.held_changes
            .push(amount_text(&transaction.held_change));
        self.balances_after
            .push(amount_text(&transaction.balance_after));
        self.held_after.push(amount_text(&transaction.held_after));
        self.descriptions.push(transaction.description.as_deref());
        self.references.push(transaction.reference.as_deref());
        self.hold_ids.push(transaction.hold_id);
        self.keys.push(transaction.idempotency_key.as_deref());
        self.created_at.push(transaction.created_at);
        Ok(())
    }
}
