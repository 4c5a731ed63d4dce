use bgw_e2e::watchdog::*;
use std::process::Command;
use std::time::Duration;

#[tokio::test]
async fn after_a_crash_passed_deadlines_are_judged_after_their_clients_fair_chance_dated_at_the_deadline(
) {
    let checks = format!(
        "{}\n[[check]]\nname = \"slow\"\nkind = \"reporter\"\nperiod = \"1h\"\ngrace = \"1h\"\ntoken = \"slow-token-0123456789\"\n",
        default_checks("1s", "1s")
    );
    let mut w = spawn_watchdog(&checks).await;
    w.blue_ok("a1").await;
    let r = w
        .http
        .post(format!("{}/api/v1/report", w.base))
        .bearer_auth("slow-token-0123456789")
        .json(&serde_json::json!({"observer": "slow", "results": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    w.kill9();
    let killed_at = chrono::Utc::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    w.start().await;
    let started = chrono::Utc::now();
    // Blue's agent may still reach the restarted watchdog: it has one period
    // + grace (2s) before its passed deadline is judged.
    assert_eq!(
        w.state("blue").await,
        "up",
        "not judged while its agent may still call"
    );
    w.wait_state("blue", "down").await;
    assert!(
        chrono::Utc::now() - started < chrono::TimeDelta::milliseconds(3500),
        "judged right after its period + grace"
    );
    assert_eq!(
        w.state("slow").await,
        "up",
        "a pending deadline is not alerted early"
    );
    let events = w.events().await;
    let down = events
        .iter()
        .find(|e| e["check"] == "blue" && e["to"] == "down")
        .expect("a down event");
    let at = chrono::DateTime::parse_from_rfc3339(down["at"].as_str().unwrap()).unwrap();
    let noticed =
        chrono::DateTime::parse_from_rfc3339(down["noticed_at"].as_str().unwrap()).unwrap();
    assert!(
        at < killed_at + chrono::TimeDelta::seconds(3),
        "dated at the deadline: {at}"
    );
    assert!(
        noticed > at + chrono::TimeDelta::seconds(1),
        "noticed later, after the restart: {noticed}"
    );
    // Restart again: no second down for the same outage.
    w.kill9();
    w.start().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let downs = w
        .transitions("blue")
        .await
        .into_iter()
        .filter(|(_, to)| to == "down")
        .count();
    assert_eq!(downs, 1);
}

#[tokio::test]
async fn acknowledged_heartbeats_survive_a_kill_9() {
    let mut w = spawn_watchdog_with(
        &default_checks("1h", "1h"),
        "rate_limit = 0\nping_history = 10000",
    )
    .await;
    let mut acked = 0;
    for i in 0..200 {
        let (status, _) = w.blue_ok(&format!("i{}", i % 7)).await;
        if status == 202 {
            acked += 1;
        }
    }
    w.kill9();
    w.start().await;
    let (_, check) = w.admin_get("/api/v1/checks/blue").await;
    assert_eq!(check["instances"].as_array().unwrap().len(), 7);
    assert_eq!(check["state"], "up");
    assert_eq!(acked, 200);
    assert_eq!(
        stored_pings(&w).await,
        200,
        "every acknowledged heartbeat is in the store"
    );
}

/// Reads the database file the killed watchdog left behind.
async fn stored_pings(w: &Watchdog) -> i64 {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", w.db_path().display()))
        .await
        .unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM pings")
        .fetch_one(&pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn changing_the_config_keeps_history_and_retires_removed_checks() {
    let mut w = spawn_watchdog(&default_checks("1h", "1h")).await;
    w.blue_ok("a1").await;
    w.terminate();
    let mut checks = default_checks("2h", "1h");
    checks = checks.replace("name = \"checker\"", "name = \"checker2\"");
    w.set_checks(&checks);
    w.start().await;
    assert_eq!(
        w.state("blue").await,
        "up",
        "state kept across a config change"
    );
    let (s, _) = w.admin_get("/api/v1/checks/checker").await;
    assert_eq!(s, 404, "retired");
    let events = w.events().await;
    assert!(events
        .iter()
        .any(|e| e["check"] == "checker" && e["reason"].as_str().unwrap().contains("retired")));
    assert!(events
        .iter()
        .any(|e| e["check"] == "blue" && e["reason"].as_str().unwrap().contains("check changed")));
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly_with_exit_0() {
    let mut w = spawn_watchdog(&default_checks("1h", "1h")).await;
    w.blue_ok("a1").await;
    assert_eq!(w.terminate(), Some(0));
}

#[tokio::test]
async fn an_unwritable_log_dir_is_an_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let out = Command::new(bgw_e2e::bin("bgw-watchdog"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database"])
        .arg(format!("sqlite://{}/w.db", dir.path().display()))
        .arg("--log-dir")
        .arg(file.join("logs"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("log_dir") && err.contains("not writable"),
        "{err}"
    );
}

#[tokio::test]
async fn check_config_exits_2_naming_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.toml");
    std::fs::write(
        &p,
        "[[check]]\nname = \"a\"\nkind = \"service\"\nperiod = \"5 seconds\"\ntoken = \"0123456789abcdef\"\n",
    )
    .unwrap();
    let out = Command::new(bgw_e2e::bin("bgw-watchdog"))
        .arg("--config")
        .arg(&p)
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("period"), "{err}");
    std::fs::write(&p, default_checks("5s", "5s")).unwrap();
    let out = Command::new(bgw_e2e::bin("bgw-watchdog"))
        .arg("--config")
        .arg(&p)
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("blue (service)") && text.contains("job (heartbeat)"),
        "{text}"
    );
}
