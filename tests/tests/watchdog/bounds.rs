//! Bounds: what a flood of instance ids, years of events and a sick disk
//! do to the watchdog. Its runtime, its rows and its log stay bounded; it
//! says so once; the other checks keep being served.

use bgw_e2e::watchdog::*;
use serde_json::json;
use std::time::Duration;

async fn blue(w: &Watchdog, instance: &str) -> (u16, serde_json::Value) {
    w.heartbeat(
        BLUE_TOKEN,
        json!({"check": "blue", "instance": instance, "status": "ok", "seq": 1}),
    )
    .await
}

#[tokio::test]
async fn a_flood_of_instance_ids_is_refused_at_max_instances_and_said_once() {
    let w = spawn_app(
        &default_checks("10s", "5s"),
        "max_instances = 8\nrate_limit = 0\n",
    )
    .await;
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..500 {
        let (status, body) = blue(&w, &format!("flood-{i}")).await;
        match status {
            202 => accepted += 1,
            409 => {
                refused += 1;
                let error = body["error"].as_str().unwrap();
                assert!(error.contains("max_instances = 8"), "{body}");
            }
            other => panic!("heartbeat {i}: {other} {body}"),
        }
    }
    assert_eq!((accepted, refused), (8, 492));

    // The runtime and its row hold 8 instances; known ones and other checks
    // are still served.
    assert_eq!(
        w.check("blue").await["instances"].as_array().unwrap().len(),
        8
    );
    assert_eq!(blue(&w, "flood-3").await.0, 202);
    assert_eq!(w.ping("").await, 200);
    assert_eq!(w.state("job").await, "up");

    // One event and one log line for the whole episode.
    let caps = |events: Vec<serde_json::Value>| {
        events
            .into_iter()
            .filter(|e| e["kind"] == "instance_cap")
            .count()
    };
    assert_eq!(caps(w.events().await), 1);
    let log_lines = |w: &Watchdog| {
        let text = w.log_text();
        (
            text.lines().filter(|l| l.contains("INSTANCE CAP")).count(),
            text.lines().count(),
        )
    };
    let (cap_lines, lines) = log_lines(&w);
    assert_eq!(cap_lines, 1, "{}", w.log_text());
    assert!(lines < 30, "the log grew with the flood: {lines} lines");

    // The flood stops; its instances go missing at period + grace and no
    // longer count: a new instance is admitted, and the next flood is a new
    // episode with its own single event.
    w.advance(Duration::from_secs(16));
    w.wait_check("blue", "the flood's instances to be dropped", |c| {
        c["instances"].as_array().is_some_and(|i| i.is_empty())
    })
    .await;
    for i in 0..20 {
        let expected = if i < 8 { 202 } else { 409 };
        assert_eq!(
            blue(&w, &format!("second-{i}")).await.0,
            expected,
            "second-{i}"
        );
    }
    assert_eq!(caps(w.events().await), 2);
}
