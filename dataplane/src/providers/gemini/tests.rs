use super::*;
use serde_json::Value;
use serde_json::value::RawValue;
use switchyard_policy::Prices;

fn endpoint() -> Endpoint {
    switchyard_policy::testing::endpoint("google", Prices::default(), 8192)
}

fn translate(openai: Value) -> Result<Value, String> {
    let raw = serde_json::to_vec(&openai).unwrap();
    let original = ChatRequest::parse(&raw).unwrap();
    request(&raw, &original, &endpoint()).map(|b| serde_json::from_slice(&b).unwrap())
}

#[test]
fn messages_tools_and_parameters_take_geminis_shape() {
    let v = translate(json!({
        "model": "gemini-x",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather here?", "cache_control": {"type": "ephemeral"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}
            ], "reasoning_details": [
                {"type": "reasoning.encrypted", "data": "sig-1", "id": "call_1", "format": "google-gemini-v1"}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\":18}"}
        ],
        "tools": [{"type": "function", "function": {"name": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "temperature": 0.3, "top_p": 0.9, "max_tokens": 100, "stop": ["END"], "seed": 4,
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}},
        "stream": true, "user": "u"
    }))
    .unwrap();
    assert!(v.get("model").is_none(), "the model is in the path");
    assert_eq!(
        v["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
    let contents = v["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 3, "{v}");
    let user = &contents[0]["parts"];
    assert_eq!(user[0], json!({"text": "Weather here?"}));
    assert_eq!(user[1]["inlineData"]["mimeType"], "image/png");
    assert_eq!(user[2]["fileData"]["fileUri"], "https://example.com/a.jpg");
    assert_eq!(contents[1]["role"], "model");
    assert_eq!(
        contents[1]["parts"][0],
        json!({"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "sig-1"})
    );
    // Both answers are one user turn, each named after the call it answers.
    let answers = &contents[2]["parts"];
    assert_eq!(
        answers[0],
        json!({"functionResponse": {"name": "weather", "response": {"content": "18C"}}})
    );
    assert_eq!(
        answers[1]["functionResponse"]["response"],
        json!({"temp": 18})
    );
    let config = &v["generationConfig"];
    assert_eq!(config["temperature"], 0.3);
    assert_eq!(config["topP"], 0.9);
    assert_eq!(config["maxOutputTokens"], 100);
    assert_eq!(config["stopSequences"], json!(["END"]));
    assert_eq!(config["seed"], 4);
    assert_eq!(config["responseMimeType"], "application/json");
    assert_eq!(config["responseJsonSchema"], json!({"type": "object"}));
    assert_eq!(
        v["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"]["properties"]["city"]["type"],
        "string"
    );
    assert_eq!(
        v["toolConfig"]["functionCallingConfig"],
        json!({"mode": "ANY", "allowedFunctionNames": ["weather"]})
    );
    for gone in ["stream", "user", "messages", "tool_choice", "stop"] {
        assert!(v.get(gone).is_none(), "{gone} leaked");
    }
}

#[test]
fn reasoning_is_a_thinking_config() {
    let with = |reasoning: Value| {
        translate(json!({"model": "m", "messages": [], "max_tokens": 1000, "reasoning": reasoning}))
            .unwrap()["generationConfig"]["thinkingConfig"]
            .clone()
    };
    assert_eq!(
        with(json!({"max_tokens": 300})),
        json!({"thinkingBudget": 300, "includeThoughts": true})
    );
    assert_eq!(
        with(json!({"effort": "high", "exclude": true})),
        json!({"thinkingBudget": 800, "includeThoughts": false})
    );
    assert_eq!(
        with(json!({"enabled": false})),
        json!({"thinkingBudget": 0, "includeThoughts": false})
    );
    let none = translate(json!({"model": "m", "messages": []})).unwrap();
    assert!(none.get("generationConfig").is_none());
}

#[test]
fn what_gemini_cannot_carry_is_refused() {
    let orphan = translate(json!({"model": "m", "messages": [
        {"role": "tool", "tool_call_id": "nope", "content": "x"}]}));
    assert!(orphan.unwrap_err().contains("answers no tool call"));
    let image_in_system = translate(
        json!({"model": "m", "messages": [{"role": "system", "content": [
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
    );
    assert!(image_in_system.is_err());
}

#[test]
fn a_response_becomes_a_chat_completion() {
    let body = json!({
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "Thinking it over.", "thought": true},
            {"text": "Calling."},
            {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "sig-9"}
        ]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 20, "totalTokenCount": 150,
            "cachedContentTokenCount": 60, "thoughtsTokenCount": 30},
        "modelVersion": "gemini-x", "responseId": "resp-1"
    });
    let v: Value =
        serde_json::from_slice(&completion(&serde_json::to_vec(&body).unwrap(), 5).unwrap())
            .unwrap();
    assert_eq!(v["id"], "resp-1");
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["native_finish_reason"], "STOP");
    let msg = &choice["message"];
    assert_eq!(msg["content"], "Calling.");
    assert_eq!(msg["reasoning"], "Thinking it over.");
    let call = &msg["tool_calls"][0];
    assert!(call.get("index").is_none());
    assert_eq!(call["function"]["name"], "weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(msg["reasoning_details"][0]["data"], "sig-9");
    assert_eq!(msg["reasoning_details"][0]["id"], call["id"]);
    let u = &v["usage"];
    assert_eq!(u["prompt_tokens"], 100);
    assert_eq!(u["completion_tokens"], 50);
    assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 60);
    assert_eq!(u["completion_tokens_details"]["reasoning_tokens"], 30);
    let usage =
        meter::parse_usage(&serde_json::from_value::<Box<RawValue>>(u.clone()).unwrap()).unwrap();
    assert_eq!((usage.cached_tokens, usage.reasoning_tokens), (60, 30));
}

#[test]
fn a_blocked_prompt_is_a_content_filter_finish() {
    let body =
        br#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":7}}"#;
    let v: Value = serde_json::from_slice(&completion(body, 0).unwrap()).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(v["choices"][0]["native_finish_reason"], "SAFETY");
    assert_eq!(v["choices"][0]["message"]["content"], "");
    let safety =
        br#"{"candidates":[{"content":{"parts":[{"text":"par"}]},"finishReason":"SAFETY"}]}"#;
    let v: Value = serde_json::from_slice(&completion(safety, 0).unwrap()).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
}

const STREAM: &str = concat!(
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hm.\",\"thought\":true}]}}],\"modelVersion\":\"gemini-x\",\"responseId\":\"r-1\"}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hel\"}]}}],\"modelVersion\":\"gemini-x\",\"responseId\":\"r-1\"}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"lo\"}]}}],\"modelVersion\":\"gemini-x\",\"responseId\":\"r-1\"}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{\"a\":1}}}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":4,\"thoughtsTokenCount\":2},\"modelVersion\":\"gemini-x\",\"responseId\":\"r-1\"}\r\n\r\n",
);

#[test]
fn a_stream_becomes_chunks_ended_at_the_close() {
    let mut whole = Vec::new();
    let mut decoder = StreamDecoder::new(3);
    decoder.push(STREAM.as_bytes(), &mut whole);
    decoder.finish(&mut whole);
    assert!(decoder.failure().is_none());
    for split in 1..STREAM.len() {
        let mut decoder = StreamDecoder::new(3);
        let mut out = Vec::new();
        for piece in STREAM.as_bytes().chunks(split) {
            decoder.push(piece, &mut out);
        }
        decoder.finish(&mut out);
        assert_eq!(out, whole, "split {split}");
    }
    let text = String::from_utf8(whole).unwrap();
    let events: Vec<&str> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[1]["choices"][0]["delta"]["reasoning"], "Hm.");
    assert_eq!(chunks[2]["choices"][0]["delta"]["content"], "Hel");
    assert_eq!(chunks[3]["choices"][0]["delta"]["content"], "lo");
    let call = &chunks[4]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(
        (call["index"].as_u64(), &call["function"]["name"]),
        (Some(0), &json!("f"))
    );
    assert_eq!(chunks[5]["choices"][0]["finish_reason"], "tool_calls");
    let usage = &chunks[6]["usage"];
    assert_eq!(
        (
            usage["prompt_tokens"].as_u64(),
            usage["completion_tokens"].as_u64()
        ),
        (Some(9), Some(6))
    );
    assert!(chunks.iter().all(|c| c["id"] == "r-1"));
}

#[test]
fn a_stream_closed_before_its_finish_failed() {
    let cut = STREAM.rfind("data: ").unwrap();
    let mut decoder = StreamDecoder::new(0);
    let mut out = Vec::new();
    decoder.push(&STREAM.as_bytes()[..cut], &mut out);
    decoder.finish(&mut out);
    assert!(decoder.failure().is_some());
    assert!(!String::from_utf8(out).unwrap().contains("[DONE]"));

    let mut decoder = StreamDecoder::new(0);
    let mut out = Vec::new();
    decoder.push(b"data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\n\n", &mut out);
    assert_eq!(decoder.failure(), Some("The model is overloaded."));
}

/// The documented shapes (loadtest/fixtures/gemini), translated.
#[test]
fn the_documented_response_and_stream_translate() {
    let response = include_str!("../../../../loadtest/fixtures/gemini/response.json");
    let v: Value = serde_json::from_slice(&completion(response.as_bytes(), 1).unwrap()).unwrap();
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["content"], "Let me check.");
    assert_eq!(msg["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(v["usage"]["completion_tokens"], 42 + 47);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 10240);

    let stream = include_str!("../../../../loadtest/fixtures/gemini/stream.sse");
    let mut decoder = StreamDecoder::new(1);
    let mut out = Vec::new();
    decoder.push(stream.as_bytes(), &mut out);
    decoder.finish(&mut out);
    assert!(decoder.failure().is_none());
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(text.contains("\"content\":\"Let me check.\""), "{text}");
    let error = include_str!("../../../../loadtest/fixtures/gemini/error.json");
    let mut decoder = StreamDecoder::new(1);
    decoder.push(
        format!("data: {}\r\n\r\n", error.trim()).as_bytes(),
        &mut Vec::new(),
    );
    assert!(decoder.failure().is_some_and(|m| m.contains("overloaded")));
}
