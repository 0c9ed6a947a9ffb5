//! Provider-endpoint health on a dataplane: what this dataplane sees, how it reacts at once, and
//! the fleet's view the control plane pushes.
//!
//! - **Observations.** Every attempt is recorded per endpoint in atomics (counts and log-scale
//!   histograms of latency and throughput); nothing on the request path waits or locks. A
//!   reporter task sends what accumulated to the control plane once a second, and within
//!   [`HealthConfig::report_soon`] of a failure, so that an outage reaches the fleet quickly.
//! - **Local circuit breaker.** After [`HealthConfig::breaker_failures`] consecutive failures an
//!   endpoint's breaker opens: routing tries it only after every other endpoint. Once the
//!   cool-down has passed it is half-open: routing ranks it as usual, and forward claims the
//!   one probe just before sending (`Health::may_send`), so a probe is never held by a request
//!   that does not use it. Any answer from the provider (a success, or a client's 4xx) closes the
//!   breaker; a failure reopens it with twice the cool-down.
//! - **Fleet view.** The control plane's aggregate over every dataplane (outages, uptime,
//!   latency and throughput percentiles) arrives on the config stream as its own update and is
//!   swapped in whole.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde_json::{Value, json};
use switchyard_policy::routing::health::{BUCKETS, EndpointHealth, bucket};
use switchyard_proto::config::v1 as pb;
use tokio::sync::Notify;

#[derive(Clone, Copy, Debug)]
pub struct HealthConfig {
    /// Consecutive failures that open an endpoint's breaker.
    pub breaker_failures: u32,
    /// First cool-down of an open breaker; doubled at each failed probe up to the maximum.
    pub breaker_cooldown: Duration,
    pub breaker_max_cooldown: Duration,
    /// A probe that has not reported back within this long frees the slot for another.
    pub probe_timeout: Duration,
    /// How often observations are reported without failures, and how soon after one.
    pub report_every: Duration,
    pub report_soon: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(5),
            breaker_max_cooldown: Duration::from_secs(60),
            probe_timeout: Duration::from_secs(30),
            report_every: Duration::from_secs(1),
            report_soon: Duration::from_millis(20),
        }
    }
}

/// What one attempt at an endpoint came to, for its health.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    /// The provider answered and delivered. `throughput` in completion tokens per second.
    Success {
        latency_ms: u64,
        throughput: Option<f64>,
    },
    /// The provider failed: unreachable, timed out, 5xx, 429 (`rate_limited`), a cut response.
    Failure { rate_limited: bool },
    /// The attempt says nothing about the endpoint (the client's own 4xx, an organization's
    /// refused credential).
    Neutral,
}

/// Whether routing should use an endpoint now. Asking has no side effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    Up,
    /// The breaker's cool-down has passed: ranked as usual, sent only as the probe (forward).
    HalfOpen,
    /// The local breaker is open, or the fleet reports an outage: tried only after every other.
    Down,
}

/// One endpoint's observations since the last report, and its breaker.
struct Cell {
    requests: AtomicU64,
    failures: AtomicU64,
    rate_limited: AtomicU64,
    latest_failed: AtomicBool,
    /// Unix ms of the latest attempt (not counting neutral ones).
    latest_at_ms: AtomicI64,
    latency: [AtomicU32; BUCKETS],
    throughput: [AtomicU32; BUCKETS],
    consecutive_failures: AtomicU32,
    /// Unix ms the breaker opened; 0 while closed.
    opened_at_ms: AtomicI64,
    cooldown_ms: AtomicI64,
    /// Unix ms the probe in flight was let through; 0 when none is.
    probe_at_ms: AtomicI64,
}

impl Cell {
    fn new(cooldown: Duration) -> Cell {
        Cell {
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            latest_failed: AtomicBool::new(false),
            latest_at_ms: AtomicI64::new(0),
            latency: std::array::from_fn(|_| AtomicU32::new(0)),
            throughput: std::array::from_fn(|_| AtomicU32::new(0)),
            consecutive_failures: AtomicU32::new(0),
            opened_at_ms: AtomicI64::new(0),
            cooldown_ms: AtomicI64::new(millis(cooldown)),
            probe_at_ms: AtomicI64::new(0),
        }
    }

    fn breaker(&self) -> &'static str {
        match (
            self.opened_at_ms.load(Ordering::Relaxed),
            self.probe_at_ms.load(Ordering::Relaxed),
        ) {
            (0, _) => "closed",
            (_, 0) => "open",
            _ => "half_open",
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The fleet's view as last received.
#[derive(Debug, Default)]
pub struct FleetView {
    pub sequence: u64,
    pub generated_at_ms: i64,
    pub endpoints: HashMap<String, EndpointHealth>,
}

pub struct Health {
    config: HealthConfig,
    cells: ArcSwap<HashMap<Arc<str>, Arc<Cell>>>,
    fleet: ArcSwap<FleetView>,
    /// Wakes the reporter early after a failure.
    failed: Notify,
}

impl Default for Health {
    fn default() -> Self {
        Health::new(HealthConfig::default())
    }
}

impl Health {
    pub fn new(config: HealthConfig) -> Health {
        Health {
            config,
            cells: ArcSwap::from_pointee(HashMap::new()),
            fleet: ArcSwap::from_pointee(FleetView::default()),
            failed: Notify::new(),
        }
    }

    /// The endpoint's cell, created on first use (a compare-and-swap of the map, once per
    /// endpoint per process).
    fn cell(&self, id: &Arc<str>) -> Arc<Cell> {
        if let Some(c) = self.cells.load().get(id) {
            return c.clone();
        }
        let cooldown = self.config.breaker_cooldown;
        self.cells.rcu(|cells| {
            let mut cells = HashMap::clone(cells);
            cells
                .entry(id.clone())
                .or_insert_with(|| Arc::new(Cell::new(cooldown)));
            cells
        });
        self.cells
            .load()
            .get(id)
            .cloned()
            .unwrap_or_else(|| Arc::new(Cell::new(cooldown)))
    }

    /// Records one attempt at `id`. Lock-free: atomics on the endpoint's cell.
    pub fn record(&self, id: &Arc<str>, outcome: Outcome, now_ms: i64) {
        let cell = self.cell(id);
        match outcome {
            Outcome::Neutral => {
                cell.requests.fetch_add(1, Ordering::Relaxed);
                // The provider answered: whatever the breaker thought, it is reachable.
                self.close(id, &cell);
            }
            Outcome::Success {
                latency_ms,
                throughput,
            } => {
                cell.requests.fetch_add(1, Ordering::Relaxed);
                cell.latest_at_ms.fetch_max(now_ms, Ordering::Relaxed);
                cell.latest_failed.store(false, Ordering::Relaxed);
                cell.latency[bucket(latency_ms as f64)].fetch_add(1, Ordering::Relaxed);
                if let Some(t) = throughput {
                    cell.throughput[bucket(t)].fetch_add(1, Ordering::Relaxed);
                }
                cell.consecutive_failures.store(0, Ordering::Relaxed);
                self.close(id, &cell);
            }
            Outcome::Failure { rate_limited } => {
                cell.requests.fetch_add(1, Ordering::Relaxed);
                cell.latest_at_ms.fetch_max(now_ms, Ordering::Relaxed);
                cell.failures.fetch_add(1, Ordering::Relaxed);
                if rate_limited {
                    cell.rate_limited.fetch_add(1, Ordering::Relaxed);
                }
                cell.latest_failed.store(true, Ordering::Relaxed);
                let failures = cell.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
                let opened = cell.opened_at_ms.load(Ordering::Acquire);
                if opened != 0 {
                    // A failed probe (or a request that raced it): reopen, cooling down longer.
                    if cell.probe_at_ms.swap(0, Ordering::AcqRel) != 0 {
                        let longer = (cell.cooldown_ms.load(Ordering::Relaxed) * 2)
                            .min(millis(self.config.breaker_max_cooldown));
                        cell.cooldown_ms.store(longer, Ordering::Relaxed);
                        cell.opened_at_ms.store(now_ms.max(1), Ordering::Release);
                    }
                } else if failures >= self.config.breaker_failures
                    && cell
                        .opened_at_ms
                        .compare_exchange(0, now_ms.max(1), Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    tracing::warn!(endpoint = %id, failures, "provider endpoint failing; breaker opened");
                }
                self.failed.notify_one();
            }
        }
    }

    fn close(&self, id: &str, cell: &Cell) {
        if cell.opened_at_ms.swap(0, Ordering::AcqRel) != 0 {
            cell.probe_at_ms.store(0, Ordering::Release);
            cell.cooldown_ms
                .store(millis(self.config.breaker_cooldown), Ordering::Relaxed);
            tracing::info!(endpoint = %id, "provider endpoint answered again; breaker closed");
        }
    }

    /// Whether routing should use `id` now. Reads only: the probe of a half-open breaker is
    /// claimed by forward ([`Health::may_send`]).
    pub fn availability(&self, id: &str, fleet: &FleetView, now_ms: i64) -> Availability {
        if let Some(cell) = self.cells.load().get(id) {
            let opened = cell.opened_at_ms.load(Ordering::Acquire);
            if opened != 0 {
                if now_ms < opened.saturating_add(cell.cooldown_ms.load(Ordering::Relaxed)) {
                    return Availability::Down;
                }
                let probe = cell.probe_at_ms.load(Ordering::Acquire);
                let stale = probe != 0 && now_ms - probe > millis(self.config.probe_timeout);
                return if probe == 0 || stale {
                    Availability::HalfOpen
                } else {
                    Availability::Down
                };
            }
        }
        if fleet.endpoints.get(id).is_some_and(|h| h.outage) {
            return Availability::Down;
        }
        Availability::Up
    }

    /// Whether an attempt at `id` may be sent now: always, unless its breaker is half-open and
    /// another request holds the probe. A half-open breaker's probe is claimed here, just before
    /// sending, by the one caller that gets `true`; an open breaker still cooling down does not
    /// refuse (routing put the endpoint last: when it is reached, nothing else is left).
    pub fn may_send(&self, id: &str, now_ms: i64) -> bool {
        let Some(cell) = self.cells.load().get(id).cloned() else {
            return true;
        };
        let opened = cell.opened_at_ms.load(Ordering::Acquire);
        if opened == 0 || now_ms < opened.saturating_add(cell.cooldown_ms.load(Ordering::Relaxed)) {
            return true;
        }
        let probe = cell.probe_at_ms.load(Ordering::Acquire);
        let stale = probe != 0 && now_ms - probe > millis(self.config.probe_timeout);
        (probe == 0 || stale)
            && cell
                .probe_at_ms
                .compare_exchange(probe, now_ms.max(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// The fleet's view, for one request to read throughout.
    pub fn fleet(&self) -> Arc<FleetView> {
        self.fleet.load_full()
    }

    /// Swaps in the control plane's latest view.
    pub fn apply_fleet(&self, view: &pb::HealthView) {
        let endpoints = view
            .endpoints
            .iter()
            .map(|e| (e.health_id.clone(), EndpointHealth::from_proto(e)))
            .collect();
        self.fleet.store(Arc::new(FleetView {
            sequence: view.sequence,
            generated_at_ms: view.generated_at_ms,
            endpoints,
        }));
    }

    /// Takes everything observed since the last report.
    pub fn take_report(&self, dataplane_id: &str, now_ms: i64) -> pb::HealthReport {
        let cells = self.cells.load();
        let mut samples = Vec::new();
        for (id, c) in cells.iter() {
            let requests = c.requests.swap(0, Ordering::Relaxed);
            let breaker_open = c.opened_at_ms.load(Ordering::Relaxed) != 0;
            if requests == 0 && !breaker_open {
                continue;
            }
            let take = |h: &[AtomicU32; BUCKETS]| {
                h.iter()
                    .map(|b| b.swap(0, Ordering::Relaxed))
                    .collect::<Vec<u32>>()
            };
            samples.push(pb::EndpointSample {
                health_id: id.to_string(),
                requests,
                failures: c.failures.swap(0, Ordering::Relaxed),
                rate_limited: c.rate_limited.swap(0, Ordering::Relaxed),
                latest_failed: c.latest_failed.load(Ordering::Relaxed),
                latency_ms: take(&c.latency),
                throughput: take(&c.throughput),
                breaker_open,
                consecutive_failures: c.consecutive_failures.load(Ordering::Relaxed),
                latest_age_ms: u64::try_from(now_ms - c.latest_at_ms.load(Ordering::Relaxed))
                    .unwrap_or(0),
            });
        }
        pb::HealthReport {
            dataplane_id: dataplane_id.to_owned(),
            at_ms: now_ms,
            samples,
        }
    }

    /// Resolves after a failure was recorded.
    pub async fn failure_recorded(&self) {
        self.failed.notified().await;
    }

    pub fn config(&self) -> &HealthConfig {
        &self.config
    }

    /// `GET /health/providers`: the fleet's view and this dataplane's breakers.
    pub fn status_json(&self) -> Value {
        let fleet = self.fleet();
        let mut endpoints = serde_json::Map::new();
        for (id, h) in &fleet.endpoints {
            let percentile = |p: Option<switchyard_policy::routing::Percentiles>| {
                p.map(|p| json!({ "p50": p.p50, "p75": p.p75, "p90": p.p90, "p99": p.p99 }))
            };
            endpoints.insert(
                id.clone(),
                json!({
                    "outage": h.outage,
                    "uptime_last_5m": h.uptime_5m,
                    "uptime_last_30m": h.uptime_30m,
                    "uptime_last_1d": h.uptime_1d,
                    "latency_last_30m": percentile(h.latency_ms),
                    "throughput_last_30m": percentile(h.throughput),
                    "requests_last_30m": h.requests_30m,
                }),
            );
        }
        let local: serde_json::Map<String, Value> = self
            .cells
            .load()
            .iter()
            .map(|(id, c)| {
                (
                    id.to_string(),
                    json!({
                        "breaker": c.breaker(),
                        "consecutive_failures": c.consecutive_failures.load(Ordering::Relaxed),
                    }),
                )
            })
            .collect();
        json!({
            "fleet": {
                "sequence": fleet.sequence,
                "generated_at_ms": fleet.generated_at_ms,
                "endpoints": endpoints,
            },
            "local": local,
        })
    }
}

/// Sends this dataplane's observations to the control plane until shutdown: every
/// `report_every`, and `report_soon` after a failure.
pub async fn report(
    health: Arc<Health>,
    control_plane: String,
    auth: crate::link::ControlPlaneAuth,
    dataplane_id: String,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    use switchyard_proto::config::v1::config_service_client::ConfigServiceClient;
    let channel = match auth.endpoint(&control_plane) {
        Ok(endpoint) => endpoint.connect_lazy(),
        Err(e) => {
            tracing::error!(error = %e, "invalid control plane address; provider health is not reported");
            return;
        }
    };
    let mut client = ConfigServiceClient::with_interceptor(channel, auth);
    let config = *health.config();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(config.report_every) => {}
            _ = health.failure_recorded() => {
                // Let the failures of one burst go in one report.
                tokio::time::sleep(config.report_soon).await;
            }
            _ = shutdown.changed() => return,
        }
        let report = health.take_report(&dataplane_id, crate::now_ms());
        if report.samples.is_empty() {
            continue;
        }
        // A lost report only blurs the fleet's estimate for a second; it is not resent.
        let sent = tokio::time::timeout(Duration::from_secs(2), client.report_health(report)).await;
        match sent {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "provider health not reported"),
            Err(_) => tracing::debug!("provider health report timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Health {
        Health::new(HealthConfig {
            breaker_failures: 3,
            breaker_cooldown: Duration::from_millis(1000),
            breaker_max_cooldown: Duration::from_millis(4000),
            probe_timeout: Duration::from_millis(500),
            ..HealthConfig::default()
        })
    }

    const FAIL: Outcome = Outcome::Failure {
        rate_limited: false,
    };
    const OK: Outcome = Outcome::Success {
        latency_ms: 100,
        throughput: Some(50.0),
    };

    #[test]
    fn the_breaker_opens_probes_and_closes() {
        let h = health();
        let id: Arc<str> = Arc::from("a|m");
        let fleet = FleetView::default();
        let t = 1_000_000;
        for _ in 0..2 {
            h.record(&id, FAIL, t);
        }
        assert_eq!(h.availability("a|m", &fleet, t), Availability::Up);
        h.record(&id, FAIL, t);
        assert_eq!(h.availability("a|m", &fleet, t + 999), Availability::Down);
        // Reached last while cooling down, it is still sent: nothing else was left.
        assert!(h.may_send("a|m", t + 999));
        // Cooled down: half-open, however often routing asks; one probe, and only one, goes.
        assert_eq!(
            h.availability("a|m", &fleet, t + 1000),
            Availability::HalfOpen
        );
        assert_eq!(
            h.availability("a|m", &fleet, t + 1000),
            Availability::HalfOpen
        );
        assert!(h.may_send("a|m", t + 1000));
        assert!(!h.may_send("a|m", t + 1001));
        assert_eq!(h.availability("a|m", &fleet, t + 1001), Availability::Down);
        // The probe fails: open again for twice as long.
        h.record(&id, FAIL, t + 1100);
        assert_eq!(h.availability("a|m", &fleet, t + 3099), Availability::Down);
        assert!(h.may_send("a|m", t + 3100));
        // A probe that never reports frees its slot after the probe timeout.
        assert!(!h.may_send("a|m", t + 3500));
        assert_eq!(
            h.availability("a|m", &fleet, t + 3601),
            Availability::HalfOpen
        );
        assert!(h.may_send("a|m", t + 3601));
        h.record(&id, OK, t + 3700);
        assert_eq!(h.availability("a|m", &fleet, t + 3701), Availability::Up);
        // Closed again with the first cool-down.
        for _ in 0..3 {
            h.record(&id, FAIL, t + 4000);
        }
        assert_eq!(
            h.availability("a|m", &fleet, t + 5000),
            Availability::HalfOpen
        );
    }

    #[test]
    fn a_client_error_does_not_open_the_breaker_but_a_providers_answer_closes_it() {
        let h = health();
        let id: Arc<str> = Arc::from("a|m");
        let fleet = FleetView::default();
        for _ in 0..2 {
            h.record(&id, FAIL, 0);
        }
        h.record(&id, Outcome::Neutral, 0);
        h.record(&id, FAIL, 0);
        assert_eq!(h.availability("a|m", &fleet, 1), Availability::Down);
        // The probe gets a 400: the provider answers, so the breaker closes.
        assert!(h.may_send("a|m", 1000));
        h.record(&id, Outcome::Neutral, 1001);
        assert_eq!(h.availability("a|m", &fleet, 1002), Availability::Up);
    }

    #[test]
    fn a_fleet_outage_takes_an_endpoint_down_and_reports_drain_what_was_seen() {
        let h = health();
        let id: Arc<str> = Arc::from("a|m");
        h.record(&id, OK, 0);
        h.record(&id, Outcome::Failure { rate_limited: true }, 0);
        let mut view = pb::HealthView {
            sequence: 7,
            ..Default::default()
        };
        view.endpoints.push(
            EndpointHealth {
                outage: true,
                ..EndpointHealth::default()
            }
            .to_proto("a|m"),
        );
        h.apply_fleet(&view);
        assert_eq!(h.fleet().sequence, 7);
        assert_eq!(h.availability("a|m", &h.fleet(), 0), Availability::Down);
        assert_eq!(h.availability("b|m", &h.fleet(), 0), Availability::Up);
        let report = h.take_report("dp", 5);
        assert_eq!(report.samples.len(), 1);
        let s = &report.samples[0];
        assert_eq!((s.requests, s.failures, s.rate_limited), (2, 1, 1));
        assert!(s.latest_failed);
        assert_eq!(s.consecutive_failures, 1);
        assert_eq!(s.latency_ms.iter().sum::<u32>(), 1);
        assert!(h.take_report("dp", 6).samples.is_empty(), "drained");
    }
}
