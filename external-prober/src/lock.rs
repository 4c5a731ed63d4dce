//! One prober per `state_dir`: the state and the outbox belong to one
//! running prober. At start the prober takes an exclusive `flock(2)` on
//! `state_dir/lock` and holds it for its whole life; a second prober given
//! the same directory is refused at start, naming the first one's pid. The
//! kernel drops the lock when the process ends, even on `kill -9`, so a
//! crashed prober never locks out the next one.

use rustix::fs::{flock, FlockOperation};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why `state_dir` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    /// Another prober holds the lock.
    #[error(
        "in use by another bgw-prober{} (lock {}); give each prober its own state_dir",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
        lock.display()
    )]
    InUse { lock: PathBuf, pid: Option<u32> },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateLock {
    /// Takes the lock of `state_dir` (which must exist) without waiting, and
    /// writes this process's pid into the lock file for the error message of
    /// the next one.
    pub fn acquire(state_dir: &Path) -> Result<StateLock, StateDirError> {
        let path = state_dir.join("lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            // A symlink planted at `lock` is refused, not followed.
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)?;
        if let Err(e) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
            if e == rustix::io::Errno::WOULDBLOCK {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(StateDirError::InUse {
                    lock: path,
                    pid: text.trim().parse().ok(),
                });
            }
            return Err(std::io::Error::from(e).into());
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        Ok(StateLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let held = StateLock::acquire(dir.path()).unwrap();
        // flock locks belong to the open file, so a second open in the same
        // process conflicts just as another process would.
        let err = StateLock::acquire(dir.path()).unwrap_err();
        let StateDirError::InUse { pid, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(*pid, Some(std::process::id()));
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "in use by another bgw-prober (pid {})",
                std::process::id()
            )),
            "{text}"
        );
        assert!(
            text.ends_with("give each prober its own state_dir"),
            "{text}"
        );
        drop(held);
        StateLock::acquire(dir.path()).expect("free again once the holder is gone");
    }

    #[test]
    fn two_dirs_are_two_locks() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let _a = StateLock::acquire(a.path()).unwrap();
        let _b = StateLock::acquire(b.path()).unwrap();
    }
}
