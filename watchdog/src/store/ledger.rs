//! Reading the control ledger and the silences back at start (and the
//! toggle history for the API).

use super::{from_ms, to_ms, Store, StoreError};
use crate::alerting::Silence;
use crate::ledger::{ControlState, RollbackState, ToggleRecord};
use chrono::{DateTime, Utc};
use sqlx::Row;

fn color(value: &str) -> Result<bgw_wire::Color, StoreError> {
    value
        .parse()
        .map_err(|_| super::corrupt("color", format!("{value:?}")))
}

fn toggle(r: &sqlx::sqlite::SqliteRow) -> Result<ToggleRecord, StoreError> {
    Ok(ToggleRecord {
        id: r.get("id"),
        at: from_ms(r.get("at")),
        from: r
            .get::<Option<&str>, _>("from_color")
            .map(color)
            .transpose()?,
        to: color(r.get("to_color"))?,
        automatic: r.get("automatic"),
        reason: r.get("reason"),
        ok: r.get("ok"),
        error: r.get("error"),
    })
}

const TOGGLE_COLUMNS: &str = "id, at, from_color, to_color, automatic, reason, ok, error";

impl Store {
    /// The ledger as the monitor starts from.
    pub async fn control_state(&self) -> Result<ControlState, StoreError> {
        let last_toggle = sqlx::query(&format!(
            "SELECT {TOGGLE_COLUMNS} FROM toggles WHERE ok = 1 ORDER BY at DESC, id DESC LIMIT 1"
        ))
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(toggle)
        .transpose()?;
        let rollback = sqlx::query(
            "SELECT latched, latched_at, latch_reason, disabled, last_automatic_at FROM rollback_state WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?
        .map(|r| RollbackState {
            latched: r.get("latched"),
            latched_at: r.get::<Option<i64>, _>("latched_at").map(from_ms),
            latch_reason: r.get("latch_reason"),
            disabled: r.get("disabled"),
            last_automatic_at: r.get::<Option<i64>, _>("last_automatic_at").map(from_ms),
        })
        .unwrap_or_default();
        let mut last_deploy = [None, None];
        for (i, c) in ["blue", "green"].iter().enumerate() {
            let at: Option<i64> = sqlx::query_scalar("SELECT MAX(at) FROM deploys WHERE color = ?")
                .bind(c)
                .fetch_one(&self.pool)
                .await?;
            last_deploy[i] = at.map(from_ms);
        }
        Ok(ControlState {
            last_toggle,
            rollback,
            last_deploy,
        })
    }

    /// The last `limit` switches, failed ones included, newest first.
    pub async fn toggles(&self, limit: u32) -> Result<Vec<ToggleRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TOGGLE_COLUMNS} FROM toggles ORDER BY at DESC, id DESC LIMIT ?"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(toggle).collect()
    }

    /// Silences still active at `now`.
    pub async fn silences(&self, now: DateTime<Utc>) -> Result<Vec<Silence>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, target, until, reason, created_at FROM silences WHERE until > ? ORDER BY id",
        )
        .bind(to_ms(now))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Silence {
                id: r.get("id"),
                target: r.get("target"),
                until: from_ms(r.get("until")),
                reason: r.get("reason"),
                created_at: from_ms(r.get("created_at")),
            })
            .collect())
    }
}
