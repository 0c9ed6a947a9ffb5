//! The one place management-API failures become HTTP responses, in OpenRouter's shape:
//! `{"error":{"code":<status>,"message":…,"metadata":…}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::manage::ManageError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    PaymentRequired(String),
    #[error("{0}")]
    Conflict(String),
    #[error("internal error")]
    Store(#[from] StoreError),
    #[error("internal error")]
    Publish(StoreError),
    #[error("internal error")]
    Internal,
}

impl From<ManageError> for ApiError {
    fn from(e: ManageError) -> ApiError {
        match e {
            ManageError::Unauthenticated(m) => ApiError::Unauthorized(m),
            ManageError::Invalid(m) | ManageError::Conflict(m) => ApiError::BadRequest(m),
            ManageError::Forbidden(m) => ApiError::Forbidden(m),
            ManageError::NotFound(m) => ApiError::NotFound(m),
            ManageError::InsufficientCredits(m) => ApiError::PaymentRequired(m),
            ManageError::Exists(m) => ApiError::Conflict(m),
            ManageError::Store(e) => ApiError::Store(e),
            ManageError::Vault(e) => {
                tracing::error!(error = %e, "vault failure");
                ApiError::Internal
            }
        }
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PaymentRequired(_) => StatusCode::PAYMENT_REQUIRED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Store(_) | ApiError::Publish(_) | ApiError::Internal => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Store(e) | ApiError::Publish(e) = &self {
            // Logged here, once; the client gets no internals.
            tracing::error!(error = %e, "management request failed");
        }
        let body: Value = json!({
            "error": { "code": status.as_u16(), "message": self.to_string(), "metadata": null }
        });
        (status, Json(body)).into_response()
    }
}
