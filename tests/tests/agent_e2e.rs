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
