//! The local probe of the app (`GET app_url` with `timeout`) and the pure
//! mapping of its outcome to a heartbeat status and detail.

use bgw_wire::{format_duration, HeartbeatStatus};
use reqwest::Url;
use std::time::{Duration, Instant};

/// What one probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The app answered with this status after `elapsed`.
    Answered {
        status: u16,
        elapsed: Duration,
    },
    Refused,
    TimedOut(Duration),
    /// Any other transport error, already described.
    Failed(String),
}

/// `ok` for a 2xx answer, `fail` with the reason otherwise. `target` is how
/// the detail names the request: `GET /ping`.
pub fn assess(target: &str, outcome: &Outcome) -> (HeartbeatStatus, String) {
    match outcome {
        Outcome::Answered { status, elapsed } if (200..300).contains(status) => (
            HeartbeatStatus::Ok,
            format!("{target} {status} in {} ms", elapsed.as_millis()),
        ),
        Outcome::Answered { status, .. } => {
            (HeartbeatStatus::Fail, format!("{target} returned {status}"))
        }
        Outcome::Refused => (
            HeartbeatStatus::Fail,
            format!("{target}: connection refused"),
        ),
        Outcome::TimedOut(after) => (
            HeartbeatStatus::Fail,
            format!("{target}: timed out after {}", format_duration(*after)),
        ),
        Outcome::Failed(reason) => (HeartbeatStatus::Fail, format!("{target}: {reason}")),
    }
}

/// `GET /ping` (with the query, if any) for the detail lines.
pub fn target(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("GET {}?{q}", url.path()),
        None => format!("GET {}", url.path()),
    }
}

/// Probes `url` once. `client` carries the timeout.
pub async fn probe(client: &reqwest::Client, url: &Url, timeout: Duration) -> Outcome {
    let start = Instant::now();
    match client.get(url.clone()).send().await {
        Ok(mut response) => {
            let elapsed = start.elapsed();
            let status = response.status().as_u16();
            // Drain a small body so the connection is reused; a huge body is
            // cut short (the connection is then simply dropped).
            let mut read = 0usize;
            while read < 64 * 1024 {
                match response.chunk().await {
                    Ok(Some(chunk)) => read += chunk.len(),
                    _ => break,
                }
            }
            Outcome::Answered { status, elapsed }
        }
        Err(e) => classify(&e, timeout),
    }
}

/// Maps a transport error to an [`Outcome`]: refused, timed out, or the
/// most specific cause. Also used for the watchdog's errors.
pub fn classify(e: &reqwest::Error, timeout: Duration) -> Outcome {
    if e.is_timeout() {
        return Outcome::TimedOut(timeout);
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut innermost = e.to_string();
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Outcome::Refused,
                std::io::ErrorKind::TimedOut => Outcome::TimedOut(timeout),
                // `Connection reset by peer (os error 104)` → without the number.
                _ => {
                    let text = io.to_string();
                    let text = match text.rfind(" (os error ") {
                        Some(i) => text[..i].to_string(),
                        None => text,
                    };
                    Outcome::Failed(text)
                }
            };
        }
        innermost = err.to_string();
        source = err.source();
    }
    Outcome::Failed(innermost)
}

/// The reason an [`Outcome`] that is not an answer failed, for log lines.
pub fn reason(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Answered { status, .. } => format!("answered {status}"),
        Outcome::Refused => "connection refused".into(),
        Outcome::TimedOut(after) => format!("timed out after {}", format_duration(*after)),
        Outcome::Failed(reason) => reason.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_hundreds_are_ok_with_the_latency() {
        let (status, detail) = assess(
            "GET /ping",
            &Outcome::Answered {
                status: 204,
                elapsed: Duration::from_micros(3_400),
            },
        );
        assert_eq!(status, HeartbeatStatus::Ok);
        assert_eq!(detail, "GET /ping 204 in 3 ms");
    }

    #[test]
    fn everything_else_fails_with_the_reason() {
        let cases = [
            (
                Outcome::Answered {
                    status: 502,
                    elapsed: Duration::ZERO,
                },
                "GET /ping returned 502",
            ),
            (
                Outcome::Answered {
                    status: 301,
                    elapsed: Duration::ZERO,
                },
                "GET /ping returned 301",
            ),
            (Outcome::Refused, "GET /ping: connection refused"),
            (
                Outcome::TimedOut(Duration::from_secs(2)),
                "GET /ping: timed out after 2s",
            ),
            (
                Outcome::Failed("connection reset".into()),
                "GET /ping: connection reset",
            ),
        ];
        for (outcome, want) in cases {
            assert_eq!(
                assess("GET /ping", &outcome),
                (HeartbeatStatus::Fail, want.to_string())
            );
        }
    }

    #[test]
    fn target_names_the_path_and_query() {
        let u = Url::parse("http://127.0.0.1:3000/ping").unwrap();
        assert_eq!(target(&u), "GET /ping");
        let u = Url::parse("http://127.0.0.1:3000/health?deep=1").unwrap();
        assert_eq!(target(&u), "GET /health?deep=1");
    }

    #[tokio::test]
    async fn a_closed_port_is_connection_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let url = Url::parse(&format!("http://{addr}/ping")).unwrap();
        assert_eq!(
            probe(&client, &url, Duration::from_secs(2)).await,
            Outcome::Refused
        );
    }
}
