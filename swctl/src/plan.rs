//! Desired state (the file) against current state (the server) gives a plan: the ordered
//! changes that make the server match the file. Pure: no I/O, so it is tested by itself, and
//! `diff` and `apply` print the same plan.
//!
//! Rules:
//! - Objects are matched by natural key; a field the file leaves out is not compared.
//! - Creation comes parents first (organizations, users, members, workspaces, keys, presets);
//!   deletion only with `prune`, children first, and never of organizations or users (the API
//!   has no such call) nor of an organization's default workspace.
//! - What cannot be changed through the API (a user's name, a key's kind, a published preset
//!   version) is reported as a warning, never planned.

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::spec::{KeySpec, LimitResetSpec, PresetSpec, Spec, VersionSpec, WorkspaceSpec};

/// The slug of the workspace the server creates with every organization.
pub const DEFAULT_WORKSPACE: &str = "default";
const DEFAULT_WORKSPACE_NAME: &str = "Default";

/// What the server holds, for the organizations the file declares.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Current {
    pub organizations: Vec<OrgState>,
    pub users: Vec<UserState>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OrgState {
    pub id: String,
    pub name: String,
    pub member_cap: i64,
    pub filtered_model_catalog: bool,
    pub enforce_zdr: bool,
    pub deny_data_collection: bool,
    pub members: Vec<MemberState>,
    pub workspaces: Vec<WorkspaceState>,
    pub presets: Vec<PresetState>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UserState {
    pub id: String,
    pub email: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MemberState {
    pub email: String,
    pub role: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WorkspaceState {
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
    pub settings: Map<String, Value>,
    pub is_default: bool,
    /// Emails.
    pub members: Vec<String>,
    pub keys: Vec<KeyState>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct KeyState {
    pub hash: String,
    pub name: String,
    pub management: bool,
    pub limit: Option<f64>,
    /// `daily`, `weekly` or `monthly`; `None` for no reset.
    pub limit_reset: Option<String>,
    pub disabled: bool,
    pub created_at_ms: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PresetState {
    pub slug: String,
    pub workspace_slug: String,
    pub name: String,
    pub description: Option<String>,
    /// Oldest first.
    pub versions: Vec<VersionState>,
    /// Number of the designated version (1-based); 0 when none.
    pub designated: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VersionState {
    pub config: Value,
    pub system_prompt: Option<String>,
}

/// One field's old and new value, for printing.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldChange {
    pub field: &'static str,
    pub from: String,
    pub to: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    CreateOrganization {
        name: String,
        member_cap: Option<i64>,
        filtered_model_catalog: Option<bool>,
        enforce_zdr: Option<bool>,
        deny_data_collection: Option<bool>,
    },
    UpdateOrganization {
        name: String,
        member_cap: Option<i64>,
        filtered_model_catalog: Option<bool>,
        enforce_zdr: Option<bool>,
        deny_data_collection: Option<bool>,
        fields: Vec<FieldChange>,
    },
    CreateUser {
        email: String,
        name: String,
    },
    AddMember {
        org: String,
        email: String,
        role: String,
    },
    SetMemberRole {
        org: String,
        email: String,
        role: String,
        fields: Vec<FieldChange>,
    },
    RemoveMember {
        org: String,
        email: String,
    },
    CreateWorkspace {
        org: String,
        slug: String,
        name: String,
        description: Option<String>,
        settings: Map<String, Value>,
    },
    UpdateWorkspace {
        org: String,
        slug: String,
        name: Option<String>,
        /// `Some("")` clears it.
        description: Option<String>,
        /// The settings fields to set; the server leaves the others as they are.
        settings: Option<Map<String, Value>>,
        fields: Vec<FieldChange>,
    },
    DeleteWorkspace {
        org: String,
        slug: String,
        /// Keys still in it, deleted with it.
        keys: usize,
    },
    AddWorkspaceMember {
        org: String,
        workspace: String,
        email: String,
    },
    RemoveWorkspaceMember {
        org: String,
        workspace: String,
        email: String,
    },
    CreateKey {
        org: String,
        workspace: String,
        key: KeySpec,
    },
    UpdateKey {
        org: String,
        workspace: String,
        name: String,
        hash: String,
        limit: Option<Option<f64>>,
        limit_reset: Option<LimitResetSpec>,
        disabled: Option<bool>,
        fields: Vec<FieldChange>,
    },
    DeleteKey {
        org: String,
        workspace: String,
        name: String,
        hash: String,
    },
    CreatePreset {
        org: String,
        workspace: String,
        preset: PresetSpec,
    },
    UpdatePreset {
        org: String,
        slug: String,
        name: Option<String>,
        /// `Some("")` clears it.
        description: Option<String>,
        fields: Vec<FieldChange>,
    },
    /// Appends versions; the last one becomes the designated version.
    AddPresetVersions {
        org: String,
        slug: String,
        /// Number the first appended version gets.
        first: usize,
        versions: Vec<VersionSpec>,
    },
    /// Designates the newest version again (someone pinned an older one).
    DesignateLatest {
        org: String,
        slug: String,
        version: i64,
        fields: Vec<FieldChange>,
    },
    DeletePreset {
        org: String,
        slug: String,
    },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Differences the API cannot converge; shown, never executed.
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// The plan that makes `current` match `desired`. Fails only when the file names something
/// that exists nowhere (a membership of a user neither declared nor on the server).
pub fn plan(desired: &Spec, current: &Current, prune: bool) -> Result<Plan, String> {
    let mut p = Plan::default();
    let orgs: HashMap<&str, &OrgState> = current
        .organizations
        .iter()
        .map(|o| (o.name.as_str(), o))
        .collect();
    let users: HashMap<&str, &UserState> = current
        .users
        .iter()
        .map(|u| (u.email.as_str(), u))
        .collect();

    for org in &desired.organizations {
        match orgs.get(org.name.as_str()) {
            None => p.changes.push(Change::CreateOrganization {
                name: org.name.clone(),
                member_cap: org.member_cap,
                filtered_model_catalog: org.filtered_model_catalog,
                enforce_zdr: org.enforce_zdr,
                deny_data_collection: org.deny_data_collection,
            }),
            Some(have) => {
                let mut fields = Vec::new();
                let member_cap = org.member_cap.filter(|c| *c != have.member_cap);
                if let Some(cap) = member_cap {
                    fields.push(field("member_cap", have.member_cap, cap));
                }
                let filtered = org
                    .filtered_model_catalog
                    .filter(|f| *f != have.filtered_model_catalog);
                if let Some(f) = filtered {
                    fields.push(field(
                        "filtered_model_catalog",
                        have.filtered_model_catalog,
                        f,
                    ));
                }
                let enforce_zdr = org.enforce_zdr.filter(|z| *z != have.enforce_zdr);
                if let Some(z) = enforce_zdr {
                    fields.push(field("enforce_zdr", have.enforce_zdr, z));
                }
                let deny_data_collection = org
                    .deny_data_collection
                    .filter(|d| *d != have.deny_data_collection);
                if let Some(d) = deny_data_collection {
                    fields.push(field("deny_data_collection", have.deny_data_collection, d));
                }
                if !fields.is_empty() {
                    p.changes.push(Change::UpdateOrganization {
                        name: org.name.clone(),
                        member_cap,
                        filtered_model_catalog: filtered,
                        enforce_zdr,
                        deny_data_collection,
                        fields,
                    });
                }
            }
        }
    }

    for user in &desired.users {
        match users.get(user.email.as_str()) {
            None => p.changes.push(Change::CreateUser {
                email: user.email.clone(),
                name: user.name.clone(),
            }),
            Some(have) if have.name != user.name => p.warnings.push(format!(
                "user {}: name is {:?} on the server, {:?} in the file (users cannot be renamed through the API)",
                user.email, have.name, user.name
            )),
            Some(_) => {}
        }
    }

    for m in &desired.memberships {
        let known =
            users.contains_key(m.user.as_str()) || desired.users.iter().any(|u| u.email == m.user);
        if !known {
            return Err(format!(
                "membership in {} names user {}, who is neither in the file nor on the server",
                m.org, m.user
            ));
        }
        let have = orgs
            .get(m.org.as_str())
            .and_then(|o| o.members.iter().find(|x| x.email == m.user));
        match have {
            None => p.changes.push(Change::AddMember {
                org: m.org.clone(),
                email: m.user.clone(),
                role: m.role.as_str().into(),
            }),
            Some(have) if have.role != m.role.as_str() => p.changes.push(Change::SetMemberRole {
                org: m.org.clone(),
                email: m.user.clone(),
                role: m.role.as_str().into(),
                fields: vec![field("role", &have.role, m.role.as_str())],
            }),
            Some(_) => {}
        }
    }

    for org in &desired.organizations {
        let have = orgs.get(org.name.as_str()).copied();
        // A new organization comes with its default workspace, so the file's `default` is an
        // update of that one, not a creation.
        let implied;
        let workspaces: &[WorkspaceState] = match have {
            Some(o) => &o.workspaces,
            None => {
                implied = [WorkspaceState {
                    slug: DEFAULT_WORKSPACE.into(),
                    name: DEFAULT_WORKSPACE_NAME.into(),
                    description: None,
                    settings: Map::new(),
                    is_default: true,
                    // Every member joins the default workspace with the organization.
                    members: desired
                        .memberships
                        .iter()
                        .filter(|m| m.org == org.name)
                        .map(|m| m.user.clone())
                        .collect(),
                    keys: Vec::new(),
                }];
                &implied
            }
        };
        for ws in &org.workspaces {
            match workspaces.iter().find(|w| w.slug == ws.slug) {
                None => {
                    p.changes.push(Change::CreateWorkspace {
                        org: org.name.clone(),
                        slug: ws.slug.clone(),
                        name: ws.name.clone().unwrap_or_else(|| ws.slug.clone()),
                        description: ws.description.clone().filter(|d| !d.is_empty()),
                        settings: ws.settings.clone().unwrap_or_default(),
                    });
                    plan_members(&mut p, &org.name, ws, &[], false, prune);
                    plan_keys(&mut p, &org.name, ws, &[], prune);
                }
                Some(have_ws) => {
                    plan_workspace(&mut p, &org.name, ws, have_ws);
                    let default = have_ws.is_default;
                    plan_members(&mut p, &org.name, ws, &have_ws.members, default, prune);
                    plan_keys(&mut p, &org.name, ws, &have_ws.keys, prune);
                }
            }
        }
        let presets = have.map(|o| o.presets.as_slice()).unwrap_or_default();
        for ws in &org.workspaces {
            for preset in &ws.presets {
                plan_preset(&mut p, &org.name, &ws.slug, preset, presets);
            }
        }
        if prune && let Some(have) = have {
            prune_org(&mut p, org, have, desired);
        }
    }
    Ok(p)
}

fn plan_workspace(p: &mut Plan, org: &str, ws: &WorkspaceSpec, have: &WorkspaceState) {
    let mut fields = Vec::new();
    let name = ws.name.clone().filter(|n| *n != have.name);
    if let Some(n) = &name {
        fields.push(field("name", &have.name, n));
    }
    let description = ws
        .description
        .clone()
        .filter(|d| non_empty(d) != have.description.as_deref());
    if let Some(d) = &description {
        fields.push(field(
            "description",
            have.description.as_deref().unwrap_or(""),
            d,
        ));
    }
    let mut settings = None;
    if let Some(declared) = &ws.settings {
        let changed: Map<String, Value> = declared
            .iter()
            .filter(|(k, v)| !have.settings.get(*k).is_some_and(|h| same_json(h, v)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in &changed {
            fields.push(FieldChange {
                field: "settings",
                from: format!("{k}={}", have.settings.get(k).unwrap_or(&Value::Null)),
                to: format!("{k}={v}"),
            });
        }
        if !changed.is_empty() {
            settings = Some(changed);
        }
    }
    if !fields.is_empty() {
        p.changes.push(Change::UpdateWorkspace {
            org: org.into(),
            slug: ws.slug.clone(),
            name,
            description,
            settings,
            fields,
        });
    }
}

/// Workspace members go in before keys, whose owners may need to belong. The default
/// workspace holds every organization member, so nobody is removed from it.
fn plan_members(
    p: &mut Plan,
    org: &str,
    ws: &WorkspaceSpec,
    have: &[String],
    is_default: bool,
    prune: bool,
) {
    let Some(declared) = &ws.members else {
        return;
    };
    for email in declared {
        if !have.contains(email) {
            p.changes.push(Change::AddWorkspaceMember {
                org: org.into(),
                workspace: ws.slug.clone(),
                email: email.clone(),
            });
        }
    }
    if prune && !is_default {
        for email in have {
            if !declared.contains(email) {
                p.changes.push(Change::RemoveWorkspaceMember {
                    org: org.into(),
                    workspace: ws.slug.clone(),
                    email: email.clone(),
                });
            }
        }
    }
}

/// The key a declared name refers to: the newest of that name, since rotation leaves the
/// replaced key (same name) alive until its grace period ends.
fn key_named<'a>(keys: &'a [KeyState], name: &str) -> Option<&'a KeyState> {
    keys.iter()
        .filter(|k| k.name == name)
        .max_by_key(|k| k.created_at_ms)
}

fn plan_keys(p: &mut Plan, org: &str, ws: &WorkspaceSpec, have: &[KeyState], prune: bool) {
    for key in &ws.keys {
        let Some(k) = key_named(have, &key.name) else {
            p.changes.push(Change::CreateKey {
                org: org.into(),
                workspace: ws.slug.clone(),
                key: key.clone(),
            });
            continue;
        };
        let mut fields = Vec::new();
        let limit = key.limit.filter(|l| !same_usd(*l, k.limit));
        if let Some(l) = limit {
            fields.push(field("limit", usd(k.limit), usd(l)));
        }
        let have_reset = k.limit_reset.as_deref().unwrap_or("never");
        let limit_reset = key.limit_reset.filter(|r| r.as_str() != have_reset);
        if let Some(r) = limit_reset {
            fields.push(field("limit_reset", have_reset, r.as_str()));
        }
        let disabled = key.disabled.filter(|d| *d != k.disabled);
        if let Some(d) = disabled {
            fields.push(field("disabled", k.disabled, d));
        }
        let management = key.kind == crate::spec::KeyKindSpec::Management;
        if management != k.management {
            p.warnings.push(format!(
                "key {org}/{}/{}: its kind differs from the file's (a key's kind never changes: delete and recreate it)",
                ws.slug, key.name
            ));
        }
        if !fields.is_empty() {
            p.changes.push(Change::UpdateKey {
                org: org.into(),
                workspace: ws.slug.clone(),
                name: key.name.clone(),
                hash: k.hash.clone(),
                limit,
                limit_reset,
                disabled,
                fields,
            });
        }
    }
    if prune {
        for k in have {
            if !ws.keys.iter().any(|d| d.name == k.name) {
                p.changes.push(Change::DeleteKey {
                    org: org.into(),
                    workspace: ws.slug.clone(),
                    name: k.name.clone(),
                    hash: k.hash.clone(),
                });
            }
        }
    }
}

fn plan_preset(
    p: &mut Plan,
    org: &str,
    workspace: &str,
    preset: &PresetSpec,
    have: &[PresetState],
) {
    let Some(have) = have.iter().find(|x| x.slug == preset.slug) else {
        p.changes.push(Change::CreatePreset {
            org: org.into(),
            workspace: workspace.into(),
            preset: preset.clone(),
        });
        return;
    };
    if have.workspace_slug != workspace {
        p.warnings.push(format!(
            "preset {org}/{}: it lives in workspace {}, the file puts it in {workspace} (presets cannot move)",
            preset.slug, have.workspace_slug
        ));
    }
    let mut fields = Vec::new();
    let name = preset.name.clone().filter(|n| *n != have.name);
    if let Some(n) = &name {
        fields.push(field("name", &have.name, n));
    }
    let description = preset
        .description
        .clone()
        .filter(|d| non_empty(d) != have.description.as_deref());
    if let Some(d) = &description {
        fields.push(field(
            "description",
            have.description.as_deref().unwrap_or(""),
            d,
        ));
    }
    if !fields.is_empty() {
        p.changes.push(Change::UpdatePreset {
            org: org.into(),
            slug: preset.slug.clone(),
            name,
            description,
            fields,
        });
    }
    let common = preset.versions.len().min(have.versions.len());
    let diverged = (0..common).find(|i| !same_version(&preset.versions[*i], &have.versions[*i]));
    if let Some(i) = diverged {
        p.warnings.push(format!(
            "preset {org}/{}: version {} on the server differs from the file's (versions are immutable: keep the published ones in the file and append new ones)",
            preset.slug,
            i + 1
        ));
        return;
    }
    if preset.versions.len() > have.versions.len() {
        p.changes.push(Change::AddPresetVersions {
            org: org.into(),
            slug: preset.slug.clone(),
            first: have.versions.len() + 1,
            versions: preset.versions[have.versions.len()..].to_vec(),
        });
    } else if preset.versions.len() < have.versions.len() {
        p.warnings.push(format!(
            "preset {org}/{}: the server has {} versions, the file declares {} (versions are never deleted)",
            preset.slug,
            have.versions.len(),
            preset.versions.len()
        ));
    } else {
        let latest = have.versions.len() as i64;
        if have.designated != latest {
            p.changes.push(Change::DesignateLatest {
                org: org.into(),
                slug: preset.slug.clone(),
                version: latest,
                fields: vec![field("designated_version", have.designated, latest)],
            });
        }
    }
}

fn prune_org(p: &mut Plan, org: &crate::spec::OrganizationSpec, have: &OrgState, desired: &Spec) {
    for preset in &have.presets {
        let declared = org
            .workspaces
            .iter()
            .any(|w| w.presets.iter().any(|x| x.slug == preset.slug));
        if !declared {
            p.changes.push(Change::DeletePreset {
                org: org.name.clone(),
                slug: preset.slug.clone(),
            });
        }
    }
    for ws in &have.workspaces {
        if !ws.is_default && !org.workspaces.iter().any(|w| w.slug == ws.slug) {
            p.changes.push(Change::DeleteWorkspace {
                org: org.name.clone(),
                slug: ws.slug.clone(),
                keys: ws.keys.len(),
            });
        }
    }
    for m in &have.members {
        let declared = desired
            .memberships
            .iter()
            .any(|d| d.org == org.name && d.user == m.email);
        if !declared {
            p.changes.push(Change::RemoveMember {
                org: org.name.clone(),
                email: m.email.clone(),
            });
        }
    }
}

fn same_version(want: &VersionSpec, have: &VersionState) -> bool {
    same_json(&want.config, &have.config)
        && want.system_prompt.as_deref().and_then(non_empty) == have.system_prompt.as_deref()
}

/// JSON equality where numbers compare by value: the file's `1` is the server's `1.0`.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Money is stored to the micro-dollar, so compare there.
fn same_usd(want: Option<f64>, have: Option<f64>) -> bool {
    match (want, have) {
        (None, None) => true,
        (Some(a), Some(b)) => (a * 1e6).round() == (b * 1e6).round(),
        _ => false,
    }
}

fn usd(value: Option<f64>) -> String {
    value.map_or_else(|| "none".to_owned(), |v| format!("{v}"))
}

fn non_empty(text: &str) -> Option<&str> {
    let text = text.trim();
    (!text.is_empty()).then_some(text)
}

fn field(name: &'static str, from: impl fmt::Display, to: impl fmt::Display) -> FieldChange {
    FieldChange {
        field: name,
        from: from.to_string(),
        to: to.to_string(),
    }
}

fn fields_text(fields: &[FieldChange]) -> String {
    fields
        .iter()
        .map(|f| format!("{}: {} -> {}", f.field, f.from, f.to))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Change {
    /// One line per change: `+` creates, `~` changes, `-` deletes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreateOrganization { name, .. } => write!(f, "+ organization {name}"),
            Change::UpdateOrganization { name, fields, .. } => {
                write!(f, "~ organization {name} ({})", fields_text(fields))
            }
            Change::CreateUser { email, .. } => write!(f, "+ user {email}"),
            Change::AddMember { org, email, role } => {
                write!(f, "+ member {email} of {org} as {role}")
            }
            Change::SetMemberRole {
                org, email, fields, ..
            } => write!(f, "~ member {email} of {org} ({})", fields_text(fields)),
            Change::RemoveMember { org, email } => write!(f, "- member {email} of {org}"),
            Change::CreateWorkspace { org, slug, .. } => write!(f, "+ workspace {org}/{slug}"),
            Change::UpdateWorkspace {
                org, slug, fields, ..
            } => write!(f, "~ workspace {org}/{slug} ({})", fields_text(fields)),
            Change::DeleteWorkspace { org, slug, keys } => {
                write!(f, "- workspace {org}/{slug}")?;
                if *keys > 0 {
                    write!(f, " (with its {keys} keys)")?;
                }
                Ok(())
            }
            Change::AddWorkspaceMember {
                org,
                workspace,
                email,
            } => write!(f, "+ workspace member {email} of {org}/{workspace}"),
            Change::RemoveWorkspaceMember {
                org,
                workspace,
                email,
            } => write!(f, "- workspace member {email} of {org}/{workspace}"),
            Change::CreateKey {
                org,
                workspace,
                key,
            } => write!(f, "+ key {org}/{workspace}/{}", key.name),
            Change::UpdateKey {
                org,
                workspace,
                name,
                fields,
                ..
            } => write!(
                f,
                "~ key {org}/{workspace}/{name} ({})",
                fields_text(fields)
            ),
            Change::DeleteKey {
                org,
                workspace,
                name,
                ..
            } => write!(f, "- key {org}/{workspace}/{name}"),
            Change::CreatePreset {
                org,
                workspace,
                preset,
            } => write!(
                f,
                "+ preset {org}/{} in {workspace} ({} versions)",
                preset.slug,
                preset.versions.len()
            ),
            Change::UpdatePreset {
                org, slug, fields, ..
            } => write!(f, "~ preset {org}/{slug} ({})", fields_text(fields)),
            Change::AddPresetVersions {
                org,
                slug,
                first,
                versions,
            } => {
                let last = first + versions.len() - 1;
                if versions.len() == 1 {
                    write!(f, "+ preset {org}/{slug} version {first}")
                } else {
                    write!(f, "+ preset {org}/{slug} versions {first}-{last}")
                }
            }
            Change::DesignateLatest {
                org, slug, fields, ..
            } => write!(f, "~ preset {org}/{slug} ({})", fields_text(fields)),
            Change::DeletePreset { org, slug } => write!(f, "- preset {org}/{slug}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{KeyKindSpec, Spec};

    const FILE: &str = r#"
organizations:
  - name: Acme
    member_cap: 0
    filtered_model_catalog: true
    enforce_zdr: true
    workspaces:
      - slug: default
        name: Main
        keys:
          - name: ci
            limit: 5.5
            limit_reset: monthly
      - slug: research
        description: Research team
        members: [alice@example.com]
        settings: { is_observability_broadcast_enabled: true, io_logging_sampling_rate: 1 }
        keys:
          - name: lab
            disabled: true
        presets:
          - slug: summarize
            name: Summarize
            versions:
              - config: { model: mock/fast }
                system_prompt: Be brief.
              - config: { model: mock/fast, parameters: { temperature: 0.2 } }
users:
  - email: alice@example.com
    name: Alice
memberships:
  - org: Acme
    user: alice@example.com
    role: admin
"#;

    fn spec(text: &str) -> Spec {
        Spec::parse(text).unwrap()
    }

    /// What the server would hold after executing `plan`: the test's stand-in for a server,
    /// so that "apply twice changes nothing" is checked on the plan alone.
    fn execute(current: &mut Current, plan: &Plan) {
        for change in &plan.changes {
            match change.clone() {
                Change::CreateOrganization {
                    name,
                    member_cap,
                    filtered_model_catalog,
                    enforce_zdr,
                    deny_data_collection,
                } => current.organizations.push(OrgState {
                    id: format!("org-{name}"),
                    name,
                    member_cap: member_cap.unwrap_or(10),
                    filtered_model_catalog: filtered_model_catalog.unwrap_or(false),
                    enforce_zdr: enforce_zdr.unwrap_or(false),
                    deny_data_collection: deny_data_collection.unwrap_or(false),
                    members: vec![],
                    workspaces: vec![WorkspaceState {
                        slug: DEFAULT_WORKSPACE.into(),
                        name: DEFAULT_WORKSPACE_NAME.into(),
                        description: None,
                        settings: Map::new(),
                        is_default: true,
                        members: vec![],
                        keys: vec![],
                    }],
                    presets: vec![],
                }),
                Change::UpdateOrganization {
                    name,
                    member_cap,
                    filtered_model_catalog,
                    enforce_zdr,
                    deny_data_collection,
                    ..
                } => {
                    let o = org(current, &name);
                    if let Some(c) = member_cap {
                        o.member_cap = c;
                    }
                    if let Some(f) = filtered_model_catalog {
                        o.filtered_model_catalog = f;
                    }
                    if let Some(z) = enforce_zdr {
                        o.enforce_zdr = z;
                    }
                    if let Some(d) = deny_data_collection {
                        o.deny_data_collection = d;
                    }
                }
                Change::CreateUser { email, name } => current.users.push(UserState {
                    id: format!("user-{email}"),
                    email,
                    name,
                }),
                Change::AddMember {
                    org: o,
                    email,
                    role,
                } => {
                    let o = org(current, &o);
                    o.workspaces[0].members.push(email.clone());
                    o.members.push(MemberState { email, role });
                }
                Change::SetMemberRole {
                    org: o,
                    email,
                    role,
                    ..
                } => {
                    let o = org(current, &o);
                    o.members
                        .iter_mut()
                        .find(|m| m.email == email)
                        .unwrap()
                        .role = role;
                }
                Change::RemoveMember { org: o, email } => {
                    let o = org(current, &o);
                    o.members.retain(|m| m.email != email);
                    for w in &mut o.workspaces {
                        w.members.retain(|m| *m != email);
                    }
                }
                Change::AddWorkspaceMember {
                    org: o,
                    workspace: w,
                    email,
                } => workspace(current, &o, &w).members.push(email),
                Change::RemoveWorkspaceMember {
                    org: o,
                    workspace: w,
                    email,
                } => workspace(current, &o, &w).members.retain(|m| *m != email),
                Change::CreateWorkspace {
                    org: o,
                    slug,
                    name,
                    description,
                    settings,
                } => org(current, &o).workspaces.push(WorkspaceState {
                    slug,
                    name,
                    description,
                    settings,
                    is_default: false,
                    members: vec![],
                    keys: vec![],
                }),
                Change::UpdateWorkspace {
                    org: o,
                    slug,
                    name,
                    description,
                    settings,
                    ..
                } => {
                    let w = workspace(current, &o, &slug);
                    if let Some(n) = name {
                        w.name = n;
                    }
                    if let Some(d) = description {
                        w.description = non_empty(&d).map(str::to_owned);
                    }
                    if let Some(s) = settings {
                        w.settings.extend(s);
                    }
                }
                Change::DeleteWorkspace { org: o, slug, .. } => {
                    org(current, &o).workspaces.retain(|w| w.slug != slug)
                }
                Change::CreateKey {
                    org: o,
                    workspace: w,
                    key,
                } => {
                    let w = workspace(current, &o, &w);
                    let n = w.keys.len() as i64;
                    w.keys.push(KeyState {
                        hash: format!("hash-{}", key.name),
                        name: key.name,
                        management: key.kind == KeyKindSpec::Management,
                        limit: key.limit.flatten(),
                        limit_reset: key
                            .limit_reset
                            .filter(|r| *r != LimitResetSpec::Never)
                            .map(|r| r.as_str().to_owned()),
                        disabled: key.disabled.unwrap_or(false),
                        created_at_ms: n,
                    });
                }
                Change::UpdateKey {
                    org: o,
                    workspace: w,
                    hash,
                    limit,
                    limit_reset,
                    disabled,
                    ..
                } => {
                    let w = workspace(current, &o, &w);
                    let k = w.keys.iter_mut().find(|k| k.hash == hash).unwrap();
                    if let Some(l) = limit {
                        k.limit = l;
                    }
                    if let Some(r) = limit_reset {
                        k.limit_reset = (r != LimitResetSpec::Never).then(|| r.as_str().to_owned());
                    }
                    if let Some(d) = disabled {
                        k.disabled = d;
                    }
                }
                Change::DeleteKey {
                    org: o,
                    workspace: w,
                    hash,
                    ..
                } => workspace(current, &o, &w).keys.retain(|k| k.hash != hash),
                Change::CreatePreset {
                    org: o,
                    workspace,
                    preset,
                } => {
                    let versions: Vec<VersionState> = preset.versions.iter().map(version).collect();
                    org(current, &o).presets.push(PresetState {
                        slug: preset.slug.clone(),
                        workspace_slug: workspace,
                        name: preset.name.unwrap_or(preset.slug),
                        description: preset.description.filter(|d| !d.is_empty()),
                        designated: versions.len() as i64,
                        versions,
                    });
                }
                Change::UpdatePreset {
                    org: o,
                    slug,
                    name,
                    description,
                    ..
                } => {
                    let p = preset(current, &o, &slug);
                    if let Some(n) = name {
                        p.name = n;
                    }
                    if let Some(d) = description {
                        p.description = non_empty(&d).map(str::to_owned);
                    }
                }
                Change::AddPresetVersions {
                    org: o,
                    slug,
                    versions,
                    ..
                } => {
                    let p = preset(current, &o, &slug);
                    p.versions.extend(versions.iter().map(version));
                    p.designated = p.versions.len() as i64;
                }
                Change::DesignateLatest {
                    org: o,
                    slug,
                    version,
                    ..
                } => preset(current, &o, &slug).designated = version,
                Change::DeletePreset { org: o, slug } => {
                    org(current, &o).presets.retain(|p| p.slug != slug)
                }
            }
        }
    }

    /// An empty server after one apply of `desired`.
    fn converged(desired: &Spec) -> Current {
        let mut current = Current::default();
        let first = plan(desired, &current, false).unwrap();
        execute(&mut current, &first);
        current
    }

    fn org<'a>(c: &'a mut Current, name: &str) -> &'a mut OrgState {
        c.organizations.iter_mut().find(|o| o.name == name).unwrap()
    }

    fn workspace<'a>(c: &'a mut Current, o: &str, slug: &str) -> &'a mut WorkspaceState {
        org(c, o)
            .workspaces
            .iter_mut()
            .find(|w| w.slug == slug)
            .unwrap()
    }

    fn preset<'a>(c: &'a mut Current, o: &str, slug: &str) -> &'a mut PresetState {
        org(c, o)
            .presets
            .iter_mut()
            .find(|p| p.slug == slug)
            .unwrap()
    }

    fn version(v: &VersionSpec) -> VersionState {
        VersionState {
            config: v.config.clone(),
            system_prompt: v.system_prompt.clone(),
        }
    }

    fn lines(plan: &Plan) -> Vec<String> {
        plan.changes.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn an_empty_server_gets_everything_parents_first() {
        let plan = plan(&spec(FILE), &Current::default(), false).unwrap();
        assert_eq!(
            lines(&plan),
            [
                "+ organization Acme",
                "+ user alice@example.com",
                "+ member alice@example.com of Acme as admin",
                "~ workspace Acme/default (name: Default -> Main)",
                "+ key Acme/default/ci",
                "+ workspace Acme/research",
                "+ workspace member alice@example.com of Acme/research",
                "+ key Acme/research/lab",
                "+ preset Acme/summarize in research (2 versions)",
            ]
        );
        assert!(plan.warnings.is_empty());
    }

    #[test]
    fn applying_the_plan_converges_and_a_second_plan_is_empty() {
        let desired = spec(FILE);
        let mut current = Current::default();
        let first = plan(&desired, &current, true).unwrap();
        execute(&mut current, &first);
        let second = plan(&desired, &current, true).unwrap();
        assert!(second.is_empty(), "{:?}", lines(&second));
        assert!(second.warnings.is_empty(), "{:?}", second.warnings);
        // The same input twice gives the same plan.
        assert_eq!(plan(&desired, &Current::default(), true).unwrap(), first);
    }

    #[test]
    fn only_declared_fields_are_compared_and_changed() {
        let desired = spec(FILE);
        let mut current = converged(&desired);
        // Server-side drift: another settings field, a number written as a float, a changed
        // limit, a pinned old version.
        let acme = org(&mut current, "Acme");
        let settings = &mut acme.workspaces[1].settings;
        settings.insert("other".into(), Value::Bool(true));
        settings.insert("io_logging_sampling_rate".into(), serde_json::json!(1.0));
        acme.workspaces[0].keys[0].limit = Some(9.0);
        acme.presets[0].designated = 1;
        let plan = plan(&desired, &current, false).unwrap();
        assert_eq!(
            lines(&plan),
            [
                "~ key Acme/default/ci (limit: 9 -> 5.5)",
                "~ preset Acme/summarize (designated_version: 1 -> 2)",
            ]
        );
    }

    #[test]
    fn deletions_only_with_prune_and_never_the_default_workspace() {
        let desired = spec(FILE);
        let mut current = converged(&desired);
        let acme = org(&mut current, "Acme");
        acme.members.push(MemberState {
            email: "bob@example.com".into(),
            role: "member".into(),
        });
        acme.workspaces.push(WorkspaceState {
            slug: "old".into(),
            name: "Old".into(),
            description: None,
            settings: Map::new(),
            is_default: false,
            members: vec!["alice@example.com".into()],
            keys: vec![],
        });
        acme.workspaces[1].members.push("bob@example.com".into());
        // Nobody leaves the default workspace, where every member belongs.
        acme.workspaces[0].members.push("carol@example.com".into());
        acme.workspaces[0].keys.push(KeyState {
            hash: "h-stray".into(),
            name: "stray".into(),
            management: false,
            limit: None,
            limit_reset: None,
            disabled: false,
            created_at_ms: 100,
        });
        assert!(plan(&desired, &current, false).unwrap().is_empty());
        let pruned = plan(&desired, &current, true).unwrap();
        assert_eq!(
            lines(&pruned),
            [
                "- key Acme/default/stray",
                "- workspace member bob@example.com of Acme/research",
                "- workspace Acme/old",
                "- member bob@example.com of Acme",
            ]
        );
        let mut without_default = desired.clone();
        without_default.organizations[0].workspaces.remove(0);
        let pruned = plan(&without_default, &current, true).unwrap();
        assert!(
            !lines(&pruned)
                .iter()
                .any(|l| l.contains("- workspace Acme/default"))
        );
    }

    #[test]
    fn rotated_keys_are_matched_by_their_newest_namesake() {
        let desired = spec(FILE);
        let mut current = converged(&desired);
        let keys = &mut org(&mut current, "Acme").workspaces[0].keys;
        let mut old = keys[0].clone();
        old.hash = "h-old".into();
        old.limit = Some(1.0);
        old.created_at_ms = -1;
        keys.push(old);
        assert!(plan(&desired, &current, false).unwrap().is_empty());
    }

    #[test]
    fn what_the_api_cannot_change_is_a_warning_not_a_change() {
        let desired = spec(FILE);
        let mut current = converged(&desired);
        current.users[0].name = "Alicia".into();
        let p = &mut org(&mut current, "Acme").presets[0];
        p.versions[0].system_prompt = Some("Be verbose.".into());
        let plan = plan(&desired, &current, false).unwrap();
        assert!(plan.is_empty());
        assert_eq!(plan.warnings.len(), 2, "{:?}", plan.warnings);
    }

    #[test]
    fn new_versions_are_appended() {
        let mut desired = spec(FILE);
        let current = converged(&desired);
        desired.organizations[0].workspaces[1].presets[0]
            .versions
            .push(VersionSpec {
                config: serde_json::json!({"model": "mock/slow"}),
                system_prompt: None,
            });
        assert_eq!(
            lines(&plan(&desired, &current, false).unwrap()),
            ["+ preset Acme/summarize version 3"]
        );
    }

    #[test]
    fn a_membership_of_an_unknown_user_is_an_error() {
        let mut desired = spec(FILE);
        desired.users.clear();
        assert!(plan(&desired, &Current::default(), false).is_err());
    }
}
