//! Ingest: agents' heartbeats, reporters' reports and healthchecks-style
//! ping URLs. Each request is checked in the same order (size, token
//! present, body, check, token, rate) and changes nothing unless it passes.

use super::error::ApiError;
use super::AppState;
use crate::check::CheckKind;
use crate::monitor::PingInfo;
use crate::state::Signal;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use bgw_wire::{Heartbeat, HeartbeatAck, Report};
use std::sync::atomic::Ordering::Relaxed;

/// Longest free text kept from a client (a heartbeat's `detail`, a
/// report's `error` and `url`, a ping's body): the rest is cut here, at the
/// edge, so no log line, event or message carries more.
pub const MAX_TEXT: usize = 512;

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    super::auth::bearer(headers).ok_or_else(|| {
        ApiError::unauthorized("missing bearer token (Authorization: Bearer <token>)")
    })
}

/// `s` cut to [`MAX_TEXT`] bytes (on a character boundary) with
/// "… and N more bytes" saying how much was left out.
pub fn shorten(mut s: String) -> String {
    if s.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        let more = s.len() - cut;
        s.truncate(cut);
        s.push_str(&format!("… and {more} more bytes"));
    }
    s
}

/// `POST /api/v1/heartbeat`
pub async fn heartbeat(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let result = async {
        let body = body?;
        let token = bearer(&headers)?;
        let hb: Heartbeat = super::parse_body(&body)?;
        let idx = app
            .monitor
            .catalog
            .by_name(&hb.check)
            .ok_or_else(|| ApiError::not_found(format!("unknown check {:?}", hb.check)))?;
        let entry = &app.monitor.catalog.checks[idx];
        if !entry.spec.token_matches(token) {
            return Err(ApiError::unauthorized(format!(
                "wrong token for check {:?}",
                hb.check
            )));
        }
        let CheckKind::Service { color, .. } = entry.spec.kind else {
            return Err(ApiError::bad_request(format!(
                "check {:?} is a {} check, not a service: agents heartbeat to service checks",
                hb.check,
                entry.spec.kind.as_str()
            )));
        };
        if let (Some(expected), Some(sent)) = (color, hb.color) {
            if expected != sent {
                return Err(ApiError::bad_request(format!(
                    "color {sent} does not match check {:?}, which is {expected}",
                    hb.check
                )));
            }
        }
        if hb.instance.is_empty() || hb.instance.len() > 128 {
            return Err(ApiError::bad_request("instance must be 1-128 characters"));
        }
        app.limiter.check(idx)?;
        let detail = hb.detail.map(shorten);
        let ping = PingInfo {
            kind: "heartbeat",
            instance: Some(hb.instance.clone()),
            detail: Some(match &detail {
                Some(d) => format!("{} {d}", hb.status.as_str()),
                None => hb.status.as_str().to_string(),
            }),
        };
        let signal = Signal::Heartbeat {
            instance: hb.instance,
            status: hb.status,
            detail,
            color: hb.color.or(color),
            version: hb.version.map(shorten),
            seq: hb.seq,
        };
        let ack = app.monitor.signal(idx, signal, Some(ping)).await?;
        app.metrics.heartbeats.fetch_add(1, Relaxed);
        Ok(accepted(ack))
    }
    .await;
    app.count_rejection(&result);
    result
}

/// `202 {"state": ..., "next_deadline": ...}`: the signal is durable.
fn accepted(ack: crate::monitor::Ack) -> (StatusCode, Json<HeartbeatAck>) {
    (
        StatusCode::ACCEPTED,
        Json(HeartbeatAck {
            state: ack.state.as_str().to_string(),
            next_deadline: ack.next_deadline.map(|d| d.to_rfc3339()),
        }),
    )
}

/// `POST /api/v1/report`
pub async fn report(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let result = async {
        let body = body?;
        let token = bearer(&headers)?;
        let mut report: Report = super::parse_body(&body)?;
        for r in &mut report.results {
            r.error = r.error.take().map(shorten);
            r.url = shorten(std::mem::take(&mut r.url));
        }
        let idx = app
            .monitor
            .catalog
            .by_name(&report.observer)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "unknown observer {:?}: no reporter check by that name",
                    report.observer
                ))
            })?;
        let entry = &app.monitor.catalog.checks[idx];
        if !entry.spec.token_matches(token) {
            return Err(ApiError::unauthorized(format!(
                "wrong token for observer {:?}",
                report.observer
            )));
        }
        if entry.spec.kind != CheckKind::Reporter {
            return Err(ApiError::bad_request(format!(
                "check {:?} is a {} check, not a reporter",
                report.observer,
                entry.spec.kind.as_str()
            )));
        }
        if report.results.len() > 64 {
            return Err(ApiError::bad_request("at most 64 results per report"));
        }
        app.limiter.check(idx)?;
        let summary = report
            .results
            .iter()
            .map(|r| format!("{}={}", r.target, if r.ok { "ok" } else { "fail" }))
            .collect::<Vec<_>>()
            .join(" ");
        let ping = PingInfo {
            kind: "report",
            instance: None,
            detail: Some(shorten(summary)),
        };
        let ack = app.monitor.report(idx, report, ping).await?;
        app.metrics.reports.fetch_add(1, Relaxed);
        Ok(accepted(ack))
    }
    .await;
    app.count_rejection(&result);
    result
}

/// `GET|POST|HEAD /ping/<uuid>`
pub async fn ping(
    State(app): State<AppState>,
    Path(uuid): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    ping_action(app, uuid, None, body).await
}

/// `GET|POST|HEAD /ping/<uuid>/<start|fail|log|0-255>`
pub async fn ping_with_action(
    State(app): State<AppState>,
    Path((uuid, action)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    ping_action(app, uuid, Some(action), body).await
}

async fn ping_action(
    app: AppState,
    uuid: String,
    action: Option<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let result = async {
        let body = body?;
        let (signal, kind) = match action.as_deref() {
            None => (Signal::Success, "success"),
            Some("start") => (Signal::Start, "start"),
            Some("log") => (Signal::Log, "log"),
            Some("fail") => (
                Signal::Fail {
                    reason: "the job reported failure (/fail)".into(),
                },
                "fail",
            ),
            Some(code) => match code.parse::<u8>() {
                Ok(0) => (Signal::Success, "exit"),
                Ok(n) => (
                    Signal::Fail {
                        reason: format!("the job exited with status {n}"),
                    },
                    "exit",
                ),
                Err(_) => {
                    return Err(ApiError::not_found(format!(
                        "unknown ping action {code:?}: use start, fail, log or an exit status 0-255"
                    )))
                }
            },
        };
        let idx = app
            .monitor
            .catalog
            .by_uuid(&uuid)
            .ok_or_else(|| ApiError::not_found("not found: no check has this uuid"))?;
        app.limiter.check(idx)?;
        let detail =
            (!body.is_empty()).then(|| shorten(String::from_utf8_lossy(&body).into_owned()));
        let detail = match (kind, action.as_deref()) {
            ("exit", Some(code)) => Some(format!(
                "exit status {code}{}",
                detail.map(|d| format!(": {d}")).unwrap_or_default()
            )),
            _ => detail,
        };
        let ping = PingInfo {
            kind,
            instance: None,
            detail,
        };
        app.monitor.signal(idx, signal, Some(ping)).await?;
        app.metrics.pings.fetch_add(1, Relaxed);
        Ok((StatusCode::OK, "OK"))
    }
    .await;
    app.count_rejection(&result);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_to_512_bytes_saying_how_much_more_there_was() {
        let long = "é".repeat(30_000);
        let short = shorten(long);
        assert!(
            short.ends_with("… and 59488 more bytes"),
            "{}",
            &short[500..]
        );
        assert!(short.len() < MAX_TEXT + 40);
        assert_eq!(shorten("fine".into()), "fine");
    }
}
