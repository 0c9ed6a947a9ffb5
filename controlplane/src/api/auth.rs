//! Who is calling: the key behind `Authorization: Bearer`, looked up by hash in the store.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::ApiState;
use super::error::ApiError;
use crate::keys::{self, KeyKind};
use crate::store::KeyRow;

/// An authenticated caller: a live key of either kind.
pub struct Caller(pub KeyRow);

/// A caller holding a management key.
pub struct Manager(pub KeyRow);

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let secret = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::Unauthorized("No auth credentials found".into()))?;
        let key = state
            .store
            .key(&keys::hash(secret))
            .await?
            .filter(|k| !k.disabled && k.expires_at.is_none_or(|t| t > crate::now_ms()))
            .ok_or_else(|| ApiError::Unauthorized("User not found.".into()))?;
        Ok(Caller(key))
    }
}

impl FromRequestParts<ApiState> for Manager {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let Caller(key) = Caller::from_request_parts(parts, state).await?;
        if key.kind != KeyKind::Management {
            return Err(ApiError::Forbidden(
                "This endpoint requires a management key; inference keys cannot manage".into(),
            ));
        }
        Ok(Manager(key))
    }
}
