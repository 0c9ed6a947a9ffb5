//! admit: may this request spend? Guardrails are evaluated from the snapshot (no I/O); then the
//! request's worst-case cost is reserved, in one atomic step, on every counter that applies: the
//! key's limit, its member's and its workspace's budgets, each guardrail budget and the
//! organization's credits. This module builds that step; `spend` runs it.

use std::sync::Arc;

use serde_json::json;

use crate::money::Picodollars;
use crate::reject::{Kind, Reject};
use crate::snapshot::{Endpoint, Limit, LimitScope, Window};
use crate::spend::{Counter, Hold, Period, counter_key, settled_key};
use crate::stages::request::ChatRequest;

/// The most this request can cost on any of the endpoints it may be routed to: the prompt
/// estimate at the prompt price, plus the most output it may produce (its `max_tokens`, capped
/// by the endpoint's max output) at the dearer of the completion and reasoning prices, plus the
/// per-request price. An endpoint without a price costs nothing here, as in the ledger.
pub fn worst_case<'a>(
    request: &ChatRequest,
    endpoints: impl IntoIterator<Item = &'a Arc<Endpoint>>,
) -> Picodollars {
    let prompt_tokens = request.estimated_prompt_tokens();
    endpoints
        .into_iter()
        .map(|e| {
            let cap = u64::from(e.max_output_tokens).max(1);
            let output = request.max_output_tokens.map_or(cap, |m| m.min(cap));
            let per_output = e
                .prices
                .completion
                .unwrap_or(Picodollars(0))
                .0
                .max(e.prices.internal_reasoning.unwrap_or(Picodollars(0)).0);
            e.prices
                .prompt
                .unwrap_or(Picodollars(0))
                .times(prompt_tokens)
                .plus(Picodollars(per_output).times(output))
                .plus(e.prices.request.unwrap_or(Picodollars(0)))
        })
        .max_by_key(|p| p.0)
        .unwrap_or(Picodollars(0))
}

fn period(window: Window) -> Period {
    match window {
        Window::Daily => Period::Daily,
        Window::Weekly => Period::Weekly,
        Window::Monthly => Period::Monthly,
        Window::Lifetime => Period::Lifetime,
    }
}

fn scope_name(scope: LimitScope) -> &'static str {
    match scope {
        LimitScope::Key => "key",
        LimitScope::Member => "member",
        LimitScope::Workspace => "workspace",
        LimitScope::Guardrail => "guardrail",
        LimitScope::Credits => "credits",
    }
}

/// The limits a request is checked against: all of them, except that a request which can only
/// be BYOK leaves out those that BYOK spend does not count on (credits among them), so that an
/// exhausted credit balance or key limit does not stop the organization using its own keys.
pub fn counted(mut limits: Vec<Limit>, is_byok: bool) -> Vec<Limit> {
    if is_byok {
        limits.retain(|l| l.include_byok);
    }
    limits
}

/// The counters of `limits` for one request, in the window containing `now_ms`, each reserving
/// `worst` (nothing where BYOK spend does not count and this request is BYOK).
pub fn hold(
    organization_id: &str,
    generation_id: &str,
    limits: &[Limit],
    worst: Picodollars,
    is_byok: bool,
    now_ms: i64,
) -> Hold {
    let mut counters = Vec::with_capacity(limits.len());
    let mut include_byok = Vec::with_capacity(limits.len());
    for limit in limits {
        let (window, expire_at_ms) = period(limit.window).window(now_ms);
        counters.push(Counter {
            key: counter_key(organization_id, scope_name(limit.scope), &limit.id, &window),
            limit_pico: limit.limit_nanos.saturating_mul(1000),
            amount_pico: if is_byok && !limit.include_byok {
                0
            } else {
                worst.0
            },
            expire_at_ms,
        });
        include_byok.push(limit.include_byok);
    }
    Hold {
        generation_id: generation_id.to_owned(),
        settled_key: settled_key(organization_id, generation_id),
        counters,
        include_byok,
    }
}

/// The refusal for the limit that could not take this request, in OpenRouter's terms: 402 when
/// the organization's credits run out, 403 naming the limit otherwise.
pub fn refusal(limit: &Limit, spent_pico: u64, held_pico: u64) -> Reject {
    let usd = |pico: u64| Picodollars(pico).as_usd_f64();
    let metadata = json!({
        "limit": scope_name(limit.scope),
        "id": limit.id.as_ref(),
        "limit_usd": usd(limit.limit_nanos.saturating_mul(1000)),
        "used_usd": usd(spent_pico),
        "reserved_usd": usd(held_pico),
    });
    let (kind, message) = match limit.scope {
        LimitScope::Credits => (
            Kind::PaymentRequired,
            "Insufficient credits. This request requires more credits than the organization has left."
                .to_owned(),
        ),
        LimitScope::Key => (
            Kind::Forbidden,
            "Key limit exceeded. Raise the key's limit or wait for it to reset.".to_owned(),
        ),
        LimitScope::Workspace => (
            Kind::Forbidden,
            "Workspace budget exceeded.".to_owned(),
        ),
        LimitScope::Member | LimitScope::Guardrail => (
            Kind::Forbidden,
            format!("Guardrail budget exceeded ({}).", limit.id),
        ),
    };
    Reject::new(kind, message).with_metadata(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Prices;

    fn limit(scope: LimitScope, window: Window, nanos: u64, include_byok: bool) -> Limit {
        Limit {
            scope,
            id: Arc::from("id1"),
            window,
            limit_nanos: nanos,
            include_byok,
        }
    }

    #[test]
    fn counters_name_their_organization_scope_and_window() {
        let limits = [
            limit(LimitScope::Key, Window::Monthly, 5_000, false),
            limit(LimitScope::Credits, Window::Lifetime, 9_000, true),
        ];
        // 2026-11-23T12:00:00Z
        let h = hold(
            "o1",
            "gen-1",
            &limits,
            Picodollars(700),
            true,
            1_795_435_200_000,
        );
        assert_eq!(h.counters[0].key, "{org:o1}:sp:key:id1:m20261101");
        assert_eq!(h.counters[1].key, "{org:o1}:sp:credits:id1:l");
        assert_eq!(h.settled_key, "{org:o1}:settled:gen-1");
        assert_eq!(h.counters[0].limit_pico, 5_000_000);
        // BYOK spend reserves nothing on a limit that excludes it.
        assert_eq!(h.counters[0].amount_pico, 0);
        assert_eq!(h.counters[1].amount_pico, 700);
        assert_eq!(h.counters[1].expire_at_ms, None);
    }

    #[test]
    fn byok_only_requests_skip_the_limits_that_leave_byok_out() {
        let limits = || {
            vec![
                limit(LimitScope::Key, Window::Monthly, 5_000, true),
                limit(LimitScope::Credits, Window::Lifetime, 9_000, false),
                limit(LimitScope::Guardrail, Window::Daily, 9_000, false),
            ]
        };
        assert_eq!(counted(limits(), false).len(), 3);
        let byok = counted(limits(), true);
        assert_eq!(byok.len(), 1);
        assert_eq!(byok[0].scope, LimitScope::Key);
    }

    #[test]
    fn credits_refuse_with_402_and_limits_with_403() {
        let r = refusal(&limit(LimitScope::Credits, Window::Lifetime, 1, true), 0, 0);
        assert_eq!(r.kind.status(), 402);
        let r = refusal(&limit(LimitScope::Key, Window::Daily, 1, true), 0, 0);
        assert_eq!(r.kind.status(), 403);
    }

    #[test]
    fn worst_case_takes_the_dearest_endpoint_and_caps_output() {
        let body = br#"{"model":"m","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"#;
        let request = ChatRequest::parse(body).unwrap();
        let prices = |prompt: u64, completion: u64| Prices {
            prompt: Some(Picodollars(prompt)),
            completion: Some(Picodollars(completion)),
            request: None,
            input_cache_read: None,
            internal_reasoning: None,
        };
        let endpoint = |id: &str, prices: Prices, max_output_tokens: u32| {
            Arc::new(Endpoint {
                provider_id: id.into(),
                provider_name: id.into(),
                upstream_model: "m".into(),
                upstream: crate::snapshot::Upstream::parse("http://127.0.0.1:9/v1").unwrap(),
                prices,
                context_length: 8192,
                max_output_tokens,
                authorization: None,
                priority: 0,
                health_id: Arc::from(format!("{id}|m")),
            })
        };
        let cheap = endpoint("a", prices(1, 2), 50);
        let dear = endpoint("b", prices(10, 20), 4096);
        let prompt = request.estimated_prompt_tokens();
        assert_eq!(
            worst_case(&request, &[cheap.clone(), dear]).0,
            10 * prompt + 20 * 100
        );
        // max_tokens above the endpoint's max output is capped by it.
        assert_eq!(worst_case(&request, &[cheap]).0, prompt + 2 * 50);
    }
}
