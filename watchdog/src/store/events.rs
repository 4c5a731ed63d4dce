//! Reading events back: the API's cursor, and the few facts the timers and
//! the alerting memory are rebuilt from at start.

use super::{from_ms, to_ms, Store, StoreError};
use crate::alerting;
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::HashMap;
use std::time::Duration;

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

/// An `events` row as the API shows it (the columns of [`EVENT_COLUMNS`]).
pub(super) fn event_row(r: &sqlx::sqlite::SqliteRow) -> EventRow {
    EventRow {
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
    }
}

/// The columns [`event_row`] reads.
pub(super) const EVENT_COLUMNS: &str =
    "id, at, noticed_at, check_name, kind, from_state, to_state, \
     instance, color, reason, down_for_ms, silenced, data";

/// Where to start listing events.
#[derive(Debug, Clone, Copy)]
pub enum Since {
    /// After this event id (a cursor from a previous answer).
    Id(i64),
    /// Events that happened at or after this time.
    Time(DateTime<Utc>),
}

impl Store {
    pub async fn events(
        &self,
        since: Since,
        check: Option<&str>,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let (clause, value) = match since {
            Since::Id(id) => ("id > ?", id),
            Since::Time(t) => ("at >= ?", to_ms(t)),
        };
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE {clause} AND (? IS NULL OR check_name = ?) \
             ORDER BY id LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(value)
            .bind(check)
            .bind(check)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(event_row).collect())
    }

    /// The last reminder of each check.
    pub async fn last_reminders(&self) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT check_name, MAX(at) FROM events WHERE kind = 'reminder' AND check_name IS NOT NULL \
             GROUP BY check_name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(c, at)| (c, from_ms(at))).collect())
    }

    /// When the last all-is-well summary was sent, or else when the
    /// watchdog first started (its first event): a summary due while the
    /// watchdog was down is sent once, at start.
    pub async fn last_all_is_well(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT COALESCE((SELECT MAX(at) FROM events WHERE kind = 'all_is_well'), \
             (SELECT MIN(at) FROM events))",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(last.map(from_ms))
    }

    /// The flips (downs and recoveries of checks) and flapping notices
    /// since `since`: the alerting memory a restart continues from.
    pub async fn flap_memory(&self, since: DateTime<Utc>) -> Result<alerting::Memory, StoreError> {
        let rows = sqlx::query(
            "SELECT check_name, kind, at FROM events WHERE at >= ? AND check_name IS NOT NULL AND \
             ((kind = 'state' AND (to_state = 'down' OR (from_state = 'down' AND to_state = 'up'))) \
             OR kind = 'flapping') ORDER BY at",
        )
        .bind(to_ms(since))
        .fetch_all(&self.pool)
        .await?;
        let mut memory = alerting::Memory::default();
        for r in &rows {
            let check: &str = r.get("check_name");
            let at = from_ms(r.get("at"));
            match r.get::<&str, _>("kind") {
                "flapping" => memory.noticed(check, at),
                _ => memory.flip(check, at),
            }
        }
        Ok(memory)
    }
}
