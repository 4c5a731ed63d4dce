//! Notification latency: from `Channel::send` to the message being seen by
//! the receiver, for Slack (the local Slack receiver) and email (a real
//! aiosmtpd, plain and STARTTLS), plus Slack throughput with many sends in
//! flight. Loopback only; figures are printed, never asserted.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use bgw_e2e::slack::SlackReceiver;
use bgw_e2e::smtp::{SmtpOptions, SmtpSink, SmtpTls};
use bgw_notify::{Channel, EmailSettings, Kind, Notification, SlackSettings};
use bgw_wire::Color;

const SLACK_SENDS: usize = 200;
const EMAIL_SENDS: usize = 100;
const THROUGHPUT_SENDS: usize = 2000;
const IN_FLIGHT: usize = 32;

fn notification(i: usize) -> Notification {
    Notification {
        event_id: i as i64 + 1,
        kind: if i % 2 == 0 { Kind::Down } else { Kind::Up },
        check: "blue".into(),
        color: Some(Color::Blue),
        state: if i % 2 == 0 { "down" } else { "up" }.into(),
        reason: "no heartbeat for 12s (period 5s, grace 5s)".into(),
        at: chrono::Utc::now(),
        down_for: (i % 2 == 1).then(|| Duration::from_secs(12).into()),
        live: Some(Color::Blue),
        from: None,
        to: None,
        members: vec![],
        source: "watchdog".into(),
    }
}

/// Prints the notification benchmarks.
pub async fn run() -> anyhow::Result<()> {
    slack_latency().await?;
    slack_throughput().await?;
    email_latency(SmtpTls::None, "plain SMTP").await?;
    email_latency(SmtpTls::StartTls, "STARTTLS").await?;
    email_latency(SmtpTls::Implicit, "implicit TLS").await?;
    Ok(())
}

async fn slack_latency() -> anyhow::Result<()> {
    let slack = SlackReceiver::start().await;
    let channel = Channel::slack(&SlackSettings::new(slack.url()))?;
    let mut starts = Vec::with_capacity(SLACK_SENDS);
    for i in 0..SLACK_SENDS {
        starts.push(Instant::now());
        channel.send(&notification(i)).await.context("Slack send")?;
    }
    slack.wait_for(SLACK_SENDS, Duration::from_secs(30)).await;
    anyhow::ensure!(slack.rejected().is_empty(), "Slack rejected payloads");
    let seen: Vec<Duration> = slack
        .received_at()
        .iter()
        .zip(&starts)
        .map(|(seen, start)| seen.duration_since(*start))
        .collect();
    println!(
        "notify: Slack send -> message at the receiver ({SLACK_SENDS} sequential sends): {}",
        summary(seen)
    );
    Ok(())
}

async fn slack_throughput() -> anyhow::Result<()> {
    let slack = SlackReceiver::start().await;
    let channel = Channel::slack(&SlackSettings::new(slack.url()))?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let channel = channel.clone();
            let next = next.clone();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= THROUGHPUT_SENDS {
                        return Ok::<_, bgw_notify::SendError>(());
                    }
                    channel.send(&notification(i)).await?;
                }
            })
        })
        .collect();
    for w in workers {
        w.await?.context("Slack send")?;
    }
    let elapsed = started.elapsed();
    slack
        .wait_for(THROUGHPUT_SENDS, Duration::from_secs(30))
        .await;
    println!(
        "notify: Slack throughput: {THROUGHPUT_SENDS} messages, {IN_FLIGHT} in flight, {:.0} messages/s",
        THROUGHPUT_SENDS as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

async fn email_latency(tls: SmtpTls, label: &str) -> anyhow::Result<()> {
    let sink = SmtpSink::start(SmtpOptions { auth: None, tls }).await;
    let settings = EmailSettings {
        ca_file: sink.ca_file(),
        ..EmailSettings::new(
            sink.url(),
            "bgw@example.org",
            vec!["ops@example.org".into()],
        )
    };
    let channel = Channel::email(&settings)?;
    let mut starts = Vec::with_capacity(EMAIL_SENDS);
    for i in 0..EMAIL_SENDS {
        starts.push(SystemTime::now());
        channel.send(&notification(i)).await.context("email send")?;
    }
    let got = sink.wait_for(EMAIL_SENDS, Duration::from_secs(60)).await;
    let seen: Vec<Duration> = got
        .iter()
        .zip(&starts)
        .map(|(m, start)| m.received_at().duration_since(*start).unwrap_or_default())
        .collect();
    println!(
        "notify: email send -> message at aiosmtpd ({EMAIL_SENDS} sequential sends, {label}, new connection each): {}",
        summary(seen)
    );
    Ok(())
}

fn summary(mut d: Vec<Duration>) -> String {
    d.sort();
    let pct = |p: f64| {
        let i = ((p / 100.0) * (d.len() - 1) as f64).round() as usize;
        d[i].as_secs_f64() * 1000.0
    };
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(50.0),
        pct(99.0),
        pct(100.0)
    )
}
