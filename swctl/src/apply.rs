//! `swctl apply` and `swctl diff`: load the file and the server's state, plan, print, and (for
//! apply) execute the plan in order, stopping at the first failure. Every change is idempotent
//! against a re-plan, so a failed apply is finished by running it again.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, anyhow};
use serde_json::Value;
use switchyard_proto::admin::v1 as pb;

use crate::client::Admin;
use crate::plan::{self, Change, Plan};
use crate::spec::{KeyKindSpec, LimitResetSpec, RoleSpec, Spec, VersionSpec};
use crate::state;

/// Exit status of `diff` when the server differs from the file.
pub const CHANGES_PENDING: u8 = 2;

pub async fn diff(client: &mut Admin, file: &Path, prune: bool) -> anyhow::Result<u8> {
    let spec = read(file)?;
    let loaded = state::load(client, &spec).await?;
    let plan = plan::plan(&spec, &loaded.current, prune).map_err(|e| anyhow!(e))?;
    print_plan(&plan);
    Ok(if plan.is_empty() { 0 } else { CHANGES_PENDING })
}

pub async fn apply(client: &mut Admin, file: &Path, prune: bool) -> anyhow::Result<u8> {
    let spec = read(file)?;
    let loaded = state::load(client, &spec).await?;
    let plan = plan::plan(&spec, &loaded.current, prune).map_err(|e| anyhow!(e))?;
    print_plan(&plan);
    if plan.is_empty() {
        return Ok(0);
    }
    let mut ids = Ids {
        orgs: loaded.org_ids,
        users: loaded.user_ids,
    };
    for change in &plan.changes {
        execute(client, &mut ids, change)
            .await
            .with_context(|| format!("failed: {change}"))?;
    }
    println!("applied {} changes", plan.changes.len());
    Ok(0)
}

fn read(file: &Path) -> anyhow::Result<Spec> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    Spec::parse(&text).map_err(|e| anyhow!("{}: {e}", file.display()))
}

fn print_plan(plan: &Plan) {
    for warning in &plan.warnings {
        eprintln!("warning: {warning}");
    }
    if plan.is_empty() {
        println!("no changes");
        return;
    }
    for change in &plan.changes {
        println!("{change}");
    }
}

/// Natural keys to ids, including what this run created.
struct Ids {
    orgs: HashMap<String, String>,
    users: HashMap<String, String>,
}

impl Ids {
    fn org(&self, name: &str) -> anyhow::Result<String> {
        self.orgs
            .get(name)
            .cloned()
            .ok_or_else(|| anyhow!("organization {name} does not exist"))
    }

    fn user(&self, email: &str) -> anyhow::Result<String> {
        self.users
            .get(email)
            .cloned()
            .ok_or_else(|| anyhow!("user {email} does not exist"))
    }
}

fn role(role: &str) -> pb::Role {
    if role == RoleSpec::Admin.as_str() {
        pb::Role::Admin
    } else {
        pb::Role::Member
    }
}

fn limit_reset(reset: Option<LimitResetSpec>) -> pb::LimitReset {
    match reset {
        None => pb::LimitReset::Unspecified,
        Some(LimitResetSpec::Never) => pb::LimitReset::Never,
        Some(LimitResetSpec::Daily) => pb::LimitReset::Daily,
        Some(LimitResetSpec::Weekly) => pb::LimitReset::Weekly,
        Some(LimitResetSpec::Monthly) => pb::LimitReset::Monthly,
    }
}

fn config_json(v: &VersionSpec) -> String {
    v.config.to_string()
}

fn settings_json(settings: &serde_json::Map<String, Value>) -> String {
    Value::Object(settings.clone()).to_string()
}

async fn execute(client: &mut Admin, ids: &mut Ids, change: &Change) -> anyhow::Result<()> {
    match change {
        Change::CreateOrganization {
            name,
            member_cap,
            filtered_model_catalog,
            enforce_zdr,
            deny_data_collection,
        } => {
            let org = client
                .create_organization(pb::CreateOrganizationRequest {
                    name: name.clone(),
                    member_cap: *member_cap,
                })
                .await?
                .into_inner();
            if filtered_model_catalog.is_some()
                || enforce_zdr.is_some()
                || deny_data_collection.is_some()
            {
                client
                    .update_organization(pb::UpdateOrganizationRequest {
                        id: org.id.clone(),
                        filtered_model_catalog: *filtered_model_catalog,
                        enforce_zdr: *enforce_zdr,
                        deny_data_collection: *deny_data_collection,
                        ..Default::default()
                    })
                    .await?;
            }
            ids.orgs.insert(name.clone(), org.id);
        }
        Change::UpdateOrganization {
            name,
            member_cap,
            filtered_model_catalog,
            enforce_zdr,
            deny_data_collection,
            ..
        } => {
            client
                .update_organization(pb::UpdateOrganizationRequest {
                    id: ids.org(name)?,
                    name: None,
                    member_cap: *member_cap,
                    filtered_model_catalog: *filtered_model_catalog,
                    enforce_zdr: *enforce_zdr,
                    deny_data_collection: *deny_data_collection,
                })
                .await?;
        }
        Change::CreateUser { email, name } => {
            let user = client
                .create_user(pb::CreateUserRequest {
                    email: email.clone(),
                    name: name.clone(),
                })
                .await?
                .into_inner();
            // The server normalises emails (lowercase); keep both spellings addressable.
            ids.users.insert(user.email.clone(), user.id.clone());
            ids.users.insert(email.clone(), user.id);
        }
        Change::AddMember {
            org,
            email,
            role: r,
        } => {
            client
                .add_member(pb::AddMemberRequest {
                    organization_id: ids.org(org)?,
                    user_id: ids.user(email)?,
                    role: role(r).into(),
                })
                .await?;
        }
        Change::SetMemberRole {
            org,
            email,
            role: r,
            ..
        } => {
            client
                .set_member_role(pb::SetMemberRoleRequest {
                    organization_id: ids.org(org)?,
                    user_id: ids.user(email)?,
                    role: role(r).into(),
                })
                .await?;
        }
        Change::RemoveMember { org, email } => {
            client
                .remove_member(pb::RemoveMemberRequest {
                    organization_id: ids.org(org)?,
                    user_id: ids.user(email)?,
                })
                .await?;
        }
        Change::CreateWorkspace {
            org,
            slug,
            name,
            description,
            settings,
        } => {
            client
                .create_workspace(pb::CreateWorkspaceRequest {
                    organization_id: ids.org(org)?,
                    slug: slug.clone(),
                    name: name.clone(),
                    description: description.clone(),
                    settings_json: settings_json(settings),
                })
                .await?;
        }
        Change::UpdateWorkspace {
            org,
            slug,
            name,
            description,
            settings,
            ..
        } => {
            client
                .update_workspace(pb::UpdateWorkspaceRequest {
                    organization_id: ids.org(org)?,
                    workspace: slug.clone(),
                    name: name.clone(),
                    slug: None,
                    description: description.clone(),
                    settings_json: settings.as_ref().map(settings_json),
                })
                .await?;
        }
        Change::DeleteWorkspace { org, slug, .. } => {
            client
                .delete_workspace(pb::DeleteWorkspaceRequest {
                    organization_id: ids.org(org)?,
                    workspace: slug.clone(),
                    force: true,
                })
                .await?;
        }
        Change::AddWorkspaceMember {
            org,
            workspace,
            email,
        } => {
            client
                .add_workspace_member(pb::AddWorkspaceMemberRequest {
                    organization_id: ids.org(org)?,
                    workspace: workspace.clone(),
                    user_id: ids.user(email)?,
                })
                .await?;
        }
        Change::RemoveWorkspaceMember {
            org,
            workspace,
            email,
        } => {
            client
                .remove_workspace_member(pb::RemoveWorkspaceMemberRequest {
                    organization_id: ids.org(org)?,
                    workspace: workspace.clone(),
                    user_id: ids.user(email)?,
                })
                .await?;
        }
        Change::CreateKey {
            org,
            workspace,
            key,
        } => {
            let user_id = match &key.owner {
                Some(email) => ids.user(email)?,
                None => String::new(),
            };
            let kind = match key.kind {
                KeyKindSpec::Inference => pb::KeyKind::Inference,
                KeyKindSpec::Management => pb::KeyKind::Management,
            };
            let created = client
                .create_key(pb::CreateKeyRequest {
                    organization_id: ids.org(org)?,
                    workspace: workspace.clone(),
                    name: key.name.clone(),
                    kind: kind.into(),
                    user_id,
                    limit_usd: key.limit.flatten(),
                    limit_reset: limit_reset(key.limit_reset).into(),
                    include_byok_in_limit: false,
                    expires_at_ms: 0,
                    disabled: key.disabled.unwrap_or(false),
                })
                .await?
                .into_inner();
            let hash = created.key.map(|k| k.hash).unwrap_or_default();
            println!(
                "  secret of key {org}/{workspace}/{} (shown once, hash {hash}): {}",
                key.name, created.secret
            );
        }
        Change::UpdateKey {
            hash,
            limit,
            limit_reset: reset,
            disabled,
            ..
        } => {
            client
                .update_key(pb::UpdateKeyRequest {
                    hash: hash.clone(),
                    name: None,
                    disabled: *disabled,
                    limit_usd: limit.flatten(),
                    clear_limit: matches!(limit, Some(None)),
                    limit_reset: limit_reset(*reset).into(),
                    include_byok_in_limit: None,
                })
                .await?;
        }
        Change::DeleteKey { hash, .. } => {
            client
                .delete_key(pb::DeleteKeyRequest { hash: hash.clone() })
                .await?;
        }
        Change::CreatePreset {
            org,
            workspace,
            preset,
        } => {
            let organization_id = ids.org(org)?;
            let (first, rest) = preset
                .versions
                .split_first()
                .ok_or_else(|| anyhow!("preset {} declares no version", preset.slug))?;
            client
                .create_preset(pb::CreatePresetRequest {
                    organization_id: organization_id.clone(),
                    workspace: workspace.clone(),
                    slug: preset.slug.clone(),
                    name: preset.name.clone().unwrap_or_else(|| preset.slug.clone()),
                    description: preset.description.clone(),
                    config_json: config_json(first),
                    system_prompt: first.system_prompt.clone(),
                })
                .await?;
            add_versions(client, &organization_id, &preset.slug, rest).await?;
        }
        Change::UpdatePreset {
            org,
            slug,
            name,
            description,
            ..
        } => {
            client
                .update_preset(pb::UpdatePresetRequest {
                    organization_id: ids.org(org)?,
                    slug: slug.clone(),
                    name: name.clone(),
                    description: description.clone(),
                    ..Default::default()
                })
                .await?;
        }
        Change::AddPresetVersions {
            org,
            slug,
            versions,
            ..
        } => {
            add_versions(client, &ids.org(org)?, slug, versions).await?;
        }
        Change::DesignateLatest {
            org, slug, version, ..
        } => {
            client
                .update_preset(pb::UpdatePresetRequest {
                    organization_id: ids.org(org)?,
                    slug: slug.clone(),
                    designated_version: Some(*version),
                    ..Default::default()
                })
                .await?;
        }
        Change::DeletePreset { org, slug } => {
            client
                .delete_preset(pb::DeletePresetRequest {
                    organization_id: ids.org(org)?,
                    slug: slug.clone(),
                })
                .await?;
        }
    }
    println!("  done: {change}");
    Ok(())
}

/// Appends versions in order, each designated, so the last one is what requests use.
async fn add_versions(
    client: &mut Admin,
    organization_id: &str,
    slug: &str,
    versions: &[VersionSpec],
) -> anyhow::Result<()> {
    for v in versions {
        client
            .add_preset_version(pb::AddPresetVersionRequest {
                organization_id: organization_id.to_owned(),
                slug: slug.to_owned(),
                config_json: config_json(v),
                system_prompt: v.system_prompt.clone(),
                designate: true,
            })
            .await?;
    }
    Ok(())
}
