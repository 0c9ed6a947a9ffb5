//! `GET /api/v1/generation?id=`: one generation's record, as OpenRouter's SDK reads it.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::ApiError;
use super::{ApiQuery, ApiState, iso8601};

#[derive(Deserialize)]
pub struct GenerationQuery {
    id: Option<String>,
}

pub async fn get(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    ApiQuery(q): ApiQuery<GenerationQuery>,
) -> Result<Json<Value>, ApiError> {
    let id =
        q.id.filter(|id| !id.is_empty())
            .ok_or_else(|| ApiError::BadRequest("id is required".into()))?;
    let (g, provider_name) = state.manage.generation(&caller, &id).await?;
    let cost = g.cost_usd.as_deref().and_then(super::usd);
    // Every attempt as the dataplane recorded it; older records hold only the one that served.
    let provider_responses = g
        .provider_responses
        .as_deref()
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .unwrap_or_else(|| {
            json!([{
                "status": g.status,
                "provider_name": provider_name,
                "id": g.upstream_id,
                "is_byok": g.is_byok,
                "latency": g.latency_ms,
            }])
        });
    Ok(Json(json!({
        "data": {
            "id": g.id,
            "created_at": iso8601(g.created_at),
            "model": g.model,
            "origin": "",
            "usage": cost.unwrap_or(0.0),
            "total_cost": cost.unwrap_or(0.0),
            "upstream_inference_cost": cost,
            "is_byok": g.is_byok,
            "data_region": "global",
            "api_type": "completions",
            "provider_name": provider_name,
            "upstream_id": g.upstream_id,
            "tokens_prompt": g.prompt_tokens,
            "tokens_completion": g.completion_tokens,
            "native_tokens_prompt": g.prompt_tokens,
            "native_tokens_completion": g.completion_tokens,
            "native_tokens_cached": g.cached_tokens,
            "native_tokens_reasoning": g.reasoning_tokens,
            "native_tokens_completion_images": null,
            "latency": g.ttfb_ms,
            "generation_time": g.latency_ms,
            "moderation_latency": null,
            "streamed": g.streamed,
            "cancelled": g.cancelled,
            "finish_reason": g.finish_reason,
            "native_finish_reason": g.finish_reason,
            "workspace_id": g.workspace_id,
            "app_id": null,
            "cache_discount": null,
            "external_user": g.external_user,
            "http_referer": g.http_referer,
            "num_fetches": null,
            "num_input_audio_prompt": null,
            "num_media_completion": null,
            "num_media_prompt": null,
            "num_search_results": null,
            "preset_id": g.preset_id,
            "preset_version": g.preset_version,
            "session_id": g.session_id,
            "provider_responses": provider_responses,
            "router": null,
            "service_tier": null,
            "user_agent": null,
            "web_search_engine": null,
            "request_id": g.id,
            "key_hash": g.key_hash,
        }
    })))
}
