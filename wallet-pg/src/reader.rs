//! The read side: keyset pages that match the in-memory store item for
//! item, statistics, and the sweep candidates.
//!
//! Pages are newest first and fetch `limit + 1` rows so that
//! [`Page::from_overfetch`] can tell whether there is a next page. Wallet
//! and point transactions page by their sequence in their log; holds and
//! wallets by `(created_at, id)`, compared as a row so that an index on
//! those columns serves the walk.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::PgPool;
use uuid::Uuid;
use wallet_core::memory::accumulate_point_flow;
use wallet_core::query::{CurrencyStatistics, PointStatistics, Statistics, TransactionStatistics};
use wallet_core::{
    CurrencyCode, Cursor, Decimal, Hold, HoldStatus, Page, PageRequest, PointAccountView,
    PointTransaction, PointTransactionType, TransactionFilter, TransactionType, WalletError,
    WalletStatus, WalletTransaction, WalletView,
};

use crate::codec::{
    amount, column, corrupt, currency, hold_from_row, parse, point_account_view_from_row,
    point_transaction_from_row, saturate, transaction_from_row, unsigned, wallet_view_from_row,
    HOLD_COLUMNS, POINT_ACCOUNT_COLUMNS, POINT_TRANSACTION_COLUMNS, TRANSACTION_COLUMNS,
    WALLET_COLUMNS, WALLET_ITEMS_JSON,
};
use crate::error::{map_error, run_with};
use crate::write::PgQuery;

/// The rows to fetch for a page: one more than asked for.
fn overfetch(page: &PageRequest) -> i64 {
    i64::from(page.limit) + 1
}

/// Runs a page's query (every parameter bound but the last, the row
/// limit, which this binds) and makes the page of its rows, each read by
/// `from_row` and keyed for the next page by `cursor`.
async fn fetch_page<T>(
    pool: &PgPool,
    query: PgQuery<'_>,
    page: &PageRequest,
    from_row: fn(&PgRow) -> Result<T, WalletError>,
    cursor: impl Fn(&T) -> Cursor,
) -> Result<Page<T>, WalletError> {
    let rows = query
        .bind(overfetch(page))
        .fetch_all(pool)
        .await
        .map_err(map_error)?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(Page::from_overfetch(items, page.limit, cursor))
}

/// The sequence below which a sequence-paged walk continues.
fn before_sequence(page: &PageRequest) -> Result<Option<i64>, WalletError> {
    Ok(match page.cursor {
        Some(cursor) => Some(saturate(cursor.sequence()?)),
        None => None,
    })
}

/// The position below which a position-paged walk continues.
fn before_position(page: &PageRequest) -> Result<Option<(DateTime<Utc>, Uuid)>, WalletError> {
    page.cursor.map(|cursor| cursor.position()).transpose()
}

/// The id of the user's wallet; `WalletNotFound` when there is none.
pub(crate) async fn wallet_id(pool: &PgPool, user_id: Uuid) -> Result<Uuid, WalletError> {
    let sql = "SELECT id FROM wallets WHERE user_id = $1";
    id_of_user(pool, sql, user_id, WalletError::WalletNotFound).await
}

/// The id of the user's point account; `PointAccountNotFound` when there
/// is none.
async fn point_account_id(pool: &PgPool, user_id: Uuid) -> Result<Uuid, WalletError> {
    let sql = "SELECT id FROM point_accounts WHERE user_id = $1";
    id_of_user(pool, sql, user_id, WalletError::PointAccountNotFound).await
}

/// The id that `sql` (whose only parameter is the user id) finds, or
/// `missing`.
async fn id_of_user(
    pool: &PgPool,
    sql: &'static str,
    user_id: Uuid,
    missing: WalletError,
) -> Result<Uuid, WalletError> {
    sqlx::query_scalar(sql)
        .bind(user_id)
        .fetch_optional(pool)
        .await
        .map_err(map_error)?
        .ok_or(missing)
}

/// The one row `query` finds, read by `from_row`; `None` when it finds
/// none.
async fn fetch_row<T>(
    pool: &PgPool,
    query: PgQuery<'_>,
    from_row: fn(&PgRow) -> Result<T, WalletError>,
) -> Result<Option<T>, WalletError> {
    let row = query.fetch_optional(pool).await.map_err(map_error)?;
    row.as_ref().map(from_row).transpose()
}

pub(crate) async fn wallet(
    pool: &PgPool,
    user_id: Uuid,
) -> Result<Option<WalletView>, WalletError> {
    let sql =
        format!("SELECT {WALLET_COLUMNS}, {WALLET_ITEMS_JSON} FROM wallets w WHERE w.user_id = $1");
    fetch_row(pool, sqlx::query(&sql).bind(user_id), wallet_view_from_row).await
}

pub(crate) async fn transactions(
    pool: &PgPool,
    user_id: Uuid,
    filter: TransactionFilter,
    page: PageRequest,
) -> Result<Page<WalletTransaction>, WalletError> {
    let wallet_id = wallet_id(pool, user_id).await?;
    let before = before_sequence(&page)?;
    let sql = format!(
        "SELECT {TRANSACTION_COLUMNS} FROM wallet_transactions t \
         WHERE t.wallet_id = $1 AND ($2::bigint IS NULL OR t.sequence < $2) \
         AND ($3::text IS NULL OR t.currency = $3) \
         AND ($4::text IS NULL OR t.transaction_type = $4) \
         ORDER BY t.sequence DESC LIMIT $5"
    );
    let query = sqlx::query(&sql)
        .bind(wallet_id)
        .bind(before)
        .bind(filter.currency.as_ref().map(CurrencyCode::as_str))
        .bind(filter.transaction_type.map(|t| t.as_str()));
    fetch_page(pool, query, &page, transaction_from_row, |t| {
        Cursor::Sequence(t.sequence)
    })
    .await
}

pub(crate) async fn holds(
    pool: &PgPool,
    user_id: Uuid,
    status: Option<HoldStatus>,
    page: PageRequest,
) -> Result<Page<Hold>, WalletError> {
    let wallet_id = wallet_id(pool, user_id).await?;
    let before = before_position(&page)?;
    let sql = format!(
        "SELECT {HOLD_COLUMNS} FROM holds h \
         WHERE h.wallet_id = $1 AND ($2::text IS NULL OR h.status = $2) \
         AND ($3::timestamptz IS NULL OR (h.created_at, h.id) < ($3, $4::uuid)) \
         ORDER BY h.created_at DESC, h.id DESC LIMIT $5"
    );
    let query = sqlx::query(&sql)
        .bind(wallet_id)
        .bind(status.map(|s| s.as_str()))
        .bind(before.map(|(at, _)| at))
        .bind(before.map(|(_, id)| id));
    fetch_page(pool, query, &page, hold_from_row, |h| Cursor::Position {
        at: h.created_at,
        id: h.id,
    })
    .await
}

pub(crate) async fn hold(
    pool: &PgPool,
    user_id: Uuid,
    hold_id: Uuid,
) -> Result<Option<Hold>, WalletError> {
    let wallet_id = wallet_id(pool, user_id).await?;
    let sql = format!("SELECT {HOLD_COLUMNS} FROM holds h WHERE h.id = $1 AND h.wallet_id = $2");
    let query = sqlx::query(&sql).bind(hold_id).bind(wallet_id);
    fetch_row(pool, query, hold_from_row).await
}

pub(crate) async fn point_account(
    pool: &PgPool,
    user_id: Uuid,
) -> Result<Option<PointAccountView>, WalletError> {
    let sql = format!("SELECT {POINT_ACCOUNT_COLUMNS} FROM point_accounts a WHERE a.user_id = $1");
    fetch_row(
        pool,
        sqlx::query(&sql).bind(user_id),
        point_account_view_from_row,
    )
    .await
}

pub(crate) async fn point_transactions(
    pool: &PgPool,
    user_id: Uuid,
    page: PageRequest,
) -> Result<Page<PointTransaction>, WalletError> {
    let account_id = point_account_id(pool, user_id).await?;
    let before = before_sequence(&page)?;
    let sql = format!(
        "SELECT {POINT_TRANSACTION_COLUMNS} FROM point_transactions t \
         WHERE t.account_id = $1 AND ($2::bigint IS NULL OR t.sequence < $2) \
         ORDER BY t.sequence DESC LIMIT $3"
    );
    let query = sqlx::query(&sql).bind(account_id).bind(before);
    fetch_page(pool, query, &page, point_transaction_from_row, |t| {
        Cursor::Sequence(t.sequence)
    })
    .await
}

pub(crate) async fn wallets(
    pool: &PgPool,
    status: Option<WalletStatus>,
    page: PageRequest,
) -> Result<Page<WalletView>, WalletError> {
    let before = before_position(&page)?;
    let sql = format!(
        "SELECT {WALLET_COLUMNS}, {WALLET_ITEMS_JSON} FROM wallets w \
         WHERE ($1::text IS NULL OR w.status = $1) \
         AND ($2::timestamptz IS NULL OR (w.created_at, w.id) < ($2, $3::uuid)) \
         ORDER BY w.created_at DESC, w.id DESC LIMIT $4"
    );
    let query = sqlx::query(&sql)
        .bind(status.map(|s| s.as_str()))
        .bind(before.map(|(at, _)| at))
        .bind(before.map(|(_, id)| id));
    fetch_page(pool, query, &page, wallet_view_from_row, |w| {
        Cursor::Position {
            at: w.created_at,
            id: w.id,
        }
    })
    .await
}

/// A `numeric` sum of `bigint` points as `i64`.
fn points_sum(value: Option<Decimal>) -> Result<i64, WalletError> {
    let value = value.unwrap_or(Decimal::ZERO);
    i64::try_from(value).map_err(|_| corrupt("point total"))
}

pub(crate) async fn statistics(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Statistics, WalletError> {
    Ok(Statistics {
        from,
        to,
        wallets: wallets_by_status(pool).await?,
        currencies: currency_statistics(pool).await?,
        transactions: transaction_statistics(pool, from, to).await?,
        points: point_statistics(pool, from, to).await?,
    })
}

/// How many wallets each status has (every status, zero or more).
async fn wallets_by_status(pool: &PgPool) -> Result<BTreeMap<WalletStatus, u64>, WalletError> {
    let mut wallets: BTreeMap<WalletStatus, u64> =
        WalletStatus::ALL.iter().map(|s| (*s, 0)).collect();
    let rows = sqlx::query("SELECT status, count(*) AS wallets FROM wallets GROUP BY status")
        .fetch_all(pool)
        .await
        .map_err(map_error)?;
    for row in &rows {
        let status: String = column(row, "status")?;
        let count = unsigned(column(row, "wallets")?, "wallet count")?;
        *wallets
            .entry(parse::<WalletStatus>(&status, "wallet status")?)
            .or_default() += count;
    }
    Ok(wallets)
}

/// The money of each currency, in currency order.
async fn currency_statistics(pool: &PgPool) -> Result<Vec<CurrencyStatistics>, WalletError> {
    let rows = sqlx::query(
        "SELECT currency, sum(balance)::text AS balance, sum(held)::text AS held, \
         count(*) AS wallets \
         FROM wallet_items GROUP BY currency",
    )
    .fetch_all(pool)
    .await
    .map_err(map_error)?;
    let mut currencies: BTreeMap<CurrencyCode, CurrencyStatistics> = BTreeMap::new();
    for row in &rows {
        let code = currency(&column::<String>(row, "currency")?)?;
        currencies.insert(
            code,
            CurrencyStatistics {
                currency: code,
                balance: amount(row, "balance")?,
                held: amount(row, "held")?,
                wallets: unsigned(column(row, "wallets")?, "wallet count")?,
            },
        );
    }
    Ok(currencies.into_values().collect())
}

/// The transactions of each type and currency between `from` and `to`.
async fn transaction_statistics(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<TransactionStatistics>, WalletError> {
    // Volume: the absolute change of the balance, or of the held amount
    // for the types that move only held money (the in-memory store's rule).
    let sql = "SELECT transaction_type, currency, count(*) AS transactions, \
         sum(CASE WHEN amount = 0 THEN abs(held_change) ELSE abs(amount) END)::text AS volume \
         FROM wallet_transactions WHERE created_at >= $1 AND created_at <= $2 \
         GROUP BY transaction_type, currency";
    let rows = run_with(sql, (from, to), |query| query.fetch_all(pool)).await?;
    let mut transactions: BTreeMap<(TransactionType, CurrencyCode), TransactionStatistics> =
        BTreeMap::new();
    for row in &rows {
        let kind = parse::<TransactionType>(
            &column::<String>(row, "transaction_type")?,
            "transaction type",
        )?;
        let code = currency(&column::<String>(row, "currency")?)?;
        transactions.insert(
            (kind, code),
            TransactionStatistics {
                transaction_type: kind,
                currency: code,
                count: unsigned(column(row, "transactions")?, "transaction count")?,
                volume: amount(row, "volume")?,
            },
        );
    }
    Ok(transactions.into_values().collect())
}

/// The points held now, and their flows between `from` and `to`.
async fn point_statistics(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<PointStatistics, WalletError> {
    let row = sqlx::query(
        "SELECT sum(available_points) AS available, sum(pending_points) AS pending \
         FROM point_accounts",
    )
    .fetch_one(pool)
    .await
    .map_err(map_error)?;
    let mut points = PointStatistics {
        available: points_sum(column(&row, "available")?)?,
        pending: points_sum(column(&row, "pending")?)?,
        ..PointStatistics::default()
    };
    // Each type's gains and losses summed apart, then counted the shared way.
    let sql = "SELECT transaction_type, sum(points) FILTER (WHERE points > 0) AS gained, \
         sum(points) FILTER (WHERE points < 0) AS lost \
         FROM point_transactions WHERE created_at >= $1 AND created_at <= $2 \
         GROUP BY transaction_type";
    let rows = run_with(sql, (from, to), |query| query.fetch_all(pool)).await?;
    for row in &rows {
        let kind = parse::<PointTransactionType>(
            &column::<String>(row, "transaction_type")?,
            "point transaction type",
        )?;
        for change in ["gained", "lost"] {
            let sum: Option<Decimal> = column(row, change)?;
            if sum.is_some() {
                accumulate_point_flow(&mut points, kind, points_sum(sum)?)?;
            }
        }
    }
    Ok(points)
}
