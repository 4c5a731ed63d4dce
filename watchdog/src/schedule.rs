//! When a check's next signal is expected: a fixed period after the last one,
//! or the next time of a cron schedule in a time zone, and from that the two
//! deadlines (late, then down after the grace).
//!
//! # Cron schedules and daylight saving time
//!
//! Expressions are standard five-field crontabs (`minute hour day-of-month
//! month day-of-week`, names like `MON` and `JAN`, Sunday as 0 or 7, and the
//! `@hourly` … `@yearly` macros); `schedule/crontab.rs` holds the
//! syntax. They are evaluated on the LOCAL wall clock of the check's IANA time
//! zone, the way cronie (Vixie cron) runs the job we are watching, so that the
//! watchdog expects a signal exactly when the job really runs:
//!
//! - A *fixed-time* schedule (minute and hour fields do not start with `*`,
//!   e.g. `0 3 * * *`, `30 2 * * SUN`, `15,45 2 * * *`):
//!   - a local time that does not exist (spring forward: 02:30 on the last
//!     Sunday of March in Europe/Madrid) fires at the first real instant after
//!     the gap (03:00 local), once, however many of its times fell in the gap;
//!   - a local time that happens twice (fall back: 02:30 on the last Sunday of
//!     October) fires once, at the first occurrence.
//! - A *wildcard* schedule (minute or hour field starts with `*`, e.g.
//!   `30 * * * *`, `*/5 * * * *`, `0 */2 * * *`, `@hourly`) follows the
//!   clock as it is: a local time in the spring-forward gap does not fire (the
//!   next one does, so an hourly job still fires every real hour), and a local
//!   time that happens twice fires at both instants (an hourly job fires at
//!   both real 02:30s, one real hour apart).
//!
//! Either way an instant is never expected twice, and no day is skipped. The
//! computation assumes, like cronie, that a zone's offset changes by at most
//! three hours at a time, which holds for every zone's current rules.

mod crontab;

use std::sync::Arc;
use std::time::Duration;

use chrono::{
    DateTime, Datelike, FixedOffset, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc,
};
use chrono_tz::Tz;

/// How often a check is expected to signal.
#[derive(Debug, Clone, PartialEq)]
pub enum Cadence {
    /// A signal is due this long after the previous one.
    Period(Duration),
    /// A signal is due at each time of a cron schedule.
    Cron(CronCadence),
}

/// A cron schedule on the wall clock of a time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct CronCadence {
    /// The expression as written (trimmed, runs of blanks collapsed).
    expression: String,
    /// Shared: checks are cloned into snapshots, schedules are large.
    compiled: Arc<Compiled>,
    timezone: Tz,
}

#[derive(Debug, PartialEq)]
struct Compiled {
    /// The translated schedule, evaluated on naive local times.
    schedule: cron::Schedule,
    /// The day-of-week half when day-of-month and day-of-week are both
    /// restricted: cron fires when either matches.
    alternate: Option<cron::Schedule>,
    /// The minute or hour field starts with `*` (see the module docs).
    wildcard: bool,
}

/// Why a cadence could not be built. The message quotes what was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression is malformed or never fires.
    #[error("invalid cron expression {expression:?}: {problem}")]
    Expression { expression: String, problem: String },
    /// The time zone is not an IANA name.
    #[error(
        "unknown timezone {timezone:?}: expected an IANA time zone name such as \"Europe/Madrid\" or \"UTC\""
    )]
    Timezone { timezone: String },
    /// A period of zero would make every check late at once.
    #[error("the period must be longer than zero")]
    ZeroPeriod,
}

/// How far the zone's offset may move across one DST transition (cronie
/// treats larger jumps as clock changes, not DST).
const MAX_SHIFT: TimeDelta = TimeDelta::hours(3);

impl Cadence {
    /// A fixed period; zero is refused.
    pub fn period(period: Duration) -> Result<Cadence, ScheduleError> {
        if period.is_zero() {
            return Err(ScheduleError::ZeroPeriod);
        }
        Ok(Cadence::Period(period))
    }

    /// A five-field crontab (or `@daily`-style macro) evaluated in the IANA
    /// time zone `timezone`.
    pub fn cron(expr: &str, timezone: &str) -> Result<Cadence, ScheduleError> {
        CronCadence::new(expr, timezone).map(Cadence::Cron)
    }

    /// Period: `after` + the period. Cron: the first scheduled instant
    /// strictly after `after`, or [`DateTime::<Utc>::MAX_UTC`] if the
    /// schedule has no time left (the `cron` crate stops at the year 2100).
    pub fn next_expected(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Cadence::Period(period) => add(after, *period),
            Cadence::Cron(cron) => cron.next_after(after),
        }
    }

    /// `every 5s`, or `0 3 * * * (Europe/Madrid)`.
    pub fn describe(&self) -> String {
        match self {
            Cadence::Period(period) => format!("every {}", bgw_wire::format_duration(*period)),
            Cadence::Cron(cron) => format!("{} ({})", cron.expression, cron.timezone.name()),
        }
    }
}

impl std::fmt::Display for Cadence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A check's two deadlines from its last signal: late at the expected time,
/// down once `grace` has passed after that.
pub fn deadlines(
    cadence: &Cadence,
    grace: Duration,
    last_signal: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let late_at = cadence.next_expected(last_signal);
    (late_at, add(late_at, grace))
}

/// `at + d`, saturating at the end of time instead of panicking.
fn add(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl CronCadence {
    /// Parses `expr` (see the module docs) in the zone named `timezone`.
    pub fn new(expr: &str, timezone: &str) -> Result<CronCadence, ScheduleError> {
        let expression = expr.split_whitespace().collect::<Vec<_>>().join(" ");
        let invalid = |problem: String| ScheduleError::Expression {
            expression: expr.to_string(),
            problem,
        };
        let tab = crontab::parse(&expression).map_err(invalid)?;
        let compile = |text: &str| {
            text.parse::<cron::Schedule>()
                .map_err(|e| invalid(format!("{e} (translated to {text:?})")))
        };
        let schedule = compile(&tab.primary)?;
        let alternate = tab.alternate.as_deref().map(compile).transpose()?;
        let timezone = timezone
            .trim()
            .parse::<Tz>()
            .map_err(|_| ScheduleError::Timezone {
                timezone: timezone.to_string(),
            })?;
        Ok(CronCadence {
            expression,
            compiled: Arc::new(Compiled {
                schedule,
                alternate,
                wildcard: tab.wildcard,
            }),
            timezone,
        })
    }

    /// The expression as written (trimmed, blanks collapsed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The zone whose wall clock the expression is read on.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The first scheduled instant strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        // The cron crate's years run from 1970 to 2100; staying inside them
        // also keeps the local-time arithmetic far from chrono's limits.
        if after.year() > 2100 {
            return DateTime::<Utc>::MAX_UTC;
        }
        let after = after.max(EPOCH);
        self.next_without_transition(after)
            .or_else(|| self.next_near_transition(after))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    fn offset(&self, at: DateTime<Utc>) -> FixedOffset {
        self.timezone
            .offset_from_utc_datetime(&at.naive_utc())
            .fix()
    }

    fn local(&self, at: DateTime<Utc>) -> NaiveDateTime {
        at.with_timezone(&self.timezone).naive_local()
    }

    /// The common case, in a few lookups: no offset change within
    /// [`MAX_SHIFT`] of `after`, so no earlier local time can come again, and
    /// the next matching local time exists exactly once. Then it is the answer
    /// (any transition between `after` and it would have put a matching local
    /// time in a gap or an overlap, which this refuses). `None` means: ask
    /// [`Self::next_near_transition`].
    fn next_without_transition(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let offset = self.offset(after);
        let before = after.checked_sub_signed(MAX_SHIFT)?;
        let later = after.checked_add_signed(MAX_SHIFT)?;
        if self.offset(before) != offset || self.offset(later) != offset {
            return None;
        }
        let next = self.local_times_after(self.local(after)).next()?;
        match self.timezone.from_local_datetime(&next) {
            LocalResult::Single(at) => Some(at.with_timezone(&Utc)),
            _ => None,
        }
    }

    /// The general case: map every matching local time from [`MAX_SHIFT`]
    /// before `after`'s local time to instants (zero, one or two of them, see
    /// the module docs) and keep the earliest one after `after`. Once the
    /// local times run [`MAX_SHIFT`] past the best found, none can beat it.
    fn next_near_transition(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = self.local(after).checked_sub_signed(MAX_SHIFT)?;
        let mut best: Option<DateTime<Utc>> = None;
        for local in self.local_times_after(start) {
            if let Some(best) = best {
                if local > self.local(best) + MAX_SHIFT {
                    break;
                }
            }
            for at in self.instants(local).into_iter().flatten() {
                let better = match best {
                    Some(best) => at < best,
                    None => true,
                };
                if at > after && better {
                    best = Some(at);
                }
            }
        }
        best
    }

    /// The real instants at which the local time `local` fires.
    fn instants(&self, local: NaiveDateTime) -> [Option<DateTime<Utc>>; 2] {
        match self.timezone.from_local_datetime(&local) {
            LocalResult::Single(at) => [Some(at.with_timezone(&Utc)), None],
            LocalResult::Ambiguous(first, second) if self.compiled.wildcard => [
                Some(first.with_timezone(&Utc)),
                Some(second.with_timezone(&Utc)),
            ],
            LocalResult::Ambiguous(first, _) => [Some(first.with_timezone(&Utc)), None],
            LocalResult::None if self.compiled.wildcard => [None, None],
            LocalResult::None => [self.end_of_gap(local), None],
        }
    }

    /// The first real instant whose local time is past `local`, which lies in
    /// a spring-forward gap: the transition itself. Found by bisection over
    /// a window that holds it for every possible offset (-12h..+14h).
    fn end_of_gap(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        let past =
            |ts: i64| DateTime::from_timestamp(ts, 0).is_some_and(|at| self.local(at) > local);
        let naive = local.and_utc().timestamp();
        let (mut lo, mut hi) = (naive - 15 * 3600, naive + 13 * 3600);
        if past(lo) || !past(hi) {
            return None;
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if past(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        DateTime::from_timestamp(hi, 0)
    }

    /// The local times matching the expression, strictly after `start`, in
    /// order and without repeats. The schedule runs on `Utc` as a stand-in for
    /// a naive local clock.
    fn local_times_after(&self, start: NaiveDateTime) -> impl Iterator<Item = NaiveDateTime> + '_ {
        let start = start.and_utc();
        let mut primary = self.compiled.schedule.after(&start).peekable();
        let mut alternate = self
            .compiled
            .alternate
            .as_ref()
            .map(|s| s.after(&start).peekable());
        std::iter::from_fn(move || {
            let Some(alternate) = alternate.as_mut() else {
                return primary.next();
            };
            match (primary.peek(), alternate.peek()) {
                (Some(a), Some(b)) if a == b => {
                    alternate.next();
                    primary.next()
                }
                (Some(a), Some(b)) if b < a => alternate.next(),
                (Some(_), _) => primary.next(),
                (None, _) => alternate.next(),
            }
        })
        .map(|at| at.naive_utc())
    }
}

/// Every schedule fires after this instant (the cron crate starts in 1970).
const EPOCH: DateTime<Utc> = DateTime::UNIX_EPOCH;

#[cfg(test)]
mod tests;
