//! settle: the exchange is over; record what it used. [`finish`] is the one way every admitted
//! exchange ends, whatever happened: each attempt is recorded in provider health, the session
//! sticks to the endpoint that served it, a generation that a provider served becomes a usage
//! event (handed to the background sender without waiting), and the spend hold is settled with
//! that event's cost, or released when nothing was served, so counters add up to the ledger.

use switchyard_policy::{Money, Usage};
use switchyard_proto::usage::v1::{ProviderAttempt, UsageEvent};

use crate::health::{Health, Outcome};
use crate::spend::Spend;
use crate::stages::admit;
use crate::stages::context::Context;
use crate::sticky::Sticky;
use crate::usage::UsageSink;

/// Where the outcome of an exchange goes.
pub struct Sinks<'a> {
    pub spend: &'a Spend,
    pub usage: &'a UsageSink,
    pub health: &'a Health,
    pub sticky: &'a Sticky,
}

/// Ends an admitted exchange. Never blocks on I/O.
pub fn finish(sinks: &Sinks<'_>, mut ctx: Context<'_>, now_ms: i64) {
    let used_tokens = usage(&ctx).total_tokens();
    for tried in &ctx.tried {
        let Some(attempt) = ctx.attempts.get(tried.attempt) else {
            continue;
        };
        if tried.skipped.is_some() {
            // Never sent: it says nothing of the endpoint.
            continue;
        }
        sinks
            .health
            .record(&attempt.endpoint.health_id, outcome(&ctx, tried), now_ms);
        if let Some(taken) = &tried.quota {
            // The provider counts what was used: the served attempt's tokens, none for a
            // failed one (its request still counts).
            let used = if ctx.served == Some(tried.attempt) {
                used_tokens
            } else {
                0
            };
            let delta = i64::try_from(used).unwrap_or(i64::MAX)
                - i64::try_from(taken.tokens).unwrap_or(i64::MAX);
            sinks.spend.adjust_quota_tokens(taken.key.clone(), delta);
        }
    }
    if let (Some(attempt), Some(session)) = (ctx.served_attempt(), ctx.session())
        && !ctx.provider_failed
    {
        sinks
            .sticky
            .remember(session, &attempt.model.id, &attempt.endpoint.health_id);
    }
    // The served endpoint's price of what was used, and the charge: the same, never above
    // the reservation. `None` when nothing was served or a price is unknown.
    let served = ctx.served_endpoint();
    let full = served.and_then(|e| e.prices.cost(&usage(&ctx)));
    let cost = crate::stages::meter::charge(full, ctx.ceiling());
    if let (Some(endpoint), Some(full), Some(most)) = (served, full, cost)
        && full > most
    {
        // The provider counted more than it was asked to allow: the tenant is charged what was
        // reserved, the rest is the operator's.
        crate::spend::SpendMetrics::bump(&sinks.spend.metrics.charges_capped);
        tracing::warn!(
            generation = %ctx.generation_id,
            provider = %endpoint.provider_id,
            cost = %full,
            charged = %most,
            "provider reported more usage than the request allowed; charge capped"
        );
    }
    let event = ctx
        .served
        .is_some()
        .then(|| event(&ctx, cost, sinks.usage.dataplane_id()));
    match ctx.hold.take() {
        // The charge is the usage event's cost, so the counters add up to the ledger; nothing is
        // charged when no provider served.
        Some(hold) => sinks.spend.settle(
            hold,
            cost.unwrap_or(Money::ZERO),
            ctx.is_byok(),
            now_ms,
            event,
            sinks.usage,
        ),
        None => {
            if let Some(event) = event {
                sinks.usage.emit(event);
            }
        }
    }
}

/// What an attempt says about its endpoint's health.
fn outcome(ctx: &Context<'_>, tried: &crate::stages::forward::Tried) -> Outcome {
    let served = ctx.served == Some(tried.attempt);
    if served && ctx.provider_failed {
        // It answered, then broke off: a failure of the endpoint.
        return Outcome::Failure {
            rate_limited: false,
        };
    }
    if tried.failure.is_none() {
        let throughput = served.then(|| throughput(ctx)).flatten();
        return Outcome::Success {
            latency_ms: tried.elapsed_ms,
            throughput,
        };
    }
    if tried.endpoint_failed {
        Outcome::Failure {
            rate_limited: tried.status == Some(429),
        }
    } else {
        Outcome::Neutral
    }
}

/// Completion tokens per second of generation: after the first byte for streams, over the
/// whole exchange otherwise (a non-streamed answer arrives at once, when it is done).
fn throughput(ctx: &Context<'_>) -> Option<f64> {
    let tokens = ctx.metered.usage.map(|u| u.completion_tokens)?;
    let total = ctx.elapsed_ms();
    let generating_ms = if ctx.request.stream {
        total.saturating_sub(ctx.ttfb_ms.unwrap_or(0))
    } else {
        total
    };
    (tokens > 0 && generating_ms > 0).then(|| tokens as f64 * 1000.0 / generating_ms as f64)
}

/// The usage to record: the provider's report or, when it reported none, what it may have
/// counted. The prompt was read whole: its [`admit::bound`]. The output of a whole response is
/// at most a token per byte of its `choices` (and the bound); a stream cut short is counted by
/// the content chunks that reached the gateway, a token each.
pub fn usage(ctx: &Context<'_>) -> Usage {
    if let Some(usage) = ctx.metered.usage {
        return usage;
    }
    match ctx.served_endpoint() {
        Some(endpoint) if ctx.status < 400 || ctx.provider_failed || ctx.cancelled => {
            let preset = ctx.resolved.preset.map(|p| &**p);
            let most = admit::bound(&ctx.request, admit::added_bytes(preset), endpoint);
            let completion_tokens = match ctx.metered.choices_bytes {
                Some(bytes) => bytes.min(most.output_tokens),
                None => ctx.metered.content_chunks,
            };
            Usage {
                prompt_tokens: most.prompt_tokens,
                completion_tokens,
                cached_tokens: 0,
                cache_write_tokens: 0,
                reasoning_tokens: 0,
            }
        }
        _ => Usage::default(),
    }
}

fn event(ctx: &Context<'_>, cost: Option<Money>, dataplane_id: &str) -> UsageEvent {
    let usage = usage(ctx);
    let endpoint = ctx.served_endpoint();
    let provider_responses = ctx
        .tried
        .iter()
        .filter(|t| t.skipped.is_none())
        .filter_map(|t| {
            let a = ctx.attempts.get(t.attempt)?;
            Some(ProviderAttempt {
                provider_id: a.endpoint.provider_id.clone(),
                provider_name: a.endpoint.provider_name.clone(),
                model: a.model.id.clone(),
                upstream_model: a.endpoint.upstream_model.clone(),
                status: t.status.map_or(0, u32::from),
                latency_ms: clamp(t.elapsed_ms),
                is_byok: a.is_byok(),
                endpoint_tag: a.endpoint.tag.clone(),
            })
        })
        .collect();
    let preset = ctx.resolved.preset;
    UsageEvent {
        generation_id: ctx.generation_id.clone(),
        key_hash: ctx.key.hash_hex(),
        organization_id: ctx.key.organization_id.to_string(),
        workspace_id: ctx.key.workspace_id.to_string(),
        model: ctx
            .served_attempt()
            .map(|a| a.model.id.clone())
            .unwrap_or_default(),
        provider_id: endpoint.map(|e| e.provider_id.clone()).unwrap_or_default(),
        upstream_model: endpoint
            .map(|e| e.upstream_model.clone())
            .unwrap_or_default(),
        created_at_ms: ctx.created_at_ms,
        prompt_tokens: clamp(usage.prompt_tokens),
        completion_tokens: clamp(usage.completion_tokens),
        cached_tokens: clamp(usage.cached_tokens),
        cache_write_tokens: clamp(usage.cache_write_tokens),
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
        provider_responses,
        preset_id: preset.map(|p| p.id.clone()).unwrap_or_default(),
        preset_version: preset.map_or(0, |p| p.version),
        session_id: ctx.request.session_id.clone().unwrap_or_default(),
        external_user: ctx.request.user.clone().unwrap_or_default(),
        http_referer: ctx.http_referer.clone().unwrap_or_default(),
    }
}

fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
