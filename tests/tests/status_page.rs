//! The status page in a real browser: headless Chromium loads the page of
//! an in-process watchdog (on a manual clock), a check goes down, and the
//! row turns red and the timeline gains the event with no reload; the live
//! color and the rollback state change the banner. Screenshots go to
//! `docs/screenshots/` (the README shows them).

use bgw_e2e::browser::Browser;
use bgw_e2e::watchdog::{default_checks, spawn_app, ADMIN};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_going_down_turns_its_row_red_and_joins_the_timeline_within_a_second_without_reload(
) {
    let Some(browser) = Browser::start().await.expect("start the browser") else {
        return;
    };
    let live = tempfile::tempdir().unwrap();
    let live_file = live.path().join("live");
    std::fs::write(&live_file, "blue").unwrap();
    let w = spawn_app(
        &default_checks("5s", "5s"),
        &format!("[proxy]\nlive_file = \"{}\"\n", live_file.display()),
    )
    .await;
    for (i, version) in [(1, "1.0.4"), (2, "1.0.4")] {
        let (code, _) = w
            .heartbeat(
                bgw_e2e::watchdog::BLUE_TOKEN,
                json!({"check": "blue", "instance": format!("blue-{i}"), "color": "blue",
                       "version": version, "status": "ok", "seq": 1}),
            )
            .await;
        assert_eq!(code, 202);
    }
    w.ping("").await;
    let report = reqwest::Client::new()
        .post(format!("{}/api/v1/report", w.base))
        .bearer_auth(bgw_e2e::watchdog::CHECKER_TOKEN)
        .json(&json!({"observer": "checker", "results": [
            {"target": "blue-direct", "color": "blue", "url": "http://127.0.0.1:3000/ping",
             "ok": true, "status": 200, "latency_ms": 3, "error": null},
            {"target": "live-proxy", "color": "blue", "url": "http://127.0.0.1/ping",
             "ok": true, "status": 200, "latency_ms": 5, "error": null}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(report.status().as_u16(), 202);

    browser.goto(&format!("{}/", w.base)).await.unwrap();
    let row = r#"document.querySelector('tr[data-check="blue"]')"#;
    browser
        .wait_for(
            &format!("return {row}.classList.contains('state-up')"),
            Duration::from_secs(5),
        )
        .await
        .expect("blue is up on the page");
    let banner = browser.text("#banner").await.unwrap();
    assert!(
        banner.contains("BLUE") && banner.contains("1.0.4"),
        "{banner}"
    );
    // Wait for the live stream, then mark the document: a reload would lose it.
    browser
        .wait_for(
            "return document.getElementById('conn').textContent === 'live'",
            Duration::from_secs(5),
        )
        .await
        .expect("the live stream connects");
    browser
        .eval("window.__bgwMark = 42; return true")
        .await
        .unwrap();
    browser
        .screenshot(&screenshots().join("healthy.png"))
        .await
        .unwrap();

    // Blue's instances fall silent past period + grace: the monitor judges it down.
    w.advance(Duration::from_secs(11));
    let took = browser
        .wait_for(
            &format!(
                "return {row}.classList.contains('state-down') && \
                 [...document.querySelectorAll('#timeline li')].some(li => /blue \\S+ → down/.test(li.textContent))"
            ),
            Duration::from_secs(1),
        )
        .await
        .expect("the row turns red and the timeline gains the event within a second");
    assert_eq!(
        browser.eval("return window.__bgwMark").await.unwrap(),
        json!(42),
        "the page was not reloaded"
    );
    eprintln!("blue down on the page {took:?} after the clock passed its deadline");
    let text = browser.text(r#"tr[data-check="blue"]"#).await.unwrap();
    assert!(
        text.contains("down") && text.contains("no heartbeat"),
        "{text}"
    );
    browser
        .screenshot(&screenshots().join("check-down.png"))
        .await
        .unwrap();

    // The live color changes (the live file: what a toggle writes) and an
    // operator disables automatic rollback: the banner follows, live.
    std::fs::write(&live_file, "green").unwrap();
    browser
        .wait_for(
            "return document.getElementById('banner').dataset.live === 'green'",
            Duration::from_secs(3),
        )
        .await
        .expect("the banner shows green live");
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/api/v1/rollback/disable", w.base))
        .bearer_auth(ADMIN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    browser
        .wait_for(
            "return document.getElementById('rollback').dataset.rollback === 'disabled'",
            Duration::from_secs(3),
        )
        .await
        .expect("the banner shows rollback disabled");
    let rollback = browser.text("#rollback").await.unwrap();
    assert!(rollback.contains("disabled by an operator"), "{rollback}");
    assert_eq!(
        browser.eval("return window.__bgwMark").await.unwrap(),
        json!(42)
    );
    browser
        .screenshot(&screenshots().join("rollback-disabled.png"))
        .await
        .unwrap();

    // Without JavaScript the same facts are in the HTML itself.
    let html = client
        .get(format!("{}/", w.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(r#"data-live="green""#) && html.contains("state-down"),
        "{html}"
    );
}

#[tokio::test]
async fn access_token_keeps_the_page_and_its_stream_from_viewers_without_the_token() {
    let w = spawn_app(
        &default_checks("5s", "5s"),
        "[status_page]\naccess = \"token\"\nviewer_token = \"look\"\n",
    )
    .await;
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{}{path}", w.base)).send();
    assert_eq!(get("/").await.unwrap().status().as_u16(), 401);
    assert_eq!(get("/events/stream").await.unwrap().status().as_u16(), 401);
    assert_eq!(get("/?token=nope").await.unwrap().status().as_u16(), 401);
    let page = get("/?token=look").await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("data-check=\"blue\""), "{html}");
    let stream = get("/events/stream?token=look").await.unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let json = get("/status.json?token=look")
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(json["summary"]["total"], 3, "{json}");
}

#[tokio::test]
async fn access_off_hides_the_page_and_the_stream() {
    let w = spawn_app(
        &default_checks("5s", "5s"),
        "[status_page]\naccess = \"off\"\n",
    )
    .await;
    let http = reqwest::Client::new();
    for path in ["/", "/events/stream", "/status.json"] {
        let r = http.get(format!("{}{path}", w.base)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }
}
