//! Anthropic's Messages API (`POST /v1/messages`, `anthropic-version: 2023-06-01`), translated
//! from and to OpenAI's chat completions.
//!
//! Requests: system and developer messages become `system`; content parts become blocks (text
//! with its `cache_control`, images as base64 or URL sources, PDF files as documents); an
//! assistant's `tool_calls` become `tool_use` blocks and its `reasoning_details` the thinking
//! blocks they came from (signed, so a tool loop with extended thinking continues); tool
//! messages become `tool_result` blocks; consecutive messages of one role merge into one turn.
//! `max_tokens` (which Anthropic requires) defaults to the endpoint's output cap; `stop` is
//! `stop_sequences`, `user` is `metadata.user_id`, tools and `tool_choice` (with
//! `parallel_tool_calls`) are Anthropic's, a `json_schema` response format is
//! `output_config.format`, and reasoning (`reasoning.max_tokens`, `reasoning.effort` or
//! `reasoning_effort`) is extended thinking with a budget below `max_tokens`.
//!
//! Responses and streams: text is `content`, thinking is `reasoning` and `reasoning_details`,
//! `tool_use` is `tool_calls`, stop reasons are OpenAI's finish reasons (the provider's kept as
//! `native_finish_reason`), and usage is OpenAI's: `prompt_tokens` counts the cache reads and
//! writes Anthropic reports apart, which become `cached_tokens` and `cache_write_tokens`.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{effort_share, write_event};
use crate::snapshot::Endpoint;
use crate::stages::meter;
use crate::stages::request::ChatRequest;

/// The API version every request names.
pub const VERSION: &str = "2023-06-01";

/// Anthropic's smallest thinking budget.
const MIN_THINKING_BUDGET: u64 = 1024;

/// The `format` OpenRouter gives reasoning details that came from Claude.
const REASONING_FORMAT: &str = "anthropic-claude-v1";

type Object = Map<String, Value>;

/// Translates a shaped OpenAI chat request (see the module's documentation). `original` is the
/// client's request, for what shaping does not pass on (OpenRouter's `reasoning` object).
pub fn request(
    openai: &[u8],
    original: &ChatRequest<'_>,
    endpoint: &Endpoint,
) -> Result<Vec<u8>, String> {
    let body: Object = serde_json::from_slice(openai).map_err(|e| format!("request body: {e}"))?;
    let mut out = Object::new();
    out.insert(
        "model".into(),
        body.get("model").cloned().unwrap_or(Value::Null),
    );
    let (system, messages) = translate_messages(body.get("messages"))?;
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    out.insert("messages".into(), Value::Array(messages));
    let asked = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64);
    let max_tokens = asked.unwrap_or_else(|| endpoint.output_cap());
    out.insert("max_tokens".into(), json!(max_tokens));

    let thinking = thinking_budget(original, &body, max_tokens);
    if let Some((budget, omitted)) = thinking {
        let mut config = json!({"type": "enabled", "budget_tokens": budget});
        if omitted {
            config["display"] = json!("omitted");
        }
        out.insert("thinking".into(), config);
    }
    for name in ["temperature", "top_p", "top_k"] {
        // Extended thinking takes neither a temperature nor top_k.
        if thinking.is_some() && name != "top_p" {
            continue;
        }
        if let Some(v) = body.get(name).filter(|v| v.is_number()) {
            out.insert(name.into(), v.clone());
        }
    }
    match body.get("stop") {
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(list)) if !list.is_empty() => {
            out.insert("stop_sequences".into(), Value::Array(list.clone()));
        }
        _ => {}
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), Value::Bool(true));
    }
    if let Some(user) = body.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({ "user_id": user }));
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array)
        && !tools.is_empty()
    {
        out.insert(
            "tools".into(),
            Value::Array(tools.iter().map(tool).collect::<Result<_, _>>()?),
        );
        let parallel = body.get("parallel_tool_calls").and_then(Value::as_bool);
        if let Some(choice) = tool_choice(body.get("tool_choice"), parallel)? {
            out.insert("tool_choice".into(), choice);
        }
    }
    if let Some(format) = body.get("response_format")
        && format["type"] == "json_schema"
    {
        let schema = format["json_schema"]["schema"].clone();
        if !schema.is_object() {
            return Err("response_format.json_schema.schema must be an object".into());
        }
        out.insert(
            "output_config".into(),
            json!({"format": {"type": "json_schema", "schema": schema}}),
        );
    }
    serde_json::to_vec(&out).map_err(|e| format!("request body: {e}"))
}

/// The thinking budget and whether its text is left out of the answer, when reasoning is
/// asked for and `max_tokens` leaves room for the smallest budget.
fn thinking_budget(
    original: &ChatRequest<'_>,
    body: &Object,
    max_tokens: u64,
) -> Option<(u64, bool)> {
    let reasoning: Value = original
        .member("reasoning")
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or(Value::Null);
    let effort = reasoning["effort"]
        .as_str()
        .or_else(|| body.get("reasoning_effort").and_then(Value::as_str));
    let budget = match (reasoning["max_tokens"].as_u64(), effort) {
        (Some(tokens), _) => tokens,
        (None, Some("none")) => return None,
        (None, Some(effort)) => (max_tokens as f64 * effort_share(effort)) as u64,
        (None, None) if reasoning["enabled"] == true => max_tokens / 2,
        (None, None) => return None,
    };
    if reasoning["enabled"] == false || max_tokens <= MIN_THINKING_BUDGET {
        return None;
    }
    let budget = budget.clamp(MIN_THINKING_BUDGET, max_tokens - 1);
    Some((budget, reasoning["exclude"] == true))
}

fn tool(t: &Value) -> Result<Value, String> {
    if t["type"] != "function" {
        return Err(format!(
            "tools: type {} has no place in Anthropic's Messages API",
            t["type"]
        ));
    }
    let f = &t["function"];
    let name = f["name"]
        .as_str()
        .ok_or_else(|| "tools: a function needs a name".to_owned())?;
    let mut out = json!({
        "name": name,
        "input_schema": match &f["parameters"] {
            Value::Object(p) => Value::Object(p.clone()),
            _ => json!({"type": "object", "properties": {}}),
        },
    });
    if let Some(d) = f["description"].as_str() {
        out["description"] = json!(d);
    }
    if let Some(c) = t.get("cache_control") {
        out["cache_control"] = c.clone();
    }
    Ok(out)
}

fn tool_choice(choice: Option<&Value>, parallel: Option<bool>) -> Result<Option<Value>, String> {
    let mut out = match choice {
        None | Some(Value::Null) => json!({"type": "auto"}),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "required" => json!({"type": "any"}),
            "none" => return Ok(Some(json!({"type": "none"}))),
            other => {
                return Err(format!(
                    "tool_choice {other:?} is not one of auto, required, none"
                ));
            }
        },
        Some(Value::Object(o)) => match o["function"]["name"].as_str() {
            Some(name) => json!({"type": "tool", "name": name}),
            None => return Err("tool_choice: a function choice needs function.name".into()),
        },
        Some(other) => return Err(format!("tool_choice: {other} is not a choice")),
    };
    if parallel == Some(false) {
        out["disable_parallel_tool_use"] = Value::Bool(true);
    } else if choice.is_none() {
        return Ok(None);
    }
    Ok(Some(out))
}

/// The system blocks and the turns.
fn translate_messages(messages: Option<&Value>) -> Result<(Vec<Value>, Vec<Value>), String> {
    let list = messages
        .and_then(Value::as_array)
        .ok_or_else(|| "messages must be an array".to_owned())?;
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in list {
        let (role, blocks) = match m["role"].as_str() {
            Some("system" | "developer") => {
                system.extend(text_blocks(&m["content"], "a system message")?);
                continue;
            }
            Some("user") => ("user", user_blocks(&m["content"])?),
            Some("assistant") => ("assistant", assistant_blocks(m)?),
            Some("tool") => ("user", vec![tool_result(m)?]),
            other => {
                return Err(format!(
                    "messages: role {} has no place in Anthropic's Messages API",
                    other.unwrap_or("(none)")
                ));
            }
        };
        if blocks.is_empty() {
            continue;
        }
        // Anthropic's turns alternate: consecutive messages of one role are one turn.
        match turns.last_mut() {
            Some((last, content)) if *last == role => content.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let turns = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    Ok((system, turns))
}

/// Text content (a string or text parts) as text blocks; empty text is left out, as Anthropic
/// refuses empty blocks.
fn text_blocks(content: &Value, whose: &str) -> Result<Vec<Value>, String> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p["text"].as_str() != Some(""))
            .map(|p| match p["type"].as_str() {
                Some("text") => Ok(text_block(p)),
                other => Err(format!(
                    "{whose} can hold only text, not {}",
                    other.unwrap_or("an untyped part")
                )),
            })
            .collect(),
        other => Err(format!(
            "{whose}: content {other} is neither text nor parts"
        )),
    }
}

fn text_block(part: &Value) -> Value {
    let mut block = json!({"type": "text", "text": part["text"]});
    if let Some(c) = part.get("cache_control") {
        block["cache_control"] = c.clone();
    }
    block
}

fn user_blocks(content: &Value) -> Result<Vec<Value>, String> {
    let Value::Array(parts) = content else {
        return text_blocks(content, "a user message");
    };
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        let mut block = match part["type"].as_str() {
            Some("text") if part["text"].as_str() == Some("") => continue,
            Some("text") => {
                out.push(text_block(part));
                continue;
            }
            Some("image_url") => {
                let url = part["image_url"]["url"]
                    .as_str()
                    .or_else(|| part["image_url"].as_str())
                    .ok_or_else(|| "an image_url part needs image_url.url".to_owned())?;
                json!({"type": "image", "source": source(url, "image", "an image")?})
            }
            Some("file") => {
                let data = part["file"]["file_data"]
                    .as_str()
                    .ok_or_else(|| "a file part needs file.file_data".to_owned())?;
                let mut document = json!({"type": "document", "source": source(data, "application/pdf", "a PDF document")?});
                if let Some(name) = part["file"]["filename"].as_str() {
                    document["title"] = json!(name);
                }
                document
            }
            other => {
                return Err(format!(
                    "a user message part of type {} has no place in Anthropic's Messages API",
                    other.unwrap_or("(none)")
                ));
            }
        };
        if let Some(c) = part.get("cache_control") {
            block["cache_control"] = c.clone();
        }
        out.push(block);
    }
    Ok(out)
}

/// A media source: a `data:` URL as base64 (its media type must start with `kind`), anything
/// else as a URL Anthropic fetches. `what` names it in errors.
fn source(url: &str, kind: &str, what: &str) -> Result<Value, String> {
    let Some(data_url) = url.strip_prefix("data:") else {
        if url.starts_with("https://") || url.starts_with("http://") {
            return Ok(json!({"type": "url", "url": url}));
        }
        return Err(format!("{what} must be a data: URL or an http(s) URL"));
    };
    let (media_type, data) = data_url
        .split_once(";base64,")
        .ok_or_else(|| format!("a data: URL for {what} must be base64"))?;
    if !media_type.starts_with(kind) {
        return Err(format!("media type {media_type} cannot be sent as {what}"));
    }
    Ok(json!({"type": "base64", "media_type": media_type, "data": data}))
}

fn assistant_blocks(m: &Value) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    // Thinking first, as Claude wrote it: a signed block must come back unchanged.
    if let Some(details) = m["reasoning_details"].as_array() {
        for d in details {
            match d["type"].as_str() {
                Some("reasoning.text") if d["signature"].is_string() => out.push(json!({
                    "type": "thinking",
                    "thinking": d["text"].as_str().unwrap_or(""),
                    "signature": d["signature"],
                })),
                Some("reasoning.encrypted") if d["data"].is_string() => {
                    out.push(json!({"type": "redacted_thinking", "data": d["data"]}));
                }
                // Unsigned reasoning cannot be handed back to Claude.
                _ => {}
            }
        }
    }
    out.extend(text_blocks(&m["content"], "an assistant message")?);
    if let Some(calls) = m["tool_calls"].as_array() {
        for call in calls {
            let f = &call["function"];
            let arguments = f["arguments"].as_str().unwrap_or("");
            let input: Value = if arguments.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(arguments)
                    .map_err(|_| "a tool call's arguments are not JSON".to_owned())?
            };
            out.push(json!({
                "type": "tool_use",
                "id": call["id"],
                "name": f["name"],
                "input": input,
            }));
        }
    }
    Ok(out)
}

fn tool_result(m: &Value) -> Result<Value, String> {
    let id = m["tool_call_id"]
        .as_str()
        .ok_or_else(|| "a tool message needs tool_call_id".to_owned())?;
    let content = match &m["content"] {
        Value::String(s) => json!(s),
        other => Value::Array(text_blocks(other, "a tool message")?),
    };
    Ok(json!({"type": "tool_result", "tool_use_id": id, "content": content}))
}

// ---- responses ----

#[derive(Deserialize)]
struct Message {
    id: String,
    #[serde(default)]
    model: Option<String>,
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    Thinking {
        thinking: String,
        #[serde(default)]
        signature: Option<String>,
    },
    RedactedThinking {
        data: String,
    },
    ToolUse {
        id: String,
        name: String,
        // Not a RawValue: an internally tagged enum buffers its content.
        input: Value,
    },
    #[serde(other)]
    Other,
}

/// Anthropic's usage. `input_tokens` excludes the cache reads and writes; in a stream,
/// `message_delta` repeats the counts so far.
#[derive(Clone, Copy, Default, Deserialize)]
struct Usage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Clone, Copy, Default, Deserialize)]
struct OutputDetails {
    #[serde(default)]
    thinking_tokens: u64,
}

impl Usage {
    /// Later counts replace earlier ones; what a later report leaves out stays.
    fn update(&mut self, later: &Usage) {
        let keep = |mine: &mut Option<u64>, theirs: Option<u64>| {
            if theirs.is_some() {
                *mine = theirs;
            }
        };
        keep(&mut self.input_tokens, later.input_tokens);
        keep(&mut self.output_tokens, later.output_tokens);
        keep(
            &mut self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
        keep(
            &mut self.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
        if later.output_tokens_details.is_some() {
            self.output_tokens_details = later.output_tokens_details;
        }
    }

    /// OpenAI's usage object: cache reads and writes are part of the prompt.
    fn openai(&self) -> Value {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let written = self.cache_creation_input_tokens.unwrap_or(0);
        let prompt = self
            .input_tokens
            .unwrap_or(0)
            .saturating_add(read)
            .saturating_add(written);
        let completion = self.output_tokens.unwrap_or(0);
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt.saturating_add(completion),
            "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": written},
            "completion_tokens_details": {
                "reasoning_tokens": self.output_tokens_details.map_or(0, |d| d.thinking_tokens),
            },
        })
    }
}

/// OpenAI's finish reason for an Anthropic stop reason.
fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn
        _ => "stop",
    }
}

fn reasoning_detail(index: usize, text: Option<&str>, signature: Option<&str>) -> Value {
    let mut d = json!({"type": "reasoning.text", "format": REASONING_FORMAT, "index": index});
    if let Some(t) = text {
        d["text"] = json!(t);
    }
    if let Some(s) = signature {
        d["signature"] = json!(s);
    }
    d
}

/// A Messages response as an OpenAI chat completion; `None` when it is not one.
pub fn completion(body: &[u8], created: i64) -> Option<Vec<u8>> {
    let message: Message = serde_json::from_slice(body).ok()?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut details = Vec::new();
    let mut tool_calls = Vec::new();
    for block in message.content {
        match block {
            Block::Text { text: t } => text.push_str(&t),
            Block::Thinking {
                thinking,
                signature,
            } => {
                details.push(reasoning_detail(
                    details.len(),
                    Some(&thinking),
                    signature.as_deref(),
                ));
                reasoning.push_str(&thinking);
            }
            Block::RedactedThinking { data } => details.push(json!({
                "type": "reasoning.encrypted", "data": data,
                "format": REASONING_FORMAT, "index": details.len(),
            })),
            Block::ToolUse { id, name, input } => tool_calls.push(json!({
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": input.to_string()},
            })),
            Block::Other => {}
        }
    }
    let mut msg = json!({
        "role": "assistant",
        "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { json!(text) },
        "refusal": null,
        "reasoning": if reasoning.is_empty() { Value::Null } else { json!(reasoning) },
    });
    if !details.is_empty() {
        msg["reasoning_details"] = Value::Array(details);
    }
    if !tool_calls.is_empty() {
        msg["tool_calls"] = Value::Array(tool_calls);
    }
    let stop = message.stop_reason.as_deref();
    let mut out = json!({
        "id": message.id,
        "object": "chat.completion",
        "created": created,
        "model": message.model.unwrap_or_default(),
        "choices": [{
            "index": 0,
            "message": msg,
            "logprobs": null,
            "finish_reason": stop.map(finish_reason),
            "native_finish_reason": stop,
        }],
    });
    if let Some(usage) = message.usage {
        out["usage"] = usage.openai();
    }
    serde_json::to_vec(&out).ok()
}

// ---- streams ----

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: usize,
        content_block: StartBlock,
    },
    ContentBlockDelta {
        index: usize,
        delta: ContentDelta,
    },
    MessageDelta {
        delta: MessageDelta,
        #[serde(default)]
        usage: Option<Usage>,
    },
    MessageStop,
    Error {
        error: ErrorBody,
    },
    /// `ping`, `content_block_stop`, and whatever Anthropic adds.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StartMessage {
    id: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
    },
    RedactedThinking {
        data: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentDelta {
    TextDelta {
        text: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    SignatureDelta {
        signature: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct MessageDelta {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    message: String,
}

/// Turns Anthropic's stream events into OpenAI chunks as each completes; what it cannot read
/// (pings, unknown events) makes no chunk. `message_stop` ends the stream with the usage chunk
/// and `[DONE]`; an `error` event fails it, and so does a close before `message_stop`.
pub struct StreamDecoder {
    events: meter::EventSplitter,
    id: String,
    model: String,
    created: i64,
    usage: Usage,
    /// OpenAI's tool-call index of each content block that is a tool use.
    tool_blocks: Vec<(usize, usize)>,
    failure: Option<String>,
    overflowed: bool,
    /// `message_stop` came: the stream is whole.
    stopped: bool,
}

impl StreamDecoder {
    pub fn new(created: i64) -> StreamDecoder {
        StreamDecoder {
            events: meter::EventSplitter::default(),
            id: String::new(),
            model: String::new(),
            created,
            usage: Usage::default(),
            tool_blocks: Vec::new(),
            failure: None,
            overflowed: false,
            stopped: false,
        }
    }

    /// The provider closed the stream: without `message_stop`, which Anthropic always sends
    /// last, it was cut short.
    pub fn finish(&mut self) {
        if self.failure.is_none() && !self.stopped {
            self.failure = Some("the stream ended before message_stop".into());
        }
    }

    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Feeds bytes read from the provider; appends the chunks of the events they complete.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.failure.is_some() {
            return;
        }
        let mut events = std::mem::take(&mut self.events);
        events.feed(input, |event| {
            self.event(event, out);
            self.failure.is_none()
        });
        self.overflowed = events.pending().len() > meter::MAX_EVENT_BYTES;
        self.events = events;
    }

    fn event(&mut self, event: &[u8], out: &mut Vec<u8>) {
        // `event: <type>` and `data: <json>` lines; the JSON names its type again.
        let Some(data) = event
            .split(|b| *b == b'\n')
            .find_map(|line| line.strip_prefix(b"data:").map(|d| d.trim_ascii()))
        else {
            return;
        };
        let Ok(event) = serde_json::from_slice::<Event>(data) else {
            return;
        };
        match event {
            Event::MessageStart { message } => {
                self.id = message.id;
                self.model = message.model.unwrap_or_default();
                if let Some(u) = message.usage {
                    self.usage.update(&u);
                }
                self.chunk(out, json!({"role": "assistant", "content": ""}), None);
            }
            Event::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                StartBlock::Text { text } if !text.is_empty() => {
                    self.chunk(out, json!({ "content": text }), None);
                }
                StartBlock::ToolUse { id, name } => {
                    let call = self.tool_blocks.len();
                    self.tool_blocks.push((index, call));
                    self.chunk(
                        out,
                        json!({"tool_calls": [{
                            "index": call, "id": id, "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }]}),
                        None,
                    );
                }
                StartBlock::RedactedThinking { data } => self.chunk(
                    out,
                    json!({"reasoning_details": [{
                        "type": "reasoning.encrypted", "data": data,
                        "format": REASONING_FORMAT, "index": index,
                    }]}),
                    None,
                ),
                _ => {}
            },
            Event::ContentBlockDelta { index, delta } => match delta {
                ContentDelta::TextDelta { text } => {
                    self.chunk(out, json!({ "content": text }), None)
                }
                ContentDelta::ThinkingDelta { thinking } => self.chunk(
                    out,
                    json!({
                        "reasoning": thinking,
                        "reasoning_details": [reasoning_detail(index, Some(&thinking), None)],
                    }),
                    None,
                ),
                ContentDelta::SignatureDelta { signature } => self.chunk(
                    out,
                    json!({"reasoning_details": [reasoning_detail(index, None, Some(&signature))]}),
                    None,
                ),
                ContentDelta::InputJsonDelta { partial_json } => {
                    let call = self
                        .tool_blocks
                        .iter()
                        .find(|(block, _)| *block == index)
                        .map(|(_, call)| *call);
                    if let Some(call) = call {
                        self.chunk(
                            out,
                            json!({"tool_calls": [{
                                "index": call, "function": {"arguments": partial_json},
                            }]}),
                            None,
                        );
                    }
                }
                ContentDelta::Other => {}
            },
            Event::MessageDelta { delta, usage } => {
                if let Some(u) = usage {
                    self.usage.update(&u);
                }
                if let Some(stop) = delta.stop_reason {
                    self.chunk(out, json!({}), Some(&stop));
                }
            }
            Event::MessageStop => {
                self.stopped = true;
                let usage = json!({
                    "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                    "model": self.model, "choices": [], "usage": self.usage.openai(),
                });
                write_event(out, &usage);
                out.extend_from_slice(b"data: [DONE]\n\n");
            }
            Event::Error { error } => {
                self.failure = Some(if error.message.is_empty() {
                    error.kind
                } else {
                    error.message
                });
            }
            Event::Other => {}
        }
    }

    fn chunk(&self, out: &mut Vec<u8>, delta: Value, stop: Option<&str>) {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "finish_reason": stop.map(finish_reason),
                "native_finish_reason": stop,
            }],
        });
        write_event(out, &chunk);
    }
}

#[cfg(test)]
mod tests;
