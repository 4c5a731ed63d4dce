//! The prober's saved state (`state_dir/state.json`): which watchdog it is
//! about, the watchdog's silence ([`WatchState`]) and, for the instant
//! between deciding an alert and writing its outbox files, the alert itself.
//!
//! The state belongs to one watchdog: it records the `watchdog_url` it
//! watched, and a prober now configured for another URL ignores it
//! ([`Saved::is_about`]). A file written before the URL was recorded is
//! taken as being about the configured watchdog.
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
    /// The watchdog this state is about (`watchdog_url`, normalized).
    #[serde(default)]
    pub watchdog_url: Option<String>,
    pub watch: WatchState,
    /// An alert decided but maybe not yet in the outbox: (outbox key, alert).
    #[serde(default = "none")]
    pub enqueuing: Option<(String, N)>,
}

fn none<N>() -> Option<N> {
    None
}

impl<N> Saved<N> {
    /// Whether this state is about the watchdog at `url`.
    pub fn is_about(&self, url: &reqwest::Url) -> bool {
        self.watchdog_url
            .as_deref()
            .is_none_or(|saved| saved == url.as_str())
    }
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
            watchdog_url: Some("http://127.0.0.1:8700/".into()),
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

    #[test]
    fn a_state_is_about_the_watchdog_whose_url_it_recorded() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        let saved = |u: Option<&str>| Saved::<String> {
            watchdog_url: u.map(String::from),
            watch: WatchState::new(chrono::Utc.timestamp_opt(1_790_000_000, 0).unwrap()),
            enqueuing: None,
        };
        let ours = saved(Some(url("http://127.0.0.1:8700").as_str()));
        assert!(ours.is_about(&url("http://127.0.0.1:8700/")));
        assert!(!ours.is_about(&url("http://127.0.0.1:8701")));
        assert!(!ours.is_about(&url("http://10.0.0.2:8700")));
        // Written by a prober that did not record the URL yet.
        assert!(saved(None).is_about(&url("http://10.0.0.2:8700")));
    }

    #[test]
    fn a_state_file_without_a_url_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path());
        std::fs::write(
            file.path(),
            br#"{"watch": {"last_answer": "2026-09-21T10:00:00Z", "outage": null}}"#,
        )
        .unwrap();
        let saved = file.load::<String>().unwrap().unwrap();
        assert_eq!(saved.watchdog_url, None);
        assert_eq!(saved.enqueuing, None);
    }
}
