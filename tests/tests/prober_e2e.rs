//! `bgw-prober` against the real watchdog: its reports are accepted and are
//! its heartbeat, its targets show up in the watchdog, and when the
//! watchdog is killed it alerts on its own (one DOWN), then UP when the
//! watchdog is back.

use bgw_e2e::nginx::{free_port, App};
use bgw_e2e::slack::SlackReceiver;
use bgw_e2e::watchdog::{spawn_watchdog, Watchdog};
use bgw_wire::Color;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PROBER_TOKEN: &str = "prober-token-0123456789";

struct Prober(Child);

impl Drop for Prober {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_prober(
    w: &Watchdog,
    public: u16,
    slack: &SlackReceiver,
    state: &std::path::Path,
) -> Prober {
    let config = state.join("prober.toml");
    std::fs::write(
        &config,
        format!(
            "watchdog_url = \"{}\"\ntoken = \"{PROBER_TOKEN}\"\npublic_url = \"http://127.0.0.1:{public}/ping\"\n\
             interval = \"300ms\"\ntimeout = \"1s\"\nsilence_after = \"2s\"\nstate_dir = \"{}\"\n\
             [notify.slack]\nwebhook_url = \"{}\"\n",
            w.base,
            state.join("state").display(),
            slack.url()
        ),
    )
    .unwrap();
    Prober(
        Command::new(bgw_e2e::bin("bgw-prober"))
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bgw-prober"),
    )
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

#[tokio::test]
async fn the_prober_reports_to_the_real_watchdog_and_alerts_on_its_own_when_it_dies() {
    let app = App::start(&bgw_e2e::bin("bgw-testapp"), Color::Blue, free_port())
        .await
        .unwrap();
    let slack = SlackReceiver::start().await;
    let checks = format!(
        "[[check]]\nname = \"prober\"\nkind = \"reporter\"\nperiod = \"1s\"\ngrace = \"1s\"\ntoken = \"{PROBER_TOKEN}\"\n"
    );
    let mut w = spawn_watchdog(&checks).await;
    let state = tempfile::tempdir().unwrap();
    let _prober = start_prober(&w, app.port, &slack, state.path());
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
