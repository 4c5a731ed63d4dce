//! One round of the checker: read `live_file`, probe the four targets at
//! once, and judge each against the color it must be served by.

use crate::probe::{judge, Expect, HttpProber};
use crate::settings::Settings;
use bgw_wire::{Color, ProbeResult, Target};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The four URLs the checker probes.
#[derive(Debug, Clone)]
pub struct Targets {
    pub blue: reqwest::Url,
    pub green: reqwest::Url,
    pub live: reqwest::Url,
    pub idle: reqwest::Url,
}

impl Targets {
    pub fn from_settings(s: &Settings) -> anyhow::Result<Targets> {
        let url = |authority: String| -> anyhow::Result<reqwest::Url> {
            Ok(reqwest::Url::parse(&format!(
                "http://{authority}{}",
                s.path
            ))?)
        };
        Ok(Targets {
            blue: url(s.blue.clone())?,
            green: url(s.green.clone())?,
            live: url(format!("{}:{}", s.proxy, s.live_listen))?,
            idle: url(format!("{}:{}", s.proxy, s.idle_listen))?,
        })
    }
}

/// What `live_file` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Live {
    Color(Color),
    /// Why the live color is unknown: `live color undefined (...)`.
    Undefined(String),
}

/// Reads `live_file` the way the original scripts wrote it ([`Color::from_live_file`]).
pub fn read_live(path: &Path) -> Live {
    match std::fs::read_to_string(path) {
        Ok(text) => live_from(path, &text),
        Err(e) => Live::Undefined(format!(
            "live color undefined (cannot read live_file {}: {e})",
            path.display()
        )),
    }
}

fn live_from(path: &Path, text: &str) -> Live {
    match Color::from_live_file(text) {
        Some(c) => Live::Color(c),
        None => {
            let shown: String = text.trim().chars().take(40).collect();
            Live::Undefined(format!(
                "live color undefined (live_file {} holds {shown:?})",
                path.display()
            ))
        }
    }
}

/// The color the live and the idle port must be served by. With the live
/// color undefined the live port fails with the reason; the idle port is
/// then judged on its answer alone (there is no idle color to hold it to).
pub fn expectations(live: &Live) -> (Expect, Expect) {
    match live {
        Live::Color(c) => (
            Expect::Served {
                color: *c,
                role: "live",
            },
            Expect::Served {
                color: c.other(),
                role: "idle",
            },
        ),
        Live::Undefined(reason) => (
            Expect::Unknown {
                reason: reason.clone(),
            },
            Expect::Anything,
        ),
    }
}

/// Everything a round needs.
#[derive(Debug, Clone)]
pub struct Round {
    pub prober: HttpProber,
    pub targets: Targets,
    pub live_file: PathBuf,
    pub timeout: Duration,
    pub threshold: Duration,
}

impl Round {
    /// Probes the four targets concurrently; results in the contract's order
    /// (`blue-direct`, `green-direct`, `live-proxy`, `idle-proxy`).
    pub async fn run(&self) -> Vec<ProbeResult> {
        let t = &self.targets;
        let (blue, green, live, idle) = tokio::join!(
            self.prober.fetch(&t.blue, self.timeout),
            self.prober.fetch(&t.green, self.timeout),
            self.prober.fetch(&t.live, self.timeout),
            self.prober.fetch(&t.idle, self.timeout),
        );
        // Read after the probes, so a switch during the round is judged
        // against the color it switched to.
        let (live_expect, idle_expect) = expectations(&read_live(&self.live_file));
        vec![
            judge(
                Target::BlueDirect,
                t.blue.as_str(),
                &blue,
                &Expect::Anything,
                self.threshold,
            ),
            judge(
                Target::GreenDirect,
                t.green.as_str(),
                &green,
                &Expect::Anything,
                self.threshold,
            ),
            judge(
                Target::LiveProxy,
                t.live.as_str(),
                &live,
                &live_expect,
                self.threshold,
            ),
            judge(
                Target::IdleProxy,
                t.idle.as_str(),
                &idle,
                &idle_expect,
                self.threshold,
            ),
        ]
    }
}

/// Logs the [`seed_line`] of every result in `$results` (`&[ProbeResult]`)
/// under `$target` (a literal, as `tracing` wants): `info` when the probe
/// passed, `warn` when it failed. A macro so that each binary keeps its own
/// log target (`bgw_checker::probe`, `bgw_prober::probe`).
#[macro_export]
macro_rules! log_seed_lines {
    ($target:literal, $results:expr, $threshold:expr) => {
        for r in $results {
            let line = $crate::round::seed_line(r, $threshold);
            if r.ok {
                ::tracing::info!(target: $target, "{line}");
            } else {
                ::tracing::warn!(target: $target, "{line}");
            }
        }
    };
}

/// The seed-style line for one result (the same words the watchdog writes to
/// its log file), for the checker's own stderr.
pub fn seed_line(r: &ProbeResult, threshold: Duration) -> String {
    let threshold_ms = threshold.as_millis();
    let latency = r.latency_ms.unwrap_or(0);
    let error = r.error.as_deref().unwrap_or("failed");
    let answered_well = r.status.is_some_and(|s| (200..300).contains(&s));
    if r.ok {
        format!(
            "[{} - OK] {latency}ms. Threshold: {threshold_ms}ms",
            r.target
        )
    } else if answered_well && error.starts_with("latency ") {
        format!(
            "WARNING: {} taking too long to respond! {latency}ms. Threshold: {threshold_ms}ms",
            r.target
        )
    } else if answered_well {
        format!("ALERT: {} failing! {error}", r.target)
    } else {
        format!("ALERT: {} not responding! {error}", r.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_file_with_a_color_and_a_newline_is_that_color() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("live");
        std::fs::write(&p, "green\n").unwrap();
        assert_eq!(read_live(&p), Live::Color(Color::Green));
    }

    #[test]
    fn live_file_with_garbage_is_undefined_and_quotes_it() {
        let p = Path::new("/var/live");
        assert_eq!(
            live_from(p, "purple\n"),
            Live::Undefined("live color undefined (live_file /var/live holds \"purple\")".into())
        );
        assert_eq!(
            live_from(p, ""),
            Live::Undefined("live color undefined (live_file /var/live holds \"\")".into())
        );
    }

    #[test]
    fn a_missing_live_file_is_undefined_with_the_io_error() {
        let Live::Undefined(reason) = read_live(Path::new("/nonexistent/live")) else {
            panic!("expected undefined");
        };
        assert!(
            reason.starts_with("live color undefined (cannot read live_file /nonexistent/live:"),
            "{reason}"
        );
    }

    #[test]
    fn live_blue_expects_blue_on_live_and_green_on_idle() {
        let (l, i) = expectations(&Live::Color(Color::Blue));
        assert_eq!(
            l,
            Expect::Served {
                color: Color::Blue,
                role: "live"
            }
        );
        assert_eq!(
            i,
            Expect::Served {
                color: Color::Green,
                role: "idle"
            }
        );
    }

    #[test]
    fn undefined_live_fails_the_live_port_only() {
        let (l, i) = expectations(&Live::Undefined("why".into()));
        assert_eq!(
            l,
            Expect::Unknown {
                reason: "why".into()
            }
        );
        assert_eq!(i, Expect::Anything);
    }

    #[test]
    fn seed_lines_match_the_watchdog_log_style() {
        let mut r = ProbeResult {
            target: Target::BlueDirect,
            color: Some(Color::Blue),
            url: "http://127.0.0.1:3000/ping".into(),
            ok: true,
            status: Some(200),
            latency_ms: Some(3),
            error: None,
        };
        let t = Duration::from_millis(2000);
        assert_eq!(
            seed_line(&r, t),
            "[blue-direct - OK] 3ms. Threshold: 2000ms"
        );
        r.ok = false;
        r.latency_ms = Some(2350);
        r.error = Some("latency 2350ms over threshold 2000ms".into());
        assert_eq!(
            seed_line(&r, t),
            "WARNING: blue-direct taking too long to respond! 2350ms. Threshold: 2000ms"
        );
        r.status = None;
        r.error = Some("connection refused".into());
        assert_eq!(
            seed_line(&r, t),
            "ALERT: blue-direct not responding! connection refused"
        );
        r.status = Some(200);
        r.error = Some("served by green, live is blue".into());
        assert_eq!(
            seed_line(&r, t),
            "ALERT: blue-direct failing! served by green, live is blue"
        );
    }
}
