//! The background task that batches usage events to the control plane.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use switchyard_proto::usage::v1::usage_service_client::UsageServiceClient;
use tonic::service::interceptor::InterceptedService;

use crate::link::ControlPlaneAuth;
use prost::Message;
use switchyard_proto::usage::v1::{RejectedEvent, UsageBatch, UsageEvent};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::transport::Channel;

use super::UsageCounters;
use super::spool::Spool;

#[derive(Clone, Debug)]
pub struct SenderConfig {
    pub control_plane: String,
    pub auth: ControlPlaneAuth,
    pub dataplane_id: String,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    /// After shutdown is signalled, requests still in flight get this long to finish; their
    /// events are still taken in.
    pub drain_period: Duration,
}

pub struct UsageSender {
    config: SenderConfig,
    rx: mpsc::Receiver<UsageEvent>,
    counters: Arc<UsageCounters>,
    backlog: VecDeque<UsageEvent>,
    spool: Spool,
    client: Option<UsageServiceClient<InterceptedService<Channel, ControlPlaneAuth>>>,
    /// Retry schedule while the control plane is unreachable.
    retry_at: Option<Instant>,
    delay: Duration,
}

const MIN_DELAY: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// A batch's encoded size stays under this, a quarter of the control plane's decode limit
/// (tonic's 4 MiB), so no batch is refused for its size.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// Why a batch was not delivered.
enum Failure {
    /// The control plane could not be reached or did not answer: retry later.
    Unavailable(tonic::Status),
    /// The control plane refused the batch itself: resending cannot help.
    Refused(tonic::Status),
}

impl UsageSender {
    pub fn new(
        config: SenderConfig,
        rx: mpsc::Receiver<UsageEvent>,
        counters: Arc<UsageCounters>,
    ) -> Self {
        let spool = Spool::new(config.spool_dir.clone(), config.spool_max_bytes);
        UsageSender {
            config,
            rx,
            counters,
            backlog: VecDeque::new(),
            spool,
            client: None,
            retry_at: None,
            delay: MIN_DELAY,
        }
    }

    /// Runs until shutdown plus the drain period (or until every sink is gone), then spools
    /// whatever is unsent, so it is resent after the next start.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.config.flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut drain_until: Option<Instant> = None;
        loop {
            let drained = async {
                match drain_until {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = self.rx.recv() => match received {
                    Some(event) => {
                        self.backlog.push_back(event);
                        if self.backlog.len() >= self.config.batch_size {
                            self.flush().await;
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => self.flush().await,
                changed = shutdown.changed(), if drain_until.is_none() => {
                    if changed.is_err() || *shutdown.borrow() {
                        drain_until = Some(Instant::now() + self.config.drain_period);
                    }
                }
                _ = drained => break,
            }
        }
        self.rx.close();
        while let Ok(event) = self.rx.try_recv() {
            self.backlog.push_back(event);
        }
        // Durable first, then one bounded attempt to deliver from disk.
        self.spill(0);
        self.retry_at = None;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.flush()).await;
    }

    async fn flush(&mut self) {
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            // The control plane is unreachable: keep new events on disk, where even a crash
            // cannot lose them, until the next retry.
            self.spill(0);
            return;
        }
        // Oldest first: one spooled segment per flush, then what is in memory.
        match self.spool.oldest() {
            Ok(Some(segment)) => {
                let mut rest = segment.events.as_slice();
                while !rest.is_empty() {
                    let n = batch_len(rest.iter(), self.config.batch_size);
                    if !self.deliver(rest[..n].to_vec()).await {
                        self.spill(0);
                        return;
                    }
                    rest = &rest[n..];
                }
                if let Err(e) = self.spool.remove(segment) {
                    tracing::error!(error = %e, "cannot remove a delivered usage spool segment");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "cannot read the usage spool"),
        }
        while !self.backlog.is_empty() {
            let n = batch_len(self.backlog.iter(), self.config.batch_size);
            let batch: Vec<UsageEvent> = self.backlog.range(..n).cloned().collect();
            if !self.deliver(batch).await {
                self.spill(0);
                return;
            }
            self.backlog.drain(..n);
        }
    }

    /// Sends one batch. True when it is done with: delivered, its malformed events set aside.
    /// A batch the control plane refuses whole is split in halves until the one event it
    /// refuses is found and quarantined, so one bad event neither loses nor blocks the others.
    /// False when the control plane is unreachable (the caller keeps the batch; ingest is
    /// idempotent, so parts already delivered may go again).
    async fn deliver(&mut self, batch: Vec<UsageEvent>) -> bool {
        let mut pending = vec![batch];
        while let Some(mut batch) = pending.pop() {
            match self.send(batch.clone()).await {
                Ok(rejected) => {
                    self.retry_at = None;
                    self.delay = MIN_DELAY;
                    let (bad, good): (Vec<UsageEvent>, Vec<UsageEvent>) = batch
                        .into_iter()
                        .partition(|e| rejected.iter().any(|r| r.generation_id == e.generation_id));
                    self.counters
                        .sent
                        .fetch_add(good.len() as u64, Ordering::Relaxed);
                    for (event, why) in bad.into_iter().filter_map(|e| {
                        let why = rejected
                            .iter()
                            .find(|r| r.generation_id == e.generation_id)?;
                        Some((e, why.reason.clone()))
                    }) {
                        self.quarantine(vec![event], &why);
                    }
                }
                Err(Failure::Refused(status)) if batch.len() > 1 => {
                    tracing::warn!(error = %status, events = batch.len(), "usage batch refused; splitting it");
                    let second = batch.split_off(batch.len() / 2);
                    pending.push(second);
                    pending.push(batch);
                }
                Err(Failure::Refused(status)) => self.quarantine(batch, status.message()),
                Err(Failure::Unavailable(status)) => {
                    self.client = None;
                    self.retry_at = Some(Instant::now() + self.delay);
                    tracing::warn!(error = %status, retry_in = ?self.delay, "usage batch not delivered; spooling to disk");
                    self.delay = (self.delay * 2).min(MAX_DELAY);
                    return false;
                }
            }
        }
        true
    }

    /// Sets aside events the control plane will never take, on disk for an operator to inspect,
    /// counted in `quarantined`.
    fn quarantine(&mut self, events: Vec<UsageEvent>, reason: &str) {
        let n = events.len() as u64;
        for e in &events {
            tracing::error!(generation = %e.generation_id, %reason, "usage event refused by the control plane; quarantined");
        }
        match self.spool.quarantine(events) {
            Ok(()) => {
                self.counters.quarantined.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                self.counters.dropped.fetch_add(n, Ordering::Relaxed);
                tracing::error!(error = %e, events = n, "cannot write the usage quarantine; events dropped");
            }
        }
    }

    /// The events the control plane refused, if it took the batch.
    async fn send(&mut self, events: Vec<UsageEvent>) -> Result<Vec<RejectedEvent>, Failure> {
        let client = match &mut self.client {
            Some(c) => c,
            None => {
                let channel = self
                    .config
                    .auth
                    .endpoint(&self.config.control_plane)
                    .map_err(|e| Failure::Refused(tonic::Status::invalid_argument(e)))?
                    .connect_timeout(Duration::from_secs(1))
                    .timeout(Duration::from_secs(5))
                    .connect()
                    .await
                    .map_err(|e| Failure::Unavailable(tonic::Status::unavailable(e.to_string())))?;
                self.client.insert(UsageServiceClient::with_interceptor(
                    channel,
                    self.config.auth.clone(),
                ))
            }
        };
        let batch = UsageBatch {
            dataplane_id: self.config.dataplane_id.clone(),
            events,
        };
        match client.report(batch).await {
            Ok(ack) => Ok(ack.into_inner().rejected),
            // Malformed or too large: the same batch would be refused again.
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::InvalidArgument
                        | tonic::Code::OutOfRange
                        | tonic::Code::ResourceExhausted
                ) =>
            {
                Err(Failure::Refused(status))
            }
            Err(status) => Err(Failure::Unavailable(status)),
        }
    }

    /// Moves the oldest events beyond `keep` from memory to the spool.
    fn spill(&mut self, keep: usize) {
        if self.backlog.len() <= keep {
            return;
        }
        let excess = self.backlog.len() - keep;
        let events: Vec<UsageEvent> = self.backlog.drain(..excess).collect();
        let n = events.len() as u64;
        match self.spool.append(events) {
            Ok(refused) => {
                self.counters
                    .spooled
                    .fetch_add(n - refused, Ordering::Relaxed);
                if refused > 0 {
                    self.counters.dropped.fetch_add(refused, Ordering::Relaxed);
                    tracing::error!(refused, "usage spool full; events dropped");
                }
            }
            Err(e) => {
                self.counters.dropped.fetch_add(n, Ordering::Relaxed);
                tracing::error!(error = %e, events = n, "cannot write usage spool; events dropped");
            }
        }
    }
}

/// How many of `events` (at least one) make the next batch: at most `batch_size`, and no more
/// than [`MAX_BATCH_BYTES`] encoded.
fn batch_len<'e>(events: impl Iterator<Item = &'e UsageEvent>, batch_size: usize) -> usize {
    let mut bytes = 0;
    let mut n = 0;
    for event in events.take(batch_size.max(1)) {
        bytes += event.encoded_len() + 8;
        if n > 0 && bytes > MAX_BATCH_BYTES {
            break;
        }
        n += 1;
    }
    n
}
