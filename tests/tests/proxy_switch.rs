//! Blue/green switching through a real nginx in front of two real test apps:
//! what a switch changes, and that every failed step leaves nginx, its
//! config and the live file as they were.

use bgw_e2e::nginx::{served_by, Fixture};
use bgw_watchdog::clock::Clock;
use bgw_watchdog::control::{self, Trigger};
use bgw_watchdog::monitor::Monitor;
use bgw_watchdog::proxy::{self, LiveState, Step, SwitchError};
use bgw_watchdog::store::{Since, Store};
use bgw_wire::Color;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const TESTAPP: &str = env!("CARGO_BIN_EXE_bgw-testapp");

async fn fixture() -> Fixture {
    Fixture::start(Path::new(TESTAPP))
        .await
        .expect("start nginx and the test apps")
}

/// Waits (up to 10 s) until `port` answers from `color` five times in a
/// row on new connections. Right after a reload an old worker that has not
/// yet seen its shutdown signal may still accept a connection, so a single
/// answer proves little either way.
async fn assert_serves(port: u16, color: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut in_a_row = 0;
    let mut last = None;
    while in_a_row < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "port {port} is not served by {color} within 10s (last answer from {last:?})"
        );
        last = served_by(port).await;
        if last.as_deref() == Some(color) {
            in_a_row += 1;
        } else {
            in_a_row = 0;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Writes a user template: the builtin one with `edit` applied.
fn user_template(dir: &Path, name: &str, edit: impl Fn(&str) -> String) -> String {
    let path = dir.join(name);
    std::fs::write(&path, edit(proxy::BUILTIN)).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn switch_to_green_makes_the_live_port_serve_green_and_writes_the_live_file() {
    let f = fixture().await;
    let switcher = f.switcher();
    let report = switcher.switch(Color::Green, "test").await.expect("switch");
    assert_eq!((report.from, report.to), (Some(Color::Blue), Color::Green));
    assert!(report.test.ok && report.reload.ok);
    // Verified by the switch itself; check again from outside.
    assert!(report.verify_attempts >= proxy::VERIFY_IN_A_ROW);
    assert_serves(f.settings.live_listen, "green").await;
    assert_serves(f.settings.idle_listen, "blue").await;
    // The body comes from the green app, not just the header.
    let body = reqwest::get(format!("http://127.0.0.1:{}/ping", f.settings.live_listen))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.starts_with("pong green"), "{body}");
    assert_eq!(std::fs::read(&f.settings.live_file).unwrap(), b"green");
    assert_eq!(switcher.live(), LiveState::Live(Color::Green));

    // And back.
    let report = switcher
        .switch(Color::Blue, "test")
        .await
        .expect("switch back");
    assert_eq!(report.from, Some(Color::Green));
    assert_serves(f.settings.live_listen, "blue").await;
    assert_eq!(std::fs::read(&f.settings.live_file).unwrap(), b"blue");
}

#[tokio::test]
async fn a_config_that_fails_nginx_test_changes_nothing() {
    let f = fixture().await;
    let bad = user_template(f.path(), "bad.tmpl", |t| {
        t.replace(
            "worker_processes auto;",
            "worker_processes auto;\nno_such_directive on;",
        )
    });
    let conf_before = std::fs::read(&f.settings.nginx_conf).unwrap();
    let switcher = f.switcher_with(|s| s.template = bad);
    let err = switcher.switch(Color::Green, "test").await.unwrap_err();
    assert_eq!(err.step(), Step::Test, "{err}");
    assert!(err.output().unwrap().contains("no_such_directive"), "{err}");
    assert!(
        err.to_string().contains("previous config restored"),
        "{err}"
    );
    assert_eq!(std::fs::read(&f.settings.nginx_conf).unwrap(), conf_before);
    assert_eq!(std::fs::read(&f.settings.live_file).unwrap(), b"blue");
    assert_eq!(
        served_by(f.settings.live_listen).await.as_deref(),
        Some("blue")
    );
    // No temp file is left next to the config.
    let leftovers: Vec<_> = std::fs::read_dir(f.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".bgw-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn a_failing_reload_restores_the_config_and_live_file_and_reloads_back() {
    let f = fixture().await;
    // Reloads nginx, then reports failure: nginx really took the new config,
    // so the switcher must put the old one back and reload again.
    let script = f.path().join("reload-then-fail.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{} || exit 2\necho 'reload: simulated failure' >&2\nexit 1\n",
            bgw_e2e::nginx::reload_cmd(f.path()).replace("{conf}", "\"$1\"")
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let conf_before = std::fs::read(&f.settings.nginx_conf).unwrap();
    let switcher = f.switcher_with(|s| s.reload_cmd = format!("{} {{conf}}", script.display()));
    let err = switcher.switch(Color::Green, "test").await.unwrap_err();
    assert_eq!(err.step(), Step::Reload, "{err}");
    assert!(err.output().unwrap().contains("simulated failure"), "{err}");
    match &err {
        SwitchError::Reload {
            reload_back,
            restore,
            ..
        } => {
            assert!(reload_back.is_some(), "the previous config is reloaded");
            assert!(restore.is_none(), "{restore:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&f.settings.nginx_conf).unwrap(), conf_before);
    assert_eq!(std::fs::read(&f.settings.live_file).unwrap(), b"blue");
    assert_serves(f.settings.live_listen, "blue").await;
}

#[tokio::test]
async fn a_plain_failing_reload_leaves_nginx_on_the_old_color() {
    let f = fixture().await;
    let switcher = f.switcher_with(|s| s.reload_cmd = "false".into());
    let err = switcher.switch(Color::Green, "test").await.unwrap_err();
    assert_eq!(err.step(), Step::Reload);
    assert_eq!(std::fs::read(&f.settings.live_file).unwrap(), b"blue");
    assert_eq!(
        std::fs::read_to_string(&f.settings.nginx_conf).unwrap(),
        proxy::render(&f.settings, Color::Blue).unwrap()
    );
    assert_eq!(
        served_by(f.settings.live_listen).await.as_deref(),
        Some("blue")
    );
}

#[tokio::test]
async fn a_config_that_does_not_stamp_the_new_color_fails_verification_and_stays() {
    let f = fixture().await;
    // Stamps the live port with the idle color: nginx accepts it, but the
    // live port never says "green".
    let lying = user_template(f.path(), "lying.tmpl", |t| {
        t.replacen(
            "add_header X-Bgw-Color {{live}} always;",
            "add_header X-Bgw-Color {{idle}} always;",
            1,
        )
    });
    let switcher = f.switcher_with(|s| {
        s.template = lying;
        s.verify_timeout = Duration::from_secs(1).into();
    });
    let err = switcher.switch(Color::Green, "test").await.unwrap_err();
    assert_eq!(err.step(), Step::Verify, "{err}");
    assert!(err.to_string().contains("X-Bgw-Color: blue"), "{err}");
    // Documented decision: nginx accepted the config, so it stays.
    assert_eq!(std::fs::read(&f.settings.live_file).unwrap(), b"green");
}

/// A switcher whose `test_cmd` logs `start`/`end` lines to `log` around a
/// real `nginx -t`, taking 0.3 s.
fn slow_test_switcher(f: &Fixture, log: &Path) -> bgw_watchdog::proxy::Switcher {
    let script = f.path().join("slow-test.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho start >> {log}\nsleep 0.3\n{} \nr=$?\necho end >> {log}\nexit $r\n",
            bgw_e2e::nginx::test_cmd(f.path()).replace("{conf}", "\"$1\""),
            log = log.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    f.switcher_with(|s| s.test_cmd = format!("{} {{conf}}", script.display()))
}

#[tokio::test]
async fn two_concurrent_switches_run_one_after_the_other() {
    let f = fixture().await;
    // The test command logs its start and end; overlapping switches would
    // interleave the lines.
    let log = f.path().join("test-cmd.log");
    let switcher = Arc::new(slow_test_switcher(&f, &log));
    let a = tokio::spawn({
        let s = switcher.clone();
        async move { s.switch(Color::Green, "first").await }
    });
    let b = tokio::spawn({
        let s = switcher.clone();
        async move { s.switch(Color::Blue, "second").await }
    });
    let (ra, rb) = (
        a.await.unwrap().expect("switch a"),
        b.await.unwrap().expect("switch b"),
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "start\nend\nstart\nend\n"
    );
    // The one that ran second saw the first one's result as its `from`.
    let (first, second) = if ra.started <= rb.started {
        (ra, rb)
    } else {
        (rb, ra)
    };
    assert_eq!(second.from, Some(first.to));
    let live = std::fs::read_to_string(&f.settings.live_file).unwrap();
    assert_eq!(live, second.to.as_str());
    assert_serves(f.settings.live_listen, &live).await;
}

#[tokio::test]
async fn a_hostile_image_name_is_one_argument_and_runs_nothing() {
    let marker = std::env::temp_dir().join(format!("bgw-pwned-{}", std::process::id()));
    let hostile = format!("x; touch {}", marker.display());
    let outcome = proxy::run_command(
        "echo --image {image} {color}-service",
        &[("image", &hostile), ("color", "green")],
        Duration::from_secs(10),
    )
    .await;
    assert!(outcome.ok, "{outcome:?}");
    assert_eq!(outcome.output, format!("--image {hostile} green-service\n"));
    assert!(
        !marker.exists(),
        "the shell metacharacters were interpreted"
    );
}

#[tokio::test]
async fn deploy_to_the_live_color_is_refused_and_the_idle_one_is_deployed() {
    let f = fixture().await;
    let (monitor, store) = control_monitor(f.path()).await;
    let marker = f.path().join("deployed");
    let switcher =
        f.switcher_with(|s| s.deploy_cmd = format!("touch {}-{{color}}", marker.display()));
    let now = chrono::Utc::now();

    let err = control::deploy_guarded(&switcher, &monitor, now, Color::Blue, "app:2")
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.to_string(), "refusing to deploy to blue: it is LIVE");
    assert!(!Path::new(&format!("{}-blue", marker.display())).exists());

    control::deploy_guarded(&switcher, &monitor, now, Color::Green, "app:2")
        .await
        .unwrap()
        .expect("deploy to idle");
    assert!(Path::new(&format!("{}-green", marker.display())).exists());
    let control = monitor.snapshot().control.clone();
    assert_eq!(control.last_deploy, [None, Some(now)], "green only");
    let kinds: Vec<String> = store
        .events(Since::Id(0), Some("proxy"), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["deploy_refused", "deploy"]);

    // After a switch, green is live and refused in turn.
    switcher.switch(Color::Green, "test").await.expect("switch");
    let err = control::deploy_guarded(&switcher, &monitor, now, Color::Green, "app:3")
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.to_string(), "refusing to deploy to green: it is LIVE");
}

/// A monitor (and its store) over a fresh database in `dir`, with no checks.
async fn control_monitor(dir: &Path) -> (Monitor, Store) {
    let store = Store::open(dir.join("control.db").to_str().unwrap())
        .await
        .unwrap();
    let log = bgw_watchdog::logfile::DailyLog::open(&dir.join("log")).unwrap();
    let (log, _) = bgw_watchdog::logfile::LogSink::spawn(log);
    let (monitor, _) = bgw_watchdog::monitor::standalone(store.clone(), log, Clock::system())
        .await
        .unwrap();
    (monitor, store)
}

fn manual(why: &str) -> Trigger {
    Trigger::Manual { why: why.into() }
}

#[tokio::test]
async fn every_switch_attempt_is_recorded_and_a_manual_one_releases_the_latch() {
    let f = fixture().await;
    let (monitor, store) = control_monitor(f.path()).await;
    let now = chrono::Utc::now();
    // An earlier automatic rollback latched.
    let rolled_back = bgw_watchdog::ledger::ToggleRecord {
        id: 0,
        at: now - chrono::Duration::hours(1),
        from: Some(Color::Green),
        to: Color::Blue,
        automatic: true,
        reason: "rolled back earlier".into(),
        ok: true,
        error: None,
    };
    monitor
        .record(bgw_watchdog::monitor::Record {
            control: vec![bgw_watchdog::ledger::ControlChange::Toggle(rolled_back)],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(monitor.snapshot().control.rollback.latched);

    let bad = user_template(f.path(), "bad.tmpl", |t| {
        t.replace("events {", "bogus_directive;\nevents {")
    });
    let failing = f.switcher_with(|s| s.template = bad);
    let err = control::switch_and_record(&failing, &monitor, now, Color::Green, manual("operator"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("failed at test"), "{err}");
    assert!(monitor.snapshot().control.rollback.latched);

    let switcher = f.switcher();
    control::switch_and_record(&switcher, &monitor, now, Color::Green, manual("operator"))
        .await
        .expect("switch");
    let snapshot = monitor.snapshot();
    assert!(!snapshot.control.rollback.latched);
    let all = store.toggles(10).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all[0].ok && all[0].from == Some(Color::Blue) && all[0].to == Color::Green);
    assert!(!all[1].ok && all[1].error.as_deref().unwrap().contains("bogus_directive"));
    assert_eq!(
        snapshot.control.previous(switcher.live().color()),
        Some(Color::Blue)
    );
    // Each attempt's toggle row and its event were written together.
    let kinds: Vec<String> = store
        .events(Since::Id(0), None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["switch_failed", "toggle"]);
}

#[tokio::test]
async fn the_direct_probe_bypasses_nginx_and_sees_a_failing_color() {
    let f = fixture().await;
    let timeout = Duration::from_secs(2);
    let blue = proxy::probe_direct(&f.settings, Color::Blue, timeout).await;
    assert_eq!(blue.healthy, Some(true), "{}", blue.reason);
    f.blue.control("fail").await.unwrap();
    let blue = proxy::probe_direct(&f.settings, Color::Blue, timeout).await;
    assert_eq!(blue.healthy, Some(false));
    assert_eq!(
        blue.reason,
        format!(
            "blue-direct: GET http://127.0.0.1:{}/ping returned 500",
            f.blue.port
        )
    );
    drop(f.nginx);
    // nginx is gone; the probe does not need it.
    let green = proxy::probe_direct(&f.settings, Color::Green, timeout).await;
    assert_eq!(green.healthy, Some(true), "{}", green.reason);
}

#[tokio::test]
async fn a_caller_that_stops_waiting_does_not_stop_a_switch_half_way() {
    let f = fixture().await;
    let log = f.path().join("test-cmd.log");
    let switcher = slow_test_switcher(&f, &log);
    // Give up while `nginx -t` runs (the config is written, the live file not yet).
    let gave_up = tokio::time::timeout(
        Duration::from_millis(100),
        switcher.switch(Color::Green, "impatient"),
    )
    .await;
    assert!(gave_up.is_err(), "the switch should still be running");
    // It completes anyway: the live file, the config and nginx agree.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read(&f.settings.live_file).unwrap() != b"green" {
        assert!(
            std::time::Instant::now() < deadline,
            "the switch was abandoned half-way"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_serves(f.settings.live_listen, "green").await;
    // And the lock was released: the next switch runs.
    switcher
        .switch(Color::Blue, "next")
        .await
        .expect("next switch");
}

mod rollback_through_nginx {
    //! The policy's executor against a real nginx and real test apps; the
    //! observers' verdicts are given as the watchdog's state would give them.
    use super::*;
    use bgw_watchdog::control::{evaluate_rollback, Observations};
    use bgw_watchdog::rollback::{
        Decision, Mode, ObserverVerdict, RollbackSettings, Rule, Verdict,
    };

    pub(super) fn green_failing() -> Observations {
        let failing = |observer: &str, reason: &str| ObserverVerdict {
            observer: observer.into(),
            color: Color::Green,
            verdict: Verdict::Failing {
                consecutive: 3,
                reason: reason.into(),
            },
        };
        Observations {
            observers: vec![
                failing("agents:green", "GET /ping returned 500"),
                failing("checker", "live-proxy: GET /ping returned 500"),
            ],
            watchdog_started: chrono::Utc::now() - chrono::Duration::hours(1),
            heard_from_all: true,
        }
    }

    pub(super) async fn toggled_to_green(f: &Fixture) -> (bgw_watchdog::proxy::Switcher, Monitor) {
        let (monitor, _store) = control_monitor(f.path()).await;
        let switcher = f.switcher();
        control::switch_and_record(
            &switcher,
            &monitor,
            chrono::Utc::now(),
            Color::Green,
            manual("operator"),
        )
        .await
        .expect("toggle to green");
        f.green.control("fail").await.unwrap();
        (switcher, monitor)
    }

    async fn evaluate(
        switcher: &bgw_watchdog::proxy::Switcher,
        monitor: &Monitor,
        settings: &RollbackSettings,
        observations: Observations,
    ) -> bgw_watchdog::control::Evaluation {
        evaluate_rollback(
            switcher,
            monitor,
            settings,
            &monitor.snapshot().control,
            observations,
            Duration::from_secs(2),
            chrono::Utc::now(),
        )
        .await
    }

    #[tokio::test]
    async fn a_failing_new_color_is_switched_back_once_then_latched() {
        let f = fixture().await;
        let (switcher, monitor) = toggled_to_green(&f).await;
        let settings = RollbackSettings::default();
        let e = evaluate(&switcher, &monitor, &settings, green_failing()).await;
        match &e.decision {
            Decision::Switch { to, reason } => {
                assert_eq!(*to, Color::Blue);
                assert!(reason.starts_with("green failed "), "{reason}");
                assert!(reason.contains("(agents: GET /ping returned 500, checker: live-proxy: GET /ping returned 500)"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            e.view.previous_healthy_direct,
            Some(true),
            "blue was probed directly"
        );
        e.switched.expect("switched").expect("switch ok");
        assert_eq!(std::fs::read(&f.settings.live_file).unwrap(), b"blue");
        assert_serves(f.settings.live_listen, "blue").await;
        assert!(monitor.snapshot().control.rollback.latched);

        // Now blue fails too: no flip back to green.
        f.blue.control("fail").await.unwrap();
        let blue_failing = Observations {
            observers: green_failing()
                .observers
                .into_iter()
                .map(|mut o| {
                    o.color = Color::Blue;
                    o
                })
                .collect(),
            ..green_failing()
        };
        let e = evaluate(&switcher, &monitor, &settings, blue_failing).await;
        match e.decision {
            Decision::Refuse { rule, .. } => assert_eq!(rule, Rule::FlipFlop),
            other => panic!("{other:?}"),
        }
        assert!(e.switched.is_none());
        assert_eq!(std::fs::read(&f.settings.live_file).unwrap(), b"blue");
    }

    #[tokio::test]
    async fn no_switch_back_to_a_previous_color_that_is_broken_too() {
        let f = fixture().await;
        let (switcher, monitor) = toggled_to_green(&f).await;
        f.blue.control("fail").await.unwrap();
        let e = evaluate(
            &switcher,
            &monitor,
            &RollbackSettings::default(),
            green_failing(),
        )
        .await;
        match &e.decision {
            Decision::Refuse { rule, reason, .. } => {
                assert_eq!(*rule, Rule::TargetUnhealthy);
                assert!(
                    reason.contains("blue-direct: GET http://127.0.0.1:"),
                    "{reason}"
                );
                assert!(reason.ends_with("/ping returned 500)"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(e.switched.is_none());
        assert_eq!(std::fs::read(&f.settings.live_file).unwrap(), b"green");
        assert_serves(f.settings.live_listen, "green").await;
    }

    #[tokio::test]
    async fn dry_run_changes_nothing() {
        let f = fixture().await;
        let (switcher, monitor) = toggled_to_green(&f).await;
        let settings = RollbackSettings {
            mode: Mode::DryRun,
            ..Default::default()
        };
        let e = evaluate(&switcher, &monitor, &settings, green_failing()).await;
        assert!(
            matches!(
                e.decision,
                Decision::DryRun {
                    to: Color::Blue,
                    ..
                }
            ),
            "{:?}",
            e.decision
        );
        assert!(e.switched.is_none());
        assert_eq!(std::fs::read(&f.settings.live_file).unwrap(), b"green");
        let control = monitor.snapshot().control.clone();
        assert!(!control.rollback.latched);
        assert_eq!(control.last_toggle.map(|t| t.to), Some(Color::Green));
    }

    #[tokio::test]
    async fn a_deploy_to_the_previous_color_since_the_toggle_disarms_rollback() {
        let f = fixture().await;
        let (switcher, monitor) = toggled_to_green(&f).await;
        let (_, record) = control::deploy(
            switcher.settings(),
            chrono::Utc::now(),
            Color::Blue,
            "app:3",
            Ok(Color::Green),
        )
        .await;
        monitor.record(record).await.unwrap();
        let e = evaluate(
            &switcher,
            &monitor,
            &RollbackSettings::default(),
            green_failing(),
        )
        .await;
        assert!(
            matches!(
                e.decision,
                Decision::Refuse {
                    rule: Rule::Redeployed,
                    ..
                }
            ),
            "{:?}",
            e.decision
        );
        assert_eq!(std::fs::read(&f.settings.live_file).unwrap(), b"green");
    }
}

mod live_mode {
    //! `proxy.mode = "live"`: the config holds both colors, nginx picks the
    //! live one per request from its shared dictionary, and a switch sets
    //! it through the loopback control location. Needs the Lua module
    //! (`libnginx-mod-http-lua`, installed by `scripts/install-deps.sh`).
    use super::*;
    use bgw_watchdog::proxy::SwitchMode;
    use std::io::{Read, Write};

    async fn live_fixture() -> Fixture {
        Fixture::start_in(Path::new(TESTAPP), SwitchMode::Live)
            .await
            .expect("start nginx in live mode (is libnginx-mod-http-lua installed?)")
    }

    /// One HTTP/1.1 keep-alive connection, read by hand so the test knows
    /// every request went over the same socket.
    struct KeepAlive(std::net::TcpStream);

    impl KeepAlive {
        fn open(port: u16) -> KeepAlive {
            let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            KeepAlive(s)
        }

        /// `GET /ping`; returns (`X-Bgw-Color`, body).
        fn ping(&mut self) -> (String, String) {
            self.0
                .write_all(b"GET /ping HTTP/1.1\r\nHost: bgw\r\n\r\n")
                .unwrap();
            let mut buf = Vec::new();
            let mut byte = [0u8; 1];
            while !buf.ends_with(b"\r\n\r\n") {
                let n = self.0.read(&mut byte).unwrap();
                assert_eq!(n, 1, "nginx closed the keep-alive connection");
                buf.push(byte[0]);
            }
            let head = String::from_utf8(buf).unwrap().to_ascii_lowercase();
            let header = |name: &str| {
                head.lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                    .map(|v| v.trim().to_string())
            };
            assert!(head.starts_with("http/1.1 200"), "{head}");
            let len: usize = header("content-length")
                .expect("a content-length")
                .parse()
                .unwrap();
            let mut body = vec![0u8; len];
            self.0.read_exact(&mut body).unwrap();
            (
                header("x-bgw-color").unwrap_or_default(),
                String::from_utf8(body).unwrap(),
            )
        }
    }

    #[tokio::test]
    async fn a_live_switch_changes_the_color_without_a_reload_or_a_config_write() {
        let f = live_fixture().await;
        let switcher = f.switcher();
        let conf_before = std::fs::read(&f.settings.nginx_conf).unwrap();
        let workers_before = f.nginx.workers();
        assert!(!workers_before.is_empty());

        let report = switcher.switch(Color::Green, "test").await.expect("switch");
        assert_eq!((report.from, report.to), (Some(Color::Blue), Color::Green));
        assert_eq!(report.mode, SwitchMode::Live);
        assert!(
            report.reload.display.starts_with("PUT http://127.0.0.1:"),
            "{}",
            report.reload.display
        );
        assert!(report.verify_attempts >= proxy::VERIFY_IN_A_ROW);
        assert_serves(f.settings.live_listen, "green").await;
        assert_serves(f.settings.idle_listen, "blue").await;
        assert_eq!(std::fs::read(&f.settings.live_file).unwrap(), b"green");
        assert_eq!(switcher.nginx_color().await, Ok(Color::Green));

        let report = switcher.switch(Color::Blue, "test").await.expect("back");
        assert_eq!(report.from, Some(Color::Green));
        assert_serves(f.settings.live_listen, "blue").await;
        assert_serves(f.settings.idle_listen, "green").await;
        assert_eq!(std::fs::read(&f.settings.live_file).unwrap(), b"blue");

        // No worker was replaced and the config file was not written.
        assert_eq!(f.nginx.workers(), workers_before);
        assert_eq!(std::fs::read(&f.settings.nginx_conf).unwrap(), conf_before);
    }

    #[tokio::test]
    async fn a_keep_alive_connection_survives_a_live_switch_and_sees_the_new_color() {
        let f = live_fixture().await;
        let switcher = f.switcher();
        let mut conn = KeepAlive::open(f.settings.live_listen);
        let (color, body) = conn.ping();
        assert_eq!(color, "blue");
        assert!(body.starts_with("pong blue"), "{body}");
        for to in [Color::Green, Color::Blue, Color::Green] {
            switcher.switch(to, "test").await.expect("switch");
            // The same socket, the next request: the new color answers.
            let (color, body) = conn.ping();
            assert_eq!(color, to.as_str());
            assert!(body.starts_with(&format!("pong {to}")), "{body}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_control_location_fails_the_switch_and_restores_the_live_file() {
        let f = live_fixture().await;
        let nothing_there = bgw_e2e::nginx::free_port();
        let switcher = f.switcher_with(|s| s.control_listen = nothing_there);
        let err = switcher.switch(Color::Green, "test").await.unwrap_err();
        assert_eq!(err.step(), Step::Control, "{err}");
        assert!(
            err.to_string().contains("previous live file restored"),
            "{err}"
        );
        assert!(err.output().unwrap().contains("cannot connect"), "{err}");
        assert_eq!(std::fs::read(&f.settings.live_file).unwrap(), b"blue");
        assert_serves(f.settings.live_listen, "blue").await;
        assert_eq!(f.switcher().nginx_color().await, Ok(Color::Blue));
    }

    #[tokio::test]
    async fn a_live_switch_that_fails_verification_puts_the_previous_color_back() {
        let f = live_fixture().await;
        // Verify against the blue app itself: it never answers as nginx's
        // live port with green, as a broken proxy path would not.
        let blue_app = f.blue.port;
        let switcher = f.switcher_with(|s| {
            s.live_listen = blue_app;
            s.verify_timeout = Duration::from_millis(500).into();
        });
        let err = switcher.switch(Color::Green, "test").await.unwrap_err();
        assert_eq!(err.step(), Step::Verify, "{err}");
        assert!(
            err.to_string()
                .ends_with("the previous color is live again"),
            "{err}"
        );
        assert_eq!(std::fs::read(&f.settings.live_file).unwrap(), b"blue");
        assert_eq!(f.switcher().nginx_color().await, Ok(Color::Blue));
        assert_serves(f.settings.live_listen, "blue").await;
    }

    #[tokio::test]
    async fn a_failing_new_color_is_rolled_back_in_live_mode() {
        use super::rollback_through_nginx::{green_failing, toggled_to_green};
        use bgw_watchdog::control::evaluate_rollback;
        use bgw_watchdog::rollback::{Decision, RollbackSettings};
        let f = live_fixture().await;
        let (switcher, monitor) = toggled_to_green(&f).await;
        let observations = green_failing();
        let e = evaluate_rollback(
            &switcher,
            &monitor,
            &RollbackSettings::default(),
            &monitor.snapshot().control,
            observations,
            Duration::from_secs(2),
            chrono::Utc::now(),
        )
        .await;
        assert!(
            matches!(
                e.decision,
                Decision::Switch {
                    to: Color::Blue,
                    ..
                }
            ),
            "{:?}",
            e.decision
        );
        let report = e.switched.expect("switched").expect("switch ok");
        assert_eq!(report.mode, SwitchMode::Live);
        assert_eq!(std::fs::read(&f.settings.live_file).unwrap(), b"blue");
        assert_serves(f.settings.live_listen, "blue").await;
        assert_eq!(switcher.nginx_color().await, Ok(Color::Blue));
        assert!(monitor.snapshot().control.rollback.latched);
    }

    #[tokio::test]
    async fn nginx_restarted_in_live_mode_comes_back_on_the_live_files_color() {
        let mut f = live_fixture().await;
        f.switcher()
            .switch(Color::Green, "test")
            .await
            .expect("switch");
        let old_master = f.nginx.pid();
        f.nginx.restart().expect("restart nginx");
        assert_ne!(f.nginx.pid(), old_master);
        // Nobody told the new nginx anything: it read the live file.
        assert_serves(f.settings.live_listen, "green").await;
        assert_serves(f.settings.idle_listen, "blue").await;
        assert_eq!(f.switcher().nginx_color().await, Ok(Color::Green));
    }

    #[tokio::test]
    async fn the_control_location_is_bound_to_127_0_0_1_and_unreachable_from_the_public_ports() {
        let f = live_fixture().await;
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        // Through the public ports, /bgw/live is just a path of the app.
        for port in [f.settings.live_listen, f.settings.idle_listen] {
            let resp = client
                .put(format!("http://127.0.0.1:{port}/bgw/live"))
                .body("green")
                .send()
                .await
                .unwrap();
            assert!(resp.headers().contains_key(bgw_wire::COLOR_HEADER));
            assert_ne!(resp.text().await.unwrap(), "green");
        }
        assert_eq!(f.switcher().nginx_color().await, Ok(Color::Blue));
        assert_serves(f.settings.live_listen, "blue").await;

        // Bound to 127.0.0.1 only: another loopback address is refused...
        let control = f.settings.control_listen;
        let other = std::net::TcpStream::connect(("127.0.0.2", control));
        assert_eq!(
            other.unwrap_err().kind(),
            std::io::ErrorKind::ConnectionRefused
        );
        // ...and a client from another source address gets 403.
        let elsewhere = reqwest::Client::builder()
            .no_proxy()
            .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
            .build()
            .unwrap();
        let resp = elsewhere
            .put(f.settings.control_url())
            .body("green")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::FORBIDDEN);
        assert_eq!(f.switcher().nginx_color().await, Ok(Color::Blue));
    }

    #[tokio::test]
    async fn installing_live_mode_over_a_running_reload_mode_nginx_reloads_once() {
        let f = fixture().await;
        let control_listen = bgw_e2e::nginx::free_port();
        let live = f.switcher_with(|s| {
            s.mode = SwitchMode::Live;
            s.control_listen = control_listen;
        });
        let report = live.install().await.expect("install").expect("live mode");
        let (test, reload) = report.written.expect("the config differed");
        assert!(test.ok && reload.ok);
        assert_eq!(report.live, Color::Blue);
        assert_eq!(
            std::fs::read_to_string(&f.settings.nginx_conf).unwrap(),
            proxy::render(live.settings(), Color::Blue).unwrap()
        );
        assert_serves(f.settings.live_listen, "blue").await;
        // Once: the second start finds the config in place.
        let again = live.install().await.expect("install").expect("live mode");
        assert!(again.written.is_none());
        live.switch(Color::Green, "test")
            .await
            .expect("live switch");
        assert_serves(f.settings.live_listen, "green").await;
        // Reload mode has nothing to install.
        assert!(f.switcher().install().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn install_repairs_nginx_memory_from_the_live_file() {
        let f = live_fixture().await;
        // A switch that wrote the live file but never reached nginx (a crash).
        proxy::write_live(&f.settings.live_file, Color::Green).unwrap();
        assert_eq!(f.switcher().nginx_color().await, Ok(Color::Blue));
        let report = f.switcher().install().await.unwrap().unwrap();
        assert!(report.written.is_none(), "the config was already in place");
        assert_eq!(report.live, Color::Green);
        assert_serves(f.settings.live_listen, "green").await;
    }

    #[tokio::test]
    async fn check_config_names_the_mode_and_whether_nginx_loads_the_lua_module() {
        let f = live_fixture().await;
        let run = |extra: &str| {
            let path = f.path().join("watchdog.toml");
            std::fs::write(
                &path,
                format!(
                    "[proxy]\nmode = \"live\"\nnginx_conf = {:?}\nlive_file = {:?}\ntest_cmd = {:?}\nmain_directives = \"pid nginx.pid;\"\ncontrol_listen = {}\n{extra}",
                    f.settings.nginx_conf.display().to_string(),
                    f.settings.live_file.display().to_string(),
                    f.settings.test_cmd,
                    f.settings.control_listen,
                ),
            )
            .unwrap();
            let out = std::process::Command::new(bgw_e2e::bin("bgw-watchdog"))
                .arg("--config")
                .arg(&path)
                .arg("check-config")
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0));
            String::from_utf8(out.stdout).unwrap()
        };
        let text = run("");
        assert!(text.contains("proxy mode: live ("), "{text}");
        assert!(
            text.contains("test_cmd accepts the live-mode config: nginx loads the Lua module"),
            "{text}"
        );
        let text = run("lua_modules = [\"/nonexistent/ngx_http_lua_module.so\"]\n");
        assert!(
            text.contains("/nonexistent/ngx_http_lua_module.so: MISSING"),
            "{text}"
        );
        assert!(text.contains("WARNING: test_cmd refuses"), "{text}");
        // The running nginx's config was not touched.
        assert_eq!(
            std::fs::read_to_string(&f.settings.nginx_conf).unwrap(),
            proxy::render(&f.settings, Color::Blue).unwrap()
        );
    }
}
