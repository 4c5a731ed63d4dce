//! The one storage boundary. Everything the watchdog keeps (checks and their
//! runtimes, events, pings, the outbox, silences, probe targets, the control
//! ledger) is read and written through [`Store`]; no other module speaks SQL.
//! A second backend (PostgreSQL, for several watchdogs) goes behind this
//! type without touching the core.
//!
//! Writes: the monitor's [`Store::commit`] is the one write path for state
//! changes (a batch of signals, their events, their notifications, ledger
//! changes and silences: one transaction). The outbox workers only update
//! the delivery bookkeeping of notifications they own. Times are integer
//! milliseconds since the Unix epoch (UTC) in every table.
//!
//! Every query is a runtime query covered by a test.

mod batch;
mod checks;
mod events;
mod open;
mod outbox;
mod page;
mod retention;

pub use batch::{Committed, PingRow, RuntimeUpdate, SilenceChange, Write};
pub use checks::{CheckRow, InstanceRow, Loaded};
pub use events::{EventRow, Since};
pub use open::{wal_file, Durability};
pub use outbox::{NotificationRow, PendingRow};
pub use page::Delivery;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::SqlitePool;

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("database migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("stored {what} is unreadable: {detail}")]
    Corrupt { what: String, detail: String },
}

fn corrupt(what: impl Into<String>, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: what.into(),
        detail: detail.to_string(),
    }
}

pub fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// The watchdog's database (a cheap handle; clones share the pool).
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Answers when the database can be read (for `/healthz`).
    pub async fn ping(&self) -> bool {
        sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(&self.pool)
            .await
            .is_ok()
    }

    /// Waits for every connection to finish and closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
mod ledger;
