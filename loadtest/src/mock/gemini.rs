//! The mock's Gemini API (`POST /v1beta/models/<model>:generateContent`, and
//! `:streamGenerateContent?alt=sse`), built from Google's documented shapes: camelCase JSON,
//! streams of whole `GenerateContentResponse` events closed by the server without a terminator,
//! `usageMetadata` with cached and thought tokens, and Google's error shape
//! (`{"error":{"code","message","status"}}`).
//!
//! Strict as the real API is: unknown members are a 400, every part holds exactly one kind of
//! data, roles are `user` and `model`, a `functionResponse` must answer a `functionCall` of the
//! turn before, and, as Gemini 3 requires, a `functionCall` sent back must carry the
//! `thoughtSignature` it came with.
//!
//! It answers with a function call (signed) when the function-calling mode is `ANY`, a thought
//! part when thoughts are included, `{}` under a JSON response type, and "tok tok …" otherwise;
//! `Script::cached_tokens` is reported as implicitly cached prompt tokens.

// The request types exist to be checked member by member; not every member is read.
#![allow(dead_code)]

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Body, Script, empty, json_response, words};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GenerateContentRequest {
    contents: Vec<Content>,
    #[serde(default)]
    system_instruction: Option<Content>,
    #[serde(default)]
    tools: Option<Vec<Tool>>,
    #[serde(default)]
    tool_config: Option<ToolConfig>,
    #[serde(default)]
    generation_config: Option<GenerationConfig>,
    #[serde(default)]
    safety_settings: Option<Vec<Value>>,
    #[serde(default)]
    cached_content: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Content {
    #[serde(default)]
    role: Option<String>,
    parts: Vec<Part>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Part {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    inline_data: Option<Blob>,
    #[serde(default)]
    file_data: Option<FileData>,
    #[serde(default)]
    function_call: Option<FunctionCall>,
    #[serde(default)]
    function_response: Option<FunctionResponse>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(default)]
    thought_signature: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Blob {
    mime_type: String,
    data: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileData {
    #[serde(default)]
    mime_type: Option<String>,
    file_uri: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FunctionCall {
    name: String,
    #[serde(default)]
    args: Option<Value>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FunctionResponse {
    name: String,
    response: serde_json::Map<String, Value>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Tool {
    #[serde(default)]
    function_declarations: Option<Vec<FunctionDeclaration>>,
    #[serde(default)]
    google_search: Option<Value>,
    #[serde(default)]
    code_execution: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FunctionDeclaration {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    parameters_json_schema: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ToolConfig {
    #[serde(default)]
    function_calling_config: Option<FunctionCallingConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FunctionCallingConfig {
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    allowed_function_names: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GenerationConfig {
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    top_k: Option<f64>,
    #[serde(default)]
    max_output_tokens: Option<u64>,
    #[serde(default)]
    stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    candidate_count: Option<u64>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    presence_penalty: Option<f64>,
    #[serde(default)]
    frequency_penalty: Option<f64>,
    #[serde(default)]
    response_mime_type: Option<String>,
    #[serde(default)]
    response_schema: Option<Value>,
    #[serde(default)]
    response_json_schema: Option<Value>,
    #[serde(default)]
    thinking_config: Option<ThinkingConfig>,
    #[serde(default)]
    response_modalities: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ThinkingConfig {
    #[serde(default)]
    thinking_budget: Option<i64>,
    #[serde(default)]
    include_thoughts: Option<bool>,
    #[serde(default)]
    thinking_level: Option<String>,
}

/// Google's error body.
pub fn error(status: StatusCode, message: &str) -> Response<Body> {
    let kind = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    };
    json_response(
        status,
        json!({"error": {"code": status.as_u16(), "message": message, "status": kind}}),
    )
}

struct Asked {
    max_tokens: Option<u64>,
    thoughts: bool,
    forced_function: Option<String>,
    json: bool,
}

fn validate(body: &[u8]) -> Result<Asked, String> {
    let request: GenerateContentRequest =
        serde_json::from_slice(body).map_err(|e| format!("Invalid JSON payload received. {e}"))?;
    if request.contents.is_empty() {
        return Err("contents is not specified".into());
    }
    let mut previous_calls: HashSet<&str> = HashSet::new();
    for (i, content) in request.contents.iter().enumerate() {
        let role = content.role.as_deref().unwrap_or("user");
        if role != "user" && role != "model" {
            return Err(format!("contents[{i}].role: must be user or model"));
        }
        if content.parts.is_empty() {
            return Err(format!("contents[{i}].parts must not be empty"));
        }
        let mut calls = HashSet::new();
        for (j, part) in content.parts.iter().enumerate() {
            let kinds = [
                part.text.is_some(),
                part.inline_data.is_some(),
                part.file_data.is_some(),
                part.function_call.is_some(),
                part.function_response.is_some(),
            ];
            if kinds.iter().filter(|k| **k).count() != 1 {
                return Err(format!(
                    "contents[{i}].parts[{j}]: exactly one kind of data is required"
                ));
            }
            if let Some(call) = &part.function_call {
                if role != "model" {
                    return Err(format!(
                        "contents[{i}].parts[{j}]: function calls are the model's"
                    ));
                }
                if part.thought_signature.is_none() {
                    return Err(format!(
                        "Function call is missing a thought_signature in functionCall parts \
                         (contents[{i}].parts[{j}])"
                    ));
                }
                calls.insert(call.name.as_str());
            }
            if let Some(response) = &part.function_response
                && (role != "user" || !previous_calls.contains(response.name.as_str()))
            {
                return Err(format!(
                    "contents[{i}].parts[{j}]: function response {} answers no function call \
                     of the turn before",
                    response.name
                ));
            }
        }
        previous_calls = calls;
    }
    if let Some(system) = &request.system_instruction
        && system.parts.iter().any(|p| p.text.is_none())
    {
        return Err("systemInstruction: only text parts are allowed".into());
    }
    let declared: Vec<&str> = request
        .tools
        .iter()
        .flatten()
        .flat_map(|t| t.function_declarations.iter().flatten())
        .map(|d| d.name.as_str())
        .collect();
    let calling = request
        .tool_config
        .as_ref()
        .and_then(|c| c.function_calling_config.as_ref());
    let forced_function = match calling {
        Some(c) if c.mode.as_deref() == Some("ANY") => {
            let allowed = c.allowed_function_names.clone().unwrap_or_default();
            if allowed.iter().any(|a| !declared.contains(&a.as_str())) {
                return Err("allowedFunctionNames: names a function not declared".into());
            }
            match allowed
                .first()
                .map(String::as_str)
                .or(declared.first().copied())
            {
                Some(name) => Some(name.to_owned()),
                None => return Err("functionCallingConfig: mode ANY requires tools".into()),
            }
        }
        Some(c) if c.allowed_function_names.is_some() => {
            return Err("allowedFunctionNames may be set only with mode ANY".into());
        }
        _ => None,
    };
    let config = request.generation_config;
    let thinking = config.as_ref().and_then(|c| c.thinking_config.as_ref());
    let thoughts = thinking.is_some_and(|t| {
        t.include_thoughts == Some(true) && t.thinking_budget.is_none_or(|b| b != 0)
    });
    let json = config
        .as_ref()
        .and_then(|c| c.response_mime_type.as_deref())
        == Some("application/json");
    Ok(Asked {
        max_tokens: config.as_ref().and_then(|c| c.max_output_tokens),
        thoughts,
        forced_function,
        json,
    })
}

/// Answers a `generateContent` (or, with `stream`, a `streamGenerateContent`) request.
pub fn respond(model: &str, body: &[u8], stream: bool, script: &Script, n: u64) -> Response<Body> {
    let asked = match validate(body) {
        Ok(a) => a,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let output = asked
        .max_tokens
        .map_or(script.completion_tokens, |m| {
            m.min(script.completion_tokens)
        })
        .max(1);
    let thoughts = if asked.thoughts {
        script.reasoning_tokens.max(1)
    } else {
        0
    };
    let prompt = (body.len() as u64).div_ceil(4).max(script.cached_tokens);
    let usage = json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt + output + thoughts,
        "cachedContentTokenCount": script.cached_tokens,
        "thoughtsTokenCount": thoughts,
    });
    let finish = if asked
        .max_tokens
        .is_some_and(|m| m < script.completion_tokens)
    {
        "MAX_TOKENS"
    } else {
        "STOP"
    };
    let id = format!("mock-resp-{n}");
    let mut parts = Vec::new();
    if asked.thoughts {
        parts.push(json!({"text": "Mock thinking.", "thought": true}));
    }
    match &asked.forced_function {
        Some(name) => parts.push(json!({"functionCall": {"name": name, "args": {}},
            "thoughtSignature": format!("mock-sig-{n}")})),
        None if asked.json => parts.push(json!({"text": "{}"})),
        None => parts.push(json!({"text": words(output)})),
    }
    let response = |parts: Vec<Value>, finish: Option<&str>, usage: Option<&Value>| {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        if let Some(f) = finish {
            candidate["finishReason"] = json!(f);
        }
        let mut r = json!({"candidates": [candidate], "modelVersion": model, "responseId": id});
        if let Some(u) = usage {
            r["usageMetadata"] = u.clone();
        }
        r
    };
    if !stream {
        return json_response(StatusCode::OK, response(parts, Some(finish), Some(&usage)));
    }
    // One event per token (and one for thoughts, one for a call); the last carries the finish
    // and the usage. Gemini sends no terminator: the stream ends when the connection does.
    let mut events: Vec<Value> = Vec::new();
    let last = parts.len() - 1;
    for (i, part) in parts.into_iter().enumerate() {
        let text = part["text"].as_str().map(str::to_owned);
        match text {
            Some(t) if part.get("thought").is_none() && i == last => {
                let pieces: Vec<&str> = t.split_inclusive(' ').collect();
                for (k, piece) in pieces.iter().enumerate() {
                    let end = k + 1 == pieces.len();
                    events.push(response(
                        vec![json!({ "text": piece })],
                        end.then_some(finish),
                        end.then_some(&usage),
                    ));
                }
            }
            _ if i == last => events.push(response(vec![part], Some(finish), Some(&usage))),
            _ => events.push(response(vec![part], None, None)),
        }
    }
    let delay = Duration::from_millis(script.inter_token_ms);
    let cut_after = script.cut_after_chunks;
    let error_after = script.stream_error_after_chunks;
    let frames = futures::stream::iter(events.into_iter().enumerate())
        .then(move |(i, event)| async move {
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let i = i as u64;
            if cut_after == Some(i) {
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Err(std::io::Error::other("scripted cut"));
            }
            if error_after == Some(i) {
                let e = json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}});
                return Ok(Bytes::from(format!("data: {e}\r\n\r\n")));
            }
            Ok(Bytes::from(format!("data: {event}\r\n\r\n")))
        })
        .scan(false, |ended, frame| {
            let stop = *ended;
            if let Ok(f) = &frame {
                *ended |= f.starts_with(b"data: {\"error\"");
            }
            futures::future::ready((!stop).then_some(frame))
        })
        .map(|r| r.map(Frame::data));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .body(BodyExt::boxed(StreamBody::new(frames)))
        .unwrap_or_else(|_| Response::new(empty()))
}
