//! Currencies, the currency table, validated amounts and conversion.
//!
//! Amounts are exact decimals (`rust_decimal::Decimal`), never floats. Every
//! arithmetic step is checked; a conversion is done in integer minor units so
//! that it is exact before it is rounded down to the target scale.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::WalletError;

/// The largest amount accepted in one request, in units of its currency.
pub const AMOUNT_MAX_UNITS: i64 = 1_000_000_000_000_000;
/// The largest balance a wallet item may hold, in units of its currency.
pub const BALANCE_MAX_UNITS: i64 = 1_000_000_000_000_000;
/// The largest number of decimal places a currency may have.
pub const CURRENCY_SCALE_MAX: u32 = 8;
/// The longest currency code, in characters.
pub const CURRENCY_CODE_LENGTH_MAX: usize = 12;
/// The largest base rate a currency may have (its value in the reference unit).
pub const BASE_RATE_MAX_UNITS: i64 = 1_000_000_000_000;
/// The most decimal places a base rate may have.
pub const BASE_RATE_SCALE_MAX: u32 = 8;
/// The most currencies a table may hold.
pub const CURRENCY_COUNT_MAX: usize = 64;

/// The currency table an operator gets without configuring one: VND (the
/// reference unit), USD and PPOINT, as `CODE:scale:rate` entries.
pub const DEFAULT_CURRENCIES: &str = "VND:0:1,USD:2:25000,PPOINT:0:1";
/// The currency of a wallet created without one.
pub const DEFAULT_WALLET_CURRENCY: &str = "VND";

/// The largest amount, as a decimal.
pub fn amount_max() -> Decimal {
    Decimal::from(AMOUNT_MAX_UNITS)
}

/// The largest balance, as a decimal.
pub fn balance_max() -> Decimal {
    Decimal::from(BALANCE_MAX_UNITS)
}

/// A currency code: 1 to 12 ASCII letters or digits, stored upper case.
///
/// Parsing is case-insensitive (`usd`, `PPoint`); printing is upper case.
/// The code is `Copy` so that it can key maps and ride on every transaction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CurrencyCode {
    bytes: [u8; CURRENCY_CODE_LENGTH_MAX],
    length: u8,
}

impl CurrencyCode {
    /// Parses a code, case-insensitively.
    pub fn parse(text: &str) -> Result<Self, WalletError> {
        let trimmed = text.trim();
        let valid = !trimmed.is_empty()
            && trimmed.len() <= CURRENCY_CODE_LENGTH_MAX
            && trimmed.bytes().all(|b| b.is_ascii_alphanumeric());
        if !valid {
            return Err(WalletError::UnsupportedCurrency(truncate_for_message(text)));
        }
        let mut bytes = [0u8; CURRENCY_CODE_LENGTH_MAX];
        for (slot, byte) in bytes.iter_mut().zip(trimmed.bytes()) {
            *slot = byte.to_ascii_uppercase();
        }
        Ok(CurrencyCode {
            bytes,
            length: trimmed.len() as u8,
        })
    }

    /// The code as upper-case text.
    pub fn as_str(&self) -> &str {
        // Only ASCII alphanumerics are ever stored, so this cannot fail.
        std::str::from_utf8(&self.bytes[..self.length as usize]).unwrap_or("")
    }
}

fn truncate_for_message(text: &str) -> String {
    text.chars().take(32).collect()
}

impl fmt::Display for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_str())
    }
}

impl FromStr for CurrencyCode {
    type Err = WalletError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CurrencyCode::parse(s)
    }
}

impl Serialize for CurrencyCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CurrencyCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        CurrencyCode::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// One currency: its code, its scale (decimal places) and its base rate (its
/// value in the reference unit, VND).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Currency {
    pub code: CurrencyCode,
    pub scale: u32,
    pub base_rate: Decimal,
}

/// The configured currencies. Built once at start-up and shared read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencyTable {
    currencies: BTreeMap<CurrencyCode, Currency>,
}

impl Default for CurrencyTable {
    /// The table of [`DEFAULT_CURRENCIES`].
    fn default() -> Self {
        CurrencyTable::parse(DEFAULT_CURRENCIES)
            .unwrap_or_else(|_| unreachable!("the default table is valid"))
    }
}

impl CurrencyTable {
    /// Builds a table, checking every currency against the named limits.
    pub fn new(currencies: Vec<Currency>) -> Result<Self, WalletError> {
        if currencies.is_empty() || currencies.len() > CURRENCY_COUNT_MAX {
            return Err(WalletError::Validation(format!(
                "a currency table holds 1 to {CURRENCY_COUNT_MAX} currencies"
            )));
        }
        let mut map = BTreeMap::new();
        for currency in currencies {
            if currency.scale > CURRENCY_SCALE_MAX {
                return Err(WalletError::Validation(format!(
                    "{}: scale {} is over {CURRENCY_SCALE_MAX}",
                    currency.code, currency.scale
                )));
            }
            let rate = currency.base_rate;
            if rate <= Decimal::ZERO
                || rate > Decimal::from(BASE_RATE_MAX_UNITS)
                || rate.normalize().scale() > BASE_RATE_SCALE_MAX
            {
                return Err(WalletError::Validation(format!(
                    "{}: base rate must be > 0, at most {BASE_RATE_MAX_UNITS}, with at most {BASE_RATE_SCALE_MAX} decimals",
                    currency.code
                )));
            }
            // Trailing zeros would only inflate the integers of a conversion.
            let currency = Currency {
                base_rate: rate.normalize(),
                ..currency
            };
            if map.insert(currency.code, currency.clone()).is_some() {
                return Err(WalletError::Validation(format!(
                    "{}: listed twice",
                    currency.code
                )));
            }
        }
        Ok(CurrencyTable { currencies: map })
    }

    /// Parses `CODE:scale:rate` entries separated by commas, for example
    /// `VND:0:1,USD:2:25000,PPOINT:0:1`.
    pub fn parse(spec: &str) -> Result<Self, WalletError> {
        let mut currencies = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let parts: Vec<&str> = entry.split(':').collect();
            let [code, scale, rate] = parts.as_slice() else {
                return Err(WalletError::Validation(format!(
                    "currency entry `{entry}` is not CODE:scale:rate"
                )));
            };
            let code = CurrencyCode::parse(code)
                .map_err(|_| WalletError::Validation(format!("bad currency code in `{entry}`")))?;
            let scale: u32 = scale
                .trim()
                .parse()
                .map_err(|_| WalletError::Validation(format!("bad scale in `{entry}`")))?;
            let base_rate = Decimal::from_str_exact(rate.trim())
                .map_err(|_| WalletError::Validation(format!("bad base rate in `{entry}`")))?;
            currencies.push(Currency {
                code,
                scale,
                base_rate,
            });
        }
        CurrencyTable::new(currencies)
    }

    /// The currencies, ordered by code.
    pub fn iter(&self) -> impl Iterator<Item = &Currency> {
        self.currencies.values()
    }

    /// The currency with this code, or `unsupported_currency`.
    pub fn get(&self, code: CurrencyCode) -> Result<&Currency, WalletError> {
        self.currencies
            .get(&code)
            .ok_or_else(|| WalletError::UnsupportedCurrency(code.to_string()))
    }

    /// Parses a code from text and checks that the table has it.
    pub fn resolve(&self, text: &str) -> Result<CurrencyCode, WalletError> {
        let code = CurrencyCode::parse(text)?;
        self.get(code)?;
        Ok(code)
    }

    /// Validates an amount of a currency: > 0, at most the currency's scale
    /// in decimals, at most [`AMOUNT_MAX_UNITS`]. The result is rescaled to
    /// the currency's scale (`10` USD becomes `10.00`).
    pub fn money(&self, amount: Decimal, code: CurrencyCode) -> Result<Money, WalletError> {
        let currency = self.get(code)?;
        if amount <= Decimal::ZERO {
            return Err(WalletError::InvalidAmount(format!(
                "{amount} is not greater than zero"
            )));
        }
        if amount > amount_max() {
            return Err(WalletError::InvalidAmount(format!(
                "{amount} is over the limit of {AMOUNT_MAX_UNITS}"
            )));
        }
        if amount.normalize().scale() > currency.scale {
            return Err(WalletError::InvalidAmount(format!(
                "{amount} has more than {} decimals for {code}",
                currency.scale
            )));
        }
        let mut value = amount.normalize();
        value.rescale(currency.scale);
        Ok(Money {
            amount: value,
            currency: code,
        })
    }

    /// Zero in a currency's scale (`0.00` for USD).
    pub fn zero(&self, code: CurrencyCode) -> Decimal {
        let scale = self.currencies.get(&code).map_or(0, |c| c.scale);
        Decimal::new(0, scale)
    }

    /// `base(from) / base(to)`, for display and the audit trail.
    pub fn rate(&self, from: CurrencyCode, to: CurrencyCode) -> Result<Decimal, WalletError> {
        let from = self.get(from)?;
        let to = self.get(to)?;
        from.base_rate
            .checked_div(to.base_rate)
            .map(|r| r.normalize())
            .ok_or_else(|| WalletError::Internal("rate overflow".into()))
    }

    /// Converts `amount` of `from` into `to`: exactly `amount * base(from) /
    /// base(to)`, rounded down (toward zero) to the target scale.
    ///
    /// The computation is done on integers (mantissas and powers of ten,
    /// with a 256-bit product where 128 bits do not suffice), so no
    /// intermediate rounding can push the result over a boundary, and every
    /// table that passes [`CurrencyTable::new`] converts every valid amount.
    /// Only a result over [`BALANCE_MAX_UNITS`] is `balance_limit_exceeded`.
    pub fn convert(&self, money: Money, to: CurrencyCode) -> Result<Decimal, WalletError> {
        let from = self.get(money.currency)?;
        let target = self.get(to)?;
        // amount = a / 10^sa, base(from) = f / 10^sf, base(to) = t / 10^st;
        // the result in target minor units is
        //   a * f * 10^(st + scale_to) / (t * 10^(sa + sf)).
        // Every scale is at most 8 and every mantissa at most 10^20, so the
        // power of ten left after cancelling is at most 10^16 and each
        // factor below fits in 128 bits.
        let internal = |what: &str| WalletError::Internal(format!("conversion: {what}"));
        let a = u128::try_from(money.amount.mantissa()).map_err(|_| internal("negative amount"))?;
        let f = u128::try_from(from.base_rate.mantissa()).map_err(|_| internal("negative rate"))?;
        let t =
            u128::try_from(target.base_rate.mantissa()).map_err(|_| internal("negative rate"))?;
        let up = target.base_rate.scale() + target.scale;
        let down = money.amount.scale() + from.base_rate.scale();
        let pow10 = |exp: u32| 10u128.checked_pow(exp).ok_or_else(|| internal("scale"));
        let (factor, divisor) = if up >= down {
            (f.checked_mul(pow10(up - down)?), Some(t))
        } else {
            (Some(f), t.checked_mul(pow10(down - up)?))
        };
        let (factor, divisor) = factor
            .zip(divisor)
            .ok_or_else(|| internal("rate too large"))?;
        let minor = mul_div_floor(a, factor, divisor).ok_or(WalletError::BalanceLimitExceeded)?;
        let limit =
            u128::try_from(BALANCE_MAX_UNITS).unwrap_or(u128::MAX) * 10u128.pow(target.scale);
        if minor > limit {
            return Err(WalletError::BalanceLimitExceeded);
        }
        let minor = i128::try_from(minor).map_err(|_| WalletError::BalanceLimitExceeded)?;
        Decimal::try_from_i128_with_scale(minor, target.scale)
            .map_err(|_| WalletError::BalanceLimitExceeded)
    }
}

/// `floor(x * y / z)`, exact for any 128-bit inputs: `None` when `z` is zero
/// or the quotient does not fit in 128 bits.
fn mul_div_floor(x: u128, y: u128, z: u128) -> Option<u128> {
    if z == 0 {
        return None;
    }
    if let Some(product) = x.checked_mul(y) {
        return Some(product / z);
    }
    let (high, low) = multiply_wide(x, y);
    if high >= z {
        return None;
    }
    // Long division of the 256-bit product by z, one bit at a time. The
    // remainder stays below z, so a shifted-out top bit means it is >= z.
    let mut remainder = high;
    let mut quotient = 0u128;
    for bit in (0..128).rev() {
        let carry = remainder >> 127;
        remainder = (remainder << 1) | ((low >> bit) & 1);
        quotient <<= 1;
        if carry == 1 || remainder >= z {
            remainder = remainder.wrapping_sub(z);
            quotient |= 1;
        }
    }
    Some(quotient)
}

/// The full 256-bit product of two 128-bit numbers, as (high, low) halves.
fn multiply_wide(x: u128, y: u128) -> (u128, u128) {
    let mask = u128::from(u64::MAX);
    let (x_high, x_low) = (x >> 64, x & mask);
    let (y_high, y_low) = (y >> 64, y & mask);
    let low_low = x_low * y_low;
    let high_low = x_high * y_low;
    let low_high = x_low * y_high;
    let high_high = x_high * y_high;
    let middle = (low_low >> 64) + (high_low & mask) + (low_high & mask);
    let low = (low_low & mask) | (middle << 64);
    let high = high_high + (high_low >> 64) + (low_high >> 64) + (middle >> 64);
    (high, low)
}

/// A validated, positive amount of a configured currency, in its scale.
///
/// Only [`CurrencyTable::money`] makes one, so holding a `Money` proves the
/// amount is > 0, at most [`AMOUNT_MAX_UNITS`] and not too precise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Money {
    amount: Decimal,
    currency: CurrencyCode,
}

impl Money {
    /// The amount, in its currency's scale.
    pub fn amount(&self) -> Decimal {
        self.amount
    }

    /// The currency.
    pub fn currency(&self) -> CurrencyCode {
        self.currency
    }
}

/// Adds two amounts, failing with `balance_limit_exceeded` above
/// [`BALANCE_MAX_UNITS`] (and on any overflow).
pub(crate) fn add_within_limit(left: Decimal, right: Decimal) -> Result<Decimal, WalletError> {
    match left.checked_add(right) {
        Some(sum) if sum <= balance_max() => Ok(sum),
        _ => Err(WalletError::BalanceLimitExceeded),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> CurrencyCode {
        CurrencyCode::parse(text).expect("valid code")
    }

    fn dec(text: &str) -> Decimal {
        Decimal::from_str_exact(text).expect("valid decimal")
    }

    #[test]
    fn codes_parse_case_insensitively_and_print_upper_case() {
        assert_eq!(code("usd"), code("USD"));
        assert_eq!(code("PPoint").to_string(), "PPOINT");
        assert!(CurrencyCode::parse("").is_err());
        assert!(CurrencyCode::parse("US-D").is_err());
        assert!(CurrencyCode::parse("ABCDEFGHIJKLM").is_err());
        assert_eq!(
            serde_json::to_string(&code("vnd")).expect("serialise"),
            "\"VND\""
        );
    }

    #[test]
    fn default_table_has_the_three_currencies() {
        let table = CurrencyTable::default();
        assert_eq!(table.get(code("VND")).map(|c| c.scale), Ok(0));
        assert_eq!(table.get(code("USD")).map(|c| c.scale), Ok(2));
        assert_eq!(
            table.get(code("USD")).map(|c| c.base_rate),
            Ok(Decimal::from(25_000))
        );
        assert_eq!(table.get(code("PPOINT")).map(|c| c.scale), Ok(0));
        assert!(matches!(
            table.resolve("EUR"),
            Err(WalletError::UnsupportedCurrency(_))
        ));
    }

    #[test]
    fn amounts_are_validated() {
        let table = CurrencyTable::default();
        let usd = code("USD");
        assert_eq!(
            table.money(dec("10"), usd).map(|m| m.amount().to_string()),
            Ok("10.00".to_string())
        );
        assert_eq!(
            table
                .money(dec("10.500"), usd)
                .map(|m| m.amount().to_string()),
            Ok("10.50".to_string())
        );
        for bad in ["0", "-1", "0.001", "1000000000000000.01"] {
            assert!(
                matches!(
                    table.money(dec(bad), usd),
                    Err(WalletError::InvalidAmount(_))
                ),
                "{bad} must be rejected"
            );
        }
        assert!(table.money(dec("1000000000000000"), usd).is_ok());
        assert!(matches!(
            table.money(dec("1000000000000001"), code("VND")),
            Err(WalletError::InvalidAmount(_))
        ));
        assert!(matches!(
            table.money(dec("0.5"), code("VND")),
            Err(WalletError::InvalidAmount(_))
        ));
    }

    #[test]
    fn conversion_is_exact_and_rounds_down() {
        let table = CurrencyTable::default();
        let (vnd, usd) = (code("VND"), code("USD"));
        let convert = |amount: &str, from, to| {
            let money = table.money(dec(amount), from).expect("valid");
            table.convert(money, to).map(|d| d.to_string())
        };
        assert_eq!(convert("1", usd, vnd), Ok("25000".into()));
        assert_eq!(convert("10001", vnd, usd), Ok("0.40".into()));
        assert_eq!(convert("249", vnd, usd), Ok("0.00".into()));
        assert_eq!(convert("250", vnd, usd), Ok("0.01".into()));
        assert_eq!(convert("0.01", usd, vnd), Ok("250".into()));
        assert_eq!(
            convert("1000000000000000", usd, vnd),
            Err(WalletError::BalanceLimitExceeded)
        );
        assert_eq!(table.rate(usd, vnd), Ok(Decimal::from(25_000)));
        assert_eq!(table.rate(vnd, usd), Ok(dec("0.00004")));
    }

    #[test]
    fn conversion_with_fractional_rates_never_rounds_up() {
        let table = CurrencyTable::parse("A:2:3,B:2:7").expect("valid table");
        let money = table.money(dec("1.00"), code("A")).expect("valid");
        // 1 * 3 / 7 = 0.428571... -> 0.42
        assert_eq!(table.convert(money, code("B")), Ok(dec("0.42")));
    }

    #[test]
    fn conversion_never_overflows_within_the_table_limits() {
        // Rates with every decimal allowed, and rates written with trailing zeros.
        let table =
            CurrencyTable::parse("A:8:99999.99999999,B:8:99999.99999999,C:0:1.00000000,D:2:25000")
                .expect("valid table");
        let convert = |amount: &str, from: &str, to: &str| {
            let money = table.money(dec(amount), code(from)).expect("valid");
            table.convert(money, code(to))
        };
        assert_eq!(convert("1000000", "A", "B"), Ok(dec("1000000.00000000")));
        assert_eq!(
            convert("999999999999999.99999999", "A", "B"),
            Ok(dec("999999999999999.99999999"))
        );
        assert_eq!(convert("1000000000", "C", "D"), Ok(dec("40000.00")));
        // A over D: 10^15 * 99999.99999999 / 25000 is far over the limit.
        assert_eq!(
            convert("1000000000000000", "A", "D"),
            Err(WalletError::BalanceLimitExceeded)
        );
    }

    #[test]
    fn wide_multiplication_and_division_are_exact() {
        assert_eq!(mul_div_floor(7, 3, 2), Some(10));
        assert_eq!(mul_div_floor(1, 1, 0), None);
        let big = u128::MAX;
        assert_eq!(mul_div_floor(big, big, big), Some(big));
        assert_eq!(mul_div_floor(big, 2, 4), Some(big / 2));
        assert_eq!(mul_div_floor(big, big, 1), None);
        assert_eq!(
            mul_div_floor(1u128 << 100, 1u128 << 100, 1u128 << 90),
            Some(1u128 << 110)
        );
        assert_eq!(multiply_wide(big, big), (big - 1, 1));
    }

    #[test]
    fn table_parsing_rejects_bad_entries() {
        assert!(CurrencyTable::parse("VND:0:1,USD:2:25000,PPOINT:0:1").is_ok());
        for bad in [
            "",
            "VND:0",
            "VND:x:1",
            "VND:9:1",
            "VND:0:0",
            "VND:0:-1",
            "VND:0:1,vnd:0:1",
        ] {
            assert!(CurrencyTable::parse(bad).is_err(), "{bad} must be rejected");
        }
    }
}
