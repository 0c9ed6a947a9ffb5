//! BYOK ("bring your own key") provider credentials.
//!
//! The raw key is sealed by the vault the moment it arrives and is never returned, logged or
//! audited afterwards: responses and the audit log show only its masked `label`. Members of the
//! organization may list and read credentials; only admins (and the operator) change them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Actor, Manage, ManageError, ManageResult, Publish, new_id, valid_name};
use crate::store::{ByokRow, StoreError};

/// The provider slugs the SDK's `BYOKProviderSlug` accepts (openrouter 1.3.84).
pub const BYOK_PROVIDERS: &[&str] = &[
    "ai21",
    "aion-labs",
    "akashml",
    "alibaba",
    "amazon-bedrock",
    "amazon-bedrock/claude-on-aws",
    "amazon-nova",
    "ambient",
    "anthropic",
    "anthropic/2",
    "arcee-ai",
    "assemblyai",
    "atlas-cloud",
    "avian",
    "azure",
    "baidu",
    "baseten",
    "black-forest-labs",
    "byteplus",
    "cerebras",
    "chutes",
    "cirrascale",
    "clarifai",
    "claude-on-aws",
    "cloudflare",
    "cohere",
    "coreweave",
    "cosine",
    "crusoe",
    "darkbloom",
    "databricks",
    "decart",
    "deepgram",
    "deepinfra",
    "deepseek",
    "dekallm",
    "digitalocean",
    "elevenlabs",
    "featherless",
    "fireworks",
    "fish-audio",
    "friendli",
    "gmicloud",
    "google-ai-studio",
    "google-vertex",
    "groq",
    "heygen",
    "inception",
    "inceptron",
    "inferact-vllm",
    "inference-net",
    "infermatic",
    "inflection",
    "io-net",
    "ionstream",
    "krea",
    "liquid",
    "makora",
    "mancer",
    "mara",
    "meta",
    "minimax",
    "mistral",
    "modal",
    "modelrun",
    "modular",
    "moonshotai",
    "morph",
    "near-ai",
    "nebius",
    "nex-agi",
    "nextbit",
    "novita",
    "nvidia",
    "ollama",
    "open-inference",
    "openai",
    "parasail",
    "pareto-alpha",
    "perceptron",
    "perplexity",
    "phala",
    "poolside",
    "primeintellect",
    "quiver",
    "recraft",
    "recursive",
    "reka",
    "relace",
    "respan",
    "runway",
    "sail-research",
    "sakana",
    "sakana-ai",
    "sambanova",
    "scaledown",
    "seed",
    "siliconflow",
    "sourceful",
    "stepfun",
    "streamlake",
    "switchpoint",
    "tencent",
    "tenstorrent",
    "thinkingmachines",
    "together",
    "typesafe",
    "unbiased",
    "upstage",
    "venice",
    "voyageai",
    "wafer",
    "wandb",
    "wandb-legacy",
    "xai",
    "xiaomi",
    "z-ai",
];

/// The SDK's declared data regions of a credential.
pub const DECLARED_REGIONS: &[&str] = &["global", "europe", "us"];

/// The longest raw key accepted, in bytes (JSON service-account credentials included).
const MAX_KEY_BYTES: usize = 4096;
/// The longest allowlist accepted, so a credential stays small in every snapshot.
const MAX_ALLOWLIST: usize = 1000;

/// A credential's restrictions and routing flags, stored as the `settings` JSON object with the
/// SDK's field names. `None` in an allowlist means no restriction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ByokSettings {
    pub allowed_api_key_hashes: Option<Vec<String>>,
    pub allowed_models: Option<Vec<String>>,
    pub allowed_user_ids: Option<Vec<String>>,
    pub declared_region: Option<String>,
    pub declared_zdr: Option<bool>,
    pub is_byok_only: bool,
    pub is_fallback: bool,
    pub is_required: bool,
    /// The organization's account's limits with the provider, per minute (an extension of
    /// the SDK's fields): dataplanes route around the credential before its provider answers
    /// 429. `None` means no limit of that kind.
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u64>,
}

impl ByokSettings {
    pub fn of(c: &ByokRow) -> ManageResult<ByokSettings> {
        serde_json::from_value(Value::Object(c.settings.clone())).map_err(|e| {
            ManageError::Store(StoreError::Corrupt(format!(
                "BYOK credential {} settings: {e}",
                c.id
            )))
        })
    }

    fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            // A struct of plain fields always serializes to an object.
            _ => Map::new(),
        }
    }
}

/// A new credential. Deliberately not `Debug`: it holds the raw key.
pub struct NewByok {
    pub provider: String,
    pub key: String,
    /// The organization's default workspace when `None`.
    pub workspace_id: Option<String>,
    pub name: Option<String>,
    pub disabled: bool,
    pub settings: ByokSettings,
}

/// A partial update; `None` leaves a field unchanged, `Some(None)` clears a nullable one. A
/// `key` replaces the sealed key in place. Deliberately not `Debug`: it may hold a raw key.
#[derive(Default)]
pub struct ByokPatch {
    pub key: Option<String>,
    pub name: Option<Option<String>>,
    pub disabled: Option<bool>,
    pub allowed_api_key_hashes: Option<Option<Vec<String>>>,
    pub allowed_models: Option<Option<Vec<String>>>,
    pub allowed_user_ids: Option<Option<Vec<String>>>,
    pub declared_region: Option<Option<String>>,
    pub declared_zdr: Option<Option<bool>>,
    pub is_byok_only: Option<bool>,
    pub is_fallback: Option<bool>,
    pub is_required: Option<bool>,
    pub requests_per_minute: Option<Option<u32>>,
    pub tokens_per_minute: Option<Option<u64>>,
}

/// A credential's public fields with the SDK's names (everything but `created_at`, whose format
/// is the caller's). Never the key: this is what responses and the audit log show.
pub fn byok_public(c: &ByokRow) -> ManageResult<Map<String, Value>> {
    let mut fields = ByokSettings::of(c)?.to_map();
    fields.insert("id".into(), c.id.clone().into());
    fields.insert("provider".into(), c.provider.clone().into());
    fields.insert("name".into(), c.name.clone().into());
    fields.insert("label".into(), c.label.clone().into());
    fields.insert("disabled".into(), c.disabled.into());
    fields.insert("sort_order".into(), c.sort_order.into());
    fields.insert("workspace_id".into(), c.workspace_id.clone().into());
    Ok(fields)
}

fn audit_view(c: &ByokRow) -> ManageResult<Value> {
    Ok(Value::Object(byok_public(c)?))
}

/// A mask that identifies a key without revealing it: a short vendor prefix such as `sk-` and
/// at most the last four characters, which only long keys show.
pub fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 16 {
        return "...".into();
    }
    let prefix = match key.find(['-', '_']) {
        Some(i) if (1..=4).contains(&i) && key[..i].bytes().all(|b| b.is_ascii_alphabetic()) => {
            &key[..=i]
        }
        _ => "",
    };
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{prefix}...{tail}")
}

impl Manage {
    /// A page of a workspace's credentials (the organization's default workspace unless one is
    /// named), optionally of one provider, and the total.
    pub async fn byok_keys(
        &self,
        actor: &Actor,
        organization_id: Option<&str>,
        workspace_id: Option<&str>,
        provider: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> ManageResult<(Vec<ByokRow>, i64)> {
        let organization_id = actor.target_organization(organization_id)?;
        let workspace_id = self.byok_workspace(&organization_id, workspace_id).await?;
        if !self
            .sees_workspace(actor, &organization_id, &workspace_id)
            .await?
        {
            return Err(ManageError::NotFound(format!(
                "Workspace {workspace_id} not found"
            )));
        }
        Ok(self
            .store
            .byok_of_workspace(&workspace_id, provider, offset, limit)
            .await?)
    }

    /// A credential the actor may see: its organization's, and for a member only in a
    /// workspace they belong to (others are "not found", like other organizations' ids).
    pub async fn byok_key(&self, actor: &Actor, id: &str) -> ManageResult<ByokRow> {
        match self.store.byok(id).await? {
            Some(c)
                if actor.sees(&c.organization_id)
                    && self
                        .sees_workspace(actor, &c.organization_id, &c.workspace_id)
                        .await? =>
            {
                Ok(c)
            }
            _ => Err(not_found(id)),
        }
    }

    /// Admins (and the operator) see every workspace of their organization; members those
    /// they belong to.
    async fn sees_workspace(
        &self,
        actor: &Actor,
        organization_id: &str,
        workspace_id: &str,
    ) -> ManageResult<bool> {
        match actor.user_id() {
            _ if actor.is_admin_of(organization_id) => Ok(true),
            None => Ok(false),
            Some(user) => Ok(self.store.is_workspace_member(workspace_id, user).await?),
        }
    }

    /// Admins only: seals the key and stores the credential after the others of its provider.
    pub async fn create_byok(
        &self,
        actor: &Actor,
        organization_id: Option<&str>,
        new: NewByok,
    ) -> ManageResult<ByokRow> {
        let this = self.begin().await?;
        let organization_id = actor.target_organization(organization_id)?;
        actor.require_admin(&organization_id, "Organization")?;
        let provider = this.valid_provider(&new.provider).await?;
        let key = valid_key(&new.key)?;
        let name = valid_optional_name(new.name)?;
        let workspace_id = this
            .byok_workspace(&organization_id, new.workspace_id.as_deref())
            .await?;
        let mut settings = new.settings;
        this.valid_allowlists(
            &organization_id,
            settings.allowed_api_key_hashes.as_mut(),
            settings.allowed_models.as_mut(),
            settings.allowed_user_ids.as_mut(),
        )
        .await?;
        valid_flags(&settings)?;
        let id = new_id("byok");
        let row = ByokRow {
            sealed: this.vault.seal(key, &id)?,
            id,
            organization_id: organization_id.clone(),
            workspace_id,
            provider,
            name,
            label: mask(key),
            settings: settings.to_map(),
            disabled: new.disabled,
            sort_order: 0,
            created_at: crate::now_ms(),
            updated_at: None,
        };
        let row = this.store.insert_byok(&row).await?;
        this.audit(
            actor,
            Some(&organization_id),
            "byok.create",
            &row.id,
            None,
            Some(&audit_view(&row)?),
        )
        .await?;
        this.commit(Publish::Snapshot).await?;
        tracing::info!(id = %row.id, provider = %row.provider, label = %row.label, "BYOK credential created");
        Ok(row)
    }

    /// Admins only. A new `key` is sealed afresh (new data key) and relabelled.
    pub async fn update_byok(
        &self,
        actor: &Actor,
        id: &str,
        patch: ByokPatch,
    ) -> ManageResult<ByokRow> {
        let this = self.begin().await?;
        let before = this.byok_key(actor, id).await?;
        actor.require_admin(&before.organization_id, "BYOK credential")?;
        let mut settings = ByokSettings::of(&before)?;
        let mut after = before.clone();
        if let Some(key) = &patch.key {
            let key = valid_key(key)?;
            after.label = mask(key);
            after.sealed = this.vault.seal(key, &after.id)?;
        }
        if let Some(name) = patch.name {
            after.name = valid_optional_name(name)?;
        }
        if let Some(disabled) = patch.disabled {
            after.disabled = disabled;
        }
        // Only lists the patch sets are checked: a key deleted since must not block other edits.
        let mut hashes = patch.allowed_api_key_hashes;
        let mut models = patch.allowed_models;
        let mut users = patch.allowed_user_ids;
        this.valid_allowlists(
            &before.organization_id,
            hashes.as_mut().and_then(Option::as_mut),
            models.as_mut().and_then(Option::as_mut),
            users.as_mut().and_then(Option::as_mut),
        )
        .await?;
        if let Some(hashes) = hashes {
            settings.allowed_api_key_hashes = hashes;
        }
        if let Some(models) = models {
            settings.allowed_models = models;
        }
        if let Some(users) = users {
            settings.allowed_user_ids = users;
        }
        if let Some(region) = patch.declared_region {
            settings.declared_region = region;
        }
        if let Some(zdr) = patch.declared_zdr {
            settings.declared_zdr = zdr;
        }
        if let Some(only) = patch.is_byok_only {
            settings.is_byok_only = only;
        }
        if let Some(fallback) = patch.is_fallback {
            settings.is_fallback = fallback;
        }
        if let Some(required) = patch.is_required {
            settings.is_required = required;
        }
        if let Some(rpm) = patch.requests_per_minute {
            settings.requests_per_minute = rpm;
        }
        if let Some(tpm) = patch.tokens_per_minute {
            settings.tokens_per_minute = tpm;
        }
        valid_flags(&settings)?;
        after.settings = settings.to_map();
        after.updated_at = Some(crate::now_ms());
        if !this.store.update_byok(&after).await? {
            return Err(not_found(id));
        }
        this.audit(
            actor,
            Some(&after.organization_id),
            "byok.update",
            &after.id,
            Some(&audit_view(&before)?),
            Some(&audit_view(&after)?),
        )
        .await?;
        this.commit(Publish::Snapshot).await?;
        tracing::info!(id = %after.id, label = %after.label, rotated = patch.key.is_some(), "BYOK credential updated");
        Ok(after)
    }

    /// Admins only. The row goes, and with it the sealed key.
    pub async fn delete_byok(&self, actor: &Actor, id: &str) -> ManageResult<()> {
        let this = self.begin().await?;
        let before = this.byok_key(actor, id).await?;
        actor.require_admin(&before.organization_id, "BYOK credential")?;
        if !this.store.delete_byok(id).await? {
            return Err(not_found(id));
        }
        this.audit(
            actor,
            Some(&before.organization_id),
            "byok.delete",
            &before.id,
            Some(&audit_view(&before)?),
            None,
        )
        .await?;
        this.commit(Publish::Snapshot).await?;
        tracing::info!(id = %before.id, label = %before.label, "BYOK credential deleted");
        Ok(())
    }

    /// Re-wraps every credential whose data key is wrapped by a master key other than the
    /// vault's current one; returns how many were re-wrapped. Run at start, after the operator
    /// made a new master key current and listed the old one as retired: once this returns, the
    /// retired key is no longer needed. A record no configured key can unwrap is logged and
    /// left as it is, so one bad record cannot stop the control plane from starting.
    pub async fn rewrap_byok(&self) -> ManageResult<usize> {
        let current = self.vault.current_key_id().to_owned();
        let mut rewrapped = 0;
        for c in self.store.all_byok().await? {
            if c.sealed.master_key_id == current {
                continue;
            }
            match self.vault.rewrap(&c.sealed, &c.id) {
                Ok(Some(new)) => {
                    // `false`: the key was replaced meanwhile, sealed under the current key.
                    if self
                        .store
                        .rewrap_byok(&c.id, &c.sealed.wrapped_key, &new)
                        .await?
                    {
                        rewrapped += 1;
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    id = %c.id,
                    master_key_id = %c.sealed.master_key_id,
                    error = %e,
                    "cannot re-wrap a BYOK credential; list its master key as retired"
                ),
            }
        }
        Ok(rewrapped)
    }

    async fn valid_provider(&self, provider: &str) -> ManageResult<String> {
        let catalogue = self.store.catalogue().await?;
        let ours: Vec<&str> = catalogue.providers.iter().map(|p| p.id.as_str()).collect();
        valid_provider(provider, &ours)
    }

    /// The requested workspace, or the organization's default, if it is the organization's.
    async fn byok_workspace(
        &self,
        organization_id: &str,
        requested: Option<&str>,
    ) -> ManageResult<String> {
        let workspace = match requested {
            Some(id) => self.store.workspace(id).await?,
            None => self.store.default_workspace(organization_id).await?,
        };
        match workspace {
            Some(w) if w.organization_id == organization_id => Ok(w.id),
            _ => Err(ManageError::NotFound(format!(
                "Workspace {} not found",
                requested.unwrap_or("(default)")
            ))),
        }
    }

    /// Checks the allowlists being set: each non-empty and bounded, key hashes naming keys of
    /// the organization and user ids naming its members. Duplicates are dropped.
    async fn valid_allowlists(
        &self,
        organization_id: &str,
        hashes: Option<&mut Vec<String>>,
        models: Option<&mut Vec<String>>,
        users: Option<&mut Vec<String>>,
    ) -> ManageResult<()> {
        if let Some(hashes) = hashes {
            valid_list("allowed_api_key_hashes", hashes)?;
            for hash in hashes.iter() {
                match self.store.key(hash).await? {
                    Some(k) if k.organization_id == organization_id => {}
                    _ => {
                        return Err(ManageError::Invalid(format!(
                            "allowed_api_key_hashes: key {hash} not found"
                        )));
                    }
                }
            }
        }
        if let Some(models) = models {
            valid_list("allowed_models", models)?;
        }
        if let Some(users) = users {
            valid_list("allowed_user_ids", users)?;
            for user in users.iter() {
                if self
                    .store
                    .membership(organization_id, user)
                    .await?
                    .is_none()
                {
                    return Err(ManageError::Invalid(format!(
                        "allowed_user_ids: user {user} is not a member of the organization"
                    )));
                }
            }
        }
        Ok(())
    }
}

fn not_found(id: &str) -> ManageError {
    ManageError::NotFound(format!("BYOK credential {id} not found"))
}

/// One of the SDK's BYOK provider slugs, or one of `gateway`'s providers: a self-hosted gateway
/// may front providers OpenRouter does not list, such as in-house servers.
fn valid_provider(provider: &str, gateway: &[&str]) -> ManageResult<String> {
    if BYOK_PROVIDERS.contains(&provider) || gateway.contains(&provider) {
        Ok(provider.to_owned())
    } else {
        Err(ManageError::Invalid(format!(
            "provider {provider:?} is neither a BYOK provider slug nor a provider of this gateway"
        )))
    }
}

/// The key without surrounding whitespace (a pasted newline would break every request).
fn valid_key(key: &str) -> ManageResult<&str> {
    let key = key.trim();
    if key.is_empty() {
        return Err(ManageError::Invalid("key is required".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(ManageError::Invalid(format!(
            "key must be at most {MAX_KEY_BYTES} bytes"
        )));
    }
    Ok(key)
}

fn valid_optional_name(name: Option<String>) -> ManageResult<Option<String>> {
    match name.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(n) => valid_name("name", n, 128).map(Some),
    }
}

/// A non-empty, bounded list of non-empty strings, without duplicates (first occurrence kept).
fn valid_list(field: &str, list: &mut Vec<String>) -> ManageResult<()> {
    if list.is_empty() {
        return Err(ManageError::Invalid(format!(
            "{field} must contain at least one entry; use null for no restriction"
        )));
    }
    if list.len() > MAX_ALLOWLIST {
        return Err(ManageError::Invalid(format!(
            "{field} must have at most {MAX_ALLOWLIST} entries"
        )));
    }
    if list.iter().any(|v| v.trim().is_empty() || v.len() > 256) {
        return Err(ManageError::Invalid(format!(
            "{field} entries must be non-empty strings of at most 256 bytes"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    list.retain(|v| seen.insert(v.clone()));
    Ok(())
}

fn valid_flags(s: &ByokSettings) -> ManageResult<()> {
    if let Some(region) = &s.declared_region
        && !DECLARED_REGIONS.contains(&region.as_str())
    {
        return Err(ManageError::Invalid(format!(
            "declared_region must be one of {} (got {region:?})",
            DECLARED_REGIONS.join(", ")
        )));
    }
    if s.is_byok_only && s.is_fallback {
        return Err(ManageError::Invalid(
            "is_byok_only cannot be combined with is_fallback".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_reveal_at_most_a_vendor_prefix_and_the_last_four() {
        assert_eq!(mask("sk-proj-abcdefghijklmnop1234"), "sk-...1234");
        assert_eq!(mask("gsk_abcdefghijklmnopqrstu9876"), "gsk_...9876");
        assert_eq!(mask("AIzaSyabcdefghijklmnopWXYZ"), "...WXYZ");
        assert_eq!(mask("short-key"), "...");
        // Multi-byte characters are counted as characters, never split.
        assert_eq!(mask("ключ-ключ-ключ-ключ-ключ"), "...ключ");
    }

    #[test]
    fn providers_and_flags_are_checked() {
        assert!(valid_provider("openai", &[]).is_ok());
        assert!(valid_provider("amazon-bedrock/claude-on-aws", &[]).is_ok());
        assert!(valid_provider("OpenAI", &[]).is_err());
        assert!(valid_provider("in-house", &[]).is_err());
        assert!(valid_provider("in-house", &["in-house"]).is_ok());
        assert_eq!(BYOK_PROVIDERS.len(), 117);
        assert!(valid_key("  ").is_err());
        assert!(valid_key(&"k".repeat(MAX_KEY_BYTES + 1)).is_err());
        assert_eq!(valid_key(" sk-x\n").unwrap(), "sk-x");
        let both = ByokSettings {
            is_byok_only: true,
            is_fallback: true,
            ..ByokSettings::default()
        };
        assert!(valid_flags(&both).is_err());
        let region = ByokSettings {
            declared_region: Some("mars".into()),
            ..ByokSettings::default()
        };
        assert!(valid_flags(&region).is_err());
        let mut dupes = vec!["a".to_owned(), "b".into(), "a".into()];
        valid_list("allowed_models", &mut dupes).unwrap();
        assert_eq!(dupes, ["a", "b"]);
        assert!(valid_list("allowed_models", &mut Vec::new()).is_err());
    }

    #[test]
    fn settings_round_trip_with_the_sdk_field_names() {
        let s = ByokSettings {
            allowed_models: Some(vec!["openai/gpt-4o".into()]),
            declared_zdr: Some(true),
            is_required: true,
            ..ByokSettings::default()
        };
        let map = s.to_map();
        // The SDK's eight fields and the two quota extensions.
        assert_eq!(map.len(), 10);
        assert_eq!(map["requests_per_minute"], Value::Null);
        assert_eq!(map["allowed_api_key_hashes"], Value::Null);
        let back: ByokSettings = serde_json::from_value(Value::Object(map)).unwrap();
        assert_eq!(back, s);
    }
}
