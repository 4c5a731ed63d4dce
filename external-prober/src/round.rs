//! One round of the prober: probe the public URL and the watchdog's
//! `/healthz` at once.

use bgw_reporter::probe::{judge, Expect, Fetched, HttpProber};
use bgw_wire::{ProbeResult, Target};
use std::time::Duration;

/// Everything a round needs.
#[derive(Debug, Clone)]
pub struct Round {
    pub prober: HttpProber,
    pub public_url: reqwest::Url,
    /// `{watchdog_url}/healthz`.
    pub healthz_url: reqwest::Url,
    pub timeout: Duration,
    pub threshold: Duration,
}

/// A round's results, and whether the watchdog answered `/healthz` with 200.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub results: Vec<ProbeResult>,
    /// `/healthz` said 200 (slow or not: it answered).
    pub watchdog_answered: bool,
    /// How the watchdog failed, when it did: `connection refused`,
    /// `GET /healthz returned 503`.
    pub watchdog_error: Option<String>,
}

impl Round {
    pub async fn run(&self) -> Outcome {
        let (public, healthz) = tokio::join!(
            self.prober.fetch(&self.public_url, self.timeout),
            self.prober.fetch(&self.healthz_url, self.timeout),
        );
        let public = judge(
            Target::Public,
            self.public_url.as_str(),
            &public,
            &Expect::Anything,
            self.threshold,
        );
        let answered = matches!(healthz, Fetched::Answered { status: 200, .. });
        let mut watchdog = judge(
            Target::Watchdog,
            self.healthz_url.as_str(),
            &healthz,
            &Expect::Anything,
            self.threshold,
        );
        // The watchdog's own answer says nothing about blue or green.
        watchdog.color = None;
        let watchdog_error = if answered {
            None
        } else {
            watchdog.error.clone()
        };
        Outcome {
            results: vec![public, watchdog],
            watchdog_answered: answered,
            watchdog_error,
        }
    }
}
