//! Counters and gauges for `/metrics`, in the Prometheus text exposition
//! format. Plain atomics: the hot path pays one relaxed add.

use crate::state::State;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub struct Metrics {
    states: [AtomicI64; 5],
    pub heartbeats: AtomicU64,
    pub pings: AtomicU64,
    pub reports: AtomicU64,
    pub rejected: AtomicU64,
    pub rate_limited: AtomicU64,
    events: AtomicU64,
    batches: AtomicU64,
    batched_requests: AtomicU64,
    pub wal_syncs: AtomicU64,
    lag_last_us: AtomicU64,
    lag_max_us: AtomicU64,
    pub deliveries: AtomicU64,
    pub delivery_failures: AtomicU64,
    pub outbox_oldest_pending_ms: AtomicI64,
}

fn state_index(s: State) -> usize {
    State::ALL
        .iter()
        .position(|x| *x == s)
        .expect("every state is listed")
}

impl Metrics {
    pub fn state_entered(&self, s: State) {
        self.states[state_index(s)].fetch_add(1, Relaxed);
    }

    pub fn state_left(&self, s: State) {
        self.states[state_index(s)].fetch_sub(1, Relaxed);
    }

    pub fn checks_in(&self, s: State) -> i64 {
        self.states[state_index(s)].load(Relaxed)
    }

    pub fn batch_committed(&self, requests: usize, events: usize) {
        self.batches.fetch_add(1, Relaxed);
        self.batched_requests.fetch_add(requests as u64, Relaxed);
        self.events.fetch_add(events as u64, Relaxed);
    }

    /// How late the scheduler handled a deadline.
    pub fn observe_lag(&self, lag: chrono::TimeDelta) {
        let us = lag.num_microseconds().unwrap_or(i64::MAX).max(0) as u64;
        self.lag_last_us.store(us, Relaxed);
        self.lag_max_us.fetch_max(us, Relaxed);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let states: Vec<(String, f64)> = State::ALL
            .iter()
            .map(|s| (format!("{{state=\"{s}\"}}"), self.checks_in(*s) as f64))
            .collect();
        metric("bgw_checks", "gauge", "Checks by state.", &states);
        let c = |a: &AtomicU64| vec![(String::new(), a.load(Relaxed) as f64)];
        metric(
            "bgw_heartbeats_received_total",
            "counter",
            "Agent heartbeats accepted.",
            &c(&self.heartbeats),
        );
        metric(
            "bgw_pings_received_total",
            "counter",
            "Ping-URL requests accepted.",
            &c(&self.pings),
        );
        metric(
            "bgw_reports_received_total",
            "counter",
            "Checker and prober reports accepted.",
            &c(&self.reports),
        );
        metric(
            "bgw_requests_rejected_total",
            "counter",
            "Requests answered 4xx.",
            &c(&self.rejected),
        );
        metric(
            "bgw_requests_rate_limited_total",
            "counter",
            "Requests answered 429.",
            &c(&self.rate_limited),
        );
        metric(
            "bgw_events_total",
            "counter",
            "Events recorded.",
            &c(&self.events),
        );
        metric(
            "bgw_commit_batches_total",
            "counter",
            "Group-commit transactions.",
            &c(&self.batches),
        );
        metric(
            "bgw_commit_batched_requests_total",
            "counter",
            "Requests acknowledged through group commit.",
            &c(&self.batched_requests),
        );
        metric(
            "bgw_wal_syncs_total",
            "counter",
            "fdatasyncs of the write-ahead log (durability = fsync).",
            &c(&self.wal_syncs),
        );
        let secs = |a: &AtomicU64| vec![(String::new(), a.load(Relaxed) as f64 / 1e6)];
        metric(
            "bgw_scheduler_lag_seconds",
            "gauge",
            "How late the last deadline was handled.",
            &secs(&self.lag_last_us),
        );
        metric(
            "bgw_scheduler_lag_max_seconds",
            "gauge",
            "Largest deadline lag since start.",
            &secs(&self.lag_max_us),
        );
        metric(
            "bgw_notifications_delivered_total",
            "counter",
            "Notifications delivered.",
            &c(&self.deliveries),
        );
        metric(
            "bgw_notification_failures_total",
            "counter",
            "Failed delivery attempts.",
            &c(&self.delivery_failures),
        );
        metric(
            "bgw_outbox_oldest_pending_seconds",
            "gauge",
            "Age of the oldest undelivered notification.",
            &[(
                String::new(),
                self.outbox_oldest_pending_ms.load(Relaxed) as f64 / 1e3,
            )],
        );
        out
    }
}
