//! Who is calling: the key behind `Authorization: Bearer`, looked up by hash in the store.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::ApiState;
use super::error::ApiError;
use crate::keys::{self, KeyKind};
use crate::manage::{Actor, Role};
use crate::store::KeyRow;

/// An authenticated caller: a live key of either kind.
pub struct Caller(pub KeyRow);

/// A caller holding a management key, acting with its user's role in the key's organization.
/// The key itself stays available to handlers that report on it.
pub struct Manager(#[allow(dead_code)] pub KeyRow, pub Actor);

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
        // The key acts as its user does today: a demoted or removed member loses the power.
        let role = state
            .store
            .membership(&key.organization_id, &key.creator_user_id)
            .await?
            .and_then(|m| m.role.parse::<Role>().ok())
            .ok_or_else(|| {
                ApiError::Forbidden(
                    "This key's user is no longer a member of its organization".into(),
                )
            })?;
        let actor = Actor::Member {
            user_id: key.creator_user_id.clone(),
            organization_id: key.organization_id.clone(),
            role,
            key_hash: key.hash.clone(),
        };
        Ok(Manager(key, actor))
    }
}
