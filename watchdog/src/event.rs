//! The watchdog's one vocabulary of events: every state change, instance
//! change, probe transition, switch, deploy, rollback decision and alerting
//! notice is an [`Event`] with a typed payload ([`EventKind`]).
//!
//! Each kind has exactly one daily-log line ([`Event::log_line`]) and one
//! stored form ([`Event::columns`]): both are exhaustive `match`es, so a new
//! kind without a line or a row does not compile (and neither does one
//! without an alert decision, in `alerting::plan`). Events are stored as a
//! kind column plus columns and JSON for the rest; they are built typed and
//! flattened once, at the store's edge.

use crate::logfile;
use crate::rollback::Rule;
use crate::state::{InstanceChange, State};
use bgw_notify::Member;
use bgw_wire::{format_duration, Color, Target};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::time::Duration;

/// The `check` of switch, deploy and scale events.
pub const PROXY: &str = "proxy";
/// The `check` of rollback events (`bgw-watchdog silence rollback 1h` silences them).
pub const ROLLBACK: &str = "rollback";

/// Something that happened, at the time it really happened (a deadline, not
/// the moment it was noticed).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub kind: EventKind,
}

/// What a deploy or scale command came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Refused before anything ran (the live color, a bad image).
    Refused,
    /// The command ran and failed.
    Failed,
}

/// Every kind of event, with what it carries.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A check changed state.
    State {
        check: String,
        color: Option<Color>,
        from: State,
        to: State,
        reason: String,
        /// On recovery from `down`: how long the outage lasted.
        down_for: Option<Duration>,
    },
    /// An instance of a service joined, failed, recovered, went missing or left.
    Instance {
        check: String,
        color: Option<Color>,
        instance: String,
        change: InstanceChange,
        reason: String,
    },
    /// A service tracks `max_instances` instances and refused a heartbeat
    /// from a new instance id: once per episode (until it is below the cap).
    InstanceCapReached {
        check: String,
        color: Option<Color>,
        /// The first instance id refused in the episode.
        instance: String,
        max: usize,
    },
    /// A check was added, changed, restored or retired by the configuration.
    Config { check: String, reason: String },
    /// A target of the checker or the prober failed `fail_after` rounds in
    /// a row (`down`), or answers well again.
    Target {
        observer: String,
        target: Target,
        color: Option<Color>,
        down: bool,
        reason: String,
    },
    /// A successful switch (manual, or automatic other than a rollback).
    Toggle {
        from: Option<Color>,
        to: Color,
        automatic: bool,
        why: String,
        took_ms: u64,
    },
    /// A switch that failed (the old color stays live, except after `verify`).
    SwitchFailed {
        from: Option<Color>,
        to: Color,
        automatic: bool,
        error: String,
    },
    /// An automatic rollback that switched.
    Rollback {
        from: Color,
        to: Color,
        reason: String,
        took_ms: u64,
    },
    /// A rollback the policy considered and refused, with the rule.
    RollbackRefused {
        from: Option<Color>,
        to: Color,
        rule: Rule,
        reason: String,
    },
    /// What `mode = "dry-run"` would have done.
    RollbackDryRun {
        from: Option<Color>,
        to: Color,
        reason: String,
    },
    /// An operator re-armed (`true`) or disabled automatic rollback.
    RollbackArmed { armed: bool, reason: String },
    Deploy {
        color: Color,
        outcome: Outcome,
        reason: String,
    },
    Scale {
        color: Color,
        ok: bool,
        reason: String,
    },
    /// An operator silenced a target.
    Silence { target: String, reason: String },
    /// A check is still down (`notify.repeat`).
    Reminder {
        check: String,
        color: Option<Color>,
        down_since: DateTime<Utc>,
        reason: String,
    },
    /// A check flips too often: notifications pause until it settles.
    Flapping {
        check: String,
        color: Option<Color>,
        reason: String,
    },
    /// A channel refused a message for good.
    DeliveryFailed {
        channel: String,
        notification: i64,
        reason: String,
    },
    /// The scheduled summary of every check.
    AllIsWell {
        members: Vec<Member>,
        reason: String,
    },
}

/// An event flattened into the `events` table's columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Columns {
    pub check: Option<String>,
    pub kind: &'static str,
    pub from_state: Option<State>,
    pub to_state: Option<State>,
    pub instance: Option<String>,
    pub color: Option<Color>,
    pub reason: String,
    pub down_for: Option<Duration>,
    pub data: Option<serde_json::Value>,
}

fn color_text(c: Option<Color>) -> &'static str {
    c.map_or("undefined", Color::as_str)
}

impl Event {
    pub fn new(at: DateTime<Utc>, kind: EventKind) -> Event {
        Event { at, kind }
    }

    /// The check (or pseudo-check: `proxy`, `rollback`, `observer:target`,
    /// a channel) the event is about; silences and the API match on it.
    pub fn check(&self) -> String {
        match &self.kind {
            EventKind::State { check, .. }
            | EventKind::Instance { check, .. }
            | EventKind::InstanceCapReached { check, .. }
            | EventKind::Config { check, .. }
            | EventKind::Reminder { check, .. }
            | EventKind::Flapping { check, .. } => check.clone(),
            EventKind::Target {
                observer, target, ..
            } => format!("{observer}:{target}"),
            EventKind::Toggle { .. }
            | EventKind::SwitchFailed { .. }
            | EventKind::Deploy { .. }
            | EventKind::Scale { .. } => PROXY.into(),
            EventKind::Rollback { .. }
            | EventKind::RollbackRefused { .. }
            | EventKind::RollbackDryRun { .. }
            | EventKind::RollbackArmed { .. } => ROLLBACK.into(),
            EventKind::Silence { target, .. } => target.clone(),
            EventKind::DeliveryFailed { channel, .. } => channel.clone(),
            EventKind::AllIsWell { .. } => "all-is-well".into(),
        }
    }

    /// The color the event is about, if any.
    pub fn color(&self) -> Option<Color> {
        match &self.kind {
            EventKind::State { color, .. }
            | EventKind::Instance { color, .. }
            | EventKind::InstanceCapReached { color, .. }
            | EventKind::Target { color, .. }
            | EventKind::Reminder { color, .. }
            | EventKind::Flapping { color, .. } => *color,
            EventKind::Deploy { color, .. } | EventKind::Scale { color, .. } => Some(*color),
            EventKind::Config { .. }
            | EventKind::Toggle { .. }
            | EventKind::SwitchFailed { .. }
            | EventKind::Rollback { .. }
            | EventKind::RollbackRefused { .. }
            | EventKind::RollbackDryRun { .. }
            | EventKind::RollbackArmed { .. }
            | EventKind::Silence { .. }
            | EventKind::DeliveryFailed { .. }
            | EventKind::AllIsWell { .. } => None,
        }
    }

    /// Why, in words (the `reason` column and the notification's reason).
    pub fn reason(&self) -> String {
        match &self.kind {
            EventKind::State { reason, .. }
            | EventKind::Instance { reason, .. }
            | EventKind::Config { reason, .. }
            | EventKind::Target { reason, .. }
            | EventKind::Rollback { reason, .. }
            | EventKind::RollbackRefused { reason, .. }
            | EventKind::RollbackDryRun { reason, .. }
            | EventKind::RollbackArmed { reason, .. }
            | EventKind::Deploy { reason, .. }
            | EventKind::Scale { reason, .. }
            | EventKind::Silence { reason, .. }
            | EventKind::Flapping { reason, .. }
            | EventKind::DeliveryFailed { reason, .. }
            | EventKind::AllIsWell { reason, .. } => reason.clone(),
            EventKind::Toggle {
                from,
                to,
                automatic,
                ..
            } => format!(
                "{} -> {to} ({})",
                color_text(*from),
                if *automatic { "automatic" } else { "manual" }
            ),
            EventKind::SwitchFailed { error, .. } => error.clone(),
            EventKind::InstanceCapReached { instance, max, .. } => format!(
                "already tracks {max} instances (max_instances = {max}): \
                 heartbeats from new instance ids, first {instance}, are refused \
                 until one leaves or goes missing"
            ),
            EventKind::Reminder {
                down_since, reason, ..
            } => format!(
                "still down since {}: {reason}",
                down_since.format("%Y-%m-%d %H:%M:%SZ")
            ),
        }
    }

    /// A down or a recovery of a check or a target: what flapping counts.
    pub fn flip(&self) -> Option<bool> {
        match &self.kind {
            EventKind::State { from, to, .. } => match (from, to) {
                (_, State::Down) => Some(true),
                (State::Down, State::Up) => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// The stored form.
    pub fn columns(&self) -> Columns {
        let mut c = Columns {
            check: Some(self.check()),
            kind: "",
            from_state: None,
            to_state: None,
            instance: None,
            color: self.color(),
            reason: self.reason(),
            down_for: None,
            data: None,
        };
        c.kind = match &self.kind {
            EventKind::State {
                from, to, down_for, ..
            } => {
                c.from_state = Some(*from);
                c.to_state = Some(*to);
                c.down_for = *down_for;
                "state"
            }
            EventKind::Instance {
                instance, change, ..
            } => {
                c.instance = Some(instance.clone());
                c.data = Some(json!({ "change": change.as_str() }));
                "instance"
            }
            EventKind::InstanceCapReached { instance, max, .. } => {
                c.instance = Some(instance.clone());
                c.data = Some(json!({ "max_instances": max }));
                "instance_cap"
            }
            EventKind::Config { .. } => "config",
            EventKind::Target {
                observer,
                target,
                down,
                ..
            } => {
                c.from_state = Some(if *down { State::Up } else { State::Down });
                c.to_state = Some(if *down { State::Down } else { State::Up });
                c.data = Some(json!({ "observer": observer, "target": target }));
                "target"
            }
            EventKind::Toggle {
                from,
                to,
                automatic,
                why,
                took_ms,
            } => {
                c.data = Some(json!({
                    "from": from, "to": to, "automatic": automatic, "why": why, "took_ms": took_ms,
                }));
                "toggle"
            }
            EventKind::SwitchFailed {
                from,
                to,
                automatic,
                ..
            } => {
                c.data = Some(json!({ "from": from, "to": to, "automatic": automatic }));
                "switch_failed"
            }
            EventKind::Rollback {
                from, to, took_ms, ..
            } => {
                c.data = Some(json!({ "from": from, "to": to, "took_ms": took_ms }));
                "rollback"
            }
            EventKind::RollbackRefused { from, to, rule, .. } => {
                c.data = Some(json!({ "from": from, "to": to, "rule": rule }));
                "rollback_refused"
            }
            EventKind::RollbackDryRun { from, to, .. } => {
                c.data = Some(json!({ "from": from, "to": to }));
                "rollback_dry_run"
            }
            EventKind::RollbackArmed { armed: true, .. } => "rollback_rearm",
            EventKind::RollbackArmed { armed: false, .. } => "rollback_disable",
            EventKind::Deploy { outcome, .. } => match outcome {
                Outcome::Done => "deploy",
                Outcome::Refused => "deploy_refused",
                Outcome::Failed => "deploy_failed",
            },
            EventKind::Scale { ok: true, .. } => "scale",
            EventKind::Scale { ok: false, .. } => "scale_failed",
            EventKind::Silence { .. } => "silence",
            EventKind::Reminder { down_since, .. } => {
                c.to_state = Some(State::Down);
                c.down_for = (self.at - *down_since).to_std().ok();
                "reminder"
            }
            EventKind::Flapping { .. } => "flapping",
            EventKind::DeliveryFailed {
                channel,
                notification,
                ..
            } => {
                c.data = Some(json!({ "channel": channel, "notification": notification }));
                "delivery_failed"
            }
            EventKind::AllIsWell { members, .. } => {
                c.data = Some(json!({ "members": members }));
                "all_is_well"
            }
        };
        c
    }

    /// The daily log's line, in the spirit of the original script (the log
    /// writer adds the `[HH:MM:SS] - ` prefix). `None`: not logged.
    pub fn log_line(&self) -> Option<String> {
        let reason = self.reason();
        Some(match &self.kind {
            EventKind::State {
                check,
                from,
                to,
                down_for,
                ..
            } => match (from, to) {
                (_, State::Down) => logfile::alert_line(check, "DOWN", &reason),
                (State::Down, State::Up) => {
                    logfile::recovered_line(check, down_for.unwrap_or_default())
                }
                (_, State::Late) => format!("WARNING: {check} LATE: {reason}"),
                (from, to) => format!("INFO: {check} {from} -> {to}: {reason}"),
            },
            EventKind::Instance {
                check,
                instance,
                change,
                ..
            } => {
                let level = match change {
                    InstanceChange::Missing => "ALERT",
                    InstanceChange::Failing => "WARNING",
                    InstanceChange::Joined | InstanceChange::Recovered | InstanceChange::Left => {
                        "INFO"
                    }
                };
                format!(
                    "{level}: {check} instance {instance} {}: {reason}",
                    change.as_str()
                )
            }
            EventKind::InstanceCapReached { check, .. } => {
                format!("WARNING: {check} INSTANCE CAP: {reason}")
            }
            EventKind::Config { check, .. } => format!("CONFIG: {check}: {reason}"),
            EventKind::Target { .. } => {
                format!("TARGET: {}: {reason}", self.check())
            }
            EventKind::Toggle { .. } => format!("TOGGLE: {reason}"),
            EventKind::SwitchFailed { from, to, .. } => format!(
                "ALERT: SWITCH FAILED: {} -> {to}: {reason}",
                color_text(*from)
            ),
            EventKind::Rollback { from, to, .. } => logfile::rollback_line(*from, *to, &reason),
            EventKind::RollbackRefused { .. } => format!("WARNING: ROLLBACK REFUSED: {reason}"),
            EventKind::RollbackDryRun { from, to, .. } => format!(
                "WARNING: ROLLBACK (dry-run, nothing changed): {} -> {to}: {reason}",
                color_text(*from)
            ),
            EventKind::RollbackArmed { armed: true, .. } => {
                format!("ROLLBACK REARMED: {reason}")
            }
            EventKind::RollbackArmed { armed: false, .. } => {
                format!("ROLLBACK DISABLED: {reason}")
            }
            EventKind::Deploy { outcome, .. } => match outcome {
                Outcome::Done => format!("DEPLOY: {reason}"),
                Outcome::Refused => format!("DEPLOY REFUSED: {reason}"),
                Outcome::Failed => format!("ALERT: DEPLOY FAILED: {reason}"),
            },
            EventKind::Scale { ok: true, .. } => format!("SCALE: {reason}"),
            EventKind::Scale { ok: false, .. } => format!("ALERT: SCALE FAILED: {reason}"),
            EventKind::Silence { target, .. } => format!("SILENCE: {target}: {reason}"),
            EventKind::Reminder { check, .. } => format!("REMINDER: {check}: {reason}"),
            EventKind::Flapping { check, .. } => format!("FLAPPING: {check}: {reason}"),
            EventKind::DeliveryFailed { channel, .. } => {
                format!("DELIVERY_FAILED: {channel}: {reason}")
            }
            EventKind::AllIsWell { .. } => format!("ALL_IS_WELL: all-is-well: {reason}"),
        })
    }
}

/// `1m30s` rounded to whole seconds, as events name durations.
pub fn whole_seconds(d: Duration) -> String {
    format_duration(Duration::from_secs(d.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        "2026-11-26T14:03:07Z".parse().unwrap()
    }

    #[test]
    fn state_lines_follow_the_contract() {
        let down = Event::new(
            at(),
            EventKind::State {
                check: "blue".into(),
                color: Some(Color::Blue),
                from: State::Late,
                to: State::Down,
                reason: "no heartbeat for 12s (period 5s, grace 5s)".into(),
                down_for: None,
            },
        );
        assert_eq!(
            down.log_line().unwrap(),
            "ALERT: blue DOWN: no heartbeat for 12s (period 5s, grace 5s)"
        );
        let up = Event::new(
            at(),
            EventKind::State {
                check: "blue".into(),
                color: Some(Color::Blue),
                from: State::Down,
                to: State::Up,
                reason: "heartbeat".into(),
                down_for: Some(Duration::from_secs(90)),
            },
        );
        assert_eq!(up.log_line().unwrap(), "RECOVERED: blue UP after 1m30s");
        assert_eq!(down.flip(), Some(true));
        assert_eq!(up.flip(), Some(false));
    }

    #[test]
    fn control_events_have_the_contract_log_lines() {
        let t = Event::new(
            at(),
            EventKind::Toggle {
                from: Some(Color::Blue),
                to: Color::Green,
                automatic: false,
                why: "operator".into(),
                took_ms: 400,
            },
        );
        assert_eq!(t.log_line().unwrap(), "TOGGLE: blue -> green (manual)");
        let r = Event::new(
            at(),
            EventKind::Rollback {
                from: Color::Green,
                to: Color::Blue,
                reason: "green failed 43s after toggle (agents: no heartbeat, checker: 502)".into(),
                took_ms: 500,
            },
        );
        assert_eq!(
            r.log_line().unwrap(),
            "ROLLBACK: green -> blue: green failed 43s after toggle (agents: no heartbeat, checker: 502)"
        );
        let f = Event::new(
            at(),
            EventKind::SwitchFailed {
                from: Some(Color::Blue),
                to: Color::Green,
                automatic: false,
                error: "nginx -t failed".into(),
            },
        );
        assert_eq!(
            f.log_line().unwrap(),
            "ALERT: SWITCH FAILED: blue -> green: nginx -t failed"
        );
        let refused = Event::new(
            at(),
            EventKind::RollbackRefused {
                from: Some(Color::Green),
                to: Color::Blue,
                rule: Rule::TargetUnhealthy,
                reason: "blue is not healthy".into(),
            },
        );
        assert_eq!(
            refused.log_line().unwrap(),
            "WARNING: ROLLBACK REFUSED: blue is not healthy"
        );
        assert_eq!(refused.columns().data.unwrap()["rule"], "target_unhealthy");
        assert_eq!(refused.columns().check.as_deref(), Some(ROLLBACK));
    }

    #[test]
    fn stored_columns_keep_the_api_shape() {
        let target = Event::new(
            at(),
            EventKind::Target {
                observer: "checker".into(),
                target: Target::BlueDirect,
                color: Some(Color::Blue),
                down: true,
                reason: "GET /ping returned 502 (3 failed rounds in a row)".into(),
            },
        );
        let c = target.columns();
        assert_eq!(c.kind, "target");
        assert_eq!(c.check.as_deref(), Some("checker:blue-direct"));
        assert_eq!(
            (c.from_state, c.to_state),
            (Some(State::Up), Some(State::Down))
        );
        assert_eq!(c.color, Some(Color::Blue));
        let reminder = Event::new(
            at(),
            EventKind::Reminder {
                check: "blue".into(),
                color: Some(Color::Blue),
                down_since: at() - chrono::TimeDelta::minutes(61),
                reason: "no heartbeat".into(),
            },
        );
        let c = reminder.columns();
        assert_eq!(c.kind, "reminder");
        assert_eq!(c.down_for, Some(Duration::from_secs(61 * 60)));
        assert!(c.reason.starts_with("still down since"), "{}", c.reason);
    }
}
