//! `POST /responses`: clients that speak OpenAI's Responses API (the `openai` SDKs'
//! `responses.create` and `responses.stream`, OpenRouter's `beta.responses`). Stateless, as the
//! gateway keeps no conversations: `previous_response_id` is refused and every request carries
//! its whole input. The request becomes a chat request before any stage reads it; what the meter
//! writes becomes a `response` object or the Responses stream events.
//!
//! Requests: `instructions` becomes a system message; `input` (a string, or items: messages with
//! `input_text` / `input_image` / `input_file` / `output_text` parts, `function_call` and
//! `function_call_output` items) becomes messages, consecutive function calls one assistant
//! turn; `max_output_tokens` is `max_tokens`, `text.format` the response format, function tools
//! and `tool_choice` the chat ones; `reasoning` and OpenRouter's members pass as they are.
//!
//! Answers: reasoning becomes a `reasoning` output item (its summary), text a `message` item
//! with one `output_text` part, tool calls `function_call` items; `usage` is the Responses
//! usage (input, cached and cache-write tokens, output and reasoning tokens) with OpenRouter's
//! `cost`. A stream is `response.created`, `response.in_progress`, each item's added, delta and
//! done events, then `response.completed` (or `response.failed`), numbered by
//! `sequence_number`.

use serde_json::{Map, Value, json};

use super::{bad, object};
use crate::reject::Reject;
use crate::stages::meter::EventSplitter;
use crate::stages::request::ChatRequest;

type Object = Map<String, Value>;

/// OpenRouter's and the chat request's members a Responses request may carry as they are.
const PASSED: [&str; 18] = [
    "model",
    "models",
    "provider",
    "route",
    "session_id",
    "preset",
    "plugins",
    "transforms",
    "temperature",
    "top_p",
    "top_k",
    "frequency_penalty",
    "presence_penalty",
    "parallel_tool_calls",
    "stream",
    "user",
    "reasoning",
    "prompt_cache_key",
];

/// A Responses request as the chat request every stage reads; a 400 saying what is wrong.
pub fn request(body: &[u8]) -> Result<Vec<u8>, Reject> {
    let body = object(body)?;
    if body
        .get("previous_response_id")
        .is_some_and(|v| !v.is_null())
    {
        return Err(bad(
            "previous_response_id: this gateway keeps no responses; send the whole input",
        ));
    }
    let mut out = Object::new();
    for name in PASSED {
        if let Some(v) = body.get(name).filter(|v| !v.is_null()) {
            out.insert(name.into(), v.clone());
        }
    }
    if let Some(id) = body.get("safety_identifier").and_then(Value::as_str)
        && !out.contains_key("user")
    {
        out.insert("user".into(), json!(id));
    }
    let mut messages = Vec::new();
    if let Some(instructions) = body.get("instructions").and_then(Value::as_str) {
        messages.push(json!({"role": "system", "content": instructions}));
    }
    match body.get("input") {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                input_item(item, &mut messages).map_err(|m| bad(format!("input[{i}]: {m}")))?;
            }
        }
        None | Some(Value::Null) => return Err(bad("input is required")),
        Some(_) => return Err(bad("input must be a string or an array of items")),
    }
    out.insert("messages".into(), Value::Array(messages));
    if let Some(max) = body.get("max_output_tokens").and_then(Value::as_u64) {
        out.insert("max_tokens".into(), json!(max));
    }
    if let Some(stop) = body.get("stop").filter(|v| !v.is_null()) {
        out.insert("stop".into(), stop.clone());
    }
    match body.get("text").and_then(|t| t.get("format")) {
        Some(f) if f["type"] == "json_schema" => {
            let mut schema =
                json!({"name": f["name"].as_str().unwrap_or("output"), "schema": f["schema"]});
            if let Some(strict) = f.get("strict") {
                schema["strict"] = strict.clone();
            }
            out.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": schema}),
            );
        }
        Some(f) if f["type"] == "json_object" => {
            out.insert("response_format".into(), json!({"type": "json_object"}));
        }
        _ => {}
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        let tools = tools
            .iter()
            .map(|t| {
                if t["type"] != "function" {
                    return Err(bad(format!(
                        "tools: type {} is not served here; only function tools are",
                        t["type"]
                    )));
                }
                let mut function = json!({"name": t["name"], "parameters": t["parameters"]});
                if let Some(d) = t.get("description").filter(|d| d.is_string()) {
                    function["description"] = d.clone();
                }
                if let Some(s) = t.get("strict").filter(|s| s.is_boolean()) {
                    function["strict"] = s.clone();
                }
                Ok(json!({"type": "function", "function": function}))
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.insert("tools".into(), Value::Array(tools));
    }
    match body.get("tool_choice") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            out.insert("tool_choice".into(), json!(s));
        }
        Some(c) if c["type"] == "function" => {
            out.insert(
                "tool_choice".into(),
                json!({"type": "function", "function": {"name": c["name"]}}),
            );
        }
        Some(c) => return Err(bad(format!("tool_choice: {c} is not served here"))),
    }
    serde_json::to_vec(&out).map_err(|e| bad(format!("request: {e}")))
}

/// One input item as chat messages.
fn input_item(item: &Value, out: &mut Vec<Value>) -> Result<(), String> {
    match item["type"].as_str() {
        Some("message") | None => {
            let role = item["role"].as_str().ok_or("a message needs a role")?;
            if !["user", "assistant", "system", "developer"].contains(&role) {
                return Err(format!("role {role} is not a message role"));
            }
            let content = match &item["content"] {
                Value::String(s) => json!(s),
                Value::Array(parts) => Value::Array(
                    parts
                        .iter()
                        .map(content_part)
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                _ => return Err("content must be a string or parts".into()),
            };
            out.push(json!({"role": role, "content": content}));
        }
        Some("function_call") => {
            let call = json!({
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"].as_str().unwrap_or("{}")},
            });
            // Consecutive calls are one assistant turn.
            match out.last_mut() {
                Some(last) if last["role"] == "assistant" && last["tool_calls"].is_array() => {
                    if let Some(calls) = last["tool_calls"].as_array_mut() {
                        calls.push(call);
                    }
                }
                _ => out.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
        }
        Some("function_call_output") => {
            let output = match &item["output"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push(json!({"role": "tool", "tool_call_id": item["call_id"], "content": output}));
        }
        // A reasoning item of an earlier answer: its summary is not the model's to read again.
        Some("reasoning") => {}
        Some(other) => return Err(format!("items of type {other} are not served here")),
    }
    Ok(())
}

fn content_part(part: &Value) -> Result<Value, String> {
    match part["type"].as_str() {
        Some("input_text" | "output_text") => Ok(json!({"type": "text", "text": part["text"]})),
        Some("input_image") => {
            let url = part["image_url"]
                .as_str()
                .ok_or("an input_image needs image_url")?;
            let mut image = json!({"url": url});
            if let Some(d) = part["detail"].as_str() {
                image["detail"] = json!(d);
            }
            Ok(json!({"type": "image_url", "image_url": image}))
        }
        Some("input_file") => Ok(json!({"type": "file", "file": {
            "filename": part["filename"].as_str().unwrap_or("file"),
            "file_data": part["file_data"].as_str().ok_or("an input_file needs file_data")?,
        }})),
        other => Err(format!(
            "a content part of type {} is not served here",
            other.unwrap_or("(none)")
        )),
    }
}

// ---- answers ----

/// What the response object repeats of the request, from the chat request the stages read.
pub struct Echo {
    temperature: Value,
    top_p: Value,
    presence_penalty: Value,
    frequency_penalty: Value,
    parallel_tool_calls: bool,
    tool_choice: Value,
    tools: Value,
    max_output_tokens: Value,
}

impl Echo {
    pub fn of(request: &ChatRequest<'_>) -> Echo {
        let member = |name: &str| -> Value {
            request
                .member(name)
                .and_then(|raw| serde_json::from_str(raw.get()).ok())
                .unwrap_or(Value::Null)
        };
        let tools = match member("tools") {
            Value::Array(tools) => Value::Array(
                tools
                    .iter()
                    .map(|t| {
                        let f = &t["function"];
                        json!({"type": "function", "name": f["name"], "description": f.get("description"),
                               "parameters": f["parameters"], "strict": f.get("strict").cloned().unwrap_or(Value::Null)})
                    })
                    .collect(),
            ),
            _ => json!([]),
        };
        let tool_choice = match member("tool_choice") {
            Value::Null => json!("auto"),
            Value::Object(o) => {
                json!({"type": "function", "name": o.get("function").and_then(|f| f.get("name"))})
            }
            other => other,
        };
        Echo {
            temperature: member("temperature"),
            top_p: member("top_p"),
            presence_penalty: member("presence_penalty"),
            frequency_penalty: member("frequency_penalty"),
            parallel_tool_calls: member("parallel_tool_calls").as_bool().unwrap_or(true),
            tool_choice,
            tools,
            max_output_tokens: member("max_tokens"),
        }
    }

    /// The response object around `output`.
    fn response(
        &self,
        head: &Head,
        status: &str,
        output: Vec<Value>,
        usage: Option<Value>,
    ) -> Value {
        let text: String = output
            .iter()
            .filter(|i| i["type"] == "message")
            .flat_map(|i| i["content"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p["text"].as_str().map(str::to_owned))
            .collect();
        let incomplete = (status == "incomplete").then(|| json!({"reason": "max_output_tokens"}));
        let done = matches!(status, "completed" | "incomplete" | "failed");
        json!({
            "id": head.id,
            "object": "response",
            "created_at": head.created,
            "completed_at": if done { json!(head.created) } else { Value::Null },
            "status": status,
            "error": null,
            "incomplete_details": incomplete,
            "instructions": null,
            "metadata": null,
            "model": head.model,
            "output": output,
            "output_text": text,
            "parallel_tool_calls": self.parallel_tool_calls,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
            "tool_choice": self.tool_choice,
            "tools": self.tools,
            "max_output_tokens": self.max_output_tokens,
            "usage": usage,
        })
    }
}

/// The response's id, model and time, from the first chunk or the completion.
struct Head {
    id: String,
    model: String,
    created: i64,
}

/// The Responses usage for a chat `usage` object, with OpenRouter's cost.
fn usage(chat: &Value) -> Option<Value> {
    if !chat.is_object() {
        return None;
    }
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    Some(json!({
        "input_tokens": n(&chat["prompt_tokens"]),
        "input_tokens_details": {
            "cached_tokens": n(&chat["prompt_tokens_details"]["cached_tokens"]),
            "cache_write_tokens": n(&chat["prompt_tokens_details"]["cache_write_tokens"]),
        },
        "output_tokens": n(&chat["completion_tokens"]),
        "output_tokens_details": {"reasoning_tokens": n(&chat["completion_tokens_details"]["reasoning_tokens"])},
        "total_tokens": n(&chat["total_tokens"]),
        "cost": chat["cost"],
        "is_byok": chat["is_byok"],
        "cost_details": chat["cost_details"],
    }))
}

fn status(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "incomplete",
        Some("error") => "failed",
        _ => "completed",
    }
}

/// An OpenAI chat completion (as the meter wrote it) as a Responses `response` object.
pub fn completion(body: &[u8], echo: &Echo) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let head = Head {
        id: v["id"].as_str().unwrap_or_default().to_owned(),
        model: v["model"].as_str().unwrap_or_default().to_owned(),
        created: v["created"].as_i64().unwrap_or(0),
    };
    let choice = &v["choices"][0];
    let message = &choice["message"];
    let mut output = Vec::new();
    if let Some(reasoning) = message["reasoning"].as_str().filter(|r| !r.is_empty()) {
        output.push(json!({"type": "reasoning", "id": format!("rs_{}", head.id),
            "summary": [{"type": "summary_text", "text": reasoning}]}));
    }
    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
        output.push(message_item(&head.id, text, "completed"));
    }
    for (i, call) in message["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        output.push(json!({
            "type": "function_call", "id": format!("fc_{}_{i}", head.id), "call_id": call["id"],
            "name": call["function"]["name"], "arguments": call["function"]["arguments"],
            "status": "completed",
        }));
    }
    let status = status(choice["finish_reason"].as_str());
    let mut response = echo.response(&head, status, output, usage(&v["usage"]));
    response["provider"] = v["provider"].clone();
    serde_json::to_vec(&response).ok()
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"type": "message", "id": format!("msg_{id}"), "status": status, "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
}

/// The output item being streamed.
enum Open {
    None,
    Reasoning {
        index: usize,
        text: String,
    },
    Message {
        index: usize,
        text: String,
    },
    Call {
        index: usize,
        id: String,
        call_id: String,
        name: String,
        arguments: String,
    },
}

/// Turns the OpenAI chunks the meter writes into the Responses stream's events.
pub struct StreamEncoder {
    echo: Echo,
    events: EventSplitter,
    head: Option<Head>,
    sequence: u64,
    open: Open,
    output: Vec<Value>,
    finish: Option<String>,
    usage: Option<Value>,
    ended: bool,
}

impl StreamEncoder {
    pub fn new(echo: Echo) -> StreamEncoder {
        StreamEncoder {
            echo,
            events: EventSplitter::default(),
            head: None,
            sequence: 0,
            open: Open::None,
            output: Vec::new(),
            finish: None,
            usage: None,
            ended: false,
        }
    }

    /// Feeds the relay's output (whole events); appends the Responses events to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut events = std::mem::take(&mut self.events);
        events.feed(input, |event| {
            self.event(event, out);
            true
        });
        self.events = events;
    }

    fn emit(&mut self, out: &mut Vec<u8>, kind: &str, mut data: Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &data);
        out.extend_from_slice(b"\n\n");
    }

    fn event(&mut self, event: &[u8], out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        let Some(data) = event.strip_prefix(b"data: ").map(<[u8]>::trim_ascii) else {
            return;
        };
        if data == b"[DONE]" {
            self.end(out, None);
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        if self.head.is_none() {
            let head = Head {
                id: chunk["id"].as_str().unwrap_or_default().to_owned(),
                model: chunk["model"].as_str().unwrap_or_default().to_owned(),
                created: chunk["created"].as_i64().unwrap_or(0),
            };
            let created = self.echo.response(&head, "in_progress", Vec::new(), None);
            self.head = Some(head);
            self.emit(out, "response.created", json!({ "response": created }));
            self.emit(out, "response.in_progress", json!({ "response": created }));
        }
        if let Some(error) = chunk.get("error").filter(|e| e.is_object()) {
            let message = error["message"]
                .as_str()
                .unwrap_or("Provider error")
                .to_owned();
            self.end(out, Some(message));
            return;
        }
        if chunk["usage"].is_object() {
            self.usage = usage(&chunk["usage"]);
        }
        let choice = &chunk["choices"][0];
        let delta = &choice["delta"];
        if let Some(r) = delta["reasoning"].as_str().filter(|r| !r.is_empty()) {
            self.reasoning(out, r);
        }
        if let Some(t) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            self.text(out, t);
        }
        for call in delta["tool_calls"].as_array().cloned().unwrap_or_default() {
            self.call(out, &call);
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish = Some(f.to_owned());
        }
    }

    fn id(&self) -> String {
        self.head.as_ref().map(|h| h.id.clone()).unwrap_or_default()
    }

    fn reasoning(&mut self, out: &mut Vec<u8>, delta: &str) {
        if !matches!(self.open, Open::Reasoning { .. }) {
            self.close(out);
            let index = self.output.len();
            let item =
                json!({"type": "reasoning", "id": format!("rs_{}", self.id()), "summary": []});
            self.emit(
                out,
                "response.output_item.added",
                json!({"output_index": index, "item": item}),
            );
            self.emit(out, "response.reasoning_summary_part.added", json!({"item_id": format!("rs_{}", self.id()),
                "output_index": index, "summary_index": 0, "part": {"type": "summary_text", "text": ""}}));
            self.open = Open::Reasoning {
                index,
                text: String::new(),
            };
        }
        let id = format!("rs_{}", self.id());
        if let Open::Reasoning { index, text } = &mut self.open {
            text.push_str(delta);
            let index = *index;
            self.emit(
                out,
                "response.reasoning_summary_text.delta",
                json!({"item_id": id,
                "output_index": index, "summary_index": 0, "delta": delta}),
            );
        }
    }

    fn text(&mut self, out: &mut Vec<u8>, delta: &str) {
        let id = format!("msg_{}", self.id());
        if !matches!(self.open, Open::Message { .. }) {
            self.close(out);
            let index = self.output.len();
            let item = json!({"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []});
            self.emit(
                out,
                "response.output_item.added",
                json!({"output_index": index, "item": item}),
            );
            self.emit(out, "response.content_part.added", json!({"item_id": id, "output_index": index,
                "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}));
            self.open = Open::Message {
                index,
                text: String::new(),
            };
        }
        if let Open::Message { index, text } = &mut self.open {
            text.push_str(delta);
            let index = *index;
            self.emit(
                out,
                "response.output_text.delta",
                json!({"item_id": id, "output_index": index,
                "content_index": 0, "delta": delta, "logprobs": []}),
            );
        }
    }

    fn call(&mut self, out: &mut Vec<u8>, call: &Value) {
        if let Some(call_id) = call["id"].as_str() {
            self.close(out);
            let index = self.output.len();
            let id = format!("fc_{}_{index}", self.id());
            let name = call["function"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let item = json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
                "arguments": "", "status": "in_progress"});
            self.emit(
                out,
                "response.output_item.added",
                json!({"output_index": index, "item": item}),
            );
            self.open = Open::Call {
                index,
                id,
                call_id: call_id.to_owned(),
                name,
                arguments: String::new(),
            };
        }
        let delta = call["function"]["arguments"].as_str().unwrap_or_default();
        if delta.is_empty() {
            return;
        }
        if let Open::Call {
            index,
            id,
            arguments,
            ..
        } = &mut self.open
        {
            arguments.push_str(delta);
            let data = json!({"item_id": id, "output_index": *index, "delta": delta});
            self.emit(out, "response.function_call_arguments.delta", data);
        }
    }

    /// Ends the open item with its done events.
    fn close(&mut self, out: &mut Vec<u8>) {
        let id = self.id();
        match std::mem::replace(&mut self.open, Open::None) {
            Open::None => {}
            Open::Reasoning { index, text } => {
                let item_id = format!("rs_{id}");
                self.emit(
                    out,
                    "response.reasoning_summary_text.done",
                    json!({"item_id": item_id,
                    "output_index": index, "summary_index": 0, "text": text}),
                );
                self.emit(out, "response.reasoning_summary_part.done", json!({"item_id": item_id,
                    "output_index": index, "summary_index": 0, "part": {"type": "summary_text", "text": text}}));
                let item = json!({"type": "reasoning", "id": item_id, "summary": [{"type": "summary_text", "text": text}]});
                self.emit(
                    out,
                    "response.output_item.done",
                    json!({"output_index": index, "item": item}),
                );
                self.output.push(item);
            }
            Open::Message { index, text } => {
                let item_id = format!("msg_{id}");
                self.emit(
                    out,
                    "response.output_text.done",
                    json!({"item_id": item_id, "output_index": index,
                    "content_index": 0, "text": text, "logprobs": []}),
                );
                self.emit(out, "response.content_part.done", json!({"item_id": item_id, "output_index": index,
                    "content_index": 0, "part": {"type": "output_text", "text": text, "annotations": [], "logprobs": []}}));
                let item = message_item(&id, &text, "completed");
                self.emit(
                    out,
                    "response.output_item.done",
                    json!({"output_index": index, "item": item}),
                );
                self.output.push(item);
            }
            Open::Call {
                index,
                id: item_id,
                call_id,
                name,
                arguments,
            } => {
                self.emit(
                    out,
                    "response.function_call_arguments.done",
                    json!({"item_id": item_id,
                    "output_index": index, "name": name, "arguments": arguments}),
                );
                let item = json!({"type": "function_call", "id": item_id, "call_id": call_id, "name": name,
                    "arguments": arguments, "status": "completed"});
                self.emit(
                    out,
                    "response.output_item.done",
                    json!({"output_index": index, "item": item}),
                );
                self.output.push(item);
            }
        }
    }

    /// The last events: `response.completed` (or `incomplete`), or `response.failed` with the
    /// provider's error.
    fn end(&mut self, out: &mut Vec<u8>, error: Option<String>) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.close(out);
        let Some(head) = self.head.take() else {
            return;
        };
        let output = std::mem::take(&mut self.output);
        match error {
            Some(message) => {
                let mut response = self
                    .echo
                    .response(&head, "failed", output, self.usage.take());
                response["error"] = json!({"code": "server_error", "message": message});
                self.emit(out, "response.failed", json!({ "response": response }));
            }
            None => {
                let status = status(self.finish.as_deref());
                let response = self.echo.response(&head, status, output, self.usage.take());
                let kind = if status == "incomplete" {
                    "response.incomplete"
                } else {
                    "response.completed"
                };
                self.emit(out, kind, json!({ "response": response }));
            }
        }
    }
}

#[cfg(test)]
mod tests;
