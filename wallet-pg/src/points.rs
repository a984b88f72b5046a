//! Point accounts in the database, in the same two parts as the wallets'
//! (`wallets.rs`): [`lock_point_accounts`] locks and loads many accounts in
//! user id order, and `PointAccountColumns` holds the point account part
//! of the one write statement (`write.rs`).

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::PgConnection;
use uuid::Uuid;
use wallet_core::{LotState, PointAccount, PointLot, PointTransaction, WalletError};

use crate::codec::{column, from_json, signed, unsigned};
use crate::lock::{lock_many, LockStatements};
use crate::write::{parameters, PgQuery, RowWrite};

/// Locks the point accounts of `user_ids` (in user id order) and loads each
/// with its live lots (pending, or available with points left), up to date
/// even when a lock waited (see `lock.rs`); each lot of `lot_ids`
/// that is an account's own is remembered on it
/// ([`PointAccount::remember_lot`]), so a command naming a lot that is no
/// longer live answers `lot_not_pending`. Users without an account are
/// absent from the answer. Must run inside a transaction. Also returns how
/// many statements it ran.
pub async fn lock_point_accounts(
    conn: &mut PgConnection,
    user_ids: &[Uuid],
    lot_ids: &[Uuid],
) -> Result<(Vec<PointAccount>, u64), WalletError> {
    let (locked, sent) = lock_many(conn, lock_statements(), user_ids, lot_ids).await?;
    let accounts = locked
        .into_iter()
        .map(|(row, lots)| account_from_row(&row, lots))
        .collect::<Result<_, _>>()?;
    Ok((accounts, sent))
}

/// The live lots of an account and the named lots that are its own.
type Lots = (Vec<PointLot>, Vec<Uuid>);

fn lots_of(row: &PgRow) -> Result<Lots, WalletError> {
    let lots: Vec<PointLot> = from_json(column(row, "lots")?, "point lots")?;
    let known: Vec<Uuid> = column(row, "known_lots")?;
    Ok((lots, known))
}

fn lock_statements() -> &'static LockStatements<Lots> {
    static STATEMENTS: OnceLock<LockStatements<Lots>> = OnceLock::new();
    STATEMENTS.get_or_init(|| LockStatements {
        lock: lock_many_sql(),
        reload: load_many_sql(),
        contents: lots_of,
        what: "point account",
    })
}

fn account_from_row(row: &PgRow, (lots, known): Lots) -> Result<PointAccount, WalletError> {
    let mut account = PointAccount::restore(
        column(row, "id")?,
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
    Ok(account)
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

/// The point account part of the write statement as parallel arrays: the
/// account rows, the touched lots and the new transactions.
#[derive(Default)]
pub(crate) struct PointAccountColumns<'a> {
    rows: AccountRowColumns,
    lots: LotColumns<'a>,
    transactions: PointTransactionColumns<'a>,
}

impl<'a> PointAccountColumns<'a> {
    /// How many parameters [`PointAccountColumns::bind`] binds.
    pub const PARAMETERS: usize =
        ACCOUNT_ROW_TYPES.len() + LOT_TYPES.len() + POINT_TRANSACTION_TYPES.len();

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
        for lot in order.iter().filter_map(|id| latest.get(id)) {
            self.lots.push(account.id(), lot);
        }
        for transaction in transactions {
            self.transactions.push(transaction)?;
        }
        Ok(())
    }

    /// How many account rows the statement must write.
    pub fn len(&self) -> usize {
        self.rows.ids.len()
    }

    /// The statement's common table expressions for point accounts, with
    /// their parameters numbered from `$first`: `account_rows` (one row
    /// per account written), `point_lots_written`,
    /// `point_transactions_written`.
    pub fn ctes(first: usize, rows: RowWrite) -> String {
        let lots = first + ACCOUNT_ROW_TYPES.len();
        let transactions = lots + LOT_TYPES.len();
        format!(
            "{rows}, {lots}, {transactions}",
            rows = account_rows_cte(first, rows),
            lots = lots_cte(lots),
            transactions = point_transactions_cte(transactions),
        )
    }

    /// Binds the [`PointAccountColumns::PARAMETERS`] arrays, in the order of
    /// [`PointAccountColumns::ctes`].
    pub fn bind<'q>(self, query: PgQuery<'q>) -> PgQuery<'q>
    where
        'a: 'q,
    {
        let query = self.rows.bind(query);
        let query = self.lots.bind(query);
        self.transactions.bind(query)
    }
}

#[rustfmt::skip]
const ACCOUNT_ROW_TYPES: [&str; 10] = [
    "uuid", "uuid", "bigint", "bigint", "bigint",
    "bigint", "bigint", "timestamptz", "timestamptz", "bigint",
];
const ACCOUNT_ROW_FIELDS: &str = "id, user_id, available_points, pending_points, \
     lifetime_earned, version, transaction_count, created_at, updated_at, expected_version";

fn account_rows_cte(first: usize, rows: RowWrite) -> String {
    let unnest = format!(
        "FROM UNNEST({}) AS u({ACCOUNT_ROW_FIELDS})",
        parameters(first, &ACCOUNT_ROW_TYPES)
    );
    match rows {
        RowWrite::Insert => format!(
            "account_rows AS (INSERT INTO point_accounts (id, user_id, available_points, \
             pending_points, lifetime_earned, version, transaction_count, created_at, \
             updated_at) \
             SELECT u.id, u.user_id, u.available_points, u.pending_points, u.lifetime_earned, \
             u.version, u.transaction_count, u.created_at, u.updated_at {unnest} \
             WHERE u.expected_version = 0 RETURNING id)"
        ),
        RowWrite::Update => format!(
            "account_rows AS (UPDATE point_accounts a SET \
             available_points = u.available_points, pending_points = u.pending_points, \
             lifetime_earned = u.lifetime_earned, version = u.version, \
             transaction_count = u.transaction_count, updated_at = u.updated_at {unnest} \
             WHERE a.id = u.id AND a.version = u.expected_version RETURNING a.id)"
        ),
    }
}

#[derive(Default)]
struct AccountRowColumns {
    ids: Vec<Uuid>,
    user_ids: Vec<Uuid>,
    available: Vec<i64>,
    pending: Vec<i64>,
    lifetime_earned: Vec<i64>,
    versions: Vec<i64>,
    transaction_counts: Vec<i64>,
    created_at: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
    expected_versions: Vec<i64>,
}

impl AccountRowColumns {
    fn push(&mut self, account: &PointAccount, expected_version: u64) -> Result<(), WalletError> {
        self.ids.push(account.id());
        self.user_ids.push(account.user_id());
        self.available.push(account.available_points());
        self.pending.push(account.pending_points());
        self.lifetime_earned.push(account.lifetime_earned());
        self.versions
            .push(signed(account.version(), "point account version")?);
        self.transaction_counts.push(signed(
            account.transaction_count(),
            "point transaction count",
        )?);
        self.created_at.push(account.created_at());
        self.updated_at.push(account.updated_at());
        self.expected_versions
            .push(signed(expected_version, "point account version")?);
        Ok(())
    }

    fn bind(self, query: PgQuery<'_>) -> PgQuery<'_> {
        query
            .bind(self.ids)
            .bind(self.user_ids)
            .bind(self.available)
            .bind(self.pending)
            .bind(self.lifetime_earned)
            .bind(self.versions)
            .bind(self.transaction_counts)
            .bind(self.created_at)
            .bind(self.updated_at)
            .bind(self.expected_versions)
    }
}

#[rustfmt::skip]
const LOT_TYPES: [&str; 8] = [
    "uuid", "uuid", "bigint", "bigint", "text",
    "text", "timestamptz", "timestamptz",
];

fn lots_cte(first: usize) -> String {
    format!(
        "point_lots_written AS (INSERT INTO point_lots (id, account_id, points, remaining, \
         state, source, earned_at, expires_at) \
         SELECT u.id, u.account_id, u.points, u.remaining, u.state, u.source, \
         u.earned_at, u.expires_at \
         FROM UNNEST({}) \
         AS u(id, account_id, points, remaining, state, source, earned_at, expires_at) \
         ON CONFLICT (id) DO UPDATE SET remaining = EXCLUDED.remaining, \
         state = EXCLUDED.state WHERE point_lots.account_id = EXCLUDED.account_id)",
        parameters(first, &LOT_TYPES)
    )
}

fn lot_state(state: LotState) -> &'static str {
    match state {
        LotState::Pending => "Pending",
        LotState::Available => "Available",
    }
}

#[rustfmt::skip]
const POINT_TRANSACTION_TYPES: [&str; 12] = [
    "uuid", "uuid", "bigint", "text", "bigint",
    "bigint", "text", "text", "uuid", "timestamptz",
    "text", "timestamptz",
];

fn point_transactions_cte(first: usize) -> String {
    format!(
        "point_transactions_written AS (INSERT INTO point_transactions (account_id, \
         sequence, id, transaction_type, points, balance_after, source, description, \
         lot_id, expires_at, idempotency_key, created_at) \
         SELECT u.account_id, u.sequence, u.id, u.transaction_type, u.points, \
         u.balance_after, u.source, u.description, u.lot_id, u.expires_at, \
         u.idempotency_key, u.created_at \
         FROM UNNEST({}) \
         AS u(account_id, id, sequence, transaction_type, points, balance_after, \
         source, description, lot_id, expires_at, idempotency_key, created_at))",
        parameters(first, &POINT_TRANSACTION_TYPES)
    )
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

    fn bind<'q>(self, query: PgQuery<'q>) -> PgQuery<'q>
    where
        'a: 'q,
    {
        query
            .bind(self.ids)
            .bind(self.account_ids)
            .bind(self.points)
            .bind(self.remaining)
            .bind(self.states)
            .bind(self.sources)
            .bind(self.earned_at)
            .bind(self.expires_at)
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

    fn bind<'q>(self, query: PgQuery<'q>) -> PgQuery<'q>
    where
        'a: 'q,
    {
        query
            .bind(self.account_ids)
            .bind(self.ids)
            .bind(self.sequences)
            .bind(self.types)
            .bind(self.points)
            .bind(self.balances_after)
            .bind(self.sources)
            .bind(self.descriptions)
            .bind(self.lot_ids)
            .bind(self.expires_at)
            .bind(self.keys)
            .bind(self.created_at)
    }
}
