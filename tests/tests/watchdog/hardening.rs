//! Hardening: the watchdog under attack from its own network. Idle and
//! half-sent connections, cross-site admin requests, token guessing,
//! malformed requests and hostile text must not silence it, change it, or
//! reach its files.

use bgw_e2e::attack::{self, fresh_client};
use bgw_e2e::watchdog::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

/// systemd's default `LimitNOFILE`, the limit the attack was run against.
const SYSTEMD_NOFILE: u64 = 1024;

fn addr(w: &Watchdog) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], w.port))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Heartbeats and `/healthz`, each on a new connection: how many of `n`
/// were answered (202 and 200) within 5 s each.
async fn answered_during_attack(w: &Watchdog, n: usize) -> (usize, usize) {
    let http = fresh_client(Duration::from_secs(5));
    let (mut beats, mut health) = (0, 0);
    for i in 0..n {
        let hb = http
            .post(format!("{}/api/v1/heartbeat", w.base))
            .bearer_auth(BLUE_TOKEN)
            .json(&json!({"check": "blue", "instance": "a1", "status": "ok", "seq": i}))
            .send()
            .await;
        match hb {
            Ok(r) if r.status() == 202 => beats += 1,
            other => eprintln!("heartbeat {i} during the attack: {other:?}"),
        }
        let h = http.get(format!("{}/healthz", w.base)).send().await;
        if h.is_ok_and(|r| r.status() == 200) {
            health += 1;
        }
    }
    (beats, health)
}

#[tokio::test]
async fn two_thousand_idle_connections_leave_heartbeats_and_healthz_answered() {
    attack::raise_nofile_limit();
    // A long header timeout: what keeps the watchdog answering here is the
    // connection cap and its reserve, not idle connections timing out.
    let w = spawn_watchdog_adjusted(
        &default_checks("1h", "1h"),
        "[server]\nheader_timeout = \"60s\"\n",
        |w| w.nofile = Some(SYSTEMD_NOFILE),
    )
    .await;
    let held = attack::idle_connections(addr(&w), 2000).await;
    assert!(held.len() >= 1500, "the attack opened {}", held.len());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (beats, health) = answered_during_attack(&w, 20).await;
    assert_eq!((beats, health), (20, 20), "answered during the attack");
    let fds = open_fds(w.pid().unwrap());
    assert!(
        (fds as u64) < SYSTEMD_NOFILE - 100,
        "{fds} files open: the cap keeps room below the limit"
    );
    drop(held);
}

#[tokio::test]
async fn half_sent_headers_are_closed_and_memory_stays_bounded() {
    attack::raise_nofile_limit();
    let w = spawn_watchdog_adjusted(
        &default_checks("1h", "1h"),
        "[server]\nheader_timeout = \"2s\"\n",
        |w| w.nofile = Some(SYSTEMD_NOFILE),
    )
    .await;
    let pid = w.pid().unwrap();
    let before = bgw_e2e::measure::rss_kib(pid).unwrap();
    let hold = Duration::from_secs(20);
    // 900 heads of 400 KB (over the header limit) and 100 of 4 KB (under
    // it: only the header timeout closes those).
    let big = attack::half_heads(addr(&w), 900, 400_000, hold);
    let small = attack::half_heads(addr(&w), 100, 4_000, hold);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (beats, health) = answered_during_attack(&w, 10).await;
    let during = bgw_e2e::measure::rss_kib(pid).unwrap();
    assert_eq!((beats, health), (10, 10), "answered during the attack");
    assert!(
        during < before + 100 * 1024,
        "resident memory went from {before} KiB to {during} KiB"
    );
    let (big, small) =
        tokio::task::spawn_blocking(move || (big.join().unwrap(), small.join().unwrap()))
            .await
            .unwrap();
    // The kernel's socket buffers take much of each head; what matters is
    // that the watchdog closes the connection (431 past max_header_bytes).
    for o in big {
        assert!(
            o.closed_after.is_some_and(|t| t < Duration::from_secs(15)),
            "a 400 KB head was held: {o:?}"
        );
    }
    for o in small {
        assert!(
            o.closed_after.is_some_and(|t| t < Duration::from_secs(8)),
            "a half-sent head outlived the header timeout: {o:?}"
        );
    }
}

#[tokio::test]
async fn a_clean_shutdown_happens_within_the_deadline_while_clients_hold_connections() {
    attack::raise_nofile_limit();
    let mut w = spawn_watchdog_with(
        &default_checks("1h", "1h"),
        "[server]\nheader_timeout = \"60s\"\nbody_timeout = \"60s\"\nshutdown_timeout = \"2s\"\n",
    )
    .await;
    let heads = attack::half_heads(addr(&w), 50, 4_000, Duration::from_secs(15));
    // A request whose body never finishes: its handler is waiting for it.
    let mut body = tokio::net::TcpStream::connect(addr(&w)).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut body,
        format!(
            "POST /api/v1/heartbeat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {BLUE_TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"check\""
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    let code = w.terminate();
    let took = asked.elapsed();
    assert_eq!(code, Some(0), "a clean shutdown exits 0");
    assert!(
        took < Duration::from_secs(8),
        "shutdown took {took:?} with a 2s deadline"
    );
    drop(body);
    let held = tokio::task::spawn_blocking(move || heads.join().unwrap())
        .await
        .unwrap();
    assert!(held.iter().all(|o| o.closed_after.is_some()), "{held:?}");
}

async fn raw(
    w: &Watchdog,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let mut r = w
        .http
        .request(method.parse().unwrap(), format!("{}{path}", w.base));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let r = r.body(body.to_string()).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {status} {text:?}"));
    (status, value)
}

#[tokio::test]
async fn cross_site_deploy_and_toggle_are_refused_even_with_the_token() {
    let w = spawn_watchdog(&default_checks("1h", "1h")).await;
    let bearer = format!("Bearer {ADMIN}");
    let cases = [
        (
            "/api/v1/deploy",
            vec![
                ("authorization", bearer.as_str()),
                ("origin", "http://evil.example"),
                ("content-type", "application/json"),
            ],
            r#"{"color": "green", "image": "evil:1"}"#,
            403,
        ),
        (
            "/api/v1/toggle",
            vec![
                ("authorization", bearer.as_str()),
                ("content-type", "text/plain"),
            ],
            r#"{"to": "green"}"#,
            415,
        ),
        (
            "/api/v1/toggle",
            vec![("content-type", "text/plain"), ("origin", "null")],
            r#"{"to": "green"}"#,
            403,
        ),
        (
            "/api/v1/checks/job/pause",
            vec![
                ("authorization", bearer.as_str()),
                ("sec-fetch-site", "cross-site"),
            ],
            "",
            403,
        ),
    ];
    for (path, headers, body, want) in cases {
        let (status, value) = raw(&w, "POST", path, &headers, body).await;
        assert_eq!(status, want, "{path} {headers:?}: {value}");
        assert!(
            value["error"].as_str().unwrap().contains("refused"),
            "{value}"
        );
    }
    let kinds: Vec<Value> = w
        .events()
        .await
        .into_iter()
        .map(|e| e["kind"].clone())
        .collect();
    assert!(
        !kinds.iter().any(|k| k
            .as_str()
            .is_some_and(|k| k.contains("toggle") || k.contains("deploy") || k.contains("switch"))),
        "{kinds:?}"
    );
    assert_eq!(w.state("job").await, "new", "the pause was refused");
}

#[tokio::test]
async fn without_admin_token_writes_need_the_generated_token_which_the_cli_reads() {
    let w = spawn_watchdog_adjusted(&default_checks("1h", "1h"), "", |w| {
        w.with_admin_token = false;
        // 127.0.0.1 then arrives as ::ffff:127.0.0.1.
        w.listen_host = "[::]".into();
    })
    .await;
    let (status, value) = raw(&w, "POST", "/api/v1/checks/job/pause", &[], "").await;
    assert_eq!(status, 401, "{value}");
    let (status, value) = raw(
        &w,
        "POST",
        "/api/v1/toggle",
        &[("content-type", "application/json")],
        "{}",
    )
    .await;
    assert_eq!(status, 401, "{value}");
    let (status, value) = raw(&w, "GET", "/api/v1/checks", &[], "").await;
    assert_eq!(status, 200, "reads stay open to (mapped) loopback: {value}");
    let (status, value) = raw(
        &w,
        "GET",
        "/api/v1/checks",
        &[("authorization", "Bearer wrong-token-0123456789")],
        "",
    )
    .await;
    assert_eq!(status, 401, "a wrong token is refused: {value}");

    let token_file = std::path::PathBuf::from(format!("{}.admin-token", w.db_path().display()));
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", token_file.display());
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(token.trim().len() >= 32);

    let out = std::process::Command::new(bgw_e2e::bin("bgw-watchdog"))
        .arg("--config")
        .arg(w.config_path())
        .args(["--url", &w.base, "pause", "job"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, check) = raw(&w, "GET", "/api/v1/checks/job", &[], "").await;
    assert_eq!(check["state"], "paused", "{check}");
}

#[tokio::test]
async fn guessing_tokens_is_slowed_down_with_429() {
    let w = spawn_watchdog(&default_checks("1h", "1h")).await;
    let mut statuses = Vec::new();
    for i in 0..30 {
        let (status, body) = w
            .heartbeat(
                &format!("guess-{i:020}"),
                json!({"check": "blue", "instance": "a1", "status": "ok"}),
            )
            .await;
        assert!(body["error"].is_string(), "{body}");
        statuses.push(status);
    }
    assert_eq!(statuses[0], 401);
    assert!(
        statuses.iter().filter(|s| **s == 429).count() >= 15,
        "{statuses:?}"
    );
    let (status, _) = w.admin_get("/api/v1/checks").await;
    assert_eq!(
        status, 429,
        "a spent address is refused before its token is checked"
    );
    let h = w
        .http
        .get(format!("{}/healthz", w.base))
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), 200, "requests without a token are not limited");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, body) = w.blue_ok("a1").await;
    assert_eq!(status, 202, "the budget refills: {body}");
}

#[tokio::test]
async fn every_malformed_path_or_method_gets_a_json_error() {
    let w = spawn_watchdog(&default_checks("1h", "1h")).await;
    let bearer = format!("Bearer {ADMIN}");
    let auth = [("authorization", bearer.as_str())];
    let big = "x".repeat(bgw_wire::MAX_BODY_BYTES + 10);
    let cases: Vec<(&str, &str, &str, u16)> = vec![
        ("GET", "/nope", "", 404),
        ("DELETE", "/api/v1/silences/abc", "", 400),
        ("GET", "/api/v1/checks/%ff", "", 400),
        ("PUT", "/api/v1/toggle", "", 405),
        ("GET", "/api/v1/heartbeat", "", 405),
        ("DELETE", "/healthz", "", 405),
        ("POST", "/api/v1/silences", "{", 400),
        ("POST", "/api/v1/report", &big, 413),
        ("GET", "/api/v1/events?limit=x", "", 400),
    ];
    for (method, path, body, want) in cases {
        let (status, value) = raw(&w, method, path, &auth, body).await;
        assert_eq!(status, want, "{method} {path}: {value}");
        assert!(
            value["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{method} {path}: {value}"
        );
    }
}

#[test]
fn a_token_shorter_than_16_characters_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    for (config, key) in [
        ("admin_token = \"hunter2\"\n", "admin_token"),
        (
            "[[check]]\nname = \"blue\"\nkind = \"service\"\nperiod = \"5s\"\ntoken = \"blue-token\"\n",
            "check[0].token",
        ),
    ] {
        let path = dir.path().join("w.toml");
        std::fs::write(&path, config).unwrap();
        for command in ["check-config", "serve"] {
            let out = std::process::Command::new(bgw_e2e::bin("bgw-watchdog"))
                .arg("--config")
                .arg(&path)
                .arg(command)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
            assert!(
                stderr.contains(&format!("`{key}`")) && stderr.contains("too short"),
                "{stderr}"
            );
            assert!(!stderr.contains("hunter2"), "{stderr}");
        }
    }
}

#[tokio::test]
async fn hostile_text_reaches_the_log_escaped_and_cut() {
    let w = spawn_watchdog(&default_checks("1h", "1h")).await;
    let (status, body) = w
        .heartbeat(
            BLUE_TOKEN,
            json!({"check": "blue", "instance": "a1", "status": "fail",
                   "detail": "\u{1b}]0;owned\u{7}\u{1b}[2J boom"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let r = w
        .http
        .post(format!("{}/api/v1/report", w.base))
        .bearer_auth(CHECKER_TOKEN)
        .json(&json!({"observer": "checker", "results": [
            {"target": "blue-direct", "color": "blue", "url": "http://127.0.0.1:3000/ping",
             "ok": false, "status": null, "latency_ms": 1, "error": "E".repeat(60_000)}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = w.log_text();
        if log.contains("boom") && log.contains("more bytes") {
            break log;
        }
        assert!(Instant::now() < deadline, "{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!log.contains('\u{1b}') && !log.contains('\u{7}'), "{log:?}");
    assert!(log.contains("\\x1b[2J boom"), "{log}");
    let longest = log.lines().map(str::len).max().unwrap();
    assert!(longest < 2000, "a log line of {longest} bytes");
}

#[tokio::test]
async fn state_files_are_private_and_logs_are_not_world_readable() {
    let w = spawn_watchdog(&default_checks("1h", "1h")).await;
    w.blue_ok("a1").await;
    let db = w.db_path().display().to_string();
    for path in [db.clone(), format!("{db}-wal"), format!("{db}-shm")] {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{path}");
    }
    let logs: Vec<_> = std::fs::read_dir(w.log_dir()).unwrap().flatten().collect();
    assert!(!logs.is_empty());
    for entry in logs {
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o137, 0, "{}: {mode:o}", entry.path().display());
    }
}
