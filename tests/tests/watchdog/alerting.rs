//! Alerts end to end: the watchdog (in-process on a manual clock, or the
//! real binary where a test kills it), the real aiosmtpd SMTP server and a
//! Slack receiver that judges payloads like Slack does. No test sleeps to
//! wait for a deadline: the manual clock is moved past it, and "nothing
//! more was sent" is read when the outbox has nothing pending.

use bgw_e2e::slack::{Mode, SlackReceiver};
use bgw_e2e::smtp::{SmtpOptions, SmtpSink};
use bgw_e2e::watchdog::*;
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn notify_config(slack: &SlackReceiver, smtp: Option<&SmtpSink>, policy: &str) -> String {
    let group = if policy.contains("group_window") {
        ""
    } else {
        "group_window = \"200ms\"\n"
    };
    let mut out = format!(
        "[notify]\n{group}{policy}\n[notify.slack]\nwebhook_url = \"{}\"\n",
        slack.url()
    );
    if let Some(smtp) = smtp {
        out.push_str(&format!(
            "[notify.email]\nsmtp_url = \"{}\"\nfrom = \"bgw@example.org\"\nto = [\"ops@example.org\"]\n",
            smtp.url()
        ));
    }
    out
}

/// A watchdog alerting to `slack` (and `smtp`), whose blue service came up
/// and then failed with `detail`.
async fn watchdog_with_blue_down(
    slack: &SlackReceiver,
    smtp: Option<&SmtpSink>,
    detail: &str,
) -> Watchdog {
    let w = spawn_app(&default_checks("1h", "1h"), &notify_config(slack, smtp, "")).await;
    w.blue_ok("a1").await;
    fail_blue(&w, detail).await;
    w
}

async fn fail_blue(w: &Watchdog, detail: &str) {
    let (s, _) = w
        .heartbeat(
            BLUE_TOKEN,
            json!({"check": "blue", "instance": "a1", "status": "fail", "detail": detail}),
        )
        .await;
    assert_eq!(s, 202);
}

fn subjects_of(messages: &[serde_json::Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| {
            m["text"]
                .as_str()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn down_and_recovery_reach_slack_and_email_once_each() {
    let slack = SlackReceiver::start().await;
    let smtp = SmtpSink::start(SmtpOptions::default()).await;
    let w = watchdog_with_blue_down(&slack, Some(&smtp), "GET /ping returned 502").await;
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails[0].subject, "[bgw] DOWN blue");
    assert!(mails[0]
        .text
        .as_deref()
        .unwrap()
        .contains("GET /ping returned 502"));
    assert!(mails[0].html.is_some(), "multipart with HTML");
    let slacked = slack.wait_for(1, WAIT).await;
    assert!(
        slacked[0]["text"].as_str().unwrap().contains("DOWN"),
        "{}",
        slacked[0]
    );
    w.blue_ok("a1").await;
    let mails = smtp.wait_for(2, WAIT).await;
    assert_eq!(mails[1].subject, "[bgw] UP blue");
    slack.wait_for(2, WAIT).await;
    w.settled().await;
    assert_eq!(
        smtp.messages().len(),
        2,
        "exactly once per event and channel"
    );
    assert_eq!(slack.messages().len(), 2);
    assert!(
        slack.rejected().is_empty(),
        "Slack accepted every payload: {:?}",
        slack.rejected()
    );
    let (_, n) = w.admin_get("/api/v1/notifications?state=delivered").await;
    assert_eq!(n["notifications"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn a_slack_outage_delays_delivery_but_delivers_once_and_email_is_not_held_up() {
    let slack = SlackReceiver::start().await;
    let smtp = SmtpSink::start(SmtpOptions::default()).await;
    slack.set_mode(Mode::Status(500)).await;
    let w = watchdog_with_blue_down(&slack, Some(&smtp), "boom").await;
    // Email goes out while Slack keeps failing.
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails[0].subject, "[bgw] DOWN blue");
    assert!(slack.messages().is_empty());
    let deadline = std::time::Instant::now() + WAIT;
    while slack.requests() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "slack was not retried"
        );
        // The retry waits for its backoff on the watchdog's clock.
        w.advance(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (_, health) = w.admin_get("/healthz").await;
    assert_eq!(
        health["status"], "ok",
        "a failing channel does not make the watchdog unhealthy"
    );
    let (_, pending) = w.admin_get("/api/v1/notifications?state=pending").await;
    let p = &pending["notifications"][0];
    assert_eq!(p["channel"], "slack");
    assert!(p["last_error"].as_str().unwrap().contains("500"), "{p}");
    slack.set_mode(Mode::Ok).await;
    w.advance(Duration::from_secs(600));
    slack.wait_for(1, WAIT).await;
    w.settled().await;
    assert_eq!(slack.messages().len(), 1, "delivered once after the outage");
}

#[tokio::test]
async fn pending_notifications_survive_a_crash_and_are_delivered_once_after_restart() {
    let slack = SlackReceiver::start().await;
    slack.set_mode(Mode::Down).await;
    let mut w = spawn_watchdog_with(
        &default_checks("1h", "1h"),
        &notify_config(&slack, None, ""),
    )
    .await;
    w.blue_ok("a1").await;
    fail_blue(&w, "crashed").await;
    let (_, pending) = w.admin_get("/api/v1/notifications?state=pending").await;
    assert_eq!(pending["notifications"].as_array().unwrap().len(), 1);
    w.kill9();
    slack.set_mode(Mode::Ok).await;
    w.start().await;
    let got = slack.wait_for(1, WAIT).await;
    assert!(
        got[0]["text"].as_str().unwrap().contains("crashed"),
        "{}",
        got[0]
    );
    w.settled().await;
    assert_eq!(slack.messages().len(), 1);
}

#[tokio::test]
async fn a_permanent_refusal_is_an_event_alerted_on_the_other_channel() {
    let slack = SlackReceiver::start().await;
    let smtp = SmtpSink::start(SmtpOptions::default()).await;
    slack.set_mode(Mode::Status(404)).await;
    let w = watchdog_with_blue_down(&slack, Some(&smtp), "boom").await;
    let mails = smtp.wait_for(2, WAIT).await;
    let subjects: Vec<&str> = mails.iter().map(|m| m.subject.as_str()).collect();
    assert!(subjects.contains(&"[bgw] DOWN blue"), "{subjects:?}");
    assert!(
        subjects.contains(&"[bgw] DELIVERY FAILED slack"),
        "{subjects:?}"
    );
    let (_, failed) = w.admin_get("/api/v1/notifications?state=failed").await;
    assert_eq!(failed["notifications"].as_array().unwrap().len(), 1);
    assert!(
        !format!("{failed}").contains(slack.secret_path()),
        "the webhook secret never shows"
    );
}

#[tokio::test]
async fn a_color_failing_is_alerted_at_once_and_what_follows_in_the_window_is_one_follow_up() {
    let slack = SlackReceiver::start().await;
    let service = |name: &str, token: &str| {
        format!("[[check]]\nname = \"{name}\"\nkind = \"service\"\ncolor = \"blue\"\nperiod = \"1h\"\ngrace = \"1h\"\ntoken = \"{token}\"\n")
    };
    let checks = format!(
        "{}\n{}\n{}",
        default_checks("1h", "1h"),
        service("blue-workers", "workers-token-0123456789"),
        service("blue-api", "api-token-0123456789abc"),
    );
    let w = spawn_app(
        &checks,
        &notify_config(&slack, None, "group_window = \"2s\""),
    )
    .await;
    w.blue_ok("a1").await;
    for (check, token) in [
        ("blue-workers", "workers-token-0123456789"),
        ("blue-api", "api-token-0123456789abc"),
    ] {
        w.heartbeat(
            token,
            json!({"check": check, "instance": "w1", "status": "ok"}),
        )
        .await;
    }
    fail_blue(&w, "boom").await;
    // The first alert of the group does not wait for the window.
    let first = slack.wait_for(1, WAIT).await;
    assert!(
        first[0]["text"].as_str().unwrap().contains("boom"),
        "{}",
        first[0]
    );
    w.advance(Duration::from_millis(500));
    w.heartbeat("workers-token-0123456789", json!({"check": "blue-workers", "instance": "w1", "status": "fail", "detail": "queue stuck"}))
        .await;
    w.advance(Duration::from_millis(500));
    w.heartbeat(
        "api-token-0123456789abc",
        json!({"check": "blue-api", "instance": "w1", "status": "fail", "detail": "502s"}),
    )
    .await;
    // Both wait for the window; nothing else leaves meanwhile.
    let deadline = std::time::Instant::now() + WAIT;
    while w.pending().await.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "not planned");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        slack.messages().len(),
        1,
        "{:?}",
        subjects_of(&slack.messages())
    );
    w.advance(Duration::from_secs(1));
    let got = slack.wait_for(2, WAIT).await;
    w.settled().await;
    assert_eq!(
        slack.messages().len(),
        2,
        "{:?}",
        subjects_of(&slack.messages())
    );
    let text = got[1]["text"].as_str().unwrap();
    assert!(
        text.contains("2 checks of blue failing")
            && text.contains("queue stuck")
            && text.contains("502s"),
        "{text}"
    );
    // A straggler after the window is a new first alert: at once.
    w.advance(Duration::from_secs(5));
    w.blue_ok("a2").await;
    w.heartbeat(
        BLUE_TOKEN,
        json!({"check": "blue", "instance": "a2", "status": "fail", "detail": "x"}),
    )
    .await;
    w.heartbeat(
        BLUE_TOKEN,
        json!({"check": "blue", "instance": "a1", "status": "ok"}),
    )
    .await;
    let got = slack.wait_for(3, WAIT).await;
    assert!(
        got[2]["text"].as_str().unwrap().contains("UP"),
        "{}",
        got[2]
    );
}

#[tokio::test]
async fn a_flapping_check_gets_one_notice_and_then_quiet() {
    let slack = SlackReceiver::start().await;
    let w = spawn_app(
        &default_checks("1h", "1h"),
        &notify_config(
            &slack,
            None,
            "flap_threshold = 3\nflap_window = \"10m\"\ngroup_window = \"0s\"",
        ),
    )
    .await;
    w.blue_ok("a1").await;
    for _ in 0..6 {
        fail_blue(&w, "flap").await;
        w.blue_ok("a1").await;
    }
    w.settled().await;
    let subjects = subjects_of(&slack.messages());
    let flapping = subjects.iter().filter(|s| s.contains("FLAPPING")).count();
    assert_eq!(flapping, 1, "{subjects:?}");
    assert_eq!(
        subjects.len(),
        4,
        "3 flips, the notice, then quiet: {subjects:?}"
    );
    let events = w.events().await;
    assert!(events.iter().any(|e| e["silenced"] == "flapping"));
}

#[tokio::test]
async fn reminders_repeat_while_a_check_stays_down() {
    let slack = SlackReceiver::start().await;
    let w = spawn_app(
        &default_checks("1h", "1h"),
        &notify_config(&slack, None, "repeat = \"1m\""),
    )
    .await;
    w.blue_ok("a1").await;
    fail_blue(&w, "still broken").await;
    slack.wait_for(1, WAIT).await;
    for n in 2..=3 {
        w.advance(Duration::from_secs(61));
        let got = slack.wait_for(n, WAIT).await;
        assert!(
            got[n - 1]["text"].as_str().unwrap().contains("STILL DOWN"),
            "{:?}",
            subjects_of(&got)
        );
    }
    w.blue_ok("a1").await;
    slack.wait_for(4, WAIT).await;
    w.advance(Duration::from_secs(600));
    // The timer looks again after the clock moved; give it its turn.
    tokio::time::sleep(Duration::from_millis(100)).await;
    w.settled().await;
    let after = subjects_of(&slack.messages());
    assert_eq!(after.len(), 4, "reminders stop after recovery: {after:?}");
    assert!(after[3].contains("UP"), "{after:?}");
}

#[tokio::test]
async fn silences_suppress_alerts_and_show_on_the_event() {
    let slack = SlackReceiver::start().await;
    let w = spawn_app(
        &default_checks("1h", "1h"),
        &notify_config(&slack, None, ""),
    )
    .await;
    let (s, body) = w
        .admin_post(
            "/api/v1/silences",
            json!({"target": "blue", "duration": "1h", "reason": "maintenance"}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, _) = w
        .admin_post(
            "/api/v1/silences",
            json!({"target": "purple", "duration": "1h", "reason": "x"}),
        )
        .await;
    assert_eq!(s, 404);
    w.blue_ok("a1").await;
    fail_blue(&w, "during maintenance").await;
    assert_eq!(w.ping("/fail").await, 200);
    let got = slack.wait_for(1, WAIT).await;
    w.settled().await;
    assert_eq!(slack.messages().len(), 1, "only the unsilenced job alerted");
    assert!(
        got[0]["text"].as_str().unwrap().contains("job"),
        "{}",
        got[0]
    );
    let events = w.events().await;
    let down = events
        .iter()
        .find(|e| e["check"] == "blue" && e["to"] == "down")
        .unwrap();
    assert!(
        down["silenced"].as_str().unwrap().contains("maintenance"),
        "{down}"
    );
    let (_, list) = w.admin_get("/api/v1/silences").await;
    assert_eq!(list["silences"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn after_a_watchdog_restart_a_check_whose_client_kept_going_leaves_no_trace() {
    let slack = SlackReceiver::start().await;
    let extra = format!(
        "startup_grace = \"3s\"\n{}",
        notify_config(&slack, None, "")
    );
    let mut w = spawn_watchdog_with(&default_checks("1s", "1s"), &extra).await;
    w.blue_ok("a1").await;
    assert_eq!(w.ping("").await, 200);
    w.kill9();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let restarted = std::time::Instant::now();
    w.start().await;
    // Blue's agent was alive all along and keeps delivering; the job and the
    // checker (which never reported) were really silent.
    let deadline = restarted + Duration::from_secs(6);
    while std::time::Instant::now() < deadline {
        w.blue_ok("a1").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut subjects = subjects_of(&slack.messages());
    subjects.sort();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(
        subjects[0].starts_with("[bgw] DOWN checker"),
        "{subjects:?}"
    );
    assert!(subjects[1].starts_with("[bgw] DOWN job"), "{subjects:?}");
    let events = w.events().await;
    let blue: Vec<_> = events
        .iter()
        .filter(|e| e["check"] == "blue" && (e["to"] == "down" || e["to"] == "late"))
        .collect();
    assert!(blue.is_empty(), "nothing recorded for blue: {blue:?}");
    let log = w.log_text();
    assert!(
        !log.contains("blue DOWN") && !log.contains("blue LATE"),
        "{log}"
    );
    assert!(log.contains("ALERT: job DOWN"), "{log}");
}
