//! Presets: named, versioned request settings (model or models, provider preferences, a system
//! prompt and parameters) that requests will refer to as `@preset/slug`.
//!
//! Versions are immutable: changing a preset adds a version, and the preset designates which
//! version requests use. Any member of the organization may read presets; members create them
//! in workspaces they belong to and manage the ones they created; admins manage all.

use serde_json::{Map, Value, json};
use switchyard_policy::snapshot::PresetConfig;

use super::{Actor, Manage, ManageError, ManageResult, Publish, new_id, valid_name, valid_slug};
use crate::store::{PresetRow, PresetVersionRow};

/// A preset's statuses, as the SDK's `PresetStatus` names them.
pub const PRESET_STATUSES: &[&str] = &["active", "disabled", "archived"];

/// Bounds a system prompt, so a preset stays small enough to ship to every dataplane (its
/// config's bounds are `PresetConfig`'s).
const MAX_SYSTEM_PROMPT_BYTES: usize = 256 * 1024;

/// A new preset with its first version.
#[derive(Clone, Debug)]
pub struct NewPreset {
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
    /// The organization's default workspace when `None`.
    pub workspace_id: Option<String>,
    pub config: Value,
    pub system_prompt: Option<String>,
}

/// A new immutable version of a preset.
#[derive(Clone, Debug)]
pub struct NewPresetVersion {
    pub config: Value,
    pub system_prompt: Option<String>,
    /// Also make it the version requests use.
    pub designate: bool,
}

/// A partial update of a preset; `None` leaves a field unchanged. The designated version is
/// named by id or by number, not both.
#[derive(Clone, Debug, Default)]
pub struct PresetPatch {
    pub name: Option<String>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    pub status: Option<String>,
    pub designated_version_id: Option<String>,
    pub designated_version: Option<i64>,
}

/// A preset with the version it designates.
#[derive(Clone, Debug)]
pub struct PresetView {
    pub preset: PresetRow,
    pub designated: Option<PresetVersionRow>,
}

/// What the audit log records of a preset.
fn preset_audit(p: &PresetRow) -> Value {
    json!({
        "id": p.id, "slug": p.slug, "name": p.name, "description": p.description,
        "status": p.status, "workspace_id": p.workspace_id,
        "designated_version_id": p.designated_version_id,
    })
}

fn version_audit(v: &PresetVersionRow) -> Value {
    json!({
        "id": v.id, "preset_id": v.preset_id, "version": v.version, "config": v.config,
        "system_prompt": v.system_prompt,
    })
}

impl Manage {
    /// A page of the organization's presets, most recently updated first, and the total.
    pub async fn presets(
        &self,
        actor: &Actor,
        organization_id: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> ManageResult<(Vec<PresetRow>, i64)> {
        let organization_id = actor.target_organization(organization_id)?;
        Ok(self
            .store
            .presets_of_organization(&organization_id, offset, limit)
            .await?)
    }

    /// A preset with its designated version.
    pub async fn preset(
        &self,
        actor: &Actor,
        organization_id: Option<&str>,
        slug: &str,
    ) -> ManageResult<PresetView> {
        let preset = self.find_preset(actor, organization_id, slug).await?;
        self.view(preset).await
    }

    /// A page of a preset's versions, oldest first, and the total.
    pub async fn preset_versions(
        &self,
        actor: &Actor,
        organization_id: Option<&str>,
        slug: &str,
        offset: i64,
        limit: i64,
    ) -> ManageResult<(Vec<PresetVersionRow>, i64)> {
        let preset = self.find_preset(actor, organization_id, slug).await?;
        Ok(self
            .store
            .preset_versions(&preset.id, offset, limit)
            .await?)
    }

    pub async fn preset_version(
        &self,
        actor: &Actor,
        organization_id: Option<&str>,
        slug: &str,
        number: i64,
    ) -> ManageResult<PresetVersionRow> {
        let preset = self.find_preset(actor, organization_id, slug).await?;
        self.store
            .preset_version(&preset.id, number)
            .await?
            .ok_or_else(|| {
                ManageError::NotFound(format!("Version {number} of preset {slug} not found"))
            })
    }

    /// Creates a preset and its first version, designated. A member must belong to the
    /// workspace the preset goes in.
    pub async fn create_preset(
        &self,
        actor: &Actor,
        organization_id: Option<&str>,
        new: NewPreset,
    ) -> ManageResult<PresetView> {
        let this = self.begin().await?;
        let organization_id = actor.target_organization(organization_id)?;
        let slug = valid_slug(&new.slug)?;
        let name = valid_name("name", &new.name, 128)?;
        let description = valid_description(new.description)?;
        let config = valid_config(new.config)?;
        let system_prompt = valid_system_prompt(new.system_prompt)?;
        let workspace_id = this
            .preset_workspace(actor, &organization_id, new.workspace_id.as_deref())
            .await?;
        let now = crate::now_ms();
        let preset_id = new_id("preset");
        let version = PresetVersionRow {
            id: new_id("presetv"),
            preset_id: preset_id.clone(),
            version: 1,
            config,
            system_prompt,
            creator_id: creator_id(actor),
            created_at: now,
        };
        let preset = PresetRow {
            id: preset_id,
            organization_id: organization_id.clone(),
            workspace_id,
            slug,
            name,
            description,
            status: "active".into(),
            status_updated_at: None,
            designated_version_id: Some(version.id.clone()),
            creator_user_id: actor.user_id().map(str::to_owned),
            created_at: now,
            updated_at: now,
        };
        if !this.store.insert_preset(&preset, &version).await? {
            return Err(ManageError::Conflict(format!(
                "A preset with slug {} already exists",
                preset.slug
            )));
        }
        let mut after = preset_audit(&preset);
        after["designated_version"] = version_audit(&version);
        this.audit(
            actor,
            Some(&organization_id),
            "preset.create",
            &preset.id,
            None,
            Some(&after),
        )
        .await?;
        this.commit(Publish::Snapshot).await?;
        Ok(PresetView {
            preset,
            designated: Some(version),
        })
    }

    /// Adds an immutable version to a preset, optionally designating it.
    pub async fn add_preset_version(
        &self,
        actor: &Actor,
        organization_id: Option<&str>,
        slug: &str,
        new: NewPresetVersion,
    ) -> ManageResult<PresetVersionRow> {
        let this = self.begin().await?;
        let preset = this.find_preset(actor, organization_id, slug).await?;
        require_manager(actor, &preset)?;
        let version = PresetVersionRow {
            id: new_id("presetv"),
            preset_id: preset.id.clone(),
            version: 0,
            config: valid_config(new.config)?,
            system_prompt: valid_system_prompt(new.system_prompt)?,
            creator_id: creator_id(actor),
            created_at: crate::now_ms(),
        };
        let version = this
            .store
            .add_preset_version(&version, new.designate, version.created_at)
            .await?
            .ok_or_else(|| not_found(slug))?;
        let mut after = version_audit(&version);
        after["designated"] = Value::Bool(new.designate);
        this.audit(
            actor,
            Some(&preset.organization_id),
            "preset.version.create",
            &preset.id,
            None,
            Some(&after),
        )
        .await?;
        this.commit(Publish::Snapshot).await?;
        Ok(version)
    }

    pub async fn update_preset(
        &self,
        actor: &Actor,
        organization_id: Option<&str>,
        slug: &str,
        patch: PresetPatch,
    ) -> ManageResult<PresetView> {
        let this = self.begin().await?;
        let before = this.find_preset(actor, organization_id, slug).await?;
        require_manager(actor, &before)?;
        let now = crate::now_ms();
        let mut after = before.clone();
        if let Some(name) = &patch.name {
            after.name = valid_name("name", name, 128)?;
        }
        if let Some(description) = patch.description {
            after.description = valid_description(description)?;
        }
        if let Some(status) = &patch.status {
            if !PRESET_STATUSES.contains(&status.as_str()) {
                return Err(ManageError::Invalid(format!(
                    "status must be one of {} (got {status:?})",
                    PRESET_STATUSES.join(", ")
                )));
            }
            if *status != after.status {
                after.status = status.clone();
                after.status_updated_at = Some(now);
            }
        }
        let designated = match (&patch.designated_version_id, patch.designated_version) {
            (Some(_), Some(_)) => {
                return Err(ManageError::Invalid(
                    "Give designated_version_id or designated_version, not both".into(),
                ));
            }
            (Some(id), None) => Some(
                this.store
                    .preset_version_by_id(&before.id, id)
                    .await?
                    .ok_or_else(|| {
                        ManageError::Invalid(format!("Preset {slug} has no version {id}"))
                    })?,
            ),
            (None, Some(number)) => Some(
                this.store
                    .preset_version(&before.id, number)
                    .await?
                    .ok_or_else(|| {
                        ManageError::Invalid(format!("Preset {slug} has no version {number}"))
                    })?,
            ),
            (None, None) => None,
        };
        if let Some(v) = &designated {
            after.designated_version_id = Some(v.id.clone());
        }
        after.updated_at = now;
        if !this.store.update_preset(&after).await? {
            return Err(not_found(slug));
        }
        this.audit(
            actor,
            Some(&after.organization_id),
            "preset.update",
            &after.id,
            Some(&preset_audit(&before)),
            Some(&preset_audit(&after)),
        )
        .await?;
        this.commit(Publish::Snapshot).await?;
        match designated {
            Some(v) => Ok(PresetView {
                preset: after,
                designated: Some(v),
            }),
            None => self.view(after).await,
        }
    }

    /// Deletes a preset with all its versions.
    pub async fn delete_preset(
        &self,
        actor: &Actor,
        organization_id: Option<&str>,
        slug: &str,
    ) -> ManageResult<()> {
        let this = self.begin().await?;
        let preset = this.find_preset(actor, organization_id, slug).await?;
        require_manager(actor, &preset)?;
        if !this.store.delete_preset(&preset.id).await? {
            return Err(not_found(slug));
        }
        this.audit(
            actor,
            Some(&preset.organization_id),
            "preset.delete",
            &preset.id,
            Some(&preset_audit(&preset)),
            None,
        )
        .await?;
        this.commit(Publish::Snapshot).await?;
        Ok(())
    }

    /// A preset of the actor's organization (or the one an operator names) by slug.
    async fn find_preset(
        &self,
        actor: &Actor,
        organization_id: Option<&str>,
        slug: &str,
    ) -> ManageResult<PresetRow> {
        let organization_id = actor.target_organization(organization_id)?;
        self.store
            .preset_by_slug(&organization_id, slug)
            .await?
            .ok_or_else(|| not_found(slug))
    }

    async fn view(&self, preset: PresetRow) -> ManageResult<PresetView> {
        let designated = match &preset.designated_version_id {
            Some(id) => self.store.preset_version_by_id(&preset.id, id).await?,
            None => None,
        };
        Ok(PresetView { preset, designated })
    }

    /// The workspace a new preset goes in: the requested one or the default, of the
    /// organization, and one the member belongs to unless they are an admin.
    async fn preset_workspace(
        &self,
        actor: &Actor,
        organization_id: &str,
        requested: Option<&str>,
    ) -> ManageResult<String> {
        let workspace = match requested {
            Some(id) => self.store.workspace(id).await?,
            None => self.store.default_workspace(organization_id).await?,
        };
        let workspace = workspace
            .filter(|w| w.organization_id == organization_id)
            .ok_or_else(|| {
                ManageError::NotFound(format!(
                    "Workspace {} not found",
                    requested.unwrap_or("(default)")
                ))
            })?;
        if let Some(user_id) = actor.user_id()
            && !actor.is_admin_of(organization_id)
            && !self
                .store
                .is_workspace_member(&workspace.id, user_id)
                .await?
        {
            return Err(ManageError::Forbidden(format!(
                "You are not a member of workspace {}",
                workspace.id
            )));
        }
        Ok(workspace.id)
    }
}

/// Admins manage every preset of their organization; members only the ones they created.
fn require_manager(actor: &Actor, preset: &PresetRow) -> ManageResult<()> {
    if actor.is_admin_of(&preset.organization_id) {
        return Ok(());
    }
    match (actor.user_id(), &preset.creator_user_id) {
        (Some(user), Some(creator)) if user == creator => Ok(()),
        _ => Err(ManageError::Forbidden(
            "Only the preset's creator or an organization admin can change it".into(),
        )),
    }
}

/// Who a version records as its creator: the user, or the operator.
fn creator_id(actor: &Actor) -> String {
    actor.user_id().unwrap_or("operator").to_owned()
}

fn not_found(slug: &str) -> ManageError {
    ManageError::NotFound(format!("Preset {slug} not found"))
}

fn valid_description(description: Option<String>) -> ManageResult<Option<String>> {
    match description.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(d) if d.chars().count() > 1024 => Err(ManageError::Invalid(
            "description must be at most 1024 characters".into(),
        )),
        Some(d) => Ok(Some(d.to_owned())),
    }
}

fn valid_system_prompt(prompt: Option<String>) -> ManageResult<Option<String>> {
    match prompt {
        Some(p) if p.len() > MAX_SYSTEM_PROMPT_BYTES => Err(ManageError::Invalid(format!(
            "system_prompt must be at most {MAX_SYSTEM_PROMPT_BYTES} bytes"
        ))),
        Some(p) if p.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// A version's config, validated by the same parser every dataplane applies it with.
pub fn valid_config(config: Value) -> ManageResult<Map<String, Value>> {
    PresetConfig::parse(&config).map_err(ManageError::Invalid)?;
    match config {
        Value::Object(config) => Ok(config),
        _ => Err(ManageError::Invalid("config must be a JSON object".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manage::Role;

    #[test]
    fn configs_are_checked_by_the_dataplanes_parser() {
        assert!(valid_config(json!({ "model": "openai/gpt-4o" })).is_ok());
        assert!(matches!(
            valid_config(json!({ "model": "a/b", "provider": { "sort": "cheap" } })),
            Err(ManageError::Invalid(m)) if m.contains("config.provider")
        ));
    }

    #[test]
    fn members_manage_only_presets_they_created() {
        let preset = PresetRow {
            id: "p".into(),
            organization_id: "o1".into(),
            workspace_id: "w".into(),
            slug: "s".into(),
            name: "n".into(),
            description: None,
            status: "active".into(),
            status_updated_at: None,
            designated_version_id: None,
            creator_user_id: Some("creator".into()),
            created_at: 0,
            updated_at: 0,
        };
        let member = |user: &str, role| Actor::Member {
            user_id: user.into(),
            organization_id: "o1".into(),
            role,
            key_hash: "h".into(),
        };
        assert!(require_manager(&member("creator", Role::Member), &preset).is_ok());
        assert!(require_manager(&member("other", Role::Admin), &preset).is_ok());
        assert!(matches!(
            require_manager(&member("other", Role::Member), &preset),
            Err(ManageError::Forbidden(_))
        ));
        assert!(require_manager(&Actor::Operator, &preset).is_ok());
    }
}
