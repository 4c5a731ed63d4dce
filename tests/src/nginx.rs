//! A real nginx for the switching tests and the benchmark: started with its
//! own prefix in a temp dir (pid, logs, temp paths inside it), on free
//! loopback ports, in front of two real `bgw-testapp` processes playing blue
//! and green. Everything started here is stopped on drop.

use anyhow::{bail, Context};
use bgw_watchdog::proxy::{self, ProxySettings, SwitchMode, Switcher, Upstream};
use bgw_wire::Color;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The nginx binary: `$BGW_NGINX`, else `nginx` on `PATH`, else `/usr/sbin/nginx`.
pub fn nginx_bin() -> String {
    if let Ok(bin) = std::env::var("BGW_NGINX") {
        return bin;
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("nginx").is_file()))
        .unwrap_or(false);
    if on_path {
        "nginx".to_string()
    } else {
        "/usr/sbin/nginx".to_string()
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port")
}

/// `-e <dir>/error.log -p <dir>/`: keeps every path of an nginx command in `dir`.
fn prefix_args(dir: &Path) -> String {
    format!("-e {}/error.log -p {}/", dir.display(), dir.display())
}

/// `test_cmd` for an nginx prefixed in `dir`.
pub fn test_cmd(dir: &Path) -> String {
    format!("{} -t -q {} -c {{conf}}", nginx_bin(), prefix_args(dir))
}

/// `reload_cmd` for an nginx prefixed in `dir`.
pub fn reload_cmd(dir: &Path) -> String {
    format!("{} -s reload {} -c {{conf}}", nginx_bin(), prefix_args(dir))
}

/// Proxy settings that keep nginx inside `dir`, on the given ports.
pub fn settings(
    dir: &Path,
    live_listen: u16,
    idle_listen: u16,
    blue: u16,
    green: u16,
) -> ProxySettings {
    ProxySettings {
        live_file: dir.join("live"),
        nginx_conf: dir.join("nginx.conf"),
        test_cmd: test_cmd(dir),
        reload_cmd: reload_cmd(dir),
        listen_address: "127.0.0.1".to_string(),
        live_listen,
        idle_listen,
        blue: Upstream(vec![format!("127.0.0.1:{blue}")]),
        green: Upstream(vec![format!("127.0.0.1:{green}")]),
        command_timeout: Duration::from_secs(20).into(),
        verify_timeout: Duration::from_secs(10).into(),
        worker_shutdown_timeout: Duration::from_secs(10).into(),
        main_directives: "pid nginx.pid;\nerror_log error.log warn;".to_string(),
        http_directives: [
            "access_log off;",
            "client_body_temp_path tmp/body;",
            "proxy_temp_path tmp/proxy;",
            "fastcgi_temp_path tmp/fastcgi;",
            "uwsgi_temp_path tmp/uwsgi;",
            "scgi_temp_path tmp/scgi;",
        ]
        .join("\n"),
        ..Default::default()
    }
}

/// A running nginx master (foreground, our child); stopped on drop.
pub struct Nginx {
    dir: PathBuf,
    conf: PathBuf,
    child: Child,
}

impl Nginx {
    /// Starts `nginx -p <dir> -c <conf> -g 'daemon off;'` and waits until
    /// it has written its pid file (so `nginx -s reload` finds it).
    pub fn start(dir: &Path, conf: &Path) -> anyhow::Result<Nginx> {
        std::fs::create_dir_all(dir.join("tmp"))?;
        let mut cmd = Command::new(nginx_bin());
        cmd.args(["-e", &format!("{}/error.log", dir.display())])
            .args(["-p", &format!("{}/", dir.display())])
            .arg("-c")
            .arg(conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .with_context(|| format!("start {}", nginx_bin()))?;
        let mut nginx = Nginx {
            dir: dir.to_path_buf(),
            conf: conf.to_path_buf(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid_file = dir.join("nginx.pid");
        loop {
            if let Some(status) = nginx.child.try_wait()? {
                bail!(
                    "nginx exited with {status} at start: {}",
                    nginx.error_log_tail()
                );
            }
            let pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
            if pid.trim() == nginx.child.id().to_string() {
                return Ok(nginx);
            }
            if Instant::now() > deadline {
                bail!(
                    "nginx did not write {} in 10s: {}",
                    pid_file.display(),
                    nginx.error_log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// Stops nginx (as on drop) and starts it again on the same config, as
    /// after a crash or a host reboot.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        *self = Nginx::start(&self.dir, &self.conf)?;
        Ok(())
    }

    /// The pids of nginx's worker processes (children of the master).
    pub fn workers(&self) -> Vec<u32> {
        let master = self.child.id();
        let mut out: Vec<u32> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(master)
            })
            .collect();
        out.sort();
        out
    }

    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SIGTERM: fast shutdown of the master and its workers (a SIGKILL
        // would orphan the workers, which keep the ports).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines of nginx's error log, for failure messages.
    pub fn error_log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `bgw-testapp` process; killed on drop.
pub struct App {
    pub color: Color,
    pub port: u16,
    child: Child,
}

impl App {
    /// Starts `bin --listen 127.0.0.1:<port> --color <color>` and waits until
    /// `/ping` answers.
    pub async fn start(bin: &Path, color: Color, port: u16) -> anyhow::Result<App> {
        let child = Command::new(bin)
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--color",
                color.as_str(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let app = App { color, port, child };
        let url = format!("http://127.0.0.1:{port}/ping");
        wait_until(Duration::from_secs(10), || async {
            matches!(reqwest::get(&url).await, Ok(r) if r.status().is_success())
        })
        .await
        .with_context(|| format!("{color} test app did not answer {url}"))?;
        Ok(app)
    }

    /// `POST /control/<what>` (`fail`, `ok`, `slow?ms=N`).
    pub async fn control(&self, what: &str) -> anyhow::Result<()> {
        let url = format!("http://127.0.0.1:{}/control/{what}", self.port);
        reqwest::Client::new()
            .post(&url)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 50 ms until it holds or `limit` passes.
pub async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("condition not met within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The color that answers `GET http://127.0.0.1:<port>/ping` on a new
/// connection (its `X-Bgw-Color` header), or `None`.
pub async fn served_by(port: u16) -> Option<String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    let resp = client
        .get(format!("http://127.0.0.1:{port}/ping"))
        .send()
        .await
        .ok()?;
    resp.headers()
        .get(bgw_wire::COLOR_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// nginx in front of a blue and a green test app, blue live, all in a
/// fresh temp dir.
pub struct Fixture {
    pub nginx: Nginx,
    pub blue: App,
    pub green: App,
    pub settings: ProxySettings,
    /// Last: removed after the processes using it have stopped.
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// `testapp` is the path of the `bgw-testapp` binary.
    pub async fn start(testapp: &Path) -> anyhow::Result<Fixture> {
        Fixture::start_in(testapp, SwitchMode::Reload).await
    }

    /// The same in `mode`; `live` renders the live-mode config (Lua module,
    /// control location on a free loopback port).
    pub async fn start_in(testapp: &Path, mode: SwitchMode) -> anyhow::Result<Fixture> {
        let dir = tempfile::Builder::new().prefix("bgw-nginx-").tempdir()?;
        // nginx's workers run as `nobody` when the tests run as root.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        }
        let (blue_port, green_port) = (free_port(), free_port());
        let blue = App::start(testapp, Color::Blue, blue_port).await?;
        let green = App::start(testapp, Color::Green, green_port).await?;
        let mut settings = settings(dir.path(), free_port(), free_port(), blue_port, green_port);
        if mode == SwitchMode::Live {
            settings.mode = mode;
            settings.control_listen = free_port();
        }
        let config = proxy::render(&settings, Color::Blue)?;
        proxy::write_atomic(&settings.nginx_conf, config.as_bytes())?;
        proxy::write_live(&settings.live_file, Color::Blue)?;
        let nginx = Nginx::start(dir.path(), &settings.nginx_conf)?;
        let live = settings.live_listen;
        wait_until(Duration::from_secs(10), || async {
            served_by(live).await.as_deref() == Some("blue")
        })
        .await
        .with_context(|| {
            format!(
                "nginx does not serve blue on :{live}: {}",
                nginx.error_log_tail()
            )
        })?;
        Ok(Fixture {
            nginx,
            blue,
            green,
            settings,
            dir,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A switcher over the fixture's settings.
    pub fn switcher(&self) -> Switcher {
        Switcher::new(self.settings.clone()).expect("fixture settings are valid")
    }

    /// A switcher over the fixture's settings changed by `edit`.
    pub fn switcher_with(&self, edit: impl FnOnce(&mut ProxySettings)) -> Switcher {
        let mut s = self.settings.clone();
        edit(&mut s);
        Switcher::new(s).expect("edited settings are valid")
    }
}
