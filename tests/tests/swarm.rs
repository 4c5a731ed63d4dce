//! Failure drills on a real Docker swarm: blue and green are swarm services
//! running the images `deploy/build-images.sh` builds (`bgw-agent` wrapping
//! `bgw-sample-app`), behind a real nginx, watched by the real watchdog,
//! checker and prober, alerting a Slack receiver and a real SMTP server
//! (`bgw_e2e::swarm`). Each drill asserts the alert and the outcome and
//! prints its timings (`cargo test -p bgw-e2e --test swarm -- --nocapture`).
//!
//! Without a usable swarm (`docker info` fails, or the node cannot be a
//! manager) each drill says so LOUDLY and returns, unless
//! `BGW_E2E_REQUIRE_DOCKER` is set, where that is a failure.

use bgw_e2e::swarm::{app_image, SwarmLock, SwarmOptions, SwarmSystem};
use bgw_wire::Color;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every wait polls up to this long: generous, since a loaded machine can
/// make docker itself slow to converge; the printed timings say how fast.
const LIMIT: Duration = Duration::from_secs(60);

/// The swarm lock, or `None` (with a loud message) when no swarm can be used.
async fn swarm(drill: &str) -> Option<SwarmLock> {
    match SwarmLock::acquire().await.expect("a swarm manager") {
        Ok(lock) => Some(lock),
        Err(why) => {
            assert!(
                std::env::var_os("BGW_E2E_REQUIRE_DOCKER").is_none(),
                "BGW_E2E_REQUIRE_DOCKER is set but no swarm can be used: {why}"
            );
            eprintln!(
                "\n!!!!! SKIPPED swarm drill {drill}: no usable Docker swarm here ({why}) !!!!!\n"
            );
            None
        }
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// Requests through nginx's live port, one after another on a keep-alive
/// client, counted until [`Load::stop`].
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("client");
            let url = format!("http://127.0.0.1:{port}/ping");
            while !s.load(Ordering::SeqCst) {
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => o.fetch_add(1, Ordering::SeqCst),
                    _ => f.fetch_add(1, Ordering::SeqCst),
                };
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Load {
            stop,
            ok,
            failed,
            task,
        }
    }

    /// (ok, failed) so far.
    fn counts(&self) -> (u64, u64) {
        (
            self.ok.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        )
    }

    async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        let counts = (self.ok.clone(), self.failed.clone());
        let _ = self.task.await;
        (
            counts.0.load(Ordering::SeqCst),
            counts.1.load(Ordering::SeqCst),
        )
    }
}

fn exit_code(out: &std::process::Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_to_idle_toggle_then_broken_release_is_rolled_back_under_traffic() {
    let Some(_swarm) = swarm("deploy/toggle/rollback").await else {
        return;
    };
    let started = Instant::now();
    let system = SwarmSystem::start(SwarmOptions::default(), "1.0.4")
        .await
        .expect("the system on swarm");
    let up_in = started.elapsed();
    let load = Load::start(system.live_port());

    // The guard refuses the live color, as the original deploy script did.
    let out = system.cli(&["deploy", "blue", &app_image("1.0.5")]);
    assert_eq!(
        exit_code(&out),
        1,
        "deploy to the live color: {}",
        output(&out)
    );
    assert!(
        system.blue.tasks().contains("1.0.4") && !system.blue.tasks().contains("1.0.5"),
        "blue was touched: {}",
        system.blue.tasks()
    );

    // The idle color gets the new version: `docker service update --image`.
    let t = Instant::now();
    let out = system.cli(&["deploy", "green", &app_image("1.0.5")]);
    assert_eq!(exit_code(&out), 0, "deploy green: {}", output(&out));
    let deploy_cmd = t.elapsed();
    let deadline = Instant::now() + LIMIT;
    while !system
        .instances(Color::Green)
        .await
        .iter()
        .any(|(_, v, s)| v == "1.0.5" && s == "ok")
    {
        assert!(
            Instant::now() < deadline,
            "green never reported 1.0.5: {:?}\n{}",
            system.instances(Color::Green).await,
            system.green.tasks()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deployed = t.elapsed();
    let body = reqwest::get(system.green.ping_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body.trim(), "pong green 1.0.5");

    // Toggle: green (1.0.5) goes live.
    let t = Instant::now();
    let out = system.cli(&["toggle", "green", "--reason", "release 1.0.5"]);
    assert_eq!(exit_code(&out), 0, "toggle: {}", output(&out));
    system
        .wait_served_by(Color::Green, LIMIT)
        .await
        .expect("green live");
    let toggled = t.elapsed();
    let before_break = load.counts();
    assert_eq!(
        before_break.1, 0,
        "requests failed through nginx during the deploy and the toggle"
    );

    let downs = system.transitions_to("green", "down").await;
    assert!(
        downs.is_empty(),
        "the deploy (a task replaced after `stopping`) raised a DOWN: {downs:?}"
    );

    // 1.0.5 breaks in production: automatic rollback to blue.
    let t = Instant::now();
    system.green.admin("fail").await.unwrap();
    let rollback = system
        .wait_event("rollback", None, LIMIT)
        .await
        .expect("a rollback");
    let decided = t.elapsed();
    system
        .wait_served_by(Color::Blue, LIMIT)
        .await
        .expect("blue live again");
    let served = t.elapsed();
    let (slack, slack_at) = system
        .wait_slack("ROLLBACK", LIMIT)
        .await
        .expect("Slack ROLLBACK");
    system
        .wait_email("[bgw] ROLLBACK green -> blue", LIMIT)
        .await
        .expect("email ROLLBACK");
    let live = system.cli(&["live"]);
    assert_eq!(String::from_utf8_lossy(&live.stdout).trim(), "blue");
    let at_rollback = load.counts();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (ok, failed) = load.stop().await;
    assert_eq!(
        failed, at_rollback.1,
        "requests failed after the rollback was served"
    );
    assert!(system.log_text().contains("ROLLBACK: green -> blue"));

    println!(
        "drill deploy/toggle/rollback: system up in {} ms; deploy_cmd {} ms, new version reporting {} ms after; \
         toggle served by green in {} ms; break -> rollback decided {} ms, live port served by blue {} ms, \
         Slack {} ms; requests through nginx: {ok} ok, {failed} failed (0 during deploy and toggle, \
         {} answered by the broken release before the rollback)\n  rollback: {}\n  slack: {slack}",
        ms(up_in),
        ms(deploy_cmd),
        ms(deployed),
        ms(toggled),
        ms(decided),
        ms(served),
        ms(slack_at.duration_since(t)),
        at_rollback.1 - before_break.1,
        rollback["reason"],
    );
}

/// Polls until `check` has had `n` transitions to `to`; panics after `limit`.
async fn wait_transitions(system: &SwarmSystem, check: &str, to: &str, n: usize) -> Instant {
    let deadline = Instant::now() + LIMIT;
    loop {
        if system.transitions_to(check, to).await.len() >= n {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "{check}: {} transitions to {to}, expected {n}; events: {:?}",
            system.transitions_to(check, to).await.len(),
            system.events_of("state", Some(check)).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_task_is_missed_alerted_and_recovers_when_swarm_restarts_it() {
    let Some(_swarm) = swarm("task killed").await else {
        return;
    };
    let system = SwarmSystem::start(SwarmOptions::default(), "1.0.4")
        .await
        .expect("the system on swarm");
    let containers = system.green.containers();
    assert_eq!(containers.len(), 1, "{}", system.green.tasks());

    // SIGKILL to the task's PID 1 (the agent): no `stopping`, the dead-man
    // switch must notice.
    let t = Instant::now();
    bgw_e2e::container::docker(["kill", "--signal", "KILL", &containers[0]]).unwrap();
    let down = wait_transitions(&system, "green", "down", 1).await;
    let (down_text, down_slack) = system
        .wait_slack("[bgw] DOWN green: 0 of 1 required instances up", LIMIT)
        .await
        .expect("Slack DOWN");
    system
        .wait_email("[bgw] DOWN green", LIMIT)
        .await
        .expect("email DOWN");
    // Swarm starts a replacement task after its restart delay; its agent's
    // first heartbeat brings the service back.
    let up = wait_transitions(&system, "green", "up", 1).await;
    let (up_text, up_slack) = system
        .wait_slack("[bgw] UP green", LIMIT)
        .await
        .expect("Slack UP");
    system
        .wait_email("[bgw] UP green", LIMIT)
        .await
        .expect("email UP");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = system.events_of("state", Some("green")).await;
    assert_eq!(
        system.transitions_to("green", "down").await.len(),
        1,
        "{events:#?}"
    );
    assert_eq!(
        system.transitions_to("green", "up").await.len(),
        1,
        "{events:#?}"
    );
    let downs: Vec<String> = system
        .slack
        .messages()
        .iter()
        .map(|m| m["text"].as_str().unwrap_or("").to_string())
        .filter(|t| t.starts_with("[bgw] DOWN green"))
        .collect();
    // One for the service (its agent silent); the checker's direct and idle
    // probes failing while no task runs are a second, separate alert.
    let service_downs = downs
        .iter()
        .filter(|t| t.contains("required instances up"))
        .count();
    assert_eq!(service_downs, 1, "one DOWN for the service: {downs:#?}");
    let replaced = system.green.containers();
    assert_eq!(replaced.len(), 1);
    assert_ne!(replaced[0], containers[0], "swarm started a new task");
    assert!(
        system.blue.containers().len() == 1
            && system.transitions_to("blue", "down").await.is_empty()
    );
    println!(
        "drill task killed: kill -> DOWN event {} ms, Slack {} ms; kill -> UP (swarm restart delay 4s) {} ms, Slack {} ms\n  {down_text}\n  {up_text}\n  every DOWN sent: {downs:?}\n  tasks:\n{}",
        ms(down - t),
        ms(down_slack - t),
        ms(up - t),
        ms(up_slack - t),
        system.green.tasks()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_container_is_alerted_and_recovers_when_unpaused() {
    let Some(_swarm) = swarm("container paused").await else {
        return;
    };
    let system = SwarmSystem::start(SwarmOptions::default(), "1.0.4")
        .await
        .expect("the system on swarm");
    let container = system.blue.containers().remove(0);

    // A frozen container: swarm still sees it running, nothing restarts it;
    // only the missing heartbeats and the failing probes tell.
    let t = Instant::now();
    bgw_e2e::container::docker(["pause", &container]).unwrap();
    let down = wait_transitions(&system, "blue", "down", 1).await;
    let (down_text, down_slack) = system
        .wait_slack("[bgw] DOWN blue", LIMIT)
        .await
        .expect("Slack DOWN");
    system
        .wait_email("[bgw] DOWN blue", LIMIT)
        .await
        .expect("email DOWN");
    let state =
        bgw_e2e::container::docker(["inspect", "--format", "{{.State.Status}}", &container])
            .unwrap();
    assert_eq!(state, "paused", "swarm left the paused task alone");

    let t2 = Instant::now();
    bgw_e2e::container::docker(["unpause", &container]).unwrap();
    let up = wait_transitions(&system, "blue", "up", 1).await;
    let (_, up_slack) = system
        .wait_slack("[bgw] UP blue", LIMIT)
        .await
        .expect("Slack UP");
    system
        .wait_email("[bgw] UP blue", LIMIT)
        .await
        .expect("email UP");
    assert_eq!(
        system.blue.containers(),
        vec![container],
        "the same task came back"
    );
    println!(
        "drill container paused: pause -> DOWN event {} ms, Slack {} ms; unpause -> UP {} ms, Slack {} ms\n  {down_text}",
        ms(down - t),
        ms(down_slack - t),
        ms(up - t2),
        ms(up_slack - t2),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_up_and_down_raises_no_alert() {
    let Some(_swarm) = swarm("scale").await else {
        return;
    };
    let system = SwarmSystem::start(SwarmOptions::default(), "1.0.4")
        .await
        .expect("the system on swarm");
    let ok_instances = |list: Vec<(String, String, String)>| {
        list.into_iter()
            .filter(|(_, _, status)| status == "ok")
            .count()
    };

    let t = Instant::now();
    let out = system.cli(&["scale", "green", "3"]);
    assert_eq!(exit_code(&out), 0, "scale up: {}", output(&out));
    let deadline = Instant::now() + LIMIT;
    while ok_instances(system.instances(Color::Green).await) < 3 {
        assert!(
            Instant::now() < deadline,
            "3 green instances never reported: {:?}\n{}",
            system.instances(Color::Green).await,
            system.green.tasks()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let scaled_up = t.elapsed();

    let t = Instant::now();
    let out = system.cli(&["scale", "green", "1"]);
    assert_eq!(exit_code(&out), 0, "scale down: {}", output(&out));
    let deadline = Instant::now() + LIMIT;
    while system.green.containers().len() > 1 {
        assert!(Instant::now() < deadline, "{}", system.green.tasks());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let scaled_down = t.elapsed();
    let after_scale_down = system.instances(Color::Green).await;
    // Past every deadline of the instances that left (period 1s + grace 1s).
    tokio::time::sleep(Duration::from_secs(4)).await;

    let downs = system.transitions_to("green", "down").await;
    assert!(downs.is_empty(), "scaling raised a DOWN: {downs:?}");
    let alerts: Vec<String> = system
        .slack
        .messages()
        .iter()
        .map(|m| m["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(alerts.is_empty(), "scaling sent Slack messages: {alerts:?}");
    assert!(system.smtp.messages().is_empty(), "scaling sent emails");
    let alert_lines: Vec<String> = system
        .log_text()
        .lines()
        .filter(|l| l.contains("ALERT") && l.contains("green"))
        .map(str::to_string)
        .collect();
    assert!(alert_lines.is_empty(), "alert lines: {alert_lines:?}");
    assert_eq!(ok_instances(system.instances(Color::Green).await), 1);
    println!(
        "drill scale: green 1 -> 3 reporting in {} ms, 3 -> 1 tasks gone in {} ms; no event, message or alert line; \
         instances right after the scale-down: {after_scale_down:?}",
        ms(scaled_up),
        ms(scaled_down),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_watchdog_is_reported_by_the_prober_on_its_own_channels() {
    let Some(_swarm) = swarm("watchdog killed").await else {
        return;
    };
    let mut system = SwarmSystem::start(SwarmOptions::default(), "1.0.4")
        .await
        .expect("the system on swarm");

    let t = Instant::now();
    system.watchdog.kill9();
    let (down_text, down_at) = system
        .wait_slack("DOWN watchdog", LIMIT)
        .await
        .expect("the prober's Slack DOWN");
    system
        .wait_email("[bgw] DOWN watchdog", LIMIT)
        .await
        .expect("the prober's email DOWN");

    let t2 = Instant::now();
    system.watchdog.start().await;
    let (_, up_at) = system
        .wait_slack("UP watchdog", LIMIT)
        .await
        .expect("the prober's Slack UP");
    system
        .wait_email("[bgw] UP watchdog", LIMIT)
        .await
        .expect("the prober's email UP");
    let downs = system
        .slack
        .messages()
        .iter()
        .filter(|m| m["text"].as_str().unwrap_or("").contains("DOWN watchdog"))
        .count();
    assert_eq!(downs, 1, "the prober alerts once");
    println!(
        "drill watchdog killed (silence_after 3s): kill -> prober's Slack DOWN {} ms; restart -> UP {} ms\n  {down_text}",
        ms(down_at - t),
        ms(up_at - t2),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prober_cut_off_from_the_watchdog_is_alerted_as_silent() {
    let Some(_swarm) = swarm("prober cut off").await else {
        return;
    };
    if let Err(e) = bgw_e2e::swarm::Netns::create() {
        assert!(
            std::env::var_os("BGW_E2E_REQUIRE_DOCKER").is_none(),
            "BGW_E2E_REQUIRE_DOCKER is set but no network namespace can be made: {e:#}"
        );
        eprintln!("\n!!!!! SKIPPED swarm drill prober cut off: no network namespaces here ({e:#}) !!!!!\n");
        return;
    }
    let options = SwarmOptions {
        prober_netns: true,
        ..SwarmOptions::default()
    };
    let system = SwarmSystem::start(options, "1.0.4")
        .await
        .expect("the system on swarm, the prober in its namespace");
    let netns = system.netns.as_ref().expect("the prober's namespace");
    // Up through the namespace: the prober reached the watchdog and the
    // public port at the host end of its veth pair, and nothing else (the
    // idle port, the colors directly) from there.
    assert_eq!(system.watchdog.state("prober").await, "up");
    for port in [system.settings.idle_listen, system.blue.port] {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &netns.name, "bash", "-c"])
            .arg(format!("exec 3<>/dev/tcp/{}/{port}", netns.host_ip))
            .output()
            .unwrap();
        assert!(!out.status.success(), "the namespace reached port {port}");
    }

    // A firewall change on the uptime machine: the watchdog's port is
    // refused, the public port still answers.
    let t = Instant::now();
    netns.block(system.watchdog.port).unwrap();
    let down = wait_transitions(&system, "prober", "down", 1).await;
    let (down_text, down_slack) = system
        .wait_slack("[bgw] DOWN prober", LIMIT)
        .await
        .expect("Slack DOWN prober");
    system
        .wait_email("[bgw] DOWN prober", LIMIT)
        .await
        .expect("email DOWN prober");

    let t2 = Instant::now();
    netns.unblock(system.watchdog.port).unwrap();
    let up = wait_transitions(&system, "prober", "up", 1).await;
    system
        .wait_slack("[bgw] UP prober", LIMIT)
        .await
        .expect("Slack UP prober");
    for check in ["blue", "green", "checker"] {
        assert!(
            system.transitions_to(check, "down").await.is_empty(),
            "{check} went down"
        );
    }
    println!(
        "drill prober cut off (reporter period 1s, grace 1s): block -> DOWN event {} ms, Slack {} ms; unblock -> UP {} ms\n  {down_text}",
        ms(down - t),
        ms(down_slack - t),
        ms(up - t2),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_the_only_node_reports_both_colors_down_then_up() {
    let Some(_swarm) = swarm("node drained").await else {
        return;
    };
    let system = SwarmSystem::start(SwarmOptions::default(), "1.0.4")
        .await
        .expect("the system on swarm");
    let node = bgw_e2e::container::docker(["info", "--format", "{{.Swarm.NodeID}}"]).unwrap();

    // Swarm stops every task of the node (SIGTERM: the agents say
    // `stopping`) and, with no other node, has nowhere to move them.
    let t = Instant::now();
    bgw_e2e::container::docker(["node", "update", "--availability", "drain", &node]).unwrap();
    let restore = scopeguard(&node);
    let blue_down = wait_transitions(&system, "blue", "down", 1).await;
    let green_down = wait_transitions(&system, "green", "down", 1).await;
    let (down_text, _) = system
        .wait_slack("[bgw] DOWN blue", LIMIT)
        .await
        .expect("Slack DOWN blue");
    let changes: Vec<String> = system
        .events_of("state", None)
        .await
        .into_iter()
        .filter(|e| e["from"] != "new")
        .map(|e| {
            format!(
                "{} {} -> {}: {}",
                e["check"].as_str().unwrap_or(""),
                e["from"].as_str().unwrap_or(""),
                e["to"].as_str().unwrap_or(""),
                e["reason"].as_str().unwrap_or("")
            )
        })
        .collect();

    let t2 = Instant::now();
    drop(restore);
    let blue_up = wait_transitions(&system, "blue", "up", 1).await;
    let green_up = wait_transitions(&system, "green", "up", 1).await;
    system
        .wait_slack("[bgw] UP blue", LIMIT)
        .await
        .expect("Slack UP blue");
    println!(
        "drill node drained (the only node): drain -> blue DOWN {} ms, green DOWN {} ms (the instances left with `stopping`, \
         no replacement came within period + grace); active again -> blue UP {} ms, green UP {} ms\n  {down_text}\n  state changes: {}",
        ms(blue_down - t),
        ms(green_down - t),
        ms(blue_up - t2),
        ms(green_up - t2),
        changes.join("; "),
    );
}

/// Sets the node active again when dropped (also when the drill fails).
struct NodeActive(String);

fn scopeguard(node: &str) -> NodeActive {
    NodeActive(node.to_string())
}

impl Drop for NodeActive {
    fn drop(&mut self) {
        let _ = bgw_e2e::container::docker(["node", "update", "--availability", "active", &self.0]);
    }
}
