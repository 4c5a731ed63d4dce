//! The original topology on a real Docker swarm, for the failure drills
//! (`tests/tests/swarm.rs`) and the swarm demo: `blue-service` and
//! `green-service` as swarm services running the images of
//! `deploy/build-images.sh` (`bgw-agent -- bgw-sample-app`, the token a
//! docker secret), a real nginx on the host with the live and idle ports, the
//! real `bgw-watchdog serve` whose `deploy_cmd`/`scale_cmd` are the real
//! `docker service update --image` / `docker service scale`, the checker,
//! the prober, a Slack receiver and the SMTP server.
//!
//! Networking on this single-node test swarm: the tasks use the host's
//! network namespace (`--network host`), each color on its own loopback
//! port, because the routing mesh is not reachable here and the watchdog
//! listens on loopback. The sample app sets `SO_REUSEPORT`, so replicas of
//! one color share its port. `deploy/README.md` describes the same
//! services on a real multi-node swarm (host-mode publishing or the routing
//! mesh).
//!
//! Engine state: [`SwarmLock::acquire`] serialises the drills (and a swarm
//! demo) across processes (`flock` on `/tmp/bgw-e2e-swarm.lock`) and runs `docker swarm
//! init` when the engine is not in a swarm; in that case the swarm is left
//! again (`docker swarm leave --force`) when the lock is released, so the
//! engine ends as it was found. Services and secrets are named
//! `bgw-e2e-<pid>-...` and removed on drop.

use crate::container::docker;
use crate::nginx::{self, served_by, wait_until, Nginx};
use crate::slack::SlackReceiver;
use crate::smtp::{SmtpOptions, SmtpSink};
use crate::system::Proc;
use crate::watchdog::{spawn_watchdog_at, Watchdog, CHECKER_TOKEN};
use anyhow::{bail, Context};
use bgw_watchdog::proxy::{self, ProxySettings};
use bgw_wire::Color;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Repository prefix of the images the drills build.
pub const IMAGE_PREFIX: &str = "bgw-e2e-";
/// Tag of the four bgw images the drills build.
pub const IMAGE_TAG: &str = "e2e";
pub const PROBER_TOKEN: &str = "prober-token-0123456789";
const BLUE_TOKEN: &str = crate::watchdog::BLUE_TOKEN;
const GREEN_TOKEN: &str = crate::system::GREEN_TOKEN;

/// The sample app's image for `version` (1.0.4, 1.0.5; 1.0.6 starts broken).
pub fn app_image(version: &str) -> String {
    format!("{IMAGE_PREFIX}bgw-sample-app:{version}")
}

/// Why no swarm can be used here, or `None` when one can: Docker must
/// answer, and the node must be a swarm manager or able to become one.
/// Asked under the [`SwarmLock`] (another drill may be leaving the swarm).
fn swarm_unavailable() -> Option<String> {
    if let Some(why) = crate::container::docker_unavailable() {
        return Some(why);
    }
    match docker(["info", "--format", "{{.Swarm.LocalNodeState}}"]) {
        Ok(state) if state == "active" || state == "inactive" => None,
        Ok(state) => Some(format!("the node's swarm state is {state:?}")),
        Err(e) => Some(format!("{e:#}")),
    }
}

/// Exclusive use of the engine's swarm by one drill (or one swarm demo);
/// leaves the swarm on drop if it initialised it.
pub struct SwarmLock {
    _guard: tokio::sync::MutexGuard<'static, ()>,
    /// `flock`ed: other processes (another test binary, a running demo)
    /// wait for it, so one never leaves the swarm under the other.
    _file: std::fs::File,
    initialised: bool,
}

/// The lock file shared by every process using the swarm this way.
const LOCK_FILE: &str = "/tmp/bgw-e2e-swarm.lock";

impl SwarmLock {
    /// Waits for the other drills of this process, then makes sure the
    /// engine is a swarm manager (`docker swarm init --advertise-addr
    /// 127.0.0.1` if it is in no swarm). `Ok(None)` with the reason when
    /// no swarm can be used here ([`swarm_unavailable`]).
    pub async fn acquire() -> anyhow::Result<Result<SwarmLock, String>> {
        static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let guard = LOCK.lock().await;
        let file = tokio::task::spawn_blocking(|| -> std::io::Result<std::fs::File> {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(LOCK_FILE)?;
            rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
            Ok(file)
        })
        .await?
        .with_context(|| format!("locking {LOCK_FILE}"))?;
        if let Some(why) = swarm_unavailable() {
            return Ok(Err(why));
        }
        let state = docker(["info", "--format", "{{.Swarm.LocalNodeState}}"])?;
        // An engine that cannot become a manager lacks the feature: the
        // caller skips (loudly), it does not fail.
        let initialised = if state == "inactive" {
            if let Err(e) = docker(["swarm", "init", "--advertise-addr", "127.0.0.1"]) {
                return Ok(Err(format!("{e:#}")));
            }
            true
        } else {
            let manager = docker(["info", "--format", "{{.Swarm.ControlAvailable}}"])?;
            if manager != "true" {
                return Ok(Err("the engine is in a swarm but not a manager".to_string()));
            }
            false
        };
        Ok(Ok(SwarmLock {
            _guard: guard,
            _file: file,
            initialised,
        }))
    }
}

impl Drop for SwarmLock {
    fn drop(&mut self) {
        if self.initialised {
            let _ = docker(["swarm", "leave", "--force"]);
        }
    }
}

/// Builds the images once per test process with `deploy/build-images.sh
/// --bin-dir <the tests' binaries> --prefix bgw-e2e- --tag e2e --app-only` (the
/// script an operator runs, so the drills test it too).
pub fn build_images() -> anyhow::Result<()> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/build-images.sh");
            let bin_dir = crate::bin("bgw-sample-app")
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let out = Command::new(&script)
                .arg("--bin-dir")
                .arg(&bin_dir)
                .args(["--prefix", IMAGE_PREFIX, "--tag", IMAGE_TAG, "--app-only"])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("running {}: {e}", script.display()))?;
            if !out.status.success() {
                return Err(format!(
                    "build-images.sh failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            eprint!("{}", String::from_utf8_lossy(&out.stdout));
            Ok(())
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Timings of a [`SwarmSystem`]; short, so a drill takes seconds.
#[derive(Debug, Clone)]
pub struct SwarmOptions {
    pub period: &'static str,
    pub grace: &'static str,
    /// The agents' heartbeat interval.
    pub agent_interval: &'static str,
    /// How long swarm waits before restarting a task that died
    /// (`--restart-delay`): longer than period + grace, so a killed task is
    /// missed (DOWN) before its replacement reports (UP).
    pub restart_delay: &'static str,
    /// The prober's `silence_after`.
    pub silence_after: &'static str,
    /// `[rollback]` body.
    pub rollback: String,
    /// Run the prober in its own network namespace (a veth pair into the
    /// host), reaching the public port and the watchdog only through it,
    /// as from another machine. The watchdog and nginx then listen on the
    /// host end of the pair (nginx on every address).
    pub prober_netns: bool,
}

impl Default for SwarmOptions {
    fn default() -> Self {
        SwarmOptions {
            period: "1s",
            grace: "1s",
            agent_interval: "300ms",
            restart_delay: "4s",
            silence_after: "3s",
            rollback: crate::system::Options::rollback_with("cooldown = \"1m\""),
            prober_netns: false,
        }
    }
}

/// One color's swarm service.
#[derive(Debug, Clone)]
pub struct Service {
    pub color: Color,
    /// `bgw-e2e-<pid>-<color>-service`.
    pub name: String,
    /// The loopback port its tasks listen on.
    pub port: u16,
}

impl Service {
    /// `http://127.0.0.1:<port>/ping`: the service directly, bypassing nginx.
    pub fn ping_url(&self) -> String {
        format!("http://127.0.0.1:{}/ping", self.port)
    }

    /// `POST /admin/<what>` on the service (one of its tasks).
    pub async fn admin(&self, what: &str) -> anyhow::Result<()> {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/admin/{what}", self.port))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// The ids of the running containers of this service's tasks.
    pub fn containers(&self) -> Vec<String> {
        docker([
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.swarm.service.name={}", self.name),
        ])
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
    }

    /// `docker service ps` (for failure messages and the drills' printout).
    pub fn tasks(&self) -> String {
        docker([
            "service",
            "ps",
            "--format",
            "{{.Name}} {{.Image}} {{.DesiredState}} {{.CurrentState}} {{.Error}}",
            &self.name,
        ])
        .unwrap_or_else(|e| format!("{e:#}"))
    }
}

/// The whole system with blue and green as swarm services; everything it
/// started is removed on drop (services, secrets, processes, files).
pub struct SwarmSystem {
    pub blue: Service,
    pub green: Service,
    pub checker: Option<Proc>,
    pub prober: Option<Proc>,
    /// The prober's network namespace, with [`SwarmOptions::prober_netns`].
    pub netns: Option<Netns>,
    pub watchdog: Watchdog,
    pub nginx: Nginx,
    pub settings: ProxySettings,
    pub slack: SlackReceiver,
    pub smtp: SmtpSink,
    secrets: Vec<String>,
    /// Last: removed after everything using it has stopped.
    pub dir: tempfile::TempDir,
}

impl SwarmSystem {
    /// Builds the images (once), creates both services at `version` (blue
    /// live), starts nginx, the watchdog, the checker and the prober, and
    /// waits until every check is up. Call with a [`SwarmLock`] held.
    pub async fn start(o: SwarmOptions, version: &str) -> anyhow::Result<SwarmSystem> {
        build_images()?;
        let dir = tempfile::Builder::new().prefix("bgw-swarm-").tempdir()?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        }
        let slack = SlackReceiver::start().await;
        let smtp = SmtpSink::start(SmtpOptions::default()).await;
        let prefix = format!("bgw-e2e-{}", std::process::id());
        let service = |color: Color| Service {
            color,
            name: format!("{prefix}-{color}-service"),
            port: nginx::free_port(),
        };
        let (blue, green) = (service(Color::Blue), service(Color::Green));
        let netns = if o.prober_netns {
            Some(Netns::create().context("the prober's network namespace")?)
        } else {
            None
        };

        let mut settings = nginx::settings(
            dir.path(),
            nginx::free_port(),
            nginx::free_port(),
            blue.port,
            green.port,
        );
        // The real commands, on this drill's service names.
        // `--no-resolve-image`: no registry here, the node's image is the one.
        settings.deploy_cmd = format!(
            "docker service update --quiet --no-resolve-image --image {{image}} {prefix}-{{color}}-service"
        );
        settings.scale_cmd =
            format!("docker service scale --detach {prefix}-{{color}}-service={{n}}");
        settings.command_timeout = Duration::from_secs(60).into();
        if netns.is_some() {
            settings.listen_address = String::new();
        }
        settings.verify_timeout = Duration::from_secs(5).into();
        let config = proxy::render(&settings, Color::Blue)?;
        proxy::write_atomic(&settings.nginx_conf, config.as_bytes())?;
        proxy::write_live(&settings.live_file, Color::Blue)?;
        let nginx = Nginx::start(dir.path(), &settings.nginx_conf)?;

        let channels = format!(
            "[notify]\ngroup_window = \"0s\"\nrepeat = \"1h\"\n[notify.slack]\nwebhook_url = \"{}\"\n[notify.email]\nsmtp_url = \"{}\"\nfrom = \"bgw@example.org\"\nto = [\"ops@example.org\"]\n",
            slack.url(),
            smtp.url()
        );
        let (period, grace) = (o.period, o.grace);
        let checks = format!(
            r#"{}
[[check]]
name = "prober"
kind = "reporter"
period = "{period}"
grace = "{grace}"
token = "{PROBER_TOKEN}"
"#,
            crate::system::color_checks(period, grace),
        );
        let extra = format!(
            "startup_grace = \"1s\"\n[proxy]\n{}\n[rollback]\n{}\n{channels}",
            toml::to_string(&settings)?,
            o.rollback,
        );
        // The services first, so the watchdog's checks do not start with
        // "no heartbeat since the check was created": their agents retry
        // until the watchdog answers.
        let watchdog_port = nginx::free_port();
        let watchdog_host = netns
            .as_ref()
            .map_or("127.0.0.1".to_string(), |n| n.host_ip.clone());
        let watchdog_url = format!("http://{watchdog_host}:{watchdog_port}");
        let mut secrets = Vec::new();
        for (service, token) in [(&blue, BLUE_TOKEN), (&green, GREEN_TOKEN)] {
            create_service(
                service,
                token,
                version,
                &o,
                &watchdog_url,
                dir.path(),
                &mut secrets,
            )
            .await?;
        }
        let watchdog = spawn_watchdog_at(&watchdog_host, watchdog_port, &checks, &extra).await;
        let mut system = SwarmSystem {
            blue,
            green,
            checker: None,
            prober: None,
            netns,
            watchdog,
            nginx,
            settings,
            slack,
            smtp,
            secrets,
            dir,
        };
        if let Some(n) = &system.netns {
            n.allow_only(&[system.settings.live_listen, system.watchdog.port])?;
        }
        system.start_checker()?;
        system.start_prober(o.silence_after)?;
        for check in ["blue", "green", "checker", "prober"] {
            system
                .wait_state(check, "up", Duration::from_secs(60))
                .await
                .with_context(|| {
                    format!(
                        "blue tasks: {}\ngreen tasks: {}",
                        system.blue.tasks(),
                        system.green.tasks()
                    )
                })?;
        }
        Ok(system)
    }

    pub fn service(&self, color: Color) -> &Service {
        match color {
            Color::Blue => &self.blue,
            Color::Green => &self.green,
        }
    }

    fn start_checker(&mut self) -> anyhow::Result<()> {
        let s = &self.settings;
        let child = Command::new(crate::bin("bgw-checker"))
            .args(["--watchdog-url", &self.watchdog.base])
            .args(["--token", CHECKER_TOKEN])
            .args(["--blue", &format!("127.0.0.1:{}", self.blue.port)])
            .args(["--green", &format!("127.0.0.1:{}", self.green.port)])
            .args(["--proxy", "127.0.0.1"])
            .args(["--live-listen", &s.live_listen.to_string()])
            .args(["--idle-listen", &s.idle_listen.to_string()])
            .arg("--live-file")
            .arg(&s.live_file)
            .args(["--interval", "300ms", "--timeout", "1s"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start bgw-checker")?;
        self.checker = Some(Proc::new(child));
        Ok(())
    }

    fn start_prober(&mut self, silence_after: &str) -> anyhow::Result<()> {
        let config = self.dir.path().join("prober.toml");
        // In its namespace the prober sees this machine as the host end of
        // the veth pair, like an uptime VM sees the manager's address; its
        // channels (on this machine's loopback) are out of its reach there.
        let (host, channels) = match &self.netns {
            Some(n) => (n.host_ip.clone(), String::new()),
            None => (
                "127.0.0.1".to_string(),
                format!(
                    "[notify.slack]\nwebhook_url = \"{}\"\n[notify.email]\nsmtp_url = \"{}\"\nfrom = \"prober@example.org\"\nto = [\"ops@example.org\"]\n",
                    self.slack.url(),
                    self.smtp.url()
                ),
            ),
        };
        std::fs::write(
            &config,
            format!(
                "watchdog_url = \"{}\"\ntoken = \"{PROBER_TOKEN}\"\npublic_url = \"http://{host}:{}/ping\"\ninterval = \"300ms\"\ntimeout = \"1s\"\nsilence_after = \"{silence_after}\"\nstate_dir = \"{}\"\n{channels}",
                self.watchdog.base,
                self.settings.live_listen,
                self.dir.path().join("prober-state").display(),
            ),
        )?;
        let mut cmd = match &self.netns {
            Some(n) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", &n.name])
                    .arg(crate::bin("bgw-prober"));
                cmd
            }
            None => Command::new(crate::bin("bgw-prober")),
        };
        let child = cmd
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start bgw-prober")?;
        self.prober = Some(Proc::new(child));
        Ok(())
    }

    pub fn live_port(&self) -> u16 {
        self.settings.live_listen
    }

    /// `bgw-watchdog --config <config> ARGS` (the operator's CLI).
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(crate::bin("bgw-watchdog"))
            .arg("--config")
            .arg(self.watchdog.config_path())
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run bgw-watchdog")
    }

    /// Polls until `check` is in `state`.
    pub async fn wait_state(
        &self,
        check: &str,
        state: &str,
        limit: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let c = self.watchdog.check(check).await;
            if c["state"] == state {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{check} is not {state} within {limit:?}: {c}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// State changes of `check` to `to` (`down`, `up`, ...), oldest first,
    /// leaving out the first one from `new` (the start, not a recovery).
    pub async fn transitions_to(&self, check: &str, to: &str) -> Vec<Value> {
        self.events_of("state", Some(check))
            .await
            .into_iter()
            .filter(|e| e["to"] == to && e["from"] != "new")
            .collect()
    }

    /// Events of `kind` (optionally of one check), oldest first.
    pub async fn events_of(&self, kind: &str, check: Option<&str>) -> Vec<Value> {
        self.watchdog
            .events()
            .await
            .into_iter()
            .filter(|e| e["kind"] == kind && check.is_none_or(|c| e["check"] == c))
            .collect()
    }

    /// Polls until an event of `kind` (of `check`) exists; returns it.
    pub async fn wait_event(
        &self,
        kind: &str,
        check: Option<&str>,
        limit: Duration,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(e) = self.events_of(kind, check).await.into_iter().next() {
                return Ok(e);
            }
            if Instant::now() > deadline {
                bail!("no {kind} event for {check:?} within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until a Slack message whose `text` contains `needle` arrived;
    /// returns its text and when it arrived.
    pub async fn wait_slack(
        &self,
        needle: &str,
        limit: Duration,
    ) -> anyhow::Result<(String, Instant)> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.slack.messages();
            let at = self.slack.received_at();
            if let Some((m, t)) = got
                .iter()
                .zip(at)
                .find(|(m, _)| m["text"].as_str().unwrap_or("").contains(needle))
            {
                return Ok((m["text"].as_str().unwrap_or("").to_string(), t));
            }
            if Instant::now() > deadline {
                bail!(
                    "no Slack message with {needle:?} within {limit:?}; got: {:?}",
                    got.iter().map(|m| m["text"].clone()).collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until an email whose subject is `subject` arrived.
    pub async fn wait_email(&self, subject: &str, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if self.smtp.messages().iter().any(|m| m.subject == subject) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "no email {subject:?} within {limit:?}; got: {:?}",
                    self.smtp
                        .messages()
                        .iter()
                        .map(|m| m.subject.clone())
                        .collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until the live port answers from `color` three times in a row.
    pub async fn wait_served_by(&self, color: Color, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        let mut in_a_row = 0;
        while in_a_row < 3 {
            if Instant::now() > deadline {
                bail!("the live port is not served by {color} within {limit:?}");
            }
            if served_by(self.live_port()).await.as_deref() == Some(color.as_str()) {
                in_a_row += 1;
            } else {
                in_a_row = 0;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// The versions the watchdog's instances of `color` report, by instance.
    pub async fn instances(&self, color: Color) -> Vec<(String, String, String)> {
        let check = self.watchdog.check(color.as_str()).await;
        check["instances"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|i| {
                        (
                            i["instance"].as_str().unwrap_or("").to_string(),
                            i["version"].as_str().unwrap_or("").to_string(),
                            i["status"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The daily log's lines.
    pub fn log_text(&self) -> String {
        self.watchdog.log_text()
    }

    /// The directory holding nginx's files, the prober's config and state.
    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// `docker secret create` + `docker service create` of one color.
async fn create_service(
    service: &Service,
    token: &str,
    version: &str,
    o: &SwarmOptions,
    watchdog_url: &str,
    dir: &Path,
    secrets: &mut Vec<String>,
) -> anyhow::Result<()> {
    let color = service.color;
    let secret = format!("{}-token", service.name);
    let file = dir.join(&secret);
    std::fs::write(&file, token)?;
    docker([
        "secret".as_ref(),
        "create".as_ref(),
        secret.as_ref(),
        file.as_os_str(),
    ])?;
    secrets.push(secret.clone());
    let listen = format!("127.0.0.1:{}", service.port);
    let env = |k: &str, v: &str| ["--env".to_string(), format!("{k}={v}")];
    let mut args: Vec<String> = [
        "service",
        "create",
        "--quiet",
        "--name",
        &service.name,
        "--network",
        "host",
        "--hostname",
        "{{.Task.Name}}",
        "--label",
        &format!("bgw-e2e.pid={}", std::process::id()),
        "--secret",
        &secret,
        "--restart-condition",
        "any",
        "--restart-delay",
        o.restart_delay,
        "--stop-grace-period",
        "5s",
        "--update-monitor",
        "1s",
        "--no-resolve-image",
    ]
    .map(String::from)
    .to_vec();
    args.extend(env("BGW_WATCHDOG_URL", watchdog_url));
    args.extend(env("BGW_CHECK", color.as_str()));
    args.extend(env("BGW_COLOR", color.as_str()));
    args.extend(env("BGW_TOKEN_FILE", &format!("/run/secrets/{secret}")));
    args.extend(env("BGW_INTERVAL", o.agent_interval));
    args.extend(env("BGW_TIMEOUT", "1s"));
    args.extend(env("BGW_APP_URL", &service.ping_url()));
    args.extend(env("APP_LISTEN", &listen));
    args.push(app_image(version));
    docker(&args).with_context(|| format!("creating {}", service.name))?;
    let url = service.ping_url();
    wait_until(Duration::from_secs(60), || async {
        matches!(reqwest::get(&url).await, Ok(r) if r.status().is_success())
    })
    .await
    .with_context(|| {
        format!(
            "{} does not answer {url}: {}",
            service.name,
            service.tasks()
        )
    })?;
    Ok(())
}

/// A network namespace joined to this machine by a veth pair
/// (`10.213.N.1` here, `10.213.N.2` inside); deleted on drop.
pub struct Netns {
    pub name: String,
    pub host_ip: String,
    pub ns_ip: String,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Netns {
    /// `ip netns add`, a veth pair, addresses, links up.
    pub fn create() -> anyhow::Result<Netns> {
        let pid = std::process::id();
        let n = pid % 250 + 1;
        let ns = Netns {
            name: format!("bgw-e2e-{pid}"),
            host_ip: format!("10.213.{n}.1"),
            ns_ip: format!("10.213.{n}.2"),
        };
        let (host_if, ns_if) = (format!("bgwh{pid}"), format!("bgwn{pid}"));
        ip(&["netns", "add", &ns.name])?;
        // From here on, drop deletes the namespace (and the pair with it).
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns", &ns.name,
        ])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/30", ns.host_ip),
            "dev",
            &host_if,
        ])?;
        ip(&["link", "set", &host_if, "up"])?;
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns.name, "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        inside(&["addr", "add", &format!("{}/30", ns.ns_ip), "dev", &ns_if])?;
        inside(&["link", "set", &ns_if, "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `iptables ARGS` inside the namespace.
    fn iptables(&self, args: &[&str]) -> anyhow::Result<()> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "iptables"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running iptables")?;
        if !out.status.success() {
            bail!(
                "iptables {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    fn reject_rule(&self, op: &str, port: u16) -> anyhow::Result<()> {
        let port = port.to_string();
        let mut args = vec![op, "OUTPUT"];
        if op == "-I" {
            args.push("1");
        }
        args.extend([
            "-p",
            "tcp",
            "-d",
            &self.host_ip,
            "--dport",
            &port,
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ]);
        self.iptables(&args)
    }

    /// Lets the namespace open TCP connections to these ports of this
    /// machine only (and its own loopback); everything else is refused.
    pub fn allow_only(&self, ports: &[u16]) -> anyhow::Result<()> {
        self.iptables(&["-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT"])?;
        self.iptables(&[
            "-A",
            "OUTPUT",
            "-m",
            "state",
            "--state",
            "ESTABLISHED,RELATED",
            "-j",
            "ACCEPT",
        ])?;
        for port in ports {
            let port = port.to_string();
            self.iptables(&[
                "-A",
                "OUTPUT",
                "-p",
                "tcp",
                "-d",
                &self.host_ip,
                "--dport",
                &port,
                "-j",
                "ACCEPT",
            ])?;
        }
        self.iptables(&["-A", "OUTPUT", "-j", "REJECT"])
    }

    /// A firewall rule inside the namespace, before the others: connections
    /// to `port` on this machine are refused (the public port still passes).
    pub fn block(&self, port: u16) -> anyhow::Result<()> {
        self.reject_rule("-I", port)
    }

    /// Removes the rule of [`Netns::block`].
    pub fn unblock(&self, port: u16) -> anyhow::Result<()> {
        self.reject_rule("-D", port)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

impl Drop for SwarmSystem {
    fn drop(&mut self) {
        for service in [&self.blue.name, &self.green.name] {
            let _ = docker(["service", "rm", service]);
        }
        // Tasks stop asynchronously; a secret in use cannot be removed.
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline
            && !(self.blue.containers().is_empty() && self.green.containers().is_empty())
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        for secret in &self.secrets {
            let _ = docker(["secret", "rm", secret]);
        }
    }
}
