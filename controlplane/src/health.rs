//! Fleet health: what every dataplane reports of each provider endpoint, aggregated into one
//! view and pushed back to every dataplane on the config stream.
//!
//! Reports arrive about once a second from each dataplane, at once when it sees failures. The
//! view is published immediately when an endpoint enters or leaves an outage (the outage rule
//! is `switchyard_policy::routing::health::is_outage`) and every `--health-push-ms` otherwise,
//! so that latency and uptime figures stay current without a push per report. Everything here runs off the request path; the state is behind one mutex.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_policy::routing::health::{
    EndpointHealth, Histogram, OUTAGE_WINDOW_MS, Percentiles, Trailing, is_outage,
};
use switchyard_proto::config::v1 as pb;
use tokio::sync::watch;

const MINUTE_MS: i64 = 60_000;
/// Minutes of counts kept (uptime over a day); histograms are kept for the last 30.
const DAY_MINUTES: usize = 24 * 60;
const HISTOGRAM_MINUTES: usize = 30;

#[derive(Default)]
struct Minute {
    minute: i64,
    requests: u64,
    failures: u64,
    rate_limited: u64,
}

/// Uptime counts minutes with at least this many attempts (429s left out)...
const UPTIME_MIN_ATTEMPTS: u64 = 10;
/// ...as up when at least this share of them succeeded (OpenRouter's definition).
const UPTIME_MIN_SUCCESS: f64 = 0.8;

struct HistogramMinute {
    minute: i64,
    latency: Histogram,
    throughput: Histogram,
}

/// One endpoint's record across the fleet.
#[derive(Default)]
struct Series {
    minutes: VecDeque<Minute>,
    histograms: VecDeque<HistogramMinute>,
    /// Each dataplane's latest word: its failures since its last success, and when it last
    /// tried the endpoint (on this control plane's clock).
    dataplanes: HashMap<String, Trailing>,
    outage: bool,
}

impl Series {
    fn add(&mut self, now_ms: i64, dataplane: &str, s: &pb::EndpointSample) {
        let minute = now_ms.div_euclid(MINUTE_MS);
        match self.minutes.back_mut() {
            Some(m) if m.minute == minute => {
                m.requests += s.requests;
                m.failures += s.failures;
                m.rate_limited += s.rate_limited;
            }
            _ => self.minutes.push_back(Minute {
                minute,
                requests: s.requests,
                failures: s.failures,
                rate_limited: s.rate_limited,
            }),
        }
        let latency = Histogram::from_counts(&s.latency_ms);
        let throughput = Histogram::from_counts(&s.throughput);
        match self.histograms.back_mut() {
            Some(h) if h.minute == minute => {
                h.latency.merge(&latency);
                h.throughput.merge(&throughput);
            }
            _ => self.histograms.push_back(HistogramMinute {
                minute,
                latency,
                throughput,
            }),
        }
        // The dataplane's latest attempt, on this clock (dataplanes' clocks may differ).
        let age = i64::try_from(s.latest_age_ms).unwrap_or(i64::MAX);
        let trailing = Trailing {
            consecutive_failures: s.consecutive_failures,
            latest_at_ms: now_ms.saturating_sub(age),
        };
        match self.dataplanes.get_mut(dataplane) {
            Some(entry) => *entry = trailing,
            None => {
                self.dataplanes.insert(dataplane.to_owned(), trailing);
            }
        }
        self.expire(now_ms);
    }

    fn expire(&mut self, now_ms: i64) {
        let minute = now_ms.div_euclid(MINUTE_MS);
        while self
            .minutes
            .front()
            .is_some_and(|m| m.minute <= minute - DAY_MINUTES as i64)
        {
            self.minutes.pop_front();
        }
        while self
            .histograms
            .front()
            .is_some_and(|h| h.minute <= minute - HISTOGRAM_MINUTES as i64)
        {
            self.histograms.pop_front();
        }
        // Only attempts of the last 30 seconds count: an open breaker's reports (no attempts)
        // do not keep an outage alive, and once it ends the fleet tries the endpoint again.
        self.dataplanes
            .retain(|_, t| t.latest_at_ms > now_ms - OUTAGE_WINDOW_MS);
    }

    /// Re-evaluates the outage rule; whether the verdict changed.
    fn evaluate(&mut self, now_ms: i64) -> bool {
        self.expire(now_ms);
        let trailing: Vec<Trailing> = self.dataplanes.values().copied().collect();
        let outage = is_outage(&trailing);
        std::mem::replace(&mut self.outage, outage) != outage
    }

    /// The share of the last `minutes` minutes with enough attempts in which enough succeeded.
    fn uptime(&self, now_ms: i64, minutes: i64) -> Option<f64> {
        let since = now_ms.div_euclid(MINUTE_MS) - minutes;
        let (mut counted, mut up) = (0u64, 0u64);
        for m in self.minutes.iter().filter(|m| m.minute > since) {
            let attempts = m.requests.saturating_sub(m.rate_limited);
            if attempts < UPTIME_MIN_ATTEMPTS {
                continue;
            }
            counted += 1;
            let failed = m.failures.saturating_sub(m.rate_limited).min(attempts);
            if (attempts - failed) as f64 >= UPTIME_MIN_SUCCESS * attempts as f64 {
                up += 1;
            }
        }
        (counted > 0).then(|| 100.0 * up as f64 / counted as f64)
    }

    fn health(&self, now_ms: i64) -> EndpointHealth {
        let mut latency = Histogram::default();
        let mut throughput = Histogram::default();
        for h in &self.histograms {
            latency.merge(&h.latency);
            throughput.merge(&h.throughput);
        }
        let since = now_ms.div_euclid(MINUTE_MS) - HISTOGRAM_MINUTES as i64;
        EndpointHealth {
            outage: self.outage,
            uptime_5m: self.uptime(now_ms, 5),
            uptime_30m: self.uptime(now_ms, 30),
            uptime_1d: self.uptime(now_ms, DAY_MINUTES as i64),
            latency_ms: latency.percentiles(),
            throughput: throughput.percentiles_reached(),
            requests_30m: self
                .minutes
                .iter()
                .filter(|m| m.minute > since)
                .map(|m| m.requests)
                .sum(),
        }
    }
}

/// The fleet's provider health.
pub struct FleetHealth {
    series: Mutex<HashMap<String, Series>>,
    view: watch::Sender<Arc<pb::HealthView>>,
    sequence: AtomicU64,
}

impl Default for FleetHealth {
    fn default() -> Self {
        FleetHealth {
            series: Mutex::new(HashMap::new()),
            view: watch::channel(Arc::new(pb::HealthView::default())).0,
            sequence: AtomicU64::new(0),
        }
    }
}

impl FleetHealth {
    /// Adds one dataplane's report; publishes at once when an endpoint's outage verdict changed.
    pub fn ingest(&self, report: &pb::HealthReport, now_ms: i64) {
        let changed = {
            let Ok(mut series) = self.series.lock() else {
                return;
            };
            let mut changed = false;
            for sample in &report.samples {
                if sample.health_id.is_empty() || sample.health_id.len() > 512 {
                    continue;
                }
                let s = series.entry(sample.health_id.clone()).or_default();
                s.add(now_ms, &report.dataplane_id, sample);
                changed |= s.evaluate(now_ms);
            }
            changed
        };
        if changed {
            self.publish(now_ms);
        }
    }

    /// Re-evaluates every endpoint (outages end with time too) and publishes the view.
    pub fn publish(&self, now_ms: i64) {
        let endpoints = {
            let Ok(mut series) = self.series.lock() else {
                return;
            };
            series.retain(|_, s| {
                s.evaluate(now_ms);
                !s.minutes.is_empty() || !s.dataplanes.is_empty()
            });
            let mut endpoints: Vec<pb::EndpointHealth> = series
                .iter()
                .map(|(id, s)| s.health(now_ms).to_proto(id))
                .collect();
            endpoints.sort_by(|a, b| a.health_id.cmp(&b.health_id));
            endpoints
        };
        let view = pb::HealthView {
            sequence: self.sequence.fetch_add(1, Ordering::Relaxed) + 1,
            generated_at_ms: now_ms,
            endpoints,
        };
        self.view.send_replace(Arc::new(view));
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<pb::HealthView>> {
        self.view.subscribe()
    }

    /// The last published view of one endpoint.
    pub fn endpoint(&self, health_id: &str) -> Option<EndpointHealth> {
        let view = self.view.borrow();
        view.endpoints
            .binary_search_by(|e| e.health_id.as_str().cmp(health_id))
            .ok()
            .and_then(|i| view.endpoints.get(i))
            .map(EndpointHealth::from_proto)
    }

    /// Publishes every `every` until the process ends.
    pub async fn refresh(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.publish(crate::now_ms());
        }
    }
}

/// Percentiles as the endpoints API reports them.
pub fn percentiles_json(p: Option<Percentiles>) -> serde_json::Value {
    match p {
        None => serde_json::Value::Null,
        Some(p) => serde_json::json!({ "p50": p.p50, "p75": p.p75, "p90": p.p90, "p99": p.p99 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample of `requests` attempts, the last `consecutive` of them failures, the latest
    /// `age` ms before the report; `failures` failed in all.
    fn sample(
        id: &str,
        requests: u64,
        failures: u64,
        consecutive: u32,
        age: u64,
    ) -> pb::EndpointSample {
        let mut latency = Histogram::default();
        for _ in 0..requests {
            latency.record(200.0);
        }
        pb::EndpointSample {
            health_id: id.into(),
            requests,
            failures,
            latest_failed: consecutive > 0,
            consecutive_failures: consecutive,
            latest_age_ms: age,
            latency_ms: latency.0.to_vec(),
            ..Default::default()
        }
    }

    fn report_from(dataplane: &str, samples: Vec<pb::EndpointSample>) -> pb::HealthReport {
        pb::HealthReport {
            dataplane_id: dataplane.into(),
            at_ms: 0,
            samples,
        }
    }

    fn report(samples: Vec<pb::EndpointSample>) -> pb::HealthReport {
        report_from("dp", samples)
    }

    #[test]
    fn an_outage_is_published_at_once_and_ends_with_a_success() {
        let fleet = FleetHealth::default();
        let mut rx = fleet.subscribe();
        let t0 = 1_800_000_000_000;
        // Many successes, then failures on two dataplanes: recent failures decide.
        fleet.ingest(&report_from("dp-1", vec![sample("a|m", 100, 2, 2, 0)]), t0);
        assert!(
            !rx.has_changed().unwrap(),
            "two failures are not an outage yet"
        );
        fleet.ingest(
            &report_from("dp-2", vec![sample("a|m", 50, 1, 1, 10)]),
            t0 + 100,
        );
        assert!(rx.has_changed().unwrap());
        assert!(rx.borrow_and_update().endpoints[0].outage);
        assert!(fleet.endpoint("a|m").unwrap().outage);
        // One dataplane's success after them ends it.
        fleet.ingest(
            &report_from("dp-1", vec![sample("a|m", 1, 0, 0, 50)]),
            t0 + 200,
        );
        assert!(!rx.borrow_and_update().endpoints[0].outage);
    }

    #[test]
    fn an_outage_ends_thirty_seconds_after_the_latest_failure_whatever_breakers_report() {
        let fleet = FleetHealth::default();
        let t0 = 1_800_000_000_000;
        fleet.ingest(&report(vec![sample("a|m", 5, 5, 5, 0)]), t0);
        assert!(fleet.endpoint("a|m").unwrap().outage);
        // No attempts since: the open breaker's reports carry the same failures, older each
        // second. They keep the outage for 30 seconds, no longer, so that the fleet tries again.
        for s in 1..=40u64 {
            let mut open = sample("a|m", 0, 0, 5, s * 1000);
            open.breaker_open = true;
            fleet.ingest(&report(vec![open]), t0 + i64::try_from(s * 1000).unwrap());
            let outage = fleet.endpoint("a|m").unwrap().outage;
            assert_eq!(outage, s < 30, "{s} s after the failures");
        }
    }

    #[test]
    fn outages_expire_with_their_window_and_uptime_counts_the_day() {
        let fleet = FleetHealth::default();
        let t0 = 1_800_000_000_000;
        fleet.ingest(&report(vec![sample("a|m", 10, 10, 10, 0)]), t0);
        assert!(fleet.endpoint("a|m").unwrap().outage);
        fleet.publish(t0 + OUTAGE_WINDOW_MS + 1);
        let h = fleet.endpoint("a|m").unwrap();
        assert!(!h.outage);
        assert_eq!(h.uptime_1d, Some(0.0));
        // A minute with too few attempts does not count; one with 80% successes is up.
        fleet.ingest(&report(vec![sample("a|m", 9, 0, 0, 0)]), t0 + 60_000);
        fleet.ingest(&report(vec![sample("a|m", 10, 2, 0, 0)]), t0 + 120_000);
        fleet.publish(t0 + 120_001);
        let h = fleet.endpoint("a|m").unwrap();
        assert_eq!(h.uptime_1d, Some(50.0));
        assert_eq!(h.uptime_5m, Some(50.0));
        // 429s are left out of uptime: 10 attempts of which 5 rate-limited leave 5, too few.
        let mut limited = sample("b|m", 10, 5, 0, 0);
        limited.rate_limited = 5;
        fleet.ingest(&report(vec![limited]), t0 + 120_000);
        fleet.publish(t0 + 120_002);
        assert_eq!(fleet.endpoint("b|m").unwrap().uptime_5m, None);
        assert!((h.latency_ms.unwrap().p50 / 200.0 - 1.0).abs() < 0.15);
        // A day later only the newer minute is left; a day and more, nothing.
        fleet.publish(t0 + 24 * 3_600_000 + 1);
        assert_eq!(fleet.endpoint("a|m").unwrap().uptime_1d, Some(100.0));
        fleet.publish(t0 + 25 * 3_600_000);
        assert!(fleet.endpoint("a|m").is_none());
    }
}
