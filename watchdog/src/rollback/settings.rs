//! The `[rollback]` section of `watchdog.toml`.

use bgw_wire::HumanDuration;
use std::time::Duration;

/// `auto` switches; `dry-run` only says what it would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    Auto,
    DryRun,
}

/// Automatic rollback policy; see [`super::decide`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RollbackSettings {
    pub enabled: bool,
    /// A toggle whose new live color fails within this window is undone.
    pub window: HumanDuration,
    /// At most one automatic switch per cooldown.
    pub cooldown: HumanDuration,
    /// Distinct observers that must see the live color failing.
    pub quorum: u32,
    /// Consecutive failed signals before an observer counts as failing.
    pub fail_after: u32,
    pub mode: Mode,
    /// Outside the window, also switch away from a failing live color to a
    /// healthy idle one (same rules).
    pub failover: bool,
}

impl Default for RollbackSettings {
    fn default() -> Self {
        RollbackSettings {
            enabled: true,
            window: HumanDuration(Duration::from_secs(15 * 60)),
            cooldown: HumanDuration(Duration::from_secs(10 * 60)),
            quorum: 2,
            fail_after: 3,
            mode: Mode::Auto,
            failover: false,
        }
    }
}

/// A configuration error, named by its key: `rollback.quorum: ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rollback.{key}: {message}")]
pub struct RollbackConfigError {
    pub key: &'static str,
    pub message: String,
}

impl RollbackSettings {
    pub fn validate(&self) -> Result<(), RollbackConfigError> {
        let err = |key, message: &str| RollbackConfigError {
            key,
            message: message.to_string(),
        };
        if self.quorum == 0 {
            return Err(err(
                "quorum",
                "must be at least 1 (one observer seeing the failure)",
            ));
        }
        if self.fail_after == 0 {
            return Err(err(
                "fail_after",
                "must be at least 1 (consecutive failed signals)",
            ));
        }
        if self.window.0.is_zero() {
            return Err(err(
                "window",
                "must be longer than 0s (set enabled = false to turn rollback off)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let s: RollbackSettings = toml::from_str("").unwrap();
        assert_eq!(s, RollbackSettings::default());
        assert!(s.enabled && !s.failover);
        assert_eq!((s.quorum, s.fail_after, s.mode), (2, 3, Mode::Auto));
        assert_eq!(s.window.0, Duration::from_secs(900));
        assert_eq!(s.cooldown.0, Duration::from_secs(600));
        s.validate().unwrap();
    }

    #[test]
    fn mode_and_durations_parse_as_written_in_the_config() {
        let s: RollbackSettings =
            toml::from_str("mode = \"dry-run\"\nwindow = \"1m\"\nfailover = true").unwrap();
        assert_eq!(s.mode, Mode::DryRun);
        assert_eq!(s.window.0, Duration::from_secs(60));
        assert!(toml::from_str::<RollbackSettings>("mode = \"yolo\"").is_err());
        assert!(toml::from_str::<RollbackSettings>("quorom = 2").is_err());
    }

    #[test]
    fn zero_quorum_or_fail_after_is_refused_by_name() {
        let s = RollbackSettings {
            quorum: 0,
            ..Default::default()
        };
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("rollback.quorum:"));
        let s = RollbackSettings {
            fail_after: 0,
            ..Default::default()
        };
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("rollback.fail_after:"));
    }
}
