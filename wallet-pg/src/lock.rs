//! Locking and loading many aggregates in one statement, for wallets and
//! point accounts alike.
//!
//! One statement locks the rows (`FOR UPDATE`, in user id order, so that
//! two callers locking overlapping sets never deadlock) and loads their
//! contents. Its loads read the statement's snapshot, taken before any
//! lock was granted: if a lock had to wait for another transaction that
//! changed the aggregate, they are stale. Every change of an aggregate's
//! contents also bumps its row's version, so the statement compares the
//! version the snapshot saw (`seen_version`) with the version it locked
//! (the newest); the aggregates where they differ are loaded again in a
//! second statement, which sees everything committed before the locks.

use std::collections::{HashMap, HashSet};

use sqlx::postgres::PgRow;
use sqlx::PgConnection;
use uuid::Uuid;
use wallet_core::WalletError;

use crate::codec::column;
use crate::error::{map_error, run_with};

/// The two statements of one kind of aggregate and how to read their
/// contents. Both take the user ids or row ids as `$1` and the ids the
/// commands name (holds, lots) as `$2`; both answer the contents in the
/// columns `contents` reads, the lock with the row's columns, `version`
/// and `seen_version`, the reload with `id`.
pub(crate) struct LockStatements<C> {
    pub lock: &'static str,
    pub reload: &'static str,
    pub contents: fn(&PgRow) -> Result<C, WalletError>,
    /// What the aggregate is called in an error.
    pub what: &'static str,
}

/// Locks the rows of `user_ids` and loads their contents (see the module
/// docs). Returns each locked row with its up-to-date contents, in user id
/// order, and how many statements ran (none for no users, else one or
/// two). Must run inside a transaction; the locks last until it ends.
pub(crate) async fn lock_many<C>(
    conn: &mut PgConnection,
    statements: &LockStatements<C>,
    user_ids: &[Uuid],
    named: &[Uuid],
) -> Result<(Vec<(PgRow, C)>, u64), WalletError> {
    let (locked, sent) =
        lock_knowing(conn, statements, statements.lock, user_ids, named, None).await?;
    let locked = locked
        .into_iter()
        .map(|(row, contents)| {
            contents.map(|contents| (row, contents)).ok_or_else(|| {
                WalletError::Internal(format!("a locked {} was not loaded", statements.what))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok((locked, sent))
}

/// Copies the caller already holds of some rows: each row id with the
/// version of its copy, bound as `$3` and `$4` of a lock statement that
/// knows them and answers, in its boolean column `known`, whether it
/// locked the row at that version (then it loads no contents for it:
/// every change of an aggregate bumps its version, so the copy is the
/// row's current state).
#[derive(Debug, Default)]
pub(crate) struct Known {
    pub ids: Vec<Uuid>,
    pub versions: Vec<i64>,
}

/// [`lock_many`] with the statement `lock`, which, with `known`, takes
/// them as `$3` and `$4` (see [`Known`]): a row locked at its copy's
/// version comes back without contents (`None`), every other with its
/// up-to-date contents.
pub(crate) async fn lock_knowing<C>(
    conn: &mut PgConnection,
    statements: &LockStatements<C>,
    lock: &'static str,
    user_ids: &[Uuid],
    named: &[Uuid],
    known: Option<&Known>,
) -> Result<(Vec<(PgRow, Option<C>)>, u64), WalletError> {
    if user_ids.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let mut query = sqlx::query(lock).bind(user_ids).bind(named);
    if let Some(known) = known {
        query = query.bind(&known.ids).bind(&known.versions);
    }
    let rows = query.fetch_all(&mut *conn).await.map_err(map_error)?;
    let mut contents = HashMap::with_capacity(rows.len());
    let mut current = HashSet::new();
    let mut stale = Vec::new();
    for row in &rows {
        if known.is_some() && column::<bool>(row, "known")? {
            current.insert(column::<Uuid>(row, "id")?);
            continue;
        }
        let locked: i64 = column(row, "version")?;
        let seen: Option<i64> = column(row, "seen_version")?;
        if seen == Some(locked) {
            contents.insert(column::<Uuid>(row, "id")?, (statements.contents)(row)?);
        } else {
            stale.push(column::<Uuid>(row, "id")?);
        }
    }
    let sent = if stale.is_empty() {
        1
    } else {
        contents.extend(reload(conn, statements, &stale, named).await?);
        2
    };
    let mut locked = Vec::with_capacity(rows.len());
    for row in rows {
        let id = column::<Uuid>(&row, "id")?;
        if current.contains(&id) {
            locked.push((row, None));
            continue;
        }
        let loaded = contents.remove(&id).ok_or_else(|| {
            WalletError::Internal(format!("a locked {} was not loaded", statements.what))
        })?;
        locked.push((row, Some(loaded)));
    }
    Ok((locked, sent))
}

/// Loads the contents of the rows `ids` again, after their locks.
async fn reload<C>(
    conn: &mut PgConnection,
    statements: &LockStatements<C>,
    ids: &[Uuid],
    named: &[Uuid],
) -> Result<Vec<(Uuid, C)>, WalletError> {
    let loaded = run_with(statements.reload, (ids, named), |query| {
        query.fetch_all(&mut *conn)
    })
    .await?;
    loaded
        .iter()
        .map(|row| Ok((column(row, "id")?, (statements.contents)(row)?)))
        .collect()
}
