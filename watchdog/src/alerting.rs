//! Alerting policy, pure: which events notify ([`classify`]), how they
//! group, which silence applies, what a notification says and how a group
//! of them becomes one message. [`plan`] applies it to a batch of events
//! with the facts gathered once for the batch; the monitor writes the plan
//! in the events' own transaction and the outbox delivers it.

mod plan;

pub use plan::{plan, Facts, Memory, Plan, Planned};

use crate::event::{Event, EventKind};
use crate::rollback::Rule;
use bgw_notify::{Kind, Member, Notification};
use bgw_wire::{Color, HumanDuration};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The watchdog's `[notify]` policy knobs.
#[derive(Debug, Clone)]
pub struct Policy {
    /// While a check stays down, remind at this interval (`None`: never).
    pub repeat: Option<Duration>,
    /// More than this many state flips within `flap_window` is flapping.
    pub flap_threshold: u32,
    pub flap_window: Duration,
    /// The first message of a group (a color's downs, a color's recoveries)
    /// leaves at once; what follows within this window is gathered into one
    /// follow-up. At most one message per group and channel per window.
    pub group_window: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            repeat: Some(Duration::from_secs(3600)),
            flap_threshold: 4,
            flap_window: Duration::from_secs(600),
            group_window: Duration::from_secs(2),
        }
    }
}

/// The notification kind an event calls for, if any. Exhaustive: a new kind
/// of event does not compile until it is decided here.
pub fn classify(e: &Event) -> Option<Kind> {
    match &e.kind {
        EventKind::State { .. } => match e.flip()? {
            true => Some(Kind::Down),
            false => Some(Kind::Up),
        },
        EventKind::Target { down: true, .. } => Some(Kind::Down),
        EventKind::Target { down: false, .. } => Some(Kind::Up),
        EventKind::Reminder { .. } => Some(Kind::Reminder),
        EventKind::Flapping { .. } => Some(Kind::Flapping),
        EventKind::Rollback { .. } => Some(Kind::Rollback),
        // A refusal because the watchdog just started is the watchdog's own
        // restart, not news about the app: recorded and logged, not sent.
        EventKind::RollbackRefused {
            rule: Rule::JustStarted,
            ..
        } => None,
        EventKind::RollbackRefused { .. } | EventKind::RollbackDryRun { .. } => {
            Some(Kind::RollbackRefused)
        }
        EventKind::SwitchFailed { .. } => Some(Kind::SwitchFailed),
        EventKind::DeliveryFailed { .. } => Some(Kind::DeliveryFailed),
        EventKind::AllIsWell { .. } => Some(Kind::AllIsWell),
        // Not alerted: the service's own state alerts if it lacks instances;
        // the cap is a bound against floods, said once in the log.
        EventKind::Instance { .. }
        | EventKind::InstanceCapReached { .. }
        | EventKind::Config { .. }
        | EventKind::Toggle { .. }
        | EventKind::RollbackArmed { .. }
        | EventKind::Deploy { .. }
        | EventKind::Scale { .. }
        | EventKind::Silence { .. } => None,
    }
}

/// Notifications with the same key, on the same channel, share a group: a
/// whole color failing (its instances, its direct probe, the proxy serving
/// it) is one alert, its recovery another.
pub fn group_key(kind: Kind, e: &Event) -> Option<String> {
    let word = match kind {
        Kind::Down => "down",
        Kind::Up => "up",
        _ => return None,
    };
    e.color().map(|c| format!("{word}:{c}"))
}

/// An operator's silence: notifications about `target` (a check name, a
/// color, an observer or `observer:target`, `rollback`, `proxy`) are not
/// sent until `until`; the events still are recorded and logged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Silence {
    pub id: i64,
    pub target: String,
    pub until: DateTime<Utc>,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

impl Silence {
    /// Whether this silence covers `e` at `now`.
    pub fn covers(&self, e: &Event, now: DateTime<Utc>) -> bool {
        let check = e.check();
        self.until > now
            && (check == self.target
                || e.color().is_some_and(|c| c.as_str() == self.target)
                || check
                    .split_once(':')
                    .is_some_and(|(observer, _)| observer == self.target))
    }

    /// How a silenced event shows it.
    pub fn describe(&self) -> String {
        format!(
            "silence #{} on {} until {} ({})",
            self.id,
            self.target,
            self.until.format("%Y-%m-%d %H:%M:%SZ"),
            self.reason
        )
    }
}

/// The notification for event `e` (its id is filled in when stored).
pub fn notification(e: &Event, kind: Kind, live: Option<Color>) -> Notification {
    let columns = e.columns();
    let (from, to) = match &e.kind {
        EventKind::Rollback { from, to, .. } => (Some(*from), Some(*to)),
        EventKind::SwitchFailed { from, to, .. }
        | EventKind::RollbackRefused { from, to, .. }
        | EventKind::RollbackDryRun { from, to, .. } => (*from, Some(*to)),
        _ => (None, None),
    };
    let members = match &e.kind {
        EventKind::AllIsWell { members, .. } => members.clone(),
        _ => Vec::new(),
    };
    Notification {
        event_id: 0,
        kind,
        check: e.check(),
        color: e.color(),
        state: columns
            .to_state
            .map_or_else(|| columns.kind.to_string(), |s| s.as_str().to_string()),
        reason: columns.reason,
        at: e.at,
        down_for: columns.down_for.map(HumanDuration),
        live,
        from,
        to,
        members,
        source: "watchdog".into(),
    }
}

/// Folds notifications of one group into one message naming every member.
pub fn merge(mut group: Vec<Notification>) -> Notification {
    if group.len() == 1 {
        return group.pop().expect("one");
    }
    group.sort_by_key(|n| n.at);
    let first = group[0].clone();
    let members: Vec<Member> = group
        .iter()
        .map(|n| Member {
            check: n.check.clone(),
            color: n.color,
            state: n.state.clone(),
            reason: n.reason.clone(),
        })
        .collect();
    let what = first
        .color
        .map_or_else(|| first.check.clone(), |c| c.to_string());
    let verb = if first.kind == Kind::Up {
        "recovered"
    } else {
        "failing"
    };
    Notification {
        check: what.clone(),
        reason: format!(
            "{} checks of {what} {verb}: {}",
            members.len(),
            members
                .iter()
                .map(|m| format!("{} ({})", m.check, m.reason))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        down_for: group.iter().filter_map(|n| n.down_for).max(),
        members,
        ..first
    }
}

/// When the next reminder for a check down since `down_since` is due, given
/// the last reminder sent (if any).
pub fn next_reminder(
    repeat: Duration,
    down_since: DateTime<Utc>,
    last_reminder: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    let from = last_reminder.map_or(down_since, |r| r.max(down_since));
    from + repeat
}

#[cfg(test)]
mod tests;
