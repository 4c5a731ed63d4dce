//! End-to-end: `bgw-agent` as the entrypoint (PID 1) of real Docker
//! containers, wrapping the real `bgw-testapp`, against the real
//! `bgw-watchdog serve` on loopback. The image is built from the debug
//! binaries at test time (no registry here); containers use the host
//! network and are removed on drop. What an operator relies on: a container
//! keeps its service up under its own name, `docker kill` trips the
//! dead-man switch, an app crash is reported at once and becomes the
//! container's exit code, and `docker stop` is a planned stop that raises
//! no alert.
//!
//! Without a usable Docker engine (`docker info` fails) each test says so
//! and returns, unless `BGW_E2E_REQUIRE_DOCKER` is set (CI with Docker),
//! where that is a failure.

use bgw_e2e::container::{agent_image, docker_unavailable, Container};
use bgw_e2e::watchdog::{free_port, spawn_watchdog, Watchdog, BLUE_TOKEN};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Every wait polls up to this long.
const DEADLINE: Duration = Duration::from_secs(15);

/// The image, or `None` (with a message) when Docker cannot be used.
fn image(test: &str) -> Option<String> {
    if let Some(why) = docker_unavailable() {
        assert!(
            std::env::var_os("BGW_E2E_REQUIRE_DOCKER").is_none(),
            "BGW_E2E_REQUIRE_DOCKER is set but Docker is not usable: {why}"
        );
        eprintln!("SKIPPED {test}: Docker is not usable here ({why})");
        return None;
    }
    Some(agent_image().expect("building the agent image"))
}

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

/// A container whose PID 1 is `bgw-agent … -- /bgw-testapp --listen
/// 127.0.0.1:<port>`; the instance name is left to the agent's default
/// (the container's hostname). The token goes in the environment, as the
/// agent's README advises (a flag would show in `ps`).
fn agent_container(image: &str, w: &Watchdog, port: u16, interval: &str) -> Container {
    let docker_args = ["--env".to_string(), format!("BGW_TOKEN={BLUE_TOKEN}")];
    let listen = format!("127.0.0.1:{port}");
    let args = [
        "--watchdog-url",
        &w.base,
        "--check",
        "blue",
        "--color",
        "blue",
        "--interval",
        interval,
        "--app-url",
        &format!("http://{listen}/ping"),
        "--",
        "/bgw-testapp",
        "--listen",
        &listen,
        "--color",
        "blue",
    ]
    .map(String::from);
    Container::run(image, "agent", &docker_args, &args)
}

/// Polls until an instance event `change` for `instance` exists; returns it.
async fn wait_instance_event(w: &Watchdog, instance: &str, change: &str) -> Value {
    let start = Instant::now();
    loop {
        let events = w.events().await;
        if let Some(e) = instance_events(&events, instance, change).first() {
            return (*e).clone();
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no {change} event for {instance}: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn instance_events<'a>(events: &'a [Value], instance: &str, change: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| {
            e["kind"] == "instance" && e["instance"] == instance && e["data"]["change"] == change
        })
        .collect()
}

/// The check's instance named `name`, if it has one.
fn instance<'a>(check: &'a Value, name: &str) -> Option<&'a Value> {
    check["instances"]
        .as_array()?
        .iter()
        .find(|i| i["instance"] == name)
}

/// Waits until the container's instance reports `ok`; returns the check.
async fn wait_instance_ok(w: &Watchdog, c: &Container) -> Value {
    let name = c.hostname();
    let start = Instant::now();
    loop {
        let check = w.check("blue").await;
        if check["state"] == "up" && instance(&check, &name).is_some_and(|i| i["status"] == "ok") {
            return check;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{name} never reported ok: {check}\nrunning: {}; logs:\n{}",
            c.is_running(),
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_agent_in_a_container_keeps_its_service_up() {
    let Some(image) = image("an_agent_in_a_container_keeps_its_service_up") else {
        return;
    };
    let w = watchdog("1s", "1s").await;
    let c = agent_container(&image, &w, free_port(), "300ms");

    // The agent named its instance after the container's hostname, by default.
    let hostname = c.hostname();
    assert_eq!(hostname, c.name);
    let up = wait_instance_ok(&w, &c).await;
    let mine = instance(&up, &hostname).unwrap();
    assert_eq!(mine["color"], "blue", "{up}");
    assert!(
        mine["detail"]
            .as_str()
            .unwrap()
            .starts_with("GET /ping 200"),
        "the agent probed the app inside the container: {up}"
    );
    assert_eq!(up["instances"].as_array().unwrap().len(), 1, "{up}");

    // It keeps beating (ten heartbeats = 3 s at 300 ms) and the check stays up.
    let later = w
        .wait_check("blue", "ten heartbeats", |check| {
            instance(check, &hostname).is_some_and(|i| i["seq"].as_u64().unwrap_or(0) >= 10)
        })
        .await;
    assert_eq!(later["state"], "up", "{later}");
    let transitions = w.transitions("blue").await;
    assert_eq!(
        transitions,
        [("new".to_string(), "up".to_string())],
        "the service left `up`"
    );
    assert!(c.is_running(), "logs:\n{}", c.logs());
}

#[tokio::test]
async fn docker_kill_is_noticed_by_the_dead_man_switch() {
    let Some(image) = image("docker_kill_is_noticed_by_the_dead_man_switch") else {
        return;
    };
    let w = watchdog("1s", "1s").await;
    let c = agent_container(&image, &w, free_port(), "300ms");
    let name = c.hostname();
    wait_instance_ok(&w, &c).await;

    c.kill("KILL"); // the agent (PID 1) dies with its app: no goodbye
    let killed = Instant::now();
    assert_eq!(c.wait_exit().await.code, 137, "128 + SIGKILL");
    w.wait_state("blue", "down").await;
    println!(
        "docker kill → down in {} ms (period 1s + grace 1s)",
        killed.elapsed().as_millis()
    );
    let down = w.check("blue").await;
    let reason = down["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("{name}: no heartbeat"))
            && reason.contains("(period 1s, grace 1s)"),
        "{down}"
    );
    let events = w.events().await;
    assert_eq!(
        instance_events(&events, &name, "missing").len(),
        1,
        "{events:?}"
    );
    // Only the deadline can have noticed: nothing was said on the way out.
    assert!(
        instance_events(&events, &name, "left").is_empty(),
        "{events:?}"
    );
    assert!(
        instance_events(&events, &name, "failing").is_empty(),
        "{events:?}"
    );
}

#[tokio::test]
async fn the_app_crashing_inside_the_container_is_reported_at_once() {
    let Some(image) = image("the_app_crashing_inside_the_container_is_reported_at_once") else {
        return;
    };
    // A 60 s deadline and a 30 s interval: within the 15 s we wait, only
    // the agent's event-driven `fail` can explain a `down`.
    let w = watchdog("30s", "30s").await;
    let port = free_port();
    let c = agent_container(&image, &w, port, "30s");
    let name = c.hostname();
    wait_instance_ok(&w, &c).await;

    let crashed = Instant::now();
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/control/exit?code=3"))
        .send()
        .await
        .unwrap();
    let failing = wait_instance_event(&w, &name, "failing").await;
    println!(
        "app crash in a container → failing event seen in {} ms",
        crashed.elapsed().as_millis()
    );
    assert_eq!(failing["reason"], "app exited with code 3", "{failing}");
    w.wait_state("blue", "down").await;
    let down = w.check("blue").await;
    assert!(
        down["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("{name}: app exited with code 3")),
        "{down}"
    );
    // The container exits with the app's code, so a restart policy sees it.
    let exit = c.wait_exit().await;
    assert_eq!(exit.code, 3, "{exit:?}; logs:\n{}", c.logs());
    let events = w.events().await;
    assert!(
        instance_events(&events, &name, "missing").is_empty(),
        "{events:?}"
    );
}

#[tokio::test]
async fn docker_stop_is_a_planned_stop_without_alert() {
    let Some(image) = image("docker_stop_is_a_planned_stop_without_alert") else {
        return;
    };
    let w = watchdog("1s", "1s").await;
    let c1 = agent_container(&image, &w, free_port(), "300ms");
    let c2 = agent_container(&image, &w, free_port(), "300ms");
    let (n1, n2) = (c1.hostname(), c2.hostname());
    assert_ne!(n1, n2, "each container is its own instance");
    wait_instance_ok(&w, &c1).await;
    wait_instance_ok(&w, &c2).await;

    // SIGTERM to the agent (PID 1): `stopping`, then the app gets SIGTERM
    // and exits 0. Had the agent ignored it, Docker would SIGKILL it after
    // 10 s and the code would be 137.
    let took = c1.stop();
    println!("docker stop took {} ms", took.as_millis());
    let exit = c1.wait_exit().await;
    assert_eq!(exit.code, 0, "{exit:?}; logs:\n{}", c1.logs());
    assert!(
        took < Duration::from_secs(10),
        "docker had to SIGKILL: {took:?}"
    );

    wait_instance_event(&w, &n1, "left").await;
    // c1 is dropped at its deadline (period + grace after its goodbye);
    // c2 keeps the check up all along.
    let after = w
        .wait_check("blue", "the stopped instance to be gone", |check| {
            instance(check, &n1).is_none()
        })
        .await;
    assert_eq!(after["state"], "up", "{after}");
    assert!(
        instance(&after, &n2).is_some_and(|i| i["status"] == "ok"),
        "{after}"
    );
    let events = w.events().await;
    assert_eq!(instance_events(&events, &n1, "left").len(), 1, "{events:?}");
    assert!(
        instance_events(&events, &n1, "missing").is_empty(),
        "{events:?}"
    );
    assert!(
        instance_events(&events, &n1, "failing").is_empty(),
        "{events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| e["kind"] == "state" && e["check"] == "blue" && e["to"] != "up"),
        "the check left `up`: {events:?}"
    );
    assert!(c2.is_running(), "logs:\n{}", c2.logs());
}
