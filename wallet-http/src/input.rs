//! Turning what a client sent into values of the core, with every failure a
//! problem document: JSON bodies (exact amounts, unknown fields rejected),
//! path ids, query strings and the `Idempotency-Key` header.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use uuid::Uuid;
use wallet_core::money::AMOUNT_MAX_UNITS;
use wallet_core::{IdempotencyKey, WalletError};

use crate::problem::Problem;

/// The header that makes a state-changing request safe to retry.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// The most digits before the point of an amount: those of the largest
/// amount, so that every amount the core takes can be written.
pub const AMOUNT_INTEGER_DIGITS_MAX: usize = AMOUNT_MAX_UNITS.ilog10() as usize + 1;
/// The most digits after the point of an amount. It is more than any
/// currency's scale (trailing zeros are taken), and with the digits before
/// the point it stays within the 28 digits a `Decimal` holds exactly, so
/// every text of the grammar reads without rounding.
pub const AMOUNT_FRACTION_DIGITS_MAX: usize = 12;
const _: () =
    assert!(AMOUNT_FRACTION_DIGITS_MAX >= wallet_core::money::CURRENCY_SCALE_MAX as usize);
const _: () = assert!(AMOUNT_INTEGER_DIGITS_MAX + AMOUNT_FRACTION_DIGITS_MAX <= 28);

/// Parses a JSON body. An empty body reads as `{}`, so that routes whose
/// fields are all optional (or that take no body) accept none.
pub fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, Problem> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let text: &[u8] = match first {
        None => b"{}",
        Some(b'{') => body,
        Some(_) => return Err(Problem::validation("the body must be a JSON object")),
    };
    serde_json::from_slice(text).map_err(|error| {
        let detail = match error.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                format!("malformed JSON: {error}")
            }
            _ => format!("invalid body: {error}"),
        };
        Problem::validation(detail)
    })
}

/// A body with no fields: `{}` or nothing at all.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// An amount as sent: a JSON string or number, kept as its raw text so that
/// `10.01` is read exactly (never through a float).
pub type RawAmount = Box<RawValue>;

/// Reads an amount exactly. A string or number that is not a plain decimal
/// (`"ten"`, `"NaN"`, `1e30`, `"+5"`, `"007"`, `".5"`) is `invalid_amount`;
/// another JSON type is a `validation_error`. Range and precision are the
/// core's to check.
pub fn amount(field: &str, raw: &RawValue) -> Result<Decimal, WalletError> {
    let text = raw.get().trim();
    let literal = if text.starts_with('"') {
        serde_json::from_str::<String>(text)
            .map_err(|_| WalletError::Validation(format!("{field} must be a decimal string")))?
    } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        text.to_owned()
    } else {
        return Err(WalletError::Validation(format!(
            "{field} must be a decimal string or a JSON number"
        )));
    };
    let shown: String = literal.chars().take(32).collect();
    let invalid =
        || WalletError::InvalidAmount(format!("{field} `{shown}` is not a decimal number"));
    if !is_plain_decimal(&literal) {
        return Err(invalid());
    }
    Decimal::from_str_exact(&literal).map_err(|_| invalid())
}

/// The grammar of an amount: an optional minus (which the core then
/// refuses, as it refuses zero), digits with no leading zero, then
/// optionally a point and digits, within [`AMOUNT_INTEGER_DIGITS_MAX`] and
/// [`AMOUNT_FRACTION_DIGITS_MAX`]. The OpenAPI document states the same
/// grammar (`constraints::amount_pattern`).
fn is_plain_decimal(literal: &str) -> bool {
    let unsigned = literal.strip_prefix('-').unwrap_or(literal);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits = |part: &str, max: usize| {
        !part.is_empty() && part.len() <= max && part.bytes().all(|b| b.is_ascii_digit())
    };
    digits(whole, AMOUNT_INTEGER_DIGITS_MAX)
        && (whole == "0" || !whole.starts_with('0'))
        && fraction.is_none_or(|part| digits(part, AMOUNT_FRACTION_DIGITS_MAX))
}

/// Reads an optional text field of a request: an empty string is the same
/// as absent (and as `null`), as the contract says.
pub fn optional_text<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?;
    Ok(text.filter(|text| !text.is_empty()))
}

/// An optional amount; JSON `null` is the same as absent.
pub fn optional_amount(
    field: &str,
    raw: Option<&RawValue>,
) -> Result<Option<Decimal>, WalletError> {
    match raw {
        None => Ok(None),
        Some(raw) if raw.get().trim() == "null" => Ok(None),
        Some(raw) => amount(field, raw).map(Some),
    }
}

/// The `Idempotency-Key` header, if sent: 1 to 255 printable ASCII
/// characters, else 400.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, Problem> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Problem::validation(
            "send at most one Idempotency-Key header",
        ));
    }
    let text = value
        .to_str()
        .map_err(|_| Problem::validation("the Idempotency-Key must be printable ASCII"))?;
    IdempotencyKey::parse(text).map(Some).map_err(Problem::from)
}

/// The ids in a route's path (`userId`, `holdId`, `lotId`,
/// `transactionId`), each a UUID.
#[derive(Debug, Clone, Copy)]
pub struct PathIds {
    pub user_id: Uuid,
    pub hold_id: Uuid,
    pub lot_id: Uuid,
    pub transaction_id: Uuid,
}

impl<S: Send + Sync> FromRequestParts<S> for PathIds {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| Problem::validation("bad path parameters"))?;
        let mut ids = PathIds {
            user_id: Uuid::nil(),
            hold_id: Uuid::nil(),
            lot_id: Uuid::nil(),
            transaction_id: Uuid::nil(),
        };
        for (name, value) in &params {
            let slot = match name {
                "userId" => &mut ids.user_id,
                "holdId" => &mut ids.hold_id,
                "lotId" => &mut ids.lot_id,
                "transactionId" => &mut ids.transaction_id,
                _ => continue,
            };
            *slot = Uuid::try_parse(value).map_err(|_| {
                let shown: String = value.chars().take(40).collect();
                Problem::validation(format!("{name} `{shown}` is not a UUID"))
            })?;
        }
        Ok(ids)
    }
}

/// Parses a query string into `T` (whose fields are optional strings);
/// parameters `T` does not name are ignored.
pub fn query<T: DeserializeOwned>(raw: Option<&str>) -> Result<T, Problem> {
    serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|error| Problem::validation(format!("bad query string: {error}")))
}

/// An optional integer query parameter.
pub fn integer(field: &str, text: Option<&str>) -> Result<Option<i64>, WalletError> {
    text.map(|t| {
        t.trim()
            .parse::<i64>()
            .map_err(|_| WalletError::Validation(format!("{field} must be an integer")))
    })
    .transpose()
}

/// An optional RFC 3339 time query parameter.
pub fn time(
    field: &str,
    text: Option<&str>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, WalletError> {
    text.map(|t| {
        chrono::DateTime::parse_from_rfc3339(t.trim())
            .map(|at| at.with_timezone(&chrono::Utc))
            .map_err(|_| WalletError::Validation(format!("{field} must be an RFC 3339 time")))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).expect("valid JSON")
    }

    #[test]
    fn amounts_are_read_exactly_from_strings_and_numbers() {
        assert_eq!(
            amount("amount", &raw("10.01")).map(|d| d.to_string()),
            Ok("10.01".into())
        );
        assert_eq!(
            amount("amount", &raw("\"10.01\"")).map(|d| d.to_string()),
            Ok("10.01".into())
        );
        assert_eq!(
            amount("amount", &raw("-5")).map(|d| d.to_string()),
            Ok("-5".into())
        );
    }

    #[test]
    fn non_decimals_are_invalid_amounts_and_other_types_validation_errors() {
        for bad in [
            "\"ten\"",
            "\"NaN\"",
            "\"1e30\"",
            "1e30",
            "1E3",
            "\"\"",
            "\" 1\"",
            "\"0x10\"",
            "\"1.2.3\"",
        ] {
            assert!(
                matches!(
                    amount("amount", &raw(bad)),
                    Err(WalletError::InvalidAmount(_))
                ),
                "{bad}"
            );
        }
        let huge = "9".repeat(40);
        assert!(matches!(
            amount("amount", &raw(&huge)),
            Err(WalletError::InvalidAmount(_))
        ));
        for bad in ["true", "null", "[1]", "{\"a\":1}"] {
            assert!(
                matches!(amount("amount", &raw(bad)), Err(WalletError::Validation(_))),
                "{bad}"
            );
        }
        assert_eq!(optional_amount("amount", Some(&raw("null"))), Ok(None));
    }

    #[test]
    fn empty_bodies_read_as_empty_objects() {
        assert!(json_body::<NoFields>(&Bytes::from_static(b"")).is_ok());
        assert!(json_body::<NoFields>(&Bytes::from_static(b" {} ")).is_ok());
        assert!(json_body::<NoFields>(&Bytes::from_static(b"{\"x\":1}")).is_err());
        assert!(json_body::<NoFields>(&Bytes::from_static(b"{")).is_err());
        assert!(json_body::<NoFields>(&Bytes::from_static(b"[]")).is_err());
        assert!(json_body::<NoFields>(&Bytes::from_static(b"null")).is_err());
    }
}
