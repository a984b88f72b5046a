//! The writer's connection and its transaction. Kept in one type so that
//! every way a batch can end (commit, commit and begin again, roll back, a
//! failure, a cancelled task) leaves the connection in a known state, and
//! so that every round trip of transaction control is counted.

use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};
use wallet_core::WalletError;

use super::settings::Counters;
use crate::error::map_error;

/// A connection with a transaction begun, kept from one batch to the next
/// while commands keep coming: the next batch then needs neither the
/// pool's hand-over nor a `BEGIN` of its own (the commit sends
/// `COMMIT; BEGIN` in one round trip). Dropped before its transaction has
/// ended (a failure, a cancelled task), the connection is closed, not
/// returned to the pool, so no lock or open transaction outlives it.
pub(crate) struct Session {
    conn: Option<PoolConnection<Postgres>>,
    counters: Arc<Counters>,
}

impl Session {
    /// A connection from the pool with a transaction begun.
    pub async fn begin(pool: &PgPool, counters: &Arc<Counters>) -> Result<Self, WalletError> {
        let conn = pool.acquire().await.map_err(map_error)?;
        let mut session = Session {
            conn: Some(conn),
            counters: Arc::clone(counters),
        };
        session.simple("BEGIN").await?;
        Ok(session)
    }

    pub fn conn(&mut self) -> Result<&mut PgConnection, WalletError> {
        self.conn
            .as_deref_mut()
            .ok_or_else(|| WalletError::Internal("the batch session has ended".into()))
    }

    /// Runs `sql` (transaction control, possibly two statements) in one
    /// round trip of the simple query protocol.
    async fn simple(&mut self, sql: &'static str) -> Result<(), WalletError> {
        self.counters.sent(1);
        let conn = self.conn()?;
        sqlx::Executor::execute(conn, sql)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    /// Commits; with `again`, begins the next transaction in the same round
    /// trip and keeps the session, else hands the connection back.
    pub async fn commit(mut self, again: bool) -> Result<Option<Self>, WalletError> {
        self.simple(if again { "COMMIT; BEGIN" } else { "COMMIT" })
            .await?;
        if again {
            return Ok(Some(self));
        }
        // The transaction has ended: the connection may go back.
        drop(self.conn.take());
        Ok(None)
    }

    /// Rolls back and hands the connection back (closed if the rollback
    /// did not go through).
    pub async fn roll_back(self) {
        drop(self.rolled_back().await);
    }

    /// Rolls back and returns the connection, out of any transaction, for
    /// a statement after the batch; `None` (and the connection closed) if
    /// the rollback did not go through.
    pub async fn rolled_back(mut self) -> Option<PoolConnection<Postgres>> {
        match self.simple("ROLLBACK").await {
            Ok(()) => self.conn.take(),
            Err(_) => None,
        }
    }

    /// Ends a begun transaction that carried nothing.
    pub async fn end(self) {
        if let Ok(Some(session)) = self.commit(false).await {
            drop(session);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.close_on_drop();
        }
    }
}
