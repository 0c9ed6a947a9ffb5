//! Workspaces: the units an organization's keys, presets, BYOK credentials, members and budgets
//! live in, with the observability and routing defaults of the SDK's workspace object.
//!
//! Who sees what: the operator and an organization's admins see all of its workspaces; other
//! members see the Default workspace (every member belongs to it) and the workspaces they were
//! added to. Anything else is "not found" to them, so workspaces cannot be probed.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use switchyard_policy::routing::SortBy;
use switchyard_policy::{Money, Window};

use super::{
    Actor, Manage, ManageError, ManageResult, Publish, Role, money, new_id, valid_name, valid_slug,
};
use crate::store::{MemberRow, StoreError, WorkspaceBudgetRow, WorkspaceContents, WorkspaceRow};

/// The SDK's server tools a workspace may disable.
pub const SERVER_TOOLS: &[&str] = &[
    "openrouter:advisor",
    "openrouter:apply_patch",
    "openrouter:bash",
    "openrouter:datetime",
    "openrouter:fusion",
    "openrouter:image_generation",
    "openrouter:experimental__search_models",
    "openrouter:shell",
    "openrouter:subagent",
    "openrouter:tool_search",
    "openrouter:web_fetch",
    "openrouter:web_search",
];

const MAX_NAME: usize = 100;
const MAX_DESCRIPTION: usize = 1000;
/// Bounds one bulk member call, as pages bound listings.
const MAX_USERS_PER_CALL: usize = 100;
const MAX_LOGGED_KEY_IDS: usize = 1000;

/// Observability and routing defaults, stored as `WorkspaceRow::settings` under the SDK's
/// field names. Absent fields read as their defaults, so older rows need no migration.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct WorkspaceSettings {
    pub default_text_model: Option<String>,
    pub default_image_model: Option<String>,
    pub default_provider_sort: Option<String>,
    pub io_logging_sampling_rate: f64,
    pub is_data_discount_logging_enabled: bool,
    pub is_observability_broadcast_enabled: bool,
    pub is_observability_io_logging_enabled: bool,
    /// `None`: every key is logged.
    pub io_logging_api_key_ids: Option<Vec<i64>>,
    /// `None`: no tool is disabled (an empty list is stored as `None`).
    pub disabled_server_tools: Option<Vec<String>>,
    /// Workspace-wide; set through the budget endpoints.
    pub include_byok_in_budgets: bool,
}

impl Default for WorkspaceSettings {
    fn default() -> Self {
        WorkspaceSettings {
            default_text_model: None,
            default_image_model: None,
            default_provider_sort: None,
            // Logging is off by default; when turned on, every request is logged.
            io_logging_sampling_rate: 1.0,
            is_data_discount_logging_enabled: false,
            is_observability_broadcast_enabled: false,
            is_observability_io_logging_enabled: false,
            io_logging_api_key_ids: None,
            disabled_server_tools: None,
            include_byok_in_budgets: false,
        }
    }
}

impl WorkspaceSettings {
    /// The stored settings of a workspace.
    pub fn of(w: &WorkspaceRow) -> ManageResult<WorkspaceSettings> {
        serde_json::from_value(Value::Object(w.settings.clone())).map_err(|e| {
            ManageError::Store(StoreError::Corrupt(format!(
                "settings of workspace {}: {e}",
                w.id
            )))
        })
    }

    pub fn to_map(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("default_text_model".into(), json!(self.default_text_model));
        m.insert(
            "default_image_model".into(),
            json!(self.default_image_model),
        );
        m.insert(
            "default_provider_sort".into(),
            json!(self.default_provider_sort),
        );
        m.insert(
            "io_logging_sampling_rate".into(),
            json!(self.io_logging_sampling_rate),
        );
        m.insert(
            "is_data_discount_logging_enabled".into(),
            json!(self.is_data_discount_logging_enabled),
        );
        m.insert(
            "is_observability_broadcast_enabled".into(),
            json!(self.is_observability_broadcast_enabled),
        );
        m.insert(
            "is_observability_io_logging_enabled".into(),
            json!(self.is_observability_io_logging_enabled),
        );
        m.insert(
            "io_logging_api_key_ids".into(),
            json!(self.io_logging_api_key_ids),
        );
        m.insert(
            "disabled_server_tools".into(),
            json!(self.disabled_server_tools),
        );
        m.insert(
            "include_byok_in_budgets".into(),
            json!(self.include_byok_in_budgets),
        );
        m
    }
}

/// A workspace to create, or a change to one. `None` leaves a field unchanged (or at its
/// default); `Some(None)` clears a nullable one. `name` and `slug` are required to create.
#[derive(Clone, Debug, Default)]
pub struct WorkspaceInput {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub description: Option<Option<String>>,
    pub default_text_model: Option<Option<String>>,
    pub default_image_model: Option<Option<String>>,
    pub default_provider_sort: Option<Option<String>>,
    pub io_logging_sampling_rate: Option<f64>,
    pub is_data_discount_logging_enabled: Option<bool>,
    pub is_observability_broadcast_enabled: Option<bool>,
    pub is_observability_io_logging_enabled: Option<bool>,
    pub io_logging_api_key_ids: Option<Option<Vec<i64>>>,
    pub disabled_server_tools: Option<Option<Vec<String>>>,
}

/// A user's membership of a workspace, with their organization role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceMember {
    pub id: String,
    pub workspace_id: String,
    pub user_id: String,
    pub role: Role,
    pub created_at: i64,
}

impl WorkspaceMember {
    fn of(workspace_id: &str, m: &MemberRow) -> WorkspaceMember {
        WorkspaceMember {
            // The id the store gives membership rows, also for the Default's implicit ones.
            id: format!("{workspace_id}:{}", m.user_id),
            workspace_id: workspace_id.to_owned(),
            user_id: m.user_id.clone(),
            // Unknown roles read as the lesser one.
            role: m.role.parse().unwrap_or(Role::Member),
            created_at: m.created_at,
        }
    }
}

/// A budget interval from a path or wire value (`daily`, `weekly`, `monthly`, `lifetime`),
/// answering 400 for anything else. Windows order from the narrowest to the widest.
pub fn budget_interval(text: &str) -> ManageResult<Window> {
    Window::from_name(text).ok_or_else(|| {
        ManageError::Invalid(format!(
            "interval must be one of daily, weekly, monthly, lifetime (got {text:?})"
        ))
    })
}

/// A workspace's budgets and its workspace-wide BYOK setting.
#[derive(Clone, Debug)]
pub struct Budgets {
    pub budgets: Vec<WorkspaceBudgetRow>,
    pub include_byok_in_budgets: bool,
}

/// The SDK's slug rule: lowercase alphanumeric segments joined by single dashes.
fn workspace_slug(slug: &str) -> ManageResult<String> {
    let slug = valid_slug(slug.trim())?;
    if slug.ends_with('-') || slug.contains("--") {
        return Err(ManageError::Invalid(format!(
            "slug {slug:?} must be lowercase letters and digits in segments separated by single dashes"
        )));
    }
    Ok(slug)
}

/// A model id as given; whether the catalogue has it is checked against the store.
fn model_field(field: &str, value: Option<&str>) -> ManageResult<Option<String>> {
    match value.map(str::trim) {
        None => Ok(None),
        Some("") => Err(ManageError::Invalid(format!(
            "{field} must be a model id or null"
        ))),
        Some(id) => Ok(Some(id.to_owned())),
    }
}

/// Applies `input` to a workspace after validating each field. Model ids are checked against
/// the catalogue separately (`check_models`), since that needs the store.
pub fn apply_input(w: &mut WorkspaceRow, input: &WorkspaceInput) -> ManageResult<()> {
    let mut s = WorkspaceSettings::of(w)?;
    if let Some(name) = &input.name {
        w.name = valid_name("name", name, MAX_NAME)?;
    }
    if let Some(slug) = &input.slug {
        w.slug = workspace_slug(slug)?;
    }
    if let Some(description) = &input.description {
        w.description = match description.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(d) => Some(valid_name("description", d, MAX_DESCRIPTION)?),
        };
    }
    if let Some(model) = &input.default_text_model {
        s.default_text_model = model_field("default_text_model", model.as_deref())?;
    }
    if let Some(model) = &input.default_image_model {
        s.default_image_model = model_field("default_image_model", model.as_deref())?;
    }
    if let Some(sort) = &input.default_provider_sort {
        s.default_provider_sort = match sort.as_deref() {
            None => None,
            // The parser every dataplane applies the default with.
            Some(v) => match SortBy::parse(v) {
                Ok(_) => Some(v.to_owned()),
                Err(e) => return Err(ManageError::Invalid(format!("default_provider_sort: {e}"))),
            },
        };
    }
    if let Some(rate) = input.io_logging_sampling_rate {
        // The SDK's documented range: a rate of 0 would be logging turned off, which is the
        // `is_observability_io_logging_enabled` flag's job.
        if !rate.is_finite() || !(0.0001..=1.0).contains(&rate) {
            return Err(ManageError::Invalid(
                "io_logging_sampling_rate must be between 0.0001 and 1".into(),
            ));
        }
        s.io_logging_sampling_rate = rate;
    }
    if let Some(on) = input.is_data_discount_logging_enabled {
        s.is_data_discount_logging_enabled = on;
    }
    if let Some(on) = input.is_observability_broadcast_enabled {
        s.is_observability_broadcast_enabled = on;
    }
    if let Some(on) = input.is_observability_io_logging_enabled {
        s.is_observability_io_logging_enabled = on;
    }
    if let Some(ids) = &input.io_logging_api_key_ids {
        if let Some(ids) = ids {
            if ids.len() > MAX_LOGGED_KEY_IDS {
                return Err(ManageError::Invalid(format!(
                    "io_logging_api_key_ids must have at most {MAX_LOGGED_KEY_IDS} entries"
                )));
            }
            if ids.iter().any(|id| *id < 0) {
                return Err(ManageError::Invalid(
                    "io_logging_api_key_ids must be non-negative integers".into(),
                ));
            }
        }
        s.io_logging_api_key_ids = ids.clone();
    }
    if let Some(tools) = &input.disabled_server_tools {
        let mut list = Vec::new();
        for tool in tools.iter().flatten() {
            if !SERVER_TOOLS.contains(&tool.as_str()) {
                return Err(ManageError::Invalid(format!(
                    "disabled_server_tools: unknown tool {tool:?}; known tools are {}",
                    SERVER_TOOLS.join(", ")
                )));
            }
            if !list.contains(tool) {
                list.push(tool.clone());
            }
        }
        // The SDK: an empty array or null clears the list.
        s.disabled_server_tools = (!list.is_empty()).then_some(list);
    }
    w.settings = s.to_map();
    Ok(())
}

/// Budget limits must strictly decrease as the interval narrows (lifetime > monthly > weekly
/// > daily), as the SDK documents. `others` are the workspace's other budgets.
pub fn check_budget_order(
    interval: Window,
    limit: Money,
    others: &[(Window, Money)],
) -> ManageResult<()> {
    for &(other, other_limit) in others {
        let ok = match other.cmp(&interval) {
            std::cmp::Ordering::Less => limit > other_limit,
            std::cmp::Ordering::Greater => limit < other_limit,
            std::cmp::Ordering::Equal => true,
        };
        if !ok {
            let relation = if other < interval { "greater" } else { "less" };
            return Err(ManageError::Invalid(format!(
                "The {interval} budget must be {relation} than the {other} budget ({} USD): \
                 limits must strictly decrease as the interval narrows \
                 (lifetime > monthly > weekly > daily)",
                other_limit
            )));
        }
    }
    Ok(())
}

/// Trims, de-duplicates and bounds a bulk call's user ids.
fn user_list(user_ids: &[String]) -> ManageResult<Vec<String>> {
    let mut ids: Vec<String> = Vec::new();
    for id in user_ids.iter().map(|u| u.trim()) {
        if id.is_empty() {
            return Err(ManageError::Invalid(
                "user_ids must not contain empty ids".into(),
            ));
        }
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_owned());
        }
    }
    if ids.is_empty() {
        return Err(ManageError::Invalid("user_ids must not be empty".into()));
    }
    if ids.len() > MAX_USERS_PER_CALL {
        return Err(ManageError::Invalid(format!(
            "user_ids must have at most {MAX_USERS_PER_CALL} entries"
        )));
    }
    Ok(ids)
}

/// A unique-index violation on insert or update means a concurrent request took the slug.
fn slug_conflict(e: StoreError, slug: &str) -> ManageError {
    match &e {
        StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation() => taken(slug),
        _ => e.into(),
    }
}

fn taken(slug: &str) -> ManageError {
    ManageError::Conflict(format!("A workspace with slug {slug:?} already exists"))
}

fn not_found(reference: &str) -> ManageError {
    ManageError::NotFound(format!("Workspace {reference} not found"))
}

/// The audit log's view of a workspace.
fn audit_view(w: &WorkspaceRow) -> Value {
    json!({
        "id": w.id, "organization_id": w.organization_id, "name": w.name, "slug": w.slug,
        "description": w.description, "is_default": w.is_default,
        "settings": Value::Object(w.settings.clone()),
    })
}

fn budget_view(b: &WorkspaceBudgetRow) -> Value {
    json!({
        "id": b.id, "workspace_id": b.workspace_id, "interval": b.reset_interval,
        "limit_usd": b.limit_usd, "include_byok": b.include_byok,
    })
}

impl Manage {
    /// The workspace an actor may use (to hold a key, say): by id or slug, or the actor's
    /// organization's Default when `reference` is `None`.
    ///
    /// Members name workspaces of their own organization only (others are 404) and may use
    /// those they belong to (others are 403); admins may use all of their organization's. The
    /// operator names workspaces by id, and must name one, having no organization of its own.
    pub async fn workspace_for_actor(
        &self,
        actor: &Actor,
        reference: Option<&str>,
    ) -> ManageResult<WorkspaceRow> {
        let w = match reference {
            None => {
                let organization_id = actor.target_organization(None)?;
                self.store
                    .default_workspace(&organization_id)
                    .await?
                    .ok_or_else(|| not_found("(default)"))?
            }
            Some(r) => self.find(actor, r).await?.ok_or_else(|| not_found(r))?,
        };
        if !self.belongs(actor, &w).await? {
            return Err(ManageError::Forbidden(format!(
                "You are not a member of workspace {}",
                w.slug
            )));
        }
        Ok(w)
    }

    /// A page of the workspaces the actor sees in an organization (a member's own unless the
    /// operator names one), the Default first, and how many there are.
    pub async fn list_workspaces(
        &self,
        actor: &Actor,
        organization_id: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> ManageResult<(Vec<WorkspaceRow>, i64)> {
        let organization_id = actor.target_organization(organization_id)?;
        let only_of = if actor.is_admin_of(&organization_id) {
            None
        } else {
            actor.user_id()
        };
        Ok(self
            .store
            .workspaces_of_organization(&organization_id, only_of, offset, limit)
            .await?)
    }

    pub async fn get_workspace(
        &self,
        actor: &Actor,
        reference: &str,
    ) -> ManageResult<WorkspaceRow> {
        self.visible(actor, reference).await
    }

    /// Admins only. The creator (a user) becomes the workspace's first member.
    pub async fn create_workspace(
        &self,
        actor: &Actor,
        organization_id: Option<&str>,
        input: &WorkspaceInput,
    ) -> ManageResult<WorkspaceRow> {
        let this = self.begin().await?;
        let organization_id = actor.target_organization(organization_id)?;
        actor.require_admin(&organization_id, "Organization")?;
        if this.store.organization(&organization_id).await?.is_none() {
            return Err(ManageError::NotFound(format!(
                "Organization {organization_id} not found"
            )));
        }
        if input.name.is_none() {
            return Err(ManageError::Invalid("name is required".into()));
        }
        if input.slug.is_none() {
            return Err(ManageError::Invalid("slug is required".into()));
        }
        let mut w = WorkspaceRow {
            id: new_id("ws"),
            organization_id,
            name: String::new(),
            slug: String::new(),
            description: None,
            is_default: false,
            created_by: actor.user_id().map(str::to_owned),
            created_at: crate::now_ms(),
            updated_at: None,
            settings: WorkspaceSettings::default().to_map(),
        };
        apply_input(&mut w, input)?;
        this.check_models(input).await?;
        this.ensure_slug_free(&w).await?;
        this.store
            .create_workspace(&w, actor.user_id())
            .await
            .map_err(|e| slug_conflict(e, &w.slug))?;
        this.audit(
            actor,
            Some(&w.organization_id),
            "workspace.create",
            &w.id,
            None,
            Some(&audit_view(&w)),
        )
        .await?;
        this.commit(Publish::Snapshot).await?;
        Ok(w)
    }

    /// Admins only. The Default workspace keeps its slug.
    pub async fn update_workspace(
        &self,
        actor: &Actor,
        reference: &str,
        input: &WorkspaceInput,
    ) -> ManageResult<WorkspaceRow> {
        let this = self.begin().await?;
        let before = this.administered(actor, reference).await?;
        let mut w = before.clone();
        apply_input(&mut w, input)?;
        if w.is_default && w.slug != before.slug {
            return Err(ManageError::Invalid(
                "The Default workspace's slug cannot be changed".into(),
            ));
        }
        this.check_models(input).await?;
        if w.slug != before.slug {
            this.ensure_slug_free(&w).await?;
        }
        w.updated_at = Some(crate::now_ms());
        this.store
            .update_workspace(&w)
            .await
            .map_err(|e| slug_conflict(e, &w.slug))?;
        this.audit(
            actor,
            Some(&w.organization_id),
            "workspace.update",
            &w.id,
            Some(&audit_view(&before)),
            Some(&audit_view(&w)),
        )
        .await?;
        this.commit(Publish::Snapshot).await?;
        Ok(w)
    }

    /// Admins only; never the Default workspace. A workspace holding keys, presets, BYOK
    /// credentials or guardrails is refused unless `force`, which deletes them with it.
    /// Returns what it held.
    pub async fn delete_workspace(
        &self,
        actor: &Actor,
        reference: &str,
        force: bool,
    ) -> ManageResult<WorkspaceContents> {
        let this = self.begin().await?;
        let w = this.administered(actor, reference).await?;
        if w.is_default {
            return Err(ManageError::Invalid(
                "The Default workspace cannot be deleted".into(),
            ));
        }
        // A key cannot delete itself (as with `DELETE /keys/{hash}`), not even by force.
        if let Actor::Member { key_hash, .. } = actor
            && this
                .store
                .key(key_hash)
                .await?
                .is_some_and(|k| k.workspace_id == w.id)
        {
            return Err(ManageError::Invalid(
                "The calling key belongs to this workspace; use a key of another workspace to delete it"
                    .into(),
            ));
        }
        let (contents, deleted) = this.store.delete_workspace(&w.id, force).await?;
        if !deleted {
            if contents.is_empty() || force {
                // Deleted concurrently by another request.
                return Err(not_found(reference));
            }
            return Err(ManageError::Conflict(format!(
                "Workspace {} still holds {} API key(s), {} preset(s), {} BYOK credential(s) and \
                 {} guardrail(s); move or delete them first, or pass force=true to delete them \
                 with the workspace",
                w.slug,
                contents.key_hashes.len(),
                contents.presets,
                contents.byok_credentials,
                contents.guardrails
            )));
        }
        let before = json!({
            "workspace": audit_view(&w),
            "deleted_key_hashes": contents.key_hashes,
            "deleted_presets": contents.presets,
            "deleted_byok_credentials": contents.byok_credentials,
            "deleted_guardrails": contents.guardrails,
        });
        this.audit(
            actor,
            Some(&w.organization_id),
            "workspace.delete",
            &w.id,
            Some(&before),
            None,
        )
        .await?;
        this.commit(Publish::Snapshot).await?;
        Ok(contents)
    }

    /// A page of a workspace's members, for those who see the workspace.
    pub async fn list_workspace_members(
        &self,
        actor: &Actor,
        reference: &str,
        offset: i64,
        limit: i64,
    ) -> ManageResult<(Vec<WorkspaceMember>, i64)> {
        let w = self.visible(actor, reference).await?;
        let (rows, total) = self.store.workspace_members(&w, offset, limit).await?;
        Ok((
            rows.iter().map(|m| WorkspaceMember::of(&w.id, m)).collect(),
            total,
        ))
    }

    /// Admins only. Every user must be a member of the workspace's organization, or nothing is
    /// added. Returns the memberships created (those already members are left as they are).
    pub async fn add_workspace_members(
        &self,
        actor: &Actor,
        reference: &str,
        user_ids: &[String],
    ) -> ManageResult<Vec<WorkspaceMember>> {
        let this = self.begin().await?;
        let w = this.administered(actor, reference).await?;
        let ids = user_list(user_ids)?;
        let mut memberships = Vec::with_capacity(ids.len());
        let mut outsiders = Vec::new();
        for id in &ids {
            match this.store.membership(&w.organization_id, id).await? {
                Some(m) => memberships.push(m),
                None => outsiders.push(id.as_str()),
            }
        }
        if !outsiders.is_empty() {
            return Err(ManageError::Invalid(format!(
                "Not members of this workspace's organization: {}",
                outsiders.join(", ")
            )));
        }
        let now = crate::now_ms();
        let added = this.store.add_workspace_members(&w.id, &ids, now).await?;
        let members: Vec<WorkspaceMember> = memberships
            .iter()
            .filter(|m| added.contains(&m.user_id))
            .map(|m| {
                WorkspaceMember::of(
                    &w.id,
                    &MemberRow {
                        created_at: now,
                        ..m.clone()
                    },
                )
            })
            .collect();
        if !added.is_empty() {
            this.audit(
                actor,
                Some(&w.organization_id),
                "workspace.members.add",
                &w.id,
                None,
                Some(&json!({ "workspace_id": w.id, "user_ids": added })),
            )
            .await?;
            this.commit(Publish::No).await?;
        }
        Ok(members)
    }

    /// Admins only; never from the Default workspace, and never a user who still has live keys
    /// in the workspace. Returns how many were members.
    pub async fn remove_workspace_members(
        &self,
        actor: &Actor,
        reference: &str,
        user_ids: &[String],
    ) -> ManageResult<u64> {
        let this = self.begin().await?;
        let w = this.administered(actor, reference).await?;
        if w.is_default {
            return Err(ManageError::Invalid(
                "Members cannot be removed from the Default workspace: every organization member belongs to it"
                    .into(),
            ));
        }
        let ids = user_list(user_ids)?;
        let now = crate::now_ms();
        let mut holders = Vec::new();
        for id in &ids {
            if this.store.live_keys_in_workspace(&w.id, id, now).await? > 0 {
                holders.push(id.as_str());
            }
        }
        if !holders.is_empty() {
            return Err(ManageError::Invalid(format!(
                "Members with active API keys in this workspace cannot be removed: {}",
                holders.join(", ")
            )));
        }
        let removed = this.store.remove_workspace_members(&w.id, &ids).await?;
        if removed > 0 {
            this.audit(
                actor,
                Some(&w.organization_id),
                "workspace.members.remove",
                &w.id,
                Some(&json!({ "workspace_id": w.id, "user_ids": ids })),
                None,
            )
            .await?;
            this.commit(Publish::No).await?;
        }
        Ok(removed)
    }

    /// A workspace's budgets, for those who see the workspace.
    pub async fn list_workspace_budgets(
        &self,
        actor: &Actor,
        reference: &str,
    ) -> ManageResult<Budgets> {
        let w = self.visible(actor, reference).await?;
        Ok(Budgets {
            budgets: self.store.workspace_budgets(&w.id).await?,
            include_byok_in_budgets: WorkspaceSettings::of(&w)?.include_byok_in_budgets,
        })
    }

    /// One interval's budget (404 if there is none), and the workspace-wide BYOK setting.
    pub async fn get_workspace_budget(
        &self,
        actor: &Actor,
        reference: &str,
        interval: Window,
    ) -> ManageResult<(WorkspaceBudgetRow, bool)> {
        let all = self.list_workspace_budgets(actor, reference).await?;
        let budget = all
            .budgets
            .into_iter()
            .find(|b| b.reset_interval == interval.name())
            .ok_or_else(|| {
                ManageError::NotFound(format!("Workspace {reference} has no {interval} budget"))
            })?;
        Ok((budget, all.include_byok_in_budgets))
    }

    /// Admins only. Creates or replaces one interval's budget; `include_byok`, when given,
    /// changes the workspace-wide setting for all its budgets.
    pub async fn upsert_workspace_budget(
        &self,
        actor: &Actor,
        reference: &str,
        interval: Window,
        limit_usd: f64,
        include_byok: Option<bool>,
    ) -> ManageResult<(WorkspaceBudgetRow, bool)> {
        let this = self.begin().await?;
        let w = this.administered(actor, reference).await?;
        let limit = money("limit_usd", limit_usd)?;
        if limit == Money::ZERO {
            return Err(ManageError::Invalid(
                "limit_usd must be greater than 0".into(),
            ));
        }
        let existing = this.store.workspace_budgets(&w.id).await?;
        let mut others = Vec::with_capacity(existing.len());
        for b in &existing {
            if let Some(other) = Window::from_name(&b.reset_interval) {
                others.push((
                    other,
                    super::stored_money("workspace budget", &b.limit_usd)?,
                ));
            }
        }
        check_budget_order(interval, limit, &others)?;
        let mut settings = WorkspaceSettings::of(&w)?;
        let byok_before = settings.include_byok_in_budgets;
        if let Some(on) = include_byok {
            settings.include_byok_in_budgets = on;
        }
        let now = crate::now_ms();
        let budget = WorkspaceBudgetRow {
            id: new_id("wsb"),
            workspace_id: w.id.clone(),
            reset_interval: interval.name().to_owned(),
            limit_usd: limit.to_string(),
            include_byok: settings.include_byok_in_budgets,
            created_at: now,
            updated_at: now,
        };
        let stored = this
            .store
            .upsert_workspace_budget(&budget, &settings.to_map())
            .await?;
        let before = existing
            .iter()
            .find(|b| b.reset_interval == interval.name())
            .map(budget_view)
            .unwrap_or(Value::Null);
        this.audit(
            actor,
            Some(&w.organization_id),
            "workspace.budget.upsert",
            &format!("{}/budgets/{interval}", w.id),
            Some(&json!({ "budget": before, "include_byok_in_budgets": byok_before })),
            Some(&json!({
                "budget": budget_view(&stored),
                "include_byok_in_budgets": settings.include_byok_in_budgets,
            })),
        )
        .await?;
        // Budgets are enforcement configuration: dataplanes must see the change at once.
        this.commit(Publish::Snapshot).await?;
        Ok((stored, settings.include_byok_in_budgets))
    }

    /// Admins only. Deleting a budget that does not exist succeeds, as the SDK documents.
    pub async fn delete_workspace_budget(
        &self,
        actor: &Actor,
        reference: &str,
        interval: Window,
    ) -> ManageResult<()> {
        let this = self.begin().await?;
        let w = this.administered(actor, reference).await?;
        let before = this
            .store
            .workspace_budgets(&w.id)
            .await?
            .into_iter()
            .find(|b| b.reset_interval == interval.name());
        let Some(before) = before else {
            return Ok(());
        };
        if this
            .store
            .delete_workspace_budget(&w.id, interval.name())
            .await?
        {
            this.audit(
                actor,
                Some(&w.organization_id),
                "workspace.budget.delete",
                &format!("{}/budgets/{interval}", w.id),
                Some(&budget_view(&before)),
                None,
            )
            .await?;
            this.commit(Publish::Snapshot).await?;
        }
        Ok(())
    }

    /// A workspace by id or slug within a member's organization; the operator's by id.
    async fn find(&self, actor: &Actor, reference: &str) -> ManageResult<Option<WorkspaceRow>> {
        Ok(match actor.organization_id() {
            Some(organization_id) => {
                self.store
                    .workspace_by_ref(organization_id, reference)
                    .await?
            }
            None => self.store.workspace(reference).await?,
        })
    }

    /// Does the actor belong to the workspace: the operator and the organization's admins
    /// always, every member to the Default, others once added.
    async fn belongs(&self, actor: &Actor, w: &WorkspaceRow) -> ManageResult<bool> {
        if !actor.sees(&w.organization_id) {
            return Ok(false);
        }
        if actor.is_admin_of(&w.organization_id) || w.is_default {
            return Ok(true);
        }
        match actor.user_id() {
            Some(user_id) => Ok(self.store.is_workspace_member(&w.id, user_id).await?),
            None => Ok(false),
        }
    }

    /// A workspace the actor belongs to; any other is "not found".
    async fn visible(&self, actor: &Actor, reference: &str) -> ManageResult<WorkspaceRow> {
        match self.find(actor, reference).await? {
            Some(w) if self.belongs(actor, &w).await? => Ok(w),
            _ => Err(not_found(reference)),
        }
    }

    /// A workspace the actor sees and administers: 404 if unseen, 403 for a non-admin.
    async fn administered(&self, actor: &Actor, reference: &str) -> ManageResult<WorkspaceRow> {
        let w = self.visible(actor, reference).await?;
        actor.require_admin(&w.organization_id, "Workspace")?;
        Ok(w)
    }

    async fn ensure_slug_free(&self, w: &WorkspaceRow) -> ManageResult<()> {
        match self
            .store
            .workspace_by_ref(&w.organization_id, &w.slug)
            .await?
        {
            Some(other) if other.id != w.id => Err(taken(&w.slug)),
            _ => Ok(()),
        }
    }

    /// Default models named by `input` must be in the catalogue.
    async fn check_models(&self, input: &WorkspaceInput) -> ManageResult<()> {
        for (field, value) in [
            ("default_text_model", &input.default_text_model),
            ("default_image_model", &input.default_image_model),
        ] {
            if let Some(Some(id)) = value {
                let id = id.trim();
                if !self.store.model_exists(id).await? {
                    return Err(ManageError::Invalid(format!(
                        "{field}: model {id:?} is not in the catalogue"
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> WorkspaceRow {
        WorkspaceRow {
            id: "ws_1".into(),
            organization_id: "o1".into(),
            name: "Team".into(),
            slug: "team".into(),
            description: None,
            is_default: false,
            created_by: None,
            created_at: 1,
            updated_at: None,
            settings: Map::new(),
        }
    }

    fn applied(input: WorkspaceInput) -> ManageResult<WorkspaceRow> {
        let mut w = row();
        apply_input(&mut w, &input)?;
        Ok(w)
    }

    #[test]
    fn empty_settings_read_as_defaults() {
        let s = WorkspaceSettings::of(&row()).unwrap();
        assert_eq!(s, WorkspaceSettings::default());
        assert_eq!(s.io_logging_sampling_rate, 1.0);
        let mut w = row();
        w.settings = s.to_map();
        assert_eq!(WorkspaceSettings::of(&w).unwrap(), s, "round trip");
    }

    #[test]
    fn corrupt_settings_are_a_store_error() {
        let mut w = row();
        w.settings
            .insert("io_logging_sampling_rate".into(), json!("high"));
        assert!(matches!(
            WorkspaceSettings::of(&w),
            Err(ManageError::Store(StoreError::Corrupt(_)))
        ));
    }

    #[test]
    fn slugs_follow_the_sdk_rule() {
        for good in ["team", "team-a", "a1-b2-c3", "7"] {
            assert!(workspace_slug(good).is_ok(), "{good}");
        }
        for bad in ["", "-team", "team-", "team--a", "Team", "team a", "team_a"] {
            assert!(
                matches!(workspace_slug(bad), Err(ManageError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn sampling_rate_is_bounded() {
        for ok in [0.0001, 0.5, 1.0] {
            let w = applied(WorkspaceInput {
                io_logging_sampling_rate: Some(ok),
                ..Default::default()
            })
            .unwrap();
            assert_eq!(
                WorkspaceSettings::of(&w).unwrap().io_logging_sampling_rate,
                ok
            );
        }
        for bad in [0.0, -0.1, 1.01, f64::NAN, f64::INFINITY] {
            let err = applied(WorkspaceInput {
                io_logging_sampling_rate: Some(bad),
                ..Default::default()
            })
            .unwrap_err();
            assert_eq!(
                err.to_string(),
                "io_logging_sampling_rate must be between 0.0001 and 1"
            );
        }
    }

    #[test]
    fn provider_sort_is_one_of_the_sdk_values() {
        let w = applied(WorkspaceInput {
            default_provider_sort: Some(Some("latency".into())),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            WorkspaceSettings::of(&w)
                .unwrap()
                .default_provider_sort
                .as_deref(),
            Some("latency")
        );
        let err = applied(WorkspaceInput {
            default_provider_sort: Some(Some("cheapest".into())),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "default_provider_sort: sort must be one of price, throughput, latency (got \"cheapest\")"
        );
        let cleared = applied(WorkspaceInput {
            default_provider_sort: Some(None),
            ..Default::default()
        })
        .unwrap();
        assert!(
            WorkspaceSettings::of(&cleared)
                .unwrap()
                .default_provider_sort
                .is_none()
        );
    }

    #[test]
    fn server_tools_are_known_and_empty_clears() {
        let w = applied(WorkspaceInput {
            disabled_server_tools: Some(Some(vec![
                "openrouter:web_search".into(),
                "openrouter:web_search".into(),
                "openrouter:bash".into(),
            ])),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            WorkspaceSettings::of(&w).unwrap().disabled_server_tools,
            Some(vec![
                "openrouter:web_search".to_owned(),
                "openrouter:bash".to_owned()
            ])
        );
        let cleared = applied(WorkspaceInput {
            disabled_server_tools: Some(Some(vec![])),
            ..Default::default()
        })
        .unwrap();
        assert!(
            WorkspaceSettings::of(&cleared)
                .unwrap()
                .disabled_server_tools
                .is_none()
        );
        assert!(
            applied(WorkspaceInput {
                disabled_server_tools: Some(Some(vec!["openrouter:teleport".into()])),
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn names_models_and_key_ids_are_checked() {
        assert!(
            applied(WorkspaceInput {
                name: Some("  ".into()),
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            applied(WorkspaceInput {
                default_text_model: Some(Some(" ".into())),
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            applied(WorkspaceInput {
                io_logging_api_key_ids: Some(Some(vec![1, -2])),
                ..Default::default()
            })
            .is_err()
        );
        let w = applied(WorkspaceInput {
            description: Some(Some("  ".into())),
            io_logging_api_key_ids: Some(Some(vec![3])),
            is_observability_io_logging_enabled: Some(true),
            ..Default::default()
        })
        .unwrap();
        assert!(w.description.is_none(), "a blank description clears it");
        let s = WorkspaceSettings::of(&w).unwrap();
        assert_eq!(s.io_logging_api_key_ids, Some(vec![3]));
        assert!(s.is_observability_io_logging_enabled);
    }

    #[test]
    fn budgets_strictly_decrease_as_the_interval_narrows() {
        use Window::*;
        let usd = |n: u64| Money::from_micros(n * 1_000_000);
        let existing = [(Daily, usd(10)), (Monthly, usd(100))];
        assert!(check_budget_order(Weekly, usd(50), &existing).is_ok());
        assert!(
            check_budget_order(Weekly, usd(10), &existing).is_err(),
            "equal to daily"
        );
        assert!(
            check_budget_order(Weekly, usd(100), &existing).is_err(),
            "equal to monthly"
        );
        assert!(check_budget_order(Lifetime, usd(90), &existing).is_err());
        assert!(check_budget_order(Daily, usd(100), &existing).is_err());
        // Replacing an interval's own budget is not compared with itself.
        assert!(check_budget_order(Daily, usd(20), &[(Daily, usd(10))]).is_ok());
        let err = check_budget_order(Weekly, usd(5), &existing).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("The weekly budget must be greater than the daily budget (10 USD)"),
            "{err}"
        );
    }

    #[test]
    fn intervals_parse_and_order() {
        assert_eq!(budget_interval("lifetime").unwrap(), Window::Lifetime);
        assert!(budget_interval("yearly").is_err());
        assert!(Window::Daily < Window::Weekly);
        assert!(Window::Monthly < Window::Lifetime);
    }

    #[test]
    fn pages_and_user_lists_are_bounded() {
        use crate::manage::page;
        assert_eq!(page(None, None).unwrap(), (0, 50));
        assert_eq!(page(Some(5), Some(100)).unwrap(), (5, 100));
        assert!(page(Some(-1), None).is_err());
        assert!(page(None, Some(0)).is_err());
        assert!(page(None, Some(101)).is_err());
        assert_eq!(
            user_list(&["a".into(), " a ".into(), "b".into()]).unwrap(),
            vec!["a".to_owned(), "b".to_owned()]
        );
        assert!(user_list(&[]).is_err());
        assert!(user_list(&["".into()]).is_err());
        let many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
        assert!(user_list(&many).is_err());
    }
}
