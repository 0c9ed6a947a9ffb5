use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use super::*;
use crate::stages::resolve::resolve;
use switchyard_policy::routing::Percentiles;
use switchyard_policy::testing::{SnapshotBuilder, USER, key_hash};
use switchyard_proto::config::v1 as pb;

/// Scripted conditions: endpoints down, fleet figures, a sticky endpoint, and a deterministic
/// stream of random numbers.
#[derive(Default)]
struct Fake {
    down: HashSet<String>,
    health: HashMap<String, EndpointHealth>,
    sticky: Option<Arc<str>>,
    seed: Cell<u64>,
    asked: std::cell::RefCell<Vec<String>>,
}

impl Conditions for Fake {
    fn availability(&self, id: &str) -> Availability {
        self.asked.borrow_mut().push(id.to_owned());
        if self.down.contains(id) {
            Availability::Down
        } else {
            Availability::Up
        }
    }
    fn health(&self, id: &str) -> Option<&EndpointHealth> {
        self.health.get(id)
    }
    fn random(&self) -> f64 {
        // xorshift64*: deterministic, well spread.
        let mut x = self.seed.get() | 1;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.seed.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn sticky(&self, _model: &str) -> Option<Arc<str>> {
        self.sticky.clone()
    }
}

fn hash(n: usize) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(key_hash(n), &mut out).unwrap();
    out
}

/// Each attempt as `model:provider:credential` (`-` for the gateway's own credential).
fn attempts(s: &Snapshot, body: &str, conditions: &Fake) -> Result<Vec<String>, Reject> {
    let key = s.keys.get(&hash(0)).unwrap();
    let request = ChatRequest::parse(body.as_bytes()).unwrap();
    let resolved = resolve(s, key, &request)?;
    let planned = route(s, key, &resolved, &request, conditions)?;
    Ok(planned
        .iter()
        .map(|a| {
            let credential = a.credential.map_or("-", |c| &*c.id);
            format!("{}:{}:{credential}", a.model.id, a.endpoint.provider_id)
        })
        .collect())
}

/// The providers tried for `body`, in order.
fn providers(s: &Snapshot, body: &str) -> Vec<String> {
    providers_with(s, body, &Fake::default())
}

fn providers_with(s: &Snapshot, body: &str, conditions: &Fake) -> Vec<String> {
    attempts(s, body, conditions)
        .unwrap()
        .iter()
        .map(|a| a.split(':').nth(1).unwrap().to_owned())
        .collect()
}

fn refusal(s: &Snapshot, body: &str) -> Reject {
    attempts(s, body, &Fake::default()).unwrap_err()
}

const M: &str = r#""model":"m","messages":[]"#;

fn body(extra: &str) -> String {
    if extra.is_empty() {
        format!("{{{M}}}")
    } else {
        format!("{{{M},{extra}}}")
    }
}

/// Model `m` on providers a, b, c (priorities 0, 1, 2), each at its own price.
fn three() -> SnapshotBuilder {
    SnapshotBuilder::new()
        .with_inference_key()
        .with_model("m", &["a", "b", "c"])
}

mod byok {
    use super::*;

    type Edit = fn(&mut pb::ByokCredential);

    fn snapshot(credentials: &[(&str, &str, Edit)]) -> Snapshot {
        let mut builder = SnapshotBuilder::new()
            .with_inference_key()
            .with_model("m", &["a", "b"]);
        for (id, provider, edit) in credentials {
            builder = builder.with_byok(id, provider, edit);
        }
        builder.build()
    }

    fn routes(s: &Snapshot) -> Vec<String> {
        attempts(s, &body(""), &Fake::default())
            .unwrap()
            .iter()
            .map(|a| a.trim_start_matches("m:").to_owned())
            .collect()
    }

    #[test]
    fn without_credentials_every_endpoint_uses_the_gateway_credential() {
        assert_eq!(routes(&snapshot(&[])), ["a:-", "b:-"]);
    }

    #[test]
    fn own_credentials_come_first_then_the_gateway_then_fallbacks() {
        let s = snapshot(&[
            ("fb", "a", |c| c.is_fallback = true),
            ("k2", "a", |c| c.sort_order = 2),
            ("k1", "a", |c| c.sort_order = 1),
        ]);
        // Three attempts at most per model: the fallback and provider b are cut off.
        assert_eq!(routes(&s), ["a:k1", "a:k2", "a:-"]);
        let s = snapshot(&[("fb", "a", |c| c.is_fallback = true)]);
        assert_eq!(routes(&s), ["a:-", "a:fb", "b:-"]);
    }

    #[test]
    fn required_and_byok_only_remove_the_gateway_credential() {
        let s = snapshot(&[("k", "a", |c| c.is_required = true)]);
        assert_eq!(routes(&s), ["a:k", "b:-"]);
        let s = snapshot(&[("k", "a", |c| {
            c.is_required = true;
            c.allowed_models = vec!["other".into()];
        })]);
        assert_eq!(routes(&s), ["a:-", "b:-"]);
        let s = snapshot(&[("k", "a", |c| {
            c.is_byok_only = true;
            c.allowed_models = vec!["other".into()];
        })]);
        assert_eq!(routes(&s), ["b:-"]);
    }

    #[test]
    fn restrictions_on_keys_users_and_models_are_honoured() {
        let s = snapshot(&[
            ("by-key", "a", |c| c.allowed_key_hashes = vec![key_hash(7)]),
            ("by-user", "a", |c| {
                c.allowed_user_ids = vec!["someone-else".into()]
            }),
            ("by-model", "b", |c| c.allowed_models = vec!["m".into()]),
        ]);
        assert_eq!(routes(&s), ["a:-", "b:by-model", "b:-"]);
        let s = snapshot(&[("mine", "a", |c| {
            c.allowed_key_hashes = vec![key_hash(0)];
            c.allowed_user_ids = vec![USER.into()];
        })]);
        assert_eq!(routes(&s)[0], "a:mine");
    }

    #[test]
    fn all_byok_needs_every_attempt_to_be_byok() {
        let s = snapshot(&[
            ("ka", "a", |c| c.is_byok_only = true),
            ("kb", "b", |c| c.is_byok_only = true),
        ]);
        let key = s.keys.get(&hash(0)).unwrap();
        let text = body("");
        let request = ChatRequest::parse(text.as_bytes()).unwrap();
        let resolved = resolve(&s, key, &request).unwrap();
        let both = route(&s, key, &resolved, &request, &Fake::default()).unwrap();
        assert!(all_byok(&both));
        assert_eq!(both[0].authorization(), Some("Bearer sk-ka"));
        let plain = snapshot(&[]);
        let resolved = resolve(&plain, key, &request).unwrap();
        assert!(!all_byok(
            &route(&plain, key, &resolved, &request, &Fake::default()).unwrap()
        ));
        assert!(!all_byok(&[]));
    }

    #[test]
    fn unusable_credentials_are_never_sent_but_keep_their_restrictions() {
        let s = snapshot(&[("bad", "a", |c| c.api_key = "line\nbreak".into())]);
        assert_eq!(routes(&s), ["a:-", "b:-"]);
        let s = snapshot(&[("bad", "a", |c| c.allowed_key_hashes = vec!["zz".into()])]);
        assert_eq!(routes(&s), ["a:-", "b:-"]);
        let s = snapshot(&[("bad", "a", |c| {
            c.api_key = "line\nbreak".into();
            c.is_byok_only = true;
        })]);
        assert_eq!(routes(&s), ["b:-"]);
        let s = SnapshotBuilder::new()
            .with_inference_key()
            .with_model("m", &["a", "b"])
            .with_byok("k", "a", |c| c.workspace_id = "nowhere".into())
            .build();
        assert_eq!(routes(&s), ["a:-", "b:-"]);
    }

    #[test]
    fn no_usable_endpoint_is_404_and_a_guardrail_403() {
        let s = SnapshotBuilder::new()
            .with_inference_key()
            .with_model("m", &["a"])
            .with_byok("k", "a", |c| {
                c.is_byok_only = true;
                c.allowed_key_hashes = vec![key_hash(9)];
            })
            .build();
        let reject = refusal(&s, &body(""));
        assert_eq!(reject.status(), 404);
        assert_eq!(reject.metadata.unwrap()["reason"], "byok_required");
        let s = SnapshotBuilder::new()
            .with_inference_key()
            .with_default_guardrail(|g| g.ignored_providers = vec!["mock".into()])
            .build();
        let reject = refusal(&s, r#"{"model":"mock/small","messages":[]}"#);
        assert_eq!(reject.status(), 403);
    }
}

#[test]
fn order_puts_named_providers_first_and_allow_fallbacks_false_keeps_only_them() {
    let s = three().build();
    assert_eq!(providers(&s, &body("")), ["a", "b", "c"]);
    assert_eq!(
        providers(&s, &body(r#""provider":{"order":["c","b"]}"#)),
        ["c", "b", "a"]
    );
    assert_eq!(
        providers(
            &s,
            &body(r#""provider":{"order":["c"],"allow_fallbacks":false}"#)
        ),
        ["c"]
    );
    // Names match the slug, the display name or the tag, in any case.
    let s = three()
        .edit_endpoints(|e| e[1].tag = "b/turbo".into())
        .build();
    assert_eq!(
        providers(&s, &body(r#""provider":{"order":["B"]}"#)),
        ["b", "a", "c"]
    );
    assert_eq!(
        providers(&s, &body(r#""provider":{"order":["b/turbo"]}"#)),
        ["b", "a", "c"]
    );
}

#[test]
fn allow_fallbacks_false_without_order_keeps_the_first_endpoint() {
    let s = three().build();
    assert_eq!(
        providers(&s, &body(r#""provider":{"allow_fallbacks":false}"#)),
        ["a"]
    );
}

#[test]
fn only_and_ignore_narrow_and_say_why_when_nothing_is_left() {
    let s = three().build();
    assert_eq!(
        providers(&s, &body(r#""provider":{"only":["c","a"]}"#)),
        ["a", "c"]
    );
    assert_eq!(
        providers(&s, &body(r#""provider":{"ignore":["a"]}"#)),
        ["b", "c"]
    );
    let reject = refusal(&s, &body(r#""provider":{"only":["z"]}"#));
    assert_eq!(reject.status(), 404);
    let metadata = reject.metadata.unwrap();
    assert_eq!(metadata["reason"], "only");
    assert_eq!(metadata["excluded"]["b"], "only");
    let reject = refusal(
        &s,
        &body(r#""provider":{"only":["a"],"ignore":["a","b","c"]}"#),
    );
    assert_eq!(reject.metadata.unwrap()["reason"], "no_endpoint_matches");
}

#[test]
fn quantizations_data_collection_and_zdr_filter_on_the_catalogue() {
    let s = three()
        .edit_endpoints(|e| {
            e[0].quantization = "fp8".into();
            e[1].quantization = "bf16".into();
            e[0].retains_prompts = true;
            e[1].trains_on_prompts = true;
            e[2].zero_data_retention = true;
        })
        .build();
    assert_eq!(
        providers(
            &s,
            &body(r#""provider":{"quantizations":["bf16","unknown"]}"#)
        ),
        ["b", "c"]
    );
    assert_eq!(
        providers(&s, &body(r#""provider":{"data_collection":"deny"}"#)),
        ["c"]
    );
    assert_eq!(providers(&s, &body(r#""provider":{"zdr":true}"#)), ["c"]);
    assert_eq!(providers(&s, &body(r#""zdr":true"#)), ["c"]);
    let reject = refusal(&s, &body(r#""provider":{"zdr":true,"only":["a","b"]}"#));
    assert_eq!(reject.metadata.unwrap()["excluded"]["a"], "zdr");
}

#[test]
fn the_organizations_privacy_settings_narrow_every_request() {
    let s = three()
        .edit_endpoints(|e| {
            e[0].retains_prompts = true;
            e[2].zero_data_retention = true;
        })
        .edit(|r| r.organizations[0].deny_data_collection = true)
        .build();
    assert_eq!(providers(&s, &body("")), ["b", "c"]);
    // A request cannot loosen it.
    assert_eq!(
        providers(&s, &body(r#""provider":{"data_collection":"allow"}"#)),
        ["b", "c"]
    );
    let s = three()
        .edit_endpoints(|e| e[2].zero_data_retention = true)
        .edit(|r| r.organizations[0].enforce_zdr = true)
        .build();
    assert_eq!(providers(&s, &body(r#""provider":{"zdr":false}"#)), ["c"]);
    let s = three()
        .edit(|r| r.organizations[0].enforce_zdr = true)
        .build();
    let reject = refusal(&s, &body(""));
    assert_eq!(reject.metadata.unwrap()["reason"], "organization_zdr");
}

#[test]
fn max_price_compares_per_million_tokens_and_refuses_unknown_prices() {
    // a: $1/$2 per million (the builder's), b: $3/$6, c: unpriced completion.
    let s = three()
        .edit_endpoints(|e| {
            e[1].price = Some(pb::Price {
                prompt: "0.000003".into(),
                completion: "0.000006".into(),
                ..Default::default()
            });
            e[2].price = Some(pb::Price {
                prompt: "0.000001".into(),
                ..Default::default()
            });
        })
        .build();
    assert_eq!(
        providers(&s, &body(r#""provider":{"max_price":{"prompt":2}}"#)),
        ["a", "c"]
    );
    assert_eq!(
        providers(
            &s,
            &body(r#""provider":{"max_price":{"prompt":"3","completion":"2"}}"#)
        ),
        ["a"]
    );
    let reject = refusal(&s, &body(r#""provider":{"max_price":{"prompt":0.5}}"#));
    assert_eq!(reject.metadata.unwrap()["reason"], "max_price");
}

#[test]
fn require_parameters_keeps_endpoints_that_honour_every_parameter_set() {
    let s = three()
        .edit_endpoints(|e| {
            e[0].supported_parameters = vec!["temperature".into()];
            e[1].supported_parameters = vec![
                "temperature".into(),
                "response_format".into(),
                "top_k".into(),
            ];
        })
        .build();
    let asks = r#""temperature":0.2,"top_k":4"#;
    // Without require_parameters every endpoint may serve (unsupported members are dropped).
    assert_eq!(providers(&s, &body(asks)), ["a", "b", "c"]);
    assert_eq!(
        providers(
            &s,
            &body(&format!(
                r#"{asks},"provider":{{"require_parameters":true}}"#
            ))
        ),
        ["b"]
    );
    // A JSON-schema response format needs structured outputs, which only c (the standard set)
    // declares.
    assert_eq!(
        providers(
            &s,
            &body(
                r#""response_format":{"type":"json_schema","json_schema":{}},"provider":{"require_parameters":true}"#
            )
        ),
        ["c"]
    );
    let reject = refusal(
        &s,
        &body(r#""min_p":0.1,"provider":{"require_parameters":true}"#),
    );
    assert_eq!(reject.metadata.unwrap()["reason"], "require_parameters");
    // A preset's parameters are the request's too.
    let s = three()
        .edit_endpoints(|e| e[1].supported_parameters = vec!["top_k".into()])
        .with_preset(
            "k",
            switchyard_policy::testing::WORKSPACE,
            r#"{"model":"m","parameters":{"top_k":2},"provider":{"require_parameters":true}}"#,
        )
        .build();
    assert_eq!(
        providers(&s, r#"{"model":"@preset/k","messages":[]}"#),
        ["b"]
    );
}

#[test]
fn tools_are_always_required_other_parameters_only_when_asked() {
    let s = three()
        .edit_endpoints(|e| {
            e[0].supported_parameters = vec!["temperature".into()];
            e[2].supported_parameters = vec!["temperature".into()];
        })
        .build();
    // An endpoint that cannot call tools would answer without them: it is never chosen.
    let tools = r#""tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"temperature":0.1,"top_k":3"#;
    assert_eq!(providers(&s, &body(tools)), ["b"]);
    // top_k is dropped where unsupported unless require_parameters asks otherwise.
    assert_eq!(providers(&s, &body(r#""top_k":3"#)), ["a", "b", "c"]);
    let s = three()
        .edit_endpoints(|e| {
            for e in e.iter_mut() {
                e.supported_parameters = vec!["temperature".into()];
            }
        })
        .build();
    let reject = refusal(
        &s,
        &body(r#""tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required""#),
    );
    assert_eq!(reject.status(), 404);
    assert_eq!(reject.metadata.unwrap()["reason"], "tools");
}

#[test]
fn a_request_too_long_for_an_endpoints_context_goes_elsewhere_or_is_refused() {
    let s = three()
        .edit_endpoints(|e| e[0].context_length = 1_000)
        .build();
    // max_tokens alone passes a's context.
    let long = body(r#""max_tokens":2000"#);
    assert_eq!(providers(&s, &long), ["b", "c"]);
    assert_eq!(providers(&s, &body(r#""max_tokens":500"#)), ["a", "b", "c"]);
    // A prompt of about 2,000 tokens (10 KB at five bytes a token) does too.
    let prompt = format!(
        r#""messages":[{{"role":"user","content":"{}"}}]"#,
        "x".repeat(10_000)
    );
    let big = format!(r#"{{"model":"m",{prompt}}}"#);
    assert_eq!(providers(&s, &big), ["b", "c"]);
    let s = three()
        .edit_endpoints(|e| {
            for e in e.iter_mut() {
                e.context_length = 1_000;
            }
        })
        .build();
    let reject = refusal(&s, &long);
    assert_eq!(reject.status(), 400);
    assert_eq!(reject.metadata.unwrap()["reason"], "context_length");
}

fn figures(latency_p50: f64, throughput_p50: f64) -> EndpointHealth {
    let p = |v: f64| Percentiles {
        p50: v,
        p75: v,
        p90: v,
        p99: v,
    };
    EndpointHealth {
        latency_ms: Some(p(latency_p50)),
        throughput: Some(p(throughput_p50)),
        ..EndpointHealth::default()
    }
}

#[test]
fn sort_ranks_by_price_throughput_or_latency() {
    let s = three()
        .edit_endpoints(|e| {
            e[0].price = Some(pb::Price {
                prompt: "0.000005".into(),
                completion: "0.000005".into(),
                ..Default::default()
            });
        })
        .build();
    let mut fake = Fake::default();
    fake.health.insert("a|a-model".into(), figures(900.0, 90.0));
    fake.health.insert("b|b-model".into(), figures(300.0, 30.0));
    // c has no figures yet: it ranks after those that have.
    assert_eq!(
        providers_with(&s, &body(r#""provider":{"sort":"price"}"#), &fake),
        ["b", "c", "a"]
    );
    assert_eq!(
        providers_with(&s, &body(r#""provider":{"sort":"throughput"}"#), &fake),
        ["a", "b", "c"]
    );
    assert_eq!(
        providers_with(&s, &body(r#""provider":{"sort":{"by":"latency"}}"#), &fake),
        ["b", "a", "c"]
    );
    // The suffixes are the same sorts.
    let nitro = r#"{"model":"m:nitro","messages":[]}"#;
    assert_eq!(providers_with(&s, nitro, &fake), ["a", "b", "c"]);
    let floor = r#"{"model":"m:floor","messages":[]}"#;
    assert_eq!(providers_with(&s, floor, &fake), ["b", "c", "a"]);
}

#[test]
fn preferred_latency_and_throughput_move_endpoints_that_miss_them_back() {
    let s = three().build();
    let mut fake = Fake::default();
    fake.health
        .insert("a|a-model".into(), figures(4000.0, 10.0));
    fake.health.insert("b|b-model".into(), figures(500.0, 80.0));
    assert_eq!(
        providers_with(
            &s,
            &body(r#""provider":{"preferred_max_latency":1}"#),
            &fake
        ),
        ["b", "c", "a"]
    );
    assert_eq!(
        providers_with(
            &s,
            &body(r#""provider":{"preferred_min_throughput":{"p90":50}}"#),
            &fake
        ),
        ["b", "c", "a"]
    );
}

#[test]
fn a_fallback_models_endpoint_that_meets_the_preferences_goes_before_one_that_misses_them() {
    let s = SnapshotBuilder::new()
        .with_inference_key()
        .with_model("m", &["a"])
        .with_model("n", &["x"])
        .build();
    let mut fake = Fake::default();
    fake.health
        .insert("a|a-model".into(), figures(4000.0, 10.0));
    fake.health.insert("x|x-model".into(), figures(200.0, 90.0));
    let prefer =
        r#"{"model":"m","models":["n"],"provider":{"preferred_max_latency":1},"messages":[]}"#;
    assert_eq!(attempts(&s, prefer, &fake).unwrap(), ["n:x:-", "m:a:-"]);
    // Without preferences the models keep their order.
    let plain = r#"{"model":"m","models":["n"],"messages":[]}"#;
    assert_eq!(attempts(&s, plain, &fake).unwrap(), ["m:a:-", "n:x:-"]);
}

#[test]
fn endpoints_in_outage_go_last_whatever_the_order() {
    let s = three().build();
    let fake = Fake {
        down: ["a|a-model".to_owned()].into(),
        ..Fake::default()
    };
    assert_eq!(providers_with(&s, &body(""), &fake), ["b", "c", "a"]);
    assert_eq!(
        providers_with(&s, &body(r#""provider":{"order":["a","c"]}"#), &fake),
        ["c", "b", "a"]
    );
    // With no fallbacks allowed, the one endpoint named is still tried.
    assert_eq!(
        providers_with(
            &s,
            &body(r#""provider":{"order":["a"],"allow_fallbacks":false}"#),
            &fake
        ),
        ["a"]
    );
    // Each endpoint's availability is asked once per request.
    let asked = fake.asked.borrow().clone();
    assert_eq!(asked.len(), 3 + 3 + 1);
}

#[test]
fn default_balancing_weighs_by_inverse_square_price_within_a_priority_tier() {
    // Both in one tier; a costs $3 per million tokens (prompt + completion), b twice that:
    // a should come first four times in five.
    let s = SnapshotBuilder::new()
        .with_inference_key()
        .with_model("m", &["a", "b"])
        .edit_endpoints(|e| {
            e[1].priority = 0;
            e[1].price = Some(pb::Price {
                prompt: "0.000002".into(),
                completion: "0.000004".into(),
                ..Default::default()
            });
        })
        .build();
    let fake = Fake {
        seed: Cell::new(0x9E37_79B9_7F4A_7C15),
        ..Fake::default()
    };
    let runs = 10_000;
    let first_a = (0..runs)
        .filter(|_| providers_with(&s, &body(""), &fake)[0] == "a")
        .count();
    let share = first_a as f64 / runs as f64;
    assert!((0.77..0.83).contains(&share), "a first in {share} of draws");
    // Tiers are kept: a lower priority value always comes first.
    let tiers = three().build();
    for _ in 0..50 {
        assert_eq!(providers_with(&tiers, &body(""), &fake), ["a", "b", "c"]);
    }
}

#[test]
fn a_sticky_endpoint_goes_first_unless_it_is_down_or_the_request_orders() {
    let s = three().build();
    let mut fake = Fake {
        sticky: Some(Arc::from("c|c-model")),
        ..Fake::default()
    };
    assert_eq!(providers_with(&s, &body(""), &fake), ["c", "a", "b"]);
    assert_eq!(
        providers_with(&s, &body(r#""provider":{"order":["b"]}"#), &fake),
        ["b", "a", "c"]
    );
    fake.down.insert("c|c-model".into());
    assert_eq!(providers_with(&s, &body(""), &fake), ["a", "b", "c"]);
}

#[test]
fn model_fallbacks_follow_each_model_and_skip_one_nothing_qualifies_for() {
    let s = three()
        .with_model("n", &["x", "y"])
        .edit_endpoints(|e| e[1].zero_data_retention = true)
        .build();
    let both = r#"{"model":"m","models":["n"],"messages":[]}"#;
    assert_eq!(
        attempts(&s, both, &Fake::default()).unwrap(),
        ["m:a:-", "m:b:-", "m:c:-", "n:x:-", "n:y:-"]
    );
    // No endpoint of m is ZDR: n serves.
    let zdr = r#"{"model":"m","models":["n"],"zdr":true,"messages":[]}"#;
    assert_eq!(attempts(&s, zdr, &Fake::default()).unwrap(), ["n:y:-"]);
    // Nothing qualifies anywhere: the first model's reason.
    let none = r#"{"model":"m","models":["n"],"provider":{"only":["q"]},"messages":[]}"#;
    let reject = attempts(&s, none, &Fake::default()).unwrap_err();
    assert_eq!(reject.metadata.unwrap()["model"], "m");
}

#[test]
fn partition_none_ranks_every_models_endpoints_together() {
    let s = SnapshotBuilder::new()
        .with_inference_key()
        .with_model("m", &["a", "b"])
        .with_model("n", &["x"])
        .edit_endpoints(|e| {
            e[0].price = Some(pb::Price {
                prompt: "0.0000001".into(),
                completion: "0.0000001".into(),
                ..Default::default()
            })
        })
        .build();
    let by_model = r#"{"model":"m","models":["n"],"provider":{"sort":"price"},"messages":[]}"#;
    assert_eq!(
        attempts(&s, by_model, &Fake::default()).unwrap(),
        ["m:a:-", "m:b:-", "n:x:-"]
    );
    let together = r#"{"model":"m","models":["n"],"provider":{"sort":{"by":"price","partition":"none"}},"messages":[]}"#;
    assert_eq!(
        attempts(&s, together, &Fake::default()).unwrap(),
        ["n:x:-", "m:a:-", "m:b:-"]
    );
}

#[test]
fn free_keeps_only_endpoints_that_charge_nothing() {
    let s = three()
        .edit_endpoints(|e| {
            e[1].price = Some(pb::Price {
                prompt: "0".into(),
                completion: "0".into(),
                ..Default::default()
            })
        })
        .build();
    assert_eq!(providers(&s, r#"{"model":"m:free","messages":[]}"#), ["b"]);
}

#[test]
fn guardrails_narrow_before_preferences_and_a_refused_model_falls_back() {
    let s = three()
        .with_model("n", &["x"])
        .with_default_guardrail(|g| g.ignored_models = vec!["m".into()])
        .build();
    let reject = refusal(&s, &body(""));
    assert_eq!(reject.status(), 403);
    let r = attempts(
        &s,
        r#"{"model":"m","models":["n"],"messages":[]}"#,
        &Fake::default(),
    );
    assert_eq!(r.unwrap(), ["n:x:-"]);
    // A guardrail's ZDR enforcement keeps the ZDR endpoints.
    let s = three()
        .edit_endpoints(|e| e[1].zero_data_retention = true)
        .with_default_guardrail(|g| g.enforce_zdr_other = true)
        .build();
    assert_eq!(providers(&s, &body("")), ["b"]);
}
