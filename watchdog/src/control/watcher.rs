//! The rollback watcher: the task in `run()` that turns what the watchdog
//! knows (service checks fed by the agents, the checker's and the prober's
//! target states) into the policy's observer verdicts, runs
//! [`super::evaluate_rollback`] when it may matter, and records what it
//! decided as events (a log line and a notification each).
//!
//! When it works: only while a rollback is possible, i.e. a toggle less than
//! `window` ago, or always with `failover = true`. Then it evaluates as soon
//! as a signal arrives (heartbeats and reports wake it, and so does every
//! committed event such as a missed deadline), plus a 250 ms tick inside the
//! window so a decision never waits for the next signal. Otherwise it sleeps
//! until the next toggle: no work at all when no toggle is recent.
//!
//! Recording: a rollback, a failed automatic switch, a dry-run (once per
//! episode) and a refusal when its rule changes, not at every evaluation. A
//! `quorum` refusal is only recorded once it has held for a while (the
//! longest period of the observers involved, at least 1 s): one observer
//! seeing the failure a round before the others is not a decision.
//!
//! [`observations`] is pure and unit-tested; [`Watcher::run`] is the edge.

use super::{evaluate_rollback, events, Evaluation, Observations, SwitchAndRecordError};
use crate::config::{CheckKind, CheckSpec};
use crate::monitor::Monitor;
use crate::observers::Observers;
use crate::proxy::Switcher;
use crate::reports::TargetState;
use crate::rollback::{Decision, ObserverVerdict, RollbackSettings, Rule, Verdict};
use crate::schedule::Cadence;
use crate::store::{self, CheckRow};
use bgw_wire::{format_duration, Color, Target};
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

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

/// What the API and the watcher share.
#[derive(Default)]
pub struct Shared {
    /// A heartbeat or report arrived, or an operator changed the rollback state.
    pub wake: Notify,
    /// A switch was made (the watcher reloads the last toggle).
    pub toggled: Notify,
    /// The last evaluation, for `GET /api/v1/rollback`.
    pub last: std::sync::Mutex<Option<LastDecision>>,
}

impl Shared {
    pub fn last(&self) -> Option<LastDecision> {
        self.last.lock().expect("last decision lock").clone()
    }
}

/// The last evaluation of the policy.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LastDecision {
    pub at: DateTime<Utc>,
    pub decision: Decision,
    pub observers: Vec<ObserverVerdict>,
    pub heard_from_all: bool,
}

fn period_of(spec: &CheckSpec) -> Duration {
    match &spec.cadence {
        Cadence::Period(p) => *p,
        _ => spec.grace.max(Duration::from_secs(1)),
    }
}

fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> Duration {
    (now - then).to_std().unwrap_or(Duration::ZERO)
}

fn secs(d: Duration) -> String {
    format_duration(Duration::from_secs(d.as_secs()))
}

/// The observers' verdicts on the `live` color, and whether every expected
/// observer has been heard from since `started` (or `startup_grace` passed).
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
    specs: &[CheckSpec],
    rows: &[CheckRow],
    targets: &[TargetState],
    started: DateTime<Utc>,
    startup_grace: Duration,
    now: DateTime<Utc>,
) -> Observations {
    let row = |name: &str| rows.iter().find(|r| r.name == name);
    let mut observers = Vec::new();

    // The agents of the live color: one observer.
    let mut agents: Option<Verdict> = None;
    for spec in specs {
        let CheckKind::Service { color: Some(c), .. } = spec.kind else {
            continue;
        };
        if c != live {
            continue;
        }
        let verdict = match row(&spec.name) {
            None => Verdict::Unknown {
                reason: "not stored yet".into(),
            },
            Some(r) => service_verdict(spec, r, now),
        };
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
        let Some(spec) = specs
            .iter()
            .find(|c| c.name == s.observer && c.kind == CheckKind::Reporter)
        else {
            continue; // an observer no longer configured
        };
        let period = period_of(spec);
        let stale_after = (period * 3).max(period + spec.grace);
        let verdict = match row(&spec.name).map(|r| r.state.as_str()) {
            Some("late" | "down") => Verdict::Unknown {
                reason: format!(
                    "silent: {}",
                    row(&spec.name).map_or("", |r| r.reason.as_str())
                ),
            },
            Some("paused") => Verdict::Unknown {
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

    let heard = |name: &str| {
        row(name)
            .and_then(|r| r.last_signal)
            .is_some_and(|t| t >= started)
    };
    let heard_from_all = ago(now, started) >= startup_grace
        || specs
            .iter()
            .filter(|s| match s.kind {
                CheckKind::Reporter => true,
                CheckKind::Service { color, .. } => color == Some(live),
                CheckKind::Heartbeat { .. } => false,
            })
            .all(|s| heard(&s.name));
    Observations {
        observers,
        watchdog_started: started,
        heard_from_all,
    }
}

fn service_verdict(spec: &CheckSpec, r: &CheckRow, now: DateTime<Utc>) -> Verdict {
    match r.state.as_str() {
        "up" => Verdict::Healthy,
        "down" => {
            let failing: Vec<_> = r.instances.iter().filter(|i| i.status == "fail").collect();
            if let Some(worst) = failing.iter().max_by_key(|i| i.consecutive_failures) {
                Verdict::Failing {
                    consecutive: worst.consecutive_failures.max(1),
                    reason: worst.detail.clone().unwrap_or_else(|| "failing".into()),
                }
            } else {
                // Silence is the dead-man signal: one vote per period missed.
                let silent = r.last_signal.map_or(Duration::ZERO, |t| ago(now, t));
                let period = period_of(spec);
                let missed = (silent.as_millis() / period.as_millis().max(1)) as u32;
                Verdict::Failing {
                    consecutive: missed.max(1),
                    reason: format!("no heartbeat for {}", secs(silent)),
                }
            }
        }
        "late" => Verdict::Unknown {
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

/// The watcher task's parts.
pub struct Watcher {
    pub switcher: Switcher,
    pub pool: SqlitePool,
    pub monitor: Monitor,
    pub observers: Arc<Observers>,
    pub settings: RollbackSettings,
    pub startup_grace: Duration,
    pub started: DateTime<Utc>,
    pub shared: Arc<Shared>,
    /// Bumped by the monitor after each commit that recorded events.
    pub committed: watch::Receiver<u64>,
    pub stopped: watch::Receiver<bool>,
}

struct Memory {
    recorded: Option<Recorded>,
    quorum_since: Option<Instant>,
}

impl Watcher {
    /// The checks that can be observers: colored services and reporters
    /// (not the heartbeat jobs, which may be many).
    fn specs(&self) -> Vec<CheckSpec> {
        self.monitor
            .catalog
            .checks
            .iter()
            .filter(|e| match e.spec.kind {
                CheckKind::Service { color, .. } => color.is_some(),
                CheckKind::Reporter => true,
                CheckKind::Heartbeat { .. } => false,
            })
            .map(|e| e.spec.clone())
            .collect()
    }

    /// How long a quorum refusal must hold before it is recorded.
    fn settle(&self, specs: &[CheckSpec]) -> Duration {
        specs
            .iter()
            .filter(|s| !matches!(s.kind, CheckKind::Heartbeat { .. }))
            .map(period_of)
            .max()
            .unwrap_or_default()
            .max(Duration::from_secs(1))
    }

    async fn last_toggle_at(&self) -> Option<DateTime<Utc>> {
        match super::last_toggle(&self.pool).await {
            Ok(t) => t.map(|t| t.at),
            Err(e) => {
                tracing::error!(error = %e, "rollback watcher: cannot read the last toggle");
                None
            }
        }
    }

    /// Runs until `stopped` turns true.
    pub async fn run(mut self) {
        let specs = self.specs();
        let settle = self.settle(&specs);
        let window = self.settings.window.0;
        let mut last_toggle = self.last_toggle_at().await;
        let mut memory = Memory {
            recorded: None,
            quorum_since: None,
        };
        let mut committed_open = true;
        let mut last_eval: Option<Instant> = None;
        loop {
            if *self.stopped.borrow() {
                return;
            }
            let now = Utc::now();
            let in_window = last_toggle.is_some_and(|t| ago(now, t) <= window);
            let active = self.settings.enabled && (self.settings.failover || in_window);
            if active {
                let gap = if in_window { MIN_GAP } else { MIN_GAP_FAILOVER };
                if let Some(at) = last_eval {
                    let since = at.elapsed();
                    if since < gap {
                        tokio::time::sleep(gap - since).await;
                    }
                }
                last_eval = Some(Instant::now());
                if let Some(switched) = self.evaluate(&specs, settle, &mut memory).await {
                    if switched {
                        last_toggle = self.last_toggle_at().await;
                    }
                }
            } else {
                memory.recorded = None;
                memory.quorum_since = None;
            }
            let tick = if in_window {
                Some(WINDOW_TICK)
            } else if active {
                Some(FAILOVER_TICK)
            } else {
                None
            };
            tokio::select! {
                _ = self.stopped.changed() => {}
                _ = self.shared.toggled.notified() => {
                    last_toggle = self.last_toggle_at().await;
                }
                _ = self.shared.wake.notified(), if active => {}
                changed = self.committed.changed(), if active && committed_open => {
                    committed_open = changed.is_ok();
                }
                _ = tokio::time::sleep(tick.unwrap_or_default()), if tick.is_some() => {}
            }
        }
    }

    /// One evaluation; `Some(true)` when it switched.
    async fn evaluate(
        &self,
        specs: &[CheckSpec],
        settle: Duration,
        memory: &mut Memory,
    ) -> Option<bool> {
        let now = Utc::now();
        let live = self.switcher.live().color()?;
        // Only the observers' checks: a watchdog may hold many other ones.
        let mut rows = Vec::with_capacity(specs.len());
        for spec in specs {
            match store::get_check(&self.pool, &spec.name).await {
                Ok(Some(row)) => rows.push(row),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "rollback watcher: cannot read the checks");
                    return None;
                }
            }
        }
        let targets = self.observers.snapshot().await;
        let obs = observations(
            live,
            specs,
            &rows,
            &targets,
            self.started,
            self.startup_grace,
            now,
        );
        let e = match evaluate_rollback(
            &self.switcher,
            &self.pool,
            &self.settings,
            obs,
            PROBE_TIMEOUT,
            now,
        )
        .await
        {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "rollback watcher: evaluation failed");
                return None;
            }
        };
        *self.shared.last.lock().expect("last decision lock") = Some(LastDecision {
            at: now,
            decision: e.decision.clone(),
            observers: e.view.observers.clone(),
            heard_from_all: e.view.heard_from_all,
        });
        Some(self.record(live, e, settle, memory).await)
    }

    /// Records what the evaluation decided; `true` when it switched.
    async fn record(
        &self,
        live: Color,
        e: Evaluation,
        settle: Duration,
        memory: &mut Memory,
    ) -> bool {
        let now = Utc::now();
        if !matches!(
            e.decision,
            Decision::Refuse {
                rule: Rule::Quorum,
                ..
            }
        ) {
            memory.quorum_since = None;
        }
        let (event, switched) = match (&e.decision, e.switched) {
            (Decision::Nothing, _) => {
                memory.recorded = None;
                return false;
            }
            (Decision::Switch { to, reason }, Some(Ok(report))) => {
                memory.recorded = None;
                let took = report.total.as_millis() as u64;
                (
                    events::rollback(now, report.from.unwrap_or(live), *to, reason, took),
                    true,
                )
            }
            (Decision::Switch { to, reason }, Some(Err(SwitchAndRecordError::Store(err)))) => {
                tracing::error!(error = %err, "rollback switched but could not be recorded");
                memory.recorded = None;
                (events::rollback(now, live, *to, reason, 0), true)
            }
            (Decision::Switch { to, reason }, Some(Err(SwitchAndRecordError::Switch(err)))) => {
                memory.recorded = None;
                (
                    events::switch_failed(
                        now,
                        Some(live),
                        *to,
                        true,
                        &format!("automatic rollback ({reason}): {err}"),
                    ),
                    false,
                )
            }
            (Decision::Switch { .. }, None) => return false,
            (Decision::DryRun { to, reason }, _) => {
                if memory.recorded == Some(Recorded::DryRun(*to)) {
                    return false;
                }
                memory.recorded = Some(Recorded::DryRun(*to));
                (
                    events::rollback_dry_run(now, Some(live), *to, reason),
                    false,
                )
            }
            (
                Decision::Refuse {
                    would_switch_to,
                    rule,
                    reason,
                },
                _,
            ) => {
                if memory.recorded == Some(Recorded::Refused(*rule)) {
                    return false;
                }
                if *rule == Rule::Quorum {
                    let since = *memory.quorum_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < settle {
                        return false;
                    }
                }
                memory.recorded = Some(Recorded::Refused(*rule));
                (
                    events::rollback_refused(now, Some(live), *would_switch_to, *rule, reason),
                    false,
                )
            }
        };
        if let Err(err) = self.monitor.record(vec![event]).await {
            tracing::error!(error = %err, "rollback watcher: cannot record the decision");
        }
        switched
    }
}

#[cfg(test)]
mod tests;
