//! `GET /credits` as OpenRouter answers it, and `POST /credits` (a Switchyard extension) for
//! admins to grant credits into the ledger.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Manager;
use super::error::ApiError;
use super::{ApiJson, ApiQuery, ApiState, iso8601};

pub async fn get(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
) -> Result<Json<Value>, ApiError> {
    let credits = state.manage.credits(&actor, None).await?;
    Ok(Json(json!({ "data": {
        "total_credits": credits.total_credits,
        "total_usage": credits.total_usage,
    }})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    amount: f64,
    reason: String,
}

pub async fn grant(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    ApiJson(body): ApiJson<GrantBody>,
) -> Result<Response, ApiError> {
    let entry = state
        .manage
        .grant_credits(&actor, None, body.amount, &body.reason)
        .await?;
    let credits = state.manage.credits(&actor, None).await?;
    let body = json!({
        "data": {
            "id": entry.id,
            "amount": entry.amount_micros as f64 / 1e6,
            "reason": entry.reason,
            "actor": entry.actor,
            "created_at": iso8601(entry.created_at),
            "total_credits": credits.total_credits,
        }
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Deserialize)]
pub struct LedgerQuery {
    #[serde(default)]
    limit: Option<i64>,
}

/// `GET /credits/ledger` (extension): admins read who granted what, and why.
pub async fn ledger(
    State(state): State<ApiState>,
    Manager(_, actor): Manager,
    ApiQuery(q): ApiQuery<LedgerQuery>,
) -> Result<Json<Value>, ApiError> {
    let rows = state
        .manage
        .ledger(&actor, None, q.limit.unwrap_or(100))
        .await?;
    let data: Vec<Value> = rows
        .iter()
        .map(|e| {
            json!({
                "id": e.id, "amount": e.amount_micros as f64 / 1e6, "kind": e.kind,
                "reason": e.reason, "actor": e.actor, "counterpart_id": e.counterpart_id,
                "created_at": iso8601(e.created_at),
            })
        })
        .collect();
    Ok(Json(json!({ "data": data })))
}
