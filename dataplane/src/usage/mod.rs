//! Usage events leave the request path through a bounded queue and reach the control plane in
//! acknowledged gRPC batches from a background task.
//!
//! Bounds, in order of use:
//! 1. the queue between requests and the sender (`queue_capacity` events); when it is full the
//!    event is counted in `dropped` and logged, and the request is unaffected;
//! 2. the sender's batch in memory (at most about one batch while delivery keeps up);
//! 3. a spool on disk (`spool_max_bytes`, segment files): everything unsent goes there as soon
//!    as a delivery fails, on every flush tick while the control plane stays unreachable, and at
//!    shutdown. Spooled segments are resent oldest first, one per flush tick even under load,
//!    and deleted only once acknowledged, including across restarts. Only events still in memory
//!    when the process is killed outright (one flush interval's worth) can be lost.
//!
//! On SIGTERM the sender keeps taking events for the drain period (the dataplane's grace
//! period), so requests that finish during the drain are metered too.
//!
//! Ingest is idempotent by generation id, so resending a batch whose ack was lost is safe.

mod sender;
mod spool;

pub use sender::{SenderConfig, UsageSender};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use switchyard_proto::usage::v1::UsageEvent;
use tokio::sync::mpsc;

/// The request path's handle: cheap to clone, never awaits.
#[derive(Clone)]
pub struct UsageSink {
    tx: mpsc::Sender<UsageEvent>,
    dataplane_id: Arc<str>,
    pub counters: Arc<UsageCounters>,
}

#[derive(Default, Debug)]
pub struct UsageCounters {
    pub emitted: AtomicU64,
    pub dropped: AtomicU64,
    pub sent: AtomicU64,
    pub spooled: AtomicU64,
}

impl UsageSink {
    pub fn new(capacity: usize, dataplane_id: &str) -> (UsageSink, mpsc::Receiver<UsageEvent>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            UsageSink {
                tx,
                dataplane_id: Arc::from(dataplane_id),
                counters: Arc::default(),
            },
            rx,
        )
    }

    pub fn dataplane_id(&self) -> &str {
        &self.dataplane_id
    }

    pub fn emit(&self, event: UsageEvent) {
        match self.tx.try_send(event) {
            Ok(()) => {
                self.counters.emitted.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                let generation_id = match &e {
                    mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev) => {
                        ev.generation_id.as_str()
                    }
                };
                // Logged at powers of two so a flood of drops cannot flood the log too.
                if dropped.is_power_of_two() {
                    tracing::error!(dropped, generation_id, "usage queue full; event dropped");
                }
            }
        }
    }
}
