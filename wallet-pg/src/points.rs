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

use crate::aggregate::AggregateColumns;
use crate::codec::{column, from_json, signed, unsigned};
use crate::lock::{lock_many, LockStatements};
use crate::write::{aggregate_columns, unnest_columns, RowWrite, UnnestColumns};

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

aggregate_columns! {
    /// The point account part of the write statement as parallel arrays:
    /// the account rows, the touched lots and the new transactions, as the
    /// expressions `account_rows` (one row per account written),
    /// `point_lots_written` and `point_transactions_written`. As for
    /// wallets, lots and transactions are written only for the accounts
    /// `account_rows` wrote.
    struct PointAccountColumns<'a> {
        rows: AccountRowColumns => account_rows_cte,
        lots: LotColumns => lots_cte,
        transactions: PointTransactionColumns => point_transactions_cte,
    }
}

impl<'a> AggregateColumns<'a, PointAccount> for PointAccountColumns<'a> {
    /// Adds one account: as it is now, loaded at `expected_version`, with
    /// the transactions and the touched lots (pictures in the order taken:
    /// the last picture of a lot is its state now) of every command
    /// applied to it since.
    fn push(
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
        transactions
            .iter()
            .try_for_each(|transaction| self.transactions.push(transaction))
    }
}

/// Only the accounts whose rows were written get the rest.
const OF_WRITTEN_ACCOUNTS: &str = "WHERE u.account_id IN (SELECT id FROM account_rows)";

fn account_rows_cte(first: usize, rows: RowWrite) -> String {
    AccountRowColumns::rows_cte(
        ("account_rows", "point_accounts", first),
        rows,
        &[
            "available_points",
            "pending_points",
            "lifetime_earned",
            "version",
            "transaction_count",
            "updated_at",
        ],
    )
}

unnest_columns! {
    struct AccountRowColumns<'a> {
        id: Uuid => "uuid",
        user_id: Uuid => "uuid",
        available_points: i64 => "bigint",
        pending_points: i64 => "bigint",
        lifetime_earned: i64 => "bigint",
        version: i64 => "bigint",
        transaction_count: i64 => "bigint",
        created_at: DateTime<Utc> => "timestamptz",
        updated_at: DateTime<Utc> => "timestamptz",
        expected_version: i64 => "bigint",
    }
}

impl AccountRowColumns<'_> {
    fn push(&mut self, account: &PointAccount, expected_version: u64) -> Result<(), WalletError> {
        self.id.push(account.id());
        self.user_id.push(account.user_id());
        self.available_points.push(account.available_points());
        self.pending_points.push(account.pending_points());
        self.lifetime_earned.push(account.lifetime_earned());
        self.version
            .push(signed(account.version(), "point account version")?);
        self.transaction_count.push(signed(
            account.transaction_count(),
            "point transaction count",
        )?);
        self.created_at.push(account.created_at());
        self.updated_at.push(account.updated_at());
        self.expected_version
            .push(signed(expected_version, "point account version")?);
        Ok(())
    }
}

fn lots_cte(first: usize) -> String {
    LotColumns::upsert_cte(
        ("point_lots", first),
        OF_WRITTEN_ACCOUNTS,
        "id",
        &["remaining", "state"],
        Some("account_id"),
    )
}

fn lot_state(state: LotState) -> &'static str {
    match state {
        LotState::Pending => "Pending",
        LotState::Available => "Available",
    }
}

unnest_columns! {
    struct LotColumns<'a> {
        id: Uuid => "uuid",
        account_id: Uuid => "uuid",
        points: i64 => "bigint",
        remaining: i64 => "bigint",
        state: &'static str => "text",
        source: &'a str => "text",
        earned_at: DateTime<Utc> => "timestamptz",
        expires_at: Option<DateTime<Utc>> => "timestamptz",
    }
}

impl<'a> LotColumns<'a> {
    fn push(&mut self, account_id: Uuid, lot: &'a PointLot) {
        self.id.push(lot.id);
        self.account_id.push(account_id);
        self.points.push(lot.points);
        self.remaining.push(lot.remaining);
        self.state.push(lot_state(lot.state));
        self.source.push(lot.source.as_str());
        self.earned_at.push(lot.earned_at);
        self.expires_at.push(lot.expires_at);
    }
}

fn point_transactions_cte(first: usize) -> String {
    PointTransactionColumns::insert_cte(("point_transactions", first), OF_WRITTEN_ACCOUNTS)
}

unnest_columns! {
    struct PointTransactionColumns<'a> {
        account_id: Uuid => "uuid",
        id: Uuid => "uuid",
        sequence: i64 => "bigint",
        transaction_type: &'static str => "text",
        points: i64 => "bigint",
        balance_after: i64 => "bigint",
        source: &'a str => "text",
        description: Option<&'a str> => "text",
        lot_id: Option<Uuid> => "uuid",
        expires_at: Option<DateTime<Utc>> => "timestamptz",
        idempotency_key: Option<&'a str> => "text",
        created_at: DateTime<Utc> => "timestamptz",
    }
}

impl<'a> PointTransactionColumns<'a> {
    fn push(&mut self, transaction: &'a PointTransaction) -> Result<(), WalletError> {
        self.account_id.push(transaction.account_id);
        self.id.push(transaction.id);
        self.sequence
            .push(signed(transaction.sequence, "point transaction sequence")?);
        self.transaction_type
            .push(transaction.transaction_type.as_str());
        self.points.push(transaction.points);
        self.balance_after.push(transaction.balance_after);
        self.source.push(transaction.source.as_str());
        self.description.push(transaction.description.as_deref());
        self.lot_id.push(transaction.lot_id);
        self.expires_at.push(transaction.expires_at);
        self.idempotency_key
            .push(transaction.idempotency_key.as_deref());
        self.created_at.push(transaction.created_at);
        Ok(())
    }
}
