//! The status page's reads (the newest events, the deliveries of their
//! notifications) and the uptime rollups' bookkeeping: advancing the fold
//! (`crate::rollup`) over the state events not yet folded in, in one
//! transaction, and reading the buckets back.

use super::{from_ms, to_ms, EventRow, Store, StoreError};
use crate::rollup::{self, Cursor, Health, Hours, Transition};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::HashMap;

/// State events folded per transaction (a long backlog takes several runs).
const FOLD_BATCH: i64 = 5_000;

/// One notification of an event: its channel and its delivery state
/// (`pending`, `delivered`, `failed`, `merged`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub event_id: i64,
    pub channel: String,
    pub state: String,
}

impl Store {
    /// The newest events, newest first: `limit` of them after skipping `offset`.
    pub async fn recent_events(
        &self,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM events ORDER BY id DESC LIMIT ? OFFSET ?",
            super::events::EVENT_COLUMNS
        ))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(super::events::event_row).collect())
    }

    /// The notifications of the events with ids in `first..=last`.
    pub async fn deliveries(&self, first: i64, last: i64) -> Result<Vec<Delivery>, StoreError> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT event_id, channel, state FROM notifications WHERE event_id BETWEEN ? AND ? ORDER BY id",
        )
        .bind(first)
        .bind(last)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(event_id, channel, state)| Delivery {
                event_id,
                channel,
                state,
            })
            .collect())
    }

    /// Folds the state events after the watermark, and every open interval
    /// up to `now`, into the hourly buckets (one transaction). The first
    /// run starts at the newest event: history begins when rollups do.
    /// `current` gives a check's state and since when, for checks without
    /// a cursor yet. Returns how many events were folded in.
    pub async fn advance_rollups(
        &self,
        current: &[(String, Health, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await?;
        let watermark: Option<i64> =
            sqlx::query_scalar("SELECT event_id FROM rollup_watermark WHERE id = 1")
                .fetch_optional(&mut *tx)
                .await?;
        let watermark = match watermark {
            Some(w) => w,
            None => sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(id) FROM events")
                .fetch_one(&mut *tx)
                .await?
                .unwrap_or(0),
        };
        let stored: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT check_name, health, since FROM rollup_cursor")
                .fetch_all(&mut *tx)
                .await?;
        let mut cursors: HashMap<String, Cursor> = stored
            .into_iter()
            .map(|(c, h, s)| {
                (
                    c,
                    Cursor {
                        health: Health::parse(&h),
                        since: from_ms(s),
                    },
                )
            })
            .collect();
        for (name, health, since) in current {
            cursors.entry(name.clone()).or_insert(Cursor {
                health: *health,
                since: (*since).min(now),
            });
        }
        let rows = sqlx::query(
            "SELECT id, check_name, at, to_state FROM events WHERE id > ? AND kind = 'state' \
             AND check_name IS NOT NULL ORDER BY id LIMIT ?",
        )
        .bind(watermark)
        .bind(FOLD_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let mut last = watermark;
        let transitions: Vec<Transition> = rows
            .iter()
            .map(|r| {
                last = r.get("id");
                Transition {
                    check: r.get("check_name"),
                    at: from_ms(r.get("at")),
                    to: Health::of_state(r.get::<Option<&str>, _>("to_state").unwrap_or("")),
                }
            })
            .collect();
        if (transitions.len() as i64) < FOLD_BATCH {
            // Caught up: later non-state events need not be looked at again.
            last = sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(id) FROM events")
                .fetch_one(&mut *tx)
                .await?
                .unwrap_or(last)
                .max(last);
        }
        let until = if (transitions.len() as i64) < FOLD_BATCH {
            now
        } else {
            transitions.last().map_or(now, |t| t.at)
        };
        let adds = rollup::fold(&mut cursors, &transitions, until);
        for a in &adds {
            sqlx::query(
                "INSERT INTO rollup_hours (check_name, hour, up_ms, down_ms) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (check_name, hour) DO UPDATE SET up_ms = up_ms + excluded.up_ms, \
                 down_ms = down_ms + excluded.down_ms",
            )
            .bind(&a.check)
            .bind(a.hour)
            .bind(a.up_ms)
            .bind(a.down_ms)
            .execute(&mut *tx)
            .await?;
        }
        for (name, c) in &cursors {
            sqlx::query(
                "INSERT INTO rollup_cursor (check_name, health, since) VALUES (?, ?, ?) \
                 ON CONFLICT (check_name) DO UPDATE SET health = excluded.health, since = excluded.since",
            )
            .bind(name)
            .bind(c.health.as_str())
            .bind(to_ms(c.since))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO rollup_watermark (id, event_id) VALUES (1, ?) \
             ON CONFLICT (id) DO UPDATE SET event_id = excluded.event_id",
        )
        .bind(last)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(transitions.len())
    }

    /// Every check's (up, down) sums over each of [`rollup::WINDOWS`].
    pub async fn rollup_sums(
        &self,
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, [(i64, i64); 3]>, StoreError> {
        let current = now.timestamp_millis().div_euclid(rollup::HOUR_MS);
        let [a, b, c] = rollup::WINDOWS.map(|w| current - w);
        let rows = sqlx::query(
            "SELECT check_name, \
             SUM(CASE WHEN hour > ?1 THEN up_ms ELSE 0 END) AS u0, SUM(CASE WHEN hour > ?1 THEN down_ms ELSE 0 END) AS d0, \
             SUM(CASE WHEN hour > ?2 THEN up_ms ELSE 0 END) AS u1, SUM(CASE WHEN hour > ?2 THEN down_ms ELSE 0 END) AS d1, \
             SUM(up_ms) AS u2, SUM(down_ms) AS d2 \
             FROM rollup_hours WHERE hour > ?3 AND hour <= ?4 GROUP BY check_name",
        )
        .bind(a)
        .bind(b)
        .bind(c)
        .bind(current)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let g = |k: &str| r.get::<Option<i64>, _>(k).unwrap_or(0);
                (
                    r.get("check_name"),
                    [(g("u0"), g("d0")), (g("u1"), g("d1")), (g("u2"), g("d2"))],
                )
            })
            .collect())
    }

    /// Every check's buckets of the last `hours` hours up to `now`'s.
    pub async fn rollup_hours(
        &self,
        now: DateTime<Utc>,
        hours: i64,
    ) -> Result<HashMap<String, Hours>, StoreError> {
        let from = now.timestamp_millis().div_euclid(rollup::HOUR_MS) - hours;
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT check_name, hour, up_ms, down_ms FROM rollup_hours WHERE hour > ?",
        )
        .bind(from)
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<String, Hours> = HashMap::new();
        for (check, hour, up, down) in rows {
            out.entry(check).or_default().insert(hour, (up, down));
        }
        Ok(out)
    }

    /// Deletes buckets older than `keep_hours` (the page shows 30 days).
    pub async fn prune_rollups(
        &self,
        now: DateTime<Utc>,
        keep_hours: i64,
    ) -> Result<u64, StoreError> {
        let from = now.timestamp_millis().div_euclid(rollup::HOUR_MS) - keep_hours;
        Ok(sqlx::query("DELETE FROM rollup_hours WHERE hour <= ?")
            .bind(from)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
