//! The prober's durable outbox: one JSON file per (notification, channel)
//! in `state_dir/outbox/`, written before the first attempt and removed once
//! the channel took it. A prober killed at any point finds its undelivered
//! alerts there at the next start.
//!
//! Every file is written with [`write_atomic`] (temporary file, fsync,
//! rename, fsync of the directory), so a crash leaves either the old content
//! or the new, never half a file.

use bgw_reporter::atomic_file::{write_atomic, TMP_SUFFIX};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One pending delivery.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Entry<N> {
    /// The channel's name (`slack`, `email`, `webhook`).
    pub channel: String,
    pub notification: N,
}

/// The outbox directory.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    /// Opens (creating) the directory and clears temporary files a crash
    /// may have left.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Outbox> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.to_string_lossy().ends_with(TMP_SUFFIX) {
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(Outbox { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `entry` as `<key>-<channel>.json` (the same key and channel
    /// overwrite the same file, so writing twice never delivers twice).
    pub fn put<N: Serialize>(&self, key: &str, entry: &Entry<N>) -> std::io::Result<PathBuf> {
        let name = format!("{}-{}.json", sanitize(key), sanitize(&entry.channel));
        let path = self.dir.join(name);
        let bytes = serde_json::to_vec_pretty(entry).map_err(std::io::Error::other)?;
        write_atomic(&path, &bytes)?;
        Ok(path)
    }

    /// Every pending entry, oldest key first. A file that cannot be read is
    /// renamed `*.bad` (kept for the operator, never retried) and reported
    /// in the second list.
    #[allow(clippy::type_complexity)]
    pub fn pending<N: DeserializeOwned>(
        &self,
    ) -> std::io::Result<(Vec<(PathBuf, Entry<N>)>, Vec<(PathBuf, String)>)> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for path in paths {
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Entry<N>>(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(entry) => good.push((path, entry)),
                Err(e) => {
                    let moved = path.with_extension("bad");
                    let _ = std::fs::rename(&path, &moved);
                    bad.push((moved, e));
                }
            }
        }
        Ok((good, bad))
    }

    /// Delivered: forget it.
    pub fn remove(&self, path: &Path) -> std::io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => sync_dir(&self.dir),
        }
    }

    /// Given up (permanent error): keep it as `*.failed` for the operator.
    pub fn fail(&self, path: &Path) -> std::io::Result<PathBuf> {
        let moved = path.with_extension("failed");
        std::fs::rename(path, &moved)?;
        sync_dir(&self.dir)?;
        Ok(moved)
    }
}

/// Keeps file names to `[A-Za-z0-9_.-]`.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(channel: &str, text: &str) -> Entry<String> {
        Entry {
            channel: channel.into(),
            notification: text.into(),
        }
    }

    #[test]
    fn put_then_pending_returns_every_entry_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path().join("outbox")).unwrap();
        outbox.put("2-up", &entry("slack", "UP")).unwrap();
        outbox.put("1-down", &entry("slack", "DOWN")).unwrap();
        outbox.put("1-down", &entry("email", "DOWN")).unwrap();
        let (good, bad) = outbox.pending::<String>().unwrap();
        assert!(bad.is_empty());
        let got: Vec<(String, String)> = good
            .into_iter()
            .map(|(_, e)| (e.channel, e.notification))
            .collect();
        assert_eq!(
            got,
            vec![
                ("email".into(), "DOWN".into()),
                ("slack".into(), "DOWN".into()),
                ("slack".into(), "UP".into()),
            ]
        );
    }

    #[test]
    fn writing_the_same_key_and_channel_twice_keeps_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let a = outbox.put("1-down", &entry("slack", "x")).unwrap();
        let b = outbox.put("1-down", &entry("slack", "x")).unwrap();
        assert_eq!(a, b);
        assert_eq!(outbox.pending::<String>().unwrap().0.len(), 1);
    }

    #[test]
    fn removed_entries_are_gone_and_failed_ones_are_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let a = outbox.put("1", &entry("slack", "a")).unwrap();
        let b = outbox.put("2", &entry("email", "b")).unwrap();
        outbox.remove(&a).unwrap();
        outbox.remove(&a).unwrap(); // twice is fine
        let failed = outbox.fail(&b).unwrap();
        assert!(failed.exists());
        assert!(outbox.pending::<String>().unwrap().0.is_empty());
    }

    #[test]
    fn an_unreadable_file_is_set_aside_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("9-x.json"), b"{not json").unwrap();
        outbox.put("1", &entry("slack", "a")).unwrap();
        let (good, bad) = outbox.pending::<String>().unwrap();
        assert_eq!(good.len(), 1);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].0.ends_with("9-x.bad"));
        assert!(outbox.pending::<String>().unwrap().1.is_empty());
    }

    #[test]
    fn temporary_files_of_a_crash_are_cleared_on_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".1-slack.json.77.tmp"), b"half").unwrap();
        Outbox::open(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn file_names_are_sanitized() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let p = outbox.put("../../etc/x", &entry("sl/ack", "a")).unwrap();
        assert_eq!(p.parent().unwrap(), dir.path());
    }
}
