//! Provider-endpoint health, shared by every dataplane for routing: each dataplane counts
//! requests, failures and latency per endpoint in process (atomics, nothing on the request path
//! waits), flushes the counts once a second into per-minute Redis hashes
//! (`{health}:<provider>|<upstream model>:<minute>`), and reads back the last few minutes of
//! every dataplane's counts into a view routing can consult. Without Redis the view is this
//! dataplane's own counts.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use serde::Serialize;

use crate::spend::SpendBackend;

/// Minutes of history the shared view covers.
const WINDOW_MINUTES: i64 = 5;
/// Per-minute hashes outlive the window a little, then Redis drops them.
const KEEP_SECS: i64 = 15 * 60;

#[derive(Default)]
struct Local {
    requests: AtomicU64,
    failures: AtomicU64,
    latency_ms: AtomicU64,
}

/// One endpoint's recent record, over every dataplane (or this one, without Redis).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EndpointStats {
    pub requests: u64,
    pub failures: u64,
    pub latency_ms_sum: u64,
}

#[derive(Default)]
pub struct Health {
    /// Counts since the last flush, by `<provider>|<upstream model>`.
    pending: DashMap<Arc<str>, Local>,
    /// The last flushed view.
    view: ArcSwap<HashMap<String, EndpointStats>>,
}

pub fn endpoint_id(provider_id: &str, upstream_model: &str) -> String {
    format!("{provider_id}|{upstream_model}")
}

impl Health {
    /// Records one attempt at an endpoint. Cheap: a map lookup and three atomic adds.
    pub fn record(&self, endpoint: &Arc<str>, ok: bool, latency_ms: u64) {
        let add = |l: &Local| {
            l.requests.fetch_add(1, Ordering::Relaxed);
            if !ok {
                l.failures.fetch_add(1, Ordering::Relaxed);
            }
            l.latency_ms.fetch_add(latency_ms, Ordering::Relaxed);
        };
        match self.pending.get(endpoint) {
            Some(l) => add(&l),
            None => add(&self.pending.entry(endpoint.clone()).or_default()),
        }
    }

    pub fn view(&self) -> Arc<HashMap<String, EndpointStats>> {
        self.view.load_full()
    }

    /// Takes the counts since the last call, resetting them.
    fn drain(&self) -> Vec<(String, EndpointStats)> {
        self.pending
            .iter()
            .filter_map(|e| {
                let stats = EndpointStats {
                    requests: e.requests.swap(0, Ordering::Relaxed),
                    failures: e.failures.swap(0, Ordering::Relaxed),
                    latency_ms_sum: e.latency_ms.swap(0, Ordering::Relaxed),
                };
                (stats.requests > 0).then(|| (e.key().to_string(), stats))
            })
            .collect()
    }

    /// Flushes once per `every` until shutdown, then publishes the view.
    pub async fn run(
        self: Arc<Self>,
        backend: SpendBackend,
        every: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut local: HashMap<String, EndpointStats> = HashMap::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
            let counts = self.drain();
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let minute = now_ms / 60_000;
            match &backend {
                SpendBackend::Redis(redis) => {
                    match redis
                        .exchange_health(&counts, minute, WINDOW_MINUTES, KEEP_SECS)
                        .await
                    {
                        Ok(shared) => self.view.store(Arc::new(shared)),
                        // The next flush carries on; these counts are lost, which only
                        // blurs a health estimate.
                        Err(e) => tracing::debug!(error = %e, "provider health not shared"),
                    }
                }
                SpendBackend::Embedded(_) => {
                    for (id, s) in counts {
                        let e = local.entry(id).or_default();
                        e.requests += s.requests;
                        e.failures += s.failures;
                        e.latency_ms_sum += s.latency_ms_sum;
                    }
                    self.view.store(Arc::new(local.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_drains() {
        let h = Health::default();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a|m"), Arc::from("b|m"));
        h.record(&a, true, 10);
        h.record(&a, false, 30);
        h.record(&b, true, 5);
        let mut drained = h.drain();
        drained.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(
            drained,
            vec![
                (
                    "a|m".into(),
                    EndpointStats {
                        requests: 2,
                        failures: 1,
                        latency_ms_sum: 40
                    }
                ),
                (
                    "b|m".into(),
                    EndpointStats {
                        requests: 1,
                        failures: 0,
                        latency_ms_sum: 5
                    }
                ),
            ]
        );
        assert!(h.drain().is_empty(), "drained counts start again from zero");
    }
}
