//! What the checker and the prober see, kept per (observer, target): the
//! edge around the pure `reports` module. Each report updates the states
//! (stored, so a restart keeps the counts), writes the seed-style log lines
//! and records a `target` event when a target has failed `fail_after`
//! rounds in a row or recovers; those events alert like any other.

use crate::logfile::LogSink;
use crate::monitor::Monitor;
use crate::reports::{apply_report, TargetState};
use crate::state::State;
use crate::store::NewEvent;
use bgw_wire::Report;
use chrono::Utc;
use sqlx::{Row, SqlitePool};
use tokio::sync::Mutex;

pub struct Observers {
    states: Mutex<Vec<TargetState>>,
    pool: SqlitePool,
    log: LogSink,
    threshold_ms: u64,
    fail_after: u32,
}

impl Observers {
    /// Loads the stored states.
    pub async fn load(
        pool: SqlitePool,
        log: LogSink,
        threshold_ms: u64,
        fail_after: u32,
    ) -> Result<Observers, sqlx::Error> {
        let rows = sqlx::query("SELECT state FROM targets")
            .fetch_all(&pool)
            .await?;
        let states = rows
            .iter()
            .filter_map(|r| serde_json::from_str(r.get::<&str, _>("state")).ok())
            .collect();
        Ok(Observers {
            states: Mutex::new(states),
            pool,
            log,
            threshold_ms,
            fail_after,
        })
    }

    /// Every target state, for the API and the rollback decision.
    pub async fn snapshot(&self) -> Vec<TargetState> {
        self.states.lock().await.clone()
    }

    /// Applies one accepted report.
    pub async fn ingest(
        &self,
        monitor: &Monitor,
        report: &Report,
    ) -> Result<(), crate::monitor::MonitorError> {
        let now = Utc::now();
        let mut states = self.states.lock().await;
        let outcome = apply_report(&states, report, now, self.threshold_ms, self.fail_after);
        let changed: Vec<&TargetState> = outcome
            .states
            .iter()
            .filter(|s| {
                s.observer == report.observer && report.results.iter().any(|r| r.target == s.target)
            })
            .collect();
        if let Err(e) = self.persist(&changed).await {
            tracing::error!(error = %e, "could not store target states");
        }
        // Exactly the contract's (and the original script's) lines: the
        // target names already tell the checker's from the prober's.
        for line in &outcome.log_lines {
            self.log.write(now, line.clone()).await;
        }
        let events: Vec<NewEvent> = outcome
            .transitions
            .iter()
            .map(|t| NewEvent {
                at: now,
                check: Some(format!("{}:{}", t.observer, t.target)),
                kind: "target",
                from_state: Some(if t.down { State::Up } else { State::Down }),
                to_state: Some(if t.down { State::Down } else { State::Up }),
                color: t.color.map(|c| c.to_string()),
                reason: t.reason.clone(),
                data: Some(serde_json::json!({ "observer": t.observer, "target": t.target })),
                ..Default::default()
            })
            .collect();
        *states = outcome.states;
        drop(states);
        if !events.is_empty() {
            monitor.record(events).await?;
        }
        Ok(())
    }

    async fn persist(&self, states: &[&TargetState]) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for s in states {
            sqlx::query(
                "INSERT OR REPLACE INTO targets (observer, target, state) VALUES (?, ?, ?)",
            )
            .bind(&s.observer)
            .bind(s.target.as_str())
            .bind(serde_json::to_string(s).expect("target state serializes"))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }
}
