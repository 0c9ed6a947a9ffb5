//! The one place management-API failures become HTTP responses, in OpenRouter's shape:
//! `{"error":{"code":<status>,"message":…,"metadata":…}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

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
    #[error("internal error")]
    Store(#[from] StoreError),
    #[error("internal error")]
    Publish(StoreError),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Store(_) | ApiError::Publish(_) => StatusCode::INTERNAL_SERVER_ERROR,
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
