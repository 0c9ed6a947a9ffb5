//! The management REST API (axum), OpenRouter-compatible. Reached directly or through any
//! dataplane, which passes `/api/v1/` management paths through.

mod auth;
mod error;
mod generation;
mod keys;
mod models;

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

pub use error::ApiError;

use crate::manage::Manage;
use crate::publisher::Publisher;
use crate::store::{KeyRow, Store};

#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub publisher: Arc<Publisher>,
    pub manage: Manage,
}

impl ApiState {
    async fn publish(&self) -> Result<(), ApiError> {
        self.publisher.publish().await.map_err(ApiError::Publish)?;
        Ok(())
    }

    /// Resolves a requested workspace (or the organization's default) within the caller's
    /// organization. A workspace of another organization is reported as not found.
    async fn workspace_for(
        &self,
        caller: &KeyRow,
        requested: Option<&str>,
    ) -> Result<String, ApiError> {
        let workspace = match requested {
            Some(id) => self.store.workspace(id).await?,
            None => {
                self.store
                    .default_workspace(&caller.organization_id)
                    .await?
            }
        };
        match workspace {
            Some(w) if w.organization_id == caller.organization_id => Ok(w.id),
            _ => Err(ApiError::BadRequest(format!(
                "Workspace {} not found",
                requested.unwrap_or("(default)")
            ))),
        }
    }

    /// A key of the caller's organization; others are reported as not found.
    async fn owned_key(&self, caller: &KeyRow, hash: &str) -> Result<KeyRow, ApiError> {
        match self.store.key(hash).await? {
            Some(k) if k.organization_id == caller.organization_id => Ok(k),
            _ => Err(ApiError::NotFound(format!("Key {hash} not found"))),
        }
    }
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/api/v1/keys", get(keys::list).post(keys::create))
        .route(
            "/api/v1/keys/{hash}",
            get(keys::get).patch(keys::update).delete(keys::delete),
        )
        .route("/api/v1/key", get(keys::current))
        .route("/api/v1/models", get(models::list))
        .route(
            "/api/v1/models/{author}/{slug}/endpoints",
            get(models::endpoints),
        )
        .route("/api/v1/generation", get(generation::get))
        .fallback(|| async { ApiError::NotFound("Not found".into()) })
        .with_state(state)
}

/// JSON body extractor whose failures answer in OpenRouter's error shape.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// Query-string extractor whose failures answer in OpenRouter's error shape.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// Tells "absent" (`None`) from "explicitly null" (`Some(None)`) in PATCH-style bodies.
pub fn nullable<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Unix milliseconds as ISO 8601 UTC, e.g. `2026-01-02T03:04:05.678Z`.
pub fn iso8601(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
