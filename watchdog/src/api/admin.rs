//! Read and operate: checks, events, pause/resume, health and metrics.

use super::error::ApiError;
use super::AppState;
use crate::state::Signal;
use crate::store::{self, Since};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;

pub async fn healthz(State(app): State<AppState>) -> impl IntoResponse {
    let store_ok = sqlx::query_scalar::<_, i64>("SELECT 1")
        .fetch_one(&app.pool)
        .await
        .is_ok();
    let scheduler_ok = app.monitor.alive(Duration::from_secs(2)).await;
    let ok = store_ok && scheduler_ok;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ok { "ok" } else { "unhealthy" },
            "store": if store_ok { "ok" } else { "failing" },
            "scheduler": if scheduler_ok { "ok" } else { "stalled" },
            "started": app.started,
        })),
    )
}

pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        app.metrics.render(),
    )
}

pub async fn list_checks(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    app.authorize_admin(&headers, peer)?;
    let checks = store::list_checks(&app.pool).await?;
    Ok(Json(json!({ "checks": checks })))
}

pub async fn get_check(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    app.authorize_admin(&headers, peer)?;
    let check = store::get_check(&app.pool, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown check {name:?}")))?;
    let pings = store::recent_pings(&app.pool, check.id, 20).await?;
    let mut value = serde_json::to_value(&check).expect("check serializes");
    value["recent_pings"] = json!(pings);
    Ok(Json(value))
}

async fn pause_or_resume(
    app: AppState,
    peer: SocketAddr,
    headers: HeaderMap,
    name: String,
    signal: Signal,
) -> Result<impl IntoResponse, ApiError> {
    app.authorize_admin(&headers, peer)?;
    let idx = app
        .monitor
        .catalog
        .by_name(&name)
        .ok_or_else(|| ApiError::not_found(format!("unknown check {name:?}")))?;
    let ack = app.monitor.signal(idx, signal, None).await?;
    Ok(Json(json!({
        "check": name,
        "state": ack.state.as_str(),
        "next_deadline": ack.next_deadline,
    })))
}

pub async fn pause(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    pause_or_resume(app, peer, headers, name, Signal::Pause).await
}

pub async fn resume(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    pause_or_resume(app, peer, headers, name, Signal::Resume).await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    since: Option<String>,
    check: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/events?since=<event id | RFC 3339 time>&check=<name>&limit=<n>`
pub async fn events(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    app.authorize_admin(&headers, peer)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let since = match q.since.as_deref() {
        None | Some("") => Since::Id(0),
        Some(s) => match s.parse::<i64>() {
            Ok(id) => Since::Id(id),
            Err(_) => Since::Time(
                chrono::DateTime::parse_from_rfc3339(s)
                    .map_err(|_| {
                        ApiError::bad_request(format!(
                            "since={s:?}: expected an event id or an RFC 3339 time"
                        ))
                    })?
                    .to_utc(),
            ),
        },
    };
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let events = store::events(&app.pool, since, q.check.as_deref(), limit).await?;
    let next = events.last().map(|e| e.id);
    Ok(Json(json!({ "events": events, "next": next })))
}
