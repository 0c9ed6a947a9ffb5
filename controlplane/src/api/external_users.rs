//! `/external-users` as OpenRouter's SDK calls it: the organization's registered `user` strings.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Manager;
use super::error::ApiError;
use super::{ApiJson, ApiQuery, ApiState, iso8601};
use crate::store::ExternalUserRow;

fn external_user(u: &ExternalUserRow) -> Value {
    json!({
        "user": u.user,
        "is_active": u.is_active,
        "created_at": iso8601(u.created_at),
        "updated_at": iso8601(u.updated_at),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    offset: Option<i64>,
    limit: Option<i64>,
    user: Option<String>,
    include_inactive: Option<bool>,
}

pub async fn list(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let (rows, total) = state
        .manage
        .external_users(
            &actor,
            q.user.as_deref(),
            q.include_inactive.unwrap_or(false),
            q.offset.unwrap_or(0),
            q.limit.unwrap_or(100),
        )
        .await?;
    let data: Vec<Value> = rows.iter().map(external_user).collect();
    Ok(Json(json!({ "data": data, "total_count": total })))
}

pub async fn get(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = state.manage.external_user(&actor, &user).await?;
    Ok(Json(json!({ "data": external_user(&row) })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    user: String,
}

pub async fn create(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let row = state
        .manage
        .create_external_user(&actor, &body.user, crate::now_ms())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "data": external_user(&row) })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    is_active: bool,
}

pub async fn update(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    Path(user): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<Value>, ApiError> {
    let row = state
        .manage
        .update_external_user(&actor, &user, body.is_active, crate::now_ms())
        .await?;
    Ok(Json(json!({ "data": external_user(&row) })))
}

pub async fn delete(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    Path(user): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.manage.delete_external_user(&actor, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}
