//! `GET /api/v1/models` as OpenRouter's SDK reads it, rendered from the snapshot once per
//! version so the dataplane answers it without the control plane.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::money::Picodollars;
use crate::snapshot::Model;

pub fn render_models(models: &HashMap<String, Arc<Model>>) -> Bytes {
    let mut sorted: Vec<&Arc<Model>> = models.values().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let data: Vec<Value> = sorted.iter().map(|m| model_json(m)).collect();
    let document = json!({
        "data": data,
        "links": { "next": null },
        "total_count": data.len(),
    });
    Bytes::from(document.to_string())
}

fn price(p: Option<Picodollars>) -> Value {
    p.map_or(Value::Null, |p| Value::String(p.to_string()))
}

fn model_json(m: &Model) -> Value {
    // The model's public price is its preferred endpoint's.
    let top = m.endpoints.first();
    let prices = top.map(|e| e.prices).unwrap_or_default();
    // OpenRouter writes "-1" for a price it does not know; "0" would claim the model is free.
    let mut pricing = json!({
        "prompt": price(prices.prompt).as_str().unwrap_or("-1"),
        "completion": price(prices.completion).as_str().unwrap_or("-1"),
    });
    for (name, value) in [
        ("request", prices.request),
        ("input_cache_read", prices.input_cache_read),
        ("internal_reasoning", prices.internal_reasoning),
    ] {
        if let Some(v) = value {
            pricing[name] = Value::String(v.to_string());
        }
    }
    let max_output = top.map(|e| e.max_output_tokens).filter(|&n| n > 0);
    json!({
        "id": m.id,
        "canonical_slug": m.id,
        "name": m.name,
        "created": m.created,
        "description": m.description,
        "context_length": m.context_length,
        "architecture": {
            "input_modalities": ["text"],
            "output_modalities": ["text"],
            "modality": "text->text",
        },
        "pricing": pricing,
        "top_provider": {
            "is_moderated": false,
            "context_length": top.map(|e| e.context_length),
            "max_completion_tokens": max_output,
        },
        "per_request_limits": null,
        "supported_parameters": [
            "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "seed",
            "tools", "tool_choice", "response_format"
        ],
        "default_parameters": null,
        "supported_voices": null,
        "links": { "details": format!("/api/v1/models/{}/endpoints", m.id) },
    })
}
