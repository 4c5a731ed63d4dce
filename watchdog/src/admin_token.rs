//! The generated admin token: when no `admin_token` is configured, the
//! watchdog creates one at first start in `<database>.admin-token` (mode
//! 0600, never through a symlink) and the CLI on the same host, which reads
//! the same configuration, finds it there.

use secrecy::SecretString;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why the generated token cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("admin token file {}: {cause}", path.display())]
pub struct AdminTokenError {
    pub path: PathBuf,
    pub cause: io::Error,
}

/// The token file of the database at `database` (a path, as in `Settings`).
pub fn path_for(database: &str) -> PathBuf {
    PathBuf::from(format!("{database}.admin-token"))
}

/// Reads the token file (not following a symlink).
pub fn read(path: &Path) -> Result<SecretString, AdminTokenError> {
    let fail = |cause| AdminTokenError {
        path: path.to_path_buf(),
        cause,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(fail)?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(fail)?;
    let token = text.trim();
    if token.len() < crate::config::MIN_TOKEN_LEN {
        return Err(fail(io::Error::other("the token in it is too short")));
    }
    Ok(SecretString::from(token.to_string()))
}

/// Reads the token file, creating it with a new random token when missing.
/// The token is written to a temporary file (`O_EXCL`, 0600) and linked to
/// its name, so a reader never sees a half-written token and two watchdogs
/// starting together agree on one.
pub fn load_or_create(path: &Path) -> Result<SecretString, AdminTokenError> {
    match read(path) {
        Ok(t) => {
            warn_if_readable_by_others(path);
            return Ok(t);
        }
        Err(e) if e.cause.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let fail = |cause| AdminTokenError {
        path: path.to_path_buf(),
        cause,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let token = generate();
    let tmp = PathBuf::from(format!(
        "{}.tmp.{}.{}",
        path.display(),
        std::process::id(),
        rand::random::<u32>()
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        file.write_all(format!("{token}\n").as_bytes())?;
        file.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => {
            tracing::info!(file = %path.display(), "generated the admin token (no admin_token configured)");
            Ok(SecretString::from(token))
        }
        // Another watchdog linked its token first: use that one.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read(path),
        Err(e) => Err(fail(e)),
    }
}

/// 32 random bytes, hex.
fn generate() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn warn_if_readable_by_others(path: &Path) {
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o077 != 0 {
            tracing::warn!(file = %path.display(), "the admin token file is readable by other users: chmod 600 it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_created_once_with_mode_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("w.db").display().to_string());
        let first = load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = load_or_create(&path).unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(first.expose_secret(), again.expose_secret());
        assert_eq!(first.expose_secret().len(), 64);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn a_symlink_in_place_of_the_token_file_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "0123456789abcdef0123456789\n").unwrap();
        let path = dir.path().join("w.db.admin-token");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(read(&path).is_err());
        assert!(load_or_create(&path).is_err());
    }
}
