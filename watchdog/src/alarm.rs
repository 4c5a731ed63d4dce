//! The store alarm: when the watchdog cannot write its database (a full
//! disk, a read-only file system, an I/O error, a lock held elsewhere) it
//! cannot write to its outbox either, so this task tells the operators
//! DIRECTLY over every configured channel: one `[bgw] DOWN watchdog-store`
//! on the first failed commit, and one `[bgw] UP watchdog-store` once
//! commits have succeeded again for `settle` (a disk that flickers says
//! DOWN once, not once per batch). It reads the monitor's store health
//! flag; nothing it sends is stored, and a send that fails is retried a
//! few times, then logged.

use crate::clock::Clock;
use bgw_notify::{Channel, Kind, Notification};
use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio::sync::watch;

/// The `check` the alarm's messages are about.
pub const STORE: &str = "watchdog-store";

/// Attempts per channel and message.
const ATTEMPTS: u32 = 4;

pub struct StoreAlarm {
    pub channels: Vec<Channel>,
    /// `Some(error)` while the last commit failed (`Monitor::store_health`).
    pub health: watch::Receiver<Option<String>>,
    pub clock: Clock,
    /// How long commits must keep succeeding before UP is sent.
    pub settle: Duration,
}

impl StoreAlarm {
    /// Runs until `stop` turns true or the monitor is gone.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut down_since: Option<DateTime<Utc>> = None;
        loop {
            let error = self.health.borrow_and_update().clone();
            match (&error, down_since) {
                (Some(e), None) => {
                    let now = self.clock.now();
                    down_since = Some(now);
                    tracing::error!(error = %e, "the store cannot commit: sending DOWN {STORE} directly");
                    self.send(down(e, now));
                }
                (None, Some(since)) => {
                    tokio::select! {
                        _ = tokio::time::sleep(self.settle) => {
                            let now = self.clock.now();
                            down_since = None;
                            tracing::info!("the store commits again: sending UP {STORE} directly");
                            self.send(up(since, now));
                        }
                        r = self.health.changed() => {
                            if r.is_err() {
                                return;
                            }
                            continue;
                        }
                        _ = stop.changed() => return,
                    }
                }
                _ => {}
            }
            tokio::select! {
                r = self.health.changed() => {
                    if r.is_err() {
                        return;
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }

    /// Sends `n` on every channel, each in its own task (a slow channel
    /// does not hold back the others, nor the alarm).
    fn send(&self, n: Notification) {
        for channel in &self.channels {
            let (channel, n) = (channel.clone(), n.clone());
            tokio::spawn(async move {
                for attempt in 1..=ATTEMPTS {
                    match channel.send(&n).await {
                        Ok(()) => return,
                        Err(e) if attempt < ATTEMPTS && e.is_transient() => {
                            tokio::time::sleep(bgw_notify::retry_delay(attempt, e.retry_after()))
                                .await;
                        }
                        Err(e) => {
                            tracing::error!(channel = channel.name(), error = %e, subject = %n.subject(), "could not send the store alarm");
                            return;
                        }
                    }
                }
            });
        }
    }
}

fn message(kind: Kind, state: &str, reason: String, at: DateTime<Utc>) -> Notification {
    Notification {
        event_id: 0,
        kind,
        check: STORE.into(),
        color: None,
        state: state.into(),
        reason,
        at,
        down_for: None,
        live: None,
        from: None,
        to: None,
        members: Vec::new(),
        source: "watchdog".into(),
    }
}

/// The DOWN message: what failed and what it means for clients.
pub fn down(error: &str, at: DateTime<Utc>) -> Notification {
    message(
        Kind::Down,
        "down",
        format!(
            "the watchdog cannot write its database ({error}): heartbeats, reports and pings \
             are refused with 503 and nothing is acknowledged; alerts about checks wait until \
             it can write again"
        ),
        at,
    )
}

/// The UP message, with how long the store was failing.
pub fn up(since: DateTime<Utc>, at: DateTime<Utc>) -> Notification {
    let mut n = message(
        Kind::Up,
        "up",
        "the watchdog writes its database again; refused clients are served on their next try"
            .into(),
        at,
    );
    n.down_for = (at - since)
        .to_std()
        .ok()
        .map(|d| bgw_wire::HumanDuration(Duration::from_secs(d.as_secs())));
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_alarm_is_a_down_then_an_up_of_watchdog_store() {
        let at = Utc::now();
        let d = down("database or disk is full", at);
        assert_eq!(d.subject(), "[bgw] DOWN watchdog-store");
        assert!(
            d.reason.contains("database or disk is full"),
            "{}",
            d.reason
        );
        let u = up(at, at + chrono::TimeDelta::seconds(90));
        assert_eq!(u.subject(), "[bgw] UP watchdog-store");
        assert_eq!(u.down_for.map(|d| d.0), Some(Duration::from_secs(90)));
    }
}
