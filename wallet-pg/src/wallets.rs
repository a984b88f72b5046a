//! Wallets in the database: [`lock_wallets`] locks and loads many wallets
//! in user id order (the batching writer's first step), and
//! `WalletColumns` holds the wallet part of the one write statement
//! (`write.rs`): the wallet rows, the touched items and holds and the
//! new transactions, each table's fragment and bindings written once.
//! [`lock_wallet`] and [`write_wallet`] are the same steps for one wallet,
//! for callers that run their own transaction.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::PgConnection;
use uuid::Uuid;
use wallet_core::wallet::WalletChanges;
use wallet_core::{
    CurrencyCode, Hold, IdempotencyRecord, Wallet, WalletError, WalletItem, WalletTransaction,
};

use crate::codec::{
    amount_text, column, from_json, signed, wallet_from_row, HOLD_JSON, WALLET_COLUMNS,
    WALLET_ITEMS_JSON,
};
use crate::idempotency::find_records;
use crate::lock::{lock_knowing, lock_many, Known, LockStatements};
use crate::write::{parameters, PgQuery, RowWrite, WriteColumns, NUMERIC};

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

/// Locks the user's wallet row (`FOR UPDATE`) and loads the aggregate as
/// [`lock_wallets`] does, with the user's idempotency records for `keys`.
/// `None` if there is no wallet. Must run inside a transaction; the lock
/// lasts until it ends.
pub async fn lock_wallet(
    conn: &mut PgConnection,
    user_id: Uuid,
    hold_ids: &[Uuid],
    keys: &[&str],
) -> Result<Option<LockedWallet>, WalletError> {
    let (mut wallets, _) = lock_wallets(conn, &[user_id], hold_ids).await?;
    let Some(wallet) = wallets.pop() else {
        return Ok(None);
    };
    let users = vec![user_id; keys.len()];
    let records = find_records(conn, &users, keys).await?;
    Ok(Some(LockedWallet { wallet, records }))
}

/// Persists a wallet's changes (taken with `take_changes`) and the given
/// idempotency records with the one write statement: the wallet row
/// (inserted when the changes say it is new, else updated from
/// `changes.expected_version`, which the row must still have, or
/// `concurrency_conflict`), the touched items and holds, the new
/// transactions and the outbox events. The caller holds the row lock (or
/// is inserting the wallet).
pub async fn write_wallet(
    conn: &mut PgConnection,
    wallet: &Wallet,
    changes: &WalletChanges,
    records: &[IdempotencyRecord],
) -> Result<(), WalletError> {
    let mut columns = WriteColumns::default();
    columns.wallets.push(
        wallet,
        changes.expected_version,
        &changes.transactions,
        &changes.touched_holds,
    )?;
    columns.push_events(&changes.events)?;
    columns.push_records(records);
    columns.write(conn, RowWrite::of(changes.created)).await?;
    Ok(())
}

/// Locks the wallets of `user_ids` (in user id order) and loads each with
/// its items, its active holds and those of `hold_ids` that are its own,
/// in any status, up to date even when a lock waited for another
/// transaction (see `lock.rs`). Users without a wallet are simply
/// absent from the answer. Must run inside a transaction; the locks last
/// until it ends. Also returns how many statements it ran.
pub async fn lock_wallets(
    conn: &mut PgConnection,
    user_ids: &[Uuid],
    hold_ids: &[Uuid],
) -> Result<(Vec<Wallet>, u64), WalletError> {
    let (locked, sent) = lock_many(conn, lock_statements(), user_ids, hold_ids).await?;
    let wallets = locked
        .into_iter()
        .map(|(row, (items, holds))| wallet_from_row(&row, items, holds))
        .collect::<Result<_, _>>()?;
    Ok((wallets, sent))
}

/// [`lock_wallets`] for a caller that already holds `copies` of some of
/// the wallets, each as a fresh load would give it at its version (every
/// item, the active holds, and every hold of `hold_ids` that is its own
/// among them as active): all the wallets are locked in user id order
/// alike, and a wallet locked at its copy's version is answered with the
/// copy, its contents not loaded; any other is loaded as by
/// [`lock_wallets`] (a copy someone else made stale is simply not used).
/// Also returns how many statements it ran and how many copies it used.
pub(crate) async fn lock_wallets_knowing(
    conn: &mut PgConnection,
    user_ids: &[Uuid],
    hold_ids: &[Uuid],
    copies: Vec<Wallet>,
) -> Result<(Vec<Wallet>, u64, usize), WalletError> {
    if copies.is_empty() {
        let (wallets, sent) = lock_wallets(conn, user_ids, hold_ids).await?;
        return Ok((wallets, sent, 0));
    }
    let mut known = Known::default();
    for copy in &copies {
        let version = i64::try_from(copy.version())
            .map_err(|_| WalletError::Internal("a kept wallet's version is out of range".into()))?;
        known.ids.push(copy.id());
        known.versions.push(version);
    }
    let mut copies: HashMap<Uuid, Wallet> =
        copies.into_iter().map(|copy| (copy.id(), copy)).collect();
    let sql = lock_knowing_sql();
    let (locked, sent) = lock_knowing(
        conn,
        lock_statements(),
        sql,
        user_ids,
        hold_ids,
        Some(&known),
    )
    .await?;
    let mut wallets = Vec::with_capacity(locked.len());
    for (row, contents) in locked {
        let wallet = match contents {
            Some((items, holds)) => wallet_from_row(&row, items, holds)?,
            None => copies.remove(&column::<Uuid>(&row, "id")?).ok_or_else(|| {
                WalletError::Internal("a wallet locked as known has no copy".into())
            })?,
        };
        wallets.push(wallet);
    }
    let used = known.ids.len().saturating_sub(copies.len());
    Ok((wallets, sent, used))
}

type Contents = (Vec<WalletItem>, Vec<Hold>);

/// The items and holds of a row with the columns of [`contents_columns`].
fn contents_of(row: &PgRow) -> Result<Contents, WalletError> {
    let items: Vec<WalletItem> = from_json(column(row, "items")?, "wallet items")?;
    let holds: Vec<Hold> = from_json(column(row, "holds")?, "holds")?;
    Ok((items, holds))
}

fn lock_statements() -> &'static LockStatements<Contents> {
    static STATEMENTS: OnceLock<LockStatements<Contents>> = OnceLock::new();
    STATEMENTS.get_or_init(|| LockStatements {
        lock: lock_many_sql(),
        reload: load_many_sql(),
        contents: contents_of,
        what: "wallet",
    })
}

/// The contents of wallet `w.id` as the JSON columns `items` (every item)
/// and `holds` (the active ones and those among `$2`): what the lock and
/// the reload of [`lock_wallets`] both load.
fn contents_columns() -> String {
    format!("{WALLET_ITEMS_JSON}, {} AS holds", holds_json())
}

/// The holds of wallet `w.id` that [`contents_columns`] loads, as a JSON
/// array.
fn holds_json() -> String {
    format!(
        "coalesce((SELECT json_agg({HOLD_JSON}) FROM holds h \
         WHERE h.wallet_id = w.id AND (h.status = 'Active' OR h.id = ANY($2))), '[]'::json)"
    )
}

/// Whether wallet `w` has the version of the copy `$3`/`$4` name (see
/// [`Known`]). `w.version` is the version the lock took (the newest, when
/// the lock waited for another transaction), not the statement's snapshot.
const KNOWN_COPY: &str = "(w.id, w.version) IN \
     (SELECT k.id, k.version FROM UNNEST($3::uuid[], $4::bigint[]) AS k(id, version))";

/// The lock of [`lock_wallets_knowing`]: the lock of [`lock_wallets`],
/// with `known`, and no contents for a known row.
fn lock_knowing_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        let items = WALLET_ITEMS_JSON
            .strip_suffix(" AS items")
            .unwrap_or(WALLET_ITEMS_JSON);
        format!(
            "SELECT {WALLET_COLUMNS}, \
             (SELECT s.version FROM wallets s WHERE s.id = w.id) AS seen_version, \
             {KNOWN_COPY} AS known, \
             CASE WHEN {KNOWN_COPY} THEN NULL ELSE {items} END AS items, \
             CASE WHEN {KNOWN_COPY} THEN NULL ELSE {holds} END AS holds \
             FROM wallets w WHERE w.user_id = ANY($1) ORDER BY w.user_id FOR UPDATE",
            holds = holds_json()
        )
    })
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
            "SELECT w.id, {contents} FROM UNNEST($1::uuid[]) AS w(id)",
            contents = contents_columns()
        )
    })
}

/// The wallet part of the write statement as parallel arrays: the wallet
/// rows (inserted, or updated from the loaded version, which each row must
/// still have), the touched items and holds and the new transactions.
#[derive(Default)]
pub(crate) struct WalletColumns<'a> {
    rows: WalletRowColumns<'a>,
    items: ItemColumns<'a>,
    holds: HoldColumns<'a>,
    transactions: TransactionColumns<'a>,
}

impl<'a> WalletColumns<'a> {
    /// How many parameters [`WalletColumns::bind`] binds.
    pub const PARAMETERS: usize =
        WALLET_ROW_TYPES.len() + ITEM_TYPES.len() + HOLD_TYPES.len() + TRANSACTION_TYPES.len();

    /// Adds one wallet: as it is now, with the transactions and touched
    /// holds of every command applied to it since it was loaded at
    /// `expected_version`.
    pub fn push(
        &mut self,
        wallet: &'a Wallet,
        expected_version: u64,
        transactions: &'a [WalletTransaction],
        touched_holds: &[Uuid],
    ) -> Result<(), WalletError> {
        self.rows.push(wallet, expected_version)?;
        // Items of every currency a transaction touched, as they are now.
        let currencies: BTreeSet<CurrencyCode> = transactions.iter().map(|t| t.currency).collect();
        for currency in &currencies {
            if let Some(item) = wallet.items().get(currency) {
                self.items.push(wallet.id(), item);
            }
        }
        // A hold touched by several commands is written once, as it is now.
        let touched: BTreeSet<&Uuid> = touched_holds.iter().collect();
        for hold in touched.into_iter().filter_map(|id| wallet.holds().get(id)) {
            self.holds.push(hold);
        }
        for transaction in transactions {
            self.transactions.push(transaction)?;
        }
        Ok(())
    }

    /// How many wallet rows the statement must write.
    pub fn len(&self) -> usize {
        self.rows.ids.len()
    }

    /// The statement's common table expressions for wallets, with their
    /// parameters numbered from `$first`: `wallet_rows` (the id of each
    /// wallet written), `wallet_items_written`, `holds_written`,
    /// `wallet_transactions_written`. Items, holds and transactions are
    /// written only for the wallets `wallet_rows` wrote: so the wallet's
    /// row lock comes first, and a wallet whose version no longer matches
    /// writes nothing (the caller sees it missing from the count).
    pub fn ctes(first: usize, rows: RowWrite) -> String {
        let items = first + WALLET_ROW_TYPES.len();
        let holds = items + ITEM_TYPES.len();
        let transactions = holds + HOLD_TYPES.len();
        format!(
            "{rows}, {items}, {holds}, {transactions}",
            rows = wallet_rows_cte(first, rows),
            items = items_cte(items),
            holds = holds_cte(holds),
            transactions = transactions_cte(transactions),
        )
    }

    /// Binds the [`WalletColumns::PARAMETERS`] arrays, in the order of
    /// [`WalletColumns::ctes`].
    pub fn bind<'q>(self, query: PgQuery<'q>) -> PgQuery<'q>
    where
        'a: 'q,
    {
        let query = self.rows.bind(query);
        let query = self.items.bind(query);
        let query = self.holds.bind(query);
        self.transactions.bind(query)
    }
}

/// Only the wallets whose rows were written get the rest.
const OF_WRITTEN_WALLETS: &str = "WHERE u.wallet_id IN (SELECT id FROM wallet_rows)";

#[rustfmt::skip]
const WALLET_ROW_TYPES: [&str; 10] = [
    "uuid", "uuid", "text", "text", "text",
    "bigint", "bigint", "timestamptz", "timestamptz", "bigint",
];
const WALLET_ROW_FIELDS: &str = "id, user_id, status, default_currency, frozen_reason, \
     version, transaction_count, created_at, updated_at, expected_version";

fn wallet_rows_cte(first: usize, rows: RowWrite) -> String {
    let unnest = format!(
        "FROM UNNEST({}) AS u({WALLET_ROW_FIELDS})",
        parameters(first, &WALLET_ROW_TYPES)
    );
    match rows {
        RowWrite::Insert => format!(
            "wallet_rows AS (INSERT INTO wallets (id, user_id, status, default_currency, \
             frozen_reason, version, transaction_count, created_at, updated_at) \
             SELECT u.id, u.user_id, u.status, u.default_currency, u.frozen_reason, u.version, \
             u.transaction_count, u.created_at, u.updated_at {unnest} \
             WHERE u.expected_version = 0 RETURNING id)"
        ),
        RowWrite::Update => format!(
            "wallet_rows AS (UPDATE wallets w SET status = u.status, \
             frozen_reason = u.frozen_reason, version = u.version, \
             transaction_count = u.transaction_count, updated_at = u.updated_at {unnest} \
             WHERE w.id = u.id AND w.version = u.expected_version RETURNING w.id)"
        ),
    }
}

#[derive(Default)]
struct WalletRowColumns<'a> {
    ids: Vec<Uuid>,
    user_ids: Vec<Uuid>,
    statuses: Vec<&'static str>,
    /// Owned: a currency code is a small value whose text lives in it.
    default_currencies: Vec<String>,
    frozen_reasons: Vec<Option<&'a str>>,
    versions: Vec<i64>,
    transaction_counts: Vec<i64>,
    created_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
    expected_versions: Vec<i64>,
}

impl<'a> WalletRowColumns<'a> {
    fn push(&mut self, wallet: &'a Wallet, expected_version: u64) -> Result<(), WalletError> {
        self.ids.push(wallet.id());
        self.user_ids.push(wallet.user_id());
        self.statuses.push(wallet.status().as_str());
        self.default_currencies
            .push(wallet.default_currency().as_str().to_owned());
        self.frozen_reasons.push(wallet.frozen_reason());
        self.versions
            .push(signed(wallet.version(), "wallet version")?);
        self.transaction_counts
            .push(signed(wallet.transaction_count(), "transaction count")?);
        self.created_at.push(wallet.created_at());
        self.updated_at.push(wallet.updated_at());
        self.expected_versions
            .push(signed(expected_version, "wallet version")?);
        Ok(())
    }

    fn bind<'q>(self, query: PgQuery<'q>) -> PgQuery<'q>
    where
        'a: 'q,
    {
        query
            .bind(self.ids)
            .bind(self.user_ids)
            .bind(self.statuses)
            .bind(self.default_currencies)
            .bind(self.frozen_reasons)
            .bind(self.versions)
            .bind(self.transaction_counts)
            .bind(self.created_at)
            .bind(self.updated_at)
            .bind(self.expected_versions)
    }
}

const ITEM_TYPES: [&str; 4] = ["uuid", "text", NUMERIC, NUMERIC];

fn items_cte(first: usize) -> String {
    format!(
        "wallet_items_written AS (INSERT INTO wallet_items (wallet_id, currency, balance, held) \
         SELECT u.wallet_id, u.currency, u.balance, u.held \
         FROM UNNEST({}) AS u(wallet_id, currency, balance, held) {OF_WRITTEN_WALLETS} \
         ON CONFLICT (wallet_id, currency) \
         DO UPDATE SET balance = EXCLUDED.balance, held = EXCLUDED.held)",
        parameters(first, &ITEM_TYPES)
    )
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

    fn bind<'q>(self, query: PgQuery<'q>) -> PgQuery<'q>
    where
        'a: 'q,
    {
        query
            .bind(self.wallet_ids)
            .bind(self.currencies)
            .bind(self.balances)
            .bind(self.held)
    }
}

#[rustfmt::skip]
const HOLD_TYPES: [&str; 14] = [
    "uuid", "uuid", "text", NUMERIC, NUMERIC,
    NUMERIC, NUMERIC, "text", "text", "uuid",
    "text", "timestamptz", "timestamptz", "timestamptz",
];

fn holds_cte(first: usize) -> String {
    format!(
        "holds_written AS (INSERT INTO holds (id, wallet_id, currency, original_amount, \
         remaining_amount, executed_amount, released_amount, status, reference_type, \
         reference_id, description, expires_at, created_at, updated_at) \
         SELECT u.id, u.wallet_id, u.currency, u.original_amount, u.remaining_amount, \
         u.executed_amount, u.released_amount, u.status, u.reference_type, \
         u.reference_id, u.description, u.expires_at, u.created_at, u.updated_at \
         FROM UNNEST({}) \
         AS u(id, wallet_id, currency, original_amount, remaining_amount, \
         executed_amount, released_amount, status, reference_type, reference_id, \
         description, expires_at, created_at, updated_at) {OF_WRITTEN_WALLETS} \
         ON CONFLICT (id) DO UPDATE SET remaining_amount = EXCLUDED.remaining_amount, \
         executed_amount = EXCLUDED.executed_amount, \
         released_amount = EXCLUDED.released_amount, status = EXCLUDED.status, \
         updated_at = EXCLUDED.updated_at \
         WHERE holds.wallet_id = EXCLUDED.wallet_id)",
        parameters(first, &HOLD_TYPES)
    )
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

    fn bind<'q>(self, query: PgQuery<'q>) -> PgQuery<'q>
    where
        'a: 'q,
    {
        query
            .bind(self.ids)
            .bind(self.wallet_ids)
            .bind(self.currencies)
            .bind(self.original)
            .bind(self.remaining)
            .bind(self.executed)
            .bind(self.released)
            .bind(self.statuses)
            .bind(self.reference_types)
            .bind(self.reference_ids)
            .bind(self.descriptions)
            .bind(self.expires_at)
            .bind(self.created_at)
            .bind(self.updated_at)
    }
}

#[rustfmt::skip]
const TRANSACTION_TYPES: [&str; 16] = [
    "uuid", "uuid", "bigint", "text", "text",
    NUMERIC, NUMERIC, NUMERIC, NUMERIC, "text",
    "text", "uuid", "text", "timestamptz", "uuid",
    "uuid",
];

fn transactions_cte(first: usize) -> String {
    format!(
        "wallet_transactions_written AS (INSERT INTO wallet_transactions (wallet_id, \
         sequence, id, transaction_type, currency, amount, held_change, balance_after, \
         held_after, description, reference, hold_id, idempotency_key, created_at, \
         transfer_id, counterparty_user_id) \
         SELECT u.wallet_id, u.sequence, u.id, u.transaction_type, u.currency, \
         u.amount, u.held_change, u.balance_after, u.held_after, u.description, \
         u.reference, u.hold_id, u.idempotency_key, u.created_at, u.transfer_id, \
         u.counterparty_user_id \
         FROM UNNEST({}) \
         AS u(wallet_id, id, sequence, transaction_type, currency, amount, held_change, \
         balance_after, held_after, description, reference, hold_id, idempotency_key, \
         created_at, transfer_id, counterparty_user_id) {OF_WRITTEN_WALLETS})",
        parameters(first, &TRANSACTION_TYPES)
    )
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
    transfer_ids: Vec<Option<Uuid>>,
    counterparties: Vec<Option<Uuid>>,
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
        self.transfer_ids.push(transaction.transfer_id);
        self.counterparties.push(transaction.counterparty_user_id);
        Ok(())
    }

    fn bind<'q>(self, query: PgQuery<'q>) -> PgQuery<'q>
    where
        'a: 'q,
    {
        query
            .bind(self.wallet_ids)
            .bind(self.ids)
            .bind(self.sequences)
            .bind(self.types)
            .bind(self.currencies)
            .bind(self.amounts)
            .bind(self.held_changes)
            .bind(self.balances_after)
            .bind(self.held_after)
            .bind(self.descriptions)
            .bind(self.references)
            .bind(self.hold_ids)
            .bind(self.keys)
            .bind(self.created_at)
            .bind(self.transfer_ids)
            .bind(self.counterparties)
    }
}
