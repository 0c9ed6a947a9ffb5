//! Fuzz targets for what reads untrusted bytes: request parsing and rewriting, the SSE relay,
//! non-stream response rewriting and snapshot decoding (`fuzz_targets/`), driven here by
//! random, JSON-shaped input: a few hundred cases each in `make test`; `make fuzz` runs millions
//! in a release build (`PROPTEST_CASES`). `make fuzz-coverage` runs the same targets under
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
