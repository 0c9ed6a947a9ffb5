//! Provider-endpoint health as both planes read it: the log-scale histograms dataplanes report
//! latency and throughput in (mergeable across dataplanes and minutes), and the health view the
//! control plane aggregates and pushes, which routing consults.

use switchyard_proto::config::v1 as pb;

use super::preferences::{Cutoffs, Percentile};

/// Buckets of a [`Histogram`]: bucket `i` holds values in `(R^(i-1), R^i]`, R = 1.25, so 64
/// buckets reach about 1.3 million (21 minutes in milliseconds) with ±12 % resolution.
pub const BUCKETS: usize = 64;
const RATIO: f64 = 1.25;

/// Counts of values in log-scale buckets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram(pub [u32; BUCKETS]);

impl Default for Histogram {
    fn default() -> Self {
        Histogram([0; BUCKETS])
    }
}

/// The bucket a value falls in.
pub fn bucket(value: f64) -> usize {
    if value.is_nan() || value <= 1.0 {
        return 0;
    }
    let i = (value.ln() / RATIO.ln()).ceil();
    if i >= (BUCKETS - 1) as f64 {
        BUCKETS - 1
    } else {
        i as usize
    }
}

/// A bucket's representative value: the geometric middle of its range.
fn representative(i: usize) -> f64 {
    if i == 0 {
        return 1.0;
    }
    RATIO.powf(i as f64 - 0.5)
}

impl Histogram {
    pub fn record(&mut self, value: f64) {
        let b = &mut self.0[bucket(value)];
        *b = b.saturating_add(1);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = a.saturating_add(*b);
        }
    }

    /// From a report's dense counts; missing buckets are zero, extra ones are ignored.
    pub fn from_counts(counts: &[u32]) -> Histogram {
        let mut h = Histogram::default();
        for (a, b) in h.0.iter_mut().zip(counts) {
            *a = *b;
        }
        h
    }

    pub fn count(&self) -> u64 {
        self.0.iter().map(|&c| u64::from(c)).sum()
    }

    /// The value at quantile `q` (0..=1); `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.0.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                return Some(representative(i));
            }
        }
        Some(representative(BUCKETS - 1))
    }

    /// Percentiles of a cost (latency): pN is the value N % of observations stay within, so
    /// p99 is the slow tail.
    pub fn percentiles(&self) -> Option<Percentiles> {
        Some(Percentiles {
            p50: self.quantile(0.50)?,
            p75: self.quantile(0.75)?,
            p90: self.quantile(0.90)?,
            p99: self.quantile(0.99)?,
        })
    }

    /// Percentiles of a rate (throughput), as OpenRouter's minimum cutoffs read them: pN is the
    /// value N % of observations reach, so p99 is the slow tail here too.
    pub fn percentiles_reached(&self) -> Option<Percentiles> {
        Some(Percentiles {
            p50: self.quantile(0.50)?,
            p75: self.quantile(0.25)?,
            p90: self.quantile(0.10)?,
            p99: self.quantile(0.01)?,
        })
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p75: f64,
    pub p90: f64,
    pub p99: f64,
}

impl Percentiles {
    pub fn get(&self, p: Percentile) -> f64 {
        match p {
            Percentile::P50 => self.p50,
            Percentile::P75 => self.p75,
            Percentile::P90 => self.p90,
            Percentile::P99 => self.p99,
        }
    }

    fn to_proto(self) -> pb::Percentiles {
        pb::Percentiles {
            p50: self.p50,
            p75: self.p75,
            p90: self.p90,
            p99: self.p99,
        }
    }

    fn from_proto(p: &pb::Percentiles) -> Option<Percentiles> {
        let out = Percentiles {
            p50: p.p50,
            p75: p.p75,
            p90: p.p90,
            p99: p.p99,
        };
        [out.p50, out.p75, out.p90, out.p99]
            .iter()
            .all(|v| v.is_finite() && *v >= 0.0)
            .then_some(out)
    }
}

/// One endpoint's health across the fleet, as the control plane last pushed it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndpointHealth {
    /// A recent significant outage: routing tries the endpoint only after every other.
    pub outage: bool,
    /// Percent of attempts that succeeded; `None` without attempts in the window.
    pub uptime_5m: Option<f64>,
    pub uptime_30m: Option<f64>,
    pub uptime_1d: Option<f64>,
    /// Time to the response header (first token for streams), milliseconds, last 30 minutes.
    pub latency_ms: Option<Percentiles>,
    /// Completion tokens per second, last 30 minutes; pN is what N % of requests reached (see
    /// [`Histogram::percentiles_reached`]).
    pub throughput: Option<Percentiles>,
    pub requests_30m: u64,
}

impl EndpointHealth {
    /// Whether the endpoint's latency is within every cutoff (in seconds). Unknown latency is
    /// within: an endpoint nobody has measured is not penalised for it.
    pub fn meets_latency(&self, cutoffs: &Cutoffs) -> bool {
        self.latency_ms.is_none_or(|l| {
            cutoffs
                .each()
                .all(|(p, seconds)| l.get(p) <= seconds * 1000.0)
        })
    }

    /// Whether the endpoint's throughput reaches every cutoff (tokens per second).
    pub fn meets_throughput(&self, cutoffs: &Cutoffs) -> bool {
        self.throughput
            .is_none_or(|t| cutoffs.each().all(|(p, min)| t.get(p) >= min))
    }

    pub fn to_proto(&self, health_id: &str) -> pb::EndpointHealth {
        let percent = |v: Option<f64>| v.unwrap_or(-1.0);
        pb::EndpointHealth {
            health_id: health_id.to_owned(),
            outage: self.outage,
            uptime_5m: percent(self.uptime_5m),
            uptime_30m: percent(self.uptime_30m),
            uptime_1d: percent(self.uptime_1d),
            latency_ms: self.latency_ms.map(Percentiles::to_proto),
            throughput: self.throughput.map(Percentiles::to_proto),
            requests_30m: self.requests_30m,
        }
    }

    pub fn from_proto(p: &pb::EndpointHealth) -> EndpointHealth {
        let percent = |v: f64| (v.is_finite() && (0.0..=100.0).contains(&v)).then_some(v);
        EndpointHealth {
            outage: p.outage,
            uptime_5m: percent(p.uptime_5m),
            uptime_30m: percent(p.uptime_30m),
            uptime_1d: percent(p.uptime_1d),
            latency_ms: p.latency_ms.as_ref().and_then(Percentiles::from_proto),
            throughput: p.throughput.as_ref().and_then(Percentiles::from_proto),
            requests_30m: p.requests_30m,
        }
    }
}

/// One dataplane's latest word on an endpoint: the failures since its last success there, and
/// when it last tried the endpoint (on the clock of whoever compares them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailing {
    pub consecutive_failures: u32,
    pub latest_at_ms: i64,
}

/// The outage rule, over the dataplanes that tried the endpoint within [`OUTAGE_WINDOW_MS`]:
/// the fleet's most recent attempt failed, and together the dataplanes have seen at least
/// [`OUTAGE_MIN_FAILURES`] failures since their last successes. Recent failures decide, however
/// many successes came before them; one success after them ends the outage at once, and so does
/// the window passing without an attempt.
pub fn is_outage(dataplanes: &[Trailing]) -> bool {
    let Some(latest) = dataplanes.iter().max_by_key(|t| t.latest_at_ms) else {
        return false;
    };
    let failures: u64 = dataplanes
        .iter()
        .map(|t| u64::from(t.consecutive_failures))
        .sum();
    latest.consecutive_failures > 0 && failures >= OUTAGE_MIN_FAILURES
}

pub const OUTAGE_MIN_FAILURES: u64 = 3;
/// How long a dataplane's latest attempt counts toward the outage rule.
pub const OUTAGE_WINDOW_MS: i64 = 30_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_merge_and_give_percentiles_within_their_resolution() {
        let mut a = Histogram::default();
        for v in 1..=100 {
            a.record(f64::from(v) * 10.0);
        }
        let mut b = Histogram::default();
        b.merge(&a);
        b.merge(&a);
        assert_eq!(b.count(), 200);
        let p = b.percentiles().unwrap();
        for (got, want) in [(p.p50, 500.0), (p.p90, 900.0), (p.p99, 990.0)] {
            assert!((got / want - 1.0).abs() < 0.15, "{got} vs {want}");
        }
        assert!(Histogram::default().percentiles().is_none());
        // A rate's p90 is what 90 % reached: the low end.
        let r = b.percentiles_reached().unwrap();
        assert!((r.p90 / 100.0 - 1.0).abs() < 0.15, "{}", r.p90);
        assert!(r.p99 < r.p90 && r.p90 < r.p50);
        assert_eq!(bucket(0.0), 0);
        assert_eq!(bucket(f64::NAN), 0);
        assert_eq!(bucket(1e12), BUCKETS - 1);
    }

    #[test]
    fn the_outage_rule_needs_recent_failures_and_a_failing_latest_attempt() {
        let t = |consecutive_failures, latest_at_ms| Trailing {
            consecutive_failures,
            latest_at_ms,
        };
        assert!(is_outage(&[t(2, 10), t(1, 20)]));
        assert!(
            !is_outage(&[t(2, 10), t(0, 30)]),
            "a success after the failures ends it"
        );
        assert!(
            is_outage(&[t(0, 10), t(3, 30)]),
            "an earlier success does not"
        );
        assert!(!is_outage(&[t(2, 10)]), "too few failures to call it");
        assert!(!is_outage(&[]));
    }

    #[test]
    fn cutoffs_compare_the_percentiles_they_name() {
        let health = EndpointHealth {
            latency_ms: Some(Percentiles {
                p50: 800.0,
                p75: 1200.0,
                p90: 2500.0,
                p99: 6000.0,
            }),
            throughput: Some(Percentiles {
                p50: 40.0,
                p75: 30.0,
                p90: 20.0,
                p99: 5.0,
            }),
            ..EndpointHealth::default()
        };
        let latency = |p50, p90| Cutoffs {
            p50,
            p90,
            ..Cutoffs::default()
        };
        assert!(health.meets_latency(&latency(Some(1.0), None)));
        assert!(!health.meets_latency(&latency(Some(1.0), Some(2.0))));
        assert!(health.meets_throughput(&latency(Some(30.0), None)));
        assert!(!health.meets_throughput(&latency(None, Some(30.0))));
        assert!(EndpointHealth::default().meets_latency(&latency(Some(0.001), None)));
    }
}
