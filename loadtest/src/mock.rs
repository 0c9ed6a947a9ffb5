//! A mock LLM provider that speaks OpenAI's chat-completions wire format exactly (JSON, and SSE
//! with a usage chunk), and beside it Anthropic's Messages API (`anthropic`), Google's Gemini API
//! (`gemini`), OpenAI's embeddings (`embeddings`), reranking (`rerank`) and Azure OpenAI's
//! deployment paths, and can be scripted: latency to first byte, inter-token delay, token
//! counts, an error rate, 429s, a hard outage and streams cut mid-way.
//!
//! The script can be changed while it runs (`POST /__mock/script` with a JSON `Script`), and the
//! last request it received can be read back (`GET /__mock/last-request`, with its body), which
//! tests use to check what the gateway forwarded.
//!
//! Like OpenAI, it refuses a request with a top-level member its API does not define (400,
//! "Unrecognized request argument supplied: …"), so a gateway that leaks its own members or a
//! parameter the provider does not take fails the test. `Script::accept` adds members a
//! particular provider takes beyond OpenAI's (`top_k` for a vLLM server, say).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;

mod anthropic;
mod embeddings;
mod gemini;
mod rerank;

/// What the mock does with each request. Every field can be changed at run time.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Script {
    /// Delay before the response header (and first token).
    pub ttfb_ms: u64,
    /// Delay between stream chunks.
    pub inter_token_ms: u64,
    /// Completion tokens per response (capped by the request's max tokens).
    pub completion_tokens: u64,
    /// Cached prompt tokens to report.
    pub cached_tokens: u64,
    /// Prompt tokens written to the cache, reported by the Anthropic API when the request
    /// marks a block with `cache_control`.
    pub cache_write_tokens: u64,
    /// Anthropic streams: an in-band `error` event (overloaded) after this many content events,
    /// ending the stream.
    pub stream_error_after_chunks: Option<u64>,
    /// Reasoning tokens to report (part of `completion_tokens`).
    pub reasoning_tokens: u64,
    /// Fraction of requests answered with `error_status`, 0.0–1.0.
    pub error_rate: f64,
    pub error_status: u16,
    /// Every request gets a 503 (hard outage).
    pub outage: bool,
    /// When set, streams close the connection abruptly after this many content chunks.
    pub cut_after_chunks: Option<u64>,
    /// When false, streams never send the usage chunk even if asked.
    pub stream_usage: bool,
    /// When false, non-stream responses carry no `usage` object.
    pub usage: bool,
    /// Requests whose `Authorization` equals this get a 401, as a provider refuses a bad key.
    pub reject_authorization: Option<String>,
    /// Top-level request members accepted beyond OpenAI's own.
    pub accept: Vec<String>,
    /// The connection is closed after the request is read, with no answer at all.
    pub drop_connection: bool,
    /// Report the most a provider could count: a prompt token per byte of the request body and
    /// every output token the request allows (`max_tokens`, else `completion_tokens`, for each
    /// of its `n` choices).
    pub report_most: bool,
    /// Generate `completion_tokens` for each choice whatever `max_tokens` says, as a provider
    /// that ignores it would.
    pub ignore_max_tokens: bool,
}

/// The request members OpenAI's chat-completions API defines; any other is refused.
pub const OPENAI_CHAT_MEMBERS: [&str; 34] = [
    "audio",
    "frequency_penalty",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "max_completion_tokens",
    "max_tokens",
    "messages",
    "metadata",
    "modalities",
    "model",
    "n",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "prompt_cache_key",
    "reasoning_effort",
    "response_format",
    "safety_identifier",
    "seed",
    "service_tier",
    "stop",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "user",
    "verbosity",
    "web_search_options",
];

impl Script {
    /// Whether the script refuses `key`: an `Authorization` value, or a bare key (Anthropic's,
    /// Gemini's, Azure's headers) that the script names as a bearer.
    fn refuses_key(&self, key: Option<&str>) -> bool {
        match (self.reject_authorization.as_deref(), key) {
            (Some(refused), Some(key)) => {
                refused == key || refused.strip_prefix("Bearer ") == Some(key)
            }
            _ => false,
        }
    }

    /// The status request `n` fails with, if `error_rate` makes it one of the failures.
    fn error_for(&self, n: u64) -> Option<StatusCode> {
        let fails =
            self.error_rate > 0.0 && (n as f64 * self.error_rate).fract() + self.error_rate >= 1.0;
        fails.then(|| {
            StatusCode::from_u16(self.error_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        })
    }
}

impl Default for Script {
    fn default() -> Self {
        Script {
            ttfb_ms: 0,
            inter_token_ms: 0,
            completion_tokens: 16,
            cached_tokens: 0,
            cache_write_tokens: 0,
            stream_error_after_chunks: None,
            reasoning_tokens: 0,
            error_rate: 0.0,
            error_status: 500,
            outage: false,
            cut_after_chunks: None,
            stream_usage: true,
            usage: true,
            reject_authorization: None,
            accept: Vec::new(),
            drop_connection: false,
            report_most: false,
            ignore_max_tokens: false,
        }
    }
}

#[derive(Default)]
pub struct MockState {
    script: RwLock<Script>,
    /// What the last request carried; its body is parsed only when a test asks for it.
    last_request: RwLock<Option<LastRequest>>,
    requests: AtomicU64,
    refused: AtomicU64,
}

#[derive(Clone)]
struct LastRequest {
    authorization: Option<String>,
    /// Anthropic's credential header.
    api_key: Option<String>,
    path: String,
    model: Option<String>,
    stream: bool,
    include_usage: bool,
    body: Bytes,
}

impl MockState {
    pub fn new(script: Script) -> Self {
        MockState {
            script: RwLock::new(script),
            ..MockState::default()
        }
    }
}

pub(crate) type Body = BoxBody<Bytes, std::io::Error>;

#[derive(Deserialize)]
struct ChatHead {
    model: Option<String>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    n: Option<u64>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// Serves until the process ends.
pub async fn serve(listener: TcpListener, state: Arc<MockState>) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, state.clone()));
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// A handler error: hyper closes the connection without a response (a scripted dropped one).
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by script")
    }
}

impl std::error::Error for Dropped {}

async fn handle(req: Request<Incoming>, state: Arc<MockState>) -> Result<Response<Body>, Dropped> {
    let path = req.uri().path().to_owned();
    Ok(match (req.method().clone(), path.as_str()) {
        (Method::POST, "/v1/chat/completions" | "/chat/completions") => {
            chat(req, &state).await.ok_or(Dropped)?
        }
        (Method::POST, "/v1/embeddings" | "/embeddings") => embed(req, &state).await,
        (Method::POST, "/v1/rerank" | "/rerank") => rank(req, &state).await,
        (Method::POST, p) if azure_call(p).is_some() => azure(req, &state).await.ok_or(Dropped)?,
        (Method::POST, "/v1/messages" | "/messages") => {
            messages(req, &state).await.ok_or(Dropped)?
        }
        (Method::POST, p) if gemini_call(p).is_some() => {
            generate_content(req, &state).await.ok_or(Dropped)?
        }
        (Method::GET, "/v1/models" | "/models") => json_response(
            StatusCode::OK,
            json!({"object":"list","data":[{"id":"mock-small-1","object":"model","created":0,"owned_by":"mock"}]}),
        ),
        (Method::POST, "/__mock/script") => set_script(req, &state).await,
        (Method::GET, "/__mock/script") => {
            let script = state.script.read().map(|s| s.clone()).unwrap_or_default();
            json_response(StatusCode::OK, json!(script))
        }
        (Method::GET, "/__mock/last-request") => {
            let last = state.last_request.read().ok().and_then(|v| v.clone());
            let value = match last {
                None => Value::Null,
                Some(l) => json!({
                    "authorization": l.authorization,
                    "api_key": l.api_key,
                    "path": l.path,
                    "model": l.model,
                    "stream": l.stream,
                    "include_usage": l.include_usage,
                    "body_bytes": l.body.len(),
                    "body": serde_json::from_slice::<Value>(&l.body).unwrap_or(Value::Null),
                }),
            };
            json_response(StatusCode::OK, value)
        }
        (Method::GET, "/__mock/stats") => json_response(
            StatusCode::OK,
            json!({
                "requests": state.requests.load(Ordering::Relaxed),
                "refused_unrecognized": state.refused.load(Ordering::Relaxed),
            }),
        ),
        _ => error_response(StatusCode::NOT_FOUND, "not found"),
    })
}

async fn set_script(req: Request<Incoming>, state: &MockState) -> Response<Body> {
    let Ok(body) = req.into_body().collect().await else {
        return error_response(StatusCode::BAD_REQUEST, "unreadable body");
    };
    match serde_json::from_slice::<Script>(&body.to_bytes()) {
        Ok(script) => {
            if let Ok(mut s) = state.script.write() {
                *s = script.clone();
            }
            json_response(StatusCode::OK, json!(script))
        }
        Err(e) => error_response(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// The first top-level member OpenAI (and the script's `accept`) does not define, if any.
fn unrecognized(body: &[u8], accept: &[String]) -> Option<String> {
    let members: std::collections::HashMap<
        std::borrow::Cow<'_, str>,
        &serde_json::value::RawValue,
    > = serde_json::from_slice(body).ok()?;
    let mut names: Vec<&str> = members.keys().map(|k| k.as_ref()).collect();
    names.sort_unstable();
    names
        .into_iter()
        .find(|n| !OPENAI_CHAT_MEMBERS.contains(n) && !accept.iter().any(|a| a == n))
        .map(str::to_owned)
}

async fn chat(req: Request<Incoming>, state: &MockState) -> Option<Response<Body>> {
    let n = state.requests.fetch_add(1, Ordering::Relaxed);
    let script = state.script.read().map(|s| s.clone()).unwrap_or_default();
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Ok(body) = req.into_body().collect().await else {
        return Some(error_response(StatusCode::BAD_REQUEST, "unreadable body"));
    };
    let body = body.to_bytes();
    let head: ChatHead = match serde_json::from_slice(&body) {
        Ok(h) => h,
        Err(e) => {
            return Some(error_response(
                StatusCode::BAD_REQUEST,
                &format!("invalid JSON: {e}"),
            ));
        }
    };
    let include_usage = head
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    if let Ok(mut last) = state.last_request.write() {
        *last = Some(LastRequest {
            authorization: authorization.clone(),
            api_key: None,
            path: "/chat/completions".into(),
            model: head.model.clone(),
            stream: head.stream,
            include_usage,
            body: body.clone(),
        });
    }
    if script.drop_connection {
        return None;
    }
    if script.ttfb_ms > 0 {
        tokio::time::sleep(Duration::from_millis(script.ttfb_ms)).await;
    }
    if script.refuses_key(authorization.as_deref()) {
        return Some(error_response(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided",
        ));
    }
    if script.outage {
        return Some(error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "mock provider outage",
        ));
    }
    if let Some(member) = unrecognized(&body, &script.accept) {
        state.refused.fetch_add(1, Ordering::Relaxed);
        return Some(error_response(
            StatusCode::BAD_REQUEST,
            &format!("Unrecognized request argument supplied: {member}"),
        ));
    }
    if let Some(status) = script.error_for(n) {
        return Some(error_response(status, "scripted mock error"));
    }
    let model = head.model.unwrap_or_else(|| "mock".into());
    let asked = head.max_completion_tokens.or(head.max_tokens);
    let per_choice = match asked {
        _ if script.ignore_max_tokens => script.completion_tokens,
        Some(m) if script.report_most => m,
        Some(m) => m.min(script.completion_tokens),
        None => script.completion_tokens,
    };
    let completion = per_choice.saturating_mul(head.n.unwrap_or(1).max(1));
    let prompt = if script.report_most {
        body.len() as u64
    } else {
        (body.len() as u64).div_ceil(4)
    };
    let usage = Usage {
        prompt,
        completion,
        cached: script.cached_tokens,
        reasoning: script.reasoning_tokens.min(completion),
    };
    let id = format!("chatcmpl-mock-{n}");
    Some(if head.stream {
        stream_response(
            id,
            model,
            usage,
            include_usage && script.stream_usage,
            &script,
        )
    } else {
        let mut body = completion_json(&id, &model, &usage);
        if !script.usage
            && let Some(object) = body.as_object_mut()
        {
            object.remove("usage");
        }
        json_response(StatusCode::OK, body)
    })
}

/// An Anthropic Messages request: recorded, scripted failures as Anthropic answers them, then
/// `anthropic::respond`.
async fn messages(req: Request<Incoming>, state: &MockState) -> Option<Response<Body>> {
    let n = state.requests.fetch_add(1, Ordering::Relaxed);
    let script = state.script.read().map(|s| s.clone()).unwrap_or_default();
    let headers = req.headers().clone();
    let api_key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Ok(body) = req.into_body().collect().await else {
        return Some(anthropic::error(StatusCode::BAD_REQUEST, "unreadable body"));
    };
    let body = body.to_bytes();
    let head: Option<ChatHead> = serde_json::from_slice(&body).ok();
    if let Ok(mut last) = state.last_request.write() {
        *last = Some(LastRequest {
            authorization: None,
            api_key: api_key.clone(),
            path: "/messages".into(),
            model: head.as_ref().and_then(|h| h.model.clone()),
            stream: head.as_ref().is_some_and(|h| h.stream),
            include_usage: false,
            body: body.clone(),
        });
    }
    if script.drop_connection {
        return None;
    }
    if script.ttfb_ms > 0 {
        tokio::time::sleep(Duration::from_millis(script.ttfb_ms)).await;
    }
    if script.refuses_key(api_key.as_deref()) {
        return Some(anthropic::error(
            StatusCode::UNAUTHORIZED,
            "invalid x-api-key",
        ));
    }
    if script.outage {
        // Anthropic's overload status.
        let overloaded = StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return Some(anthropic::error(overloaded, "Overloaded"));
    }
    if let Some(status) = script.error_for(n) {
        return Some(anthropic::error(status, "scripted mock error"));
    }
    let response = anthropic::respond(&headers, &body, &script, n);
    if response.status() == StatusCode::BAD_REQUEST {
        state.refused.fetch_add(1, Ordering::Relaxed);
    }
    Some(response)
}

/// An OpenAI embeddings request: recorded, scripted failures, then `embeddings::respond`.
async fn embed(req: Request<Incoming>, state: &MockState) -> Response<Body> {
    let n = state.requests.fetch_add(1, Ordering::Relaxed);
    let script = state.script.read().map(|s| s.clone()).unwrap_or_default();
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Ok(body) = req.into_body().collect().await else {
        return error_response(StatusCode::BAD_REQUEST, "unreadable body");
    };
    let body = body.to_bytes();
    let model = serde_json::from_slice::<ChatHead>(&body)
        .ok()
        .and_then(|h| h.model);
    if let Ok(mut last) = state.last_request.write() {
        *last = Some(LastRequest {
            authorization,
            api_key: None,
            path: "/embeddings".into(),
            model,
            stream: false,
            include_usage: false,
            body: body.clone(),
        });
    }
    if script.outage {
        return error_response(StatusCode::SERVICE_UNAVAILABLE, "mock provider outage");
    }
    let response = embeddings::respond(&body, n);
    if response.status() == StatusCode::BAD_REQUEST {
        state.refused.fetch_add(1, Ordering::Relaxed);
    }
    response
}

/// A rerank request: recorded, then `rerank::respond`.
async fn rank(req: Request<Incoming>, state: &MockState) -> Response<Body> {
    let n = state.requests.fetch_add(1, Ordering::Relaxed);
    let Ok(body) = req.into_body().collect().await else {
        return error_response(StatusCode::BAD_REQUEST, "unreadable body");
    };
    let body = body.to_bytes();
    if let Ok(mut last) = state.last_request.write() {
        *last = Some(LastRequest {
            authorization: None,
            api_key: None,
            path: "/rerank".into(),
            model: serde_json::from_slice::<ChatHead>(&body)
                .ok()
                .and_then(|h| h.model),
            stream: false,
            include_usage: false,
            body: body.clone(),
        });
    }
    let response = rerank::respond(&body, n);
    if response.status() == StatusCode::BAD_REQUEST {
        state.refused.fetch_add(1, Ordering::Relaxed);
    }
    response
}

/// The call of an Azure OpenAI deployment path (`/openai/deployments/<d>/chat/completions`,
/// or `/embeddings`; under `/v1` too).
fn azure_call(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/openai/deployments/")
        .or_else(|| path.strip_prefix("/v1/deployments/"))?;
    let (_deployment, call) = rest.split_once('/')?;
    matches!(call, "chat/completions" | "embeddings").then_some(call)
}

/// Azure OpenAI: OpenAI's format at a deployment's path, which answers only with an
/// `api-version` and takes the key in `api-key`.
async fn azure(req: Request<Incoming>, state: &MockState) -> Option<Response<Body>> {
    let path = req.uri().path().to_owned();
    let call = azure_call(&path)?.to_owned();
    let versioned = req.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|p| p.starts_with("api-version=") && p.len() > 12)
    });
    if !versioned {
        // As Azure answers a call without its version.
        return Some(json_response(
            StatusCode::NOT_FOUND,
            json!({"error": {"code": "404", "message": "Resource not found"}}),
        ));
    }
    let api_key = req
        .headers()
        .get("api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let script = state.script.read().map(|s| s.clone()).unwrap_or_default();
    if script.refuses_key(api_key.as_deref()) {
        return Some(json_response(
            StatusCode::UNAUTHORIZED,
            json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key."}}),
        ));
    }
    let response = if call == "embeddings" {
        embed(req, state).await
    } else {
        chat(req, state).await?
    };
    if let Ok(mut last) = state.last_request.write()
        && let Some(last) = last.as_mut()
    {
        last.api_key = api_key;
        last.path = format!("/deployments/{call}");
    }
    Some(response)
}

/// `(model, streams)` of a Gemini call's path: `/v1beta/models/<model>:generateContent` or
/// `:streamGenerateContent` (under `/v1` too).
fn gemini_call(path: &str) -> Option<(&str, bool)> {
    let rest = path
        .strip_prefix("/v1beta/models/")
        .or_else(|| path.strip_prefix("/v1/models/"))?;
    match rest.rsplit_once(':')? {
        (model, "generateContent") => Some((model, false)),
        (model, "streamGenerateContent") => Some((model, true)),
        _ => None,
    }
}

/// A Gemini `generateContent` request: recorded, scripted failures as Google answers them,
/// then `gemini::respond`. A stream must ask for SSE (`alt=sse`), as the gateway does.
async fn generate_content(req: Request<Incoming>, state: &MockState) -> Option<Response<Body>> {
    let n = state.requests.fetch_add(1, Ordering::Relaxed);
    let script = state.script.read().map(|s| s.clone()).unwrap_or_default();
    let path = req.uri().path().to_owned();
    let sse = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "alt=sse"));
    let (model, stream) = gemini_call(&path)?;
    let model = model.to_owned();
    let api_key = req
        .headers()
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Ok(body) = req.into_body().collect().await else {
        return Some(gemini::error(StatusCode::BAD_REQUEST, "unreadable body"));
    };
    let body = body.to_bytes();
    if let Ok(mut last) = state.last_request.write() {
        *last = Some(LastRequest {
            authorization: None,
            api_key: api_key.clone(),
            path: if stream {
                "/streamGenerateContent"
            } else {
                "/generateContent"
            }
            .into(),
            model: Some(model.clone()),
            stream,
            include_usage: false,
            body: body.clone(),
        });
    }
    if script.drop_connection {
        return None;
    }
    if script.ttfb_ms > 0 {
        tokio::time::sleep(Duration::from_millis(script.ttfb_ms)).await;
    }
    if script.refuses_key(api_key.as_deref()) {
        return Some(gemini::error(StatusCode::UNAUTHORIZED, "API key not valid"));
    }
    if script.outage {
        return Some(gemini::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "The model is overloaded. Please try again later.",
        ));
    }
    if let Some(status) = script.error_for(n) {
        return Some(gemini::error(status, "scripted mock error"));
    }
    if stream && !sse {
        return Some(gemini::error(
            StatusCode::BAD_REQUEST,
            "the mock streams only as SSE (alt=sse)",
        ));
    }
    let response = gemini::respond(&model, &body, stream, &script, n);
    if response.status() == StatusCode::BAD_REQUEST {
        state.refused.fetch_add(1, Ordering::Relaxed);
    }
    Some(response)
}

struct Usage {
    prompt: u64,
    completion: u64,
    cached: u64,
    reasoning: u64,
}

impl Usage {
    fn json(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt.saturating_add(self.completion),
            "prompt_tokens_details": {"cached_tokens": self.cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        })
    }
}

fn created() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn words(n: u64) -> String {
    (0..n)
        .map(|i| if i == 0 { "tok" } else { " tok" })
        .collect()
}

fn completion_json(id: &str, model: &str, usage: &Usage) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created(),
        "model": model,
        "system_fingerprint": "fp_mock",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": words(usage.completion), "refusal": null},
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": usage.json(),
    })
}

fn stream_response(
    id: String,
    model: String,
    usage: Usage,
    include_usage: bool,
    script: &Script,
) -> Response<Body> {
    let chunk = move |delta: Value, finish: Value, usage: Option<Value>| {
        let mut v = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created(),
            "model": model,
            "system_fingerprint": "fp_mock",
            "choices": if usage.is_some() { json!([]) } else {
                json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}])
            },
        });
        if let Some(u) = usage {
            v["usage"] = u;
        }
        Bytes::from(format!("data: {v}\n\n"))
    };
    let delay = Duration::from_millis(script.inter_token_ms);
    let cut_after = script.cut_after_chunks;
    let total = usage.completion;
    let events = futures::stream::unfold(0u64, move |i| {
        let chunk = chunk.clone();
        let usage_json = usage.json();
        async move {
            // i = 0: role chunk; 1..=total: tokens; total+1: finish; total+2: usage; then [DONE].
            if i > 0 && i <= total && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if cut_after.is_some_and(|c| i > c && i <= total) {
                // Let what was sent so far reach the client first, so the cut is mid-stream.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Some((Err(std::io::Error::other("scripted cut")), u64::MAX));
            }
            let frame = match i {
                0 => chunk(
                    json!({"role": "assistant", "content": ""}),
                    Value::Null,
                    None,
                ),
                i if i <= total => {
                    let text = if i == 1 { "tok" } else { " tok" };
                    chunk(json!({"content": text}), Value::Null, None)
                }
                i if i == total + 1 => chunk(json!({}), json!("stop"), None),
                i if i == total + 2 && include_usage => {
                    chunk(json!({}), Value::Null, Some(usage_json))
                }
                i if i <= total + 3 => Bytes::from_static(b"data: [DONE]\n\n"),
                _ => return None,
            };
            let next = if i == total + 1 && !include_usage {
                total + 3
            } else {
                i + 1
            };
            Some((Ok(frame), next))
        }
    })
    .map(|r| r.map(Frame::data));
    let body = BodyExt::boxed(StreamBody::new(events));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(body)
        .unwrap_or_else(|_| Response::new(empty()))
}

pub(crate) fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|e: Infallible| match e {})
        .boxed()
}

pub(crate) fn json_response(status: StatusCode, value: Value) -> Response<Body> {
    let body = Full::new(Bytes::from(value.to_string()))
        .map_err(|e: Infallible| match e {})
        .boxed();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body)
        .unwrap_or_else(|_| Response::new(empty()))
}

/// OpenAI's error shape: `{"error":{"message","type","param","code"}}`.
fn error_response(status: StatusCode, message: &str) -> Response<Body> {
    let kind = match status.as_u16() {
        429 => "rate_limit_exceeded",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    };
    json_response(
        status,
        json!({"error": {"message": message, "type": kind, "param": null, "code": null}}),
    )
}

/// The mock against the providers' documented shapes (`loadtest/fixtures/`): every member a
/// fixture has, the mock's answer has too, block by block and event by event.
#[cfg(test)]
mod shape_tests {
    use super::*;

    /// Whether `actual` has every member `documented` has, recursively (a tool call's arguments
    /// excepted); array elements are compared with the documented element of the same `type`
    /// (or the untyped one sharing the most members), where there is one.
    fn has_shape(documented: &Value, actual: &Value, at: &str) -> Result<(), String> {
        match (documented, actual) {
            (Value::Object(d), Value::Object(a)) => {
                for (k, dv) in d {
                    let av = a.get(k).ok_or_else(|| format!("{at}.{k} missing"))?;
                    // A tool's arguments are the model's to choose, not the protocol's shape.
                    let free_form = matches!(k.as_str(), "input" | "args");
                    if !free_form && !dv.is_null() && !av.is_null() {
                        has_shape(dv, av, &format!("{at}.{k}"))?;
                    }
                }
                Ok(())
            }
            (Value::Array(d), Value::Array(a)) => {
                // Untyped elements (Gemini's parts) are compared with the documented one that
                // shares the most members.
                let shared = |dv: &Value, av: &Value| match (dv.as_object(), av.as_object()) {
                    (Some(d), Some(a)) => d.keys().filter(|k| a.contains_key(*k)).count(),
                    _ => 0,
                };
                for (i, av) in a.iter().enumerate() {
                    let same = d
                        .iter()
                        .find(|dv| dv.get("type").is_some() && dv.get("type") == av.get("type"))
                        .or_else(|| {
                            d.iter()
                                .filter(|dv| dv.get("type").is_none())
                                .max_by_key(|dv| shared(dv, av))
                        });
                    if let Some(dv) = same {
                        has_shape(dv, av, &format!("{at}[{i}]"))?;
                    }
                }
                Ok(())
            }
            (d, a) if std::mem::discriminant(d) == std::mem::discriminant(a) => Ok(()),
            (Value::Number(_), Value::Number(_)) => Ok(()),
            (d, a) => Err(format!("{at}: {a} where the provider has {d}")),
        }
    }

    async fn body_of(response: Response<Body>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn events(sse: &str) -> Vec<Value> {
        sse.split("\n\n")
            .flat_map(|e| e.split("\r\n\r\n"))
            .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect()
    }

    fn anthropic_headers() -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(
            "anthropic-version",
            http::HeaderValue::from_static("2023-06-01"),
        );
        h
    }

    const ANTHROPIC_REQUEST: &str = r#"{"model":"claude-mock-4","max_tokens":4000,
        "thinking":{"type":"enabled","budget_tokens":2000},
        "tools":[{"name":"get_weather","input_schema":{"type":"object"}}],
        "messages":[{"role":"user","content":"Weather?"}]}"#;

    #[tokio::test]
    async fn the_anthropic_mock_answers_in_the_documented_shape() {
        let script = Script {
            cache_write_tokens: 3,
            ..Script::default()
        };
        let documented: Value =
            serde_json::from_str(include_str!("../fixtures/anthropic/message.json")).unwrap();
        let whole = anthropic::respond(
            &anthropic_headers(),
            ANTHROPIC_REQUEST.as_bytes(),
            &script,
            1,
        );
        let actual: Value = serde_json::from_str(&body_of(whole).await).unwrap();
        has_shape(&documented, &actual, "message").unwrap();

        let documented = events(include_str!("../fixtures/anthropic/stream.sse"));
        let body = ANTHROPIC_REQUEST.replacen('{', r#"{"stream":true,"#, 1);
        let stream = anthropic::respond(&anthropic_headers(), body.as_bytes(), &script, 2);
        let actual = events(&body_of(stream).await);
        assert!(actual.len() > 5);
        for (i, event) in actual.iter().enumerate() {
            let delta_type = |e: &Value| {
                (
                    e["type"].clone(),
                    e["delta"]["type"].clone(),
                    e["content_block"]["type"].clone(),
                )
            };
            if let Some(d) = documented
                .iter()
                .find(|d| delta_type(d) == delta_type(event))
            {
                has_shape(d, event, &format!("event {i}")).unwrap();
            }
        }
        let error: Value =
            serde_json::from_str(include_str!("../fixtures/anthropic/error.json")).unwrap();
        let refused = anthropic::error(StatusCode::from_u16(529).unwrap(), "Overloaded");
        has_shape(
            &error,
            &serde_json::from_str(&body_of(refused).await).unwrap(),
            "error",
        )
        .unwrap();
    }

    #[tokio::test]
    async fn the_gemini_mock_answers_in_the_documented_shape() {
        let script = Script {
            cached_tokens: 2,
            reasoning_tokens: 3,
            ..Script::default()
        };
        let request = br#"{"contents":[{"role":"user","parts":[{"text":"Weather?"}]}],
            "generationConfig":{"thinkingConfig":{"thinkingBudget":100,"includeThoughts":true}},
            "tools":[{"functionDeclarations":[{"name":"get_weather"}]}],
            "toolConfig":{"functionCallingConfig":{"mode":"ANY"}}}"#;
        let documented: Value =
            serde_json::from_str(include_str!("../fixtures/gemini/response.json")).unwrap();
        let whole = gemini::respond("gemini-mock", request, false, &script, 1);
        let actual: Value = serde_json::from_str(&body_of(whole).await).unwrap();
        has_shape(&documented, &actual, "response").unwrap();
        let documented = events(include_str!("../fixtures/gemini/stream.sse"));
        let stream = gemini::respond("gemini-mock", request, true, &script, 2);
        let actual = events(&body_of(stream).await);
        let last_documented = documented.last().unwrap();
        has_shape(last_documented, actual.last().unwrap(), "last event").unwrap();
        let error: Value =
            serde_json::from_str(include_str!("../fixtures/gemini/error.json")).unwrap();
        let refused = gemini::error(StatusCode::SERVICE_UNAVAILABLE, "overloaded");
        has_shape(
            &error,
            &serde_json::from_str(&body_of(refused).await).unwrap(),
            "error",
        )
        .unwrap();
    }

    #[tokio::test]
    async fn the_openai_mock_answers_in_the_documented_shape() {
        let documented: Value =
            serde_json::from_str(include_str!("../fixtures/openai/chat_completion.json")).unwrap();
        let usage = Usage {
            prompt: 3,
            completion: 2,
            cached: 0,
            reasoning: 0,
        };
        let actual = completion_json("chatcmpl-1", "m", &usage);
        // The mock leaves out what it never produces: annotations, the service tier.
        let mut documented = documented;
        documented["choices"][0]["message"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
        documented.as_object_mut().unwrap().remove("service_tier");
        has_shape(&documented, &actual, "completion").unwrap();
    }

    #[test]
    fn a_missing_member_is_found() {
        let documented = json!({"a": {"b": [{"type": "x", "c": 1}]}});
        assert!(
            has_shape(
                &documented,
                &json!({"a": {"b": [{"type": "x", "c": 2}]}}),
                ""
            )
            .is_ok()
        );
        assert!(has_shape(&documented, &json!({"a": {"b": [{"type": "x"}]}}), "").is_err());
        assert!(has_shape(&documented, &json!({"a": {}}), "").is_err());
        assert!(has_shape(&json!({"n": 1}), &json!({"n": "1"}), "").is_err());
    }
}
