//! Planning, pure: `plan(events, memory, facts, now)` decides, for one
//! committed batch of events, which are silenced (and by what), which flips
//! make a check flapping (one notice, then quiet), and which notifications
//! to write, one per channel. The facts (channels, policy, live color,
//! silences) are gathered once per batch by the caller; the only state is
//! the flap [`Memory`], which the caller keeps between batches.

use super::{classify, group_key, notification, Policy, Silence};
use crate::event::{Event, EventKind};
use bgw_notify::{Kind, Notification};
use bgw_wire::{format_duration, Color};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};

/// What the planner needs to know, gathered once per batch.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub channels: &'a [&'static str],
    pub policy: &'a Policy,
    /// The live color, named in every message.
    pub live: Option<Color>,
    /// Silences active now.
    pub silences: &'a [Silence],
}

/// Recent flips per check and when each was last announced as flapping.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    flips: HashMap<String, VecDeque<DateTime<Utc>>>,
    noticed: HashMap<String, DateTime<Utc>>,
}

impl Memory {
    /// Remembers a flip (a down or a recovery) of `check` at `at`.
    pub fn flip(&mut self, check: &str, at: DateTime<Utc>) {
        self.flips
            .entry(check.to_string())
            .or_default()
            .push_back(at);
    }

    /// Remembers a flapping notice about `check` at `at`.
    pub fn noticed(&mut self, check: &str, at: DateTime<Utc>) {
        let last = self.noticed.entry(check.to_string()).or_insert(at);
        *last = (*last).max(at);
    }

    /// Flips of `check` since `since`, forgetting older ones.
    fn flips_since(&mut self, check: &str, since: DateTime<Utc>) -> usize {
        let Some(flips) = self.flips.get_mut(check) else {
            return 0;
        };
        while flips.front().is_some_and(|at| *at < since) {
            flips.pop_front();
        }
        flips.len()
    }
}

/// A notification to write for the event at `event` (an index into the
/// batch's events followed by the plan's notices).
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub event: usize,
    pub channel: &'static str,
    pub group: Option<String>,
    pub notification: Notification,
}

/// What to write with a batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Per event (the batch's, then the notices): the silence that kept its
    /// notification from being sent.
    pub silenced: Vec<Option<String>>,
    /// Events the plan adds (flapping notices), after the batch's.
    pub notices: Vec<Event>,
    pub notifications: Vec<Planned>,
}

/// Plans the notifications of `events`.
pub fn plan(events: &[Event], memory: &mut Memory, facts: &Facts, now: DateTime<Utc>) -> Plan {
    let mut plan = Plan {
        silenced: vec![None; events.len()],
        ..Plan::default()
    };
    let window = chrono::TimeDelta::from_std(facts.policy.flap_window).unwrap_or_default();
    for (i, e) in events.iter().enumerate() {
        let check = e.check();
        if e.flip().is_some() {
            memory.flip(&check, e.at);
        }
        let Some(kind) = classify(e) else { continue };
        if facts.channels.is_empty() {
            continue;
        }
        let exempt = matches!(
            e.kind,
            EventKind::DeliveryFailed { .. } | EventKind::AllIsWell { .. }
        );
        if let Some(s) = facts.silences.iter().find(|s| !exempt && s.covers(e, now)) {
            plan.silenced[i] = Some(s.describe());
            continue;
        }
        if e.flip().is_some() {
            let flips = memory.flips_since(&check, now - window);
            if flips > facts.policy.flap_threshold as usize {
                plan.silenced[i] = Some("flapping".into());
                let announced = memory
                    .noticed
                    .get(&check)
                    .is_some_and(|at| *at >= now - window);
                if !announced {
                    memory.noticed(&check, now);
                    let last = match &e.kind {
                        EventKind::State { to, .. } => to.as_str(),
                        _ => "unknown",
                    };
                    let notice = Event::new(
                        now,
                        EventKind::Flapping {
                            check: check.clone(),
                            color: e.color(),
                            reason: format!(
                                "{flips} state changes in {}: notifications paused until it settles (the last state is {last})",
                                format_duration(facts.policy.flap_window)
                            ),
                        },
                    );
                    let index = events.len() + plan.notices.len();
                    push(&mut plan, index, &notice, Kind::Flapping, facts);
                    plan.notices.push(notice);
                    plan.silenced.push(None);
                }
                continue;
            }
        }
        push(&mut plan, i, e, kind, facts);
    }
    plan
}

fn push(plan: &mut Plan, index: usize, e: &Event, kind: Kind, facts: &Facts) {
    let n = notification(e, kind, facts.live);
    let group = group_key(kind, e);
    // A channel that gave up is told by the others, not by itself.
    let skip = match &e.kind {
        EventKind::DeliveryFailed { channel, .. } => Some(channel.as_str()),
        _ => None,
    };
    for channel in facts.channels.iter().filter(|c| Some(**c) != skip) {
        plan.notifications.push(Planned {
            event: index,
            channel,
            group: group.clone(),
            notification: n.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;
    use std::time::Duration;

    fn t(s: i64) -> DateTime<Utc> {
        "2026-11-26T14:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::TimeDelta::seconds(s)
    }

    fn flip(at: DateTime<Utc>, down: bool) -> Event {
        Event::new(
            at,
            EventKind::State {
                check: "blue".into(),
                color: Some(Color::Blue),
                from: if down { State::Up } else { State::Down },
                to: if down { State::Down } else { State::Up },
                reason: "no heartbeat".into(),
                down_for: None,
            },
        )
    }

    const CHANNELS: &[&str] = &["slack", "email"];

    fn facts<'a>(policy: &'a Policy, silences: &'a [Silence]) -> Facts<'a> {
        Facts {
            channels: CHANNELS,
            policy,
            live: Some(Color::Green),
            silences,
        }
    }

    #[test]
    fn a_down_is_one_notification_per_channel_grouped_by_color_and_naming_the_live_color() {
        let policy = Policy::default();
        let p = plan(
            &[flip(t(0), true)],
            &mut Memory::default(),
            &facts(&policy, &[]),
            t(0),
        );
        assert_eq!(p.notifications.len(), 2);
        assert_eq!(p.notifications[0].group.as_deref(), Some("down:blue"));
        assert_eq!(p.notifications[0].notification.live, Some(Color::Green));
        assert_eq!(p.notifications[1].channel, "email");
        assert_eq!(p.silenced, vec![None]);
    }

    #[test]
    fn a_silence_on_the_color_keeps_the_notification_and_marks_the_event() {
        let policy = Policy::default();
        let silence = Silence {
            id: 3,
            target: "blue".into(),
            until: t(60),
            reason: "maintenance".into(),
            created_at: t(-1),
        };
        let p = plan(
            &[flip(t(0), true)],
            &mut Memory::default(),
            &facts(&policy, std::slice::from_ref(&silence)),
            t(0),
        );
        assert!(p.notifications.is_empty());
        assert!(p.silenced[0]
            .as_deref()
            .unwrap()
            .contains("silence #3 on blue"));
        let later = plan(
            &[flip(t(61), false)],
            &mut Memory::default(),
            &facts(&policy, std::slice::from_ref(&silence)),
            t(61),
        );
        assert_eq!(
            later.notifications.len(),
            2,
            "expired silences do not apply"
        );
    }

    #[test]
    fn a_flapping_check_gets_one_notice_then_quiet() {
        let policy = Policy {
            flap_threshold: 2,
            flap_window: Duration::from_secs(600),
            ..Policy::default()
        };
        let mut memory = Memory::default();
        let f = facts(&policy, &[]);
        let mut sent = 0;
        let mut notices = 0;
        for i in 0..6 {
            let p = plan(&[flip(t(i), i % 2 == 0)], &mut memory, &f, t(i));
            sent += p.notifications.iter().filter(|n| n.event == 0).count();
            notices += p.notices.len();
            if i >= 2 {
                assert_eq!(p.silenced[0].as_deref(), Some("flapping"));
            }
        }
        assert_eq!(sent, 2 * 2, "the first two flips, on both channels");
        assert_eq!(notices, 1, "one FLAPPING notice");
        // Once the window has passed, flips notify again.
        let p = plan(&[flip(t(700), true)], &mut memory, &f, t(700));
        assert_eq!(p.notifications.len(), 2);
    }

    #[test]
    fn a_delivery_failure_is_told_by_the_other_channels_and_never_silenced() {
        let policy = Policy::default();
        let silence = Silence {
            id: 1,
            target: "slack".into(),
            until: t(60),
            reason: "x".into(),
            created_at: t(0),
        };
        let e = Event::new(
            t(0),
            EventKind::DeliveryFailed {
                channel: "slack".into(),
                notification: 7,
                reason: "404".into(),
            },
        );
        let p = plan(
            &[e],
            &mut Memory::default(),
            &facts(&policy, std::slice::from_ref(&silence)),
            t(0),
        );
        let channels: Vec<_> = p.notifications.iter().map(|n| n.channel).collect();
        assert_eq!(channels, vec!["email"]);
    }

    #[test]
    fn nothing_is_planned_without_channels() {
        let policy = Policy::default();
        let f = Facts {
            channels: &[],
            policy: &policy,
            live: None,
            silences: &[],
        };
        let p = plan(&[flip(t(0), true)], &mut Memory::default(), &f, t(0));
        assert!(p.notifications.is_empty() && p.notices.is_empty());
    }
}
