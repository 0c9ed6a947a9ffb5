//! route: which provider endpoints may serve the request, in which order, and with whose
//! credential. For each model the request may be served by (resolve's candidates, in order):
//!
//! 1. **Narrow.** The key's guardrails first (`guardrails`), then the organization's privacy
//!    settings, then the request's preferences: `only`, `ignore`, `quantizations`,
//!    `data_collection`, `zdr`, `max_price`, `require_parameters`, `enforce_distillable_text`
//!    and `:free`. A model left
//!    with no endpoint is skipped for the next; when none is left the refusal names why.
//! 2. **Order.** `order` puts the providers it names first, in its order (only them when
//!    `allow_fallbacks` is false). Otherwise `sort` ranks by price, throughput or latency (the
//!    fleet's p50). Otherwise OpenRouter's default balancing: within each catalogue priority
//!    tier, endpoints are drawn at random weighted by the inverse square of their price, and a
//!    session's sticky endpoint goes first. `preferred_max_latency` and
//!    `preferred_min_throughput` move endpoints that miss them behind those that meet them.
//!    Endpoints in outage (the fleet's view or this dataplane's open breaker) always go last;
//!    without `order`, `allow_fallbacks: false` keeps only the first endpoint.
//! 3. **Credentials.** Where the key's workspace holds its own credentials for an endpoint's
//!    provider (BYOK), OpenRouter's order applies on that provider: the workspace's credentials
//!    first, then the gateway's own, then credentials marked `is_fallback`. `is_required` takes
//!    the gateway's credential away for the models a credential covers, `is_byok_only` for every
//!    model of that provider.
//!
//! With `sort` and `partition: "none"`, the endpoints of every model are ranked together.

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::{Value, json};
use switchyard_policy::Money;
use switchyard_policy::routing::parameters::{always_needed, needs};
use switchyard_policy::routing::{
    Account, DataCollection, EndpointHealth, ProviderPreferences, Quota, SortBy,
};

use crate::health::Availability;
use crate::reject::{Kind, Reject};
use crate::snapshot::{ApiKey, ByokCredential, Endpoint, Model, Organization, Snapshot};
use crate::stages::guardrails::{self, GuardrailRefusal};
use crate::stages::request::ChatRequest;
use crate::stages::resolve::{Candidate, Resolved};

/// Upper bound on attempts per model, so one request cannot walk a long catalogue.
pub const MAX_ATTEMPTS_PER_MODEL: usize = 3;

/// One try: a model's endpoint and the credential to send it.
#[derive(Clone, Copy, Debug)]
pub struct Attempt<'a> {
    pub model: &'a Arc<Model>,
    pub endpoint: &'a Arc<Endpoint>,
    /// The organization's own credential; `None` sends the gateway's.
    pub credential: Option<&'a ByokCredential>,
}

impl Attempt<'_> {
    /// Whether the provider bills this attempt to the organization directly.
    pub fn is_byok(&self) -> bool {
        self.credential.is_some()
    }

    /// The provider account this attempt draws on, and its quota, when it has one.
    pub fn quota(&self) -> Option<(Account<'_>, Quota)> {
        match self.credential {
            Some(c) => c.quota.is_set().then_some((
                Account::Byok {
                    credential_id: &c.id,
                },
                c.quota,
            )),
            None => self.endpoint.quota.is_set().then_some((
                Account::Gateway {
                    provider_id: &self.endpoint.provider_id,
                },
                self.endpoint.quota,
            )),
        }
    }

    /// The `Authorization` value sent upstream.
    pub fn authorization(&self) -> Option<&str> {
        match self.credential {
            Some(c) => Some(&c.authorization),
            None => self.endpoint.authorization.as_deref(),
        }
    }
}

/// What routing reads besides the snapshot and the request: provider health, chance, and the
/// session's last endpoint. The dataplane's is `http::chat`'s; tests script their own.
pub trait Conditions {
    /// Whether the endpoint may be tried now. Asked at most once per endpoint and request (a
    /// half-open breaker's answer hands this request the probe).
    fn availability(&self, health_id: &str) -> Availability;
    /// The fleet's figures for the endpoint.
    fn health(&self, health_id: &str) -> Option<&EndpointHealth>;
    /// A number in `[0, 1)`, for weighted balancing.
    fn random(&self) -> f64;
    /// The endpoint (its health id) that last served this request's session for `model_id`.
    fn sticky(&self, model_id: &str) -> Option<Arc<str>>;
}

/// The route stage: every attempt, in order, or why there is none.
pub fn route<'a>(
    snapshot: &'a Snapshot,
    key: &ApiKey,
    resolved: &Resolved<'a>,
    request: &ChatRequest<'_>,
    conditions: &dyn Conditions,
) -> Result<Vec<Attempt<'a>>, Reject> {
    let prefs = &resolved.preferences;
    let organization = snapshot.organizations.get(&*key.organization_id);
    // The parameters endpoints must honour: tools always; every one the request (or its
    // preset) sets under `require_parameters`.
    let every = prefs.require_parameters == Some(true);
    let preset = resolved
        .preset
        .iter()
        .flat_map(|p| p.config.parameters.iter())
        .map(|(name, raw)| (name.as_str(), raw.get()));
    let mut needed: Vec<&'static str> = request
        .fields
        .iter()
        .map(|(name, raw)| (name.as_ref(), raw.get()))
        .chain(preset)
        .flat_map(|(name, raw)| needs(name, raw))
        .filter(|p| every || always_needed(p))
        .collect();
    needed.sort_unstable();
    needed.dedup();
    let guardrails = snapshot.guardrails_for(key);
    let byok = snapshot.byok.of_workspace(&key.workspace_id);
    let mut planned: Vec<(Ranked<'a>, Attempt<'a>)> = Vec::new();
    let mut first_failure: Option<Reject> = None;
    for candidate in &resolved.candidates {
        let model = candidate.model;
        let allowed = match guardrails::evaluate(&guardrails, &model.id, &model.endpoints) {
            Ok(allowed) => allowed,
            Err(refusal) => {
                first_failure.get_or_insert_with(|| guardrail_reject(refusal));
                continue;
            }
        };
        let narrowing = Narrowing {
            prefs,
            organization,
            needed: &needed,
            every_parameter: every,
            free_only: candidate.free_only,
            tokens_asked: tokens_asked(request),
        };
        let mut kept = Vec::with_capacity(allowed.len());
        let mut excluded = Vec::new();
        for endpoint in allowed.iter().filter_map(|&i| model.endpoints.get(i)) {
            match narrowing.exclusion(endpoint) {
                None => kept.push(endpoint),
                Some(why) => excluded.push((endpoint, why)),
            }
        }
        if kept.is_empty() {
            first_failure.get_or_insert_with(|| no_endpoint(&model.id, &excluded));
            continue;
        }
        let ranked = order(candidate, kept, prefs, conditions);
        let attempts = plan(model, &ranked, key, byok);
        if attempts.is_empty() {
            first_failure.get_or_insert_with(|| byok_required(&model.id));
            continue;
        }
        for attempt in attempts {
            let rank = ranked
                .iter()
                .find(|r| Arc::ptr_eq(r.endpoint, attempt.endpoint))
                .copied()
                .unwrap_or(Ranked::new(attempt.endpoint, Availability::Up));
            planned.push((rank, attempt));
        }
    }
    if let Some(sort) = prefs.sort.filter(|s| !s.partition_by_model) {
        // One ranking over every model's endpoints; each model's own order breaks ties.
        planned.sort_by(|(a, _), (b, _)| {
            a.is_down()
                .cmp(&b.is_down())
                .then_with(|| compare(sort.by, a, b, conditions))
        });
    }
    if prefs.order.is_none() && resolved.candidates.len() > 1 {
        // Across models too, a Down endpoint goes last, and a fallback model's endpoint that
        // meets the latency and throughput preferences goes before a primary's that misses
        // them (as OpenRouter documents); otherwise the models keep their order.
        planned.sort_by_key(|(r, _)| (r.is_down(), !meets_preferences(r, prefs, conditions)));
    }
    if planned.is_empty() {
        return Err(first_failure
            .unwrap_or_else(|| Reject::new(Kind::UpstreamUnavailable, "No provider available")));
    }
    Ok(planned.into_iter().map(|(_, attempt)| attempt).collect())
}

/// An endpoint as ordering sees it.
#[derive(Clone, Copy, Debug)]
struct Ranked<'a> {
    endpoint: &'a Arc<Endpoint>,
    availability: Availability,
}

impl<'a> Ranked<'a> {
    fn new(endpoint: &'a Arc<Endpoint>, availability: Availability) -> Self {
        Ranked {
            endpoint,
            availability,
        }
    }

    fn is_down(&self) -> bool {
        self.availability == Availability::Down
    }
}

/// Why an endpoint was left out, with a fixed label for the error's metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exclusion {
    /// The organization allows only zero-data-retention endpoints.
    OrganizationZdr,
    /// The organization allows only endpoints that neither retain nor train on prompts.
    OrganizationDataCollection,
    Zdr,
    DataCollection,
    NotInOnly,
    Ignored,
    Quantization,
    MaxPrice,
    NotFree,
    Parameters,
    /// The request has tools and the endpoint takes none.
    Tools,
    /// The prompt and `max_tokens` do not fit the endpoint's context.
    ContextLength,
    /// `enforce_distillable_text`: the catalogue records no model author's permission to
    /// distill, so no endpoint can be shown to allow it.
    Distillation,
}

impl Exclusion {
    pub fn label(self) -> &'static str {
        match self {
            Exclusion::OrganizationZdr => "organization_zdr",
            Exclusion::OrganizationDataCollection => "organization_data_collection",
            Exclusion::Zdr => "zdr",
            Exclusion::DataCollection => "data_collection",
            Exclusion::NotInOnly => "only",
            Exclusion::Ignored => "ignore",
            Exclusion::Quantization => "quantizations",
            Exclusion::MaxPrice => "max_price",
            Exclusion::NotFree => "free",
            Exclusion::Parameters => "require_parameters",
            Exclusion::Tools => "tools",
            Exclusion::ContextLength => "context_length",
            Exclusion::Distillation => "enforce_distillable_text",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Exclusion::OrganizationZdr => {
                "the organization allows only zero-data-retention endpoints"
            }
            Exclusion::OrganizationDataCollection => {
                "the organization allows only endpoints that neither retain nor train on prompts"
            }
            Exclusion::Zdr => "the request asks for zero data retention",
            Exclusion::DataCollection => {
                "the request denies data collection (retaining or training on prompts)"
            }
            Exclusion::NotInOnly => "not in provider.only",
            Exclusion::Ignored => "in provider.ignore",
            Exclusion::Quantization => "not of a quantization in provider.quantizations",
            Exclusion::MaxPrice => "priced above provider.max_price",
            Exclusion::NotFree => "not free (the :free variant was asked for)",
            Exclusion::Parameters => {
                "does not support every parameter of the request (provider.require_parameters)"
            }
            Exclusion::Tools => "does not support tools, which the request has",
            Exclusion::ContextLength => {
                "its context is shorter than the request's prompt and max_tokens"
            }
            Exclusion::Distillation => {
                "the catalogue records no permission from the model's author to distill its output (provider.enforce_distillable_text)"
            }
        }
    }
}

/// Everything that narrows a model's endpoints after its guardrails.
struct Narrowing<'r> {
    prefs: &'r ProviderPreferences,
    organization: Option<&'r Organization>,
    needed: &'r [&'static str],
    /// `require_parameters`: `needed` is every parameter set, not only tools.
    every_parameter: bool,
    free_only: bool,
    /// The prompt's likely size plus the output asked for (see [`tokens_asked`]).
    tokens_asked: u64,
}

/// Bytes per token below which a prompt is taken to fit: tokenizers average about four bytes
/// per token on English and code, so five leaves a margin, and a prompt near the limit is left
/// for the provider to judge rather than refused here.
const CONTEXT_BYTES_PER_TOKEN: u64 = 5;

/// What a request asks of an endpoint's context: its prompt's likely tokens (inline data, such
/// as a base64 image, left out: providers count it by what it shows) and its `max_tokens`.
fn tokens_asked(request: &ChatRequest<'_>) -> u64 {
    let text_bytes = (request.body_len as u64).saturating_sub(request.inline_data_bytes);
    (text_bytes / CONTEXT_BYTES_PER_TOKEN).saturating_add(request.max_output_tokens.unwrap_or(0))
}

impl Narrowing<'_> {
    fn exclusion(&self, e: &Endpoint) -> Option<Exclusion> {
        let collects = e.data.retains_prompts || e.data.trains_on_prompts;
        let p = self.prefs;
        if let Some(org) = self.organization {
            if org.enforce_zdr && !e.data.zero_data_retention {
                return Some(Exclusion::OrganizationZdr);
            }
            if org.deny_data_collection && collects {
                return Some(Exclusion::OrganizationDataCollection);
            }
        }
        if p.zdr == Some(true) && !e.data.zero_data_retention {
            return Some(Exclusion::Zdr);
        }
        if p.data_collection == Some(DataCollection::Deny) && collects {
            return Some(Exclusion::DataCollection);
        }
        if let Some(only) = &p.only
            && !only.iter().any(|name| names(name, e))
        {
            return Some(Exclusion::NotInOnly);
        }
        if let Some(ignore) = &p.ignore
            && ignore.iter().any(|name| names(name, e))
        {
            return Some(Exclusion::Ignored);
        }
        if let Some(levels) = &p.quantizations {
            let level = e.quantization.as_deref().unwrap_or("unknown");
            if !levels.iter().any(|l| l == level) {
                return Some(Exclusion::Quantization);
            }
        }
        if let Some(max) = &p.max_price
            && above_max_price(e, max)
        {
            return Some(Exclusion::MaxPrice);
        }
        if self.free_only && !is_free(e) {
            return Some(Exclusion::NotFree);
        }
        if e.context_length > 0 && self.tokens_asked > u64::from(e.context_length) {
            // Sent anyway, it would be refused, or truncated and billed.
            return Some(Exclusion::ContextLength);
        }
        if self.needed.iter().any(|param| !e.supports(param)) {
            return Some(if self.every_parameter {
                Exclusion::Parameters
            } else {
                Exclusion::Tools
            });
        }
        if p.enforce_distillable_text == Some(true) {
            return Some(Exclusion::Distillation);
        }
        None
    }
}

/// Whether a provider name in a preference names this endpoint: its slug, display name or tag
/// (a slug names every variant of its provider), compared without regard to case.
pub fn names(name: &str, e: &Endpoint) -> bool {
    let name = name.trim();
    name.eq_ignore_ascii_case(&e.provider_id)
        || name.eq_ignore_ascii_case(&e.provider_name)
        || name.eq_ignore_ascii_case(&e.tag)
        || e.tag
            .split_once('/')
            .is_some_and(|(provider, _)| name.eq_ignore_ascii_case(provider))
}

/// Whether any price is above its ceiling. Prompt and completion ceilings are per million
/// tokens; a price the catalogue does not know cannot be shown to be within a ceiling.
fn above_max_price(e: &Endpoint, max: &switchyard_policy::routing::MaxPrice) -> bool {
    const MILLION: u64 = 1_000_000;
    let above = |price: Option<Money>, ceiling: Option<Money>, per_million: bool| match ceiling {
        None => false,
        Some(ceiling) => match price {
            None => true,
            Some(p) => {
                let p = if per_million {
                    p.saturating_mul(MILLION)
                } else {
                    p
                };
                p > ceiling
            }
        },
    };
    let p = &e.prices;
    above(p.prompt, max.prompt, true)
        || above(p.completion, max.completion, true)
        || (p.request.is_some() && above(p.request, max.request, false))
        || (p.image.is_some() && above(p.image, max.image, false))
}

fn is_free(e: &Endpoint) -> bool {
    let zero = |p: Option<Money>| p == Some(Money::ZERO);
    let none_or_zero = |p: Option<Money>| p.is_none_or(|p| p == Money::ZERO);
    zero(e.prices.prompt)
        && zero(e.prices.completion)
        && none_or_zero(e.prices.request)
        && none_or_zero(e.prices.image)
}

/// A model's endpoints in the order they are tried (see the module's documentation).
fn order<'a>(
    candidate: &Candidate<'a>,
    mut kept: Vec<&'a Arc<Endpoint>>,
    prefs: &ProviderPreferences,
    conditions: &dyn Conditions,
) -> Vec<Ranked<'a>> {
    let no_fallbacks = prefs.allow_fallbacks == Some(false);
    let position = |e: &Endpoint| {
        prefs
            .order
            .as_ref()
            .and_then(|order| order.iter().position(|name| names(name, e)))
    };
    if prefs.order.is_some() && no_fallbacks {
        // Only the providers named; the others are not even asked about.
        kept.retain(|e| position(e).is_some());
    }
    let mut ranked: Vec<Ranked<'a>> = kept
        .into_iter()
        .map(|e| Ranked::new(e, conditions.availability(&e.health_id)))
        .collect();
    if prefs.order.is_some() {
        // The named providers first, in the order named; the rest after, balanced.
        let (mut named, mut rest): (Vec<Ranked<'a>>, Vec<Ranked<'a>>) = ranked
            .into_iter()
            .partition(|r| position(r.endpoint).is_some());
        named.sort_by_key(|r| position(r.endpoint).unwrap_or(usize::MAX));
        balance(&mut rest, conditions);
        named.extend(rest);
        ranked = named;
    } else if let Some(sort) = prefs.sort {
        ranked.sort_by(|a, b| compare(sort.by, a, b, conditions));
        deprioritize_by_preferences(&mut ranked, prefs, conditions);
    } else {
        balance(&mut ranked, conditions);
        if let Some(sticky) = conditions.sticky(&candidate.model.id)
            && let Some(i) = ranked
                .iter()
                .position(|r| *r.endpoint.health_id == *sticky && !r.is_down())
        {
            let r = ranked.remove(i);
            ranked.insert(0, r);
        }
        deprioritize_by_preferences(&mut ranked, prefs, conditions);
    }
    // Endpoints in outage go last (stable: the order above holds within each group).
    ranked.sort_by_key(Ranked::is_down);
    if no_fallbacks && prefs.order.is_none() {
        ranked.truncate(1);
    }
    ranked
}

/// OpenRouter's default balancing: catalogue priority tiers in order; within a tier, a weighted
/// random draw without replacement, each endpoint weighted by the inverse square of its price.
fn balance(ranked: &mut [Ranked<'_>], conditions: &dyn Conditions) {
    ranked.sort_by_key(|r| r.endpoint.priority);
    let mut start = 0;
    while start < ranked.len() {
        let tier = ranked[start].endpoint.priority;
        let end = start
            + ranked[start..]
                .iter()
                .take_while(|r| r.endpoint.priority == tier)
                .count();
        draw(&mut ranked[start..end], conditions);
        start = end;
    }
}

fn draw(tier: &mut [Ranked<'_>], conditions: &dyn Conditions) {
    let known_max = tier
        .iter()
        .filter_map(|r| blended_price(r.endpoint))
        .fold(0.0_f64, f64::max);
    let weight = |r: &Ranked<'_>| {
        // Free endpoints win the draw among priced ones; an unpriced one weighs as the dearest.
        let price = blended_price(r.endpoint).unwrap_or(known_max).max(1e-15);
        1.0 / (price * price)
    };
    for i in 0..tier.len() {
        let rest = &tier[i..];
        let total: f64 = rest.iter().map(weight).sum();
        if !(total.is_finite() && total > 0.0) {
            break;
        }
        let mut target = conditions.random() * total;
        let mut pick = rest.len() - 1;
        for (j, r) in rest.iter().enumerate() {
            target -= weight(r);
            if target < 0.0 {
                pick = j;
                break;
            }
        }
        tier.swap(i, i + pick);
    }
}

/// Price per token of prompt and completion together, as the balancing and `sort: price` rank
/// endpoints; `None` when either is unknown.
fn blended_price(e: &Endpoint) -> Option<f64> {
    let p = e.prices.prompt?.as_usd_f64();
    let c = e.prices.completion?.as_usd_f64();
    Some(p + c)
}

/// `sort`'s ranking: ascending price, descending throughput, ascending latency (the fleet's
/// p50); endpoints without a figure rank after those with one, in catalogue priority order.
fn compare(by: SortBy, a: &Ranked<'_>, b: &Ranked<'_>, conditions: &dyn Conditions) -> Ordering {
    let figure = |r: &Ranked<'_>| -> Option<f64> {
        match by {
            SortBy::Price => blended_price(r.endpoint),
            SortBy::Throughput => conditions
                .health(&r.endpoint.health_id)
                .and_then(|h| h.throughput)
                .map(|t| -t.p50),
            SortBy::Latency => conditions
                .health(&r.endpoint.health_id)
                .and_then(|h| h.latency_ms)
                .map(|l| l.p50),
        }
    };
    let by_figure = match (figure(a), figure(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_figure.then(a.endpoint.priority.cmp(&b.endpoint.priority))
}

/// Whether an endpoint meets `preferred_max_latency` and `preferred_min_throughput` (an endpoint
/// without figures does).
fn meets_preferences(
    r: &Ranked<'_>,
    prefs: &ProviderPreferences,
    conditions: &dyn Conditions,
) -> bool {
    let Some(h) = conditions.health(&r.endpoint.health_id) else {
        return true;
    };
    prefs
        .preferred_max_latency
        .as_ref()
        .is_none_or(|c| h.meets_latency(c))
        && prefs
            .preferred_min_throughput
            .as_ref()
            .is_none_or(|c| h.meets_throughput(c))
}

/// Endpoints that miss `preferred_max_latency` or `preferred_min_throughput` go behind those
/// that meet them; both groups keep their order.
fn deprioritize_by_preferences(
    ranked: &mut [Ranked<'_>],
    prefs: &ProviderPreferences,
    conditions: &dyn Conditions,
) {
    if prefs.preferred_max_latency.is_none() && prefs.preferred_min_throughput.is_none() {
        return;
    }
    ranked.sort_by_key(|r| !meets_preferences(r, prefs, conditions));
}

/// The attempts over `ranked` endpoints of `model` for `key`; `byok` is the key's workspace's
/// credentials. Empty when no endpoint may be used.
fn plan<'a>(
    model: &'a Arc<Model>,
    ranked: &[Ranked<'a>],
    key: &ApiKey,
    byok: &'a [ByokCredential],
) -> Vec<Attempt<'a>> {
    let mut attempts = Vec::with_capacity(MAX_ATTEMPTS_PER_MODEL);
    for r in ranked {
        if attempts.len() >= MAX_ATTEMPTS_PER_MODEL {
            break;
        }
        let endpoint = r.endpoint;
        let own = of_provider(byok, &endpoint.provider_id);
        let usable = |fallback: bool| {
            own.iter()
                .filter(move |c| c.is_fallback == fallback && c.applies_to(&model.id, key))
                .map(|c| Attempt {
                    model,
                    endpoint,
                    credential: Some(c),
                })
        };
        attempts.extend(usable(false));
        // An unusable credential still counts here: dropping it must not loosen anything.
        let shared_allowed = !own.iter().any(|c| c.excludes_gateway_for(&model.id));
        if shared_allowed {
            attempts.push(Attempt {
                model,
                endpoint,
                credential: None,
            });
        }
        attempts.extend(usable(true));
    }
    attempts.truncate(MAX_ATTEMPTS_PER_MODEL);
    attempts
}

/// The run of `credentials` (sorted by provider) for `provider`.
fn of_provider<'a>(credentials: &'a [ByokCredential], provider: &str) -> &'a [ByokCredential] {
    let start = credentials.partition_point(|c| &*c.provider_id < provider);
    let len = credentials[start..].partition_point(|c| &*c.provider_id == provider);
    &credentials[start..start + len]
}

/// Whether every attempt is BYOK, so that limits which leave BYOK spend out need reserve
/// nothing for this request.
pub fn all_byok(attempts: &[Attempt<'_>]) -> bool {
    !attempts.is_empty() && attempts.iter().all(Attempt::is_byok)
}

fn guardrail_reject(refusal: GuardrailRefusal) -> Reject {
    Reject::from(refusal)
}

fn byok_required(model: &str) -> Reject {
    Reject::new(
        Kind::NotFound,
        format!(
            "No endpoint can serve {model}: its providers take only the organization's own keys, and none applies to this request"
        ),
    )
    .with_metadata(json!({ "reason": "byok_required", "model": model }))
}

/// 404 naming why each endpoint was left out; the reason is the one they share, if they do. A
/// request too long for every endpoint is the client's to fix: 400, as OpenRouter answers it.
fn no_endpoint(model: &str, excluded: &[(&Arc<Endpoint>, Exclusion)]) -> Reject {
    let shared = match excluded.first() {
        Some((_, first)) if excluded.iter().all(|(_, why)| why == first) => Some(*first),
        _ => None,
    };
    let reason = shared.map_or("no_endpoint_matches", Exclusion::label);
    let kind = if shared == Some(Exclusion::ContextLength) {
        Kind::BadRequest
    } else {
        Kind::NotFound
    };
    let detail: Vec<String> = excluded
        .iter()
        .map(|(e, why)| format!("{} ({})", e.provider_name, why.describe()))
        .collect();
    let by_provider: serde_json::Map<String, Value> = excluded
        .iter()
        .map(|(e, why)| (e.tag.clone(), Value::String(why.label().to_owned())))
        .collect();
    Reject::new(
        kind,
        format!(
            "No endpoints found for {model} that match this request: {}",
            detail.join("; ")
        ),
    )
    .with_metadata(json!({ "reason": reason, "model": model, "excluded": by_provider }))
}

#[cfg(test)]
mod tests;
