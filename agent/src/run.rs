//! The agent's life: probe the app and send a heartbeat every `interval`,
//! and react at once to the child's death (wrapper mode) and to
//! SIGTERM/SIGINT. One current-thread task; the probe-and-send round is a
//! future polled beside the child and the signals, so a slow watchdog never
//! delays the crash report or the shutdown.

use crate::child::{self, Signal};
use crate::log;
use crate::probe;
use crate::sender::{Delivery, Level, Link, Sender};
use crate::settings::Settings;
use bgw_wire::{Backoff, Heartbeat, HeartbeatStatus, HumanDuration};
use std::ffi::OsString;
use std::future::{pending, Future};
use std::pin::Pin;
use std::time::Duration;
use tokio::process::Child;
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::Instant;

/// How often the app is probed at start while it is not answering yet.
const STARTUP_POLL: Duration = Duration::from_millis(200);
/// Budget for `stopping`: a planned stop must not wait on the watchdog.
const STOPPING_BUDGET: Duration = Duration::from_secs(1);
/// Budget for the `fail` sent when the child dies, before the agent exits.
const FAIL_BUDGET: Duration = Duration::from_secs(3);

/// Runs until SIGTERM/SIGINT (sidecar: exit code 0) or until the child
/// exits (wrapper: its code). Never returns early on watchdog errors.
pub async fn run(settings: Settings, command: Vec<OsString>) -> i32 {
    let agent = match Agent::new(settings) {
        Ok(agent) => agent,
        Err(e) => {
            log::error(format!("cannot set up the HTTP client: {e}"));
            return 1;
        }
    };
    let mut signals = match Signals::new(!command.is_empty()) {
        Ok(s) => s,
        Err(e) => {
            log::error(format!("cannot install signal handlers: {e}"));
            return 1;
        }
    };
    let s = &agent.settings;
    log::info(format!(
        "bgw-agent {} started: check `{}`, instance `{}`{}; probing {} every {}; heartbeats to {}{}",
        env!("CARGO_PKG_VERSION"),
        s.check,
        s.instance,
        s.color.map(|c| format!(", color {c}")).unwrap_or_default(),
        s.app_url,
        HumanDuration(s.interval),
        s.heartbeat_url(),
        match command.first() {
            Some(program) => format!("; wrapping `{}`", program.to_string_lossy()),
            None => String::new(),
        }
    ));
    let child = match command.is_empty() {
        true => None,
        false => match child::spawn(&command) {
            Ok(c) => Some(c),
            Err(e) => {
                let detail = format!("app failed to start: {}: {e}", command[0].to_string_lossy());
                log::error(&detail);
                agent
                    .last_word(HeartbeatStatus::Fail, detail, 1, FAIL_BUDGET)
                    .await;
                return child::spawn_failure_code(&e);
            }
        },
    };
    agent.serve(child, &mut signals).await
}

struct Agent {
    settings: Settings,
    probe_client: reqwest::Client,
    sender: Sender,
    /// `GET /ping`, for details.
    target: String,
    /// `host:port` of the watchdog, for log lines.
    watchdog: String,
}

impl Agent {
    fn new(settings: Settings) -> reqwest::Result<Agent> {
        let probe_client = reqwest::Client::builder()
            .user_agent(concat!("bgw-agent/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .pool_max_idle_per_host(1)
            .build()?;
        let sender = Sender::new(&settings)?;
        let target = probe::target(&settings.app_url);
        let url = &settings.watchdog_url;
        let watchdog = format!(
            "{}:{}",
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(0)
        );
        Ok(Agent {
            settings,
            probe_client,
            sender,
            target,
            watchdog,
        })
    }

    fn heartbeat(&self, status: HeartbeatStatus, detail: String, seq: u64) -> Heartbeat {
        Heartbeat {
            check: self.settings.check.clone(),
            instance: self.settings.instance.clone(),
            color: self.settings.color,
            version: self.settings.version.clone(),
            status,
            seq,
            interval: Some(HumanDuration(self.settings.interval)),
            detail: Some(detail),
        }
    }

    /// Timeout of a regular heartbeat: the interval, within 1 s to 10 s.
    fn send_timeout(&self) -> Duration {
        self.settings
            .interval
            .clamp(Duration::from_secs(1), Duration::from_secs(10))
    }

    /// One probe and one heartbeat numbered `seq`. While `starting`, a bad
    /// probe sends nothing (`None`): the app gets one interval to come up.
    async fn round(&self, seq: u64, starting: bool) -> Option<Delivery> {
        let outcome = probe::probe(
            &self.probe_client,
            &self.settings.app_url,
            self.settings.timeout,
        )
        .await;
        let (status, detail) = probe::assess(&self.target, &outcome);
        if starting && status != HeartbeatStatus::Ok {
            return None;
        }
        let heartbeat = self.heartbeat(status, detail, seq);
        Some(self.sender.send(&heartbeat, self.send_timeout()).await)
    }

    /// Sends a final `fail` or `stopping` within `budget`, retrying quickly
    /// while the watchdog is unreachable; gives up (with one log line) rather
    /// than hold up the exit.
    async fn last_word(&self, status: HeartbeatStatus, detail: String, seq: u64, budget: Duration) {
        let deadline = Instant::now() + budget;
        let heartbeat = self.heartbeat(status, detail, seq);
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(500));
        let mut reason = "no answer in time".to_string();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::warn(format!(
                    "could not send `{}` to the watchdog ({}): {reason}",
                    status.as_str(),
                    self.watchdog
                ));
                return;
            }
            match self.sender.send(&heartbeat, left).await {
                Delivery::Accepted => return,
                Delivery::Rejected {
                    status: code,
                    error,
                } => {
                    log::error(format!(
                        "watchdog rejected `{}` with {code}: {error}",
                        status.as_str()
                    ));
                    return;
                }
                Delivery::Unreachable(why) => reason = why,
            }
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(backoff.next_delay().min(left)).await;
        }
    }

    /// The main loop.
    async fn serve(&self, mut child: Option<Child>, signals: &mut Signals) -> i32 {
        let interval = self.settings.interval;
        let mut link = Link::new(self.watchdog.clone(), interval);
        let started = Instant::now();
        let mut starting = true;
        let mut seq: u64 = 0;
        let mut next = started;
        let mut round_started = started;
        let mut round: Option<Pin<Box<dyn Future<Output = Option<Delivery>> + '_>>> = None;
        loop {
            tokio::select! {
                _ = signals.term.recv() => {
                    let seq = next_seq(seq, round.take());
                    return self.shutdown(child, Signal::TERM, "SIGTERM", seq, signals).await;
                }
                _ = signals.int.recv() => {
                    let seq = next_seq(seq, round.take());
                    return self.shutdown(child, Signal::INT, "SIGINT", seq, signals).await;
                }
                Some(sig) = signals.passthrough.next() => {
                    if let Some(c) = &child {
                        child::forward(c, sig);
                    }
                }
                status = wait(&mut child) => {
                    let seq = next_seq(seq, round.take());
                    return self.child_died(status, seq).await;
                }
                result = poll(&mut round) => {
                    round = None;
                    let now = Instant::now();
                    match result {
                        None => next = (now + STARTUP_POLL).min(started + interval),
                        Some(delivery) => {
                            seq += 1;
                            starting = false;
                            let (wait, logs) = link.record(&delivery, now.into_std());
                            for (level, line) in logs {
                                match level {
                                    Level::Info => log::info(line),
                                    Level::Warn => log::warn(line),
                                    Level::Error => log::error(line),
                                }
                            }
                            // Steady cadence: count from the start of the round.
                            next = (round_started + wait).max(now);
                        }
                    }
                }
                _ = tokio::time::sleep_until(next), if round.is_none() => {
                    round_started = Instant::now();
                    starting = starting && round_started < started + interval;
                    round = Some(Box::pin(self.round(seq + 1, starting)));
                }
            }
        }
    }

    /// The child exited on its own: `fail` at once, then its exit code.
    async fn child_died(&self, status: std::io::Result<std::process::ExitStatus>, seq: u64) -> i32 {
        let (detail, code) = match status {
            Ok(status) => (child::describe_exit(status), child::exit_code(status)),
            Err(e) => (format!("app lost: cannot wait for it: {e}"), 1),
        };
        log::warn(format!(
            "{detail}; sending `fail` and exiting with code {code}"
        ));
        self.last_word(HeartbeatStatus::Fail, detail, seq, FAIL_BUDGET)
            .await;
        code
    }

    /// SIGTERM/SIGINT: `stopping`, then the signal to the child, then its code.
    async fn shutdown(
        &self,
        child: Option<Child>,
        sig: Signal,
        name: &str,
        seq: u64,
        signals: &mut Signals,
    ) -> i32 {
        log::info(format!("{name} received: sending `stopping`"));
        self.last_word(
            HeartbeatStatus::Stopping,
            format!("{name} received"),
            seq,
            STOPPING_BUDGET,
        )
        .await;
        let Some(mut child) = child else {
            return 0;
        };
        child::forward(&child, sig);
        loop {
            tokio::select! {
                status = child.wait() => {
                    return match status {
                        Ok(status) => {
                            let code = child::exit_code(status);
                            log::info(format!("{} after {name}; exiting with code {code}", child::describe_exit(status)));
                            code
                        }
                        Err(e) => {
                            log::error(format!("cannot wait for the app: {e}"));
                            1
                        }
                    };
                }
                _ = signals.term.recv() => child::forward(&child, Signal::TERM),
                _ = signals.int.recv() => child::forward(&child, Signal::INT),
                Some(sig) = signals.passthrough.next() => child::forward(&child, sig),
            }
        }
    }
}

/// The `seq` of a final heartbeat. A round cut short may already have
/// delivered `seq + 1`; the final word must not look like its retry.
fn next_seq<T>(seq: u64, cut_short: Option<T>) -> u64 {
    match cut_short {
        Some(_) => seq + 2,
        None => seq + 1,
    }
}

/// Waits for the child, or forever in sidecar mode.
async fn wait(child: &mut Option<Child>) -> std::io::Result<std::process::ExitStatus> {
    match child {
        Some(c) => c.wait().await,
        None => pending().await,
    }
}

/// Polls the round in flight, or waits forever when there is none.
async fn poll<T>(round: &mut Option<Pin<Box<dyn Future<Output = T> + '_>>>) -> T {
    match round {
        Some(f) => f.as_mut().await,
        None => pending().await,
    }
}

/// The signals the agent handles. SIGHUP, SIGUSR1 and SIGUSR2 are only
/// caught in wrapper mode, to pass them to the app.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    passthrough: Passthrough,
}

/// Signals only forwarded to the child.
struct Passthrough(Vec<(tokio::signal::unix::Signal, Signal)>);

impl Signals {
    fn new(wrapper: bool) -> std::io::Result<Signals> {
        let mut passthrough = Vec::new();
        if wrapper {
            for (kind, sig) in [
                (SignalKind::hangup(), Signal::HUP),
                (SignalKind::user_defined1(), Signal::USR1),
                (SignalKind::user_defined2(), Signal::USR2),
            ] {
                passthrough.push((signal(kind)?, sig));
            }
        }
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            passthrough: Passthrough(passthrough),
        })
    }
}

impl Passthrough {
    /// The next pass-through signal received (never, in sidecar mode).
    async fn next(&mut self) -> Option<Signal> {
        if self.0.is_empty() {
            return pending().await;
        }
        std::future::poll_fn(|cx| {
            for (stream, sig) in &mut self.0 {
                if let std::task::Poll::Ready(Some(())) = stream.poll_recv(cx) {
                    return std::task::Poll::Ready(Some(*sig));
                }
            }
            std::task::Poll::Pending
        })
        .await
    }
}
