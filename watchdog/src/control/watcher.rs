//! The rollback watcher: the task that turns what the watchdog knows (the
//! monitor's snapshot: service checks fed by the agents, the checker's and
//! the prober's target states, the control ledger) into the policy's
//! observer verdicts, runs [`super::evaluate_rollback`] when it may matter,
//! and records what it decided as events (a log line and a notification
//! each).
//!
//! When it works: only while a rollback is possible, i.e. a toggle less than
//! `window` ago, or always with `failover = true`. Then it evaluates at every
//! new snapshot (each commit that touched an observer, a target or the
//! ledger), plus a 250 ms tick inside the window so a decision never waits
//! for the next signal. Otherwise it sleeps until the next snapshot with a
//! toggle: no work at all when no toggle is recent.
//!
//! Recording: a refusal when its rule changes and a dry-run once per
//! episode, not at every evaluation (a rollback or a failed automatic switch
//! is recorded with the switch itself). A `quorum` refusal is only recorded
//! once it has held for a while (the longest period of the observers
//! involved, at least 1 s): one observer seeing the failure a round before
//! the others is not a decision.
//!
//! [`observations`] is pure and unit-tested; [`Watcher::run`] is the edge.

use super::{evaluate_rollback, Evaluation, Observations};
use crate::check::{CheckKind, CheckSpec};
use crate::clock::Clock;
use crate::event::{Event, EventKind};
use crate::monitor::{Monitor, Record, Snapshot};
use crate::proxy::Switcher;
use crate::reports::TargetState;
use crate::rollback::{Decision, ObserverVerdict, RollbackSettings, Rule, Verdict};
use crate::state::{Runtime, State};
use bgw_wire::{format_duration, Color, HeartbeatStatus, Target};
use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the watcher re-evaluates inside a window without a signal.
pub const WINDOW_TICK: Duration = Duration::from_millis(250);
/// With `failover` and outside a window: re-evaluate at least this often.
pub const FAILOVER_TICK: Duration = Duration::from_secs(1);
/// At most one evaluation per this interval inside a window (a storm of
/// heartbeats is one evaluation) ...
const MIN_GAP: Duration = Duration::from_millis(50);
/// ... and outside it, with failover (no toggle to undo: less urgent).
const MIN_GAP_FAILOVER: Duration = Duration::from_millis(250);
/// Timeout of the direct health probe of the rollback target.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The last evaluation of the policy, for `GET /api/v1/rollback`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LastDecision {
    pub at: DateTime<Utc>,
    pub decision: Decision,
    pub observers: Vec<ObserverVerdict>,
    pub heard_from_all: bool,
}

/// Shared with the API: the last decision.
pub type Last = Arc<Mutex<Option<LastDecision>>>;

fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> Duration {
    (now - then).to_std().unwrap_or(Duration::ZERO)
}

fn secs(d: Duration) -> String {
    format_duration(Duration::from_secs(d.as_secs()))
}

/// The observers' verdicts on the `live` color, and whether every expected
/// observer has been heard from since `started` (or has had its own period
/// + grace since then to be heard: after that, its silence is its own).
///
/// - `agents:<live>`: the service checks of the live color, as ONE observer.
///   Down with failing instances → failing, counting their `fail`
///   heartbeats in a row; down with its instances gone silent (the dead-man
///   signal) → failing, one per period of silence; up → healthy.
/// - each reporter (`checker`, `prober`, by its check name), from its
///   `live-proxy` or `public` target: not ok and served by the live color (or
///   by nothing) → failing for its failed rounds in a row; ok and served by
///   the live color → healthy. A silent reporter (its check late or down, or
///   its last result older than 3 periods) is unknown, never failing.
pub fn observations(
    live: Color,
    checks: &[(&CheckSpec, &Runtime)],
    targets: &[TargetState],
    started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Observations {
    let check = |name: &str| checks.iter().find(|(s, _)| s.name == name).map(|(_, r)| *r);
    let mut observers = Vec::new();

    // The agents of the live color: one observer.
    let mut agents: Option<Verdict> = None;
    for (spec, rt) in checks {
        let CheckKind::Service { color: Some(c), .. } = spec.kind else {
            continue;
        };
        if c != live {
            continue;
        }
        let verdict = service_verdict(spec, rt, now);
        agents = Some(match (agents, verdict) {
            (None, v) => v,
            (
                Some(Verdict::Failing {
                    consecutive: a,
                    reason: ra,
                }),
                Verdict::Failing {
                    consecutive: b,
                    reason: rb,
                },
            ) => {
                if b > a {
                    Verdict::Failing {
                        consecutive: b,
                        reason: rb,
                    }
                } else {
                    Verdict::Failing {
                        consecutive: a,
                        reason: ra,
                    }
                }
            }
            (Some(f @ Verdict::Failing { .. }), _) | (_, f @ Verdict::Failing { .. }) => f,
            (Some(Verdict::Healthy), _) | (_, Verdict::Healthy) => Verdict::Healthy,
            (Some(u), _) => u,
        });
    }
    if let Some(verdict) = agents {
        observers.push(ObserverVerdict {
            observer: format!("agents:{live}"),
            color: live,
            verdict,
        });
    }

    // The checker's live-proxy and the prober's public target.
    for s in targets
        .iter()
        .filter(|s| matches!(s.target, Target::LiveProxy | Target::Public))
    {
        let Some((spec, rt)) = checks
            .iter()
            .find(|(c, _)| c.name == s.observer && c.kind == CheckKind::Reporter)
        else {
            continue; // an observer no longer configured
        };
        let period = spec.period();
        let stale_after = (period * 3).max(period + spec.grace);
        let verdict = match rt.state {
            State::Late | State::Down => Verdict::Unknown {
                reason: format!("silent: {}", rt.reason),
            },
            State::Paused => Verdict::Unknown {
                reason: "paused".into(),
            },
            _ if ago(now, s.last_at) > stale_after => Verdict::Unknown {
                reason: format!("no report for {}", secs(ago(now, s.last_at))),
            },
            _ if s.color.is_some_and(|c| c != live) => Verdict::Unknown {
                reason: format!(
                    "{} served by {}, not {live}",
                    s.target,
                    s.color.map_or("-", Color::as_str)
                ),
            },
            _ if s.ok => Verdict::Healthy,
            _ => Verdict::Failing {
                consecutive: s.consecutive_failures,
                reason: format!(
                    "{}: {}",
                    s.target,
                    s.last_error.as_deref().unwrap_or("failed")
                ),
            },
        };
        observers.push(ObserverVerdict {
            observer: s.observer.clone(),
            color: live,
            verdict,
        });
    }

    let settled = |spec: &CheckSpec| {
        check(&spec.name)
            .and_then(|r| r.last_signal)
            .is_some_and(|t| t >= started)
            || ago(now, started) >= spec.period() + spec.grace
    };
    let heard_from_all = checks
        .iter()
        .filter(|(s, _)| match s.kind {
            CheckKind::Reporter => true,
            CheckKind::Service { color, .. } => color == Some(live),
            CheckKind::Heartbeat { .. } => false,
        })
        .all(|(s, _)| settled(s));
    Observations {
        observers,
        watchdog_started: started,
        heard_from_all,
    }
}

fn service_verdict(spec: &CheckSpec, rt: &Runtime, now: DateTime<Utc>) -> Verdict {
    match rt.state {
        State::Up => Verdict::Healthy,
        State::Down => {
            let worst = rt
                .instances
                .values()
                .filter(|i| i.status == HeartbeatStatus::Fail)
                .max_by_key(|i| i.consecutive_fails);
            if let Some(worst) = worst {
                Verdict::Failing {
                    consecutive: worst.consecutive_fails.max(1),
                    reason: worst.detail.clone().unwrap_or_else(|| "failing".into()),
                }
            } else {
                // Silence is the dead-man signal: one vote per period missed.
                let silent = rt.last_signal.map_or(Duration::ZERO, |t| ago(now, t));
                let missed = (silent.as_millis() / spec.period().as_millis().max(1)) as u32;
                Verdict::Failing {
                    consecutive: missed.max(1),
                    reason: format!("no heartbeat for {}", secs(silent)),
                }
            }
        }
        State::Late => Verdict::Unknown {
            reason: "heartbeats late".into(),
        },
        other => Verdict::Unknown {
            reason: format!("check is {other}"),
        },
    }
}

/// What was last recorded, so a decision is recorded when it changes.
#[derive(Debug, Clone, PartialEq)]
enum Recorded {
    Refused(Rule),
    DryRun(Color),
}

/// What the watcher remembers between evaluations.
#[derive(Debug, Default)]
struct Memory {
    recorded: Option<Recorded>,
    quorum_since: Option<DateTime<Utc>>,
}

/// The watcher task's parts.
pub struct Watcher {
    pub switcher: Switcher,
    pub monitor: Monitor,
    pub settings: RollbackSettings,
    pub clock: Clock,
    pub last: Last,
    pub stopped: tokio::sync::watch::Receiver<bool>,
}

impl Watcher {
    /// The observers' checks, as the snapshot holds them.
    fn checks<'a>(&'a self, snapshot: &'a Snapshot) -> Vec<(&'a CheckSpec, &'a Runtime)> {
        snapshot
            .observers
            .iter()
            .map(|o| (&self.monitor.catalog.checks[o.idx].spec, &o.runtime))
            .collect()
    }

    /// How long a quorum refusal must hold before it is recorded.
    fn settle(&self) -> Duration {
        self.monitor
            .catalog
            .checks
            .iter()
            .filter(|e| !matches!(e.spec.kind, CheckKind::Heartbeat { .. }))
            .map(|e| e.spec.period())
            .max()
            .unwrap_or_default()
            .max(Duration::from_secs(1))
    }

    /// Runs until `stopped` turns true.
    pub async fn run(mut self) {
        let settle = self.settle();
        let window = self.settings.window.0;
        let mut snapshots = self.monitor.subscribe();
        let mut memory = Memory::default();
        let mut last_eval: Option<DateTime<Utc>> = None;
        loop {
            if *self.stopped.borrow() {
                return;
            }
            let now = self.clock.now();
            let snapshot = snapshots.borrow_and_update().clone();
            let last_toggle = snapshot.control.last_toggle.as_ref().map(|t| t.at);
            let in_window = last_toggle.is_some_and(|t| ago(now, t) <= window);
            let active = self.settings.enabled && (self.settings.failover || in_window);
            if active {
                let gap = if in_window { MIN_GAP } else { MIN_GAP_FAILOVER };
                if let Some(at) = last_eval {
                    let since = ago(self.clock.now(), at);
                    if since < gap {
                        self.clock.sleep(gap - since).await;
                    }
                }
                let now = self.clock.now();
                last_eval = Some(now);
                let snapshot = snapshots.borrow_and_update().clone();
                self.evaluate(&snapshot, settle, &mut memory, now).await;
            } else {
                memory = Memory::default();
            }
            let tick = if in_window {
                Some(WINDOW_TICK)
            } else if active {
                Some(FAILOVER_TICK)
            } else {
                None
            };
            let clock = self.clock.clone();
            tokio::select! {
                _ = self.stopped.changed() => {}
                changed = snapshots.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = clock.sleep(tick.unwrap_or_default()), if tick.is_some() => {}
            }
        }
    }

    /// One evaluation, recorded when it says something new.
    async fn evaluate(
        &self,
        snapshot: &Snapshot,
        settle: Duration,
        memory: &mut Memory,
        now: DateTime<Utc>,
    ) {
        let Some(live) = self.switcher.live().color() else {
            return;
        };
        let obs = observations(
            live,
            &self.checks(snapshot),
            &snapshot.targets,
            snapshot.started,
            now,
        );
        let e = evaluate_rollback(
            &self.switcher,
            &self.monitor,
            &self.settings,
            &snapshot.control,
            obs,
            PROBE_TIMEOUT,
            now,
        )
        .await;
        *self.last.lock().expect("last decision lock") = Some(LastDecision {
            at: now,
            decision: e.decision.clone(),
            observers: e.view.observers.clone(),
            heard_from_all: e.view.heard_from_all,
        });
        if let Some(event) = decision_event(live, e, settle, memory, now) {
            if let Err(err) = self.monitor.record(Record::event(event)).await {
                tracing::error!(error = %err, "rollback watcher: cannot record the decision");
            }
        }
    }
}

/// The event to record for an evaluation, if it says something new. A
/// switch (or a failed one) was recorded with the switch itself.
fn decision_event(
    live: Color,
    e: Evaluation,
    settle: Duration,
    memory: &mut Memory,
    now: DateTime<Utc>,
) -> Option<Event> {
    if !matches!(
        e.decision,
        Decision::Refuse {
            rule: Rule::Quorum,
            ..
        }
    ) {
        memory.quorum_since = None;
    }
    match &e.decision {
        Decision::Nothing | Decision::Switch { .. } => {
            memory.recorded = None;
            if let Some(Err(err)) = &e.switched {
                tracing::error!(error = %err, "automatic rollback failed");
            }
            None
        }
        Decision::DryRun { to, reason } => {
            if memory.recorded == Some(Recorded::DryRun(*to)) {
                return None;
            }
            memory.recorded = Some(Recorded::DryRun(*to));
            Some(Event::new(
                now,
                EventKind::RollbackDryRun {
                    from: Some(live),
                    to: *to,
                    reason: reason.clone(),
                },
            ))
        }
        Decision::Refuse {
            would_switch_to,
            rule,
            reason,
        } => {
            if memory.recorded == Some(Recorded::Refused(*rule)) {
                return None;
            }
            if *rule == Rule::Quorum {
                let since = *memory.quorum_since.get_or_insert(now);
                if ago(now, since) < settle {
                    return None;
                }
            }
            memory.recorded = Some(Recorded::Refused(*rule));
            Some(Event::new(
                now,
                EventKind::RollbackRefused {
                    from: Some(live),
                    to: *would_switch_to,
                    rule: *rule,
                    reason: reason.clone(),
                },
            ))
        }
    }
}

#[cfg(test)]
mod tests;
