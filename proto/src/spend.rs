//! Spend counter names, shared by both planes: dataplanes reserve and settle on these Redis keys
//! and the control plane's reconciliation corrects them from the usage ledger, so the naming is
//! part of the contract between them.
//!
//! Windows are UTC calendar periods, a week running Monday to Sunday, as on OpenRouter. Counter
//! keys name their window, so a new window starts from zero without any reset job, and counters
//! expire a day after their window ends.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Period {
    Daily,
    Weekly,
    Monthly,
    Lifetime,
}

/// Kept this long after a window ends, so a late settle still finds its counter.
const GRACE_MS: i64 = 24 * 3600 * 1000;

impl Period {
    /// The window containing `now_ms`: its id (part of the counter key) and when the counter may
    /// be dropped (`None`: never).
    pub fn window(self, now_ms: i64) -> (String, Option<i64>) {
        let Some(now) = DateTime::<Utc>::from_timestamp_millis(now_ms) else {
            return ("invalid".into(), Some(now_ms.saturating_add(GRACE_MS)));
        };
        let day = now.date_naive();
        let (start, end) = match self {
            Period::Lifetime => return ("l".into(), None),
            Period::Daily => (day, day.succ_opt()),
            Period::Weekly => {
                let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
                (monday, monday.checked_add_signed(Duration::days(7)))
            }
            Period::Monthly => {
                let first = day.with_day(1).unwrap_or(day);
                let next = if first.month() == 12 {
                    NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
                };
                (first, next)
            }
        };
        let prefix = match self {
            Period::Daily => 'd',
            Period::Weekly => 'w',
            _ => 'm',
        };
        let id = format!("{prefix}{}", start.format("%Y%m%d"));
        let expire = end
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp_millis().saturating_add(GRACE_MS));
        (id, expire)
    }
}

impl Period {
    /// When the window containing `now_ms` ends (Unix ms; `None` for lifetime).
    pub fn end(self, now_ms: i64) -> Option<i64> {
        self.window(now_ms).1.map(|t| t - GRACE_MS)
    }

    /// When the window containing `now_ms` began (Unix ms; 0 for lifetime).
    pub fn start(self, now_ms: i64) -> i64 {
        let Some(now) = DateTime::<Utc>::from_timestamp_millis(now_ms) else {
            return 0;
        };
        let day = now.date_naive();
        let start = match self {
            Period::Lifetime => return 0,
            Period::Daily => day,
            Period::Weekly => day - Duration::days(i64::from(day.weekday().num_days_from_monday())),
            Period::Monthly => day.with_day(1).unwrap_or(day),
        };
        start
            .and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp_millis())
    }
}

/// A usage event's `cost_usd` (a decimal string, at most 12 decimals) in exact picodollars;
/// `None` for anything else.
pub fn parse_pico(text: &str) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let frac = frac.trim_end_matches('0');
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) || frac.len() > 12 {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac_pico = format!("{frac:0<12}").parse::<u64>().ok()?;
    whole.checked_mul(1_000_000_000_000)?.checked_add(frac_pico)
}

/// The hash tag that keeps one organization's keys in one Redis Cluster slot.
pub fn org_tag(organization_id: &str) -> String {
    format!("{{org:{organization_id}}}")
}

/// A counter's key: `{org:<org>}:sp:<scope>:<id>:<window id>`. Its live reservations are kept
/// under the same key with `:r` appended.
pub fn counter_key(organization_id: &str, scope: &str, id: &str, window_id: &str) -> String {
    format!("{}:sp:{scope}:{id}:{window_id}", org_tag(organization_id))
}

/// The marker that makes a generation's settle idempotent.
pub fn settled_key(organization_id: &str, generation_id: &str) -> String {
    format!("{}:settled:{generation_id}", org_tag(organization_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn costs_parse_to_exact_picodollars() {
        assert_eq!(parse_pico("0.0000132"), Some(13_200_000));
        assert_eq!(parse_pico("1"), Some(1_000_000_000_000));
        assert_eq!(parse_pico("0.000000000001"), Some(1));
        assert_eq!(parse_pico("0.0000000000001"), None);
        assert_eq!(parse_pico(""), None);
        assert_eq!(parse_pico("-1"), None);
    }

    #[test]
    fn windows_are_utc_calendar_periods() {
        // Sunday 23:59:59 and Monday 00:00 are in different weeks.
        let sunday = at("2026-11-29T23:59:59Z");
        let monday = at("2026-11-30T00:00:00Z");
        assert_eq!(Period::Weekly.window(sunday).0, "w20261123");
        assert_eq!(Period::Weekly.window(monday).0, "w20261130");
        assert_eq!(Period::Daily.window(sunday).0, "d20261129");
        assert_eq!(Period::Daily.window(monday).0, "d20261130");
        assert_eq!(Period::Monthly.window(sunday).0, "m20261101");
        assert_eq!(
            Period::Monthly.window(at("2026-12-31T12:00:00Z")).0,
            "m20261201"
        );
        assert_eq!(
            Period::Monthly.window(at("2027-01-01T00:00:00Z")).0,
            "m20270101"
        );
        assert_eq!(Period::Lifetime.window(sunday), ("l".into(), None));
        assert_eq!(Period::Weekly.start(sunday), at("2026-11-23T00:00:00Z"));
        assert_eq!(Period::Monthly.start(sunday), at("2026-11-01T00:00:00Z"));
        assert_eq!(Period::Lifetime.start(sunday), 0);
        assert_eq!(Period::Weekly.end(sunday), Some(at("2026-11-30T00:00:00Z")));
        assert_eq!(Period::Lifetime.end(sunday), None);
        // Expiry: a day after the window's end.
        assert_eq!(
            Period::Daily.window(sunday).1,
            Some(at("2026-12-01T00:00:00Z"))
        );
    }
}
