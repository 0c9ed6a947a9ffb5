//! `AdminService`: each RPC is one call into [`Manage`] as the operator, with its request and
//! response translated by `convert`.

use switchyard_proto::admin::v1 as pb;
use switchyard_proto::admin::v1::admin_service_server::AdminService;
use tonic::{Code, Request, Response, Status};

use super::convert::{self, non_empty};
use super::status;
use crate::manage::activity::{ExportGroup, ExportRequest};
use crate::manage::byok::NewByok;
use crate::manage::keys::{KeyFilter, KeyUpdate, NewKeyInput};
use crate::manage::organizations::OrganizationPatch;
use crate::manage::presets::{NewPreset, NewPresetVersion, PresetPatch};
use crate::manage::{Actor, Manage, ManageError, Role};
use crate::store::WorkspaceRow;

/// Page size when a list request leaves `limit` at 0.
const DEFAULT_PAGE: i64 = 100;
/// Largest page a list request may ask for.
const MAX_PAGE: i64 = 1000;

pub struct AdminApi {
    manage: Manage,
}

impl AdminApi {
    pub fn new(manage: Manage) -> AdminApi {
        AdminApi { manage }
    }
}

/// Every RPC acts as the operator: the token was checked by the interceptor.
const OPERATOR: &Actor = &Actor::Operator;

type RpcResult<T> = Result<Response<T>, Status>;

/// Errors of RPCs that create something: a conflict means it already exists.
fn on_create(e: ManageError) -> Status {
    status(e, Code::AlreadyExists)
}

/// Errors of RPCs that read or change existing state.
fn on_change(e: ManageError) -> Status {
    status(e, Code::FailedPrecondition)
}

fn page(limit: i64) -> i64 {
    if limit <= 0 {
        DEFAULT_PAGE
    } else {
        limit.min(MAX_PAGE)
    }
}

/// A count for the wire; bounded by the manage layer's list limits, so never near the edge.
fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn ok<T>(message: T) -> RpcResult<T> {
    Ok(Response::new(message))
}

impl AdminApi {
    /// The user an operator-created key acts for: the one named, or the organization's first
    /// admin (oldest membership), so that `swctl create key` works without looking one up.
    async fn key_owner(&self, organization_id: &str, requested: &str) -> Result<String, Status> {
        if let Some(user) = non_empty(requested) {
            return Ok(user.to_owned());
        }
        let (members, _) = self
            .manage
            .members(OPERATOR, Some(organization_id), 0, MAX_PAGE)
            .await
            .map_err(on_change)?;
        members
            .into_iter()
            .find(|m| m.role == Role::Admin.as_str())
            .map(|m| m.user_id)
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "organization {organization_id} has no admin to own the key: name a user"
                ))
            })
    }

    /// Every workspace of an organization, the Default first.
    async fn workspaces(&self, organization_id: &str) -> Result<Vec<WorkspaceRow>, Status> {
        let mut all = Vec::new();
        loop {
            let (rows, total) = self
                .manage
                .list_workspaces(
                    OPERATOR,
                    Some(organization_id),
                    all.len() as i64,
                    crate::manage::MAX_PAGE,
                )
                .await
                .map_err(on_change)?;
            let fetched = rows.len();
            all.extend(rows);
            if fetched == 0 || all.len() as i64 >= total {
                return Ok(all);
            }
        }
    }

    /// A workspace id from an id or a slug: the manage layer takes ids from the operator, who
    /// has no organization to look slugs up in, but operators think in slugs.
    async fn workspace_id(&self, organization_id: &str, reference: &str) -> Result<String, Status> {
        let reference = reference.trim();
        self.workspaces(organization_id)
            .await?
            .into_iter()
            .find(|w| w.id == reference || w.slug == reference)
            .map(|w| w.id)
            .ok_or_else(|| Status::not_found(format!("Workspace {reference} not found")))
    }

    /// The workspace a guardrail request names (id or slug), or the organization's default
    /// workspace when it names none: the manage layer takes only ids from the operator.
    async fn guardrail_workspace(
        &self,
        organization_id: &str,
        reference: &str,
    ) -> Result<String, Status> {
        if let Some(w) = non_empty(reference) {
            return self.workspace_id(organization_id, w).await;
        }
        self.workspaces(organization_id)
            .await?
            .into_iter()
            .find(|w| w.is_default)
            .map(|w| w.id)
            .ok_or_else(|| {
                Status::not_found(format!(
                    "organization {organization_id} has no default workspace"
                ))
            })
    }

    /// Fails unless the credential belongs to the organization the request names, so that an
    /// id cannot reach across organizations by mistake.
    async fn byok_of(&self, organization_id: &str, id: &str) -> Result<(), Status> {
        let row = self
            .manage
            .byok_key(OPERATOR, id)
            .await
            .map_err(on_change)?;
        if row.organization_id != organization_id {
            return Err(Status::not_found(format!("BYOK credential {id} not found")));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    // ---- organizations --------------------------------------------------------------------

    async fn create_organization(
        &self,
        request: Request<pb::CreateOrganizationRequest>,
    ) -> RpcResult<pb::Organization> {
        let r = request.into_inner();
        let org = self
            .manage
            .create_organization(OPERATOR, &r.name, r.member_cap)
            .await
            .map_err(on_create)?;
        ok(convert::organization(org))
    }

    async fn list_organizations(
        &self,
        _: Request<pb::ListOrganizationsRequest>,
    ) -> RpcResult<pb::ListOrganizationsResponse> {
        let rows = self
            .manage
            .organizations(OPERATOR)
            .await
            .map_err(on_change)?;
        ok(pb::ListOrganizationsResponse {
            organizations: rows.into_iter().map(convert::organization).collect(),
        })
    }

    async fn get_organization(
        &self,
        request: Request<pb::GetOrganizationRequest>,
    ) -> RpcResult<pb::Organization> {
        let r = request.into_inner();
        let org = self
            .manage
            .organization(OPERATOR, Some(&r.id))
            .await
            .map_err(on_change)?;
        ok(convert::organization(org))
    }

    async fn update_organization(
        &self,
        request: Request<pb::UpdateOrganizationRequest>,
    ) -> RpcResult<pb::Organization> {
        let r = request.into_inner();
        let patch = OrganizationPatch {
            name: r.name,
            member_cap: r.member_cap,
            filtered_model_catalog: r.filtered_model_catalog,
            enforce_zdr: r.enforce_zdr,
            deny_data_collection: r.deny_data_collection,
        };
        let org = self
            .manage
            .update_organization(OPERATOR, Some(&r.id), patch)
            .await
            .map_err(on_change)?;
        ok(convert::organization(org))
    }

    // ---- users and members ----------------------------------------------------------------

    async fn create_user(&self, request: Request<pb::CreateUserRequest>) -> RpcResult<pb::User> {
        let r = request.into_inner();
        let user = self
            .manage
            .create_user(OPERATOR, &r.email, &r.name)
            .await
            .map_err(on_create)?;
        ok(convert::user(user))
    }

    async fn list_users(
        &self,
        _: Request<pb::ListUsersRequest>,
    ) -> RpcResult<pb::ListUsersResponse> {
        let rows = self.manage.users(OPERATOR).await.map_err(on_change)?;
        ok(pb::ListUsersResponse {
            users: rows.into_iter().map(convert::user).collect(),
        })
    }

    async fn add_member(&self, request: Request<pb::AddMemberRequest>) -> RpcResult<pb::Member> {
        let r = request.into_inner();
        let role = convert::role(r.role)?;
        let member = self
            .manage
            .add_member(OPERATOR, Some(&r.organization_id), &r.user_id, role)
            .await
            .map_err(on_create)?;
        ok(convert::member(member))
    }

    async fn set_member_role(
        &self,
        request: Request<pb::SetMemberRoleRequest>,
    ) -> RpcResult<pb::Member> {
        let r = request.into_inner();
        let role = convert::role(r.role)?;
        let member = self
            .manage
            .set_member_role(OPERATOR, Some(&r.organization_id), &r.user_id, role)
            .await
            .map_err(on_change)?;
        ok(convert::member(member))
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> RpcResult<pb::RemoveMemberResponse> {
        let r = request.into_inner();
        self.manage
            .remove_member(OPERATOR, Some(&r.organization_id), &r.user_id)
            .await
            .map_err(on_change)?;
        ok(pb::RemoveMemberResponse {})
    }

    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> RpcResult<pb::ListMembersResponse> {
        let r = request.into_inner();
        if r.offset < 0 {
            return Err(Status::invalid_argument("offset must not be negative"));
        }
        let (rows, total) = self
            .manage
            .members(OPERATOR, Some(&r.organization_id), r.offset, page(r.limit))
            .await
            .map_err(on_change)?;
        ok(pb::ListMembersResponse {
            members: rows.into_iter().map(convert::member).collect(),
            total,
        })
    }

    // ---- workspaces -----------------------------------------------------------------------

    async fn create_workspace(
        &self,
        request: Request<pb::CreateWorkspaceRequest>,
    ) -> RpcResult<pb::Workspace> {
        let r = request.into_inner();
        let input =
            convert::workspace_input(Some(r.name), Some(r.slug), r.description, &r.settings_json)?;
        let w = self
            .manage
            .create_workspace(OPERATOR, Some(&r.organization_id), &input)
            .await
            .map_err(on_create)?;
        ok(convert::workspace(w))
    }

    async fn list_workspaces(
        &self,
        request: Request<pb::ListWorkspacesRequest>,
    ) -> RpcResult<pb::ListWorkspacesResponse> {
        let r = request.into_inner();
        let rows = self.workspaces(&r.organization_id).await?;
        ok(pb::ListWorkspacesResponse {
            workspaces: rows.into_iter().map(convert::workspace).collect(),
        })
    }

    async fn get_workspace(
        &self,
        request: Request<pb::GetWorkspaceRequest>,
    ) -> RpcResult<pb::Workspace> {
        let r = request.into_inner();
        let id = self.workspace_id(&r.organization_id, &r.workspace).await?;
        let w = self
            .manage
            .get_workspace(OPERATOR, &id)
            .await
            .map_err(on_change)?;
        ok(convert::workspace(w))
    }

    async fn update_workspace(
        &self,
        request: Request<pb::UpdateWorkspaceRequest>,
    ) -> RpcResult<pb::Workspace> {
        let r = request.into_inner();
        let id = self.workspace_id(&r.organization_id, &r.workspace).await?;
        let input = convert::workspace_input(
            r.name,
            r.slug,
            r.description,
            r.settings_json.as_deref().unwrap_or_default(),
        )?;
        let w = self
            .manage
            .update_workspace(OPERATOR, &id, &input)
            .await
            .map_err(on_change)?;
        ok(convert::workspace(w))
    }

    async fn delete_workspace(
        &self,
        request: Request<pb::DeleteWorkspaceRequest>,
    ) -> RpcResult<pb::DeleteWorkspaceResponse> {
        let r = request.into_inner();
        let id = self.workspace_id(&r.organization_id, &r.workspace).await?;
        let deleted = self
            .manage
            .delete_workspace(OPERATOR, &id, r.force)
            .await
            .map_err(on_change)?;
        ok(pb::DeleteWorkspaceResponse {
            deleted_key_hashes: deleted.key_hashes,
            deleted_presets: deleted.presets,
            deleted_byok_credentials: deleted.byok_credentials,
        })
    }

    async fn add_workspace_member(
        &self,
        request: Request<pb::AddWorkspaceMemberRequest>,
    ) -> RpcResult<pb::AddWorkspaceMemberResponse> {
        let r = request.into_inner();
        let id = self.workspace_id(&r.organization_id, &r.workspace).await?;
        let added = self
            .manage
            .add_workspace_members(OPERATOR, &id, std::slice::from_ref(&r.user_id))
            .await
            .map_err(on_change)?;
        ok(pb::AddWorkspaceMemberResponse {
            added: !added.is_empty(),
        })
    }

    async fn remove_workspace_member(
        &self,
        request: Request<pb::RemoveWorkspaceMemberRequest>,
    ) -> RpcResult<pb::RemoveWorkspaceMemberResponse> {
        let r = request.into_inner();
        let id = self.workspace_id(&r.organization_id, &r.workspace).await?;
        let removed = self
            .manage
            .remove_workspace_members(OPERATOR, &id, std::slice::from_ref(&r.user_id))
            .await
            .map_err(on_change)?;
        if removed == 0 {
            return Err(Status::not_found(format!(
                "User {} is not a member of workspace {}",
                r.user_id, r.workspace
            )));
        }
        ok(pb::RemoveWorkspaceMemberResponse {})
    }

    async fn list_workspace_members(
        &self,
        request: Request<pb::ListWorkspaceMembersRequest>,
    ) -> RpcResult<pb::ListWorkspaceMembersResponse> {
        let r = request.into_inner();
        let id = self.workspace_id(&r.organization_id, &r.workspace).await?;
        let mut members = Vec::new();
        loop {
            let (rows, total) = self
                .manage
                .list_workspace_members(
                    OPERATOR,
                    &id,
                    members.len() as i64,
                    crate::manage::MAX_PAGE,
                )
                .await
                .map_err(on_change)?;
            let fetched = rows.len();
            members.extend(rows.into_iter().map(convert::workspace_member));
            if fetched == 0 || members.len() as i64 >= total {
                break;
            }
        }
        ok(pb::ListWorkspaceMembersResponse { members })
    }

    // ---- keys -----------------------------------------------------------------------------

    async fn create_key(
        &self,
        request: Request<pb::CreateKeyRequest>,
    ) -> RpcResult<pb::KeyWithSecret> {
        let r = request.into_inner();
        let owner = self.key_owner(&r.organization_id, &r.user_id).await?;
        let input = NewKeyInput {
            name: r.name,
            kind: convert::key_kind(r.kind)?,
            workspace: non_empty(&r.workspace).map(str::to_owned),
            organization_id: Some(r.organization_id),
            owner_user_id: Some(owner),
            limit_usd: r.limit_usd,
            limit_reset: convert::limit_reset(r.limit_reset)?.flatten(),
            include_byok_in_limit: r.include_byok_in_limit,
            expires_at: (r.expires_at_ms != 0).then_some(r.expires_at_ms),
        };
        let (mut key, secret) = self
            .manage
            .create_key(OPERATOR, input)
            .await
            .map_err(on_create)?;
        if r.disabled {
            // Keys are created enabled; a key declared disabled is switched off at once.
            let update = KeyUpdate {
                disabled: Some(true),
                ..KeyUpdate::default()
            };
            key = self
                .manage
                .update_key(OPERATOR, &key.hash, update)
                .await
                .map_err(on_change)?;
        }
        ok(pb::KeyWithSecret {
            key: Some(convert::key(key)),
            secret,
        })
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> RpcResult<pb::ListKeysResponse> {
        let r = request.into_inner();
        let filter = KeyFilter {
            organization_id: Some(r.organization_id),
            workspace: non_empty(&r.workspace).map(str::to_owned),
            include_disabled: r.include_disabled,
        };
        let rows = self
            .manage
            .keys(OPERATOR, &filter, r.offset, page(r.limit))
            .await
            .map_err(on_change)?;
        ok(pb::ListKeysResponse {
            keys: rows.into_iter().map(convert::key).collect(),
        })
    }

    async fn get_key(&self, request: Request<pb::GetKeyRequest>) -> RpcResult<pb::Key> {
        let r = request.into_inner();
        let key = self
            .manage
            .key(OPERATOR, &r.hash)
            .await
            .map_err(on_change)?;
        ok(convert::key(key))
    }

    async fn update_key(&self, request: Request<pb::UpdateKeyRequest>) -> RpcResult<pb::Key> {
        let r = request.into_inner();
        let limit_usd = if r.clear_limit {
            Some(None)
        } else {
            r.limit_usd.map(Some)
        };
        let update = KeyUpdate {
            name: r.name,
            disabled: r.disabled,
            limit_usd,
            limit_reset: convert::limit_reset(r.limit_reset)?,
            include_byok_in_limit: r.include_byok_in_limit,
            workspace: None,
        };
        let key = self
            .manage
            .update_key(OPERATOR, &r.hash, update)
            .await
            .map_err(on_change)?;
        ok(convert::key(key))
    }

    async fn delete_key(
        &self,
        request: Request<pb::DeleteKeyRequest>,
    ) -> RpcResult<pb::DeleteKeyResponse> {
        let r = request.into_inner();
        self.manage
            .delete_key(OPERATOR, &r.hash)
            .await
            .map_err(on_change)?;
        ok(pb::DeleteKeyResponse {})
    }

    async fn rotate_key(
        &self,
        request: Request<pb::RotateKeyRequest>,
    ) -> RpcResult<pb::KeyWithSecret> {
        let r = request.into_inner();
        let (key, secret) = self
            .manage
            .rotate_key(OPERATOR, &r.hash, r.grace_seconds)
            .await
            .map_err(on_change)?;
        ok(pb::KeyWithSecret {
            key: Some(convert::key(key)),
            secret,
        })
    }

    // ---- credits --------------------------------------------------------------------------

    async fn get_credits(&self, request: Request<pb::GetCreditsRequest>) -> RpcResult<pb::Credits> {
        let r = request.into_inner();
        let credits = self
            .manage
            .credits(OPERATOR, Some(&r.owner_id))
            .await
            .map_err(on_change)?;
        ok(convert::credits(r.owner_id, credits))
    }

    async fn export_usage(
        &self,
        request: Request<pb::ExportUsageRequest>,
    ) -> RpcResult<pb::ExportUsageResponse> {
        let r = request.into_inner();
        let text = |s: String| (!s.is_empty()).then_some(s);
        let group: ExportGroup = text(r.group_by)
            .as_deref()
            .unwrap_or("model")
            .parse()
            .map_err(on_change)?;
        let format = text(r.format).unwrap_or_else(|| "csv".into());
        let export_request = ExportRequest {
            start: text(r.start),
            end: text(r.end),
            group,
            api_key_hash: text(r.api_key_hash),
            user_id: text(r.user_id),
            workspace_id: text(r.workspace_id),
            model: text(r.model),
            external_user: text(r.user),
        };
        let now = crate::now_ms();
        let export = self
            .manage
            .export_usage(OPERATOR, Some(&r.organization_id), &export_request, now)
            .await
            .map_err(on_change)?;
        let (body, content_type) = match format.as_str() {
            "csv" => (
                crate::report::csv(&export).map_err(|e| Status::internal(e.to_string()))?,
                "text/csv",
            ),
            "pdf" => (
                crate::report::pdf(&export, &crate::api::iso8601(now)),
                "application/pdf",
            ),
            other => {
                return Err(Status::invalid_argument(format!(
                    "format must be csv or pdf, not {other:?}"
                )));
            }
        };
        ok(pb::ExportUsageResponse {
            filename: format!(
                "switchyard-usage-{}-{}-by-{}.{format}",
                export.start,
                export.end,
                group.as_str()
            ),
            content_type: content_type.into(),
            body,
        })
    }

    async fn grant_credits(
        &self,
        request: Request<pb::GrantCreditsRequest>,
    ) -> RpcResult<pb::LedgerEntry> {
        let r = request.into_inner();
        let entry = self
            .manage
            .grant_credits(OPERATOR, Some(&r.owner_id), r.amount_usd, &r.reason)
            .await
            .map_err(on_change)?;
        ok(convert::ledger_entry(entry))
    }

    async fn transfer_credits(
        &self,
        request: Request<pb::TransferCreditsRequest>,
    ) -> RpcResult<pb::TransferCreditsResponse> {
        let r = request.into_inner();
        self.manage
            .transfer_personal_credits(
                OPERATOR,
                &r.user_id,
                &r.organization_id,
                r.amount_usd,
                &r.reason,
            )
            .await
            .map_err(on_change)?;
        ok(pb::TransferCreditsResponse {})
    }

    async fn list_ledger(
        &self,
        request: Request<pb::ListLedgerRequest>,
    ) -> RpcResult<pb::ListLedgerResponse> {
        let r = request.into_inner();
        let rows = self
            .manage
            .ledger(OPERATOR, Some(&r.owner_id), page(r.limit))
            .await
            .map_err(on_change)?;
        ok(pb::ListLedgerResponse {
            entries: rows.into_iter().map(convert::ledger_entry).collect(),
        })
    }

    // ---- presets --------------------------------------------------------------------------

    async fn list_presets(
        &self,
        request: Request<pb::ListPresetsRequest>,
    ) -> RpcResult<pb::ListPresetsResponse> {
        let r = request.into_inner();
        let org = Some(r.organization_id.as_str());
        let workspace = match non_empty(&r.workspace) {
            Some(w) => Some(self.workspace_id(&r.organization_id, w).await?),
            None => None,
        };
        let mut presets = Vec::new();
        let mut offset = 0;
        // All pages: an organization's presets are few, and callers want them whole.
        loop {
            let (rows, total) = self
                .manage
                .presets(OPERATOR, org, offset, MAX_PAGE)
                .await
                .map_err(on_change)?;
            let fetched = rows.len() as i64;
            presets.extend(rows);
            offset += fetched;
            if fetched == 0 || offset >= total {
                break;
            }
        }
        presets.retain(|p| workspace.as_ref().is_none_or(|w| *w == p.workspace_id));
        let mut out = Vec::with_capacity(presets.len());
        for p in presets {
            let view = self
                .manage
                .preset(OPERATOR, org, &p.slug)
                .await
                .map_err(on_change)?;
            let mut message = convert::preset_view(view);
            if r.include_versions {
                message.versions = self.versions(org, &p.slug).await?;
            }
            out.push(message);
        }
        ok(pb::ListPresetsResponse { presets: out })
    }

    async fn get_preset(&self, request: Request<pb::GetPresetRequest>) -> RpcResult<pb::Preset> {
        let r = request.into_inner();
        let org = Some(r.organization_id.as_str());
        let view = self
            .manage
            .preset(OPERATOR, org, &r.slug)
            .await
            .map_err(on_change)?;
        let mut message = convert::preset_view(view);
        if r.include_versions {
            message.versions = self.versions(org, &r.slug).await?;
        }
        ok(message)
    }

    async fn create_preset(
        &self,
        request: Request<pb::CreatePresetRequest>,
    ) -> RpcResult<pb::Preset> {
        let r = request.into_inner();
        let workspace_id = match non_empty(&r.workspace) {
            Some(w) => Some(self.workspace_id(&r.organization_id, w).await?),
            None => None,
        };
        let new = NewPreset {
            slug: r.slug,
            name: r.name,
            description: r.description,
            workspace_id,
            config: convert::json("config_json", &r.config_json)?
                .ok_or_else(|| Status::invalid_argument("config_json is required"))?,
            system_prompt: r.system_prompt,
        };
        let view = self
            .manage
            .create_preset(OPERATOR, Some(&r.organization_id), new)
            .await
            .map_err(on_create)?;
        let versions = view.designated.iter().cloned().map(convert::preset_version);
        let versions = versions.collect();
        ok(pb::Preset {
            versions,
            ..convert::preset_view(view)
        })
    }

    async fn add_preset_version(
        &self,
        request: Request<pb::AddPresetVersionRequest>,
    ) -> RpcResult<pb::PresetVersion> {
        let r = request.into_inner();
        let new = NewPresetVersion {
            config: convert::json("config_json", &r.config_json)?
                .ok_or_else(|| Status::invalid_argument("config_json is required"))?,
            system_prompt: r.system_prompt,
            designate: r.designate,
        };
        let version = self
            .manage
            .add_preset_version(OPERATOR, Some(&r.organization_id), &r.slug, new)
            .await
            .map_err(on_change)?;
        ok(convert::preset_version(version))
    }

    async fn update_preset(
        &self,
        request: Request<pb::UpdatePresetRequest>,
    ) -> RpcResult<pb::Preset> {
        let r = request.into_inner();
        let patch = PresetPatch {
            name: r.name,
            description: r.description.map(|d| non_empty(&d).map(str::to_owned)),
            status: r.status,
            designated_version_id: r.designated_version_id,
            designated_version: r.designated_version,
        };
        let view = self
            .manage
            .update_preset(OPERATOR, Some(&r.organization_id), &r.slug, patch)
            .await
            .map_err(on_change)?;
        ok(convert::preset_view(view))
    }

    async fn delete_preset(
        &self,
        request: Request<pb::DeletePresetRequest>,
    ) -> RpcResult<pb::DeletePresetResponse> {
        let r = request.into_inner();
        self.manage
            .delete_preset(OPERATOR, Some(&r.organization_id), &r.slug)
            .await
            .map_err(on_change)?;
        ok(pb::DeletePresetResponse {})
    }

    // ---- BYOK -----------------------------------------------------------------------------

    async fn list_byok_credentials(
        &self,
        request: Request<pb::ListByokCredentialsRequest>,
    ) -> RpcResult<pb::ListByokCredentialsResponse> {
        let r = request.into_inner();
        let org = Some(r.organization_id.as_str());
        let workspaces = match non_empty(&r.workspace) {
            Some(w) => vec![self.workspace_id(&r.organization_id, w).await?],
            None => self
                .workspaces(&r.organization_id)
                .await?
                .into_iter()
                .map(|w| w.id)
                .collect(),
        };
        let provider = non_empty(&r.provider);
        let mut credentials = Vec::new();
        for workspace in workspaces {
            let mut offset = 0;
            loop {
                let (rows, total) = self
                    .manage
                    .byok_keys(OPERATOR, org, Some(&workspace), provider, offset, MAX_PAGE)
                    .await
                    .map_err(on_change)?;
                let fetched = rows.len() as i64;
                offset += fetched;
                credentials.extend(rows.into_iter().map(convert::byok));
                if fetched == 0 || offset >= total {
                    break;
                }
            }
        }
        ok(pb::ListByokCredentialsResponse { credentials })
    }

    async fn create_byok_credential(
        &self,
        request: Request<pb::CreateByokCredentialRequest>,
    ) -> RpcResult<pb::ByokCredential> {
        let r = request.into_inner();
        let workspace_id = match non_empty(&r.workspace) {
            Some(w) => Some(self.workspace_id(&r.organization_id, w).await?),
            None => None,
        };
        let new = NewByok {
            provider: r.provider,
            key: r.secret,
            workspace_id,
            name: non_empty(&r.name).map(str::to_owned),
            disabled: r.disabled,
            settings: convert::byok_settings(&r.settings_json)?,
        };
        let row = self
            .manage
            .create_byok(OPERATOR, Some(&r.organization_id), new)
            .await
            .map_err(on_create)?;
        ok(convert::byok(row))
    }

    async fn update_byok_credential(
        &self,
        request: Request<pb::UpdateByokCredentialRequest>,
    ) -> RpcResult<pb::ByokCredential> {
        let r = request.into_inner();
        self.byok_of(&r.organization_id, &r.id).await?;
        let patch = convert::byok_patch(r.name, r.secret, r.disabled, r.settings_json.as_deref())?;
        let row = self
            .manage
            .update_byok(OPERATOR, &r.id, patch)
            .await
            .map_err(on_change)?;
        ok(convert::byok(row))
    }

    async fn delete_byok_credential(
        &self,
        request: Request<pb::DeleteByokCredentialRequest>,
    ) -> RpcResult<pb::DeleteByokCredentialResponse> {
        let r = request.into_inner();
        self.byok_of(&r.organization_id, &r.id).await?;
        self.manage
            .delete_byok(OPERATOR, &r.id)
            .await
            .map_err(on_change)?;
        ok(pb::DeleteByokCredentialResponse {})
    }

    // ---- guardrails -----------------------------------------------------------------------

    async fn list_guardrails(
        &self,
        request: Request<pb::ListGuardrailsRequest>,
    ) -> RpcResult<pb::ListGuardrailsResponse> {
        let r = request.into_inner();
        let workspaces = match non_empty(&r.workspace) {
            Some(w) => vec![self.workspace_id(&r.organization_id, w).await?],
            None => self
                .workspaces(&r.organization_id)
                .await?
                .into_iter()
                .map(|w| w.id)
                .collect(),
        };
        let mut guardrails = Vec::new();
        for workspace in workspaces {
            let mut offset = 0;
            loop {
                let (rows, total) = self
                    .manage
                    .list_guardrails(OPERATOR, Some(&workspace), offset, crate::manage::MAX_PAGE)
                    .await
                    .map_err(on_change)?;
                let fetched = rows.len() as i64;
                offset += fetched;
                guardrails.extend(rows.into_iter().map(convert::guardrail));
                if fetched == 0 || offset >= total {
                    break;
                }
            }
        }
        ok(pb::ListGuardrailsResponse { guardrails })
    }

    async fn get_guardrail(
        &self,
        request: Request<pb::GetGuardrailRequest>,
    ) -> RpcResult<pb::Guardrail> {
        let r = request.into_inner();
        let g = self
            .manage
            .get_guardrail(OPERATOR, &r.id)
            .await
            .map_err(on_change)?;
        ok(convert::guardrail(g))
    }

    async fn create_guardrail(
        &self,
        request: Request<pb::CreateGuardrailRequest>,
    ) -> RpcResult<pb::Guardrail> {
        let r = request.into_inner();
        let workspace = self
            .guardrail_workspace(&r.organization_id, &r.workspace)
            .await?;
        let input = convert::new_guardrail(r, workspace);
        let g = self
            .manage
            .create_guardrail(OPERATOR, &input)
            .await
            .map_err(on_create)?;
        ok(convert::guardrail(g))
    }

    async fn update_guardrail(
        &self,
        request: Request<pb::UpdateGuardrailRequest>,
    ) -> RpcResult<pb::Guardrail> {
        let r = request.into_inner();
        let id = r.id.clone();
        let input = convert::guardrail_patch(r);
        let g = self
            .manage
            .update_guardrail(OPERATOR, &id, &input)
            .await
            .map_err(on_change)?;
        ok(convert::guardrail(g))
    }

    async fn delete_guardrail(
        &self,
        request: Request<pb::DeleteGuardrailRequest>,
    ) -> RpcResult<pb::DeleteGuardrailResponse> {
        let r = request.into_inner();
        self.manage
            .delete_guardrail(OPERATOR, &r.id)
            .await
            .map_err(on_change)?;
        ok(pb::DeleteGuardrailResponse {})
    }

    async fn assign_guardrail_keys(
        &self,
        request: Request<pb::AssignGuardrailKeysRequest>,
    ) -> RpcResult<pb::AssignGuardrailKeysResponse> {
        let r = request.into_inner();
        let n = self
            .manage
            .assign_guardrail_keys(OPERATOR, &r.id, &r.key_hashes)
            .await
            .map_err(on_change)?;
        ok(pb::AssignGuardrailKeysResponse {
            assigned_count: count(n),
        })
    }

    async fn unassign_guardrail_keys(
        &self,
        request: Request<pb::UnassignGuardrailKeysRequest>,
    ) -> RpcResult<pb::UnassignGuardrailKeysResponse> {
        let r = request.into_inner();
        let n = self
            .manage
            .unassign_guardrail_keys(OPERATOR, &r.id, &r.key_hashes)
            .await
            .map_err(on_change)?;
        ok(pb::UnassignGuardrailKeysResponse {
            unassigned_count: count(n),
        })
    }

    async fn assign_guardrail_members(
        &self,
        request: Request<pb::AssignGuardrailMembersRequest>,
    ) -> RpcResult<pb::AssignGuardrailMembersResponse> {
        let r = request.into_inner();
        let n = self
            .manage
            .assign_guardrail_members(OPERATOR, &r.id, &r.user_ids)
            .await
            .map_err(on_change)?;
        ok(pb::AssignGuardrailMembersResponse {
            assigned_count: count(n),
        })
    }

    async fn unassign_guardrail_members(
        &self,
        request: Request<pb::UnassignGuardrailMembersRequest>,
    ) -> RpcResult<pb::UnassignGuardrailMembersResponse> {
        let r = request.into_inner();
        let n = self
            .manage
            .unassign_guardrail_members(OPERATOR, &r.id, &r.user_ids)
            .await
            .map_err(on_change)?;
        ok(pb::UnassignGuardrailMembersResponse {
            unassigned_count: count(n),
        })
    }

    // ---- dataplanes -----------------------------------------------------------------------

    async fn list_dataplanes(
        &self,
        _request: Request<pb::ListDataplanesRequest>,
    ) -> RpcResult<pb::ListDataplanesResponse> {
        let publisher = &self.manage.publisher;
        let mut dataplanes: Vec<pb::Dataplane> = publisher
            .acks()
            .into_iter()
            .map(|(id, ack)| convert::dataplane(id, ack))
            .collect();
        dataplanes.sort_by(|a, b| a.id.cmp(&b.id));
        ok(pb::ListDataplanesResponse {
            published_version: publisher.current_version(),
            dataplanes,
        })
    }

    // ---- audit ----------------------------------------------------------------------------

    async fn list_audit_log(
        &self,
        request: Request<pb::ListAuditLogRequest>,
    ) -> RpcResult<pb::ListAuditLogResponse> {
        let r = request.into_inner();
        let rows = self
            .manage
            .audit_log(
                &Actor::Operator,
                non_empty(&r.organization_id),
                page(r.limit),
            )
            .await
            .map_err(on_change)?;
        ok(pb::ListAuditLogResponse {
            entries: rows.into_iter().map(convert::audit_entry).collect(),
        })
    }
}

impl AdminApi {
    /// Every version of a preset, oldest first.
    async fn versions(
        &self,
        organization_id: Option<&str>,
        slug: &str,
    ) -> Result<Vec<pb::PresetVersion>, Status> {
        let mut versions = Vec::new();
        loop {
            let (rows, total) = self
                .manage
                .preset_versions(
                    OPERATOR,
                    organization_id,
                    slug,
                    versions.len() as i64,
                    MAX_PAGE,
                )
                .await
                .map_err(on_change)?;
            let fetched = rows.len();
            versions.extend(rows.into_iter().map(convert::preset_version));
            if fetched == 0 || versions.len() as i64 >= total {
                return Ok(versions);
            }
        }
    }
}
