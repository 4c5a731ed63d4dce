//! The automatic rollback policy, as a pure function: [`decide`] looks at a
//! snapshot of the world ([`View`], built from the monitor's snapshot) and
//! an explicit `now`, and says whether to switch back, only say so
//! (dry-run), refuse (with the reason, to be recorded as an event), or do
//! nothing. It has no clock, no I/O and no memory: the latch, the cooldown
//! and the deploys are facts in the view, kept by the control ledger.
//!
//! The rules, in the order they are applied (the first that refuses wins):
//! 1. rollback disabled (config or `rollback disable`) → nothing;
//! 2. the live color is not seen failing by any observer for `fail_after`
//!    consecutive signals → nothing;
//! 3. refuse until every observer has reported since the watchdog started
//!    or had its own period + grace to do so (right after a start, their
//!    verdicts may be the watchdog's own silence read back), when a rollback
//!    or a failover is possible at all;
//! 4. the last toggle made the live color live within `window` → consider a
//!    rollback to the previous color; otherwise, only with `failover`,
//!    consider switching to the idle color; otherwise → nothing (the failure
//!    is an alert, not a rollback);
//! 5. refuse when the toggle being undone was itself automatic (never flip
//!    back and forth), or there is no previous color;
//! 6. refuse while latched after an automatic switch (until `rollback rearm`
//!    or a manual toggle);
//! 7. refuse unless at least `quorum` distinct observers see it failing
//!    (all agents of a color count as one; `Unknown` never counts);
//! 8. refuse within `cooldown` of the last automatic switch;
//! 9. refuse when the target color was redeployed since the toggle;
//! 10. refuse unless the target color is healthy right now, checked directly;
//! 11. `dry-run` → [`Decision::DryRun`], else [`Decision::Switch`].

mod settings;
#[cfg(test)]
mod tests;

pub use settings::{Mode, RollbackConfigError, RollbackSettings};

use bgw_wire::{format_duration, Color};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The last successful switch of the live color.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Toggle {
    pub at: DateTime<Utc>,
    pub from: Option<Color>,
    pub to: Color,
    pub automatic: bool,
}

/// What one observer currently says about one color.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// `consecutive` failed signals in a row (a missed agent deadline is one).
    Failing {
        consecutive: u32,
        reason: String,
    },
    Healthy,
    /// No opinion: a silent checker or prober, or not heard from yet.
    Unknown {
        reason: String,
    },
}

/// An observer's verdict: `observer` is `agents:<color>` (all agents of a
/// color are one observer), `checker` or `prober`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ObserverVerdict {
    pub observer: String,
    pub color: Color,
    pub verdict: Verdict,
}

/// A snapshot of everything the policy looks at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct View {
    /// What the live file says (`None`: missing or invalid → nothing is done).
    pub live: Option<Color>,
    /// The color that was live before the last toggle.
    pub previous: Option<Color>,
    pub last_toggle: Option<Toggle>,
    pub observers: Vec<ObserverVerdict>,
    /// The rollback target (the idle color) probed directly, bypassing
    /// nginx, recently: `Some(true)` healthy, `Some(false)` not, `None` unknown.
    pub previous_healthy_direct: Option<bool>,
    /// Why it is unhealthy or unknown (e.g. `blue-direct: GET /ping returned 502`).
    pub previous_health_reason: String,
    /// Any deploy (even a failed one) to the target color since the last toggle.
    pub deployed_to_previous_since_toggle: bool,
    pub last_automatic_switch: Option<DateTime<Utc>>,
    /// Latched after an automatic switch; cleared by rearm or a manual toggle.
    pub latched: bool,
    /// `bgw-watchdog rollback disable` (runtime; `enabled = false` is config).
    pub disabled: bool,
    pub watchdog_started: DateTime<Utc>,
    /// Every expected observer has been heard from since the watchdog started
    /// (or a full period + grace has passed, so silence is a signal again).
    pub heard_from_all: bool,
}

/// The rule that made [`decide`] refuse; stable, so the caller can record an
/// event when it changes rather than at every evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The toggle being undone was itself automatic.
    FlipFlop,
    /// No color was live before the toggle.
    NoPrevious,
    Latched,
    JustStarted,
    Quorum,
    Cooldown,
    Redeployed,
    TargetUnhealthy,
    TargetUnknown,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rule::FlipFlop => "flip_flop",
            Rule::NoPrevious => "no_previous",
            Rule::Latched => "latched",
            Rule::JustStarted => "just_started",
            Rule::Quorum => "quorum",
            Rule::Cooldown => "cooldown",
            Rule::Redeployed => "redeployed",
            Rule::TargetUnhealthy => "target_unhealthy",
            Rule::TargetUnknown => "target_unknown",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Nothing,
    Switch {
        to: Color,
        reason: String,
    },
    DryRun {
        to: Color,
        reason: String,
    },
    Refuse {
        would_switch_to: Color,
        rule: Rule,
        reason: String,
    },
}

/// The policy. Pure: same view, settings and `now`, same answer.
pub fn decide(view: &View, settings: &RollbackSettings, now: DateTime<Utc>) -> Decision {
    if !settings.enabled || view.disabled {
        return Decision::Nothing;
    }
    let Some(live) = view.live else {
        return Decision::Nothing;
    };
    let target = live.other();

    // Distinct observers that see the live color failing long enough.
    let mut failing: Vec<(&str, &str)> = Vec::new();
    for o in view.observers.iter().filter(|o| o.color == live) {
        if let Verdict::Failing {
            consecutive,
            reason,
        } = &o.verdict
        {
            if *consecutive >= settings.fail_after
                && !failing.iter().any(|(name, _)| *name == o.observer)
            {
                failing.push((&o.observer, reason));
            }
        }
    }
    if failing.is_empty() {
        return Decision::Nothing;
    }
    let seen = failing
        .iter()
        .map(|(name, reason)| format!("{}: {reason}", label(name)))
        .collect::<Vec<_>>()
        .join(", ");

    let since_toggle = view.last_toggle.as_ref().filter(|t| t.to == live).map(|t| {
        let elapsed = (now - t.at).to_std().unwrap_or(Duration::ZERO);
        (t, elapsed)
    });
    let in_window = since_toggle.filter(|(_, elapsed)| *elapsed <= settings.window.0);
    let refuse = |rule: Rule, context: &str, why: String| Decision::Refuse {
        would_switch_to: target,
        rule,
        reason: format!("{context}; not switching to {target}: {why}"),
    };

    // Right after a start the observers' verdicts may be the watchdog's own
    // silence read back from the store: unknown, whatever else holds.
    if !view.heard_from_all && (in_window.is_some() || settings.failover) {
        let ago = whole_seconds(
            (now - view.watchdog_started)
                .to_std()
                .unwrap_or(Duration::ZERO),
        );
        return refuse(
            Rule::JustStarted,
            &format!("{live} seen failing ({seen})"),
            format!("the watchdog started {ago} ago and has not heard from every observer yet"),
        );
    }
    let context = match in_window {
        Some((toggle, elapsed)) => {
            let context = format!(
                "{live} failed {} after toggle ({seen})",
                whole_seconds(elapsed)
            );
            if toggle.automatic {
                return refuse(
                    Rule::FlipFlop,
                    &context,
                    "that toggle was itself automatic, and an automatic switch is never undone automatically".into(),
                );
            }
            let previous = view.previous.or(toggle.from).filter(|p| *p != live);
            if previous.is_none() {
                return refuse(
                    Rule::NoPrevious,
                    &context,
                    "no color was live before the toggle".into(),
                );
            }
            context
        }
        None if settings.failover => {
            format!("{live} is failing, failover to the idle color ({seen})")
        }
        None => return Decision::Nothing,
    };

    if view.latched {
        return refuse(
            Rule::Latched,
            &context,
            "automatic rollback is latched after an automatic switch (toggle by hand or run `bgw-watchdog rollback rearm`)".into(),
        );
    }
    if (failing.len() as u32) < settings.quorum {
        let mut why = format!(
            "{} of {} observers needed see {live} failing",
            failing.len(),
            settings.quorum
        );
        let others: Vec<String> = view
            .observers
            .iter()
            .filter(|o| o.color == live && !failing.iter().any(|(n, _)| *n == o.observer))
            .map(|o| match &o.verdict {
                Verdict::Healthy => format!("{}: healthy", label(&o.observer)),
                Verdict::Unknown { reason } => {
                    format!("{}: unknown ({reason})", label(&o.observer))
                }
                Verdict::Failing { consecutive, .. } => format!(
                    "{}: {consecutive} of {} failures",
                    label(&o.observer),
                    settings.fail_after
                ),
            })
            .collect();
        if !others.is_empty() {
            why.push_str(&format!(" (not counted: {})", others.join(", ")));
        }
        return refuse(Rule::Quorum, &context, why);
    }
    if let Some(last) = view.last_automatic_switch {
        let ago = (now - last).to_std().unwrap_or(Duration::ZERO);
        if ago < settings.cooldown.0 {
            return refuse(
                Rule::Cooldown,
                &context,
                format!(
                    "the last automatic switch was {} ago (cooldown {})",
                    whole_seconds(ago),
                    settings.cooldown
                ),
            );
        }
    }
    if view.deployed_to_previous_since_toggle {
        return refuse(
            Rule::Redeployed,
            &context,
            format!("{target} was redeployed since the toggle, so it no longer runs what was live before"),
        );
    }
    match view.previous_healthy_direct {
        Some(true) => {}
        Some(false) => {
            return refuse(
                Rule::TargetUnhealthy,
                &context,
                format!(
                    "{target} is not healthy either, checked directly ({})",
                    view.previous_health_reason
                ),
            )
        }
        None => {
            return refuse(
                Rule::TargetUnknown,
                &context,
                format!(
                    "{target}'s health, checked directly, is unknown ({})",
                    view.previous_health_reason
                ),
            )
        }
    }
    match settings.mode {
        Mode::Auto => Decision::Switch {
            to: target,
            reason: context,
        },
        Mode::DryRun => Decision::DryRun {
            to: target,
            reason: context,
        },
    }
}

/// `agents:green` → `agents`; `checker` → `checker`.
fn label(observer: &str) -> &str {
    observer.split(':').next().unwrap_or(observer)
}

fn whole_seconds(d: Duration) -> String {
    format_duration(Duration::from_secs(d.as_secs()))
}
