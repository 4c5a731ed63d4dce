//! Reminders while checks stay down, and the all-is-well summary on its
//! cron schedule. Both are recorded as events, so they go through the same
//! planning and outbox and survive restarts: the next one is computed from
//! the last one recorded.

use crate::alerting;
use crate::clock::Clock;
use crate::event::{Event, EventKind};
use crate::monitor::{Monitor, Record};
use crate::schedule::Cadence;
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio::sync::watch;

/// The timers' configuration.
#[derive(Clone)]
pub struct Timers {
    pub store: Store,
    pub monitor: Monitor,
    pub clock: Clock,
    pub repeat: Option<Duration>,
    pub all_is_well: Option<Cadence>,
}

/// Runs the timers until `stop` turns true.
pub async fn run_timers(t: Timers, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let now = t.clock.now();
        // A check that goes down is noticed within this poll; its reminders
        // are then timed exactly from when it went down.
        let poll = t
            .repeat
            .filter(|r| !r.is_zero())
            .map_or(Duration::from_secs(60), |r| {
                (r / 2).min(Duration::from_secs(60))
            });
        let mut next = now + poll;
        match due(&t.store, t.repeat, t.all_is_well.as_ref(), now).await {
            Ok((events, at)) => {
                if let Some(at) = at {
                    next = next.min(at);
                }
                if !events.is_empty() {
                    let record = Record {
                        events,
                        ..Record::default()
                    };
                    if let Err(e) = t.monitor.record(record).await {
                        tracing::error!(error = %e, "could not record reminders");
                    }
                    continue;
                }
            }
            Err(e) => tracing::error!(error = %e, "reminder timer failed"),
        }
        tokio::select! {
            _ = t.clock.sleep_until(next) => {}
            _ = stop.changed() => {}
        }
    }
}

/// The reminders and summary due at `now`, and when the next one is.
pub async fn due(
    store: &Store,
    repeat: Option<Duration>,
    all_is_well: Option<&Cadence>,
    now: DateTime<Utc>,
) -> Result<(Vec<Event>, Option<DateTime<Utc>>), StoreError> {
    let mut events = Vec::new();
    let mut next: Option<DateTime<Utc>> = None;
    let mut at_most = |at: DateTime<Utc>| next = Some(next.map_or(at, |n| n.min(at)));
    if let Some(repeat) = repeat.filter(|r| !r.is_zero()) {
        let last = store.last_reminders().await?;
        for (check, color, rt) in store.down_checks().await? {
            let Some(since) = rt.down_since else { continue };
            let at = alerting::next_reminder(repeat, since, last.get(&check).copied());
            if at <= now {
                events.push(Event::new(
                    now,
                    EventKind::Reminder {
                        check,
                        color,
                        down_since: since,
                        reason: rt.reason,
                    },
                ));
            } else {
                at_most(at);
            }
        }
    }
    if let Some(cadence) = all_is_well {
        let last = store.last_all_is_well().await?.unwrap_or(now);
        let at = cadence.next_expected(last);
        if at <= now {
            let members: Vec<bgw_notify::Member> = store
                .list_checks()
                .await?
                .into_iter()
                .map(|c| bgw_notify::Member {
                    color: c.color.as_deref().and_then(|s| s.parse().ok()),
                    check: c.name,
                    state: c.state,
                    reason: c.reason,
                })
                .collect();
            let down = members.iter().filter(|m| m.state == "down").count();
            events.push(Event::new(
                now,
                EventKind::AllIsWell {
                    reason: format!("{} checks, {down} down", members.len()),
                    members,
                },
            ));
        } else {
            at_most(at);
        }
    }
    Ok((events, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{rules_of, CheckKind, CheckSpec};
    use crate::store::{RuntimeUpdate, Write};

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("w.db").to_str().unwrap())
            .await
            .unwrap();
        (dir, store)
    }

    async fn insert(store: &Store, e: Event) {
        let w = Write {
            events: vec![&e],
            ..Write::default()
        };
        store.commit(&w, e.at).await.unwrap();
    }

    #[tokio::test]
    async fn an_all_is_well_summary_due_while_the_watchdog_was_down_is_sent_once() {
        let (_dir, store) = store().await;
        let now = Utc::now();
        let cadence = Cadence::cron("* * * * *", "UTC").unwrap();
        // The watchdog first started three minutes ago; no summary since.
        insert(
            &store,
            Event::new(
                now - chrono::TimeDelta::minutes(3),
                EventKind::Config {
                    check: "blue".into(),
                    reason: "check added".into(),
                },
            ),
        )
        .await;
        let (events, _) = due(&store, None, Some(&cadence), now).await.unwrap();
        assert_eq!(events.len(), 1, "one summary, not one per missed minute");
        assert!(matches!(events[0].kind, EventKind::AllIsWell { .. }));
        insert(&store, events[0].clone()).await;
        let (events, next) = due(&store, None, Some(&cadence), now).await.unwrap();
        assert!(events.is_empty(), "already sent");
        assert!(next.unwrap() > now && next.unwrap() <= now + chrono::TimeDelta::minutes(1));
    }

    #[tokio::test]
    async fn reminders_are_due_every_repeat_after_going_down_and_counted_from_the_last() {
        let (_dir, store) = store().await;
        let now = Utc::now();
        let spec = CheckSpec {
            name: "blue".into(),
            kind: CheckKind::Reporter,
            cadence: Cadence::Period(Duration::from_secs(5)),
            grace: Duration::ZERO,
            token: None,
            max_instances: 64,
        };
        let rules = rules_of(&spec);
        let (loaded, _) = store
            .sync_checks(&[(spec, rules.clone())], now - chrono::TimeDelta::hours(3))
            .await
            .unwrap();
        let (down, _) = crate::state::observe(
            &rules,
            &loaded[0].runtime,
            crate::state::Signal::Fail {
                reason: "broken".into(),
            },
            now - chrono::TimeDelta::minutes(90),
        );
        let w = Write {
            runtimes: vec![RuntimeUpdate {
                id: loaded[0].id,
                runtime: &down,
                ping_count: 0,
            }],
            ..Write::default()
        };
        store.commit(&w, now).await.unwrap();
        let hour = Some(Duration::from_secs(3600));
        let (events, _) = due(&store, hour, None, now).await.unwrap();
        assert_eq!(events.len(), 1);
        assert!(matches!(events[0].kind, EventKind::Reminder { .. }));
        assert!(
            events[0].reason().contains("broken"),
            "{}",
            events[0].reason()
        );
        let mut reminder = events[0].clone();
        reminder.at = now - chrono::TimeDelta::minutes(10);
        insert(&store, reminder).await;
        let (events, next) = due(&store, hour, None, now).await.unwrap();
        assert!(events.is_empty(), "the next one is an hour after the last");
        let next = next.unwrap();
        assert!(
            (next - (now + chrono::TimeDelta::minutes(50)))
                .num_seconds()
                .abs()
                <= 1,
            "{next}"
        );
    }
}
