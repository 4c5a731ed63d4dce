//! Alerting policy, pure: which events notify, how they group, when a check
//! is flapping, which silence applies, and how a group of notifications
//! becomes one message. The outbox (`outbox.rs`) applies it inside the
//! events' own transaction and delivers the result.

use crate::state::State;
use crate::store::NewEvent;
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
    /// Notifications of one color's failure within this window are one message.
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

/// The notification kind an event calls for, if any.
pub fn classify(e: &NewEvent) -> Option<Kind> {
    match (e.kind, e.from_state, e.to_state) {
        ("state" | "target", _, Some(State::Down)) => Some(Kind::Down),
        ("state" | "target", Some(State::Down), Some(State::Up)) => Some(Kind::Up),
        ("reminder", _, _) => Some(Kind::Reminder),
        ("flapping", _, _) => Some(Kind::Flapping),
        ("rollback", _, _) => Some(Kind::Rollback),
        // A refusal because the watchdog just started is the watchdog's own
        // restart, not news about the app: recorded and logged, not sent.
        ("rollback_refused", _, _) if refused_rule(e) == Some("just_started") => None,
        ("rollback_refused" | "rollback_dry_run", _, _) => Some(Kind::RollbackRefused),
        ("switch_failed", _, _) => Some(Kind::SwitchFailed),
        ("delivery_failed", _, _) => Some(Kind::DeliveryFailed),
        ("all_is_well", _, _) => Some(Kind::AllIsWell),
        _ => None,
    }
}

fn refused_rule(e: &NewEvent) -> Option<&str> {
    e.data.as_ref()?.get("rule")?.as_str()
}

/// Whether flips of state count toward flapping (down and recovery).
pub fn is_flip(e: &NewEvent) -> bool {
    matches!(classify(e), Some(Kind::Down | Kind::Up)) && e.kind == "state"
}

/// Notifications with the same key, on the same channel, created within the
/// group window, go out as one message: a whole color failing (its
/// instances, its direct probe, the proxy serving it) is one alert.
pub fn group_key(kind: Kind, e: &NewEvent) -> Option<String> {
    match kind {
        Kind::Down | Kind::Up => e.color.as_ref().map(|c| format!("{}:{c}", kind_word(kind))),
        _ => None,
    }
}

fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Down => "down",
        Kind::Up => "up",
        _ => "other",
    }
}

/// Whether a silence on `target` (a check name or a color) covers `e`.
pub fn silence_covers(target: &str, e: &NewEvent) -> bool {
    e.check.as_deref() == Some(target)
        || e.color.as_deref() == Some(target)
        || e.check
            .as_deref()
            .and_then(|c| c.split_once(':'))
            .is_some_and(|(observer, _)| observer == target)
}

fn data_color(e: &NewEvent, key: &str) -> Option<Color> {
    e.data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse().ok())
}

/// The notification for event `id`.
pub fn notification(id: i64, e: &NewEvent, kind: Kind, live: Option<Color>) -> Notification {
    let members = e
        .data
        .as_ref()
        .and_then(|d| d.get("members"))
        .and_then(|m| serde_json::from_value::<Vec<Member>>(m.clone()).ok())
        .unwrap_or_default();
    Notification {
        event_id: id,
        kind,
        check: e.check.clone().unwrap_or_else(|| "watchdog".into()),
        color: e.color.as_deref().and_then(|c| c.parse().ok()),
        state: e
            .to_state
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| match kind {
                Kind::Reminder => "down".into(),
                _ => e.kind.to_string(),
            }),
        reason: e.reason.clone(),
        at: e.at,
        down_for: e.down_for.map(HumanDuration),
        live,
        from: data_color(e, "from"),
        to: data_color(e, "to"),
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
mod tests {
    use super::*;

    fn event(kind: &'static str, from: Option<State>, to: Option<State>) -> NewEvent {
        NewEvent {
            at: Utc::now(),
            check: Some("blue".into()),
            kind,
            from_state: from,
            to_state: to,
            color: Some("blue".into()),
            reason: "no heartbeat for 10s (period 5s, grace 5s)".into(),
            ..Default::default()
        }
    }

    #[test]
    fn down_and_recovery_notify_late_and_new_do_not() {
        assert_eq!(
            classify(&event("state", Some(State::Up), Some(State::Down))),
            Some(Kind::Down)
        );
        assert_eq!(
            classify(&event("state", Some(State::Down), Some(State::Up))),
            Some(Kind::Up)
        );
        assert_eq!(
            classify(&event("state", Some(State::Late), Some(State::Up))),
            None
        );
        assert_eq!(
            classify(&event("state", Some(State::New), Some(State::Up))),
            None
        );
        assert_eq!(
            classify(&event("state", Some(State::Up), Some(State::Late))),
            None
        );
        assert_eq!(classify(&event("instance", None, None)), None);
        assert_eq!(classify(&event("config", None, None)), None);
        assert_eq!(
            classify(&event("target", Some(State::Up), Some(State::Down))),
            Some(Kind::Down)
        );
        assert_eq!(
            classify(&event("rollback", None, None)),
            Some(Kind::Rollback)
        );
    }

    #[test]
    fn a_colors_failures_share_a_group_key() {
        let a = event("state", Some(State::Up), Some(State::Down));
        let mut b = event("target", Some(State::Up), Some(State::Down));
        b.check = Some("checker:blue-direct".into());
        assert_eq!(group_key(Kind::Down, &a), group_key(Kind::Down, &b));
        assert_ne!(group_key(Kind::Down, &a), group_key(Kind::Up, &a));
        let mut job = a.clone();
        job.color = None;
        assert_eq!(group_key(Kind::Down, &job), None);
    }

    #[test]
    fn silences_match_check_color_or_observer() {
        let mut e = event("target", Some(State::Up), Some(State::Down));
        e.check = Some("checker:live-proxy".into());
        assert!(silence_covers("blue", &e));
        assert!(silence_covers("checker", &e));
        assert!(silence_covers("checker:live-proxy", &e));
        assert!(!silence_covers("green", &e));
    }

    #[test]
    fn merged_messages_name_every_member() {
        let n1 = notification(
            1,
            &event("state", Some(State::Up), Some(State::Down)),
            Kind::Down,
            Some(Color::Blue),
        );
        let mut e2 = event("target", Some(State::Up), Some(State::Down));
        e2.check = Some("checker:blue-direct".into());
        e2.reason = "GET /ping returned 502".into();
        let n2 = notification(2, &e2, Kind::Down, Some(Color::Blue));
        let m = merge(vec![n1.clone(), n2]);
        assert_eq!(m.members.len(), 2);
        assert_eq!(m.check, "blue");
        assert_eq!(m.subject(), "[bgw] DOWN blue");
        assert!(
            m.reason
                .contains("checker:blue-direct (GET /ping returned 502)"),
            "{}",
            m.reason
        );
        assert_eq!(merge(vec![n1.clone()]), n1);
    }

    #[test]
    fn rollback_notifications_carry_from_and_to() {
        let mut e = event("rollback", None, None);
        e.data = Some(serde_json::json!({"from": "green", "to": "blue"}));
        let n = notification(7, &e, Kind::Rollback, Some(Color::Blue));
        assert_eq!(n.subject(), "[bgw] ROLLBACK green -> blue");
    }

    #[test]
    fn reminders_follow_the_last_one() {
        let t0 = Utc::now();
        let h = Duration::from_secs(3600);
        assert_eq!(next_reminder(h, t0, None), t0 + h);
        assert_eq!(next_reminder(h, t0, Some(t0 + h)), t0 + h + h);
    }
}
