//! Exact money arithmetic. Prices arrive as decimal USD strings (as in OpenRouter's `/models`)
//! and are held as integer pico-dollars, so pricing never rounds through a float.

use std::fmt;

/// An amount of US dollars in units of 10⁻¹² USD.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Picodollars(pub u64);

const SCALE_DIGITS: usize = 12;
const SCALE: u64 = 1_000_000_000_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("`{0}` is not a non-negative decimal amount of USD")]
    Malformed(String),
    #[error("`{0}` has more than 12 decimal places")]
    TooPrecise(String),
    #[error("`{0}` is too large")]
    Overflow(String),
}

impl Picodollars {
    pub const ZERO: Picodollars = Picodollars(0);

    /// Parses a decimal USD string such as `"0.00000015"`. Rejects signs, exponents and more
    /// than 12 decimals instead of guessing.
    pub fn parse_usd(text: &str) -> Result<Self, MoneyError> {
        let malformed = || MoneyError::Malformed(text.to_owned());
        let (whole, frac) = match text.split_once('.') {
            Some((w, f)) => (w, f),
            None => (text, ""),
        };
        if whole.is_empty() && frac.is_empty() {
            return Err(malformed());
        }
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || !digits(frac) {
            return Err(malformed());
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > SCALE_DIGITS {
            return Err(MoneyError::TooPrecise(text.to_owned()));
        }
        let overflow = || MoneyError::Overflow(text.to_owned());
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| overflow())?
        };
        let mut frac_units: u64 = 0;
        for (i, b) in frac.bytes().enumerate() {
            let digit = u64::from(b - b'0');
            frac_units += digit * 10u64.pow((SCALE_DIGITS - 1 - i) as u32);
        }
        whole
            .checked_mul(SCALE)
            .and_then(|w| w.checked_add(frac_units))
            .map(Picodollars)
            .ok_or_else(overflow)
    }

    /// Parses an optional price: an empty string means "not priced".
    pub fn parse_optional(text: &str) -> Result<Option<Self>, MoneyError> {
        if text.is_empty() {
            Ok(None)
        } else {
            Self::parse_usd(text).map(Some)
        }
    }

    pub fn times(self, count: u64) -> Picodollars {
        Picodollars(self.0.saturating_mul(count))
    }

    pub fn plus(self, other: Picodollars) -> Picodollars {
        Picodollars(self.0.saturating_add(other.0))
    }

    /// USD as a float, for the `usage.cost` JSON field (OpenRouter reports a number).
    pub fn as_usd_f64(self) -> f64 {
        self.0 as f64 / SCALE as f64
    }
}

impl fmt::Display for Picodollars {
    /// Exact decimal USD, without trailing zeros: `150000` → `0.00000015`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / SCALE;
        let frac = self.0 % SCALE;
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

    #[test]
    fn parses_openrouter_prices_exactly() {
        assert_eq!(
            Picodollars::parse_usd("0.00000015"),
            Ok(Picodollars(150_000))
        );
        assert_eq!(
            Picodollars::parse_usd("0.0000000375"),
            Ok(Picodollars(37_500))
        );
        assert_eq!(Picodollars::parse_usd("2"), Ok(Picodollars(2 * SCALE)));
        assert_eq!(Picodollars::parse_usd("0"), Ok(Picodollars(0)));
        assert_eq!(Picodollars::parse_usd(".5"), Ok(Picodollars(SCALE / 2)));
    }

    #[test]
    fn rejects_what_it_cannot_represent() {
        assert!(matches!(
            Picodollars::parse_usd("-1"),
            Err(MoneyError::Malformed(_))
        ));
        assert!(matches!(
            Picodollars::parse_usd("1e-6"),
            Err(MoneyError::Malformed(_))
        ));
        assert!(matches!(
            Picodollars::parse_usd(""),
            Err(MoneyError::Malformed(_))
        ));
        assert!(matches!(
            Picodollars::parse_usd("."),
            Err(MoneyError::Malformed(_))
        ));
        assert!(matches!(
            Picodollars::parse_usd("0.0000000000001"),
            Err(MoneyError::TooPrecise(_))
        ));
        assert!(matches!(
            Picodollars::parse_usd("99999999999"),
            Err(MoneyError::Overflow(_))
        ));
    }

    #[test]
    fn displays_exact_decimal() {
        assert_eq!(Picodollars(150_000).to_string(), "0.00000015");
        assert_eq!(Picodollars(3 * SCALE).to_string(), "3");
        assert_eq!(Picodollars(1_500_000_000_000).to_string(), "1.5");
    }
}
