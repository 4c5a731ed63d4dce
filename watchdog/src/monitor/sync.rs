//! Makes committed batches durable and only then acknowledges them. One
//! fdatasync covers every batch committed before it started, so while it
//! runs the monitor commits the next batch: group commit, pipelined. Log
//! lines are written once their batch is committed and durable: the daily
//! log never claims what the database does not hold.

use super::{Ack, MonitorError, Recorded};
use crate::logfile::LogSink;
use crate::metrics::Metrics;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

/// What a committed batch owes: answers, log lines, the outbox's wake-up.
pub(super) struct Committed {
    pub replies: Vec<(oneshot::Sender<Result<Ack, MonitorError>>, Ack)>,
    pub records: Vec<(oneshot::Sender<Result<Recorded, MonitorError>>, Recorded)>,
    pub lines: Vec<(DateTime<Utc>, String)>,
    pub had_events: bool,
}

/// Marks the store as failing with `error`; wakes readers only on the
/// transition from healthy.
pub(super) fn failed(store_error: &watch::Sender<Option<String>>, error: String) {
    store_error.send_if_modified(|cur| cur.replace(error).is_none());
}

pub(super) async fn run(
    store_error: watch::Sender<Option<String>>,
    mut rx: mpsc::UnboundedReceiver<Committed>,
    wal: Option<Arc<std::fs::File>>,
    log: LogSink,
    committed: watch::Sender<u64>,
    metrics: Arc<Metrics>,
) {
    while let Some(first) = rx.recv().await {
        let mut done = vec![first];
        while let Ok(more) = rx.try_recv() {
            done.push(more);
        }
        let synced = match &wal {
            None => Ok(()),
            Some(file) => {
                let file = file.clone();
                let r = tokio::task::spawn_blocking(move || file.sync_data()).await;
                metrics
                    .wal_syncs
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                r.map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()))
            }
        };
        if let Err(e) = &synced {
            tracing::error!(error = %e, "fdatasync of the WAL failed; the batch is not acknowledged");
            failed(&store_error, format!("fdatasync: {e}"));
        }
        let fail = |e: &String| MonitorError::Store(format!("not durable: {e}"));
        for c in done {
            for (at, line) in c.lines {
                log.write(at, line).await;
            }
            if c.had_events {
                committed.send_modify(|n| *n += 1);
            }
            for (reply, ack) in c.replies {
                let _ = reply.send(synced.as_ref().map(|_| ack).map_err(fail));
            }
            for (reply, ids) in c.records {
                let _ = reply.send(synced.as_ref().map(|_| ids).map_err(fail));
            }
        }
    }
}
