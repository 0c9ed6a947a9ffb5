//! Provider wire formats through the whole gateway: `mock/claude` is served by Mock B's process
//! speaking Anthropic's Messages API (strict as Anthropic is) and by Mock A's OpenAI API after
//! it; `mock/gemini` by Mock A's process speaking Google's Gemini API, then Mock B's OpenAI API.
//! The client speaks OpenAI's chat completions throughout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use support::{Stack, chat_body, expect_error};

/// mock/claude's prices at Mock Anthropic, USD per token.
const PROMPT: f64 = 0.000003;
const COMPLETION: f64 = 0.000015;
const CACHE_READ: f64 = 0.0000003;
const CACHE_WRITE: f64 = 0.00000375;

/// A chat request for `model` with a system message and a user's "Hello", and `extra` members.
fn request(model: &str, system: Value, extra: Value) -> Value {
    let mut body = json!({
        "model": model,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": "Hello"}]
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

/// mock/claude, its system prompt marked for Anthropic's cache.
fn claude(extra: Value) -> Value {
    let system =
        json!([{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]);
    request("mock/claude", system, extra)
}

/// Prices per token: prompt, completion, cache read, cache write.
type PriceList = (f64, f64, f64, f64);
const CLAUDE_PRICES: PriceList = (PROMPT, COMPLETION, CACHE_READ, CACHE_WRITE);

/// The usage's cost at `prices`: cache reads and writes apart from the rest of the prompt.
fn cost_at(
    usage: &Value,
    (prompt_price, completion_price, read_price, write_price): PriceList,
) -> f64 {
    let tokens = |v: &Value| v.as_u64().unwrap_or(0);
    let prompt = tokens(&usage["prompt_tokens"]);
    let read = tokens(&usage["prompt_tokens_details"]["cached_tokens"]);
    let written = tokens(&usage["prompt_tokens_details"]["cache_write_tokens"]);
    (prompt - read - written) as f64 * prompt_price
        + read as f64 * read_price
        + written as f64 * write_price
        + tokens(&usage["completion_tokens"]) as f64 * completion_price
}

fn sse_data(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test]
async fn anthropic_answers_as_a_priced_chat_completion_with_cache_reads_and_writes() {
    let stack = Stack::start().await;
    stack
        .mock_b
        .script(json!({"completion_tokens": 7, "cached_tokens": 40, "cache_write_tokens": 30}))
        .await;
    let r = stack
        .chat(
            &stack.inference_key,
            claude(json!({"temperature": 0.2, "user": "u-9"})),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "mock/claude");
    assert_eq!(body["provider"], "Mock Anthropic");
    assert!(body["id"].as_str().unwrap().starts_with("gen-"));
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["content"], "tok tok tok tok tok tok tok");
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["native_finish_reason"], "end_turn");
    let usage = &body["usage"];
    assert_eq!(usage["completion_tokens"], 7);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 40);
    assert_eq!(usage["prompt_tokens_details"]["cache_write_tokens"], 30);
    let cost = usage["cost"].as_f64().unwrap();
    assert!(
        (cost - cost_at(usage, CLAUDE_PRICES)).abs() < 1e-12,
        "{usage}"
    );
    let details = &usage["cost_details"];
    assert!(
        (details["upstream_inference_prompt_cost"].as_f64().unwrap()
            + details["upstream_inference_completions_cost"]
                .as_f64()
                .unwrap()
            - cost)
            .abs()
            < 1e-12
    );

    // Anthropic got its own request: system apart, max_tokens, metadata, its headers.
    let seen = stack.mock_b.last_request().await;
    assert_eq!(seen["path"], "/messages");
    let sent = &seen["body"];
    assert_eq!(sent["model"], "claude-mock-4");
    assert_eq!(sent["system"][0]["cache_control"]["type"], "ephemeral");
    assert_eq!(sent["messages"][0]["role"], "user");
    assert_eq!(sent["max_tokens"], 64000);
    assert_eq!(sent["metadata"]["user_id"], "u-9");
    assert_eq!(
        stack.mock_b.stats().await["refused_unrecognized"],
        0,
        "the mock refused a member"
    );

    // The ledger has the same cost and the cache writes.
    let id = body["id"].as_str().unwrap();
    let g = stack.generation(id).await;
    assert!((g["data"]["total_cost"].as_f64().unwrap() - cost).abs() < 1e-12);
    assert_eq!(g["data"]["native_tokens_cached"], 40);
    let written = stack.store_sql(&format!(
        "SELECT cache_write_tokens FROM generations WHERE id = '{id}'"
    ));
    assert_eq!(written.trim(), "30");
}

#[tokio::test]
async fn an_anthropic_stream_arrives_as_openai_chunks_priced_at_the_end() {
    let stack = Stack::start().await;
    stack
        .mock_b
        .script(json!({"completion_tokens": 5, "cached_tokens": 10, "cache_write_tokens": 20, "inter_token_ms": 2}))
        .await;
    let r = stack
        .chat(&stack.inference_key, claude(json!({"stream": true})))
        .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let chunks = sse_data(&text);
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(chunks.iter().all(|c| c["model"] == "mock/claude"));
    let id = chunks[0]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("gen-") && chunks.iter().all(|c| c["id"] == id.as_str()));
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "tok tok tok tok tok");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], 5);
    assert_eq!(usage["prompt_tokens_details"]["cache_write_tokens"], 20);
    let cost = usage["cost"].as_f64().unwrap();
    assert!(
        (cost - cost_at(usage, CLAUDE_PRICES)).abs() < 1e-12,
        "{usage}"
    );
    let seen = stack.mock_b.last_request().await;
    assert_eq!(seen["body"]["stream"], true);
    assert!(seen["body"].get("stream_options").is_none());
    let g = stack.generation(&id).await;
    assert_eq!(g["data"]["streamed"], true);
    assert!((g["data"]["total_cost"].as_f64().unwrap() - cost).abs() < 1e-12);
}

#[tokio::test]
async fn tools_and_reasoning_go_both_ways_and_a_tool_loop_continues() {
    let stack = Stack::start().await;
    let tools = json!([{"type": "function", "function": {"name": "weather", "description": "Weather now",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    // A forced tool choice is Anthropic's.
    let forced = claude(json!({
        "tools": tools,
        "tool_choice": {"type": "function", "function": {"name": "weather"}}
    }));
    let body: Value = stack
        .chat(&stack.inference_key, forced.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    let sent = stack.mock_b.last_request().await["body"].clone();
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "tool", "name": "weather"})
    );
    assert_eq!(sent["tools"][0]["input_schema"]["type"], "object");

    // With extended thinking (which Anthropic allows only with the model choosing its tools).
    let ask =
        claude(json!({"tools": tools, "max_tokens": 4000, "reasoning": {"max_tokens": 2000}}));
    let r = stack.chat(&stack.inference_key, ask.clone()).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let message = &body["choices"][0]["message"];
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    let call = &message["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "weather");
    assert_eq!(call["function"]["arguments"], "{}");
    assert_eq!(message["reasoning"], "Mock thinking.");
    assert!(message["reasoning_details"][0]["signature"].is_string());
    let sent = stack.mock_b.last_request().await["body"].clone();
    assert_eq!(
        sent["thinking"],
        json!({"type": "enabled", "budget_tokens": 2000})
    );

    // The client sends the assistant's turn back with the tool's answer: the thinking block
    // (signed) and the tool_use come back as Anthropic requires, and the mock checks that the
    // tool_result answers the tool_use.
    let mut follow = ask.clone();
    let messages = follow["messages"].as_array_mut().unwrap();
    messages.push(message.clone());
    messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "18C"}));
    let r = stack.chat(&stack.inference_key, follow).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    let sent = stack.mock_b.last_request().await["body"].clone();
    let assistant = &sent["messages"][1];
    assert_eq!(assistant["content"][0]["type"], "thinking");
    assert_eq!(assistant["content"][1]["type"], "tool_use");
    assert_eq!(sent["messages"][2]["content"][0]["type"], "tool_result");

    // Streamed, the tool call arrives in OpenAI's pieces.
    let mut streamed = forced;
    streamed["stream"] = json!(true);
    let text = stack
        .chat(&stack.inference_key, streamed)
        .await
        .text()
        .await
        .unwrap();
    let chunks = sse_data(&text);
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(calls[0]["function"]["name"], "weather");
    let arguments: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(arguments, "{}");
    let mut thinking = ask;
    thinking["stream"] = json!(true);
    let text = stack
        .chat(&stack.inference_key, thinking)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        sse_data(&text)
            .iter()
            .any(|c| c["choices"][0]["delta"]["reasoning"] == "Mock thinking.")
    );
}

#[tokio::test]
async fn images_and_a_json_schema_reach_anthropic_in_its_shape() {
    let stack = Stack::start().await;
    let body = json!({
        "model": "mock/claude",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
        ]}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "strict": true,
            "schema": {"type": "object", "properties": {"thing": {"type": "string"}}}}}
    });
    let r = stack.chat(&stack.inference_key, body).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "{}");
    let sent = stack.mock_b.last_request().await["body"].clone();
    assert_eq!(
        sent["messages"][0]["content"][1]["source"]["media_type"],
        "image/png"
    );
    assert_eq!(sent["output_config"]["format"]["type"], "json_schema");
}

#[tokio::test]
async fn anthropic_errors_reach_the_client_in_openrouters_shape() {
    let stack = Stack::start().await;
    let only = json!({"provider": {"only": ["mock-anthropic"]}});
    // A client error: Anthropic's 400, passed on with its message.
    stack
        .mock_b
        .script(json!({"error_rate": 1.0, "error_status": 400}))
        .await;
    let r = stack.chat(&stack.inference_key, claude(only.clone())).await;
    assert_eq!(expect_error(r, 400).await, "scripted mock error");
    // Overloaded (529) with nowhere else to go: the gateway's 502, naming the provider.
    stack.mock_b.script(json!({"outage": true})).await;
    let r = stack.chat(&stack.inference_key, claude(only.clone())).await;
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], 502);
    assert_eq!(body["error"]["metadata"]["provider_name"], "Mock Anthropic");
    // What Anthropic's format cannot carry is refused before anything is sent.
    stack.mock_b.script(json!({})).await;
    let before = stack.mock_b.requests().await;
    let mut audio = claude(only);
    audio["messages"] = json!([{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]);
    let message = expect_error(stack.chat(&stack.inference_key, audio).await, 400).await;
    assert!(message.contains("input_audio"), "{message}");
    assert_eq!(stack.mock_b.requests().await, before);
}

#[tokio::test]
async fn a_request_fails_over_between_wire_formats_both_ways() {
    let stack = Stack::start().await;
    // Anthropic overloaded: Mock A's OpenAI API serves mock/claude.
    stack.mock_b.script(json!({"outage": true})).await;
    let r = stack.chat(&stack.inference_key, claude(json!({}))).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["provider"], "Mock A");
    assert_eq!(stack.mock_a.last_request().await["model"], "claude-mock-4");
    let g = stack.generation(body["id"].as_str().unwrap()).await;
    let attempts = g["data"]["provider_responses"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0]["status"], 529);

    // OpenAI first and down: Anthropic serves, streamed.
    stack.mock_b.script(json!({"completion_tokens": 3})).await;
    stack.mock_a.script(json!({"outage": true})).await;
    let mut body =
        claude(json!({"provider": {"order": ["mock-a", "mock-anthropic"]}, "stream": true}));
    body["messages"] = chat_body("mock/claude")["messages"].clone();
    let text = stack
        .chat(&stack.inference_key, body)
        .await
        .text()
        .await
        .unwrap();
    let chunks = sse_data(&text);
    assert_eq!(chunks.last().unwrap()["provider"], "Mock Anthropic");
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn an_in_band_anthropic_error_ends_the_stream_as_openrouter_does() {
    let stack = Stack::start().await;
    stack
        .mock_b
        .script(json!({"completion_tokens": 10, "stream_error_after_chunks": 3}))
        .await;
    let r = stack
        .chat(
            &stack.inference_key,
            claude(json!({"stream": true, "provider": {"only": ["mock-anthropic"]}})),
        )
        .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let chunks = sse_data(&text);
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "tok tok tok ");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "error");
    assert_eq!(last["error"]["code"], 502);
    let g = stack.generation(last["id"].as_str().unwrap()).await;
    assert_eq!(g["data"]["finish_reason"], "error");
}

// ---- Gemini: mock/gemini is Mock A's process speaking Google's Gemini API, then Mock B's
// OpenAI API ----

/// mock/gemini's prices at Mock Gemini, USD per token.
const GEMINI_PROMPT: f64 = 0.0000003;
const GEMINI_COMPLETION: f64 = 0.0000025;
const GEMINI_CACHE_READ: f64 = 0.00000003;

fn gemini(extra: Value) -> Value {
    request("mock/gemini", json!("You are terse."), extra)
}

const GEMINI_PRICES: PriceList = (GEMINI_PROMPT, GEMINI_COMPLETION, GEMINI_CACHE_READ, 0.0);

#[tokio::test]
async fn gemini_answers_as_a_priced_chat_completion_with_thoughts_and_cache_reads() {
    let stack = Stack::start().await;
    stack
        .mock_a
        .script(json!({"completion_tokens": 6, "cached_tokens": 12, "reasoning_tokens": 4}))
        .await;
    let r = stack
        .chat(
            &stack.inference_key,
            gemini(json!({"temperature": 0.4, "max_tokens": 100, "reasoning": {"max_tokens": 50}})),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["provider"], "Mock Gemini");
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], "tok tok tok tok tok tok");
    assert_eq!(message["reasoning"], "Mock thinking.");
    assert_eq!(body["choices"][0]["native_finish_reason"], "STOP");
    let usage = &body["usage"];
    assert_eq!(
        usage["completion_tokens"], 10,
        "thoughts count as completion: {usage}"
    );
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 4);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 12);
    let cost = usage["cost"].as_f64().unwrap();
    assert!(
        (cost - cost_at(usage, GEMINI_PRICES)).abs() < 1e-12,
        "{usage}"
    );

    let seen = stack.mock_a.last_request().await;
    assert_eq!(seen["path"], "/generateContent");
    assert_eq!(seen["model"], "gemini-mock-2.5");
    let sent = &seen["body"];
    assert_eq!(
        sent["systemInstruction"]["parts"][0]["text"],
        "You are terse."
    );
    assert_eq!(sent["generationConfig"]["temperature"], 0.4);
    assert_eq!(sent["generationConfig"]["maxOutputTokens"], 100);
    assert_eq!(
        sent["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 50, "includeThoughts": true})
    );
    let g = stack.generation(body["id"].as_str().unwrap()).await;
    assert!((g["data"]["total_cost"].as_f64().unwrap() - cost).abs() < 1e-12);
}

#[tokio::test]
async fn a_gemini_stream_arrives_as_openai_chunks_and_ends_with_done() {
    let stack = Stack::start().await;
    stack
        .mock_a
        .script(json!({"completion_tokens": 4, "cached_tokens": 3, "inter_token_ms": 2}))
        .await;
    let r = stack
        .chat(&stack.inference_key, gemini(json!({"stream": true})))
        .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let chunks = sse_data(&text);
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "tok tok tok tok");
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], 4);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 3);
    assert!((usage["cost"].as_f64().unwrap() - cost_at(usage, GEMINI_PRICES)).abs() < 1e-12);
    assert_eq!(
        stack.mock_a.last_request().await["path"],
        "/streamGenerateContent"
    );
}

#[tokio::test]
async fn a_gemini_tool_loop_returns_the_thought_signature() {
    let stack = Stack::start().await;
    let ask = gemini(json!({
        "tools": [{"type": "function", "function": {"name": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "required"
    }));
    let body: Value = stack
        .chat(&stack.inference_key, ask.clone())
        .await
        .json()
        .await
        .unwrap();
    let message = body["choices"][0]["message"].clone();
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    let call = &message["tool_calls"][0];
    assert_eq!(call["function"]["name"], "weather");
    // Gemini 3 refuses a function call sent back without its signature; the mock too.
    let mut follow = ask;
    follow["tool_choice"] = json!("auto");
    let messages = follow["messages"].as_array_mut().unwrap();
    messages.push(message.clone());
    messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "{\"temp\": 18}"}));
    let r = stack.chat(&stack.inference_key, follow.clone()).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let sent = stack.mock_a.last_request().await["body"].clone();
    assert!(sent["contents"][1]["parts"][0]["thoughtSignature"].is_string());
    assert_eq!(
        sent["contents"][2]["parts"][0]["functionResponse"],
        json!({"name": "weather", "response": {"temp": 18}})
    );
    // Without the reasoning details the signature is lost and Gemini's 400 comes back.
    let assistant = &mut follow["messages"][2];
    assistant
        .as_object_mut()
        .unwrap()
        .remove("reasoning_details");
    let message = expect_error(
        stack
            .chat(
                &stack.inference_key,
                json!({"model": "mock/gemini", "messages": follow["messages"],
                    "provider": {"only": ["mock-gemini"]}}),
            )
            .await,
        400,
    )
    .await;
    assert!(message.contains("thought_signature"), "{message}");
}

#[tokio::test]
async fn gemini_failures_fail_over_and_end_streams_as_openrouter_does() {
    let stack = Stack::start().await;
    // Overloaded: Mock B's OpenAI API serves.
    stack.mock_a.script(json!({"outage": true})).await;
    let body: Value = stack
        .chat(&stack.inference_key, gemini(json!({})))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["provider"], "Mock B");
    // An error sent in the stream ends it with OpenRouter's error chunk.
    stack
        .mock_a
        .script(json!({"completion_tokens": 8, "stream_error_after_chunks": 2}))
        .await;
    let text = stack
        .chat(
            &stack.inference_key,
            gemini(json!({"stream": true, "provider": {"only": ["mock-gemini"]}})),
        )
        .await
        .text()
        .await
        .unwrap();
    let chunks = sse_data(&text);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "error", "{text}");
    // A stream cut before its finish reason likewise.
    stack
        .mock_a
        .script(json!({"completion_tokens": 8, "cut_after_chunks": 3}))
        .await;
    let text = stack
        .chat(
            &stack.inference_key,
            gemini(json!({"stream": true, "provider": {"only": ["mock-gemini"]}})),
        )
        .await
        .text()
        .await
        .unwrap();
    let chunks = sse_data(&text);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "error"
    );
    assert!(!text.contains("[DONE]"));
}

// ---- /messages: clients that speak Anthropic's Messages API ----

async fn messages(stack: &Stack, key: &str, body: Value) -> reqwest::Response {
    support::client()
        .post(format!("{}/messages", stack.api()))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_messages_endpoint_speaks_anthropic_whatever_the_provider_speaks() {
    let stack = Stack::start().await;
    stack.mock_a.script(json!({"completion_tokens": 3})).await;
    // An OpenAI-format provider behind an Anthropic-format client.
    let r = messages(
        &stack,
        &stack.inference_key,
        json!({"model": "mock/fast", "max_tokens": 50, "system": "Be brief.",
               "messages": [{"role": "user", "content": "Hello"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["type"], "message");
    assert_eq!(
        m["content"],
        json!([{"type": "text", "text": "tok tok tok"}])
    );
    assert_eq!(m["stop_reason"], "end_turn");
    assert_eq!(m["usage"]["output_tokens"], 3);
    let sent = stack.mock_a.last_request().await["body"].clone();
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(sent["max_tokens"], 50);
    let g = stack.generation(m["id"].as_str().unwrap()).await;
    assert!(
        (g["data"]["total_cost"].as_f64().unwrap() - m["usage"]["cost"].as_f64().unwrap()).abs()
            < 1e-12
    );

    // Streamed from the Anthropic-format provider, as Anthropic's events.
    let r = messages(
        &stack,
        &stack.inference_key,
        json!({"model": "mock/claude", "max_tokens": 50, "stream": true,
               "messages": [{"role": "user", "content": "Hello"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let names: Vec<&str> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("event: "))
        .map(|e| e.split('\n').next().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"message_start"), "{text}");
    assert_eq!(names.last(), Some(&"message_stop"), "{text}");
    assert!(names.contains(&"content_block_delta") && names.contains(&"message_delta"));
    assert!(!text.contains("chat.completion"), "{text}");
}

#[tokio::test]
async fn messages_errors_take_anthropics_shape() {
    let stack = Stack::start().await;
    let r = messages(
        &stack,
        "sk-sy-v1-wrong",
        json!({"model": "mock/claude", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "authentication_error");
    let r = messages(
        &stack,
        &stack.inference_key,
        json!({"model": "mock/claude", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens")
    );
    // A bearer token works too (Anthropic's SDKs send one when given an auth token).
    let r = support::client()
        .post(format!("{}/messages", stack.api()))
        .bearer_auth(&stack.inference_key)
        .json(&json!({"model": "mock/claude", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

// ---- /embeddings and /completions ----

#[tokio::test]
async fn embeddings_are_priced_limited_and_recorded_like_chat() {
    let stack = Stack::start().await;
    let r = support::client()
        .post(format!("{}/embeddings", stack.api()))
        .bearer_auth(&stack.inference_key)
        .json(
            &json!({"model": "mock/embed", "input": ["one", "two three"], "dimensions": 4,
                      "provider": {"sort": "price"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(body["data"][1]["embedding"].as_array().unwrap().len(), 4);
    assert_eq!(body["model"], "mock/embed");
    let usage = &body["usage"];
    let prompt = usage["prompt_tokens"].as_u64().unwrap();
    assert!(prompt > 0);
    assert_eq!(usage["completion_tokens"], 0);
    let cost = usage["cost"].as_f64().unwrap();
    assert!((cost - prompt as f64 * 0.00000002).abs() < 1e-15, "{usage}");
    // The provider got OpenAI's embeddings request and nothing of the gateway's.
    let seen = stack.mock_a.last_request().await;
    assert_eq!(seen["path"], "/embeddings");
    let mut sent: Vec<String> = seen["body"].as_object().unwrap().keys().cloned().collect();
    sent.sort();
    assert_eq!(sent, ["dimensions", "input", "model"]);
    let g = stack.generation(body["id"].as_str().unwrap()).await;
    assert!((g["data"]["total_cost"].as_f64().unwrap() - cost).abs() < 1e-15);

    // An embeddings request needs its input; a chat model's provider format that has no
    // embeddings is refused before anything is sent.
    let r = support::client()
        .post(format!("{}/embeddings", stack.api()))
        .bearer_auth(&stack.inference_key)
        .json(&json!({"model": "mock/embed"}))
        .send()
        .await
        .unwrap();
    assert!(expect_error(r, 400).await.contains("input"));
    let r = support::client()
        .post(format!("{}/embeddings", stack.api()))
        .bearer_auth(&stack.inference_key)
        .json(&json!({"model": "mock/claude", "input": "x", "provider": {"only": ["mock-anthropic"]}}))
        .send()
        .await
        .unwrap();
    assert!(expect_error(r, 400).await.contains("embeddings"));
}

#[tokio::test]
async fn a_spend_limit_holds_for_embeddings() {
    let stack = Stack::start().await;
    // Admission reserves a prompt token per byte of what the provider gets, at 2e-8 USD each:
    // a short input fits a limit of 1e-5 USD, a 1,000-byte one does not.
    let (secret, _) = stack.limited_key(0.00001).await;
    let send = |input: String| {
        support::client()
            .post(format!("{}/embeddings", stack.api()))
            .bearer_auth(&secret)
            .json(&json!({"model": "mock/embed", "input": input}))
            .send()
    };
    let small = send("hi".into()).await.unwrap();
    assert_eq!(small.status(), 200, "{}", small.text().await.unwrap());
    let large = send("x".repeat(1000)).await.unwrap();
    assert_eq!(large.status(), 403, "the limit refuses what could pass it");
    // The refusal held nothing: another small one fits.
    assert_eq!(send("hi".into()).await.unwrap().status(), 200);
}

// ---- Azure OpenAI: mock/azure is Mock B's process at a deployment path ----

#[tokio::test]
async fn an_azure_deployment_gets_its_path_version_and_api_key() {
    let stack = Stack::start().await;
    let r = stack
        .chat(&stack.inference_key, chat_body("mock/azure"))
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["provider"], "Mock Azure");
    let seen = stack.mock_b.last_request().await;
    assert_eq!(seen["path"], "/deployments/chat/completions");
    assert_eq!(seen["model"], "gpt-mock-deployment");
    assert!(seen["authorization"].is_null(), "{seen}");

    // The organization's own Azure key goes in `api-key`, never as a bearer.
    let r = support::client()
        .post(format!("{}/byok", stack.api()))
        .bearer_auth(&stack.management_key)
        .json(&json!({"provider": "mock-azure", "key": "azure-own-key"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    support::eventually(
        "BYOK credential live",
        std::time::Duration::from_secs(10),
        || async {
            let r = stack
                .chat(&stack.inference_key, chat_body("mock/azure"))
                .await;
            let v: Value = r.json().await.ok()?;
            (v["usage"]["is_byok"] == true).then_some(())
        },
    )
    .await;
    let seen = stack.mock_b.last_request().await;
    assert_eq!(seen["api_key"], "azure-own-key");
    assert!(seen["authorization"].is_null());

    // Streamed like OpenAI's.
    let mut streamed = chat_body("mock/azure");
    streamed["stream"] = json!(true);
    let text = stack
        .chat(&stack.inference_key, streamed)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
}

#[tokio::test]
async fn rerank_ranks_echoes_documents_and_is_priced() {
    let stack = Stack::start().await;
    let r = support::client()
        .post(format!("{}/rerank", stack.api()))
        .bearer_auth(&stack.inference_key)
        .json(&json!({"model": "mock/rerank", "query": "red apple",
                      "documents": ["a blue sky", {"text": "a red apple"}, "an apple pie"], "top_n": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["index"], 1);
    assert_eq!(results[0]["document"], json!({"text": "a red apple"}));
    assert_eq!(results[1]["document"], json!({"text": "an apple pie"}));
    assert_eq!(body["model"], "mock/rerank");
    let usage = &body["usage"];
    let tokens = usage["prompt_tokens"].as_u64().unwrap();
    assert!(tokens > 0);
    assert!((usage["cost"].as_f64().unwrap() - tokens as f64 * 0.00000001).abs() < 1e-15);
    let seen = stack.mock_a.last_request().await;
    assert_eq!(seen["path"], "/rerank");
    let mut sent: Vec<String> = seen["body"].as_object().unwrap().keys().cloned().collect();
    sent.sort();
    assert_eq!(sent, ["documents", "model", "query", "top_n"]);
    let g = stack.generation(body["id"].as_str().unwrap()).await;
    assert_eq!(g["data"]["tokens_prompt"].as_u64(), Some(tokens));
    // Both are required.
    let r = support::client()
        .post(format!("{}/rerank", stack.api()))
        .bearer_auth(&stack.inference_key)
        .json(&json!({"model": "mock/rerank", "query": "x"}))
        .send()
        .await
        .unwrap();
    assert!(expect_error(r, 400).await.contains("documents"));
}
