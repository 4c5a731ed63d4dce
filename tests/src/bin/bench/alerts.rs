//! Alert benchmarks through the real watchdog, with the README's
//! notification defaults next to `group_window = "0s"`. Prints figures;
//! asserts nothing.
//!
//! - app crash (wrapper mode) → Slack `DOWN`: the agent's event-driven
//!   `fail`, over `BENCH_ALERT_EVENTS` crashes (default 50);
//! - a missed `down` deadline → Slack and → SMTP (aiosmtpd): heartbeat
//!   jobs pinged 100 ms apart, each judged at its own deadline, over
//!   `BENCH_ALERT_EVENTS` deadlines;
//! - 1,000 checks down at one deadline (500 blue and 500 green services):
//!   when the first message of each color arrives, when every member has
//!   been named, and how many messages each channel got.
//!
//! `BENCH_ALERT_ONLY=crash|deadlines|burst` runs one part.

use anyhow::{bail, Context};
use bgw_e2e::measure::percentiles;
use bgw_e2e::slack::SlackReceiver;
use bgw_e2e::smtp::{SmtpOptions, SmtpSink};
use bgw_e2e::watchdog::{spawn_watchdog_with, Watchdog};
use chrono::{DateTime, Utc};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

const CONFIGS: [(&str, &str); 2] = [
    ("README defaults", ""),
    ("group_window = 0s", "group_window = \"0s\""),
];

fn events() -> anyhow::Result<usize> {
    match std::env::var("BENCH_ALERT_EVENTS") {
        Ok(v) => v.parse().context("BENCH_ALERT_EVENTS: expected a count"),
        Err(_) => Ok(50),
    }
}

/// `BENCH_ALERT_ONLY=crash|deadlines|burst` runs one part.
pub async fn run() -> anyhow::Result<()> {
    println!("== alerts (through the watchdog's outbox)");
    let n = events()?;
    let only = std::env::var("BENCH_ALERT_ONLY").ok();
    let wants = |part: &str| only.as_deref().is_none_or(|o| o == part);
    for (label, policy) in CONFIGS {
        if wants("crash") {
            super::agent::crash_to_slack(label, policy, n).await?;
        }
    }
    for (label, policy) in CONFIGS {
        if wants("deadlines") {
            deadlines(label, policy, n).await?;
        }
    }
    for (label, policy) in CONFIGS {
        if wants("burst") {
            burst(label, policy, 500).await?;
        }
    }
    Ok(())
}

fn channels(slack: &SlackReceiver, smtp: &SmtpSink, policy: &str) -> String {
    format!(
        "[notify]\n{policy}\n[notify.slack]\nwebhook_url = \"{}\"\n[notify.email]\nsmtp_url = \"{}\"\nfrom = \"bgw@example.org\"\nto = [\"ops@example.org\"]\n",
        slack.url(),
        smtp.url()
    )
}

/// Maps the receivers' `Instant`s to wall-clock time.
struct Anchor(Instant, DateTime<Utc>);

impl Anchor {
    fn now() -> Anchor {
        Anchor(Instant::now(), Utc::now())
    }

    fn wall(&self, at: Instant) -> DateTime<Utc> {
        self.1 + (at - self.0)
    }
}

fn after(at: DateTime<Utc>, deadline: DateTime<Utc>) -> Duration {
    (at - deadline).to_std().unwrap_or_default()
}

async fn down_events(w: &Watchdog) -> anyhow::Result<Vec<serde_json::Value>> {
    let (_, body) = w.admin_get("/api/v1/events?since=0&limit=10000").await;
    Ok(body["events"]
        .as_array()
        .context("events")?
        .iter()
        .filter(|e| e["to"] == "down")
        .cloned()
        .collect())
}

fn at_of(e: &serde_json::Value) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(e["at"].as_str().context("at")?)?.to_utc())
}

/// Jobs pinged 100 ms apart (within their 10 s period), each then missing
/// its own `down` deadline, 100 ms after the one before.
async fn deadlines(label: &str, policy: &str, n: usize) -> anyhow::Result<()> {
    let slack = SlackReceiver::start().await;
    let smtp = SmtpSink::start(SmtpOptions::default()).await;
    let mut checks = String::new();
    for i in 0..n {
        let _ = writeln!(
            checks,
            "[[check]]\nname = \"job-{i}\"\nkind = \"heartbeat\"\nuuid = \"00000000-0000-4000-8000-{i:012}\"\nperiod = \"10s\"\ngrace = \"0s\""
        );
    }
    let w = spawn_watchdog_with(&checks, &channels(&slack, &smtp, policy)).await;
    let anchor = Anchor::now();
    for i in 0..n {
        let url = format!("{}/ping/00000000-0000-4000-8000-{i:012}", w.base);
        if !w.http.get(&url).send().await?.status().is_success() {
            bail!("ping failed");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    slack.wait_for(n, Duration::from_secs(60)).await;
    smtp.wait_for(n, Duration::from_secs(60)).await;
    let downs = down_events(&w).await?;
    let deadline_of = |check: &str| -> Option<DateTime<Utc>> {
        downs
            .iter()
            .find(|e| e["check"] == check)
            .and_then(|e| at_of(e).ok())
    };
    let mut to_slack = Vec::new();
    for (m, at) in slack.messages().iter().zip(slack.received_at()) {
        let text = m["text"].as_str().unwrap_or("");
        if let Some(check) = text
            .strip_prefix("[bgw] DOWN ")
            .and_then(|t| t.split([' ', ':', '\n']).next())
        {
            if let Some(d) = deadline_of(check) {
                to_slack.push(after(anchor.wall(at), d));
            }
        }
    }
    let mut to_email = Vec::new();
    for mail in smtp.messages() {
        if let Some(check) = mail.subject.strip_prefix("[bgw] DOWN ") {
            if let Some(d) = deadline_of(check) {
                let got: DateTime<Utc> = mail.received_at().into();
                to_email.push(after(got, d));
            }
        }
    }
    println!(
        "   down deadline -> Slack, {label}: {}",
        percentiles(to_slack)
    );
    println!(
        "   down deadline -> SMTP,  {label}: {}",
        percentiles(to_email)
    );
    Ok(())
}

/// `per_color` blue and `per_color` green services down at one deadline.
async fn burst(label: &str, policy: &str, per_color: usize) -> anyhow::Result<()> {
    let slack = SlackReceiver::start().await;
    let smtp = SmtpSink::start(SmtpOptions::default()).await;
    let mut checks = String::new();
    for color in ["blue", "green"] {
        for i in 0..per_color {
            let _ = writeln!(
                checks,
                "[[check]]\nname = \"{color}-{i}\"\nkind = \"service\"\ncolor = \"{color}\"\nperiod = \"3s\"\ngrace = \"0s\"\ntoken = \"bench-token-0123456789\""
            );
        }
    }
    let w = spawn_watchdog_with(
        &checks,
        &format!("rate_limit = 0\n{}", channels(&slack, &smtp, policy)),
    )
    .await;
    let anchor = Anchor::now();
    let expected = 2 * per_color * 2; // one row per check and channel
    let limit = Instant::now() + Duration::from_secs(120);
    let rows = loop {
        let (_, body) = w.admin_get("/api/v1/notifications?limit=10000").await;
        let rows = body["notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let sent = rows
            .iter()
            .filter(|r| r["state"] == "delivered" || r["state"] == "merged")
            .count();
        if sent >= expected || Instant::now() > limit {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // When the last row of a color was sent on `channel`: every member named.
    let named = |color: &str, channel: &str| -> Option<DateTime<Utc>> {
        rows.iter()
            .filter(|r| r["channel"] == channel)
            .filter(|r| {
                r["subject"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with(&format!("[bgw] DOWN {color}-"))
            })
            .filter_map(|r| r["delivered_at"].as_str())
            .filter_map(|t| DateTime::parse_from_rfc3339(t).ok().map(|t| t.to_utc()))
            .max()
    };
    let downs = down_events(&w).await?;
    let deadline = downs
        .iter()
        .filter_map(|e| at_of(e).ok())
        .min()
        .context("no down event")?;
    let first = |color: &str| {
        slack
            .messages()
            .iter()
            .zip(slack.received_at())
            .find(|(m, _)| {
                m["text"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with(&format!("[bgw] DOWN {color}"))
            })
            .map(|(_, at)| after(anchor.wall(at), deadline))
    };
    let ms = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{} ms", d.as_millis()));
    w.settled().await;
    let all = |channel: &str| {
        ms(named("blue", channel)
            .max(named("green", channel))
            .map(|at| after(at, deadline)))
    };
    println!(
        "   {} services down at one deadline, {label}: first Slack message blue {}, green {}; every member named: Slack {}, email {}; messages: Slack {}, email {}",
        2 * per_color,
        ms(first("blue")),
        ms(first("green")),
        all("slack"),
        all("email"),
        slack.messages().len(),
        smtp.messages().len(),
    );
    Ok(())
}
