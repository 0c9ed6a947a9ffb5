//! The background task that batches usage events to the control plane.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use switchyard_proto::usage::v1::usage_service_client::UsageServiceClient;
use switchyard_proto::usage::v1::{UsageBatch, UsageEvent};
use tokio::sync::{mpsc, watch};
use tonic::transport::{Channel, Endpoint};

use super::UsageCounters;
use super::spool::Spool;

#[derive(Clone, Debug)]
pub struct SenderConfig {
    pub control_plane: String,
    pub dataplane_id: String,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub memory_backlog: usize,
    pub spool_path: PathBuf,
    pub spool_max_bytes: u64,
}

pub struct UsageSender {
    config: SenderConfig,
    rx: mpsc::Receiver<UsageEvent>,
    counters: Arc<UsageCounters>,
    backlog: VecDeque<UsageEvent>,
    spool: Spool,
    client: Option<UsageServiceClient<Channel>>,
    backoff: Duration,
}

const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl UsageSender {
    pub fn new(
        config: SenderConfig,
        rx: mpsc::Receiver<UsageEvent>,
        counters: Arc<UsageCounters>,
    ) -> Self {
        let spool = Spool::new(config.spool_path.clone(), config.spool_max_bytes);
        UsageSender {
            config,
            rx,
            counters,
            backlog: VecDeque::new(),
            spool,
            client: None,
            backoff: Duration::ZERO,
        }
    }

    /// Runs until shutdown, then drains the queue and writes what is unsent to the spool.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.config.flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
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
                _ = shutdown.changed() => break,
            }
        }
        self.rx.close();
        while let Ok(event) = self.rx.try_recv() {
            self.backlog.push_back(event);
        }
        // One last attempt, bounded, then keep the rest on disk for the next start.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.flush()).await;
        self.spill(0);
    }

    async fn flush(&mut self) {
        if !self.backoff.is_zero() {
            // The control plane is unreachable: honour the backoff without blocking intake, and
            // put new events on disk at once so that even a crash cannot lose them.
            self.backoff = self.backoff.saturating_sub(self.config.flush_interval);
            self.spill(0);
            return;
        }
        if self.backlog.is_empty() && !self.spool.is_empty() {
            match self.spool.take_all() {
                Ok(events) => {
                    tracing::info!(events = events.len(), "resending spooled usage events");
                    self.backlog.extend(events);
                }
                Err(e) => tracing::error!(error = %e, "cannot read usage spool"),
            }
        }
        while !self.backlog.is_empty() {
            let n = self.backlog.len().min(self.config.batch_size);
            let batch: Vec<UsageEvent> = self.backlog.range(..n).cloned().collect();
            match self.send(batch).await {
                Ok(()) => {
                    self.backlog.drain(..n);
                    self.counters.sent.fetch_add(n as u64, Ordering::Relaxed);
                    self.backoff = Duration::ZERO;
                    // Connected but lagging: bound memory, keep the excess on disk.
                    self.spill(self.config.memory_backlog);
                }
                Err(e) => {
                    self.client = None;
                    self.backoff = (self.backoff * 2)
                        .max(Duration::from_millis(200))
                        .min(MAX_BACKOFF);
                    tracing::warn!(error = %e, backlog = self.backlog.len(), "usage batch not delivered; spooling to disk and retrying");
                    self.spill(0);
                    return;
                }
            }
        }
    }

    async fn send(&mut self, events: Vec<UsageEvent>) -> Result<(), tonic::Status> {
        let client = match &mut self.client {
            Some(c) => c,
            None => {
                let channel = Endpoint::from_shared(self.config.control_plane.clone())
                    .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?
                    .connect_timeout(Duration::from_secs(1))
                    .timeout(Duration::from_secs(5))
                    .connect()
                    .await
                    .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                self.client.insert(UsageServiceClient::new(channel))
            }
        };
        client
            .report(UsageBatch {
                dataplane_id: self.config.dataplane_id.clone(),
                events,
            })
            .await?;
        Ok(())
    }

    /// Moves the oldest events beyond `keep` from memory to the spool file.
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
