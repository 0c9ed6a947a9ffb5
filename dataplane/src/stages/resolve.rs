//! resolve: what the request asks for, in the snapshot's terms: the models that may serve it
//! (`model`, then the `models` fallbacks), the preset it uses, and the routing preferences that
//! apply.
//!
//! - A preset is named by `model: "@preset/<slug>"`, `model: "<model>@preset/<slug>"` or the
//!   `preset` member; it must be one of the key's workspace. The request's own members override
//!   the preset's: its `model` and `models`, and each field of its `provider` object.
//! - The `:nitro` and `:floor` suffixes sort by throughput and by price (where the request's
//!   `provider.sort` says nothing); `:free` keeps only endpoints that charge nothing, unless the
//!   catalogue has a model of that very id.
//! - Without any model, the workspace's `default_text_model` serves; the workspace's
//!   `default_provider_sort` applies where neither the request nor the preset sorts.

use std::sync::Arc;

use serde_json::json;
use switchyard_policy::routing::{ProviderPreferences, Sort, SortBy};

use crate::reject::{Kind, Reject};
use crate::snapshot::{ApiKey, Model, Preset, PresetEntry, Snapshot};
use crate::stages::request::ChatRequest;

/// One model the request may be served by.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'s> {
    pub model: &'s Arc<Model>,
    /// `:free`: only endpoints that charge nothing.
    pub free_only: bool,
}

#[derive(Debug)]
pub struct Resolved<'s> {
    /// In the order they are tried; never empty.
    pub candidates: Vec<Candidate<'s>>,
    pub preferences: ProviderPreferences,
    pub preset: Option<&'s Arc<Preset>>,
}

const PRESET_MARK: &str = "@preset/";

/// The resolve stage.
pub fn resolve<'s>(
    snapshot: &'s Snapshot,
    key: &ApiKey,
    request: &ChatRequest<'_>,
) -> Result<Resolved<'s>, Reject> {
    let (model, named_preset) = match request.model.as_deref() {
        Some(text) => split_preset(text),
        None => (None, None),
    };
    let slug = match (named_preset, request.preset.as_deref()) {
        (Some(a), Some(b)) if a != b => {
            return Err(Reject::new(
                Kind::BadRequest,
                format!("The request names two presets: {a} in `model` and {b} in `preset`"),
            ));
        }
        (a, b) => a.or(b),
    };
    let preset = match slug {
        None => None,
        Some(slug) => Some(preset(snapshot, key, slug)?),
    };
    let workspace = snapshot.workspaces.get(&*key.workspace_id);

    // The request's model and fallbacks, each where it speaks, else the preset's.
    let mut names: Vec<&str> = Vec::with_capacity(1 + request.models.len());
    if let Some(m) = model.or_else(|| preset.and_then(|p| p.config.model.as_deref())) {
        names.push(m);
    }
    if request.models.is_empty() {
        if let Some(p) = preset {
            names.extend(p.config.models.iter().map(String::as_str));
        }
    } else {
        names.extend(request.models.iter().map(String::as_str));
    }
    if names.is_empty()
        && let Some(default) = workspace.and_then(|w| w.default_text_model.as_deref())
    {
        names.push(default);
    }
    if names.is_empty() {
        return Err(Reject::new(Kind::BadRequest, "`model` is required"));
    }

    let mut suffix_sort = None;
    let mut candidates: Vec<Candidate<'s>> = Vec::with_capacity(names.len());
    let mut set_aside = None;
    for name in names {
        if name.contains(PRESET_MARK) {
            return Err(Reject::new(
                Kind::BadRequest,
                format!("`models` holds model ids, not presets ({name})"),
            ));
        }
        let (id, suffix) = split_suffix(snapshot, name);
        match suffix {
            Some(Suffix::Nitro) => {
                suffix_sort.get_or_insert(SortBy::Throughput);
            }
            Some(Suffix::Floor) => {
                suffix_sort.get_or_insert(SortBy::Price);
            }
            _ => {}
        }
        match snapshot.models.get(id) {
            Some(model) => {
                if !candidates.iter().any(|c| Arc::ptr_eq(c.model, model)) {
                    candidates.push(Candidate {
                        model,
                        free_only: suffix == Some(Suffix::Free),
                    });
                }
            }
            None if snapshot.quarantine.model(id).is_some() => {
                set_aside.get_or_insert(id);
            }
            None => {
                return Err(Reject::new(
                    Kind::UnknownModel,
                    format!("{name} is not a valid model ID"),
                )
                .with_metadata(json!({ "model": name })));
            }
        }
    }
    if candidates.is_empty() {
        let model = set_aside.unwrap_or_default();
        return Err(Reject::new(
            Kind::ModelUnavailable,
            format!("{model} is temporarily unavailable: its configuration could not be applied"),
        )
        .with_metadata(json!({ "model": model, "reason": "configuration_quarantined" })));
    }

    let mut mine = request.provider.clone();
    if mine.sort.is_none()
        && let Some(by) = suffix_sort
    {
        mine.sort = Some(Sort {
            by,
            partition_by_model: true,
        });
    }
    // Top-level `zdr` and `provider.zdr` both ask for it; either is enough.
    if request.zdr == Some(true) {
        mine.zdr = Some(true);
    } else if mine.zdr.is_none() {
        mine.zdr = request.zdr;
    }
    let defaults = ProviderPreferences {
        sort: workspace.and_then(|w| w.default_sort),
        ..ProviderPreferences::default()
    };
    let preferences = match preset {
        Some(p) => mine.over(&p.config.provider).over(&defaults),
        None => mine.over(&defaults),
    };
    Ok(Resolved {
        candidates,
        preferences,
        preset,
    })
}

/// `"<model>@preset/<slug>"` → (model, slug); `"@preset/<slug>"` → (None, slug).
fn split_preset(text: &str) -> (Option<&str>, Option<&str>) {
    match text.find(PRESET_MARK) {
        Some(at) => {
            let model = &text[..at];
            let slug = &text[at + PRESET_MARK.len()..];
            ((!model.is_empty()).then_some(model), Some(slug))
        }
        None => (Some(text), None),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Suffix {
    Nitro,
    Floor,
    Free,
}

/// A routing suffix, unless the catalogue has a model of the full id.
fn split_suffix<'n>(snapshot: &Snapshot, name: &'n str) -> (&'n str, Option<Suffix>) {
    if snapshot.models.contains_key(name) {
        return (name, None);
    }
    for (suffix, kind) in [
        (":nitro", Suffix::Nitro),
        (":floor", Suffix::Floor),
        (":free", Suffix::Free),
    ] {
        if let Some(id) = name.strip_suffix(suffix) {
            return (id, Some(kind));
        }
    }
    (name, None)
}

fn preset<'s>(snapshot: &'s Snapshot, key: &ApiKey, slug: &str) -> Result<&'s Arc<Preset>, Reject> {
    match snapshot.presets.get(&key.workspace_id, slug) {
        Some(PresetEntry::Ready(preset)) => Ok(preset),
        Some(PresetEntry::SetAside { .. }) => Err(Reject::new(
            Kind::ModelUnavailable,
            format!(
                "Preset {slug} is temporarily unavailable: its configuration could not be applied"
            ),
        )
        .with_metadata(json!({ "preset": slug, "reason": "configuration_quarantined" }))),
        None => Err(Reject::new(
            Kind::NotFound,
            format!("Preset {slug} not found in this key's workspace"),
        )
        .with_metadata(json!({ "preset": slug }))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_policy::testing::{SnapshotBuilder, WORKSPACE};

    fn snapshot() -> Snapshot {
        SnapshotBuilder::new()
            .with_inference_key()
            .with_model("a/one", &["p", "q"])
            .with_model("a/two", &["q"])
            .with_model("a/two:free", &["q"])
            .with_preset(
                "fast",
                WORKSPACE,
                r#"{"models":["a/two"],"provider":{"sort":"latency","order":["q"]}}"#,
            )
            .build()
    }

    fn resolved<'s>(s: &'s Snapshot, body: &str) -> Result<Resolved<'s>, Reject> {
        let key = s.keys.iter().next().unwrap();
        let request = ChatRequest::parse(body.as_bytes()).unwrap();
        resolve(s, key, &request)
    }

    fn ids(r: &Resolved<'_>) -> Vec<String> {
        r.candidates
            .iter()
            .map(|c| format!("{}{}", c.model.id, if c.free_only { "(free)" } else { "" }))
            .collect()
    }

    #[test]
    fn model_then_fallbacks_without_duplicates() {
        let s = snapshot();
        let r = resolved(
            &s,
            r#"{"model":"a/one","models":["a/two","a/one"],"messages":[]}"#,
        )
        .unwrap();
        assert_eq!(ids(&r), ["a/one", "a/two"]);
        let r = resolved(&s, r#"{"models":["a/two"],"messages":[]}"#).unwrap();
        assert_eq!(ids(&r), ["a/two"]);
        let e = resolved(&s, r#"{"models":["a/two","nope/x"],"messages":[]}"#).unwrap_err();
        assert_eq!(e.kind, Kind::UnknownModel);
        let e = resolved(&s, r#"{"messages":[]}"#).unwrap_err();
        assert_eq!(e.message, "`model` is required");
    }

    #[test]
    fn presets_in_every_form_and_the_request_wins_where_it_speaks() {
        let s = snapshot();
        for body in [
            r#"{"model":"@preset/fast","messages":[]}"#,
            r#"{"preset":"fast","messages":[]}"#,
        ] {
            let r = resolved(&s, body).unwrap();
            assert_eq!(ids(&r), ["a/two"]);
            assert_eq!(r.preset.unwrap().slug, "fast");
            assert_eq!(r.preferences.sort.unwrap().by, SortBy::Latency);
        }
        let r = resolved(
            &s,
            r#"{"model":"a/one@preset/fast","provider":{"order":["p"]},"messages":[]}"#,
        )
        .unwrap();
        assert_eq!(ids(&r), ["a/one", "a/two"]);
        assert_eq!(r.preferences.order.as_deref().unwrap(), ["p"]);
        assert_eq!(r.preferences.sort.unwrap().by, SortBy::Latency);
        let e = resolved(&s, r#"{"model":"@preset/nope","messages":[]}"#).unwrap_err();
        assert_eq!(e.status(), 404);
        let e = resolved(
            &s,
            r#"{"model":"@preset/fast","preset":"other","messages":[]}"#,
        )
        .unwrap_err();
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn a_preset_of_another_workspace_is_not_found() {
        let s = SnapshotBuilder::new()
            .with_inference_key()
            .with_workspace("ws-2")
            .with_preset("theirs", "ws-2", r#"{"model":"mock/small"}"#)
            .build();
        let e = resolved(&s, r#"{"model":"@preset/theirs","messages":[]}"#).unwrap_err();
        assert_eq!(e.status(), 404);
    }

    #[test]
    fn a_preset_set_aside_is_unavailable() {
        let s = SnapshotBuilder::new()
            .with_inference_key()
            .with_preset(
                "bad",
                WORKSPACE,
                r#"{"model":"mock/small","provider":{"sort":"x"}}"#,
            )
            .build();
        let e = resolved(&s, r#"{"preset":"bad","messages":[]}"#).unwrap_err();
        assert_eq!(e.status(), 503);
    }

    #[test]
    fn suffixes_sort_or_keep_free_endpoints() {
        let s = snapshot();
        let r = resolved(&s, r#"{"model":"a/one:nitro","messages":[]}"#).unwrap();
        assert_eq!(r.preferences.sort.unwrap().by, SortBy::Throughput);
        let r = resolved(&s, r#"{"model":"a/one:floor","messages":[]}"#).unwrap();
        assert_eq!(r.preferences.sort.unwrap().by, SortBy::Price);
        let r = resolved(
            &s,
            r#"{"model":"a/one:floor","provider":{"sort":"latency"},"messages":[]}"#,
        )
        .unwrap();
        assert_eq!(r.preferences.sort.unwrap().by, SortBy::Latency);
        let r = resolved(&s, r#"{"model":"a/one:free","messages":[]}"#).unwrap();
        assert_eq!(ids(&r), ["a/one(free)"]);
        // A catalogue model of that very id is that model.
        let r = resolved(&s, r#"{"model":"a/two:free","messages":[]}"#).unwrap();
        assert_eq!(ids(&r), ["a/two:free"]);
    }

    #[test]
    fn workspace_defaults_apply_where_nothing_else_speaks() {
        let s = SnapshotBuilder::new()
            .with_inference_key()
            .edit(|r| {
                r.workspaces[0].default_text_model = "mock/small".into();
                r.workspaces[0].default_provider_sort = "throughput".into();
            })
            .build();
        let r = resolved(&s, r#"{"messages":[]}"#).unwrap();
        assert_eq!(ids(&r), ["mock/small"]);
        assert_eq!(r.preferences.sort.unwrap().by, SortBy::Throughput);
        let r = resolved(&s, r#"{"messages":[],"provider":{"sort":"price"}}"#).unwrap();
        assert_eq!(r.preferences.sort.unwrap().by, SortBy::Price);
    }

    #[test]
    fn top_level_zdr_joins_the_provider_object() {
        let s = snapshot();
        let r = resolved(
            &s,
            r#"{"model":"a/one","zdr":true,"provider":{"zdr":false},"messages":[]}"#,
        )
        .unwrap();
        assert_eq!(r.preferences.zdr, Some(true));
    }

    #[test]
    fn a_model_set_aside_is_unavailable_not_unknown() {
        let s = SnapshotBuilder::new()
            .with_inference_key()
            .with_model("m", &["a"])
            .edit(|r| r.models[1].endpoints[0].base_url = "nope://".into())
            .build();
        let e = resolved(&s, r#"{"model":"m","messages":[]}"#).unwrap_err();
        assert_eq!(e.kind, Kind::ModelUnavailable);
        assert_eq!(e.status(), 503);
        // Among fallbacks, it is skipped.
        let r = resolved(&s, r#"{"model":"m","models":["mock/small"],"messages":[]}"#).unwrap();
        assert_eq!(ids(&r), ["mock/small"]);
    }
}
