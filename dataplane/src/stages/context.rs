//! The request context: one per request, carried through the stages and filled in by each in
//! turn. Everything `settle` needs to end the exchange is here, so every admitted request, served
//! or not, ends through the one function `settle::finish`.

use std::time::Instant;

use switchyard_policy::Money;

use crate::snapshot::{ApiKey, Endpoint};
use crate::spend::Hold;
use crate::stages::forward::{Shaping, Tried};
use crate::stages::meter::{Metered, Pricing};
use crate::stages::request::ChatRequest;
use crate::stages::resolve::Resolved;
use crate::stages::route::Attempt;
use crate::sticky::SessionRef;

pub struct Context<'a> {
    // authenticate, parse, resolve, route:
    pub key: &'a ApiKey,
    pub request: ChatRequest<'a>,
    /// The models that may serve, the preset, the routing preferences.
    pub resolved: Resolved<'a>,
    pub attempts: Vec<Attempt<'a>>,
    pub generation_id: String,
    pub started: Instant,
    pub created_at_ms: i64,
    /// `X-Title` (or `X-OpenRouter-Title`), for the generation's record.
    pub app_title: Option<String>,
    /// The client's `HTTP-Referer` (the app's URL).
    pub http_referer: Option<String>,
    /// admit: the reservation, ended by settle.
    pub hold: Option<Hold>,
    /// forward: every attempt made, and which one answered.
    pub tried: Vec<Tried>,
    pub served: Option<usize>,
    pub ttfb_ms: Option<u64>,
    /// meter: what the response used.
    pub metered: Metered,
    /// The status the client saw.
    pub status: u16,
    /// The client went away before the response was delivered.
    pub cancelled: bool,
    /// The provider answered, then failed (a cut or oversized body or stream).
    pub provider_failed: bool,
}

impl<'a> Context<'a> {
    pub fn new(
        key: &'a ApiKey,
        request: ChatRequest<'a>,
        resolved: Resolved<'a>,
        attempts: Vec<Attempt<'a>>,
        generation_id: String,
        started: Instant,
        created_at_ms: i64,
    ) -> Context<'a> {
        Context {
            key,
            request,
            resolved,
            attempts,
            generation_id,
            started,
            created_at_ms,
            app_title: None,
            http_referer: None,
            hold: None,
            tried: Vec::new(),
            served: None,
            ttfb_ms: None,
            metered: Metered::default(),
            status: 0,
            cancelled: false,
            provider_failed: false,
        }
    }

    /// The attempt that answered, once forward found one.
    pub fn served_attempt(&self) -> Option<&Attempt<'a>> {
        self.served.and_then(|i| self.attempts.get(i))
    }

    pub fn served_endpoint(&self) -> Option<&'a Endpoint> {
        self.served_attempt().map(|a| &**a.endpoint)
    }

    /// Whether the provider that answered bills the organization directly (BYOK).
    pub fn is_byok(&self) -> bool {
        self.served_attempt().is_some_and(Attempt::is_byok)
    }

    /// What shapes each provider's request body: the preset and the `provider` options.
    pub fn shaping(&self) -> Shaping<'_> {
        Shaping {
            preset: self.resolved.preset.map(|p| &**p),
            preferences: Some(&self.resolved.preferences),
        }
    }

    /// What the request's session is known by, for sticky routing: `session_id` (or
    /// `x-session-id`), else `prompt_cache_key`, else `user`.
    pub fn session(&self) -> Option<SessionRef<'_>> {
        crate::sticky::session_of(&self.key.workspace_id, &self.request)
    }

    /// What the meter writes into the client's view of the response that `served` gave: the
    /// model is the one that served (a fallback model, perhaps), as OpenRouter reports it.
    pub fn pricing(&self) -> Option<Pricing<'_>> {
        let attempt = self.served_attempt()?;
        let endpoint = &**attempt.endpoint;
        Some(Pricing {
            generation_id: &self.generation_id,
            prices: &endpoint.prices,
            ceiling: self.ceiling(),
            is_byok: self.is_byok(),
            model: &attempt.model.id,
            provider_name: &endpoint.provider_name,
            created: self.created_at_ms / 1000,
        })
    }

    /// The most this generation may be charged: what admission reserved.
    pub fn ceiling(&self) -> Option<Money> {
        self.hold.as_ref().map(|h| h.worst)
    }

    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}
