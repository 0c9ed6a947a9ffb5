//! Who is calling: the key behind `Authorization: Bearer` (`Manage::caller`), and the actor it
//! acts as (`Manage::actor`).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::ApiState;
use super::error::ApiError;
use crate::keys::KeyKind;
use crate::manage::Actor;
use crate::store::KeyRow;

/// An authenticated caller: a live key of either kind.
pub struct Caller(pub KeyRow);

/// A caller holding a management key, acting with its user's role in the key's organization.
/// The key itself stays available to handlers that report on it.
pub struct Manager(#[allow(dead_code)] pub KeyRow, pub Actor);

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let authorization = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        Ok(Caller(
            state.manage.caller(authorization, crate::now_ms()).await?,
        ))
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
        let actor = state.manage.actor(&key).await?;
        Ok(Manager(key, actor))
    }
}
