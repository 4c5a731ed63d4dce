//! One blue/green switch, in the contract's order, serialized by a lock:
//!
//! 1. render the config for the new live color;
//! 2. write it atomically (the previous bytes are kept in memory);
//! 3. run `test_cmd`; on failure put the previous config back and stop:
//!    the live file is not touched;
//! 4. write the live file; on failure put the previous config back;
//! 5. run `reload_cmd`; on failure put the previous config and live file
//!    back and run `reload_cmd` again, so nginx serves what it served;
//! 6. verify through the proxy: poll the live port until `X-Bgw-Color`
//!    names the new color (nginx reloads asynchronously).
//!
//! A failed verification is an error but the new config stays: nginx
//! accepted it and reloaded, so the old one is no safer than the new one,
//! and the files must keep telling the truth about what nginx was told to
//! serve. The caller alerts; the checker keeps watching the live port.
//!
//! In `live` mode (`proxy.mode = "live"`) the config holds both colors and
//! never changes at a switch; [`Switcher::install`] renders, tests and
//! reloads it once, at the watchdog's start, when it differs from the file.
//! A switch then changes no worker, no connection and no config file:
//!
//! 1. write the live file (nginx reads it when it starts);
//! 2. `PUT` the color to nginx's loopback control location, which sets it
//!    in the shared dictionary every worker reads per request; on failure
//!    the live file and (best effort) the previous color are put back;
//! 3. verify through the proxy as above; on failure the previous color is
//!    put back in nginx and in the live file (it costs nothing here, unlike
//!    a second reload).

use super::command::{run_command, CommandOutcome};
use super::live::{read_live, read_optional, restore_file, write_atomic, write_live, LiveState};
use super::memory::{get_color, set_color, ControlCall};
use super::render::{render, RenderError};
use super::settings::{ProxyConfigError, ProxySettings, SwitchMode};
use bgw_wire::{Color, COLOR_HEADER};
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, MutexGuard};

/// Answers in a row from the new color that verify a switch.
pub const VERIFY_IN_A_ROW: u32 = 3;

/// The step of a switch, for events and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Render,
    Write,
    Test,
    LiveFile,
    Reload,
    /// `live` mode: setting the color through nginx's control location.
    Control,
    Verify,
    /// The runtime shut down while the switch task ran.
    Interrupted,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Render => "render",
            Step::Write => "write",
            Step::Test => "test",
            Step::LiveFile => "live_file",
            Step::Reload => "reload",
            Step::Control => "control",
            Step::Verify => "verify",
            Step::Interrupted => "interrupted",
        })
    }
}

/// Why a switch failed, by step, with the captured command output. Every
/// variant except `Verify` means the previous config and live file are in
/// place again (a restore that itself failed is reported in `restore`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SwitchError {
    #[error("switch to {to} failed at render: {error}")]
    Render { to: Color, error: RenderError },
    #[error("switch to {to} failed at write: cannot write {}: {error}", path.display())]
    Write {
        to: Color,
        path: PathBuf,
        error: String,
    },
    #[error("switch to {to} failed at test: {}; previous config restored{}", outcome.summary(), restore_note(restore))]
    Test {
        to: Color,
        outcome: CommandOutcome,
        restore: Option<String>,
    },
    #[error("switch to {to} failed at live_file: {}: {error}; previous config restored{}", path.display(), restore_note(restore))]
    LiveFile {
        to: Color,
        path: PathBuf,
        error: String,
        restore: Option<String>,
    },
    #[error("switch to {to} failed at reload: {}; previous config and live file restored{}", outcome.summary(), restore_note(restore))]
    Reload {
        to: Color,
        outcome: CommandOutcome,
        /// The reload run after restoring, to make nginx serve the old config.
        reload_back: Option<CommandOutcome>,
        restore: Option<String>,
    },
    #[error(
        "switch to {to} failed at control: {display}: {error}; previous live file restored{}",
        restore_note(restore)
    )]
    Control {
        to: Color,
        /// The request made, e.g. `PUT http://127.0.0.1:8081/bgw/live green`.
        display: String,
        error: String,
        restore: Option<String>,
    },
    #[error("switch to {to} failed at verify: {url} still answered {seen} after {}; the previous color is live again{}", bgw_wire::format_duration(*waited), restore_note(restore))]
    LiveVerify {
        to: Color,
        url: String,
        seen: String,
        waited: Duration,
        restore: Option<String>,
    },
    #[error("switch to {to} was interrupted: the runtime is shutting down")]
    Interrupted { to: Color },
    #[error("switch to {to} failed at verify: {url} still answered {seen} after {}; nginx accepted the new config, which stays", bgw_wire::format_duration(*waited))]
    Verify {
        to: Color,
        url: String,
        seen: String,
        waited: Duration,
        reload: CommandOutcome,
    },
}

/// The `test` of a live switch: nothing was written, so nothing was tested.
fn not_tested() -> CommandOutcome {
    CommandOutcome {
        ok: true,
        exit_code: Some(0),
        output: String::new(),
        timed_out: false,
        display: "(live mode: no config written, nothing to test)".to_string(),
        duration: Duration::ZERO,
    }
}

fn restore_note(restore: &Option<String>) -> String {
    match restore {
        None => String::new(),
        Some(e) => format!(" (BUT restoring failed: {e})"),
    }
}

impl SwitchError {
    pub fn step(&self) -> Step {
        match self {
            SwitchError::Render { .. } => Step::Render,
            SwitchError::Write { .. } => Step::Write,
            SwitchError::Test { .. } => Step::Test,
            SwitchError::LiveFile { .. } => Step::LiveFile,
            SwitchError::Reload { .. } => Step::Reload,
            SwitchError::Control { .. } => Step::Control,
            SwitchError::Verify { .. } | SwitchError::LiveVerify { .. } => Step::Verify,
            SwitchError::Interrupted { .. } => Step::Interrupted,
        }
    }

    /// The output of the command that failed, for the event.
    pub fn output(&self) -> Option<&str> {
        match self {
            SwitchError::Test { outcome, .. } | SwitchError::Reload { outcome, .. } => {
                Some(&outcome.output)
            }
            SwitchError::Control { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// What a successful switch did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SwitchReport {
    /// The live color before (`None` when the live file was missing or invalid).
    pub from: Option<Color>,
    pub to: Color,
    pub reason: String,
    pub started: DateTime<Utc>,
    /// How the switch reached nginx.
    pub mode: SwitchMode,
    /// `nginx -t`; in `live` mode nothing is written, so nothing is tested
    /// (an ok outcome that says so).
    pub test: CommandOutcome,
    /// The reload; in `live` mode the `PUT` to nginx's control location.
    pub reload: CommandOutcome,
    /// From the start to nginx answering from the new color.
    pub total: Duration,
    /// From the reload (or `PUT`) to the verified answer from the new color.
    pub verify: Duration,
    pub verify_attempts: u32,
}

/// Switches the live color; at most one switch (or deploy holding
/// [`Switcher::lock`]) runs at a time. Cheap to clone: make ONE per process
/// and clone it (the API, the CLI's server side and the rollback executor
/// must share its lock; two `Switcher::new` would not serialize).
#[derive(Clone)]
pub struct Switcher {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ProxySettings,
    lock: Mutex<()>,
    http: reqwest::Client,
}
impl Switcher {
    /// Validates `settings` (see [`ProxySettings::validate`]).
    pub fn new(settings: ProxySettings) -> Result<Switcher, ProxyConfigError> {
        settings.validate()?;
        let http = reqwest::Client::builder()
            .no_proxy()
            // New connection per attempt: an old worker's keep-alive
            // connection would keep answering from the old color.
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(2))
            .build()
            .expect("a plain HTTP client builds");
        Ok(Switcher {
            inner: Arc::new(Inner {
                settings,
                lock: Mutex::new(()),
                http,
            }),
        })
    }

    pub fn settings(&self) -> &ProxySettings {
        &self.inner.settings
    }

    /// What the live file says now.
    pub fn live(&self) -> LiveState {
        read_live(&self.inner.settings.live_file)
    }

    /// Takes the switch lock, so a deploy can check the live color and run
    /// without a switch changing it underneath.
    pub async fn lock(&self) -> MutexGuard<'_, ()> {
        self.inner.lock.lock().await
    }

    /// Makes `to` the live color. Switching to the color that is already
    /// live re-renders and reloads (it repairs a hand-edited config).
    ///
    /// The switch runs in its own task: it completes (or restores) even if
    /// the caller stops waiting, e.g. an HTTP client that hangs up, so it
    /// never stops half-way between two steps.
    pub async fn switch(&self, to: Color, reason: &str) -> Result<SwitchReport, SwitchError> {
        let inner = self.inner.clone();
        let reason = reason.to_string();
        match tokio::spawn(async move { inner.switch(to, &reason).await }).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(SwitchError::Interrupted { to }),
        }
    }
}

/// What [`Switcher::install`] did in `live` mode.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstallReport {
    /// `nginx -t` and the reload, when the config on disk differed from
    /// the rendered one and was replaced; `None` when it was already right.
    pub written: Option<(CommandOutcome, CommandOutcome)>,
    /// The live color nginx holds in memory now (the live file's, when it
    /// names one).
    pub live: Color,
}

impl Switcher {
    /// `live` mode: makes nginx run the live-mode config and hold the live
    /// file's color. Renders the config; when it differs from the file
    /// (first start, an upgrade, changed settings) writes it, runs
    /// `test_cmd` and `reload_cmd` (restoring the previous file on failure,
    /// as a switch does); then sets the live file's color through the
    /// control location, waiting up to `verify_timeout` for it to answer.
    /// Call it once at start; `Ok(None)` in `reload` mode, where every
    /// switch writes the config.
    pub async fn install(&self) -> Result<Option<InstallReport>, SwitchError> {
        if self.inner.settings.mode != SwitchMode::Live {
            return Ok(None);
        }
        let inner = self.inner.clone();
        match tokio::spawn(async move { inner.install().await }).await {
            Ok(result) => result.map(Some),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(SwitchError::Interrupted {
                to: self.live().color().unwrap_or(Color::Blue),
            }),
        }
    }

    /// `live` mode: the color nginx holds in memory (`GET` on the control location).
    pub async fn nginx_color(&self) -> Result<Color, String> {
        get_color(&self.inner.http, &self.inner.settings.control_url())
            .await
            .result
    }
}

impl Inner {
    async fn install(&self) -> Result<InstallReport, SwitchError> {
        let _guard = self.lock.lock().await;
        let s = &self.settings;
        let live = read_live(&s.live_file).color();
        let to = live.unwrap_or(Color::Blue);
        let config = render(s, to).map_err(|error| SwitchError::Render { to, error })?;
        let conf = s.nginx_conf.clone();
        let write_err = |e: std::io::Error| SwitchError::Write {
            to,
            path: conf.clone(),
            error: e.to_string(),
        };
        let previous = read_optional(&conf).map_err(write_err)?;
        let mut written = None;
        if previous.as_deref() != Some(config.as_bytes()) {
            tracing::info!(conf = %conf.display(), "live mode: installing the rendered nginx config");
            write_atomic(&conf, config.as_bytes()).map_err(write_err)?;
            let conf_arg = conf.display().to_string();
            let vars = [
                ("conf", conf_arg.as_str()),
                ("live", to.as_str()),
                ("idle", to.other().as_str()),
            ];
            let timeout = s.command_timeout.0;
            let test = run_command(&s.test_cmd, &vars, timeout).await;
            if !test.ok {
                let restore = restore_file(&conf, &previous).err().map(|e| e.to_string());
                return Err(SwitchError::Test {
                    to,
                    outcome: test,
                    restore,
                });
            }
            let reload = run_command(&s.reload_cmd, &vars, timeout).await;
            if !reload.ok {
                let restore = restore_file(&conf, &previous).err().map(|e| e.to_string());
                let reload_back = match &previous {
                    Some(_) => Some(run_command(&s.reload_cmd, &vars, timeout).await),
                    None => None,
                };
                return Err(SwitchError::Reload {
                    to,
                    outcome: reload,
                    reload_back,
                    restore,
                });
            }
            written = Some((test, reload));
        }
        // nginx reloads asynchronously: the control location may take a
        // moment to listen. Also repairs a live file written by a switch
        // whose PUT never reached nginx (a crash in between).
        let deadline = Instant::now() + s.verify_timeout.0.max(Duration::from_secs(1));
        let url = s.control_url();
        loop {
            let call = match live {
                Some(color) => set_color(&self.http, &url, color).await,
                None => get_color(&self.http, &url).await,
            };
            match call.result {
                Ok(held) => {
                    tracing::info!(live = %held, "live mode: nginx holds the live color");
                    return Ok(InstallReport {
                        written,
                        live: held,
                    });
                }
                Err(error) if Instant::now() >= deadline => {
                    return Err(SwitchError::Control {
                        to,
                        display: call.display,
                        error,
                        restore: None,
                    })
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// `live` mode: the live file, then nginx's memory, then the proxy.
    async fn switch_live(&self, to: Color, reason: &str) -> Result<SwitchReport, SwitchError> {
        let _guard = self.lock.lock().await;
        let s = &self.settings;
        let started = Instant::now();
        let started_at = Utc::now();
        let from = read_live(&s.live_file).color();
        tracing::info!(from = ?from, %to, reason, mode = "live", "switch: starting");
        let live_err = |e: std::io::Error, restore| SwitchError::LiveFile {
            to,
            path: s.live_file.clone(),
            error: e.to_string(),
            restore,
        };
        let previous_live = read_optional(&s.live_file).map_err(|e| live_err(e, None))?;
        write_live(&s.live_file, to).map_err(|e| live_err(e, None))?;

        let url = s.control_url();
        let set = set_color(&self.http, &url, to).await;
        if let Err(error) = &set.result {
            let restore = self.restore_live(from, &previous_live).await;
            tracing::warn!(%to, control = %set.display, %error, "switch: nginx's control location failed, previous live file restored");
            return Err(SwitchError::Control {
                to,
                display: set.display.clone(),
                error: error.clone(),
                restore,
            });
        }

        let set_at = Instant::now();
        let (attempts, verified) = self.verify(to).await;
        if let Err((url, seen)) = verified {
            let waited = set_at.elapsed();
            let restore = self.restore_live(from, &previous_live).await;
            tracing::warn!(%to, %url, %seen, "switch: live port does not answer from the new color, previous color restored");
            return Err(SwitchError::LiveVerify {
                to,
                url,
                seen,
                waited,
                restore,
            });
        }
        let report = SwitchReport {
            from,
            to,
            reason: reason.to_string(),
            started: started_at,
            mode: SwitchMode::Live,
            test: not_tested(),
            reload: set.outcome(),
            total: started.elapsed(),
            verify: set_at.elapsed(),
            verify_attempts: attempts,
        };
        tracing::info!(from = ?from, %to, total_ms = report.total.as_millis() as u64, mode = "live", "switch: done");
        Ok(report)
    }

    /// Puts the live file back and, when it named a color, that color in
    /// nginx's memory; `Some(what failed)` when either could not be done.
    async fn restore_live(
        &self,
        from: Option<Color>,
        previous: &Option<Vec<u8>>,
    ) -> Option<String> {
        let s = &self.settings;
        let mut problems = Vec::new();
        if let Err(e) = restore_file(&s.live_file, previous) {
            problems.push(format!("live file: {e}"));
        }
        if let Some(color) = from {
            let back: ControlCall = set_color(&self.http, &s.control_url(), color).await;
            if let Err(e) = back.result {
                problems.push(format!("{}: {e}", back.display));
            }
        }
        (!problems.is_empty()).then(|| problems.join("; "))
    }

    async fn switch(&self, to: Color, reason: &str) -> Result<SwitchReport, SwitchError> {
        match self.settings.mode {
            SwitchMode::Reload => self.switch_reload(to, reason).await,
            SwitchMode::Live => self.switch_live(to, reason).await,
        }
    }

    async fn switch_reload(&self, to: Color, reason: &str) -> Result<SwitchReport, SwitchError> {
        let _guard = self.lock.lock().await;
        let s = &self.settings;
        let started = Instant::now();
        let started_at = Utc::now();
        let from = read_live(&s.live_file).color();
        tracing::info!(from = ?from, %to, reason, "switch: starting");

        let config = render(s, to).map_err(|error| SwitchError::Render { to, error })?;
        let conf = s.nginx_conf.clone();
        let write_err = |path: &PathBuf, e: std::io::Error| SwitchError::Write {
            to,
            path: path.clone(),
            error: e.to_string(),
        };
        let previous_conf = read_optional(&conf).map_err(|e| write_err(&conf, e))?;
        let previous_live = read_optional(&s.live_file).map_err(|e| SwitchError::LiveFile {
            to,
            path: s.live_file.clone(),
            error: e.to_string(),
            restore: None,
        })?;
        write_atomic(&conf, config.as_bytes()).map_err(|e| write_err(&conf, e))?;

        let conf_arg = conf.display().to_string();
        let vars = [
            ("conf", conf_arg.as_str()),
            ("live", to.as_str()),
            ("idle", to.other().as_str()),
        ];
        let timeout = s.command_timeout.0;
        let test = run_command(&s.test_cmd, &vars, timeout).await;
        if !test.ok {
            let restore = restore_file(&conf, &previous_conf)
                .err()
                .map(|e| e.to_string());
            tracing::warn!(%to, test = %test.summary(), "switch: config test failed, previous config restored");
            return Err(SwitchError::Test {
                to,
                outcome: test,
                restore,
            });
        }

        if let Err(e) = write_live(&s.live_file, to) {
            let restore = restore_file(&conf, &previous_conf)
                .err()
                .map(|e| e.to_string());
            return Err(SwitchError::LiveFile {
                to,
                path: s.live_file.clone(),
                error: e.to_string(),
                restore,
            });
        }

        let reload = run_command(&s.reload_cmd, &vars, timeout).await;
        if !reload.ok {
            let mut problems = Vec::new();
            if let Err(e) = restore_file(&conf, &previous_conf) {
                problems.push(format!("config: {e}"));
            }
            if let Err(e) = restore_file(&s.live_file, &previous_live) {
                problems.push(format!("live file: {e}"));
            }
            let reload_back = match &previous_conf {
                Some(_) => Some(run_command(&s.reload_cmd, &vars, timeout).await),
                None => None,
            };
            tracing::warn!(%to, reload = %reload.summary(), "switch: reload failed, previous config and live file restored");
            return Err(SwitchError::Reload {
                to,
                outcome: reload,
                reload_back,
                restore: (!problems.is_empty()).then(|| problems.join("; ")),
            });
        }

        let reloaded = Instant::now();
        let (attempts, verified) = self.verify(to).await;
        if let Err((url, seen)) = verified {
            tracing::warn!(%to, %url, %seen, "switch: live port does not answer from the new color");
            return Err(SwitchError::Verify {
                to,
                url,
                seen,
                waited: reloaded.elapsed(),
                reload,
            });
        }
        let report = SwitchReport {
            from,
            to,
            reason: reason.to_string(),
            started: started_at,
            mode: SwitchMode::Reload,
            test,
            reload,
            total: started.elapsed(),
            verify: reloaded.elapsed(),
            verify_attempts: attempts,
        };
        tracing::info!(from = ?from, %to, total_ms = report.total.as_millis() as u64, "switch: done");
        Ok(report)
    }

    /// Polls the live port until it answers from `to` [`VERIFY_IN_A_ROW`]
    /// times in a row (an old worker that has not yet seen its shutdown
    /// signal may still accept a connection or two); `Err((url, what it
    /// saw last))` when the verify timeout passes first.
    async fn verify(&self, to: Color) -> (u32, Result<(), (String, String)>) {
        let url = self.settings.verify_url();
        let limit = self.settings.verify_timeout.0;
        if limit.is_zero() {
            return (0, Ok(()));
        }
        // No old worker can answer in live mode: no pause between answers.
        let pause = match self.settings.mode {
            SwitchMode::Reload => Duration::from_millis(20),
            SwitchMode::Live => Duration::ZERO,
        };
        let deadline = Instant::now() + limit;
        let mut attempts = 0;
        let mut in_a_row = 0;
        loop {
            attempts += 1;
            let seen = match self.http.get(&url).send().await {
                Ok(resp) => {
                    let color = resp
                        .headers()
                        .get(COLOR_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    if color.as_deref() == Some(to.as_str()) {
                        in_a_row += 1;
                        if in_a_row >= VERIFY_IN_A_ROW {
                            return (attempts, Ok(()));
                        }
                        tokio::time::sleep(pause).await;
                        continue;
                    }
                    in_a_row = 0;
                    match color {
                        Some(c) => format!("{COLOR_HEADER}: {c} ({})", resp.status()),
                        None => format!("no {COLOR_HEADER} header ({})", resp.status()),
                    }
                }
                Err(e) => {
                    in_a_row = 0;
                    format!("an error: {e}")
                }
            };
            if Instant::now() >= deadline {
                return (attempts, Err((url, seen)));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
