//! Opening the SQLite database: WAL mode, the durability setting, the
//! migrations.

use super::{Store, StoreError, MIGRATOR};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// When a commit (and so an acknowledgement) is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// The WAL is fsynced before anything committed is acknowledged;
    /// nothing acknowledged is lost even on power loss. The default. The
    /// monitor does the fsync itself ([`wal_file`]), pipelined: while one
    /// fsync runs, the next batch already commits, and one fsync
    /// acknowledges every batch committed before it started. Other writers
    /// (outbox bookkeeping) ride on those fsyncs and SQLite's checkpoints.
    Fsync,
    /// Written to the OS at every commit, fsynced at checkpoints; survives a
    /// crash of the watchdog (kill -9), not a power loss of the host.
    Os,
}

/// The database's write-ahead log, opened for `fdatasync`: once it returns,
/// every transaction committed before the call is on disk.
pub fn wal_file(path: &str) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("{path}-wal"))
}

impl Store {
    /// Opens (creating if needed) the database file with the default
    /// durability, and applies the migrations.
    pub async fn open(path: &str) -> Result<Store, StoreError> {
        Store::open_with(path, Durability::Fsync).await
    }

    /// [`Store::open`] with a chosen durability.
    pub async fn open_with(path: &str, durability: Durability) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_string(),
            source,
        };
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| open_err(sqlx::Error::Io(e)))?;
        }
        // 0600 for a new database; SQLite gives its -wal and -shm the same mode.
        if let Err(e) = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(open_err(sqlx::Error::Io(e)));
            }
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in both modes: SQLite syncs the WAL only at checkpoints.
            // In `Fsync` mode the monitor fdatasyncs the WAL itself before it
            // acknowledges anything (see `Durability::Fsync`); group commit
            // makes that one fsync per batch.
            .synchronous(match durability {
                Durability::Fsync | Durability::Os => SqliteSynchronous::Normal,
            })
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(options)
            .await
            .map_err(open_err)?;
        MIGRATOR.run(&pool).await?;
        Ok(Store { pool })
    }
}
