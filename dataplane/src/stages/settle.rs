//! settle: the request is over; record what it used. Builds the usage event and hands it to the
//! background sender without waiting; the adapter then settles the spend hold with the same cost.

use switchyard_proto::usage::v1::UsageEvent;

use crate::money::Picodollars;
use crate::snapshot::{ApiKey, Endpoint};
use crate::stages::meter::{Metered, Usage};
use crate::usage::UsageSink;

/// Everything known about a finished generation.
pub struct Outcome<'a> {
    pub generation_id: &'a str,
    pub key: &'a ApiKey,
    pub model: &'a str,
    pub endpoint: Option<&'a Endpoint>,
    /// Sent with the organization's own credential: the provider bills it directly, so it is
    /// BYOK spend (counted only where a limit includes BYOK, never against credits).
    pub is_byok: bool,
    pub created_at_ms: i64,
    pub latency_ms: u64,
    pub time_to_first_byte_ms: Option<u64>,
    pub status: u16,
    pub streamed: bool,
    pub cancelled: bool,
    pub metered: &'a Metered,
    /// Used only when the provider reported no usage (a cut stream, a failed call).
    pub estimated_prompt_tokens: u64,
    pub app_title: Option<&'a str>,
}

impl Outcome<'_> {
    /// The usage to record: the provider's report, or an estimate from what was relayed.
    pub fn usage(&self) -> Usage {
        self.metered.usage.unwrap_or(Usage {
            prompt_tokens: if self.endpoint.is_some() && self.status < 400 {
                self.estimated_prompt_tokens
            } else {
                0
            },
            completion_tokens: self.metered.content_chunks,
            cached_tokens: 0,
            reasoning_tokens: 0,
        })
    }

    /// What this generation cost, as recorded in its usage event and charged to its counters;
    /// `None` when a price it needs is unknown.
    pub fn cost(&self) -> Option<Picodollars> {
        self.endpoint.and_then(|e| self.usage().cost(&e.prices))
    }

    pub fn to_event(&self, dataplane_id: &str) -> UsageEvent {
        let usage = self.usage();
        let cost = self.cost();
        UsageEvent {
            generation_id: self.generation_id.to_owned(),
            key_hash: self.key.hash_hex(),
            organization_id: self.key.organization_id.to_string(),
            workspace_id: self.key.workspace_id.to_string(),
            model: self.model.to_owned(),
            provider_id: self
                .endpoint
                .map(|e| e.provider_id.clone())
                .unwrap_or_default(),
            upstream_model: self
                .endpoint
                .map(|e| e.upstream_model.clone())
                .unwrap_or_default(),
            created_at_ms: self.created_at_ms,
            prompt_tokens: clamp(usage.prompt_tokens),
            completion_tokens: clamp(usage.completion_tokens),
            cached_tokens: clamp(usage.cached_tokens),
            reasoning_tokens: clamp(usage.reasoning_tokens),
            cost_usd: cost.map(|c| c.to_string()).unwrap_or_default(),
            streamed: self.streamed,
            finish_reason: self.metered.finish_reason.clone().unwrap_or_default(),
            latency_ms: clamp(self.latency_ms),
            time_to_first_byte_ms: clamp(self.time_to_first_byte_ms.unwrap_or(0)),
            status: u32::from(self.status),
            cancelled: self.cancelled,
            is_byok: self.is_byok,
            upstream_id: self.metered.upstream_id.clone().unwrap_or_default(),
            app_title: self.app_title.unwrap_or_default().to_owned(),
            dataplane_id: dataplane_id.to_owned(),
        }
    }
}

fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Emits the usage event. Never blocks: see `UsageSink::emit`.
pub fn settle(outcome: &Outcome<'_>, sink: &UsageSink) {
    sink.emit(outcome.to_event(sink.dataplane_id()));
}
