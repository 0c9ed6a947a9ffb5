//! Chat completions through the whole gateway: pricing, streaming, bodies, bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use futures::StreamExt;
use serde_json::{Value, json};
use support::{Stack, chat_body, client, expect_error};

#[tokio::test]
async fn non_stream_is_priced_and_reaches_the_generation_record() {
    let stack = Stack::start().await;
    let r = stack
        .chat(&stack.inference_key, chat_body("mock/fast"))
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("gen-"), "gateway generation id, got {id}");
    assert_eq!(body["model"], "mock/fast");
    assert_eq!(body["object"], "chat.completion");
    let usage = &body["usage"];
    let (prompt, completion) = (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    );
    assert_eq!(usage["total_tokens"].as_u64().unwrap(), prompt + completion);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 0);
    assert_eq!(usage["is_byok"], false);
    // mock/fast on mock-a: 0.00000015 per prompt token, 0.0000006 per completion token.
    let expected = prompt as f64 * 0.00000015 + completion as f64 * 0.0000006;
    let cost = usage["cost"].as_f64().unwrap();
    assert!((cost - expected).abs() < 1e-12, "cost {cost} != {expected}");

    // The provider saw its own model id, and never the client's credential.
    let seen = stack.mock_a.last_request().await;
    assert_eq!(seen["model"], "mock-fast-1");
    assert!(
        seen["authorization"].is_null(),
        "client Authorization must not be forwarded: {seen}"
    );

    let g = stack.generation(&id).await;
    let data = &g["data"];
    assert_eq!(data["id"], id.as_str());
    assert_eq!(data["model"], "mock/fast");
    assert_eq!(data["provider_name"], "Mock A");
    assert_eq!(data["tokens_prompt"].as_u64().unwrap(), prompt);
    assert_eq!(data["tokens_completion"].as_u64().unwrap(), completion);
    assert!((data["total_cost"].as_f64().unwrap() - expected).abs() < 1e-12);
    assert_eq!(data["streamed"], false);
    assert_eq!(data["finish_reason"], "stop");
    assert!(data["workspace_id"].as_str().unwrap().starts_with("ws_"));
    assert!(data["created_at"].as_str().unwrap().ends_with('Z'));
}

/// `@openrouter/ai-sdk-provider` takes `cost` only as a number: an unpriced model's reads 0,
/// and a header says it is for want of a price.
#[tokio::test]
async fn an_unpriced_model_reports_zero_cost_and_says_so() {
    let stack = Stack::start().await;
    let r = stack
        .chat(&stack.inference_key, chat_body("mock/unpriced"))
        .await;
    assert_eq!(r.headers()["x-switchyard-cost"], "unpriced");
    let body: Value = r.json().await.unwrap();
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(body["usage"]["cost"], 0.0, "{body}");
    // A priced model's response has no such header.
    let r = stack
        .chat(&stack.inference_key, chat_body("mock/fast"))
        .await;
    assert!(r.headers().get("x-switchyard-cost").is_none());
}

/// Parses an SSE body into its `data:` payloads.
fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn stream_relays_every_chunk_and_ends_with_priced_usage() {
    let stack = Stack::start().await;
    stack
        .mock_a
        .script(json!({"completion_tokens": 5, "inter_token_ms": 5}))
        .await;
    let mut body = chat_body("mock/fast");
    body["stream"] = json!(true);
    let r = stack.chat(&stack.inference_key, body).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = r.text().await.unwrap();
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let id = chunks[0]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("gen-"));
    assert!(
        chunks
            .iter()
            .all(|c| c["id"] == id.as_str() && c["model"] == "mock/fast")
    );
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "tok tok tok tok tok");
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], 5);
    assert!(usage["cost"].as_f64().unwrap() > 0.0);
    assert_eq!(usage["is_byok"], false);
    // The gateway asked the provider for the usage chunk.
    assert_eq!(stack.mock_a.last_request().await["include_usage"], true);

    let g = stack.generation(&id).await;
    assert_eq!(g["data"]["streamed"], true);
    assert_eq!(g["data"]["tokens_completion"], 5);
}

#[tokio::test]
async fn stream_arrives_incrementally() {
    let stack = Stack::start().await;
    stack
        .mock_a
        .script(json!({"completion_tokens": 40, "inter_token_ms": 25}))
        .await;
    let mut body = chat_body("mock/fast");
    body["stream"] = json!(true);
    let r = stack.chat(&stack.inference_key, body).await;
    let mut stream = r.bytes_stream();
    // The first chunk must arrive while the provider is still generating (40 × 25 ms); a
    // buffering gateway would deliver everything in one piece at the end.
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    let mut rest = Vec::new();
    let mut reads_after_first = 0;
    while let Some(chunk) = stream.next().await {
        rest.extend_from_slice(&chunk.unwrap());
        reads_after_first += 1;
    }
    assert!(
        reads_after_first > 5,
        "stream came in {reads_after_first} reads after the first"
    );
    assert!(String::from_utf8_lossy(&rest).ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_still_produces_a_usage_event() {
    let stack = Stack::start().await;
    stack
        .mock_a
        .script(json!({"completion_tokens": 200, "inter_token_ms": 20}))
        .await;
    let mut body = chat_body("mock/fast");
    body["stream"] = json!(true);
    let r = stack.chat(&stack.inference_key, body).await;
    let mut stream = r.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("\"content\":\"tok\"") {
        seen.push_str(&String::from_utf8_lossy(
            &stream.next().await.unwrap().unwrap(),
        ));
    }
    let first: Value = serde_json::from_str(sse_data(&seen)[0].as_str()).unwrap();
    let id = first["id"].as_str().unwrap().to_owned();
    drop(stream);

    let g = stack.generation(&id).await;
    let data = &g["data"];
    assert_eq!(data["cancelled"], true);
    assert_eq!(data["streamed"], true);
    let completion = data["tokens_completion"].as_u64().unwrap();
    assert!(
        (1..200).contains(&completion),
        "counted {completion} generated tokens"
    );
    assert!(data["tokens_prompt"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn a_provider_that_cuts_the_stream_yields_an_error_chunk() {
    let stack = Stack::start().await;
    stack
        .mock_a
        .script(json!({"completion_tokens": 10, "cut_after_chunks": 3}))
        .await;
    let mut body = chat_body("mock/fast");
    body["stream"] = json!(true);
    let text = stack
        .chat(&stack.inference_key, body)
        .await
        .text()
        .await
        .unwrap();
    let events = sse_data(&text);
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], 502, "{text}");
    assert_eq!(last["choices"][0]["finish_reason"], "error");
    let g = stack.generation(last["id"].as_str().unwrap()).await;
    assert_eq!(g["data"]["finish_reason"], "error");
    assert_eq!(g["data"]["tokens_completion"], 3);
}

/// A body of about `bytes`: text, or an inline image (a base64 `data:` URL), as the largest
/// real bodies are; text that long would not fit the model's context.
async fn big_body_round_trip(stack: &Stack, bytes: usize) {
    let content = if bytes <= 256 * 1024 {
        json!("x".repeat(bytes))
    } else {
        let url = format!("data:image/png;base64,{}", "A".repeat(bytes));
        json!([{"type": "image_url", "image_url": {"url": url}}])
    };
    let body = json!({"model": "mock/fast", "messages": [{"role": "user", "content": content}]});
    let r = stack.chat(&stack.inference_key, body).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let seen = stack.mock_a.last_request().await;
    let forwarded = seen["body_bytes"].as_u64().unwrap() as usize;
    assert!(
        forwarded > bytes && forwarded < bytes + 300,
        "forwarded {forwarded} bytes"
    );
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() as usize >= bytes / 4);
}

#[tokio::test]
async fn bodies_of_100_kib_and_8_mib_are_forwarded_whole() {
    let stack = Stack::start().await;
    big_body_round_trip(&stack, 100 * 1024).await;
    big_body_round_trip(&stack, 8 * 1024 * 1024).await;
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413() {
    let stack = Stack::start_with(&["--max-body-bytes", "1048576"]).await;
    let filler = "x".repeat(2 * 1024 * 1024);
    let body = json!({"model": "mock/fast", "messages": [{"role": "user", "content": filler}]});
    expect_error(stack.chat(&stack.inference_key, body).await, 413).await;
    // Chunked bodies without Content-Length are counted as they arrive.
    let chunks =
        futures::stream::iter((0..32).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 * 1024])));
    let r = client()
        .post(format!("{}/chat/completions", stack.api()))
        .bearer_auth(&stack.inference_key)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    expect_error(r, 413).await;
    assert_eq!(
        stack.mock_a.requests().await,
        0,
        "nothing reached the provider"
    );
}

#[tokio::test]
async fn bad_requests_get_the_right_status_and_error_shape() {
    let stack = Stack::start().await;
    let post = |key: Option<&str>, body: &str| {
        let mut req = client()
            .post(format!("{}/chat/completions", stack.api()))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        req.send()
    };
    let key = Some(stack.inference_key.as_str());
    expect_error(post(key, "{not json").await.unwrap(), 400).await;
    let m = expect_error(post(key, r#"{"messages":[]}"#).await.unwrap(), 400).await;
    assert!(m.contains("model"), "{m}");
    let m = expect_error(
        post(key, r#"{"model":"nope/nope","messages":[]}"#)
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(m.contains("nope/nope"), "{m}");
    let valid = r#"{"model":"mock/fast","messages":[]}"#;
    expect_error(post(None, valid).await.unwrap(), 401).await;
    expect_error(
        post(Some("sk-sy-v1-not-a-real-key"), valid).await.unwrap(),
        401,
    )
    .await;
    expect_error(post(Some(&stack.management_key), valid).await.unwrap(), 403).await;
    // Errors never echo the credential.
    let r = post(Some("sk-sy-v1-secret-looking-value"), valid)
        .await
        .unwrap();
    assert!(!r.text().await.unwrap().contains("secret-looking"));
    assert_eq!(stack.mock_a.requests().await, 0);
}

#[tokio::test]
async fn a_failing_provider_falls_back_to_the_next_endpoint() {
    let stack = Stack::start().await;
    stack.mock_a.script(json!({"outage": true})).await;
    let r = stack
        .chat(&stack.inference_key, chat_body("mock/fast"))
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["provider"], "Mock B");
    assert_eq!(stack.mock_a.requests().await, 1);
    assert_eq!(stack.mock_b.requests().await, 1);
    // mock-b's price applies: 0.0000002 prompt, 0.0000008 completion.
    let u = &body["usage"];
    let expected = u["prompt_tokens"].as_f64().unwrap() * 0.0000002
        + u["completion_tokens"].as_f64().unwrap() * 0.0000008;
    assert!((u["cost"].as_f64().unwrap() - expected).abs() < 1e-12);

    stack.mock_b.script(json!({"outage": true})).await;
    let r = stack
        .chat(&stack.inference_key, chat_body("mock/fast"))
        .await;
    expect_error(r, 502).await;
}

#[tokio::test]
async fn a_provider_client_error_is_passed_on_with_its_status() {
    let stack = Stack::start().await;
    stack
        .mock_a
        .script(json!({"error_rate": 1.0, "error_status": 400}))
        .await;
    let r = stack
        .chat(&stack.inference_key, chat_body("mock/fast"))
        .await;
    let message = expect_error(r, 400).await;
    assert!(message.contains("scripted mock error"), "{message}");
    assert_eq!(
        stack.mock_b.requests().await,
        0,
        "a client error is not retried elsewhere"
    );
}

#[tokio::test]
async fn models_are_listed_from_the_snapshot() {
    let stack = Stack::start().await;
    let v: Value = client()
        .get(format!("{}/models", stack.api()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"mock/fast") && ids.contains(&"mock/smart"));
    assert_eq!(v["total_count"], ids.len());
    let fast = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "mock/fast")
        .unwrap();
    assert_eq!(fast["pricing"]["prompt"], "0.00000015");
}

/// What a browser's preflight for `path` from `origin` is answered, and the answer's
/// `Access-Control-Allow-Origin`.
async fn preflight(stack: &Stack, path: &str, origin: &str) -> (u16, Option<String>) {
    let r = client()
        .request(reqwest::Method::OPTIONS, format!("{}{path}", stack.base()))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    let allowed = r
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), allowed)
}

#[tokio::test]
async fn browsers_may_call_inference_from_any_origin_and_management_from_listed_ones() {
    let stack = Stack::start_with(&["--cors-management-origins", "https://console.example"]).await;
    let page = "https://app.example";
    assert_eq!(
        preflight(&stack, "/api/v1/chat/completions", page).await,
        (204, Some("*".into()))
    );
    let r = client()
        .post(format!("{}/chat/completions", stack.api()))
        .header("origin", page)
        .bearer_auth(&stack.inference_key)
        .json(&chat_body("mock/fast"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    // Management: only the listed console.
    assert_eq!(preflight(&stack, "/api/v1/keys", page).await, (204, None));
    let console = "https://console.example";
    assert_eq!(
        preflight(&stack, "/api/v1/keys", console).await,
        (204, Some(console.into()))
    );
    let r = client()
        .get(format!("{}/keys", stack.api()))
        .header("origin", console)
        .bearer_auth(&stack.management_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], console);
    let r = client()
        .get(format!("{}/keys", stack.api()))
        .header("origin", page)
        .bearer_auth(&stack.management_key)
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

/// A client that reads the first events of a stream and then stops reading, its connection
/// left open: the dataplane's writes back up, time out, and the exchange is settled and
/// recorded (the provider bills it all the same) while the client still holds the socket.
#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_its_request_settled() {
    let stack = Stack::start_with(&["--client-write-timeout-secs", "1"]).await;
    // Far more than socket buffers hold: about 15 MB of events, as fast as the mock can send.
    stack
        .mock_a
        .script(json!({"completion_tokens": 100_000}))
        .await;
    let mut body = chat_body("mock/fast");
    body["stream"] = json!(true);
    body["max_tokens"] = json!(100_000);
    let (id, conn) = stack.stalled_stream(&stack.inference_key, &body).await;
    // From here on the client reads nothing, and keeps the connection open.
    let g = stack.generation(&id).await;
    assert_eq!(g["data"]["cancelled"], true, "{g}");
    let completion = g["data"]["tokens_completion"].as_u64().unwrap();
    assert!(completion > 0 && completion < 100_000, "{completion}");
    drop(conn);
}
