//! The whole system on loopback, for the blue/green control tests and the
//! rollback benchmark: a real nginx in front of two `bgw-testapp`s (blue and
//! green), the real `bgw-watchdog serve` with `[proxy]` pointing at that
//! nginx and `[rollback]` as given, a real `bgw-agent` beside each app and a
//! real `bgw-checker` probing both colors and both nginx ports. Everything
//! is stopped on drop.

use crate::nginx::{served_by, Fixture};
use crate::watchdog::{spawn_watchdog_with, Watchdog, ADMIN, CHECKER_TOKEN};
use anyhow::{bail, Context};
use bgw_watchdog::proxy::{ProxySettings, SwitchMode};
use bgw_wire::Color;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const GREEN_TOKEN: &str = "green-token-0123456789";

/// Timings and policy of a [`System`]; the defaults are short (period 1s,
/// grace 1s, fail_after 2, agents every 300ms, checker every 300ms).
#[derive(Debug, Clone)]
pub struct Options {
    /// Period of the service and reporter checks.
    pub period: &'static str,
    pub grace: &'static str,
    pub agent_interval: &'static str,
    pub checker_interval: &'static str,
    /// The `[rollback]` section's body (TOML lines).
    pub rollback: String,
    /// `proxy.template`: `None` is the builtin one; `Some(text)` is written
    /// to `template.conf` next to the live file and used.
    pub template: Option<String>,
    /// More `[[check]]` entries (e.g. the prober's reporter check).
    pub extra_checks: String,
    /// More tables appended to the configuration (e.g. `[notify.slack]`).
    pub extra_tables: String,
    /// The watchdog's `proxy.mode`. nginx starts on the `reload`-mode config
    /// either way, so in `live` mode the watchdog installs its config at
    /// start, as after an upgrade.
    pub mode: SwitchMode,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            period: "1s",
            grace: "1s",
            agent_interval: "300ms",
            checker_interval: "300ms",
            rollback: Options::rollback_with(""),
            template: None,
            extra_checks: String::new(),
            extra_tables: String::new(),
            mode: SwitchMode::Reload,
        }
    }
}

impl Options {
    /// `window = "5m"`, `cooldown = "0s"`, `quorum = 2`, `fail_after = 2`,
    /// then `more` (which may repeat a key: the last one wins is NOT TOML,
    /// so `more` must only hold other keys).
    pub fn rollback_with(more: &str) -> String {
        let mut keys = vec![
            ("window", "\"5m\""),
            ("cooldown", "\"0s\""),
            ("quorum", "2"),
            ("fail_after", "2"),
        ];
        let extra: Vec<(String, String)> = more
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        keys.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        let mut out: Vec<String> = keys.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        out.extend(extra.iter().map(|(k, v)| format!("{k} = {v}")));
        out.join("\n")
    }
}

/// A child process killed on drop.
pub struct Proc(Child);

impl Proc {
    pub fn new(child: Child) -> Proc {
        Proc(child)
    }

    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// nginx, blue and green, the watchdog, two agents and the checker.
pub struct System {
    pub agents: Vec<Proc>,
    /// `None` once stopped with [`System::stop_checker`].
    pub checker: Option<Proc>,
    pub watchdog: Watchdog,
    pub fixture: Fixture,
    /// The watchdog's `[proxy]` settings (the fixture's, plus the options').
    pub proxy: ProxySettings,
}

fn bin(name: &str) -> std::path::PathBuf {
    crate::bin(name)
}

fn checks(o: &Options) -> String {
    color_checks(o.period, o.grace)
}

/// The checks of the original topology: `blue` and `green` services and
/// the `checker` reporter, all with `period` and `grace`.
pub fn color_checks(period: &str, grace: &str) -> String {
    format!(
        r#"
[[check]]
name = "blue"
kind = "service"
color = "blue"
period = "{period}"
grace = "{grace}"
token = "{blue}"

[[check]]
name = "green"
kind = "service"
color = "green"
period = "{period}"
grace = "{grace}"
token = "{GREEN_TOKEN}"

[[check]]
name = "checker"
kind = "reporter"
period = "{period}"
grace = "{grace}"
token = "{CHECKER_TOKEN}"
"#,
        blue = crate::watchdog::BLUE_TOKEN,
    )
}

impl System {
    /// Starts everything (blue live) and waits until both services are up
    /// and the checker has reported.
    pub async fn start(o: Options) -> anyhow::Result<System> {
        let fixture = Fixture::start(&bin("bgw-testapp")).await?;
        let mut proxy = fixture.settings.clone();
        proxy.deploy_cmd = "echo deploying {image} to {color}".into();
        proxy.scale_cmd = "echo scaling {color} to {n}".into();
        proxy.verify_timeout = Duration::from_secs(5).into();
        if o.mode == SwitchMode::Live {
            proxy.mode = SwitchMode::Live;
            proxy.control_listen = crate::nginx::free_port();
        }
        if let Some(text) = &o.template {
            let path = fixture.path().join("template.conf");
            std::fs::write(&path, text)?;
            proxy.template = path.display().to_string();
        }
        let extra = format!(
            "startup_grace = \"1s\"\n[proxy]\n{}\n[rollback]\n{}\n{}\n",
            toml::to_string(&proxy)?,
            o.rollback,
            o.extra_tables
        );
        let watchdog =
            spawn_watchdog_with(&format!("{}\n{}", checks(&o), o.extra_checks), &extra).await;
        let agent = |color: Color, port: u16, token: &str| -> anyhow::Result<Proc> {
            let child = Command::new(bin("bgw-agent"))
                .args(["--watchdog-url", &watchdog.base])
                .args(["--check", color.as_str()])
                .args(["--token", token])
                .args(["--color", color.as_str()])
                .args(["--instance", &format!("{color}-1")])
                .args(["--interval", o.agent_interval])
                .args(["--app-url", &format!("http://127.0.0.1:{port}/ping")])
                .args(["--timeout", "1s"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("start bgw-agent")?;
            Ok(Proc(child))
        };
        let agents = vec![
            agent(Color::Blue, fixture.blue.port, crate::watchdog::BLUE_TOKEN)?,
            agent(Color::Green, fixture.green.port, GREEN_TOKEN)?,
        ];
        let s = &fixture.settings;
        let checker = Command::new(bin("bgw-checker"))
            .args(["--watchdog-url", &watchdog.base])
            .args(["--token", CHECKER_TOKEN])
            .args(["--blue", &format!("127.0.0.1:{}", fixture.blue.port)])
            .args(["--green", &format!("127.0.0.1:{}", fixture.green.port)])
            .args(["--proxy", "127.0.0.1"])
            .args(["--live-listen", &s.live_listen.to_string()])
            .args(["--idle-listen", &s.idle_listen.to_string()])
            .arg("--live-file")
            .arg(&s.live_file)
            .args(["--interval", o.checker_interval])
            .args(["--timeout", "1s"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start bgw-checker")?;
        let system = System {
            agents,
            checker: Some(Proc(checker)),
            watchdog,
            fixture,
            proxy,
        };
        for check in ["blue", "green", "checker"] {
            system.watchdog.wait_state(check, "up").await;
        }
        Ok(system)
    }

    /// Kills the checker (its reporter check goes late, then down).
    pub fn stop_checker(&mut self) {
        self.checker = None;
    }

    pub fn live_file(&self) -> &Path {
        &self.fixture.settings.live_file
    }

    pub fn live_port(&self) -> u16 {
        self.fixture.settings.live_listen
    }

    /// Runs `bgw-watchdog --config <the watchdog's config> args...` (the
    /// operator's CLI) and returns its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin("bgw-watchdog"))
            .arg("--config")
            .arg(self.watchdog.config_path())
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run bgw-watchdog")
    }

    /// Events of `kind`, oldest first.
    pub async fn events_of(&self, kind: &str) -> Vec<Value> {
        self.watchdog
            .events()
            .await
            .into_iter()
            .filter(|e| e["kind"] == kind)
            .collect()
    }

    /// Polls (up to `limit`) until an event of `kind` exists; returns the first.
    pub async fn wait_event(&self, kind: &str, limit: Duration) -> anyhow::Result<Value> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(e) = self.events_of(kind).await.into_iter().next() {
                return Ok(e);
            }
            if Instant::now() > deadline {
                bail!("no {kind} event within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls (up to `limit`) until there are at least `n` events of `kind`.
    pub async fn wait_events(
        &self,
        kind: &str,
        n: usize,
        limit: Duration,
    ) -> anyhow::Result<Vec<Value>> {
        let deadline = Instant::now() + limit;
        loop {
            let found = self.events_of(kind).await;
            if found.len() >= n {
                return Ok(found);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} {kind} events within {limit:?}, expected {n}",
                    found.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls (up to `limit`) until the live port answers from `color` three
    /// times in a row on new connections.
    pub async fn wait_served_by(&self, color: Color, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        let mut in_a_row = 0;
        let mut last = None;
        while in_a_row < 3 {
            if Instant::now() > deadline {
                bail!("the live port is not served by {color} within {limit:?} (last: {last:?})");
            }
            last = served_by(self.live_port()).await;
            if last.as_deref() == Some(color.as_str()) {
                in_a_row += 1;
            } else {
                in_a_row = 0;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Ok(())
    }

    /// `GET /api/v1/rollback`.
    pub async fn rollback_status(&self) -> Value {
        let (status, body) = self.watchdog.admin_get("/api/v1/rollback").await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The admin token of the watchdog (for raw requests).
    pub fn admin_token(&self) -> &'static str {
        ADMIN
    }
}
