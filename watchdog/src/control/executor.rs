//! The thin executor of the rollback policy: gathers the facts the control
//! store and the proxy own, adds the caller's observer verdicts, asks
//! [`crate::rollback::decide`], and carries out a `Switch` through the same
//! [`Switcher`] (and record) as a manual toggle. Recording the decision as an
//! event, a log line and a notification is the caller's job.

use super::{facts, switch_and_record, ControlError, SwitchAndRecordError};
use crate::proxy::{probe_direct, LiveState, SwitchReport, Switcher};
use crate::rollback::{decide, Decision, ObserverVerdict, RollbackSettings, View};
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use std::time::Duration;

/// What the watchdog knows that the control store does not.
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
    /// For `Decision::Switch`: the switch's outcome.
    pub switched: Option<Result<SwitchReport, SwitchAndRecordError>>,
}

/// Evaluates the rollback policy once at `now` and, for a `Switch`, switches
/// (recorded as automatic). The target color is probed directly only when
/// its health is the last thing standing between the policy and a switch.
pub async fn evaluate_rollback(
    switcher: &Switcher,
    pool: &SqlitePool,
    settings: &RollbackSettings,
    observations: Observations,
    probe_timeout: Duration,
    now: DateTime<Utc>,
) -> Result<Evaluation, ControlError> {
    let live = switcher.live();
    let live_color = live.color();
    let f = facts(pool, live_color).await?;
    let mut view = View {
        live: live_color,
        previous: f.previous,
        last_toggle: f.last_toggle.as_ref().map(|t| t.as_toggle()),
        observers: observations.observers,
        // Assumed healthy for a first pass: health is the policy's last rule,
        // so a probe is only worth its request when everything else agrees.
        previous_healthy_direct: Some(true),
        previous_health_reason: String::new(),
        deployed_to_previous_since_toggle: f.deployed_to_previous_since_toggle,
        last_automatic_switch: f.last_automatic_switch,
        latched: f.latched,
        disabled: f.disabled,
        watchdog_started: observations.watchdog_started,
        heard_from_all: observations.heard_from_all,
    };
    if let LiveState::Invalid(why) = &live {
        tracing::debug!(%why, "rollback: live color undefined, nothing to decide");
    }
    let mut decision = decide(&view, settings, now);
    if let (Decision::Switch { to, .. } | Decision::DryRun { to, .. }, Some(_)) =
        (&decision, live_color)
    {
        let health = probe_direct(switcher.settings(), *to, probe_timeout).await;
        view.previous_healthy_direct = health.healthy;
        view.previous_health_reason = health.reason;
        decision = decide(&view, settings, now);
    }
    let switched = match &decision {
        Decision::Switch { to, reason } => {
            Some(switch_and_record(switcher, pool, *to, reason, true).await)
        }
        _ => None,
    };
    Ok(Evaluation {
        view,
        decision,
        switched,
    })
}
