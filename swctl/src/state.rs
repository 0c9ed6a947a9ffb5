//! Reads what the server holds into the plan's model, for the organizations a file declares.

use std::collections::HashMap;

use anyhow::{Context, bail};
use serde_json::{Map, Value};
use switchyard_proto::admin::v1 as pb;

use crate::client::Admin;
use crate::plan::{
    Current, KeyState, MemberState, OrgState, PresetState, UserState, VersionState, WorkspaceState,
};
use crate::spec::Spec;
use crate::views;

/// Page size of list calls.
const PAGE: i64 = 500;

/// The server's state, with the ids `apply` needs to address what it changes.
pub struct Loaded {
    pub current: Current,
    /// Organization name to id, for organizations (not personal accounts).
    pub org_ids: HashMap<String, String>,
    /// User email to id.
    pub user_ids: HashMap<String, String>,
}

pub async fn load(client: &mut Admin, spec: &Spec) -> anyhow::Result<Loaded> {
    let orgs = client
        .list_organizations(pb::ListOrganizationsRequest {})
        .await?
        .into_inner()
        .organizations;
    let mut org_ids = HashMap::new();
    for o in orgs.iter().filter(|o| is_organization(o)) {
        if org_ids.insert(o.name.clone(), o.id.clone()).is_some() {
            bail!(
                "two organizations are named {:?}: rename one (apply identifies organizations by name)",
                o.name
            );
        }
    }
    let users = client
        .list_users(pb::ListUsersRequest {})
        .await?
        .into_inner()
        .users;
    let user_ids: HashMap<String, String> = users
        .iter()
        .map(|u| (u.email.clone(), u.id.clone()))
        .collect();
    let emails: HashMap<String, String> = users
        .iter()
        .map(|u| (u.id.clone(), u.email.clone()))
        .collect();
    let mut current = Current {
        organizations: Vec::new(),
        users: users
            .into_iter()
            .map(|u| UserState {
                id: u.id,
                email: u.email,
                name: u.name,
            })
            .collect(),
    };
    for declared in &spec.organizations {
        let Some(o) = orgs
            .iter()
            .find(|o| is_organization(o) && o.name == declared.name)
        else {
            continue;
        };
        current.organizations.push(
            load_org(client, o, &emails)
                .await
                .with_context(|| format!("cannot read organization {}", o.name))?,
        );
    }
    Ok(Loaded {
        current,
        org_ids,
        user_ids,
    })
}

pub fn is_organization(o: &pb::Organization) -> bool {
    o.kind != i32::from(pb::OrganizationKind::Personal)
}

async fn load_org(
    client: &mut Admin,
    o: &pb::Organization,
    emails: &HashMap<String, String>,
) -> anyhow::Result<OrgState> {
    let members = members(client, &o.id).await?;
    let workspaces = client
        .list_workspaces(pb::ListWorkspacesRequest {
            organization_id: o.id.clone(),
        })
        .await?
        .into_inner()
        .workspaces;
    let keys = keys(client, &o.id).await?;
    let slugs: HashMap<&str, &str> = workspaces
        .iter()
        .map(|w| (w.id.as_str(), w.slug.as_str()))
        .collect();
    let presets = client
        .list_presets(pb::ListPresetsRequest {
            organization_id: o.id.clone(),
            workspace: String::new(),
            include_versions: true,
        })
        .await?
        .into_inner()
        .presets;
    let presets = presets
        .into_iter()
        .map(|p| PresetState {
            workspace_slug: slugs
                .get(p.workspace_id.as_str())
                .map_or_else(|| p.workspace_id.clone(), |s| (*s).to_owned()),
            slug: p.slug,
            name: p.name,
            description: non_empty(p.description),
            designated: p.designated_version,
            versions: p
                .versions
                .into_iter()
                .map(|v| VersionState {
                    config: serde_json::from_str(&v.config_json).unwrap_or(Value::Null),
                    system_prompt: non_empty(v.system_prompt),
                })
                .collect(),
        })
        .collect();
    let mut workspace_members = HashMap::new();
    for w in &workspaces {
        let members = client
            .list_workspace_members(pb::ListWorkspaceMembersRequest {
                organization_id: o.id.clone(),
                workspace: w.id.clone(),
            })
            .await?
            .into_inner()
            .members;
        let members: Vec<String> = members
            .iter()
            .filter_map(|m| emails.get(&m.user_id).cloned())
            .collect();
        workspace_members.insert(w.id.clone(), members);
    }
    let workspaces = workspaces
        .iter()
        .map(|w| WorkspaceState {
            slug: w.slug.clone(),
            name: w.name.clone(),
            description: non_empty(w.description.clone()),
            settings: serde_json::from_str::<Map<String, Value>>(&w.settings_json)
                .unwrap_or_default(),
            is_default: w.is_default,
            members: workspace_members.remove(&w.id).unwrap_or_default(),
            keys: keys
                .iter()
                .filter(|k| k.workspace_id == w.id)
                .map(key_state)
                .collect(),
        })
        .collect();
    Ok(OrgState {
        id: o.id.clone(),
        name: o.name.clone(),
        member_cap: o.member_cap,
        filtered_model_catalog: o.filtered_model_catalog,
        enforce_zdr: o.enforce_zdr,
        deny_data_collection: o.deny_data_collection,
        members,
        workspaces,
        presets,
    })
}

async fn members(client: &mut Admin, organization_id: &str) -> anyhow::Result<Vec<MemberState>> {
    let mut out = Vec::new();
    loop {
        let page = client
            .list_members(pb::ListMembersRequest {
                organization_id: organization_id.to_owned(),
                offset: out.len() as i64,
                limit: PAGE,
            })
            .await?
            .into_inner();
        let fetched = page.members.len();
        out.extend(page.members.into_iter().map(|m| MemberState {
            role: views::role_name(m.role).to_owned(),
            email: m.email,
        }));
        if fetched == 0 || out.len() as i64 >= page.total {
            return Ok(out);
        }
    }
}

/// Every key of the organization, disabled ones included.
pub async fn keys(client: &mut Admin, organization_id: &str) -> anyhow::Result<Vec<pb::Key>> {
    let mut out = Vec::new();
    loop {
        let page = client
            .list_keys(pb::ListKeysRequest {
                organization_id: organization_id.to_owned(),
                workspace: String::new(),
                include_disabled: true,
                offset: out.len() as i64,
                limit: PAGE,
            })
            .await?
            .into_inner()
            .keys;
        let fetched = page.len();
        out.extend(page);
        if (fetched as i64) < PAGE {
            return Ok(out);
        }
    }
}

fn key_state(k: &pb::Key) -> KeyState {
    KeyState {
        hash: k.hash.clone(),
        name: k.name.clone(),
        management: k.kind == i32::from(pb::KeyKind::Management),
        limit: k.limit_usd,
        limit_reset: views::limit_reset_name(k.limit_reset).map(str::to_owned),
        disabled: k.disabled,
        created_at_ms: k.created_at_ms,
    }
}

fn non_empty(s: String) -> Option<String> {
    if s.trim().is_empty() { None } else { Some(s) }
}
