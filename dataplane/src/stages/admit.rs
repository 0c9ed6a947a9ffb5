//! admit: may this request spend? Its worst-case cost is reserved, in one atomic step, on every
//! counter that applies (`Snapshot::limits_for`): the key's limit, its member's and its
//! workspace's budgets, each guardrail budget and the organization's credits. A request refused
//! here never reaches a provider; an admitted one carries a `Hold` that `settle` ends.

use std::sync::Arc;

use serde_json::json;
use switchyard_policy::counters::{rebuilt_key, settled_key};
use switchyard_policy::{Limit, LimitScope, Money};

use crate::reject::{Kind, Reject};
use crate::snapshot::{ApiKey, Endpoint, Preset, Snapshot};
use crate::spend::{Counter, Hold, Spend, Verdict};
use crate::stages::request::ChatRequest;
use crate::stages::route::{self, Attempt};

/// The admit stage: reserves the most this request can cost, given where it may be routed, on
/// every limit that applies to `key`; or refuses in OpenRouter's terms (402 credits, 403 a
/// limit, 503 when the spend store cannot be reached and the policy is to fail closed).
#[allow(clippy::too_many_arguments)]
pub async fn admit(
    spend: &Spend,
    snapshot: &Snapshot,
    key: &ApiKey,
    request: &ChatRequest<'_>,
    preset: Option<&Preset>,
    attempts: &[Attempt<'_>],
    generation_id: &str,
    now_ms: i64,
) -> Result<Hold, Reject> {
    let is_byok = route::all_byok(attempts);
    let limits = counted(snapshot.limits_for(key), is_byok);
    let added = added_bytes(preset);
    let worst = worst_case(request, added, attempts.iter().map(|a| a.endpoint));
    let mut hold = hold(
        &key.organization_id,
        generation_id,
        &limits,
        worst,
        is_byok,
        now_ms,
    );
    if snapshot.spend_counters_marked {
        hold.rebuilt_key = Some(rebuilt_key(&key.organization_id));
    }
    match spend.admit(hold, now_ms).await {
        Verdict::Admitted(hold) => Ok(hold),
        Verdict::Refused { index, spent, held } => Err(match limits.get(index) {
            Some(limit) => refusal(limit, spent, held),
            None => Reject::new(Kind::Internal, "Spend limit refused"),
        }),
        Verdict::Unavailable => Err(Reject::new(
            Kind::SpendUnavailable,
            "Spend limits cannot be checked right now; try again shortly",
        )),
    }
}

/// Prompt tokens a provider may count for one image part beyond its bytes (OpenAI's largest
/// high-detail image is 1,105 tokens, Anthropic's about 1,600; the context length caps it).
pub const IMAGE_PROMPT_TOKENS: u64 = 4_096;

/// Bytes forward may add to a body besides the model id and a preset.
const UPSTREAM_FRAME_BYTES: u64 = 96;

/// The most tokens a request can make a provider count at an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    pub prompt_tokens: u64,
    pub output_tokens: u64,
}

/// What a provider can count, proven rather than estimated: a tokenizer emits at most one token
/// per byte of text, so the prompt is at most the body's bytes (with what a preset adds) plus an
/// allowance per image part, and never more than the endpoint's context; the output is at most
/// `max_tokens` (capped by the endpoint's max output) for each of the `n` choices.
pub fn bound(request: &ChatRequest<'_>, added_bytes: u64, endpoint: &Endpoint) -> Bound {
    // The provider's body can be longer than the client's: its model id and the frame forward
    // adds (`stream_options`, `reasoning_effort`).
    let bytes = (request.body_len as u64)
        .saturating_add(added_bytes)
        .saturating_add(endpoint.upstream_model.len() as u64)
        .saturating_add(UPSTREAM_FRAME_BYTES);
    let mut prompt_tokens =
        bytes.saturating_add(request.image_parts.saturating_mul(IMAGE_PROMPT_TOKENS));
    if endpoint.context_length > 0 {
        prompt_tokens = prompt_tokens.min(u64::from(endpoint.context_length));
    }
    let cap = endpoint.output_cap();
    let per_choice = request.max_output_tokens.map_or(cap, |m| m.min(cap));
    Bound {
        prompt_tokens,
        output_tokens: per_choice.saturating_mul(request.choices),
    }
}

/// Bytes a preset adds to the body a provider receives: its system prompt and parameters.
pub fn added_bytes(preset: Option<&Preset>) -> u64 {
    preset.map_or(0, |p| {
        let system = p.system_prompt.as_ref().map_or(0, |s| s.len() + 32);
        let parameters: usize = p
            .config
            .parameters
            .iter()
            .map(|(name, value)| name.len() + value.get().len() + 4)
            .sum();
        (system + parameters) as u64
    })
}

/// The most this request can cost on any of the endpoints it may be routed to: its [`bound`]
/// at each endpoint's prices (output at the dearer of the completion and reasoning prices, plus
/// the per-request price). Settle never charges more (see `Context::cost`).
pub fn worst_case<'a>(
    request: &ChatRequest,
    added_bytes: u64,
    endpoints: impl IntoIterator<Item = &'a Arc<Endpoint>>,
) -> Money {
    endpoints
        .into_iter()
        .map(|e| {
            let b = bound(request, added_bytes, e);
            e.prices.worst_case(b.prompt_tokens, b.output_tokens)
        })
        .max()
        .unwrap_or(Money::ZERO)
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
    worst: Money,
    is_byok: bool,
    now_ms: i64,
) -> Hold {
    let mut counters = Vec::with_capacity(limits.len());
    let mut include_byok = Vec::with_capacity(limits.len());
    for limit in limits {
        counters.push(Counter {
            key: limit.counter_key(organization_id, now_ms),
            limit: limit.cap,
            amount: if is_byok && !limit.include_byok {
                Money::ZERO
            } else {
                worst
            },
            expire_at_ms: limit.window.span(now_ms).expire_at_ms(),
        });
        include_byok.push(limit.include_byok);
    }
    Hold {
        generation_id: generation_id.to_owned(),
        settled_key: settled_key(organization_id, generation_id),
        rebuilt_key: None,
        counters,
        include_byok,
        worst,
        leased: Vec::new(),
    }
}

/// The refusal for the limit that could not take this request, in OpenRouter's terms: 402 when
/// the organization's credits run out, 403 naming the limit otherwise.
pub fn refusal(limit: &Limit, spent: Money, held: Money) -> Reject {
    let metadata = json!({
        "limit": limit.scope.label(),
        "id": limit.id.as_ref(),
        "limit_usd": limit.cap.as_usd_f64(),
        "used_usd": spent.as_usd_f64(),
        "reserved_usd": held.as_usd_f64(),
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
    use switchyard_policy::{Prices, Window};

    fn limit(scope: LimitScope, window: Window, pico: u128, include_byok: bool) -> Limit {
        Limit {
            scope,
            id: Arc::from("id1"),
            window,
            cap: Money::from_pico(pico),
            include_byok,
        }
    }

    #[test]
    fn counters_name_their_organization_scope_and_window() {
        let limits = [
            limit(LimitScope::Key, Window::Monthly, 5_000_000, false),
            limit(LimitScope::Credits, Window::Lifetime, 9_000_000, true),
        ];
        // 2026-11-23T12:00:00Z
        let now = 1_795_435_200_000;
        let h = hold("o1", "gen-1", &limits, Money::from_pico(700), true, now);
        assert_eq!(h.counters[0].key, "{org:o1}:sp:key:id1:m20261101");
        assert_eq!(h.counters[1].key, "{org:o1}:sp:credits:id1:l");
        assert_eq!(h.settled_key, "{org:o1}:settled:gen-1");
        assert_eq!(h.counters[0].limit, Money::from_pico(5_000_000));
        // BYOK spend reserves nothing on a limit that excludes it.
        assert_eq!(h.counters[0].amount, Money::ZERO);
        assert_eq!(h.counters[1].amount, Money::from_pico(700));
        // A monthly counter lives until a day after the month ends; lifetime ones forever.
        assert_eq!(h.counters[0].expire_at_ms, Some(1_796_169_600_000));
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
        let none = Money::ZERO;
        let r = refusal(
            &limit(LimitScope::Credits, Window::Lifetime, 1, true),
            none,
            none,
        );
        assert_eq!(r.kind.status(), 402);
        let r = refusal(&limit(LimitScope::Key, Window::Daily, 1, true), none, none);
        assert_eq!(r.kind.status(), 403);
    }

    #[test]
    fn worst_case_takes_the_dearest_endpoint_and_caps_output() {
        let body = br#"{"model":"m","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"#;
        let request = ChatRequest::parse(body).unwrap();
        let prices = |prompt: u128, completion: u128| Prices {
            prompt: Some(Money::from_pico(prompt)),
            completion: Some(Money::from_pico(completion)),
            ..Default::default()
        };
        let endpoint = |id: &str, prices: Prices, max_output_tokens: u32| {
            Arc::new(switchyard_policy::testing::endpoint(
                id,
                prices,
                max_output_tokens,
            ))
        };
        let cheap = endpoint("a", prices(1, 2), 50);
        let dear = endpoint("b", prices(10, 20), 4096);
        // One token per byte of the body the provider gets: no tokenizer does worse.
        let prompt = (body.len() + "m".len() + 96) as u128;
        assert_eq!(
            worst_case(&request, 0, &[cheap.clone(), dear.clone()]).pico(),
            10 * prompt + 20 * 100
        );
        // max_tokens above the endpoint's max output is capped by it.
        assert_eq!(
            worst_case(&request, 0, std::slice::from_ref(&cheap)).pico(),
            prompt + 2 * 50
        );
        // What a preset adds counts too.
        assert_eq!(
            worst_case(&request, 40, &[cheap]).pico(),
            prompt + 40 + 2 * 50
        );
    }

    #[test]
    fn every_choice_and_image_counts_and_the_context_caps_the_prompt() {
        let body = br#"{"model":"m","n":3,"max_tokens":100,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}"#;
        let request = ChatRequest::parse(body).unwrap();
        let mut e = switchyard_policy::testing::endpoint("a", Prices::default(), 4096);
        let b = bound(&request, 0, &e);
        assert_eq!(b.output_tokens, 300, "n multiplies the output");
        assert_eq!(
            b.prompt_tokens,
            (body.len() + "m".len() + 96) as u64 + IMAGE_PROMPT_TOKENS
        );
        e.context_length = 1_000;
        assert_eq!(bound(&request, 0, &e).prompt_tokens, 1_000);
        // Without max_tokens each choice may run to the endpoint's max output.
        let request = ChatRequest::parse(br#"{"model":"m","n":2,"messages":[]}"#).unwrap();
        assert_eq!(bound(&request, 0, &e).output_tokens, 2 * 4096);
        for n in ["0", "129", "-1", "\"2\""] {
            let body = format!(r#"{{"model":"m","n":{n},"messages":[]}}"#);
            assert!(ChatRequest::parse(body.as_bytes()).is_err(), "n = {n}");
        }
    }
}
