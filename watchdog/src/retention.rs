//! Retention: a background task that keeps the database bounded for years.
//! Every `every` (an hour) it deletes events, notifications that are not
//! pending and silences that ended, older than `retention` (default 90
//! days), `batch` rows per statement with a short `pause` between, so the
//! monitor's commits never wait behind a long delete. Pending
//! notifications and their events are kept whatever their age. SQLite
//! reuses the freed pages, so the file stops growing instead of shrinking.
//! Not pruned: pings (already a ring of `ping_history` per check), checks,
//! probe targets, and the control ledger (toggles, deploys: a few a day,
//! and the rollback cooldown reads them).

use crate::clock::Clock;
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio::sync::watch;

/// One day.
pub const DAY: Duration = Duration::from_secs(86_400);

/// The retention task's settings.
pub struct Retention {
    pub store: Store,
    pub clock: Clock,
    /// Rows older than this go.
    pub keep: Duration,
    /// Rows per delete statement.
    pub batch: u32,
    /// Real time between two delete statements (lets the monitor in).
    pub pause: Duration,
    /// Clock time between two passes.
    pub every: Duration,
}

/// How many rows a pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub events: u64,
    pub notifications: u64,
    pub silences: u64,
}

impl Retention {
    /// Runs passes until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let cutoff =
                self.clock.now() - chrono::TimeDelta::from_std(self.keep).unwrap_or_default();
            match self.pass(cutoff, &stop).await {
                Ok(p) if p != Pruned::default() => tracing::info!(
                    events = p.events,
                    notifications = p.notifications,
                    silences = p.silences,
                    before = %cutoff,
                    "retention: deleted old rows"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "retention: a pass failed; the next one retries")
                }
            }
            tokio::select! {
                _ = self.clock.sleep(self.every) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Deletes everything older than `cutoff`, a batch at a time.
    pub async fn pass(
        &self,
        cutoff: DateTime<Utc>,
        stop: &watch::Receiver<bool>,
    ) -> Result<Pruned, StoreError> {
        // Notifications first: a settled one no longer holds its event back.
        let notifications = self
            .drain(stop, || self.store.prune_notifications(cutoff, self.batch))
            .await?;
        let events = self
            .drain(stop, || self.store.prune_events(cutoff, self.batch))
            .await?;
        let silences = self
            .drain(stop, || self.store.prune_silences(cutoff, self.batch))
            .await?;
        Ok(Pruned {
            events,
            notifications,
            silences,
        })
    }

    async fn drain<F, Fut>(
        &self,
        stop: &watch::Receiver<bool>,
        delete: F,
    ) -> Result<u64, StoreError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<u64, StoreError>>,
    {
        let mut total = 0;
        loop {
            let n = delete().await?;
            total += n;
            if n < u64::from(self.batch) || *stop.borrow() {
                return Ok(total);
            }
            tokio::time::sleep(self.pause).await;
        }
    }
}
