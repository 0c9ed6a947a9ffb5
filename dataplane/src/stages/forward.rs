//! forward: the route's attempts, tried in order until a provider answers. This module decides
//! the bytes and headers each provider receives, and which failures move on to the next
//! attempt; the network I/O is behind [`Transport`] (hyper's HTTP/1 client in `http::upstream`,
//! a scripted fake in tests).
//!
//! A connection that could not be made, a timeout before the response's first byte, a 5xx, a
//! 429, or the provider refusing the credential moves on to the next attempt; any other 4xx is
//! the client's problem and is passed on with the provider's status. A connection lost after
//! the request was sent, before any answer, may have started a generation the provider bills:
//! it is not retried unless the dataplane is configured to (`--retry-unanswered`). Every retry
//! draws on the [`RetryBudget`], so a fleet-wide outage cannot multiply the load on providers.
//!
//! Each provider receives only what it understands (`switchyard_policy::routing::parameters`):
//! the gateway's own members (`provider`, `models`, `preset`, `transforms`, ...) never leave,
//! parameters the endpoint does not honour are dropped, a preset's parameters fill in what the
//! request leaves out and its system prompt leads the messages, and `provider.options` for the
//! serving provider are added.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use serde_json::json;
use serde_json::value::RawValue;
use switchyard_policy::routing::parameters::{
    Disposition, disposition, option_allowed, parameter_of,
};
use switchyard_policy::routing::quota::quota_key;
use switchyard_policy::routing::{ProviderPreferences, Quota};

use crate::health::Health;
use crate::providers::Call;
use crate::reject::{Kind, Reject};
use crate::snapshot::{Endpoint, Preset};
use crate::spend::QuotaVerdict;
use crate::stages::request::ChatRequest;
use crate::stages::route::Attempt;

/// How one attempt failed, as the transport saw it.
#[derive(Debug)]
pub enum Failure {
    /// The endpoint's host has no address.
    NoAddress,
    /// No connection could be made (refused, unreachable, connect timeout): nothing was sent.
    Unreachable,
    /// The request was sent and no byte of a response came before the first-byte timeout.
    TimedOut,
    /// The connection failed after the request was sent, before a response header: the
    /// provider may have started a generation.
    NoResponse,
    /// The provider answered with a status outside 2xx; its body, bounded.
    Status { status: u16, body: Vec<u8> },
    /// The request could not be built for this endpoint (an unusable header value).
    Request(String),
}

/// Sends one attempt's request and reads the response header.
pub trait Transport {
    /// An open 2xx response, its body still to be read.
    type Response;

    fn send(
        &self,
        attempt: &Attempt<'_>,
        body: Vec<u8>,
        call: Call,
    ) -> impl Future<Output = Result<Self::Response, Failure>> + Send;
}

/// One attempt made (or skipped for its account's quota), for provider health, the provider
/// quota's correction and the generation's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tried {
    /// Index into the route's attempts.
    pub attempt: usize,
    /// `None` when the provider answered 2xx; the failure's kind otherwise.
    pub failure: Option<Kind>,
    /// The provider's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Whether the failure is the endpoint's (it counts against its health): not for a client
    /// error, nor for an organization's own credential being refused.
    pub endpoint_failed: bool,
    /// From sending the request to the response header (or the failure).
    pub elapsed_ms: u64,
    /// What it took from its provider account's quota, if the account has one.
    pub quota: Option<QuotaTaken>,
    /// Why it was not sent, if it was not.
    pub skipped: Option<Skipped>,
}

/// Why an attempt was passed over without a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skipped {
    /// The account's quota for this minute was used up.
    Quota,
    /// The endpoint's breaker is half-open and another request carries its probe.
    ProbeHeld,
    /// The request has a part the endpoint's wire format has no place for.
    Untranslatable,
}

/// A quota counter an attempt drew on, and the tokens it estimated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaTaken {
    pub key: String,
    pub tokens: u64,
}

/// Provider accounts' quotas, as forward consults them (the spend store; tests script one).
pub trait Quotas {
    /// Takes one request and `tokens` from counter `key`, all or nothing.
    fn take(
        &self,
        key: &str,
        quota: Quota,
        tokens: u64,
        now_ms: i64,
    ) -> impl Future<Output = QuotaVerdict> + Send;
}

impl Quotas for crate::spend::Spend {
    async fn take(&self, key: &str, quota: Quota, tokens: u64, now_ms: i64) -> QuotaVerdict {
        self.take_quota(key, quota, tokens, now_ms).await
    }
}

/// No account has a quota (tools, tests that are not about quotas).
pub struct NoQuotas;

impl Quotas for NoQuotas {
    async fn take(&self, _: &str, _: Quota, _: u64, _: i64) -> QuotaVerdict {
        QuotaVerdict::Unknown
    }
}

/// Caps retries at a share of requests (plus a floor per second), as linkerd and Envoy do, so
/// that when every provider fails a request costs about one attempt, not one per endpoint.
/// Lock-free: a token bucket in atomics, in thousandths of a retry.
pub struct RetryBudget {
    /// Thousandths of a retry each request deposits.
    ratio_milli: i64,
    /// Thousandths of a retry added per millisecond (the floor).
    floor_milli_per_ms: i64,
    cap_milli: i64,
    tokens_milli: AtomicI64,
    refilled_at_ms: AtomicI64,
}

impl RetryBudget {
    /// `ratio` retries per request, and at least `min_per_sec` retries a second; at most ten
    /// seconds' worth is saved up.
    pub fn new(ratio: f64, min_per_sec: u32) -> RetryBudget {
        let floor = i64::from(min_per_sec);
        let cap = (floor * 10).max(10) * 1000;
        RetryBudget {
            ratio_milli: (ratio.clamp(0.0, 10.0) * 1000.0) as i64,
            floor_milli_per_ms: floor,
            cap_milli: cap,
            tokens_milli: AtomicI64::new(cap),
            refilled_at_ms: AtomicI64::new(0),
        }
    }

    /// A request starts: it adds its share.
    pub fn deposit(&self) {
        self.add(self.ratio_milli);
    }

    fn add(&self, milli: i64) {
        let _ = self
            .tokens_milli
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some((t + milli).min(self.cap_milli))
            });
    }

    /// Takes one retry, if the budget has one.
    pub fn withdraw(&self, now_ms: i64) -> bool {
        let last = self.refilled_at_ms.load(Ordering::Acquire);
        if now_ms > last
            && self
                .refilled_at_ms
                .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let elapsed = if last == 0 { 0 } else { now_ms - last };
            self.add(elapsed.saturating_mul(self.floor_milli_per_ms));
        }
        self.tokens_milli
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                (t >= 1000).then_some(t - 1000)
            })
            .is_ok()
    }
}

/// How forward treats failures, quotas and breakers, from the dataplane's configuration.
pub struct RetryPolicy<'p, Q> {
    pub budget: &'p RetryBudget,
    /// Retry a request whose connection was lost after it was sent (see the module).
    pub retry_unanswered: bool,
    pub quotas: &'p Q,
    /// The breakers whose half-open probes attempts claim; `None` sends whatever they say.
    pub health: Option<&'p Health>,
}

/// What shapes each provider's request body besides the client's.
#[derive(Clone, Copy, Default)]
pub struct Shaping<'a> {
    pub preset: Option<&'a Preset>,
    pub preferences: Option<&'a ProviderPreferences>,
}

/// The forward stage: tries `attempts` in order, recording each in `tried`, and returns the
/// first open response with the index of the attempt that gave it.
pub async fn forward<T: Transport, Q: Quotas>(
    transport: &T,
    request: &ChatRequest<'_>,
    shaping: Shaping<'_>,
    attempts: &[Attempt<'_>],
    policy: &RetryPolicy<'_, Q>,
    tried: &mut Vec<Tried>,
) -> Result<(usize, T::Response), Reject> {
    policy.budget.deposit();
    let mut last: Option<Reject> = None;
    let mut sent_any = false;
    for (index, attempt) in attempts.iter().enumerate() {
        if sent_any && !policy.budget.withdraw(crate::now_ms()) {
            tracing::warn!(
                provider = %attempt.endpoint.provider_id,
                "retry budget exhausted; not trying further providers"
            );
            break;
        }
        let last_chance = index + 1 == attempts.len() && !sent_any;
        let skip = |why: Skipped| Tried {
            attempt: index,
            failure: Some(Kind::UpstreamUnavailable),
            status: None,
            endpoint_failed: false,
            elapsed_ms: 0,
            quota: None,
            skipped: Some(why),
        };
        let body = match crate::providers::request_body(request, shaping, attempt) {
            Ok(body) => body,
            Err(why) => {
                // Nothing was sent: the request has a part this provider's format cannot carry.
                tried.push(Tried {
                    failure: Some(Kind::BadRequest),
                    ..skip(Skipped::Untranslatable)
                });
                last = Some(Reject::new(
                    Kind::BadRequest,
                    format!(
                        "Provider {} cannot take this request: {why}",
                        attempt.endpoint.provider_name
                    ),
                ));
                continue;
            }
        };
        if let Some(health) = policy.health
            && !last_chance
            && !health.may_send(&attempt.endpoint.health_id, crate::now_ms())
        {
            tried.push(skip(Skipped::ProbeHeld));
            continue;
        }
        let quota = match attempt.quota() {
            None => None,
            Some((account, quota)) => {
                let now_ms = crate::now_ms();
                let key = quota_key(account, now_ms);
                let tokens = estimated_tokens(request, attempt.endpoint);
                match policy.quotas.take(&key, quota, tokens, now_ms).await {
                    QuotaVerdict::Taken => Some(QuotaTaken { key, tokens }),
                    QuotaVerdict::Unknown => None,
                    QuotaVerdict::Exhausted => {
                        tried.push(skip(Skipped::Quota));
                        last = Some(quota_exhausted(attempt));
                        continue;
                    }
                }
            }
        };
        sent_any = true;
        let sent = Instant::now();
        let outcome = transport.send(attempt, body, Call::of(request)).await;
        let elapsed_ms = u64::try_from(sent.elapsed().as_millis()).unwrap_or(u64::MAX);
        match outcome {
            Ok(response) => {
                tried.push(Tried {
                    attempt: index,
                    failure: None,
                    status: Some(200),
                    endpoint_failed: false,
                    elapsed_ms,
                    quota,
                    skipped: None,
                });
                return Ok((index, response));
            }
            Err(failure) => {
                let status = match &failure {
                    Failure::Status { status, .. } => Some(*status),
                    _ => None,
                };
                let unanswered = matches!(failure, Failure::NoResponse);
                let reject = classify(attempt, failure);
                let client_error = reject.kind == Kind::UpstreamRefused;
                // An organization's own key refused or rate-limited says nothing of the endpoint
                // every other tenant shares.
                let own_credential_refused =
                    attempt.is_byok() && matches!(status, Some(401 | 403 | 407 | 429));
                tried.push(Tried {
                    attempt: index,
                    failure: Some(reject.kind),
                    status,
                    endpoint_failed: !client_error && !own_credential_refused,
                    elapsed_ms,
                    quota,
                    skipped: None,
                });
                if !reject.kind.retryable() || (unanswered && !policy.retry_unanswered) {
                    return Err(reject);
                }
                tracing::warn!(
                    provider = %attempt.endpoint.provider_id,
                    kind = reject.kind.label(),
                    "provider attempt failed; trying the next one"
                );
                last = Some(reject);
            }
        }
    }
    Err(last.unwrap_or_else(|| Reject::new(Kind::UpstreamUnavailable, "No provider available")))
}

/// The most tokens an attempt can count against its account: the prompt estimate and the most
/// output it may produce there.
fn estimated_tokens(request: &ChatRequest<'_>, endpoint: &Endpoint) -> u64 {
    let cap = endpoint.output_cap();
    let output = request.max_output_tokens.map_or(cap, |m| m.min(cap));
    request.estimated_prompt_tokens().saturating_add(output)
}

/// The answer when every attempt left found its account's quota used up: the provider would
/// have answered 429, and so does the gateway.
fn quota_exhausted(attempt: &Attempt<'_>) -> Reject {
    let endpoint = attempt.endpoint;
    let mut reject = Reject::new(
        Kind::UpstreamUnavailable,
        format!(
            "Provider {} is at its account's rate limit for this minute",
            endpoint.provider_name
        ),
    )
    .with_metadata(json!({
        "provider_name": endpoint.provider_name,
        "reason": "provider_quota",
    }));
    reject.upstream_status = Some(429);
    reject
}

/// What a failed attempt means for the request: a retryable `Reject` moves on to the next
/// attempt; any other is the request's answer.
pub fn classify(attempt: &Attempt<'_>, failure: Failure) -> Reject {
    let endpoint = attempt.endpoint;
    let provider = |kind: Kind, message: String| {
        Reject::new(kind, message).with_metadata(json!({ "provider_name": endpoint.provider_name }))
    };
    let (status, raw) = match failure {
        Failure::NoAddress => {
            return Reject::new(
                Kind::UpstreamUnavailable,
                format!(
                    "Provider {} has no resolvable address",
                    endpoint.provider_id
                ),
            );
        }
        Failure::Unreachable => {
            return provider(
                Kind::UpstreamUnavailable,
                format!("Provider {} is unreachable", endpoint.provider_name),
            );
        }
        Failure::TimedOut => {
            return provider(
                Kind::UpstreamTimeout,
                format!("Provider {} timed out", endpoint.provider_name),
            );
        }
        Failure::NoResponse => {
            return provider(
                Kind::UpstreamUnavailable,
                format!(
                    "Provider {} failed before responding",
                    endpoint.provider_name
                ),
            );
        }
        Failure::Request(reason) => {
            tracing::error!(provider = %endpoint.provider_id, %reason, "cannot build the provider request");
            return provider(
                Kind::UpstreamUnavailable,
                format!("Provider {} cannot be called", endpoint.provider_name),
            );
        }
        Failure::Status { status, body } => (status, body),
    };
    if matches!(status, 401 | 403 | 407) {
        // The credential was refused. That is not the client's fault, and the provider's
        // message may quote part of the credential: log it, answer 502 (after the next attempt,
        // if there is one).
        let whose = match attempt.credential {
            Some(c) => {
                tracing::error!(provider = %endpoint.provider_id, status, byok_id = %c.id, "provider refused a BYOK credential");
                "the organization's BYOK credential"
            }
            None => {
                tracing::error!(provider = %endpoint.provider_id, status, "provider refused the gateway's credential");
                "the gateway's credentials"
            }
        };
        return provider(
            Kind::UpstreamUnavailable,
            format!("Provider {} refused {whose}", endpoint.provider_name),
        );
    }
    let message = serde_json::from_slice::<serde_json::Value>(&raw)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("Provider returned error {status}"));
    let metadata = json!({
        "provider_name": endpoint.provider_name,
        "raw": String::from_utf8_lossy(&raw),
    });
    let kind = if status == 429 || status >= 500 {
        Kind::UpstreamUnavailable
    } else {
        Kind::UpstreamRefused
    };
    let mut reject = Reject::new(kind, message).with_metadata(metadata);
    if kind == Kind::UpstreamRefused || status == 429 {
        reject.upstream_status = Some(status);
    }
    reject
}

/// The body for one attempt (see the module's documentation). Member values are copied byte for
/// byte; only names are re-escaped.
pub fn upstream_body(
    request: &ChatRequest<'_>,
    shaping: Shaping<'_>,
    attempt: &Attempt<'_>,
) -> Vec<u8> {
    let endpoint: &Endpoint = attempt.endpoint;
    let supports = |p: &str| endpoint.supports(p);
    let options: Vec<(&String, &serde_json::Value)> = shaping
        .preferences
        .and_then(|p| p.options.as_ref())
        .and_then(|o| {
            o.iter()
                .find(|(slug, _)| slug.eq_ignore_ascii_case(&endpoint.provider_id))
        })
        .and_then(|(_, v)| v.as_object())
        .map(|o| o.iter().filter(|(k, _)| option_allowed(k)).collect())
        .unwrap_or_default();
    let overridden = |name: &str| options.iter().any(|(k, _)| k.as_str() == name);
    // A parameter the request sets (under either of its names) is not filled in again.
    let set_by_request = |name: &str| {
        request.fields.iter().any(|(n, _)| {
            n == name || (parameter_of(n).is_some() && parameter_of(n) == parameter_of(name))
        })
    };
    let system_prompt = shaping.preset.and_then(|p| p.system_prompt.as_deref());

    let mut out = Vec::with_capacity(request.body_len + endpoint.upstream_model.len() + 64);
    out.push(b'{');
    let mut first = true;
    let mut push = |out: &mut Vec<u8>, name: &str, raw: &str| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        // Names came out of valid JSON; re-escaping keeps them valid whatever they hold.
        write_json_string(out, name);
        out.push(b':');
        out.extend_from_slice(raw.as_bytes());
    };
    let mut model_json = Vec::with_capacity(endpoint.upstream_model.len() + 2);
    write_json_string(&mut model_json, &endpoint.upstream_model);
    push(&mut out, "model", &String::from_utf8_lossy(&model_json));
    for (name, value) in &request.fields {
        let name = name.as_ref();
        if name == "messages" {
            match system_prompt {
                Some(prompt) => push(&mut out, name, &with_system_prompt(prompt, value)),
                None => push(&mut out, name, value.get()),
            }
            continue;
        }
        if overridden(name) || disposition(name, supports) == Disposition::Drop {
            continue;
        }
        push(&mut out, name, value.get());
    }
    let mut filled_reasoning_effort = false;
    if let Some(preset) = shaping.preset {
        for (name, value) in &preset.config.parameters {
            // `n` multiplies the output, which admission bounds by the request's own `n`.
            if set_by_request(name)
                || name == "n"
                || overridden(name)
                || disposition(name, supports) == Disposition::Drop
            {
                continue;
            }
            filled_reasoning_effort |= name == "reasoning_effort";
            push(&mut out, name, value.get());
        }
    }
    // OpenRouter's `reasoning.effort` is OpenAI's `reasoning_effort`.
    if supports("reasoning")
        && request.member("reasoning_effort").is_none()
        && !filled_reasoning_effort
        && !overridden("reasoning_effort")
        && let Some(effort) = request
            .member("reasoning")
            .and_then(|r| serde_json::from_str::<serde_json::Value>(r.get()).ok())
            .and_then(|r| r["effort"].as_str().map(str::to_owned))
    {
        let mut raw = Vec::new();
        write_json_string(&mut raw, &effort);
        push(&mut out, "reasoning_effort", &String::from_utf8_lossy(&raw));
    }
    for (name, value) in options {
        push(&mut out, name, &value.to_string());
    }
    if request.stream {
        push(&mut out, "stream_options", r#"{"include_usage":true}"#);
    }
    out.push(b'}');
    out
}

/// `messages` with a system message holding `prompt` first.
fn with_system_prompt(prompt: &str, messages: &RawValue) -> String {
    let mut system = Vec::with_capacity(prompt.len() + 32);
    system.extend_from_slice(br#"{"role":"system","content":"#);
    write_json_string(&mut system, prompt);
    system.push(b'}');
    let system = String::from_utf8_lossy(&system);
    let rest = messages.get().trim();
    let inner = rest
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or("")
        .trim();
    if inner.is_empty() {
        format!("[{system}]")
    } else {
        format!("[{system},{inner}]")
    }
}

fn write_json_string(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping; writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use switchyard_policy::testing::SnapshotBuilder;

    /// Answers each send with the next scripted outcome (`Ok(())` for a 2xx) and records which
    /// provider each attempt went to.
    struct Scripted {
        outcomes: Mutex<VecDeque<Result<(), Failure>>>,
        sent_to: Mutex<Vec<String>>,
    }

    impl Scripted {
        fn new(outcomes: Vec<Result<(), Failure>>) -> Scripted {
            Scripted {
                outcomes: Mutex::new(outcomes.into()),
                sent_to: Mutex::new(Vec::new()),
            }
        }
    }

    impl Transport for Scripted {
        type Response = String;

        async fn send(
            &self,
            attempt: &Attempt<'_>,
            body: Vec<u8>,
            _call: Call,
        ) -> Result<String, Failure> {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["model"], attempt.endpoint.upstream_model.as_str());
            let provider = attempt.endpoint.provider_id.clone();
            self.sent_to.lock().unwrap().push(provider.clone());
            let next = self.outcomes.lock().unwrap().pop_front().unwrap();
            next.map(|()| provider)
        }
    }

    fn status(status: u16, body: &str) -> Result<(), Failure> {
        Err(Failure::Status {
            status,
            body: body.as_bytes().to_vec(),
        })
    }

    fn attempts_of(model: &Arc<crate::snapshot::Model>) -> Vec<Attempt<'_>> {
        model
            .endpoints
            .iter()
            .map(|endpoint| Attempt {
                model,
                endpoint,
                credential: None,
            })
            .collect()
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// Runs the forward stage over model `m` on providers a, b, c with `outcomes`.
    fn run_with(
        outcomes: Vec<Result<(), Failure>>,
        budget: &RetryBudget,
        retry_unanswered: bool,
    ) -> (Result<String, Reject>, Vec<String>, Vec<Tried>) {
        let snapshot = SnapshotBuilder::new()
            .with_inference_key()
            .with_model("m", &["a", "b", "c"])
            .build();
        let attempts = attempts_of(&snapshot.models["m"]);
        let request = ChatRequest::parse(br#"{"model":"m","messages":[]}"#).unwrap();
        let transport = Scripted::new(outcomes);
        let mut tried = Vec::new();
        let policy = RetryPolicy {
            budget,
            retry_unanswered,
            quotas: &NoQuotas,
            health: None,
        };
        let result = block_on(forward(
            &transport,
            &request,
            Shaping::default(),
            &attempts,
            &policy,
            &mut tried,
        ))
        .map(|(index, provider)| {
            assert_eq!(attempts[index].endpoint.provider_id, provider);
            provider
        });
        let sent = transport.sent_to.lock().unwrap().clone();
        (result, sent, tried)
    }

    fn run(
        outcomes: Vec<Result<(), Failure>>,
    ) -> (Result<String, Reject>, Vec<String>, Vec<Tried>) {
        run_with(outcomes, &RetryBudget::new(0.2, 10), false)
    }

    #[test]
    fn retryable_failures_move_on_to_the_next_attempt() {
        let (result, sent, tried) = run(vec![
            Err(Failure::Unreachable),
            status(503, r#"{"error":{"message":"overloaded"}}"#),
            Ok(()),
        ]);
        assert_eq!(result.unwrap(), "c");
        assert_eq!(sent, ["a", "b", "c"]);
        let failures: Vec<Option<Kind>> = tried.iter().map(|t| t.failure).collect();
        assert_eq!(
            failures,
            [
                Some(Kind::UpstreamUnavailable),
                Some(Kind::UpstreamUnavailable),
                None
            ]
        );
        assert_eq!(tried[1].status, Some(503));
        assert!(tried[0].endpoint_failed && tried[1].endpoint_failed);
    }

    #[test]
    fn a_client_error_is_passed_on_without_trying_further() {
        let (result, sent, tried) = run(vec![status(
            400,
            r#"{"error":{"message":"bad temperature"}}"#,
        )]);
        let reject = result.unwrap_err();
        assert_eq!(reject.status(), 400);
        assert_eq!(reject.message, "bad temperature");
        assert_eq!(sent, ["a"]);
        assert_eq!(tried.len(), 1);
        assert!(
            !tried[0].endpoint_failed,
            "the client's error says nothing of the endpoint"
        );
    }

    #[test]
    fn rate_limits_timeouts_and_refused_credentials_are_retried() {
        let (result, sent, _) = run(vec![
            status(429, "slow down"),
            Err(Failure::TimedOut),
            status(401, r#"{"error":{"message":"bad key sk-123"}}"#),
        ]);
        let reject = result.unwrap_err();
        // The last failure answers: a refused credential is the gateway's problem (502), and the
        // provider's message, which may quote the credential, is not passed on.
        assert_eq!(reject.status(), 502);
        assert!(!reject.message.contains("sk-123"));
        assert_eq!(sent, ["a", "b", "c"]);
        let (result, _, _) = run(vec![
            status(429, "slow down"),
            Err(Failure::TimedOut),
            Err(Failure::NoAddress),
        ]);
        assert_eq!(result.unwrap_err().kind, Kind::UpstreamUnavailable);
    }

    #[test]
    fn a_request_that_may_have_started_a_generation_is_not_retried_unless_configured() {
        let (result, sent, _) = run(vec![Err(Failure::NoResponse)]);
        assert_eq!(result.unwrap_err().status(), 502);
        assert_eq!(sent, ["a"]);
        let budget = RetryBudget::new(0.2, 10);
        let (result, sent, _) = run_with(vec![Err(Failure::NoResponse), Ok(())], &budget, true);
        assert_eq!(result.unwrap(), "b");
        assert_eq!(sent, ["a", "b"]);
    }

    #[test]
    fn the_retry_budget_caps_retries() {
        // No floor and no share: the bucket starts with ten seconds of a floor of one a
        // second, ten retries, then none.
        let budget = RetryBudget::new(0.0, 0);
        let mut retried = 0;
        for _ in 0..20 {
            let (_, sent, _) = run_with(vec![Err(Failure::Unreachable), Ok(())], &budget, false);
            retried += sent.len() - 1;
        }
        assert_eq!(retried, 10);
        // A share per request refills it: one retry per five requests at 0.2.
        let budget = RetryBudget::new(0.2, 0);
        for _ in 0..10 {
            assert!(budget.withdraw(1));
        }
        assert!(!budget.withdraw(1));
        for _ in 0..5 {
            budget.deposit();
        }
        assert!(budget.withdraw(1));
        assert!(!budget.withdraw(1));
        // The floor refills with time.
        let budget = RetryBudget::new(0.0, 10);
        while budget.withdraw(1_000) {}
        assert!(!budget.withdraw(1_000));
        assert!(budget.withdraw(1_100), "100 ms at 10 a second is one retry");
    }

    #[test]
    fn a_half_open_breakers_probe_is_claimed_by_the_one_request_that_sends_it() {
        let snapshot = SnapshotBuilder::new()
            .with_inference_key()
            .with_model("m", &["a", "b"])
            .build();
        let attempts = attempts_of(&snapshot.models["m"]);
        let request = ChatRequest::parse(br#"{"model":"m","messages":[]}"#).unwrap();
        let health = Health::new(crate::health::HealthConfig {
            breaker_failures: 1,
            breaker_cooldown: std::time::Duration::from_millis(1),
            ..crate::health::HealthConfig::default()
        });
        // a failed long enough ago that its breaker's cool-down is over: half-open.
        health.record(
            &attempts[0].endpoint.health_id,
            crate::health::Outcome::Failure {
                rate_limited: false,
            },
            crate::now_ms() - 10_000,
        );
        let budget = RetryBudget::new(0.2, 10);
        let policy = RetryPolicy {
            budget: &budget,
            retry_unanswered: false,
            quotas: &NoQuotas,
            health: Some(&health),
        };
        let send = || {
            let transport = Scripted::new(vec![Ok(())]);
            let mut tried = Vec::new();
            let result = block_on(forward(
                &transport,
                &request,
                Shaping::default(),
                &attempts,
                &policy,
                &mut tried,
            ));
            assert!(result.is_ok());
            let sent = transport.sent_to.lock().unwrap().clone();
            (sent, tried)
        };
        // The first request carries the probe to a.
        let (sent, tried) = send();
        assert_eq!(sent, ["a"]);
        assert_eq!(tried[0].skipped, None);
        // While it is out, the next one passes a over for b without sending to it.
        let (sent, tried) = send();
        assert_eq!(sent, ["b"]);
        assert_eq!(tried[0].skipped, Some(Skipped::ProbeHeld));
        assert!(!tried[0].endpoint_failed);
        // An endpoint that is the only one left is sent to, probe held or not.
        let only_a = &attempts[..1];
        let transport = Scripted::new(vec![Ok(())]);
        let mut tried = Vec::new();
        assert!(
            block_on(forward(
                &transport,
                &request,
                Shaping::default(),
                only_a,
                &policy,
                &mut tried
            ))
            .is_ok()
        );
        assert_eq!(*transport.sent_to.lock().unwrap(), ["a"]);
    }

    /// Quotas where provider `exhausted`'s account has none left.
    struct Scripted429 {
        exhausted: &'static str,
        taken: Mutex<Vec<(String, u64)>>,
    }

    impl Quotas for Scripted429 {
        async fn take(&self, key: &str, _: Quota, tokens: u64, _: i64) -> QuotaVerdict {
            if key.contains(&format!("gw:{}}}", self.exhausted)) {
                return QuotaVerdict::Exhausted;
            }
            self.taken.lock().unwrap().push((key.to_owned(), tokens));
            QuotaVerdict::Taken
        }
    }

    #[test]
    fn an_account_at_its_quota_is_skipped_before_it_would_answer_429() {
        // Providers a and b have quotas (c has none); a's is used up.
        let snapshot = SnapshotBuilder::new()
            .with_inference_key()
            .with_model("m", &["a", "b", "c"])
            .edit(|r| {
                for id in ["a", "b"] {
                    r.providers.push(switchyard_proto::config::v1::Provider {
                        id: id.into(),
                        name: id.into(),
                        requests_per_minute: 10,
                        ..Default::default()
                    });
                }
            })
            .build();
        let attempts = attempts_of(&snapshot.models["m"]);
        let request =
            ChatRequest::parse(br#"{"model":"m","max_tokens":10,"messages":[]}"#).unwrap();
        let quotas = Scripted429 {
            exhausted: "a",
            taken: Mutex::new(Vec::new()),
        };
        // An empty retry budget: skipping a needs none.
        let budget = RetryBudget::new(0.0, 0);
        while budget.withdraw(1) {}
        let policy = RetryPolicy {
            budget: &budget,
            retry_unanswered: false,
            quotas: &quotas,
            health: None,
        };
        let transport = Scripted::new(vec![Ok(())]);
        let mut tried = Vec::new();
        let served = block_on(forward(
            &transport,
            &request,
            Shaping::default(),
            &attempts,
            &policy,
            &mut tried,
        ))
        .map(|(i, _)| i);
        assert_eq!(served.unwrap(), 1);
        assert_eq!(*transport.sent_to.lock().unwrap(), ["b"]);
        assert_eq!(tried[0].skipped, Some(Skipped::Quota));
        assert!(tried[0].quota.is_none());
        let taken = tried[1].quota.clone().unwrap();
        assert!(taken.key.starts_with("{quota:gw:b}:"), "{}", taken.key);
        assert_eq!(taken.tokens, request.estimated_prompt_tokens() + 10);

        // Every account left at its quota: the provider's own answer, 429.
        let only_a = &attempts[..1];
        let mut tried = Vec::new();
        let transport = Scripted::new(vec![]);
        let reject = block_on(forward(
            &transport,
            &request,
            Shaping::default(),
            only_a,
            &policy,
            &mut tried,
        ))
        .map(|_| ())
        .unwrap_err();
        assert_eq!(reject.status(), 429);
        assert_eq!(reject.metadata.unwrap()["reason"], "provider_quota");
        assert!(transport.sent_to.lock().unwrap().is_empty());
    }

    #[test]
    fn a_provider_429_keeps_its_status_when_it_is_the_last_answer() {
        let snapshot = SnapshotBuilder::new().build();
        let model = &snapshot.models["mock/small"];
        let attempt = attempts_of(model)[0];
        let reject = classify(
            &attempt,
            Failure::Status {
                status: 429,
                body: vec![],
            },
        );
        assert!(reject.kind.retryable());
        assert_eq!(reject.status(), 429);
        let reject = classify(
            &attempt,
            Failure::Status {
                status: 500,
                body: vec![],
            },
        );
        assert_eq!((reject.status(), reject.kind.retryable()), (502, true));
    }

    fn body_for(
        snapshot: &crate::snapshot::Snapshot,
        body: &[u8],
        shaping: Shaping<'_>,
    ) -> serde_json::Value {
        let model = &snapshot.models["mock/small"];
        let attempt = attempts_of(model)[0];
        let req = ChatRequest::parse(body).unwrap();
        serde_json::from_slice(&upstream_body(&req, shaping, &attempt)).unwrap()
    }

    #[test]
    fn rewrites_model_and_requests_stream_usage() {
        let snapshot = SnapshotBuilder::new().build();
        let body = br#"{"model":"mock/small","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":false},"n":1}"#;
        let v = body_for(&snapshot, body, Shaping::default());
        assert_eq!(
            v["model"],
            snapshot.models["mock/small"].endpoints[0]
                .upstream_model
                .as_str()
        );
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["messages"][0]["content"], "hi");
        assert_eq!(v["n"], 1);
        let v = body_for(
            &snapshot,
            br#"{"model":"mock/small","messages":[]}"#,
            Shaping::default(),
        );
        assert!(v.get("stream_options").is_none());
    }

    #[test]
    fn only_what_the_endpoint_understands_goes_upstream() {
        let snapshot = SnapshotBuilder::new().build();
        let body =
            br#"{"model":"mock/small","models":["x/y"],"messages":[],"provider":{"order":["a"]},
            "preset":"p","transforms":[],"usage":{"include":true},"plugins":[],"route":"fallback",
            "session_id":"s","trace":{},"zdr":true,"temperature":0.5,"top_k":3,"user":"u",
            "made_up":1,"reasoning":{"effort":"high"}}"#;
        let v = body_for(&snapshot, body, Shaping::default());
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        // top_k is not among the endpoint's parameters, nor is reasoning.
        assert_eq!(keys, ["messages", "model", "temperature", "user"]);
    }

    /// Shaping by the test workspace's preset `slug`.
    fn with_preset<'s>(snapshot: &'s crate::snapshot::Snapshot, slug: &str) -> Shaping<'s> {
        let crate::snapshot::PresetEntry::Ready(preset) = snapshot
            .presets
            .get(switchyard_policy::testing::WORKSPACE, slug)
            .unwrap()
        else {
            panic!("preset set aside");
        };
        Shaping {
            preset: Some(preset),
            preferences: None,
        }
    }

    #[test]
    fn presets_fill_in_parameters_and_lead_with_their_system_prompt() {
        let snapshot = SnapshotBuilder::new()
            .with_preset(
                "p",
                switchyard_policy::testing::WORKSPACE,
                r#"{"model":"mock/small","parameters":{"temperature":0.1,"seed":7,"top_k":2}}"#,
            )
            .edit(|r| r.presets[0].system_prompt = "Be \"brief\".".into())
            .build();
        let shaping = with_preset(&snapshot, "p");
        let v = body_for(
            &snapshot,
            br#"{"model":"mock/small","messages":[{"role":"user","content":"hi"}],"temperature":0.9}"#,
            shaping,
        );
        assert_eq!(v["temperature"], 0.9, "the request's own value wins");
        assert_eq!(v["seed"], 7);
        assert!(v.get("top_k").is_none(), "not a parameter of this endpoint");
        assert_eq!(v["messages"][0]["role"], "system");
        assert_eq!(v["messages"][0]["content"], "Be \"brief\".");
        assert_eq!(v["messages"][1]["content"], "hi");
        let v = body_for(
            &snapshot,
            br#"{"model":"mock/small","messages":[]}"#,
            shaping,
        );
        assert_eq!(v["messages"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_preset_never_sets_a_parameter_the_request_set_under_its_other_name() {
        let snapshot = SnapshotBuilder::new()
            .with_preset(
                "p",
                switchyard_policy::testing::WORKSPACE,
                r#"{"model":"mock/small","parameters":{"max_tokens":100,"seed":7}}"#,
            )
            .build();
        let shaping = with_preset(&snapshot, "p");
        let model = &snapshot.models["mock/small"];
        let attempt = attempts_of(model)[0];
        let req = ChatRequest::parse(
            br#"{"model":"mock/small","messages":[],"max_completion_tokens":50}"#,
        )
        .unwrap();
        // Counted in the raw bytes: a JSON parser would hide a duplicate member.
        let raw = String::from_utf8(upstream_body(&req, shaping, &attempt)).unwrap();
        let limits = raw.matches("\"max_tokens\"").count()
            + raw.matches("\"max_completion_tokens\"").count();
        assert_eq!(limits, 1, "{raw}");
        assert!(raw.contains(":50"), "{raw}");
        assert!(!raw.contains(":100"), "{raw}");
        assert_eq!(raw.matches("\"seed\"").count(), 1, "{raw}");
    }

    #[test]
    fn provider_options_go_only_to_their_provider() {
        let snapshot = SnapshotBuilder::new().build();
        let prefs = ProviderPreferences::parse(
            r#"{"options":{"mock":{"top_k":5,"temperature":0.3,"model":"x","max_tokens":99999,"provider":{},"session_id":"s"},"other":{"seed":1}}}"#,
        )
        .unwrap();
        let shaping = Shaping {
            preset: None,
            preferences: Some(&prefs),
        };
        let v = body_for(
            &snapshot,
            br#"{"model":"mock/small","messages":[],"temperature":0.9}"#,
            shaping,
        );
        assert_eq!(v["top_k"], 5);
        assert_eq!(v["temperature"], 0.3);
        assert!(v.get("seed").is_none());
        assert_ne!(v["model"], "x");
        // Options cannot raise the cost bound the gateway reserved, nor smuggle its members.
        for member in ["max_tokens", "provider", "session_id"] {
            assert!(v.get(member).is_none(), "{member}: {v}");
        }
    }

    #[test]
    fn reasoning_effort_goes_to_endpoints_that_reason() {
        let snapshot = SnapshotBuilder::new()
            .edit(|r| r.models[0].endpoints[0].supported_parameters = vec!["reasoning".into()])
            .build();
        let v = body_for(
            &snapshot,
            br#"{"model":"mock/small","messages":[],"reasoning":{"effort":"low"}}"#,
            Shaping::default(),
        );
        assert_eq!(v["reasoning_effort"], "low");
        assert!(v.get("reasoning").is_none());
    }

    #[test]
    fn header_carries_provider_credential_only() {
        let snapshot = SnapshotBuilder::new().build();
        let attempt = attempts_of(&snapshot.models["mock/small"])[0];
        let h =
            crate::providers::request_header(&attempt, 10, Call::Chat { stream: false }).unwrap();
        assert_eq!(h.uri.path(), "/v1/chat/completions");
        assert_eq!(
            h.headers.get("authorization").unwrap(),
            "Bearer provider-secret"
        );
    }

    #[test]
    fn byok_attempts_carry_the_organizations_credential() {
        let snapshot = SnapshotBuilder::new()
            .with_byok("own", "mock", |_| {})
            .build();
        let model = &snapshot.models["mock/small"];
        let attempt = Attempt {
            model,
            endpoint: &model.endpoints[0],
            credential: snapshot
                .byok
                .of_workspace(switchyard_policy::testing::WORKSPACE)
                .first(),
        };
        let h =
            crate::providers::request_header(&attempt, 10, Call::Chat { stream: true }).unwrap();
        assert_eq!(h.headers.get("authorization").unwrap(), "Bearer sk-own");
    }
}
