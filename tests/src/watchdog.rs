//! `spawn_watchdog()`: the real `bgw-watchdog serve` binary on a free
//! loopback port with a fresh SQLite file and log dir, and typed helpers
//! to talk to it. Processes are killed on drop.
//!
//! `spawn_app()`: the same watchdog in-process (`bgw_watchdog::run_with` in
//! the test's runtime, on a listener bound to port 0) with a manual clock
//! the test moves with [`Watchdog::advance`]: deadlines pass exactly when
//! the test says so, and no test sleeps to wait for them.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN: &str = "admin-token-0123456789";
pub const BLUE_TOKEN: &str = "blue-token-0123456789";
pub const CHECKER_TOKEN: &str = "checker-token-0123456789";
pub const JOB_UUID: &str = "5f0c8a56-1b2c-4d3e-8f90-0123456789ab";

/// A config with a blue service, a periodic job and a checker reporter.
pub fn default_checks(period: &str, grace: &str) -> String {
    format!(
        r#"
[[check]]
name = "blue"
kind = "service"
color = "blue"
period = "{period}"
grace = "{grace}"
token = "{BLUE_TOKEN}"

[[check]]
name = "job"
kind = "heartbeat"
uuid = "{JOB_UUID}"
period = "{period}"
grace = "{grace}"

[[check]]
name = "checker"
kind = "reporter"
period = "{period}"
grace = "{grace}"
token = "{CHECKER_TOKEN}"
"#
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Watchdog {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub base: String,
    pub http: reqwest::Client,
    checks: String,
    extra: String,
    /// Hard and soft open-file limit of the process (`ulimit -n`), if set.
    pub nofile: Option<u64>,
    /// Whether the config sets `admin_token` (else the watchdog generates one).
    pub with_admin_token: bool,
    /// The host part of `listen` (`127.0.0.1`, or `[::]`).
    pub listen_host: String,
    child: Option<Child>,
    app: Option<InProcess>,
    /// The watchdog's clock, for `spawn_app` watchdogs.
    pub clock: Option<bgw_watchdog::clock::ManualClock>,
    /// Where the database lives, if not in `dir` (a small file system).
    pub database: Option<PathBuf>,
}

/// A watchdog running in the test's runtime.
struct InProcess {
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

pub async fn spawn_watchdog(checks: &str) -> Watchdog {
    spawn_watchdog_with(checks, "").await
}

/// `extra` goes at the top of the config (top-level keys).
pub async fn spawn_watchdog_with(checks: &str, extra: &str) -> Watchdog {
    spawn_watchdog_adjusted(checks, extra, |_| {}).await
}

/// [`spawn_watchdog_with`] on a given port (for clients started before it).
pub async fn spawn_watchdog_on(port: u16, checks: &str, extra: &str) -> Watchdog {
    spawn_watchdog_at("127.0.0.1", port, checks, extra).await
}

/// [`spawn_watchdog_on`] listening on `host` (an address of this machine,
/// e.g. the host end of a veth pair into a network namespace).
pub async fn spawn_watchdog_at(host: &str, port: u16, checks: &str, extra: &str) -> Watchdog {
    let mut w = Watchdog::new(checks, extra, port);
    w.listen_host = host.to_string();
    w.base = format!("http://{host}:{port}");
    w.start().await;
    w
}

/// An in-process watchdog on a manual clock (see the module doc).
pub async fn spawn_app(checks: &str, extra: &str) -> Watchdog {
    let (_, hand) = bgw_watchdog::clock::Clock::manual(chrono::Utc::now());
    let mut w = Watchdog::new(checks, extra, 0);
    w.clock = Some(hand);
    w.start().await;
    w
}

/// Like [`spawn_watchdog_with`], with `adjust` applied before the start
/// (a file limit, no admin token, another listen host).
pub async fn spawn_watchdog_adjusted(
    checks: &str,
    extra: &str,
    adjust: impl FnOnce(&mut Watchdog),
) -> Watchdog {
    let mut w = Watchdog::new(checks, extra, free_port());
    adjust(&mut w);
    w.start().await;
    w
}

impl Watchdog {
    fn new(checks: &str, extra: &str, port: u16) -> Watchdog {
        Watchdog {
            base: format!("http://127.0.0.1:{port}"),
            port,
            dir: tempfile::tempdir().unwrap(),
            http: reqwest::Client::new(),
            checks: checks.to_string(),
            extra: extra.to_string(),
            nofile: None,
            with_admin_token: true,
            listen_host: "127.0.0.1".into(),
            child: None,
            app: None,
            clock: None,
            database: None,
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("watchdog.toml")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    pub fn db_path(&self) -> PathBuf {
        self.database
            .clone()
            .unwrap_or_else(|| self.dir.path().join("watchdog.db"))
    }

    fn write_config(&self) {
        // `extra` may hold top-level keys and then tables: keys go first.
        let split = self
            .extra
            .lines()
            .position(|l| l.trim_start().starts_with('['))
            .map_or(self.extra.len(), |i| {
                self.extra.lines().take(i).map(|l| l.len() + 1).sum()
            });
        let (keys, tables) = self.extra.split_at(split.min(self.extra.len()));
        let config = format!(
            "{keys}\nlisten = \"{host}:{port}\"\ndatabase = \"sqlite://{db}\"\nlog_dir = \"{log}\"\n{admin}\n{checks}\n{tables}\n",
            host = self.listen_host,
            admin = if self.with_admin_token {
                format!("admin_token = \"{ADMIN}\"")
            } else {
                String::new()
            },
            port = self.port,
            db = self.db_path().display(),
            log = self.log_dir().display(),
            checks = self.checks,
        );
        std::fs::write(self.config_path(), config).unwrap();
    }

    /// Replaces the extra configuration (for the next `start`).
    pub fn set_extra(&mut self, extra: &str) {
        self.extra = extra.to_string();
    }

    /// Starts (or restarts) the watchdog and waits for `/healthz`.
    pub async fn start(&mut self) {
        if let Some(hand) = self.clock.clone() {
            return self.start_in_process(hand).await;
        }
        self.write_config();
        let mut command = match self.nofile {
            // `ulimit -n` sets the soft and the hard limit, like systemd's
            // LimitNOFILE.
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(crate::bin("bgw-watchdog"));
                c
            }
            None => Command::new(crate::bin("bgw-watchdog")),
        };
        let child = command
            .arg("--config")
            .arg(self.config_path())
            .arg("serve")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn bgw-watchdog");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = self.http.get(format!("{}/healthz", self.base)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("watchdog exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "watchdog did not become healthy");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn start_in_process(&mut self, hand: bgw_watchdog::clock::ManualClock) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.port = listener.local_addr().unwrap().port();
        self.base = format!("http://127.0.0.1:{}", self.port);
        self.write_config();
        let settings = bgw_watchdog::config::load(
            Some(&self.config_path()),
            &bgw_watchdog::config::Overrides::default(),
        )
        .expect("valid test configuration");
        let clock = hand.clock();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(bgw_watchdog::run_with(
            settings,
            listener,
            async move {
                let _ = stop.await;
            },
            clock,
        ));
        self.app = Some(InProcess { shutdown, task });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = self.http.get(format!("{}/healthz", self.base)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "watchdog did not become healthy");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Moves an in-process watchdog's clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.clock
            .as_ref()
            .expect("advance needs spawn_app")
            .advance(d);
    }

    /// The in-process watchdog's time.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.as_ref().expect("now needs spawn_app").now()
    }

    /// Shuts an in-process watchdog down cleanly and waits for it.
    pub async fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            let _ = app.shutdown.send(());
            app.task
                .await
                .expect("watchdog task")
                .expect("clean shutdown");
        }
    }

    /// Replaces the checks and restarts with the same database.
    pub fn set_checks(&mut self, checks: &str) {
        self.checks = checks.to_string();
    }

    /// The process id of the running watchdog.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no graceful shutdown, like a crash or power loss of the process.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        send_signal(c.id(), "TERM");
        c.wait().ok().and_then(|s| s.code())
    }

    pub async fn heartbeat(&self, token: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/api/v1/heartbeat", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn blue_ok(&self, instance: &str) -> (u16, Value) {
        self.heartbeat(
            BLUE_TOKEN,
            json!({"check": "blue", "instance": instance, "color": "blue", "status": "ok", "seq": 1}),
        )
        .await
    }

    pub async fn ping(&self, suffix: &str) -> u16 {
        self.http
            .get(format!("{}/ping/{JOB_UUID}{suffix}", self.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `GET /api/v1/checks/<name>` (asserts `200`).
    pub async fn check(&self, name: &str) -> Value {
        let (status, body) = self.admin_get(&format!("/api/v1/checks/{name}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn state(&self, check: &str) -> String {
        self.check(check).await["state"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Waits (up to 15 s) until no notification is pending: the outbox has
    /// delivered (or given up on) everything it was asked to send.
    pub async fn settled(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (_, pending) = self.admin_get("/api/v1/notifications?state=pending").await;
            let n = pending["notifications"].as_array().map_or(0, Vec::len);
            if n == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "still pending: {pending}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The notifications pending now.
    pub async fn pending(&self) -> Vec<Value> {
        let (_, pending) = self.admin_get("/api/v1/notifications?state=pending").await;
        pending["notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Polls (up to 15 s) until `holds` is true of check `name`; returns it.
    pub async fn wait_check(
        &self,
        name: &str,
        what: &str,
        holds: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let check = self.check(name).await;
            if holds(&check) {
                return check;
            }
            assert!(Instant::now() < deadline, "waiting for {what}: {check}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn events(&self) -> Vec<Value> {
        let (status, body) = self.admin_get("/api/v1/events?since=0").await;
        assert_eq!(status, 200, "{body}");
        body["events"].as_array().unwrap().clone()
    }

    /// State-change events of `check`, as (from, to).
    pub async fn transitions(&self, check: &str) -> Vec<(String, String)> {
        self.events()
            .await
            .into_iter()
            .filter(|e| e["kind"] == "state" && e["check"] == check)
            .map(|e| {
                (
                    e["from"].as_str().unwrap_or("").to_string(),
                    e["to"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// Polls until `check` is in `state` (up to 15 s).
    pub async fn wait_state(&self, check: &str, state: &str) {
        self.wait_check(check, &format!("{check} to be {state}"), |c| {
            c["state"] == state
        })
        .await;
    }

    pub fn log_text(&self) -> String {
        read_logs(&self.log_dir())
    }
}

pub fn read_logs(dir: &Path) -> String {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect()
}

/// Sends a signal with kill(1): the workspace forbids `unsafe`.
pub fn send_signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.kill9();
        if let Some(app) = self.app.take() {
            app.task.abort();
        }
    }
}
