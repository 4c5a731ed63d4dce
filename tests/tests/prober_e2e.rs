//! `bgw-prober` against the real watchdog, the Slack receiver and a real SMTP
//! server: its reports are accepted and are its heartbeat, its targets show
//! up in the watchdog, and when the watchdog is killed it alerts on its own
//! (one DOWN), then UP when the watchdog is back. It tells no lies about its
//! own restarts: its own downtime is not the watchdog's silence, an outage
//! stays one outage across a restart, a `state_dir` belongs to one running
//! prober, and a state about another watchdog is ignored.

use bgw_e2e::nginx::{free_port, App};
use bgw_e2e::slack::SlackReceiver;
use bgw_e2e::smtp::{SmtpOptions, SmtpSink};
use bgw_e2e::watchdog::{spawn_watchdog, Watchdog};
use bgw_wire::Color;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PROBER_TOKEN: &str = "prober-token-0123456789";
/// The probers' `silence_after`.
const SILENCE: Duration = Duration::from_secs(2);

struct Prober {
    child: Child,
    stderr: PathBuf,
}

impl Prober {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (a planned stop) and wait for the exit.
    fn terminate(&mut self) -> Option<i32> {
        bgw_e2e::watchdog::send_signal(self.child.id(), "TERM");
        self.child.wait().ok().and_then(|s| s.code())
    }

    /// Waits until the process exits and returns its code.
    async fn exit_code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the prober did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_stderr(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.stderr().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the prober's stderr: {}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The prober's config in `dir` (`prober.toml`, `state_dir = dir/state`),
/// alerting to `slack` and, when given, to `smtp`.
fn write_config(
    dir: &Path,
    w: &Watchdog,
    public: u16,
    slack: &SlackReceiver,
    smtp: Option<&SmtpSink>,
) -> PathBuf {
    let config = dir.join("prober.toml");
    let email = smtp.map_or(String::new(), |s| {
        format!(
            "[notify.email]\nsmtp_url = \"{}\"\nfrom = \"bgw-prober@example.org\"\nto = [\"ops@example.org\"]\n",
            s.url()
        )
    });
    std::fs::write(
        &config,
        format!(
            "watchdog_url = \"{}\"\ntoken = \"{PROBER_TOKEN}\"\npublic_url = \"http://127.0.0.1:{public}/ping\"\n\
             interval = \"300ms\"\ntimeout = \"1s\"\nsilence_after = \"{}s\"\nstate_dir = \"{}\"\n\
             [notify.slack]\nwebhook_url = \"{}\"\n{email}",
            w.base,
            SILENCE.as_secs(),
            dir.join("state").display(),
            slack.url()
        ),
    )
    .unwrap();
    config
}

/// Starts `bgw-prober --config config`, its stderr in `config`'s directory
/// as `<name>.stderr`.
fn start_prober(config: &Path, name: &str) -> Prober {
    let stderr = config.with_file_name(format!("{name}.stderr"));
    let child = Command::new(bgw_e2e::bin("bgw-prober"))
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("start bgw-prober");
    Prober { child, stderr }
}

fn count(slack: &SlackReceiver, needle: &str) -> usize {
    slack
        .messages()
        .iter()
        .filter(|m| m["text"].as_str().unwrap_or("").contains(needle))
        .count()
}

async fn wait_for(slack: &SlackReceiver, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while count(slack, needle) == 0 {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} at Slack: {:?}",
            slack.messages()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn subjects(smtp: &SmtpSink) -> Vec<String> {
    smtp.messages().into_iter().map(|m| m.subject).collect()
}

fn prober_check() -> String {
    format!(
        "[[check]]\nname = \"prober\"\nkind = \"reporter\"\nperiod = \"1s\"\ngrace = \"1s\"\ntoken = \"{PROBER_TOKEN}\"\n"
    )
}

/// The real watchdog with the prober's reporter check, the test app as the
/// public endpoint, the Slack receiver and the SMTP server.
struct Setup {
    w: Watchdog,
    _app: App,
    slack: SlackReceiver,
    smtp: SmtpSink,
    dir: tempfile::TempDir,
    config: PathBuf,
}

async fn setup() -> Setup {
    let app = App::start(&bgw_e2e::bin("bgw-testapp"), Color::Blue, free_port())
        .await
        .unwrap();
    let slack = SlackReceiver::start().await;
    let smtp = SmtpSink::start(SmtpOptions::default()).await;
    let w = spawn_watchdog(&prober_check()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &w, app.port, &slack, Some(&smtp));
    Setup {
        w,
        _app: app,
        slack,
        smtp,
        dir,
        config,
    }
}

impl Setup {
    /// Nothing reached Slack or the SMTP server.
    fn assert_silent(&self, why: &str) {
        assert!(
            self.slack.messages().is_empty(),
            "{why}: {:?}",
            self.slack.messages()
        );
        assert!(
            self.smtp.messages().is_empty(),
            "{why}: {:?}",
            subjects(&self.smtp)
        );
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Waits until every alert is delivered (the outbox holds no entry), so
    /// that a kill cannot leave one to be sent again.
    async fn outbox_drained(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let pending = std::fs::read_dir(self.state_dir().join("outbox"))
                .map(|d| {
                    d.filter_map(Result::ok)
                        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                        .count()
                })
                .unwrap_or(0);
            if pending == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "{pending} alerts still pending");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn the_prober_reports_to_the_real_watchdog_and_alerts_on_its_own_when_it_dies() {
    let app = App::start(&bgw_e2e::bin("bgw-testapp"), Color::Blue, free_port())
        .await
        .unwrap();
    let slack = SlackReceiver::start().await;
    let mut w = spawn_watchdog(&prober_check()).await;
    let state = tempfile::tempdir().unwrap();
    let config = write_config(state.path(), &w, app.port, &slack, None);
    let _prober = start_prober(&config, "prober");
    w.wait_state("prober", "up").await;
    let (_, targets) = w.admin_get("/api/v1/targets").await;
    let seen: Vec<&str> = targets["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["observer"] == "prober" && t["ok"] == true)
        .filter_map(|t| t["target"].as_str())
        .collect();
    assert!(
        seen.contains(&"public") && seen.contains(&"watchdog"),
        "{targets}"
    );
    assert!(
        w.log_text().contains("] - [public - OK] "),
        "{}",
        w.log_text()
    );

    w.kill9();
    wait_for(&slack, "DOWN watchdog").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count(&slack, "DOWN watchdog"), 1, "one DOWN per outage");
    w.start().await;
    wait_for(&slack, "UP watchdog").await;
    w.wait_state("prober", "up").await;
    assert_eq!(count(&slack, "DOWN watchdog"), 1);
    assert_eq!(count(&slack, "UP watchdog"), 1);
}

#[tokio::test]
async fn a_quiet_restart_longer_than_silence_after_sends_nothing() {
    let s = setup().await;
    let mut prober = start_prober(&s.config, "first");
    s.w.wait_state("prober", "up").await;
    // Let it save its state after hearing from the watchdog.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(prober.terminate(), Some(0));

    // Stopped for longer than silence_after while the watchdog is fine.
    tokio::time::sleep(SILENCE + Duration::from_secs(1)).await;
    let again = start_prober(&s.config, "second");
    again.wait_stderr("bgw-prober started").await;
    // Longer than silence_after again: the watchdog answers all along.
    tokio::time::sleep(SILENCE * 2).await;
    s.assert_silent("alert after a quiet restart");
    s.w.wait_state("prober", "up").await;
    let log = again.stderr();
    assert!(!log.contains("the watchdog is silent"), "{log}");
    assert!(!log.contains("restored"), "{log}");
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_real_outage_sends_one_down_and_one_up_in_all() {
    let mut s = setup().await;
    let mut first = start_prober(&s.config, "first");
    s.w.wait_state("prober", "up").await;

    s.w.kill9();
    s.slack.wait_for(1, Duration::from_secs(15)).await;
    s.smtp.wait_for(1, Duration::from_secs(15)).await;
    s.outbox_drained().await;
    first.kill9();

    // Down longer than silence_after, and the watchdog still dead.
    tokio::time::sleep(SILENCE + Duration::from_secs(1)).await;
    let second = start_prober(&s.config, "second");
    second.wait_stderr("restored").await;
    tokio::time::sleep(SILENCE * 2).await;
    assert_eq!(
        count(&s.slack, "DOWN watchdog"),
        1,
        "DOWN repeated after the restart"
    );
    assert_eq!(subjects(&s.smtp), vec!["[bgw] DOWN watchdog"]);

    s.w.start().await;
    wait_for(&s.slack, "UP watchdog").await;
    s.smtp.wait_for(2, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count(&s.slack, "DOWN watchdog"), 1);
    assert_eq!(count(&s.slack, "UP watchdog"), 1);
    assert_eq!(s.slack.messages().len(), 2);
    assert_eq!(
        subjects(&s.smtp),
        vec!["[bgw] DOWN watchdog", "[bgw] UP watchdog"]
    );
}

#[tokio::test]
async fn a_second_prober_on_the_same_state_dir_refuses_to_start() {
    let s = setup().await;
    let mut first = start_prober(&s.config, "first");
    first.wait_stderr("bgw-prober started").await;

    let mut second = start_prober(&s.config, "second");
    assert_eq!(second.exit_code().await, Some(2));
    let err = second.stderr();
    assert!(err.contains("key `state_dir`"), "{err}");
    assert!(
        err.contains(&format!(
            "in use by another bgw-prober (pid {})",
            first.child.id()
        )),
        "{err}"
    );
    // The first one is unharmed and still reports.
    assert!(
        first.child.try_wait().unwrap().is_none(),
        "the first prober died"
    );
    s.w.wait_state("prober", "up").await;

    // Once it is gone (even by kill -9), the directory is free again.
    first.kill9();
    let mut third = start_prober(&s.config, "third");
    third.wait_stderr("bgw-prober started").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        third.child.try_wait().unwrap().is_none(),
        "{}",
        third.stderr()
    );
    assert_eq!(third.terminate(), Some(0));
    s.assert_silent("no alert from any of them");
}

#[tokio::test]
async fn a_state_file_from_another_watchdog_url_is_ignored() {
    let s = setup().await;
    // A state left by a prober of another watchdog, in the middle of an
    // outage: adopted, it would end with an UP as soon as ours answers.
    std::fs::create_dir_all(s.state_dir()).unwrap();
    let foreign = "http://127.0.0.1:9/";
    std::fs::write(
        s.state_dir().join("state.json"),
        format!(
            r#"{{"watchdog_url": "{foreign}", "watch": {{"last_answer": "2026-01-01T00:00:00Z",
               "outage": {{"down_at": "2026-01-01T00:00:30Z", "event_id": 1767225630000}}}},
               "enqueuing": null}}"#
        ),
    )
    .unwrap();

    let prober = start_prober(&s.config, "p");
    prober
        .wait_stderr("saved state is about another watchdog; ignoring it")
        .await;
    assert!(prober.stderr().contains(foreign), "{}", prober.stderr());
    s.w.wait_state("prober", "up").await;
    tokio::time::sleep(SILENCE * 2).await;
    s.assert_silent("the other watchdog's outage was taken for ours");
    assert!(!prober.stderr().contains("restored"), "{}", prober.stderr());
    // The state now belongs to the configured watchdog.
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.state_dir().join("state.json")).unwrap()).unwrap();
    assert_eq!(saved["watchdog_url"], format!("{}/", s.w.base));
    assert_eq!(saved["watch"]["outage"], serde_json::Value::Null);
}
