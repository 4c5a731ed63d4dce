//! Alerts end to end: the real watchdog, the real aiosmtpd SMTP server and
//! a Slack receiver that judges payloads like Slack does.

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
    let w = spawn_watchdog_with(&default_checks("1h", "1h"), &notify_config(slack, smtp, "")).await;
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
    tokio::time::sleep(Duration::from_millis(500)).await;
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
        tokio::time::sleep(Duration::from_millis(50)).await;
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
    slack.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(slack.messages().len(), 1, "delivered once after the outage");
}

#[tokio::test]
async fn pending_notifications_survive_a_crash_and_are_delivered_once_after_restart() {
    let slack = SlackReceiver::start().await;
    slack.set_mode(Mode::Down).await;
    let mut w = watchdog_with_blue_down(&slack, None, "crashed").await;
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
    tokio::time::sleep(Duration::from_millis(500)).await;
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
async fn a_whole_color_failing_is_one_message() {
    let slack = SlackReceiver::start().await;
    let checks = format!(
        "{}\n[[check]]\nname = \"blue-workers\"\nkind = \"service\"\ncolor = \"blue\"\nperiod = \"1h\"\ngrace = \"1h\"\ntoken = \"workers-token-0123456789\"\n",
        default_checks("1h", "1h")
    );
    let w = spawn_watchdog_with(&checks, &notify_config(&slack, None, "")).await;
    w.blue_ok("a1").await;
    w.heartbeat(
        "workers-token-0123456789",
        json!({"check": "blue-workers", "instance": "w1", "status": "ok"}),
    )
    .await;
    fail_blue(&w, "boom").await;
    w.heartbeat("workers-token-0123456789", json!({"check": "blue-workers", "instance": "w1", "status": "fail", "detail": "queue stuck"}))
        .await;
    let got = slack.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        slack.messages().len(),
        1,
        "one message for the color: {:?}",
        subjects_of(&slack.messages())
    );
    let text = got[0]["text"].as_str().unwrap();
    assert!(
        text.contains("blue-workers") && text.contains("queue stuck") && text.contains("boom"),
        "{text}"
    );
}

#[tokio::test]
async fn a_flapping_check_gets_one_notice_and_then_quiet() {
    let slack = SlackReceiver::start().await;
    let w = spawn_watchdog_with(
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
    tokio::time::sleep(Duration::from_secs(2)).await;
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
    let w = spawn_watchdog_with(
        &default_checks("1h", "1h"),
        &notify_config(&slack, None, "repeat = \"1s\""),
    )
    .await;
    w.blue_ok("a1").await;
    fail_blue(&w, "still broken").await;
    let got = slack.wait_for(3, WAIT).await;
    let subjects = subjects_of(&got);
    assert!(
        subjects.iter().filter(|s| s.contains("STILL DOWN")).count() >= 2,
        "{subjects:?}"
    );
    w.blue_ok("a1").await;
    let n = slack.wait_for(4, WAIT).await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = subjects_of(&slack.messages());
    assert!(
        after.len() <= n + 1,
        "reminders stop after recovery: {after:?}"
    );
    assert!(after.iter().any(|s| s.contains("UP")), "{after:?}");
}

#[tokio::test]
async fn silences_suppress_alerts_and_show_on_the_event() {
    let slack = SlackReceiver::start().await;
    let w = spawn_watchdog_with(
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
    tokio::time::sleep(Duration::from_millis(800)).await;
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
async fn after_a_watchdog_restart_a_check_that_comes_back_at_once_raises_no_alert() {
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
    w.start().await;
    // Blue's agent was alive all along and keeps delivering; the job and the
    // checker (which never reported) were really silent.
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
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
    let quiet = events
        .iter()
        .filter(|e| {
            e["check"] == "blue"
                && e["silenced"]
                    .as_str()
                    .unwrap_or("")
                    .contains("watchdog restart")
        })
        .count();
    assert_eq!(quiet, 2, "the down and the up both say why they were quiet");
}
