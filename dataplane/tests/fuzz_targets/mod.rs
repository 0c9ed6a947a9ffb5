//! The fuzz targets' bodies, one place for both drivers: the property tests of `tests/fuzz.rs`
//! (random inputs, in `make test` and `make fuzz`) and the coverage-guided libFuzzer targets
//! of `fuzz/` (`make fuzz-coverage`). Each reads untrusted bytes and must return, never panic,
//! whatever the input; a broken invariant panics, which both drivers report.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::sync::LazyLock;

use prost::Message;
use switchyard_dataplane::dialect::{self, Dialect};
use switchyard_dataplane::providers::{StreamDecoder, anthropic, gemini};
use switchyard_dataplane::snapshot::{Api, Snapshot, no_resolver};
use switchyard_dataplane::stages::forward::{Shaping, upstream_body};
use switchyard_dataplane::stages::meter::{Pricing, SseRelay, rewrite_completion};
use switchyard_dataplane::stages::request::ChatRequest;
use switchyard_dataplane::stages::route::Attempt;
use switchyard_policy::testing::SnapshotBuilder;
use switchyard_policy::{Money, Prices};
use switchyard_proto::config::v1 as pb;

static SNAPSHOT: LazyLock<Snapshot> = LazyLock::new(|| {
    SnapshotBuilder::new()
        .with_inference_key()
        .with_model("m", &["a"])
        .build()
});

/// The encoding of a snapshot with a key, a limited key, a guardrail, a preset and BYOK.
pub static VALID_SNAPSHOT: LazyLock<Vec<u8>> = LazyLock::new(|| {
    SnapshotBuilder::new()
        .with_inference_key()
        .with_model("m", &["a", "b"])
        .with_default_guardrail(|g| g.ignored_models = vec!["x".into()])
        .with_preset(
            "p",
            switchyard_policy::testing::WORKSPACE,
            r#"{"model":"m","parameters":{"top_k":2}}"#,
        )
        .with_byok("c1", "a", |c| c.is_byok_only = true)
        .message()
        .encode_to_vec()
});

static PRICES: Prices = Prices {
    prompt: Some(Money::from_pico(1_000)),
    completion: Some(Money::from_pico(2_000)),
    request: None,
    image: None,
    input_cache_read: None,
    input_cache_write: None,
    internal_reasoning: None,
};

fn pricing() -> Pricing<'static> {
    Pricing {
        generation_id: "gen-1",
        prices: &PRICES,
        ceiling: Some(Money::from_pico(1_000_000)),
        is_byok: false,
        model: "m",
        provider_name: "A",
        created: 1,
    }
}

/// A client's request body: parsed, then rewritten for a provider, which always gets one JSON
/// object. Checked for JSON's grammar, not decoded: what the client wrote inside its messages
/// goes upstream verbatim, lone surrogate escapes (`"\udade"`) included, which the grammar
/// allows and serde_json's `Value` refuses.
pub fn request(body: &[u8]) {
    if let Ok(request) = ChatRequest::parse(body) {
        let model = &SNAPSHOT.models["m"];
        let attempt = Attempt {
            model,
            endpoint: &model.endpoints[0],
            credential: None,
        };
        let out = upstream_body(&request, Shaping::default(), &attempt);
        let parsed = serde_json::from_slice::<Box<serde_json::value::RawValue>>(&out);
        assert!(
            parsed.is_ok_and(|raw| raw.get().starts_with('{')),
            "the upstream body is not a JSON object: {}",
            String::from_utf8_lossy(&out)
        );
    }
}

/// A client's request translated for each provider format (Anthropic's Messages API, Gemini):
/// refused with a reason, or one JSON object with the turns the format requires.
pub fn provider_request(body: &[u8]) {
    let Ok(request) = ChatRequest::parse(body) else {
        return;
    };
    let model = &SNAPSHOT.models["m"];
    let endpoint = &model.endpoints[0];
    let attempt = Attempt {
        model,
        endpoint,
        credential: None,
    };
    let openai = upstream_body(&request, Shaping::default(), &attempt);
    if let Ok(out) = anthropic::request(&openai, &request, endpoint) {
        let v: serde_json::Value = serde_json::from_slice(&out).expect("the translation is JSON");
        assert!(v["messages"].is_array(), "no turns: {v}");
        assert!(v["max_tokens"].is_u64(), "no max_tokens: {v}");
    }
    if let Ok(out) = gemini::request(&openai, &request, endpoint) {
        let v: serde_json::Value = serde_json::from_slice(&out).expect("the translation is JSON");
        assert!(v["contents"].is_array(), "no contents: {v}");
    }
}

/// A provider's answer, whole or as a stream arriving in `chunks`, translated to OpenAI's and
/// relayed, for each provider format: every event a translation makes is a JSON chunk or
/// `[DONE]`, and a whole answer becomes a JSON object the meter rewrites.
pub fn provider_response<'c>(chunks: impl IntoIterator<Item = &'c [u8]> + Clone, whole: bool) {
    let pricing = pricing();
    if whole {
        let body: Vec<u8> = chunks.into_iter().flatten().copied().collect();
        for out in [
            anthropic::completion(&body, 1),
            gemini::completion(&body, 1),
        ]
        .into_iter()
        .flatten()
        {
            assert!(
                rewrite_completion(&out, &pricing).is_some(),
                "not an object"
            );
        }
        return;
    }
    for api in [Api::AnthropicMessages, Api::Gemini] {
        let mut decoder = StreamDecoder::new(api, 1);
        let mut relay = SseRelay::new();
        let (mut decoded, mut out) = (Vec::new(), Vec::new());
        let mut relay_events = |decoded: &[u8], out: &mut Vec<u8>| {
            for event in String::from_utf8_lossy(decoded)
                .split("\n\n")
                .filter(|e| !e.is_empty())
            {
                let data = event.strip_prefix("data: ").expect("a data event");
                assert!(
                    data == "[DONE]" || serde_json::from_str::<serde_json::Value>(data).is_ok(),
                    "not a JSON chunk: {data}"
                );
            }
            relay.push(decoded, &pricing, out)
        };
        let mut open = true;
        for chunk in chunks.clone() {
            let events = decoder.decode(chunk, &mut decoded);
            if !relay_events(events, &mut out) || decoder.overflowed() {
                open = false;
                break;
            }
        }
        if open {
            let rest = decoder.finish(&mut decoded);
            relay_events(rest, &mut out);
        }
        relay.finish(&pricing, &mut out);
    }
}

/// A client's body in each dialect (`/messages`, `/responses`, `/completions`): refused with a
/// 400, or a chat request the stages parse.
pub fn dialect_request(body: &[u8]) {
    for translated in [
        dialect::anthropic::request(body),
        dialect::responses::request(body),
        dialect::completions::request(body),
    ] {
        match translated {
            Ok(chat) => {
                let parsed = serde_json::from_slice::<serde_json::Value>(&chat);
                assert!(parsed.is_ok_and(|v| v.is_object()), "not a JSON object");
            }
            Err(reject) => assert_eq!(reject.status(), 400),
        }
    }
}

/// The meter's output (chunks, whole events or not) rendered in each dialect, and a whole answer
/// translated: never a panic, and every event a dialect writes carries JSON data.
pub fn dialect_answer<'c>(chunks: impl IntoIterator<Item = &'c [u8]> + Clone, whole: bool) {
    let request = ChatRequest::parse(
        br#"{"model":"m","messages":[],"tools":[{"type":"function","function":{"name":"f"}}]}"#,
    )
    .expect("a fixed request");
    let dialects = [
        Dialect::AnthropicMessages,
        Dialect::OpenAiResponses,
        Dialect::OpenAiCompletions,
        Dialect::Rerank,
    ];
    if whole {
        let body: Vec<u8> = chunks.into_iter().flatten().copied().collect();
        for dialect in dialects {
            let _ = dialect.completion(body.clone(), &request);
        }
        return;
    }
    for dialect in dialects {
        let mut encoder = dialect.stream(&request);
        for chunk in chunks.clone() {
            let out = encoder.render(chunk.to_vec());
            if matches!(
                dialect,
                Dialect::AnthropicMessages | Dialect::OpenAiResponses
            ) {
                for event in String::from_utf8_lossy(&out)
                    .split("\n\n")
                    .filter(|e| !e.is_empty())
                {
                    let data = event.split_once("\ndata: ").map(|(_, d)| d);
                    assert!(
                        data.is_some_and(|d| serde_json::from_str::<serde_json::Value>(d).is_ok()),
                        "not an event with JSON data: {event}"
                    );
                }
            }
        }
    }
}

/// A provider's stream, as it arrives in `chunks`, relayed to a client; then ended cleanly or
/// with an error.
pub fn sse_relay<'c>(chunks: impl IntoIterator<Item = &'c [u8]>, fail: bool) {
    let pricing = pricing();
    let mut relay = SseRelay::new();
    let mut out = Vec::new();
    for chunk in chunks {
        if !relay.push(chunk, &pricing, &mut out) {
            break;
        }
    }
    if fail {
        relay.fail(&pricing, &mut out)
    } else {
        relay.finish(&pricing, &mut out)
    }
}

/// A provider's non-stream response, rewritten with the gateway's id and cost.
pub fn response(body: &[u8]) {
    let _ = rewrite_completion(body, &pricing());
}

/// A snapshot message from the control plane (or the disk), decoded record by record.
pub fn snapshot(message: &[u8]) {
    if let Ok(decoded) = pb::Snapshot::decode(message) {
        let _ = Snapshot::decode(decoded, &no_resolver);
    }
}
