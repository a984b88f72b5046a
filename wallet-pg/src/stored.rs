//! What the store's one generic implementation of the core's
//! `AggregateStore` needs to know of each kind of aggregate: the kind of
//! [`Work`] its commands are on the write path, and the statement that
//! finds its users with something overdue.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;
use wallet_core::store::Mutation;
use wallet_core::{PointAccount, Update, Wallet, WalletError};

use crate::aggregate::Aggregate;
use crate::batch::{Command, Work};
use crate::codec::column;
use crate::error::run_with;

/// A wallet or a point account, as [`crate::PgStore`] creates, updates and
/// sweeps it.
pub(crate) trait Stored: Aggregate {
    /// The users whose aggregate has something overdue at `$1`, at most
    /// `$2` of them.
    const OVERDUE: &'static str;

    /// The work of a command on one aggregate of this kind, naming the part
    /// `named` (a hold, a lot).
    fn work(named: Option<Uuid>, mutation: Mutation<Self>) -> Work;

    /// The command of a unit of work on one aggregate of this kind.
    fn command(unit: Update<Self>) -> Command {
        Command {
            user_id: unit.user_id,
            claim: unit.claim,
            work: Self::work(unit.named, unit.mutation),
        }
    }
}

impl Stored for Wallet {
    const OVERDUE: &'static str = "SELECT w.user_id FROM wallets w WHERE w.id IN \
         (SELECT h.wallet_id FROM holds h WHERE h.status = 'Active' AND h.expires_at <= $1) \
         LIMIT $2";

    fn work(hold_id: Option<Uuid>, mutation: Mutation<Self>) -> Work {
        Work::Wallet { hold_id, mutation }
    }
}

impl Stored for PointAccount {
    const OVERDUE: &'static str = "SELECT a.user_id FROM point_accounts a WHERE a.id IN \
         (SELECT l.account_id FROM point_lots l \
          WHERE l.remaining > 0 AND l.expires_at IS NOT NULL AND l.expires_at <= $1) \
         LIMIT $2";

    fn work(lot_id: Option<Uuid>, mutation: Mutation<Self>) -> Work {
        Work::Points { lot_id, mutation }
    }
}

/// Up to `limit` users whose aggregate of kind `A` has something overdue
/// at `now` ([`Stored::OVERDUE`]).
pub(crate) async fn users_with_overdue<A: Stored>(
    pool: &PgPool,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Uuid>, WalletError> {
    let rows = run_with(A::OVERDUE, (now, i64::from(limit)), |query| {
        query.fetch_all(pool)
    })
    .await?;
    rows.iter().map(|row| column(row, "user_id")).collect()
}
