use super::*;
use serde_json::Value;
use serde_json::value::RawValue;
use switchyard_policy::Prices;

fn endpoint() -> Endpoint {
    switchyard_policy::testing::endpoint("anthropic", Prices::default(), 4096)
}

/// Translates `openai` as the shaped body and the client's request alike.
fn translate(openai: Value) -> Result<Value, String> {
    let raw = serde_json::to_vec(&openai).unwrap();
    let original = ChatRequest::parse(&raw).unwrap();
    request(&raw, &original, &endpoint()).map(|b| serde_json::from_slice(&b).unwrap())
}

#[test]
fn system_messages_tools_and_results_take_anthropics_shape() {
    let v = translate(json!({
        "model": "claude-x",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Cite.", "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "user", "content": "And tomorrow?"}
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather now",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "stop": "END",
        "temperature": 0.3,
        "user": "u-1",
        "stream": true,
        "stream_options": {"include_usage": true},
        "seed": 7
    }))
    .unwrap();
    assert_eq!(v["model"], "claude-x");
    assert_eq!(
        v["system"],
        json!([{"type": "text", "text": "Be brief."},
               {"type": "text", "text": "Cite.", "cache_control": {"type": "ephemeral"}}])
    );
    let turns = v["messages"].as_array().unwrap();
    assert_eq!(turns.len(), 3, "{v}");
    assert_eq!(turns[1]["role"], "assistant");
    assert_eq!(
        turns[1]["content"][0],
        json!({"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}})
    );
    // The tool result and the next user message are one user turn.
    assert_eq!(turns[2]["role"], "user");
    assert_eq!(
        turns[2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"})
    );
    assert_eq!(turns[2]["content"][1]["text"], "And tomorrow?");
    assert_eq!(v["tools"][0]["name"], "weather");
    assert_eq!(
        v["tools"][0]["input_schema"]["properties"]["city"]["type"],
        "string"
    );
    assert_eq!(
        v["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    assert_eq!(v["stop_sequences"], json!(["END"]));
    assert_eq!(v["temperature"], 0.3);
    assert_eq!(v["metadata"], json!({"user_id": "u-1"}));
    assert_eq!(v["stream"], true);
    // Anthropic requires max_tokens: the endpoint's cap when the client gives none.
    assert_eq!(v["max_tokens"], 4096);
    // OpenAI's members that Anthropic does not define never leave.
    for gone in [
        "stream_options",
        "seed",
        "stop",
        "user",
        "parallel_tool_calls",
    ] {
        assert!(v.get(gone).is_none(), "{gone} leaked: {v}");
    }
}

#[test]
fn images_files_and_cache_control_become_blocks() {
    let v = translate(json!({
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "long context", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
            {"type": "text", "text": ""}
        ]}]
    }))
    .unwrap();
    let blocks = v["messages"][0]["content"].as_array().unwrap();
    assert_eq!(blocks.len(), 4);
    assert_eq!(
        blocks[0]["cache_control"],
        json!({"type": "ephemeral", "ttl": "1h"})
    );
    assert_eq!(
        blocks[1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="})
    );
    assert_eq!(
        blocks[2]["source"],
        json!({"type": "url", "url": "https://example.com/cat.jpg"})
    );
    assert_eq!(blocks[3]["type"], "document");
    assert_eq!(blocks[3]["source"]["media_type"], "application/pdf");
    assert_eq!(v["max_tokens"], 10);
}

#[test]
fn what_anthropic_cannot_carry_is_refused_with_a_reason() {
    let audio = translate(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]}),
    );
    assert!(audio.unwrap_err().contains("input_audio"));
    let image_in_system = translate(
        json!({"model": "m", "messages": [{"role": "system", "content": [
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
    );
    assert!(image_in_system.unwrap_err().contains("system"));
    let bad_arguments = translate(
        json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
        {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]}),
    );
    assert!(bad_arguments.unwrap_err().contains("arguments"));
    let not_an_image = translate(
        json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:text/plain;base64,aGk="}}]}]}),
    );
    assert!(
        not_an_image
            .unwrap_err()
            .contains("cannot be sent as an image")
    );
}

#[test]
fn reasoning_becomes_a_thinking_budget_below_max_tokens() {
    let base = |extra: Value| {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 10_000, "temperature": 0.5, "top_k": 5});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        translate(body).unwrap()
    };
    let v = base(json!({"reasoning": {"max_tokens": 2000}}));
    assert_eq!(
        v["thinking"],
        json!({"type": "enabled", "budget_tokens": 2000})
    );
    // Thinking takes neither temperature nor top_k.
    assert!(v.get("temperature").is_none() && v.get("top_k").is_none());
    let v = base(json!({"reasoning_effort": "high"}));
    assert_eq!(v["thinking"]["budget_tokens"], 8000);
    let v = base(json!({"reasoning": {"effort": "low", "exclude": true}}));
    assert_eq!(
        v["thinking"],
        json!({"type": "enabled", "budget_tokens": 2000, "display": "omitted"})
    );
    // Bounded both ways: at least Anthropic's minimum, below max_tokens.
    assert_eq!(
        base(json!({"reasoning": {"max_tokens": 10}}))["thinking"]["budget_tokens"],
        1024
    );
    assert_eq!(
        base(json!({"reasoning": {"max_tokens": 50_000}}))["thinking"]["budget_tokens"],
        9_999
    );
    let v = base(json!({"reasoning": {"effort": "none"}}));
    assert!(v.get("thinking").is_none());
    assert_eq!(v["temperature"], 0.5);
    let small = translate(json!({"model": "m", "messages": [], "max_tokens": 1000,
        "reasoning": {"effort": "high"}}))
    .unwrap();
    assert!(
        small.get("thinking").is_none(),
        "no room for a budget: {small}"
    );
}

#[test]
fn json_schema_response_format_is_output_config() {
    let v = translate(json!({"model": "m", "messages": [],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": true,
            "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}}))
    .unwrap();
    assert_eq!(
        v["output_config"]["format"],
        json!({"type": "json_schema", "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}})
    );
    assert!(v.get("response_format").is_none());
}

#[test]
fn signed_reasoning_goes_back_as_thinking_blocks() {
    let v = translate(json!({"model": "m", "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a", "reasoning_details": [
            {"type": "reasoning.text", "text": "thought", "signature": "sig", "format": "anthropic-claude-v1"},
            {"type": "reasoning.encrypted", "data": "opaque"},
            {"type": "reasoning.summary", "summary": "unsigned"}
        ]}
    ]}))
    .unwrap();
    let blocks = &v["messages"][1]["content"];
    assert_eq!(
        blocks[0],
        json!({"type": "thinking", "thinking": "thought", "signature": "sig"})
    );
    assert_eq!(
        blocks[1],
        json!({"type": "redacted_thinking", "data": "opaque"})
    );
    assert_eq!(blocks[2], json!({"type": "text", "text": "a"}));
    assert_eq!(blocks.as_array().unwrap().len(), 3);
}

#[test]
fn a_message_becomes_a_chat_completion() {
    let body = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "Let me see.", "signature": "sig1"},
            {"type": "text", "text": "Calling."},
            {"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {"city": "Paris"}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 20, "cache_creation_input_tokens": 100,
                  "cache_read_input_tokens": 1000, "output_tokens_details": {"thinking_tokens": 5}}
    });
    let out = completion(&serde_json::to_vec(&body).unwrap(), 42).unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["created"], 42);
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["native_finish_reason"], "tool_use");
    let msg = &choice["message"];
    assert_eq!(msg["content"], "Calling.");
    assert_eq!(msg["reasoning"], "Let me see.");
    assert_eq!(msg["reasoning_details"][0]["signature"], "sig1");
    assert_eq!(msg["tool_calls"][0]["id"], "toolu_9");
    assert_eq!(
        serde_json::from_str::<Value>(
            msg["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap()
        )
        .unwrap(),
        json!({"city": "Paris"})
    );
    let u = &v["usage"];
    assert_eq!(u["prompt_tokens"], 1110);
    assert_eq!(u["completion_tokens"], 20);
    assert_eq!(u["total_tokens"], 1130);
    assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 1000);
    assert_eq!(u["prompt_tokens_details"]["cache_write_tokens"], 100);
    assert_eq!(u["completion_tokens_details"]["reasoning_tokens"], 5);
    // What the meter reads from it.
    let usage =
        meter::parse_usage(&serde_json::from_value::<Box<RawValue>>(u.clone()).unwrap()).unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.cached_tokens,
            usage.cache_write_tokens
        ),
        (1110, 1000, 100)
    );

    assert!(completion(b"{\"type\":\"error\"}", 0).is_none());
    assert!(completion(b"not json", 0).is_none());
}

const STREAM: &str = concat!(
    "event: message_start\n",
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_s\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":3,\"cache_read_input_tokens\":40,\"output_tokens\":1}}}\n\n",
    "event: ping\ndata: {\"type\":\"ping\"}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Hmm.\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"sg\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\r\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\r\n\r\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_s\",\"name\":\"f\",\"input\":{}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"1}\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":30}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
);

fn chunks(out: &[u8]) -> Vec<String> {
    String::from_utf8(out.to_vec())
        .unwrap()
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_stream_becomes_chunks_whatever_the_read_boundaries() {
    let mut whole = Vec::new();
    StreamDecoder::new(7).push(STREAM.as_bytes(), &mut whole);
    for split in 1..STREAM.len() {
        let mut decoder = StreamDecoder::new(7);
        let mut out = Vec::new();
        for piece in STREAM.as_bytes().chunks(split) {
            decoder.push(piece, &mut out);
        }
        assert_eq!(out, whole, "split {split}");
        assert!(decoder.failure().is_none());
    }
    let events = chunks(&whole);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let parsed: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        parsed
            .iter()
            .all(|c| c["id"] == "msg_s" && c["created"] == 7)
    );
    assert_eq!(parsed[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(parsed[1]["choices"][0]["delta"]["reasoning"], "Hmm.");
    assert_eq!(
        parsed[2]["choices"][0]["delta"]["reasoning_details"][0]["signature"],
        "sg"
    );
    assert_eq!(parsed[3]["choices"][0]["delta"]["content"], "Hi");
    let call = &parsed[4]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(
        (call["index"].as_u64(), call["id"].as_str()),
        (Some(0), Some("toolu_s"))
    );
    let arguments: String = parsed[5..7]
        .iter()
        .map(|c| {
            c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(arguments, "{\"a\":1}");
    assert_eq!(parsed[7]["choices"][0]["finish_reason"], "tool_calls");
    let usage = &parsed[8]["usage"];
    assert_eq!(parsed[8]["choices"], json!([]));
    assert_eq!(usage["prompt_tokens"], 55);
    assert_eq!(usage["completion_tokens"], 30);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 40);
    assert_eq!(usage["prompt_tokens_details"]["cache_write_tokens"], 3);
}

#[test]
fn the_meter_reads_the_translated_stream() {
    let mut decoded = Vec::new();
    StreamDecoder::new(7).push(STREAM.as_bytes(), &mut decoded);
    let prices = Prices::default();
    let pricing = meter::Pricing {
        generation_id: "gen-1",
        prices: &prices,
        ceiling: None,
        is_byok: false,
        model: "anthropic/claude-x",
        provider_name: "Anthropic",
        created: 7,
    };
    let mut relay = meter::SseRelay::new();
    let mut out = Vec::new();
    assert!(relay.push(&decoded, &pricing, &mut out));
    relay.finish(&pricing, &mut out);
    assert!(relay.state.saw_done);
    assert_eq!(
        relay.state.metered.finish_reason.as_deref(),
        Some("tool_calls")
    );
    assert_eq!(relay.state.metered.upstream_id.as_deref(), Some("msg_s"));
    let usage = relay.state.metered.usage.unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (55, 30));
    assert_eq!(usage.cache_write_tokens, 3);
    // Reasoning, text and tool-call chunks each carry generated content (a signature does not).
    assert_eq!(relay.state.metered.content_chunks, 5);
}

#[test]
fn an_error_event_fails_the_stream_after_what_came_before() {
    let cut = STREAM.find("event: content_block_start\r\n").unwrap();
    let mut input = STREAM[..cut].to_owned();
    input.push_str("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");
    input.push_str(&STREAM[cut..]);
    let mut decoder = StreamDecoder::new(0);
    let mut out = Vec::new();
    decoder.push(input.as_bytes(), &mut out);
    assert_eq!(decoder.failure(), Some("Overloaded"));
    let events = chunks(&out);
    assert_eq!(events.len(), 3, "nothing after the error: {events:?}");
    // Later input is ignored.
    let mut more = Vec::new();
    decoder.push(STREAM.as_bytes(), &mut more);
    assert!(more.is_empty());
}

#[test]
fn a_stream_closed_before_message_stop_failed() {
    let cut = STREAM.find("event: message_stop").unwrap();
    let mut decoder = StreamDecoder::new(0);
    decoder.push(&STREAM.as_bytes()[..cut], &mut Vec::new());
    decoder.finish();
    assert!(decoder.failure().is_some());
    let mut whole = StreamDecoder::new(0);
    whole.push(STREAM.as_bytes(), &mut Vec::new());
    whole.finish();
    assert!(whole.failure().is_none());
}

#[test]
fn an_endless_event_overflows() {
    let mut decoder = StreamDecoder::new(0);
    let mut out = Vec::new();
    let big = vec![b'x'; meter::MAX_EVENT_BYTES + 1];
    decoder.push(b"data: ", &mut out);
    decoder.push(&big, &mut out);
    assert!(decoder.overflowed());
}

/// The documented shapes (loadtest/fixtures/anthropic), translated.
#[test]
fn the_documented_message_and_stream_translate() {
    let message = include_str!("../../../../loadtest/fixtures/anthropic/message.json");
    let v: Value = serde_json::from_slice(&completion(message.as_bytes(), 1).unwrap()).unwrap();
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["content"], "Let me check.");
    assert_eq!(msg["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["usage"]["prompt_tokens"], 472 + 2048 + 10240);
    assert_eq!(
        v["usage"]["prompt_tokens_details"]["cache_write_tokens"],
        2048
    );

    let stream = include_str!("../../../../loadtest/fixtures/anthropic/stream.sse");
    let mut out = Vec::new();
    StreamDecoder::new(1).push(stream.as_bytes(), &mut out);
    let events = chunks(&out);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let text: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "Let me check.");
    let error = include_str!("../../../../loadtest/fixtures/anthropic/error.json");
    let mut decoder = StreamDecoder::new(1);
    decoder.push(
        format!("event: error\ndata: {}\n\n", error.trim()).as_bytes(),
        &mut Vec::new(),
    );
    assert_eq!(decoder.failure(), Some("Overloaded"));
}
