use super::*;
use serde_json::Value;

fn to_chat(body: Value) -> Value {
    serde_json::from_slice(&request(&serde_json::to_vec(&body).unwrap()).unwrap()).unwrap()
}

#[test]
fn a_responses_request_becomes_a_chat_request() {
    let v = to_chat(json!({
        "model": "mock/fast",
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AA==", "detail": "low"}
            ]},
            {"type": "function_call", "call_id": "c1", "name": "look", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "look", "arguments": "{\"x\":1}"},
            {"type": "function_call_output", "call_id": "c1", "output": "a cat"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "A cat."}]}
        ],
        "max_output_tokens": 100,
        "text": {"format": {"type": "json_schema", "name": "a", "schema": {"type": "object"}, "strict": true}},
        "tools": [{"type": "function", "name": "look", "parameters": {"type": "object"}}],
        "tool_choice": {"type": "function", "name": "look"},
        "reasoning": {"effort": "low"},
        "provider": {"sort": "price"},
        "stream": true,
        "safety_identifier": "u-1"
    }));
    let m = v["messages"].as_array().unwrap();
    assert_eq!(m[0], json!({"role": "system", "content": "Be brief."}));
    assert_eq!(
        m[1]["content"][1]["image_url"],
        json!({"url": "data:image/png;base64,AA==", "detail": "low"})
    );
    assert_eq!(m[2]["tool_calls"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(
        m[3],
        json!({"role": "tool", "tool_call_id": "c1", "content": "a cat"})
    );
    assert_eq!(m[4]["content"][0]["text"], "A cat.");
    assert_eq!(m.len(), 5);
    assert_eq!(v["max_tokens"], 100);
    assert_eq!(v["response_format"]["json_schema"]["name"], "a");
    assert_eq!(v["tools"][0]["function"]["name"], "look");
    assert_eq!(v["tool_choice"]["function"]["name"], "look");
    assert_eq!(v["reasoning"]["effort"], "low");
    assert_eq!(v["provider"]["sort"], "price");
    assert_eq!(v["user"], "u-1");
    assert_eq!(v["stream"], true);
}

#[test]
fn what_a_stateless_gateway_cannot_do_is_a_400() {
    for bad in [
        json!({"model": "m", "input": "hi", "previous_response_id": "resp_1"}),
        json!({"model": "m"}),
        json!({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]}),
        json!({"model": "m", "input": [{"type": "computer_call"}]}),
    ] {
        assert_eq!(
            request(&serde_json::to_vec(&bad).unwrap())
                .unwrap_err()
                .status(),
            400,
            "{bad}"
        );
    }
}

fn echo() -> Echo {
    let body = br#"{"model":"m","messages":[],"temperature":0.5,"tools":[{"type":"function","function":{"name":"look","parameters":{"type":"object"}}}]}"#;
    Echo::of(&ChatRequest::parse(body).unwrap())
}

#[test]
fn a_chat_completion_becomes_a_response() {
    let body = json!({
        "id": "gen-1", "object": "chat.completion", "created": 7, "model": "mock/fast", "provider": "P",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Looking.", "reasoning": "Hm.",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "look", "arguments": "{}"}}]
        }}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 1},
            "completion_tokens_details": {"reasoning_tokens": 2}, "cost": 0.25}
    });
    let v: Value =
        serde_json::from_slice(&completion(&serde_json::to_vec(&body).unwrap(), &echo()).unwrap())
            .unwrap();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["type"], "reasoning");
    assert_eq!(v["output"][1]["content"][0]["text"], "Looking.");
    assert_eq!(v["output"][2]["call_id"], "c1");
    assert_eq!(v["output_text"], "Looking.");
    assert_eq!(v["temperature"], 0.5);
    assert_eq!(v["tools"][0]["name"], "look");
    assert_eq!(v["tool_choice"], "auto");
    assert_eq!(v["usage"]["input_tokens"], 10);
    assert_eq!(
        v["usage"]["input_tokens_details"],
        json!({"cached_tokens": 4, "cache_write_tokens": 1})
    );
    assert_eq!(v["usage"]["output_tokens_details"]["reasoning_tokens"], 2);
    assert_eq!(v["usage"]["cost"], 0.25);
}

#[test]
fn chat_chunks_become_responses_events() {
    let chunks = [
        json!({"id": "gen-1", "created": 7, "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
        json!({"id": "gen-1", "model": "m", "choices": [{"index": 0, "delta": {"reasoning": "Hm."}}]}),
        json!({"id": "gen-1", "model": "m", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}),
        json!({"id": "gen-1", "model": "m", "choices": [{"index": 0, "delta": {"content": " there"}}]}),
        json!({"id": "gen-1", "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {"name": "look", "arguments": ""}}]}}]}),
        json!({"id": "gen-1", "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}}]}),
        json!({"id": "gen-1", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}),
        json!({"id": "gen-1", "model": "m", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
    ];
    let mut input = String::new();
    for c in &chunks {
        input.push_str(&format!("data: {c}\n\n"));
    }
    input.push_str("data: [DONE]\n\n");
    let mut whole = Vec::new();
    StreamEncoder::new(echo()).push(input.as_bytes(), &mut whole);
    for split in [1, 7, 100] {
        let mut encoder = StreamEncoder::new(echo());
        let mut out = Vec::new();
        for piece in input.as_bytes().chunks(split) {
            encoder.push(piece, &mut out);
        }
        assert_eq!(out, whole, "split {split}");
    }
    let text = String::from_utf8(whole).unwrap();
    let events: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| {
            e.split_once("\ndata: ")
                .map(|(_, d)| serde_json::from_str(d).unwrap())
        })
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"response.created"));
    assert_eq!(kinds.last(), Some(&"response.incomplete"));
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i as u64);
    }
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "Hi there");
    let last = &events.last().unwrap()["response"];
    assert_eq!(last["status"], "incomplete");
    assert_eq!(last["output"].as_array().unwrap().len(), 3);
    assert_eq!(last["output"][1]["content"][0]["text"], "Hi there");
    assert_eq!(last["output"][2]["arguments"], "{}");
    assert_eq!(last["usage"]["output_tokens"], 2);
    assert!(kinds.contains(&"response.function_call_arguments.done"));
}

#[test]
fn an_error_chunk_fails_the_response() {
    let input = concat!(
        "data: {\"id\":\"g\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        "data: {\"id\":\"g\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"error\"}],\"error\":{\"code\":502,\"message\":\"cut\"}}\n\n",
    );
    let mut out = Vec::new();
    StreamEncoder::new(echo()).push(input.as_bytes(), &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("event: response.failed"), "{text}");
    assert!(!text.contains("response.completed"));
}
