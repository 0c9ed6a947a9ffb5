//! `GET /api/v1/models` and `GET /api/v1/models/{author}/{slug}/endpoints`.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::{ApiQuery, ApiState};
use crate::store::{EndpointRow, ModelRow};

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    offset: Option<usize>,
    #[serde(default)]
    limit: Option<usize>,
}

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
    let catalogue = state.manage.catalogue().await?;
    let total = catalogue.models.len();
    let data: Vec<Value> = catalogue
        .models
        .iter()
        .skip(q.offset.unwrap_or(0))
        .take(limit)
        .map(model_json)
        .collect();
    Ok(Json(
        json!({ "data": data, "links": { "next": null }, "total_count": total }),
    ))
}

pub async fn endpoints(
    State(state): State<ApiState>,
    Path((author, slug)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = format!("{author}/{slug}");
    let catalogue = state.manage.catalogue().await?;
    let model = catalogue
        .models
        .iter()
        .find(|m| m.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("Model {id} not found")))?;
    let names: std::collections::HashMap<&str, &str> = catalogue
        .providers
        .iter()
        .map(|p| (p.id.as_str(), p.name.as_str()))
        .collect();
    let endpoints: Vec<Value> = model
        .endpoints
        .iter()
        .map(|e| {
            let provider = names.get(e.provider_id.as_str()).copied().unwrap_or(&e.provider_id);
            json!({
                "name": format!("{provider} | {}", model.id),
                "model_id": model.id,
                "model_name": model.name,
                "provider_name": provider,
                "tag": e.provider_id,
                "context_length": e.context_length,
                "max_completion_tokens": e.max_output_tokens,
                "max_prompt_tokens": null,
                "pricing": pricing(e),
                "quantization": null,
                "service_tier": null,
                "status": 0,
                "supported_parameters": SUPPORTED_PARAMETERS,
                "supports_implicit_caching": false,
                "supports_diarization": false,
                "supports_tool_choice": { "auto": true, "function": true, "none": true, "required": true },
                "native_tools": {},
                "latency_last_30m": null,
                "throughput_last_30m": null,
                "uptime_last_1d": null,
                "uptime_last_30m": null,
                "uptime_last_5m": null,
            })
        })
        .collect();
    Ok(Json(json!({
        "data": {
            "id": model.id,
            "name": model.name,
            "created": model.created,
            "description": model.description,
            "architecture": ARCHITECTURE.clone(),
            "endpoints": endpoints,
        }
    })))
}

const SUPPORTED_PARAMETERS: [&str; 9] = [
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "tools",
    "tool_choice",
    "response_format",
];

static ARCHITECTURE: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
    json!({
        "input_modalities": ["text"],
        "output_modalities": ["text"],
        "modality": "text->text",
        "instruct_type": null,
        "tokenizer": "Other",
    })
});

fn pricing(e: &EndpointRow) -> Value {
    // OpenRouter writes "-1" for a price it does not know; "0" would claim the model is free.
    let known = |s: &str| {
        if s.is_empty() {
            "-1".to_owned()
        } else {
            s.to_owned()
        }
    };
    let mut p = json!({
        "prompt": known(&e.price_prompt),
        "completion": known(&e.price_completion),
    });
    for (name, value) in [
        ("request", &e.price_request),
        ("image", &e.price_image),
        ("input_cache_read", &e.price_input_cache_read),
        ("input_cache_write", &e.price_input_cache_write),
        ("internal_reasoning", &e.price_internal_reasoning),
    ] {
        if !value.is_empty() {
            p[name] = Value::String(value.clone());
        }
    }
    p
}

/// OpenRouter's model object; the public price is the preferred endpoint's.
pub fn model_json(m: &ModelRow) -> Value {
    let top = m.endpoints.first();
    json!({
        "id": m.id,
        "canonical_slug": m.id,
        "name": m.name,
        "created": m.created,
        "description": m.description,
        "context_length": m.context_length,
        "architecture": ARCHITECTURE.clone(),
        "pricing": top.map(pricing).unwrap_or_else(|| json!({"prompt": "-1", "completion": "-1"})),
        "top_provider": {
            "is_moderated": false,
            "context_length": top.map(|e| e.context_length),
            "max_completion_tokens": top.map(|e| e.max_output_tokens),
        },
        "per_request_limits": null,
        "supported_parameters": SUPPORTED_PARAMETERS,
        "default_parameters": null,
        "supported_voices": null,
        "links": { "details": format!("/api/v1/models/{}/endpoints", m.id) },
    })
}
