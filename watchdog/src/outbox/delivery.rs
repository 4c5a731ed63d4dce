//! One delivery worker per channel: reads its pending notifications, asks
//! [`grouping::next`](super::grouping::next) what may leave, sends it as one
//! message, and keeps the books (delivered, merged, retried with backoff,
//! failed for good and then recorded as an event for the other channels).

use super::grouping::{self, Next};
use crate::alerting;
use crate::clock::Clock;
use crate::event::{Event, EventKind};
use crate::metrics::Metrics;
use crate::monitor::{Monitor, Record};
use crate::store::{PendingRow, Store};
use bgw_notify::{Channel, SendError};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How a channel is doing, for `/healthz`.
#[derive(Debug, Default)]
pub struct ChannelHealth {
    pub name: &'static str,
    pub consecutive_failures: AtomicU32,
    pub last_error: Mutex<Option<String>>,
}

impl ChannelHealth {
    /// A channel "keeps failing" after three failed attempts in a row.
    pub fn failing(&self) -> bool {
        self.consecutive_failures.load(Relaxed) >= 3
    }

    fn failed(&self, reason: &str, metrics: &Metrics) {
        self.consecutive_failures.fetch_add(1, Relaxed);
        *self.last_error.lock().expect("health lock") = Some(reason.to_string());
        metrics.delivery_failures.fetch_add(1, Relaxed);
    }
}

/// Shared by the channel workers.
#[derive(Clone)]
pub struct Delivery {
    pub store: Store,
    pub monitor: Monitor,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    pub group_window: Duration,
}

/// Delivers `channel`'s pending notifications until `stop` turns true.
/// `wake` changes after every durable commit that recorded events.
pub async fn run_channel(
    d: Delivery,
    channel: Channel,
    health: Arc<ChannelHealth>,
    mut wake: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let name = channel.name();
    let window = chrono::TimeDelta::from_std(d.group_window).unwrap_or_default();
    let mut last_sent = match d.store.last_sent(name, d.clock.now() - window).await {
        Ok(sent) => sent,
        Err(e) => {
            tracing::error!(channel = name, error = %e, "outbox read failed");
            HashMap::new()
        }
    };
    loop {
        if *stop.borrow() {
            return;
        }
        let now = d.clock.now();
        let until = match d.store.pending(name).await {
            Err(e) => {
                tracing::error!(channel = name, error = %e, "outbox read failed");
                Some(now + Duration::from_secs(1))
            }
            Ok(pending) => match grouping::next(&pending, &last_sent, d.group_window, now) {
                Next::Send(rows) => {
                    let rows: Vec<PendingRow> =
                        rows.into_iter().map(|i| pending[i].clone()).collect();
                    deliver(&d, &channel, &health, &mut last_sent, rows).await;
                    continue;
                }
                Next::At(at) => Some(at),
                Next::Idle => None,
            },
        };
        let clock = d.clock.clone();
        let sleep = async move {
            match until {
                Some(at) => clock.sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            r = wake.changed() => { if r.is_err() { return; } }
            _ = stop.changed() => {}
        }
    }
}

async fn deliver(
    d: &Delivery,
    channel: &Channel,
    health: &ChannelHealth,
    last_sent: &mut HashMap<String, DateTime<Utc>>,
    rows: Vec<PendingRow>,
) {
    let name = channel.name();
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let group = rows[0].group_key.clone();
    let attempts = rows.iter().map(|r| r.attempts).max().unwrap_or(0) + 1;
    let message = alerting::merge(rows.into_iter().map(|r| r.notification).collect());
    let result = channel.send(&message).await;
    let now = d.clock.now();
    match result {
        Ok(()) => {
            health.consecutive_failures.store(0, Relaxed);
            d.metrics.deliveries.fetch_add(1, Relaxed);
            if let Some(g) = group {
                last_sent.insert(g, now);
            }
            if let Err(e) = d.store.mark_delivered(&ids, now).await {
                tracing::error!(channel = name, error = %e, "delivered but not recorded; it may be sent again");
            }
            tracing::info!(channel = name, subject = %message.subject(), merged = ids.len(), "notification delivered");
        }
        Err(SendError::Transient {
            reason,
            retry_after,
        }) => {
            health.failed(&reason, &d.metrics);
            let delay = bgw_notify::retry_delay(attempts as u32, retry_after);
            tracing::warn!(channel = name, attempts, retry_in = %bgw_wire::format_duration(delay), error = %reason, "delivery failed; will retry");
            if let Err(e) = d.store.retry_at(&ids, attempts, now + delay, &reason).await {
                tracing::error!(channel = name, error = %e, "could not record the retry");
            }
        }
        Err(SendError::Permanent { reason }) => {
            health.failed(&reason, &d.metrics);
            tracing::error!(channel = name, error = %reason, "delivery refused for good");
            if let Err(e) = d.store.mark_failed(&ids, &reason).await {
                tracing::error!(channel = name, error = %e, "could not record the refusal");
            }
            let event = Event::new(
                now,
                EventKind::DeliveryFailed {
                    channel: name.to_string(),
                    notification: ids[0],
                    reason: format!("{name} refused \"{}\": {reason}", message.subject()),
                },
            );
            if let Err(e) = d.monitor.record(Record::event(event)).await {
                tracing::error!(error = %e, "could not record the delivery failure");
            }
        }
    }
}
