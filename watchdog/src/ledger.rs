//! The ledger of blue/green control: every switch of the live color, every
//! deploy, and the automatic rollback's latch, with the pure rules that keep
//! them true ([`ControlState::apply`]). The monitor owns one `ControlState`
//! and writes each change in the same transaction as its event; the
//! rollback watcher reads it from the monitor's snapshot, never from SQL.

use crate::rollback::Toggle;
use bgw_wire::Color;
use chrono::{DateTime, Utc};

/// A switch, successful or not.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ToggleRecord {
    /// 0 until stored.
    pub id: i64,
    pub at: DateTime<Utc>,
    pub from: Option<Color>,
    pub to: Color,
    pub automatic: bool,
    pub reason: String,
    pub ok: bool,
    /// Why it failed (the switch error, with the command output).
    pub error: Option<String>,
}

impl ToggleRecord {
    /// The form the rollback policy's view takes.
    pub fn as_toggle(&self) -> Toggle {
        Toggle {
            at: self.at,
            from: self.from,
            to: self.to,
            automatic: self.automatic,
        }
    }
}

/// A deploy that ran (failed ones included: a failed `docker service
/// update` may have replaced some tasks).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeployRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub color: Color,
    pub image: String,
    pub ok: bool,
    pub output: String,
}

/// The state of automatic rollback (`bgw-watchdog rollback status`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct RollbackState {
    pub latched: bool,
    pub latched_at: Option<DateTime<Utc>>,
    pub latch_reason: Option<String>,
    pub disabled: bool,
    pub last_automatic_at: Option<DateTime<Utc>>,
}

/// A change to the ledger.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlChange {
    Toggle(ToggleRecord),
    Deploy(DeployRecord),
    /// `rollback rearm` (`true`) or `rollback disable`.
    Arm(bool),
}

/// Everything the ledger says that decisions need.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ControlState {
    /// The last successful switch (the one that made the current color live).
    pub last_toggle: Option<ToggleRecord>,
    pub rollback: RollbackState,
    /// The last deploy to each color (blue, green), failed ones included.
    pub last_deploy: [Option<DateTime<Utc>>; 2],
}

fn slot(c: Color) -> usize {
    match c {
        Color::Blue => 0,
        Color::Green => 1,
    }
}

impl ControlState {
    /// Applies a change: an automatic attempt (even a failed one) starts the
    /// cooldown; a successful automatic switch latches automatic rollback; a
    /// successful manual switch releases the latch (the operator has taken
    /// over); rearm releases the latch and undoes disable (the cooldown still
    /// applies: it is about time, not about the operator).
    pub fn apply(&mut self, change: &ControlChange) {
        match change {
            ControlChange::Toggle(t) => {
                if t.automatic {
                    self.rollback.last_automatic_at = Some(t.at);
                    if t.ok {
                        self.rollback.latched = true;
                        self.rollback.latched_at = Some(t.at);
                        self.rollback.latch_reason = Some(t.reason.clone());
                    }
                } else if t.ok {
                    self.rollback.latched = false;
                    self.rollback.latched_at = None;
                    self.rollback.latch_reason = None;
                }
                if t.ok {
                    self.last_toggle = Some(t.clone());
                }
            }
            ControlChange::Deploy(d) => {
                let last = &mut self.last_deploy[slot(d.color)];
                *last = Some(last.map_or(d.at, |l| l.max(d.at)));
            }
            ControlChange::Arm(true) => {
                self.rollback.latched = false;
                self.rollback.latched_at = None;
                self.rollback.latch_reason = None;
                self.rollback.disabled = false;
            }
            ControlChange::Arm(false) => self.rollback.disabled = true,
        }
    }

    /// The color live before the last toggle, when that toggle made `live` live.
    pub fn previous(&self, live: Option<Color>) -> Option<Color> {
        match (&self.last_toggle, live) {
            (Some(t), Some(live)) if t.to == live => t.from.filter(|p| *p != live),
            _ => None,
        }
    }

    /// Whether `color` was deployed to (even unsuccessfully) since the last toggle.
    pub fn deployed_since_toggle(&self, color: Color) -> bool {
        match (&self.last_toggle, self.last_deploy[slot(color)]) {
            (Some(t), Some(d)) => d >= t.at,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 14, 0, 0).unwrap() + chrono::Duration::seconds(s)
    }

    fn toggle(at: DateTime<Utc>, to: Color, automatic: bool, ok: bool) -> ControlChange {
        ControlChange::Toggle(ToggleRecord {
            id: 0,
            at,
            from: Some(to.other()),
            to,
            automatic,
            reason: if automatic {
                "green failed 43s after toggle (checker: 502)".into()
            } else {
                "operator".into()
            },
            ok,
            error: (!ok).then(|| "switch to green failed at test".into()),
        })
    }

    #[test]
    fn last_toggle_is_the_last_successful_one() {
        let mut s = ControlState::default();
        s.apply(&toggle(at(0), Color::Green, false, true));
        s.apply(&toggle(at(10), Color::Blue, false, false));
        let last = s.last_toggle.as_ref().unwrap();
        assert_eq!(
            (last.at, last.from, last.to, last.ok),
            (at(0), Some(Color::Blue), Color::Green, true)
        );
        assert_eq!(s.previous(Some(Color::Green)), Some(Color::Blue));
        assert_eq!(s.previous(Some(Color::Blue)), None);
    }

    #[test]
    fn an_automatic_switch_latches_and_starts_the_cooldown() {
        let mut s = ControlState::default();
        s.apply(&toggle(at(5), Color::Blue, true, true));
        assert!(s.rollback.latched && !s.rollback.disabled);
        assert_eq!(s.rollback.latched_at, Some(at(5)));
        assert_eq!(s.rollback.last_automatic_at, Some(at(5)));
        assert!(s.rollback.latch_reason.unwrap().contains("green failed"));
    }

    #[test]
    fn a_failed_automatic_switch_starts_the_cooldown_without_latching() {
        let mut s = ControlState::default();
        s.apply(&toggle(at(5), Color::Blue, true, false));
        assert!(!s.rollback.latched);
        assert_eq!(s.rollback.last_automatic_at, Some(at(5)));
        assert_eq!(s.last_toggle, None);
    }

    #[test]
    fn a_manual_switch_releases_the_latch_and_rearm_undoes_disable() {
        let mut s = ControlState::default();
        s.apply(&toggle(at(1), Color::Blue, true, true));
        s.apply(&toggle(at(2), Color::Green, false, false));
        assert!(s.rollback.latched, "a failed manual switch changes nothing");
        s.apply(&toggle(at(3), Color::Green, false, true));
        assert!(!s.rollback.latched);
        s.apply(&toggle(at(4), Color::Blue, true, true));
        s.apply(&ControlChange::Arm(false));
        assert!(s.rollback.latched && s.rollback.disabled);
        s.apply(&ControlChange::Arm(true));
        assert!(!s.rollback.latched && !s.rollback.disabled);
        assert_eq!(s.rollback.last_automatic_at, Some(at(4)), "cooldown kept");
    }

    #[test]
    fn a_deploy_since_the_toggle_is_seen_for_its_color_only() {
        let mut s = ControlState::default();
        let deploy = |at, color| {
            ControlChange::Deploy(DeployRecord {
                id: 0,
                at,
                color,
                image: "app:2".into(),
                ok: false,
                output: String::new(),
            })
        };
        s.apply(&deploy(at(0), Color::Blue));
        s.apply(&toggle(at(10), Color::Green, false, true));
        assert!(!s.deployed_since_toggle(Color::Blue), "before the toggle");
        s.apply(&deploy(at(20), Color::Blue));
        assert!(s.deployed_since_toggle(Color::Blue), "failed ones count");
        assert!(!s.deployed_since_toggle(Color::Green));
    }
}
