use bgw_e2e::watchdog::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn heartbeats_bring_a_service_up_and_silence_takes_it_down_after_period_plus_grace() {
    let w = spawn_watchdog(&default_checks("1s", "1s")).await;
    let (status, body) = w.blue_ok("a1").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "up");
    assert!(body["next_deadline"].as_str().is_some());
    w.wait_state("blue", "up").await;
    let sent = std::time::Instant::now();
    w.wait_state("blue", "down").await;
    assert!(
        sent.elapsed() >= Duration::from_millis(1900),
        "down before period + grace"
    );
    let t = w.transitions("blue").await;
    assert!(t.contains(&("late".into(), "down".into())), "{t:?}");
    let downs = t.iter().filter(|(_, to)| to == "down").count();
    assert_eq!(downs, 1);
    let log = w.log_text();
    assert!(log.contains("ALERT: blue DOWN: 0 of 1 required instances up; a1: no heartbeat for 2s (period 1s, grace 1s)"), "{log}");
    // Recovery.
    w.blue_ok("a1").await;
    w.wait_state("blue", "up").await;
    assert!(w.log_text().contains("RECOVERED: blue UP after"));
}

#[tokio::test]
async fn a_failing_app_takes_the_service_down_at_once_and_stopping_raises_nothing() {
    let w = spawn_watchdog(&default_checks("30s", "30s")).await;
    w.blue_ok("a1").await;
    let (status, body) = w
        .heartbeat(
            BLUE_TOKEN,
            json!({"check": "blue", "instance": "a1", "status": "fail", "detail": "GET /ping returned 502"}),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(body["state"], "down");
    let (_, check) = w.admin_get("/api/v1/checks/blue").await;
    assert!(
        check["reason"]
            .as_str()
            .unwrap()
            .contains("GET /ping returned 502"),
        "{check}"
    );
    w.blue_ok("a1").await;
    w.blue_ok("a2").await;
    let (_, body) = w
        .heartbeat(
            BLUE_TOKEN,
            json!({"check": "blue", "instance": "a2", "status": "stopping"}),
        )
        .await;
    assert_eq!(body["state"], "up");
    let t = w.transitions("blue").await;
    assert_eq!(
        t.last().unwrap(),
        &("down".to_string(), "up".to_string()),
        "{t:?}"
    );
}

#[tokio::test]
async fn ping_urls_follow_healthchecks() {
    let w = spawn_watchdog(&default_checks("1h", "1s")).await;
    assert_eq!(w.ping("").await, 200);
    assert_eq!(w.state("job").await, "up");
    assert_eq!(w.ping("/log").await, 200);
    assert_eq!(w.state("job").await, "up");
    assert_eq!(w.ping("/fail").await, 200);
    assert_eq!(w.state("job").await, "down");
    assert_eq!(w.ping("/0").await, 200);
    assert_eq!(w.state("job").await, "up");
    assert_eq!(w.ping("/3").await, 200);
    assert_eq!(w.state("job").await, "down");
    let (_, check) = w.admin_get("/api/v1/checks/job").await;
    assert!(
        check["reason"].as_str().unwrap().contains("status 3"),
        "{check}"
    );
    let r = w
        .http
        .post(format!("{}/ping/{JOB_UUID}", w.base))
        .body("backup finished: 3 GB")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "OK");
    let r = w
        .http
        .head(format!("{}/ping/{JOB_UUID}", w.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, check) = w.admin_get("/api/v1/checks/job").await;
    let pings = check["recent_pings"].as_array().unwrap();
    assert!(
        pings.iter().any(|p| p["detail"] == "backup finished: 3 GB"),
        "{check}"
    );
    // A start without a success within grace goes down.
    assert_eq!(w.ping("/start").await, 200);
    w.wait_state("job", "down").await;
    let (_, check) = w.admin_get("/api/v1/checks/job").await;
    assert!(
        check["reason"]
            .as_str()
            .unwrap()
            .contains("no success within grace"),
        "{check}"
    );
    // Unknown uuid and action.
    let r = w
        .http
        .get(format!(
            "{}/ping/00000000-0000-0000-0000-000000000000",
            w.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(w.ping("/256").await, 404);
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let w = spawn_watchdog(&default_checks("1h", "1h")).await;
    let before = w.events().await.len();
    let url = format!("{}/api/v1/heartbeat", w.base);
    let post = |token: Option<&str>, body: String| {
        let mut r = w
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let cases: Vec<(Option<&str>, String, u16, &str)> = vec![
        (Some(BLUE_TOKEN), "{not json".into(), 400, "invalid JSON"),
        (
            Some(BLUE_TOKEN),
            r#"{"check":"blue","instance":"a","status":"ok","extra":1}"#.into(),
            400,
            "unknown field",
        ),
        (
            Some(BLUE_TOKEN),
            r#"{"check":"blue","instance":"a","status":"maybe"}"#.into(),
            400,
            "unknown variant",
        ),
        (
            Some(BLUE_TOKEN),
            r#"{"check":"blue","instance":"a","status":"ok","color":"green"}"#.into(),
            400,
            "does not match",
        ),
        (
            None,
            r#"{"check":"blue","instance":"a","status":"ok"}"#.into(),
            401,
            "missing bearer token",
        ),
        (
            Some("wrong-token-xyz"),
            r#"{"check":"blue","instance":"a","status":"ok"}"#.into(),
            401,
            "wrong token",
        ),
        (
            Some(CHECKER_TOKEN),
            r#"{"check":"blue","instance":"a","status":"ok"}"#.into(),
            401,
            "wrong token",
        ),
        (
            Some(BLUE_TOKEN),
            r#"{"check":"nope","instance":"a","status":"ok"}"#.into(),
            404,
            "unknown check",
        ),
        (
            Some(BLUE_TOKEN),
            format!(
                r#"{{"check":"blue","instance":"a","status":"ok","detail":"{}"}}"#,
                "x".repeat(70_000)
            ),
            413,
            "body over",
        ),
    ];
    for (token, body, status, needle) in cases {
        let r = post(token, body).await.unwrap();
        assert_eq!(r.status().as_u16(), status);
        let b: serde_json::Value = r.json().await.unwrap();
        let msg = b["error"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
        assert!(
            !msg.contains(BLUE_TOKEN) && !msg.contains("wrong-token-xyz"),
            "token echoed: {msg}"
        );
    }
    assert_eq!(w.state("blue").await, "new", "nothing changed");
    assert_eq!(w.events().await.len(), before, "no event recorded");
    // Admin endpoints want the admin token, not a check token.
    let r = w
        .http
        .get(format!("{}/api/v1/checks", w.base))
        .bearer_auth(BLUE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn too_many_requests_from_one_token_get_429() {
    let w = spawn_watchdog_with(&default_checks("1h", "1h"), "rate_limit = 5").await;
    let mut codes = Vec::new();
    for _ in 0..30 {
        codes.push(w.blue_ok("a1").await.0);
    }
    assert!(codes.contains(&202));
    assert!(codes.contains(&429), "{codes:?}");
    // Another check's token has its own budget.
    assert_eq!(w.ping("").await, 200);
}

#[tokio::test]
async fn reports_are_the_reporters_heartbeat() {
    let w = spawn_watchdog(&default_checks("1s", "1s")).await;
    let report = json!({"observer": "checker", "results": [
        {"target": "blue-direct", "color": "blue", "url": "http://127.0.0.1:3000/ping", "ok": true, "status": 200, "latency_ms": 3, "error": null}
    ]});
    let r = w
        .http
        .post(format!("{}/api/v1/report", w.base))
        .bearer_auth(CHECKER_TOKEN)
        .json(&report)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(w.state("checker").await, "up");
    w.wait_state("checker", "down").await;
    let r = w
        .http
        .post(format!("{}/api/v1/report", w.base))
        .bearer_auth(BLUE_TOKEN)
        .json(&report)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "a service token does not open the reporter"
    );
}

#[tokio::test]
async fn pause_silences_a_check_until_resume() {
    let w = spawn_watchdog(&default_checks("1s", "0s")).await;
    assert_eq!(w.ping("").await, 200);
    let (s, b) = w.admin_post("/api/v1/checks/job/pause", json!({})).await;
    assert_eq!((s, b["state"].as_str()), (200, Some("paused")));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(w.state("job").await, "paused", "no alert while paused");
    assert!(!w
        .transitions("job")
        .await
        .iter()
        .any(|(_, to)| to == "down"));
    let (s, b) = w.admin_post("/api/v1/checks/job/resume", json!({})).await;
    assert_eq!((s, b["state"].as_str()), (200, Some("new")));
    w.wait_state("job", "down").await;
    let (s, _) = w.admin_post("/api/v1/checks/nope/pause", json!({})).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn events_can_be_read_from_a_cursor_or_a_time() {
    let w = spawn_watchdog(&default_checks("1h", "1h")).await;
    w.blue_ok("a1").await;
    let all = w.events().await;
    assert!(all.len() >= 3);
    let first = all[0]["id"].as_i64().unwrap();
    let (_, after) = w.admin_get(&format!("/api/v1/events?since={first}")).await;
    assert_eq!(after["events"].as_array().unwrap().len(), all.len() - 1);
    let (s, b) = w.admin_get("/api/v1/events?since=yesterday").await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = w
        .admin_get("/api/v1/events?since=2000-01-01T00:00:00Z")
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["events"].as_array().unwrap().len(), all.len());
}

#[tokio::test]
async fn ping_history_is_bounded_per_check() {
    let w = spawn_watchdog_with(
        &default_checks("1h", "1h"),
        "ping_history = 5\nrate_limit = 0",
    )
    .await;
    for _ in 0..20 {
        assert_eq!(w.ping("").await, 200);
    }
    let (_, check) = w.admin_get("/api/v1/checks/job").await;
    assert_eq!(check["recent_pings"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn healthz_and_metrics_answer() {
    let w = spawn_watchdog(&default_checks("1h", "1h")).await;
    w.blue_ok("a1").await;
    let m = w
        .http
        .get(format!("{}/metrics", w.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("bgw_heartbeats_received_total 1"), "{m}");
    assert!(m.contains("bgw_checks{state=\"up\"} 1"), "{m}");
    assert!(m.contains("bgw_checks{state=\"new\"} 2"), "{m}");
    let syncs: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("bgw_wal_syncs_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        syncs >= 1.0,
        "the acknowledged heartbeat waited for a WAL fsync: {m}"
    );
    let page = w
        .http
        .get(format!("{}/", w.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"data-check="blue""#),
        "the status page lists the blue check"
    );
}
