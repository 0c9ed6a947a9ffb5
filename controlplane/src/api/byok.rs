//! `/api/v1/byok` and `/api/v1/byok/{id}`, as OpenRouter's SDK defines them. Members of the
//! organization list and read; admins create, update and delete. The raw key is accepted on
//! create and update and never returned: responses carry only its masked `label`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Manager;
use super::error::ApiError;
use super::{ApiJson, ApiQuery, ApiState, iso8601, nullable};
use crate::manage::byok::{ByokPatch, ByokSettings, NewByok, byok_public};
use crate::manage::page;
use crate::store::ByokRow;

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    workspace_id: Option<String>,
    #[serde(default)]
    provider: Option<String>,
}

pub async fn list(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let (offset, limit) = page(q.offset, q.limit)?;
    let (rows, total) = state
        .manage
        .byok_keys(
            &actor,
            None,
            q.workspace_id.as_deref(),
            q.provider.as_deref(),
            offset,
            limit,
        )
        .await?;
    let data = rows.iter().map(byok_json).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "data": data, "total_count": total })))
}

/// The SDK's `CreateBYOKKeyRequest`. Not `Debug`: it holds the raw key.
#[derive(Deserialize)]
pub struct CreateBody {
    key: String,
    provider: String,
    #[serde(default)]
    allowed_api_key_hashes: Option<Vec<String>>,
    #[serde(default)]
    allowed_models: Option<Vec<String>>,
    #[serde(default)]
    allowed_user_ids: Option<Vec<String>>,
    #[serde(default)]
    declared_region: Option<String>,
    #[serde(default)]
    declared_zdr: Option<bool>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    is_byok_only: Option<bool>,
    #[serde(default)]
    is_fallback: Option<bool>,
    #[serde(default)]
    is_required: Option<bool>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    workspace_id: Option<String>,
    /// Extensions: the account's own per-minute limits with the provider.
    #[serde(default)]
    requests_per_minute: Option<u32>,
    #[serde(default)]
    tokens_per_minute: Option<u64>,
}

pub async fn create(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let new = NewByok {
        provider: body.provider,
        key: body.key,
        workspace_id: body.workspace_id,
        name: body.name,
        disabled: body.disabled.unwrap_or(false),
        settings: ByokSettings {
            allowed_api_key_hashes: body.allowed_api_key_hashes,
            allowed_models: body.allowed_models,
            allowed_user_ids: body.allowed_user_ids,
            declared_region: body.declared_region,
            declared_zdr: body.declared_zdr,
            is_byok_only: body.is_byok_only.unwrap_or(false),
            is_fallback: body.is_fallback.unwrap_or(false),
            is_required: body.is_required.unwrap_or(false),
            requests_per_minute: body.requests_per_minute.filter(|&n| n > 0),
            tokens_per_minute: body.tokens_per_minute.filter(|&n| n > 0),
        },
    };
    let row = state.manage.create_byok(&actor, None, new).await?;
    let body = json!({ "data": byok_json(&row)? });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn get(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = state.manage.byok_key(&actor, &id).await?;
    Ok(Json(json!({ "data": byok_json(&row)? })))
}

/// The SDK's `UpdateBYOKKeyRequest`: absent leaves a field unchanged, `null` clears it. Not
/// `Debug`: it may hold a raw key.
#[derive(Deserialize)]
pub struct UpdateBody {
    #[serde(default, deserialize_with = "nullable")]
    allowed_api_key_hashes: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    allowed_models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    allowed_user_ids: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    declared_region: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    declared_zdr: Option<Option<bool>>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    is_byok_only: Option<bool>,
    #[serde(default)]
    is_fallback: Option<bool>,
    #[serde(default)]
    is_required: Option<bool>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    requests_per_minute: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    tokens_per_minute: Option<Option<u64>>,
}

pub async fn update(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<Value>, ApiError> {
    let patch = ByokPatch {
        key: body.key,
        name: body.name,
        disabled: body.disabled,
        allowed_api_key_hashes: body.allowed_api_key_hashes,
        allowed_models: body.allowed_models,
        allowed_user_ids: body.allowed_user_ids,
        declared_region: body.declared_region,
        declared_zdr: body.declared_zdr,
        is_byok_only: body.is_byok_only,
        is_fallback: body.is_fallback,
        is_required: body.is_required,
        requests_per_minute: body.requests_per_minute,
        tokens_per_minute: body.tokens_per_minute,
    };
    let row = state.manage.update_byok(&actor, &id, patch).await?;
    Ok(Json(json!({ "data": byok_json(&row)? })))
}

pub async fn delete(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.manage.delete_byok(&actor, &id).await?;
    Ok(Json(json!({ "deleted": true })))
}

/// The SDK's `BYOKKey`.
fn byok_json(c: &ByokRow) -> Result<Value, ApiError> {
    let mut fields = byok_public(c)?;
    fields.insert("created_at".into(), iso8601(c.created_at).into());
    Ok(Value::Object(fields))
}
