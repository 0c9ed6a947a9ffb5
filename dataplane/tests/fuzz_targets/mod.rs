//! The fuzz targets' bodies, one place for both drivers: the property tests of `tests/fuzz.rs`
//! (random inputs, in `make test` and `make fuzz`) and the coverage-guided libFuzzer targets
//! of `fuzz/` (`make fuzz-coverage`). Each reads untrusted bytes and must return, never panic,
//! whatever the input; a broken invariant panics, which both drivers report.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::sync::LazyLock;

use prost::Message;
use switchyard_dataplane::snapshot::{Snapshot, no_resolver};
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
