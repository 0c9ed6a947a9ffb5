//! `/api/v1/keys`, `/api/v1/keys/{hash}` and `/api/v1/key`, as OpenRouter's SDK defines them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Caller, Manager};
use super::error::ApiError;
use super::{ApiJson, ApiQuery, ApiState, iso8601, nullable};
use crate::keys::{self, KeyKind, LimitReset};
use crate::store::{KeyPatch, KeyRow, NewKey};

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
    Manager(caller, _): Manager,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::BadRequest("offset must not be negative".into()));
    }
    let now = crate::now_ms();
    let include_expired = q.include_expired.unwrap_or(false);
    let rows = state
        .store
        .keys_of_organization(
            &caller.organization_id,
            q.workspace_id.as_deref(),
            q.include_disabled.unwrap_or(false),
            offset,
            PAGE_SIZE,
        )
        .await?;
    let data: Vec<Value> = rows
        .iter()
        .filter(|k| include_expired || k.expires_at.is_none_or(|t| t > now))
        .map(key_json)
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
    Manager(caller, _): Manager,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let name = valid_name(body.name.as_deref().unwrap_or_default())?;
    let now = crate::now_ms();
    let workspace_id = state
        .workspace_for(&caller, body.workspace_id.as_deref())
        .await?;
    let expires_at = match body.expires_at.flatten() {
        Some(text) => Some(future_instant(&text, now)?),
        None => None,
    };
    let generated = keys::generate();
    let key = NewKey {
        hash: generated.hash,
        kind: KeyKind::Inference,
        name,
        label: generated.label,
        organization_id: caller.organization_id.clone(),
        workspace_id,
        creator_user_id: caller.creator_user_id.clone(),
        disabled: false,
        limit_usd: body.limit.flatten().map(limit_usd).transpose()?,
        limit_reset: body
            .limit_reset
            .flatten()
            .as_deref()
            .map(limit_reset)
            .transpose()?,
        include_byok_in_limit: body.include_byok_in_limit.unwrap_or(false),
        expires_at,
        created_at: now,
        updated_at: None,
        rotated_from: None,
    };
    state.store.insert_key(&key).await?;
    state.publish().await?;
    tracing::info!(hash = %key.hash, label = %key.label, "key created");
    let body = json!({ "data": key_json(&key), "key": generated.secret });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn get(
    State(state): State<ApiState>,
    Manager(caller, _): Manager,
    Path(hash): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = state.owned_key(&caller, &hash).await?;
    Ok(Json(json!({ "data": key_json(&key) })))
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
    Manager(caller, _): Manager,
    Path(hash): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<Value>, ApiError> {
    let existing = state.owned_key(&caller, &hash).await?;
    if existing.hash == caller.hash && body.disabled == Some(true) {
        return Err(ApiError::BadRequest("A key cannot disable itself".into()));
    }
    let workspace_id = match body.workspace_id.as_deref() {
        Some(w) => Some(state.workspace_for(&caller, Some(w)).await?),
        None => None,
    };
    let patch = KeyPatch {
        name: body.name.as_deref().map(valid_name).transpose()?,
        disabled: body.disabled,
        limit_usd: body
            .limit
            .map(|l| l.map(limit_usd).transpose())
            .transpose()?,
        limit_reset: body
            .limit_reset
            .map(|r| r.as_deref().map(limit_reset).transpose())
            .transpose()?,
        include_byok_in_limit: body.include_byok_in_limit,
        workspace_id,
    };
    let key = state
        .store
        .update_key(&hash, &patch, crate::now_ms())
        .await?
        .ok_or_else(|| not_found(&hash))?;
    state.publish().await?;
    tracing::info!(hash = %key.hash, disabled = key.disabled, "key updated");
    Ok(Json(json!({ "data": key_json(&key) })))
}

pub async fn delete(
    State(state): State<ApiState>,
    Manager(caller, _): Manager,
    Path(hash): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = state.owned_key(&caller, &hash).await?;
    if key.hash == caller.hash {
        return Err(ApiError::BadRequest("A key cannot delete itself".into()));
    }
    if !state.store.delete_key(&hash).await? {
        return Err(not_found(&hash));
    }
    state.publish().await?;
    tracing::info!(hash = %hash, "key deleted");
    Ok(Json(json!({ "deleted": true })))
}

/// `GET /key`: the calling key itself, whatever its kind.
pub async fn current(Caller(key): Caller) -> Json<Value> {
    let limit = key.limit_usd.as_deref().and_then(|l| l.parse::<f64>().ok());
    Json(json!({
        "data": {
            "label": key.label,
            "limit": limit,
            "limit_remaining": limit,
            "limit_reset": key.limit_reset.map(LimitReset::as_str),
            "include_byok_in_limit": key.include_byok_in_limit,
            "usage": 0.0, "usage_daily": 0.0, "usage_weekly": 0.0, "usage_monthly": 0.0,
            "byok_usage": 0.0, "byok_usage_daily": 0.0, "byok_usage_weekly": 0.0, "byok_usage_monthly": 0.0,
            "is_free_tier": false,
            "is_management_key": key.kind == KeyKind::Management,
            "is_provisioning_key": key.kind == KeyKind::Management,
            "creator_user_id": key.creator_user_id,
            "organization_id": key.organization_id,
            "workspace_id": key.workspace_id,
            "expires_at": key.expires_at.map(iso8601),
            "allowed_data_regions": ["global"],
            "budgets": [],
            "effective_budget": null,
            "free_model_daily_requests": { "limit": 0, "remaining": 0, "used": 0 },
            "rate_limit": { "interval": "10s", "note": "Switchyard does not rate-limit by request count", "requests": -1 },
        }
    }))
}

/// OpenRouter's key object. Usage reads 0 until spend tracking lands.
pub fn key_json(k: &KeyRow) -> Value {
    let limit = k.limit_usd.as_deref().and_then(|l| l.parse::<f64>().ok());
    json!({
        "hash": k.hash,
        "name": k.name,
        "label": k.label,
        "disabled": k.disabled,
        "limit": limit,
        "limit_remaining": limit,
        "limit_reset": k.limit_reset.map(LimitReset::as_str),
        "include_byok_in_limit": k.include_byok_in_limit,
        "usage": 0.0, "usage_daily": 0.0, "usage_weekly": 0.0, "usage_monthly": 0.0,
        "byok_usage": 0.0, "byok_usage_daily": 0.0, "byok_usage_weekly": 0.0, "byok_usage_monthly": 0.0,
        "created_at": iso8601(k.created_at),
        "updated_at": k.updated_at.map(iso8601),
        "last_used_at": null,
        "expires_at": k.expires_at.map(iso8601),
        "creator_user_id": k.creator_user_id,
        "external_user": null,
        "workspace_id": k.workspace_id,
    })
}

fn not_found(hash: &str) -> ApiError {
    ApiError::NotFound(format!("Key {hash} not found"))
}

fn valid_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::BadRequest("name is required".into()));
    }
    if name.chars().count() > 256 {
        return Err(ApiError::BadRequest(
            "name must be at most 256 characters".into(),
        ));
    }
    Ok(name.to_owned())
}

/// A USD limit as an exact decimal string, to the micro-dollar.
fn limit_usd(limit: f64) -> Result<String, ApiError> {
    if !limit.is_finite() || !(0.0..=1e9).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit must be a number of USD between 0 and 1000000000".into(),
        ));
    }
    let text = format!("{limit:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    Ok(text.to_owned())
}

fn limit_reset(value: &str) -> Result<LimitReset, ApiError> {
    value.parse().map_err(|()| {
        ApiError::BadRequest(format!(
            "limit_reset must be one of daily, weekly, monthly (got {value:?})"
        ))
    })
}

fn future_instant(text: &str, now: i64) -> Result<i64, ApiError> {
    let at = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|_| {
            ApiError::BadRequest(format!("expires_at {text:?} is not an ISO 8601 date-time"))
        })?
        .timestamp_millis();
    if at <= now {
        return Err(ApiError::BadRequest(
            "expires_at must be in the future".into(),
        ));
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_exact_decimals() {
        assert_eq!(limit_usd(5.5).unwrap(), "5.5");
        assert_eq!(limit_usd(10.0).unwrap(), "10");
        assert_eq!(limit_usd(0.1).unwrap(), "0.1");
        assert!(limit_usd(-1.0).is_err());
        assert!(limit_usd(f64::NAN).is_err());
    }
}
