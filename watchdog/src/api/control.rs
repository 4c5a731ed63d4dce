//! Blue/green control over HTTP: the live color (no auth, like the status
//! page), toggle, deploy, scale and the automatic rollback's state (admin
//! token). Every action is an event, with its log line; a failed switch also
//! alerts (`switch_failed`).
//!
//! Answers: `200` done; `409` refused or failed, with the reason in
//! `{"error": ...}` (the original scripts' refusals, a failed `nginx -t`, a
//! failed reload or verification, a failed deploy or scale command); `400`
//! bad input; `401` token.

use super::error::ApiError;
use super::{Admin, AppState};
use crate::control::{self, DeployError, SwitchAndRecordError, Trigger};
use crate::proxy::LiveState;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use bgw_wire::{format_duration, Color};
use serde_json::{json, Value};

/// The live color as the API shows it: `{"live", "idle", "since"}`, and
/// `"error"` when the live file is missing or does not hold a color
/// (`live` and `idle` are then `null`).
fn live_value(app: &AppState) -> Value {
    match app.switcher.live() {
        LiveState::Live(c) => {
            let since = app
                .monitor
                .snapshot()
                .control
                .last_toggle
                .as_ref()
                .filter(|t| t.to == c)
                .map(|t| t.at);
            json!({ "live": c, "idle": c.other(), "since": since })
        }
        LiveState::Missing => json!({
            "live": null, "idle": null, "since": null,
            "error": "the live file does not exist: no color is live yet (toggle to one)",
        }),
        LiveState::Invalid(why) => json!({
            "live": null, "idle": null, "since": null,
            "error": format!("the live color is undefined: {why}"),
        }),
    }
}

/// `GET /api/v1/live` (no auth): always `200`; an undefined live color is
/// `{"live": null, ..., "error": "..."}` (`bgw-watchdog live` exits 1 on it).
pub async fn live(State(app): State<AppState>) -> impl IntoResponse {
    Json(live_value(&app))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToggleBody {
    to: Option<Color>,
    /// Why, for the record (default: "manual toggle").
    reason: Option<String>,
}

/// `POST /api/v1/toggle {"to": "green"}` or `{}` (the other color).
pub async fn toggle(
    Admin(app): Admin,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let b: ToggleBody = super::parse_body(&body?)?;
    let from = app.switcher.live();
    let to = match (b.to, &from) {
        (Some(to), _) => to,
        (None, LiveState::Live(c)) => c.other(),
        (None, LiveState::Missing) => {
            return Err(ApiError::conflict(
                "refusing to toggle: no color is live yet; name the color (toggle blue|green)",
            ))
        }
        (None, LiveState::Invalid(why)) => {
            return Err(ApiError::conflict(format!(
                "refusing to toggle: the live color is undefined ({why}); name the color (toggle blue|green)"
            )))
        }
    };
    let why = b
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .unwrap_or("manual toggle")
        .chars()
        .take(500)
        .collect::<String>();
    let result = control::switch_and_record(
        &app.switcher,
        &app.monitor,
        app.clock.now(),
        to,
        Trigger::Manual { why },
    )
    .await;
    match result {
        Ok(report) => {
            let mut value = live_value(&app);
            value["from"] = json!(report.from);
            value["to"] = json!(to);
            value["took_ms"] = json!(report.total.as_millis() as u64);
            Ok(Json(value))
        }
        Err(SwitchAndRecordError::Switch(e)) => Err(ApiError::conflict(e.to_string())),
        Err(SwitchAndRecordError::Store(e)) => Err(ApiError::internal(
            "switched, but the toggle could not be stored",
            e,
        )),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployBody {
    color: Color,
    image: String,
}

/// `POST /api/v1/deploy {"color": "green", "image": "registry/app:1.2"}`:
/// refuses the live color (`409`), runs `deploy_cmd` otherwise.
pub async fn deploy(
    Admin(app): Admin,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let b: DeployBody = super::parse_body(&body?)?;
    let result = control::deploy_guarded(
        &app.switcher,
        &app.monitor,
        app.clock.now(),
        b.color,
        &b.image,
    )
    .await?;
    match result {
        Ok(report) => Ok(Json(json!({
            "color": b.color, "image": report.image, "ok": true,
            "output": report.outcome.output,
        }))),
        Err(e @ DeployError::BadImage(_)) => Err(ApiError::bad_request(e.to_string())),
        Err(e) => Err(ApiError::conflict(e.to_string())),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleBody {
    color: Color,
    n: u32,
}

/// `POST /api/v1/scale {"color": "green", "n": 3}`: runs `scale_cmd`.
pub async fn scale(
    Admin(app): Admin,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let b: ScaleBody = super::parse_body(&body?)?;
    if b.n > 10_000 {
        return Err(ApiError::bad_request("n must be between 0 and 10000"));
    }
    let (result, record) =
        control::scale(app.switcher.settings(), app.clock.now(), b.color, b.n).await;
    app.monitor.record(record).await?;
    match result {
        Ok(outcome) => Ok(Json(json!({
            "color": b.color, "n": b.n, "ok": true, "output": outcome.output,
        }))),
        Err(e) => Err(ApiError::conflict(e.to_string())),
    }
}

/// The rollback's state for `GET /api/v1/rollback` and the operator actions.
fn rollback_value(app: &AppState) -> Value {
    let snapshot = app.monitor.snapshot();
    let state = &snapshot.control.rollback;
    let last = &snapshot.control.last_toggle;
    let s = &app.rollback;
    let now = app.clock.now();
    let remaining = |since: chrono::DateTime<chrono::Utc>, total: std::time::Duration| {
        let elapsed = (now - since).to_std().unwrap_or_default();
        total
            .checked_sub(elapsed)
            .filter(|d| !d.is_zero())
            .map(|d| format_duration(std::time::Duration::from_secs(d.as_secs().max(1))))
    };
    let status = if !s.enabled || state.disabled {
        "disabled"
    } else if state.latched {
        "latched"
    } else {
        "armed"
    };
    json!({
        "state": status,
        "disabled_by": if !s.enabled { Some("config (rollback.enabled = false)") }
                       else if state.disabled { Some("operator (bgw-watchdog rollback disable)") }
                       else { None },
        "mode": s.mode,
        "failover": s.failover,
        "window": s.window,
        "cooldown": s.cooldown,
        "quorum": s.quorum,
        "fail_after": s.fail_after,
        "latched_at": state.latched_at,
        "latch_reason": state.latch_reason,
        "last_toggle": last,
        "window_remaining": last.as_ref().and_then(|t| remaining(t.at, s.window.0)),
        "last_automatic_at": state.last_automatic_at,
        "cooldown_remaining": state.last_automatic_at.and_then(|t| remaining(t, s.cooldown.0)),
        "last_decision": app.last_decision.lock().expect("last decision lock").clone(),
    })
}

/// `GET /api/v1/rollback`: armed / latched / disabled, the last toggle, the
/// time left in its window and in the cooldown, and the last decision.
pub async fn rollback_status(Admin(app): Admin) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(rollback_value(&app)))
}

/// `POST /api/v1/rollback/rearm`: releases the latch and undoes `disable`.
pub async fn rearm(Admin(app): Admin) -> Result<impl IntoResponse, ApiError> {
    app.monitor
        .record(control::arm_record(app.clock.now(), true))
        .await?;
    Ok(Json(rollback_value(&app)))
}

/// `POST /api/v1/rollback/disable`: no automatic switch until `rearm`.
pub async fn disable(Admin(app): Admin) -> Result<impl IntoResponse, ApiError> {
    app.monitor
        .record(control::arm_record(app.clock.now(), false))
        .await?;
    Ok(Json(rollback_value(&app)))
}
