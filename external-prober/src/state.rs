//! The prober's saved state (`state_dir/state.json`): the watchdog's
//! silence ([`WatchState`]) and, for the instant between deciding an alert
//! and writing its outbox files, the alert itself.
//!
//! Order of writes for an alert: the state with `enqueuing` set, then the
//! outbox files, then the state without `enqueuing`; only then do deliveries
//! start. A crash anywhere in between is finished at the next start (the
//! outbox files are written again, under the same names), so an alert is
//! neither lost nor delivered twice.

use crate::outage::WatchState;
use bgw_reporter::write_atomic;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What `state.json` holds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Saved<N> {
    pub watch: WatchState,
    /// An alert decided but maybe not yet in the outbox: (outbox key, alert).
    #[serde(default = "none")]
    pub enqueuing: Option<(String, N)>,
}

fn none<N>() -> Option<N> {
    None
}

/// `state_dir/state.json`.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(state_dir: &Path) -> StateFile {
        StateFile {
            path: state_dir.join("state.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state; `None` on the first start.
    pub fn load<N: DeserializeOwned>(&self) -> std::io::Result<Option<Saved<N>>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn save<N: Serialize>(&self, saved: &Saved<N>) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(saved).map_err(std::io::Error::other)?;
        write_atomic(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn first_start_has_no_state_and_saved_state_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path());
        assert_eq!(file.load::<String>().unwrap(), None);
        let saved = Saved {
            watch: WatchState::new(chrono::Utc.timestamp_opt(1_790_000_000, 0).unwrap()),
            enqueuing: Some(("1-down".to_string(), "DOWN".to_string())),
        };
        file.save(&saved).unwrap();
        assert_eq!(file.load::<String>().unwrap(), Some(saved));
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path());
        std::fs::write(file.path(), b"{").unwrap();
        assert!(file.load::<String>().is_err());
    }
}
