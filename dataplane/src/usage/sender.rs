//! The background task that batches usage events to the control plane.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use switchyard_proto::usage::v1::usage_service_client::UsageServiceClient;
use tonic::service::interceptor::InterceptedService;

use crate::link::ControlPlaneAuth;
use switchyard_proto::usage::v1::{UsageBatch, UsageEvent};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

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
                for batch in segment.events.chunks(self.config.batch_size.max(1)) {
                    if !self.deliver(batch.to_vec()).await {
                        self.spill(0);
                        return;
                    }
                }
                if let Err(e) = self.spool.remove(&segment) {
                    tracing::error!(error = %e, "cannot remove a delivered usage spool segment");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "cannot read the usage spool"),
        }
        while !self.backlog.is_empty() {
            let n = self.backlog.len().min(self.config.batch_size.max(1));
            let batch: Vec<UsageEvent> = self.backlog.range(..n).cloned().collect();
            if !self.deliver(batch).await {
                self.spill(0);
                return;
            }
            self.backlog.drain(..n);
        }
    }

    /// Sends one batch. True when it is done with (delivered, or refused for good).
    async fn deliver(&mut self, batch: Vec<UsageEvent>) -> bool {
        let n = batch.len() as u64;
        match self.send(batch).await {
            Ok(()) => {
                self.counters.sent.fetch_add(n, Ordering::Relaxed);
                self.retry_at = None;
                self.delay = MIN_DELAY;
                true
            }
            Err(Failure::Refused(status)) => {
                // Resending a batch the control plane calls invalid would block every event
                // behind it; count and log it instead.
                self.counters.dropped.fetch_add(n, Ordering::Relaxed);
                tracing::error!(error = %status, events = n, "control plane refused a usage batch; dropped");
                true
            }
            Err(Failure::Unavailable(status)) => {
                self.client = None;
                self.retry_at = Some(Instant::now() + self.delay);
                tracing::warn!(error = %status, retry_in = ?self.delay, "usage batch not delivered; spooling to disk");
                self.delay = (self.delay * 2).min(MAX_DELAY);
                false
            }
        }
    }

    async fn send(&mut self, events: Vec<UsageEvent>) -> Result<(), Failure> {
        let client = match &mut self.client {
            Some(c) => c,
            None => {
                let channel = Endpoint::from_shared(self.config.control_plane.clone())
                    .map_err(|e| Failure::Refused(tonic::Status::invalid_argument(e.to_string())))?
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
            Ok(_) => Ok(()),
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
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
