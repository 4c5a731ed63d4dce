//! The HTTP API: the router, its shared state, admin authentication and the
//! per-token rate limiter. Handlers live in `api/ingest.rs` (heartbeats,
//! reports, pings), `api/admin.rs` (checks, events, pause/resume) and
//! `api/control.rs` (live color, toggle, deploy, scale, rollback); who may
//! call what in `api/auth.rs`.

mod admin;
pub mod auth;
mod control;
pub mod error;
mod ingest;
mod page;

use crate::metrics::Metrics;
use crate::monitor::Monitor;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use error::ApiError;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub monitor: Monitor,
    pub store: crate::store::Store,
    pub clock: crate::clock::Clock,
    pub metrics: Arc<Metrics>,
    /// The admin token (configured or generated) and what it guards.
    pub admin: Arc<auth::AdminAuth>,
    /// Failed authentications per client address.
    pub failed_auth: Arc<auth::FailedAuthLimiter>,
    pub limiter: Arc<RateLimiter>,
    pub started: chrono::DateTime<chrono::Utc>,
    pub channels: Arc<Vec<Arc<crate::outbox::ChannelHealth>>>,
    /// The one switcher of the process (its lock serializes every switch and deploy).
    pub switcher: crate::proxy::Switcher,
    pub rollback: Arc<crate::rollback::RollbackSettings>,
    /// The rollback watcher's last decision.
    pub last_decision: crate::control::watcher::Last,
    /// The status page's access setting, shared facts and latency rings.
    pub page: crate::page::Page,
}

impl AppState {
    fn count_rejection<T>(&self, result: &Result<T, ApiError>) {
        if let Err(e) = result {
            if e.status.is_client_error() {
                self.metrics
                    .rejected
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if e.status == axum::http::StatusCode::TOO_MANY_REQUESTS {
                self.metrics
                    .rate_limited
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// An admin request, authorized for reading: extracting it checks `Bearer
/// <admin_token>` (or, with a generated token, that the client is on
/// loopback), so a handler that takes it cannot forget to. Mutating routes
/// are also behind [`auth::admin_write`] (see [`router`]).
pub struct Admin(pub AppState);

impl axum::extract::FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
        state.admin.authorize_read(&parts.headers, peer)?;
        Ok(Admin(state.clone()))
    }
}

/// A JSON body, `{}` when empty; `400` naming what is wrong otherwise.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// A token bucket per check: `rate` requests per second, bursts of `2 * rate`.
pub struct RateLimiter {
    rate: f64,
    buckets: Mutex<HashMap<usize, (f64, Instant)>>,
}

impl RateLimiter {
    /// `rate` 0 disables limiting.
    pub fn new(rate: u32) -> RateLimiter {
        RateLimiter {
            rate: f64::from(rate),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn check(&self, key: usize) -> Result<(), ApiError> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let burst = self.rate * 2.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        let (tokens, last) = buckets.entry(key).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(ApiError::too_many())
        }
    }
}

pub fn router(state: AppState) -> Router {
    // Mutating admin routes: not cross-site, and the admin token, always.
    let write = |route: MethodRouter<AppState>| {
        route.route_layer(from_fn_with_state(state.clone(), auth::admin_write))
    };
    let ping = get(ingest::ping).post(ingest::ping).head(ingest::ping);
    let ping_action = get(ingest::ping_with_action)
        .post(ingest::ping_with_action)
        .head(ingest::ping_with_action);
    Router::new()
        .route("/", get(page::status_page))
        .route("/status.json", get(page::status_json))
        .route("/events/stream", get(page::stream))
        .route("/healthz", get(admin::healthz))
        .route("/metrics", get(admin::metrics))
        .route("/api/v1/heartbeat", post(ingest::heartbeat))
        .route("/api/v1/report", post(ingest::report))
        .route("/ping/{uuid}", ping)
        .route("/ping/{uuid}/{action}", ping_action)
        .route("/api/v1/checks", get(admin::list_checks))
        .route("/api/v1/checks/{name}", get(admin::get_check))
        .route("/api/v1/checks/{name}/pause", write(post(admin::pause)))
        .route("/api/v1/checks/{name}/resume", write(post(admin::resume)))
        .route("/api/v1/events", get(admin::events))
        .route("/api/v1/notifications", get(admin::notifications))
        .route("/api/v1/targets", get(admin::targets))
        .route("/api/v1/live", get(control::live))
        .route("/api/v1/toggle", write(post(control::toggle)))
        .route("/api/v1/deploy", write(post(control::deploy)))
        .route("/api/v1/scale", write(post(control::scale)))
        .route("/api/v1/rollback", get(control::rollback_status))
        .route("/api/v1/rollback/rearm", write(post(control::rearm)))
        .route("/api/v1/rollback/disable", write(post(control::disable)))
        .route(
            "/api/v1/silences",
            get(admin::silences).merge(write(post(admin::add_silence))),
        )
        .route(
            "/api/v1/silences/{id}",
            write(axum::routing::delete(admin::end_silence)),
        )
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this endpoint",
            )
        })
        .layer(DefaultBodyLimit::max(bgw_wire::MAX_BODY_BYTES))
        .layer(from_fn_with_state(state.clone(), auth::limit_failed_auth))
        .layer(axum::middleware::from_fn(error::json_errors))
        .with_state(state)
}
