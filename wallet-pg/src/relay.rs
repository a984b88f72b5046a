//! The event relay's position and lease in PostgreSQL: one row per relay in
//! `relay_positions` (migration 0002).
//!
//! # Why single statements
//!
//! Each promise of [`RelayStore`] is kept by one statement, so no
//! transaction is held open across a round trip and none can interleave:
//! - taking the lease is an upsert whose `ON CONFLICT ... DO UPDATE WHERE`
//!   grants it only when it is free, expired or the caller's own. PostgreSQL
//!   locks the conflicting row and evaluates the condition on its latest
//!   version, so concurrent takers are serialised and at most one wins;
//! - moving the position is an `UPDATE` that checks owner, expiry and
//!   direction in its `WHERE`, so the check and the move are one step;
//! - the lag is `max(sequence) - position` plus the events not numbered
//!   yet. The sequencer hands out consecutive numbers (see
//!   [`crate::outbox`]), so that difference is a count; `max` reads the end
//!   of the unique index on `sequence` and the unnumbered events have a
//!   partial index of their own, so no part of it scans the outbox.
//!
//! When a statement changes nothing, a second read tells the caller why
//! (another holder, or a position already past). That read may see a newer
//! state than the statement did; the answer is still one the port allows,
//! because nothing was changed.
//!
//! Everything runs on the primary: a replica's position may be behind.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use wallet_core::{
    LeaseOutcome, PositionUpdate, RelayLease, RelayName, RelayState, RelayStore, WalletError,
};

use crate::codec::{column, signed, unsigned};
use crate::error::map_error;
use crate::PgStore;

/// How often taking the lease is tried when it is released under the
/// caller's feet (each release frees it, so a second try normally wins).
const LEASE_TAKE_ATTEMPTS: usize = 3;

impl PgStore {
    /// Grants `lease` when the stored one is free, expired at `now` or the
    /// same owner's; returns the position, or `None` when refused.
    async fn upsert_lease(
        &self,
        relay: &RelayName,
        lease: RelayLease,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, WalletError> {
        let granted = sqlx::query(
            "INSERT INTO relay_positions (name, lease_owner, lease_expires_at) \
             VALUES ($1, $2, $4) \
             ON CONFLICT ON CONSTRAINT relay_positions_pkey DO UPDATE \
             SET lease_owner = EXCLUDED.lease_owner, \
                 lease_expires_at = EXCLUDED.lease_expires_at, updated_at = now() \
             WHERE relay_positions.lease_owner IS NULL \
                OR relay_positions.lease_owner = EXCLUDED.lease_owner \
                OR relay_positions.lease_expires_at <= $3 \
             RETURNING position",
        )
        .bind(relay.as_str())
        .bind(lease.owner)
        .bind(now)
        .bind(lease.expires_at)
        .fetch_optional(self.pool())
        .await
        .map_err(map_error)?;
        granted
            .map(|row| unsigned(column(&row, "position")?, "relay position"))
            .transpose()
    }

    /// The stored row of `relay`, if it has one.
    async fn relay_row(&self, relay: &RelayName) -> Result<Option<RelayState>, WalletError> {
        let row = sqlx::query(
            "SELECT position, lease_owner, lease_expires_at FROM relay_positions WHERE name = $1",
        )
        .bind(relay.as_str())
        .fetch_optional(self.pool())
        .await
        .map_err(map_error)?;
        row.map(|row| {
            let owner: Option<Uuid> = column(&row, "lease_owner")?;
            let expires_at: Option<DateTime<Utc>> = column(&row, "lease_expires_at")?;
            Ok(RelayState {
                position: unsigned(column(&row, "position")?, "relay position")?,
                lease: owner
                    .zip(expires_at)
                    .map(|(owner, expires_at)| RelayLease { owner, expires_at }),
            })
        })
        .transpose()
    }
}

impl RelayStore for PgStore {
    async fn relay_state(&self, relay: &RelayName) -> Result<RelayState, WalletError> {
        Ok(self.relay_row(relay).await?.unwrap_or_default())
    }

    async fn take_relay_lease(
        &self,
        relay: &RelayName,
        owner: Uuid,
        now: DateTime<Utc>,
        duration: chrono::Duration,
    ) -> Result<LeaseOutcome, WalletError> {
        let lease = RelayLease {
            owner,
            expires_at: now + duration,
        };
        for _ in 0..LEASE_TAKE_ATTEMPTS {
            if let Some(position) = self.upsert_lease(relay, lease, now).await? {
                return Ok(LeaseOutcome::Held { lease, position });
            }
            let holder = self.relay_row(relay).await?.and_then(|state| state.lease);
            if let Some(holder) = holder.filter(|h| h.owner != owner && h.is_live(now)) {
                return Ok(LeaseOutcome::Refused { holder });
            }
            // The holder released its lease between the two statements:
            // try again, it is free now.
        }
        Err(WalletError::ConcurrencyConflict)
    }

    async fn release_relay_lease(&self, relay: &RelayName, owner: Uuid) -> Result<(), WalletError> {
        sqlx::query(
            "UPDATE relay_positions SET lease_owner = NULL, lease_expires_at = NULL, \
             updated_at = now() WHERE name = $1 AND lease_owner = $2",
        )
        .bind(relay.as_str())
        .bind(owner)
        .execute(self.pool())
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn advance_relay_position(
        &self,
        relay: &RelayName,
        owner: Uuid,
        to: u64,
        now: DateTime<Utc>,
    ) -> Result<PositionUpdate, WalletError> {
        let moved = sqlx::query(
            "UPDATE relay_positions SET position = $3, updated_at = now() \
             WHERE name = $1 AND lease_owner = $2 AND lease_expires_at > $4 AND position <= $3",
        )
        .bind(relay.as_str())
        .bind(owner)
        .bind(signed(to, "relay position")?)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(map_error)?
        .rows_affected();
        if moved == 1 {
            return Ok(PositionUpdate::Moved);
        }
        let state = self.relay_row(relay).await?.unwrap_or_default();
        Ok(if state.is_held_by(owner, now) {
            PositionUpdate::Behind {
                position: state.position,
            }
        } else {
            PositionUpdate::LeaseNotHeld
        })
    }

    async fn relay_lag(&self, relay: &RelayName) -> Result<u64, WalletError> {
        let lag: i64 = sqlx::query_scalar(
            "SELECT greatest(0, \
                 (SELECT coalesce(max(sequence), 0) FROM outbox_events) \
                 - coalesce((SELECT position FROM relay_positions WHERE name = $1), 0)) \
             + (SELECT count(*) FROM outbox_events WHERE sequence IS NULL)",
        )
        .bind(relay.as_str())
        .fetch_one(self.pool())
        .await
        .map_err(map_error)?;
        unsigned(lag, "relay lag")
    }
}
