//! Money: one type, one unit, checked arithmetic and an explicit maximum.
//!
//! Amounts are integer picodollars (10⁻¹² USD), the unit OpenRouter's per-token prices are exact
//! in (`"0.0000000375"`), held in a `u128` so that sums of many large amounts cannot wrap. Every
//! configured amount (a key limit, a budget, an organization's credits, a price) must be at most
//! [`Money::MAX`]: the control plane refuses more at its API, and a snapshot record carrying more
//! is quarantined by the same parser, so the two planes can never disagree about what is valid.

use std::fmt;

/// An amount of US dollars, exact to the picodollar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(u128);

const SCALE_DIGITS: usize = 12;
/// Picodollars in a dollar: the unit of `Money`.
pub const PICOS_PER_USD: u128 = 1_000_000_000_000;
const PICOS_PER_MICRO: u128 = 1_000_000;

/// The largest amount a limit, budget, credit total or price may be: one billion USD.
pub const MAX_USD: u64 = 1_000_000_000;

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("`{0}` is not a non-negative decimal amount of USD")]
    Malformed(String),
    #[error("`{0}` has more than 12 decimal places")]
    TooPrecise(String),
    #[error("`{0}` is above the maximum of {MAX_USD} USD")]
    OutOfRange(String),
}

impl Money {
    pub const ZERO: Money = Money(0);
    pub const MAX: Money = Money(MAX_USD as u128 * PICOS_PER_USD);

    /// Picodollars, unchecked against `MAX` (a sum of charges may exceed it).
    pub const fn from_pico(pico: u128) -> Money {
        Money(pico)
    }

    pub const fn pico(self) -> u128 {
        self.0
    }

    /// Whole dollars and the picodollars below one, as stores that sum in SQL keep an amount
    /// (two integers, the carry between them done by the store).
    pub const fn dollars_and_picos(self) -> (u128, u128) {
        (self.0 / PICOS_PER_USD, self.0 % PICOS_PER_USD)
    }

    /// The amount of `dollars` and `picos` (which may exceed a dollar: sums before their
    /// carry), saturating.
    pub const fn from_dollars_and_picos(dollars: u128, picos: u128) -> Money {
        Money(dollars.saturating_mul(PICOS_PER_USD).saturating_add(picos))
    }

    /// Whole micro-dollars, the unit of the credit ledger.
    pub fn from_micros(micros: u64) -> Money {
        Money(u128::from(micros) * PICOS_PER_MICRO)
    }

    /// Rounded down to whole micro-dollars (saturating at `i64::MAX`).
    pub fn micros_floor(self) -> i64 {
        i64::try_from(self.0 / PICOS_PER_MICRO).unwrap_or(i64::MAX)
    }

    /// Parses a configured amount, a decimal USD string such as `"0.00000015"` or `"25"`: digits
    /// with at most one dot and at most 12 decimals, at most [`Money::MAX`]. Signs, exponents and
    /// spaces are refused rather than guessed at.
    pub fn parse_usd(text: &str) -> Result<Money, MoneyError> {
        Money::parse(text, Some(Money::MAX))
    }

    /// Parses a recorded amount (a generation's cost, a sum of them) in the same format, with no
    /// maximum but the type's.
    pub fn parse_recorded(text: &str) -> Result<Money, MoneyError> {
        Money::parse(text, None)
    }

    fn parse(text: &str, max: Option<Money>) -> Result<Money, MoneyError> {
        let malformed = || MoneyError::Malformed(text.to_owned());
        let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
            return Err(malformed());
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > SCALE_DIGITS {
            return Err(MoneyError::TooPrecise(text.to_owned()));
        }
        let out_of_range = || MoneyError::OutOfRange(text.to_owned());
        let whole = whole.trim_start_matches('0');
        // More whole digits than a u128 of picodollars holds (26) cannot be represented.
        if whole.len() > 26 {
            return Err(out_of_range());
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| malformed())?
        };
        let mut frac_pico: u128 = 0;
        for (i, b) in frac.bytes().enumerate() {
            frac_pico += u128::from(b - b'0') * 10u128.pow((SCALE_DIGITS - 1 - i) as u32);
        }
        let money = whole
            .checked_mul(PICOS_PER_USD)
            .and_then(|w| w.checked_add(frac_pico))
            .map(Money)
            .ok_or_else(out_of_range)?;
        if max.is_some_and(|max| money > max) {
            return Err(out_of_range());
        }
        Ok(money)
    }

    /// An optional decimal: an empty string means none.
    pub fn parse_optional(text: &str) -> Result<Option<Money>, MoneyError> {
        if text.is_empty() {
            Ok(None)
        } else {
            Money::parse_usd(text).map(Some)
        }
    }

    /// A JSON number of USD from an API client, rounded to the micro-dollar (the ledger's unit):
    /// finite, not negative, at most [`Money::MAX`].
    pub fn from_usd_f64(value: f64) -> Result<Money, MoneyError> {
        if !value.is_finite() || value < 0.0 {
            return Err(MoneyError::Malformed(value.to_string()));
        }
        if value > MAX_USD as f64 {
            return Err(MoneyError::OutOfRange(value.to_string()));
        }
        // At most 1e15 micro-dollars: exact in an f64.
        let micros = (value * 1e6).round() as u64;
        Ok(Money::from_micros(micros))
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    pub fn checked_mul(self, count: u64) -> Option<Money> {
        self.0.checked_mul(u128::from(count)).map(Money)
    }

    /// Sums and products that saturate instead of wrapping: only reachable with absurd token
    /// counts, and a saturated cost exceeds every limit, so it is refused rather than undercounted.
    pub fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }

    pub fn saturating_mul(self, count: u64) -> Money {
        Money(self.0.saturating_mul(u128::from(count)))
    }

    pub fn saturating_sub(self, other: Money) -> Money {
        Money(self.0.saturating_sub(other.0))
    }

    /// USD as a float, for JSON fields OpenRouter reports as numbers (`usage.cost`, `limit`).
    pub fn as_usd_f64(self) -> f64 {
        self.0 as f64 / PICOS_PER_USD as f64
    }
}

impl fmt::Display for Money {
    /// Exact decimal USD without trailing zeros: 150000 pico → `0.00000015`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / PICOS_PER_USD;
        let frac = self.0 % PICOS_PER_USD;
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let frac = format!("{frac:012}");
        write!(f, "{whole}.{}", frac.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_openrouter_prices_exactly() {
        assert_eq!(Money::parse_usd("0.00000015"), Ok(Money(150_000)));
        assert_eq!(Money::parse_usd("0.0000000375"), Ok(Money(37_500)));
        assert_eq!(Money::parse_usd("2"), Ok(Money(2 * PICOS_PER_USD)));
        assert_eq!(Money::parse_usd("0"), Ok(Money(0)));
        assert_eq!(Money::parse_usd(".5"), Ok(Money(PICOS_PER_USD / 2)));
        assert_eq!(Money::parse_usd("3."), Ok(Money(3 * PICOS_PER_USD)));
        assert_eq!(Money::parse_usd("0.000000000001"), Ok(Money(1)));
        assert_eq!(
            Money::parse_usd("1.500000000000000"),
            Ok(Money(1_500_000_000_000))
        );
        assert_eq!(Money::parse_usd("000012"), Ok(Money(12 * PICOS_PER_USD)));
    }

    #[test]
    fn the_maximum_is_explicit() {
        assert_eq!(Money::parse_usd("1000000000"), Ok(Money::MAX));
        assert_eq!(
            Money::parse_usd("1000000000.000000000001"),
            Err(MoneyError::OutOfRange("1000000000.000000000001".into()))
        );
        // The value that froze the fleet before: twenty million is an ordinary limit now.
        assert_eq!(
            Money::parse_usd("20000000"),
            Ok(Money(20_000_000 * PICOS_PER_USD))
        );
        assert!(matches!(
            Money::parse_usd("99999999999999999999999999999999999999999"),
            Err(MoneyError::OutOfRange(_))
        ));
        assert_eq!(Money::from_usd_f64(1e9), Ok(Money::MAX));
        assert!(matches!(
            Money::from_usd_f64(1e9 + 1.0),
            Err(MoneyError::OutOfRange(_))
        ));
    }

    #[test]
    fn recorded_amounts_may_exceed_the_configured_maximum() {
        assert_eq!(
            Money::parse_recorded("2000000000.5"),
            Ok(Money(2_000_000_000 * PICOS_PER_USD + PICOS_PER_USD / 2))
        );
        assert!(matches!(
            Money::parse_recorded(&"9".repeat(40)),
            Err(MoneyError::OutOfRange(_))
        ));
        assert!(matches!(
            Money::parse_recorded("-1"),
            Err(MoneyError::Malformed(_))
        ));
    }

    #[test]
    fn refuses_what_it_cannot_represent() {
        for bad in [
            "", ".", "-1", "+1", "1e3", "1.2.3", " 1", "1,5", "0x10", "1e-6",
        ] {
            assert!(
                matches!(Money::parse_usd(bad), Err(MoneyError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Money::parse_usd("0.0000000000001"),
            Err(MoneyError::TooPrecise(_))
        ));
        for bad in [f64::NAN, f64::INFINITY, -0.5] {
            assert!(Money::from_usd_f64(bad).is_err());
        }
    }

    #[test]
    fn displays_exact_decimal() {
        assert_eq!(Money(150_000).to_string(), "0.00000015");
        assert_eq!(Money(3 * PICOS_PER_USD).to_string(), "3");
        assert_eq!(Money(1_500_000_000_000).to_string(), "1.5");
        assert_eq!(Money::MAX.to_string(), "1000000000");
    }

    #[test]
    fn api_numbers_round_to_the_micro_dollar() {
        assert_eq!(Money::from_usd_f64(5.5).unwrap().to_string(), "5.5");
        assert_eq!(
            Money::from_usd_f64(1.2345674).unwrap().to_string(),
            "1.234567"
        );
        assert_eq!(Money::from_usd_f64(0.0).unwrap(), Money::ZERO);
        assert_eq!(Money::from_micros(25_500_000).micros_floor(), 25_500_000);
    }

    proptest! {
        /// Any amount the API accepts prints and parses back to itself, stays within MAX, and
        /// every operation on it (with any token count) returns without wrapping or panicking.
        #[test]
        fn arithmetic_on_accepted_amounts_never_wraps(
            usd in 0.0f64..=1e9,
            other in 0.0f64..=1e9,
            tokens in any::<u64>(),
        ) {
            let a = Money::from_usd_f64(usd).unwrap();
            let b = Money::from_usd_f64(other).unwrap();
            prop_assert!(a <= Money::MAX);
            prop_assert_eq!(Money::parse_usd(&a.to_string()), Ok(a));
            let sum = a.checked_add(b).unwrap();
            prop_assert!(sum >= a && sum >= b);
            prop_assert_eq!(sum.checked_sub(b), Some(a));
            match a.checked_mul(tokens) {
                Some(p) => prop_assert_eq!(p, a.saturating_mul(tokens)),
                None => prop_assert_eq!(a.saturating_mul(tokens), Money(u128::MAX)),
            }
            prop_assert!(a.saturating_add(b).saturating_sub(b) == a);
            prop_assert!(a.as_usd_f64().is_finite());
        }

        /// Any decimal string either parses to an amount within MAX that prints back to the same
        /// value, or is refused; nothing panics.
        #[test]
        fn any_decimal_text_parses_or_is_refused(text in "[0-9]{0,14}(\\.[0-9]{0,14})?") {
            if let Ok(m) = Money::parse_usd(&text) {
                prop_assert!(m <= Money::MAX);
                prop_assert_eq!(Money::parse_usd(&m.to_string()), Ok(m));
            }
        }
    }
}
