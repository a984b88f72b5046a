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
    CurrencyCode, Hold, IdempotencyRecord, ReversalTotal, Wallet, WalletError, WalletItem,
    WalletTransaction,
};

use crate::aggregate::AggregateColumns;
use crate::codec::{
    amount_text, column, from_json, signed, wallet_from_row, HOLD_JSON, WALLET_COLUMNS,
    WALLET_ITEMS_JSON,
};
use crate::idempotency::find_records;
use crate::lock::{lock_knowing, lock_many, Known, LockStatements};
use crate::write::{
    aggregate_columns, unnest_columns, RowWrite, UnnestColumns, WriteColumns, NUMERIC,
};

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
        &changes.touched,
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
        lock_sql(&format!(
            "{KNOWN_COPY} AS known, \
             CASE WHEN {KNOWN_COPY} THEN NULL ELSE {items} END AS items, \
             CASE WHEN {KNOWN_COPY} THEN NULL ELSE {holds} END AS holds",
            holds = holds_json()
        ))
    })
}

fn lock_many_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| lock_sql(&contents_columns()))
}

/// The lock of the wallets of the users `$1`, in user id order, with the
/// version each row had in the statement's snapshot (see `lock.rs`) and
/// `columns`.
fn lock_sql(columns: &str) -> String {
    format!(
        "SELECT {WALLET_COLUMNS}, \
         (SELECT s.version FROM wallets s WHERE s.id = w.id) AS seen_version, {columns} \
         FROM wallets w WHERE w.user_id = ANY($1) ORDER BY w.user_id FOR UPDATE"
    )
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

aggregate_columns! {
    /// The wallet part of the write statement as parallel arrays: the
    /// wallet rows (inserted, or updated from the loaded version, which
    /// each row must still have), the touched items and holds and the new
    /// transactions and the running totals of the legs they reverse, as
    /// the expressions `wallet_rows` (the id of each wallet written),
    /// `wallet_items_written`, `holds_written`,
    /// `wallet_transactions_written` and
    /// `wallet_transaction_reversals_written`. Items, holds, transactions
    /// and totals are written only for the wallets `wallet_rows` wrote:
    /// so the wallet's
    /// row lock comes first, and a wallet whose version no longer matches
    /// writes nothing (the caller sees it missing from the count).
    struct WalletColumns<'a> {
        rows: WalletRowColumns => wallet_rows_cte,
        items: ItemColumns => items_cte,
        holds: HoldColumns => holds_cte,
        transactions: TransactionColumns => transactions_cte,
        reversals: ReversalColumns => reversals_cte,
    }
}

impl<'a> AggregateColumns<'a, Wallet> for WalletColumns<'a> {
    /// Adds one wallet: as it is now, with the transactions and touched
    /// holds of every command applied to it since it was loaded at
    /// `expected_version`.
    fn push(
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
        for total in wallet.reversal_totals(transactions) {
            self.reversals.push(wallet.id(), &total);
        }
        transactions
            .iter()
            .try_for_each(|transaction| self.transactions.push(transaction))
    }
}

/// Only the wallets whose rows were written get the rest.
const OF_WRITTEN_WALLETS: &str = "WHERE u.wallet_id IN (SELECT id FROM wallet_rows)";

fn wallet_rows_cte(first: usize, rows: RowWrite) -> String {
    WalletRowColumns::rows_cte(
        ("wallet_rows", "wallets", first),
        rows,
        &[
            "status",
            "frozen_reason",
            "version",
            "transaction_count",
            "updated_at",
        ],
    )
}

unnest_columns! {
    struct WalletRowColumns<'a> {
        id: Uuid => "uuid",
        user_id: Uuid => "uuid",
        status: &'static str => "text",
        /// Owned: a currency code is a small value whose text lives in it.
        default_currency: String => "text",
        frozen_reason: Option<&'a str> => "text",
        version: i64 => "bigint",
        transaction_count: i64 => "bigint",
        created_at: DateTime<Utc> => "timestamptz",
        updated_at: DateTime<Utc> => "timestamptz",
        expected_version: i64 => "bigint",
    }
}

impl<'a> WalletRowColumns<'a> {
    fn push(&mut self, wallet: &'a Wallet, expected_version: u64) -> Result<(), WalletError> {
        self.id.push(wallet.id());
        self.user_id.push(wallet.user_id());
        self.status.push(wallet.status().as_str());
        self.default_currency
            .push(wallet.default_currency().as_str().to_owned());
        self.frozen_reason.push(wallet.frozen_reason());
        self.version
            .push(signed(wallet.version(), "wallet version")?);
        self.transaction_count
            .push(signed(wallet.transaction_count(), "transaction count")?);
        self.created_at.push(wallet.created_at());
        self.updated_at.push(wallet.updated_at());
        self.expected_version
            .push(signed(expected_version, "wallet version")?);
        Ok(())
    }
}

fn items_cte(first: usize) -> String {
    ItemColumns::upsert_cte(
        ("wallet_items", first),
        OF_WRITTEN_WALLETS,
        "wallet_id, currency",
        &["balance", "held"],
        None,
    )
}

unnest_columns! {
    struct ItemColumns<'a> {
        wallet_id: Uuid => "uuid",
        currency: &'a str => "text",
        balance: String => NUMERIC,
        held: String => NUMERIC,
    }
}

impl<'a> ItemColumns<'a> {
    fn push(&mut self, wallet_id: Uuid, item: &'a WalletItem) {
        self.wallet_id.push(wallet_id);
        self.currency.push(item.currency.as_str());
        self.balance.push(amount_text(&item.balance));
        self.held.push(amount_text(&item.held));
    }
}

fn holds_cte(first: usize) -> String {
    HoldColumns::upsert_cte(
        ("holds", first),
        OF_WRITTEN_WALLETS,
        "id",
        &[
            "remaining_amount",
            "executed_amount",
            "released_amount",
            "status",
            "updated_at",
        ],
        Some("wallet_id"),
    )
}

unnest_columns! {
    struct HoldColumns<'a> {
        id: Uuid => "uuid",
        wallet_id: Uuid => "uuid",
        currency: &'a str => "text",
        original_amount: String => NUMERIC,
        remaining_amount: String => NUMERIC,
        executed_amount: String => NUMERIC,
        released_amount: String => NUMERIC,
        status: &'static str => "text",
        reference_type: &'a str => "text",
        reference_id: Uuid => "uuid",
        description: Option<&'a str> => "text",
        expires_at: DateTime<Utc> => "timestamptz",
        created_at: DateTime<Utc> => "timestamptz",
        updated_at: DateTime<Utc> => "timestamptz",
    }
}

impl<'a> HoldColumns<'a> {
    fn push(&mut self, hold: &'a Hold) {
        self.id.push(hold.id);
        self.wallet_id.push(hold.wallet_id);
        self.currency.push(hold.currency.as_str());
        self.original_amount
            .push(amount_text(&hold.original_amount));
        self.remaining_amount
            .push(amount_text(&hold.remaining_amount));
        self.executed_amount
            .push(amount_text(&hold.executed_amount));
        self.released_amount
            .push(amount_text(&hold.released_amount));
        self.status.push(hold.status.as_str());
        self.reference_type.push(hold.reference_type.as_str());
        self.reference_id.push(hold.reference_id);
        self.description.push(hold.description.as_deref());
        self.expires_at.push(hold.expires_at);
        self.created_at.push(hold.created_at);
        self.updated_at.push(hold.updated_at);
    }
}

fn transactions_cte(first: usize) -> String {
    TransactionColumns::insert_cte(("wallet_transactions", first), OF_WRITTEN_WALLETS)
}

unnest_columns! {
    struct TransactionColumns<'a> {
        wallet_id: Uuid => "uuid",
        id: Uuid => "uuid",
        sequence: i64 => "bigint",
        transaction_type: &'static str => "text",
        currency: &'a str => "text",
        amount: String => NUMERIC,
        held_change: String => NUMERIC,
        balance_after: String => NUMERIC,
        held_after: String => NUMERIC,
        description: Option<&'a str> => "text",
        reference: Option<&'a str> => "text",
        hold_id: Option<Uuid> => "uuid",
        idempotency_key: Option<&'a str> => "text",
        created_at: DateTime<Utc> => "timestamptz",
        transfer_id: Option<Uuid> => "uuid",
        counterparty_user_id: Option<Uuid> => "uuid",
        reverses_transaction_id: Option<Uuid> => "uuid",
    }
}

impl<'a> TransactionColumns<'a> {
    fn push(&mut self, transaction: &'a WalletTransaction) -> Result<(), WalletError> {
        self.wallet_id.push(transaction.wallet_id);
        self.id.push(transaction.id);
        self.sequence
            .push(signed(transaction.sequence, "transaction sequence")?);
        self.transaction_type
            .push(transaction.transaction_type.as_str());
        self.currency.push(transaction.currency.as_str());
        self.amount.push(amount_text(&transaction.amount));
        self.held_change.push(amount_text(&transaction.held_change));
        self.balance_after
            .push(amount_text(&transaction.balance_after));
        self.held_after.push(amount_text(&transaction.held_after));
        self.description.push(transaction.description.as_deref());
        self.reference.push(transaction.reference.as_deref());
        self.hold_id.push(transaction.hold_id);
        self.idempotency_key
            .push(transaction.idempotency_key.as_deref());
        self.created_at.push(transaction.created_at);
        self.transfer_id.push(transaction.transfer_id);
        self.counterparty_user_id
            .push(transaction.counterparty_user_id);
        self.reverses_transaction_id
            .push(transaction.reverses_transaction_id);
        Ok(())
    }
}

/// The running totals of the reversed legs (see `reversals.rs`): upserted
/// with the newest total; the table's check refuses a total above the
/// leg's amount.
fn reversals_cte(first: usize) -> String {
    ReversalColumns::upsert_cte(
        ("wallet_transaction_reversals", first),
        OF_WRITTEN_WALLETS,
        "transaction_id",
        &["reversed_amount"],
        Some("wallet_id"),
    )
}

unnest_columns! {
    struct ReversalColumns<'a> {
        transaction_id: Uuid => "uuid",
        wallet_id: Uuid => "uuid",
        original_amount: String => NUMERIC,
        reversed_amount: String => NUMERIC,
    }
}

impl ReversalColumns<'_> {
    fn push(&mut self, wallet_id: Uuid, total: &ReversalTotal) {
        self.transaction_id.push(total.transaction_id);
        self.wallet_id.push(wallet_id);
        self.original_amount
            .push(amount_text(&total.original_amount));
        self.reversed_amount
            .push(amount_text(&total.reversed_amount));
    }
}
