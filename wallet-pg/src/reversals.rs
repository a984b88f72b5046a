//! Reversals in the database: the rows a reversal names, loaded with their
//! running totals under the wallets' row locks (the totals' part of the one
//! write statement is a wallet table's, in `wallets.rs`); and the reads of
//! one transaction and of balances at a point in time.
//!
//! **Why the totals live where they do.** A transaction row never changes,
//! so the sum of a leg's reversals is kept beside it, one row per reversed
//! leg in `wallet_transaction_reversals` (the two legs of a transfer each
//! have one, written together with the same total). A reversal's unit of
//! work locks every wallet it touches first (`lock.rs`), then loads the
//! legs it names with their totals ([`remember_named`]): a concurrent
//! reversal of the same transaction holds or waits for the same wallet
//! locks, so the total read is the newest and the one written is the one
//! checked. A batch applies its commands on one copy of each wallet, whose
//! remembered legs carry the totals the earlier commands raised; and a
//! writer's kept wallet never serves a command that names a row (see
//! `batch/run.rs`), so no total is ever read outside the locks. The
//! constraint `wallet_transaction_reversals_within_original` is the last
//! line of defence.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use wallet_core::{Wallet, WalletError, WalletItem, WalletTransaction};

use crate::codec::{amount, column, currency, transaction_from_row, TRANSACTION_COLUMNS};
use crate::error::{run_with, Param};

/// Loads the rows of `transaction_ids` that belong to the wallets of
/// `wallets` (locked by the caller, in this transaction) with their
/// totals, and remembers each in its wallet. Returns how many statements
/// it ran.
pub(crate) async fn remember_named(
    conn: &mut PgConnection,
    wallets: &mut [Wallet],
    transaction_ids: &[Uuid],
) -> Result<u64, WalletError> {
    if transaction_ids.is_empty() || wallets.is_empty() {
        return Ok(0);
    }
    let wallet_ids: Vec<Uuid> = wallets.iter().map(Wallet::id).collect();
    let sql = format!(
        "SELECT {TRANSACTION_COLUMNS} FROM wallet_transactions t \
         WHERE t.id = ANY($1) AND t.wallet_id = ANY($2)"
    );
    for transaction in rows(&mut *conn, &sql, (transaction_ids, &wallet_ids)).await? {
        for wallet in wallets.iter_mut() {
            wallet.remember_transaction(transaction.clone());
        }
    }
    Ok(1)
}

/// The transactions `sql` (selecting [`TRANSACTION_COLUMNS`]) finds with
/// its two parameters.
async fn rows<'e, 'q: 'e>(
    executor: impl sqlx::PgExecutor<'e> + 'e,
    sql: &'q str,
    parameters: (impl Param<'q>, impl Param<'q>),
) -> Result<Vec<WalletTransaction>, WalletError> {
    let found = run_with(sql, parameters, |query| query.fetch_all(executor)).await?;
    found.iter().map(transaction_from_row).collect()
}

/// The row `transaction_id` of the user's wallet and the rows of other
/// wallets sharing its transfer id, in one statement.
pub(crate) async fn transaction_legs(
    pool: &PgPool,
    user_id: Uuid,
    transaction_id: Uuid,
) -> Result<Vec<WalletTransaction>, WalletError> {
    let sql = format!(
        "WITH named AS (SELECT t.id, t.wallet_id, t.transfer_id FROM wallet_transactions t \
             JOIN wallets w ON w.id = t.wallet_id WHERE w.user_id = $1 AND t.id = $2) \
         SELECT {TRANSACTION_COLUMNS} FROM wallet_transactions t JOIN named n \
         ON t.id = n.id OR (t.transfer_id = n.transfer_id AND t.wallet_id <> n.wallet_id)"
    );
    rows(pool, &sql, (user_id, transaction_id)).await
}

/// One transaction of the wallet `wallet_id`, with its total.
pub(crate) async fn transaction(
    pool: &PgPool,
    wallet_id: Uuid,
    transaction_id: Uuid,
) -> Result<Option<WalletTransaction>, WalletError> {
    let sql = format!(
        "SELECT {TRANSACTION_COLUMNS} FROM wallet_transactions t \
         WHERE t.id = $1 AND t.wallet_id = $2"
    );
    let found = rows(pool, &sql, (transaction_id, wallet_id)).await?;
    Ok(found.into_iter().next())
}

/// The statement of [`balances_at`]: for each currency the wallet has an
/// item of, the first entry of `wallet_transactions_wallet_currency_created_at_idx`
/// at or before `$2` (one index probe per currency, whatever the length of
/// the history).
pub(crate) const BALANCES_AT_SQL: &str = "SELECT i.currency, \
     last.balance_after::text AS balance, last.held_after::text AS held \
     FROM wallet_items i CROSS JOIN LATERAL (SELECT t.balance_after, t.held_after \
         FROM wallet_transactions t WHERE t.wallet_id = i.wallet_id AND t.currency = i.currency \
         AND t.created_at <= $2 ORDER BY t.created_at DESC, t.sequence DESC LIMIT 1) last \
     WHERE i.wallet_id = $1 ORDER BY i.currency";

/// The balances of the wallet `wallet_id` at `at`, ordered by code.
pub(crate) async fn balances_at(
    pool: &PgPool,
    wallet_id: Uuid,
    at: DateTime<Utc>,
) -> Result<Vec<WalletItem>, WalletError> {
    let rows = run_with(BALANCES_AT_SQL, (wallet_id, at), |query| {
        query.fetch_all(pool)
    })
    .await?;
    rows.iter()
        .map(|row| {
            let code: String = column(row, "currency")?;
            Ok(WalletItem {
                currency: currency(&code)?,
                balance: amount(row, "balance")?,
                held: amount(row, "held")?,
            })
        })
        .collect()
}
