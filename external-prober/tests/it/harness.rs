//! Real processes on loopback for the prober's tests: the `bgw-prober`
//! binary, a public endpoint, and (from `bgw_e2e`) the in-test watchdog that
//! can be stopped and started again on the same port.

use axum::routing::get;
use axum::Router;
pub use bgw_e2e::fake_watchdog::{FakeWatchdog, Server};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
