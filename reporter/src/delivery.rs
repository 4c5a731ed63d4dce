//! Sending reports to the watchdog without ever stalling the probing rounds.
//!
//! The rounds hand each report to [`Delivery::submit`] and go on. A task
//! posts it to `POST {watchdog_url}/api/v1/report`; while the watchdog is
//! unreachable it retries with jittered backoff, and only the latest report
//! is kept pending (a newer one replaces it), so memory stays bounded. An
//! outage is logged once when it starts and once when it ends, never per
//! attempt. The token travels in a header marked sensitive and is never
//! logged.

use bgw_wire::{Backoff, ErrorBody, Report};
use reqwest::header::{HeaderValue, AUTHORIZATION};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why a report did not get through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// No answer, or an answer that asks to come back later (408, 429, 5xx):
    /// retried with backoff.
    #[error("watchdog unreachable: {0}")]
    Unreachable(String),
    /// The watchdog refused this report (bad token, malformed): dropped, as
    /// sending it again would be refused again.
    #[error("watchdog refused the report with {status}: {reason}")]
    Refused { status: u16, reason: String },
}

/// Where and how reports go.
#[derive(Clone)]
pub struct Endpoint {
    pub client: reqwest::Client,
    /// `{watchdog_url}/api/v1/report`.
    pub url: reqwest::Url,
    pub token: SecretString,
    pub timeout: Duration,
}

impl Endpoint {
    /// The report endpoint of the watchdog at `watchdog_url`, posted to with
    /// `token` by a client that names itself `user_agent` and ignores any
    /// HTTP proxy of the environment.
    pub fn new(
        user_agent: &str,
        watchdog_url: &reqwest::Url,
        token: SecretString,
        timeout: Duration,
    ) -> reqwest::Result<Endpoint> {
        Ok(Endpoint {
            client: reqwest::Client::builder()
                .no_proxy()
                .user_agent(user_agent)
                .build()?,
            url: Endpoint::report_url(watchdog_url),
            token,
            timeout,
        })
    }

    /// The report endpoint under `watchdog_url` (which may have a path prefix).
    pub fn report_url(watchdog_url: &reqwest::Url) -> reqwest::Url {
        join(watchdog_url, "api/v1/report")
    }

    /// One attempt.
    pub async fn post(&self, report: &Report) -> Result<(), PostError> {
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", self.token.expose_secret()))
            .map_err(|_| PostError::Refused {
                status: 0,
                reason: "the token is not a valid header value".into(),
            })?;
        auth.set_sensitive(true);
        let response = self
            .client
            .post(self.url.clone())
            .header(AUTHORIZATION, auth)
            .json(report)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| PostError::Unreachable(crate::probe::describe(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let code = status.as_u16();
        let reason = match response.json::<ErrorBody>().await {
            Ok(b) => b.error.chars().take(200).collect(),
            Err(_) => status.canonical_reason().unwrap_or("").to_string(),
        };
        if code == 408 || code == 429 || status.is_server_error() {
            Err(PostError::Unreachable(format!("answered {code} {reason}")))
        } else {
            Err(PostError::Refused {
                status: code,
                reason,
            })
        }
    }
}

/// `base` joined with `rest`, keeping a path prefix of `base`
/// (`http://h/bgw` + `healthz` → `http://h/bgw/healthz`).
pub fn join(base: &reqwest::Url, rest: &str) -> reqwest::Url {
    let mut url = base.clone();
    let path = format!("{}/{rest}", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_query(None);
    url
}

/// Retries while the watchdog is unreachable wait at most one interval
/// (between 250 ms and 30 s): a restarted watchdog hears from the checker
/// and the prober within one period, which is all the time it gives their
/// checks before judging a deadline that passed while it was down.
pub fn max_backoff(interval: Duration) -> Duration {
    interval.clamp(Duration::from_millis(250), Duration::from_secs(30))
}

/// Handle of the delivery task.
pub struct Delivery {
    pending: watch::Sender<Option<Report>>,
    accepted: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl Delivery {
    /// Starts the task. `max_backoff` caps the wait between attempts.
    pub fn spawn(endpoint: Endpoint, max_backoff: Duration) -> Delivery {
        let (pending, rx) = watch::channel(None);
        let (accepted_tx, accepted) = watch::channel(0);
        let backoff = Backoff::new(Duration::from_millis(250), max_backoff);
        let task = tokio::spawn(deliver(endpoint, rx, accepted_tx, backoff));
        Delivery {
            pending,
            accepted,
            task,
        }
    }

    /// Queues `report`, replacing one still pending.
    pub fn submit(&self, report: Report) {
        self.pending.send_replace(Some(report));
    }

    /// Counts the reports the watchdog accepted; `changed()` fires on each.
    pub fn accepted(&self) -> watch::Receiver<u64> {
        self.accepted.clone()
    }

    /// Stops the task; a report still pending is dropped (the next run sends
    /// a fresh one).
    pub fn stop(self) {
        self.task.abort();
    }
}

async fn deliver(
    endpoint: Endpoint,
    mut pending: watch::Receiver<Option<Report>>,
    accepted: watch::Sender<u64>,
    mut backoff: Backoff,
) {
    let mut outage: Option<String> = None;
    let mut refused: Option<u16> = None;
    while pending.changed().await.is_ok() {
        loop {
            let Some(report) = pending.borrow_and_update().clone() else {
                break;
            };
            match endpoint.post(&report).await {
                Ok(()) => {
                    if outage.take().is_some() {
                        tracing::info!(
                            failed_attempts = backoff.attempt(),
                            "watchdog reachable again; reports are delivered"
                        );
                    }
                    refused = None;
                    backoff.reset();
                    accepted.send_modify(|n| *n += 1);
                    break;
                }
                Err(PostError::Refused { status, reason }) => {
                    if refused != Some(status) {
                        tracing::error!(
                            status,
                            reason = %reason,
                            "watchdog refused the report (check token and observer); \
                             dropping it, later reports are still sent"
                        );
                        refused = Some(status);
                    }
                    break;
                }
                Err(PostError::Unreachable(reason)) => {
                    if outage.is_none() {
                        tracing::warn!(
                            error = %reason,
                            "watchdog unreachable; retrying with backoff, keeping only the latest report"
                        );
                        outage = Some(reason);
                    }
                    tokio::time::sleep(backoff.next_delay()).await;
                    // Loop: send whatever is the latest report now.
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_backoff_is_one_interval_between_a_quarter_second_and_thirty_seconds() {
        assert_eq!(max_backoff(Duration::from_secs(5)), Duration::from_secs(5));
        assert_eq!(
            max_backoff(Duration::from_millis(200)),
            Duration::from_millis(250)
        );
        assert_eq!(
            max_backoff(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn join_keeps_a_path_prefix() {
        let u = |s| reqwest::Url::parse(s).unwrap();
        assert_eq!(
            join(&u("http://h:8700"), "api/v1/report").as_str(),
            "http://h:8700/api/v1/report"
        );
        assert_eq!(
            join(&u("http://h:8700/"), "healthz").as_str(),
            "http://h:8700/healthz"
        );
        assert_eq!(
            join(&u("https://h/bgw/"), "api/v1/report").as_str(),
            "https://h/bgw/api/v1/report"
        );
    }
}
