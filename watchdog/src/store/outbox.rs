//! The outbox's rows: what a channel has pending, the bookkeeping of a
//! delivery (delivered, merged, retried, failed) and the API's listing.
//! Notifications are created only by [`Store::commit`].

use super::{from_ms, to_ms, Store, StoreError};
use bgw_notify::Notification;
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::HashMap;

/// A pending notification of one channel.
#[derive(Debug, Clone)]
pub struct PendingRow {
    pub id: i64,
    pub group_key: Option<String>,
    pub notification: Notification,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// A notification row as the API shows it.
#[derive(Debug, serde::Serialize)]
pub struct NotificationRow {
    pub id: i64,
    pub event_id: Option<i64>,
    pub channel: String,
    pub state: String,
    pub attempts: i64,
    pub subject: String,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub merged_into: Option<i64>,
    pub last_error: Option<String>,
}

impl Store {
    /// Every pending notification of `channel`, oldest first. Rows whose
    /// payload cannot be read are marked failed (and left out).
    pub async fn pending(&self, channel: &str) -> Result<Vec<PendingRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, group_key, payload, attempts, next_attempt_at, created_at FROM notifications \
             WHERE channel = ? AND state = 'pending' ORDER BY id",
        )
        .bind(channel)
        .fetch_all(&self.pool)
        .await?;
        let mut pending = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.get("id");
            match serde_json::from_str(r.get::<&str, _>("payload")) {
                Ok(notification) => pending.push(PendingRow {
                    id,
                    group_key: r.get("group_key"),
                    notification,
                    attempts: r.get("attempts"),
                    next_attempt_at: from_ms(r.get("next_attempt_at")),
                    created_at: from_ms(r.get("created_at")),
                }),
                Err(e) => {
                    tracing::error!(id, error = %e, "unreadable notification payload");
                    self.mark_failed(&[id], "unreadable payload").await?;
                }
            }
        }
        Ok(pending)
    }

    /// When each group of `channel` last had a message sent, for sends since
    /// `since` (the grouping window).
    pub async fn last_sent(
        &self,
        channel: &str,
        since: DateTime<Utc>,
    ) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT group_key, MAX(delivered_at) FROM notifications WHERE channel = ? AND state = 'delivered' \
             AND group_key IS NOT NULL AND delivered_at >= ? GROUP BY group_key",
        )
        .bind(channel)
        .bind(to_ms(since))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(g, at)| (g, from_ms(at))).collect())
    }

    /// `ids[0]` was delivered as one message carrying the others (`merged`).
    pub async fn mark_delivered(&self, ids: &[i64], now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (i, id) in ids.iter().enumerate() {
            sqlx::query(
                "UPDATE notifications SET state = ?, delivered_at = ?, attempts = attempts + 1, merged_into = ? \
                 WHERE id = ?",
            )
            .bind(if i == 0 { "delivered" } else { "merged" })
            .bind(to_ms(now))
            .bind((i > 0).then_some(ids[0]))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Refused for good.
    pub async fn mark_failed(&self, ids: &[i64], error: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for id in ids {
            sqlx::query("UPDATE notifications SET state = 'failed', last_error = ? WHERE id = ?")
                .bind(error)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A transient failure: try `ids` again at `next`.
    pub async fn retry_at(
        &self,
        ids: &[i64],
        attempts: i64,
        next: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for id in ids {
            sqlx::query(
                "UPDATE notifications SET attempts = MAX(attempts, ?), next_attempt_at = ?, last_error = ? WHERE id = ?",
            )
            .bind(attempts)
            .bind(to_ms(next))
            .bind(error)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn notifications(
        &self,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, event_id, channel, state, attempts, payload, created_at, next_attempt_at, delivered_at, \
             merged_into, last_error FROM notifications WHERE (? IS NULL OR state = ?) ORDER BY id DESC LIMIT ?",
        )
        .bind(state)
        .bind(state)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| NotificationRow {
                id: r.get("id"),
                event_id: r.get("event_id"),
                channel: r.get("channel"),
                state: r.get("state"),
                attempts: r.get("attempts"),
                subject: serde_json::from_str::<Notification>(r.get::<&str, _>("payload"))
                    .map(|n| n.subject())
                    .unwrap_or_default(),
                created_at: from_ms(r.get("created_at")),
                next_attempt_at: from_ms(r.get("next_attempt_at")),
                delivered_at: r.get::<Option<i64>, _>("delivered_at").map(from_ms),
                merged_into: r.get("merged_into"),
                last_error: r.get("last_error"),
            })
            .collect())
    }

    /// Creation time of the oldest pending notification, for `/metrics`.
    pub async fn oldest_pending(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let ms: Option<i64> =
            sqlx::query_scalar("SELECT MIN(created_at) FROM notifications WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        Ok(ms.map(from_ms))
    }
}
