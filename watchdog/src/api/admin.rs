//! Read and operate: checks, events, pause/resume, health and metrics.

use super::error::ApiError;
use super::{Admin, AppState};
use crate::alerting::Silence;
use crate::event::{Event, EventKind};
use crate::monitor::Record;
use crate::state::Signal;
use crate::store::{SilenceChange, Since};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use std::time::Duration;

pub async fn healthz(State(app): State<AppState>) -> impl IntoResponse {
    // Readable, and the last commit reached the disk (a full disk still reads).
    let store_ok = app.monitor.store_health().borrow().is_none() && app.store.ping().await;
    let scheduler_ok = app.monitor.alive(Duration::from_secs(2)).await;
    let ok = store_ok && scheduler_ok;
    let channels: serde_json::Map<String, serde_json::Value> = app
        .channels
        .iter()
        .map(|c| {
            let failures = c
                .consecutive_failures
                .load(std::sync::atomic::Ordering::Relaxed);
            let value = if c.failing() {
                json!({"status": "failing", "consecutive_failures": failures,
                       "last_error": c.last_error.lock().expect("health lock").clone()})
            } else {
                json!({"status": "ok", "consecutive_failures": failures})
            };
            (c.name.to_string(), value)
        })
        .collect();
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
            "channels": channels,
        })),
    )
}

pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let age = match app.store.oldest_pending().await {
        Ok(Some(t)) => (app.clock.now() - t).num_milliseconds().max(0),
        _ => 0,
    };
    app.metrics
        .outbox_oldest_pending_ms
        .store(age, std::sync::atomic::Ordering::Relaxed);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        app.metrics.render(),
    )
}

pub async fn list_checks(Admin(app): Admin) -> Result<impl IntoResponse, ApiError> {
    let checks = app.store.list_checks().await?;
    Ok(Json(json!({ "checks": checks })))
}

pub async fn get_check(
    Admin(app): Admin,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let check = app
        .store
        .get_check(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown check {name:?}")))?;
    let pings = app.store.recent_pings(check.id, 20).await?;
    let mut value = serde_json::to_value(&check).expect("check serializes");
    value["recent_pings"] = json!(pings);
    Ok(Json(value))
}

async fn pause_or_resume(
    app: AppState,
    name: String,
    signal: Signal,
) -> Result<impl IntoResponse, ApiError> {
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
    Admin(app): Admin,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    pause_or_resume(app, name, Signal::Pause).await
}

pub async fn resume(
    Admin(app): Admin,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    pause_or_resume(app, name, Signal::Resume).await
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
    Admin(app): Admin,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
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
    let events = app.store.events(since, q.check.as_deref(), limit).await?;
    let next = events.last().map(|e| e.id);
    Ok(Json(json!({ "events": events, "next": next })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsQuery {
    state: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/notifications?state=pending|delivered|failed|merged|cancelled&limit=`
pub async fn notifications(
    Admin(app): Admin,
    query: Result<Query<NotificationsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if let Some(s) = q.state.as_deref() {
        if !matches!(
            s,
            "pending" | "delivered" | "failed" | "merged" | "cancelled"
        ) {
            return Err(ApiError::bad_request(format!(
                "state={s:?}: expected pending, delivered, failed, merged or cancelled"
            )));
        }
    }
    let rows = app
        .store
        .notifications(q.state.as_deref(), q.limit.unwrap_or(100).clamp(1, 10_000))
        .await
        .map_err(|e| ApiError::internal("the outbox could not be read", e))?;
    Ok(Json(json!({ "notifications": rows })))
}

/// `GET /api/v1/targets`: what the checker and the prober see.
pub async fn targets(Admin(app): Admin) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({ "targets": app.monitor.snapshot().targets })))
}

pub async fn silences(Admin(app): Admin) -> Result<impl IntoResponse, ApiError> {
    let now = app.clock.now();
    let rows: Vec<_> = app
        .monitor
        .snapshot()
        .silences
        .iter()
        .filter(|s| s.until > now)
        .cloned()
        .collect();
    Ok(Json(json!({ "silences": rows })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    target: String,
    duration: bgw_wire::HumanDuration,
    reason: String,
}

/// `POST /api/v1/silences {"target": "blue", "duration": "2h", "reason": "..."}`
pub async fn add_silence(
    Admin(app): Admin,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let mut s: NewSilence = super::parse_body(&body?)?;
    s.reason = super::ingest::shorten(s.reason.trim().to_string());
    let known = app.monitor.catalog.by_name(&s.target).is_some()
        || s.target.parse::<bgw_wire::Color>().is_ok()
        || s.target.contains(':')
        || [crate::event::ROLLBACK, crate::event::PROXY].contains(&s.target.as_str());
    if !known {
        return Err(ApiError::not_found(format!(
            "unknown silence target {:?}: use a check name, a color, observer:target, rollback or proxy",
            s.target
        )));
    }
    if s.duration.0.is_zero() || s.duration.0 > Duration::from_secs(366 * 86_400) {
        return Err(ApiError::bad_request(
            "duration must be between 1ms and a year",
        ));
    }
    if s.reason.trim().is_empty() {
        return Err(ApiError::bad_request("a silence needs a reason"));
    }
    let now = app.clock.now();
    let until = now + s.duration.0;
    let reason = s.reason.trim().to_string();
    let record = Record {
        events: vec![Event::new(
            now,
            EventKind::Silence {
                target: s.target.clone(),
                reason: format!(
                    "silenced until {} ({reason})",
                    until.format("%Y-%m-%d %H:%M:%SZ")
                ),
            },
        )],
        silences: vec![SilenceChange::Add(Silence {
            id: 0,
            target: s.target.clone(),
            until,
            reason,
            created_at: now,
        })],
        ..Record::default()
    };
    let ids = app.monitor.record(record).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": ids.silences[0], "target": s.target, "until": until })),
    ))
}

pub async fn end_silence(
    Admin(app): Admin,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    let now = app.clock.now();
    if !app
        .monitor
        .snapshot()
        .silences
        .iter()
        .any(|s| s.id == id && s.until > now)
    {
        return Err(ApiError::not_found(format!("no active silence #{id}")));
    }
    let record = Record {
        silences: vec![SilenceChange::End(id)],
        ..Record::default()
    };
    app.monitor.record(record).await?;
    Ok(Json(json!({ "id": id, "ended": true })))
}
