//! End-to-end: the real `bgw-agent` against the real `bgw-watchdog serve`
//! (its own SQLite file and log dir) with the real `bgw-testapp`, all as
//! processes on loopback. What an operator relies on: an agent brings its
//! service up, a killed agent takes it down after period + grace, a crash in
//! wrapper mode takes it down at once, and a SIGTERM is a planned stop that
//! raises nothing.

use bgw_e2e::bin;
use bgw_e2e::watchdog::{free_port, spawn_watchdog, Watchdog, BLUE_TOKEN};
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Every wait polls up to this long.
const DEADLINE: Duration = Duration::from_secs(15);

/// The real watchdog with one `service` check `blue`.
async fn watchdog(period: &str, grace: &str) -> Watchdog {
    spawn_watchdog(&format!(
        r#"
[[check]]
name = "blue"
kind = "service"
color = "blue"
period = "{period}"
grace = "{grace}"
min_instances = 1
token = "{BLUE_TOKEN}"
"#
    ))
    .await
}

/// A process (and its process group) killed on drop.
struct Proc(Child);

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0);
        Proc(cmd.spawn().expect("spawn"))
    }

    /// kill(1): the workspace forbids `unsafe`.
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.0.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }

    async fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < DEADLINE, "the process did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.0.id())])
                .status();
            let _ = self.0.wait();
        }
    }
}

/// `bgw-agent` for check `blue`; `wrap` = the app's port in wrapper mode.
fn agent(w: &Watchdog, instance: &str, app_port: u16, interval: &str, wrap: bool) -> Proc {
    let mut cmd = Command::new(bin("bgw-agent"));
    cmd.env_clear()
        .env("BGW_WATCHDOG_URL", &w.base)
        .env("BGW_TOKEN", BLUE_TOKEN)
        .args(["--check", "blue", "--color", "blue", "--instance", instance])
        .args(["--interval", interval])
        .arg("--app-url")
        .arg(format!("http://127.0.0.1:{app_port}/ping"));
    if wrap {
        cmd.arg("--")
            .arg(bin("bgw-testapp"))
            .args(testapp_args(app_port));
    }
    Proc::spawn(cmd)
}

fn testapp_args(port: u16) -> [String; 4] {
    [
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--color".into(),
        "blue".into(),
    ]
}

fn testapp(port: u16) -> Proc {
    let mut cmd = Command::new(bin("bgw-testapp"));
    cmd.args(testapp_args(port));
    Proc::spawn(cmd)
}

fn instance_events<'a>(events: &'a [Value], instance: &str, change: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| {
            e["kind"] == "instance" && e["instance"] == instance && e["data"]["change"] == change
        })
        .collect()
}

#[tokio::test]
async fn an_agent_brings_its_service_up_and_kill_9_takes_it_down_after_period_plus_grace() {
    let w = watchdog("1s", "1s").await;
    let port = free_port();
    let _app = testapp(port);
    let mut agent = agent(&w, "a1", port, "1s", false);

    w.wait_state("blue", "up").await;
    let up = w.check("blue").await;
    assert_eq!(up["instances"][0]["instance"], "a1", "{up}");
    assert_eq!(up["instances"][0]["status"], "ok", "{up}");

    // Heartbeats every 1 s against a 1 s period must not flap to `late`.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let events = w.events().await;
    let first_up = events
        .iter()
        .position(|e| e["kind"] == "state" && e["to"] == "up")
        .unwrap();
    let flaps: Vec<_> = events[first_up..]
        .iter()
        .filter(|e| e["kind"] == "state")
        .collect();
    assert_eq!(flaps.len(), 1, "the service left `up`: {flaps:?}");

    agent.0.kill().unwrap(); // SIGKILL: no goodbye
    agent.0.wait().unwrap();
    let killed = Instant::now();
    w.wait_state("blue", "down").await;
    let down = w.check("blue").await;
    println!("kill -9 → down in {} ms", killed.elapsed().as_millis());
    let reason = down["reason"].as_str().unwrap();
    assert!(
        reason.contains("a1: no heartbeat") && reason.contains("(period 1s, grace 1s)"),
        "{down}"
    );
    let events = w.events().await;
    assert_eq!(
        instance_events(&events, "a1", "missing").len(),
        1,
        "{events:?}"
    );
    // The alert came from the deadline, not from a goodbye.
    assert!(instance_events(&events, "a1", "left").is_empty());
}

#[tokio::test]
async fn an_app_crash_in_wrapper_mode_takes_the_service_down_at_once() {
    // A 60 s deadline: only the agent's event-driven `fail` can explain a
    // quick `down`.
    let w = watchdog("30s", "30s").await;
    let port = free_port();
    let mut agent = agent(&w, "a1", port, "30s", true);
    w.wait_state("blue", "up").await;

    let crashed = Instant::now();
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/control/exit?code=3"))
        .send()
        .await
        .unwrap();
    let start = Instant::now();
    let failing = loop {
        let events = w.events().await;
        if let Some(e) = instance_events(&events, "a1", "failing").first() {
            break (*e).clone();
        }
        assert!(start.elapsed() < DEADLINE, "no failing event: {events:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    println!(
        "app crash → instance failing event seen in {} ms",
        crashed.elapsed().as_millis()
    );
    assert_eq!(failing["reason"], "app exited with code 3", "{failing}");
    w.wait_state("blue", "down").await;
    let down = w.check("blue").await;
    assert!(
        down["reason"]
            .as_str()
            .unwrap()
            .contains("a1: app exited with code 3"),
        "{down}"
    );
    assert_eq!(agent.wait_exit().await.code(), Some(3));
}

#[tokio::test]
async fn sigterm_is_a_planned_stop_that_raises_no_alert() {
    let w = watchdog("1s", "1s").await;
    let (p1, p2) = (free_port(), free_port());
    let mut a1 = agent(&w, "a1", p1, "1s", true);
    let _a2 = agent(&w, "a2", p2, "1s", true);
    w.wait_check("blue", "two instances up", |c| {
        c["state"] == "up"
            && c["instances"]
                .as_array()
                .is_some_and(|i| i.len() == 2 && i.iter().all(|i| i["status"] == "ok"))
    })
    .await;

    a1.signal("TERM");
    assert_eq!(a1.wait_exit().await.code(), Some(0), "the app's code");
    // a1 is dropped at its deadline (period + grace after its goodbye).
    let after = w
        .wait_check("blue", "a1 to be gone", |c| {
            c["instances"]
                .as_array()
                .is_some_and(|i| i.iter().all(|i| i["instance"] != "a1"))
        })
        .await;
    assert_eq!(after["state"], "up", "{after}");
    let events = w.events().await;
    assert_eq!(
        instance_events(&events, "a1", "left").len(),
        1,
        "{events:?}"
    );
    assert!(
        instance_events(&events, "a1", "missing").is_empty(),
        "{events:?}"
    );
    assert!(
        instance_events(&events, "a1", "failing").is_empty(),
        "{events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| e["kind"] == "state" && e["to"] == "down"),
        "{events:?}"
    );
}

/// `bgw-agent` (sidecar mode) for any service check.
fn agent_for(w: &Watchdog, check: &str, token: &str, instance: &str, app_port: u16) -> Proc {
    let mut cmd = Command::new(bin("bgw-agent"));
    cmd.env_clear()
        .env("BGW_WATCHDOG_URL", &w.base)
        .env("BGW_TOKEN", token)
        .args(["--check", check, "--color", check, "--instance", instance])
        .args(["--interval", "1s"])
        .arg("--app-url")
        .arg(format!("http://127.0.0.1:{app_port}/ping"));
    Proc::spawn(cmd)
}

#[tokio::test]
async fn a_watchdog_restart_records_nothing_for_a_running_agent_and_alerts_a_killed_one_within_its_period_and_grace(
) {
    const GREEN_TOKEN: &str = "green-token-0123456789";
    let slack = bgw_e2e::slack::SlackReceiver::start().await;
    let checks = format!(
        r#"
[[check]]
name = "blue"
kind = "service"
color = "blue"
period = "1s"
grace = "1s"
token = "{BLUE_TOKEN}"

[[check]]
name = "green"
kind = "service"
color = "green"
period = "1s"
grace = "1s"
token = "{GREEN_TOKEN}"
"#
    );
    // The README's notification defaults: only the Slack webhook is set.
    let notify = format!("[notify.slack]\nwebhook_url = \"{}\"\n", slack.url());
    let mut w = bgw_e2e::watchdog::spawn_watchdog_with(&checks, &notify).await;
    let (blue_port, green_port) = (free_port(), free_port());
    let _apps = (testapp(blue_port), testapp(green_port));
    let _blue = agent_for(&w, "blue", BLUE_TOKEN, "b1", blue_port);
    let mut green = agent_for(&w, "green", GREEN_TOKEN, "g1", green_port);
    w.wait_state("blue", "up").await;
    w.wait_state("green", "up").await;

    w.kill9();
    green.0.kill().unwrap();
    green.0.wait().unwrap();
    let green_killed = chrono::Utc::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let restart = chrono::Utc::now();
    let restarted = Instant::now();
    w.start().await;

    let got = slack.wait_for(1, DEADLINE).await;
    let alerted = restarted.elapsed();
    let text = got[0]["text"].as_str().unwrap();
    assert!(text.starts_with("[bgw] DOWN green"), "{text}");
    println!(
        "restart → DOWN green at Slack in {} ms",
        alerted.as_millis()
    );
    assert!(
        alerted < Duration::from_secs(3),
        "within period + grace (+ 1 s) of the restart: {alerted:?}"
    );
    let events = w.events().await;
    let down = events
        .iter()
        .find(|e| e["check"] == "green" && e["to"] == "down")
        .expect("green's down");
    let at = chrono::DateTime::parse_from_rfc3339(down["at"].as_str().unwrap()).unwrap();
    assert!(
        at > green_killed && at < restart,
        "dated at its deadline, while the watchdog was down: {at}"
    );
    // Give the running agent's check its whole hold, and then some.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = w.events().await;
    let blue: Vec<_> = events
        .iter()
        .filter(|e| {
            e["check"] == "blue"
                && (e["to"] == "late" || e["to"] == "down" || e["data"]["change"] == "missing")
        })
        .collect();
    assert!(blue.is_empty(), "nothing stored for blue: {blue:?}");
    let log = w.log_text();
    assert!(
        !log.contains("blue DOWN") && !log.contains("blue LATE") && !log.contains("b1 missing"),
        "{log}"
    );
    assert!(log.contains("ALERT: green DOWN"), "{log}");
    assert_eq!(slack.messages().len(), 1, "only green's DOWN was sent");
}
