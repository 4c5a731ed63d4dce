//! One round of the checker: read `live_file`, probe the four targets at
//! once, and judge each against the color it must be served by.

use crate::settings::Settings;
use bgw_reporter::live::{read_live, LiveState};
use bgw_reporter::probe::{judge, Expect, HttpProber};
use bgw_wire::{ProbeResult, Target};
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

/// The color the live and the idle port must be served by, as `live_file`
/// (at `path`) says. With the live color undefined the live port fails with
/// the reason (`live color undefined (...)`); the idle port is then judged on
/// its answer alone (there is no idle color to hold it to).
pub fn expectations(live: &LiveState, path: &Path) -> (Expect, Expect) {
    match live {
        LiveState::Live(c) => (
            Expect::Served {
                color: *c,
                role: "live",
            },
            Expect::Served {
                color: c.other(),
                role: "idle",
            },
        ),
        LiveState::Missing | LiveState::Invalid(_) => (
            Expect::Unknown {
                reason: format!(
                    "live color undefined ({})",
                    live.why_undefined(path).unwrap_or_default()
                ),
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
        let (live_expect, idle_expect) = expectations(&read_live(&self.live_file), &self.live_file);
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

#[cfg(test)]
mod tests {
    use super::*;
    use bgw_reporter::live::parse_live;
    use bgw_wire::Color;

    #[test]
    fn live_file_with_garbage_fails_the_live_port_and_quotes_it() {
        let p = Path::new("/var/live");
        let (l, i) = expectations(&parse_live(p, "purple\n"), p);
        assert_eq!(
            l,
            Expect::Unknown {
                reason: "live color undefined (live_file /var/live holds \"purple\")".into()
            }
        );
        assert_eq!(i, Expect::Anything);
        let (l, _) = expectations(&parse_live(p, ""), p);
        assert_eq!(
            l,
            Expect::Unknown {
                reason: "live color undefined (live_file /var/live holds \"\")".into()
            }
        );
    }

    #[test]
    fn a_missing_live_file_is_undefined_and_says_it_cannot_be_read() {
        let p = Path::new("/nonexistent/live");
        let (Expect::Unknown { reason }, _) = expectations(&read_live(p), p) else {
            panic!("expected undefined");
        };
        assert!(
            reason.starts_with("live color undefined (cannot read live_file /nonexistent/live:"),
            "{reason}"
        );
    }

    #[test]
    fn live_blue_expects_blue_on_live_and_green_on_idle() {
        let (l, i) = expectations(&LiveState::Live(Color::Blue), Path::new("/var/live"));
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
        let (l, i) = expectations(&LiveState::Invalid("why".into()), Path::new("/var/live"));
        assert_eq!(
            l,
            Expect::Unknown {
                reason: "live color undefined (why)".into()
            }
        );
        assert_eq!(i, Expect::Anything);
    }
}
