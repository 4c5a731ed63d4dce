//! The one HTTP error type of the API.
//!
//! Policy: every error answer is JSON `{"error": "..."}` with a status that
//! tells the client what to do: 400 fix the request, 401 fix the token, 404
//! fix the name, 413 send less, 429 slow down, 503 try later. Messages say
//! what was wrong with the request and never echo a token or a secret.
//! Internal errors are logged in full and answered with a short message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    pub fn too_many() -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests for this token; slow down",
        )
    }

    /// An internal failure: logged here, answered without details.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %err, "{context}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{context}; try again"),
        )
    }
}

impl From<crate::monitor::MonitorError> for ApiError {
    fn from(e: crate::monitor::MonitorError) -> Self {
        ApiError::internal("the signal could not be stored", e)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::internal("the store could not be read", e)
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                format!("body over {} bytes", bgw_wire::MAX_BODY_BYTES),
            )
        } else {
            ApiError::new(status, r.body_text())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(bgw_wire::ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}
