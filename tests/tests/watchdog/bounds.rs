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

/// A tmpfs mounted for one test (root only); unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status();
        match status {
            Ok(s) if s.success() => Some(SmallDisk { dir }),
            other => {
                eprintln!("SKIPPED: cannot mount a tmpfs to fill ({other:?}); run as root");
                None
            }
        }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.path().join("big");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 16 * 1024];
        while f.write_all(&chunk).is_ok() {}
        while f.write_all(&[0]).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

async fn healthz(w: &Watchdog) -> (u16, serde_json::Value) {
    let r = w
        .http
        .get(format!("{}/healthz", w.base))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

fn slack_says(slack: &bgw_e2e::slack::SlackReceiver, what: &str) -> bool {
    slack
        .messages()
        .iter()
        .any(|m| m.to_string().contains(what))
}

async fn wait_for(what: &str, mut holds: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !holds() {
        assert!(std::time::Instant::now() < deadline, "waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_full_disk_answers_503_alerts_directly_and_recovers_without_losing_an_acknowledged_heartbeat(
) {
    use bgw_e2e::slack::SlackReceiver;
    use bgw_e2e::smtp::{SmtpOptions, SmtpSink};
    let Some(disk) = SmallDisk::mount("4m") else {
        return;
    };
    let slack = SlackReceiver::start().await;
    let smtp = SmtpSink::start(SmtpOptions::default()).await;
    let extra = format!(
        "max_instances = 10000\nrate_limit = 0\n[notify.slack]\nwebhook_url = \"{}\"\n\
         [notify.email]\nsmtp_url = \"{}\"\nfrom = \"bgw@example.org\"\nto = [\"ops@example.org\"]\n",
        slack.url(),
        smtp.url()
    );
    let db = disk.path().join("watchdog.db");
    let w = spawn_watchdog_adjusted(&default_checks("1h", "1h"), &extra, |w| {
        w.database = Some(db.clone())
    })
    .await;
    let padding = "x".repeat(400);
    let beat = |id: String| {
        w.heartbeat(
            BLUE_TOKEN,
            json!({"check": "blue", "instance": id, "status": "ok", "seq": 1, "detail": padding}),
        )
    };
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let id = format!("before-{i}");
        assert_eq!(beat(id.clone()).await.0, 202);
        acknowledged.push(id);
    }

    // The disk fills up: heartbeats are refused with 503, never acknowledged.
    let big = disk.fill();
    let mut refused = None;
    for i in 0..3000 {
        let id = format!("during-{i}");
        match beat(id.clone()).await {
            (202, _) => acknowledged.push(id),
            (503, body) => {
                assert!(body["error"].as_str().is_some(), "{body}");
                refused = Some(id);
                break;
            }
            (status, body) => panic!("heartbeat {id}: {status} {body}"),
        }
    }
    let refused = refused.expect("a full disk refused no heartbeat");
    eprintln!(
        "{} heartbeats acknowledged before the disk refused one",
        acknowledged.len()
    );
    let (status, body) = healthz(&w).await;
    assert_eq!((status, &body["store"]), (503, &json!("failing")), "{body}");

    // The operators hear it directly: the outbox cannot be written.
    wait_for("DOWN watchdog-store on Slack", || {
        slack_says(&slack, "DOWN watchdog-store")
    })
    .await;
    let mails = smtp.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(mails[0].subject, "[bgw] DOWN watchdog-store");

    // Space comes back: the client's retry is served, and everything resumes.
    std::fs::remove_file(big).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match beat(refused.clone()).await.0 {
            202 => break,
            503 => {}
            other => panic!("retry: {other}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the store did not recover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    acknowledged.push(refused);
    assert_eq!(healthz(&w).await.0, 200);
    wait_for("UP watchdog-store on Slack", || {
        slack_says(&slack, "UP watchdog-store")
    })
    .await;
    let mails = smtp.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(mails[1].subject, "[bgw] UP watchdog-store");
    assert_eq!(
        slack
            .messages()
            .iter()
            .filter(|m| m.to_string().contains("watchdog-store"))
            .count(),
        2,
        "one DOWN and one UP"
    );

    // Nothing acknowledged was lost.
    let stored: Vec<String> = w.check("blue").await["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance"].as_str().unwrap().to_string())
        .collect();
    for id in &acknowledged {
        assert!(stored.contains(id), "acknowledged {id} is not stored");
    }
    drop(w);
}
