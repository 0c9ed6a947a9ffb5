//! `/api/v1/guardrails` and their key and member assignments, as OpenRouter's SDK defines them.
//! The rules live in `manage::guardrails`; this module only translates the wire format.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Manager;
use super::error::ApiError;
use super::{ApiJson, ApiQuery, ApiState, iso8601, nullable};
use crate::manage::guardrails::{GuardrailInput, legacy_zdr};
use crate::manage::page;
use crate::store::{GuardrailRow, KeyAssignmentRow, MemberAssignmentRow};

#[derive(Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    workspace_id: Option<String>,
}

pub async fn list(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let (offset, limit) = page(q.offset, q.limit)?;
    let (rows, total) = state
        .manage
        .list_guardrails(&actor, q.workspace_id.as_deref(), offset, limit)
        .await?;
    let data: Vec<Value> = rows.iter().map(guardrail_json).collect();
    Ok(Json(json!({ "data": data, "total_count": total })))
}

/// The body of `POST /guardrails` and `PATCH /guardrails/{id}`: the same fields, `name` being
/// required to create and `workspace_id` accepted only then.
#[derive(Deserialize)]
pub struct GuardrailBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default)]
    workspace_id: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    limit_usd: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    reset_interval: Option<Option<String>>,
    #[serde(default)]
    include_byok_in_budgets: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    allowed_models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    ignored_models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    allowed_providers: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    ignored_providers: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    enforce_zdr: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    enforce_zdr_anthropic: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    enforce_zdr_openai: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    enforce_zdr_google: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    enforce_zdr_xai: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    enforce_zdr_other: Option<Option<bool>>,
    // The SDK's settings this gateway cannot enforce: read only to refuse restrictive values.
    #[serde(default)]
    allowed_data_regions: Option<Value>,
    #[serde(default)]
    content_filters: Option<Value>,
    #[serde(default)]
    content_filter_builtins: Option<Value>,
    #[serde(default)]
    enable_free_model_publication: Option<Value>,
    #[serde(default)]
    enable_free_model_training: Option<Value>,
    #[serde(default)]
    enable_paid_model_training: Option<Value>,
    #[serde(default)]
    allow_safety_retention_google: Option<Value>,
    #[serde(default)]
    allow_safety_retention_other: Option<Value>,
}

/// Does an unsupported setting ask for a restriction? Null, `true` for the permissions (the
/// gateway restricts none of them) and empty filter lists ask for nothing.
fn restricts(value: &Option<Value>) -> bool {
    match value {
        None | Some(Value::Null) | Some(Value::Bool(true)) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    }
}

impl From<GuardrailBody> for GuardrailInput {
    fn from(b: GuardrailBody) -> GuardrailInput {
        let unsupported = [
            // An empty region list is refused by the SDK's own rules too.
            (
                "allowed_data_regions",
                b.allowed_data_regions.is_some_and(|v| !v.is_null()),
            ),
            ("content_filters", restricts(&b.content_filters)),
            (
                "content_filter_builtins",
                restricts(&b.content_filter_builtins),
            ),
            (
                "enable_free_model_publication",
                restricts(&b.enable_free_model_publication),
            ),
            (
                "enable_free_model_training",
                restricts(&b.enable_free_model_training),
            ),
            (
                "enable_paid_model_training",
                restricts(&b.enable_paid_model_training),
            ),
            (
                "allow_safety_retention_google",
                restricts(&b.allow_safety_retention_google),
            ),
            (
                "allow_safety_retention_other",
                restricts(&b.allow_safety_retention_other),
            ),
        ]
        .into_iter()
        .filter(|(_, refused)| *refused)
        .map(|(field, _)| field.to_owned())
        .collect();
        GuardrailInput {
            name: b.name,
            description: b.description,
            workspace: b.workspace_id,
            limit_usd: b.limit_usd,
            reset_interval: b.reset_interval,
            include_byok_in_budgets: b.include_byok_in_budgets,
            allowed_models: b.allowed_models,
            ignored_models: b.ignored_models,
            allowed_providers: b.allowed_providers,
            ignored_providers: b.ignored_providers,
            enforce_zdr: b.enforce_zdr,
            enforce_zdr_anthropic: b.enforce_zdr_anthropic,
            enforce_zdr_openai: b.enforce_zdr_openai,
            enforce_zdr_google: b.enforce_zdr_google,
            enforce_zdr_xai: b.enforce_zdr_xai,
            enforce_zdr_other: b.enforce_zdr_other,
            unsupported,
        }
    }
}

pub async fn create(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    ApiJson(body): ApiJson<GuardrailBody>,
) -> Result<Response, ApiError> {
    let g = state.manage.create_guardrail(&actor, &body.into()).await?;
    let body = json!({ "data": guardrail_json(&g) });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn get(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let g = state.manage.get_guardrail(&actor, &id).await?;
    Ok(Json(json!({ "data": guardrail_json(&g) })))
}

pub async fn update(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<GuardrailBody>,
) -> Result<Json<Value>, ApiError> {
    let g = state
        .manage
        .update_guardrail(&actor, &id, &body.into())
        .await?;
    Ok(Json(json!({ "data": guardrail_json(&g) })))
}

pub async fn delete(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.manage.delete_guardrail(&actor, &id).await?;
    Ok(Json(json!({ "deleted": true })))
}

#[derive(Deserialize)]
pub struct KeysBody {
    key_hashes: Vec<String>,
}

#[derive(Deserialize)]
pub struct MembersBody {
    member_user_ids: Vec<String>,
}

pub async fn assign_keys(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<KeysBody>,
) -> Result<Json<Value>, ApiError> {
    let n = state
        .manage
        .assign_guardrail_keys(&actor, &id, &body.key_hashes)
        .await?;
    Ok(Json(json!({ "assigned_count": n })))
}

pub async fn unassign_keys(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<KeysBody>,
) -> Result<Json<Value>, ApiError> {
    let n = state
        .manage
        .unassign_guardrail_keys(&actor, &id, &body.key_hashes)
        .await?;
    Ok(Json(json!({ "unassigned_count": n })))
}

pub async fn assign_members(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MembersBody>,
) -> Result<Json<Value>, ApiError> {
    let n = state
        .manage
        .assign_guardrail_members(&actor, &id, &body.member_user_ids)
        .await?;
    Ok(Json(json!({ "assigned_count": n })))
}

pub async fn unassign_members(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MembersBody>,
) -> Result<Json<Value>, ApiError> {
    let n = state
        .manage
        .unassign_guardrail_members(&actor, &id, &body.member_user_ids)
        .await?;
    Ok(Json(json!({ "unassigned_count": n })))
}

/// `GET /guardrails/{id}/assignments/keys`.
pub async fn key_assignments(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let (offset, limit) = page(q.offset, q.limit)?;
    let (rows, total) = state
        .manage
        .list_key_assignments(&actor, Some(&id), offset, limit)
        .await?;
    let data: Vec<Value> = rows.iter().map(key_assignment_json).collect();
    Ok(Json(json!({ "data": data, "total_count": total })))
}

/// `GET /guardrails/assignments/keys`.
pub async fn all_key_assignments(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let (offset, limit) = page(q.offset, q.limit)?;
    let (rows, total) = state
        .manage
        .list_key_assignments(&actor, None, offset, limit)
        .await?;
    let data: Vec<Value> = rows.iter().map(key_assignment_json).collect();
    Ok(Json(json!({ "data": data, "total_count": total })))
}

/// `GET /guardrails/{id}/assignments/members`.
pub async fn member_assignments(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let (offset, limit) = page(q.offset, q.limit)?;
    let (rows, total) = state
        .manage
        .list_member_assignments(&actor, Some(&id), offset, limit)
        .await?;
    let data: Vec<Value> = rows.iter().map(member_assignment_json).collect();
    Ok(Json(json!({ "data": data, "total_count": total })))
}

/// `GET /guardrails/assignments/members`.
pub async fn all_member_assignments(
    State(state): State<ApiState>,
    Manager(_key, actor): Manager,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let (offset, limit) = page(q.offset, q.limit)?;
    let (rows, total) = state
        .manage
        .list_member_assignments(&actor, None, offset, limit)
        .await?;
    let data: Vec<Value> = rows.iter().map(member_assignment_json).collect();
    Ok(Json(json!({ "data": data, "total_count": total })))
}

/// OpenRouter's guardrail object (the settings this gateway supports; the others are absent).
pub fn guardrail_json(g: &GuardrailRow) -> Value {
    json!({
        "id": g.id,
        "name": g.name,
        "description": g.description,
        "workspace_id": g.workspace_id,
        "created_at": iso8601(g.created_at),
        "updated_at": g.updated_at.map(iso8601),
        "limit_usd": g.limit_usd.as_deref().and_then(super::usd),
        "reset_interval": g.reset_interval,
        "include_byok_in_budgets": g.include_byok,
        "allowed_models": g.allowed_models,
        "ignored_models": g.ignored_models,
        "allowed_providers": g.allowed_providers,
        "ignored_providers": g.ignored_providers,
        "enforce_zdr": legacy_zdr(&g.zdr),
        "enforce_zdr_anthropic": g.zdr.anthropic,
        "enforce_zdr_openai": g.zdr.openai,
        "enforce_zdr_google": g.zdr.google,
        "enforce_zdr_xai": g.zdr.xai,
        "enforce_zdr_other": g.zdr.other,
    })
}

/// OpenRouter's key assignment object.
fn key_assignment_json(a: &KeyAssignmentRow) -> Value {
    json!({
        "id": a.id,
        "guardrail_id": a.guardrail_id,
        "key_hash": a.key_hash,
        "key_name": a.key_name,
        "key_label": a.key_label,
        "assigned_by": a.assigned_by,
        "created_at": iso8601(a.created_at),
    })
}

/// OpenRouter's member assignment object.
fn member_assignment_json(a: &MemberAssignmentRow) -> Value {
    json!({
        "id": a.id,
        "guardrail_id": a.guardrail_id,
        "organization_id": a.organization_id,
        "user_id": a.user_id,
        "assigned_by": a.assigned_by,
        "created_at": iso8601(a.created_at),
    })
}
