//! Injected time and ids, the policy every command runs under, and bounded
//! text.
//!
//! The domain never reads the system clock or a random source by itself: the
//! application service hands each command a [`Ctx`] built from a [`Clock`]
//! and an [`IdGenerator`], so tests and property tests control both.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Duration, DurationRound, TimeDelta, Utc};
use uuid::Uuid;

use crate::error::WalletError;
use crate::money::CurrencyTable;

/// The longest description, in characters.
pub const DESCRIPTION_LENGTH_MAX: usize = 500;
/// The longest freeze reason, in characters.
pub const REASON_LENGTH_MAX: usize = 500;
/// The longest reference or point source, in characters.
pub const REFERENCE_LENGTH_MAX: usize = 255;
/// The longest point source, in characters.
pub const SOURCE_LENGTH_MAX: usize = 255;
/// The longest hold reference type, in characters.
pub const REFERENCE_TYPE_LENGTH_MAX: usize = 100;

/// The default lifetime of a hold when the caller gives no `expires_at`.
pub const HOLD_LIFETIME_DEFAULT_DAYS: i64 = 7;
/// The longest lifetime a hold may be given.
pub const HOLD_LIFETIME_MAX_DAYS: i64 = 30;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time. Stores keep microseconds, so the service truncates it.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to; for tests and simulations.
#[derive(Debug)]
pub struct ManualClock {
    micros: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            micros: AtomicU64::new(start.timestamp_micros().max(0) as u64),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let step = by.num_microseconds().unwrap_or(0).max(0) as u64;
        self.micros.fetch_add(step, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, at: DateTime<Utc>) {
        self.micros
            .store(at.timestamp_micros().max(0) as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        let micros = self.micros.load(Ordering::SeqCst) as i64;
        DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::UNIX_EPOCH)
    }
}

/// Truncates a time to whole microseconds, the precision every store keeps.
pub fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(at)
}

/// A source of new ids (UUID v7).
pub trait IdGenerator: Send + Sync + 'static {
    /// A new, unique id. Ids from one generator sort in creation order.
    fn next_id(&self, now: DateTime<Utc>) -> Uuid;
}

/// UUID v7 from the given time plus a per-generator monotonic counter, so that
/// ids made in the same millisecond still sort in creation order.
#[derive(Debug, Default)]
pub struct UuidV7Generator {
    state: Mutex<(u64, u64)>,
}

impl UuidV7Generator {
    /// A new generator.
    pub fn new() -> Self {
        Self::default()
    }
}

impl IdGenerator for UuidV7Generator {
    fn next_id(&self, now: DateTime<Utc>) -> Uuid {
        let millis = now.timestamp_millis().max(0) as u64;
        let (millis, counter) = {
            let mut state = match self.state.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            if millis > state.0 {
                *state = (millis, 0);
            } else {
                state.1 = state.1.wrapping_add(1);
            }
            *state
        };
        // 48 bits of time, then 74 bits made of a counter (high) and random
        // bits from a v4 id (low), the layout of RFC 9562's method 1.
        let random = Uuid::new_v4().as_u128();
        let mut bytes = [0u8; 10];
        bytes[..4].copy_from_slice(&(counter as u32).to_be_bytes());
        bytes[4..].copy_from_slice(&random.to_be_bytes()[..6]);
        uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid()
    }
}

/// Deterministic ids for tests: UUID v7 layout, time from `now`, and a plain
/// counter for the rest. Two generators give the same sequence.
#[derive(Debug, Default)]
pub struct SequentialIdGenerator {
    counter: AtomicU64,
}

impl SequentialIdGenerator {
    /// A generator starting at 1.
    pub fn new() -> Self {
        Self::default()
    }
}

impl IdGenerator for SequentialIdGenerator {
    fn next_id(&self, now: DateTime<Utc>) -> Uuid {
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let mut bytes = [0u8; 10];
        bytes[2..].copy_from_slice(&n.to_be_bytes());
        let millis = now.timestamp_millis().max(0) as u64;
        uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid()
    }
}

/// What the operator configures: currencies and hold lifetimes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub currencies: CurrencyTable,
    pub hold_lifetime_default: Duration,
    pub hold_lifetime_max: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            currencies: CurrencyTable::default(),
            hold_lifetime_default: Duration::days(HOLD_LIFETIME_DEFAULT_DAYS),
            hold_lifetime_max: Duration::days(HOLD_LIFETIME_MAX_DAYS),
        }
    }
}

impl Policy {
    /// A policy, checking that `0 < default <= max`.
    pub fn new(
        currencies: CurrencyTable,
        hold_lifetime_default: Duration,
        hold_lifetime_max: Duration,
    ) -> Result<Self, WalletError> {
        if hold_lifetime_default <= Duration::zero() || hold_lifetime_default > hold_lifetime_max {
            return Err(WalletError::Validation(
                "hold lifetimes must satisfy 0 < default <= max".into(),
            ));
        }
        Ok(Policy {
            currencies,
            hold_lifetime_default,
            hold_lifetime_max,
        })
    }
}

/// Everything one command needs besides its own parameters.
pub struct Ctx<'a> {
    /// The time of the command, already truncated to microseconds.
    pub now: DateTime<Utc>,
    pub ids: &'a dyn IdGenerator,
    pub policy: &'a Policy,
    /// The command's idempotency key, written on its transactions.
    pub idempotency_key: Option<&'a str>,
}

impl Ctx<'_> {
    /// A new id.
    pub fn new_id(&self) -> Uuid {
        self.ids.next_id(self.now)
    }
}

/// Checks an optional text field against its limit.
pub fn bounded_text(
    field: &str,
    value: Option<String>,
    max_chars: usize,
) -> Result<Option<String>, WalletError> {
    match value {
        Some(text) => Ok(Some(required_text(field, text, max_chars)?)),
        None => Ok(None),
    }
}

/// Checks a required text field: non-blank and at most `max_chars` characters.
pub fn required_text(field: &str, value: String, max_chars: usize) -> Result<String, WalletError> {
    if value.chars().count() > max_chars {
        return Err(WalletError::Validation(format!(
            "{field} is longer than {max_chars} characters"
        )));
    }
    if value.trim().is_empty() {
        return Err(WalletError::Validation(format!(
            "{field} must not be blank"
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_limits_are_enforced() {
        let long = "x".repeat(DESCRIPTION_LENGTH_MAX + 1);
        assert!(bounded_text("description", Some(long), DESCRIPTION_LENGTH_MAX).is_err());
        let exact = "é".repeat(DESCRIPTION_LENGTH_MAX);
        assert!(bounded_text("description", Some(exact), DESCRIPTION_LENGTH_MAX).is_ok());
        assert_eq!(bounded_text("d", None, 5), Ok(None));
        assert!(required_text("reason", "  ".into(), 5).is_err());
    }

    #[test]
    fn v7_ids_sort_in_creation_order_within_a_millisecond() {
        let ids = UuidV7Generator::new();
        let now = Utc::now();
        let first = ids.next_id(now);
        let second = ids.next_id(now);
        assert!(first < second);
        assert_eq!(first.get_version_num(), 7);
        let sequential = SequentialIdGenerator::new();
        assert!(sequential.next_id(now) < sequential.next_id(now));
    }

    #[test]
    fn policy_rejects_inverted_lifetimes() {
        assert!(Policy::new(
            CurrencyTable::default(),
            Duration::days(31),
            Duration::days(30)
        )
        .is_err());
        assert!(Policy::new(
            CurrencyTable::default(),
            Duration::zero(),
            Duration::days(30)
        )
        .is_err());
    }
}
