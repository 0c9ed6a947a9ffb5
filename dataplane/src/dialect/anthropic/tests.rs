use super::*;
use serde_json::Value;

fn to_chat(messages: Value) -> Value {
    serde_json::from_slice(&request(&serde_json::to_vec(&messages).unwrap()).unwrap()).unwrap()
}

#[test]
fn a_messages_request_becomes_a_chat_request() {
    let v = to_chat(json!({
        "model": "mock/claude",
        "max_tokens": 500,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Hm.", "signature": "sig"},
                {"type": "tool_use", "id": "toolu_1", "name": "look", "input": {"q": 1}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "a cat"}]},
                {"type": "text", "text": "So?"}
            ]}
        ],
        "tools": [{"name": "look", "description": "Look", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-1"},
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "stream": true,
        "provider": {"only": ["mock-anthropic"]}
    }));
    let m = v["messages"].as_array().unwrap();
    assert_eq!(m[0]["role"], "system");
    assert_eq!(m[0]["content"][0]["cache_control"]["type"], "ephemeral");
    assert_eq!(
        m[1]["content"][1]["image_url"]["url"],
        "data:image/png;base64,AA=="
    );
    assert_eq!(m[2]["tool_calls"][0]["function"]["arguments"], "{\"q\":1}");
    assert_eq!(m[2]["reasoning_details"][0]["signature"], "sig");
    assert_eq!(
        m[3],
        json!({"role": "tool", "tool_call_id": "toolu_1", "content": "a cat"})
    );
    assert_eq!(m[4]["content"][0]["text"], "So?");
    assert_eq!(v["max_tokens"], 500);
    assert_eq!(v["tools"][0]["function"]["name"], "look");
    assert_eq!(v["tool_choice"], "required");
    assert_eq!(v["parallel_tool_calls"], false);
    assert_eq!(v["stop"], json!(["END"]));
    assert_eq!(v["user"], "u-1");
    assert_eq!(v["reasoning"], json!({"max_tokens": 2000}));
    assert_eq!(v["stream"], true);
    assert_eq!(v["provider"]["only"][0], "mock-anthropic");
}

#[test]
fn a_bad_messages_request_is_a_400() {
    for bad in [
        json!({"model": "m", "messages": []}),
        json!({"model": "m", "max_tokens": 5}),
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}),
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "tool_use"}]}]}),
        json!({"model": "m", "max_tokens": 5, "messages": [], "tool_choice": {"type": "sometimes"}}),
    ] {
        let reject = request(&serde_json::to_vec(&bad).unwrap()).unwrap_err();
        assert_eq!(reject.status(), 400, "{bad}");
    }
    assert_eq!(request(b"{").unwrap_err().status(), 400);
}

#[test]
fn a_chat_completion_becomes_a_message() {
    let body = json!({
        "id": "gen-1", "object": "chat.completion", "model": "mock/claude", "provider": "Mock",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Looking.", "reasoning": "Hm.",
            "reasoning_details": [{"type": "reasoning.text", "text": "Hm.", "signature": "sig"}],
            "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "look", "arguments": "{\"q\":1}"}}]
        }}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 9, "total_tokens": 109,
            "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 30}, "cost": 0.5}
    });
    let v: Value =
        serde_json::from_slice(&completion(&serde_json::to_vec(&body).unwrap()).unwrap()).unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["id"], "gen-1");
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(
        v["content"][0],
        json!({"type": "thinking", "thinking": "Hm.", "signature": "sig"})
    );
    assert_eq!(v["content"][1], json!({"type": "text", "text": "Looking."}));
    assert_eq!(v["content"][2]["input"], json!({"q": 1}));
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 10, "output_tokens": 9, "cache_creation_input_tokens": 30,
               "cache_read_input_tokens": 60, "cost": 0.5})
    );
}

#[test]
fn chat_chunks_become_anthropic_events() {
    let chunks = [
        json!({"id": "gen-1", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
        json!({"id": "gen-1", "model": "m", "choices": [{"index": 0, "delta": {"reasoning": "Hm."}}]}),
        json!({"id": "gen-1", "model": "m", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}),
        json!({"id": "gen-1", "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}}]}}]}),
        json!({"id": "gen-1", "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}}]}),
        json!({"id": "gen-1", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        json!({"id": "gen-1", "model": "m", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}),
    ];
    let mut input = String::new();
    for c in &chunks {
        input.push_str(&format!("data: {c}\n\n"));
    }
    input.push_str("data: [DONE]\n\n");
    let mut whole = Vec::new();
    StreamEncoder::new().push(input.as_bytes(), &mut whole);
    for split in 1..input.len() {
        let mut encoder = StreamEncoder::new();
        let mut out = Vec::new();
        for piece in input.as_bytes().chunks(split) {
            encoder.push(piece, &mut out);
        }
        assert_eq!(out, whole, "split {split}");
    }
    let text = String::from_utf8(whole).unwrap();
    let events: Vec<(&str, Value)> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, data) = e.split_once('\n').unwrap();
            (
                name.strip_prefix("event: ").unwrap(),
                serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = events.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    assert_eq!(events[1].1["content_block"]["type"], "thinking");
    assert_eq!(events[5].1["delta"]["text"], "Hi");
    assert_eq!(events[7].1["content_block"]["name"], "f");
    assert_eq!(events[8].1["delta"]["partial_json"], "{}");
    assert_eq!(events[10].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(events[10].1["usage"]["output_tokens"], 3);
}

#[test]
fn an_error_chunk_becomes_an_error_event() {
    let input = concat!(
        "data: {\"id\":\"g\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        "data: {\"id\":\"g\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"error\"}],\"error\":{\"code\":502,\"message\":\"cut\"}}\n\n",
    );
    let mut out = Vec::new();
    let mut encoder = StreamEncoder::new();
    encoder.push(input.as_bytes(), &mut out);
    encoder.push(b"data: [DONE]\n\n", &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("event: error\n"), "{text}");
    assert!(text.contains("\"message\":\"cut\""), "{text}");
    assert!(!text.contains("message_stop"));
}
