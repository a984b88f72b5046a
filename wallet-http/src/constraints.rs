//! The constraints of the OpenAPI document: what the service accepts and
//! answers, stated as JSON Schema from the core's named limits and from the
//! running currency table, so that a client or a fuzzer generated from the
//! document sends what the service accepts.
//!
//! The DTOs point at the named component schemas made here (`Currency`,
//! `Amount`, `Description`, ...), and [`components`] makes them; request
//! bodies whose amount depends on a currency field become one variant per
//! configured currency ([`price_by_currency`]), since the number of decimals
//! an amount may have is the currency's.
//!
//! Patterns use only what ECMA-262, Python and the `regex` crate read alike
//! (no look-around, no inline flags), so every tool reads them the same way.
//! Codes and names are accepted in any case, which a JSON Schema `enum`
//! cannot say: their schemas are case-insensitive patterns instead, with the
//! canonical list in the description.

use serde_json::{json, Map, Value};
use wallet_core::command::IDEMPOTENCY_KEY_LENGTH_MAX;
use wallet_core::context::{
    DESCRIPTION_LENGTH_MAX, REASON_LENGTH_MAX, REFERENCE_LENGTH_MAX, REFERENCE_TYPE_LENGTH_MAX,
    SOURCE_LENGTH_MAX,
};
use wallet_core::money::AMOUNT_MAX_UNITS;
use wallet_core::points::POINTS_PER_REQUEST_MAX;
use wallet_core::query::{CURSOR_LENGTH_MAX, EVENTS_LIMIT_MAX, PAGE_LIMIT_MAX};
use wallet_core::{CurrencyTable, HoldStatus, PointTransactionType, TransactionType, WalletStatus};

use crate::app::REQUEST_ID_LENGTH_MAX;
use crate::input::{AMOUNT_FRACTION_DIGITS_MAX, AMOUNT_INTEGER_DIGITS_MAX};

/// Characters that are not text: the control characters other than tab,
/// line feed and carriage return, as the core's `required_text` refuses
/// them.
const CONTROL_CLASS: &str = r"\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F";
/// The characters Rust's `str::trim` removes (Unicode `White_Space`).
const WHITESPACE_CLASS: &str =
    r"\t\n\u000B\u000C\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// A reference to a component schema.
pub fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// `text` with every ASCII letter matched in either case (`[Uu][Ss][Dd]`).
fn any_case(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A pattern matching exactly one of `names`, in any case.
fn one_of_any_case<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let choices: Vec<String> = names.into_iter().map(any_case).collect();
    format!("^({})$", choices.join("|"))
}

/// A name out of a fixed list, as a request filter: any case.
fn name_filter(names: &[&str], what: &str) -> Value {
    json!({
        "type": "string",
        "pattern": one_of_any_case(names.iter().copied()),
        "description": format!("{what}: one of {} (case-insensitive).", names.join(", ")),
    })
}

/// A name out of a fixed list, as the service writes it.
fn name_enum(names: &[&str], what: &str) -> Value {
    json!({ "type": "string", "enum": names, "description": format!("{what}.") })
}

fn wallet_statuses() -> Vec<&'static str> {
    WalletStatus::ALL.iter().map(WalletStatus::as_str).collect()
}

fn hold_statuses() -> Vec<&'static str> {
    HoldStatus::ALL.iter().map(HoldStatus::as_str).collect()
}

fn transaction_types() -> Vec<&'static str> {
    TransactionType::ALL
        .iter()
        .map(TransactionType::as_str)
        .collect()
}

fn point_transaction_types() -> Vec<&'static str> {
    PointTransactionType::ALL
        .iter()
        .map(PointTransactionType::as_str)
        .collect()
}

/// Text as the core's `required_text` takes it: not blank, no control
/// character but tab, line feed and carriage return, at most `length_max`
/// characters.
fn text_pattern() -> String {
    format!("[^{CONTROL_CLASS}]*[^{WHITESPACE_CLASS}{CONTROL_CLASS}][^{CONTROL_CLASS}]*")
}

/// A required text field.
fn required_text(length_max: usize) -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": length_max,
        "pattern": format!("^{}$", text_pattern()),
    })
}

/// An optional text field: `null` or `""` mean absent.
fn optional_text(length_max: usize) -> Value {
    json!({
        "type": ["string", "null"],
        "maxLength": length_max,
        "pattern": format!("^({})?$", text_pattern()),
        "description": format!("At most {length_max} characters; `\"\"` or `null` mean absent."),
    })
}

/// The amount pattern for a currency of `scale` decimals: a plain decimal
/// (digits, then optionally a point and digits; no sign, no exponent, no
/// leading zero), greater than zero, at most [`AMOUNT_MAX_UNITS`], and with
/// no non-zero digit past the currency's scale. This is exactly what
/// `input::amount` reads and the core's `CurrencyTable::money` takes.
pub fn amount_pattern(scale: u32) -> String {
    let scale = scale as usize;
    let fraction_max = AMOUNT_FRACTION_DIGITS_MAX;
    let zeros = format!(r"(\.{})?", repeat("0", 1, fraction_max));
    let fraction = if scale == 0 {
        zeros.clone()
    } else {
        let rest = repeat("0", 0, fraction_max - scale);
        format!(r"(\.{}{rest})?", repeat("[0-9]", 1, scale))
    };
    let below_max = repeat("[0-9]", 0, AMOUNT_INTEGER_DIGITS_MAX - 2);
    let mut choices = vec![
        format!("[1-9]{below_max}{fraction}"),
        format!("{AMOUNT_MAX_UNITS}{zeros}"),
    ];
    // Below one: the first non-zero digit is within the scale.
    for leading in 0..scale {
        choices.push(format!(
            r"0\.{}[1-9]{}{}",
            repeat("0", leading, leading),
            repeat("[0-9]", 0, scale - 1 - leading),
            repeat("0", 0, fraction_max - scale),
        ));
    }
    format!("^({})$", choices.join("|"))
}

/// `atom` repeated `min` to `max` times, written as briefly as it goes.
fn repeat(atom: &str, min: usize, max: usize) -> String {
    match (min, max) {
        (_, 0) => String::new(),
        (1, 1) => atom.to_owned(),
        (min, max) if min == max => format!("{atom}{{{min}}}"),
        (min, max) => format!("{atom}{{{min},{max}}}"),
    }
}

/// An amount of a currency with `scale` decimals: a decimal string, or a
/// JSON number of the same form.
fn amount(scale: u32) -> Value {
    let number = if scale == 0 {
        json!({ "type": "integer", "minimum": 1, "maximum": AMOUNT_MAX_UNITS })
    } else {
        json!({
            "type": "number", "exclusiveMinimum": 0, "maximum": AMOUNT_MAX_UNITS,
            "multipleOf": json!(format!("1e-{scale}").parse::<f64>().unwrap_or(1.0)),
        })
    };
    let decimals = match scale {
        0 => "no decimals".to_owned(),
        1 => "at most 1 decimal".to_owned(),
        scale => format!("at most {scale} decimals"),
    };
    json!({
        "anyOf": [
            {
                "type": "string",
                "pattern": amount_pattern(scale),
                "maxLength": AMOUNT_INTEGER_DIGITS_MAX + 1 + AMOUNT_FRACTION_DIGITS_MAX,
                "examples": ["10"],
            },
            number,
        ],
        "description": format!(
            "A decimal string or a JSON number, read exactly: greater than zero, at most \
             {AMOUNT_MAX_UNITS}, with {decimals} (trailing zeros aside); no sign, no exponent, \
             no leading zero."
        ),
    })
}

/// The codes of the table, in order.
fn codes(currencies: &CurrencyTable) -> Vec<String> {
    currencies.iter().map(|c| c.code.to_string()).collect()
}

/// A currency code of `codes`, in any case, with the blanks around it that
/// the core trims.
fn currency_of(codes: &[String]) -> Value {
    let blanks = format!("[{WHITESPACE_CLASS}]*");
    let choices: Vec<String> = codes.iter().map(|c| any_case(c)).collect();
    json!({
        "type": "string",
        "pattern": format!("^{blanks}({}){blanks}$", choices.join("|")),
        "description": format!(
            "A configured currency code: one of {} (case-insensitive; blanks around it are \
             ignored).",
            codes.join(", ")
        ),
        "examples": [codes.first()],
    })
}

/// The named component schemas that the DTOs and parameters refer to.
pub fn components(currencies: &CurrencyTable) -> Map<String, Value> {
    let scale_max = currencies.iter().map(|c| c.scale).max().unwrap_or(0);
    let points = POINTS_PER_REQUEST_MAX;
    let entries = [
        ("Currency", currency_of(&codes(currencies))),
        ("Amount", amount(scale_max)),
        ("Description", optional_text(DESCRIPTION_LENGTH_MAX)),
        ("Reference", optional_text(REFERENCE_LENGTH_MAX)),
        ("Reason", required_text(REASON_LENGTH_MAX)),
        ("Source", required_text(SOURCE_LENGTH_MAX)),
        ("ReferenceType", required_text(REFERENCE_TYPE_LENGTH_MAX)),
        (
            "Points",
            json!({
                "type": "integer", "minimum": 1, "maximum": points,
                "description": "A JSON integer, written without a point (`100.0` is refused).",
            }),
        ),
        (
            "PointsAdjustment",
            json!({
                "type": "integer", "minimum": -points, "maximum": points, "not": { "const": 0 },
                "description": format!(
                    "Signed, non-zero, at most {points} either way; a JSON integer, written \
                     without a point (`100.0` is refused)."
                ),
            }),
        ),
        (
            "WalletStatus",
            name_enum(&wallet_statuses(), "A wallet's status"),
        ),
        ("HoldStatus", name_enum(&hold_statuses(), "A hold's status")),
        (
            "TransactionType",
            name_enum(&transaction_types(), "A wallet transaction's type"),
        ),
        (
            "PointTransactionType",
            name_enum(&point_transaction_types(), "A point transaction's type"),
        ),
    ];
    entries
        .into_iter()
        .map(|(name, schema)| (name.to_owned(), schema))
        .collect()
}

/// What the service answers in `X-Request-Id`: the caller's id when it is
/// acceptable (`app::acceptable_request_id`), else a new UUID.
pub fn request_id_schema() -> Value {
    json!({
        "type": "string",
        "pattern": format!("^[A-Za-z0-9._:-]{{1,{REQUEST_ID_LENGTH_MAX}}}$"),
    })
}

/// An `Idempotency-Key`: 1 to 255 printable ASCII characters. HTTP drops
/// blanks at either end of a header value, so a key neither begins nor
/// ends with a space (it would arrive shorter, or empty).
pub fn idempotency_key_schema() -> Value {
    let inner = IDEMPOTENCY_KEY_LENGTH_MAX - 2;
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": IDEMPOTENCY_KEY_LENGTH_MAX,
        "pattern": format!("^[!-~]([ -~]{{0,{inner}}}[!-~])?$"),
    })
}

/// Request bodies whose amount is of the currency in another field: the
/// schema, and the field naming the currency.
const PRICED_REQUESTS: [(&str, &str); 4] = [
    ("MoneyRequest", "currency"),
    ("TransferRequest", "currency"),
    ("CreateHoldRequest", "currency"),
    ("ExchangeRequest", "fromCurrency"),
];

/// Turns each priced request schema into one variant per configured
/// currency, so that an amount's decimals are those of its currency. An
/// exchange's target is any other currency (the same one is refused).
pub fn price_by_currency(schemas: &mut Map<String, Value>, currencies: &CurrencyTable) {
    let codes = codes(currencies);
    for (name, field) in PRICED_REQUESTS {
        let Some(base) = schemas.get(name).cloned() else {
            continue;
        };
        let variants: Vec<Value> = currencies
            .iter()
            .map(|currency| {
                let code = currency.code.to_string();
                let mut variant = base.clone();
                variant["properties"][field] = currency_of(std::slice::from_ref(&code));
                variant["properties"]["amount"] = amount(currency.scale);
                if name == "ExchangeRequest" {
                    let others: Vec<String> =
                        codes.iter().filter(|c| **c != code).cloned().collect();
                    variant["properties"]["toCurrency"] = currency_of(&others);
                }
                variant.as_object_mut().map(|o| o.remove("description"));
                variant
            })
            .collect();
        let description = base.get("description").cloned().unwrap_or(Value::Null);
        schemas.insert(
            name.to_owned(),
            json!({ "oneOf": variants, "description": description }),
        );
    }
}

/// The decimal strings of responses, by schema: exact, as
/// `rust_decimal` writes them (a minus on a negative change, never an
/// exponent).
const RESPONSE_DECIMALS: [(&str, &[&str]); 7] = [
    ("Balance", &["balance", "held", "available"]),
    (
        "Transaction",
        &[
            "amount",
            "heldChange",
            "balanceAfter",
            "heldAfter",
            "reversedAmount",
        ],
    ),
    ("Reversal", &["reversedAmount"]),
    (
        "Hold",
        &[
            "originalAmount",
            "remainingAmount",
            "executedAmount",
            "releasedAmount",
        ],
    ),
    ("Exchange", &["fromAmount", "toAmount", "rate"]),
    ("CurrencyTotals", &["balance", "held"]),
    ("TransactionTotals", &["volume"]),
];

/// The pattern of a decimal string the service writes.
pub const RESPONSE_DECIMAL_PATTERN: &str = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$";

/// Gives the decimal strings of responses their pattern.
pub fn pattern_response_decimals(schemas: &mut Map<String, Value>) {
    for (name, fields) in RESPONSE_DECIMALS {
        for field in fields {
            if let Some(property) = schemas
                .get_mut(name)
                .and_then(|schema| schema["properties"].get_mut(*field))
            {
                property["pattern"] = json!(RESPONSE_DECIMAL_PATTERN);
            }
        }
    }
}

/// The schema of a query parameter.
#[derive(Debug, Clone, Copy)]
pub enum QuerySchema {
    /// A page size, 1 to [`PAGE_LIMIT_MAX`].
    PageLimit,
    /// An events read's size, 1 to [`EVENTS_LIMIT_MAX`].
    EventsLimit,
    /// An outbox sequence, zero or more.
    Sequence,
    /// The cursor of a transaction page (by sequence).
    SequenceCursor,
    /// The cursor of a hold or wallet page (by time and id).
    PositionCursor,
    /// An RFC 3339 time.
    DateTime,
    /// A configured currency.
    Currency,
    WalletStatus,
    HoldStatus,
    TransactionType,
}

impl QuerySchema {
    /// The parameter's schema.
    pub fn schema(self) -> Value {
        match self {
            QuerySchema::PageLimit => {
                json!({ "type": "integer", "minimum": 1, "maximum": PAGE_LIMIT_MAX })
            }
            QuerySchema::EventsLimit => {
                json!({ "type": "integer", "minimum": 1, "maximum": EVENTS_LIMIT_MAX })
            }
            QuerySchema::Sequence => {
                json!({ "type": "integer", "minimum": 0, "maximum": i64::MAX })
            }
            QuerySchema::SequenceCursor => json!({
                "type": "string", "maxLength": CURSOR_LENGTH_MAX,
                "pattern": "^s[0-9]{1,19}$",
            }),
            QuerySchema::PositionCursor => json!({
                "type": "string", "maxLength": CURSOR_LENGTH_MAX,
                "pattern": "^p[0-9]{1,18}\\.[0-9A-Fa-f]{32}$",
            }),
            QuerySchema::DateTime => json!({ "type": "string", "format": "date-time" }),
            QuerySchema::Currency => reference("Currency"),
            QuerySchema::WalletStatus => name_filter(&wallet_statuses(), "A wallet status"),
            QuerySchema::HoldStatus => name_filter(&hold_statuses(), "A hold status"),
            QuerySchema::TransactionType => name_filter(&transaction_types(), "A transaction type"),
        }
    }
}

#[cfg(test)]
mod tests {
    use regex::Regex;
    use serde_json::value::RawValue;
    use wallet_core::context::required_text;
    use wallet_core::{Cursor, IdempotencyKey};

    use super::*;
    use crate::input;

    fn regex(pattern: &str) -> Regex {
        Regex::new(pattern).expect("the pattern compiles")
    }

    /// Every text of at most `length_max` characters from `alphabet`.
    fn every_text(alphabet: &[char], length_max: usize) -> Vec<String> {
        let mut texts = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..length_max {
            last = last
                .iter()
                .flat_map(|text| alphabet.iter().map(move |c| format!("{text}{c}")))
                .collect();
            texts.extend(last.iter().cloned());
        }
        texts
    }

    #[test]
    fn the_amount_pattern_takes_exactly_what_the_service_takes() {
        let table = CurrencyTable::default();
        let mut texts = every_text(&['0', '1', '9', '.', '-', '+', 'e'], 5);
        let edges = [
            "1000000000000000",
            "1000000000000000.000000000000",
            "1000000000000000.0000000000000",
            "1000000000000000.01",
            "1000000000000001",
            "999999999999999.99",
            "999999999999999.999",
            "0.01",
            "0.001",
            "0.10",
            "0.000000000000",
            "1.000000000000",
            "1.0000000000000",
            "01",
            "0.0",
        ];
        texts.extend(edges.iter().map(|e| (*e).to_owned()));
        for currency in table.iter() {
            let pattern = regex(&amount_pattern(currency.scale));
            for text in &texts {
                let raw = RawValue::from_string(json!(text).to_string()).expect("JSON");
                let taken = input::amount("amount", &raw)
                    .ok()
                    .is_some_and(|amount| table.money(amount, currency.code).is_ok());
                assert_eq!(
                    pattern.is_match(text),
                    taken,
                    "`{text}` in {}",
                    currency.code
                );
            }
        }
    }

    #[test]
    fn the_text_pattern_takes_exactly_what_the_core_takes() {
        let alphabet = [
            'a', ' ', '\t', '\n', '\r', '\u{0}', '\u{1c}', '\u{7f}', '\u{85}', '\u{a0}', 'é',
            '\u{3000}', '\u{feff}',
        ];
        let required = regex(&format!("^{}$", text_pattern()));
        for text in every_text(&alphabet, 3) {
            let taken = required_text("text", text.clone(), 3).is_ok();
            assert_eq!(required.is_match(&text), taken, "{text:?}");
        }
        let long = "x".repeat(DESCRIPTION_LENGTH_MAX + 1);
        let schema = optional_text(DESCRIPTION_LENGTH_MAX);
        assert_eq!(schema["maxLength"], DESCRIPTION_LENGTH_MAX);
        assert!(required_text("text", long, DESCRIPTION_LENGTH_MAX).is_err());
        let optional = regex(schema["pattern"].as_str().expect("pattern"));
        assert!(optional.is_match(""), "an empty optional text is absent");
        assert!(!optional.is_match(" "));
    }

    #[test]
    fn the_currency_pattern_takes_exactly_the_configured_codes_in_any_case() {
        let table = CurrencyTable::default();
        let pattern = regex(
            currency_of(&codes(&table))["pattern"]
                .as_str()
                .expect("pattern"),
        );
        let texts = [
            "USD",
            "usd",
            "uSd",
            " VND\t",
            "\u{a0}ppoint\u{3000}",
            "PPOINT",
            "XYZ",
            "",
            "US D",
            "USDX",
            "\u{1c}USD",
            "\u{feff}USD",
            "US-D",
        ];
        for text in texts {
            assert_eq!(
                pattern.is_match(text),
                table.resolve(text).is_ok(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn the_name_filters_take_every_name_in_any_case_and_nothing_else() {
        let schema = QuerySchema::HoldStatus.schema();
        let pattern = regex(schema["pattern"].as_str().expect("pattern"));
        for status in HoldStatus::ALL {
            let name = status.as_str();
            for text in [name.to_owned(), name.to_lowercase(), name.to_uppercase()] {
                assert!(pattern.is_match(&text), "{text}");
                assert!(text.parse::<HoldStatus>().is_ok());
            }
        }
        for text in ["", "Activ", "Active ", "Expiredd"] {
            assert!(!pattern.is_match(text), "{text}");
            assert!(text.parse::<HoldStatus>().is_err());
        }
    }

    #[test]
    fn cursors_the_service_hands_out_match_their_patterns() {
        let sequence = QuerySchema::SequenceCursor.schema();
        let position = QuerySchema::PositionCursor.schema();
        let sequence = regex(sequence["pattern"].as_str().expect("pattern"));
        let position = regex(position["pattern"].as_str().expect("pattern"));
        for n in [0, 1, i64::MAX as u64] {
            let text = Cursor::Sequence(n).encode();
            assert!(
                sequence.is_match(&text) && Cursor::decode(&text).is_ok(),
                "{text}"
            );
        }
        let at = chrono::DateTime::from_timestamp_micros(1_800_000_000_000_000).expect("time");
        let text = Cursor::Position {
            at,
            id: uuid::Uuid::now_v7(),
        }
        .encode();
        assert!(
            position.is_match(&text) && Cursor::decode(&text).is_ok(),
            "{text}"
        );
        assert!(!sequence.is_match("s") && !position.is_match("p1.x"));
    }

    #[test]
    fn an_idempotency_key_of_the_pattern_is_a_key_the_core_takes() {
        let schema = idempotency_key_schema();
        let pattern = regex(schema["pattern"].as_str().expect("pattern"));
        let mut texts = every_text(&[' ', 'a', '~', '\u{7f}', '\u{e9}'], 3);
        texts.push("k".repeat(IDEMPOTENCY_KEY_LENGTH_MAX));
        texts.push("k".repeat(IDEMPOTENCY_KEY_LENGTH_MAX + 1));
        for text in texts {
            let taken = IdempotencyKey::parse(&text).is_ok();
            // HTTP drops blanks at either end of a header value, so the
            // document leaves out the keys that begin or end with one.
            let survives_http = text.trim_matches(' ') == text;
            assert_eq!(pattern.is_match(&text), taken && survives_http, "{text:?}");
        }
    }

    #[test]
    fn a_request_id_the_service_answers_matches_its_pattern() {
        let pattern = regex(request_id_schema()["pattern"].as_str().expect("pattern"));
        assert!(pattern.is_match(&uuid::Uuid::now_v7().to_string()));
        assert!(pattern.is_match(&"a".repeat(REQUEST_ID_LENGTH_MAX)));
        assert!(!pattern.is_match(&"a".repeat(REQUEST_ID_LENGTH_MAX + 1)));
        assert!(!pattern.is_match("a b"));
    }

    #[test]
    fn decimal_strings_of_responses_have_their_pattern() {
        let document = crate::openapi::document(&[], &CurrencyTable::default());
        let schemas = &document["components"]["schemas"];
        let pattern = regex(RESPONSE_DECIMAL_PATTERN);
        for (name, fields) in RESPONSE_DECIMALS {
            for field in fields {
                let property = &schemas[name]["properties"][*field];
                assert_eq!(
                    property["pattern"], RESPONSE_DECIMAL_PATTERN,
                    "{name}.{field}"
                );
            }
        }
        for value in ["0", "-2.00", "25000", "0.40", "1000000000000000.00"] {
            let decimal: rust_decimal::Decimal = value.parse().expect("a decimal");
            assert!(pattern.is_match(&decimal.to_string()), "{value}");
        }
        let tiny = rust_decimal::Decimal::new(1, 28);
        assert!(pattern.is_match(&tiny.to_string()));
        assert!(pattern.is_match(&(-tiny).to_string()));
    }

    /// The response schemas: every field is always there but `lotId` of a
    /// points result (which only some commands have) and the lags of a
    /// health check (`lagEvents` only the relay's has, `lagSeconds` and
    /// `lagBytes` only the replica's).
    #[test]
    fn every_field_a_response_always_has_is_required() {
        let document = crate::openapi::document(&[], &CurrencyTable::default());
        let schemas = &document["components"]["schemas"];
        let responses = [
            "Balance",
            "Wallet",
            "Transaction",
            "Hold",
            "MoneyMovement",
            "Transfer",
            "Exchange",
            "PointAccount",
            "PointTransaction",
            "PointsResult",
            "Event",
            "Events",
            "WalletCounts",
            "CurrencyTotals",
            "TransactionTotals",
            "PointTotals",
            "Statistics",
            "Status",
            "Check",
            "Health",
            "Problem",
        ];
        for name in responses {
            let schema = &schemas[name];
            let properties = schema["properties"].as_object().expect(name);
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for property in properties.keys() {
                // Some fields are there only for some answers: the lot of
                // a point command that made one, and the lags of the relay
                // and replica checks.
                let optional = matches!(
                    (name, property.as_str()),
                    ("PointsResult", "lotId") | ("Check", "lagEvents" | "lagSeconds" | "lagBytes")
                );
                assert_eq!(
                    required.contains(&property.as_str()),
                    !optional,
                    "{name}.{property}"
                );
            }
        }
    }
}
