//! Real processes on loopback for the prober's tests: the `bgw-prober`
//! binary, an in-test watchdog (`/healthz` and the report endpoint) that can
//! be stopped and started again on the same port, a public endpoint, and the
//! workspace's real Slack receiver and SMTP server.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bgw_wire::Report;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for something before failing.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `f` until it returns `Some`, or panics after [`DEADLINE`].
pub async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An HTTP server on a fixed loopback address that can be stopped (the port
/// then refuses connections) and started again.
pub struct Server {
    pub addr: SocketAddr,
    router: Router,
    running: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Server {
    pub async fn start(router: Router) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut s = Server {
            addr: listener.local_addr().unwrap(),
            router,
            running: None,
        };
        s.serve(listener);
        s
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = self.router.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        self.running = Some((tx, task));
    }

    pub async fn stop(&mut self) {
        if let Some((tx, task)) = self.running.take() {
            let _ = tx.send(());
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(3), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    pub async fn restart(&mut self) {
        let start = Instant::now();
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(
                        start.elapsed() < DEADLINE,
                        "cannot rebind {}: {e}",
                        self.addr
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        self.serve(listener);
    }
}

/// The watchdog as the prober sees it: `GET /healthz` 200 and
/// `POST /api/v1/report` 202, recording the reports.
pub struct FakeWatchdog {
    pub server: Server,
    reports: Arc<Mutex<Vec<(String, Report)>>>,
}

impl FakeWatchdog {
    pub async fn start() -> FakeWatchdog {
        type Reports = Arc<Mutex<Vec<(String, Report)>>>;
        async fn report(
            State(reports): State<Reports>,
            headers: axum::http::HeaderMap,
            Json(r): Json<Report>,
        ) -> StatusCode {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            reports.lock().unwrap().push((auth, r));
            StatusCode::ACCEPTED
        }
        let reports: Reports = Arc::default();
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/api/v1/report", post(report))
            .with_state(reports.clone());
        FakeWatchdog {
            server: Server::start(router).await,
            reports,
        }
    }

    /// (Authorization header, report) of every report received.
    pub fn reports(&self) -> Vec<(String, Report)> {
        self.reports.lock().unwrap().clone()
    }
}

/// The public endpoint: `GET /ping` 200 stamped `X-Bgw-Color: blue`, as
/// nginx's live port answers.
pub async fn public_endpoint() -> Server {
    let router = Router::new().route(
        "/ping",
        get(|| async { ([("X-Bgw-Color", "blue")], "pong blue 1.0.0\n") }),
    );
    Server::start(router).await
}

/// The `bgw-prober` binary, its stderr kept in a file.
pub struct Prober {
    pub child: Child,
    pub stderr: PathBuf,
}

impl Prober {
    /// Starts the prober with `config` (a TOML file) and `state_dir`.
    pub fn start(config: &Path, state_dir: &Path, stderr_name: &str) -> Prober {
        let stderr = state_dir
            .parent()
            .unwrap()
            .join(format!("{stderr_name}.stderr"));
        let child = Command::new(env!("CARGO_BIN_EXE_bgw-prober"))
            .arg("--config")
            .arg(config)
            .arg("--state-dir")
            .arg(state_dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn bgw-prober");
        Prober { child, stderr }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits for `child` to exit and returns its code.
pub async fn exit_code(child: &mut Child) -> Option<i32> {
    eventually("the process to exit", || child.try_wait().ok().flatten())
        .await
        .code()
}

/// SIGTERM with kill(1) (the workspace forbids `unsafe`, so no kill(2)).
pub fn send_term(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}
