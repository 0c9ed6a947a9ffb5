//! `/organization/members` and `/organization/settings`, and Switchyard's extensions for
//! membership (add, change role, remove), which OpenRouter does on its website.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Manager;
use super::error::ApiError;
use super::{ApiJson, ApiQuery, ApiState};
use crate::manage::Role;
use crate::manage::organizations::OrganizationPatch;
use crate::store::MemberRow;

#[derive(Deserialize)]
pub struct Page {
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

/// The SDK's member object: roles are `org:admin` / `org:member`, names split in two.
fn member_json(m: &MemberRow) -> Value {
    let (first, last) = match m.name.split_once(' ') {
        Some((f, l)) => (Some(f), Some(l)),
        None if m.name.is_empty() => (None, None),
        None => (Some(m.name.as_str()), None),
    };
    json!({
        "id": m.user_id,
        "email": m.email,
        "first_name": first,
        "last_name": last,
        "role": format!("org:{}", m.role),
    })
}

pub async fn members(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    let (offset, limit) = crate::manage::page(page.offset, page.limit)?;
    let (rows, total) = state.manage.members(&actor, None, offset, limit).await?;
    let data: Vec<Value> = rows.iter().map(member_json).collect();
    Ok(Json(json!({ "data": data, "total_count": total })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMemberBody {
    user_id: String,
    #[serde(default)]
    role: Option<String>,
}

/// `POST /organization/members` (extension): admins add an existing user.
pub async fn add_member(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    ApiJson(body): ApiJson<AddMemberBody>,
) -> Result<Response, ApiError> {
    let role = role(body.role.as_deref().unwrap_or("member"))?;
    let member = state
        .manage
        .add_member(&actor, None, &body.user_id, role)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "data": member_json(&member) })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    role: String,
}

/// `PATCH /organization/members/{user_id}` (extension): admins change a member's role.
pub async fn set_role(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    Path(user_id): Path<String>,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<Json<Value>, ApiError> {
    let member = state
        .manage
        .set_member_role(&actor, None, &user_id, role(&body.role)?)
        .await?;
    Ok(Json(json!({ "data": member_json(&member) })))
}

/// `DELETE /organization/members/{user_id}` (extension).
pub async fn remove_member(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.manage.remove_member(&actor, None, &user_id).await?;
    Ok(Json(json!({ "deleted": true })))
}

/// The contract's settings, and this gateway's privacy settings beside them (extensions the
/// SDK ignores): `enforce_zdr` and `data_collection`, OpenRouter's account-wide privacy
/// controls, which narrow every request of the organization.
fn settings_json(o: &crate::store::OrganizationRow) -> Value {
    json!({ "data": {
        "id": o.id,
        "is_filtered_model_catalog_enabled": o.filtered_model_catalog,
        "enforce_zdr": o.enforce_zdr,
        "data_collection": if o.deny_data_collection { "deny" } else { "allow" },
    }})
}

pub async fn settings(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
) -> Result<Json<Value>, ApiError> {
    let org = state.manage.organization(&actor, None).await?;
    Ok(Json(settings_json(&org)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    #[serde(default)]
    is_filtered_model_catalog_enabled: Option<bool>,
    #[serde(default)]
    enforce_zdr: Option<bool>,
    #[serde(default)]
    data_collection: Option<String>,
}

pub async fn update_settings(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    ApiJson(body): ApiJson<SettingsBody>,
) -> Result<Json<Value>, ApiError> {
    let deny_data_collection = match body.data_collection.as_deref() {
        None => None,
        Some("allow") => Some(false),
        Some("deny") => Some(true),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "data_collection must be \"allow\" or \"deny\" (got {other:?})"
            )));
        }
    };
    let patch = OrganizationPatch {
        filtered_model_catalog: body.is_filtered_model_catalog_enabled,
        enforce_zdr: body.enforce_zdr,
        deny_data_collection,
        ..OrganizationPatch::default()
    };
    let org = state
        .manage
        .update_organization(&actor, None, patch)
        .await?;
    Ok(Json(settings_json(&org)))
}

fn role(text: &str) -> Result<Role, ApiError> {
    text.trim_start_matches("org:")
        .parse()
        .map_err(|()| ApiError::BadRequest(format!("role must be admin or member (got {text:?})")))
}
