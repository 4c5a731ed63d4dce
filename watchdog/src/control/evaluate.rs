//! One evaluation of the rollback policy: the view from the ledger (as the
//! monitor's snapshot holds it) and the observers' verdicts, the pure
//! [`crate::rollback::decide`], a direct probe of the target color only when
//! its health is the last thing standing between the policy and a switch,
//! and for a `Switch` the same switch (and record) as a manual toggle.
//! Recording a refusal or a dry-run is the caller's job.

use super::{switch_and_record, SwitchAndRecordError, Trigger};
use crate::ledger::ControlState;
use crate::monitor::Monitor;
use crate::proxy::{probe_direct, LiveState, SwitchReport, Switcher};
use crate::rollback::{decide, Decision, ObserverVerdict, RollbackSettings, View};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// What the watchdog knows besides the ledger.
#[derive(Debug, Clone)]
pub struct Observations {
    pub observers: Vec<ObserverVerdict>,
    pub watchdog_started: DateTime<Utc>,
    pub heard_from_all: bool,
}

/// One evaluation of the policy and what was done about it.
#[derive(Debug)]
pub struct Evaluation {
    /// The view the decision was made on (for the event).
    pub view: View,
    pub decision: Decision,
    /// For `Decision::Switch`: the switch's outcome (recorded with its event).
    pub switched: Option<Result<SwitchReport, SwitchAndRecordError>>,
}

/// The policy's view of the ledger and the observations.
pub fn view(live: Option<bgw_wire::Color>, control: &ControlState, o: Observations) -> View {
    let previous = control.previous(live);
    View {
        live,
        previous,
        last_toggle: control.last_toggle.as_ref().map(|t| t.as_toggle()),
        observers: o.observers,
        // Assumed healthy for a first pass: health is the policy's last rule,
        // so a probe is only worth its request when everything else agrees.
        previous_healthy_direct: Some(true),
        previous_health_reason: String::new(),
        deployed_to_previous_since_toggle: live
            .is_some_and(|l| control.deployed_since_toggle(l.other())),
        last_automatic_switch: control.rollback.last_automatic_at,
        latched: control.rollback.latched,
        disabled: control.rollback.disabled,
        watchdog_started: o.watchdog_started,
        heard_from_all: o.heard_from_all,
    }
}

/// Evaluates the rollback policy once at `now` and, for a `Switch`, switches
/// (recorded as automatic, with its `rollback` event).
pub async fn evaluate_rollback(
    switcher: &Switcher,
    monitor: &Monitor,
    settings: &RollbackSettings,
    control: &ControlState,
    observations: Observations,
    probe_timeout: Duration,
    now: DateTime<Utc>,
) -> Evaluation {
    let live = switcher.live();
    if let LiveState::Invalid(why) = &live {
        tracing::debug!(%why, "rollback: live color undefined, nothing to decide");
    }
    let mut view = view(live.color(), control, observations);
    let mut decision = decide(&view, settings, now);
    if let (Decision::Switch { to, .. } | Decision::DryRun { to, .. }, Some(_)) =
        (&decision, live.color())
    {
        let health = probe_direct(switcher.settings(), *to, probe_timeout).await;
        view.previous_healthy_direct = health.healthy;
        view.previous_health_reason = health.reason;
        decision = decide(&view, settings, now);
    }
    let switched = match &decision {
        Decision::Switch { to, reason } => Some(
            switch_and_record(
                switcher,
                monitor,
                now,
                *to,
                Trigger::Rollback {
                    reason: reason.clone(),
                },
            )
            .await,
        ),
        _ => None,
    };
    Evaluation {
        view,
        decision,
        switched,
    }
}
