//! Judging truthfully after a restart, pure. A deadline that passed while
//! the watchdog was not running is not judged at once: the silence may have
//! been the watchdog's own. The check's clients get a fair chance to reach
//! it again (its [`hold`](crate::check::CheckSpec::startup_hold): one
//! period + grace for bgw's own agents, checker and prober, which retry at
//! least once per interval; `startup_grace` for heartbeat jobs). Until then
//! those deadlines are moved to the end of the hold ([`Hold::begin`]).
//!
//! A signal from a part of the check (an instance's heartbeat, a ping or a
//! report) forgives that part's passed deadlines ([`Hold::heard`]): nothing
//! is recorded for them. When the hold ends, what was not heard from gets
//! its original deadlines back ([`Hold::end`]) and is judged at once, so its
//! `down` event is dated at the original deadline.

use crate::state::Runtime;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// A check's own `late_at` and `down_at`, as they were.
type CheckDeadlines = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The original deadlines of a check's parts that were not heard from yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub until: DateTime<Utc>,
    check: Option<CheckDeadlines>,
    instances: BTreeMap<String, (DateTime<Utc>, DateTime<Utc>)>,
}

impl Hold {
    /// If `rt` has deadlines that passed before `started`, moves every
    /// deadline before `until` to `until` and returns the hold that
    /// remembers the originals.
    pub fn begin(rt: &mut Runtime, started: DateTime<Utc>, until: DateTime<Utc>) -> Option<Hold> {
        if rt.next_deadline().is_none_or(|d| d >= started) {
            return None;
        }
        let shift = |t: &mut DateTime<Utc>| *t = (*t).max(until);
        let check = (rt.late_at.is_some() || rt.down_at.is_some()).then(|| {
            let original = (rt.late_at, rt.down_at);
            if let Some(t) = rt.late_at.as_mut() {
                shift(t);
            }
            if let Some(t) = rt.down_at.as_mut() {
                shift(t);
            }
            original
        });
        let handled = rt.evaluated_at;
        let mut instances = BTreeMap::new();
        for (name, i) in rt.instances.iter_mut() {
            // Only deadlines still to be judged: a `late` already handled
            // before the watchdog stopped stays behind `evaluated_at`.
            let pending_late = i.late_at < i.down_at && handled.is_none_or(|h| i.late_at > h);
            if i.down_at >= until && !pending_late {
                continue;
            }
            instances.insert(name.clone(), (i.late_at, i.down_at));
            if pending_late {
                shift(&mut i.late_at);
            }
            shift(&mut i.down_at);
        }
        Some(Hold {
            until,
            check,
            instances,
        })
    }

    /// A signal from `instance` (or from the check itself: a ping, a
    /// report) was applied: its part is forgiven. `true` when nothing is
    /// left held.
    pub fn heard(&mut self, instance: Option<&str>) -> bool {
        match instance {
            Some(name) => {
                self.instances.remove(name);
                // An instance heard from means the service is reachable.
                self.check = None;
            }
            None => self.check = None,
        }
        self.check.is_none() && self.instances.is_empty()
    }

    /// Gives the parts not heard from their original deadlines back.
    pub fn end(self, rt: &mut Runtime) {
        if let Some((late, down)) = self.check {
            if rt.late_at.is_some_and(|t| t == self.until) {
                rt.late_at = late;
            }
            if rt.down_at.is_some_and(|t| t == self.until) {
                rt.down_at = down;
            }
        }
        for (name, (late, down)) in self.instances {
            if let Some(i) = rt.instances.get_mut(&name) {
                if i.late_at == self.until {
                    i.late_at = late;
                }
                if i.down_at == self.until {
                    i.down_at = down;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Cadence;
    use crate::state::{observe, Change, Rules, Signal, State};
    use bgw_wire::HeartbeatStatus;
    use std::time::Duration;

    fn t(s: i64) -> DateTime<Utc> {
        "2026-11-26T14:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::TimeDelta::seconds(s)
    }

    fn rules() -> Rules {
        Rules {
            cadence: Cadence::Period(Duration::from_secs(2)),
            grace: Duration::from_secs(1),
            min_instances: Some(1),
        }
    }

    fn beat(instance: &str) -> Signal {
        Signal::Heartbeat {
            instance: instance.into(),
            status: HeartbeatStatus::Ok,
            detail: None,
            color: None,
            version: None,
            seq: 1,
        }
    }

    /// A service whose two instances last beat at t(0); the watchdog was
    /// down from t(1) to t(10).
    fn service_up() -> Runtime {
        let r = rules();
        let rt = Runtime::new(&r, t(0));
        let (rt, _) = observe(&r, &rt, beat("a1"), t(0));
        let (rt, _) = observe(&r, &rt, beat("a2"), t(0));
        assert_eq!(rt.state, State::Up);
        rt
    }

    #[test]
    fn a_deadline_still_ahead_is_not_held() {
        let mut rt = service_up();
        assert_eq!(Hold::begin(&mut rt, t(1), t(4)), None);
    }

    #[test]
    fn instances_heard_within_the_hold_record_nothing() {
        let r = rules();
        let mut rt = service_up();
        let hold = Hold::begin(&mut rt, t(10), t(13)).expect("deadlines passed while down");
        assert_eq!(rt.next_deadline(), Some(t(13)));
        let mut hold = hold;
        let (next, events) = observe(&r, &rt, beat("a1"), t(11));
        assert!(events.is_empty(), "{events:?}");
        rt = next;
        assert!(!hold.heard(Some("a1")));
        let (next, events) = observe(&r, &rt, beat("a2"), t(12));
        assert!(events.is_empty(), "{events:?}");
        assert!(hold.heard(Some("a2")), "nothing left held");
        assert_eq!(next.state, State::Up);
    }

    #[test]
    fn a_part_not_heard_is_judged_at_the_end_of_the_hold_dated_at_its_deadline() {
        let r = rules();
        let mut rt = service_up();
        let mut hold = Hold::begin(&mut rt, t(10), t(13)).unwrap();
        let (next, _) = observe(&r, &rt, beat("a1"), t(12));
        rt = next;
        hold.heard(Some("a1"));
        hold.end(&mut rt);
        let (next, events) = observe(&r, &rt, Signal::Tick, t(13));
        let missing: Vec<_> = events
            .iter()
            .filter(|e| matches!(&e.change, Change::Instance { instance, .. } if instance == "a2"))
            .collect();
        assert!(!missing.is_empty(), "{events:?}");
        // a2 last beat at t(0): period 2s + grace 1s puts its deadline at t(3).
        assert!(missing.iter().all(|e| e.at <= t(3)), "{missing:?}");
        assert_eq!(next.state, State::Up, "a1 keeps the service up");
    }

    #[test]
    fn a_silent_heartbeat_check_goes_down_at_its_original_deadline() {
        let r = Rules {
            min_instances: None,
            ..rules()
        };
        let rt = Runtime::new(&r, t(0));
        let (mut rt, _) = observe(&r, &rt, Signal::Success, t(0));
        let hold = Hold::begin(&mut rt, t(10), t(40)).unwrap();
        let (same, events) = observe(&r, &rt, Signal::Tick, t(20));
        assert!(events.is_empty(), "held: {events:?}");
        let mut rt = same;
        hold.end(&mut rt);
        let (down, events) = observe(&r, &rt, Signal::Tick, t(40));
        assert_eq!(down.state, State::Down);
        let down_event = events
            .iter()
            .find(|e| {
                matches!(
                    e.change,
                    Change::State {
                        to: State::Down,
                        ..
                    }
                )
            })
            .unwrap();
        assert_eq!(down_event.at, t(3), "dated at the original deadline");
    }
}
