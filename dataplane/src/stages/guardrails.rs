//! Guardrail evaluation (part of route): which of a model's endpoints a key's guardrails allow.
//! Pure: it reads only its arguments, so it runs the same in tests as on the request path.
//!
//! Several guardrails combine as on OpenRouter (the workspace default, the member's, the key's):
//! - model and provider allowlists intersect: each non-empty one must name the model or the
//!   endpoint's provider (an empty allowlist allows everything);
//! - ignore lists add up: a model or provider on any of them is out;
//! - zero-data-retention flags add up: if any guardrail enforces ZDR for the model's author
//!   group, only ZDR endpoints remain.
//!
//! Model ids are compared exactly with the public id the client asked for.

use std::sync::Arc;

use crate::reject::Reject;
use crate::snapshot::{Endpoint, Guardrail};

/// Why a guardrail refused, with a fixed label for metrics and error metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalReason {
    /// The model is missing from an allowlist.
    ModelNotAllowed,
    /// The model is on an ignore list.
    ModelIgnored,
    /// No endpoint's provider is on an allowlist.
    ProviderNotAllowed,
    /// Every endpoint's provider is on an ignore list.
    ProviderIgnored,
    /// Zero data retention is enforced and no endpoint offers it.
    ZdrRequired,
}

impl RefusalReason {
    pub fn label(self) -> &'static str {
        match self {
            RefusalReason::ModelNotAllowed => "model_not_allowed",
            RefusalReason::ModelIgnored => "model_ignored",
            RefusalReason::ProviderNotAllowed => "provider_not_allowed",
            RefusalReason::ProviderIgnored => "provider_ignored",
            RefusalReason::ZdrRequired => "zdr_required",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            RefusalReason::ModelNotAllowed => "does not allow this model",
            RefusalReason::ModelIgnored => "excludes this model",
            RefusalReason::ProviderNotAllowed => {
                "allows none of the providers that serve this model"
            }
            RefusalReason::ProviderIgnored => "excludes every provider that serves this model",
            RefusalReason::ZdrRequired => {
                "requires zero data retention, which no provider of this model offers"
            }
        }
    }
}

/// A guardrail's refusal of a request; the guardrail named is the first one (most general
/// first) that excludes the model or, when only endpoints are excluded, the first endpoint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("guardrail {guardrail_id} {}", reason.describe())]
pub struct GuardrailRefusal {
    pub guardrail_id: Arc<str>,
    pub reason: RefusalReason,
}

impl From<GuardrailRefusal> for Reject {
    fn from(r: GuardrailRefusal) -> Reject {
        Reject::guardrail(
            &r.guardrail_id,
            r.reason.label(),
            format!(
                "Request blocked by guardrail {}: it {}",
                r.guardrail_id,
                r.reason.describe()
            ),
        )
    }
}

fn refusal(g: &Guardrail, reason: RefusalReason) -> GuardrailRefusal {
    GuardrailRefusal {
        guardrail_id: g.id.clone(),
        reason,
    }
}

fn names(list: &[Box<str>], id: &str) -> bool {
    list.iter().any(|x| **x == *id)
}

/// Whether the catalogue vouches that the endpoint retains nothing.
fn endpoint_is_zdr(endpoint: &Endpoint) -> bool {
    endpoint.data.zero_data_retention
}

/// The indices (into `endpoints`, order kept) of the endpoints `guardrails` allow for
/// `model_id`, or the refusal when they allow none. No guardrails allow everything.
pub fn evaluate(
    guardrails: &[Arc<Guardrail>],
    model_id: &str,
    endpoints: &[Arc<Endpoint>],
) -> Result<Vec<usize>, GuardrailRefusal> {
    for g in guardrails {
        if !g.allowed_models.is_empty() && !names(&g.allowed_models, model_id) {
            return Err(refusal(g, RefusalReason::ModelNotAllowed));
        }
        if names(&g.ignored_models, model_id) {
            return Err(refusal(g, RefusalReason::ModelIgnored));
        }
    }
    let zdr = guardrails.iter().find(|g| g.zdr.applies_to(model_id));
    let mut allowed = Vec::with_capacity(endpoints.len());
    let mut first_refusal = None;
    for (i, e) in endpoints.iter().enumerate() {
        match endpoint_refusal(guardrails, zdr, e) {
            None => allowed.push(i),
            Some(r) => {
                first_refusal.get_or_insert(r);
            }
        }
    }
    match first_refusal {
        Some(r) if allowed.is_empty() => Err(r),
        _ => Ok(allowed),
    }
}

fn endpoint_refusal(
    guardrails: &[Arc<Guardrail>],
    zdr: Option<&Arc<Guardrail>>,
    e: &Endpoint,
) -> Option<GuardrailRefusal> {
    for g in guardrails {
        if !g.allowed_providers.is_empty() && !names(&g.allowed_providers, &e.provider_id) {
            return Some(refusal(g, RefusalReason::ProviderNotAllowed));
        }
        if names(&g.ignored_providers, &e.provider_id) {
            return Some(refusal(g, RefusalReason::ProviderIgnored));
        }
    }
    match zdr {
        Some(g) if !endpoint_is_zdr(e) => Some(refusal(g, RefusalReason::ZdrRequired)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Zdr;
    use switchyard_policy::Prices;

    fn list(ids: &[&str]) -> Box<[Box<str>]> {
        ids.iter().map(|s| Box::from(*s)).collect()
    }

    #[derive(Default)]
    struct Spec<'a> {
        allowed_models: &'a [&'a str],
        ignored_models: &'a [&'a str],
        allowed_providers: &'a [&'a str],
        ignored_providers: &'a [&'a str],
        zdr: Zdr,
    }

    fn guardrail(id: &str, spec: Spec) -> Arc<Guardrail> {
        Arc::new(Guardrail {
            id: Arc::from(id),
            organization_id: Arc::from("o"),
            workspace_id: Arc::from("w"),
            budget: None,
            include_byok: false,
            allowed_models: list(spec.allowed_models),
            ignored_models: list(spec.ignored_models),
            allowed_providers: list(spec.allowed_providers),
            ignored_providers: list(spec.ignored_providers),
            zdr: spec.zdr,
            is_default: false,
        })
    }

    fn endpoint(provider: &str) -> Arc<Endpoint> {
        Arc::new(switchyard_policy::testing::endpoint(
            provider,
            Prices::default(),
            100,
        ))
    }

    fn endpoints(providers: &[&str]) -> Vec<Arc<Endpoint>> {
        providers.iter().map(|p| endpoint(p)).collect()
    }

    fn refused(id: &str, reason: RefusalReason) -> Result<Vec<usize>, GuardrailRefusal> {
        Err(GuardrailRefusal {
            guardrail_id: Arc::from(id),
            reason,
        })
    }

    const MODEL: &str = "openai/gpt-4o";

    #[test]
    fn no_guardrails_and_unrestricted_guardrails_allow_everything() {
        let eps = endpoints(&["a", "b", "c"]);
        assert_eq!(evaluate(&[], MODEL, &eps), Ok(vec![0, 1, 2]));
        let open = guardrail("g", Spec::default());
        assert_eq!(evaluate(&[open], MODEL, &eps), Ok(vec![0, 1, 2]));
        assert_eq!(evaluate(&[], MODEL, &[]), Ok(vec![]));
    }

    #[test]
    fn model_allowlists_intersect() {
        let eps = endpoints(&["a"]);
        let both = guardrail(
            "g1",
            Spec {
                allowed_models: &[MODEL, "mock/fast"],
                ..Spec::default()
            },
        );
        let one = guardrail(
            "g2",
            Spec {
                allowed_models: &["mock/fast"],
                ..Spec::default()
            },
        );
        assert_eq!(
            evaluate(std::slice::from_ref(&both), MODEL, &eps),
            Ok(vec![0])
        );
        // In g1's list but not in g2's: the intersection excludes it, and g2 is to blame.
        assert_eq!(
            evaluate(&[both.clone(), one.clone()], MODEL, &eps),
            refused("g2", RefusalReason::ModelNotAllowed)
        );
        assert_eq!(evaluate(&[both, one], "mock/fast", &eps), Ok(vec![0]));
    }

    #[test]
    fn model_ids_match_exactly() {
        let eps = endpoints(&["a"]);
        let g = guardrail(
            "g",
            Spec {
                allowed_models: &[MODEL],
                ..Spec::default()
            },
        );
        for other in ["openai/gpt-4o-mini", "OPENAI/GPT-4O", "openai/gpt-4", ""] {
            assert_eq!(
                evaluate(std::slice::from_ref(&g), other, &eps),
                refused("g", RefusalReason::ModelNotAllowed),
                "{other}"
            );
        }
    }

    #[test]
    fn model_ignore_lists_add_up() {
        let eps = endpoints(&["a"]);
        let g1 = guardrail(
            "g1",
            Spec {
                ignored_models: &["mock/fast"],
                ..Spec::default()
            },
        );
        let g2 = guardrail(
            "g2",
            Spec {
                ignored_models: &[MODEL],
                ..Spec::default()
            },
        );
        let gs = [g1, g2];
        assert_eq!(
            evaluate(&gs, MODEL, &eps),
            refused("g2", RefusalReason::ModelIgnored)
        );
        assert_eq!(
            evaluate(&gs, "mock/fast", &eps),
            refused("g1", RefusalReason::ModelIgnored)
        );
        assert_eq!(evaluate(&gs, "mock/smart", &eps), Ok(vec![0]));
    }

    #[test]
    fn an_ignored_model_is_refused_even_when_allowed_elsewhere() {
        let eps = endpoints(&["a"]);
        let allow = guardrail(
            "allow",
            Spec {
                allowed_models: &[MODEL],
                ..Spec::default()
            },
        );
        let ignore = guardrail(
            "ignore",
            Spec {
                ignored_models: &[MODEL],
                ..Spec::default()
            },
        );
        assert_eq!(
            evaluate(&[allow, ignore], MODEL, &eps),
            refused("ignore", RefusalReason::ModelIgnored)
        );
    }

    #[test]
    fn provider_allowlists_intersect_and_keep_endpoint_order() {
        let eps = endpoints(&["a", "b", "c", "d"]);
        let g1 = guardrail(
            "g1",
            Spec {
                allowed_providers: &["d", "b", "c"],
                ..Spec::default()
            },
        );
        let g2 = guardrail(
            "g2",
            Spec {
                allowed_providers: &["c", "d", "x"],
                ..Spec::default()
            },
        );
        assert_eq!(
            evaluate(std::slice::from_ref(&g1), MODEL, &eps),
            Ok(vec![1, 2, 3])
        );
        assert_eq!(
            evaluate(&[g1.clone(), g2.clone()], MODEL, &eps),
            Ok(vec![2, 3])
        );
        // Disjoint allowlists leave nothing; the first endpoint's exclusion is reported.
        let g3 = guardrail(
            "g3",
            Spec {
                allowed_providers: &["a"],
                ..Spec::default()
            },
        );
        assert_eq!(
            evaluate(&[g3, g2], MODEL, &eps),
            refused("g2", RefusalReason::ProviderNotAllowed)
        );
        assert_eq!(
            evaluate(&[g1], MODEL, &endpoints(&["a", "x"])),
            refused("g1", RefusalReason::ProviderNotAllowed)
        );
    }

    #[test]
    fn provider_ignore_lists_add_up() {
        let eps = endpoints(&["a", "b", "c"]);
        let g1 = guardrail(
            "g1",
            Spec {
                ignored_providers: &["a"],
                ..Spec::default()
            },
        );
        let g2 = guardrail(
            "g2",
            Spec {
                ignored_providers: &["c"],
                ..Spec::default()
            },
        );
        assert_eq!(
            evaluate(&[g1.clone(), g2.clone()], MODEL, &eps),
            Ok(vec![1])
        );
        let g3 = guardrail(
            "g3",
            Spec {
                ignored_providers: &["b"],
                ..Spec::default()
            },
        );
        assert_eq!(
            evaluate(&[g1, g2, g3], MODEL, &eps),
            refused("g1", RefusalReason::ProviderIgnored)
        );
    }

    #[test]
    fn an_ignored_provider_is_out_even_when_allowed() {
        let eps = endpoints(&["a", "b"]);
        let g = guardrail(
            "g",
            Spec {
                allowed_providers: &["a", "b"],
                ignored_providers: &["a"],
                ..Spec::default()
            },
        );
        assert_eq!(evaluate(&[g], MODEL, &eps), Ok(vec![1]));
    }

    #[test]
    fn zdr_flags_add_up_per_author_group() {
        let eps = endpoints(&["a", "b"]);
        let openai_only = guardrail(
            "zdr-openai",
            Spec {
                zdr: Zdr {
                    openai: true,
                    ..Zdr::default()
                },
                ..Spec::default()
            },
        );
        let open = guardrail("open", Spec::default());
        // Neither endpoint is ZDR, so enforcing it refuses the covered models...
        assert_eq!(
            evaluate(&[open.clone(), openai_only.clone()], MODEL, &eps),
            refused("zdr-openai", RefusalReason::ZdrRequired)
        );
        // ...and keeps only the ZDR endpoints where there are some.
        let mut zdr = switchyard_policy::testing::endpoint("z", Prices::default(), 100);
        zdr.data.zero_data_retention = true;
        let mixed = vec![endpoint("a"), Arc::new(zdr)];
        assert_eq!(
            evaluate(&[open.clone(), openai_only.clone()], MODEL, &mixed),
            Ok(vec![1])
        );
        // Other author groups are not covered by the OpenAI flag.
        for model in [
            "anthropic/claude",
            "google/gemini",
            "x-ai/grok",
            "mock/fast",
        ] {
            assert_eq!(
                evaluate(&[open.clone(), openai_only.clone()], model, &eps),
                Ok(vec![0, 1]),
                "{model}"
            );
        }
        let groups: [(&str, Zdr); 5] = [
            (
                "anthropic/claude",
                Zdr {
                    anthropic: true,
                    ..Zdr::default()
                },
            ),
            (
                "google/gemini",
                Zdr {
                    google: true,
                    ..Zdr::default()
                },
            ),
            (
                "x-ai/grok",
                Zdr {
                    xai: true,
                    ..Zdr::default()
                },
            ),
            (
                "mock/fast",
                Zdr {
                    other: true,
                    ..Zdr::default()
                },
            ),
            (
                "meta-llama/llama",
                Zdr {
                    other: true,
                    ..Zdr::default()
                },
            ),
        ];
        for (model, zdr) in groups {
            let g = guardrail(
                "z",
                Spec {
                    zdr,
                    ..Spec::default()
                },
            );
            assert_eq!(
                evaluate(&[g], model, &eps),
                refused("z", RefusalReason::ZdrRequired),
                "{model}"
            );
        }
    }

    #[test]
    fn model_restrictions_are_checked_before_endpoints() {
        let eps = endpoints(&["a"]);
        let providers = guardrail(
            "providers",
            Spec {
                allowed_providers: &["x"],
                ..Spec::default()
            },
        );
        let models = guardrail(
            "models",
            Spec {
                allowed_models: &["mock/fast"],
                ..Spec::default()
            },
        );
        assert_eq!(
            evaluate(&[providers, models], MODEL, &eps),
            refused("models", RefusalReason::ModelNotAllowed)
        );
    }

    #[test]
    fn refusals_become_403s_naming_the_guardrail() {
        let r: Reject = GuardrailRefusal {
            guardrail_id: Arc::from("gr_1"),
            reason: RefusalReason::ProviderIgnored,
        }
        .into();
        assert_eq!(r.status(), 403);
        let body: serde_json::Value = serde_json::from_slice(&r.body()).unwrap();
        assert_eq!(body["error"]["metadata"]["guardrail_id"], "gr_1");
        assert_eq!(body["error"]["metadata"]["reason"], "provider_ignored");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("guardrail gr_1")
        );
    }

    #[test]
    fn a_snapshots_guardrails_for_a_key_are_evaluated_together() {
        use switchyard_policy::testing::SnapshotBuilder;
        let snapshot = SnapshotBuilder::new()
            .with_default_guardrail(|g| g.ignored_providers = vec!["mock-b".into()])
            .with_guardrail("gr_key", |g| {
                g.allowed_models = vec!["mock/two".into()];
            })
            .with_model("mock/two", &["mock-a", "mock-b", "mock-c"])
            .with_inference_key()
            .assign_guardrail_to_last_key("gr_key")
            .build();
        let key = snapshot.keys.get(&snapshot_key_hash(&snapshot)).unwrap();
        let guardrails = snapshot.guardrails_for(key);
        let model = &snapshot.models["mock/two"];
        let allowed: Vec<&str> = evaluate(&guardrails, "mock/two", &model.endpoints)
            .unwrap()
            .into_iter()
            .map(|i| model.endpoints[i].provider_id.as_str())
            .collect();
        assert_eq!(allowed, ["mock-a", "mock-c"]);
        assert_eq!(
            evaluate(
                &guardrails,
                "mock/small",
                &snapshot.models["mock/small"].endpoints
            ),
            refused("gr_key", RefusalReason::ModelNotAllowed)
        );
    }

    fn snapshot_key_hash(snapshot: &crate::snapshot::Snapshot) -> [u8; 32] {
        assert_eq!(snapshot.keys.len(), 1);
        let hex = switchyard_policy::testing::key_hash(0);
        let mut hash = [0u8; 32];
        hex::decode_to_slice(hex, &mut hash).unwrap();
        hash
    }
}
