//! settle: the exchange is over; record what it used. [`finish`] is the one way every admitted
//! exchange ends, whatever happened: each attempt is recorded in provider health, a generation
//! that a provider served becomes a usage event (handed to the background sender without
//! waiting), and the spend hold is settled with that event's cost, or released when nothing was
//! served, so counters add up to the ledger.

use switchyard_policy::{Money, Usage};
use switchyard_proto::usage::v1::UsageEvent;

use crate::health::Health;
use crate::spend::Spend;
use crate::stages::context::Context;
use crate::usage::UsageSink;

/// Where the outcome of an exchange goes.
pub struct Sinks<'a> {
    pub spend: &'a Spend,
    pub usage: &'a UsageSink,
    pub health: &'a Health,
}

/// Ends an admitted exchange. Never blocks on I/O.
pub fn finish(sinks: &Sinks<'_>, mut ctx: Context<'_>, now_ms: i64) {
    for tried in &ctx.tried {
        let Some(attempt) = ctx.attempts.get(tried.attempt) else {
            continue;
        };
        // The attempt that answered and then broke off counts as a failure of its endpoint.
        let cut = ctx.served == Some(tried.attempt) && ctx.provider_failed;
        let ok = tried.failure.is_none() && !cut;
        sinks
            .health
            .record(&attempt.endpoint.health_id, ok, tried.elapsed_ms);
    }
    let cost = ctx.cost();
    if ctx.served.is_some() {
        sinks
            .usage
            .emit(event(&ctx, cost, sinks.usage.dataplane_id()));
    }
    if let Some(hold) = ctx.hold.take() {
        // The charge is the usage event's cost, so the counters add up to the ledger; nothing is
        // charged when no provider served.
        sinks
            .spend
            .settle(hold, cost.unwrap_or(Money::ZERO), ctx.is_byok(), now_ms);
    }
}

/// The usage to record: the provider's report, or an estimate from what was relayed (a cut
/// stream, a body without usage).
pub fn usage(ctx: &Context<'_>) -> Usage {
    ctx.metered.usage.unwrap_or(Usage {
        prompt_tokens: if ctx.served.is_some() && ctx.status < 400 {
            ctx.request.estimated_prompt_tokens()
        } else {
            0
        },
        completion_tokens: ctx.metered.content_chunks,
        cached_tokens: 0,
        reasoning_tokens: 0,
    })
}

fn event(ctx: &Context<'_>, cost: Option<Money>, dataplane_id: &str) -> UsageEvent {
    let usage = usage(ctx);
    let endpoint = ctx.served_endpoint();
    UsageEvent {
        generation_id: ctx.generation_id.clone(),
        key_hash: ctx.key.hash_hex(),
        organization_id: ctx.key.organization_id.to_string(),
        workspace_id: ctx.key.workspace_id.to_string(),
        model: ctx.model.id.clone(),
        provider_id: endpoint.map(|e| e.provider_id.clone()).unwrap_or_default(),
        upstream_model: endpoint
            .map(|e| e.upstream_model.clone())
            .unwrap_or_default(),
        created_at_ms: ctx.created_at_ms,
        prompt_tokens: clamp(usage.prompt_tokens),
        completion_tokens: clamp(usage.completion_tokens),
        cached_tokens: clamp(usage.cached_tokens),
        reasoning_tokens: clamp(usage.reasoning_tokens),
        cost_usd: cost.map(|c| c.to_string()).unwrap_or_default(),
        streamed: ctx.request.stream,
        finish_reason: ctx.metered.finish_reason.clone().unwrap_or_default(),
        latency_ms: clamp(ctx.elapsed_ms()),
        time_to_first_byte_ms: clamp(ctx.ttfb_ms.unwrap_or(0)),
        status: u32::from(ctx.status),
        cancelled: ctx.cancelled,
        is_byok: ctx.is_byok(),
        upstream_id: ctx.metered.upstream_id.clone().unwrap_or_default(),
        app_title: ctx.app_title.clone().unwrap_or_default(),
        dataplane_id: dataplane_id.to_owned(),
    }
}

fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
