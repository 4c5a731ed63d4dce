//! Blue/green control end to end: the operator's CLI and the automatic
//! rollback of the running `bgw-watchdog serve`, with a real nginx in front
//! of two real test apps, a real `bgw-agent` beside each and a real
//! `bgw-checker` (see `bgw_e2e::system`).

use bgw_e2e::nginx::served_by;
use bgw_e2e::system::{Options, System};
use bgw_wire::Color;
use serde_json::Value;
use std::process::Output;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

async fn system(o: Options) -> System {
    System::start(o).await.expect("start the system")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn live_file(s: &System) -> String {
    std::fs::read_to_string(s.live_file()).unwrap()
}

/// `toggle green` through the CLI, checked.
async fn toggle_to_green(s: &System) {
    let out = s.cli(&["toggle", "green"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    s.wait_served_by(Color::Green, WAIT).await.unwrap();
}

#[tokio::test]
async fn toggle_through_the_cli_switches_nginx_and_live_prints_the_new_color() {
    let s = system(Options::default()).await;
    let out = s.cli(&["check-config"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("proxy: live_file "), "{text}");
    assert!(text.contains("rollback: automatic within 5m of a toggle, quorum 2 observers, fail_after 2, cooldown 0s, failover off"), "{text}");
    let out = s.cli(&["live"]);
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "blue\n")
    );

    let out = s.cli(&["toggle", "--reason", "release 1.4"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("switched blue -> green"),
        "{}",
        stdout(&out)
    );
    s.wait_served_by(Color::Green, WAIT).await.unwrap();
    assert_eq!(live_file(&s), "green");
    let out = s.cli(&["live"]);
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "green\n")
    );
    let (code, live) = s.watchdog.admin_get("/api/v1/live").await;
    assert_eq!(code, 200);
    assert_eq!(
        (live["live"].as_str(), live["idle"].as_str()),
        (Some("green"), Some("blue"))
    );
    assert!(live["since"].is_string(), "{live}");

    // Toggling to the live color re-renders and reloads; still green.
    let out = s.cli(&["toggle", "green"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(live_file(&s), "green");

    let toggles = s.events_of("toggle").await;
    assert_eq!(toggles.len(), 2, "{toggles:?}");
    assert_eq!(toggles[0]["reason"], "blue -> green (manual)");
    assert_eq!(toggles[0]["data"]["why"], "release 1.4");
    // The healthy new color stays: nothing automatic happened.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(s.events_of("rollback").await.is_empty());
    assert!(s.events_of("rollback_refused").await.is_empty());
    let log = s.watchdog.log_text();
    assert!(log.contains("] - TOGGLE: blue -> green (manual)"), "{log}");

    // An undefined live color: `live` exits 1 and says why.
    std::fs::write(s.live_file(), "purple").unwrap();
    let out = s.cli(&["live"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("undefined"), "{}", stderr(&out));
    let out = s.cli(&["toggle"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("name the color"), "{}", stderr(&out));
    assert_eq!(live_file(&s), "purple", "a refused toggle changes nothing");
}

#[tokio::test]
async fn deploy_to_the_live_color_is_refused_and_deploy_scale_and_silences_work_for_the_idle_one() {
    let s = system(Options::default()).await;
    let out = s.cli(&["deploy", "blue", "app:2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("refusing to deploy to blue: it is LIVE"),
        "{}",
        stderr(&out)
    );
    let out = s.cli(&["deploy", "green", "registry.example.org/app:2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("deploying registry.example.org/app:2 to green"),
        "{}",
        stdout(&out)
    );
    let out = s.cli(&["deploy", "green", "x;rm -rf /"]);
    assert_eq!(out.status.code(), Some(1));
    let out = s.cli(&["scale", "green", "3"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("scaling green to 3"),
        "{}",
        stdout(&out)
    );
    let refused = s.events_of("deploy_refused").await;
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(s.events_of("deploy").await.len(), 1);
    assert_eq!(s.events_of("scale").await.len(), 1);

    // Silences through the CLI.
    let out = s.cli(&["silence", "green", "1h", "--reason", "maintenance"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = s.cli(&["silences"]);
    assert!(stdout(&out).contains("maintenance"), "{}", stdout(&out));
    let (_, body) = s.watchdog.admin_get("/api/v1/silences").await;
    let id = body["silences"][0]["id"].as_i64().unwrap();
    let out = s.cli(&["unsilence", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = s.cli(&["silences"]);
    assert_eq!(stdout(&out), "no active silences\n");
    let out = s.cli(&["silence", "rollback", "10m", "--reason", "drill"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = s.cli(&["silence", "nonsense", "10m", "--reason", "x"]);
    assert_eq!(out.status.code(), Some(1));
    let out = s.cli(&["unsilence", &id.to_string()]);
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test]
async fn a_new_color_that_breaks_after_a_toggle_is_rolled_back_automatically() {
    let s = system(Options::default()).await;
    toggle_to_green(&s).await;
    s.fixture.green.control("fail").await.unwrap();
    let e = s.wait_event("rollback", WAIT).await.unwrap();
    assert_eq!(
        (e["data"]["from"].as_str(), e["data"]["to"].as_str()),
        (Some("green"), Some("blue"))
    );
    let reason = e["reason"].as_str().unwrap();
    assert!(reason.starts_with("green failed "), "{reason}");
    assert!(reason.contains("after toggle (agents: "), "{reason}");
    assert!(reason.contains("checker: live-proxy: "), "{reason}");
    s.wait_served_by(Color::Blue, WAIT).await.unwrap();
    assert_eq!(live_file(&s), "blue");
    let log = s.watchdog.log_text();
    assert!(
        log.contains("] - ROLLBACK: green -> blue: green failed "),
        "{log}"
    );

    // Latched, and the notification of the rollback is in the outbox.
    let status = s.rollback_status().await;
    assert_eq!(status["state"], "latched", "{status}");
    let out = s.cli(&["rollback", "status"]);
    assert!(
        stdout(&out).starts_with("automatic rollback: latched"),
        "{}",
        stdout(&out)
    );
    let (_, n) = s.watchdog.admin_get("/api/v1/notifications").await;
    let _ = n; // no channels configured here: nothing to deliver, nothing to assert
               // Never flips back: green is still broken but blue is live and healthy.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.events_of("rollback").await.len(), 1);
    assert_eq!(served_by(s.live_port()).await.as_deref(), Some("blue"));
}

#[tokio::test]
async fn a_broken_previous_color_is_not_switched_to_and_the_refusal_is_recorded() {
    let s = system(Options::default()).await;
    toggle_to_green(&s).await;
    s.fixture.blue.control("fail").await.unwrap();
    s.fixture.green.control("fail").await.unwrap();
    let e = s.wait_event("rollback_refused", WAIT).await.unwrap();
    // A quorum refusal may come first while the observers catch up; wait
    // for the one about blue.
    let deadline = std::time::Instant::now() + WAIT;
    let refusal: Value = loop {
        let found = s
            .events_of("rollback_refused")
            .await
            .into_iter()
            .find(|e| e["data"]["rule"] == "target_unhealthy");
        if let Some(f) = found {
            break f;
        }
        assert!(std::time::Instant::now() < deadline, "first refusal: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let reason = refusal["reason"].as_str().unwrap();
    assert!(
        reason.contains("not switching to blue: blue is not healthy either"),
        "{reason}"
    );
    assert!(
        reason.contains("blue-direct: GET http://127.0.0.1:"),
        "{reason}"
    );
    // Recorded once, not at every evaluation.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let same: Vec<_> = s
        .events_of("rollback_refused")
        .await
        .into_iter()
        .filter(|e| e["data"]["rule"] == "target_unhealthy")
        .collect();
    assert_eq!(same.len(), 1, "{same:?}");
    assert!(s.events_of("rollback").await.is_empty());
    assert_eq!(live_file(&s), "green");
    assert_eq!(served_by(s.live_port()).await.as_deref(), Some("green"));
    let log = s.watchdog.log_text();
    assert!(
        log.contains("] - WARNING: ROLLBACK REFUSED: green failed "),
        "{log}"
    );
}

#[tokio::test]
async fn after_one_automatic_switch_it_stays_latched_until_rearm() {
    // failover: once the window of the automatic switch has passed, a
    // failing live color is a reason to switch, but the latch holds.
    let s = system(Options {
        rollback: Options::rollback_with("window = \"3s\"\nfailover = true"),
        ..Default::default()
    })
    .await;
    toggle_to_green(&s).await;
    s.fixture.green.control("fail").await.unwrap();
    s.wait_event("rollback", WAIT).await.unwrap();
    s.wait_served_by(Color::Blue, WAIT).await.unwrap();
    // Green is repaired, then blue breaks.
    s.fixture.green.control("ok").await.unwrap();
    s.watchdog.wait_state("green", "up").await;
    s.fixture.blue.control("fail").await.unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let latched = s
            .events_of("rollback_refused")
            .await
            .into_iter()
            .find(|e| e["data"]["rule"] == "latched");
        if let Some(e) = latched {
            assert!(
                e["reason"].as_str().unwrap().contains("rollback rearm"),
                "{e}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no latched refusal");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.events_of("rollback").await.len(), 1);
    assert_eq!(live_file(&s), "blue");

    let out = s.cli(&["rollback", "rearm"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("automatic rollback: armed"),
        "{}",
        stdout(&out)
    );
    s.wait_served_by(Color::Green, WAIT).await.unwrap();
    let rollbacks = s.wait_events("rollback", 2, WAIT).await.unwrap();
    assert_eq!(rollbacks.len(), 2, "{rollbacks:?}");
    assert_eq!(rollbacks[1]["data"]["to"], "green");
    assert!(!s.events_of("rollback_rearm").await.is_empty());
}

#[tokio::test]
async fn within_the_cooldown_no_second_automatic_switch_happens() {
    let s = system(Options {
        rollback: Options::rollback_with("cooldown = \"1h\""),
        ..Default::default()
    })
    .await;
    toggle_to_green(&s).await;
    s.fixture.green.control("fail").await.unwrap();
    s.wait_event("rollback", WAIT).await.unwrap();
    s.wait_served_by(Color::Blue, WAIT).await.unwrap();
    // The operator repairs green and toggles again (which releases the latch).
    s.fixture.green.control("ok").await.unwrap();
    s.watchdog.wait_state("green", "up").await;
    toggle_to_green(&s).await;
    s.fixture.green.control("fail").await.unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let cooldown = s
            .events_of("rollback_refused")
            .await
            .into_iter()
            .find(|e| e["data"]["rule"] == "cooldown");
        if let Some(e) = cooldown {
            assert!(
                e["reason"].as_str().unwrap().contains("(cooldown 1h)"),
                "{e}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no cooldown refusal");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.events_of("rollback").await.len(), 1);
    assert_eq!(live_file(&s), "green");
    let status = s.rollback_status().await;
    assert!(status["cooldown_remaining"].is_string(), "{status}");
}

#[tokio::test]
async fn dry_run_records_what_it_would_do_and_changes_nothing() {
    let s = system(Options {
        rollback: Options::rollback_with("mode = \"dry-run\""),
        ..Default::default()
    })
    .await;
    toggle_to_green(&s).await;
    s.fixture.green.control("fail").await.unwrap();
    let e = s.wait_event("rollback_dry_run", WAIT).await.unwrap();
    assert_eq!(e["data"]["to"], "blue");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        s.events_of("rollback_dry_run").await.len(),
        1,
        "recorded once"
    );
    assert!(s.events_of("rollback").await.is_empty());
    assert_eq!(live_file(&s), "green");
    assert_eq!(served_by(s.live_port()).await.as_deref(), Some("green"));
    assert_eq!(s.rollback_status().await["state"], "armed");
    let log = s.watchdog.log_text();
    assert!(
        log.contains(
            "] - WARNING: ROLLBACK (dry-run, nothing changed): green -> blue: green failed "
        ),
        "{log}"
    );
}

#[tokio::test]
async fn a_disabled_rollback_does_nothing_until_rearmed() {
    let s = system(Options::default()).await;
    let out = s.cli(&["rollback", "disable"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("disabled"), "{}", stdout(&out));
    toggle_to_green(&s).await;
    s.fixture.green.control("fail").await.unwrap();
    s.watchdog.wait_state("green", "down").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(s.events_of("rollback").await.is_empty());
    assert_eq!(live_file(&s), "green");
    let out = s.cli(&["rollback", "rearm"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    s.wait_event("rollback", WAIT).await.unwrap();
    s.wait_served_by(Color::Blue, WAIT).await.unwrap();
}

#[tokio::test]
async fn a_template_that_fails_nginx_test_makes_toggle_exit_1_and_changes_nothing() {
    let template = bgw_watchdog::proxy::BUILTIN.to_string();
    let s = system(Options {
        template: Some(template.clone()),
        ..Default::default()
    })
    .await;
    let template_path = s.fixture.path().join("template.conf");
    std::fs::write(
        &template_path,
        template.replace(
            "worker_processes auto;",
            "worker_processes auto;\nno_such_directive on;",
        ),
    )
    .unwrap();
    let conf_before = std::fs::read(&s.fixture.settings.nginx_conf).unwrap();
    let out = s.cli(&["toggle", "green"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("failed at test"), "{err}");
    assert!(err.contains("no_such_directive"), "{err}");
    assert_eq!(
        std::fs::read(&s.fixture.settings.nginx_conf).unwrap(),
        conf_before
    );
    assert_eq!(live_file(&s), "blue");
    assert_eq!(served_by(s.live_port()).await.as_deref(), Some("blue"));
    let failed = s.events_of("switch_failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["data"]["to"], "green");
    assert!(s.events_of("toggle").await.is_empty());
    let log = s.watchdog.log_text();
    assert!(
        log.contains("] - ALERT: SWITCH FAILED: blue -> green: switch to green failed at test"),
        "{log}"
    );
}

#[tokio::test]
async fn a_new_color_whose_container_vanishes_is_rolled_back_on_the_agents_silence() {
    let mut s = system(Options::default()).await;
    toggle_to_green(&s).await;
    // The green container is gone: its app and its agent stop at once.
    drop(s.agents.remove(1));
    let _ = s.fixture.green.control("exit?code=137").await;
    let e = s.wait_event("rollback", WAIT).await.unwrap();
    let reason = e["reason"].as_str().unwrap();
    assert!(reason.contains("agents: no heartbeat for "), "{reason}");
    assert!(reason.contains("checker: live-proxy: "), "{reason}");
    s.wait_served_by(Color::Blue, WAIT).await.unwrap();
    assert_eq!(live_file(&s), "blue");
}

#[tokio::test]
async fn a_restarted_watchdog_waits_to_hear_from_everyone_then_still_rolls_back() {
    let mut s = system(Options::default()).await;
    toggle_to_green(&s).await;
    s.watchdog.kill9();
    s.fixture.green.control("fail").await.unwrap();
    // The stored target states are from before the restart: the observers
    // must be heard from again before their verdicts count.
    let restarted = chrono::Utc::now();
    s.watchdog.start().await;
    let e = s.wait_event("rollback", WAIT).await.unwrap();
    assert_eq!(e["data"]["to"], "blue");
    s.wait_served_by(Color::Blue, WAIT).await.unwrap();
    // Both observers of the quorum had signalled since the restart.
    let at: chrono::DateTime<chrono::Utc> = e["at"].as_str().unwrap().parse().unwrap();
    for check in ["checker", "green"] {
        let (_, c) = s
            .watchdog
            .admin_get(&format!("/api/v1/checks/{check}"))
            .await;
        let heard = c["recent_pings"].as_array().unwrap().iter().any(|p| {
            let t: chrono::DateTime<chrono::Utc> = p["at"].as_str().unwrap().parse().unwrap();
            t > restarted && t <= at
        });
        assert!(
            heard,
            "{check} not heard between the restart and the rollback: {c}"
        );
    }
    // The restart did not lose the toggle: the rollback saw its window.
    assert!(
        e["reason"].as_str().unwrap().starts_with("green failed "),
        "{e}"
    );
}

#[tokio::test]
async fn a_silent_checker_never_counts_toward_the_quorum() {
    let mut s = system(Options::default()).await;
    toggle_to_green(&s).await;
    s.stop_checker();
    s.watchdog.wait_state("checker", "down").await;
    s.fixture.green.control("fail").await.unwrap();
    let e = s.wait_event("rollback_refused", WAIT).await.unwrap();
    assert_eq!(e["data"]["rule"], "quorum", "{e}");
    let reason = e["reason"].as_str().unwrap();
    assert!(
        reason.contains("not switching to blue: 1 of 2 observers needed see green failing"),
        "{reason}"
    );
    assert!(reason.contains("checker: unknown (silent: "), "{reason}");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(s.events_of("rollback").await.is_empty());
    assert_eq!(live_file(&s), "green");
}

#[tokio::test]
async fn in_live_mode_the_watchdog_installs_its_config_at_start_then_toggles_and_rolls_back_without_a_reload(
) {
    use bgw_watchdog::proxy::{self, SwitchMode, Switcher};
    let s = system(Options {
        mode: SwitchMode::Live,
        ..Default::default()
    })
    .await;
    // nginx started on the reload-mode config; the watchdog installed its own.
    let nginx = Switcher::new(s.proxy.clone()).unwrap();
    bgw_e2e::nginx::wait_until(WAIT, || async {
        nginx.nginx_color().await == Ok(Color::Blue)
    })
    .await
    .expect("the watchdog installs the live-mode config at start");
    assert_eq!(
        std::fs::read_to_string(&s.proxy.nginx_conf).unwrap(),
        proxy::render(&s.proxy, Color::Blue).unwrap()
    );
    let workers = s.fixture.nginx.workers();

    let out = s.cli(&["toggle", "green"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    s.wait_served_by(Color::Green, WAIT).await.unwrap();
    assert_eq!(nginx.nginx_color().await, Ok(Color::Green));

    s.fixture.green.control("fail").await.unwrap();
    let e = s.wait_event("rollback", WAIT).await.unwrap();
    assert_eq!(
        (e["data"]["from"].as_str(), e["data"]["to"].as_str()),
        (Some("green"), Some("blue"))
    );
    s.wait_served_by(Color::Blue, WAIT).await.unwrap();
    assert_eq!(live_file(&s), "blue");
    assert_eq!(nginx.nginx_color().await, Ok(Color::Blue));
    // Neither switch started a worker: no reload happened.
    let now = s.fixture.nginx.workers();
    assert!(
        now.iter().all(|w| workers.contains(w)),
        "new workers {now:?}, before {workers:?}"
    );
}
