//! Guardrails: restrictions (models, providers, zero data retention) and a budget, applied to
//! the keys and members they are assigned to, or to all of a workspace's traffic when they are
//! its default guardrail (`gr_default_<workspace id>`, created with the workspace).
//!
//! Who may do what: admins (and the operator) create, change, delete and assign; every member
//! of the organization may list and read its guardrails, and the assignments of their own keys
//! and of themselves. Another organization's guardrails are "not found".

use serde_json::{Value, json};

use super::MAX_PAGE;
use super::{Actor, Manage, ManageError, ManageResult, Publish, Role, money, new_id, valid_name};
use crate::store::{GuardrailRow, KeyAssignmentRow, MemberAssignmentRow, WorkspaceRow, ZdrFlags};

const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 1000;
/// Bounds each model or provider list, and each bulk assignment call.
const MAX_LIST: usize = 1000;

/// The SDK's `GuardrailInterval` values.
pub const RESET_INTERVALS: &[&str] = &["daily", "weekly", "monthly"];

/// A guardrail to create, or a change to one: `None` leaves a field unchanged (or at its
/// default), `Some(None)` clears a nullable one. `name` is required to create.
#[derive(Clone, Debug, Default)]
pub struct GuardrailInput {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    /// Create only: the workspace (id or slug); the organization's Default when absent.
    pub workspace: Option<String>,
    pub limit_usd: Option<Option<f64>>,
    pub reset_interval: Option<Option<String>>,
    pub include_byok_in_budgets: Option<bool>,
    pub allowed_models: Option<Option<Vec<String>>>,
    pub ignored_models: Option<Option<Vec<String>>>,
    pub allowed_providers: Option<Option<Vec<String>>>,
    pub ignored_providers: Option<Option<Vec<String>>>,
    /// Deprecated by the SDK: copied into each per-group flag the request does not set.
    pub enforce_zdr: Option<Option<bool>>,
    pub enforce_zdr_anthropic: Option<Option<bool>>,
    pub enforce_zdr_openai: Option<Option<bool>>,
    pub enforce_zdr_google: Option<Option<bool>>,
    pub enforce_zdr_xai: Option<Option<bool>>,
    pub enforce_zdr_other: Option<Option<bool>>,
    /// SDK settings this gateway cannot enforce that the request sets to something
    /// restrictive. They are refused: accepting them would promise a protection it lacks.
    pub unsupported: Vec<String>,
}

/// Trims, de-duplicates and bounds a list of ids; an empty list is "no restriction" (`None`).
fn id_list(field: &str, list: Option<&Vec<String>>) -> ManageResult<Option<Vec<String>>> {
    let Some(list) = list else {
        return Ok(None);
    };
    let mut ids: Vec<String> = Vec::with_capacity(list.len());
    for id in list.iter().map(|s| s.trim()) {
        if id.is_empty() {
            return Err(ManageError::Invalid(format!(
                "{field} must not contain empty ids"
            )));
        }
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_owned());
        }
    }
    if ids.len() > MAX_LIST {
        return Err(ManageError::Invalid(format!(
            "{field} must have at most {MAX_LIST} entries"
        )));
    }
    Ok((!ids.is_empty()).then_some(ids))
}

/// Applies `input` to a guardrail after validating each field. Model and provider ids are
/// checked against the catalogue separately (`check_catalogue`), since that needs the store.
pub fn apply_input(g: &mut GuardrailRow, input: &GuardrailInput) -> ManageResult<()> {
    if !input.unsupported.is_empty() {
        return Err(ManageError::Invalid(format!(
            "Not supported by this gateway, so refused rather than ignored: {}",
            input.unsupported.join(", ")
        )));
    }
    if let Some(name) = &input.name {
        g.name = valid_name("name", name, MAX_NAME)?;
    }
    if let Some(description) = &input.description {
        g.description = match description.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(d) => Some(valid_name("description", d, MAX_DESCRIPTION)?),
        };
    }
    if let Some(limit) = input.limit_usd {
        g.limit_usd = limit
            .map(|l| money("limit_usd", l).map(|m| m.to_string()))
            .transpose()?;
    }
    if let Some(interval) = &input.reset_interval {
        g.reset_interval = match interval.as_deref() {
            None => None,
            Some(i) if RESET_INTERVALS.contains(&i) => Some(i.to_owned()),
            Some(i) => {
                return Err(ManageError::Invalid(format!(
                    "reset_interval must be one of {} (got {i:?})",
                    RESET_INTERVALS.join(", ")
                )));
            }
        };
    }
    // The SDK: a limit must come with its interval, and an interval with its limit.
    if g.limit_usd.is_some() != g.reset_interval.is_some() {
        return Err(ManageError::Invalid(
            "limit_usd and reset_interval must be set together".into(),
        ));
    }
    if let Some(on) = input.include_byok_in_budgets {
        g.include_byok = on;
    }
    for (field, value, target) in [
        (
            "allowed_models",
            &input.allowed_models,
            &mut g.allowed_models,
        ),
        (
            "ignored_models",
            &input.ignored_models,
            &mut g.ignored_models,
        ),
        (
            "allowed_providers",
            &input.allowed_providers,
            &mut g.allowed_providers,
        ),
        (
            "ignored_providers",
            &input.ignored_providers,
            &mut g.ignored_providers,
        ),
    ] {
        if let Some(list) = value {
            *target = id_list(field, list.as_ref())?;
        }
    }
    let legacy = input.enforce_zdr;
    for (value, target) in [
        (input.enforce_zdr_anthropic, &mut g.zdr.anthropic),
        (input.enforce_zdr_openai, &mut g.zdr.openai),
        (input.enforce_zdr_google, &mut g.zdr.google),
        (input.enforce_zdr_xai, &mut g.zdr.xai),
        (input.enforce_zdr_other, &mut g.zdr.other),
    ] {
        if let Some(v) = value.or(legacy) {
            *target = v;
        }
    }
    Ok(())
}

/// The SDK's deprecated single flag: true when every group enforces, null when none is set.
pub fn legacy_zdr(z: &ZdrFlags) -> Option<bool> {
    let all = [z.anthropic, z.openai, z.google, z.xai, z.other];
    if all.iter().all(Option::is_none) {
        None
    } else {
        Some(all.iter().all(|f| *f == Some(true)))
    }
}

/// Trims, de-duplicates and bounds a bulk call's ids.
fn bulk_list(field: &str, ids: &[String]) -> ManageResult<Vec<String>> {
    match id_list(field, Some(&ids.to_vec()))? {
        Some(ids) => Ok(ids),
        None => Err(ManageError::Invalid(format!("{field} must not be empty"))),
    }
}

fn not_found(id: &str) -> ManageError {
    ManageError::NotFound(format!("Guardrail {id} not found"))
}

fn audit_view(g: &GuardrailRow) -> Value {
    json!({
        "id": g.id, "organization_id": g.organization_id, "workspace_id": g.workspace_id,
        "name": g.name, "description": g.description, "is_default": g.is_default,
        "limit_usd": g.limit_usd, "reset_interval": g.reset_interval,
        "include_byok_in_budgets": g.include_byok,
        "allowed_models": g.allowed_models, "ignored_models": g.ignored_models,
        "allowed_providers": g.allowed_providers, "ignored_providers": g.ignored_providers,
        "enforce_zdr_anthropic": g.zdr.anthropic, "enforce_zdr_openai": g.zdr.openai,
        "enforce_zdr_google": g.zdr.google, "enforce_zdr_xai": g.zdr.xai,
        "enforce_zdr_other": g.zdr.other,
    })
}

/// Members (not admins) see only the assignments of their own keys and of themselves.
fn own_only(actor: &Actor) -> Option<&str> {
    match actor {
        Actor::Member { user_id, role, .. } if *role != Role::Admin => Some(user_id),
        _ => None,
    }
}

impl Manage {
    /// A guardrail of the actor's organization; any other is "not found".
    pub async fn get_guardrail(&self, actor: &Actor, id: &str) -> ManageResult<GuardrailRow> {
        match self.store.guardrail(id).await? {
            Some(g) if actor.sees(&g.organization_id) => Ok(g),
            _ => Err(not_found(id)),
        }
    }

    /// A guardrail the actor sees and administers: 404 if unseen, 403 for a non-admin.
    async fn administered_guardrail(&self, actor: &Actor, id: &str) -> ManageResult<GuardrailRow> {
        let g = self.get_guardrail(actor, id).await?;
        actor.require_admin(&g.organization_id, "Guardrail")?;
        Ok(g)
    }

    /// A workspace of the actor's organization by id or slug (the operator's by id), or the
    /// organization's Default when `reference` is `None`.
    async fn guardrail_workspace(
        &self,
        actor: &Actor,
        reference: Option<&str>,
    ) -> ManageResult<WorkspaceRow> {
        let found = match (reference, actor.organization_id()) {
            (Some(r), Some(org)) => self.store.workspace_by_ref(org, r).await?,
            (Some(r), None) => self.store.workspace(r).await?,
            (None, _) => {
                let org = actor.target_organization(None)?;
                self.store.default_workspace(&org).await?
            }
        };
        found.ok_or_else(|| {
            ManageError::NotFound(format!(
                "Workspace {} not found",
                reference.unwrap_or("(default)")
            ))
        })
    }

    /// A page of one workspace's guardrails (the Default workspace's unless named), its
    /// default guardrail first, and how many there are.
    pub async fn list_guardrails(
        &self,
        actor: &Actor,
        workspace: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> ManageResult<(Vec<GuardrailRow>, i64)> {
        let w = self.guardrail_workspace(actor, workspace).await?;
        Ok(self
            .store
            .guardrails_of_workspace(&w.id, offset, limit.clamp(1, MAX_PAGE))
            .await?)
    }

    /// Admins only. A new guardrail enforces nothing until it is assigned.
    pub async fn create_guardrail(
        &self,
        actor: &Actor,
        input: &GuardrailInput,
    ) -> ManageResult<GuardrailRow> {
        let this = self.begin().await?;
        let w = this
            .guardrail_workspace(actor, input.workspace.as_deref())
            .await?;
        actor.require_admin(&w.organization_id, "Workspace")?;
        if input.name.is_none() {
            return Err(ManageError::Invalid("name is required".into()));
        }
        let mut g = GuardrailRow {
            id: new_id("gr"),
            name: String::new(),
            is_default: false,
            created_by: actor.user_id().map(str::to_owned),
            ..GuardrailRow::default_for(&w.id, &w.organization_id, crate::now_ms())
        };
        apply_input(&mut g, input)?;
        this.check_catalogue(input).await?;
        this.store.insert_guardrail(&g).await?;
        this.audit(
            actor,
            Some(&g.organization_id),
            "guardrail.create",
            &g.id,
            None,
            Some(&audit_view(&g)),
        )
        .await?;
        this.commit(Publish::Snapshot).await?;
        Ok(g)
    }

    /// Admins only. List fields are replaced whole, as the SDK documents.
    pub async fn update_guardrail(
        &self,
        actor: &Actor,
        id: &str,
        input: &GuardrailInput,
    ) -> ManageResult<GuardrailRow> {
        let this = self.begin().await?;
        let before = this.administered_guardrail(actor, id).await?;
        if input.workspace.is_some() {
            return Err(ManageError::Invalid(
                "A guardrail cannot move to another workspace".into(),
            ));
        }
        let mut g = before.clone();
        apply_input(&mut g, input)?;
        this.check_catalogue(input).await?;
        g.updated_at = Some(crate::now_ms());
        if !this.store.update_guardrail(&g).await? {
            return Err(not_found(id));
        }
        this.audit(
            actor,
            Some(&g.organization_id),
            "guardrail.update",
            &g.id,
            Some(&audit_view(&before)),
            Some(&audit_view(&g)),
        )
        .await?;
        this.commit(Publish::Snapshot).await?;
        Ok(g)
    }

    /// Admins only; never a workspace's default guardrail. Its assignments go with it.
    pub async fn delete_guardrail(&self, actor: &Actor, id: &str) -> ManageResult<()> {
        let this = self.begin().await?;
        let g = this.administered_guardrail(actor, id).await?;
        if g.is_default {
            return Err(ManageError::Invalid(
                "A workspace's default guardrail cannot be deleted; update it to lift its restrictions"
                    .into(),
            ));
        }
        let (keys, members, deleted) = this.store.delete_guardrail(&g.id).await?;
        if !deleted {
            return Err(not_found(id));
        }
        this.audit(
            actor,
            Some(&g.organization_id),
            "guardrail.delete",
            &g.id,
            Some(&json!({
                "guardrail": audit_view(&g),
                "key_assignments": keys,
                "member_assignments": members,
            })),
            None,
        )
        .await?;
        this.commit(Publish::Snapshot).await?;
        Ok(())
    }

    /// Admins only. Each key must belong to the guardrail's organization; a key holds one
    /// guardrail, so assigning replaces the one it held. Returns how many keys changed.
    pub async fn assign_guardrail_keys(
        &self,
        actor: &Actor,
        id: &str,
        key_hashes: &[String],
    ) -> ManageResult<u64> {
        let this = self.begin().await?;
        let g = this.assignable(actor, id).await?;
        let hashes = bulk_list("key_hashes", key_hashes)?;
        let mut unknown = Vec::new();
        for hash in &hashes {
            let known = this
                .store
                .key(hash)
                .await?
                .is_some_and(|k| k.organization_id == g.organization_id);
            if !known {
                unknown.push(hash.as_str());
            }
        }
        if !unknown.is_empty() {
            return Err(ManageError::Invalid(format!(
                "Unknown API keys: {}",
                unknown.join(", ")
            )));
        }
        let changed = this
            .store
            .assign_keys(&g.id, &hashes, actor.user_id(), crate::now_ms())
            .await?;
        if !changed.is_empty() {
            this.audit(
                actor,
                Some(&g.organization_id),
                "guardrail.keys.assign",
                &g.id,
                None,
                Some(&json!({ "guardrail_id": g.id, "key_hashes": changed })),
            )
            .await?;
            this.commit(Publish::Snapshot).await?;
        }
        Ok(changed.len() as u64)
    }

    /// Admins only. Returns how many of the keys held this guardrail.
    pub async fn unassign_guardrail_keys(
        &self,
        actor: &Actor,
        id: &str,
        key_hashes: &[String],
    ) -> ManageResult<u64> {
        let this = self.begin().await?;
        let g = this.administered_guardrail(actor, id).await?;
        let hashes = bulk_list("key_hashes", key_hashes)?;
        let removed = this.store.unassign_keys(&g.id, &hashes).await?;
        if removed > 0 {
            this.audit(
                actor,
                Some(&g.organization_id),
                "guardrail.keys.unassign",
                &g.id,
                Some(&json!({ "guardrail_id": g.id, "key_hashes": hashes })),
                None,
            )
            .await?;
            this.commit(Publish::Snapshot).await?;
        }
        Ok(removed)
    }

    /// Admins only. Each user must be a member of the guardrail's organization. Returns how
    /// many were not assigned before.
    pub async fn assign_guardrail_members(
        &self,
        actor: &Actor,
        id: &str,
        user_ids: &[String],
    ) -> ManageResult<u64> {
        let this = self.begin().await?;
        let g = this.assignable(actor, id).await?;
        let ids = bulk_list("member_user_ids", user_ids)?;
        let mut outsiders = Vec::new();
        for user_id in &ids {
            if this
                .store
                .membership(&g.organization_id, user_id)
                .await?
                .is_none()
            {
                outsiders.push(user_id.as_str());
            }
        }
        if !outsiders.is_empty() {
            return Err(ManageError::Invalid(format!(
                "Not members of this guardrail's organization: {}",
                outsiders.join(", ")
            )));
        }
        let added = this
            .store
            .assign_members(
                &g.id,
                &g.organization_id,
                &ids,
                actor.user_id(),
                crate::now_ms(),
            )
            .await?;
        if !added.is_empty() {
            this.audit(
                actor,
                Some(&g.organization_id),
                "guardrail.members.assign",
                &g.id,
                None,
                Some(&json!({ "guardrail_id": g.id, "user_ids": added })),
            )
            .await?;
            this.commit(Publish::Snapshot).await?;
        }
        Ok(added.len() as u64)
    }

    /// Admins only. Returns how many of the users held this guardrail.
    pub async fn unassign_guardrail_members(
        &self,
        actor: &Actor,
        id: &str,
        user_ids: &[String],
    ) -> ManageResult<u64> {
        let this = self.begin().await?;
        let g = this.administered_guardrail(actor, id).await?;
        let ids = bulk_list("member_user_ids", user_ids)?;
        let removed = this.store.unassign_members(&g.id, &ids).await?;
        if removed > 0 {
            this.audit(
                actor,
                Some(&g.organization_id),
                "guardrail.members.unassign",
                &g.id,
                Some(&json!({ "guardrail_id": g.id, "user_ids": ids })),
                None,
            )
            .await?;
            this.commit(Publish::Snapshot).await?;
        }
        Ok(removed)
    }

    /// A page of key assignments, of one guardrail or (`None`) of the whole organization, and
    /// the total. Members see those of their own keys.
    pub async fn list_key_assignments(
        &self,
        actor: &Actor,
        guardrail_id: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> ManageResult<(Vec<KeyAssignmentRow>, i64)> {
        let organization_id = match guardrail_id {
            Some(id) => self.get_guardrail(actor, id).await?.organization_id,
            None => actor.target_organization(None)?,
        };
        Ok(self
            .store
            .key_assignments(
                &organization_id,
                guardrail_id,
                own_only(actor),
                offset,
                limit.clamp(1, MAX_PAGE),
            )
            .await?)
    }

    /// A page of member assignments, of one guardrail or (`None`) of the whole organization,
    /// and the total. Members see their own.
    pub async fn list_member_assignments(
        &self,
        actor: &Actor,
        guardrail_id: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> ManageResult<(Vec<MemberAssignmentRow>, i64)> {
        let organization_id = match guardrail_id {
            Some(id) => self.get_guardrail(actor, id).await?.organization_id,
            None => actor.target_organization(None)?,
        };
        Ok(self
            .store
            .member_assignments(
                &organization_id,
                guardrail_id,
                own_only(actor),
                offset,
                limit.clamp(1, MAX_PAGE),
            )
            .await?)
    }

    /// A guardrail the actor administers that may be assigned: a workspace default already
    /// governs all of its workspace's keys.
    async fn assignable(&self, actor: &Actor, id: &str) -> ManageResult<GuardrailRow> {
        let g = self.administered_guardrail(actor, id).await?;
        if g.is_default {
            return Err(ManageError::Invalid(
                "A workspace's default guardrail applies to all of the workspace's keys and members; it cannot be assigned"
                    .into(),
            ));
        }
        Ok(g)
    }

    /// Models and providers named by `input` must be in the catalogue.
    async fn check_catalogue(&self, input: &GuardrailInput) -> ManageResult<()> {
        for (field, list) in [
            ("allowed_models", &input.allowed_models),
            ("ignored_models", &input.ignored_models),
        ] {
            for id in id_list(field, list.as_ref().and_then(Option::as_ref))?
                .iter()
                .flatten()
            {
                if !self.store.model_exists(id).await? {
                    return Err(ManageError::Invalid(format!(
                        "{field}: model {id:?} is not in the catalogue"
                    )));
                }
            }
        }
        for (field, list) in [
            ("allowed_providers", &input.allowed_providers),
            ("ignored_providers", &input.ignored_providers),
        ] {
            for id in id_list(field, list.as_ref().and_then(Option::as_ref))?
                .iter()
                .flatten()
            {
                if !self.store.provider_exists(id).await? {
                    return Err(ManageError::Invalid(format!(
                        "{field}: provider {id:?} is not in the catalogue"
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

    fn row() -> GuardrailRow {
        GuardrailRow::default_for("ws_1", "o1", 1)
    }

    fn applied(input: GuardrailInput) -> ManageResult<GuardrailRow> {
        let mut g = row();
        apply_input(&mut g, &input)?;
        Ok(g)
    }

    #[test]
    fn limits_come_with_their_interval() {
        let g = applied(GuardrailInput {
            limit_usd: Some(Some(12.5)),
            reset_interval: Some(Some("weekly".into())),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(g.limit_usd.as_deref(), Some("12.5"));
        assert_eq!(g.reset_interval.as_deref(), Some("weekly"));
        for input in [
            GuardrailInput {
                limit_usd: Some(Some(1.0)),
                ..Default::default()
            },
            GuardrailInput {
                reset_interval: Some(Some("daily".into())),
                ..Default::default()
            },
        ] {
            assert_eq!(
                applied(input).unwrap_err().to_string(),
                "limit_usd and reset_interval must be set together"
            );
        }
        // Clearing one of a pair leaves the other alone: refused; clearing both is fine.
        let mut g = applied(GuardrailInput {
            limit_usd: Some(Some(1.0)),
            reset_interval: Some(Some("daily".into())),
            ..Default::default()
        })
        .unwrap();
        assert!(
            apply_input(
                &mut g.clone(),
                &GuardrailInput {
                    limit_usd: Some(None),
                    ..Default::default()
                }
            )
            .is_err()
        );
        apply_input(
            &mut g,
            &GuardrailInput {
                limit_usd: Some(None),
                reset_interval: Some(None),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(g.limit_usd.is_none() && g.reset_interval.is_none());
    }

    #[test]
    fn intervals_and_amounts_are_the_sdks() {
        let err = applied(GuardrailInput {
            limit_usd: Some(Some(1.0)),
            reset_interval: Some(Some("lifetime".into())),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "reset_interval must be one of daily, weekly, monthly (got \"lifetime\")"
        );
        assert!(
            applied(GuardrailInput {
                limit_usd: Some(Some(-1.0)),
                reset_interval: Some(Some("daily".into())),
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn lists_are_trimmed_deduplicated_and_empty_means_unrestricted() {
        let g = applied(GuardrailInput {
            allowed_models: Some(Some(vec![
                " mock/fast".into(),
                "mock/fast".into(),
                "mock/smart".into(),
            ])),
            ignored_providers: Some(Some(vec![])),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            g.allowed_models,
            Some(vec!["mock/fast".to_owned(), "mock/smart".to_owned()])
        );
        assert_eq!(g.ignored_providers, None);
        assert!(
            applied(GuardrailInput {
                allowed_providers: Some(Some(vec!["".into()])),
                ..Default::default()
            })
            .is_err()
        );
        let many: Vec<String> = (0..=MAX_LIST).map(|i| format!("m{i}")).collect();
        assert!(
            applied(GuardrailInput {
                ignored_models: Some(Some(many)),
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn the_deprecated_zdr_flag_fills_the_groups_not_set() {
        let g = applied(GuardrailInput {
            enforce_zdr: Some(Some(true)),
            enforce_zdr_openai: Some(Some(false)),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            g.zdr,
            ZdrFlags {
                anthropic: Some(true),
                openai: Some(false),
                google: Some(true),
                xai: Some(true),
                other: Some(true),
            }
        );
        assert_eq!(legacy_zdr(&g.zdr), Some(false));
        assert_eq!(legacy_zdr(&ZdrFlags::default()), None);
        let all = applied(GuardrailInput {
            enforce_zdr: Some(Some(true)),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(legacy_zdr(&all.zdr), Some(true));
    }

    #[test]
    fn unsupported_settings_are_refused_by_name() {
        let err = applied(GuardrailInput {
            unsupported: vec!["content_filters".into(), "allowed_data_regions".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Not supported by this gateway, so refused rather than ignored: content_filters, allowed_data_regions"
        );
    }

    #[test]
    fn names_and_descriptions_are_bounded() {
        assert!(
            applied(GuardrailInput {
                name: Some(" ".into()),
                ..Default::default()
            })
            .is_err()
        );
        let g = applied(GuardrailInput {
            name: Some(" Team cap ".into()),
            description: Some(Some("  ".into())),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(g.name, "Team cap");
        assert!(g.description.is_none());
    }
}
