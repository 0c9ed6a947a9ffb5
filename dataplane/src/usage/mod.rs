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
//!
//! Nothing one event holds can block the rest: every text field is bounded
//! ([`MAX_FIELD_BYTES`]), batches stay under [`MAX_BATCH_BYTES`] encoded, the control plane
//! refuses a malformed event alone (the ack lists it), and a batch refused whole is split until
//! the event it refuses is found. Refused events are quarantined in `quarantine.spool` beside the
//! segments (`switchyard_usage_events_total{outcome="quarantined"}`), never resent.

mod sender;
mod spool;

pub use sender::{MAX_BATCH_BYTES, SenderConfig, UsageSender};
pub use spool::read_quarantine;

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
    /// Refused by the control plane for good, set aside on disk.
    pub quarantined: AtomicU64,
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

    pub fn emit(&self, mut event: UsageEvent) {
        bound_fields(&mut event);
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

/// The longest text any event field keeps, in bytes. Clients and providers supply several
/// (`X-Title`, `user`, `session_id`, ids, finish reasons): bounded, an event stays small, and a
/// batch stays far under the control plane's decode limit whatever they send.
pub const MAX_FIELD_BYTES: usize = 512;
/// The most provider attempts an event lists (routing makes far fewer).
const MAX_ATTEMPTS: usize = 32;

/// Truncates every text field to [`MAX_FIELD_BYTES`] (at a character boundary).
pub fn bound_fields(e: &mut UsageEvent) {
    for field in [
        &mut e.generation_id,
        &mut e.key_hash,
        &mut e.organization_id,
        &mut e.workspace_id,
        &mut e.model,
        &mut e.provider_id,
        &mut e.upstream_model,
        &mut e.cost_usd,
        &mut e.finish_reason,
        &mut e.upstream_id,
        &mut e.app_title,
        &mut e.dataplane_id,
        &mut e.preset_id,
        &mut e.session_id,
        &mut e.external_user,
        &mut e.http_referer,
    ] {
        truncate(field);
    }
    e.provider_responses.truncate(MAX_ATTEMPTS);
    for a in &mut e.provider_responses {
        for field in [
            &mut a.provider_id,
            &mut a.provider_name,
            &mut a.model,
            &mut a.upstream_model,
            &mut a.endpoint_tag,
        ] {
            truncate(field);
        }
    }
}

fn truncate(s: &mut String) {
    if s.len() > MAX_FIELD_BYTES {
        let mut end = MAX_FIELD_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn every_text_field_is_bounded() {
        let huge = "é".repeat(1_000_000);
        let mut e = UsageEvent {
            app_title: huge.clone(),
            external_user: huge.clone(),
            session_id: huge.clone(),
            upstream_id: huge.clone(),
            finish_reason: huge.clone(),
            provider_responses: vec![Default::default(); 1000],
            ..Default::default()
        };
        bound_fields(&mut e);
        assert!(e.app_title.len() <= MAX_FIELD_BYTES && e.app_title.starts_with('é'));
        assert!(e.encoded_len() < 64 * 1024, "{}", e.encoded_len());
    }
}
