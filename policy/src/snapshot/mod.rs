//! The snapshot's domain model and its validation: everything a request needs, decoded from the
//! control plane's protobuf record by record.
//!
//! Decoding never fails as a whole for one bad record: the record is set aside (see
//! [`quarantine`]) with its reason, whatever depends on it fails closed, and everything else is
//! published. The control plane runs the same decoder over what it is about to publish, so it
//! sees exactly what every dataplane will set aside.

pub mod byok;
pub mod catalogue;
pub mod guardrails;
pub mod keys;
pub mod presets;
pub mod quarantine;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use switchyard_proto::config::v1 as pb;

pub use byok::{ByokCredential, ByokIndex};
pub use catalogue::{
    Addresses, Api, DataPolicy, Endpoint, Model, Resolver, STANDARD_PARAMETERS, Upstream,
    health_id, lookup, no_resolver, render_models, system_resolver,
};
pub use guardrails::{Budget, Guardrail, Policies, Zdr};
pub use keys::{ApiKey, KeyIndex, KeyKind, parse_hash};
pub use presets::{Preset, PresetConfig, PresetEntry, PresetIndex};
pub use quarantine::{Blocked, Quarantine, Quarantined, RecordKind};

use crate::money::Money;
use crate::pricing::Prices;
use crate::routing::Quota;
use crate::routing::preferences::{Sort, SortBy};
use crate::window::Window;
use keys::Interner;

/// Everything the request path reads, immutable once published. Every part is an `Arc` so a
/// later partial update (say, provider health) can share the rest.
#[derive(Debug)]
pub struct Snapshot {
    pub version: u64,
    /// The control plane store this version was numbered by: versions compare only within one.
    pub epoch: String,
    pub keys: Arc<KeyIndex>,
    pub organizations: Arc<HashMap<String, Organization>>,
    pub workspaces: Arc<HashMap<String, Workspace>>,
    pub models: Arc<HashMap<String, Arc<Model>>>,
    /// Guardrails, their assignments and workspace budgets; read through
    /// `Snapshot::guardrails_for` and `Snapshot::limits_for`.
    pub policies: Arc<Policies>,
    /// Organizations' own provider credentials, by workspace.
    pub byok: Arc<ByokIndex>,
    /// Presets' designated versions, by workspace and slug.
    pub presets: Arc<PresetIndex>,
    /// Records set aside, and what they block.
    pub quarantine: Arc<Quarantine>,
    /// `GET /api/v1/models`, rendered once per snapshot rather than once per request.
    pub models_document: Bytes,
    /// The control plane marks each organization's Redis counters as rebuilt from the ledger;
    /// admission on Redis then needs the mark (`counters::rebuilt_key`).
    pub spend_counters_marked: bool,
}

#[derive(Debug)]
pub struct Organization {
    pub id: String,
    pub name: String,
    /// Every credit ever granted (the ledger's sum).
    pub credits: Money,
    /// Privacy settings: only zero-data-retention endpoints; only endpoints that neither
    /// retain nor train on prompts.
    pub enforce_zdr: bool,
    pub deny_data_collection: bool,
}

#[derive(Debug)]
pub struct Workspace {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    /// Routing defaults, for requests that say nothing.
    pub default_sort: Option<Sort>,
    pub default_text_model: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot has no resources")]
    MissingResources,
    #[error(
        "key delta {from_version}→{version} of epoch {epoch} does not follow the served version {served} of epoch {served_epoch}"
    )]
    Gap {
        epoch: String,
        from_version: u64,
        version: u64,
        served_epoch: String,
        served: u64,
    },
}

impl Snapshot {
    /// Decodes a snapshot, setting aside each record that fails validation. Provider hosts are
    /// resolved with `resolve` (which may block: call this off the async executor).
    pub fn decode(message: pb::Snapshot, resolve: Resolver<'_>) -> Result<Snapshot, SnapshotError> {
        let resources = message.resources.ok_or(SnapshotError::MissingResources)?;
        let mut q = Quarantine::default();
        let mut interner = Interner::default();

        let organizations = organizations(resources.organizations, &mut q);
        let workspaces = workspaces(resources.workspaces, &organizations, &mut q);
        let keys = key_index(resources.keys, &workspaces, &mut interner, &mut q);
        let models = models(resources.models, &resources.providers, resolve, &mut q);
        let policies = guardrails::decode(
            guardrails::PolicyParts {
                guardrails: resources.guardrails,
                key_guardrails: resources.key_guardrails,
                member_guardrails: resources.member_guardrails,
                workspace_budgets: resources.workspace_budgets,
            },
            &organizations,
            &workspaces,
            &keys,
            &mut interner,
            &mut q,
        );
        let byok = ByokIndex::decode(resources.byok_credentials, &workspaces, &mut q);
        let presets = PresetIndex::decode(resources.presets, &workspaces, &mut q);
        let models_document = render_models(&models);
        Ok(Snapshot {
            version: message.version,
            epoch: message.epoch,
            spend_counters_marked: message.spend_counters_marked,
            keys: Arc::new(keys),
            organizations: Arc::new(organizations),
            workspaces: Arc::new(workspaces),
            models: Arc::new(models),
            policies: Arc::new(policies),
            byok: Arc::new(byok),
            presets: Arc::new(presets),
            quarantine: Arc::new(q),
            models_document,
        })
    }
}

impl Snapshot {
    /// This snapshot with a key delta applied: the changed keys decoded and validated exactly
    /// as in a whole snapshot (against this snapshot's workspaces), everything else shared.
    /// Refused unless the delta follows this very version of this epoch.
    pub fn apply_key_delta(&self, delta: pb::KeyDelta) -> Result<Snapshot, SnapshotError> {
        if delta.epoch != self.epoch || delta.from_version != self.version {
            return Err(SnapshotError::Gap {
                epoch: delta.epoch,
                from_version: delta.from_version,
                version: delta.version,
                served_epoch: self.epoch.clone(),
                served: self.version,
            });
        }
        let mut q = Quarantine::clone(&self.quarantine);
        let changed: Vec<([u8; 32], &str)> = delta
            .removed
            .iter()
            .chain(delta.upserted.iter().map(|k| &k.hash))
            .filter_map(|text| parse_hash(text).map(|hash| (hash, text.as_str())))
            .collect();
        q.forget_keys(&changed);
        let removed: Vec<[u8; 32]> = changed.iter().map(|(hash, _)| *hash).collect();
        let mut interner = Interner::default();
        let upserted = decode_keys(delta.upserted, &self.workspaces, &mut interner, &mut q);
        Ok(Snapshot {
            version: delta.version,
            epoch: delta.epoch,
            keys: Arc::new(self.keys.with_changes(upserted, &removed)),
            quarantine: Arc::new(q),
            organizations: self.organizations.clone(),
            workspaces: self.workspaces.clone(),
            models: self.models.clone(),
            policies: self.policies.clone(),
            byok: self.byok.clone(),
            presets: self.presets.clone(),
            models_document: self.models_document.clone(),
            spend_counters_marked: self.spend_counters_marked,
        })
    }
}

/// How many records carry each id: a duplicated id makes every copy suspect.
fn counts<'a>(ids: impl Iterator<Item = &'a str>) -> HashMap<&'a str, usize> {
    let mut out: HashMap<&str, usize> = HashMap::new();
    for id in ids {
        *out.entry(id).or_default() += 1;
    }
    out
}

/// Organizations. One whose credits cannot be read, or whose id is duplicated, is kept (its
/// workspaces and keys still resolve) with no credits, and blocked.
fn organizations(list: Vec<pb::Organization>, q: &mut Quarantine) -> HashMap<String, Organization> {
    let counts: HashMap<String, usize> = counts(list.iter().map(|o| o.id.as_str()))
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let mut out = HashMap::with_capacity(list.len());
    for o in list {
        let mut failure = None;
        if counts.get(&o.id).copied().unwrap_or(0) > 1 {
            failure = Some("duplicate organization id".to_owned());
        }
        let credits = match Money::parse_optional(&o.credits_usd) {
            Ok(c) => c.unwrap_or(Money::ZERO),
            Err(e) => {
                failure.get_or_insert(format!("credits: {e}"));
                Money::ZERO
            }
        };
        if let Some(reason) = failure {
            q.record(RecordKind::Organization, &o.id, reason);
            q.block_organization(Arc::from(o.id.as_str()), RecordKind::Organization, &o.id);
        }
        out.entry(o.id.clone()).or_insert(Organization {
            id: o.id,
            name: o.name,
            credits,
            enforce_zdr: o.enforce_zdr,
            deny_data_collection: o.deny_data_collection,
        });
    }
    out
}

/// Workspaces. One of no known organization, or with a duplicated id, is kept and blocked.
fn workspaces(
    list: Vec<pb::Workspace>,
    organizations: &HashMap<String, Organization>,
    q: &mut Quarantine,
) -> HashMap<String, Workspace> {
    let counts: HashMap<String, usize> = counts(list.iter().map(|w| w.id.as_str()))
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let mut out = HashMap::with_capacity(list.len());
    for w in list {
        let failure = if counts.get(&w.id).copied().unwrap_or(0) > 1 {
            Some("duplicate workspace id".to_owned())
        } else if !organizations.contains_key(&w.organization_id) {
            Some(format!("unknown organization {}", w.organization_id))
        } else {
            None
        };
        if let Some(reason) = failure {
            q.record(RecordKind::Workspace, &w.id, reason);
            q.block_workspace(Arc::from(w.id.as_str()), RecordKind::Workspace, &w.id);
        }
        // A routing default is a preference, not a restriction: one that cannot be read is
        // recorded and left out, and the workspace is served with OpenRouter's defaults.
        let default_sort = match w.default_provider_sort.as_str() {
            "" => None,
            by => match SortBy::parse(by) {
                Ok(by) => Some(Sort {
                    by,
                    partition_by_model: true,
                }),
                Err(reason) => {
                    q.record(
                        RecordKind::WorkspaceDefaults,
                        &w.id,
                        format!("default_provider_sort: {reason}"),
                    );
                    None
                }
            },
        };
        out.entry(w.id.clone()).or_insert(Workspace {
            id: w.id,
            organization_id: w.organization_id,
            name: w.name,
            default_sort,
            default_text_model: (!w.default_text_model.is_empty()).then_some(w.default_text_model),
        });
    }
    out
}

/// Keys. A key whose hash is malformed can match no secret and is dropped; any other invalid
/// key is kept, so that it authenticates, and blocked, so that it is refused with a reason.
fn key_index(
    list: Vec<pb::Key>,
    workspaces: &HashMap<String, Workspace>,
    interner: &mut Interner,
    q: &mut Quarantine,
) -> KeyIndex {
    let keys = decode_keys(list, workspaces, interner, q);
    KeyIndex::new(keys)
}

/// Decodes keys (see [`key_index`]), sorted by hash. Two records claiming one hash: neither can
/// be trusted to be the key meant, so both are blocked.
fn decode_keys(
    list: Vec<pb::Key>,
    workspaces: &HashMap<String, Workspace>,
    interner: &mut Interner,
    q: &mut Quarantine,
) -> Vec<ApiKey> {
    let mut keys: Vec<ApiKey> = list
        .into_iter()
        .filter_map(|k| decode_key(k, workspaces, interner, q))
        .collect();
    // Sorted here (the index sorts again, cheaply) so that a million keys need no map to find
    // duplicates.
    keys.sort_unstable_by_key(|k| k.hash);
    for pair in keys.windows(2) {
        if pair[0].hash == pair[1].hash {
            let hex = pair[0].hash_hex();
            q.record(RecordKind::Key, &hex, "duplicate hash");
            q.block_key(pair[0].hash, RecordKind::Key, &hex);
        }
    }
    keys
}

fn decode_key(
    k: pb::Key,
    workspaces: &HashMap<String, Workspace>,
    interner: &mut Interner,
    q: &mut Quarantine,
) -> Option<ApiKey> {
    let Some(hash) = parse_hash(&k.hash) else {
        q.record(
            RecordKind::Key,
            &k.hash,
            "hash is not 64 lowercase hex digits",
        );
        return None;
    };
    let mut failure = None;
    let kind = match pb::KeyKind::try_from(k.kind) {
        Ok(pb::KeyKind::Inference) => KeyKind::Inference,
        Ok(pb::KeyKind::Management) => KeyKind::Management,
        _ => {
            failure = Some(format!("unknown kind {}", k.kind));
            // Refused anyway; inference is the kind that can spend.
            KeyKind::Inference
        }
    };
    let limit_window = match pb::LimitReset::try_from(k.limit_reset) {
        Ok(pb::LimitReset::Daily) => Window::Daily,
        Ok(pb::LimitReset::Weekly) => Window::Weekly,
        Ok(pb::LimitReset::Monthly) => Window::Monthly,
        Ok(pb::LimitReset::Never | pb::LimitReset::Unspecified) => Window::Lifetime,
        Err(_) => {
            failure.get_or_insert(format!("unknown limit reset {}", k.limit_reset));
            Window::Lifetime
        }
    };
    // A malformed lineage would count the key's limits afresh: refused, like a bad limit.
    let lineage = match k.limit_lineage.as_str() {
        "" => None,
        text => {
            let parsed = parse_hash(text);
            if parsed.is_none() {
                failure.get_or_insert("limit lineage is not a key hash".to_owned());
            }
            parsed.filter(|l| *l != hash)
        }
    };
    let limit = match Money::parse_optional(&k.limit_usd) {
        Ok(limit) => limit,
        Err(e) => {
            failure.get_or_insert(format!("limit: {e}"));
            // Refused anyway; a zero limit would also refuse any spend.
            Some(Money::ZERO)
        }
    };
    match workspaces.get(&k.workspace_id) {
        None => {
            failure.get_or_insert(format!("unknown workspace {}", k.workspace_id));
        }
        Some(w) if w.organization_id != k.organization_id => {
            failure.get_or_insert(format!(
                "workspace {} is not in organization {}",
                k.workspace_id, k.organization_id
            ));
        }
        Some(_) => {}
    }
    if let Some(reason) = failure {
        q.record(RecordKind::Key, &k.hash, reason);
        q.block_key(hash, RecordKind::Key, &k.hash);
    }
    Some(ApiKey {
        hash,
        kind,
        owner_user_id: interner.intern(k.owner_user_id),
        organization_id: interner.intern(k.organization_id),
        workspace_id: interner.intern(k.workspace_id),
        disabled: k.disabled,
        expires_at_ms: (k.expires_at_ms > 0).then_some(k.expires_at_ms),
        limit,
        limit_window,
        include_byok_in_limit: k.include_byok_in_limit,
        lineage: lineage.map(Box::new),
    })
}

/// Models. An endpoint that fails is left out of its model's routes; a model with no valid
/// endpoint left, or a duplicated id, is unavailable.
fn models(
    list: Vec<pb::Model>,
    providers: &[pb::Provider],
    resolve: Resolver<'_>,
    q: &mut Quarantine,
) -> HashMap<String, Arc<Model>> {
    let by_id: HashMap<&str, &pb::Provider> =
        providers.iter().map(|p| (p.id.as_str(), p)).collect();
    let counts: HashMap<String, usize> = counts(list.iter().map(|m| m.id.as_str()))
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let mut out = HashMap::with_capacity(list.len());
    for m in list {
        if m.id.is_empty() {
            q.record(RecordKind::Model, "", "empty model id");
            continue;
        }
        if counts.get(&m.id).copied().unwrap_or(0) > 1 {
            q.record(RecordKind::Model, &m.id, "duplicate model id");
            q.block_model(&m.id, RecordKind::Model, &m.id);
            continue;
        }
        let mut endpoints = Vec::with_capacity(m.endpoints.len());
        for e in m.endpoints {
            let provider = by_id.get(e.provider_id.as_str()).copied();
            match endpoint(&m.id, e, provider, resolve) {
                Ok(e) => endpoints.push(Arc::new(e)),
                Err((id, reason)) => q.record(RecordKind::Endpoint, &id, reason),
            }
        }
        if endpoints.is_empty() {
            q.record(RecordKind::Model, &m.id, "no valid provider endpoint");
            q.block_model(&m.id, RecordKind::Model, &m.id);
            continue;
        }
        endpoints.sort_by_key(|e| e.priority);
        out.insert(
            m.id.clone(),
            Arc::new(Model {
                id: m.id,
                name: m.name,
                description: m.description,
                created: m.created,
                context_length: m.context_length,
                endpoints,
            }),
        );
    }
    out
}

fn endpoint(
    model: &str,
    e: pb::Endpoint,
    provider: Option<&pb::Provider>,
    resolve: Resolver<'_>,
) -> Result<Endpoint, (String, String)> {
    let provider_name = provider.map(|p| p.name.as_str());
    let quota = provider.map_or(Quota::default(), |p| Quota {
        requests_per_minute: p.requests_per_minute,
        tokens_per_minute: p.tokens_per_minute,
    });
    let id = format!("{model}|{}", e.provider_id);
    let fail = |reason: String| (id.clone(), reason);
    if e.provider_id.is_empty() {
        return Err(fail("empty provider id".into()));
    }
    let upstream = Upstream::parse(&e.base_url, resolve)
        .map_err(|reason| fail(format!("base URL {:?}: {reason}", e.base_url)))?;
    // An API this dataplane cannot speak (a newer control plane's) sets the endpoint aside.
    let api = match provider.map(|p| pb::ProviderApi::try_from(p.api)) {
        None | Some(Ok(pb::ProviderApi::Unspecified | pb::ProviderApi::OpenaiChat)) => {
            Api::OpenAiChat
        }
        Some(Ok(pb::ProviderApi::AnthropicMessages)) => Api::AnthropicMessages,
        Some(Ok(pb::ProviderApi::Gemini)) => Api::Gemini,
        Some(Ok(pb::ProviderApi::AzureOpenai)) => Api::AzureOpenAi,
        Some(Err(_)) => return Err(fail("provider API unknown to this dataplane".into())),
    };
    let price = e.price.unwrap_or_default();
    let parse = |field: &str, text: &str| {
        Money::parse_optional(text).map_err(|err| fail(format!("price {field}: {err}")))
    };
    let prices = Prices {
        prompt: parse("prompt", &price.prompt)?,
        completion: parse("completion", &price.completion)?,
        request: parse("request", &price.request)?,
        image: parse("image", &price.image)?,
        input_cache_read: parse("input_cache_read", &price.input_cache_read)?,
        input_cache_write: parse("input_cache_write", &price.input_cache_write)?,
        internal_reasoning: parse("internal_reasoning", &price.internal_reasoning)?,
    };
    let authorization = if e.api_key.is_empty() {
        None
    } else {
        let value = format!("Bearer {}", e.api_key);
        if http::HeaderValue::from_str(&value).is_err() {
            return Err(fail("provider key is not usable as a bearer token".into()));
        }
        Some(value)
    };
    let upstream_model = if e.upstream_model.is_empty() {
        model.to_owned()
    } else {
        e.upstream_model
    };
    // Gemini and Azure name the model in the path: it must be one path segment.
    if matches!(api, Api::Gemini | Api::AzureOpenAi)
        && !upstream_model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    {
        return Err(fail(format!(
            "upstream model {upstream_model:?} cannot be named in a {} path",
            api.slug()
        )));
    }
    let (path, stream_path) = api.paths(&upstream.base_path, &upstream_model);
    let mut supported_parameters: Vec<Box<str>> = if e.supported_parameters.is_empty() {
        catalogue::STANDARD_PARAMETERS
            .iter()
            .map(|p| Box::from(*p))
            .collect()
    } else {
        e.supported_parameters.into_iter().map(Into::into).collect()
    };
    supported_parameters.sort_unstable();
    supported_parameters.dedup();
    if e.zero_data_retention && (e.retains_prompts || e.trains_on_prompts) {
        return Err(fail(
            "zero data retention contradicts retaining or training on prompts".into(),
        ));
    }
    Ok(Endpoint {
        tag: if e.tag.is_empty() {
            e.provider_id.clone()
        } else {
            e.tag
        },
        quantization: (!e.quantization.is_empty()).then_some(e.quantization),
        supported_parameters: supported_parameters.into_boxed_slice(),
        data: catalogue::DataPolicy {
            trains_on_prompts: e.trains_on_prompts,
            retains_prompts: e.retains_prompts,
            zero_data_retention: e.zero_data_retention,
        },
        max_prompt_tokens: e.max_prompt_tokens,
        implicit_caching: e.implicit_caching,
        quota,
        health_id: Arc::from(health_id(&e.provider_id, &upstream_model)),
        upstream_model,
        provider_name: provider_name.unwrap_or(&e.provider_id).to_owned(),
        provider_id: e.provider_id,
        path,
        stream_path,
        api,
        upstream,
        prices,
        context_length: e.context_length,
        max_output_tokens: e.max_output_tokens,
        authorization,
        priority: e.priority,
    })
}

#[cfg(test)]
mod tests;
