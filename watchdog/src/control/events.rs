//! The events of blue/green control, as the monitor records them: every
//! toggle, failed switch, deploy, scale, rollback decision and operator
//! action on the rollback. Each gets its daily-log line from
//! [`crate::monitor::log_line`] and, for the kinds `alerting::classify`
//! knows (`rollback`, `rollback_refused`, `rollback_dry_run`,
//! `switch_failed`), a notification, in the same transaction.
//!
//! Pure constructors: the callers (API handlers, the rollback watcher) pass
//! the time.

use crate::rollback::Rule;
use crate::store::NewEvent;
use bgw_wire::Color;
use chrono::{DateTime, Utc};
use serde_json::json;

/// The `check` of switch, deploy and scale events.
pub const PROXY: &str = "proxy";
/// The `check` of rollback events (`bgw-watchdog silence rollback 1h` silences them).
pub const ROLLBACK: &str = "rollback";

fn color_text(c: Option<Color>) -> &'static str {
    c.map_or("undefined", Color::as_str)
}

/// A successful switch (manual, or automatic other than a rollback).
/// Its log line: `TOGGLE: blue -> green (manual)`.
pub fn toggle(
    at: DateTime<Utc>,
    from: Option<Color>,
    to: Color,
    automatic: bool,
    why: &str,
    took_ms: u64,
) -> NewEvent {
    let how = if automatic { "automatic" } else { "manual" };
    NewEvent {
        at,
        check: Some(PROXY.into()),
        kind: "toggle",
        reason: format!("{} -> {to} ({how})", color_text(from)),
        data: Some(json!({
            "from": from, "to": to, "automatic": automatic, "why": why, "took_ms": took_ms,
        })),
        ..Default::default()
    }
}

/// A switch that failed (the old color stays live, except after `verify`).
pub fn switch_failed(
    at: DateTime<Utc>,
    from: Option<Color>,
    to: Color,
    automatic: bool,
    error: &str,
) -> NewEvent {
    NewEvent {
        at,
        check: Some(PROXY.into()),
        kind: "switch_failed",
        reason: error.to_string(),
        data: Some(json!({ "from": from, "to": to, "automatic": automatic })),
        ..Default::default()
    }
}

/// An automatic rollback that switched.
pub fn rollback(at: DateTime<Utc>, from: Color, to: Color, reason: &str, took_ms: u64) -> NewEvent {
    NewEvent {
        at,
        check: Some(ROLLBACK.into()),
        kind: "rollback",
        reason: reason.to_string(),
        data: Some(json!({ "from": from, "to": to, "took_ms": took_ms })),
        ..Default::default()
    }
}

/// A rollback the policy considered and refused, with the rule.
pub fn rollback_refused(
    at: DateTime<Utc>,
    from: Option<Color>,
    to: Color,
    rule: Rule,
    reason: &str,
) -> NewEvent {
    NewEvent {
        at,
        check: Some(ROLLBACK.into()),
        kind: "rollback_refused",
        reason: reason.to_string(),
        data: Some(json!({ "from": from, "to": to, "rule": rule })),
        ..Default::default()
    }
}

/// What `mode = "dry-run"` would have done.
pub fn rollback_dry_run(
    at: DateTime<Utc>,
    from: Option<Color>,
    to: Color,
    reason: &str,
) -> NewEvent {
    NewEvent {
        at,
        check: Some(ROLLBACK.into()),
        kind: "rollback_dry_run",
        reason: reason.to_string(),
        data: Some(json!({ "from": from, "to": to })),
        ..Default::default()
    }
}

/// `deploy` (ok), `deploy_failed` or `deploy_refused`.
pub fn deploy(at: DateTime<Utc>, kind: &'static str, color: Color, reason: String) -> NewEvent {
    NewEvent {
        at,
        check: Some(PROXY.into()),
        kind,
        color: Some(color.to_string()),
        reason,
        ..Default::default()
    }
}

/// `scale` or `scale_failed`.
pub fn scale(at: DateTime<Utc>, kind: &'static str, color: Color, reason: String) -> NewEvent {
    NewEvent {
        at,
        check: Some(PROXY.into()),
        kind,
        color: Some(color.to_string()),
        reason,
        ..Default::default()
    }
}

/// `rollback_rearm` or `rollback_disable`, by an operator.
pub fn operator(at: DateTime<Utc>, kind: &'static str, reason: &str) -> NewEvent {
    NewEvent {
        at,
        check: Some(ROLLBACK.into()),
        kind,
        reason: reason.to_string(),
        ..Default::default()
    }
}

/// The daily-log line of a control event (`None`: not a control event).
pub fn log_line(e: &NewEvent) -> Option<String> {
    let color = |key: &str| -> Option<Color> {
        e.data
            .as_ref()
            .and_then(|d| d.get(key))
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok())
    };
    Some(match e.kind {
        "toggle" => format!("TOGGLE: {}", e.reason),
        "switch_failed" => format!(
            "ALERT: SWITCH FAILED: {} -> {}: {}",
            color_text(color("from")),
            color_text(color("to")),
            e.reason
        ),
        "rollback" => match (color("from"), color("to")) {
            (Some(from), Some(to)) => crate::logfile::rollback_line(from, to, &e.reason),
            _ => format!("ROLLBACK: {}", e.reason),
        },
        "rollback_refused" => format!("WARNING: ROLLBACK REFUSED: {}", e.reason),
        "rollback_dry_run" => format!(
            "WARNING: ROLLBACK (dry-run, nothing changed): {} -> {}: {}",
            color_text(color("from")),
            color_text(color("to")),
            e.reason
        ),
        "deploy" => format!("DEPLOY: {}", e.reason),
        "deploy_failed" => format!("ALERT: DEPLOY FAILED: {}", e.reason),
        "deploy_refused" => format!("DEPLOY REFUSED: {}", e.reason),
        "scale" => format!("SCALE: {}", e.reason),
        "scale_failed" => format!("ALERT: SCALE FAILED: {}", e.reason),
        "rollback_rearm" => format!("ROLLBACK REARMED: {}", e.reason),
        "rollback_disable" => format!("ROLLBACK DISABLED: {}", e.reason),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_events_have_the_contract_log_lines() {
        let now = Utc::now();
        let t = toggle(now, Some(Color::Blue), Color::Green, false, "operator", 400);
        assert_eq!(log_line(&t).unwrap(), "TOGGLE: blue -> green (manual)");
        let r = rollback(
            now,
            Color::Green,
            Color::Blue,
            "green failed 43s after toggle (agents: no heartbeat, checker: 502)",
            500,
        );
        assert_eq!(
            log_line(&r).unwrap(),
            "ROLLBACK: green -> blue: green failed 43s after toggle (agents: no heartbeat, checker: 502)"
        );
        let f = switch_failed(
            now,
            Some(Color::Blue),
            Color::Green,
            false,
            "nginx -t failed",
        );
        assert_eq!(
            log_line(&f).unwrap(),
            "ALERT: SWITCH FAILED: blue -> green: nginx -t failed"
        );
        let refused = rollback_refused(
            now,
            Some(Color::Green),
            Color::Blue,
            Rule::TargetUnhealthy,
            "blue is not healthy",
        );
        assert_eq!(
            log_line(&refused).unwrap(),
            "WARNING: ROLLBACK REFUSED: blue is not healthy"
        );
        assert_eq!(refused.data.as_ref().unwrap()["rule"], "target_unhealthy");
        assert!(log_line(&NewEvent::default()).is_none());
    }

    #[test]
    fn rollback_events_notify_and_name_their_colors() {
        let now = Utc::now();
        let r = rollback(now, Color::Green, Color::Blue, "x", 1);
        assert_eq!(
            crate::alerting::classify(&r),
            Some(bgw_notify::Kind::Rollback)
        );
        let n = crate::alerting::notification(1, &r, bgw_notify::Kind::Rollback, None);
        assert_eq!((n.from, n.to), (Some(Color::Green), Some(Color::Blue)));
        let f = switch_failed(now, Some(Color::Blue), Color::Green, false, "x");
        assert_eq!(
            crate::alerting::classify(&f),
            Some(bgw_notify::Kind::SwitchFailed)
        );
        let d = rollback_dry_run(now, Some(Color::Green), Color::Blue, "x");
        assert_eq!(
            crate::alerting::classify(&d),
            Some(bgw_notify::Kind::RollbackRefused)
        );
        assert_eq!(
            crate::alerting::classify(&toggle(now, None, Color::Blue, false, "", 0)),
            None
        );
    }
}
