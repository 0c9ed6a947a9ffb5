//! `POST /chat/completions`: the Pingora-facing adapter that runs the stages in order.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use pingora_core::protocols::http::ServerSession;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::json;

use super::Gateway;
use super::respond::{self, respond_reject};
use super::upstream::{self, Opened};
use crate::reject::{Kind, Reject};
use crate::snapshot::{ApiKey, Endpoint};
use crate::spend::{Hold, Verdict};
use crate::stages::authenticate::{Purpose, authenticate};
use crate::stages::meter::{self, Metered, Pricing, SseRelay};
use crate::stages::request::ChatRequest;
use crate::stages::settle::{Outcome, settle};
use crate::stages::{admit, forward, guardrails, resolve, route};

/// How the exchange with the client ended, for connection reuse.
pub enum Ending {
    Reusable,
    Close,
}

pub async fn handle(gw: &Gateway, session: &mut ServerSession) -> Ending {
    let started = Instant::now();
    let created_at_ms = now_ms();
    match run(gw, session, started, created_at_ms).await {
        Ok(ending) => ending,
        Err(reject) => {
            // Read a small unread body before answering, so the client sees the error rather
            // than a reset connection; a large one is not worth reading just to refuse it.
            if reject.kind != Kind::PayloadTooLarge
                && !session.is_body_done()
                && declared_length(session).is_some_and(|len| len <= DRAIN_LIMIT)
            {
                let _ = session.drain_request_body().await;
            }
            let ok = respond_reject(session, &reject).await;
            if ok && reject.kind == Kind::PayloadTooLarge {
                linger(session).await;
            }
            // An unread request body would corrupt the next request on this connection.
            if ok && session.is_body_done() {
                Ending::Reusable
            } else {
                Ending::Close
            }
        }
    }
}

async fn run(
    gw: &Gateway,
    session: &mut ServerSession,
    started: Instant,
    created_at_ms: i64,
) -> Result<Ending, Reject> {
    let snapshot = gw
        .snapshots
        .load()
        .ok_or_else(|| Reject::new(Kind::NotReady, "Gateway has no configuration yet"))?;
    let authorization = session.get_header("authorization").map(|v| v.as_bytes());
    let key = authenticate(&snapshot, authorization, Purpose::Inference, created_at_ms)?;
    let body = read_body(session, gw.limits.max_body_bytes).await?;
    let request = ChatRequest::parse(&body)?;
    let model = resolve::resolve(&snapshot, &request.model)?;
    let generation_id = generation_id();
    // admit: guardrails from the snapshot, then one round trip reserves the worst case on every
    // counter that applies.
    let allowed = guardrails::evaluate(&snapshot.guardrails_for(key), &model.id, &model.endpoints)
        .map_err(Reject::from)?;
    let attempts = route::plan(
        &model,
        &allowed,
        key,
        snapshot.byok.of_workspace(&key.workspace_id),
    );
    if attempts.is_empty() {
        return Err(Reject::new(
            Kind::NotFound,
            format!(
                "No endpoint can serve {}: its providers take only the organization's own keys, and none applies to this request",
                model.id
            ),
        )
        .with_metadata(json!({ "reason": "byok_required" })));
    }
    let is_byok = route::all_byok(&attempts);
    let limits = admit::counted(snapshot.limits_for(key), is_byok);
    let worst = admit::worst_case(&request, attempts.iter().map(|a| a.endpoint));
    let hold = admit::hold(
        &key.organization_id,
        &generation_id,
        &limits,
        worst,
        is_byok,
        created_at_ms,
    );
    let mut hold = match gw.spend.admit(hold, created_at_ms).await {
        Verdict::Admitted(hold) => Some(hold),
        Verdict::Refused {
            index,
            spent_pico,
            held_pico,
        } => {
            let reject = match limits.get(index) {
                Some(limit) => admit::refusal(limit, spent_pico, held_pico),
                None => Reject::new(Kind::Internal, "Spend limit refused"),
            };
            return Err(reject);
        }
        Verdict::Unavailable => {
            return Err(Reject::new(
                Kind::SpendUnavailable,
                "Spend limits cannot be checked right now; try again shortly",
            ));
        }
    };
    let app_title = session
        .get_header("x-title")
        .or_else(|| session.get_header("x-openrouter-title"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);

    let mut last = None;
    for attempt in &attempts {
        let endpoint = attempt.endpoint;
        let upstream_body = forward::upstream_body(&request, endpoint);
        match upstream::open(
            &gw.connector,
            attempt,
            upstream_body,
            request.stream,
            &gw.timeouts,
        )
        .await
        {
            Ok(opened) => {
                let Some(hold) = hold.take() else {
                    return Err(Reject::new(Kind::Internal, "Spend hold already used"));
                };
                let exchange = Exchange {
                    gw,
                    key,
                    endpoint,
                    is_byok: attempt.is_byok(),
                    model: &model.id,
                    generation_id: &generation_id,
                    started,
                    created_at_ms,
                    estimated_prompt_tokens: request.estimated_prompt_tokens(),
                    app_title: app_title.as_deref(),
                };
                return Ok(if request.stream {
                    exchange.relay_stream(session, opened, hold).await
                } else {
                    exchange.relay_completion(session, opened, hold).await
                });
            }
            Err(reject) if reject.kind.retryable() => {
                gw.health.record(
                    &endpoint.health_id,
                    false,
                    started.elapsed().as_millis() as u64,
                );
                tracing::warn!(
                    provider = %endpoint.provider_id,
                    kind = reject.kind.label(),
                    "provider attempt failed; trying the next endpoint"
                );
                last = Some(reject);
            }
            Err(reject) => {
                release(gw, hold);
                return Err(reject);
            }
        }
    }
    release(gw, hold);
    Err(last.unwrap_or_else(|| Reject::new(Kind::UpstreamUnavailable, "No provider available")))
}

/// Largest unread body drained before an error response.
const DRAIN_LIMIT: usize = 1024 * 1024;

fn declared_length(session: &ServerSession) -> Option<usize> {
    session
        .get_header("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// Most of a refused body read and discarded after the 413, and for how long: closing a socket
/// with unread data makes the kernel send a reset, which can reach the client before the 413
/// does (nginx's lingering close, for the same reason).
const LINGER_BYTES: usize = 64 * 1024 * 1024;
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);

async fn linger(session: &mut ServerSession) {
    let discard = async {
        let mut read = 0;
        while read < LINGER_BYTES {
            match session.read_request_body().await {
                Ok(Some(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, discard).await;
}

/// Frees a reservation no provider call used (nothing was generated, nothing is charged).
fn release(gw: &Gateway, hold: Option<Hold>) {
    if let Some(hold) = hold {
        gw.spend.settle(hold, 0, false, now_ms());
    }
}

/// Reads the request body, refusing more than `max` bytes with 413 before reading it all.
async fn read_body(session: &mut ServerSession, max: usize) -> Result<Bytes, Reject> {
    let too_large = || {
        Reject::new(
            Kind::PayloadTooLarge,
            format!("Request body exceeds the limit of {max} bytes"),
        )
    };
    let declared = declared_length(session);
    if declared.is_some_and(|len| len > max) {
        return Err(too_large());
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(16 * 1024));
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.freeze()),
            Err(e) => {
                let kind = if matches!(e.etype(), pingora_error::ErrorType::ReadTimedout) {
                    Kind::ClientTimeout
                } else {
                    Kind::BadRequest
                };
                return Err(Reject::new(kind, "Could not read the request body"));
            }
        }
    }
}

struct Exchange<'a> {
    gw: &'a Gateway,
    key: &'a ApiKey,
    endpoint: &'a Endpoint,
    /// Sent with the organization's own credential.
    is_byok: bool,
    model: &'a str,
    generation_id: &'a str,
    started: Instant,
    created_at_ms: i64,
    estimated_prompt_tokens: u64,
    app_title: Option<&'a str>,
}

impl Exchange<'_> {
    fn pricing(&self) -> Pricing<'_> {
        Pricing {
            generation_id: self.generation_id,
            prices: &self.endpoint.prices,
            is_byok: self.is_byok,
            model: self.model,
            provider_name: &self.endpoint.provider_name,
        }
    }

    fn settle(
        &self,
        hold: Hold,
        metered: &Metered,
        status: u16,
        streamed: bool,
        cancelled: bool,
        ttfb: Option<u64>,
    ) {
        let outcome = Outcome {
            generation_id: self.generation_id,
            key: self.key,
            model: self.model,
            endpoint: Some(self.endpoint),
            is_byok: self.is_byok,
            created_at_ms: self.created_at_ms,
            latency_ms: self.started.elapsed().as_millis() as u64,
            time_to_first_byte_ms: ttfb,
            status,
            streamed,
            cancelled,
            metered,
            estimated_prompt_tokens: self.estimated_prompt_tokens,
            app_title: self.app_title,
        };
        if let Some(e) = outcome.endpoint {
            self.gw
                .health
                .record(&e.health_id, status < 500, outcome.latency_ms);
        }
        // The charge is the usage event's cost, so the counters add up to the ledger.
        let cost = outcome.cost().map_or(0, |c| c.0);
        settle(&outcome, &self.gw.usage);
        self.gw.spend.settle(hold, cost, self.is_byok, now_ms());
    }

    async fn relay_completion(
        &self,
        session: &mut ServerSession,
        opened: Opened,
        hold: Hold,
    ) -> Ending {
        let Opened {
            session: mut upstream,
            peer,
        } = opened;
        let ttfb = self.started.elapsed().as_millis() as u64;
        let body = upstream::read_capped(&mut upstream, self.gw.limits.max_response_bytes).await;
        let Some(body) = body else {
            upstream.shutdown().await;
            let reject = Reject::new(
                Kind::UpstreamUnavailable,
                "Provider response was cut off or too large",
            );
            self.settle(hold, &Metered::default(), 502, false, false, Some(ttfb));
            return finish_with(respond_reject(session, &reject).await);
        };
        self.gw
            .connector
            .release_http_session(upstream, &peer, Some(self.gw.timeouts.idle_pool))
            .await;
        let (out, metered) = match meter::rewrite_completion(&body, &self.pricing()) {
            Some(rewritten) => rewritten,
            None => (body, Metered::default()),
        };
        let delivered = respond::respond(session, 200, "application/json", Bytes::from(out)).await;
        self.settle(hold, &metered, 200, false, !delivered, Some(ttfb));
        finish_with(delivered)
    }

    async fn relay_stream(
        &self,
        session: &mut ServerSession,
        opened: Opened,
        hold: Hold,
    ) -> Ending {
        let Opened {
            session: mut upstream,
            peer,
        } = opened;
        let ttfb = Some(self.started.elapsed().as_millis() as u64);
        let pricing = self.pricing();
        let mut relay = SseRelay::new();
        let client_ok = match respond::header(200, "text/event-stream", None) {
            Some(mut header) => {
                let _ = header.insert_header("cache-control", "no-cache");
                session
                    .write_response_header(Box::new(header))
                    .await
                    .is_ok()
            }
            None => false,
        };
        let mut cancelled = !client_ok;
        let mut provider_failed = false;
        // Sized per chunk rather than kept large: thousands of streams sit idle between tokens.
        let mut out = Vec::new();
        while !cancelled {
            match upstream.read_response_body().await {
                Ok(Some(chunk)) => {
                    if !relay.push(&chunk, &pricing, &mut out) {
                        tracing::warn!(provider = %self.endpoint.provider_id, "provider sent an oversized stream event");
                        provider_failed = true;
                        break;
                    }
                    if !out.is_empty() {
                        let data = Bytes::from(std::mem::take(&mut out));
                        if session.write_response_body(data, false).await.is_err() {
                            cancelled = true;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(provider = %self.endpoint.provider_id, error = %e, "provider stream cut off");
                    provider_failed = true;
                    break;
                }
            }
        }
        if cancelled || provider_failed {
            upstream.shutdown().await;
        } else {
            self.gw
                .connector
                .release_http_session(upstream, &peer, Some(self.gw.timeouts.idle_pool))
                .await;
        }
        if !cancelled {
            relay.finish(&pricing, &mut out);
            if provider_failed && !relay.state.saw_done {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(self.stream_error_chunk().as_bytes());
                out.extend_from_slice(b"\n\n");
                relay.state.metered.finish_reason = Some("error".into());
            }
            cancelled = session
                .write_response_body(Bytes::from(out), true)
                .await
                .is_err();
        }
        self.settle(hold, &relay.state.metered, 200, true, cancelled, ttfb);
        finish_with(!cancelled && !provider_failed)
    }

    /// A mid-stream failure, as OpenRouter reports one: a chunk with an `error` member.
    fn stream_error_chunk(&self) -> String {
        json!({
            "id": self.generation_id,
            "object": "chat.completion.chunk",
            "created": self.created_at_ms / 1000,
            "model": self.model,
            "choices": [{ "index": 0, "delta": {}, "finish_reason": "error" }],
            "error": {
                "code": 502,
                "message": format!("Provider {} stream was cut off", self.endpoint.provider_name),
                "metadata": { "error_type": "provider_unavailable" },
            },
        })
        .to_string()
    }
}

fn finish_with(delivered: bool) -> Ending {
    if delivered {
        Ending::Reusable
    } else {
        Ending::Close
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `gen-<unix seconds>-<20 random alphanumerics>`, in the style of OpenRouter's ids.
fn generation_id() -> String {
    let secs = now_ms() / 1000;
    let suffix: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(20)
        .map(char::from)
        .collect();
    format!("gen-{secs}-{suffix}")
}
