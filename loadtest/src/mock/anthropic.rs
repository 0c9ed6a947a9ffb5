//! The mock's Anthropic Messages API (`POST /v1/messages`), built from Anthropic's documented
//! shapes (the official SDK's types): JSON and SSE (`message_start`, `content_block_*`,
//! `message_delta`, `message_stop`, `ping`, `error`), its error shape and its 529 overload.
//!
//! Strict as the real API is: every request and content-block member is checked against the
//! documented ones (unknown members are a 400), `anthropic-version` is required, `max_tokens`
//! is required, a thinking budget must be at least 1,024 and below `max_tokens`, thinking
//! takes no temperature or top_k nor a forced tool choice, roles alternate, empty text blocks are refused, and every
//! `tool_result` answers a `tool_use` of the turn before.
//!
//! It answers with a thinking block when thinking is enabled, a `tool_use` block when a tool
//! choice forces one or, left to choose, until a tool result answers it, `{}` under a JSON-schema output format, and "tok tok …" otherwise. Cache
//! writes are reported (`Script::cache_write_tokens`) when the request marks any block with
//! `cache_control`, cache reads as `Script::cached_tokens`.

// The request types exist to be checked member by member; not every member is read.
#![allow(dead_code)]

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Body, Script, empty, json_response, words};

/// The version the mock speaks, as Anthropic's SDKs send it.
pub const VERSION: &str = "2023-06-01";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessagesRequest {
    model: String,
    messages: Vec<MessageParam>,
    max_tokens: u64,
    #[serde(default)]
    system: Option<System>,
    #[serde(default)]
    stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    top_k: Option<u64>,
    #[serde(default)]
    tools: Option<Vec<Tool>>,
    #[serde(default)]
    tool_choice: Option<ToolChoice>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    thinking: Option<Thinking>,
    #[serde(default)]
    output_config: Option<OutputConfig>,
    #[serde(default)]
    service_tier: Option<String>,
    #[serde(default)]
    cache_control: Option<CacheControl>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum System {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageParam {
    role: String,
    content: Content,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheControl {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    ttl: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ContentBlock {
    Text {
        text: String,
        #[serde(default)]
        cache_control: Option<CacheControl>,
        #[serde(default)]
        citations: Option<Value>,
    },
    Image {
        source: Source,
        #[serde(default)]
        cache_control: Option<CacheControl>,
    },
    Document {
        source: Source,
        #[serde(default)]
        title: Option<String>,
        #[serde(default)]
        context: Option<String>,
        #[serde(default)]
        citations: Option<Value>,
        #[serde(default)]
        cache_control: Option<CacheControl>,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
        #[serde(default)]
        cache_control: Option<CacheControl>,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Option<Value>,
        #[serde(default)]
        is_error: Option<bool>,
        #[serde(default)]
        cache_control: Option<CacheControl>,
    },
    Thinking {
        thinking: String,
        signature: String,
    },
    RedactedThinking {
        data: String,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Source {
    Base64 { media_type: String, data: String },
    Url { url: String },
    Text { media_type: String, data: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Tool {
    name: String,
    #[serde(default)]
    description: Option<String>,
    input_schema: Value,
    #[serde(default)]
    cache_control: Option<CacheControl>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ToolChoice {
    Auto {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Any {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Tool {
        name: String,
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    None,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    #[serde(default)]
    user_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Thinking {
    Enabled {
        budget_tokens: u64,
        #[serde(default)]
        display: Option<String>,
    },
    Disabled,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputConfig {
    #[serde(default)]
    effort: Option<String>,
    #[serde(default)]
    format: Option<JsonFormat>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonFormat {
    #[serde(rename = "type")]
    kind: String,
    schema: Value,
}

/// Anthropic's error body.
pub fn error(status: StatusCode, message: &str) -> Response<Body> {
    let kind = match status.as_u16() {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    json_response(
        status,
        json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

fn invalid(message: impl Into<String>) -> Response<Body> {
    error(StatusCode::BAD_REQUEST, &message.into())
}

/// What the request asks of the answer, once it is known to be valid.
struct Asked {
    model: String,
    max_tokens: u64,
    stream: bool,
    thinking: bool,
    /// The tool a tool choice forces, if it forces one.
    forced_tool: Option<String>,
    json: bool,
    marks_cache: bool,
}

/// Checks a request as Anthropic would; the message of the 400 it would answer otherwise.
fn validate(headers: &HeaderMap, body: &[u8]) -> Result<Asked, String> {
    match headers
        .get("anthropic-version")
        .and_then(|v| v.to_str().ok())
    {
        Some(VERSION) => {}
        Some(other) => {
            return Err(format!("anthropic-version: unknown version {other}"));
        }
        None => return Err("anthropic-version: header is required".into()),
    }
    let request: MessagesRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if request.max_tokens == 0 {
        return Err("max_tokens: must be at least 1".into());
    }
    if request.messages.is_empty() {
        return Err("messages: at least one message is required".into());
    }
    let thinking = match request.thinking {
        Some(Thinking::Enabled { budget_tokens, .. }) => {
            if budget_tokens < 1024 {
                return Err("thinking.budget_tokens: must be at least 1024".into());
            }
            if budget_tokens >= request.max_tokens {
                return Err("max_tokens must be greater than thinking.budget_tokens".into());
            }
            if request.temperature.is_some_and(|t| t != 1.0) || request.top_k.is_some() {
                return Err("temperature and top_k are not compatible with thinking".into());
            }
            true
        }
        _ => false,
    };
    if request
        .temperature
        .is_some_and(|t| !(0.0..=1.0).contains(&t))
    {
        return Err("temperature: must be between 0 and 1".into());
    }
    let mut marks_cache = request.cache_control.is_some();
    let mut check = |block: &ContentBlock| -> Result<(), String> {
        let mark = match block {
            ContentBlock::Text {
                text,
                cache_control,
                ..
            } => {
                if text.is_empty() {
                    return Err("text content blocks must be non-empty".into());
                }
                cache_control
            }
            ContentBlock::Image { cache_control, .. }
            | ContentBlock::Document { cache_control, .. }
            | ContentBlock::ToolUse { cache_control, .. }
            | ContentBlock::ToolResult { cache_control, .. } => cache_control,
            ContentBlock::Thinking { .. } | ContentBlock::RedactedThinking { .. } => &None,
        };
        if let Some(c) = mark {
            if c.kind != "ephemeral" || c.ttl.as_deref().is_some_and(|t| t != "5m" && t != "1h") {
                return Err("cache_control: type must be ephemeral, ttl 5m or 1h".into());
            }
            marks_cache = true;
        }
        Ok(())
    };
    if let Some(System::Blocks(blocks)) = &request.system {
        for b in blocks {
            if !matches!(b, ContentBlock::Text { .. }) {
                return Err("system: only text blocks are allowed".into());
            }
            check(b)?;
        }
    }
    let mut last_role = "";
    let mut last_tool_uses: HashSet<&str> = HashSet::new();
    for (i, m) in request.messages.iter().enumerate() {
        if m.role != "user" && m.role != "assistant" {
            return Err(format!("messages.{i}.role: must be user or assistant"));
        }
        if m.role == last_role {
            return Err(format!(
                "messages.{i}: roles must alternate between user and assistant"
            ));
        }
        let mut tool_uses = HashSet::new();
        if let Content::Blocks(blocks) = &m.content {
            for b in blocks {
                check(b)?;
                match b {
                    ContentBlock::ToolUse { id, .. } if m.role == "assistant" => {
                        tool_uses.insert(id.as_str());
                    }
                    ContentBlock::ToolResult { tool_use_id, .. }
                        if m.role != "user" || !last_tool_uses.contains(tool_use_id.as_str()) =>
                    {
                        return Err(format!(
                            "messages.{i}: tool_result block {tool_use_id} answers no tool_use \
                             of the previous message"
                        ));
                    }
                    ContentBlock::Thinking { .. } | ContentBlock::RedactedThinking { .. }
                        if m.role != "assistant" =>
                    {
                        return Err(format!("messages.{i}: thinking blocks are the assistant's"));
                    }
                    ContentBlock::ToolUse { .. } => {
                        return Err(format!("messages.{i}: tool_use blocks are the assistant's"));
                    }
                    _ => {}
                }
            }
        } else if matches!(&m.content, Content::Text(t) if t.is_empty()) {
            return Err(format!("messages.{i}: content must be non-empty"));
        }
        last_role = if m.role == "user" {
            "user"
        } else {
            "assistant"
        };
        last_tool_uses = tool_uses;
    }
    let tools = request.tools.unwrap_or_default();
    for t in &tools {
        check_tool(t)?;
        if t.cache_control.is_some() {
            marks_cache = true;
        }
    }
    let forced = matches!(
        request.tool_choice,
        Some(ToolChoice::Any { .. } | ToolChoice::Tool { .. })
    );
    if forced && thinking {
        return Err("Thinking may not be enabled when tool_choice forces tool use.".into());
    }
    // The mock model calls a tool when forced to, and, left to choose, until a tool result
    // has answered it.
    let answered = request.messages.last().is_some_and(|m| {
        matches!(&m.content, Content::Blocks(b) if b.iter().any(|b| matches!(b, ContentBlock::ToolResult { .. })))
    });
    let forced_tool = match &request.tool_choice {
        Some(ToolChoice::Any { .. }) => match tools.first() {
            Some(t) => Some(t.name.clone()),
            None => return Err("tool_choice: any requires tools".into()),
        },
        Some(ToolChoice::Tool { name, .. }) => {
            if !tools.iter().any(|t| &t.name == name) {
                return Err(format!("tool_choice: tool {name} is not among the tools"));
            }
            Some(name.clone())
        }
        Some(ToolChoice::None) => None,
        _ if answered => None,
        _ => tools.first().map(|t| t.name.clone()),
    };
    let json = match request.output_config.and_then(|c| c.format) {
        Some(f) if f.kind == "json_schema" && f.schema.is_object() => true,
        Some(_) => {
            return Err(
                "output_config.format: type must be json_schema with an object schema".into(),
            );
        }
        None => false,
    };
    Ok(Asked {
        model: request.model,
        max_tokens: request.max_tokens,
        stream: request.stream.unwrap_or(false),
        thinking,
        forced_tool,
        json,
        marks_cache,
    })
}

fn check_tool(t: &Tool) -> Result<(), String> {
    if t.name.is_empty() || t.name.len() > 128 {
        return Err("tools: name must be 1 to 128 characters".into());
    }
    if t.input_schema["type"] != "object" {
        return Err(format!(
            "tools.{}: input_schema.type must be object",
            t.name
        ));
    }
    Ok(())
}

/// Answers a valid or invalid Messages request.
pub fn respond(headers: &HeaderMap, body: &[u8], script: &Script, n: u64) -> Response<Body> {
    let asked = match validate(headers, body) {
        Ok(a) => a,
        Err(message) => return invalid(message),
    };
    let output = asked.max_tokens.min(script.completion_tokens).max(1);
    let thinking_tokens = if asked.thinking {
        output.min(script.reasoning_tokens.max(1))
    } else {
        0
    };
    let read = script.cached_tokens;
    let written = if asked.marks_cache {
        script.cache_write_tokens
    } else {
        0
    };
    let input = (body.len() as u64)
        .div_ceil(4)
        .saturating_sub(read)
        .saturating_sub(written)
        .max(1);
    let usage = json!({
        "input_tokens": input,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "output_tokens": output,
        "output_tokens_details": {"thinking_tokens": thinking_tokens},
        "service_tier": "standard",
    });
    let id = format!("msg_mock_{n}");
    let text = if asked.json {
        "{}".to_owned()
    } else {
        words(output - thinking_tokens)
    };
    let stop_reason = if asked.forced_tool.is_some() {
        "tool_use"
    } else if output < script.completion_tokens {
        "max_tokens"
    } else {
        "end_turn"
    };
    if asked.stream {
        return stream(id, asked, usage, text, stop_reason, script);
    }
    let mut content = Vec::new();
    if asked.thinking {
        content.push(json!({"type": "thinking", "thinking": "Mock thinking.", "signature": format!("sig-{n}")}));
    }
    match &asked.forced_tool {
        Some(name) => content.push(
            json!({"type": "tool_use", "id": format!("toolu_mock_{n}"), "name": name, "input": {}}),
        ),
        None => content.push(json!({"type": "text", "text": text})),
    }
    json_response(
        StatusCode::OK,
        json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": asked.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": usage,
        }),
    )
}

fn event(kind: &str, data: Value) -> Bytes {
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

fn stream(
    id: String,
    asked: Asked,
    usage: Value,
    text: String,
    stop_reason: &'static str,
    script: &Script,
) -> Response<Body> {
    let mut start_usage = usage.clone();
    start_usage["output_tokens"] = json!(1);
    let mut events = vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": asked.model,
                "content": [], "stop_reason": null, "stop_sequence": null, "usage": start_usage,
            }}),
        ),
        event("ping", json!({"type": "ping"})),
    ];
    let mut index = 0;
    // Where content starts: a cut or an in-band error counts content events from here.
    let mut content_events = Vec::new();
    if asked.thinking {
        events.push(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ));
        content_events.push(events.len());
        events.push(event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index,
            "delta": {"type": "thinking_delta", "thinking": "Mock thinking."}}),
        ));
        events.push(event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index,
            "delta": {"type": "signature_delta", "signature": format!("sig-{id}")}}),
        ));
        events.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    match &asked.forced_tool {
        Some(name) => {
            events.push(event("content_block_start", json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": format!("toolu_{id}"), "name": name, "input": {}}})));
            for piece in ["{", "}"] {
                content_events.push(events.len());
                events.push(event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": piece}}),
                ));
            }
        }
        None => {
            events.push(event(
                "content_block_start",
                json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "text", "text": ""}}),
            ));
            for word in text.split_inclusive(' ') {
                content_events.push(events.len());
                events.push(event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "text_delta", "text": word}}),
                ));
            }
        }
    }
    events.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": index}),
    ));
    events.push(event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": usage["output_tokens"]}}),
    ));
    events.push(event("message_stop", json!({"type": "message_stop"})));

    // A cut (connection lost) or an in-band error after that many content events.
    let cut_at = script
        .cut_after_chunks
        .and_then(|c| content_events.get(usize::try_from(c).ok()?).copied());
    let error_at = script
        .stream_error_after_chunks
        .and_then(|c| content_events.get(usize::try_from(c).ok()?).copied());
    let delay = Duration::from_millis(script.inter_token_ms);
    let frames = futures::stream::iter(events.into_iter().enumerate()).then(move |(i, frame)| async move {
        // Every event after the start and the ping is paced like a token.
        if i > 1 && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if cut_at == Some(i) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Err(std::io::Error::other("scripted cut"));
        }
        if error_at == Some(i) {
            return Ok(event("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})));
        }
        Ok(frame)
    });
    // Nothing after an in-band error, as Anthropic ends the stream there.
    let frames = frames
        .scan(false, move |ended, frame| {
            let stop = *ended;
            if let Ok(f) = &frame {
                *ended |= f.starts_with(b"event: error");
            }
            futures::future::ready((!stop).then_some(frame))
        })
        .map(|r| r.map(Frame::data));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(BodyExt::boxed(StreamBody::new(frames)))
        .unwrap_or_else(|_| Response::new(empty()))
}
