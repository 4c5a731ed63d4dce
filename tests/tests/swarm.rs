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

use bgw_e2e::swarm::{app_image, swarm_unavailable, SwarmLock, SwarmOptions, SwarmSystem};
use bgw_wire::Color;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(30);

/// The swarm lock, or `None` (with a loud message) when no swarm can be used.
async fn swarm(drill: &str) -> Option<SwarmLock> {
    if let Some(why) = swarm_unavailable() {
        assert!(
            std::env::var_os("BGW_E2E_REQUIRE_DOCKER").is_none(),
            "BGW_E2E_REQUIRE_DOCKER is set but no swarm can be used: {why}"
        );
        eprintln!(
            "\n!!!!! SKIPPED swarm drill {drill}: no usable Docker swarm here ({why}) !!!!!\n"
        );
        return None;
    }
    Some(SwarmLock::acquire().await.expect("a swarm manager"))
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
