//! The live file (`/var/live`), compatible with the original scripts: it
//! holds `blue` or `green` without a newline (`echo -n`), is read tolerating
//! surrounding whitespace, and anything else is reported as invalid, never
//! guessed. Also the atomic file write every switch uses.

use bgw_wire::Color;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What the live file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveState {
    Live(Color),
    /// The file does not exist: no color has been made live yet.
    Missing,
    /// The file exists but does not hold a color (or cannot be read); the
    /// text says what was found.
    Invalid(String),
}

impl LiveState {
    /// The live color, when there is one.
    pub fn color(&self) -> Option<Color> {
        match self {
            LiveState::Live(c) => Some(*c),
            _ => None,
        }
    }
}

/// Reads the live file.
pub fn read_live(path: &Path) -> LiveState {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            match Color::from_live_file(&text) {
                Some(c) => LiveState::Live(c),
                None => {
                    let shown: String = text.chars().take(40).collect();
                    LiveState::Invalid(format!(
                        "{} holds {shown:?}, not \"blue\" or \"green\"",
                        path.display()
                    ))
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => LiveState::Missing,
        Err(e) => LiveState::Invalid(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes `color` to the live file atomically, without a trailing newline.
pub fn write_live(path: &Path, color: Color) -> std::io::Result<()> {
    write_atomic(path, color.as_str().as_bytes())
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `bytes` so that readers see the old or the new
/// content, never a mix: a temp file in the same directory, fsync, rename,
/// fsync of the directory. Keeps the old file's permissions and owner.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"))?;
    let tmp = dir.join(format!(
        ".{}.bgw-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        if let Ok(old) = std::fs::metadata(path) {
            use std::os::unix::fs::MetadataExt;
            f.set_permissions(old.permissions())?;
            // Best effort: only root can give a file away.
            let _ = std::os::unix::fs::fchown(&f, Some(old.uid()), Some(old.gid()));
        }
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Puts back what [`std::fs::read`] returned before a change: the old bytes,
/// or no file at all when there was none.
pub fn restore_file(path: &Path, previous: &Option<Vec<u8>>) -> std::io::Result<()> {
    match previous {
        Some(bytes) => write_atomic(path, bytes),
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}

/// Reads a file's bytes, `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_file_is_written_without_a_newline_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live");
        assert_eq!(read_live(&path), LiveState::Missing);
        write_live(&path, Color::Green).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"green");
        assert_eq!(read_live(&path), LiveState::Live(Color::Green));
        // Only the file itself is left in the directory: no temp files.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn live_file_written_by_echo_is_read_but_garbage_is_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live");
        std::fs::write(&path, "blue\n").unwrap();
        assert_eq!(read_live(&path), LiveState::Live(Color::Blue));
        std::fs::write(&path, "purple").unwrap();
        match read_live(&path) {
            LiveState::Invalid(why) => assert!(why.contains("\"purple\""), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn atomic_write_keeps_permissions_and_restore_removes_a_new_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let before = read_optional(&path).unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        restore_file(&path, &before).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        restore_file(&path, &None).unwrap();
        assert!(!path.exists());
    }
}
