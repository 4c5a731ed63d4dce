//! The monitor: the one owner of the watchdog's state and its one write
//! path. It holds every check's runtime, the probe targets' states, the
//! control ledger, the silences and the alerting memory; applies signals and
//! reports through the pure cores (`state::observe`, `reports::apply_report`,
//! `ledger::ControlState::apply`); sleeps until the earliest deadline; plans
//! the notifications of what changed (`alerting::plan`); and writes it all
//! with group commit.
//!
//! Requests queue on a channel; the task takes all that are waiting (up to
//! a batch), applies them in memory, writes the batch in ONE transaction,
//! and only then answers each request: an acknowledged heartbeat is durable,
//! and a thousand of them cost one fsync. Deadlines live in a min-heap with
//! at most one live entry per check. After every commit that changed what
//! the rollback decision reads, it publishes a [`Snapshot`].

mod snapshot;
mod startup;
mod sync;

pub use snapshot::{ObserverCheck, Snapshot};
pub use startup::Hold;

use crate::alerting::{self, Policy};
use crate::check::Catalog;
use crate::clock::Clock;
use crate::event::{Event, EventKind};
use crate::ledger::{ControlChange, ControlState};
use crate::logfile::LogSink;
use crate::metrics::Metrics;
use crate::reports::{apply_report, TargetState};
use crate::state::{admits, observe, Change, Runtime, Signal, State};
use crate::store::{Loaded, PingRow, RuntimeUpdate, SilenceChange, Store};
use bgw_wire::Report;
use chrono::{DateTime, Utc};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

/// Largest number of requests committed in one transaction.
const MAX_BATCH: usize = 1024;

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
    /// A heartbeat from a new instance id of a service that already tracks
    /// `max` instances; nothing changed.
    #[error("service {check:?} already tracks {max} instances (max_instances = {max}); a new instance id is refused until one leaves or goes missing")]
    InstanceCap { check: String, max: usize },
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

/// Changes that are not signals: events, ledger changes and silences, to
/// be written together in one transaction (a switch and its event).
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub events: Vec<Event>,
    pub control: Vec<ControlChange>,
    pub silences: Vec<SilenceChange>,
}

impl Record {
    pub fn event(e: Event) -> Record {
        Record {
            events: vec![e],
            ..Record::default()
        }
    }
}

/// The ids a [`Record`]'s rows received.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub events: Vec<i64>,
    pub control: Vec<i64>,
    pub silences: Vec<i64>,
}

type AckReply = oneshot::Sender<Result<Ack, MonitorError>>;
type RecordReply = oneshot::Sender<Result<Recorded, MonitorError>>;

enum Msg {
    Signal {
        idx: usize,
        signal: Signal,
        ping: Option<PingInfo>,
        reply: AckReply,
    },
    Report {
        idx: usize,
        report: Report,
        ping: PingInfo,
        reply: AckReply,
    },
    Record {
        record: Record,
        reply: RecordReply,
    },
    Alive(oneshot::Sender<()>),
}

/// A cheap handle to the monitor task.
#[derive(Clone)]
pub struct Monitor {
    tx: mpsc::Sender<Msg>,
    pub catalog: Arc<Catalog>,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    store_error: watch::Receiver<Option<String>>,
}

impl Monitor {
    async fn ask<T>(
        &self,
        msg: impl FnOnce(oneshot::Sender<Result<T, MonitorError>>) -> Msg,
    ) -> Result<T, MonitorError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(msg(reply))
            .await
            .map_err(|_| MonitorError::Closed)?;
        rx.await.map_err(|_| MonitorError::Closed)?
    }

    /// Applies a signal to check `idx`; answers once it is durable.
    pub async fn signal(
        &self,
        idx: usize,
        signal: Signal,
        ping: Option<PingInfo>,
    ) -> Result<Ack, MonitorError> {
        self.ask(|reply| Msg::Signal {
            idx,
            signal,
            ping,
            reply,
        })
        .await
    }

    /// Applies a report of reporter check `idx` (its heartbeat, its
    /// targets' states, their log lines and transitions): one commit.
    pub async fn report(
        &self,
        idx: usize,
        report: Report,
        ping: PingInfo,
    ) -> Result<Ack, MonitorError> {
        self.ask(|reply| Msg::Report {
            idx,
            report,
            ping,
            reply,
        })
        .await
    }

    /// Writes events, ledger changes and silences in one transaction.
    pub async fn record(&self, record: Record) -> Result<Recorded, MonitorError> {
        self.ask(|reply| Msg::Record { record, reply }).await
    }

    /// The last published snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// A receiver that wakes at every new snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.clone()
    }

    /// Why the last write did not reach the disk: `Some` from a failed
    /// commit (or fdatasync) until the next commit succeeds. `/healthz` and
    /// the store alarm read it.
    pub fn store_health(&self) -> watch::Receiver<Option<String>> {
        self.store_error.clone()
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

/// The alerting configuration the monitor plans with.
#[derive(Debug, Clone)]
pub struct Alerting {
    pub channels: Vec<&'static str>,
    pub policy: Policy,
    /// Where the live color is read from (once per batch, before its
    /// transaction), to name it in messages.
    pub live_file: Option<PathBuf>,
}

/// What the monitor needs besides the store and the checks.
pub struct Deps {
    pub clock: Clock,
    pub log: LogSink,
    pub metrics: Arc<Metrics>,
    pub ping_history: u32,
    pub alerting: Alerting,
    /// `probe_threshold` and `target_fail_after`, for reports.
    pub threshold_ms: u64,
    pub fail_after: u32,
    /// When this process started, and how long checks whose deadlines
    /// passed while it was not running wait before being judged (heartbeat
    /// checks; services and reporters wait one period + grace).
    pub started: DateTime<Utc>,
    pub startup_grace: std::time::Duration,
    /// Bumped after each durable commit that inserted events (wakes the outbox).
    pub committed: watch::Sender<u64>,
    /// The WAL to fdatasync before acknowledging (`durability = "fsync"`).
    pub wal: Option<std::fs::File>,
}

/// The state the monitor starts from, read from the store.
pub struct Initial {
    pub checks: Vec<Loaded>,
    pub targets: Vec<TargetState>,
    pub control: ControlState,
    pub silences: Vec<alerting::Silence>,
    pub memory: alerting::Memory,
}

/// Starts the monitor task.
pub fn spawn(
    store: Store,
    catalog: Arc<Catalog>,
    initial: Initial,
    mut deps: Deps,
) -> (Monitor, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
    let mut runtimes: Vec<Runtime> = Vec::with_capacity(initial.checks.len());
    let mut holds = HashMap::new();
    for (idx, l) in initial.checks.iter().enumerate() {
        let mut rt = l.runtime.clone();
        let hold = catalog.checks[idx].spec.startup_hold(deps.startup_grace);
        if let Some(h) = Hold::begin(&mut rt, deps.started, deps.started + hold) {
            holds.insert(idx, h);
        }
        deps.metrics.state_entered(rt.state);
        runtimes.push(rt);
    }
    if !holds.is_empty() {
        tracing::info!(
            checks = holds.len(),
            "deadlines passed while the watchdog was not running: their clients get one period + grace \
             (heartbeat checks: startup_grace) to reach it before they are judged"
        );
    }
    let mut heap = BinaryHeap::with_capacity(runtimes.len());
    let mut scheduled = vec![None; runtimes.len()];
    for (idx, rt) in runtimes.iter().enumerate() {
        if let Some(d) = rt.next_deadline() {
            heap.push(Reverse((d, idx)));
            scheduled[idx] = Some(d);
        }
    }
    let observers = catalog.observer_indexes();
    let (synced, sync_rx) = mpsc::unbounded_channel();
    let (store_error, store_health) = watch::channel(None);
    let syncer = tokio::spawn(sync::run(
        store_error.clone(),
        sync_rx,
        deps.wal.take().map(Arc::new),
        deps.log.clone(),
        deps.committed.clone(),
        deps.metrics.clone(),
    ));
    let mut task = Task {
        store,
        catalog: catalog.clone(),
        ping_counts: initial.checks.iter().map(|l| l.ping_count).collect(),
        runtimes,
        heap,
        scheduled,
        holds,
        targets: initial.targets,
        control: initial.control,
        silences: initial.silences,
        memory: initial.memory,
        observers,
        capped: HashSet::new(),
        deps,
        synced,
        store_error,
        published: None,
        version: 0,
    };
    let (publish, snapshot) = watch::channel(Arc::new(task.snapshot()));
    task.published = Some(publish);
    let handle = tokio::spawn(async move {
        task.run(rx).await;
        // The task dropped its sender: the syncer pays what is left, ends.
        let _ = syncer.await;
    });
    (
        Monitor {
            tx,
            catalog,
            snapshot,
            store_error: store_health,
        },
        handle,
    )
}

struct Task {
    store: Store,
    catalog: Arc<Catalog>,
    runtimes: Vec<Runtime>,
    ping_counts: Vec<i64>,
    /// Min-heap of (deadline, check index); entries may be stale.
    heap: BinaryHeap<Reverse<(DateTime<Utc>, usize)>>,
    /// The deadline each check's live heap entry is for.
    scheduled: Vec<Option<DateTime<Utc>>>,
    /// Checks whose deadlines passed while the watchdog was not running.
    holds: HashMap<usize, Hold>,
    targets: Vec<TargetState>,
    control: ControlState,
    silences: Vec<alerting::Silence>,
    memory: alerting::Memory,
    /// The checks the rollback decision reads (colored services, reporters).
    observers: Vec<usize>,
    /// Services in an episode of refusing new instances (one event each).
    capped: HashSet<usize>,
    deps: Deps,
    /// Committed batches on their way to being durable and acknowledged.
    synced: mpsc::UnboundedSender<sync::Committed>,
    /// Why the last commit failed (see [`Monitor::store_health`]).
    store_error: watch::Sender<Option<String>>,
    published: Option<watch::Sender<Arc<Snapshot>>>,
    version: u64,
}

/// One batch being applied: what to write and whom to answer.
#[derive(Default)]
struct Batch {
    dirty: Vec<usize>,
    pings: Vec<PingRow>,
    events: Vec<Event>,
    /// Seed-style probe lines of the batch's reports.
    lines: Vec<(DateTime<Utc>, String)>,
    targets: Vec<usize>,
    control: Vec<ControlChange>,
    silences: Vec<SilenceChange>,
    replies: Vec<(AckReply, usize)>,
    records: Vec<(RecordReply, Ranges)>,
    /// State before the batch, to restore if the commit fails.
    before: HashMap<usize, (Runtime, i64, Option<Hold>)>,
    targets_before: Option<Vec<TargetState>>,
    control_before: Option<ControlState>,
    /// Whether the rollback decision's inputs changed.
    observed: bool,
    /// Services whose cap episode began in this batch.
    capped: Vec<usize>,
}

#[derive(Default)]
struct Ranges {
    events: std::ops::Range<usize>,
    control: std::ops::Range<usize>,
    silences: std::ops::Range<usize>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut msgs = Vec::with_capacity(MAX_BATCH);
        let clock = self.deps.clock.clone();
        loop {
            let next = self.heap.peek().map(|Reverse((d, _))| *d);
            let sleep = async {
                match next {
                    Some(d) => clock.sleep_until(d).await,
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
                    let now = clock.now();
                    for msg in msgs.drain(..) {
                        self.apply(&mut batch, msg, now);
                    }
                    self.due(&mut batch, now);
                    self.commit(batch, now).await;
                }
                _ = sleep => {
                    let mut batch = Batch::default();
                    let now = clock.now();
                    self.due(&mut batch, now);
                    self.commit(batch, now).await;
                }
            }
        }
    }

    fn touch(&mut self, batch: &mut Batch, idx: usize) {
        if let std::collections::hash_map::Entry::Vacant(e) = batch.before.entry(idx) {
            e.insert((
                self.runtimes[idx].clone(),
                self.ping_counts[idx],
                self.holds.get(&idx).cloned(),
            ));
            batch.dirty.push(idx);
        }
    }

    fn apply(&mut self, batch: &mut Batch, msg: Msg, now: DateTime<Utc>) {
        match msg {
            Msg::Alive(tx) => {
                let _ = tx.send(());
            }
            Msg::Record { record, reply } => {
                let start = (
                    batch.events.len(),
                    batch.control.len(),
                    batch.silences.len(),
                );
                if !record.control.is_empty() {
                    batch
                        .control_before
                        .get_or_insert_with(|| self.control.clone());
                    for c in &record.control {
                        self.control.apply(c);
                    }
                    batch.observed = true;
                }
                batch.observed |= !record.silences.is_empty();
                batch.events.extend(record.events);
                batch.control.extend(record.control);
                batch.silences.extend(record.silences);
                batch.records.push((
                    reply,
                    Ranges {
                        events: start.0..batch.events.len(),
                        control: start.1..batch.control.len(),
                        silences: start.2..batch.silences.len(),
                    },
                ));
            }
            Msg::Signal {
                idx,
                signal,
                ping,
                reply,
            } => {
                let max = self.catalog.checks[idx].spec.max_instances;
                if !admits(&self.runtimes[idx], &signal, max) {
                    self.refuse(batch, idx, &signal, now, reply);
                    return;
                }
                self.ping(batch, idx, ping, now);
                self.observe(batch, idx, signal, now);
                batch.replies.push((reply, idx));
            }
            Msg::Report {
                idx,
                report,
                ping,
                reply,
            } => {
                self.ping(batch, idx, Some(ping), now);
                self.observe(batch, idx, Signal::Success, now);
                self.report(batch, &report, now);
                batch.replies.push((reply, idx));
            }
        }
    }

    /// A new instance over the cap: refused at once, nothing changes; the
    /// episode's first refusal records one event.
    fn refuse(
        &mut self,
        batch: &mut Batch,
        idx: usize,
        signal: &Signal,
        now: DateTime<Utc>,
        reply: AckReply,
    ) {
        let entry = &self.catalog.checks[idx];
        let max = entry.spec.max_instances;
        if self.capped.insert(idx) {
            if let Signal::Heartbeat { instance, .. } = signal {
                batch.capped.push(idx);
                batch.events.push(Event::new(
                    now,
                    EventKind::InstanceCapReached {
                        check: entry.spec.name.clone(),
                        color: entry.spec.color(),
                        instance: instance.clone(),
                        max,
                    },
                ));
            }
        }
        let _ = reply.send(Err(MonitorError::InstanceCap {
            check: entry.spec.name.clone(),
            max,
        }));
    }

    fn ping(&mut self, batch: &mut Batch, idx: usize, ping: Option<PingInfo>, now: DateTime<Utc>) {
        self.touch(batch, idx);
        if let Some(p) = ping {
            let count = &mut self.ping_counts[idx];
            batch.pings.push(PingRow {
                check_id: self.catalog.checks[idx].id,
                slot: *count % i64::from(self.deps.ping_history),
                at: now,
                kind: p.kind,
                instance: p.instance,
                detail: p.detail,
            });
            *count += 1;
        }
    }

    fn report(&mut self, batch: &mut Batch, report: &Report, now: DateTime<Utc>) {
        let outcome = apply_report(
            &self.targets,
            report,
            now,
            self.deps.threshold_ms,
            self.deps.fail_after,
        );
        batch
            .targets_before
            .get_or_insert_with(|| self.targets.clone());
        self.targets = outcome.states;
        for (i, s) in self.targets.iter().enumerate() {
            if s.observer == report.observer
                && report.results.iter().any(|r| r.target == s.target)
                && !batch.targets.contains(&i)
            {
                batch.targets.push(i);
            }
        }
        // Exactly the contract's (and the original script's) lines: the
        // target names already tell the checker's from the prober's.
        batch
            .lines
            .extend(outcome.log_lines.into_iter().map(|l| (now, l)));
        batch
            .events
            .extend(outcome.transitions.into_iter().map(|t| {
                Event::new(
                    now,
                    EventKind::Target {
                        observer: t.observer,
                        target: t.target,
                        color: t.color,
                        down: t.down,
                        reason: t.reason,
                    },
                )
            }));
        batch.observed = true;
    }

    fn observe(&mut self, batch: &mut Batch, idx: usize, signal: Signal, now: DateTime<Utc>) {
        self.touch(batch, idx);
        let entry = &self.catalog.checks[idx];
        if let Some(hold) = self.holds.get_mut(&idx) {
            let heard = match &signal {
                Signal::Heartbeat { instance, .. } => Some(Some(instance.as_str())),
                Signal::Success | Signal::Fail { .. } | Signal::Start | Signal::Log => Some(None),
                Signal::Resume | Signal::Pause => Some(None),
                Signal::Tick => None,
            };
            if let Some(part) = heard {
                if hold.heard(part) {
                    self.holds.remove(&idx);
                }
            }
        }
        let prev = &self.runtimes[idx];
        let (next, events) = observe(&entry.rules, prev, signal, now);
        if next.state != prev.state {
            self.deps.metrics.state_left(prev.state);
            self.deps.metrics.state_entered(next.state);
        }
        let color = entry.spec.color();
        batch.events.extend(events.into_iter().map(|e| {
            let check = entry.spec.name.clone();
            Event::new(
                e.at,
                match e.change {
                    Change::State { from, to, down_for } => EventKind::State {
                        check,
                        color,
                        from,
                        to,
                        reason: e.reason,
                        down_for,
                    },
                    Change::Instance {
                        instance,
                        change,
                        color: instance_color,
                    } => EventKind::Instance {
                        check,
                        color: instance_color.or(color),
                        instance,
                        change,
                        reason: e.reason,
                    },
                },
            )
        }));
        if let Some(d) = next.next_deadline() {
            // Only an earlier deadline needs a new heap entry; a later one is
            // found when the current entry comes up.
            if self.scheduled[idx].is_none_or(|s| d < s) {
                self.heap.push(Reverse((d, idx)));
                self.scheduled[idx] = Some(d);
            }
        }
        if next.instances.len() < entry.spec.max_instances {
            self.capped.remove(&idx); // the episode is over
        }
        self.runtimes[idx] = next;
        batch.observed |= self.observers.contains(&idx);
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
            if self.holds.get(&idx).is_some_and(|h| h.until <= now) {
                // The hold is over: what was not heard from is judged now,
                // against its original deadlines.
                self.touch(batch, idx);
                let hold = self.holds.remove(&idx).expect("checked");
                hold.end(&mut self.runtimes[idx]);
            }
            match self.runtimes[idx].next_deadline() {
                Some(d) if d <= now => {
                    self.deps.metrics.observe_lag(now - d);
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

    async fn commit(&mut self, mut batch: Batch, now: DateTime<Utc>) {
        if batch.dirty.is_empty()
            && batch.events.is_empty()
            && batch.control.is_empty()
            && batch.silences.is_empty()
        {
            for (reply, idx) in batch.replies {
                let _ = reply.send(Ok(self.ack(idx)));
            }
            return;
        }
        // Gather the facts once, outside the transaction; decide; then write.
        let live = match (&self.deps.alerting.live_file, batch.events.is_empty()) {
            (Some(path), false) if !self.deps.alerting.channels.is_empty() => read_live_color(path),
            _ => None,
        };
        self.silences.retain(|s| s.until > now);
        let memory_before = batch
            .events
            .iter()
            .any(|e| e.flip().is_some())
            .then(|| self.memory.clone());
        let plan = alerting::plan(
            &batch.events,
            &mut self.memory,
            &alerting::Facts {
                channels: &self.deps.alerting.channels,
                policy: &self.deps.alerting.policy,
                live,
                silences: &self.silences,
            },
            now,
        );
        batch.events.extend(plan.notices.iter().cloned());
        let rollback_changed = batch
            .control_before
            .as_ref()
            .is_some_and(|b| b.rollback != self.control.rollback);
        let result = {
            let write = crate::store::Write {
                runtimes: batch
                    .dirty
                    .iter()
                    .map(|&idx| RuntimeUpdate {
                        id: self.catalog.checks[idx].id,
                        runtime: &self.runtimes[idx],
                        ping_count: self.ping_counts[idx],
                    })
                    .collect(),
                pings: &batch.pings,
                events: batch.events.iter().collect(),
                silenced: &plan.silenced,
                notifications: &plan.notifications,
                targets: batch.targets.iter().map(|&i| &self.targets[i]).collect(),
                control: &batch.control,
                rollback: rollback_changed.then_some(&self.control.rollback),
                silences: &batch.silences,
            };
            self.store.commit(&write, now).await
        };
        match result {
            Ok(ids) => {
                self.store_error.send_if_modified(|e| e.take().is_some());
                self.deps
                    .metrics
                    .batch_committed(batch.replies.len(), batch.events.len());
                let mut lines = std::mem::take(&mut batch.lines);
                for (id, e) in ids.events.iter().zip(&batch.events) {
                    if let Some(line) = e.log_line() {
                        lines.push((e.at, line));
                    }
                    tracing::info!(event = id, check = %e.check(), kind = e.columns().kind, reason = %e.reason(), "event");
                }
                for (change, id) in batch.silences.iter().zip(&ids.silences) {
                    match change {
                        SilenceChange::Add(s) => self.silences.push(alerting::Silence {
                            id: *id,
                            ..s.clone()
                        }),
                        SilenceChange::End(id) => self.silences.retain(|s| s.id != *id),
                    }
                }
                if batch.observed {
                    self.publish();
                }
                let done = sync::Committed {
                    replies: batch
                        .replies
                        .into_iter()
                        .map(|(reply, idx)| (reply, self.ack(idx)))
                        .collect(),
                    records: batch
                        .records
                        .into_iter()
                        .map(|(reply, r)| {
                            (
                                reply,
                                Recorded {
                                    events: ids.events[r.events].to_vec(),
                                    control: ids.control[r.control].to_vec(),
                                    silences: ids.silences[r.silences].to_vec(),
                                },
                            )
                        })
                        .collect(),
                    lines,
                    had_events: !batch.events.is_empty(),
                };
                // The syncer outlives the task; it cannot be gone here.
                let _ = self.synced.send(done);
            }
            Err(e) => {
                tracing::error!(error = %e, "commit failed; the batch is rejected and its state rolled back");
                sync::failed(&self.store_error, e.to_string());
                for (idx, (rt, pings, hold)) in batch.before {
                    self.deps.metrics.state_left(self.runtimes[idx].state);
                    self.deps.metrics.state_entered(rt.state);
                    self.runtimes[idx] = rt;
                    self.ping_counts[idx] = pings;
                    match hold {
                        Some(h) => self.holds.insert(idx, h),
                        None => self.holds.remove(&idx),
                    };
                    if let Some(d) = self.runtimes[idx].next_deadline() {
                        self.heap.push(Reverse((d, idx)));
                        self.scheduled[idx] = Some(d);
                    }
                }
                if let Some(t) = batch.targets_before {
                    self.targets = t;
                }
                if let Some(c) = batch.control_before {
                    self.control = c;
                }
                if let Some(m) = memory_before {
                    self.memory = m;
                }
                for idx in batch.capped {
                    self.capped.remove(&idx); // its event was not written
                }
                let err = || MonitorError::Store(e.to_string());
                for (reply, _) in batch.replies {
                    let _ = reply.send(Err(err()));
                }
                for (reply, _) in batch.records {
                    let _ = reply.send(Err(err()));
                }
            }
        }
    }

    fn ack(&self, idx: usize) -> Ack {
        let rt = &self.runtimes[idx];
        Ack {
            state: rt.state,
            next_deadline: rt.next_deadline(),
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            version: self.version,
            started: self.deps.started,
            observers: self
                .observers
                .iter()
                .map(|&idx| ObserverCheck {
                    idx,
                    runtime: self.runtimes[idx].clone(),
                })
                .collect(),
            targets: self.targets.clone(),
            control: self.control.clone(),
            silences: self.silences.clone(),
        }
    }

    fn publish(&mut self) {
        self.version += 1;
        let snapshot = Arc::new(self.snapshot());
        if let Some(p) = &self.published {
            p.send_replace(snapshot);
        }
    }
}

/// The live color named in messages: the live file, read once per batch.
fn read_live_color(path: &std::path::Path) -> Option<bgw_wire::Color> {
    crate::proxy::read_live(path).color()
}

/// A monitor over `store` with no configured checks and no channels: the
/// ledger, targets and silences as stored, the log written to `log`. For
/// tools and tests that drive control without a whole watchdog.
pub async fn standalone(
    store: Store,
    log: LogSink,
    clock: Clock,
) -> Result<(Monitor, tokio::task::JoinHandle<()>), crate::store::StoreError> {
    let now = clock.now();
    let initial = Initial {
        checks: Vec::new(),
        targets: store.targets().await?,
        control: store.control_state().await?,
        silences: store.silences(now).await?,
        memory: alerting::Memory::default(),
    };
    let (committed, _) = watch::channel(0);
    let deps = Deps {
        clock,
        log,
        metrics: Arc::new(Metrics::default()),
        ping_history: 1,
        alerting: Alerting {
            channels: Vec::new(),
            policy: Policy::default(),
            live_file: None,
        },
        threshold_ms: 2000,
        fail_after: 3,
        started: now,
        startup_grace: std::time::Duration::ZERO,
        committed,
        wal: None,
    };
    Ok(spawn(
        store,
        Arc::new(Catalog::new(Vec::new())),
        initial,
        deps,
    ))
}
