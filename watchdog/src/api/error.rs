//! The one HTTP error type of the API.
//!
//! Policy: every error answer is JSON `{"error": "..."}` with a status that
//! tells the client what to do: 400 fix the request, 401 fix the token, 404
//! fix the name, 409 not now (a service at `max_instances` refuses a new
//! instance), 413 send less, 429 slow down, 503 try later. Messages say
//! what was wrong with the request and never echo a token or a secret.
//! Internal errors are logged in full and answered with a short message.
//! Rejections made outside the handlers (an unknown route, a method not
//! allowed, a path that does not decode, a body limit) are turned into the
//! same JSON by [`json_errors`], so no error answer is plain text or empty.

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
        match e {
            // 409: retrying will not help until an instance leaves.
            e @ crate::monitor::MonitorError::InstanceCap { .. } => {
                ApiError::conflict(e.to_string())
            }
            e => ApiError::internal("the signal could not be stored", e),
        }
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

/// Longest non-JSON error text carried over into `{"error": ...}`.
const MAX_REJECTION_TEXT: usize = 1024;

/// Middleware: an error answer (4xx, 5xx) that is not JSON becomes
/// `{"error": "<its text, or the status's reason>"}` with the same status.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_REJECTION_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_lowercase()
    } else {
        text
    };
    let mut json = ApiError::new(status, message).into_response();
    for name in [axum::http::header::ALLOW, axum::http::header::CONNECTION] {
        if let Some(v) = parts.headers.get(&name) {
            json.headers_mut().insert(name, v.clone());
        }
    }
    json
}
