//! The read side: pages with opaque keyset cursors, filters, statistics.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::WalletError;
use crate::money::CurrencyCode;
use crate::wallet::{TransactionType, WalletStatus};

/// The default page size.
pub const PAGE_LIMIT_DEFAULT: u32 = 50;
/// The largest page size.
pub const PAGE_LIMIT_MAX: u32 = 200;
/// The default number of events per read.
pub const EVENTS_LIMIT_DEFAULT: u32 = 100;
/// The most events per read.
pub const EVENTS_LIMIT_MAX: u32 = 1000;
/// The default statistics window, ending at `to`, in hours.
pub const STATISTICS_WINDOW_DEFAULT_HOURS: i64 = 24;
/// The longest cursor text accepted, in bytes.
pub const CURSOR_LENGTH_MAX: usize = 128;

/// Where a page starts: just after (older than) the last item of the
/// previous page. Opaque to clients.
///
/// Wallet and point transactions page by their sequence in their own log,
/// which is strictly increasing in commit order because writes to one
/// aggregate are serialised; holds and wallets page by `(created_at, id)`.
/// Either way a walk never repeats or skips an item that existed when the
/// walk began, whatever is written meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// Items with a smaller sequence.
    Sequence(u64),
    /// Items that sort before this `(created_at, id)`.
    Position { at: DateTime<Utc>, id: Uuid },
}

impl Cursor {
    /// The text form handed to clients.
    pub fn encode(&self) -> String {
        match self {
            Cursor::Sequence(n) => format!("s{n}"),
            Cursor::Position { at, id } => format!("p{}.{}", at.timestamp_micros(), id.simple()),
        }
    }

    /// Parses a cursor this module encoded; anything else is a validation error.
    pub fn decode(text: &str) -> Result<Self, WalletError> {
        let bad = || WalletError::Validation("bad cursor".into());
        if text.len() > CURSOR_LENGTH_MAX || !text.is_ascii() {
            return Err(bad());
        }
        if let Some(rest) = text.strip_prefix('s') {
            if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            return rest.parse().map(Cursor::Sequence).map_err(|_| bad());
        }
        if let Some(rest) = text.strip_prefix('p') {
            let (micros, id) = rest.split_once('.').ok_or_else(bad)?;
            // Positions are creation times, never before 1970: a negative
            // time is not a cursor this module made.
            if micros.is_empty() || !micros.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let micros: i64 = micros.parse().map_err(|_| bad())?;
            let at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
            if id.len() != 32 {
                return Err(bad());
            }
            let id = Uuid::try_parse(id).map_err(|_| bad())?;
            return Ok(Cursor::Position { at, id });
        }
        Err(bad())
    }

    /// The sequence of a sequence cursor, or a validation error.
    pub fn sequence(&self) -> Result<u64, WalletError> {
        match self {
            Cursor::Sequence(n) => Ok(*n),
            Cursor::Position { .. } => Err(WalletError::Validation("bad cursor".into())),
        }
    }

    /// The position of a position cursor, or a validation error.
    pub fn position(&self) -> Result<(DateTime<Utc>, Uuid), WalletError> {
        match self {
            Cursor::Position { at, id } => Ok((*at, *id)),
            Cursor::Sequence(_) => Err(WalletError::Validation("bad cursor".into())),
        }
    }
}

/// A request for one page: a size of 1 to [`PAGE_LIMIT_MAX`] and where to
/// start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Option<Cursor>,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            limit: PAGE_LIMIT_DEFAULT,
            cursor: None,
        }
    }
}

impl PageRequest {
    /// Validates a limit (default [`PAGE_LIMIT_DEFAULT`]) and a cursor.
    pub fn parse(limit: Option<i64>, cursor: Option<&str>) -> Result<Self, WalletError> {
        let limit = match limit {
            None => PAGE_LIMIT_DEFAULT,
            Some(n) if (1..=i64::from(PAGE_LIMIT_MAX)).contains(&n) => n as u32,
            Some(_) => {
                return Err(WalletError::Validation(format!(
                    "limit must be between 1 and {PAGE_LIMIT_MAX}"
                )))
            }
        };
        let cursor = cursor.map(Cursor::decode).transpose()?;
        Ok(PageRequest { limit, cursor })
    }
}

/// One page of items, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts, or `None` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` items fetched newest first: the
    /// extra item only tells that there is a next page.
    pub fn from_overfetch(mut items: Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> Cursor) -> Self {
        let limit = limit as usize;
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = if more {
            items.last().map(|last| cursor_of(last).encode())
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

/// Filters of the transaction history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransactionFilter {
    pub currency: Option<CurrencyCode>,
    pub transaction_type: Option<TransactionType>,
}

/// Validates an events read: `limit` 1 to [`EVENTS_LIMIT_MAX`], default
/// [`EVENTS_LIMIT_DEFAULT`].
pub fn events_limit(limit: Option<i64>) -> Result<u32, WalletError> {
    match limit {
        None => Ok(EVENTS_LIMIT_DEFAULT),
        Some(n) if (1..=i64::from(EVENTS_LIMIT_MAX)).contains(&n) => Ok(n as u32),
        Some(_) => Err(WalletError::Validation(format!(
            "limit must be between 1 and {EVENTS_LIMIT_MAX}"
        ))),
    }
}

/// A wallet's balances at a point in time (see
/// [`crate::store::LedgerReader::balances_at`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BalancesAt {
    /// The time asked about (now when none was given), truncated to the
    /// stored precision.
    pub at: DateTime<Utc>,
    /// Per currency with a transaction by then, ordered by code.
    pub balances: Vec<crate::wallet::WalletItem>,
}

/// Totals of one currency over all wallets, all time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrencyStatistics {
    pub currency: CurrencyCode,
    pub balance: Decimal,
    pub held: Decimal,
    /// Wallets that have touched the currency.
    pub wallets: u64,
}

/// Count and volume (sum of absolute amounts) of one transaction type in
/// one currency within the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionStatistics {
    #[serde(rename = "type")]
    pub transaction_type: TransactionType,
    pub currency: CurrencyCode,
    pub count: u64,
    pub volume: Decimal,
}

/// Point totals: `available` and `pending` now, the flows within the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PointStatistics {
    pub available: i64,
    pub pending: i64,
    /// Points made available: earned, confirmed and positive adjustments.
    pub earned: i64,
    /// Points spent, and negative adjustments.
    pub spent: i64,
    /// Points expired, from available and pending lots.
    pub expired: i64,
}

/// The admin statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statistics {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Wallet count per status; every status is present.
    pub wallets: BTreeMap<WalletStatus, u64>,
    /// Per currency, ordered by code.
    pub currencies: Vec<CurrencyStatistics>,
    /// Per type and currency, ordered by type then currency.
    pub transactions: Vec<TransactionStatistics>,
    pub points: PointStatistics,
}

/// Statistics time window, `from <= to`.
pub fn statistics_window(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), WalletError> {
    let to = to.unwrap_or(now);
    let from = match from {
        Some(from) => from,
        None => to
            .checked_sub_signed(chrono::Duration::hours(STATISTICS_WINDOW_DEFAULT_HOURS))
            .ok_or_else(|| WalletError::Validation("to is out of range".into()))?,
    };
    if from > to {
        return Err(WalletError::Validation("from must not be after to".into()));
    }
    if !printable(from) || !printable(to) {
        return Err(WalletError::Validation(
            "from and to must be between years 1 and 9999".into(),
        ));
    }
    Ok((from, to))
}

/// Whether a time has an RFC 3339 form (years 1 to 9999), as every time a
/// query echoes must.
fn printable(at: DateTime<Utc>) -> bool {
    (1..=9999).contains(&chrono::Datelike::year(&at))
}

/// The time of a balances-at read: `at`, or `now` when none is given,
/// truncated to the stored precision; years 1 to 9999.
pub fn balances_time(
    at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, WalletError> {
    let at = crate::context::truncate_to_micros(at.unwrap_or(now));
    if !printable(at) {
        return Err(WalletError::Validation(
            "at must be between years 1 and 9999".into(),
        ));
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("time");
        for cursor in [
            Cursor::Sequence(0),
            Cursor::Sequence(u64::MAX),
            Cursor::Position {
                at,
                id: Uuid::max(),
            },
        ] {
            assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        }
        for bad in [
            "",
            "s",
            "s-1",
            "sx",
            "p",
            "p1",
            "p1.zz",
            "q1",
            "s99999999999999999999999",
            "s+1",
            "p-1000000000000000000.00000000000000000000000000000000",
        ] {
            assert!(Cursor::decode(bad).is_err(), "{bad} must be rejected");
        }
    }

    #[test]
    fn statistics_windows_are_ordered_and_printable() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let (from, to) = statistics_window(None, None, now).expect("default window");
        assert_eq!((to - from).num_hours(), STATISTICS_WINDOW_DEFAULT_HOURS);
        assert!(
            statistics_window(Some(now), Some(now - chrono::Duration::seconds(1)), now).is_err()
        );
        let year_zero = "0000-01-01T00:00:00Z"
            .parse::<DateTime<Utc>>()
            .expect("time");
        assert!(statistics_window(None, Some(year_zero), now).is_err());
        assert_eq!(balances_time(None, now), Ok(now));
        assert!(balances_time(Some(year_zero), now).is_err());
        let precise = DateTime::from_timestamp_nanos(1_800_000_000_123_456_789);
        let stored = DateTime::from_timestamp_micros(1_800_000_000_123_456).expect("time");
        assert_eq!(balances_time(Some(precise), now), Ok(stored));
    }

    #[test]
    fn page_limits_are_bounded() {
        assert_eq!(PageRequest::parse(None, None).map(|p| p.limit), Ok(50));
        assert_eq!(
            PageRequest::parse(Some(200), None).map(|p| p.limit),
            Ok(200)
        );
        assert!(PageRequest::parse(Some(0), None).is_err());
        assert!(PageRequest::parse(Some(201), None).is_err());
        assert!(PageRequest::parse(Some(-1), None).is_err());
        assert_eq!(events_limit(None), Ok(100));
        assert!(events_limit(Some(1001)).is_err());
    }

    #[test]
    fn overfetch_tells_whether_there_is_a_next_page() {
        let page = Page::from_overfetch(vec![5u64, 4, 3], 2, |n| Cursor::Sequence(*n));
        assert_eq!(page.items, vec![5, 4]);
        assert_eq!(page.next_cursor.as_deref(), Some("s4"));
        let last = Page::from_overfetch(vec![2u64, 1], 2, |n| Cursor::Sequence(*n));
        assert_eq!(last.next_cursor, None);
    }
}
