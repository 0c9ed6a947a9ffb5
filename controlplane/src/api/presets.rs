//! `/api/v1/presets`, as OpenRouter's SDK defines the reads, plus Switchyard's extensions for
//! writing them (OpenRouter edits presets on its website):
//!
//! - `POST /api/v1/presets` with `{slug, name, description?, workspace_id?, config,
//!   system_prompt?}` creates a preset and its version 1, designated; 201 with the preset and
//!   its designated version.
//! - `POST /api/v1/presets/{slug}/versions` with `{config, system_prompt?, designate?}` adds the
//!   next immutable version (designated only if `designate` is true); 201 with the version.
//! - `PATCH /api/v1/presets/{slug}` with any of `{name, description, status,
//!   designated_version_id | designated_version}` (the latter a version number); 200 with the
//!   preset and its designated version.
//! - `DELETE /api/v1/presets/{slug}` deletes the preset and its versions; `{"deleted": true}`.
//!
//! `config` holds `model` or `models`, and optionally `provider` and `parameters` (objects);
//! any other key is refused with 400. The SDK sends the reads with a plain API key, so any key
//! of the organization reads; writes need a management key.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Caller, Manager};
use super::error::ApiError;
use super::{ApiJson, ApiQuery, ApiState, iso8601, nullable};
use crate::manage::presets::{NewPreset, NewPresetVersion, PresetPatch, PresetView};
use crate::manage::{Actor, page};
use crate::store::{KeyRow, PresetRow, PresetVersionRow};

#[derive(Deserialize)]
pub struct Page {
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

/// The actor behind a key of either kind, for reads any key may do. Like a management key, it
/// acts as its user does today.
async fn reader(state: &ApiState, key: &KeyRow) -> Result<Actor, ApiError> {
    Ok(state.manage.actor(key).await?)
}

pub async fn list(
    State(state): State<ApiState>,
    Caller(key): Caller,
    ApiQuery(q): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    let (offset, limit) = page(q.offset, q.limit)?;
    let actor = reader(&state, &key).await?;
    let (rows, total) = state.manage.presets(&actor, None, offset, limit).await?;
    let data: Vec<Value> = rows.iter().map(preset_json).collect();
    Ok(Json(json!({ "data": data, "total_count": total })))
}

pub async fn get(
    State(state): State<ApiState>,
    Caller(key): Caller,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let actor = reader(&state, &key).await?;
    let view = state.manage.preset(&actor, None, &slug).await?;
    Ok(Json(json!({ "data": preset_with_version_json(&view) })))
}

pub async fn versions(
    State(state): State<ApiState>,
    Caller(key): Caller,
    Path(slug): Path<String>,
    ApiQuery(q): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    let (offset, limit) = page(q.offset, q.limit)?;
    let actor = reader(&state, &key).await?;
    let (rows, total) = state
        .manage
        .preset_versions(&actor, None, &slug, offset, limit)
        .await?;
    let data: Vec<Value> = rows.iter().map(version_json).collect();
    Ok(Json(json!({ "data": data, "total_count": total })))
}

pub async fn version(
    State(state): State<ApiState>,
    Caller(key): Caller,
    Path((slug, number)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let number = match number.parse::<i64>() {
        Ok(n) if n >= 1 => n,
        _ => {
            return Err(ApiError::BadRequest(format!(
                "version must be a positive integer (got {number:?})"
            )));
        }
    };
    let actor = reader(&state, &key).await?;
    let version = state
        .manage
        .preset_version(&actor, None, &slug, number)
        .await?;
    Ok(Json(json!({ "data": version_json(&version) })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    slug: String,
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    workspace_id: Option<String>,
    config: Value,
    #[serde(default)]
    system_prompt: Option<String>,
}

/// `POST /presets` (extension).
pub async fn create(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let view = state
        .manage
        .create_preset(
            &actor,
            None,
            NewPreset {
                slug: body.slug,
                name: body.name,
                description: body.description,
                workspace_id: body.workspace_id,
                config: body.config,
                system_prompt: body.system_prompt,
            },
        )
        .await?;
    let body = json!({ "data": preset_with_version_json(&view) });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionBody {
    config: Value,
    #[serde(default)]
    system_prompt: Option<String>,
    #[serde(default)]
    designate: bool,
}

/// `POST /presets/{slug}/versions` (extension).
pub async fn add_version(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<VersionBody>,
) -> Result<Response, ApiError> {
    let version = state
        .manage
        .add_preset_version(
            &actor,
            None,
            &slug,
            NewPresetVersion {
                config: body.config,
                system_prompt: body.system_prompt,
                designate: body.designate,
            },
        )
        .await?;
    let body = json!({ "data": version_json(&version) });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    designated_version_id: Option<String>,
    #[serde(default)]
    designated_version: Option<i64>,
}

/// `PATCH /presets/{slug}` (extension).
pub async fn update(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<Value>, ApiError> {
    let patch = PresetPatch {
        name: body.name,
        description: body.description,
        status: body.status,
        designated_version_id: body.designated_version_id,
        designated_version: body.designated_version,
    };
    let view = state
        .manage
        .update_preset(&actor, None, &slug, patch)
        .await?;
    Ok(Json(json!({ "data": preset_with_version_json(&view) })))
}

/// `DELETE /presets/{slug}` (extension).
pub async fn delete(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.manage.delete_preset(&actor, None, &slug).await?;
    Ok(Json(json!({ "deleted": true })))
}

/// The SDK's `Preset`.
fn preset_json(p: &PresetRow) -> Value {
    json!({
        "id": p.id,
        "slug": p.slug,
        "name": p.name,
        "description": p.description,
        "status": p.status,
        "status_updated_at": p.status_updated_at.map(iso8601),
        "designated_version_id": p.designated_version_id,
        "creator_user_id": p.creator_user_id,
        "workspace_id": p.workspace_id,
        "created_at": iso8601(p.created_at),
        "updated_at": iso8601(p.updated_at),
    })
}

/// The SDK's `PresetWithDesignatedVersion`.
fn preset_with_version_json(view: &PresetView) -> Value {
    let mut json = preset_json(&view.preset);
    json["designated_version"] = view.designated.as_ref().map_or(Value::Null, version_json);
    json
}

/// The SDK's `PresetDesignatedVersion`. Versions never change, so `updated_at` is their
/// creation time.
fn version_json(v: &PresetVersionRow) -> Value {
    json!({
        "id": v.id,
        "preset_id": v.preset_id,
        "version": v.version,
        "config": v.config,
        "system_prompt": v.system_prompt,
        "creator_id": v.creator_id,
        "created_at": iso8601(v.created_at),
        "updated_at": iso8601(v.created_at),
    })
}
