//! Real processes on loopback for the checker's tests: two `bgw-testapp`
//! instances, a real nginx in front of them, the `bgw-checker` binary, and
//! (from `bgw_e2e`) the in-test watchdog that records the reports it is sent
//! and can be stopped and started again on the same port.

pub use bgw_e2e::fake_watchdog::FakeWatchdog;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a test waits for something before failing.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `target/<profile>/`, where cargo puts the workspace's binaries.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// The `bgw-testapp` binary, built on first use when `cargo test` was run
/// without a prior `cargo build --workspace`.
pub fn testapp_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let path = bin_dir().join("bgw-testapp");
        if !path.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "bgw-e2e", "--bin", "bgw-testapp"])
                .status()
                .expect("run cargo build for bgw-testapp");
            assert!(status.success(), "building bgw-testapp failed");
        }
        assert!(path.exists(), "no bgw-testapp at {}", path.display());
        path
    })
    .clone()
}

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

async fn wait_for_port(port: u16) {
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(start.elapsed() < DEADLINE, "nothing listens on {port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills the process group-less child and reaps it.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One `bgw-testapp` on a free loopback port.
pub struct TestApp {
    pub port: u16,
    _child: Reaped,
}

impl TestApp {
    pub async fn start(color: &str) -> TestApp {
        let port = free_port();
        let child = Command::new(testapp_bin())
            .args(["--listen", &format!("127.0.0.1:{port}"), "--color", color])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn bgw-testapp");
        let app = TestApp {
            port,
            _child: Reaped(child),
        };
        wait_for_port(port).await;
        app
    }

    /// `POST /control/<what>` (`fail`, `ok`, `slow?ms=1500`).
    pub async fn control(&self, what: &str) {
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/control/{what}", self.port))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}

/// A real nginx: the live port proxies to one app, the idle port to the
/// other, each stamping `X-Bgw-Color` like the watchdog's rendered config.
pub struct Nginx {
    pub live_port: u16,
    pub idle_port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// `live` = (color, app port) behind the live port; `idle` likewise.
    pub async fn start(live: (&str, u16), idle: (&str, u16)) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let (live_port, idle_port) = (free_port(), free_port());
        let server = |listen: u16, (color, port): (&str, u16)| {
            format!(
                "  server {{\n    listen 127.0.0.1:{listen};\n    location / {{\n      \
                 proxy_pass http://127.0.0.1:{port};\n      \
                 add_header X-Bgw-Color {color} always;\n    }}\n  }}\n"
            )
        };
        let conf = format!(
            "worker_processes 1;\nevents {{ worker_connections 128; }}\nhttp {{\n  access_log off;\n  \
             client_body_temp_path {d}/client_body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{}{}}}\n",
            server(live_port, live),
            server(idle_port, idle),
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = std::fs::File::create(dir.path().join("nginx.stderr")).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg("stderr")
            .arg("-c")
            .arg(&conf_path)
            .arg("-g")
            .arg(format!("daemon off; pid {d}/nginx.pid; error_log stderr;"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nginx (is it installed? scripts/install-deps.sh)");
        let nginx = Nginx {
            live_port,
            idle_port,
            child,
            _dir: dir,
        };
        wait_for_port(live_port).await;
        wait_for_port(idle_port).await;
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers; SIGKILL would orphan them.
        send_signal(self.child.id(), "TERM");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `signal` (`TERM`, `KILL`) to `pid` with kill(1): the workspace
/// forbids `unsafe`, so no direct kill(2).
pub fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// The `bgw-checker` binary under test, its stderr kept in a file.
pub struct Checker {
    pub child: Child,
    pub live_file: PathBuf,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Checker {
    /// Starts the checker with a config file built from `keys` (`key = value`
    /// TOML lines) plus a live file holding `live`.
    pub fn start(
        watchdog: &FakeWatchdog,
        nginx: &Nginx,
        blue: u16,
        green: u16,
        live: &str,
        extra: &str,
    ) -> Checker {
        let dir = tempfile::tempdir().unwrap();
        let live_file = dir.path().join("live");
        std::fs::write(&live_file, format!("{live}\n")).unwrap();
        let config = format!(
            "watchdog_url = \"{}\"\ntoken = \"checker-secret-token\"\nblue = \"127.0.0.1:{blue}\"\n\
             green = \"127.0.0.1:{green}\"\nproxy = \"127.0.0.1\"\nlive_listen = {}\nidle_listen = {}\n\
             live_file = \"{}\"\ninterval = \"200ms\"\ntimeout = \"3s\"\nthreshold = \"1s\"\n{extra}",
            watchdog.url(),
            nginx.live_port,
            nginx.idle_port,
            live_file.display(),
        );
        let config_path = dir.path().join("checker.toml");
        std::fs::write(&config_path, config).unwrap();
        let stderr = dir.path().join("stderr");
        let child = Command::new(env!("CARGO_BIN_EXE_bgw-checker"))
            .arg("--config")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn bgw-checker");
        Checker {
            child,
            live_file,
            stderr,
            _dir: dir,
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` to exit and returns its code.
pub async fn exit_code(child: &mut Child) -> Option<i32> {
    eventually("the process to exit", || child.try_wait().ok().flatten())
        .await
        .code()
}
