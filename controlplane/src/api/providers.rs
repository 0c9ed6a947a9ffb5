//! `GET /api/v1/providers`: the providers of the model catalogue, as the SDK's `listProviders`
//! returns them.
//!
//! Public, like `GET /models`: the SDK declares no 401 for this operation and sends a key only
//! if one is configured, so OpenRouter serves it without one. Nothing here is secret; the
//! upstream base URL and credential variable stay out of the response.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::ApiState;
use super::error::ApiError;
use crate::store::ProviderRow;

pub async fn list(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let catalogue = state.manage.catalogue().await?;
    let data: Vec<Value> = catalogue.providers.iter().map(provider_json).collect();
    Ok(Json(json!({ "data": data })))
}

/// The SDK's `ListProvidersData`. The catalogue has no policy links or locations yet.
fn provider_json(p: &ProviderRow) -> Value {
    json!({
        "name": p.name,
        "slug": p.id,
        "privacy_policy_url": null,
        "terms_of_service_url": null,
        "status_page_url": null,
        "headquarters": null,
        "datacenters": null,
    })
}
