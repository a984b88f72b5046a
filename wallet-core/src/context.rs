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
use crate::money::{CurrencyCode, CurrencyTable, DEFAULT_WALLET_CURRENCY};

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
/// The shortest time idempotency records are kept (the API promises that a
/// retry within a day replays), which is also the default.
pub const IDEMPOTENCY_RETENTION_MIN_HOURS: i64 = 24;

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
/// ids made in the same millisecond still sort in creation order. The
/// remaining bits come from a fast generator (SplitMix64) seeded once from the
/// operating system, so making an id costs no system call.
#[derive(Debug)]
pub struct UuidV7Generator {
    state: Mutex<V7State>,
}

#[derive(Debug)]
struct V7State {
    millis: u64,
    counter: u32,
    random: u64,
}

impl Default for UuidV7Generator {
    fn default() -> Self {
        let seed = Uuid::new_v4().as_u64_pair();
        UuidV7Generator {
            state: Mutex::new(V7State {
                millis: 0,
                counter: 0,
                random: seed.0 ^ seed.1,
            }),
        }
    }
}

impl UuidV7Generator {
    /// A new generator.
    pub fn new() -> Self {
        Self::default()
    }
}

/// One step of SplitMix64: a fast, well-mixed 64-bit sequence.
fn split_mix_64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl IdGenerator for UuidV7Generator {
    fn next_id(&self, now: DateTime<Utc>) -> Uuid {
        let millis = now.timestamp_millis().max(0) as u64;
        let (millis, counter, random) = {
            let mut state = match self.state.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            // A clock that steps back keeps the last millisecond, so ids
            // from this generator never go backwards.
            if millis > state.millis {
                state.millis = millis;
                state.counter = 0;
            } else {
                state.counter = state.counter.wrapping_add(1);
            }
            let random = split_mix_64(&mut state.random);
            (state.millis, state.counter, random)
        };
        // RFC 9562 method 1: 48 bits of time, the version, 12 bits of a
        // 30-bit counter, the variant, the other 18 counter bits, then 44
        // random bits.
        let counter = u128::from(counter & 0x3fff_ffff);
        let value = (u128::from(millis & 0xffff_ffff_ffff) << 80)
            | (0x7 << 76)
            | ((counter >> 18) << 64)
            | (0b10 << 62)
            | ((counter & 0x3_ffff) << 44)
            | u128::from(random & 0xfff_ffff_ffff);
        Uuid::from_u128(value)
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

/// What the operator configures: currencies, hold lifetimes, the currency
/// of a wallet created without one, and how long idempotency records are
/// kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub currencies: CurrencyTable,
    pub hold_lifetime_default: Duration,
    pub hold_lifetime_max: Duration,
    /// The currency of a wallet created without one. It must be in the
    /// table for such a wallet to be created (`unsupported_currency`).
    pub default_wallet_currency: CurrencyCode,
    /// How long idempotency records are kept before
    /// [`WalletService::purge_idempotency_records`](crate::WalletService::purge_idempotency_records)
    /// deletes them; at least [`IDEMPOTENCY_RETENTION_MIN_HOURS`] (see
    /// [`Policy::with_idempotency_retention`]).
    pub idempotency_retention: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            currencies: CurrencyTable::default(),
            hold_lifetime_default: Duration::days(HOLD_LIFETIME_DEFAULT_DAYS),
            hold_lifetime_max: Duration::days(HOLD_LIFETIME_MAX_DAYS),
            default_wallet_currency: CurrencyCode::parse(DEFAULT_WALLET_CURRENCY)
                .unwrap_or_else(|_| unreachable!("the default wallet currency is a valid code")),
            idempotency_retention: Duration::hours(IDEMPOTENCY_RETENTION_MIN_HOURS),
        }
    }
}

impl Policy {
    /// A policy, checking that `0 < default <= max`; the other settings
    /// take their defaults.
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
            ..Policy::default()
        })
    }

    /// The policy keeping idempotency records for `retention`, which must
    /// be at least [`IDEMPOTENCY_RETENTION_MIN_HOURS`].
    pub fn with_idempotency_retention(self, retention: Duration) -> Result<Self, WalletError> {
        if retention < Duration::hours(IDEMPOTENCY_RETENTION_MIN_HOURS) {
            return Err(WalletError::Validation(format!(
                "idempotency records are kept at least {IDEMPOTENCY_RETENTION_MIN_HOURS}h"
            )));
        }
        Ok(Policy {
            idempotency_retention: retention,
            ..self
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

/// Checks a required text field: non-blank, at most `max_chars`
/// characters, and no control characters other than tab, line feed and
/// carriage return (a NUL in particular, which no SQL text column takes).
pub fn required_text(field: &str, value: String, max_chars: usize) -> Result<String, WalletError> {
    if value.chars().count() > max_chars {
        return Err(WalletError::Validation(format!(
            "{field} is longer than {max_chars} characters"
        )));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(WalletError::Validation(format!(
            "{field} contains a control character"
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
        assert!(required_text("reason", "a\0b".into(), 5).is_err());
        assert!(required_text("reason", "a\u{7f}".into(), 5).is_err());
        assert!(required_text("reason", "a\tb\r\n".into(), 9).is_ok());
    }

    #[test]
    fn v7_ids_sort_in_creation_order_within_a_millisecond() {
        let ids = UuidV7Generator::new();
        let now = Utc::now();
        let first = ids.next_id(now);
        let second = ids.next_id(now);
        assert!(first < second);
        assert_eq!(first.get_version_num(), 7);
        assert_eq!(first.get_variant(), uuid::Variant::RFC4122);
        // Monotonic across the counter bits that straddle the variant field.
        let mut previous = second;
        for _ in 0..300_000 {
            let next = ids.next_id(now);
            assert!(previous < next);
            previous = next;
        }
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

    #[test]
    fn idempotency_retention_is_at_least_the_minimum() {
        let minimum = Duration::hours(IDEMPOTENCY_RETENTION_MIN_HOURS);
        assert_eq!(Policy::default().idempotency_retention, minimum);
        let shorter = Policy::default().with_idempotency_retention(minimum - Duration::seconds(1));
        assert_eq!(shorter.map(|_| ()).unwrap_err().code(), "validation_error");
        let longer = Policy::default()
            .with_idempotency_retention(Duration::days(3))
            .expect("three days");
        assert_eq!(longer.idempotency_retention, Duration::days(3));
        assert_eq!(
            longer.default_wallet_currency.as_str(),
            DEFAULT_WALLET_CURRENCY
        );
    }
}
