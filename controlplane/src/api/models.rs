//! `GET /api/v1/models/{author}/{slug}/endpoints` and `GET /api/v1/endpoints/zdr`, rendered by
//! the policy crate from the published snapshot (the catalogue exactly as dataplanes route on
//! it) with the fleet's provider health. `GET /api/v1/models` is the dataplanes' own.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::Value;
use switchyard_policy::snapshot::catalogue::{render_endpoints, render_zdr_endpoints};

use super::error::ApiError;
use super::{ApiQuery, ApiState};

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    offset: Option<usize>,
    #[serde(default)]
    limit: Option<usize>,
}

/// The catalogue as the published snapshot has it, in OpenRouter's paged list shape.
pub async fn list(
    State(state): State<ApiState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(500);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 1000".into(),
        ));
    }
    let published = state.manage.publisher.current();
    let mut document: Value = serde_json::from_slice(&published.models_document).map_err(|e| {
        tracing::error!(error = %e, "models document is not JSON");
        ApiError::Internal
    })?;
    let all = match document["data"].take() {
        Value::Array(all) => all,
        _ => Vec::new(),
    };
    let total = all.len();
    let data: Vec<Value> = all
        .into_iter()
        .skip(q.offset.unwrap_or(0))
        .take(limit)
        .collect();
    Ok(Json(
        serde_json::json!({ "data": data, "links": { "next": null }, "total_count": total }),
    ))
}

pub async fn endpoints(
    State(state): State<ApiState>,
    Path((author, slug)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = format!("{author}/{slug}");
    let published = state.manage.publisher.current();
    let model = published
        .models
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("Model {id} not found")))?;
    let health = &state.manage.publisher.health;
    Ok(Json(render_endpoints(model, &|id| health.endpoint(id))))
}

pub async fn zdr(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let published = state.manage.publisher.current();
    let health = &state.manage.publisher.health;
    Ok(Json(render_zdr_endpoints(&published.models, &|id| {
        health.endpoint(id)
    })))
}
