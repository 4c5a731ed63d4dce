//! The live file (`/var/live`), compatible with the original scripts: it
//! holds `blue` or `green` without a newline (`echo -n`). Reading it
//! ([`read_live`], [`LiveState`]) and the atomic write every switch uses
//! ([`write_atomic`]) are `bgw-reporter`'s, shared with the checker and the
//! prober; writing the color and undoing a change are the watchdog's.

pub use bgw_reporter::atomic_file::write_atomic;
pub use bgw_reporter::live::{read_live, LiveState};
use bgw_wire::Color;
use std::path::Path;

/// Writes `color` to the live file atomically, without a trailing newline.
pub fn write_live(path: &Path, color: Color) -> std::io::Result<()> {
    write_atomic(path, color.as_str().as_bytes())
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
