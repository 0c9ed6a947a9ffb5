//! `/api/v1/keys`, `/api/v1/keys/{hash}` and `/api/v1/key`, as OpenRouter's SDK defines them.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Caller, Manager};
use super::error::ApiError;
use super::{ApiJson, ApiQuery, ApiState, iso8601, nullable};
use crate::keys::KeyKind;
use crate::manage::keys::{KeyFilter, KeyUpdate, NewKeyInput};
use crate::store::{KeyRow, KeyUsage};
use switchyard_policy::Window;

/// Keys per page of `GET /keys`.
const PAGE_SIZE: i64 = 100;

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    include_disabled: Option<bool>,
    #[serde(default)]
    include_expired: Option<bool>,
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    workspace_id: Option<String>,
}

pub async fn list(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let now = crate::now_ms();
    let include_expired = q.include_expired.unwrap_or(false);
    let filter = KeyFilter {
        organization_id: None,
        workspace: q.workspace_id,
        include_disabled: q.include_disabled.unwrap_or(false),
    };
    let rows = state
        .manage
        .keys(&actor, &filter, q.offset.unwrap_or(0), PAGE_SIZE)
        .await?;
    let usage = usage_of(&state, &rows).await?;
    let data: Vec<Value> = rows
        .iter()
        .filter(|k| include_expired || k.expires_at.is_none_or(|t| t > now))
        .map(|k| key_json(k, &usage.get(&k.hash).copied().unwrap_or_default()))
        .collect();
    Ok(Json(json!({ "data": data })))
}

#[derive(Deserialize)]
pub struct CreateBody {
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    limit: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    limit_reset: Option<Option<String>>,
    #[serde(default)]
    include_byok_in_limit: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    expires_at: Option<Option<String>>,
    #[serde(default)]
    workspace_id: Option<String>,
}

pub async fn create(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let input = NewKeyInput {
        name: body.name.unwrap_or_default(),
        kind: KeyKind::Inference,
        workspace: body.workspace_id,
        organization_id: None,
        owner_user_id: None,
        limit_usd: body.limit.flatten(),
        limit_reset: body
            .limit_reset
            .flatten()
            .as_deref()
            .map(limit_reset)
            .transpose()?,
        include_byok_in_limit: body.include_byok_in_limit.unwrap_or(false),
        expires_at: body
            .expires_at
            .flatten()
            .as_deref()
            .map(instant)
            .transpose()?,
    };
    let (key, secret) = state.manage.create_key(&actor, input).await?;
    let body = json!({ "data": key_json(&key, &KeyUsage::default()), "key": secret });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn get(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    Path(hash): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = state.manage.key(&actor, &hash).await?;
    let usage = usage_of(&state, std::slice::from_ref(&key)).await?;
    let u = usage.get(&key.hash).copied().unwrap_or_default();
    Ok(Json(json!({ "data": key_json(&key, &u) })))
}

#[derive(Deserialize)]
pub struct UpdateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    limit: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    limit_reset: Option<Option<String>>,
    #[serde(default)]
    include_byok_in_limit: Option<bool>,
    #[serde(default)]
    workspace_id: Option<String>,
}

pub async fn update(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    Path(hash): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<Value>, ApiError> {
    let update = KeyUpdate {
        name: body.name,
        disabled: body.disabled,
        limit_usd: body.limit,
        limit_reset: body
            .limit_reset
            .map(|r| r.as_deref().map(limit_reset).transpose())
            .transpose()?,
        include_byok_in_limit: body.include_byok_in_limit,
        workspace: body.workspace_id,
    };
    let key = state.manage.update_key(&actor, &hash, update).await?;
    let usage = usage_of(&state, std::slice::from_ref(&key)).await?;
    let u = usage.get(&key.hash).copied().unwrap_or_default();
    Ok(Json(json!({ "data": key_json(&key, &u) })))
}

pub async fn delete(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    Path(hash): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.manage.delete_key(&actor, &hash).await?;
    Ok(Json(json!({ "deleted": true })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    #[serde(default)]
    grace_seconds: Option<u64>,
}

/// `POST /keys/{hash}/rotate` (a Switchyard extension): a new key with the same settings; the
/// old one keeps working for `grace_seconds` (default one hour), then expires.
pub async fn rotate(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    Path(hash): Path<String>,
    ApiJson(body): ApiJson<RotateBody>,
) -> Result<Response, ApiError> {
    let grace = body.grace_seconds.unwrap_or(3600);
    let (key, secret) = state.manage.rotate_key(&actor, &hash, grace).await?;
    let body = json!({ "data": key_json(&key, &KeyUsage::default()), "key": secret, "rotated_from": hash });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /key`: the calling key itself, whatever its kind.
pub async fn current(
    State(state): State<ApiState>,
    Caller(key): Caller,
) -> Result<Json<Value>, ApiError> {
    let usage = usage_of(&state, std::slice::from_ref(&key)).await?;
    let u = usage.get(&key.hash).copied().unwrap_or_default();
    let limit = key.limit_usd.as_deref().and_then(super::usd);
    let (budgets, effective_budget) = super::budgets::layers(&state, &key).await?;
    Ok(Json(json!({
        "data": {
            "label": key.label,
            "limit": limit,
            "limit_remaining": remaining(&key, &u),
            "limit_reset": key.limit_reset.map(Window::name),
            "include_byok_in_limit": key.include_byok_in_limit,
            "usage": u.total, "usage_daily": u.daily, "usage_weekly": u.weekly, "usage_monthly": u.monthly,
            "byok_usage": u.byok_total, "byok_usage_daily": u.byok_daily,
            "byok_usage_weekly": u.byok_weekly, "byok_usage_monthly": u.byok_monthly,
            "is_free_tier": false,
            "is_management_key": key.kind == KeyKind::Management,
            "is_provisioning_key": key.kind == KeyKind::Management,
            "creator_user_id": key.creator_user_id,
            "organization_id": key.organization_id,
            "workspace_id": key.workspace_id,
            "expires_at": key.expires_at.map(iso8601),
            "allowed_data_regions": ["global"],
            "budgets": budgets,
            "effective_budget": effective_budget,
            "free_model_daily_requests": { "limit": 0, "remaining": 0, "used": 0 },
            "rate_limit": { "interval": "10s", "note": "Switchyard does not rate-limit by request count", "requests": -1 },
        }
    })))
}

/// Spend per key from the usage ledger, for a page of keys.
async fn usage_of(
    state: &ApiState,
    keys: &[KeyRow],
) -> Result<HashMap<String, KeyUsage>, ApiError> {
    Ok(state.manage.key_usage(keys, crate::now_ms()).await?)
}

/// What is left of a key's limit in its current window (`None` without a limit).
fn remaining(k: &KeyRow, u: &KeyUsage) -> Option<f64> {
    let limit = super::usd(k.limit_usd.as_deref()?)?;
    let (used, byok) = match k.limit_reset {
        Some(Window::Daily) => (u.daily, u.byok_daily),
        Some(Window::Weekly) => (u.weekly, u.byok_weekly),
        Some(Window::Monthly) => (u.monthly, u.byok_monthly),
        None | Some(Window::Lifetime) => (u.total, u.byok_total),
    };
    let used = if k.include_byok_in_limit {
        used + byok
    } else {
        used
    };
    Some((limit - used).max(0.0))
}

/// OpenRouter's key object, with its spend from the usage ledger.
pub fn key_json(k: &KeyRow, u: &KeyUsage) -> Value {
    let limit = k.limit_usd.as_deref().and_then(super::usd);
    json!({
        "hash": k.hash,
        "name": k.name,
        "label": k.label,
        "disabled": k.disabled,
        "limit": limit,
        "limit_remaining": remaining(k, u),
        "limit_reset": k.limit_reset.map(Window::name),
        "include_byok_in_limit": k.include_byok_in_limit,
        "usage": u.total, "usage_daily": u.daily, "usage_weekly": u.weekly, "usage_monthly": u.monthly,
        "byok_usage": u.byok_total, "byok_usage_daily": u.byok_daily,
        "byok_usage_weekly": u.byok_weekly, "byok_usage_monthly": u.byok_monthly,
        "created_at": iso8601(k.created_at),
        "updated_at": k.updated_at.map(iso8601),
        "last_used_at": null,
        "expires_at": k.expires_at.map(iso8601),
        "creator_user_id": k.creator_user_id,
        "external_user": null,
        "workspace_id": k.workspace_id,
    })
}

fn limit_reset(value: &str) -> Result<Window, ApiError> {
    Window::resetting(value).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "limit_reset must be one of daily, weekly, monthly (got {value:?})"
        ))
    })
}

fn instant(text: &str) -> Result<i64, ApiError> {
    Ok(chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|_| {
            ApiError::BadRequest(format!("expires_at {text:?} is not an ISO 8601 date-time"))
        })?
        .timestamp_millis())
}
