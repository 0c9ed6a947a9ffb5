//! Google's Gemini API (`models/<model>:generateContent`, and `:streamGenerateContent?alt=sse`
//! for streams; the key in `x-goog-api-key`), translated from and to OpenAI's chat completions.
//!
//! Requests: system and developer messages become `systemInstruction`; messages become
//! `contents` with the roles `user` and `model`, parts becoming `text`, `inlineData` (base64
//! `data:` URLs) or `fileData` (other URLs); an assistant's `tool_calls` become `functionCall`
//! parts (with the `thoughtSignature` Gemini gave them, kept in `reasoning_details`), and tool
//! messages `functionResponse` parts named after the call they answer. Sampling parameters,
//! `stop`, `max_tokens`, `seed` and the penalties go in `generationConfig`; a `json_schema`
//! response format is `responseMimeType` with `responseJsonSchema` (`json_object` the MIME type
//! alone); reasoning is `thinkingConfig` (`reasoning.max_tokens` as the budget, `effort` as a
//! share of `max_tokens`, `exclude` leaves thoughts out); tools are `functionDeclarations`,
//! `tool_choice` the function-calling mode. `cache_control` marks have no place: Gemini caches
//! implicitly and reports what it read.
//!
//! Responses and streams: text parts are `content`, thought parts `reasoning`, function calls
//! `tool_calls` (ids made up, as Gemini gives none), finish reasons OpenAI's (a safety block is
//! `content_filter`, with Gemini's kept as `native_finish_reason`), and `usageMetadata` OpenAI's
//! usage: thoughts are counted with the completion, cached prompt tokens as `cached_tokens`.
//! Gemini ends a stream by closing it, so [`StreamDecoder::finish`] writes the usage chunk and
//! `[DONE]`; a stream closed before a finish reason failed.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{effort_share, write_event};
use crate::snapshot::Endpoint;
use crate::stages::meter;
use crate::stages::request::ChatRequest;

/// The `format` of reasoning details that came from Gemini.
const REASONING_FORMAT: &str = "google-gemini-v1";

type Object = Map<String, Value>;

/// Translates a shaped OpenAI chat request (see the module's documentation).
pub fn request(
    openai: &[u8],
    original: &ChatRequest<'_>,
    endpoint: &Endpoint,
) -> Result<Vec<u8>, String> {
    let body: Object = serde_json::from_slice(openai).map_err(|e| format!("request body: {e}"))?;
    let mut out = Object::new();
    let (system, contents) = translate_messages(body.get("messages"))?;
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    let mut config = Object::new();
    let max_tokens = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64);
    if let Some(m) = max_tokens {
        config.insert("maxOutputTokens".into(), json!(m));
    }
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(v) = body.get(from).filter(|v| v.is_number()) {
            config.insert(to.into(), v.clone());
        }
    }
    match body.get("stop") {
        Some(Value::String(s)) => {
            config.insert("stopSequences".into(), json!([s]));
        }
        Some(Value::Array(list)) if !list.is_empty() => {
            config.insert("stopSequences".into(), Value::Array(list.clone()));
        }
        _ => {}
    }
    if let Some(format) = body.get("response_format") {
        match format["type"].as_str() {
            Some("json_schema") => {
                let schema = &format["json_schema"]["schema"];
                if !schema.is_object() {
                    return Err("response_format.json_schema.schema must be an object".into());
                }
                config.insert("responseMimeType".into(), json!("application/json"));
                config.insert("responseJsonSchema".into(), schema.clone());
            }
            Some("json_object") => {
                config.insert("responseMimeType".into(), json!("application/json"));
            }
            _ => {}
        }
    }
    let cap = max_tokens.unwrap_or_else(|| endpoint.output_cap());
    if let Some(thinking) = thinking_config(original, &body, cap) {
        config.insert("thinkingConfig".into(), thinking);
    }
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array)
        && !tools.is_empty()
    {
        let declarations = tools
            .iter()
            .map(declaration)
            .collect::<Result<Vec<_>, _>>()?;
        out.insert(
            "tools".into(),
            json!([{ "functionDeclarations": declarations }]),
        );
        if let Some(mode) = function_calling(body.get("tool_choice"))? {
            out.insert(
                "toolConfig".into(),
                json!({ "functionCallingConfig": mode }),
            );
        }
    }
    serde_json::to_vec(&out).map_err(|e| format!("request body: {e}"))
}

/// `thinkingConfig` when reasoning is asked for (or explicitly refused).
fn thinking_config(original: &ChatRequest<'_>, body: &Object, cap: u64) -> Option<Value> {
    let reasoning: Value = original
        .member("reasoning")
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or(Value::Null);
    let effort = reasoning["effort"]
        .as_str()
        .or_else(|| body.get("reasoning_effort").and_then(Value::as_str));
    let budget = match (reasoning["max_tokens"].as_u64(), effort) {
        _ if reasoning["enabled"] == false => 0,
        (Some(tokens), _) => tokens,
        (None, Some("none")) => 0,
        (None, Some(effort)) => (cap as f64 * effort_share(effort)) as u64,
        (None, None) if reasoning["enabled"] == true => cap / 2,
        (None, None) => return None,
    };
    let include = budget > 0 && reasoning["exclude"] != true;
    Some(json!({ "thinkingBudget": budget, "includeThoughts": include }))
}

fn declaration(t: &Value) -> Result<Value, String> {
    if t["type"] != "function" {
        return Err(format!(
            "tools: type {} has no place in Gemini's API",
            t["type"]
        ));
    }
    let f = &t["function"];
    let name = f["name"]
        .as_str()
        .ok_or_else(|| "tools: a function needs a name".to_owned())?;
    let mut out = json!({ "name": name });
    if let Some(d) = f["description"].as_str() {
        out["description"] = json!(d);
    }
    if let Value::Object(p) = &f["parameters"] {
        out["parametersJsonSchema"] = Value::Object(p.clone());
    }
    Ok(out)
}

fn function_calling(choice: Option<&Value>) -> Result<Option<Value>, String> {
    Ok(Some(match choice {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => json!({"mode": "AUTO"}),
            "required" => json!({"mode": "ANY"}),
            "none" => json!({"mode": "NONE"}),
            other => {
                return Err(format!(
                    "tool_choice {other:?} is not one of auto, required, none"
                ));
            }
        },
        Some(Value::Object(o)) => match o["function"]["name"].as_str() {
            Some(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
            None => return Err("tool_choice: a function choice needs function.name".into()),
        },
        Some(other) => return Err(format!("tool_choice: {other} is not a choice")),
    }))
}

/// The system parts and the contents.
fn translate_messages(messages: Option<&Value>) -> Result<(Vec<Value>, Vec<Value>), String> {
    let list = messages
        .and_then(Value::as_array)
        .ok_or_else(|| "messages must be an array".to_owned())?;
    let mut system = Vec::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    // Tool calls by id, for the function name a tool message's answer must carry.
    let mut calls: Vec<(String, String)> = Vec::new();
    for m in list {
        let (role, parts) = match m["role"].as_str() {
            Some("system" | "developer") => {
                system.extend(text_parts(&m["content"], "a system message")?);
                continue;
            }
            Some("user") => ("user", user_parts(&m["content"])?),
            Some("assistant") => ("model", model_parts(m, &mut calls)?),
            Some("tool") => ("user", vec![function_response(m, &calls)?]),
            other => {
                return Err(format!(
                    "messages: role {} has no place in Gemini's API",
                    other.unwrap_or("(none)")
                ));
            }
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(parts),
            _ => contents.push((role, parts)),
        }
    }
    let contents = contents
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();
    Ok((system, contents))
}

fn text_parts(content: &Value, whose: &str) -> Result<Vec<Value>, String> {
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![json!({ "text": s })]),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p["text"].as_str() != Some(""))
            .map(|p| match p["type"].as_str() {
                Some("text") => Ok(json!({ "text": p["text"] })),
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

fn user_parts(content: &Value) -> Result<Vec<Value>, String> {
    let Value::Array(parts) = content else {
        return text_parts(content, "a user message");
    };
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        match part["type"].as_str() {
            Some("text") if part["text"].as_str() == Some("") => {}
            Some("text") => out.push(json!({ "text": part["text"] })),
            Some("image_url") => {
                let url = part["image_url"]["url"]
                    .as_str()
                    .or_else(|| part["image_url"].as_str())
                    .ok_or_else(|| "an image_url part needs image_url.url".to_owned())?;
                out.push(media(url, "image/jpeg")?);
            }
            Some("file") => {
                let data = part["file"]["file_data"]
                    .as_str()
                    .ok_or_else(|| "a file part needs file.file_data".to_owned())?;
                out.push(media(data, "application/pdf")?);
            }
            Some("input_audio") => {
                let audio = &part["input_audio"];
                let (Some(data), Some(format)) = (audio["data"].as_str(), audio["format"].as_str())
                else {
                    return Err("an input_audio part needs data and format".into());
                };
                out.push(
                    json!({"inlineData": {"mimeType": format!("audio/{format}"), "data": data}}),
                );
            }
            other => {
                return Err(format!(
                    "a user message part of type {} has no place in Gemini's API",
                    other.unwrap_or("(none)")
                ));
            }
        }
    }
    Ok(out)
}

/// A `data:` URL as inline data, any other URL as file data (`fallback` its MIME type).
fn media(url: &str, fallback: &str) -> Result<Value, String> {
    match url.strip_prefix("data:") {
        Some(data_url) => {
            let (mime, data) = data_url
                .split_once(";base64,")
                .ok_or_else(|| "a data: URL must be base64".to_owned())?;
            Ok(json!({"inlineData": {"mimeType": mime, "data": data}}))
        }
        None if url.starts_with("https://")
            || url.starts_with("http://")
            || url.starts_with("gs://") =>
        {
            Ok(json!({"fileData": {"mimeType": fallback, "fileUri": url}}))
        }
        None => Err("media must be a data: URL or a URL".into()),
    }
}

fn model_parts(m: &Value, calls: &mut Vec<(String, String)>) -> Result<Vec<Value>, String> {
    let mut out = text_parts(&m["content"], "an assistant message")?;
    // Gemini's signatures, by the tool call they came with.
    let signature_of = |id: &str| {
        m["reasoning_details"].as_array().and_then(|details| {
            details.iter().find_map(|d| {
                (d["type"] == "reasoning.encrypted" && d["id"] == id)
                    .then(|| d["data"].clone())
                    .filter(Value::is_string)
            })
        })
    };
    if let Some(list) = m["tool_calls"].as_array() {
        for call in list {
            let f = &call["function"];
            let name = f["name"]
                .as_str()
                .ok_or_else(|| "a tool call needs function.name".to_owned())?;
            let arguments = f["arguments"].as_str().unwrap_or("");
            let args: Value = if arguments.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(arguments)
                    .map_err(|_| "a tool call's arguments are not JSON".to_owned())?
            };
            let id = call["id"].as_str().unwrap_or_default();
            let mut part = json!({"functionCall": {"name": name, "args": args}});
            if let Some(signature) = signature_of(id) {
                part["thoughtSignature"] = signature;
            }
            calls.push((id.to_owned(), name.to_owned()));
            out.push(part);
        }
    }
    Ok(out)
}

fn function_response(m: &Value, calls: &[(String, String)]) -> Result<Value, String> {
    let id = m["tool_call_id"]
        .as_str()
        .ok_or_else(|| "a tool message needs tool_call_id".to_owned())?;
    let name = calls
        .iter()
        .rev()
        .find(|(call, _)| call == id)
        .map(|(_, name)| name.clone())
        .ok_or_else(|| format!("tool message {id} answers no tool call before it"))?;
    let text = match &m["content"] {
        Value::String(s) => s.clone(),
        other => text_parts(other, "a tool message")?
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect(),
    };
    // Gemini takes an object: a JSON object answer as itself, anything else wrapped.
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(o)) => Value::Object(o),
        _ => json!({ "content": text }),
    };
    Ok(json!({"functionResponse": {"name": name, "response": response}}))
}

// ---- responses ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    model_version: Option<String>,
    #[serde(default)]
    response_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: bool,
    #[serde(default)]
    function_call: Option<FunctionCall>,
    #[serde(default)]
    thought_signature: Option<String>,
}

#[derive(Deserialize)]
struct FunctionCall {
    name: String,
    #[serde(default)]
    args: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    cached_content_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
    #[serde(default)]
    tool_use_prompt_token_count: u64,
}

impl UsageMetadata {
    /// OpenAI's usage: thoughts are part of the completion, as OpenAI counts reasoning.
    fn openai(&self) -> Value {
        let prompt = self
            .prompt_token_count
            .saturating_add(self.tool_use_prompt_token_count);
        let completion = self
            .candidates_token_count
            .saturating_add(self.thoughts_token_count);
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt.saturating_add(completion),
            "prompt_tokens_details": {
                "cached_tokens": self.cached_content_token_count.min(prompt),
                "cache_write_tokens": 0,
            },
            "completion_tokens_details": {"reasoning_tokens": self.thoughts_token_count},
        })
    }
}

/// OpenAI's finish reason for Gemini's.
fn finish_reason(gemini: &str, called: bool) -> &'static str {
    match gemini {
        "STOP" if called => "tool_calls",
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        "MALFORMED_FUNCTION_CALL" | "OTHER" | "LANGUAGE" => "error",
        _ => "stop",
    }
}

/// What one response (or stream chunk) holds, in OpenAI's terms.
#[derive(Default)]
struct Translated {
    text: String,
    reasoning: String,
    tool_calls: Vec<Value>,
    details: Vec<Value>,
    finish: Option<(String, &'static str)>,
}

/// Reads a response's first candidate; `calls_before` numbers its tool calls after those of
/// earlier chunks.
fn translate(response: &Response, calls_before: usize, id: &str) -> Translated {
    let mut t = Translated::default();
    let candidate = response.candidates.first();
    if let Some(content) = candidate.and_then(|c| c.content.as_ref()) {
        for part in &content.parts {
            if let Some(call) = &part.function_call {
                let index = calls_before + t.tool_calls.len();
                let call_id = format!("call_{id}_{index}");
                if let Some(signature) = &part.thought_signature {
                    t.details.push(json!({
                        "type": "reasoning.encrypted", "data": signature, "id": call_id,
                        "format": REASONING_FORMAT, "index": t.details.len(),
                    }));
                }
                t.tool_calls.push(json!({
                    "index": index,
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.args.to_string()},
                }));
            } else if let Some(text) = &part.text {
                if part.thought {
                    t.reasoning.push_str(text);
                } else {
                    t.text.push_str(text);
                }
            }
        }
    }
    let called = calls_before + t.tool_calls.len() > 0;
    if let Some(reason) = candidate.and_then(|c| c.finish_reason.as_deref()) {
        t.finish = Some((reason.to_owned(), finish_reason(reason, called)));
    } else if let Some(blocked) = response
        .prompt_feedback
        .as_ref()
        .and_then(|f| f.block_reason.as_deref())
    {
        // The prompt itself was blocked: no candidate at all.
        t.finish = Some((blocked.to_owned(), "content_filter"));
    }
    t
}

/// A `generateContent` response as an OpenAI chat completion; `None` when it is not one.
pub fn completion(body: &[u8], created: i64) -> Option<Vec<u8>> {
    let response: Response = serde_json::from_slice(body).ok()?;
    let id = response.response_id.clone().unwrap_or_default();
    let t = translate(&response, 0, &id);
    let mut message = json!({
        "role": "assistant",
        "content": if t.text.is_empty() && !t.tool_calls.is_empty() { Value::Null } else { json!(t.text) },
        "refusal": null,
        "reasoning": if t.reasoning.is_empty() { Value::Null } else { json!(t.reasoning) },
    });
    if !t.details.is_empty() {
        message["reasoning_details"] = Value::Array(t.details);
    }
    if !t.tool_calls.is_empty() {
        let calls = t
            .tool_calls
            .into_iter()
            .map(|mut c| {
                if let Some(o) = c.as_object_mut() {
                    o.remove("index");
                }
                c
            })
            .collect();
        message["tool_calls"] = Value::Array(calls);
    }
    let mut out = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": response.model_version.clone().unwrap_or_default(),
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": t.finish.as_ref().map(|f| f.1),
            "native_finish_reason": t.finish.as_ref().map(|f| f.0.clone()),
        }],
    });
    if let Some(usage) = response.usage_metadata {
        out["usage"] = usage.openai();
    }
    serde_json::to_vec(&out).ok()
}

// ---- streams ----

/// Turns Gemini's SSE stream (each event a whole `GenerateContentResponse` carrying the new
/// parts) into OpenAI chunks; the usage chunk and `[DONE]` come at [`StreamDecoder::finish`].
pub struct StreamDecoder {
    events: meter::EventSplitter,
    id: String,
    model: String,
    created: i64,
    started: bool,
    tool_calls: usize,
    usage: Option<UsageMetadata>,
    finished: bool,
    failure: Option<String>,
    overflowed: bool,
}

impl StreamDecoder {
    pub fn new(created: i64) -> StreamDecoder {
        StreamDecoder {
            events: meter::EventSplitter::default(),
            id: String::new(),
            model: String::new(),
            created,
            started: false,
            tool_calls: 0,
            usage: None,
            finished: false,
            failure: None,
            overflowed: false,
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
            true
        });
        self.overflowed = events.pending().len() > meter::MAX_EVENT_BYTES;
        self.events = events;
    }

    /// The provider closed the stream: the last event, then the usage chunk and `[DONE]` if a
    /// finish reason came; otherwise the stream was cut.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.failure.is_some() {
            return;
        }
        let last = self.events.take_pending();
        if !last.iter().all(u8::is_ascii_whitespace) {
            self.event(&last, out);
        }
        if !self.finished {
            self.failure = Some("the stream ended before a finish reason".into());
            return;
        }
        if let Some(usage) = self.usage {
            let chunk = json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": [], "usage": usage.openai(),
            });
            write_event(out, &chunk);
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }

    fn event(&mut self, event: &[u8], out: &mut Vec<u8>) {
        let Some(data) = event
            .split(|b| *b == b'\n')
            .find_map(|line| line.strip_prefix(b"data:").map(|d| d.trim_ascii()))
        else {
            return;
        };
        if let Ok(error) = serde_json::from_slice::<ErrorEnvelope>(data) {
            self.failure = Some(error.error.message);
            return;
        }
        let Ok(response) = serde_json::from_slice::<Response>(data) else {
            return;
        };
        if !self.started {
            self.started = true;
            self.id = response.response_id.clone().unwrap_or_default();
            self.model = response.model_version.clone().unwrap_or_default();
            self.chunk(out, json!({"role": "assistant", "content": ""}), None);
        }
        if let Some(usage) = response.usage_metadata {
            self.usage = Some(usage);
        }
        let t = translate(&response, self.tool_calls, &self.id);
        self.tool_calls += t.tool_calls.len();
        if !t.reasoning.is_empty() {
            self.chunk(out, json!({ "reasoning": t.reasoning }), None);
        }
        if !t.text.is_empty() {
            self.chunk(out, json!({ "content": t.text }), None);
        }
        if !t.tool_calls.is_empty() || !t.details.is_empty() {
            let mut delta = json!({ "tool_calls": t.tool_calls });
            if !t.details.is_empty() {
                delta["reasoning_details"] = Value::Array(t.details);
            }
            self.chunk(out, delta, None);
        }
        if let Some((native, reason)) = t.finish {
            self.finished = true;
            self.chunk(out, json!({}), Some((native.as_str(), reason)));
        }
    }

    fn chunk(&self, out: &mut Vec<u8>, delta: Value, finish: Option<(&str, &str)>) {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "finish_reason": finish.map(|f| f.1),
                "native_finish_reason": finish.map(|f| f.0),
            }],
        });
        write_event(out, &chunk);
    }
}

/// An error sent in the stream (`{"error": {"code", "message", "status"}}`).
#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: String,
}

#[cfg(test)]
mod tests;
