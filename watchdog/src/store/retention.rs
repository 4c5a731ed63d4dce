//! Retention's deletes: events, settled notifications and ended silences
//! older than a cutoff, a bounded batch per statement (one statement, one
//! short transaction; the scan for old rows is a read before it), so the
//! monitor's commits never wait long for the write lock. Pending
//! notifications, and the events they come from, are never deleted. SQLite
//! reuses the freed pages: the file stops growing.

use super::{to_ms, Store, StoreError};
use chrono::{DateTime, Utc};

/// A delete in two steps: a read finds the highest id of the first `limit`
/// rows that match (no write lock while it scans), then the delete takes
/// the rows that match up to that id, a range of the primary key. New rows
/// get higher ids, so the delete takes exactly what the read found.
async fn prune(
    store: &Store,
    table: &str,
    matches: &str,
    before: DateTime<Utc>,
    limit: u32,
) -> Result<u64, StoreError> {
    let last: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT MAX(id) FROM (SELECT id FROM {table} WHERE {matches} ORDER BY id LIMIT ?)"
    ))
    .bind(to_ms(before))
    .bind(i64::from(limit))
    .fetch_one(&store.pool)
    .await?;
    let Some(last) = last else { return Ok(0) };
    let done = sqlx::query(&format!("DELETE FROM {table} WHERE id <= ? AND {matches}"))
        .bind(last)
        .bind(to_ms(before))
        .execute(&store.pool)
        .await?;
    Ok(done.rows_affected())
}

impl Store {
    /// Deletes at most `limit` events that happened before `before` and no
    /// pending notification comes from; returns how many went.
    pub async fn prune_events(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        prune(
            self,
            "events",
            "at < ? AND NOT EXISTS (SELECT 1 FROM notifications n \
             WHERE n.event_id = events.id AND n.state = 'pending')",
            before,
            limit,
        )
        .await
    }

    /// Deletes at most `limit` notifications created before `before` that
    /// are no longer pending (delivered, merged, failed, cancelled).
    pub async fn prune_notifications(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        prune(
            self,
            "notifications",
            "created_at < ? AND state <> 'pending'",
            before,
            limit,
        )
        .await
    }

    /// Deletes at most `limit` silences that ended before `before`.
    pub async fn prune_silences(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        prune(self, "silences", "until < ?", before, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::retention::{Retention, DAY};
    use std::time::Duration;

    async fn count(store: &Store, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&store.pool)
            .await
            .unwrap()
    }

    /// Rows at `at`: an event with a pending notification, one with a
    /// delivered one, one alone, an ended silence and a later one.
    async fn rows_at(store: &Store, at: DateTime<Utc>) {
        let ms = to_ms(at);
        for (i, state) in [Some("pending"), Some("delivered"), None]
            .iter()
            .enumerate()
        {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO events (at, noticed_at, check_name, kind, reason) \
                 VALUES (?, ?, 'blue', 'state', ?) RETURNING id",
            )
            .bind(ms)
            .bind(ms)
            .bind(format!("event {i}"))
            .fetch_one(&store.pool)
            .await
            .unwrap();
            if let Some(state) = state {
                sqlx::query(
                    "INSERT INTO notifications (event_id, channel, payload, state, next_attempt_at, created_at) \
                     VALUES (?, 'slack', '{}', ?, ?, ?)",
                )
                .bind(id)
                .bind(state)
                .bind(ms)
                .bind(ms)
                .execute(&store.pool)
                .await
                .unwrap();
            }
        }
        sqlx::query(
            "INSERT INTO silences (target, until, reason, created_at) VALUES ('blue', ?, 'x', ?)",
        )
        .bind(ms + 3_600_000)
        .bind(ms)
        .execute(&store.pool)
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn retention_deletes_old_rows_in_batches_and_keeps_recent_and_pending_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("w.db").to_str().unwrap())
            .await
            .unwrap();
        let start = Utc::now();
        let (clock, hand) = Clock::manual(start);
        // 5 old generations (more rows than a batch) and one recent.
        for d in 0..5 {
            rows_at(&store, start - chrono::TimeDelta::days(200 + d)).await;
        }
        rows_at(&store, start - chrono::TimeDelta::days(1)).await;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(
            Retention {
                store: store.clone(),
                clock,
                keep: 90 * DAY,
                batch: 2,
                pause: Duration::ZERO,
                every: Duration::from_secs(3600),
            }
            .run(stopped),
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while count(&store, "SELECT COUNT(*) FROM silences").await > 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "retention did not run"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Kept: the recent generation (3 events, 2 notifications, 1 silence)
        // and every pending notification with its event (5 old ones).
        let events = "SELECT COUNT(*) FROM events";
        let notifications = "SELECT COUNT(*) FROM notifications";
        let pending = "SELECT COUNT(*) FROM notifications WHERE state = 'pending'";
        let orphans = "SELECT COUNT(*) FROM notifications n WHERE NOT EXISTS \
                       (SELECT 1 FROM events e WHERE e.id = n.event_id)";
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(count(&store, events).await, 3 + 5);
        assert_eq!(count(&store, notifications).await, 2 + 5);
        assert_eq!(count(&store, pending).await, 1 + 5);
        assert_eq!(count(&store, orphans).await, 0);

        // 100 days on, the recent generation is old too; pending stays.
        hand.advance(Duration::from_secs(100 * 86_400));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while count(&store, "SELECT COUNT(*) FROM silences").await > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "retention did not run again"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(count(&store, events).await, 6);
        assert_eq!(count(&store, pending).await, 6);
        assert_eq!(count(&store, notifications).await, 6);
        stop.send(true).unwrap();
        task.await.unwrap();
    }
}
