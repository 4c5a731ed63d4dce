//! Time as a dependency. The watchdog's core (the monitor's deadlines, the
//! outbox's timers and grouping, the rollback watcher) reads the time and
//! sleeps only through a [`Clock`], so tests can drive it.
//!
//! In production it is the system clock. In tests it is a manual clock that
//! moves only when the test calls [`ManualClock::advance`]: deadlines pass
//! exactly when the test says so, while real I/O (SQLite, SMTP, HTTP) runs at
//! its own speed. That is why this is not `tokio::time::pause()`: a paused
//! tokio clock jumps ahead whenever the runtime waits on I/O (a SQLite commit
//! on its worker thread looks idle), and deadlines would pass mid-commit.

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A source of "now" and of sleeps until a UTC instant. Cheap to clone.
#[derive(Clone)]
pub struct Clock(Inner);

#[derive(Clone)]
enum Inner {
    System,
    Manual(watch::Receiver<DateTime<Utc>>),
}

impl Clock {
    /// The system clock (`Utc::now()`, tokio's timers).
    pub fn system() -> Clock {
        Clock(Inner::System)
    }

    /// A clock that starts at `start` and moves only by
    /// [`ManualClock::advance`] and [`ManualClock::set`].
    pub fn manual(start: DateTime<Utc>) -> (Clock, ManualClock) {
        let (tx, rx) = watch::channel(start);
        (Clock(Inner::Manual(rx)), ManualClock(Arc::new(tx)))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            Inner::System => Utc::now(),
            Inner::Manual(rx) => *rx.borrow(),
        }
    }

    /// Sleeps until the clock reads `at` or later.
    pub async fn sleep_until(&self, at: DateTime<Utc>) {
        match &self.0 {
            Inner::System => {
                let wait = (at - Utc::now()).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
            }
            Inner::Manual(rx) => {
                let mut rx = rx.clone();
                // An error means the test dropped its handle: time stops.
                if rx.wait_for(|now| *now >= at).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// Sleeps for `d` of this clock's time.
    pub async fn sleep(&self, d: Duration) {
        self.sleep_until(self.now() + d).await;
    }

    /// Time elapsed since `then` (zero if `then` is ahead).
    pub fn since(&self, then: DateTime<Utc>) -> Duration {
        (self.now() - then).to_std().unwrap_or_default()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Inner::System => f.write_str("Clock::System"),
            Inner::Manual(rx) => write!(f, "Clock::Manual({})", *rx.borrow()),
        }
    }
}

/// The test's hand on a manual [`Clock`].
#[derive(Clone)]
pub struct ManualClock(Arc<watch::Sender<DateTime<Utc>>>);

impl ManualClock {
    pub fn now(&self) -> DateTime<Utc> {
        *self.0.borrow()
    }

    /// Another [`Clock`] reading this one (for a restarted watchdog).
    pub fn clock(&self) -> Clock {
        Clock(Inner::Manual(self.0.subscribe()))
    }

    /// Moves the clock forward by `d`, waking every sleeper now due.
    pub fn advance(&self, d: Duration) {
        self.0.send_modify(|now| *now += d);
    }

    /// Moves the clock to `at` (never backwards).
    pub fn set(&self, at: DateTime<Utc>) {
        self.0.send_modify(|now| *now = (*now).max(at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_sleep_ends_exactly_when_the_clock_is_advanced_past_it() {
        let start = Utc::now();
        let (clock, hand) = Clock::manual(start);
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(start + Duration::from_secs(10)).await }
        });
        hand.advance(Duration::from_secs(9));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!sleeper.is_finished(), "woke before its time");
        hand.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woke at its time")
            .unwrap();
        assert_eq!(clock.now(), start + Duration::from_secs(10));
    }
}
