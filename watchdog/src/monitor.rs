//! The monitor: the one task that owns every check's runtime, applies
//! signals through the pure state machine, sleeps until the earliest
//! deadline, and writes everything with group commit.
//!
//! Requests queue on a channel; the task takes all that are waiting (up to
//! a batch), applies them in memory, writes the batch in ONE transaction,
//! and only then answers each request: an acknowledged heartbeat is durable,
//! and a thousand of them cost one fsync. Deadlines live in a min-heap with
//! at most one live entry per check; a check whose deadline moved later is
//! re-queued when its stale entry comes up, so nothing scans idle checks.

use crate::config::CheckSpec;
use crate::logfile::LogSink;
use crate::metrics::Metrics;
use crate::state::{observe, Change, Rules, Runtime, Signal, State};
use crate::store::{self, Loaded, NewEvent, PingRow, RuntimeUpdate};
use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Largest number of requests committed in one transaction.
const MAX_BATCH: usize = 1024;

/// The configured checks, immutable while the watchdog runs.
pub struct Catalog {
    pub checks: Vec<Entry>,
    by_name: HashMap<String, usize>,
    by_uuid: HashMap<String, usize>,
}

pub struct Entry {
    pub id: i64,
    pub spec: CheckSpec,
    pub rules: Rules,
}

impl Catalog {
    pub fn new(checks: Vec<Entry>) -> Catalog {
        let by_name = checks
            .iter()
            .enumerate()
            .map(|(i, e)| (e.spec.name.clone(), i))
            .collect();
        let by_uuid = checks
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match &e.spec.kind {
                crate::config::CheckKind::Heartbeat { uuid } => Some((uuid.clone(), i)),
                _ => None,
            })
            .collect();
        Catalog {
            checks,
            by_name,
            by_uuid,
        }
    }

    pub fn by_name(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub fn by_uuid(&self, uuid: &str) -> Option<usize> {
        self.by_uuid.get(&uuid.to_ascii_lowercase()).copied()
    }
}

/// The rules a spec is judged by.
pub fn rules_of(spec: &CheckSpec) -> Rules {
    Rules {
        cadence: spec.cadence.clone(),
        grace: spec.grace,
        min_instances: match spec.kind {
            crate::config::CheckKind::Service { min_instances, .. } => Some(min_instances),
            _ => None,
        },
    }
}

/// What the watchdog answers once a signal is durable.
#[derive(Debug, Clone)]
pub struct Ack {
    pub state: State,
    pub next_deadline: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("the store failed to commit: {0}")]
    Store(String),
    #[error("the watchdog is shutting down")]
    Closed,
}

/// A ping to keep in the check's history.
#[derive(Debug, Clone)]
pub struct PingInfo {
    pub kind: &'static str,
    pub instance: Option<String>,
    pub detail: Option<String>,
}

enum Msg {
    Signal {
        idx: usize,
        signal: Signal,
        ping: Option<PingInfo>,
        reply: oneshot::Sender<Result<Ack, MonitorError>>,
    },
    Record {
        events: Vec<NewEvent>,
        reply: oneshot::Sender<Result<Vec<i64>, MonitorError>>,
    },
    Alive(oneshot::Sender<()>),
}

/// A cheap handle to the monitor task.
#[derive(Clone)]
pub struct Monitor {
    tx: mpsc::Sender<Msg>,
    pub catalog: Arc<Catalog>,
}

impl Monitor {
    /// Applies a signal to check `idx`; answers once it is committed.
    pub async fn signal(
        &self,
        idx: usize,
        signal: Signal,
        ping: Option<PingInfo>,
    ) -> Result<Ack, MonitorError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Signal {
                idx,
                signal,
                ping,
                reply,
            })
            .await
            .map_err(|_| MonitorError::Closed)?;
        rx.await.map_err(|_| MonitorError::Closed)?
    }

    /// Records events that do not come from a check's state machine
    /// (toggles, rollbacks, probe targets); they are logged and alerted
    /// like any other. Returns their ids.
    pub async fn record(&self, events: Vec<NewEvent>) -> Result<Vec<i64>, MonitorError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Record { events, reply })
            .await
            .map_err(|_| MonitorError::Closed)?;
        rx.await.map_err(|_| MonitorError::Closed)?
    }

    /// Whether the task answers within `timeout` (for `/healthz`).
    pub async fn alive(&self, timeout: std::time::Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Alive(tx)).await.is_err() {
            return false;
        }
        tokio::time::timeout(timeout, rx)
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// What the monitor needs besides the store.
pub struct Hooks {
    pub log: LogSink,
    pub metrics: Arc<Metrics>,
    pub ping_history: u32,
    /// Plans the notifications of each batch's events, in its transaction.
    pub planner: Option<crate::outbox::Planner>,
    /// Bumped after each commit that inserted events (wakes the outbox).
    pub committed: tokio::sync::watch::Sender<u64>,
    /// The WAL to fdatasync before acknowledging (`durability = "fsync"`).
    pub wal: Option<std::fs::File>,
}

/// What a committed batch owes: answers, log lines, the outbox's wake-up.
/// It is handed to the syncer, which pays it once the batch is durable.
struct Committed {
    replies: Vec<(oneshot::Sender<Result<Ack, MonitorError>>, Ack)>,
    records: Vec<(RecordReply, Vec<i64>)>,
    lines: Vec<(DateTime<Utc>, String)>,
    had_events: bool,
}

/// Makes committed batches durable and only then acknowledges them. One
/// fdatasync covers every batch committed before it started, so while it
/// runs the monitor commits the next batch: group commit, pipelined.
async fn sync_loop(
    mut rx: mpsc::UnboundedReceiver<Committed>,
    wal: Option<Arc<std::fs::File>>,
    log: LogSink,
    committed: tokio::sync::watch::Sender<u64>,
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
        }
        for c in done {
            for (at, line) in c.lines {
                log.write(at, line).await;
            }
            if c.had_events {
                committed.send_modify(|n| *n += 1);
            }
            for (reply, ack) in c.replies {
                let _ = reply.send(match &synced {
                    Ok(()) => Ok(ack),
                    Err(e) => Err(MonitorError::Store(format!("not durable: {e}"))),
                });
            }
            for (reply, ids) in c.records {
                let _ = reply.send(match &synced {
                    Ok(()) => Ok(ids),
                    Err(e) => Err(MonitorError::Store(format!("not durable: {e}"))),
                });
            }
        }
    }
}

/// Starts the monitor task over the checks loaded from the store.
pub fn spawn(
    pool: SqlitePool,
    catalog: Arc<Catalog>,
    loaded: Vec<Loaded>,
    mut hooks: Hooks,
) -> (Monitor, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
    let mut heap = BinaryHeap::with_capacity(loaded.len());
    let mut scheduled = vec![None; loaded.len()];
    for (idx, l) in loaded.iter().enumerate() {
        if let Some(d) = l.runtime.next_deadline() {
            heap.push(Reverse((d, idx)));
            scheduled[idx] = Some(d);
        }
    }
    for l in &loaded {
        hooks.metrics.state_entered(l.runtime.state);
    }
    let (synced, sync_rx) = mpsc::unbounded_channel();
    let syncer = tokio::spawn(sync_loop(
        sync_rx,
        hooks.wal.take().map(Arc::new),
        hooks.log.clone(),
        hooks.committed.clone(),
        hooks.metrics.clone(),
    ));
    let task = Task {
        pool,
        catalog: catalog.clone(),
        runtimes: loaded.iter().map(|l| l.runtime.clone()).collect(),
        ping_counts: loaded.iter().map(|l| l.ping_count).collect(),
        heap,
        scheduled,
        hooks,
        synced,
    };
    let handle = tokio::spawn(async move {
        task.run(rx).await;
        // The task dropped its sender: the syncer pays what is left, ends.
        let _ = syncer.await;
    });
    (Monitor { tx, catalog }, handle)
}

struct Task {
    pool: SqlitePool,
    catalog: Arc<Catalog>,
    runtimes: Vec<Runtime>,
    ping_counts: Vec<i64>,
    /// Min-heap of (deadline, check index); entries may be stale.
    heap: BinaryHeap<Reverse<(DateTime<Utc>, usize)>>,
    /// The deadline each check's live heap entry is for.
    scheduled: Vec<Option<DateTime<Utc>>>,
    hooks: Hooks,
    /// Committed batches on their way to being durable and acknowledged.
    synced: mpsc::UnboundedSender<Committed>,
}

type RecordReply = oneshot::Sender<Result<Vec<i64>, MonitorError>>;

/// One batch being applied: what to write and whom to answer.
#[derive(Default)]
struct Batch {
    dirty: Vec<usize>,
    pings: Vec<PingRow>,
    events: Vec<NewEvent>,
    replies: Vec<(oneshot::Sender<Result<Ack, MonitorError>>, usize)>,
    record_replies: Vec<(RecordReply, std::ops::Range<usize>)>,
    /// Runtimes before the batch, to restore if the commit fails.
    before: HashMap<usize, (Runtime, i64)>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut msgs = Vec::with_capacity(MAX_BATCH);
        loop {
            let next = self.heap.peek().map(|Reverse((d, _))| *d);
            let sleep = async {
                match next {
                    Some(d) => {
                        let wait = (d - Utc::now()).to_std().unwrap_or_default();
                        tokio::time::sleep(wait).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                n = rx.recv_many(&mut msgs, MAX_BATCH) => {
                    if n == 0 {
                        return; // every handle dropped: shutdown
                    }
                    let mut batch = Batch::default();
                    let now = Utc::now();
                    for msg in msgs.drain(..) {
                        self.apply(&mut batch, msg, now);
                    }
                    self.due(&mut batch, Utc::now());
                    self.commit(batch, now).await;
                }
                _ = sleep => {
                    let mut batch = Batch::default();
                    let now = Utc::now();
                    self.due(&mut batch, now);
                    self.commit(batch, now).await;
                }
            }
        }
    }

    fn touch(&mut self, batch: &mut Batch, idx: usize) {
        if let std::collections::hash_map::Entry::Vacant(e) = batch.before.entry(idx) {
            e.insert((self.runtimes[idx].clone(), self.ping_counts[idx]));
            batch.dirty.push(idx);
        }
    }

    fn apply(&mut self, batch: &mut Batch, msg: Msg, now: DateTime<Utc>) {
        match msg {
            Msg::Alive(tx) => {
                let _ = tx.send(());
            }
            Msg::Record { events, reply } => {
                let start = batch.events.len();
                batch.events.extend(events);
                batch
                    .record_replies
                    .push((reply, start..batch.events.len()));
            }
            Msg::Signal {
                idx,
                signal,
                ping,
                reply,
            } => {
                self.touch(batch, idx);
                if let Some(p) = ping {
                    let count = &mut self.ping_counts[idx];
                    batch.pings.push(PingRow {
                        check_id: self.catalog.checks[idx].id,
                        slot: *count % i64::from(self.hooks.ping_history),
                        at: now,
                        kind: p.kind,
                        instance: p.instance,
                        detail: p.detail,
                    });
                    *count += 1;
                }
                self.observe(batch, idx, signal, now);
                batch.replies.push((reply, idx));
            }
        }
    }

    fn observe(&mut self, batch: &mut Batch, idx: usize, signal: Signal, now: DateTime<Utc>) {
        let entry = &self.catalog.checks[idx];
        let prev = &self.runtimes[idx];
        let (next, events) = observe(&entry.rules, prev, signal, now);
        if next.state != prev.state {
            self.hooks.metrics.state_left(prev.state);
            self.hooks.metrics.state_entered(next.state);
        }
        for e in events {
            batch.events.push(to_new_event(&entry.spec, e));
        }
        if let Some(d) = next.next_deadline() {
            // Only an earlier deadline needs a new heap entry; a later one is
            // found when the current entry comes up.
            if self.scheduled[idx].is_none_or(|s| d < s) {
                self.heap.push(Reverse((d, idx)));
                self.scheduled[idx] = Some(d);
            }
        }
        self.runtimes[idx] = next;
    }

    /// Applies every deadline that has passed.
    fn due(&mut self, batch: &mut Batch, now: DateTime<Utc>) {
        while let Some(Reverse((at, idx))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            if self.scheduled[idx] != Some(at) {
                continue; // stale: a newer entry exists
            }
            self.scheduled[idx] = None;
            match self.runtimes[idx].next_deadline() {
                Some(d) if d <= now => {
                    self.hooks.metrics.observe_lag(now - d);
                    self.touch(batch, idx);
                    self.observe(batch, idx, Signal::Tick, now);
                }
                Some(d) => {
                    self.heap.push(Reverse((d, idx)));
                    self.scheduled[idx] = Some(d);
                }
                None => {}
            }
        }
    }

    async fn commit(&mut self, batch: Batch, now: DateTime<Utc>) {
        if batch.dirty.is_empty() && batch.events.is_empty() {
            for (reply, idx) in batch.replies {
                let _ = reply.send(Ok(self.ack(idx)));
            }
            return;
        }
        let result = self.write(&batch, now).await;
        match result {
            Ok(ids) => {
                self.hooks
                    .metrics
                    .batch_committed(batch.replies.len(), batch.events.len());
                let mut lines = Vec::new();
                for (id, e) in ids.iter().zip(&batch.events) {
                    if let Some(line) = log_line(e) {
                        lines.push((e.at, line));
                    }
                    tracing::info!(event = id, check = e.check.as_deref().unwrap_or(""), kind = e.kind, reason = %e.reason, "event");
                }
                let done = Committed {
                    replies: batch
                        .replies
                        .into_iter()
                        .map(|(reply, idx)| (reply, self.ack(idx)))
                        .collect(),
                    records: batch
                        .record_replies
                        .into_iter()
                        .map(|(reply, range)| (reply, ids[range].to_vec()))
                        .collect(),
                    lines,
                    had_events: !batch.events.is_empty(),
                };
                // The syncer outlives the task; it cannot be gone here.
                let _ = self.synced.send(done);
            }
            Err(e) => {
                tracing::error!(error = %e, "commit failed; the batch is rejected and its state rolled back");
                for (idx, (rt, pings)) in batch.before {
                    self.hooks.metrics.state_left(self.runtimes[idx].state);
                    self.hooks.metrics.state_entered(rt.state);
                    self.runtimes[idx] = rt;
                    self.ping_counts[idx] = pings;
                    if let Some(d) = self.runtimes[idx].next_deadline() {
                        self.heap.push(Reverse((d, idx)));
                        self.scheduled[idx] = Some(d);
                    }
                }
                for (reply, _) in batch.replies {
                    let _ = reply.send(Err(MonitorError::Store(e.to_string())));
                }
                for (reply, _) in batch.record_replies {
                    let _ = reply.send(Err(MonitorError::Store(e.to_string())));
                }
            }
        }
    }

    async fn write(&self, batch: &Batch, now: DateTime<Utc>) -> Result<Vec<i64>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let updates: Vec<RuntimeUpdate> = batch
            .dirty
            .iter()
            .map(|&idx| RuntimeUpdate {
                id: self.catalog.checks[idx].id,
                runtime: &self.runtimes[idx],
                ping_count: self.ping_counts[idx],
            })
            .collect();
        store::write_runtimes(&mut tx, &updates, now).await?;
        store::write_pings(&mut tx, &batch.pings).await?;
        let ids = store::insert_events(&mut tx, &batch.events, now).await?;
        if let Some(planner) = &self.hooks.planner {
            let with_ids: Vec<(i64, NewEvent)> = ids
                .iter()
                .copied()
                .zip(batch.events.iter().cloned())
                .collect();
            crate::outbox::enqueue(&mut tx, planner, &with_ids, now).await?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    fn ack(&self, idx: usize) -> Ack {
        let rt = &self.runtimes[idx];
        Ack {
            state: rt.state,
            next_deadline: rt.next_deadline(),
        }
    }
}

fn to_new_event(spec: &CheckSpec, e: crate::state::Event) -> NewEvent {
    match e.change {
        Change::State { from, to, down_for } => NewEvent {
            at: e.at,
            check: Some(spec.name.clone()),
            kind: "state",
            from_state: Some(from),
            to_state: Some(to),
            color: spec.color().map(|c| c.to_string()),
            reason: e.reason,
            down_for,
            ..Default::default()
        },
        Change::Instance {
            instance,
            change,
            color,
        } => NewEvent {
            at: e.at,
            check: Some(spec.name.clone()),
            kind: "instance",
            instance: Some(instance),
            color: color.or(spec.color()).map(|c| c.to_string()),
            reason: e.reason,
            data: Some(serde_json::json!({ "change": change.as_str() })),
            ..Default::default()
        },
    }
}

/// The daily log's line for an event, in the spirit of the original script.
pub fn log_line(e: &NewEvent) -> Option<String> {
    if let Some(line) = crate::control::events::log_line(e) {
        return Some(line);
    }
    let check = e.check.as_deref().unwrap_or("-");
    Some(match (e.kind, e.from_state, e.to_state) {
        ("state", _, Some(State::Down)) => crate::logfile::alert_line(check, "DOWN", &e.reason),
        ("state", Some(State::Down), Some(State::Up)) => {
            crate::logfile::recovered_line(check, e.down_for.unwrap_or_default())
        }
        ("state", _, Some(State::Late)) => format!("WARNING: {check} LATE: {}", e.reason),
        ("state", Some(from), Some(to)) => {
            format!("INFO: {check} {} -> {}: {}", from, to, e.reason)
        }
        ("instance", _, _) => {
            let change = e
                .data
                .as_ref()
                .and_then(|d| d.get("change"))
                .and_then(|c| c.as_str())
                .unwrap_or("changed");
            let instance = e.instance.as_deref().unwrap_or("-");
            let level = match change {
                "missing" => "ALERT",
                "failing" => "WARNING",
                _ => "INFO",
            };
            format!(
                "{level}: {check} instance {instance} {change}: {}",
                e.reason
            )
        }
        ("line", _, _) => e.reason.clone(),
        (kind, _, _) => format!("{}: {check}: {}", kind.to_ascii_uppercase(), e.reason),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_follow_the_contract() {
        let down = NewEvent {
            check: Some("blue".into()),
            kind: "state",
            from_state: Some(State::Late),
            to_state: Some(State::Down),
            reason: "no heartbeat for 12s (period 5s, grace 5s)".into(),
            ..Default::default()
        };
        assert_eq!(
            log_line(&down).unwrap(),
            "ALERT: blue DOWN: no heartbeat for 12s (period 5s, grace 5s)"
        );
        let up = NewEvent {
            from_state: Some(State::Down),
            to_state: Some(State::Up),
            down_for: Some(std::time::Duration::from_secs(90)),
            ..down
        };
        assert_eq!(log_line(&up).unwrap(), "RECOVERED: blue UP after 1m30s");
    }
}
