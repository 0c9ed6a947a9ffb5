//! Fuzz targets for what reads untrusted bytes: request parsing and rewriting, the SSE relay,
//! non-stream response rewriting, the provider translations (Anthropic's and Gemini's requests,
//! answers and streams), the client dialects' (`/messages`, `/responses`, `/completions`,
//! `/rerank`) and snapshot decoding (`fuzz_targets/`), driven here by random, JSON-shaped input:
//! a few hundred cases each in `make test`; `make fuzz` runs millions in a release build
//! (`PROPTEST_CASES`). `make fuzz-coverage` runs the same targets under
//! libFuzzer, coverage-guided. Every target must return, never panic, whatever the input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "fuzz_targets/mod.rs"]
mod targets;

use proptest::prelude::*;

/// JSON-shaped text: the members a chat request has, with values of any JSON type, so that
/// most inputs get past the first brace.
fn chat_like() -> impl Strategy<Value = Vec<u8>> {
    let member = prop_oneof![
        Just("model".to_owned()),
        Just("models".to_owned()),
        Just("messages".to_owned()),
        Just("stream".to_owned()),
        Just("max_tokens".to_owned()),
        Just("max_completion_tokens".to_owned()),
        Just("n".to_owned()),
        Just("provider".to_owned()),
        Just("preset".to_owned()),
        Just("reasoning".to_owned()),
        Just("tools".to_owned()),
        Just("user".to_owned()),
        Just("session_id".to_owned()),
        Just("zdr".to_owned()),
        "[a-z_]{1,12}",
    ];
    let value = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f}")),
        "\"[^\"\\\\]{0,16}\"".prop_map(|s| s),
        Just(r#"[{"role":"user","content":"hi"}]"#.to_owned()),
        Just(
            r#"[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:x"}}]}]"#
                .to_owned()
        ),
        Just(r#"{"order":["a"],"sort":{"by":"price"},"max_price":{"prompt":1}}"#.to_owned()),
        Just(r#"["m","m:free","@preset/x"]"#.to_owned()),
        "\\PC{0,24}",
    ];
    prop::collection::vec((member, value), 0..10).prop_map(|members| {
        let body: Vec<String> = members
            .into_iter()
            .map(|(k, v)| format!("{k:?}:{v}"))
            .collect();
        format!("{{{}}}", body.join(",")).into_bytes()
    })
}

/// A chat request with what the provider translations read: roles, parts, tool calls, tools.
fn provider_like_request() -> impl Strategy<Value = Vec<u8>> {
    let message = prop_oneof![
        Just(
            r#"{"role":"system","content":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}]}"#
        ),
        Just(
            r#"{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA"}},{"type":"file","file":{"file_data":"data:application/pdf;base64,AA"}}]}"#
        ),
        Just(
            r#"{"role":"assistant","content":null,"tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{"a":1}"}}],"reasoning_details":[{"type":"reasoning.text","text":"x","signature":"s"}]}"#
        ),
        Just(r#"{"role":"tool","tool_call_id":"t","content":[{"type":"text","text":"r"}]}"#),
        Just(
            r#"{"role":"assistant","tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":""}}],"reasoning_details":[{"type":"reasoning.encrypted","id":"t","data":"sig"}]}"#
        ),
        Just(
            r#"{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AA","format":"wav"}}]}"#
        ),
        Just(r#"{"role":"user","content":"hi"}"#),
        Just(r#"{"role":7,"content":{}}"#),
    ];
    let extra = prop_oneof![
        Just(
            r#""tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"required","parallel_tool_calls":false"#
        ),
        Just(r#""reasoning":{"max_tokens":2000},"max_tokens":4000"#),
        Just(r#""reasoning":{"effort":"high"},"max_tokens":18446744073709551615"#),
        Just(
            r#""response_format":{"type":"json_schema","json_schema":{"schema":{"type":"object"}}}"#
        ),
        Just(r#""stop":["a"],"temperature":2,"top_k":-1"#),
        Just(r#""tool_choice":{"type":"function"}"#),
    ];
    (prop::collection::vec(message, 0..6), extra).prop_map(|(messages, extra)| {
        format!(
            r#"{{"model":"m","messages":[{}],{extra}}}"#,
            messages.join(",")
        )
        .into_bytes()
    })
}

/// A whole Anthropic message, with every kind of block.
const ANTHROPIC_MESSAGE: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"c","content":[{"type":"thinking","thinking":"t","signature":"s"},{"type":"redacted_thinking","data":"d"},{"type":"text","text":"hi"},{"type":"tool_use","id":"tu","name":"f","input":{"a":[1]}}],"stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":2,"cache_creation_input_tokens":18446744073709551615,"cache_read_input_tokens":3}}"#;

/// A client body with what the dialect translations read: Anthropic's blocks, Responses items,
/// a legacy prompt.
fn dialect_like_request() -> impl Strategy<Value = Vec<u8>> {
    let member = prop_oneof![
        Just(
            r#""messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA"}},{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"r"}]}]},{"role":"assistant","content":[{"type":"thinking","thinking":"x","signature":"s"},{"type":"tool_use","id":"t","name":"f","input":{}}]}]"#
        ),
        Just(r#""system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}]"#),
        Just(
            r#""input":[{"role":"user","content":[{"type":"input_text","text":"q"},{"type":"input_image","image_url":"data:x"}]},{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":{"a":1}}]"#
        ),
        Just(r#""input":"hi""#),
        Just(r#""prompt":["once"]"#),
        Just(r#""max_tokens":18446744073709551615"#),
        Just(r#""thinking":{"type":"enabled","budget_tokens":-5}"#),
        Just(r#""tool_choice":{"type":"tool"}"#),
        Just(r#""text":{"format":{"type":"json_schema","schema":7}}"#),
        Just(r#""tools":[{"type":"function","name":"f"},{"name":7}]"#),
        Just(r#""model":"m""#),
    ];
    prop::collection::vec(member, 0..6)
        .prop_map(|members| format!("{{{}}}", members.join(",")).into_bytes())
}

/// A whole Gemini response, with every kind of part.
const GEMINI_RESPONSE: &str = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"t","thought":true},{"text":"hi"},{"functionCall":{"name":"f","args":{"a":[1]}},"thoughtSignature":"s"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":18446744073709551615,"candidatesTokenCount":2,"cachedContentTokenCount":3,"thoughtsTokenCount":18446744073709551615},"responseId":"r"}"#;

/// One Anthropic or Gemini stream event, of any type, cut anywhere or whole.
fn provider_event() -> impl Strategy<Value = Vec<u8>> {
    let data = prop_oneof![
        Just(
            r#"{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":5,"cache_read_input_tokens":2}}}"#
        ),
        Just(
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"#
        ),
        Just(
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{"a"}}"#
        ),
        Just(
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#
        ),
        Just(
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}"#
        ),
        Just(
            r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":18446744073709551615}}"#
        ),
        Just(r#"{"type":"message_stop"}"#),
        Just(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
        Just(r#"{"type":"ping"}"#),
        Just(r#"{"candidates":[{"content":{"parts":[{"text":"hi"}]}}],"responseId":"r"}"#),
        Just(
            r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{}}}]},"finishReason":"MAX_TOKENS"}],"usageMetadata":{"promptTokenCount":4}}"#
        ),
        Just(r#"{"promptFeedback":{"blockReason":"SAFETY"}}"#),
        Just(r#"{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}"#),
    ];
    (data, any::<prop::sample::Index>(), any::<bool>()).prop_map(|(data, cut, whole)| {
        let event = format!(
            "event: x
data: {data}

"
        )
        .into_bytes();
        if whole {
            event
        } else {
            event[..cut.index(event.len() + 1)].to_vec()
        }
    })
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..512)
}

proptest! {
    // The cases count comes from `PROPTEST_CASES` (256 by default); a failing input is printed
    // in the test's output rather than saved beside the sources.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn request_parsing_and_rewriting_never_panic(body in prop_oneof![chat_like(), bytes()]) {
        targets::request(&body);
    }

    #[test]
    fn the_sse_relay_never_panics_whatever_the_provider_sends(
        chunks in prop::collection::vec(prop_oneof![
            bytes(),
            "(data: \\{\"id\":\"x\",\"choices\":\\[\\{\"delta\":\\{\"content\":\"\\PC{0,8}\"\\}\\}\\]\\}\n\n){0,3}".prop_map(String::into_bytes),
            Just(b"data: [DONE]\n\n".to_vec()),
            Just(b"data: {\"usage\":{\"prompt_tokens\":18446744073709551615,\"completion_tokens\":5}}\r\n\r\n".to_vec()),
        ], 0..8),
        fail in any::<bool>(),
    ) {
        targets::sse_relay(chunks.iter().map(Vec::as_slice), fail);
    }

    #[test]
    fn provider_request_translation_never_panics(body in prop_oneof![chat_like(), bytes(), provider_like_request()]) {
        targets::provider_request(&body);
    }

    #[test]
    fn provider_response_translation_never_panics(
        chunks in prop::collection::vec(prop_oneof![
            bytes(),
            provider_event(),
            Just(ANTHROPIC_MESSAGE.as_bytes().to_vec()),
            Just(GEMINI_RESPONSE.as_bytes().to_vec()),
        ], 0..8),
        whole in any::<bool>(),
    ) {
        targets::provider_response(chunks.iter().map(Vec::as_slice), whole);
    }

    #[test]
    fn dialect_request_translation_never_panics(body in prop_oneof![dialect_like_request(), bytes()]) {
        targets::dialect_request(&body);
    }

    #[test]
    fn dialect_answer_translation_never_panics(
        chunks in prop::collection::vec(prop_oneof![
            bytes(),
            "(data: \\{\"id\":\"x\",\"choices\":\\[\\{\"delta\":\\{\"content\":\"\\PC{0,8}\"\\}\\}\\]\\}\n\n){0,3}".prop_map(String::into_bytes),
            Just(b"data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"r\",\"tool_calls\":[{\"index\":0,\"id\":\"c\",\"function\":{\"name\":\"f\",\"arguments\":\"{\"}}]},\"finish_reason\":\"length\"}]}\n\n".to_vec()),
            Just(b"data: {\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n".to_vec()),
            Just(b"data: {\"choices\":[{\"finish_reason\":\"error\"}],\"error\":{\"message\":\"cut\"}}\n\n".to_vec()),
            Just(b"data: [DONE]\n\n".to_vec()),
            Just(br#"{"id":"g","choices":[{"index":0,"message":{"content":"hi","tool_calls":[{"id":"c","function":{"name":"f","arguments":"{]"}}]},"finish_reason":"stop"}],"results":[{"index":0},{"index":-1}],"usage":{"prompt_tokens":1}}"#.to_vec()),
        ], 0..8),
        whole in any::<bool>(),
    ) {
        targets::dialect_answer(chunks.iter().map(Vec::as_slice), whole);
    }

    #[test]
    fn response_rewriting_never_panics(body in prop_oneof![chat_like(), bytes(), Just(br#"{"usage":{"prompt_tokens":-1},"choices":7}"#.to_vec())]) {
        targets::response(&body);
    }

    /// A valid snapshot's encoding with bytes flipped, cut or appended: most mutants still
    /// decode as protobuf and reach the validation of each record.
    #[test]
    fn snapshot_decoding_never_panics(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
        tail in bytes(),
    ) {
        let mut message = targets::VALID_SNAPSHOT.clone();
        for (at, byte) in flips {
            let i = at.index(message.len());
            message[i] ^= byte;
        }
        message.truncate(cut.index(message.len() + 1));
        message.extend_from_slice(&tail[..tail.len().min(16)]);
        targets::snapshot(&message);
    }
}

/// Found by the coverage-guided fuzzer: a lone surrogate escape in a message. The request is
/// valid JSON and goes upstream as the client wrote it.
#[test]
fn a_lone_surrogate_escape_goes_upstream_as_written() {
    targets::request(br#"{"messages":[{"\udade":[]}]}"#);
    targets::request(br#"{"model":"m","messages":[{"role":"user","content":"\ud800 \udfff"}]}"#);
}
