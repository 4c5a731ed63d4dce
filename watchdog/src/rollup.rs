//! Uptime rollups: the pure fold of check state transitions into per-hour
//! buckets of time spent up and down, and the reads the status page makes
//! of them (uptime over 24 h / 7 d / 30 d, a per-hour history bar).
//!
//! The fold is incremental: each check has a cursor (its health and since
//! when); a run adds the time from each cursor to the next transition (or to
//! `until`) into the hours it spans, then moves the cursor. The store keeps
//! the buckets, the cursors and the id of the last event folded in, so a
//! page load reads a few aggregated rows and never rescans raw events.
//! `late` counts as up (the deadline passed but the grace did not), `new`
//! and `paused` count as neither.

use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// Milliseconds in one bucket.
pub const HOUR_MS: i64 = 3_600_000;

/// What a state counts as in uptime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Up,
    Down,
    Unknown,
}

impl Health {
    /// From a stored state name (`up`, `late`, `down`, `new`, `paused`).
    pub fn of_state(state: &str) -> Health {
        match state {
            "up" | "late" => Health::Up,
            "down" => Health::Down,
            _ => Health::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Down => "down",
            Health::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Health {
        match s {
            "up" => Health::Up,
            "down" => Health::Down,
            _ => Health::Unknown,
        }
    }
}

/// A check's open interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub health: Health,
    pub since: DateTime<Utc>,
}

/// A state event, as the fold reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub check: String,
    pub at: DateTime<Utc>,
    pub to: Health,
}

/// Time to add to one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    pub check: String,
    pub hour: i64,
    pub up_ms: i64,
    pub down_ms: i64,
}

/// Folds `transitions` (in event order) and then the open intervals up to
/// `until` into bucket additions, moving the cursors. A check without a
/// cursor starts at its first transition. A transition dated before its
/// cursor (an event dated at a deadline already folded past) is taken at
/// the cursor: time is never counted twice.
pub fn fold(
    cursors: &mut HashMap<String, Cursor>,
    transitions: &[Transition],
    until: DateTime<Utc>,
) -> Vec<Add> {
    let mut adds: HashMap<(String, i64), (i64, i64)> = HashMap::new();
    let mut span = |check: &str, c: Cursor, to: DateTime<Utc>| {
        if c.health == Health::Unknown {
            return;
        }
        let (mut from, to) = (c.since.timestamp_millis(), to.timestamp_millis());
        while from < to {
            let hour = from.div_euclid(HOUR_MS);
            let end = ((hour + 1) * HOUR_MS).min(to);
            let slot = adds.entry((check.to_string(), hour)).or_default();
            match c.health {
                Health::Up => slot.0 += end - from,
                Health::Down => slot.1 += end - from,
                Health::Unknown => {}
            }
            from = end;
        }
    };
    for t in transitions {
        match cursors.get_mut(&t.check) {
            Some(c) => {
                let at = t.at.max(c.since);
                span(&t.check, *c, at);
                *c = Cursor {
                    health: t.to,
                    since: at,
                };
            }
            None => {
                cursors.insert(
                    t.check.clone(),
                    Cursor {
                        health: t.to,
                        since: t.at,
                    },
                );
            }
        }
    }
    for (check, c) in cursors.iter_mut() {
        if c.since < until {
            span(check, *c, until);
            c.since = until;
        }
    }
    let mut out: Vec<Add> = adds
        .into_iter()
        .map(|((check, hour), (up_ms, down_ms))| Add {
            check,
            hour,
            up_ms,
            down_ms,
        })
        .collect();
    out.sort_by(|a, b| (&a.check, a.hour).cmp(&(&b.check, b.hour)));
    out
}

/// One check's buckets: hour -> (up ms, down ms).
pub type Hours = HashMap<i64, (i64, i64)>;

/// The windows uptime is shown over, in hours: 24 h, 7 d, 30 d.
pub const WINDOWS: [i64; 3] = [24, 24 * 7, 24 * 30];

/// The share of known time that was up; `None` without any known time.
pub fn ratio(up_ms: i64, down_ms: i64) -> Option<f64> {
    (up_ms + down_ms > 0).then(|| up_ms as f64 / (up_ms + down_ms) as f64)
}

/// The (up, down) sums of `hours` over each of [`WINDOWS`] ending with the
/// hour of `now` (the store computes the same in SQL for every check).
pub fn sums(hours: &Hours, now: DateTime<Utc>) -> [(i64, i64); 3] {
    let current = now.timestamp_millis().div_euclid(HOUR_MS);
    WINDOWS.map(|span| {
        hours
            .iter()
            .filter(|(h, _)| **h > current - span && **h <= current)
            .fold((0, 0), |(u, d), (_, (bu, bd))| (u + bu, d + bd))
    })
}

/// One segment of the history bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Segment {
    /// Up the whole known time.
    Up,
    /// Down some of the time.
    Down,
    /// Nothing known.
    None,
}

/// The last `n` hours, oldest first.
pub fn history(hours: &Hours, now: DateTime<Utc>, n: i64) -> Vec<Segment> {
    let current = now.timestamp_millis().div_euclid(HOUR_MS);
    (current - n + 1..=current)
        .map(|h| match hours.get(&h) {
            Some((_, d)) if *d > 0 => Segment::Down,
            Some((u, _)) if *u > 0 => Segment::Up,
            _ => Segment::None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, h, m, 0).unwrap()
    }

    fn t(check: &str, when: DateTime<Utc>, to: Health) -> Transition {
        Transition {
            check: check.into(),
            at: when,
            to,
        }
    }

    fn hours_of(adds: &[Add]) -> Hours {
        adds.iter()
            .map(|a| (a.hour, (a.up_ms, a.down_ms)))
            .collect()
    }

    #[test]
    fn an_outage_spanning_an_hour_boundary_is_split_between_the_two_hours() {
        let mut cursors = HashMap::from([(
            "blue".to_string(),
            Cursor {
                health: Health::Up,
                since: at(10, 0),
            },
        )]);
        let adds = fold(
            &mut cursors,
            &[
                t("blue", at(10, 50), Health::Down),
                t("blue", at(11, 20), Health::Up),
            ],
            at(12, 0),
        );
        let h = hours_of(&adds);
        let ten = at(10, 0).timestamp_millis() / HOUR_MS;
        assert_eq!(h[&ten], (50 * 60_000, 10 * 60_000));
        assert_eq!(h[&(ten + 1)], (40 * 60_000, 20 * 60_000));
        assert_eq!(cursors["blue"].since, at(12, 0));
        assert_eq!(cursors["blue"].health, Health::Up);
    }

    #[test]
    fn folding_twice_never_counts_the_same_time_twice() {
        let mut cursors = HashMap::new();
        let first = fold(&mut cursors, &[t("b", at(9, 0), Health::Up)], at(9, 30));
        let again = fold(&mut cursors, &[], at(9, 30));
        assert_eq!(first[0].up_ms, 30 * 60_000);
        assert!(again.is_empty(), "nothing new to count: {again:?}");
        // An event dated before the cursor (noticed late) starts at the cursor.
        let late = fold(&mut cursors, &[t("b", at(9, 10), Health::Down)], at(9, 40));
        assert_eq!(late[0].down_ms, 10 * 60_000);
        assert_eq!(late[0].up_ms, 0);
    }

    #[test]
    fn paused_and_new_time_counts_neither_up_nor_down() {
        let mut cursors = HashMap::new();
        let adds = fold(
            &mut cursors,
            &[
                t("c", at(8, 0), Health::Unknown),
                t("c", at(8, 30), Health::Up),
            ],
            at(9, 0),
        );
        assert_eq!(adds.len(), 1);
        assert_eq!((adds[0].up_ms, adds[0].down_ms), (30 * 60_000, 0));
    }

    #[test]
    fn uptime_covers_only_its_window_and_history_marks_hours_with_any_downtime_red() {
        let now = at(12, 30);
        let cur = now.timestamp_millis() / HOUR_MS;
        let hours: Hours = HashMap::from([
            (cur, (30 * 60_000, 0)),
            (cur - 1, (45 * 60_000, 15 * 60_000)),
            (cur - 48, (0, 60 * 60_000)), // outside 24 h, inside 7 d
        ]);
        let [day, week, _] = sums(&hours, now).map(|(u, d)| ratio(u, d).unwrap());
        assert!((day - 75.0 / 90.0).abs() < 1e-9, "{day}");
        assert!((week - 75.0 / 150.0).abs() < 1e-9, "{week}");
        assert_eq!(ratio(0, 0), None);
        let bar = history(&hours, now, 3);
        assert_eq!(bar, vec![Segment::None, Segment::Down, Segment::Up]);
    }
}
