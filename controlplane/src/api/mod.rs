//! The management REST API (axum), OpenRouter-compatible. Reached directly or through any
//! dataplane, which passes `/api/v1/` management paths through.

mod activity;
mod analytics;
mod auth;
mod budgets;
mod byok;
mod console;
mod credits;
mod error;
mod external_users;
mod generation;
mod guardrails;
mod keys;
mod metrics;
mod models;
mod organization;
mod presets;
mod providers;
mod workspaces;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

pub use error::ApiError;

use crate::manage::Manage;

/// Everything a handler reaches goes through `manage`, where authorization lives.
#[derive(Clone)]
pub struct ApiState {
    pub manage: Manage,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics::get))
        .route("/console", get(console::index))
        .route("/console/", get(console::index))
        .route("/console/console.js", get(console::script))
        .route("/console/console.css", get(console::style))
        .route("/api/v1/keys", get(keys::list).post(keys::create))
        .route(
            "/api/v1/keys/{hash}",
            get(keys::get).patch(keys::update).delete(keys::delete),
        )
        .route("/api/v1/keys/{hash}/rotate", post(keys::rotate))
        .route("/api/v1/key", get(keys::current))
        .route(
            "/api/v1/organization/members",
            get(organization::members).post(organization::add_member),
        )
        .route(
            "/api/v1/organization/members/{user_id}",
            patch(organization::set_role).delete(organization::remove_member),
        )
        .route(
            "/api/v1/organization/settings",
            get(organization::settings).patch(organization::update_settings),
        )
        .route("/api/v1/credits", get(credits::get).post(credits::grant))
        .route("/api/v1/credits/ledger", get(credits::ledger))
        // One parameter name per segment (the router requires it): `{id}` is the SDK's `id`
        // or `workspace_ref`, a workspace id or slug.
        .route(
            "/api/v1/workspaces",
            get(workspaces::list).post(workspaces::create),
        )
        .route(
            "/api/v1/workspaces/{id}",
            get(workspaces::get)
                .patch(workspaces::update)
                .delete(workspaces::delete),
        )
        .route("/api/v1/workspaces/{id}/members", get(workspaces::members))
        .route(
            "/api/v1/workspaces/{id}/members/add",
            axum::routing::post(workspaces::add_members),
        )
        .route(
            "/api/v1/workspaces/{id}/members/remove",
            axum::routing::post(workspaces::remove_members),
        )
        .route("/api/v1/workspaces/{id}/budgets", get(workspaces::budgets))
        .route(
            "/api/v1/workspaces/{id}/budgets/{interval}",
            get(workspaces::get_budget)
                .put(workspaces::put_budget)
                .delete(workspaces::delete_budget),
        )
        .route(
            "/api/v1/guardrails",
            get(guardrails::list).post(guardrails::create),
        )
        .route(
            "/api/v1/guardrails/assignments/keys",
            get(guardrails::all_key_assignments),
        )
        .route(
            "/api/v1/guardrails/assignments/members",
            get(guardrails::all_member_assignments),
        )
        .route(
            "/api/v1/guardrails/{id}",
            get(guardrails::get)
                .patch(guardrails::update)
                .delete(guardrails::delete),
        )
        .route(
            "/api/v1/guardrails/{id}/assignments/keys",
            get(guardrails::key_assignments).post(guardrails::assign_keys),
        )
        .route(
            "/api/v1/guardrails/{id}/assignments/keys/remove",
            post(guardrails::unassign_keys),
        )
        .route(
            "/api/v1/guardrails/{id}/assignments/members",
            get(guardrails::member_assignments).post(guardrails::assign_members),
        )
        .route(
            "/api/v1/guardrails/{id}/assignments/members/remove",
            post(guardrails::unassign_members),
        )
        .route("/api/v1/presets", get(presets::list).post(presets::create))
        .route(
            "/api/v1/presets/{slug}",
            get(presets::get)
                .patch(presets::update)
                .delete(presets::delete),
        )
        .route(
            "/api/v1/presets/{slug}/versions",
            get(presets::versions).post(presets::add_version),
        )
        .route(
            "/api/v1/presets/{slug}/versions/{version}",
            get(presets::version),
        )
        .route("/api/v1/byok", get(byok::list).post(byok::create))
        .route(
            "/api/v1/byok/{id}",
            get(byok::get).patch(byok::update).delete(byok::delete),
        )
        .route("/api/v1/providers", get(providers::list))
        .route("/api/v1/models", get(models::list))
        .route(
            "/api/v1/models/{author}/{slug}/endpoints",
            get(models::endpoints),
        )
        .route("/api/v1/endpoints/zdr", get(models::zdr))
        .route("/api/v1/generation", get(generation::get))
        .route("/api/v1/activity", get(activity::get))
        .route("/api/v1/activity/export", get(activity::export))
        .route("/api/v1/analytics/meta", get(analytics::meta))
        .route("/api/v1/analytics/query", post(analytics::query))
        .route(
            "/api/v1/external-users",
            get(external_users::list).post(external_users::create),
        )
        .route(
            "/api/v1/external-users/{user}",
            get(external_users::get)
                .patch(external_users::update)
                .delete(external_users::delete),
        )
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

/// A stored decimal amount of USD as the JSON number OpenRouter reports, parsed by the one money
/// parser both planes use; `None` for a value that is not one.
pub fn usd(text: &str) -> Option<f64> {
    switchyard_policy::Money::parse_recorded(text)
        .ok()
        .map(switchyard_policy::Money::as_usd_f64)
}

/// Unix milliseconds as ISO 8601 UTC, e.g. `2026-01-02T03:04:05.678Z`.
pub fn iso8601(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
