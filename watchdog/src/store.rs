//! The SQLite store: opening it (WAL, migrations), syncing the configured
//! checks into it, the writer's batched commit, and the read queries of the
//! API. Every query here is a runtime query covered by a test.

use crate::config::CheckSpec;
use crate::state::{Runtime, State};
use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("database migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("stored runtime of check {0} is unreadable: {1}")]
    Corrupt(String, serde_json::Error),
}

pub fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Opens (creating if needed) the database file, in WAL mode with full
/// synchronous commits, and applies the migrations.
pub async fn open(path: &str) -> Result<SqlitePool, StoreError> {
    open_with(path, Durability::Fsync).await
}

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
    /// `synchronous = NORMAL`: written to the OS at every commit, fsynced at
    /// checkpoints; survives a crash of the watchdog (kill -9), not a power
    /// loss of the host.
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

/// [`open`] with a chosen durability.
pub async fn open_with(path: &str, durability: Durability) -> Result<SqlitePool, StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
            path: path.to_string(),
            source: sqlx::Error::Io(e),
        })?;
    }
    // 0600 for a new database; SQLite gives its -wal and -shm the same mode.
    if let Err(e) = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(StoreError::Open {
                path: path.to_string(),
                source: sqlx::Error::Io(e),
            });
        }
    }
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
        .map_err(|e| StoreError::Open {
            path: path.to_string(),
            source: e,
        })?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // Acknowledged means durable: FULL syncs the WAL at every commit.
        // Group commit (one transaction per batch) keeps that affordable.
        // NORMAL in both modes: in `Fsync` mode the monitor fsyncs the WAL
        // before acknowledging (see `Durability::Fsync`).
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
        .map_err(|e| StoreError::Open {
            path: path.to_string(),
            source: e,
        })?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// A check as loaded at start: its id and stored runtime.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub id: i64,
    pub runtime: Runtime,
    pub ping_count: i64,
}

/// An event row to insert.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    pub at: DateTime<Utc>,
    pub check: Option<String>,
    pub kind: &'static str,
    pub from_state: Option<State>,
    pub to_state: Option<State>,
    pub instance: Option<String>,
    pub color: Option<String>,
    pub reason: String,
    pub down_for: Option<Duration>,
    pub silenced: Option<String>,
    pub data: Option<serde_json::Value>,
}

/// Brings the configured checks into the store: new ones are added, changed
/// ones updated (history and state kept, deadlines recomputed by the
/// caller), removed ones retired. Returns one `Loaded` per spec, in order,
/// and the events describing the changes.
pub async fn sync_checks(
    pool: &SqlitePool,
    specs: &[(CheckSpec, crate::state::Rules)],
    now: DateTime<Utc>,
) -> Result<(Vec<Loaded>, Vec<NewEvent>), StoreError> {
    let mut tx = pool.begin().await?;
    let mut loaded = Vec::with_capacity(specs.len());
    let mut events = Vec::new();
    type Stored = (i64, String, String, String, Option<i64>, i64);
    let existing: Vec<Stored> =
        sqlx::query_as("SELECT id, name, fingerprint, runtime, retired_at, ping_count FROM checks")
            .fetch_all(&mut *tx)
            .await?;
    let by_name: std::collections::HashMap<&str, &Stored> =
        existing.iter().map(|row| (row.1.as_str(), row)).collect();
    for (spec, rules) in specs {
        let uuid = match &spec.kind {
            crate::config::CheckKind::Heartbeat { uuid } => Some(uuid.clone()),
            _ => None,
        };
        let color = spec.color().map(|c| c.to_string());
        let fingerprint = spec.fingerprint();
        match by_name.get(spec.name.as_str()) {
            Some((id, _, old_fp, runtime, retired, pings)) => {
                let mut rt: Runtime = serde_json::from_str(runtime)
                    .map_err(|e| StoreError::Corrupt(spec.name.clone(), e))?;
                let changed = *old_fp != fingerprint;
                if changed {
                    rt = crate::state::reschedule(rules, &rt, now);
                    events.push(NewEvent {
                        at: now,
                        check: Some(spec.name.clone()),
                        kind: "config",
                        reason: format!("check changed: {old_fp} -> {fingerprint}"),
                        ..Default::default()
                    });
                }
                if retired.is_some() {
                    events.push(NewEvent {
                        at: now,
                        check: Some(spec.name.clone()),
                        kind: "config",
                        reason: "check restored to the configuration".into(),
                        ..Default::default()
                    });
                }
                sqlx::query(
                    "UPDATE checks SET kind = ?, fingerprint = ?, color = ?, uuid = ?, runtime = ?, \
                     state = ?, next_deadline = ?, retired_at = NULL, updated_at = ? WHERE id = ?",
                )
                .bind(spec.kind.as_str())
                .bind(&fingerprint)
                .bind(&color)
                .bind(&uuid)
                .bind(serde_json::to_string(&rt).expect("runtime serializes"))
                .bind(rt.state.as_str())
                .bind(rt.next_deadline().map(to_ms))
                .bind(to_ms(now))
                .bind(id)
                .execute(&mut *tx)
                .await?;
                loaded.push(Loaded {
                    id: *id,
                    runtime: rt,
                    ping_count: *pings,
                });
            }
            None => {
                let rt = Runtime::new(rules, now);
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO checks (name, kind, fingerprint, color, uuid, state, runtime, next_deadline, \
                     created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                )
                .bind(&spec.name)
                .bind(spec.kind.as_str())
                .bind(&fingerprint)
                .bind(&color)
                .bind(&uuid)
                .bind(rt.state.as_str())
                .bind(serde_json::to_string(&rt).expect("runtime serializes"))
                .bind(rt.next_deadline().map(to_ms))
                .bind(to_ms(now))
                .bind(to_ms(now))
                .fetch_one(&mut *tx)
                .await?;
                events.push(NewEvent {
                    at: now,
                    check: Some(spec.name.clone()),
                    kind: "config",
                    to_state: Some(State::New),
                    reason: format!("check added: {fingerprint}"),
                    ..Default::default()
                });
                loaded.push(Loaded {
                    id,
                    runtime: rt,
                    ping_count: 0,
                });
            }
        }
    }
    let configured: std::collections::HashSet<&str> =
        specs.iter().map(|(s, _)| s.name.as_str()).collect();
    for (id, name, _, _, retired, _) in &existing {
        if retired.is_none() && !configured.contains(name.as_str()) {
            sqlx::query("UPDATE checks SET retired_at = ?, next_deadline = NULL WHERE id = ?")
                .bind(to_ms(now))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            events.push(NewEvent {
                at: now,
                check: Some(name.clone()),
                kind: "config",
                reason: "check retired: no longer in the configuration (history kept)".into(),
                ..Default::default()
            });
        }
    }
    insert_events(&mut tx, &events, now).await?;
    tx.commit().await?;
    Ok((loaded, events))
}

/// Inserts events, returning their ids in order.
pub async fn insert_events(
    conn: &mut SqliteConnection,
    events: &[NewEvent],
    noticed: DateTime<Utc>,
) -> Result<Vec<i64>, sqlx::Error> {
    let mut ids = Vec::with_capacity(events.len());
    for e in events {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO events (at, noticed_at, check_name, kind, from_state, to_state, instance, color, \
             reason, down_for_ms, silenced, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(to_ms(e.at))
        .bind(to_ms(noticed))
        .bind(&e.check)
        .bind(e.kind)
        .bind(e.from_state.map(|s| s.as_str()))
        .bind(e.to_state.map(|s| s.as_str()))
        .bind(&e.instance)
        .bind(&e.color)
        .bind(&e.reason)
        .bind(e.down_for.map(|d| d.as_millis() as i64))
        .bind(&e.silenced)
        .bind(e.data.as_ref().map(|d| d.to_string()))
        .fetch_one(&mut *conn)
        .await?;
        ids.push(id);
    }
    Ok(ids)
}

/// One check's new runtime, written by the writer's batch.
pub struct RuntimeUpdate<'a> {
    pub id: i64,
    pub runtime: &'a Runtime,
    pub ping_count: i64,
}

/// One received ping, written into the check's ring.
pub struct PingRow {
    pub check_id: i64,
    pub slot: i64,
    pub at: DateTime<Utc>,
    pub kind: &'static str,
    pub instance: Option<String>,
    pub detail: Option<String>,
}

pub async fn write_runtimes(
    conn: &mut SqliteConnection,
    updates: &[RuntimeUpdate<'_>],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    for u in updates {
        sqlx::query(
            "UPDATE checks SET state = ?, runtime = ?, next_deadline = ?, ping_count = ?, updated_at = ? WHERE id = ?",
        )
        .bind(u.runtime.state.as_str())
        .bind(serde_json::to_string(u.runtime).expect("runtime serializes"))
        .bind(u.runtime.next_deadline().map(to_ms))
        .bind(u.ping_count)
        .bind(to_ms(now))
        .bind(u.id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn write_pings(
    conn: &mut SqliteConnection,
    pings: &[PingRow],
) -> Result<(), sqlx::Error> {
    // Many rows per statement: the batch's pings cost one round trip per 100.
    for chunk in pings.chunks(100) {
        let mut qb = sqlx::QueryBuilder::new(
            "INSERT OR REPLACE INTO pings (check_id, slot, at, kind, instance, detail) ",
        );
        qb.push_values(chunk, |mut b, p| {
            b.push_bind(p.check_id)
                .push_bind(p.slot)
                .push_bind(to_ms(p.at))
                .push_bind(p.kind)
                .push_bind(p.instance.clone())
                .push_bind(p.detail.clone());
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// A check as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckRow {
    pub name: String,
    pub kind: String,
    pub color: Option<String>,
    pub state: String,
    pub since: DateTime<Utc>,
    pub reason: String,
    pub last_signal: Option<DateTime<Utc>>,
    pub next_deadline: Option<DateTime<Utc>>,
    pub down_since: Option<DateTime<Utc>>,
    pub instances: Vec<InstanceRow>,
    #[serde(skip)]
    pub id: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct InstanceRow {
    pub instance: String,
    pub color: Option<String>,
    pub version: Option<String>,
    pub status: String,
    pub detail: Option<String>,
    pub seq: u64,
    pub last_seen: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    /// `fail` heartbeats in a row.
    pub consecutive_failures: u32,
}

fn check_row(row: &sqlx::sqlite::SqliteRow) -> Result<CheckRow, StoreError> {
    let name: String = row.get("name");
    let rt: Runtime = serde_json::from_str(row.get::<&str, _>("runtime"))
        .map_err(|e| StoreError::Corrupt(name.clone(), e))?;
    Ok(CheckRow {
        id: row.get("id"),
        kind: row.get("kind"),
        color: row.get("color"),
        state: rt.state.as_str().to_string(),
        since: rt.since,
        reason: rt.reason.clone(),
        last_signal: rt.last_signal,
        next_deadline: rt.next_deadline(),
        down_since: rt.down_since,
        instances: rt
            .instances
            .iter()
            .map(|(n, i)| InstanceRow {
                instance: n.clone(),
                color: i.color.map(|c| c.to_string()),
                version: i.version.clone(),
                status: i.status.as_str().to_string(),
                detail: i.detail.clone(),
                seq: i.seq,
                last_seen: i.last_seen,
                deadline: i.down_at,
                consecutive_failures: i.consecutive_fails,
            })
            .collect(),
        name,
    })
}

pub async fn list_checks(pool: &SqlitePool) -> Result<Vec<CheckRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, name, kind, color, runtime FROM checks WHERE retired_at IS NULL ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(check_row).collect()
}

pub async fn get_check(pool: &SqlitePool, name: &str) -> Result<Option<CheckRow>, StoreError> {
    let row = sqlx::query(
        "SELECT id, name, kind, color, runtime FROM checks WHERE name = ? AND retired_at IS NULL",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(check_row).transpose()
}

/// An event as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EventRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub noticed_at: DateTime<Utc>,
    pub check: Option<String>,
    pub kind: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub instance: Option<String>,
    pub color: Option<String>,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down_for: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silenced: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

/// Where to start listing events.
#[derive(Debug, Clone, Copy)]
pub enum Since {
    /// After this event id (a cursor from a previous answer).
    Id(i64),
    /// Events that happened at or after this time.
    Time(DateTime<Utc>),
}

pub async fn events(
    pool: &SqlitePool,
    since: Since,
    check: Option<&str>,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    let (clause, value) = match since {
        Since::Id(id) => ("id > ?", id),
        Since::Time(t) => ("at >= ?", to_ms(t)),
    };
    let sql = format!(
        "SELECT id, at, noticed_at, check_name, kind, from_state, to_state, instance, color, reason, \
         down_for_ms, silenced, data FROM events WHERE {clause} AND (? IS NULL OR check_name = ?) \
         ORDER BY id LIMIT ?"
    );
    let rows = sqlx::query(&sql)
        .bind(value)
        .bind(check)
        .bind(check)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .iter()
        .map(|r| EventRow {
            id: r.get("id"),
            at: from_ms(r.get("at")),
            noticed_at: from_ms(r.get("noticed_at")),
            check: r.get("check_name"),
            kind: r.get("kind"),
            from: r.get("from_state"),
            to: r.get("to_state"),
            instance: r.get("instance"),
            color: r.get("color"),
            reason: r.get("reason"),
            down_for: r
                .get::<Option<i64>, _>("down_for_ms")
                .map(|ms| bgw_wire::format_duration(Duration::from_millis(ms.max(0) as u64))),
            silenced: r.get("silenced"),
            data: r
                .get::<Option<String>, _>("data")
                .and_then(|d| serde_json::from_str(&d).ok()),
        })
        .collect())
}

/// The most recent pings of a check, newest first.
pub async fn recent_pings(
    pool: &SqlitePool,
    check_id: i64,
    limit: i64,
) -> Result<Vec<serde_json::Value>, StoreError> {
    let rows = sqlx::query(
        "SELECT at, kind, instance, detail FROM pings WHERE check_id = ? ORDER BY at DESC LIMIT ?",
    )
    .bind(check_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "at": from_ms(r.get("at")),
                "kind": r.get::<String, _>("kind"),
                "instance": r.get::<Option<String>, _>("instance"),
                "detail": r.get::<Option<String>, _>("detail"),
            })
        })
        .collect())
}

pub async fn count_pings(pool: &SqlitePool, check_id: i64) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM pings WHERE check_id = ?")
            .bind(check_id)
            .fetch_one(pool)
            .await?,
    )
}
