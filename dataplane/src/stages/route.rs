//! route: which provider endpoints may serve the request, in which order, and with whose
//! credential.
//!
//! The key's guardrails narrow the model's endpoints first (`guardrails`); the rest come in the
//! catalogue's priority order. Where the key's workspace holds its own credentials for an
//! endpoint's provider (BYOK), OpenRouter's order applies on that provider: the workspace's
//! credentials first, then the gateway's own, then credentials marked `is_fallback`.
//! `is_required` takes the gateway's credential away for the models a credential covers,
//! `is_byok_only` for every model of that provider. Health- and price-aware ordering will
//! reorder the endpoints without changing the callers.

use std::sync::Arc;

use serde_json::json;

use crate::reject::{Kind, Reject};
use crate::snapshot::{ApiKey, ByokCredential, Endpoint, Model, Snapshot};
use crate::stages::guardrails;

/// Upper bound on attempts per request, so one request cannot walk a long catalogue.
pub const MAX_ATTEMPTS: usize = 3;

/// One try: an endpoint and the credential to send it.
#[derive(Clone, Copy, Debug)]
pub struct Attempt<'a> {
    pub endpoint: &'a Arc<Endpoint>,
    /// The organization's own credential; `None` sends the gateway's.
    pub credential: Option<&'a ByokCredential>,
}

impl Attempt<'_> {
    /// Whether the provider bills this attempt to the organization directly.
    pub fn is_byok(&self) -> bool {
        self.credential.is_some()
    }

    /// The `Authorization` value sent upstream.
    pub fn authorization(&self) -> Option<&str> {
        match self.credential {
            Some(c) => Some(&c.authorization),
            None => self.endpoint.authorization.as_deref(),
        }
    }
}

/// The route stage: the attempts for a request for `model` by `key`, or why there are none (a
/// guardrail refuses the model or every endpoint; only the organization's own keys may be used
/// and none applies).
pub fn route<'a>(
    snapshot: &'a Snapshot,
    key: &ApiKey,
    model: &'a Model,
) -> Result<Vec<Attempt<'a>>, Reject> {
    let allowed = guardrails::evaluate(&snapshot.guardrails_for(key), &model.id, &model.endpoints)
        .map_err(Reject::from)?;
    let attempts = plan(
        model,
        &allowed,
        key,
        snapshot.byok.of_workspace(&key.workspace_id),
    );
    if attempts.is_empty() {
        return Err(Reject::new(
            Kind::NotFound,
            format!(
                "No endpoint can serve {}: its providers take only the organization's own keys, and none applies to this request",
                model.id
            ),
        )
        .with_metadata(json!({ "reason": "byok_required" })));
    }
    Ok(attempts)
}

/// The attempts for a request for `model` by `key`, over the endpoints at the `allowed` indices;
/// `byok` is the key's workspace's credentials. Empty when no endpoint may be used.
pub fn plan<'a>(
    model: &'a Model,
    allowed: &[usize],
    key: &ApiKey,
    byok: &'a [ByokCredential],
) -> Vec<Attempt<'a>> {
    let mut attempts = Vec::with_capacity(MAX_ATTEMPTS);
    for endpoint in allowed.iter().filter_map(|&i| model.endpoints.get(i)) {
        if attempts.len() >= MAX_ATTEMPTS {
            break;
        }
        let own = of_provider(byok, &endpoint.provider_id);
        let usable = |fallback: bool| {
            own.iter()
                .filter(move |c| c.is_fallback == fallback && c.applies_to(&model.id, key))
                .map(|c| Attempt {
                    endpoint,
                    credential: Some(c),
                })
        };
        attempts.extend(usable(false));
        // An unusable credential still counts here: dropping it must not loosen anything.
        let shared_allowed = !own.iter().any(|c| c.excludes_gateway_for(&model.id));
        if shared_allowed {
            attempts.push(Attempt {
                endpoint,
                credential: None,
            });
        }
        attempts.extend(usable(true));
    }
    attempts.truncate(MAX_ATTEMPTS);
    attempts
}

/// The run of `credentials` (sorted by provider) for `provider`.
fn of_provider<'a>(credentials: &'a [ByokCredential], provider: &str) -> &'a [ByokCredential] {
    let start = credentials.partition_point(|c| &*c.provider_id < provider);
    let len = credentials[start..].partition_point(|c| &*c.provider_id == provider);
    &credentials[start..start + len]
}

/// Whether every attempt is BYOK, so that limits which leave BYOK spend out need reserve
/// nothing for this request.
pub fn all_byok(attempts: &[Attempt<'_>]) -> bool {
    !attempts.is_empty() && attempts.iter().all(Attempt::is_byok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_policy::testing::{SnapshotBuilder, USER, key_hash};
    use switchyard_proto::config::v1 as pb;

    type Edit = fn(&mut pb::ByokCredential);

    /// A snapshot with model `m` on providers `a` then `b`, the inference key, and credentials
    /// `(id, provider, edit)` in its workspace.
    fn snapshot(credentials: &[(&str, &str, Edit)]) -> Snapshot {
        let mut builder = SnapshotBuilder::new()
            .with_inference_key()
            .with_model("m", &["a", "b"]);
        for (id, provider, edit) in credentials {
            builder = builder.with_byok(id, provider, edit);
        }
        builder.build()
    }

    fn attempts<'a>(snapshot: &'a Snapshot, allowed: &[usize]) -> Vec<Attempt<'a>> {
        let key = snapshot.keys.get(&hash(0)).unwrap();
        let byok = snapshot.byok.of_workspace(&key.workspace_id);
        plan(&snapshot.models["m"], allowed, key, byok)
    }

    /// Each attempt as `provider:credential`, `-` for the gateway's own.
    fn routes(snapshot: &Snapshot) -> Vec<String> {
        attempts(snapshot, &[0, 1])
            .iter()
            .map(|a| {
                let credential = a.credential.map_or("-", |c| &*c.id);
                format!("{}:{credential}", a.endpoint.provider_id)
            })
            .collect()
    }

    fn hash(n: usize) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex::decode_to_slice(key_hash(n), &mut out).unwrap();
        out
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
        // Three attempts at most: the fallback and provider b are cut off.
        assert_eq!(routes(&s), ["a:k1", "a:k2", "a:-"]);
        let s = snapshot(&[("fb", "a", |c| c.is_fallback = true)]);
        assert_eq!(routes(&s), ["a:-", "a:fb", "b:-"]);
    }

    #[test]
    fn required_and_byok_only_remove_the_gateway_credential() {
        let s = snapshot(&[("k", "a", |c| c.is_required = true)]);
        assert_eq!(routes(&s), ["a:k", "b:-"]);
        // Required for another model only: this model may still use the gateway's credential.
        let s = snapshot(&[("k", "a", |c| {
            c.is_required = true;
            c.allowed_models = vec!["other".into()];
        })]);
        assert_eq!(routes(&s), ["a:-", "b:-"]);
        // BYOK-only applies to every model, even one the credential does not cover.
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
        let both = attempts(&s, &[0, 1]);
        assert!(all_byok(&both));
        assert_eq!(both[0].authorization(), Some("Bearer sk-ka"));
        let plain = snapshot(&[]);
        assert!(!all_byok(&attempts(&plain, &[0, 1])));
        assert!(!all_byok(&[]));
    }

    #[test]
    fn unusable_credentials_are_never_sent_but_keep_their_restrictions() {
        let s = snapshot(&[("bad", "a", |c| c.api_key = "line\nbreak".into())]);
        assert_eq!(routes(&s), ["a:-", "b:-"]);
        let s = snapshot(&[("bad", "a", |c| c.allowed_key_hashes = vec!["zz".into()])]);
        assert_eq!(routes(&s), ["a:-", "b:-"]);
        // A BYOK-only credential that cannot be used leaves provider a with no way in: the
        // gateway's own key is not sent in its place (and not billed to credits).
        let s = snapshot(&[("bad", "a", |c| {
            c.api_key = "line\nbreak".into();
            c.is_byok_only = true;
        })]);
        assert_eq!(routes(&s), ["b:-"]);
        // A credential of an unknown workspace applies to nobody.
        let s = SnapshotBuilder::new()
            .with_inference_key()
            .with_model("m", &["a", "b"])
            .with_byok("k", "a", |c| c.workspace_id = "nowhere".into())
            .build();
        assert_eq!(routes(&s), ["a:-", "b:-"]);
    }

    #[test]
    fn the_stage_refuses_when_no_endpoint_is_left() {
        let s = SnapshotBuilder::new()
            .with_inference_key()
            .with_model("m", &["a"])
            .with_byok("k", "a", |c| {
                c.is_byok_only = true;
                c.allowed_key_hashes = vec![key_hash(9)];
            })
            .build();
        let key = s.keys.get(&hash(0)).unwrap();
        let reject = route(&s, key, &s.models["m"]).unwrap_err();
        assert_eq!(reject.status(), 404);
        assert_eq!(reject.metadata.unwrap()["reason"], "byok_required");
        let s = SnapshotBuilder::new()
            .with_inference_key()
            .with_default_guardrail(|g| g.ignored_providers = vec!["mock".into()])
            .build();
        let key = s.keys.get(&hash(0)).unwrap();
        let reject = route(&s, key, &s.models["mock/small"]).unwrap_err();
        assert_eq!(reject.status(), 403);
    }
}
