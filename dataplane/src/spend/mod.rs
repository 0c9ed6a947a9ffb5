//! Spend counters that never overshoot. Before forwarding, one atomic step reserves a request's
//! worst-case cost on every counter that applies (all or nothing); after completion, one step
//! releases the reservation and charges the actual cost, idempotently by generation id.
//! Reservations expire, so a crashed dataplane cannot hold budget forever.
//!
//! Two backends with the same semantics: Redis (standalone or Cluster; one Lua script per step,
//! cached by SHA; every key of one organization shares the hash tag `{org:<id>}`, so a script's
//! keys share a slot) and an in-process one for single-node use and `make dev`. On Redis, budget
//! leases ([`leases`]) take both steps off the request path: a request reserves from this
//! process's escrow and settles into it, and Redis sees batched lease calls.
//!
//! Amounts are `Money` (exact picodollars, the unit prices are computed in), so counters add up
//! to the usage ledger exactly; Redis keeps them as decimal strings and the scripts add them
//! exactly (`switchyard_policy::counters::EXACT_LUA`), whatever their size.
//!
//! Times come from the caller's clock (`now_ms`), expiries included: Redis is given time-to-live
//! spans computed from that clock, never absolute times compared with its own.

mod embedded;
pub mod leases;
mod quota;
mod redis_store;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use embedded::{Embedded, SavedCounter};
pub use leases::{LeaseConfig, Leases};
pub use quota::{EmbeddedQuotas, QuotaVerdict};
pub use redis_store::RedisSpend;
use switchyard_policy::Money;
use switchyard_policy::routing::Quota;
use switchyard_policy::routing::quota::quota_ttl_ms;
use switchyard_proto::usage::v1::UsageEvent;

use crate::usage::UsageSink;
use leases::{LeaseVerdict, Leased};

/// One counter a request is checked against and charged to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    /// The full store key, e.g. `{org:o1}:sp:key:<hash>:m20261101`.
    pub key: String,
    pub limit: Money,
    /// What this request reserves (worst case) on it.
    pub amount: Money,
    /// When the counter may be dropped (its window's end plus a grace day), on the caller's
    /// clock.
    pub expire_at_ms: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct ReserveRequest {
    pub generation_id: String,
    pub now_ms: i64,
    /// How long the reservation holds if it is never settled.
    pub hold_ms: u64,
    pub counters: Vec<Counter>,
    /// The organization's rebuilt mark, when the control plane keeps them: without it the
    /// counters may be empty after a data loss, and nothing is reserved.
    pub rebuilt_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    Granted,
    /// The first counter that could not take the reservation, with what it already held.
    Refused {
        index: usize,
        spent: Money,
        held: Money,
    },
}

/// One counter's side of a settle: release what was reserved, charge what was spent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    pub key: String,
    pub reserved: Money,
    pub charge: Money,
    pub expire_at_ms: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct SettleRequest {
    pub generation_id: String,
    /// Marks the generation as settled (`{org:<id>}:settled:<generation>`), for idempotence.
    pub settled_key: String,
    pub now_ms: i64,
    pub counters: Vec<Settlement>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpendError {
    #[error("spend store unavailable: {0}")]
    Unavailable(String),
    /// The call was sent and failed there or on its way back (a reset, a script error).
    #[error("spend store call failed: {0}")]
    Interrupted(String),
    #[error("spend store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("spend store answered unexpectedly: {0}")]
    Protocol(String),
    /// The counters are not marked rebuilt from the usage ledger (Redis lost its data, or the
    /// organization is new); the control plane marks them within a second or two.
    #[error(
        "spend counters not yet marked rebuilt from the usage ledger (the control plane marks \
         them; it must use this Redis too)"
    )]
    NotRebuilt,
}

impl SpendError {
    /// Whether the store may have carried out the call although it failed here: it was sent
    /// and no answer came back in time, or an answer came that could not be read.
    pub fn may_have_run(&self) -> bool {
        matches!(
            self,
            SpendError::Timeout(_) | SpendError::Interrupted(_) | SpendError::Protocol(_)
        )
    }
}

/// What to do when the spend store cannot be reached, set per deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FailurePolicy {
    /// Refuse with 503: no request goes uncounted.
    FailClosed,
    /// Serve and count what was let through; reconciliation from the ledger corrects the
    /// counters once the store is back.
    FailOpen,
}

/// Outcomes, exposed as metrics.
#[derive(Default, Debug)]
pub struct SpendMetrics {
    pub granted: AtomicU64,
    pub refused: AtomicU64,
    pub unavailable_refused: AtomicU64,
    pub unavailable_served: AtomicU64,
    pub settled: AtomicU64,
    pub settle_duplicates: AtomicU64,
    pub settle_failed: AtomicU64,
    /// Generations whose provider counted beyond the reservation (charged the reservation).
    pub charges_capped: AtomicU64,
    /// Admissions served from this process's leases, without a Redis call.
    pub lease_local: AtomicU64,
    /// Admissions that asked Redis to grow a lease (no escrow left, or none yet).
    pub lease_remote: AtomicU64,
    /// Background lease calls (charges, releases, renewals, refills), and those that failed.
    pub lease_flushes: AtomicU64,
    pub lease_flush_failed: AtomicU64,
}

impl SpendMetrics {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The configured backend.
#[derive(Clone)]
pub enum SpendBackend {
    Embedded(Arc<Embedded>),
    Redis(Arc<RedisSpend>),
}

impl SpendBackend {
    pub async fn reserve(&self, request: &ReserveRequest) -> Result<Admission, SpendError> {
        match self {
            SpendBackend::Embedded(e) => Ok(e.reserve(request)),
            SpendBackend::Redis(r) => r.reserve(request).await,
        }
    }

    /// `Ok(false)`: this generation was already settled; nothing changed.
    pub async fn settle(&self, request: &SettleRequest) -> Result<bool, SpendError> {
        match self {
            SpendBackend::Embedded(e) => Ok(e.settle(request)),
            SpendBackend::Redis(r) => r.settle(request).await,
        }
    }

    /// A counter's settled spend and outstanding reservations, for tests and reconciliation.
    pub async fn read(&self, key: &str, now_ms: i64) -> Result<(Money, Money), SpendError> {
        match self {
            SpendBackend::Embedded(e) => Ok(e.read(key, now_ms)),
            SpendBackend::Redis(r) => r.read(key, now_ms).await,
        }
    }
}

/// The request path's view of spend: the backend, the failure policy, and the outcome metrics.
pub struct Spend {
    pub backend: SpendBackend,
    pub policy: FailurePolicy,
    pub metrics: Arc<SpendMetrics>,
    /// How long an unsettled reservation holds budget.
    pub hold_ms: u64,
    /// Provider quotas when the backend is embedded (Redis keeps its own).
    pub quotas: Arc<EmbeddedQuotas>,
    /// Budget leases over the Redis backend; `None` reserves per request.
    pub leases: Option<Arc<Leases>>,
}

/// A granted (or, failing open, waved-through) request's claim on its counters.
#[derive(Debug)]
pub struct Hold {
    pub generation_id: String,
    pub settled_key: String,
    /// See `ReserveRequest::rebuilt_key`.
    pub rebuilt_key: Option<String>,
    pub counters: Vec<Counter>,
    /// Per counter: whether BYOK spend counts on it.
    pub include_byok: Vec<bool>,
    /// The request's worst case: no settle charges more.
    pub worst: Money,
    /// Per counter, the reservation taken from a lease (empty when reserved per request).
    pub leased: Vec<Option<Leased>>,
}

/// What admission decided.
#[derive(Debug)]
pub enum Verdict {
    Admitted(Hold),
    /// A counter's limit would be exceeded: `index` into the request's counters.
    Refused {
        index: usize,
        spent: Money,
        held: Money,
    },
    /// The store is unreachable and the policy is to fail closed.
    Unavailable,
}

/// How long a settle is retried while Redis is unreachable (a pause, a failover, a restart)
/// before reconciliation is left to correct the counters. Well inside the settled marker's life,
/// so a retry of a settle that did run is still recognised.
const SETTLE_RETRY_FOR: Duration = Duration::from_secs(60);

/// The longest wait between two settle attempts.
const SETTLE_MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How long a generation's settled marker is kept. A settle is repeated only by its own retries
/// (`SETTLE_RETRY_FOR`, a minute), so two minutes is ample; keeping markers longer
/// costs memory in proportion to traffic (at 10,000 requests a second, two minutes is 1.2
/// million markers; a week would be six billion).
pub const SETTLED_MARKER_MS: u64 = 120_000;

impl Spend {
    /// Takes one request and `tokens` from a provider account's quota counter `key` (for the
    /// minute of `now_ms`). An unreachable store answers `Unknown`: the provider enforces its
    /// own limit, so the attempt goes.
    pub async fn take_quota(
        &self,
        key: &str,
        quota: Quota,
        tokens: u64,
        now_ms: i64,
    ) -> QuotaVerdict {
        let ttl = quota_ttl_ms(now_ms);
        match &self.backend {
            SpendBackend::Embedded(_) => {
                if self.quotas.take(key, quota, tokens, ttl, now_ms) {
                    QuotaVerdict::Taken
                } else {
                    QuotaVerdict::Exhausted
                }
            }
            SpendBackend::Redis(r) => match r.take_quota(key, quota, tokens, ttl).await {
                Ok(true) => QuotaVerdict::Taken,
                Ok(false) => QuotaVerdict::Exhausted,
                Err(e) => {
                    tracing::debug!(error = %e, "provider quota unknown; the attempt goes");
                    QuotaVerdict::Unknown
                }
            },
        }
    }

    /// Corrects a quota counter's tokens by `delta` (the used tokens minus the estimate taken),
    /// off the request path.
    pub fn adjust_quota_tokens(&self, key: String, delta: i64) {
        if delta == 0 {
            return;
        }
        match &self.backend {
            SpendBackend::Embedded(_) => self.quotas.adjust_tokens(&key, delta),
            SpendBackend::Redis(r) => {
                let r = r.clone();
                tokio::spawn(async move {
                    if let Err(e) = r.adjust_quota_tokens(&key, delta).await {
                        tracing::debug!(error = %e, "provider quota tokens not corrected");
                    }
                });
            }
        }
    }

    /// Reserves `hold.counters`' amounts, all or nothing: from this process's leases (no I/O)
    /// or in one round trip.
    pub async fn admit(&self, mut hold: Hold, now_ms: i64) -> Verdict {
        if hold.counters.is_empty() {
            return Verdict::Admitted(hold);
        }
        if let Some(leases) = &self.leases {
            match leases
                .admit(&hold.counters, hold.rebuilt_key.as_ref(), now_ms)
                .await
            {
                Ok(LeaseVerdict::Granted(leased)) => {
                    SpendMetrics::bump(&self.metrics.granted);
                    hold.leased = leased;
                    return Verdict::Admitted(hold);
                }
                Ok(LeaseVerdict::Refused { index, spent, held }) => {
                    SpendMetrics::bump(&self.metrics.refused);
                    return Verdict::Refused { index, spent, held };
                }
                // Reserved per request below.
                Ok(LeaseVerdict::TooLarge) => {}
                // A lease call that may have run ended its leases whole: nothing to release.
                Err(e) => return self.unavailable(hold, e, false, now_ms),
            }
        }
        let request = ReserveRequest {
            generation_id: hold.generation_id.clone(),
            now_ms,
            hold_ms: self.hold_ms,
            counters: hold.counters.clone(),
            rebuilt_key: hold.rebuilt_key.clone(),
        };
        match self.backend.reserve(&request).await {
            Ok(Admission::Granted) => {
                SpendMetrics::bump(&self.metrics.granted);
                Verdict::Admitted(hold)
            }
            Ok(Admission::Refused { index, spent, held }) => {
                SpendMetrics::bump(&self.metrics.refused);
                Verdict::Refused { index, spent, held }
            }
            Err(e) => {
                let release = e.may_have_run();
                self.unavailable(hold, e, release, now_ms)
            }
        }
    }

    /// The failure policy's answer when the store could not be asked.
    fn unavailable(&self, hold: Hold, e: SpendError, release: bool, now_ms: i64) -> Verdict {
        match self.policy {
            FailurePolicy::FailClosed => {
                SpendMetrics::bump(&self.metrics.unavailable_refused);
                tracing::warn!(error = %e, "spend store unavailable; refusing (fail_closed)");
                if release {
                    // The script may have run (or still run, queued behind a pause): release
                    // what it may hold, on the same connection so after it, or the refused
                    // request would hold budget for the whole hold period.
                    self.settle_reservation(hold, Money::ZERO, false, now_ms);
                }
                Verdict::Unavailable
            }
            FailurePolicy::FailOpen => {
                SpendMetrics::bump(&self.metrics.unavailable_served);
                tracing::warn!(error = %e, "spend store unavailable; serving uncounted (fail_open)");
                Verdict::Admitted(hold)
            }
        }
    }

    /// Ends an exchange's hold, charging `cost`, and sends its usage event: at once, or, for a
    /// hold on leases, once the charge is in Redis (so the ledger never holds a charge the
    /// counters lack).
    pub fn settle(
        &self,
        mut hold: Hold,
        cost: Money,
        is_byok: bool,
        now_ms: i64,
        event: Option<UsageEvent>,
        usage: &UsageSink,
    ) {
        if let (Some(leases), false) = (&self.leases, hold.leased.is_empty()) {
            SpendMetrics::bump(&self.metrics.settled);
            let charged = std::mem::take(&mut hold.leased)
                .into_iter()
                .zip(&hold.include_byok)
                .filter_map(|(leased, counts_byok)| {
                    let charge = if is_byok && !counts_byok {
                        0
                    } else {
                        u64::try_from(cost.pico()).unwrap_or(u64::MAX)
                    };
                    leased.map(|l| (l, charge))
                })
                .collect();
            if let Some(event) = leases.settle(charged, event) {
                usage.emit(event);
            }
            return;
        }
        if let Some(event) = event {
            usage.emit(event);
        }
        self.settle_reservation(hold, cost, is_byok, now_ms);
    }

    /// Releases a per-request reservation and charges `cost` (nothing on counters that exclude
    /// BYOK spend when this was BYOK). Settles are idempotent by generation. The embedded backend
    /// settles at once (one short critical section), so a client's next request already sees the
    /// charge; Redis settles off the request path, retrying briefly, and what still fails is
    /// corrected by reconciliation from the usage ledger.
    fn settle_reservation(&self, hold: Hold, cost: Money, is_byok: bool, now_ms: i64) {
        if hold.counters.is_empty() {
            return;
        }
        let request = SettleRequest {
            generation_id: hold.generation_id,
            settled_key: hold.settled_key,
            now_ms,
            counters: hold
                .counters
                .iter()
                .zip(&hold.include_byok)
                .map(|(c, counts_byok)| Settlement {
                    key: c.key.clone(),
                    reserved: c.amount,
                    charge: if is_byok && !counts_byok {
                        Money::ZERO
                    } else {
                        cost
                    },
                    expire_at_ms: c.expire_at_ms,
                })
                .collect(),
        };
        let backend = match &self.backend {
            SpendBackend::Embedded(e) => {
                let outcome = if e.settle(&request) {
                    &self.metrics.settled
                } else {
                    &self.metrics.settle_duplicates
                };
                return SpendMetrics::bump(outcome);
            }
            SpendBackend::Redis(_) => self.backend.clone(),
        };
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let give_up = tokio::time::Instant::now() + SETTLE_RETRY_FOR;
            let mut delay = Duration::from_millis(50);
            loop {
                match backend.settle(&request).await {
                    Ok(true) => return SpendMetrics::bump(&metrics.settled),
                    Ok(false) => return SpendMetrics::bump(&metrics.settle_duplicates),
                    Err(e) if tokio::time::Instant::now() + delay >= give_up => {
                        SpendMetrics::bump(&metrics.settle_failed);
                        return tracing::warn!(
                            generation = %request.generation_id,
                            error = %e,
                            "settle failed; reconciliation will correct the counters"
                        );
                    }
                    Err(_) => {
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(SETTLE_MAX_BACKOFF);
                    }
                }
            }
        });
    }
}

/// The embedded backend's counters survive restarts in `path` (a single node has no Redis to
/// keep them): loaded at start, written (to a new file, synced, then renamed over the old one)
/// once per `every` when they changed, through the shutdown drain, and once more at its end.
/// A crash loses at most `every` of settled spend. A file that exists but cannot be read is an
/// error, never empty counters: an exhausted key would spend again.
pub mod persist {
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Embedded, SavedCounter};

    pub fn load(path: &Path, now_ms: i64) -> anyhow::Result<Embedded> {
        let saved: Vec<SavedCounter> = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!(
                    "spend counters file {} is damaged ({e}); restore it, or move it aside to \
                     start with empty counters",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => anyhow::bail!("cannot read spend counters file {}: {e}", path.display()),
        };
        if !saved.is_empty() {
            tracing::info!(counters = saved.len(), path = %path.display(), "spend counters restored");
        }
        Ok(Embedded::restore(saved, now_ms))
    }

    fn write(path: &Path, saved: &[SavedCounter]) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(saved).map_err(std::io::Error::other)?;
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself must reach the disk too.
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Saves every `every` until `drain` after shutdown began (requests still finishing settle
    /// into the counters meanwhile), then once more.
    pub async fn run(
        embedded: Arc<Embedded>,
        path: PathBuf,
        every: Duration,
        drain: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut last = Vec::new();
        let mut drain_until: Option<tokio::time::Instant> = None;
        loop {
            let next = tokio::time::Instant::now() + every;
            let wake = drain_until.map_or(next, |t| t.min(next));
            let stopping = tokio::select! {
                _ = tokio::time::sleep_until(wake) => {
                    drain_until.is_some_and(|t| tokio::time::Instant::now() >= t)
                }
                _ = shutdown.changed(), if drain_until.is_none() => {
                    drain_until = Some(tokio::time::Instant::now() + drain);
                    drain.is_zero()
                }
            };
            let mut saved = embedded.save();
            saved.sort_by(|a, b| a.key.cmp(&b.key));
            if saved != last {
                if let Err(e) = write(&path, &saved) {
                    tracing::warn!(error = %e, path = %path.display(), "cannot save spend counters");
                }
                last = saved;
            }
            if stopping {
                return;
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_damaged_counters_file_is_an_error_and_a_missing_one_a_first_start() {
            let dir = std::env::temp_dir().join(format!("sy-persist-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("spend.json");
            assert!(load(&path, 0).unwrap().save().is_empty());
            for damaged in [&b""[..], b"{\"truncat", b"[{\"key\":1}]"] {
                std::fs::write(&path, damaged).unwrap();
                let e = load(&path, 0).err().unwrap().to_string();
                assert!(e.contains("damaged"), "{e}");
            }
            write(&path, &[]).unwrap();
            assert!(load(&path, 0).unwrap().save().is_empty());
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
