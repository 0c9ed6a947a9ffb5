//! `POST /messages`: clients that speak Anthropic's Messages API (the official `anthropic` SDK
//! with only its base URL changed). The request becomes an OpenAI chat request before any stage
//! reads it, and what the meter writes for the client (an OpenAI chat completion, or its chunks)
//! becomes Anthropic's message or stream events, so every stage, price and record is the same
//! as for `/chat/completions`, whatever format the serving provider speaks.
//!
//! Requests: `system` becomes a system message (text blocks keep `cache_control`); blocks become
//! parts (images as `image_url`, PDF documents as `file`), `tool_use` blocks tool calls,
//! `tool_result` blocks tool messages, thinking blocks `reasoning_details` (signed, so Claude
//! gets them back unchanged); `stop_sequences` is `stop`, `metadata.user_id` `user`, `thinking`
//! a reasoning budget, `output_config.format` a `json_schema` response format; OpenRouter's own
//! members (`provider`, `models`, `session_id`, …) pass as they are.
//!
//! Answers: `content` is text, thinking and `tool_use` blocks; finish reasons are stop reasons;
//! usage is Anthropic's, with the cache reads and writes apart from `input_tokens`. Streams are
//! Anthropic's events, one content block at a time, with the usage in `message_delta`.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{bad, object};
use crate::reject::Reject;
use crate::stages::meter::EventSplitter;

type Object = Map<String, Value>;

/// OpenRouter's members a Messages request may carry, passed to the chat request as they are.
const GATEWAY_MEMBERS: [&str; 9] = [
    "provider",
    "models",
    "route",
    "session_id",
    "preset",
    "transforms",
    "plugins",
    "usage",
    "zdr",
];

/// A Messages request as the OpenAI chat request every stage reads; a 400 saying what is wrong.
pub fn request(body: &[u8]) -> Result<Vec<u8>, Reject> {
    let body = object(body)?;
    let mut out = Object::new();
    if let Some(model) = body.get("model") {
        out.insert("model".into(), model.clone());
    }
    let mut messages = Vec::new();
    match body.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(Value::Array(blocks)) => {
            let parts = blocks
                .iter()
                .map(|b| text_part(b).ok_or_else(|| bad("system: only text blocks")))
                .collect::<Result<Vec<_>, _>>()?;
            messages.push(json!({"role": "system", "content": parts}));
        }
        Some(_) => return Err(bad("system must be a string or text blocks")),
    }
    let turns = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("messages: an array is required"))?;
    for (i, turn) in turns.iter().enumerate() {
        translate_turn(turn, &mut messages).map_err(|m| bad(format!("messages.{i}: {m}")))?;
    }
    out.insert("messages".into(), Value::Array(messages));
    match body.get("max_tokens").and_then(Value::as_u64) {
        Some(m) => {
            out.insert("max_tokens".into(), json!(m));
        }
        None => return Err(bad("max_tokens: a positive integer is required")),
    }
    for name in ["temperature", "top_p", "top_k", "stream"] {
        if let Some(v) = body.get(name) {
            out.insert(name.into(), v.clone());
        }
    }
    if let Some(stop) = body.get("stop_sequences") {
        out.insert("stop".into(), stop.clone());
    }
    if let Some(user) = body
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        out.insert("user".into(), json!(user));
    }
    match body.get("thinking") {
        Some(t) if t["type"] == "enabled" => {
            let budget = t["budget_tokens"].as_u64().unwrap_or(1024);
            let mut reasoning = json!({ "max_tokens": budget });
            if t["display"] == "omitted" {
                reasoning["exclude"] = json!(true);
            }
            out.insert("reasoning".into(), reasoning);
        }
        Some(t) if t["type"] == "adaptive" => {
            out.insert("reasoning".into(), json!({"enabled": true}));
        }
        Some(t) if t["type"] == "disabled" => {
            out.insert("reasoning".into(), json!({"enabled": false}));
        }
        _ => {}
    }
    if let Some(schema) = body
        .get("output_config")
        .and_then(|c| c.get("format"))
        .filter(|f| f["type"] == "json_schema")
        .map(|f| f["schema"].clone())
    {
        out.insert(
            "response_format".into(),
            json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}),
        );
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let tools = tools
            .iter()
            .map(|t| {
                let name = t["name"]
                    .as_str()
                    .ok_or_else(|| bad("tools: a tool needs a name"))?;
                let mut function = json!({"name": name, "parameters": t["input_schema"]});
                if let Some(d) = t["description"].as_str() {
                    function["description"] = json!(d);
                }
                Ok(json!({"type": "function", "function": function}))
            })
            .collect::<Result<Vec<_>, Reject>>()?;
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = body.get("tool_choice") {
        let openai = match choice["type"].as_str() {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => json!({"type": "function", "function": {"name": choice["name"]}}),
            _ => {
                return Err(bad("tool_choice: type must be auto, any, tool or none"));
            }
        };
        out.insert("tool_choice".into(), openai);
        if choice["disable_parallel_tool_use"] == true {
            out.insert("parallel_tool_calls".into(), json!(false));
        }
    }
    for name in GATEWAY_MEMBERS {
        if let Some(v) = body.get(name) {
            out.insert(name.into(), v.clone());
        }
    }
    serde_json::to_vec(&out).map_err(|e| bad(format!("request: {e}")))
}

fn text_part(block: &Value) -> Option<Value> {
    if block["type"] != "text" {
        return None;
    }
    let mut part = json!({"type": "text", "text": block["text"].as_str()?});
    if let Some(c) = block.get("cache_control") {
        part["cache_control"] = c.clone();
    }
    Some(part)
}

/// One Anthropic turn as OpenAI messages: tool results become tool messages of their own.
fn translate_turn(turn: &Value, out: &mut Vec<Value>) -> Result<(), String> {
    let role = turn["role"].as_str().unwrap_or_default();
    if role != "user" && role != "assistant" {
        return Err("role must be user or assistant".into());
    }
    let blocks = match &turn["content"] {
        Value::String(s) => {
            out.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Value::Array(blocks) => blocks,
        _ => return Err("content must be a string or blocks".into()),
    };
    let mut parts = Vec::new();
    let mut tool_calls = Vec::new();
    let mut details = Vec::new();
    for block in blocks {
        match block["type"].as_str() {
            Some("text") => parts.push(text_part(block).ok_or("a text block needs text")?),
            Some("image") => parts.push(json!({"type": "image_url", "image_url": {"url": media_url(&block["source"])?}})),
            Some("document") => parts.push(json!({"type": "file", "file": {
                "filename": block["title"].as_str().unwrap_or("document.pdf"),
                "file_data": media_url(&block["source"])?,
            }})),
            Some("tool_use") if role == "assistant" => tool_calls.push(json!({
                "id": block["id"],
                "type": "function",
                "function": {"name": block["name"], "arguments": block["input"].to_string()},
            })),
            Some("tool_result") if role == "user" => {
                let content = match &block["content"] {
                    Value::String(s) => s.clone(),
                    Value::Array(inner) => inner
                        .iter()
                        .filter_map(|b| b["text"].as_str())
                        .collect::<Vec<_>>()
                        .join(""),
                    _ => String::new(),
                };
                out.push(json!({"role": "tool", "tool_call_id": block["tool_use_id"], "content": content}));
            }
            Some("thinking") if role == "assistant" => details.push(json!({
                "type": "reasoning.text", "text": block["thinking"], "signature": block["signature"],
                "format": "anthropic-claude-v1", "index": details.len(),
            })),
            Some("redacted_thinking") if role == "assistant" => details.push(json!({
                "type": "reasoning.encrypted", "data": block["data"],
                "format": "anthropic-claude-v1", "index": details.len(),
            })),
            other => {
                return Err(format!(
                    "a {} block cannot be in a {role} turn",
                    other.unwrap_or("untyped")
                ));
            }
        }
    }
    if parts.is_empty() && tool_calls.is_empty() && details.is_empty() {
        return Ok(());
    }
    let mut message = json!({"role": role, "content": if parts.is_empty() { Value::Null } else { Value::Array(parts) }});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    if !details.is_empty() {
        message["reasoning_details"] = Value::Array(details);
    }
    out.push(message);
    Ok(())
}

/// A block's `source` as a URL: base64 as a `data:` URL.
fn media_url(source: &Value) -> Result<String, String> {
    match source["type"].as_str() {
        Some("base64") => match (source["media_type"].as_str(), source["data"].as_str()) {
            (Some(mime), Some(data)) => Ok(format!("data:{mime};base64,{data}")),
            _ => Err("a base64 source needs media_type and data".into()),
        },
        Some("url") => source["url"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "a url source needs url".into()),
        _ => Err("a source must be base64 or url".into()),
    }
}

// ---- answers ----

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    cost: Option<f64>,
}

#[derive(Deserialize, Default)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: u64,
    #[serde(default)]
    cache_write_tokens: u64,
}

impl Usage {
    /// Anthropic's usage: `input_tokens` without the cache reads and writes. OpenRouter's
    /// `cost` rides along.
    fn anthropic(&self) -> Value {
        let details = self.prompt_tokens_details.as_ref();
        let read = details.map_or(0, |d| d.cached_tokens);
        let written = details.map_or(0, |d| d.cache_write_tokens);
        let mut u = json!({
            "input_tokens": self.prompt_tokens.saturating_sub(read).saturating_sub(written),
            "output_tokens": self.completion_tokens,
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
        });
        if let Some(cost) = self.cost {
            u["cost"] = json!(cost);
        }
        u
    }
}

/// Anthropic's stop reason for an OpenAI finish reason.
fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// An OpenAI chat completion (as the meter wrote it) as Anthropic's message.
pub fn completion(body: &[u8]) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let choice = &v["choices"][0];
    let message = &choice["message"];
    let mut content = Vec::new();
    let signatures: Vec<&Value> = message["reasoning_details"]
        .as_array()
        .map(|d| d.iter().collect())
        .unwrap_or_default();
    for d in &signatures {
        match d["type"].as_str() {
            Some("reasoning.text") => content.push(json!({
                "type": "thinking", "thinking": d["text"].as_str().unwrap_or(""),
                "signature": d["signature"].as_str().unwrap_or(""),
            })),
            Some("reasoning.encrypted") if d["data"].is_string() && d.get("id").is_none() => {
                content.push(json!({"type": "redacted_thinking", "data": d["data"]}));
            }
            _ => {}
        }
    }
    if signatures.is_empty()
        && let Some(reasoning) = message["reasoning"].as_str().filter(|r| !r.is_empty())
    {
        content.push(json!({"type": "thinking", "thinking": reasoning, "signature": ""}));
    }
    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        let arguments = call["function"]["arguments"].as_str().unwrap_or("{}");
        let input: Value = serde_json::from_str(arguments).unwrap_or_else(|_| json!({}));
        content.push(json!({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": input}));
    }
    let usage: Usage = serde_json::from_value(v["usage"].clone()).unwrap_or_default();
    let out = json!({
        "id": v["id"],
        "type": "message",
        "role": "assistant",
        "model": v["model"],
        "provider": v["provider"],
        "content": content,
        "stop_reason": choice["finish_reason"].as_str().map(stop_reason),
        "stop_sequence": null,
        "usage": usage.anthropic(),
    });
    serde_json::to_vec(&out).ok()
}

/// Anthropic's error body for a refusal, with its status kept.
pub fn error_body(reject: &Reject) -> Vec<u8> {
    let kind = match reject.status() {
        400 | 413 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        408 | 504 => "timeout_error",
        429 => "rate_limit_error",
        529 | 503 => "overloaded_error",
        _ => "api_error",
    };
    json!({"type": "error", "error": {"type": kind, "message": reject.message}})
        .to_string()
        .into_bytes()
}

/// What kind of content block is open in the stream.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Thinking,
    Text,
    Tool(u64),
}

/// Turns the OpenAI chunks the meter writes into Anthropic's stream events.
pub struct StreamEncoder {
    events: EventSplitter,
    started: bool,
    open: Open,
    index: i64,
    stop: Option<&'static str>,
    usage: Option<Usage>,
    ended: bool,
}

impl Default for StreamEncoder {
    fn default() -> Self {
        StreamEncoder::new()
    }
}

impl StreamEncoder {
    pub fn new() -> StreamEncoder {
        StreamEncoder {
            events: EventSplitter::default(),
            started: false,
            open: Open::None,
            index: -1,
            stop: None,
            usage: None,
            ended: false,
        }
    }

    /// Feeds the relay's output (whole events); appends Anthropic's events to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut events = std::mem::take(&mut self.events);
        events.feed(input, |event| {
            self.event(event, out);
            true
        });
        self.events = events;
    }

    fn event(&mut self, event: &[u8], out: &mut Vec<u8>) {
        let Some(data) = event.strip_prefix(b"data: ").map(<[u8]>::trim_ascii) else {
            // Comments (keep-alives) pass as Anthropic's ping.
            if self.started && !self.ended {
                emit(out, "ping", &json!({"type": "ping"}));
            }
            return;
        };
        if data == b"[DONE]" {
            self.end(out);
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        if !self.started {
            self.started = true;
            emit(
                out,
                "message_start",
                &json!({"type": "message_start", "message": {
                    "id": chunk["id"], "type": "message", "role": "assistant", "model": chunk["model"],
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                }}),
            );
        }
        if let Some(error) = chunk.get("error").filter(|e| e.is_object()) {
            self.close(out);
            let message = error["message"].as_str().unwrap_or("Provider error");
            emit(
                out,
                "error",
                &json!({"type": "error", "error": {"type": "api_error", "message": message}}),
            );
            self.ended = true;
            return;
        }
        if let Ok(usage) = serde_json::from_value::<Usage>(chunk["usage"].clone())
            && chunk.get("usage").is_some_and(Value::is_object)
        {
            self.usage = Some(usage);
        }
        let choice = &chunk["choices"][0];
        let delta = &choice["delta"];
        if let Some(reasoning) = delta["reasoning"].as_str().filter(|r| !r.is_empty()) {
            self.thinking(
                out,
                json!({"type": "thinking_delta", "thinking": reasoning}),
            );
        }
        for d in delta["reasoning_details"].as_array().into_iter().flatten() {
            if let Some(signature) = d["signature"].as_str() {
                self.thinking(
                    out,
                    json!({"type": "signature_delta", "signature": signature}),
                );
            }
        }
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            self.open_block(out, Open::Text, json!({"type": "text", "text": ""}));
            self.delta(out, json!({"type": "text_delta", "text": text}));
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap_or(0);
            if self.open != Open::Tool(index) {
                self.open_block(
                    out,
                    Open::Tool(index),
                    json!({"type": "tool_use",
                    "id": call["id"], "name": call["function"]["name"], "input": {}}),
                );
            }
            if let Some(arguments) = call["function"]["arguments"]
                .as_str()
                .filter(|a| !a.is_empty())
            {
                self.delta(
                    out,
                    json!({"type": "input_json_delta", "partial_json": arguments}),
                );
            }
        }
        if let Some(finish) = choice["finish_reason"].as_str() {
            self.stop = Some(stop_reason(finish));
        }
    }

    /// A delta of the thinking block, which opens first if another block is open.
    fn thinking(&mut self, out: &mut Vec<u8>, delta: Value) {
        self.open_block(
            out,
            Open::Thinking,
            json!({"type": "thinking", "thinking": "", "signature": ""}),
        );
        self.delta(out, delta);
    }

    fn open_block(&mut self, out: &mut Vec<u8>, kind: Open, block: Value) {
        if self.open == kind {
            return;
        }
        self.close(out);
        self.index += 1;
        self.open = kind;
        emit(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": self.index, "content_block": block}),
        );
    }

    fn delta(&self, out: &mut Vec<u8>, delta: Value) {
        emit(
            out,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": self.index, "delta": delta}),
        );
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.open != Open::None {
            emit(
                out,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": self.index}),
            );
            self.open = Open::None;
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if self.ended || !self.started {
            return;
        }
        self.ended = true;
        self.close(out);
        let usage = self.usage.take().unwrap_or_default().anthropic();
        emit(
            out,
            "message_delta",
            &json!({"type": "message_delta",
            "delta": {"stop_reason": self.stop.unwrap_or("end_turn"), "stop_sequence": null},
            "usage": usage}),
        );
        emit(out, "message_stop", &json!({"type": "message_stop"}));
    }
}

fn emit(out: &mut Vec<u8>, event: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests;
