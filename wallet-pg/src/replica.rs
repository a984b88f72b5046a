//! How far the read replica is behind the primary, measured from both
//! servers at one moment ([`PgStore::replica_lag`](crate::PgStore::replica_lag)).
//!
//! - **Bytes**: the primary's WAL position (`pg_current_wal_lsn()`) minus
//!   the position the replica has replayed (`pg_last_wal_replay_lsn()`).
//!   The replica is read first, so the difference is never below the true
//!   one at the moment of the replica's reading, and never negative.
//! - **Delay**: zero when the replica has replayed everything the primary
//!   had written; otherwise the time, by the primary's clock, since the
//!   commit of the newest transaction the replica has replayed
//!   (`pg_last_xact_replay_timestamp()`). The primary was past that
//!   commit at that time, so the data a read sees is at most this old: an
//!   upper bound on a read's staleness, not an estimate of it.
//!
//! The replica counts as lagging when the delay is above the limit
//! ([`PgConfig::replica_lag_max`](crate::PgConfig::replica_lag_max)), when
//! the delay cannot be told (behind, with no transaction replayed since it
//! started), or when the read database is not a standby at all (not in
//! recovery: a server of its own, whose reads never follow the primary).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use wallet_core::WalletError;

use crate::error::map_error;

/// The default delay above which the replica counts as lagging.
pub const REPLICA_LAG_MAX_DEFAULT: Duration = Duration::from_secs(5);

/// The replica's position against the primary's, at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaLag {
    /// Whether the read database is a standby in recovery, following a
    /// primary.
    pub standby: bool,
    /// Whether its replay is paused (`pg_wal_replay_pause()`): it still
    /// serves reads, of a state that no longer advances.
    pub paused: bool,
    /// WAL bytes the primary has written that the replica has not
    /// replayed; `None` when it is not a standby.
    pub bytes: Option<u64>,
    /// At most how old the data of a read is (see the module docs); `None`
    /// when it is not a standby, or when it is behind and has replayed no
    /// transaction since it started.
    pub delay: Option<Duration>,
    /// The delay above which it counts as lagging.
    pub limit: Duration,
}

impl ReplicaLag {
    /// Whether reads may be older than the limit (or the read database is
    /// not a standby).
    pub fn lagging(&self) -> bool {
        !self.standby || self.delay.is_none_or(|delay| delay > self.limit)
    }

    /// One sentence for an operator.
    pub fn describe(&self) -> String {
        let paused = if self.paused {
            "; its replay is paused"
        } else {
            ""
        };
        match (self.standby, self.bytes, self.delay) {
            (false, _, _) => "the read database is not a standby (it is not in recovery), so its \
                 reads do not follow the primary"
                .to_owned(),
            (true, Some(0), _) => format!("the replica has replayed everything{paused}"),
            (true, bytes, Some(delay)) => format!(
                "the replica is {} bytes behind; its reads are at most {:.3} s old \
                 (limit {:.3} s){paused}",
                bytes.unwrap_or(0),
                delay.as_secs_f64(),
                self.limit.as_secs_f64()
            ),
            (true, bytes, None) => format!(
                "the replica is {} bytes behind and has replayed no transaction since it \
                 started{paused}",
                bytes.unwrap_or(0)
            ),
        }
    }
}

/// What the replica says of itself.
#[derive(sqlx::FromRow)]
struct ReplicaPosition {
    standby: bool,
    paused: bool,
    replayed: Option<String>,
    replayed_commit: Option<DateTime<Utc>>,
}

/// What the primary says, given the replica's position.
#[derive(sqlx::FromRow)]
struct PrimaryPosition {
    behind: Option<i64>,
    now: DateTime<Utc>,
}

/// Measures the replica against the primary: the replica first, then the
/// primary (see the module docs for why in this order).
pub(crate) async fn measure(
    primary: &PgPool,
    replica: &PgPool,
    limit: Duration,
) -> Result<ReplicaLag, WalletError> {
    let position: ReplicaPosition = sqlx::query_as(
        "SELECT pg_is_in_recovery() AS standby, \
                CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END \
                    AS paused, \
                pg_last_wal_replay_lsn()::text AS replayed, \
                pg_last_xact_replay_timestamp() AS replayed_commit",
    )
    .fetch_one(replica)
    .await
    .map_err(map_error)?;
    let (standby, replayed) = match (position.standby, position.replayed) {
        (true, Some(replayed)) => (true, replayed),
        _ => {
            return Ok(ReplicaLag {
                standby: false,
                paused: false,
                bytes: None,
                delay: None,
                limit,
            })
        }
    };
    let now: PrimaryPosition = sqlx::query_as(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::bigint AS behind, \
                clock_timestamp() AS now",
    )
    .bind(&replayed)
    .fetch_one(primary)
    .await
    .map_err(map_error)?;
    let bytes = u64::try_from(now.behind.unwrap_or(0)).unwrap_or(0);
    let delay = if bytes == 0 {
        Some(Duration::ZERO)
    } else {
        position
            .replayed_commit
            .map(|commit| (now.now - commit).to_std().unwrap_or(Duration::ZERO))
    };
    Ok(ReplicaLag {
        standby,
        paused: position.paused,
        bytes: Some(bytes),
        delay,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lag(standby: bool, bytes: Option<u64>, delay: Option<u64>) -> ReplicaLag {
        ReplicaLag {
            standby,
            paused: false,
            bytes,
            delay: delay.map(Duration::from_millis),
            limit: Duration::from_secs(5),
        }
    }

    #[test]
    fn a_replica_lags_past_its_limit_when_its_delay_is_unknown_or_when_it_is_no_standby() {
        assert!(!lag(true, Some(0), Some(0)).lagging());
        assert!(!lag(true, Some(100), Some(5_000)).lagging(), "at the limit");
        assert!(lag(true, Some(100), Some(5_001)).lagging());
        assert!(lag(true, Some(100), None).lagging());
        assert!(lag(false, None, None).lagging());
    }

    #[test]
    fn the_description_says_what_was_measured() {
        assert!(lag(true, Some(0), Some(0))
            .describe()
            .contains("replayed everything"));
        let behind = lag(true, Some(120), Some(2_500)).describe();
        assert!(behind.contains("120 bytes behind"), "{behind}");
        assert!(behind.contains("2.500 s"), "{behind}");
        assert!(lag(false, None, None).describe().contains("not a standby"));
        let paused = ReplicaLag {
            paused: true,
            ..lag(true, Some(0), Some(0))
        };
        assert!(paused.describe().contains("paused"));
    }
}
