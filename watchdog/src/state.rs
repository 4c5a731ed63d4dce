//! The check state machine: a pure function of (runtime, signal, now).
//!
//! [`observe`] takes a check's stored runtime, one signal (a heartbeat, a
//! ping, a report, the clock passing a deadline, pause/resume) and the current
//! time, and returns the new runtime with the events it caused. Every event
//! carries the time it really happened: a deadline that passed while the
//! watchdog was down is dated at the deadline, not when it was noticed. A
//! check that is `down` has no deadline, so one outage is one `down` event.

use crate::schedule::{deadlines, Cadence};
use bgw_wire::{format_duration, Color, HeartbeatStatus};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The state of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    New,
    Up,
    Late,
    Down,
    Paused,
}

impl State {
    pub const ALL: [State; 5] = [
        State::New,
        State::Up,
        State::Late,
        State::Down,
        State::Paused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::New => "new",
            State::Up => "up",
            State::Late => "late",
            State::Down => "down",
            State::Paused => "paused",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a check is judged: its cadence, grace, and for services the quorum.
#[derive(Debug, Clone)]
pub struct Rules {
    pub cadence: Cadence,
    pub grace: Duration,
    /// `Some(n)`: a service, up while at least `n` instances are up.
    pub min_instances: Option<u32>,
}

impl Rules {
    fn silence_reason(&self, last: Option<DateTime<Utc>>, at: DateTime<Utc>, what: &str) -> String {
        let cadence = match &self.cadence {
            Cadence::Period(p) => format!("period {}", format_duration(*p)),
            other => other.describe(),
        };
        match last {
            Some(last) => format!(
                "no {what} for {} ({cadence}, grace {})",
                format_duration(round_to_ms(at - last)),
                format_duration(self.grace)
            ),
            None => format!(
                "no {what} since the check was created ({cadence}, grace {})",
                format_duration(self.grace)
            ),
        }
    }
}

fn round_to_ms(d: chrono::TimeDelta) -> Duration {
    let ms = d.num_milliseconds().max(0) as u64;
    // Whole seconds read better in alerts once past a few seconds.
    if ms >= 10_000 {
        Duration::from_secs(ms / 1000)
    } else {
        Duration::from_millis(ms)
    }
}

/// One instance of a service (one agent).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Instance {
    pub color: Option<Color>,
    pub version: Option<String>,
    pub status: HeartbeatStatus,
    pub detail: Option<String>,
    pub seq: u64,
    pub last_seen: DateTime<Utc>,
    pub late_at: DateTime<Utc>,
    pub down_at: DateTime<Utc>,
    /// `fail` heartbeats in a row from this instance (0 after an `ok`); the
    /// rollback counts an agent as "seeing its color fail" from this.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consecutive_fails: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Everything stored about a check between signals.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Runtime {
    pub state: State,
    /// When the current state began.
    pub since: DateTime<Utc>,
    /// Why the check is in its state (for down: the alert's reason).
    pub reason: String,
    pub last_signal: Option<DateTime<Utc>>,
    /// When the check turns `late` (check level: heartbeat/reporter, or a
    /// service that never heard from an instance).
    pub late_at: Option<DateTime<Utc>>,
    /// When the check turns `down`.
    pub down_at: Option<DateTime<Utc>>,
    /// A `/start` ping waiting for its success.
    pub started: Option<DateTime<Utc>>,
    /// Start of the current outage.
    pub down_since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub instances: BTreeMap<String, Instance>,
    /// Deadlines up to this time have been handled (instances' `late_at`
    /// stay in place after they pass, so they are compared to this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluated_at: Option<DateTime<Utc>>,
}

impl Runtime {
    /// A check as it is created: `new`, with deadlines counted from `now` so
    /// that a dead-man switch that never pings is noticed too.
    pub fn new(rules: &Rules, now: DateTime<Utc>) -> Runtime {
        let (late, down) = deadlines(&rules.cadence, rules.grace, now);
        Runtime {
            state: State::New,
            since: now,
            reason: "waiting for the first signal".into(),
            last_signal: None,
            late_at: Some(late),
            down_at: Some(down),
            started: None,
            down_since: None,
            instances: BTreeMap::new(),
            evaluated_at: None,
        }
    }

    /// The earliest moment the state can change without a signal.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        if matches!(self.state, State::Paused) {
            return None;
        }
        let check_level = [
            self.late_at.filter(|_| self.state != State::Late),
            self.down_at,
        ];
        let handled = self.evaluated_at;
        let instances = self.instances.values().flat_map(|i| {
            let late = Some(i.late_at).filter(|t| *t < i.down_at && handled.is_none_or(|h| *t > h));
            [late, Some(i.down_at)]
        });
        check_level.into_iter().chain(instances).flatten().min()
    }
}

/// What happened to a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// A ping, a report, or (services) an `ok` heartbeat handled elsewhere.
    Success,
    /// `/fail`, a non-zero exit status ping.
    Fail {
        reason: String,
    },
    /// `/start`: the job began; success must follow within grace.
    Start,
    /// `/log`: recorded, changes nothing.
    Log,
    /// An agent's heartbeat (service checks).
    Heartbeat {
        instance: String,
        status: HeartbeatStatus,
        detail: Option<String>,
        color: Option<Color>,
        version: Option<String>,
        seq: u64,
    },
    /// The clock reached a deadline (or the watchdog restarted past some).
    Tick,
    Pause,
    Resume,
}

/// What an instance did, for events about instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceChange {
    Joined,
    Failing,
    Recovered,
    Missing,
    Left,
}

impl InstanceChange {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceChange::Joined => "joined",
            InstanceChange::Failing => "failing",
            InstanceChange::Recovered => "recovered",
            InstanceChange::Missing => "missing",
            InstanceChange::Left => "left",
        }
    }
}

/// One event caused by a signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The check changed state.
    State {
        from: State,
        to: State,
        /// On recovery from `down`: how long the outage lasted.
        down_for: Option<Duration>,
    },
    /// An instance of a service joined, failed, recovered, went missing or left.
    Instance {
        instance: String,
        change: InstanceChange,
        color: Option<Color>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub change: Change,
    pub reason: String,
}

/// The runtime after the check's rules changed (a new period or grace):
/// state and history kept, deadlines recomputed from the last signal.
pub fn reschedule(rules: &Rules, prev: &Runtime, now: DateTime<Utc>) -> Runtime {
    let mut rt = prev.clone();
    if matches!(rt.state, State::New | State::Up | State::Late) && rt.instances.is_empty() {
        let (late, down) = deadlines(&rules.cadence, rules.grace, rt.last_signal.unwrap_or(now));
        rt.late_at = Some(late);
        rt.down_at = Some(down);
    }
    for i in rt.instances.values_mut() {
        let (late, down) = deadlines(&rules.cadence, rules.grace, i.last_seen);
        i.late_at = late;
        i.down_at = down;
    }
    rt
}

/// Whether `signal` may be applied to `rt` when a service tracks at most
/// `max` instances: a heartbeat from an instance id it does not know is
/// refused once `max` are tracked (so a flood of ids, a bug or a leaked
/// token, cannot grow the runtime, its row or the log without bound). Known
/// instances, goodbyes from unknown ones (they change nothing) and every
/// other signal are admitted. A departed instance stops counting once
/// [`observe`] drops it: at its deadline (one period + grace after its last
/// heartbeat), whether it left with `stopping` or went missing.
pub fn admits(rt: &Runtime, signal: &Signal, max: usize) -> bool {
    match signal {
        Signal::Heartbeat {
            instance, status, ..
        } => {
            *status == HeartbeatStatus::Stopping
                || rt.instances.contains_key(instance)
                || rt.instances.len() < max
        }
        _ => true,
    }
}

/// The state machine. Pure: same inputs, same outputs.
pub fn observe(
    rules: &Rules,
    prev: &Runtime,
    signal: Signal,
    now: DateTime<Utc>,
) -> (Runtime, Vec<Event>) {
    let mut rt = prev.clone();
    let mut events = Vec::new();
    match signal {
        Signal::Pause => {
            if rt.state != State::Paused {
                set_state(
                    &mut rt,
                    &mut events,
                    State::Paused,
                    now,
                    "paused by an operator".into(),
                );
            }
            rt.late_at = None;
            rt.down_at = None;
            rt.started = None;
        }
        Signal::Resume => {
            if rt.state == State::Paused {
                let (late, down) = deadlines(&rules.cadence, rules.grace, now);
                rt.late_at = Some(late);
                rt.down_at = Some(down);
                set_state(
                    &mut rt,
                    &mut events,
                    State::New,
                    now,
                    "resumed by an operator".into(),
                );
                if rules.min_instances.is_some() && !rt.instances.is_empty() {
                    for i in rt.instances.values_mut() {
                        let (late, down) = deadlines(&rules.cadence, rules.grace, now);
                        i.late_at = i.late_at.max(late);
                        i.down_at = i.down_at.max(down);
                    }
                    aggregate(rules, &mut rt, &mut events, now, None);
                }
            }
        }
        Signal::Log => {
            rt.last_signal = Some(now);
        }
        Signal::Start => {
            rt.last_signal = Some(now);
            if rt.state != State::Paused {
                rt.started = Some(now);
                let by = now + rules.grace;
                rt.down_at = Some(rt.down_at.map_or(by, |d| d.min(by)));
            }
        }
        Signal::Success => {
            rt.last_signal = Some(now);
            rt.started = None;
            if rt.state != State::Paused {
                let (late, down) = deadlines(&rules.cadence, rules.grace, now);
                rt.late_at = Some(late);
                rt.down_at = Some(down);
                if rt.state != State::Up {
                    set_state(
                        &mut rt,
                        &mut events,
                        State::Up,
                        now,
                        "signal received".into(),
                    );
                }
            }
        }
        Signal::Fail { reason } => {
            rt.last_signal = Some(now);
            rt.started = None;
            if rt.state != State::Paused {
                rt.late_at = None;
                rt.down_at = None;
                if rt.state != State::Down {
                    set_state(&mut rt, &mut events, State::Down, now, reason);
                }
            }
        }
        Signal::Heartbeat {
            instance,
            status,
            detail,
            color,
            version,
            seq,
        } => {
            rt.last_signal = Some(now);
            heartbeat(
                rules,
                &mut rt,
                &mut events,
                now,
                instance,
                status,
                detail,
                color,
                version,
                seq,
            );
        }
        Signal::Tick => tick(rules, &mut rt, &mut events, now),
    }
    (rt, events)
}

fn set_state(
    rt: &mut Runtime,
    events: &mut Vec<Event>,
    to: State,
    at: DateTime<Utc>,
    reason: String,
) {
    let from = rt.state;
    if from == to {
        rt.reason = reason;
        return;
    }
    let down_for = match (from, to) {
        (State::Down, _) => rt.down_since.map(|s| round_to_ms(at - s)),
        _ => None,
    };
    if to == State::Down {
        rt.down_since = Some(at);
    } else if from == State::Down {
        rt.down_since = None;
    }
    rt.state = to;
    rt.since = at;
    rt.reason = reason.clone();
    events.push(Event {
        at,
        change: Change::State { from, to, down_for },
        reason,
    });
}

#[allow(clippy::too_many_arguments)]
fn heartbeat(
    rules: &Rules,
    rt: &mut Runtime,
    events: &mut Vec<Event>,
    now: DateTime<Utc>,
    name: String,
    status: HeartbeatStatus,
    detail: Option<String>,
    color: Option<Color>,
    version: Option<String>,
    seq: u64,
) {
    // A service heard from an instance no longer needs the check-level
    // "nobody ever reported" deadline.
    rt.late_at = None;
    rt.down_at = None;
    let (late_at, down_at) = deadlines(&rules.cadence, rules.grace, now);
    let previous = rt.instances.get(&name).map(|i| i.status);
    let previous_fails = rt.instances.get(&name).map_or(0, |i| i.consecutive_fails);
    let describe = |d: &Option<String>| d.clone().unwrap_or_else(|| status.as_str().to_string());
    let change = match (previous, status) {
        (None, HeartbeatStatus::Ok) => Some((InstanceChange::Joined, describe(&detail))),
        (None, HeartbeatStatus::Fail) => Some((InstanceChange::Failing, describe(&detail))),
        (Some(HeartbeatStatus::Fail), HeartbeatStatus::Ok) => {
            Some((InstanceChange::Recovered, describe(&detail)))
        }
        (Some(s), HeartbeatStatus::Fail) if s != HeartbeatStatus::Fail => {
            Some((InstanceChange::Failing, describe(&detail)))
        }
        (Some(s), HeartbeatStatus::Stopping) if s != HeartbeatStatus::Stopping => {
            Some((InstanceChange::Left, "planned stop".to_string()))
        }
        (Some(HeartbeatStatus::Stopping), HeartbeatStatus::Ok) => {
            Some((InstanceChange::Joined, describe(&detail)))
        }
        _ => None,
    };
    if status == HeartbeatStatus::Stopping && previous.is_none() {
        // An instance we never knew says goodbye: nothing to track.
        return;
    }
    if let Some((change, reason)) = change {
        events.push(Event {
            at: now,
            change: Change::Instance {
                instance: name.clone(),
                change,
                color,
            },
            reason,
        });
    }
    rt.instances.insert(
        name,
        Instance {
            color,
            version,
            status,
            detail,
            seq,
            last_seen: now,
            late_at,
            down_at,
            consecutive_fails: match status {
                HeartbeatStatus::Fail => previous_fails.saturating_add(1),
                _ => 0,
            },
        },
    );
    if rt.state != State::Paused {
        aggregate(rules, rt, events, now, None);
    }
}

/// Handles every deadline up to `now`, in time order, so each event is dated
/// at its own deadline even when several passed while the watchdog was down.
fn tick(rules: &Rules, rt: &mut Runtime, events: &mut Vec<Event>, now: DateTime<Utc>) {
    if rt.state == State::Paused {
        return;
    }
    loop {
        let Some(at) = rt.next_deadline().filter(|t| *t <= now) else {
            return;
        };
        // Instances first: one that went missing at `at`.
        let missing: Vec<String> = rt
            .instances
            .iter()
            .filter(|(_, i)| i.down_at <= at)
            .map(|(n, _)| n.clone())
            .collect();
        let mut why = None;
        let removed = !missing.is_empty();
        for name in missing {
            let inst = rt.instances.remove(&name).expect("listed above");
            if inst.status == HeartbeatStatus::Stopping {
                continue; // left as planned: nothing to say
            }
            let reason = rules.silence_reason(Some(inst.last_seen), inst.down_at, "heartbeat");
            events.push(Event {
                at: inst.down_at,
                change: Change::Instance {
                    instance: name.clone(),
                    change: InstanceChange::Missing,
                    color: inst.color,
                },
                reason: reason.clone(),
            });
            why = Some(format!("{name}: {reason}"));
        }
        if rt.down_at.is_some_and(|d| d <= at) {
            let reason = match rt.started {
                Some(s) if rt.down_at == Some(s + rules.grace) => format!(
                    "started at {} but no success within grace {}",
                    s.format("%H:%M:%S"),
                    format_duration(rules.grace)
                ),
                _ => rules.silence_reason(rt.last_signal, at, signal_word(rules)),
            };
            rt.late_at = None;
            rt.down_at = None;
            rt.started = None;
            set_state(rt, events, State::Down, at, reason);
            continue;
        }
        if rt.late_at.is_some_and(|l| l <= at) && rt.state != State::Late && rt.state != State::Down
        {
            let reason = rules.silence_reason(rt.last_signal, at, signal_word(rules));
            rt.late_at = None;
            set_state(rt, events, State::Late, at, reason);
            continue;
        }
        rt.late_at = rt.late_at.filter(|l| *l > at);
        if rules.min_instances.is_some()
            && (removed || rt.instances.values().any(|i| i.late_at <= at))
        {
            aggregate(rules, rt, events, at, why);
        }
        rt.evaluated_at = Some(at);
    }
}

fn signal_word(rules: &Rules) -> &'static str {
    if rules.min_instances.is_some() {
        "heartbeat"
    } else {
        "signal"
    }
}

/// A service's state from its instances: up while at least `min_instances`
/// are up (a leaving instance counts until its deadline), late while that
/// holds only counting late ones, else down.
fn aggregate(
    rules: &Rules,
    rt: &mut Runtime,
    events: &mut Vec<Event>,
    at: DateTime<Utc>,
    why: Option<String>,
) {
    let Some(min) = rules.min_instances else {
        return;
    };
    if rt.instances.is_empty() && rt.state == State::New {
        return; // still waiting for the first instance
    }
    let mut up = 0u32;
    let mut late = 0u32;
    let mut problems = Vec::new();
    for (name, i) in &rt.instances {
        match i.status {
            HeartbeatStatus::Fail => problems.push(format!(
                "{name}: {}",
                i.detail.as_deref().unwrap_or("failing")
            )),
            // A leaving instance serves until its deadline.
            HeartbeatStatus::Stopping => up += 1,
            HeartbeatStatus::Ok if i.late_at <= at => late += 1,
            _ => up += 1,
        }
    }
    let (to, reason) = if up >= min {
        (State::Up, format!("{up} of {min} required instances up"))
    } else {
        let mut reason = format!("{up} of {min} required instances up");
        if let Some(w) = why {
            problems.push(w);
        }
        if !problems.is_empty() {
            reason = format!("{reason}; {}", problems.join("; "));
        }
        if up + late >= min {
            (State::Late, reason)
        } else {
            (State::Down, reason)
        }
    };
    if to != rt.state {
        set_state(rt, events, to, at, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
    }

    fn periodic(period: u64, grace: u64) -> Rules {
        Rules {
            cadence: Cadence::Period(Duration::from_secs(period)),
            grace: Duration::from_secs(grace),
            min_instances: None,
        }
    }

    fn service(min: u32) -> Rules {
        Rules {
            min_instances: Some(min),
            ..periodic(5, 5)
        }
    }

    fn states(events: &[Event]) -> Vec<(i64, State, State)> {
        events
            .iter()
            .filter_map(|e| match e.change {
                Change::State { from, to, .. } => {
                    Some((e.at.timestamp() - 1_700_000_000, from, to))
                }
                _ => None,
            })
            .collect()
    }

    fn hb(instance: &str, status: HeartbeatStatus) -> Signal {
        Signal::Heartbeat {
            instance: instance.into(),
            status,
            detail: None,
            color: Some(Color::Blue),
            version: None,
            seq: 1,
        }
    }

    #[test]
    fn fail_heartbeats_in_a_row_are_counted_per_instance_and_reset_by_ok() {
        let r = Rules {
            min_instances: Some(1),
            ..periodic(1, 1)
        };
        let mut rt = Runtime::new(&r, t(0));
        let mut counts = Vec::new();
        for (i, status) in [
            HeartbeatStatus::Ok,
            HeartbeatStatus::Fail,
            HeartbeatStatus::Fail,
            HeartbeatStatus::Fail,
            HeartbeatStatus::Ok,
            HeartbeatStatus::Fail,
        ]
        .into_iter()
        .enumerate()
        {
            rt = observe(&r, &rt, hb("a", status), t(i as i64)).0;
            counts.push(rt.instances["a"].consecutive_fails);
        }
        assert_eq!(counts, vec![0, 1, 2, 3, 0, 1]);
        assert_eq!(rt.state, State::Down);
        // Stored runtimes from before the field existed still load.
        let json = serde_json::to_string(&rt)
            .unwrap()
            .replace(",\"consecutive_fails\":1", "");
        assert!(!json.contains("consecutive_fails"));
        let back: Runtime = serde_json::from_str(&json).unwrap();
        assert_eq!(back.instances["a"].consecutive_fails, 0);
    }

    #[test]
    fn a_new_check_goes_up_on_its_first_signal() {
        let r = periodic(5, 5);
        let rt = Runtime::new(&r, t(0));
        let (rt, ev) = observe(&r, &rt, Signal::Success, t(1));
        assert_eq!(rt.state, State::Up);
        assert_eq!(states(&ev), vec![(1, State::New, State::Up)]);
        assert_eq!(rt.late_at, Some(t(6)));
        assert_eq!(rt.down_at, Some(t(11)));
        assert_eq!(rt.next_deadline(), Some(t(6)));
    }

    #[test]
    fn silence_goes_late_then_down_dated_at_each_deadline() {
        let r = periodic(5, 5);
        let (rt, _) = observe(&r, &Runtime::new(&r, t(0)), Signal::Success, t(0));
        let (rt, ev) = observe(&r, &rt, Signal::Tick, t(5));
        assert_eq!(states(&ev), vec![(5, State::Up, State::Late)]);
        let (rt, ev) = observe(&r, &rt, Signal::Tick, t(7));
        assert!(ev.is_empty(), "nothing due between late and down");
        let (rt, ev) = observe(&r, &rt, Signal::Tick, t(10));
        assert_eq!(states(&ev), vec![(10, State::Late, State::Down)]);
        assert_eq!(ev[0].reason, "no signal for 10s (period 5s, grace 5s)");
        assert_eq!(rt.next_deadline(), None, "a down check has no deadline");
    }

    #[test]
    fn a_restart_long_after_the_deadline_dates_both_events_at_their_deadlines() {
        let r = periodic(5, 5);
        let (rt, _) = observe(&r, &Runtime::new(&r, t(0)), Signal::Success, t(0));
        let (rt, ev) = observe(&r, &rt, Signal::Tick, t(3600));
        assert_eq!(
            states(&ev),
            vec![(5, State::Up, State::Late), (10, State::Late, State::Down)]
        );
        let (_, ev) = observe(&r, &rt, Signal::Tick, t(7200));
        assert!(ev.is_empty(), "no second down for one outage");
    }

    #[test]
    fn a_tick_before_the_deadline_changes_nothing() {
        let r = periodic(5, 5);
        let (rt, _) = observe(&r, &Runtime::new(&r, t(0)), Signal::Success, t(0));
        let (rt2, ev) = observe(&r, &rt, Signal::Tick, t(4));
        assert!(ev.is_empty());
        assert_eq!(rt2, rt);
    }

    #[test]
    fn recovery_reports_how_long_it_was_down() {
        let r = periodic(5, 0);
        let (rt, _) = observe(&r, &Runtime::new(&r, t(0)), Signal::Success, t(0));
        let (rt, ev) = observe(&r, &rt, Signal::Tick, t(5));
        assert_eq!(
            states(&ev),
            vec![(5, State::Up, State::Down)],
            "grace 0 skips late"
        );
        let (rt, ev) = observe(&r, &rt, Signal::Success, t(95));
        assert_eq!(rt.state, State::Up);
        assert_eq!(
            ev[0].change,
            Change::State {
                from: State::Down,
                to: State::Up,
                down_for: Some(Duration::from_secs(90))
            }
        );
    }

    #[test]
    fn a_check_that_never_signals_goes_down_from_its_creation() {
        let r = periodic(60, 30);
        let rt = Runtime::new(&r, t(0));
        let (_, ev) = observe(&r, &rt, Signal::Tick, t(90));
        assert_eq!(
            states(&ev),
            vec![
                (60, State::New, State::Late),
                (90, State::Late, State::Down)
            ]
        );
        assert!(
            ev[1].reason.contains("since the check was created"),
            "{}",
            ev[1].reason
        );
    }

    #[test]
    fn fail_is_down_at_once_and_success_brings_it_back() {
        let r = periodic(60, 30);
        let (rt, _) = observe(&r, &Runtime::new(&r, t(0)), Signal::Success, t(0));
        let (rt, ev) = observe(
            &r,
            &rt,
            Signal::Fail {
                reason: "exit status 3".into(),
            },
            t(10),
        );
        assert_eq!(states(&ev), vec![(10, State::Up, State::Down)]);
        assert_eq!(rt.reason, "exit status 3");
        let (_, ev) = observe(
            &r,
            &rt,
            Signal::Fail {
                reason: "again".into(),
            },
            t(20),
        );
        assert!(ev.is_empty(), "a second fail is the same outage");
    }

    #[test]
    fn start_without_success_within_grace_goes_down() {
        let r = periodic(3600, 60);
        let (rt, _) = observe(&r, &Runtime::new(&r, t(0)), Signal::Success, t(0));
        let (rt, ev) = observe(&r, &rt, Signal::Start, t(100));
        assert!(ev.is_empty());
        assert_eq!(rt.next_deadline(), Some(t(160)));
        let (_, ev) = observe(&r, &rt, Signal::Tick, t(160));
        assert_eq!(states(&ev), vec![(160, State::Up, State::Down)]);
        assert!(
            ev[0].reason.contains("no success within grace 1m"),
            "{}",
            ev[0].reason
        );
    }

    #[test]
    fn start_then_success_keeps_it_up() {
        let r = periodic(3600, 60);
        let (rt, _) = observe(&r, &Runtime::new(&r, t(0)), Signal::Success, t(0));
        let (rt, _) = observe(&r, &rt, Signal::Start, t(100));
        let (rt, ev) = observe(&r, &rt, Signal::Success, t(130));
        assert!(ev.is_empty());
        assert_eq!(rt.down_at, Some(t(130 + 3660)));
    }

    #[test]
    fn log_changes_nothing_but_the_last_signal() {
        let r = periodic(5, 5);
        let (rt, _) = observe(&r, &Runtime::new(&r, t(0)), Signal::Success, t(0));
        let (rt2, ev) = observe(&r, &rt, Signal::Log, t(3));
        assert!(ev.is_empty());
        assert_eq!(rt2.down_at, rt.down_at);
        assert_eq!(rt2.last_signal, Some(t(3)));
    }

    #[test]
    fn paused_checks_never_alert_and_resume_as_new() {
        let r = periodic(5, 5);
        let (rt, _) = observe(&r, &Runtime::new(&r, t(0)), Signal::Success, t(0));
        let (rt, ev) = observe(&r, &rt, Signal::Pause, t(1));
        assert_eq!(states(&ev), vec![(1, State::Up, State::Paused)]);
        assert_eq!(rt.next_deadline(), None);
        let (rt, ev) = observe(&r, &rt, Signal::Tick, t(1000));
        assert!(ev.is_empty());
        let (rt, ev) = observe(&r, &rt, Signal::Success, t(1001));
        assert!(ev.is_empty(), "signals while paused change no state");
        assert_eq!(rt.state, State::Paused);
        let (rt, ev) = observe(&r, &rt, Signal::Resume, t(1002));
        assert_eq!(states(&ev), vec![(1002, State::Paused, State::New)]);
        assert_eq!(rt.next_deadline(), Some(t(1007)));
    }

    #[test]
    fn a_service_is_up_with_enough_instances_and_down_when_one_fails() {
        let r = service(1);
        let rt = Runtime::new(&r, t(0));
        let (rt, ev) = observe(&r, &rt, hb("a", HeartbeatStatus::Ok), t(1));
        assert_eq!(states(&ev), vec![(1, State::New, State::Up)]);
        let (rt, ev) = observe(
            &r,
            &rt,
            Signal::Heartbeat {
                instance: "a".into(),
                status: HeartbeatStatus::Fail,
                detail: Some("app exited with code 1".into()),
                color: Some(Color::Blue),
                version: None,
                seq: 2,
            },
            t(2),
        );
        assert_eq!(states(&ev), vec![(2, State::Up, State::Down)]);
        assert_eq!(
            rt.reason,
            "0 of 1 required instances up; a: app exited with code 1"
        );
        assert!(matches!(
            ev[0].change,
            Change::Instance {
                change: InstanceChange::Failing,
                ..
            }
        ));
    }

    #[test]
    fn a_service_needs_min_instances() {
        let r = service(2);
        let rt = Runtime::new(&r, t(0));
        let (rt, _) = observe(&r, &rt, hb("a", HeartbeatStatus::Ok), t(1));
        assert_eq!(rt.state, State::Down, "1 of 2 is not enough");
        let (rt, ev) = observe(&r, &rt, hb("b", HeartbeatStatus::Ok), t(2));
        assert_eq!(states(&ev), vec![(2, State::Down, State::Up)]);
        assert_eq!(rt.instances.len(), 2);
    }

    #[test]
    fn a_silent_instance_goes_missing_and_takes_the_service_down_at_its_deadline() {
        let r = service(1);
        let (rt, _) = observe(
            &r,
            &Runtime::new(&r, t(0)),
            hb("a", HeartbeatStatus::Ok),
            t(0),
        );
        let (rt, ev) = observe(&r, &rt, Signal::Tick, t(100));
        assert_eq!(
            states(&ev),
            vec![(5, State::Up, State::Late), (10, State::Late, State::Down)]
        );
        let missing = ev
            .iter()
            .find(|e| {
                matches!(
                    e.change,
                    Change::Instance {
                        change: InstanceChange::Missing,
                        ..
                    }
                )
            })
            .unwrap();
        assert_eq!(missing.at, t(10));
        assert!(rt.instances.is_empty());
        assert!(
            rt.reason
                .contains("a: no heartbeat for 10s (period 5s, grace 5s)"),
            "{}",
            rt.reason
        );
        let (_, ev) = observe(&r, &rt, Signal::Tick, t(200));
        assert!(ev.is_empty());
    }

    #[test]
    fn an_instance_that_says_stopping_leaves_without_an_alert() {
        let r = service(1);
        let (rt, _) = observe(
            &r,
            &Runtime::new(&r, t(0)),
            hb("a", HeartbeatStatus::Ok),
            t(0),
        );
        let (rt, ev) = observe(&r, &rt, hb("a", HeartbeatStatus::Stopping), t(1));
        assert!(states(&ev).is_empty());
        // Its replacement arrives before the old one's deadline.
        let (rt, _) = observe(&r, &rt, hb("b", HeartbeatStatus::Ok), t(4));
        let (rt, _) = observe(&r, &rt, hb("b", HeartbeatStatus::Ok), t(8));
        let (rt, ev) = observe(&r, &rt, Signal::Tick, t(11));
        assert!(states(&ev).is_empty(), "{ev:?}");
        assert!(!ev.iter().any(|e| matches!(
            e.change,
            Change::Instance {
                change: InstanceChange::Missing,
                ..
            }
        )));
        assert_eq!(rt.instances.keys().collect::<Vec<_>>(), vec!["b"]);
        assert_eq!(rt.state, State::Up);
    }

    #[test]
    fn a_service_with_no_instance_left_after_a_stop_goes_down_after_grace() {
        let r = service(1);
        let (rt, _) = observe(
            &r,
            &Runtime::new(&r, t(0)),
            hb("a", HeartbeatStatus::Ok),
            t(0),
        );
        let (rt, _) = observe(&r, &rt, hb("a", HeartbeatStatus::Stopping), t(1));
        let (rt, ev) = observe(&r, &rt, Signal::Tick, t(30));
        assert_eq!(rt.state, State::Down, "{ev:?}");
        assert_eq!(states(&ev).last().unwrap().0, 11);
    }

    #[test]
    fn a_new_instance_is_refused_at_the_cap_until_a_departed_one_is_dropped() {
        let r = service(1);
        let rt = Runtime::new(&r, t(0));
        let (rt, _) = observe(&r, &rt, hb("a", HeartbeatStatus::Ok), t(1));
        let (rt, _) = observe(&r, &rt, hb("b", HeartbeatStatus::Ok), t(1));
        assert!(!admits(&rt, &hb("c", HeartbeatStatus::Ok), 2));
        assert!(!admits(&rt, &hb("c", HeartbeatStatus::Fail), 2));
        // Known instances keep heartbeating; a stranger's goodbye changes nothing.
        assert!(admits(&rt, &hb("a", HeartbeatStatus::Ok), 2));
        assert!(admits(&rt, &hb("c", HeartbeatStatus::Stopping), 2));
        assert!(admits(&rt, &Signal::Tick, 2));
        // "b" leaves: it counts until its deadline (period 5 + grace 5), then not.
        let (rt, _) = observe(&r, &rt, hb("b", HeartbeatStatus::Stopping), t(2));
        let (rt, _) = observe(&r, &rt, hb("a", HeartbeatStatus::Ok), t(8));
        assert!(!admits(&rt, &hb("c", HeartbeatStatus::Ok), 2));
        let (rt, _) = observe(&r, &rt, Signal::Tick, t(12));
        assert_eq!(rt.instances.keys().collect::<Vec<_>>(), vec!["a"]);
        assert!(admits(&rt, &hb("c", HeartbeatStatus::Ok), 2));
    }

    #[test]
    fn an_unknown_instance_saying_stopping_is_ignored() {
        let r = service(1);
        let rt = Runtime::new(&r, t(0));
        let (rt2, ev) = observe(&r, &rt, hb("ghost", HeartbeatStatus::Stopping), t(1));
        assert!(ev.is_empty());
        assert!(rt2.instances.is_empty());
    }
}
