//! The one atomic file write of bgw: the watchdog's nginx config and live
//! file, the prober's state and outbox.
//!
//! A reader sees the old content or the new, never a mix, and a crash
//! leaves one of the two: the bytes go to a temporary file created in the
//! same directory with `O_CREAT|O_EXCL` (so it is never an existing file or
//! a symlink someone planted), are fsynced, and the temporary file is
//! renamed over the path; then the directory is fsynced. The file keeps the
//! mode (and, when allowed, the owner) of the regular file it replaces; a
//! new file gets `0600`.
//!
//! A symlink at the path is never followed: neither its target's mode is
//! copied nor its target written; the rename replaces the link itself.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Temporary files end with this; a directory owner may sweep them at start.
pub const TMP_SUFFIX: &str = ".tmp";

/// Mode of a file that did not exist before.
const NEW_FILE_MODE: u32 = 0o600;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `bytes`, atomically and durably (see the module
/// documentation).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"))?;
    let tmp = dir.join(format!(
        ".{}.{}-{}{TMP_SUFFIX}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    // lstat: a symlink's target says nothing about the file we write.
    let old = std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.file_type().is_file());
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(NEW_FILE_MODE)
            .open(&tmp)?;
        f.write_all(bytes)?;
        match &old {
            Some(old) => {
                f.set_permissions(old.permissions())?;
                // Best effort: only root can give a file away.
                let _ = std::os::unix::fs::fchown(&f, Some(old.uid()), Some(old.gid()));
            }
            // The umask may have taken bits away; never added any.
            None => f.set_permissions(std::fs::Permissions::from_mode(NEW_FILE_MODE))?,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn write_atomic_replaces_the_whole_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        write_atomic(&p, b"first version, long").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_new_file_is_private_and_an_existing_one_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("state.json");
        write_atomic(&fresh, b"x").unwrap();
        assert_eq!(mode(&fresh), 0o600);
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, "old").unwrap();
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&conf, b"new").unwrap();
        assert_eq!(std::fs::read(&conf).unwrap(), b"new");
        assert_eq!(mode(&conf), 0o644);
    }

    #[test]
    fn a_symlink_at_the_path_is_replaced_and_its_target_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o666)).unwrap();
        let link = dir.path().join("state.json");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        write_atomic(&link, b"state").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        let meta = std::fs::symlink_metadata(&link).unwrap();
        assert!(meta.file_type().is_file(), "the link itself is replaced");
        assert_eq!(std::fs::read(&link).unwrap(), b"state");
        assert_eq!(mode(&link), 0o600, "the target's mode is not copied");
    }

    #[test]
    fn a_planted_temporary_name_is_never_written_through() {
        // Even a symlink at a name the next write might pick is not
        // followed: create_new refuses it and the counter moves on.
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let next = COUNTER.load(Ordering::Relaxed);
        for n in next..next + 4 {
            let planted = dir
                .path()
                .join(format!(".live.{}-{n}{TMP_SUFFIX}", std::process::id()));
            std::os::unix::fs::symlink(&victim, planted).unwrap();
        }
        let path = dir.path().join("live");
        // Some write may hit a planted name and fail; none writes through.
        for _ in 0..8 {
            let _ = write_atomic(&path, b"blue");
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(&path).unwrap(), b"blue");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a-directory");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("inside"), "x").unwrap();
        // rename(2) cannot replace a non-empty directory with a file.
        assert!(write_atomic(&target, b"file").is_err());
        assert!(target.is_dir());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a-directory")]);
    }
}
