//! `/api/v1/workspaces`, their members and budgets, as OpenRouter's SDK defines them. The rules
//! live in `manage::workspaces`; this module only translates the wire format.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Manager;
use super::error::ApiError;
use super::{ApiJson, ApiQuery, ApiState, iso8601, nullable};
use crate::manage::page;
use crate::manage::workspaces::{
    WorkspaceInput, WorkspaceMember, WorkspaceSettings, budget_interval,
};
use crate::store::{WorkspaceBudgetRow, WorkspaceRow};

#[derive(Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

pub async fn list(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let (offset, limit) = page(q.offset, q.limit)?;
    let (rows, total) = state
        .manage
        .list_workspaces(&actor, None, offset, limit)
        .await?;
    let data = rows
        .iter()
        .map(workspace_json)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "data": data, "total_count": total })))
}

/// The body of `POST /workspaces` and `PATCH /workspaces/{id}`: the same fields, `name` and
/// `slug` being required to create.
#[derive(Deserialize)]
pub struct WorkspaceBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    slug: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    default_text_model: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    default_image_model: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    default_provider_sort: Option<Option<String>>,
    #[serde(default)]
    io_logging_sampling_rate: Option<f64>,
    #[serde(default)]
    is_data_discount_logging_enabled: Option<bool>,
    #[serde(default)]
    is_observability_broadcast_enabled: Option<bool>,
    #[serde(default)]
    is_observability_io_logging_enabled: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    io_logging_api_key_ids: Option<Option<Vec<i64>>>,
    #[serde(default, deserialize_with = "nullable")]
    disabled_server_tools: Option<Option<Vec<String>>>,
}

impl From<WorkspaceBody> for WorkspaceInput {
    fn from(b: WorkspaceBody) -> WorkspaceInput {
        WorkspaceInput {
            name: b.name,
            slug: b.slug,
            description: b.description,
            default_text_model: b.default_text_model,
            default_image_model: b.default_image_model,
            default_provider_sort: b.default_provider_sort,
            io_logging_sampling_rate: b.io_logging_sampling_rate,
            is_data_discount_logging_enabled: b.is_data_discount_logging_enabled,
            is_observability_broadcast_enabled: b.is_observability_broadcast_enabled,
            is_observability_io_logging_enabled: b.is_observability_io_logging_enabled,
            io_logging_api_key_ids: b.io_logging_api_key_ids,
            disabled_server_tools: b.disabled_server_tools,
        }
    }
}

pub async fn create(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    ApiJson(body): ApiJson<WorkspaceBody>,
) -> Result<Response, ApiError> {
    let w = state
        .manage
        .create_workspace(&actor, None, &body.into())
        .await?;
    let body = json!({ "data": workspace_json(&w)? });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn get(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let w = state.manage.get_workspace(&actor, &id).await?;
    Ok(Json(json!({ "data": workspace_json(&w)? })))
}

pub async fn update(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<WorkspaceBody>,
) -> Result<Json<Value>, ApiError> {
    let w = state
        .manage
        .update_workspace(&actor, &id, &body.into())
        .await?;
    Ok(Json(json!({ "data": workspace_json(&w)? })))
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    /// Switchyard's extension: delete the workspace's keys, presets and BYOK credentials too.
    /// (The SDK's `confirm_default_workspace_deletion` is ignored, as unknown parameters are:
    /// the Default workspace is never deleted here.)
    #[serde(default)]
    force: Option<bool>,
}

pub async fn delete(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<Json<Value>, ApiError> {
    state
        .manage
        .delete_workspace(&actor, &id, q.force.unwrap_or(false))
        .await?;
    Ok(Json(json!({ "deleted": true })))
}

pub async fn members(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let (offset, limit) = page(q.offset, q.limit)?;
    let (members, total) = state
        .manage
        .list_workspace_members(&actor, &id, offset, limit)
        .await?;
    let data: Vec<Value> = members.iter().map(member_json).collect();
    Ok(Json(json!({ "data": data, "total_count": total })))
}

#[derive(Deserialize)]
pub struct UsersBody {
    user_ids: Vec<String>,
}

pub async fn add_members(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UsersBody>,
) -> Result<Json<Value>, ApiError> {
    let added = state
        .manage
        .add_workspace_members(&actor, &id, &body.user_ids)
        .await?;
    let data: Vec<Value> = added.iter().map(member_json).collect();
    Ok(Json(json!({ "added_count": data.len(), "data": data })))
}

pub async fn remove_members(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UsersBody>,
) -> Result<Json<Value>, ApiError> {
    let removed = state
        .manage
        .remove_workspace_members(&actor, &id, &body.user_ids)
        .await?;
    Ok(Json(json!({ "removed_count": removed })))
}

pub async fn budgets(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let all = state.manage.list_workspace_budgets(&actor, &id).await?;
    let data: Vec<Value> = all.budgets.iter().map(budget_json).collect();
    Ok(Json(json!({
        "data": data,
        "include_byok_in_budgets": all.include_byok_in_budgets,
    })))
}

pub async fn get_budget(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    Path((id, interval)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let interval = budget_interval(&interval)?;
    let (budget, include_byok) = state
        .manage
        .get_workspace_budget(&actor, &id, interval)
        .await?;
    Ok(Json(json!({
        "data": budget_json(&budget),
        "include_byok_in_budgets": include_byok,
    })))
}

#[derive(Deserialize)]
pub struct BudgetBody {
    limit_usd: f64,
    #[serde(default)]
    include_byok_in_budgets: Option<bool>,
}

pub async fn put_budget(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    Path((id, interval)): Path<(String, String)>,
    ApiJson(body): ApiJson<BudgetBody>,
) -> Result<Json<Value>, ApiError> {
    let interval = budget_interval(&interval)?;
    let (budget, include_byok) = state
        .manage
        .upsert_workspace_budget(
            &actor,
            &id,
            interval,
            body.limit_usd,
            body.include_byok_in_budgets,
        )
        .await?;
    Ok(Json(json!({
        "data": budget_json(&budget),
        "include_byok_in_budgets": include_byok,
    })))
}

pub async fn delete_budget(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    Path((id, interval)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let interval = budget_interval(&interval)?;
    state
        .manage
        .delete_workspace_budget(&actor, &id, interval)
        .await?;
    Ok(Json(json!({ "deleted": true })))
}

/// OpenRouter's workspace object.
pub fn workspace_json(w: &WorkspaceRow) -> Result<Value, ApiError> {
    let s = WorkspaceSettings::of(w)?;
    Ok(json!({
        "id": w.id,
        "name": w.name,
        "slug": w.slug,
        "description": w.description,
        "created_at": iso8601(w.created_at),
        "updated_at": w.updated_at.map(iso8601),
        "created_by": w.created_by,
        // Derived from the workspace's id, as the SDK documents; the guardrail is created with
        // the workspace (and by migration 0003 for older ones).
        "default_guardrail_id": crate::store::default_guardrail_id(&w.id),
        "default_text_model": s.default_text_model,
        "default_image_model": s.default_image_model,
        "default_provider_sort": s.default_provider_sort,
        "io_logging_sampling_rate": s.io_logging_sampling_rate,
        "io_logging_api_key_ids": s.io_logging_api_key_ids,
        "is_data_discount_logging_enabled": s.is_data_discount_logging_enabled,
        "is_observability_broadcast_enabled": s.is_observability_broadcast_enabled,
        "is_observability_io_logging_enabled": s.is_observability_io_logging_enabled,
        "disabled_server_tools": s.disabled_server_tools,
        "include_byok_in_budgets": s.include_byok_in_budgets,
    }))
}

/// OpenRouter's workspace member object.
fn member_json(m: &WorkspaceMember) -> Value {
    json!({
        "id": m.id,
        "workspace_id": m.workspace_id,
        "user_id": m.user_id,
        "role": m.role.as_str(),
        "created_at": iso8601(m.created_at),
    })
}

/// OpenRouter's workspace budget object; a lifetime budget has a null `reset_interval`.
fn budget_json(b: &WorkspaceBudgetRow) -> Value {
    let reset_interval = match b.reset_interval.as_str() {
        "lifetime" => None,
        other => Some(other),
    };
    json!({
        "id": b.id,
        "workspace_id": b.workspace_id,
        "limit_usd": super::usd(&b.limit_usd).unwrap_or(0.0),
        "reset_interval": reset_interval,
        "created_at": iso8601(b.created_at),
        "updated_at": iso8601(b.updated_at),
    })
}
