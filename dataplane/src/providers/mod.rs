//! Provider adapters: the wire format each endpoint speaks (`snapshot::Api`), translated to and
//! from OpenAI's chat completions, which the client speaks and every stage reads.
//!
//! The request is shaped once, in OpenAI's form (`forward::upstream_body`: the gateway's members
//! dropped, presets and provider options applied), and an adapter translates that body for its
//! provider. Responses come back the other way: a whole body, or an SSE stream event by event,
//! becomes an OpenAI chat completion (or its chunks) before the meter prices it, so metering,
//! settling and the client's view are the same whatever the provider spoke. Errors need no
//! translation: every supported provider puts its message at `error.message`. Embeddings and
//! rerank requests (other operations) go to OpenAI-compatible providers in OpenAI's (and the
//! rerank providers' common) shape, members copied raw.

pub mod anthropic;
pub mod gemini;

use crate::reject::{Kind, Reject};
use crate::snapshot::Api;
use crate::stages::forward::{self, Shaping};
use crate::stages::request::{ChatRequest, Operation};
use crate::stages::route::Attempt;

/// Which call of the endpoint's API an attempt makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Chat { stream: bool },
    Embeddings,
    Rerank,
}

impl Call {
    pub fn of(request: &ChatRequest<'_>) -> Call {
        match request.operation {
            Operation::Chat => Call::Chat {
                stream: request.stream,
            },
            Operation::Embeddings => Call::Embeddings,
            Operation::Rerank => Call::Rerank,
        }
    }
}

/// OpenRouter's share of the output budget that each reasoning effort gives to thinking, for
/// formats that take a token budget rather than an effort (Anthropic's, Gemini's).
pub(crate) fn effort_share(effort: &str) -> f64 {
    match effort {
        "xhigh" | "max" => 0.95,
        "high" => 0.8,
        "low" => 0.2,
        "minimal" => 0.1,
        _ => 0.5,
    }
}

/// Writes one OpenAI chunk as an SSE `data:` event.
pub(crate) fn write_event(out: &mut Vec<u8>, value: &serde_json::Value) {
    out.extend_from_slice(b"data: ");
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
    out.extend_from_slice(b"\n\n");
}

/// The members OpenAI's embeddings API defines besides `model`; no other is sent.
const EMBEDDINGS_MEMBERS: [&str; 4] = ["input", "encoding_format", "dimensions", "user"];

/// The body one attempt sends: the request shaped for the endpoint, in its provider's format.
/// An error says why this provider cannot take the request (a part its format has no place
/// for); nothing was sent.
pub fn request_body(
    request: &ChatRequest<'_>,
    shaping: Shaping<'_>,
    attempt: &Attempt<'_>,
) -> Result<Vec<u8>, String> {
    match request.operation {
        Operation::Chat => {}
        Operation::Embeddings => return embeddings_body(request, attempt),
        Operation::Rerank => return rerank_body(request, attempt),
    }
    let openai = forward::upstream_body(request, shaping, attempt);
    match attempt.endpoint.api {
        Api::OpenAiChat | Api::AzureOpenAi => Ok(openai),
        Api::AnthropicMessages => anthropic::request(&openai, request, attempt.endpoint),
        Api::Gemini => gemini::request(&openai, request, attempt.endpoint),
    }
}

/// An embeddings request in OpenAI's shape: the provider's model id and the members OpenAI's
/// embeddings API defines, values copied raw. Other formats' embeddings are not served.
fn embeddings_body(request: &ChatRequest<'_>, attempt: &Attempt<'_>) -> Result<Vec<u8>, String> {
    if attempt.endpoint.embeddings_path().is_none() {
        return Err(format!(
            "embeddings are served by OpenAI-format providers only, not {}",
            attempt.endpoint.api.slug()
        ));
    }
    Ok(model_and(request, attempt, &EMBEDDINGS_MEMBERS))
}

/// A rerank request in the shape rerank providers share (Cohere's, Jina's, Together's), for
/// the OpenAI-compatible providers that serve `/rerank`.
fn rerank_body(request: &ChatRequest<'_>, attempt: &Attempt<'_>) -> Result<Vec<u8>, String> {
    if attempt.endpoint.api != Api::OpenAiChat {
        return Err(format!(
            "reranking is served by OpenAI-compatible providers only, not {}",
            attempt.endpoint.api.slug()
        ));
    }
    Ok(model_and(
        request,
        attempt,
        &crate::dialect::rerank::MEMBERS,
    ))
}

/// `{"model": <the provider's id>, …}` with the request's `members`, values copied raw.
fn model_and(request: &ChatRequest<'_>, attempt: &Attempt<'_>, members: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(request.body_len + 64);
    out.extend_from_slice(b"{\"model\":");
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &attempt.endpoint.upstream_model);
    for (name, value) in &request.fields {
        if members.contains(&name.as_ref()) {
            out.push(b',');
            let _ = serde_json::to_writer(&mut out, name.as_ref());
            out.push(b':');
            out.extend_from_slice(value.get().as_bytes());
        }
    }
    out.push(b'}');
    out
}

/// The request header of one attempt: the endpoint's path, its credential in the header its
/// API reads (the gateway's or the organization's own, never the client's).
pub fn request_header(
    attempt: &Attempt<'_>,
    body_len: usize,
    call: Call,
) -> Result<http::request::Parts, Reject> {
    let endpoint = attempt.endpoint;
    let other_path;
    let (path, stream) = match call {
        Call::Chat { stream: true } => (&endpoint.stream_path, true),
        Call::Chat { stream: false } => (&endpoint.path, false),
        Call::Embeddings => {
            other_path = endpoint.embeddings_path().unwrap_or_default();
            (&other_path, false)
        }
        Call::Rerank => {
            other_path = format!("{}/rerank", endpoint.upstream.base_path);
            (&other_path, false)
        }
    };
    let mut header = http::Request::post(path.as_str())
        .header("host", &endpoint.upstream.host)
        .header("content-type", "application/json")
        .header("content-length", body_len)
        .header(
            "accept",
            if stream {
                "text/event-stream"
            } else {
                "application/json"
            },
        );
    // The snapshot keeps each credential as a bearer value; other APIs take the bare key, each
    // in its own header.
    let authorization = attempt.authorization();
    let key = authorization.map(|v| v.strip_prefix("Bearer ").unwrap_or(v));
    let credential = match endpoint.api {
        Api::OpenAiChat => authorization.map(|value| ("authorization", value)),
        Api::AnthropicMessages => {
            header = header.header("anthropic-version", anthropic::VERSION);
            key.map(|key| ("x-api-key", key))
        }
        Api::Gemini => key.map(|key| ("x-goog-api-key", key)),
        Api::AzureOpenAi => key.map(|key| ("api-key", key)),
    };
    if let Some((name, value)) = credential {
        header = header.header(name, value);
    }
    // The error names the part, never a header's value (it may be a credential).
    header.body(()).map(|r| r.into_parts().0).map_err(|e| {
        Reject::new(
            Kind::Internal,
            format!("cannot build upstream request: {e}"),
        )
    })
}

/// A whole (non-stream) response body as an OpenAI chat completion; `None` when the provider's
/// body is not what its format promises (the caller passes it on untouched).
pub fn completion(api: Api, body: Vec<u8>, created: i64) -> Option<Vec<u8>> {
    match api {
        Api::OpenAiChat | Api::AzureOpenAi => Some(body),
        Api::AnthropicMessages => anthropic::completion(&body, created),
        Api::Gemini => gemini::completion(&body, created),
    }
}

/// Turns a provider's SSE stream into OpenAI chat-completion chunks, event by event.
pub enum StreamDecoder {
    /// Already OpenAI's: passed through.
    OpenAi,
    /// Boxed: an OpenAI stream, the common case, should not carry its size.
    Anthropic(Box<anthropic::StreamDecoder>),
    Gemini(Box<gemini::StreamDecoder>),
}

impl StreamDecoder {
    pub fn new(api: Api, created: i64) -> StreamDecoder {
        match api {
            Api::OpenAiChat | Api::AzureOpenAi => StreamDecoder::OpenAi,
            Api::AnthropicMessages => {
                StreamDecoder::Anthropic(Box::new(anthropic::StreamDecoder::new(created)))
            }
            Api::Gemini => StreamDecoder::Gemini(Box::new(gemini::StreamDecoder::new(created))),
        }
    }

    /// Feeds bytes read from the provider. Returns what the meter's relay should read: the input
    /// itself for OpenAI, else `scratch` filled with the chunks the complete events make.
    pub fn decode<'a>(&mut self, input: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
        scratch.clear();
        match self {
            StreamDecoder::OpenAi => return input,
            StreamDecoder::Anthropic(d) => d.push(input, scratch),
            StreamDecoder::Gemini(d) => d.push(input, scratch),
        }
        scratch
    }

    /// The provider closed the stream: what the decoder still owes the relay (Gemini's usage
    /// chunk and `[DONE]`, which Gemini never sends), in `scratch`. A stream closed before its
    /// format's end (Anthropic's `message_stop`, Gemini's finish reason) has failed.
    pub fn finish<'a>(&mut self, scratch: &'a mut Vec<u8>) -> &'a [u8] {
        scratch.clear();
        match self {
            StreamDecoder::OpenAi => {}
            StreamDecoder::Anthropic(d) => d.finish(),
            StreamDecoder::Gemini(d) => d.finish(scratch),
        }
        scratch
    }

    /// The provider's in-stream error, once it has sent one: the stream has failed.
    pub fn failure(&self) -> Option<&str> {
        match self {
            StreamDecoder::OpenAi => None,
            StreamDecoder::Anthropic(d) => d.failure(),
            StreamDecoder::Gemini(d) => d.failure(),
        }
    }

    /// Whether an event grew past the bound on one event; the stream should be abandoned.
    pub fn overflowed(&self) -> bool {
        match self {
            StreamDecoder::OpenAi => false,
            StreamDecoder::Anthropic(d) => d.overflowed(),
            StreamDecoder::Gemini(d) => d.overflowed(),
        }
    }
}
