//! `bgw-prober` against real processes on loopback: the prober binary, an
//! in-test watchdog that is stopped and restarted on the same port, the
//! workspace's Slack receiver and a real SMTP server (aiosmtpd).

mod harness;

use bgw_e2e::slack::{Mode, SlackReceiver};
use bgw_e2e::smtp::{SmtpOptions, SmtpSink};
use bgw_wire::{Color, Target};
use harness::{exit_code, public_endpoint, FakeWatchdog, Prober, Server};
use std::path::PathBuf;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
/// The tests' `silence_after`.
const SILENCE: Duration = Duration::from_secs(2);

struct Setup {
    watchdog: FakeWatchdog,
    _public: Server,
    slack: SlackReceiver,
    smtp: SmtpSink,
    config: PathBuf,
    state_dir: PathBuf,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let watchdog = FakeWatchdog::start().await;
    let public = public_endpoint().await;
    let slack = SlackReceiver::start().await;
    let smtp = SmtpSink::start(SmtpOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prober.toml");
    std::fs::write(
        &config,
        format!(
            "watchdog_url = \"{}\"\ntoken = \"prober-secret-token\"\npublic_url = \"{}/ping\"\n\
             interval = \"200ms\"\ntimeout = \"2s\"\nthreshold = \"1s\"\nsilence_after = \"2s\"\n\
             [notify.slack]\nwebhook_url = \"{}\"\n\
             [notify.email]\nsmtp_url = \"{}\"\nfrom = \"bgw@example.org\"\nto = [\"ops@example.org\"]\n",
            watchdog.server.url(),
            public.url(),
            slack.url(),
            smtp.url(),
        ),
    )
    .unwrap();
    let state_dir = dir.path().join("state");
    Setup {
        watchdog,
        _public: public,
        slack,
        smtp,
        config,
        state_dir,
        _dir: dir,
    }
}

impl Setup {
    fn prober(&self, name: &str) -> Prober {
        Prober::start(&self.config, &self.state_dir, name)
    }

    fn slack_texts(&self) -> Vec<String> {
        self.slack
            .messages()
            .iter()
            .map(|m| m["text"].as_str().unwrap_or("").to_string())
            .collect()
    }

    fn subjects(&self) -> Vec<String> {
        self.smtp
            .messages()
            .into_iter()
            .map(|m| m.subject)
            .collect()
    }

    async fn wait_for_reports(&self) {
        let n = self.watchdog.reports().len();
        harness::eventually("a report from the prober", || {
            (self.watchdog.reports().len() > n).then_some(())
        })
        .await;
    }

    /// Waits until Slack and email have each received `n` messages.
    async fn both_channels_received(&self, n: usize) {
        self.slack.wait_for(n, WAIT).await;
        self.smtp.wait_for(n, WAIT).await;
    }

    /// Waits until every alert is delivered and the outbox is empty.
    async fn outbox_drained(&self) {
        harness::eventually("an empty outbox", || {
            self.outbox_files().is_empty().then_some(())
        })
        .await;
    }

    fn outbox_files(&self) -> Vec<String> {
        std::fs::read_dir(self.state_dir.join("outbox"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".json"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn assert_no_secret(s: &Setup, stderr: &str) {
    assert!(!stderr.contains("prober-secret-token"), "token in the logs");
    assert!(
        !stderr.contains(s.slack.secret_path()),
        "Slack webhook path in the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prober_reports_the_public_endpoint_and_the_watchdog() {
    let s = setup().await;
    let prober = s.prober("p");
    s.wait_for_reports().await;
    let (auth, report) = s.watchdog.received().pop().unwrap();
    assert_eq!(auth, "Bearer prober-secret-token");
    assert_eq!(report.observer, "prober");
    let targets: Vec<Target> = report.results.iter().map(|r| r.target).collect();
    assert_eq!(targets, vec![Target::Public, Target::Watchdog]);
    let public = &report.results[0];
    assert!(public.ok, "{public:?}");
    assert_eq!(public.color, Some(Color::Blue), "from X-Bgw-Color");
    assert!(public.url.ends_with("/ping"));
    let watchdog = &report.results[1];
    assert!(watchdog.ok, "{watchdog:?}");
    assert!(watchdog.url.ends_with("/healthz"));
    assert_eq!(watchdog.color, None);
    assert!(s.slack.messages().is_empty() && s.smtp.messages().is_empty());
    assert_no_secret(&s, &prober.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_watchdog_raises_one_down_and_its_return_one_up_on_slack_and_email() {
    let mut s = setup().await;
    let prober = s.prober("p");
    s.wait_for_reports().await;

    s.watchdog.server.stop().await;
    s.both_channels_received(1).await;
    assert_eq!(s.subjects(), vec!["[bgw] DOWN watchdog"]);
    let text = &s.slack_texts()[0];
    assert!(text.contains("DOWN") && text.contains("watchdog"), "{text}");
    assert!(text.contains("watchdog silent for"), "{text}");
    let mail = &s.smtp.messages()[0];
    let body = mail.text.clone().unwrap_or_default();
    assert!(body.contains("connection refused"), "{body}");
    // The live color, as the public endpoint last said (X-Bgw-Color: blue).
    assert!(body.contains("Live color: blue"), "{body}");

    // Still silent: no second DOWN.
    tokio::time::sleep(SILENCE * 2).await;
    assert_eq!(s.slack.messages().len(), 1);
    assert_eq!(s.smtp.messages().len(), 1);

    s.watchdog.server.restart().await;
    s.both_channels_received(2).await;
    assert_eq!(
        s.subjects(),
        vec!["[bgw] DOWN watchdog", "[bgw] UP watchdog"]
    );
    assert!(s.slack_texts()[1].contains("UP"), "{}", s.slack_texts()[1]);
    // The outbox is empty once everything is delivered.
    s.outbox_drained().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.slack.messages().len(), 2);
    assert_no_secret(&s, &prober.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prober_killed_during_the_outage_does_not_repeat_the_down_and_still_sends_the_up() {
    let mut s = setup().await;
    let mut first = s.prober("first");
    s.wait_for_reports().await;
    s.watchdog.server.stop().await;
    s.both_channels_received(1).await;
    s.outbox_drained().await;
    first.kill9();

    let second = s.prober("second");
    // Longer than silence_after with the watchdog still silent.
    tokio::time::sleep(SILENCE * 2).await;
    assert_eq!(s.slack.messages().len(), 1, "DOWN repeated after restart");
    assert_eq!(s.smtp.messages().len(), 1, "DOWN repeated after restart");

    s.watchdog.server.restart().await;
    s.both_channels_received(2).await;
    assert_eq!(
        s.subjects(),
        vec!["[bgw] DOWN watchdog", "[bgw] UP watchdog"]
    );
    assert!(second.stderr().contains("restored"), "{}", second.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_pending_while_slack_was_down_is_delivered_after_a_restart() {
    let mut s = setup().await;
    s.slack.set_mode(Mode::Down).await;
    let mut first = s.prober("first");
    s.wait_for_reports().await;
    s.watchdog.server.stop().await;

    // Email gets the DOWN; Slack's copy waits in the outbox.
    s.smtp.wait_for(1, WAIT).await;
    let pending = harness::eventually("the Slack entry in the outbox", || {
        let files = s.outbox_files();
        (files.len() == 1).then_some(files)
    })
    .await;
    assert!(pending[0].ends_with("-down-slack.json"), "{pending:?}");
    first.kill9();

    s.slack.set_mode(Mode::Ok).await;
    let second = s.prober("second");
    s.slack.wait_for(1, WAIT).await;
    assert!(s.slack_texts()[0].contains("DOWN"));
    s.outbox_drained().await;
    tokio::time::sleep(SILENCE).await;
    assert_eq!(s.smtp.messages().len(), 1, "email sent twice");
    assert_eq!(s.slack.messages().len(), 1, "Slack sent twice");
    assert!(second
        .stderr()
        .contains("resuming pending alert deliveries"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_prober_with_exit_code_0() {
    let s = setup().await;
    let mut prober = s.prober("p");
    s.wait_for_reports().await;
    harness::send_term(prober.child.id());
    assert_eq!(exit_code(&mut prober.child).await, Some(0));
    assert!(prober.stderr().contains("bgw-prober stopped"));
}

#[test]
fn a_bad_value_exits_2_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value, named) in [
        ("BGW_SILENCE_AFTER", "forever", "`silence_after`"),
        ("BGW_PUBLIC_URL", "nowhere", "`public_url`"),
        ("BGW_NOTIFY_SLACK_WEBHOOK_URL", "not a url", "notify.slack"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bgw-prober"))
            .env("BGW_WATCHDOG_URL", "http://127.0.0.1:9")
            .env("BGW_PUBLIC_URL", "http://127.0.0.1:9/ping")
            .env("BGW_TOKEN", "secret-value")
            .env("BGW_STATE_DIR", dir.path())
            .env(key, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}: {stderr}");
        assert!(stderr.contains(named), "{key}: {stderr}");
        assert!(!stderr.contains("secret-value"), "{stderr}");
    }
}

#[test]
fn help_explains_every_key() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bgw-prober"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for key in bgw_prober::settings::KEYS {
        assert!(
            help.contains(&format!("`{key}`")),
            "{key} missing in --help"
        );
    }
}
