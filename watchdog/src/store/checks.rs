//! Checks in the store: syncing the configured ones at start, their
//! runtimes, their recent pings, and the reads of the API and the timers.

use super::{batch, corrupt, from_ms, to_ms, Store, StoreError};
use crate::check::{CheckKind, CheckSpec};
use crate::event::{Event, EventKind};
use crate::reports::TargetState;
use crate::state::{Rules, Runtime};
use bgw_wire::Color;
use chrono::{DateTime, Utc};
use sqlx::Row;

/// A check as loaded at start: its id and stored runtime.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub id: i64,
    pub runtime: Runtime,
    pub ping_count: i64,
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

fn runtime_of(name: &str, json: &str) -> Result<Runtime, StoreError> {
    serde_json::from_str(json).map_err(|e| corrupt(format!("runtime of check {name}"), e))
}

fn check_row(row: &sqlx::sqlite::SqliteRow) -> Result<CheckRow, StoreError> {
    let name: String = row.get("name");
    let rt = runtime_of(&name, row.get::<&str, _>("runtime"))?;
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

impl Store {
    /// Brings the configured checks into the store: new ones are added,
    /// changed ones updated (history and state kept, deadlines recomputed),
    /// removed ones retired. Returns one `Loaded` per spec, in order, and
    /// the events describing the changes (stored in the same transaction).
    pub async fn sync_checks(
        &self,
        specs: &[(CheckSpec, Rules)],
        now: DateTime<Utc>,
    ) -> Result<(Vec<Loaded>, Vec<Event>), StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut loaded = Vec::with_capacity(specs.len());
        let mut events = Vec::new();
        let config = |check: &str, reason: String| {
            Event::new(
                now,
                EventKind::Config {
                    check: check.to_string(),
                    reason,
                },
            )
        };
        type Stored = (i64, String, String, String, Option<i64>, i64);
        let existing: Vec<Stored> = sqlx::query_as(
            "SELECT id, name, fingerprint, runtime, retired_at, ping_count FROM checks",
        )
        .fetch_all(&mut *tx)
        .await?;
        let by_name: std::collections::HashMap<&str, &Stored> =
            existing.iter().map(|row| (row.1.as_str(), row)).collect();
        for (spec, rules) in specs {
            let uuid = match &spec.kind {
                CheckKind::Heartbeat { uuid } => Some(uuid.clone()),
                _ => None,
            };
            let color = spec.color().map(Color::as_str);
            let fingerprint = spec.fingerprint();
            match by_name.get(spec.name.as_str()) {
                Some((id, _, old_fp, runtime, retired, pings)) => {
                    let mut rt = runtime_of(&spec.name, runtime)?;
                    if *old_fp != fingerprint {
                        rt = crate::state::reschedule(rules, &rt, now);
                        events.push(config(
                            &spec.name,
                            format!("check changed: {old_fp} -> {fingerprint}"),
                        ));
                    }
                    if retired.is_some() {
                        events.push(config(
                            &spec.name,
                            "check restored to the configuration".into(),
                        ));
                    }
                    sqlx::query(
                        "UPDATE checks SET kind = ?, fingerprint = ?, color = ?, uuid = ?, runtime = ?, \
                         state = ?, next_deadline = ?, retired_at = NULL, updated_at = ? WHERE id = ?",
                    )
                    .bind(spec.kind.as_str())
                    .bind(&fingerprint)
                    .bind(color)
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
                    .bind(color)
                    .bind(&uuid)
                    .bind(rt.state.as_str())
                    .bind(serde_json::to_string(&rt).expect("runtime serializes"))
                    .bind(rt.next_deadline().map(to_ms))
                    .bind(to_ms(now))
                    .bind(to_ms(now))
                    .fetch_one(&mut *tx)
                    .await?;
                    events.push(config(&spec.name, format!("check added: {fingerprint}")));
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
                events.push(config(
                    name,
                    "check retired: no longer in the configuration (history kept)".into(),
                ));
            }
        }
        batch::insert_events(&mut tx, &events, &vec![None; events.len()], now).await?;
        tx.commit().await?;
        Ok((loaded, events))
    }

    pub async fn list_checks(&self) -> Result<Vec<CheckRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, kind, color, runtime FROM checks WHERE retired_at IS NULL ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(check_row).collect()
    }

    pub async fn get_check(&self, name: &str) -> Result<Option<CheckRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, kind, color, runtime FROM checks WHERE name = ? AND retired_at IS NULL",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(check_row).transpose()
    }

    /// Checks that are down now: (name, color, runtime), for the reminders.
    pub async fn down_checks(&self) -> Result<Vec<(String, Option<Color>, Runtime)>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, color, runtime FROM checks WHERE state = 'down' AND retired_at IS NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let name: String = r.get("name");
                let rt = runtime_of(&name, r.get::<&str, _>("runtime"))?;
                let color = r
                    .get::<Option<&str>, _>("color")
                    .and_then(|c| c.parse().ok());
                Ok((name, color, rt))
            })
            .collect()
    }

    /// The most recent pings of a check, newest first.
    pub async fn recent_pings(
        &self,
        check_id: i64,
        limit: i64,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, kind, instance, detail FROM pings WHERE check_id = ? ORDER BY at DESC LIMIT ?",
        )
        .bind(check_id)
        .bind(limit)
        .fetch_all(&self.pool)
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

    /// The stored states of the checker's and the prober's targets.
    pub async fn targets(&self) -> Result<Vec<TargetState>, StoreError> {
        let rows = sqlx::query("SELECT observer, target, state FROM targets")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                serde_json::from_str(r.get::<&str, _>("state")).map_err(|e| {
                    corrupt(
                        format!(
                            "target {}:{}",
                            r.get::<&str, _>("observer"),
                            r.get::<&str, _>("target")
                        ),
                        e,
                    )
                })
            })
            .collect()
    }
}
