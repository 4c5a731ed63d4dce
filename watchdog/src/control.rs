//! Blue/green control, the effects: switching nginx (manual toggles and
//! automatic rollbacks alike), deploying to the idle color (the original
//! script's guard: never the live one), scaling, and the operator's
//! rollback controls. Each action returns the [`Record`] that tells what it
//! did (a ledger change and its event, written by the monitor in ONE
//! transaction), so a switch can never be made and not recorded.
//!
//! The decisions live elsewhere: the rollback policy in `rollback`, its
//! evaluation in [`evaluate`], the task that runs it in [`watcher`].

mod evaluate;
#[cfg(test)]
mod tests;
pub mod watcher;

pub use evaluate::{evaluate_rollback, Evaluation, Observations};

use crate::event::{Event, EventKind, Outcome};
use crate::ledger::{ControlChange, DeployRecord, ToggleRecord};
use crate::monitor::{Monitor, MonitorError, Record};
use crate::proxy::{
    run_command, CommandOutcome, LiveState, ProxySettings, SwitchError, SwitchReport, Switcher,
};
use bgw_wire::Color;
use chrono::{DateTime, Utc};

/// Who asked for a switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// An operator (`toggle`), with why, for the record.
    Manual { why: String },
    /// The rollback policy, with its reason.
    Rollback { reason: String },
}

/// A switch that failed, or succeeded but could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum SwitchAndRecordError {
    #[error(transparent)]
    Switch(#[from] SwitchError),
    #[error("switched, but could not record it: {0}")]
    Store(#[from] MonitorError),
}

/// What a switch attempt records: the toggle (successful or not, which
/// keeps the latch and cooldown true, see `ledger::ControlState::apply`)
/// and its event: `toggle`, `rollback` or `switch_failed`. Pure.
pub fn switch_record(
    at: DateTime<Utc>,
    live_before: Option<Color>,
    to: Color,
    trigger: &Trigger,
    result: &Result<SwitchReport, SwitchError>,
) -> Record {
    let from = match result {
        Ok(r) => r.from,
        Err(_) => live_before,
    };
    let (automatic, reason) = match trigger {
        Trigger::Manual { why } => (false, why.clone()),
        Trigger::Rollback { reason } => (true, reason.clone()),
    };
    let toggle = ToggleRecord {
        id: 0,
        at,
        from,
        to,
        automatic,
        reason: reason.clone(),
        ok: result.is_ok(),
        error: result.as_ref().err().map(|e| e.to_string()),
    };
    let event = match (result, trigger) {
        (Ok(report), Trigger::Manual { why }) => EventKind::Toggle {
            from,
            to,
            automatic: false,
            why: why.clone(),
            took_ms: report.total.as_millis() as u64,
        },
        (Ok(report), Trigger::Rollback { reason }) => EventKind::Rollback {
            from: from.unwrap_or(to.other()),
            to,
            reason: reason.clone(),
            took_ms: report.total.as_millis() as u64,
        },
        (Err(e), Trigger::Manual { .. }) => EventKind::SwitchFailed {
            from,
            to,
            automatic: false,
            error: e.to_string(),
        },
        (Err(e), Trigger::Rollback { reason }) => EventKind::SwitchFailed {
            from,
            to,
            automatic: true,
            error: format!("automatic rollback ({reason}): {e}"),
        },
    };
    Record {
        events: vec![Event::new(at, event)],
        control: vec![ControlChange::Toggle(toggle)],
        silences: vec![],
    }
}

/// Switches to `to` through `switcher` (serialized with every other switch
/// and deploy) and records the attempt and its event in one transaction.
/// The switch's own error wins over a store error.
pub async fn switch_and_record(
    switcher: &Switcher,
    monitor: &Monitor,
    at: DateTime<Utc>,
    to: Color,
    trigger: Trigger,
) -> Result<SwitchReport, SwitchAndRecordError> {
    let live_before = switcher.live().color();
    let why = match &trigger {
        Trigger::Manual { why } => why.as_str(),
        Trigger::Rollback { reason } => reason.as_str(),
    };
    let result = switcher.switch(to, why).await;
    let recorded = monitor
        .record(switch_record(at, live_before, to, &trigger, &result))
        .await;
    match (result, recorded) {
        (Err(e), _) => Err(SwitchAndRecordError::Switch(e)),
        (Ok(_), Err(e)) => Err(SwitchAndRecordError::Store(e)),
        (Ok(report), Ok(_)) => Ok(report),
    }
}

/// Why a deploy did not happen or failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The original script's refusal.
    #[error("refusing to deploy to {0}: it is LIVE")]
    Live(Color),
    #[error("refusing to deploy to {color}: the live color is undefined ({why})")]
    LiveUndefined { color: Color, why: String },
    #[error("refusing to deploy: invalid image {0:?} (expected a docker image reference such as registry/app:1.2)")]
    BadImage(String),
    #[error("deploy of {image} to {color} failed: {}", outcome.summary())]
    Failed {
        color: Color,
        image: String,
        outcome: CommandOutcome,
    },
}

/// A deploy that ran `deploy_cmd` successfully.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeployReport {
    pub color: Color,
    pub image: String,
    pub outcome: CommandOutcome,
}

/// A docker image reference: letters, digits and `._-/:@`, not starting
/// with `-` (it would be read as a flag by the command it is passed to).
fn check_image(image: &str) -> Result<(), DeployError> {
    let ok = !image.is_empty()
        && image.len() <= 512
        && !image.starts_with('-')
        && image
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@'));
    if ok {
        Ok(())
    } else {
        Err(DeployError::BadImage(image.chars().take(80).collect()))
    }
}

/// Runs `deploy_cmd` for `color` with `image`, unless `color` is `live`
/// (refused, nothing run). Returns what to record: a deploy that ran is a
/// ledger entry (failed or not: a failed `docker service update` may have
/// replaced some tasks, which disarms rollback to that color) and an event;
/// a refusal is an event only.
pub async fn deploy(
    settings: &ProxySettings,
    at: DateTime<Utc>,
    color: Color,
    image: &str,
    live: Result<Color, String>,
) -> (Result<DeployReport, DeployError>, Record) {
    let refused = match live {
        Ok(live) if live == color => Err(DeployError::Live(color)),
        Err(why) => Err(DeployError::LiveUndefined { color, why }),
        Ok(_) => check_image(image),
    };
    if let Err(e) = refused {
        let event = EventKind::Deploy {
            color,
            outcome: Outcome::Refused,
            reason: e.to_string(),
        };
        return (Err(e), Record::event(Event::new(at, event)));
    }
    let outcome = run_command(
        &settings.deploy_cmd,
        &[("image", image), ("color", color.as_str())],
        settings.command_timeout.0,
    )
    .await;
    tracing::info!(%color, image, ok = outcome.ok, "deploy: {}", outcome.summary());
    let ledger = ControlChange::Deploy(DeployRecord {
        id: 0,
        at,
        color,
        image: image.to_string(),
        ok: outcome.ok,
        output: outcome.output.clone(),
    });
    let (result, event) = if outcome.ok {
        let reason = format!("{image} to {color}: {}", outcome.summary());
        (
            Ok(DeployReport {
                color,
                image: image.to_string(),
                outcome,
            }),
            EventKind::Deploy {
                color,
                outcome: Outcome::Done,
                reason,
            },
        )
    } else {
        let e = DeployError::Failed {
            color,
            image: image.to_string(),
            outcome,
        };
        let reason = e.to_string();
        (
            Err(e),
            EventKind::Deploy {
                color,
                outcome: Outcome::Failed,
                reason,
            },
        )
    };
    let record = Record {
        events: vec![Event::new(at, event)],
        control: vec![ledger],
        silences: vec![],
    };
    (result, record)
}

/// [`deploy`] holding the switch lock, with the live color read from the
/// live file under it, so a switch cannot make `color` live mid-deploy; the
/// record is written before the lock is released. A missing live file
/// (nothing live yet) allows either color; an invalid one refuses.
pub async fn deploy_guarded(
    switcher: &Switcher,
    monitor: &Monitor,
    at: DateTime<Utc>,
    color: Color,
    image: &str,
) -> Result<Result<DeployReport, DeployError>, MonitorError> {
    let _guard = switcher.lock().await;
    let live = match switcher.live() {
        LiveState::Live(c) => Ok(c),
        LiveState::Missing => Ok(color.other()),
        LiveState::Invalid(why) => Err(why),
    };
    let (result, record) = deploy(switcher.settings(), at, color, image, live).await;
    monitor.record(record).await?;
    Ok(result)
}

/// Why scaling failed.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    #[error("scale {color} to {n} failed: {}", outcome.summary())]
    Failed {
        color: Color,
        n: u32,
        outcome: CommandOutcome,
    },
}

/// Runs `scale_cmd` for `color` with `n` replicas; returns the event to record.
pub async fn scale(
    settings: &ProxySettings,
    at: DateTime<Utc>,
    color: Color,
    n: u32,
) -> (Result<CommandOutcome, ScaleError>, Record) {
    let n_text = n.to_string();
    let outcome = run_command(
        &settings.scale_cmd,
        &[("color", color.as_str()), ("n", &n_text)],
        settings.command_timeout.0,
    )
    .await;
    tracing::info!(%color, n, ok = outcome.ok, "scale: {}", outcome.summary());
    let (result, reason) = if outcome.ok {
        let reason = format!("{color} to {n}: {}", outcome.summary());
        (Ok(outcome), reason)
    } else {
        let e = ScaleError::Failed { color, n, outcome };
        let reason = e.to_string();
        (Err(e), reason)
    };
    let event = EventKind::Scale {
        color,
        ok: result.is_ok(),
        reason,
    };
    (result, Record::event(Event::new(at, event)))
}

/// `rollback rearm` (`true`) or `rollback disable`: the ledger change and
/// its event.
pub fn arm_record(at: DateTime<Utc>, armed: bool) -> Record {
    let reason = if armed {
        "automatic rollback re-armed by an operator"
    } else {
        "automatic rollback disabled by an operator (until `rollback rearm`)"
    };
    Record {
        events: vec![Event::new(
            at,
            EventKind::RollbackArmed {
                armed,
                reason: reason.into(),
            },
        )],
        control: vec![ControlChange::Arm(armed)],
        silences: vec![],
    }
}
