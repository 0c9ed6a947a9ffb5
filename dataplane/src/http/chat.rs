//! `POST /chat/completions`: the Pingora-facing adapter. It reads and writes bytes and calls the
//! stages in the order of `docs/request-path.md`; every decision is a stage's.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use pingora_core::protocols::http::ServerSession;
use rand::Rng;
use rand::distr::Alphanumeric;

use std::sync::Arc;

use switchyard_policy::routing::EndpointHealth;

use super::Gateway;
use super::respond::{self, respond_reject_as};
use super::upstream::Opened;
use crate::dialect::Dialect;
use crate::health::{Availability, FleetView};
use crate::now_ms;
use crate::providers::{self, StreamDecoder};
use crate::reject::{Kind, Reject};
use crate::stages::authenticate::{Purpose, authenticate};
use crate::stages::context::Context;
use crate::stages::forward::{RetryPolicy, Shaping};
use crate::stages::meter::{self, Pricing, SseRelay};
use crate::stages::request::{ChatRequest, Operation};
use crate::stages::route::Conditions;
use crate::stages::settle::{self, Sinks};
use crate::stages::{admit, forward, resolve, route};
use crate::sticky::{SessionRef, session_of};

/// How the exchange with the client ended, for connection reuse.
pub enum Ending {
    Reusable,
    Close,
}

/// `POST /chat/completions`, or `POST /presets/<slug>/chat/completions` with `preset`; in
/// another dialect, `POST /messages` or `POST /responses`.
pub async fn handle(
    gw: &Gateway,
    session: &mut ServerSession,
    preset: Option<String>,
    dialect: Dialect,
) -> Ending {
    match run(gw, session, preset, dialect).await {
        Ok(ending) => ending,
        Err(reject) => refuse(session, &reject, dialect).await,
    }
}

/// What route reads on a live dataplane: this dataplane's breakers and the fleet's view (loaded
/// once for the request), the session's sticky endpoint, and a random draw.
struct Live<'r> {
    gw: &'r Gateway,
    fleet: Arc<FleetView>,
    session: Option<SessionRef<'r>>,
    now_ms: i64,
}

impl Conditions for Live<'_> {
    fn availability(&self, health_id: &str) -> Availability {
        if self.gw.ignore_provider_health {
            return Availability::Up;
        }
        self.gw
            .health
            .availability(health_id, &self.fleet, self.now_ms)
    }

    fn health(&self, health_id: &str) -> Option<&EndpointHealth> {
        self.fleet.endpoints.get(health_id)
    }

    fn random(&self) -> f64 {
        rand::random::<f64>()
    }

    fn sticky(&self, model_id: &str) -> Option<Arc<str>> {
        self.gw.sticky.get(self.session?, model_id)
    }
}

/// authenticate → parse → resolve → route → admit, then (admitted) forward → meter → settle.
async fn run(
    gw: &Gateway,
    session: &mut ServerSession,
    path_preset: Option<String>,
    dialect: Dialect,
) -> Result<Ending, Reject> {
    let started = Instant::now();
    let created_at_ms = now_ms();
    let snapshot = gw
        .snapshots
        .load()
        .ok_or_else(|| Reject::new(Kind::NotReady, "Gateway has no configuration yet"))?;
    // Anthropic's SDKs send the key as `x-api-key` (or, given a token, as a bearer).
    let api_key = match (dialect, session.get_header("authorization")) {
        (Dialect::AnthropicMessages, None) => session
            .get_header("x-api-key")
            .map(|k| [b"Bearer ".as_slice(), k.as_bytes()].concat()),
        _ => None,
    };
    let authorization = api_key
        .as_deref()
        .or_else(|| session.get_header("authorization").map(|v| v.as_bytes()));
    let key = authenticate(&snapshot, authorization, Purpose::Inference, created_at_ms)?;
    let body = read_body(session, gw.limits.max_body_bytes).await?;
    let body = dialect.request(body)?;
    let mut request = ChatRequest::parse_as(&body, dialect.operation())?;
    if let Some(slug) = path_preset {
        match &request.preset {
            Some(named) if *named != slug => {
                return Err(Reject::new(
                    Kind::BadRequest,
                    format!(
                        "The request names two presets: {slug} in the path and {named} in `preset`"
                    ),
                ));
            }
            _ => request.preset = Some(slug),
        }
    }
    if request.session_id.is_none() {
        request.session_id = session
            .get_header("x-session-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.chars().count() <= 256)
            .map(str::to_owned);
    }
    let resolved = resolve::resolve(&snapshot, key, &request)?;
    let conditions = Live {
        gw,
        fleet: gw.health.fleet(),
        session: session_of(&key.workspace_id, &request),
        now_ms: created_at_ms,
    };
    let attempts = route::route(&snapshot, key, &resolved, &request, &conditions)?;
    drop(conditions);
    let generation_id = generation_id(created_at_ms);
    let hold = admit::admit(
        &gw.spend,
        &snapshot,
        key,
        &request,
        resolved.preset.map(|p| &**p),
        &attempts,
        &generation_id,
        created_at_ms,
    )
    .await?;

    let mut ctx = Context::new(
        key,
        request,
        resolved,
        attempts,
        generation_id,
        started,
        created_at_ms,
    );
    ctx.hold = Some(hold);
    ctx.app_title = session
        .get_header("x-title")
        .or_else(|| session.get_header("x-openrouter-title"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    ctx.http_referer = session
        .get_header("http-referer")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let ending = exchange(gw, session, &mut ctx, dialect).await;
    let sinks = Sinks {
        spend: &gw.spend,
        usage: &gw.usage,
        health: &gw.health,
        sticky: &gw.sticky,
    };
    settle::finish(&sinks, ctx, now_ms());
    Ok(ending)
}

/// forward, then relay the response through the meter. Whatever happens is recorded in `ctx`
/// for settle.
async fn exchange(
    gw: &Gateway,
    session: &mut ServerSession,
    ctx: &mut Context<'_>,
    dialect: Dialect,
) -> Ending {
    let policy = RetryPolicy {
        budget: &gw.retry_budget,
        retry_unanswered: gw.retry_unanswered,
        quotas: &gw.spend,
        health: (!gw.ignore_provider_health).then_some(&*gw.health),
    };
    let shaping = Shaping {
        preset: ctx.resolved.preset.map(|p| &**p),
        preferences: Some(&ctx.resolved.preferences),
    };
    let mut tried = Vec::with_capacity(ctx.attempts.len());
    let mut cut = gw.cut.clone();
    let forwarded = tokio::select! {
        forwarded = forward::forward(
            &*gw.upstream,
            &ctx.request,
            shaping,
            &ctx.attempts,
            &policy,
            &mut tried,
        ) => forwarded,
        Ok(_) = cut.wait_for(|cut| *cut) => Err(shutting_down()),
    };
    ctx.tried = tried;
    let opened = match forwarded {
        Ok((served, opened)) => {
            ctx.served = Some(served);
            ctx.ttfb_ms = Some(ctx.elapsed_ms());
            opened
        }
        Err(reject) => {
            ctx.status = reject.status();
            return refuse(session, &reject, dialect).await;
        }
    };
    if ctx.request.stream {
        relay_stream(gw, session, ctx, opened, dialect).await
    } else {
        relay_completion(gw, session, ctx, opened, dialect).await
    }
}

async fn relay_completion(
    gw: &Gateway,
    session: &mut ServerSession,
    ctx: &mut Context<'_>,
    mut upstream: Opened,
    dialect: Dialect,
) -> Ending {
    let mut cut = gw.cut.clone();
    let read = tokio::select! {
        body = upstream.read_capped(gw.limits.max_response_bytes) => Some(body),
        Ok(_) = cut.wait_for(|cut| *cut) => None,
    };
    let Some(read) = read else {
        // Still generating when shutdown ends: the client gets an error, the prompt is charged.
        drop(upstream);
        ctx.cancelled = true;
        let reject = shutting_down();
        ctx.status = reject.status();
        return finish_with(respond_reject_as(session, &reject, dialect).await);
    };
    let Some(body) = read else {
        drop(upstream);
        ctx.provider_failed = true;
        let reject = Reject::new(
            Kind::UpstreamUnavailable,
            "Provider response was cut off or too large",
        );
        ctx.status = reject.status();
        return finish_with(respond_reject_as(session, &reject, dialect).await);
    };
    upstream.release();
    let api = ctx.served_endpoint().map(|e| e.api).unwrap_or_default();
    let body = providers::completion(api, body, ctx.created_at_ms / 1000);
    let Some(body) = body else {
        ctx.provider_failed = true;
        let reject = Reject::new(
            Kind::UpstreamUnavailable,
            "Provider response was not in its API's format",
        );
        ctx.status = reject.status();
        return finish_with(respond_reject_as(session, &reject, dialect).await);
    };
    let pricing = ctx.pricing();
    let unpriced = pricing.as_ref().is_some_and(Pricing::unpriced);
    let rewritten = pricing.and_then(|pricing| match ctx.request.operation {
        Operation::Chat => meter::rewrite_completion(&body, &pricing),
        Operation::Embeddings | Operation::Rerank => meter::rewrite_result(&body, &pricing),
    });
    let out = match rewritten {
        Some((out, metered)) => {
            ctx.metered = metered;
            out
        }
        None => body,
    };
    let out = dialect.completion(out, &ctx.request);
    ctx.status = 200;
    let delivered = match respond::header(200, "application/json", Some(out.len())) {
        Some(mut header) => {
            if unpriced {
                let _ = header.insert_header(UNPRICED.0, UNPRICED.1);
            }
            respond::write(session, header, Bytes::from(out)).await
        }
        None => false,
    };
    ctx.cancelled = !delivered;
    finish_with(delivered)
}

async fn relay_stream(
    gw: &Gateway,
    session: &mut ServerSession,
    ctx: &mut Context<'_>,
    mut upstream: Opened,
    dialect: Dialect,
) -> Ending {
    let Some(pricing) = ctx.pricing() else {
        return Ending::Close;
    };
    let mut relay = SseRelay::new();
    let mut decoder = StreamDecoder::new(
        ctx.served_endpoint().map(|e| e.api).unwrap_or_default(),
        pricing.created,
    );
    let mut decoded = Vec::new();
    // What the client reads: the relay's chunks, or its dialect's events made of them.
    let mut encoder = dialect.stream(&ctx.request);
    let mut render = |out: Vec<u8>| encoder.render(out);
    let client_ok = match respond::header(200, "text/event-stream", None) {
        Some(mut header) => {
            let _ = header.insert_header("cache-control", "no-cache");
            if pricing.unpriced() {
                let _ = header.insert_header(UNPRICED.0, UNPRICED.1);
            }
            session
                .write_response_header(Box::new(header))
                .await
                .is_ok()
        }
        None => false,
    };
    let mut cancelled = !client_ok;
    let mut provider_failed = false;
    // The gateway ends it at the deadline: an error for the client, not the provider's failure.
    let mut overdue = false;
    // Sized per chunk rather than kept large: thousands of streams sit idle between tokens.
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::from_std(ctx.started + gw.limits.request_deadline);
    // One wait for the whole stream, not one per chunk; once it has ended (the cut, or its
    // sender gone) it is never polled again.
    let mut cut = gw.cut.clone();
    let cut_wait = cut.wait_for(|cut| *cut);
    tokio::pin!(cut_wait);
    let mut cut_pending = true;
    while !cancelled {
        let read = tokio::select! {
            read = tokio::time::timeout_at(deadline, upstream.read()) => read,
            waited = &mut cut_wait, if cut_pending => {
                cut_pending = false;
                if waited.is_ok() {
                    tracing::warn!(provider = %pricing.provider_name, "stream still running at the end of shutdown; ended");
                    overdue = true;
                    break;
                }
                continue;
            }
        };
        let Ok(read) = read else {
            tracing::warn!(provider = %pricing.provider_name, "stream passed the request deadline; ended");
            overdue = true;
            break;
        };
        match read {
            Ok(Some(chunk)) => {
                let events = decoder.decode(&chunk, &mut decoded);
                if !relay.push(events, &pricing, &mut out) || decoder.overflowed() {
                    tracing::warn!(provider = %pricing.provider_name, "provider sent an oversized stream event");
                    provider_failed = true;
                    break;
                }
                if !out.is_empty() {
                    let data = Bytes::from(render(std::mem::take(&mut out)));
                    if session.write_response_body(data, false).await.is_err() {
                        cancelled = true;
                    }
                }
                if let Some(error) = decoder.failure() {
                    // What came before it has been relayed; the error ends the stream.
                    tracing::warn!(provider = %pricing.provider_name, %error, "provider ended the stream with an error");
                    provider_failed = true;
                    break;
                }
            }
            Ok(None) => {
                // The provider closed a whole stream: what its decoder still owes (Gemini's
                // ending), unless the stream stopped short of its end.
                let rest = decoder.finish(&mut decoded);
                relay.push(rest, &pricing, &mut out);
                if let Some(error) = decoder.failure() {
                    tracing::warn!(provider = %pricing.provider_name, %error, "provider stream ended early");
                    provider_failed = true;
                }
                break;
            }
            Err(e) => {
                tracing::warn!(provider = %pricing.provider_name, error = %e, "provider stream cut off");
                provider_failed = true;
                break;
            }
        }
    }
    // Pooled again only if it was read to its end; otherwise its connection is closed.
    upstream.release();
    if !cancelled {
        if provider_failed || overdue {
            relay.fail(&pricing, &mut out);
        } else {
            relay.finish(&pricing, &mut out);
        }
        cancelled = session
            .write_response_body(Bytes::from(render(out)), true)
            .await
            .is_err();
    }
    ctx.metered = relay.state.metered;
    ctx.status = 200;
    ctx.cancelled = cancelled || overdue;
    ctx.provider_failed = provider_failed;
    // A stream the gateway ended with an error event is still a whole HTTP response: closing
    // the connection after it would break the client's next request on it (its pool already
    // took it back).
    finish_with(!cancelled)
}

/// Says that the usage's `cost` is 0 for want of a price (OpenRouter's SDKs take only a number).
const UNPRICED: (&str, &str) = ("x-switchyard-cost", "unpriced");

/// For an exchange still running when a shutdown's grace period ends.
fn shutting_down() -> Reject {
    Reject::new(
        Kind::NotReady,
        "The gateway is shutting down; retry the request",
    )
}

/// Answers a refusal. A small unread body is read first, so the client sees the error rather
/// than a reset connection; a large one is not worth reading just to refuse it.
async fn refuse(session: &mut ServerSession, reject: &Reject, dialect: Dialect) -> Ending {
    if reject.kind != Kind::PayloadTooLarge
        && !session.is_body_done()
        && declared_length(session).is_some_and(|len| len <= DRAIN_LIMIT)
    {
        let _ = session.drain_request_body().await;
    }
    let ok = respond_reject_as(session, reject, dialect).await;
    if ok && reject.kind == Kind::PayloadTooLarge {
        linger(session).await;
    }
    // An unread request body would corrupt the next request on this connection.
    finish_with(ok && session.is_body_done())
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

/// Reads the request body, refusing more than `max` bytes with 413 before reading it all.
pub(super) async fn read_body(session: &mut ServerSession, max: usize) -> Result<Bytes, Reject> {
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

fn finish_with(delivered: bool) -> Ending {
    if delivered {
        Ending::Reusable
    } else {
        Ending::Close
    }
}

/// `gen-<unix seconds>-<20 random alphanumerics>`, in the style of OpenRouter's ids.
fn generation_id(now_ms: i64) -> String {
    let suffix: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(20)
        .map(char::from)
        .collect();
    format!("gen-{}-{suffix}", now_ms / 1000)
}
