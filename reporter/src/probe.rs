//! One HTTP probe: fetch a URL with a timeout ([`HttpProber::fetch`], the
//! effect) and judge what came back ([`judge`], pure).
//!
//! A result is not ok on a timeout, a connection error, a status outside
//! 2xx, a proxied answer served by the wrong color, or a latency over the
//! threshold; the error names the first of these that applies, in that
//! order. Errors never quote the URL's credentials or a token.

use bgw_wire::{format_duration, Color, ProbeResult, Target, COLOR_HEADER};
use std::time::{Duration, Instant};

/// At most this much of an answer's body is read (the probe only needs to
/// know the answer arrived whole).
const MAX_BODY: usize = 64 * 1024;

/// What a fetch saw, before any judgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// An HTTP answer arrived (any status).
    Answered {
        status: u16,
        latency_ms: u64,
        /// The valid `X-Bgw-Color` header of the answer, if any.
        served_by: Option<Color>,
    },
    /// No answer: `timed out after 30s`, `connection refused`, ...
    Failed { error: String },
}

/// Which color must have served a proxied answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Any color (or none): direct targets, the public URL, the watchdog.
    Anything,
    /// This color, which plays `role` (`"live"` or `"idle"`).
    Served { color: Color, role: &'static str },
    /// The color cannot be known; the result fails with this reason
    /// (`live color undefined (...)`).
    Unknown { reason: String },
}

/// Turns a fetch into the reported result.
pub fn judge(
    target: Target,
    url: &str,
    fetched: &Fetched,
    expect: &Expect,
    threshold: Duration,
) -> ProbeResult {
    let threshold_ms = threshold.as_millis() as u64;
    let (status, latency_ms, served_by, error) = match fetched {
        Fetched::Failed { error } => (None, None, None, Some(error.clone())),
        Fetched::Answered {
            status,
            latency_ms,
            served_by,
        } => {
            let error = if !(200..300).contains(status) {
                Some(format!("GET {} returned {status}", path_of(url)))
            } else if let Some(e) = color_error(expect, *served_by) {
                Some(e)
            } else if *latency_ms > threshold_ms {
                Some(format!(
                    "latency {latency_ms}ms over threshold {threshold_ms}ms"
                ))
            } else {
                None
            };
            (Some(*status), Some(*latency_ms), *served_by, error)
        }
    };
    ProbeResult {
        target,
        color: target.direct_color().or(served_by),
        url: url.to_string(),
        ok: error.is_none(),
        status,
        latency_ms,
        error,
    }
}

fn color_error(expect: &Expect, served_by: Option<Color>) -> Option<String> {
    match (expect, served_by) {
        (Expect::Anything, _) => None,
        (Expect::Unknown { reason }, _) => Some(reason.clone()),
        (Expect::Served { color, .. }, Some(s)) if s == *color => None,
        (Expect::Served { color, role }, Some(s)) => {
            Some(format!("served by {s}, {role} is {color}"))
        }
        (Expect::Served { color, role }, None) => Some(format!(
            "no valid {COLOR_HEADER} header in the answer, {role} is {color}"
        )),
    }
}

/// The path (and query) of `url`, for `GET /ping returned 502`.
fn path_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        },
        Err(_) => url.to_string(),
    }
}

/// The HTTP client of the probes: no proxy from the environment, no
/// redirects followed (a 3xx is not a healthy answer), and a fresh
/// connection per probe, so a probe sees what a new visitor would.
#[derive(Debug, Clone)]
pub struct HttpProber {
    client: reqwest::Client,
}

impl HttpProber {
    pub fn new(user_agent: &str) -> reqwest::Result<Self> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .user_agent(user_agent)
            .build()?;
        Ok(HttpProber { client })
    }

    /// `GET url`, reading at most 64 KiB of the body, within `timeout`.
    /// The latency covers connecting, the headers and the body.
    pub async fn fetch(&self, url: &reqwest::Url, timeout: Duration) -> Fetched {
        let start = Instant::now();
        let attempt = async {
            let mut response = self.client.get(url.clone()).send().await?;
            let status = response.status().as_u16();
            let served_by = response
                .headers()
                .get(COLOR_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<Color>().ok());
            let mut read = 0;
            while let Some(chunk) = response.chunk().await? {
                read += chunk.len();
                if read >= MAX_BODY {
                    break;
                }
            }
            Ok::<_, reqwest::Error>((status, served_by))
        };
        match tokio::time::timeout(timeout, attempt).await {
            Err(_) => Fetched::Failed {
                error: format!("timed out after {}", format_duration(timeout)),
            },
            Ok(Err(e)) => Fetched::Failed {
                error: describe(&e),
            },
            Ok(Ok((status, served_by))) => Fetched::Answered {
                status,
                latency_ms: start.elapsed().as_millis() as u64,
                served_by,
            },
        }
    }
}

/// A short reason without the URL: `connection refused`, `connection reset`,
/// `connection failed: dns error ...`.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    let mut innermost = None;
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                ConnectionRefused => return "connection refused".into(),
                ConnectionReset => return "connection reset".into(),
                ConnectionAborted => return "connection aborted".into(),
                TimedOut => return "connection timed out".into(),
                _ => {}
            }
        }
        innermost = Some(s);
        source = s.source();
    }
    let detail = innermost.map_or_else(|| "unknown error".to_string(), |s| s.to_string());
    if e.is_connect() {
        format!("connection failed: {detail}")
    } else if e.is_body() || e.is_decode() {
        format!("reading the answer failed: {detail}")
    } else {
        format!("request failed: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:80/ping";
    const T: Duration = Duration::from_millis(2000);

    fn answered(status: u16, latency_ms: u64, served_by: Option<Color>) -> Fetched {
        Fetched::Answered {
            status,
            latency_ms,
            served_by,
        }
    }

    fn live(color: Color) -> Expect {
        Expect::Served {
            color,
            role: "live",
        }
    }

    #[test]
    fn a_fast_2xx_answer_is_ok() {
        let r = judge(
            Target::BlueDirect,
            URL,
            &answered(204, 3, None),
            &Expect::Anything,
            T,
        );
        assert!(r.ok);
        assert_eq!(r.color, Some(Color::Blue));
        assert_eq!(
            (r.status, r.latency_ms, r.error),
            (Some(204), Some(3), None)
        );
    }

    #[test]
    fn a_status_outside_2xx_fails_with_method_and_path() {
        for status in [199, 301, 404, 500, 502] {
            let r = judge(
                Target::GreenDirect,
                URL,
                &answered(status, 3, None),
                &Expect::Anything,
                T,
            );
            assert!(!r.ok);
            assert_eq!(r.error, Some(format!("GET /ping returned {status}")));
        }
    }

    #[test]
    fn latency_over_the_threshold_fails_but_at_the_threshold_passes() {
        let r = judge(
            Target::LiveProxy,
            URL,
            &answered(200, 2350, Some(Color::Blue)),
            &live(Color::Blue),
            T,
        );
        assert!(!r.ok);
        assert_eq!(
            r.error.as_deref(),
            Some("latency 2350ms over threshold 2000ms")
        );
        let r = judge(
            Target::LiveProxy,
            URL,
            &answered(200, 2000, Some(Color::Blue)),
            &live(Color::Blue),
            T,
        );
        assert!(r.ok);
    }

    #[test]
    fn a_failed_fetch_keeps_its_reason_and_has_no_status() {
        let f = Fetched::Failed {
            error: "connection refused".into(),
        };
        let r = judge(Target::IdleProxy, URL, &f, &live(Color::Green), T);
        assert!(!r.ok);
        assert_eq!(r.error.as_deref(), Some("connection refused"));
        assert_eq!((r.status, r.latency_ms, r.color), (None, None, None));
    }

    #[test]
    fn the_wrong_color_fails_and_names_both_colors() {
        let r = judge(
            Target::LiveProxy,
            URL,
            &answered(200, 3, Some(Color::Green)),
            &live(Color::Blue),
            T,
        );
        assert!(!r.ok);
        assert_eq!(r.color, Some(Color::Green));
        assert_eq!(r.error.as_deref(), Some("served by green, live is blue"));
        let idle = Expect::Served {
            color: Color::Green,
            role: "idle",
        };
        let r = judge(
            Target::IdleProxy,
            URL,
            &answered(200, 3, Some(Color::Blue)),
            &idle,
            T,
        );
        assert_eq!(r.error.as_deref(), Some("served by blue, idle is green"));
    }

    #[test]
    fn a_missing_color_header_fails_a_proxy_target() {
        let r = judge(
            Target::LiveProxy,
            URL,
            &answered(200, 3, None),
            &live(Color::Blue),
            T,
        );
        assert!(!r.ok);
        assert_eq!(
            r.error.as_deref(),
            Some("no valid X-Bgw-Color header in the answer, live is blue")
        );
    }

    #[test]
    fn an_unknown_live_color_fails_with_its_reason() {
        let e = Expect::Unknown {
            reason: "live color undefined (live_file /var/live holds \"purple\")".into(),
        };
        let r = judge(
            Target::LiveProxy,
            URL,
            &answered(200, 3, Some(Color::Blue)),
            &e,
            T,
        );
        assert!(!r.ok);
        assert_eq!(
            r.error.as_deref(),
            Some("live color undefined (live_file /var/live holds \"purple\")")
        );
    }

    #[test]
    fn a_bad_status_wins_over_color_and_color_over_latency() {
        let r = judge(
            Target::LiveProxy,
            URL,
            &answered(502, 5000, Some(Color::Green)),
            &live(Color::Blue),
            T,
        );
        assert_eq!(r.error.as_deref(), Some("GET /ping returned 502"));
        let r = judge(
            Target::LiveProxy,
            URL,
            &answered(200, 5000, Some(Color::Green)),
            &live(Color::Blue),
            T,
        );
        assert_eq!(r.error.as_deref(), Some("served by green, live is blue"));
    }

    #[test]
    fn direct_targets_report_their_own_color_whatever_the_header() {
        let r = judge(
            Target::GreenDirect,
            URL,
            &answered(200, 1, Some(Color::Blue)),
            &Expect::Anything,
            T,
        );
        assert_eq!(r.color, Some(Color::Green));
        assert!(r.ok);
    }

    #[test]
    fn the_path_keeps_its_query() {
        let r = judge(
            Target::Public,
            "http://203.0.113.10/health?deep=1",
            &answered(503, 1, None),
            &Expect::Anything,
            T,
        );
        assert_eq!(r.error.as_deref(), Some("GET /health?deep=1 returned 503"));
    }

    #[tokio::test]
    async fn a_closed_port_is_connection_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let p = HttpProber::new("test").unwrap();
        let url = reqwest::Url::parse(&format!("http://{addr}/ping")).unwrap();
        let f = p.fetch(&url, Duration::from_secs(5)).await;
        assert_eq!(
            f,
            Fetched::Failed {
                error: "connection refused".into()
            }
        );
    }

    #[tokio::test]
    async fn a_silent_server_times_out_with_the_timeout_named() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts and never answers.
        let keep = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                if let Ok((s, _)) = listener.accept().await {
                    held.push(s);
                }
            }
        });
        let p = HttpProber::new("test").unwrap();
        let url = reqwest::Url::parse(&format!("http://{addr}/ping")).unwrap();
        let f = p.fetch(&url, Duration::from_millis(300)).await;
        assert_eq!(
            f,
            Fetched::Failed {
                error: "timed out after 300ms".into()
            }
        );
        keep.abort();
    }
}
