//! Test harness: the real `bgw-agent` and `bgw-testapp` processes on
//! loopback, and a fake watchdog that records the heartbeats it receives.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bgw_wire::{Heartbeat, HeartbeatAck};
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Every wait polls up to this long.
pub const DEADLINE: Duration = Duration::from_secs(10);
pub const TOKEN: &str = "tok-s3cret-3f9a";

/// A loopback port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it returns `Some`, or panics naming `what` after [`DEADLINE`].
pub async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A heartbeat as the fake watchdog saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub heartbeat: Heartbeat,
    pub at: Instant,
}

#[derive(Clone)]
struct Shared {
    token: String,
    received: Arc<Mutex<Vec<Received>>>,
    /// When non-zero, every request is answered with this status.
    answer: Arc<AtomicU16>,
    /// Every request, whatever the answer.
    requests: Arc<AtomicUsize>,
}

/// An in-test watchdog: `POST /api/v1/heartbeat` checks the bearer token,
/// parses the body as the wire type (unknown fields rejected) and records it.
pub struct FakeWatchdog {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    answer: Arc<AtomicU16>,
    requests: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeWatchdog {
    pub async fn start() -> FakeWatchdog {
        Self::start_on(0).await
    }

    /// On a given port (for "the watchdog comes back").
    pub async fn start_on(port: u16) -> FakeWatchdog {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Shared {
            token: TOKEN.to_string(),
            received: Arc::default(),
            answer: Arc::default(),
            requests: Arc::default(),
        };
        let received = shared.received.clone();
        let (answer, requests) = (shared.answer.clone(), shared.requests.clone());
        let app = Router::new()
            .route("/api/v1/heartbeat", post(heartbeat))
            .with_state(shared);
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeWatchdog {
            addr,
            received,
            answer,
            requests,
            server,
        }
    }

    /// Answers every request with `status` (e.g. 503) until `answer_normally`.
    pub fn answer_with(&self, status: u16) {
        self.answer.store(status, Ordering::SeqCst);
    }

    pub fn answer_normally(&self) {
        self.answer.store(0, Ordering::SeqCst);
    }

    /// Requests received so far, whatever the answer.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn heartbeats(&self) -> Vec<Heartbeat> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.heartbeat.clone())
            .collect()
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until a heartbeat matches `pred`; returns it.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Heartbeat) -> bool) -> Received {
        eventually(what, || {
            self.received().into_iter().find(|r| pred(&r.heartbeat))
        })
        .await
    }
}

impl Drop for FakeWatchdog {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn heartbeat(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let forced = shared.answer.load(Ordering::SeqCst);
    if forced != 0 {
        return (
            StatusCode::from_u16(forced).unwrap(),
            r#"{"error":"forced"}"#.into(),
        );
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {}", shared.token) {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"error":"missing or wrong token"}"#.into(),
        );
    }
    let heartbeat: Heartbeat = match serde_json::from_str(&body) {
        Ok(h) => h,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": e.to_string()}).to_string(),
            )
        }
    };
    shared.received.lock().unwrap().push(Received {
        heartbeat,
        at: Instant::now(),
    });
    let ack = HeartbeatAck {
        state: "up".into(),
        next_deadline: None,
    };
    (StatusCode::ACCEPTED, serde_json::to_string(&ack).unwrap())
}

/// `target/debug/bgw-testapp`, built once per test run (a no-op when fresh).
pub fn testapp_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // The test executable is target/<profile>/deps/it-<hash>.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap();
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
        let mut cargo = Command::new(env!("CARGO"));
        // `cargo test` gives this process CARGO_PKG_*, CARGO_MANIFEST_DIR...;
        // build scripts that watch them (ring's) would rebuild, and then
        // rebuild again on the next `cargo test`.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("CARGO_")
                && !matches!(&*name, "CARGO_HOME" | "CARGO_TARGET_DIR")
                && !name.starts_with("CARGO_BUILD_")
                && !name.starts_with("CARGO_REGISTRIES_")
            {
                cargo.env_remove(&*name);
            }
        }
        let status = cargo
            .args(["build", "--quiet", "-p", "bgw-e2e", "--bin", "bgw-testapp"])
            .arg("--manifest-path")
            .arg(manifest)
            .arg("--target-dir")
            .arg(target_dir)
            .status()
            .expect("run cargo to build bgw-testapp");
        assert!(status.success(), "building bgw-testapp failed");
        let bin = profile_dir.join("bgw-testapp");
        assert!(bin.exists(), "{} missing", bin.display());
        bin
    })
    .clone()
}

/// A child process killed (with its process group) when dropped, whose
/// stderr is collected.
pub struct Proc {
    child: std::process::Child,
    stderr: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts `cmd` in its own process group with a clean environment plus
    /// `env`, collecting stderr.
    pub fn spawn(mut cmd: Command, env: &[(&str, &str)]) -> Proc {
        use std::os::unix::process::CommandExt;
        cmd.env_clear()
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().expect("spawn");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Proc {
            child,
            stderr,
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends `signal` to the process (not its group).
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
    }

    /// `None` while running.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status
    }

    pub async fn wait_exit(&mut self) -> ExitStatus {
        let status = eventually("the process to exit", || self.try_status()).await;
        // Let the reader thread drain the pipe.
        tokio::time::sleep(Duration::from_millis(50)).await;
        status
    }

    pub async fn wait_stderr(&self, needle: &str) {
        eventually(&format!("{needle:?} in stderr"), || {
            self.stderr().contains(needle).then_some(())
        })
        .await;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            if let Some(pgid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
                let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
            }
            let _ = self.child.wait();
        }
    }
}

/// `bgw-testapp` on a free loopback port, ready to answer.
pub struct TestApp {
    pub port: u16,
    pub proc: Option<Proc>,
}

impl TestApp {
    /// Starts it as its own process (sidecar mode).
    pub async fn start() -> TestApp {
        let port = free_port();
        let mut cmd = Command::new(testapp_bin());
        cmd.args(Self::args(port));
        let app = TestApp {
            port,
            proc: Some(Proc::spawn(cmd, &[])),
        };
        app.wait_ready().await;
        app
    }

    /// The command line that starts it on `port`.
    pub fn args(port: u16) -> Vec<String> {
        vec![
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--color".into(),
            "blue".into(),
        ]
    }

    pub fn ping_url(&self) -> String {
        format!("http://127.0.0.1:{}/ping", self.port)
    }

    pub async fn wait_ready(&self) {
        let url = self.ping_url();
        let start = Instant::now();
        while reqwest::get(&url).await.is_err() {
            assert!(start.elapsed() < DEADLINE, "testapp did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn control(&self, path_and_query: &str) {
        reqwest::Client::new()
            .post(format!(
                "http://127.0.0.1:{}/control/{path_and_query}",
                self.port
            ))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }
}

/// Starts `bgw-agent` with `args` and the environment `env`.
pub fn agent(args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bgw-agent"));
    cmd.args(args);
    Proc::spawn(cmd, env)
}

/// The usual flags: this watchdog, check `blue`, the token, this app.
pub fn base_args(watchdog: &str, app_url: &str, interval: &str) -> Vec<String> {
    [
        "--watchdog-url",
        watchdog,
        "--check",
        "blue",
        "--color",
        "blue",
        "--app-version",
        "1.0.4",
        "--instance",
        "it-1",
        "--app-url",
        app_url,
        "--interval",
        interval,
        "--timeout",
        "500ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
