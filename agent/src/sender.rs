//! Heartbeats to the watchdog: one `POST /api/v1/heartbeat` per call
//! ([`Sender`]), and the pure bookkeeping of the link ([`Link`]): when to try
//! again (jittered backoff while unreachable, the interval otherwise) and
//! what to log (once per outage, once per rejection, never per attempt).
//!
//! Nothing is queued: the caller sends the latest state on every attempt, so
//! memory stays bounded however long the watchdog is away.

use crate::probe;
use crate::settings::Settings;
use bgw_wire::{format_duration, Backoff, ErrorBody, Heartbeat};
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::Url;
use std::time::{Duration, Instant};

/// How one heartbeat fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// `2xx`: the watchdog has it.
    Accepted,
    /// No answer, a `5xx` or a `429`: retry with backoff. Holds the reason.
    Unreachable(String),
    /// Any other answer (`400`, `401`, `404`, ...): a configuration error;
    /// retrying sooner than the interval would not help.
    Rejected { status: u16, error: String },
}

/// Posts heartbeats with the check's bearer token.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    url: Url,
    authorization: HeaderValue,
}

impl Sender {
    pub fn new(settings: &Settings) -> reqwest::Result<Sender> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("bgw-agent/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(1)
            .build()?;
        Ok(Sender {
            client,
            url: settings.heartbeat_url(),
            authorization: settings.authorization.clone(),
        })
    }

    /// Sends `heartbeat`, waiting at most `timeout` for the answer.
    pub async fn send(&self, heartbeat: &Heartbeat, timeout: Duration) -> Delivery {
        let result = self
            .client
            .post(self.url.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .json(heartbeat)
            .timeout(timeout)
            .send()
            .await;
        let response = match result {
            Ok(r) => r,
            Err(e) => return Delivery::Unreachable(probe::reason(&probe::classify(&e, timeout))),
        };
        let status = response.status().as_u16();
        match status {
            200..=299 => Delivery::Accepted,
            429 | 500..=599 => Delivery::Unreachable(format!("answered {status}")),
            _ => {
                // The watchdog's `{"error": ...}`; its messages hold no secrets.
                let body = response.bytes().await.unwrap_or_default();
                let error = serde_json::from_slice::<ErrorBody>(&body)
                    .map(|b| b.error)
                    .unwrap_or_default();
                Delivery::Rejected {
                    status,
                    error: error.chars().take(200).collect(),
                }
            }
        }
    }
}

/// The time between two heartbeats: `interval` less a tenth (at most 1 s).
/// A watchdog whose `period` equals the agents' `interval` sets each deadline
/// one period after the last heartbeat arrived; sending exactly every
/// interval, any heartbeat that took a millisecond longer than the one before
/// would arrive after it and the check would flap between `up` and `late`.
pub fn cadence(interval: Duration) -> Duration {
    interval - (interval / 10).min(Duration::from_secs(1))
}

/// How loud a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// The state of the link to the watchdog.
#[derive(Debug)]
pub struct Link {
    /// `host:port` of the watchdog, for log lines.
    name: String,
    /// Time from one heartbeat to the next: the interval less a little slack.
    cadence: Duration,
    backoff: Backoff,
    /// Failed attempts and start of the current outage, if any.
    outage: Option<(u32, Instant)>,
    /// The status of the last rejection logged, until a heartbeat is accepted.
    rejected: Option<u16>,
}

impl Link {
    /// Heartbeats go out every [`cadence`]`(interval)`. Backoff starts at an
    /// eighth of the interval (100 ms to 1 s) and is capped at the cadence,
    /// so a watchdog that comes back hears from every agent within one
    /// interval, not all at the same instant.
    pub fn new(name: String, interval: Duration) -> Link {
        let cadence = cadence(interval);
        let base = (interval / 8).clamp(Duration::from_millis(100), Duration::from_secs(1));
        Link {
            name,
            cadence,
            backoff: Backoff::new(base.min(cadence), cadence),
            outage: None,
            rejected: None,
        }
    }

    /// Records one attempt; returns how long to wait before the next one and
    /// the lines to log.
    pub fn record(
        &mut self,
        delivery: &Delivery,
        now: Instant,
    ) -> (Duration, Vec<(Level, String)>) {
        let mut logs = Vec::new();
        if !matches!(delivery, Delivery::Unreachable(_)) {
            if let Some((attempts, since)) = self.outage.take() {
                let secs = Duration::from_secs(now.saturating_duration_since(since).as_secs());
                logs.push((
                    Level::Info,
                    format!(
                        "watchdog reachable again after {attempts} attempts ({} without it)",
                        format_duration(secs)
                    ),
                ));
            }
            self.backoff.reset();
        }
        match delivery {
            Delivery::Accepted => {
                self.rejected = None;
                (self.cadence, logs)
            }
            Delivery::Unreachable(reason) => {
                match &mut self.outage {
                    Some((attempts, _)) => *attempts += 1,
                    None => {
                        self.outage = Some((1, now));
                        logs.push((
                            Level::Warn,
                            format!(
                                "watchdog unreachable ({}): {reason}; retrying with backoff, \
                                 logging again when it answers",
                                self.name
                            ),
                        ));
                    }
                }
                (self.backoff.next_delay(), logs)
            }
            Delivery::Rejected { status, error } => {
                if self.rejected != Some(*status) {
                    self.rejected = Some(*status);
                    let hint = match status {
                        401 => " (check the `token` key)",
                        404 => " (check the `check` key)",
                        _ => "",
                    };
                    logs.push((
                        Level::Error,
                        format!(
                            "watchdog rejected the heartbeat with {status}: {error}{hint}; \
                             retrying every interval"
                        ),
                    ));
                }
                (self.cadence, logs)
            }
        }
    }

    /// Whether the watchdog is currently unreachable.
    #[cfg(test)]
    fn in_outage(&self) -> bool {
        self.outage.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable() -> Delivery {
        Delivery::Unreachable("connection refused".into())
    }

    #[test]
    fn an_outage_is_logged_once_and_its_end_once_with_the_attempt_count() {
        let interval = Duration::from_secs(1);
        let mut link = Link::new("127.0.0.1:8700".into(), interval);
        let t0 = Instant::now();
        let mut lines = Vec::new();
        for i in 0..50 {
            let (wait, logs) = link.record(&unreachable(), t0 + Duration::from_millis(i * 500));
            assert!(
                wait <= interval,
                "backoff is capped at the interval: {wait:?}"
            );
            lines.extend(logs);
        }
        assert!(link.in_outage());
        let (wait, logs) = link.record(&Delivery::Accepted, t0 + Duration::from_secs(25));
        lines.extend(logs);
        assert_eq!(wait, cadence(interval));
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0].0, Level::Warn);
        assert!(lines[0]
            .1
            .starts_with("watchdog unreachable (127.0.0.1:8700): connection refused"));
        assert_eq!(
            lines[1].1,
            "watchdog reachable again after 50 attempts (25s without it)"
        );
        assert!(!link.in_outage());
        // A second outage is logged again.
        let (_, logs) = link.record(&unreachable(), t0 + Duration::from_secs(30));
        assert_eq!(logs.len(), 1);
    }

    #[test]
    fn heartbeats_go_out_a_little_ahead_of_the_interval() {
        assert_eq!(cadence(Duration::from_secs(1)), Duration::from_millis(900));
        assert_eq!(cadence(Duration::from_secs(5)), Duration::from_millis(4500));
        assert_eq!(cadence(Duration::from_secs(30)), Duration::from_secs(29));
        assert_eq!(
            cadence(Duration::from_millis(200)),
            Duration::from_millis(180)
        );
    }

    #[test]
    fn backoff_starts_small_and_resets_after_success() {
        let mut link = Link::new("w".into(), Duration::from_secs(8));
        let (first, _) = link.record(&unreachable(), Instant::now());
        assert!(first <= Duration::from_secs(1), "{first:?}");
        for _ in 0..10 {
            link.record(&unreachable(), Instant::now());
        }
        let (late, _) = link.record(&unreachable(), Instant::now());
        // Capped at the cadence, jittered down to half of it at most.
        let cap = cadence(Duration::from_secs(8));
        assert!(
            late >= cap / 2 && late <= cap,
            "grows toward the interval: {late:?}"
        );
        link.record(&Delivery::Accepted, Instant::now());
        let (again, _) = link.record(&unreachable(), Instant::now());
        assert!(again <= Duration::from_secs(1), "{again:?}");
    }

    #[test]
    fn rejections_are_logged_once_per_status_and_wait_the_interval() {
        let mut link = Link::new("w".into(), Duration::from_secs(5));
        let rejected = |status| Delivery::Rejected {
            status,
            error: "wrong token".into(),
        };
        let (wait, logs) = link.record(&rejected(401), Instant::now());
        assert_eq!(wait, cadence(Duration::from_secs(5)));
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].0, Level::Error);
        assert!(
            logs[0]
                .1
                .contains("401: wrong token (check the `token` key)"),
            "{:?}",
            logs
        );
        assert!(link.record(&rejected(401), Instant::now()).1.is_empty());
        assert_eq!(link.record(&rejected(404), Instant::now()).1.len(), 1);
        link.record(&Delivery::Accepted, Instant::now());
        assert_eq!(link.record(&rejected(404), Instant::now()).1.len(), 1);
    }
}
