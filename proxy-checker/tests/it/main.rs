//! `bgw-checker` against real processes on loopback: two test apps, a real
//! nginx in front of them, and an in-test watchdog that records reports.

mod harness;

use bgw_wire::{Color, ProbeResult, Report, Target};
use harness::{exit_code, send_signal, Checker, FakeWatchdog, Nginx, TestApp};
use std::time::Duration;

fn result(report: &Report, target: Target) -> &ProbeResult {
    report
        .results
        .iter()
        .find(|r| r.target == target)
        .unwrap_or_else(|| panic!("no {target} in {report:?}"))
}

/// Blue live on the live port, green on the idle port.
struct Setup {
    blue: TestApp,
    green: TestApp,
    nginx: Nginx,
    watchdog: FakeWatchdog,
}

async fn setup() -> Setup {
    let blue = TestApp::start("blue").await;
    let green = TestApp::start("green").await;
    let nginx = Nginx::start(("blue", blue.port), ("green", green.port)).await;
    let watchdog = FakeWatchdog::start().await;
    Setup {
        blue,
        green,
        nginx,
        watchdog,
    }
}

impl Setup {
    fn checker(&self, live: &str) -> Checker {
        Checker::start(
            &self.watchdog,
            &self.nginx,
            self.blue.port,
            self.green.port,
            live,
            "",
        )
    }
}

fn all_ok(r: &Report) -> bool {
    r.results.len() == 4 && r.results.iter().all(|r| r.ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_four_targets_are_ok_and_carry_the_color_that_served_them() {
    let s = setup().await;
    let checker = s.checker("blue");
    let report = s.watchdog.wait_for_report(0, all_ok).await;

    assert_eq!(report.observer, "checker");
    let targets: Vec<Target> = report.results.iter().map(|r| r.target).collect();
    assert_eq!(
        targets,
        vec![
            Target::BlueDirect,
            Target::GreenDirect,
            Target::LiveProxy,
            Target::IdleProxy
        ]
    );
    let colors: Vec<Option<Color>> = report.results.iter().map(|r| r.color).collect();
    assert_eq!(
        colors,
        vec![
            Some(Color::Blue),
            Some(Color::Green),
            Some(Color::Blue),
            Some(Color::Green)
        ]
    );
    for r in &report.results {
        assert_eq!(r.status, Some(200), "{r:?}");
        assert!(r.latency_ms.is_some() && r.error.is_none(), "{r:?}");
    }
    assert_eq!(
        result(&report, Target::BlueDirect).url,
        format!("http://127.0.0.1:{}/ping", s.blue.port)
    );
    assert_eq!(
        result(&report, Target::LiveProxy).url,
        format!("http://127.0.0.1:{}/ping", s.nginx.live_port)
    );
    assert!(s
        .watchdog
        .authorizations()
        .iter()
        .all(|a| a == "Bearer checker-secret-token"));
    let stderr = checker.stderr();
    assert!(stderr.contains("[blue-direct - OK]"), "{stderr}");
    assert!(stderr.contains("Threshold: 1000ms"), "{stderr}");
    assert!(!stderr.contains("checker-secret-token"), "token in logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_green_app_fails_green_direct_and_the_idle_port_with_status_500() {
    let s = setup().await;
    let _checker = s.checker("blue");
    s.watchdog.wait_for_report(0, all_ok).await;
    s.green.control("fail").await;
    let report = s
        .watchdog
        .wait_for_report(0, |r| r.results.iter().any(|p| !p.ok))
        .await;

    let green = result(&report, Target::GreenDirect);
    assert!(!green.ok);
    assert_eq!(green.status, Some(500));
    assert_eq!(green.error.as_deref(), Some("GET /ping returned 500"));
    let idle = result(&report, Target::IdleProxy);
    assert!(!idle.ok);
    assert_eq!(idle.status, Some(500));
    assert_eq!(idle.color, Some(Color::Green), "nginx stamps errors too");
    assert!(result(&report, Target::BlueDirect).ok);
    assert!(result(&report, Target::LiveProxy).ok);

    // Recovery shows in the next reports.
    let n = s.watchdog.reports().len();
    s.green.control("ok").await;
    s.watchdog.wait_for_report(n, all_ok).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_port_served_by_the_wrong_color_fails_live_proxy() {
    let s = setup().await;
    // live_file says green, but nginx sends the live port to blue.
    let checker = s.checker("green");
    let report = s
        .watchdog
        .wait_for_report(0, |r| r.results.len() == 4)
        .await;

    let live = result(&report, Target::LiveProxy);
    assert!(!live.ok);
    assert_eq!(live.status, Some(200));
    assert_eq!(live.color, Some(Color::Blue));
    assert_eq!(live.error.as_deref(), Some("served by blue, live is green"));
    let idle = result(&report, Target::IdleProxy);
    assert!(!idle.ok);
    assert_eq!(idle.error.as_deref(), Some("served by green, idle is blue"));
    assert!(result(&report, Target::BlueDirect).ok);
    assert!(result(&report, Target::GreenDirect).ok);
    let stderr = checker.stderr();
    assert!(
        stderr.contains("ALERT: live-proxy failing! served by blue, live is green"),
        "{stderr}"
    );

    // An undefined live color fails the live port with what the file holds.
    std::fs::write(&checker.live_file, "purple\n").unwrap();
    let n = s.watchdog.reports().len();
    let report = s
        .watchdog
        .wait_for_report(n, |r| {
            r.results
                .iter()
                .any(|p| p.error.as_deref().is_some_and(|e| e.contains("undefined")))
        })
        .await;
    let live = result(&report, Target::LiveProxy);
    assert_eq!(
        live.error,
        Some(format!(
            "live color undefined (live_file {} holds \"purple\")",
            checker.live_file.display()
        ))
    );

    // Fixing the file makes everything ok again.
    std::fs::write(&checker.live_file, "blue").unwrap();
    let n = s.watchdog.reports().len();
    s.watchdog.wait_for_report(n, all_ok).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_app_over_the_threshold_fails_with_its_latency() {
    let s = setup().await;
    let checker = s.checker("blue");
    s.watchdog.wait_for_report(0, all_ok).await;
    s.blue.control("slow?ms=1500").await;
    let report = s
        .watchdog
        .wait_for_report(0, |r| r.results.iter().any(|p| !p.ok))
        .await;

    for target in [Target::BlueDirect, Target::LiveProxy] {
        let r = result(&report, target);
        assert!(!r.ok, "{r:?}");
        assert_eq!(r.status, Some(200));
        let latency = r.latency_ms.unwrap();
        assert!(latency >= 1500, "{r:?}");
        assert_eq!(
            r.error,
            Some(format!("latency {latency}ms over threshold 1000ms"))
        );
    }
    assert!(result(&report, Target::GreenDirect).ok);
    assert!(result(&report, Target::IdleProxy).ok);
    let stderr = checker.stderr();
    assert!(
        stderr.contains("WARNING: blue-direct taking too long to respond!"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_keeps_probing_while_the_watchdog_is_down_and_delivers_once_it_is_back() {
    let mut s = setup().await;
    let mut checker = s.checker("blue");
    s.watchdog.wait_for_report(0, all_ok).await;

    s.watchdog.server.stop().await;
    // While the watchdog is away, green breaks: only a checker that kept
    // probing can report it when the watchdog is back.
    s.green.control("fail").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        checker.is_running(),
        "the checker died without its watchdog"
    );
    let before = s.watchdog.reports().len();

    s.watchdog.server.restart().await;
    let report = s
        .watchdog
        .wait_for_report(before, |r| {
            r.results
                .iter()
                .any(|p| p.target == Target::GreenDirect && !p.ok)
        })
        .await;
    assert_eq!(
        result(&report, Target::GreenDirect).error.as_deref(),
        Some("GET /ping returned 500")
    );
    // The outage is logged once, not once per attempt.
    harness::eventually("the recovery log line", || {
        checker
            .stderr()
            .contains("watchdog reachable again")
            .then_some(())
    })
    .await;
    let stderr = checker.stderr();
    assert_eq!(
        stderr.matches("watchdog unreachable").count(),
        1,
        "{stderr}"
    );
    assert!(!stderr.contains("checker-secret-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_checker_with_exit_code_0() {
    let s = setup().await;
    let mut checker = s.checker("blue");
    s.watchdog.wait_for_report(0, all_ok).await;
    send_signal(checker.child.id(), "TERM");
    assert_eq!(exit_code(&mut checker.child).await, Some(0));
    assert!(checker.stderr().contains("bgw-checker stopped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_value_exits_2_and_names_the_key() {
    for (key, value) in [
        ("BGW_INTERVAL", "5 parsecs"),
        ("BGW_BLUE", "nowhere"),
        ("BGW_WATCHDOG_URL", "not a url"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bgw-checker"))
            .env("BGW_WATCHDOG_URL", "http://127.0.0.1:9")
            .env("BGW_TOKEN", "secret-value")
            .env(key, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{key}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = key.trim_start_matches("BGW_").to_ascii_lowercase();
        assert!(stderr.contains(&format!("`{name}`")), "{stderr}");
        assert!(!stderr.contains("secret-value"), "{stderr}");
    }
}

#[test]
fn help_explains_every_key() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bgw-checker"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for key in bgw_checker::settings::KEYS {
        assert!(
            help.contains(&format!("`{key}`")),
            "{key} missing in --help"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_app_times_out_without_holding_back_the_next_reports() {
    let s = setup().await;
    let _checker = s.checker("blue");
    s.watchdog.wait_for_report(0, all_ok).await;
    // Longer than the checker's 3s timeout.
    s.blue.control("slow?ms=20000").await;
    let timed_out = |r: &Report| {
        r.results.iter().any(|p| {
            p.target == Target::BlueDirect && p.error.as_deref() == Some("timed out after 3s")
        })
    };
    let report = s.watchdog.wait_for_report(0, timed_out).await;
    let blue = result(&report, Target::BlueDirect);
    assert_eq!((blue.ok, blue.status, blue.latency_ms), (false, None, None));
    assert!(result(&report, Target::GreenDirect).ok);
    // Rounds overlap: while each one waits out the timeout, reports keep
    // coming at the interval (200ms), not once per timeout (3s). Sequential
    // rounds would send at most one more in the next 3 seconds.
    let first = s.watchdog.reports().iter().position(timed_out).unwrap();
    let start = std::time::Instant::now();
    harness::eventually("more timed-out reports", || {
        let later = s
            .watchdog
            .reports()
            .iter()
            .skip(first + 1)
            .filter(|r| timed_out(r))
            .count();
        (later >= 3).then_some(())
    })
    .await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "reports stalled behind the timeout"
    );
}
