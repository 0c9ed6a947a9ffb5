//! Presets: named request settings a request refers to as `@preset/<slug>`, `<model>@preset/<slug>`
//! or with the `preset` member. A version's config is validated by [`PresetConfig::parse`], on
//! the control plane when it is written and on every dataplane when it arrives; a preset that
//! fails there is set aside, and requests naming it are refused rather than served without it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{Map, Value};
use switchyard_proto::config::v1 as pb;

use super::quarantine::{Quarantine, RecordKind};
use crate::routing::parameters::GATEWAY_MEMBERS;
use crate::routing::preferences::ProviderPreferences;

/// The keys a version's config may hold.
pub const CONFIG_KEYS: [&str; 4] = ["model", "models", "provider", "parameters"];
/// Bounds that keep a preset small enough to ship to every dataplane.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;
pub const MAX_MODELS: usize = 64;
const MAX_MODEL_ID_CHARS: usize = 256;

/// A version's config, validated.
#[derive(Debug, Default)]
pub struct PresetConfig {
    pub model: Option<String>,
    pub models: Vec<String>,
    pub provider: ProviderPreferences,
    /// Request members applied where the request does not set them.
    pub parameters: Vec<(String, Box<RawValue>)>,
}

impl PresetConfig {
    /// `model` (a string) or `models` (a non-empty array of strings) is required; `provider` is a
    /// valid `provider` object; `parameters` are request members the gateway would send to a
    /// provider (not `model`, `messages`, `stream` or the gateway's own). Nothing else is
    /// allowed, so a misspelt key fails loudly instead of being ignored at request time.
    pub fn parse(config: &Value) -> Result<PresetConfig, String> {
        let Value::Object(config) = config else {
            return Err("config must be a JSON object".into());
        };
        if let Some(unknown) = config.keys().find(|k| !CONFIG_KEYS.contains(&k.as_str())) {
            return Err(format!(
                "config has unknown key {unknown:?}; allowed keys are {}",
                CONFIG_KEYS.join(", ")
            ));
        }
        let model = match config.get("model") {
            None | Some(Value::Null) => None,
            Some(m) => Some(model_id("config.model", m)?),
        };
        let models = match config.get("models") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) if !list.is_empty() && list.len() <= MAX_MODELS => list
                .iter()
                .map(|m| model_id("config.models", m))
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(format!(
                    "config.models must be an array of 1 to {MAX_MODELS} model ids"
                ));
            }
        };
        if model.is_none() && models.is_empty() {
            return Err("config must name a model (\"model\") or models (\"models\")".into());
        }
        let provider = match config.get("provider") {
            None | Some(Value::Null) => ProviderPreferences::default(),
            Some(p @ Value::Object(_)) => {
                ProviderPreferences::from_value(p).map_err(|e| format!("config.provider: {e}"))?
            }
            Some(_) => return Err("config.provider must be a JSON object".into()),
        };
        let parameters = match config.get("parameters") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(members)) => parameters(members)?,
            Some(_) => return Err("config.parameters must be a JSON object".into()),
        };
        if Value::Object(config.clone()).to_string().len() > MAX_CONFIG_BYTES {
            return Err(format!("config must be at most {MAX_CONFIG_BYTES} bytes"));
        }
        Ok(PresetConfig {
            model,
            models,
            provider,
            parameters,
        })
    }
}

fn parameters(members: &Map<String, Value>) -> Result<Vec<(String, Box<RawValue>)>, String> {
    let mut out = Vec::with_capacity(members.len());
    for (name, value) in members {
        if GATEWAY_MEMBERS.contains(&name.as_str())
            || matches!(name.as_str(), "messages" | "stream")
        {
            return Err(format!(
                "config.parameters may not set {name:?}: use the config's own keys, or the request"
            ));
        }
        let raw = RawValue::from_string(value.to_string())
            .map_err(|e| format!("config.parameters.{name}: {e}"))?;
        out.push((name.clone(), raw));
    }
    Ok(out)
}

fn model_id(field: &str, model: &Value) -> Result<String, String> {
    match model.as_str() {
        Some(m) if !m.is_empty() && m.trim() == m && m.chars().count() <= MAX_MODEL_ID_CHARS => {
            Ok(m.to_owned())
        }
        _ => Err(format!(
            "{field} must hold model ids: non-empty strings without surrounding spaces, at most \
             {MAX_MODEL_ID_CHARS} characters"
        )),
    }
}

/// A preset as requests use it: its designated version.
#[derive(Debug)]
pub struct Preset {
    pub id: String,
    pub slug: String,
    pub version_id: String,
    pub version: u64,
    pub config: PresetConfig,
    pub system_prompt: Option<String>,
}

/// A preset that could not be applied: requests naming it are refused.
#[derive(Debug)]
pub enum PresetEntry {
    Ready(Arc<Preset>),
    SetAside { reason: String },
}

/// Presets by workspace and slug.
#[derive(Debug, Default)]
pub struct PresetIndex {
    by_workspace: HashMap<String, HashMap<String, PresetEntry>>,
}

impl PresetIndex {
    pub fn get(&self, workspace_id: &str, slug: &str) -> Option<&PresetEntry> {
        self.by_workspace.get(workspace_id)?.get(slug)
    }

    pub fn decode(
        list: Vec<pb::Preset>,
        workspaces: &HashMap<String, super::Workspace>,
        q: &mut Quarantine,
    ) -> PresetIndex {
        let mut index = PresetIndex::default();
        for p in list {
            let failure = match workspaces.get(&p.workspace_id) {
                None => Some(format!("unknown workspace {}", p.workspace_id)),
                Some(w) if w.organization_id != p.organization_id => Some(format!(
                    "workspace {} is not in organization {}",
                    p.workspace_id, p.organization_id
                )),
                Some(_) => None,
            };
            let config = serde_json::from_str::<Value>(&p.config_json)
                .map_err(|e| format!("config is not JSON: {e}"))
                .and_then(|v| PresetConfig::parse(&v));
            let entry = match (failure, config) {
                (None, Ok(config)) => PresetEntry::Ready(Arc::new(Preset {
                    id: p.id.clone(),
                    slug: p.slug.clone(),
                    version_id: p.version_id,
                    version: p.version,
                    config,
                    system_prompt: (!p.system_prompt.trim().is_empty()).then_some(p.system_prompt),
                })),
                (Some(reason), _) | (None, Err(reason)) => {
                    q.record(RecordKind::Preset, &p.id, reason.clone());
                    PresetEntry::SetAside { reason }
                }
            };
            let slugs = index.by_workspace.entry(p.workspace_id).or_default();
            match slugs.entry(p.slug) {
                Entry::Occupied(mut taken) => {
                    // Neither copy can be trusted to be the preset meant.
                    q.record(RecordKind::Preset, &p.id, "duplicate slug in its workspace");
                    taken.insert(PresetEntry::SetAside {
                        reason: "duplicate slug".into(),
                    });
                }
                Entry::Vacant(free) => {
                    free.insert(entry);
                }
            }
        }
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn invalid(config: Value) -> String {
        PresetConfig::parse(&config).unwrap_err()
    }

    #[test]
    fn configs_name_a_model_and_nothing_unknown() {
        let c = PresetConfig::parse(&json!({
            "models": ["a/b", "c/d"],
            "provider": { "order": ["openai"] },
            "parameters": { "temperature": 0.2 },
        }))
        .unwrap();
        assert_eq!(c.models, ["a/b", "c/d"]);
        assert_eq!(c.provider.order.unwrap(), ["openai"]);
        assert_eq!(c.parameters[0].1.get(), "0.2");
        assert!(invalid(json!({})).contains("must name a model"));
        assert!(invalid(json!({ "model": "a/b", "temprature": 1 })).contains("\"temprature\""));
        assert!(invalid(json!({ "models": [] })).contains("config.models"));
        assert!(invalid(json!({ "models": ["a/b", 3] })).contains("config.models"));
        assert!(invalid(json!({ "model": "" })).contains("config.model"));
        assert!(invalid(json!({ "model": "a/b", "provider": "openai" })).contains("provider"));
        assert!(
            invalid(json!({ "model": "a/b", "provider": { "sort": "cheap" } }))
                .contains("config.provider: sort must be one of")
        );
        assert!(invalid(json!({ "model": "a/b", "parameters": [1] })).contains("parameters"));
        assert!(
            invalid(json!({ "model": "a/b", "parameters": { "provider": {} } }))
                .contains("may not set")
        );
        assert!(invalid(json!(["a/b"])).contains("JSON object"));
    }
}
