//! Integration tests of `bgw-agent`: the real binary and the real test app
//! as processes on loopback, against an in-test watchdog that records the
//! heartbeats (the end-to-end test with the real watchdog is
//! `tests/tests/agent_e2e.rs`).

mod helpers;

use bgw_wire::HeartbeatStatus;
use helpers::*;
use rustix::process::Signal;
use std::process::Command;
use std::time::Duration;

fn token_env() -> [(&'static str, &'static str); 1] {
    [("BGW_TOKEN", TOKEN)]
}

fn assert_no_token(proc: &Proc) {
    let stderr = proc.stderr();
    assert!(
        !stderr.contains(TOKEN),
        "the token leaked to stderr:\n{stderr}"
    );
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn sidecar_sends_ok_heartbeats_with_increasing_seq() {
    let watchdog = FakeWatchdog::start().await;
    let app = TestApp::start().await;
    let args = base_args(&watchdog.url(), &app.ping_url(), "200ms");
    let agent = agent(&strs(&args), &token_env());

    let beats = eventually("three heartbeats", || {
        let b = watchdog.heartbeats();
        (b.len() >= 3).then_some(b)
    })
    .await;
    for (i, hb) in beats.iter().enumerate() {
        assert_eq!(hb.seq, i as u64 + 1, "{beats:?}");
        assert_eq!(hb.status, HeartbeatStatus::Ok);
        assert_eq!(hb.check, "blue");
        assert_eq!(hb.instance, "it-1");
        assert_eq!(hb.color, Some(bgw_wire::Color::Blue));
        assert_eq!(hb.version.as_deref(), Some("1.0.4"));
        assert_eq!(hb.interval.unwrap().to_string(), "200ms");
        let detail = hb.detail.as_deref().unwrap();
        assert!(
            detail.starts_with("GET /ping 200 in ") && detail.ends_with(" ms"),
            "{detail}"
        );
    }
    assert_no_token(&agent);
}

#[tokio::test]
async fn a_failing_slow_or_dead_app_is_reported_as_fail_with_the_reason() {
    let watchdog = FakeWatchdog::start().await;
    let mut app = TestApp::start().await;
    let args = base_args(&watchdog.url(), &app.ping_url(), "200ms");
    let agent = agent(&strs(&args), &token_env());
    watchdog
        .wait_for("an ok heartbeat", |h| h.status == HeartbeatStatus::Ok)
        .await;

    app.control("fail").await;
    watchdog
        .wait_for("fail: returned 500", |h| {
            h.status == HeartbeatStatus::Fail
                && h.detail.as_deref() == Some("GET /ping returned 500")
        })
        .await;

    app.control("slow?ms=3000").await;
    watchdog
        .wait_for("fail: timed out", |h| {
            h.detail.as_deref() == Some("GET /ping: timed out after 500ms")
        })
        .await;

    app.control("ok").await;
    let recovered = watchdog
        .wait_for("ok again", |h| h.status == HeartbeatStatus::Ok && h.seq > 3)
        .await;

    drop(app.proc.take()); // kill -9 the app
    let dead = watchdog
        .wait_for("fail: connection refused", |h| {
            h.detail.as_deref() == Some("GET /ping: connection refused")
        })
        .await;
    assert_eq!(dead.heartbeat.status, HeartbeatStatus::Fail);
    assert!(dead.heartbeat.seq > recovered.heartbeat.seq);
    assert_no_token(&agent);
}

#[tokio::test]
async fn wrapper_reports_the_app_exit_at_once_and_exits_with_its_code() {
    let watchdog = FakeWatchdog::start().await;
    let port = free_port();
    let app = TestApp { port, proc: None };
    let testapp = testapp_bin();
    let mut args = base_args(&watchdog.url(), &app.ping_url(), "30s");
    args.push("--".into());
    args.push(testapp.to_string_lossy().into_owned());
    args.extend(TestApp::args(port));
    let mut agent = agent(&strs(&args), &token_env());

    // The agent waits for the app's first good answer rather than report a
    // starting app as failing.
    let first = watchdog.wait_for("the first heartbeat", |_| true).await;
    assert_eq!(first.heartbeat.status, HeartbeatStatus::Ok, "{first:?}");
    assert_eq!(first.heartbeat.seq, 1);

    app.control("exit?code=3").await;
    let fail = watchdog
        .wait_for("fail: app exited", |h| h.status == HeartbeatStatus::Fail)
        .await;
    assert_eq!(
        fail.heartbeat.detail.as_deref(),
        Some("app exited with code 3")
    );
    assert_eq!(fail.heartbeat.seq, 2);
    // Event-driven: it came long before the next 30 s interval would have.
    assert!(fail.at.duration_since(first.at) < Duration::from_secs(30));
    assert_eq!(watchdog.heartbeats().len(), 2);

    let status = agent.wait_exit().await;
    assert_eq!(status.code(), Some(3), "{}", agent.stderr());
    assert_no_token(&agent);
}

#[tokio::test]
async fn wrapper_reports_an_app_killed_by_a_signal_as_128_plus_n() {
    let watchdog = FakeWatchdog::start().await;
    let port = free_port();
    let app = TestApp { port, proc: None };
    let mut args = base_args(&watchdog.url(), &app.ping_url(), "30s");
    args.push("--".into());
    args.push(testapp_bin().to_string_lossy().into_owned());
    args.extend(TestApp::args(port));
    let mut agent = agent(&strs(&args), &token_env());
    watchdog.wait_for("the first heartbeat", |_| true).await;

    // The app is the agent's only child: find it through /proc.
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", agent.pid())).unwrap();
    let app_pid: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(app_pid).unwrap(),
        Signal::KILL,
    )
    .unwrap();

    let fail = watchdog
        .wait_for("fail: killed", |h| h.status == HeartbeatStatus::Fail)
        .await;
    assert_eq!(
        fail.heartbeat.detail.as_deref(),
        Some("app killed by signal 9")
    );
    assert_eq!(agent.wait_exit().await.code(), Some(137));
}

#[tokio::test]
async fn sigterm_sends_stopping_forwards_it_and_exits_with_the_app_code() {
    let watchdog = FakeWatchdog::start().await;
    let port = free_port();
    let app = TestApp { port, proc: None };
    let mut args = base_args(&watchdog.url(), &app.ping_url(), "30s");
    args.push("--".into());
    args.push(testapp_bin().to_string_lossy().into_owned());
    args.extend(TestApp::args(port));
    let mut agent = agent(&strs(&args), &token_env());
    watchdog.wait_for("the first heartbeat", |_| true).await;

    agent.signal(Signal::TERM);
    // The app exits 0 on SIGTERM only if it was forwarded; otherwise the
    // agent would wait for it forever.
    let status = agent.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{}", agent.stderr());
    let beats = watchdog.heartbeats();
    let statuses: Vec<_> = beats.iter().map(|h| h.status).collect();
    assert_eq!(
        statuses,
        [HeartbeatStatus::Ok, HeartbeatStatus::Stopping],
        "stopping, and no fail: {beats:?}"
    );
    assert_eq!(beats[1].seq, 2);
    assert!(
        agent
            .stderr()
            .contains("app exited with code 0 after SIGTERM"),
        "{}",
        agent.stderr()
    );
    assert!(
        reqwest::get(app.ping_url()).await.is_err(),
        "the app is gone"
    );
    assert_no_token(&agent);
}

#[tokio::test]
async fn sidecar_sigterm_sends_stopping_and_exits_0() {
    let watchdog = FakeWatchdog::start().await;
    let app = TestApp::start().await;
    let args = base_args(&watchdog.url(), &app.ping_url(), "30s");
    let mut agent = agent(&strs(&args), &token_env());
    watchdog.wait_for("the first heartbeat", |_| true).await;

    agent.signal(Signal::INT);
    assert_eq!(agent.wait_exit().await.code(), Some(0));
    let last = watchdog.heartbeats().pop().unwrap();
    assert_eq!(last.status, HeartbeatStatus::Stopping);
    assert_eq!(last.detail.as_deref(), Some("SIGINT received"));
    // The app beside it is untouched.
    assert!(reqwest::get(app.ping_url())
        .await
        .unwrap()
        .status()
        .is_success());
}

#[tokio::test]
async fn an_outage_of_the_watchdog_is_logged_once_and_never_stops_the_app() {
    let watchdog_port = free_port();
    let port = free_port();
    let app = TestApp { port, proc: None };
    let mut args = base_args(
        &format!("http://127.0.0.1:{watchdog_port}"),
        &app.ping_url(),
        "200ms",
    );
    args.push("--".into());
    args.push(testapp_bin().to_string_lossy().into_owned());
    args.extend(TestApp::args(port));
    let mut agent = agent(&strs(&args), &token_env());

    agent.wait_stderr("watchdog unreachable").await;
    // Let it retry a good number of times (the backoff is capped at 200ms).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(agent.try_status().is_none(), "the agent keeps running");
    app.wait_ready().await;

    let watchdog = FakeWatchdog::start_on(watchdog_port).await;
    watchdog
        .wait_for("a heartbeat after the outage", |_| true)
        .await;
    agent.wait_stderr("watchdog reachable again after").await;
    let beats = eventually("two more heartbeats", || {
        let b = watchdog.heartbeats();
        (b.len() >= 3).then_some(b)
    })
    .await;
    assert!(beats.iter().all(|h| h.status == HeartbeatStatus::Ok));
    assert!(beats.windows(2).all(|w| w[0].seq < w[1].seq), "{beats:?}");

    let stderr = agent.stderr();
    assert_eq!(
        stderr.matches("watchdog unreachable").count(),
        1,
        "{stderr}"
    );
    assert_eq!(stderr.matches("reachable again").count(), 1, "{stderr}");
    let attempts: u32 = stderr
        .split("reachable again after ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(attempts >= 5, "retried during the outage: {stderr}");
    assert!(agent.try_status().is_none());
    assert_no_token(&agent);
}

#[tokio::test]
async fn a_watchdog_answering_5xx_is_retried_with_backoff_and_logged_once() {
    let watchdog = FakeWatchdog::start().await;
    watchdog.answer_with(503);
    let app = TestApp::start().await;
    let args = base_args(&watchdog.url(), &app.ping_url(), "4s");
    let agent = agent(&strs(&args), &token_env());
    agent.wait_stderr("watchdog unreachable").await;
    let start = std::time::Instant::now();
    eventually("several retries", || {
        (watchdog.requests() >= 4).then_some(())
    })
    .await;
    // On the interval alone, 4 attempts would take 3 intervals (10.8 s).
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "no backoff retries"
    );
    watchdog.answer_normally();
    let beat = watchdog
        .wait_for("a heartbeat after the 503s", |_| true)
        .await;
    assert_eq!(beat.heartbeat.status, HeartbeatStatus::Ok);
    assert!(
        beat.heartbeat.seq >= 5,
        "each retry is a fresh heartbeat: {beat:?}"
    );
    agent.wait_stderr("reachable again").await;
    let stderr = agent.stderr();
    assert_eq!(
        stderr.matches("watchdog unreachable").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("answered 503"), "{stderr}");
    assert_no_token(&agent);
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let app = TestApp::start().await;
    let args = base_args(
        &format!("http://127.0.0.1:{}", free_port()),
        &app.ping_url(),
        "200ms",
    );
    let mut args = strs(&args);
    args.extend(["--log-format", "json"]);
    let mut agent = agent(&args, &token_env());
    agent.wait_stderr("watchdog unreachable").await;
    agent.signal(Signal::TERM);
    assert_eq!(agent.wait_exit().await.code(), Some(0));
    let stderr = agent.stderr();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.len() >= 3, "{stderr}");
    assert!(lines
        .iter()
        .all(|l| l["ts"].is_string() && l["target"] == "bgw-agent"));
    assert!(lines
        .iter()
        .any(|l| l["level"] == "WARN" && l["msg"].as_str().unwrap().contains("unreachable")));
    assert_no_token(&agent);
}

#[tokio::test]
async fn a_wrong_token_is_logged_once_and_never_printed() {
    let watchdog = FakeWatchdog::start().await;
    let app = TestApp::start().await;
    let args = base_args(&watchdog.url(), &app.ping_url(), "100ms");
    let wrong = "wrong-s3cret-token-77";
    let agent = agent(&strs(&args), &[("BGW_TOKEN", wrong)]);
    agent.wait_stderr("rejected the heartbeat with 401").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let stderr = agent.stderr();
    assert_eq!(stderr.matches("rejected").count(), 1, "{stderr}");
    assert!(stderr.contains("`token`"), "{stderr}");
    assert!(!stderr.contains(wrong), "{stderr}");
    assert!(watchdog.heartbeats().is_empty());
}

#[tokio::test]
async fn the_config_file_and_token_file_are_read_and_flags_and_env_override_them() {
    let watchdog = FakeWatchdog::start().await;
    let app = TestApp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let file = dir.path().join("agent.toml");
    std::fs::write(
        &file,
        format!(
            "watchdog_url = \"{}\"\ncheck = \"from-file\"\ntoken_file = \"{}\"\n\
             app_url = \"{}\"\ninterval = \"30s\"\ninstance = \"from-file\"\n",
            watchdog.url(),
            token_file.display(),
            app.ping_url()
        ),
    )
    .unwrap();
    let agent = agent(
        &["--check", "blue"],
        &[
            ("BGW_CONFIG", file.to_str().unwrap()),
            ("BGW_INSTANCE", "from-env"),
            ("BGW_VERSION", "1.10"),
        ],
    );
    let first = watchdog.wait_for("a heartbeat", |_| true).await.heartbeat;
    assert_eq!(first.check, "blue", "the flag wins over the file");
    assert_eq!(first.instance, "from-env", "env wins over the file");
    assert_eq!(first.version.as_deref(), Some("1.10"));
    assert_eq!(first.interval.unwrap().to_string(), "30s");
    assert_eq!(first.status, HeartbeatStatus::Ok);
    assert_no_token(&agent);
}

#[tokio::test]
async fn bad_configuration_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.toml");
    std::fs::write(
        &file,
        "watchdog_url = \"http://127.0.0.1:1\"\ncheck = \"blue\"\nintervall = \"5s\"\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let ok = ["--watchdog-url", "http://127.0.0.1:1", "--check", "blue"];
    // (flags, environment, what the error must name)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            ok.to_vec(),
            vec![("BGW_TOKEN", TOKEN), ("BGW_INTERVAL", "5")],
            "`interval`",
        ),
        (
            [&ok[..], &["--color", "purple"]].concat(),
            vec![("BGW_TOKEN", TOKEN)],
            "`color`",
        ),
        (
            vec!["--check", "blue"],
            vec![("BGW_TOKEN", TOKEN)],
            "`watchdog_url`",
        ),
        (ok.to_vec(), vec![], "`token`"),
        (
            ok.to_vec(),
            vec![("BGW_TOKEN_FILE", "/nonexistent/token")],
            "`token_file`",
        ),
        (
            vec!["--config", file],
            vec![("BGW_TOKEN", TOKEN)],
            "`intervall`",
        ),
        (
            [&ok[..], &["--timeout", "0s"]].concat(),
            vec![("BGW_TOKEN", TOKEN)],
            "`timeout`",
        ),
        (vec!["--bogus"], vec![], "--bogus"),
    ];
    for (args, env, key) in cases {
        let mut agent = agent(&args, &env);
        let status = agent.wait_exit().await;
        let stderr = agent.stderr();
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(key), "{args:?} should name {key}: {stderr}");
        assert_no_token(&agent);
    }
}

#[tokio::test]
async fn help_explains_both_modes_and_every_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_bgw-agent"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for word in [
        "sidecar",
        "wrapper",
        "watchdog_url",
        "check",
        "token",
        "token_file",
        "color",
        "version",
        "instance",
        "interval",
        "app_url",
        "timeout",
        "stopping",
    ] {
        assert!(help.contains(word), "--help lacks {word}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_bgw-agent"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("bgw-agent {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn a_command_that_cannot_start_is_reported_and_exits_127() {
    let watchdog = FakeWatchdog::start().await;
    let args = base_args(&watchdog.url(), "http://127.0.0.1:1/ping", "30s");
    let mut args = strs(&args);
    args.extend(["--", "/nonexistent/app"]);
    let mut agent = agent(&args, &token_env());
    assert_eq!(agent.wait_exit().await.code(), Some(127));
    let beats = watchdog.heartbeats();
    assert_eq!(beats.len(), 1);
    assert_eq!(beats[0].status, HeartbeatStatus::Fail);
    assert!(
        beats[0]
            .detail
            .as_deref()
            .unwrap()
            .starts_with("app failed to start: /nonexistent/app"),
        "{beats:?}"
    );
}
