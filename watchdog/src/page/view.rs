//! The status page's view model: what an operator sees, built by one pure
//! function ([`build`]) from the facts gathered once (`super::Facts`) and an
//! explicit `now`. The HTML page, the live stream and `bgw-watchdog status`
//! all render a [`View`], so they show the same facts.
//!
//! Bounded by construction: every string is cut ([`cut`]), checks come in
//! pages of [`PAGE_SIZE`], a check lists at most [`MAX_INSTANCES`]
//! instances, the timeline at most [`TIMELINE`] events, a sparkline at most
//! [`SPARK_POINTS`] points.

use crate::ledger::{RollbackState, ToggleRecord};
use crate::proxy::LiveState;
use crate::reports::TargetState;
use crate::rollback::{Mode, RollbackSettings};
use crate::rollup::{self, Segment};
use crate::store::{CheckRow, Delivery, EventRow};
use bgw_wire::{format_duration, Color};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// Checks per page (`?page=`).
pub const PAGE_SIZE: usize = 50;
/// Instances listed under a check (the rest are counted).
pub const MAX_INSTANCES: usize = 20;
/// Events on one page of the timeline.
pub const TIMELINE: usize = 40;
/// Points of a latency sparkline (one per minute of the last hour).
pub const SPARK_POINTS: usize = 60;
/// The longest reason shown.
pub const REASON_CHARS: usize = 160;
/// The longest name (check, instance, version, observer) shown.
pub const NAME_CHARS: usize = 48;

/// How a state or an event looks: the CSS class and the terminal colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tone {
    Ok,
    Warn,
    Bad,
    Info,
    Muted,
}

impl Tone {
    pub fn as_str(self) -> &'static str {
        match self {
            Tone::Ok => "ok",
            Tone::Warn => "warn",
            Tone::Bad => "bad",
            Tone::Info => "info",
            Tone::Muted => "muted",
        }
    }

    /// The tone of a check state name.
    pub fn of_state(state: &str) -> Tone {
        match state {
            "up" => Tone::Ok,
            "late" => Tone::Warn,
            "down" => Tone::Bad,
            _ => Tone::Muted,
        }
    }

    /// Worst first, for sorting checks.
    fn rank(self) -> u8 {
        match self {
            Tone::Bad => 0,
            Tone::Warn => 1,
            Tone::Info => 2,
            Tone::Ok => 3,
            Tone::Muted => 4,
        }
    }
}

/// Everything on the page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct View {
    pub now: DateTime<Utc>,
    pub banner: Banner,
    pub summary: Summary,
    pub checks: Vec<CheckView>,
    pub paging: Paging,
    pub targets: Vec<TargetView>,
    pub timeline: Vec<TimelineItem>,
    pub timeline_page: usize,
    pub timeline_more: bool,
}

/// How many checks are in each tone.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub total: usize,
    pub up: usize,
    pub late: usize,
    pub down: usize,
    pub other: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Paging {
    pub page: usize,
    pub pages: usize,
    pub total: usize,
}

/// The blue/green state at the top of the page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Banner {
    pub live: Option<Color>,
    /// Why no color is live (missing or invalid live file).
    pub live_error: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub since_ago: Option<String>,
    pub idle: Option<Color>,
    pub idle_health: Health,
    /// Versions each color runs (blue, green), from the agents' instances.
    pub versions: [ColorSide; 2],
    pub rollback: RollbackView,
    pub last_switch: Option<SwitchView>,
}

/// One color: its services' state and the versions its instances run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColorSide {
    pub color: Color,
    pub health: Health,
    pub versions: Vec<String>,
}

/// A color's health: the worst of its service checks and its direct probe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    pub tone: Tone,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RollbackStatus {
    Armed,
    Latched,
    DryRun,
    Disabled,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RollbackView {
    pub status: RollbackStatus,
    pub tone: Tone,
    /// One line: "armed", "latched: <reason>", "disabled by the operator"...
    pub text: String,
    pub window_remaining: Option<String>,
    pub cooldown_remaining: Option<String>,
    pub rules: String,
}

/// The last switch of the live color.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwitchView {
    pub at: DateTime<Utc>,
    pub ago: String,
    pub from: Option<Color>,
    pub to: Color,
    /// "automatic rollback" or "operator".
    pub by: String,
    pub reason: String,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckView {
    pub name: String,
    pub kind: String,
    pub color: Option<String>,
    pub state: String,
    pub tone: Tone,
    pub for_: String,
    pub last_signal_ago: Option<String>,
    /// "in 4s" or "overdue 2s".
    pub deadline_in: Option<String>,
    pub instances_up: usize,
    pub instances_total: usize,
    pub instances: Vec<InstanceView>,
    pub reason: String,
    /// Uptime over 24 h, 7 d, 30 d (percent), when anything is known.
    pub uptime: [Option<f64>; 3],
    /// The last 24 hours, oldest first.
    pub history: Vec<Segment>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceView {
    pub name: String,
    pub version: Option<String>,
    pub status: String,
    pub tone: Tone,
    pub last_seen_ago: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetView {
    pub observer: String,
    pub target: String,
    pub ok: bool,
    pub color: Option<Color>,
    pub latency_ms: Option<u64>,
    pub error: Option<String>,
    pub ago: String,
    pub threshold_ms: u64,
    pub spark: Spark,
}

/// A latency sparkline of the last hour: points in a 0..=100 × 0..=20
/// box (x: time, y: latency, the top being the larger of the threshold and
/// the highest latency), with the threshold's height.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Spark {
    pub points: Vec<(u16, u16)>,
    /// x of the minutes that saw a failure.
    pub fails: Vec<u16>,
    pub threshold_y: u16,
    pub max_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimelineItem {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub ago: String,
    pub kind: String,
    pub tone: Tone,
    pub text: String,
    /// Each notification of the event: (channel, delivery state).
    pub deliveries: Vec<(String, String)>,
}

/// A latency sample of a probe target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub latency_ms: Option<u64>,
    pub ok: bool,
}

/// Everything [`build`] reads.
pub struct Input<'a> {
    pub now: DateTime<Utc>,
    pub checks: &'a [CheckRow],
    pub live: &'a LiveState,
    pub last_toggle: Option<&'a ToggleRecord>,
    pub rollback_state: &'a RollbackState,
    pub rollback: &'a RollbackSettings,
    pub targets: &'a [TargetState],
    pub latency: &'a HashMap<String, Vec<Sample>>,
    pub threshold_ms: u64,
    pub events: &'a [EventRow],
    pub deliveries: &'a [Delivery],
    pub uptime: &'a HashMap<String, [(i64, i64); 3]>,
    pub hours: &'a HashMap<String, rollup::Hours>,
    /// 1-based.
    pub page: usize,
    pub timeline_page: usize,
    pub timeline_more: bool,
}

/// Cuts `s` to `n` characters, with an ellipsis when it was longer.
pub fn cut(s: &str, n: usize) -> String {
    let mut chars = s.chars();
    let head: String = chars.by_ref().take(n).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// "3s", "4m10s", "2h5m": seconds at most, never negative.
pub fn ago(d: chrono::TimeDelta) -> String {
    let secs = d.num_seconds().max(0) as u64;
    let secs = if secs >= 3600 { secs - secs % 60 } else { secs };
    format_duration(Duration::from_secs(secs))
}

fn remaining(now: DateTime<Utc>, since: DateTime<Utc>, total: Duration) -> Option<String> {
    let elapsed = (now - since).to_std().unwrap_or_default();
    total
        .checked_sub(elapsed)
        .filter(|d| d.as_secs() > 0)
        .map(|d| format_duration(Duration::from_secs(d.as_secs())))
}

/// The rollback's state as one line, in order of precedence: disabled
/// (by the configuration or an operator), latched (after an automatic
/// rollback), dry-run, armed.
pub fn rollback_view(
    s: &RollbackSettings,
    state: &RollbackState,
    last_toggle: Option<&ToggleRecord>,
    now: DateTime<Utc>,
) -> RollbackView {
    let (status, tone, text) =
        if !s.enabled {
            (
                RollbackStatus::Disabled,
                Tone::Muted,
                "disabled by the configuration (rollback.enabled = false)".to_string(),
            )
        } else if state.disabled {
            (
                RollbackStatus::Disabled,
                Tone::Warn,
                "disabled by an operator (bgw-watchdog rollback rearm to undo)".to_string(),
            )
        } else if state.latched {
            (
                RollbackStatus::Latched,
                Tone::Bad,
                format!(
                "latched after an automatic rollback{}: {} (toggle or rollback rearm to release)",
                state
                    .latched_at
                    .map(|t| format!(" {} ago", ago(now - t)))
                    .unwrap_or_default(),
                cut(
                    state.latch_reason.as_deref().unwrap_or("no reason recorded"),
                    REASON_CHARS
                )
            ),
            )
        } else if s.mode == Mode::DryRun {
            (
                RollbackStatus::DryRun,
                Tone::Info,
                "dry-run: decisions are logged and alerted, nothing is switched".to_string(),
            )
        } else {
            (RollbackStatus::Armed, Tone::Ok, "armed".to_string())
        };
    let window_remaining = last_toggle.and_then(|t| remaining(now, t.at, s.window.0));
    let cooldown_remaining = state
        .last_automatic_at
        .and_then(|t| remaining(now, t, s.cooldown.0));
    RollbackView {
        status,
        tone,
        text,
        window_remaining,
        cooldown_remaining,
        rules: format!(
            "window {}, cooldown {}, quorum {}, fail_after {}",
            s.window, s.cooldown, s.quorum, s.fail_after
        ),
    }
}

fn instance_up(i: &crate::store::InstanceRow, now: DateTime<Utc>) -> bool {
    i.status == "ok" && i.deadline > now
}

fn check_view(c: &CheckRow, input: &Input) -> CheckView {
    let now = input.now;
    let mut instances: Vec<&crate::store::InstanceRow> = c.instances.iter().collect();
    instances.sort_by_key(|i| std::cmp::Reverse(i.last_seen));
    let up = c.instances.iter().filter(|i| instance_up(i, now)).count();
    let deadline_in = c.next_deadline.map(|d| {
        if d >= now {
            format!("in {}", ago(d - now))
        } else {
            format!("overdue {}", ago(now - d))
        }
    });
    let uptime = input
        .uptime
        .get(&c.name)
        .map(|w| w.map(|(u, d)| rollup::ratio(u, d).map(|r| r * 100.0)))
        .unwrap_or([None; 3]);
    let empty = rollup::Hours::new();
    CheckView {
        name: cut(&c.name, NAME_CHARS),
        kind: c.kind.clone(),
        color: c.color.clone(),
        state: c.state.clone(),
        tone: Tone::of_state(&c.state),
        for_: ago(now - c.since),
        last_signal_ago: c.last_signal.map(|t| ago(now - t)),
        deadline_in,
        instances_up: up,
        instances_total: c.instances.len(),
        instances: instances
            .into_iter()
            .take(MAX_INSTANCES)
            .map(|i| InstanceView {
                name: cut(&i.instance, NAME_CHARS),
                version: i.version.as_deref().map(|v| cut(v, NAME_CHARS)),
                status: if instance_up(i, now) || i.status != "ok" {
                    i.status.clone()
                } else {
                    "missing".into()
                },
                tone: if instance_up(i, now) {
                    Tone::Ok
                } else if i.status == "stopping" {
                    Tone::Muted
                } else {
                    Tone::Bad
                },
                last_seen_ago: ago(now - i.last_seen),
            })
            .collect(),
        reason: cut(&c.reason, REASON_CHARS),
        uptime,
        history: rollup::history(input.hours.get(&c.name).unwrap_or(&empty), now, 24),
    }
}

/// The health of one color: its service checks and its direct probe.
fn color_side(color: Color, input: &Input) -> ColorSide {
    let now = input.now;
    let services: Vec<&CheckRow> = input
        .checks
        .iter()
        .filter(|c| c.kind == "service" && c.color.as_deref() == Some(color.as_str()))
        .collect();
    let mut versions: Vec<String> = input
        .checks
        .iter()
        .flat_map(|c| c.instances.iter().map(move |i| (c, i)))
        .filter(|(c, i)| {
            i.color.as_deref().or(c.color.as_deref()) == Some(color.as_str()) && instance_up(i, now)
        })
        .filter_map(|(_, i)| i.version.as_deref().map(|v| cut(v, NAME_CHARS)))
        .collect();
    versions.sort();
    versions.dedup();
    versions.truncate(5);
    let direct = input
        .targets
        .iter()
        .find(|t| t.target.as_str() == format!("{color}-direct"));
    let mut tone = services
        .iter()
        .map(|c| Tone::of_state(&c.state))
        .min_by_key(|t| t.rank())
        .unwrap_or(Tone::Muted);
    let mut parts: Vec<String> = services
        .iter()
        .take(3)
        .map(|c| {
            let up = c.instances.iter().filter(|i| instance_up(i, now)).count();
            format!(
                "{} {} ({up}/{} instances)",
                cut(&c.name, NAME_CHARS),
                c.state,
                c.instances.len()
            )
        })
        .collect();
    if let Some(t) = direct {
        if !t.ok {
            tone = Tone::Bad;
        } else if services.is_empty() {
            tone = Tone::Ok;
        }
        parts.push(match (t.ok, t.last_latency_ms) {
            (true, Some(ms)) => format!("{color}-direct ok {ms} ms"),
            (true, None) => format!("{color}-direct ok"),
            (false, _) => format!(
                "{color}-direct failing: {}",
                cut(t.last_error.as_deref().unwrap_or("error"), 80)
            ),
        });
    }
    if parts.is_empty() {
        parts.push("no service check or probe watches it".into());
    }
    ColorSide {
        color,
        health: Health {
            tone,
            text: parts.join("; "),
        },
        versions,
    }
}

fn spark(samples: &[Sample], now: DateTime<Utc>, threshold_ms: u64) -> Spark {
    const HEIGHT: u64 = 20;
    let hour = chrono::TimeDelta::hours(1);
    let mut buckets: Vec<(Option<u64>, bool)> = vec![(None, false); SPARK_POINTS];
    for s in samples.iter().filter(|s| s.at > now - hour && s.at <= now) {
        let age = (now - s.at).num_milliseconds().max(0) as usize;
        let idx = (SPARK_POINTS - 1).saturating_sub(age * SPARK_POINTS / 3_600_000);
        let b = &mut buckets[idx];
        if let Some(ms) = s.latency_ms {
            b.0 = Some(b.0.map_or(ms, |m| m.max(ms)));
        }
        b.1 |= !s.ok;
    }
    let max_ms = buckets
        .iter()
        .filter_map(|b| b.0)
        .max()
        .unwrap_or(0)
        .max(threshold_ms)
        .max(1);
    let y = |ms: u64| (HEIGHT - (ms.min(max_ms) * HEIGHT / max_ms)) as u16;
    let x = |i: usize| (i * 100 / (SPARK_POINTS - 1)) as u16;
    Spark {
        points: buckets
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.0.map(|ms| (x(i), y(ms))))
            .collect(),
        fails: buckets
            .iter()
            .enumerate()
            .filter(|(_, b)| b.1)
            .map(|(i, _)| x(i))
            .collect(),
        threshold_y: y(threshold_ms),
        max_ms,
    }
}

fn data_str<'a>(e: &'a EventRow, key: &str) -> Option<&'a str> {
    e.data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|v| v.as_str())
}

/// What a timeline line says about an event, and its tone.
pub fn describe(e: &EventRow) -> (Tone, String) {
    let check = e
        .check
        .as_deref()
        .map(|c| cut(c, NAME_CHARS))
        .unwrap_or_default();
    let reason = cut(&e.reason, REASON_CHARS);
    let arrow = |e: &EventRow| {
        format!(
            "{} → {}",
            data_str(e, "from").unwrap_or("none"),
            data_str(e, "to").unwrap_or("?")
        )
    };
    match e.kind.as_str() {
        "state" => {
            let to = e.to.as_deref().unwrap_or("?");
            (
                Tone::of_state(to),
                format!(
                    "{check} {} → {to}: {reason}",
                    e.from.as_deref().unwrap_or("?")
                ),
            )
        }
        "instance" => (
            Tone::Muted,
            format!(
                "{check}/{}: {reason}",
                cut(e.instance.as_deref().unwrap_or("?"), NAME_CHARS)
            ),
        ),
        "target" => {
            let down = e.to.as_deref() == Some("down");
            (
                if down { Tone::Bad } else { Tone::Ok },
                format!(
                    "{} {} {}: {reason}",
                    cut(data_str(e, "observer").unwrap_or("?"), NAME_CHARS),
                    data_str(e, "target").unwrap_or("?"),
                    if down { "failing" } else { "ok again" }
                ),
            )
        }
        "toggle" => {
            let automatic = e
                .data
                .as_ref()
                .and_then(|d| d.get("automatic"))
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            (
                Tone::Info,
                format!(
                    "toggle {} by {}: {}",
                    arrow(e),
                    if automatic {
                        "the watchdog"
                    } else {
                        "an operator"
                    },
                    cut(data_str(e, "why").unwrap_or(&e.reason), REASON_CHARS)
                ),
            )
        }
        "switch_failed" => (Tone::Bad, format!("switch {} failed: {reason}", arrow(e))),
        "rollback" => (Tone::Warn, format!("ROLLBACK {}: {reason}", arrow(e))),
        "rollback_refused" => (
            Tone::Warn,
            format!(
                "rollback {} refused ({}): {reason}",
                arrow(e),
                data_str(e, "rule").unwrap_or("?")
            ),
        ),
        "rollback_dry_run" => (
            Tone::Info,
            format!("dry-run: would roll back {}: {reason}", arrow(e)),
        ),
        "rollback_rearm" | "rollback_disable" => (Tone::Info, format!("{}: {reason}", e.kind)),
        "reminder" => (Tone::Bad, format!("{check} still down: {reason}")),
        "flapping" => (Tone::Warn, format!("{check} flapping: {reason}")),
        k if k.ends_with("failed") => (Tone::Bad, format!("{k}: {check} {reason}")),
        k => (
            Tone::Muted,
            format!("{}: {check} {reason}", cut(k, NAME_CHARS)),
        ),
    }
}

/// Builds the page's view from the gathered facts.
pub fn build(input: &Input) -> View {
    let now = input.now;
    let (live, live_error) = match input.live {
        LiveState::Live(c) => (Some(*c), None),
        LiveState::Missing => (
            None,
            Some("no color is live yet (the live file does not exist)".into()),
        ),
        LiveState::Invalid(why) => (
            None,
            Some(cut(
                &format!("the live color is undefined: {why}"),
                REASON_CHARS,
            )),
        ),
    };
    let since = live.and_then(|c| {
        input
            .last_toggle
            .filter(|t| t.to == c && t.ok)
            .map(|t| t.at)
    });
    let sides = [Color::Blue, Color::Green].map(|c| color_side(c, input));
    let idle = live.map(Color::other);
    let idle_health = match idle {
        Some(c) => sides[(c == Color::Green) as usize].health.clone(),
        None => Health {
            tone: Tone::Muted,
            text: "no idle color: none is live".into(),
        },
    };
    let last_switch = input.last_toggle.map(|t| SwitchView {
        at: t.at,
        ago: ago(now - t.at),
        from: t.from,
        to: t.to,
        by: if t.automatic {
            "the watchdog (automatic)".into()
        } else {
            "an operator".into()
        },
        reason: cut(
            t.error.as_deref().filter(|_| !t.ok).unwrap_or(&t.reason),
            REASON_CHARS,
        ),
        ok: t.ok,
    });
    let mut summary = Summary {
        total: input.checks.len(),
        ..Summary::default()
    };
    for c in input.checks {
        match c.state.as_str() {
            "up" => summary.up += 1,
            "late" => summary.late += 1,
            "down" => summary.down += 1,
            _ => summary.other += 1,
        }
    }
    let mut order: Vec<&CheckRow> = input.checks.iter().collect();
    order.sort_by(|a, b| {
        (Tone::of_state(&a.state).rank(), &a.name).cmp(&(Tone::of_state(&b.state).rank(), &b.name))
    });
    let pages = input.checks.len().div_ceil(PAGE_SIZE).max(1);
    let page = input.page.clamp(1, pages);
    let checks = order
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|c| check_view(c, input))
        .collect();
    let empty = Vec::new();
    let targets = input
        .targets
        .iter()
        .take(32)
        .map(|t| {
            let key = format!("{}/{}", t.observer, t.target.as_str());
            TargetView {
                observer: cut(&t.observer, NAME_CHARS),
                target: t.target.as_str().to_string(),
                ok: t.ok,
                color: t.color,
                latency_ms: t.last_latency_ms,
                error: t.last_error.as_deref().map(|e| cut(e, REASON_CHARS)),
                ago: ago(now - t.last_at),
                threshold_ms: input.threshold_ms,
                spark: spark(
                    input.latency.get(&key).unwrap_or(&empty),
                    now,
                    input.threshold_ms,
                ),
            }
        })
        .collect();
    let mut by_event: HashMap<i64, Vec<(String, String)>> = HashMap::new();
    for d in input.deliveries {
        let list = by_event.entry(d.event_id).or_default();
        if list.len() < 8 {
            list.push((cut(&d.channel, NAME_CHARS), d.state.clone()));
        }
    }
    let timeline = input
        .events
        .iter()
        .take(TIMELINE)
        .map(|e| {
            let (tone, text) = describe(e);
            TimelineItem {
                id: e.id,
                at: e.at,
                ago: ago(now - e.at),
                kind: cut(&e.kind, NAME_CHARS),
                tone,
                text: cut(&text, REASON_CHARS + 80),
                deliveries: by_event.remove(&e.id).unwrap_or_default(),
            }
        })
        .collect();
    View {
        now,
        banner: Banner {
            live,
            live_error,
            since,
            since_ago: since.map(|s| ago(now - s)),
            idle,
            idle_health,
            versions: sides,
            rollback: rollback_view(input.rollback, input.rollback_state, input.last_toggle, now),
            last_switch,
        },
        summary,
        checks,
        paging: Paging {
            page,
            pages,
            total: input.checks.len(),
        },
        targets,
        timeline,
        timeline_page: input.timeline_page.max(1),
        timeline_more: input.timeline_more,
    }
}

#[cfg(test)]
mod tests;
