//! The prober's own dead-man switch on the watchdog, as a pure function.
//!
//! The watchdog "answers" when its `/healthz` returns 200 or it accepts a
//! report. When it has not answered for `silence_after`, the prober raises
//! one DOWN; when it answers again, one UP. [`observe`] decides, from the
//! state and the time, with no clock and no I/O of its own.
//!
//! Silence counts only while the prober itself runs: the prober cannot
//! vouch for what it did not watch. After a start, [`resume`] gives the
//! watchdog a full `silence_after` from that start, whatever the saved state
//! says of the past; only an outage already raised carries over (stored on
//! disk when it is raised and when it ends), so a restart neither repeats a
//! DOWN nor forgets to send its UP.

use bgw_notify::{Kind, Notification};
use bgw_wire::{format_duration, HumanDuration};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// What the prober knows about the watchdog's silence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WatchState {
    /// Silence counts from here: the last time the watchdog answered, or
    /// the prober's own start when it has not answered since.
    pub last_answer: DateTime<Utc>,
    /// Set while a DOWN has been raised and no UP since.
    pub outage: Option<Outage>,
}

/// A raised outage.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Outage {
    /// When the DOWN happened (`last_answer + silence_after`).
    pub down_at: DateTime<Utc>,
    /// The event id the DOWN carried.
    pub event_id: i64,
}

impl WatchState {
    /// A prober that starts watching now (nothing heard yet).
    pub fn new(now: DateTime<Utc>) -> WatchState {
        WatchState {
            last_answer: now,
            outage: None,
        }
    }

    /// When the DOWN is due if nothing answers: `None` while one is raised.
    pub fn deadline(&self, silence_after: Duration) -> Option<DateTime<Utc>> {
        match self.outage {
            Some(_) => None,
            None => Some(self.last_answer + chrono_duration(silence_after)),
        }
    }
}

/// The state a prober (re)started at `now` watches with, given what it
/// saved before it stopped (`None` on a first start, or when the saved state
/// is about another watchdog).
///
/// - An outage already raised stays raised: no second DOWN, and the UP
///   (with the silence counted from the last answer before it) still comes.
/// - Otherwise the watchdog has `silence_after` from `now`: the time the
///   prober was not running is not the watchdog's silence.
pub fn resume(saved: Option<WatchState>, now: DateTime<Utc>) -> WatchState {
    match saved {
        Some(state) if state.outage.is_some() => state,
        Some(state) => WatchState {
            last_answer: now.max(state.last_answer),
            outage: None,
        },
        None => WatchState::new(now),
    }
}

/// One observation of the watchdog at `now`: it `answered`, or not, with
/// `error` saying how it failed (`connection refused`). Returns the next
/// state and the notification to send, if any: at most one DOWN per outage
/// (dated when the silence crossed `silence_after`), and an UP only after a
/// DOWN (with how long the watchdog was silent).
pub fn observe(
    state: &WatchState,
    answered: bool,
    error: Option<&str>,
    now: DateTime<Utc>,
    silence_after: Duration,
) -> (WatchState, Option<Notification>) {
    if answered {
        let next = WatchState {
            last_answer: now.max(state.last_answer),
            outage: None,
        };
        let alert = state.outage.as_ref().map(|outage| {
            let down_for = whole_seconds((now - state.last_answer).to_std().unwrap_or_default());
            notification(
                Kind::Up,
                event_id(now, Some(outage.event_id)),
                now,
                format!(
                    "watchdog answering again after {} of silence",
                    format_duration(down_for)
                ),
                Some(down_for),
            )
        });
        return (next, alert);
    }
    let silent_for = (now - state.last_answer).to_std().unwrap_or_default();
    if state.outage.is_some() || silent_for < silence_after {
        return (state.clone(), None);
    }
    let at = state.last_answer + chrono_duration(silence_after);
    let id = event_id(at, None);
    let reason = format!(
        "watchdog silent for {}: {}",
        format_duration(whole_seconds(silent_for)),
        error.unwrap_or("no answer")
    );
    let next = WatchState {
        last_answer: state.last_answer,
        outage: Some(Outage {
            down_at: at,
            event_id: id,
        }),
    };
    (next, Some(notification(Kind::Down, id, at, reason, None)))
}

/// `[bgw] DOWN watchdog` / `[bgw] UP watchdog`, from the prober.
fn notification(
    kind: Kind,
    event_id: i64,
    at: DateTime<Utc>,
    reason: String,
    down_for: Option<Duration>,
) -> Notification {
    Notification {
        event_id,
        kind,
        check: "watchdog".into(),
        color: None,
        state: match kind {
            Kind::Up => "up".into(),
            _ => "down".into(),
        },
        reason,
        at,
        down_for: down_for.map(HumanDuration),
        live: None,
        from: None,
        to: None,
        members: Vec::new(),
        source: "prober".into(),
    }
}

/// Event ids are the event's time in milliseconds: unique across restarts
/// without a counter to store. An UP never reuses its DOWN's id.
fn event_id(at: DateTime<Utc>, not: Option<i64>) -> i64 {
    let id = at.timestamp_millis();
    match not {
        Some(n) if n >= id => n + 1,
        _ => id,
    }
}

fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs().max(if d.is_zero() { 0 } else { 1 }))
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const SILENCE: Duration = Duration::from_secs(30);

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_790_000_000 + secs, 0).unwrap()
    }

    /// Feeds (time, answered) observations; returns the final state and the alerts.
    fn run(start: WatchState, steps: &[(i64, bool)]) -> (WatchState, Vec<Notification>) {
        let mut state = start;
        let mut alerts = Vec::new();
        for &(secs, answered) in steps {
            let (next, alert) = observe(
                &state,
                answered,
                Some("connection refused"),
                t(secs),
                SILENCE,
            );
            state = next;
            alerts.extend(alert);
        }
        (state, alerts)
    }

    #[test]
    fn a_watchdog_that_answers_raises_nothing() {
        let steps: Vec<(i64, bool)> = (0..20).map(|i| (i * 5, true)).collect();
        let (state, alerts) = run(WatchState::new(t(0)), &steps);
        assert!(alerts.is_empty());
        assert_eq!(state.last_answer, t(95));
        assert_eq!(state.outage, None);
    }

    #[test]
    fn silence_shorter_than_silence_after_raises_nothing() {
        let (state, alerts) = run(
            WatchState::new(t(0)),
            &[(5, false), (10, false), (29, false), (30, true)],
        );
        assert!(alerts.is_empty());
        assert_eq!(state.last_answer, t(30));
    }

    #[test]
    fn silence_of_silence_after_raises_exactly_one_down() {
        let steps: Vec<(i64, bool)> = (1..=40).map(|i| (i * 5, false)).collect();
        let (state, alerts) = run(WatchState::new(t(0)), &steps);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let n = &alerts[0];
        assert_eq!(n.kind, Kind::Down);
        assert_eq!(n.subject(), "[bgw] DOWN watchdog");
        assert_eq!(n.at, t(30), "dated when the silence crossed the limit");
        assert_eq!(n.reason, "watchdog silent for 30s: connection refused");
        assert_eq!(n.check, "watchdog");
        assert_eq!(n.state, "down");
        assert_eq!(n.source, "prober");
        assert_eq!((n.color, n.down_for), (None, None));
        let event_id = &n.event_id;
        assert_eq!(*event_id, t(30).timestamp_millis());
        assert_eq!(
            state.outage,
            Some(Outage {
                down_at: t(30),
                event_id: *event_id
            })
        );
        assert_eq!(state.deadline(SILENCE), None);
    }

    #[test]
    fn a_late_observation_names_the_real_silence() {
        let (_, alerts) = run(WatchState::new(t(0)), &[(31, false)]);
        assert_eq!(
            alerts[0].reason,
            "watchdog silent for 31s: connection refused"
        );
        assert_eq!(alerts[0].at, t(30));
    }

    #[test]
    fn an_answer_after_a_down_raises_one_up_with_down_for() {
        let (state, alerts) = run(
            WatchState::new(t(0)),
            &[(30, false), (60, false), (75, true), (80, true), (85, true)],
        );
        assert_eq!(alerts.len(), 2);
        let n = &alerts[1];
        assert_eq!(n.kind, Kind::Up);
        assert_eq!(n.subject(), "[bgw] UP watchdog");
        assert_eq!(n.state, "up");
        assert_eq!(n.at, t(75));
        assert_eq!(n.down_for, Some(HumanDuration(Duration::from_secs(75))));
        assert_eq!(n.reason, "watchdog answering again after 1m15s of silence");
        assert_eq!(n.event_id, t(75).timestamp_millis());
        assert_eq!(state.outage, None);
        assert_eq!(state.last_answer, t(85));
    }

    #[test]
    fn a_second_outage_raises_a_second_down() {
        let (_, alerts) = run(
            WatchState::new(t(0)),
            &[
                (30, false),
                (40, true),
                (70, false),
                (71, false),
                (100, true),
            ],
        );
        let kinds: Vec<Kind> = alerts.iter().map(|n| n.kind).collect();
        assert_eq!(kinds, vec![Kind::Down, Kind::Up, Kind::Down, Kind::Up]);
    }

    #[test]
    fn a_restored_outage_is_not_raised_again_and_still_ends_with_up() {
        // The state as a restarted prober reads it back from disk.
        let (saved, alerts) = run(WatchState::new(t(0)), &[(30, false)]);
        assert_eq!(alerts.len(), 1);
        let json = serde_json::to_string(&saved).unwrap();
        let restored: WatchState = serde_json::from_str(&json).unwrap();
        assert_eq!(restored, saved);
        let (_, alerts) = run(restored, &[(300, false), (600, false), (610, true)]);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].kind, Kind::Up);
    }

    #[test]
    fn a_restart_gives_the_watchdog_silence_after_from_the_start_whatever_was_saved() {
        // Saved at t(0) when the watchdog last answered; the prober was then
        // stopped for 100 s, far longer than silence_after.
        let saved = WatchState::new(t(0));
        let resumed = resume(Some(saved), t(100));
        assert_eq!(resumed, WatchState::new(t(100)));
        assert_eq!(resumed.deadline(SILENCE), Some(t(130)));
        let (state, alerts) = run(resumed, &[(100, false), (101, false), (129, false)]);
        assert!(
            alerts.is_empty(),
            "DOWN for the prober's own downtime: {alerts:?}"
        );
        let (_, alerts) = run(state, &[(130, false)]);
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            alerts[0].at,
            t(130),
            "dated from the start, not the old answer"
        );
        assert_eq!(
            alerts[0].reason,
            "watchdog silent for 30s: connection refused"
        );
    }

    #[test]
    fn a_restart_right_after_an_answer_counts_from_the_start_too() {
        // The saved last answer is later than the start (clock skew, or a
        // start within the same second): time never goes back.
        let resumed = resume(Some(WatchState::new(t(50))), t(40));
        assert_eq!(resumed.last_answer, t(50));
        assert_eq!(resume(None, t(40)), WatchState::new(t(40)));
    }

    #[test]
    fn a_restart_during_a_raised_outage_keeps_it_one_outage() {
        let (saved, alerts) = run(WatchState::new(t(0)), &[(30, false)]);
        assert_eq!(alerts.len(), 1);
        let resumed = resume(Some(saved.clone()), t(500));
        assert_eq!(resumed, saved, "the raised outage carries over");
        let (_, alerts) = run(resumed, &[(501, false), (900, false), (910, true)]);
        let kinds: Vec<Kind> = alerts.iter().map(|n| n.kind).collect();
        assert_eq!(kinds, vec![Kind::Up], "no second DOWN, and the UP comes");
        assert_eq!(
            alerts[0].down_for,
            Some(HumanDuration(Duration::from_secs(910)))
        );
    }

    #[test]
    fn the_deadline_is_last_answer_plus_silence_after() {
        let s = WatchState::new(t(10));
        assert_eq!(s.deadline(SILENCE), Some(t(40)));
    }

    #[test]
    fn without_an_error_the_reason_says_no_answer() {
        let (_, alert) = observe(&WatchState::new(t(0)), false, None, t(30), SILENCE);
        assert_eq!(alert.unwrap().reason, "watchdog silent for 30s: no answer");
    }

    #[test]
    fn an_answer_dated_before_the_last_one_does_not_move_time_back() {
        let (s, alert) = observe(&WatchState::new(t(50)), true, None, t(40), SILENCE);
        assert_eq!(s.last_answer, t(50));
        assert_eq!(alert, None);
    }
}
