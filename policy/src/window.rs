//! Windows: the periods spend limits count over. UTC calendar days, weeks running Monday to
//! Sunday, and months, as on OpenRouter, or the whole lifetime of the limit.
//!
//! A counter's key names its window (`d20261129`, `w20261123`, `m20261101`, `l`), so a new window
//! starts from zero without any reset job, and counters expire a day after their window ends.
//! Every function takes the time as an argument: callers inject their clock.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use switchyard_proto::config::v1 as pb;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    Daily,
    Weekly,
    Monthly,
    /// Never resets.
    Lifetime,
}

/// How long a counter is kept after its window ends, so a late settle still finds it.
pub const GRACE_MS: i64 = 24 * 3600 * 1000;

/// The window containing a moment: its id, where it starts and where it ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// The window's name in counter keys.
    pub id: String,
    /// Unix ms; 0 for lifetime.
    pub start_ms: i64,
    /// Unix ms; `None` for lifetime.
    pub end_ms: Option<i64>,
}

impl Span {
    /// When the window's counter may be dropped: a day after the window ends.
    pub fn expire_at_ms(&self) -> Option<i64> {
        self.end_ms.map(|end| end.saturating_add(GRACE_MS))
    }
}

impl Window {
    pub const ALL: [Window; 4] = [
        Window::Daily,
        Window::Weekly,
        Window::Monthly,
        Window::Lifetime,
    ];

    /// The API's name for the window (`reset_interval`, `limit_reset`, budget intervals).
    pub fn name(self) -> &'static str {
        match self {
            Window::Daily => "daily",
            Window::Weekly => "weekly",
            Window::Monthly => "monthly",
            Window::Lifetime => "lifetime",
        }
    }

    pub fn from_name(name: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.name() == name)
    }

    /// A window that resets (`daily`, `weekly`, `monthly`): what a key's `limit_reset` and a
    /// guardrail's `reset_interval` may be; their absence means the lifetime.
    pub fn resetting(name: &str) -> Option<Window> {
        Window::from_name(name).filter(|w| *w != Window::Lifetime)
    }

    /// A window as the snapshot carries it.
    pub fn to_proto(self) -> pb::SpendWindow {
        match self {
            Window::Daily => pb::SpendWindow::Daily,
            Window::Weekly => pb::SpendWindow::Weekly,
            Window::Monthly => pb::SpendWindow::Monthly,
            Window::Lifetime => pb::SpendWindow::Lifetime,
        }
    }

    /// A key limit's window as the snapshot carries it.
    pub fn to_limit_reset(self) -> pb::LimitReset {
        match self {
            Window::Daily => pb::LimitReset::Daily,
            Window::Weekly => pb::LimitReset::Weekly,
            Window::Monthly => pb::LimitReset::Monthly,
            Window::Lifetime => pb::LimitReset::Never,
        }
    }

    /// The window containing `now_ms`.
    pub fn span(self, now_ms: i64) -> Span {
        let Some(now) = DateTime::<Utc>::from_timestamp_millis(now_ms) else {
            // Outside chrono's range (hundreds of thousands of years away): one window.
            return Span {
                id: "invalid".into(),
                start_ms: 0,
                end_ms: None,
            };
        };
        let day = now.date_naive();
        let (prefix, start, end) = match self {
            Window::Lifetime => {
                return Span {
                    id: "l".into(),
                    start_ms: 0,
                    end_ms: None,
                };
            }
            Window::Daily => ('d', day, day.succ_opt()),
            Window::Weekly => {
                let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
                ('w', monday, monday.checked_add_signed(Duration::days(7)))
            }
            Window::Monthly => {
                let first = day.with_day(1).unwrap_or(day);
                let next = if first.month() == 12 {
                    NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
                };
                ('m', first, next)
            }
        };
        let at_midnight = |d: NaiveDate| {
            d.and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc().timestamp_millis())
        };
        Span {
            id: format!("{prefix}{}", start.format("%Y%m%d")),
            start_ms: at_midnight(start).unwrap_or(0),
            end_ms: end.and_then(at_midnight),
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Window {
    type Err = String;
    fn from_str(s: &str) -> Result<Window, String> {
        Window::from_name(s).ok_or_else(|| format!("unknown window {s:?}"))
    }
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
    fn windows_are_utc_calendar_periods() {
        // Sunday 23:59:59 and Monday 00:00 are in different weeks.
        let sunday = at("2026-11-29T23:59:59Z");
        let monday = at("2026-11-30T00:00:00Z");
        assert_eq!(Window::Weekly.span(sunday).id, "w20261123");
        assert_eq!(Window::Weekly.span(monday).id, "w20261130");
        assert_eq!(Window::Daily.span(sunday).id, "d20261129");
        assert_eq!(Window::Daily.span(monday).id, "d20261130");
        assert_eq!(Window::Monthly.span(sunday).id, "m20261101");
        assert_eq!(
            Window::Monthly.span(at("2026-12-31T12:00:00Z")).id,
            "m20261201"
        );
        assert_eq!(
            Window::Monthly.span(at("2027-01-01T00:00:00Z")).id,
            "m20270101"
        );
        let lifetime = Window::Lifetime.span(sunday);
        assert_eq!((lifetime.id.as_str(), lifetime.start_ms), ("l", 0));
        assert_eq!(lifetime.expire_at_ms(), None);
        assert_eq!(
            Window::Weekly.span(sunday).start_ms,
            at("2026-11-23T00:00:00Z")
        );
        assert_eq!(
            Window::Monthly.span(sunday).start_ms,
            at("2026-11-01T00:00:00Z")
        );
        assert_eq!(
            Window::Weekly.span(sunday).end_ms,
            Some(at("2026-11-30T00:00:00Z"))
        );
        // A counter outlives its window by a day.
        assert_eq!(
            Window::Daily.span(sunday).expire_at_ms(),
            Some(at("2026-12-01T00:00:00Z"))
        );
    }

    #[test]
    fn names_round_trip_and_limit_resets_map_to_windows() {
        for w in Window::ALL {
            assert_eq!(Window::from_name(w.name()), Some(w));
        }
        assert_eq!(Window::from_name("yearly"), None);
        assert_eq!(Window::resetting("weekly"), Some(Window::Weekly));
        assert_eq!(Window::resetting("lifetime"), None);
        assert_eq!("monthly".parse::<Window>(), Ok(Window::Monthly));
        assert_eq!(Window::Daily.to_string(), "daily");
    }
}
