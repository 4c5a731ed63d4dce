//! Alert benchmarks through the real watchdog: the time from a state change
//! to the message at a local Slack receiver and at a real SMTP server
//! (aiosmtpd), and the outbox's throughput when 1,000 checks go down at the
//! same deadline (500 of one color, grouped into one message; 500 ungrouped
//! jobs). Prints figures; asserts nothing.

use anyhow::{bail, Context};
use bgw_e2e::measure::percentiles;
use bgw_e2e::slack::SlackReceiver;
use bgw_e2e::smtp::{SmtpOptions, SmtpSink};
use bgw_e2e::watchdog::{spawn_watchdog_with, Watchdog, JOB_UUID};
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime};

pub async fn run() -> anyhow::Result<()> {
    println!("== alerts (through the watchdog's outbox)");
    latency().await?;
    burst(500, 500).await?;
    Ok(())
}

fn channels(slack: &SlackReceiver, smtp: &SmtpSink, policy: &str) -> String {
    format!(
        "[notify]\n{policy}\n[notify.slack]\nwebhook_url = \"{}\"\n[notify.email]\nsmtp_url = \"{}\"\nfrom = \"bgw@example.org\"\nto = [\"ops@example.org\"]\n",
        slack.url(),
        smtp.url()
    )
}

async fn latency() -> anyhow::Result<()> {
    let slack = SlackReceiver::start().await;
    let smtp = SmtpSink::start(SmtpOptions::default()).await;
    let checks = format!(
        "[[check]]\nname = \"job\"\nkind = \"heartbeat\"\nuuid = \"{JOB_UUID}\"\nperiod = \"1h\"\ngrace = \"1h\"\n"
    );
    let w = spawn_watchdog_with(
        &checks,
        &channels(&slack, &smtp, "flap_threshold = 100000\nrepeat = \"0s\""),
    )
    .await;
    let rounds = 40;
    let mut to_slack = Vec::new();
    let mut to_email = Vec::new();
    for i in 0..rounds {
        // Alternate down and up: every ping is a state change.
        let suffix = if i % 2 == 0 { "/fail" } else { "" };
        let sent = Instant::now();
        let sent_wall = SystemTime::now();
        if w.ping(suffix).await != 200 {
            bail!("ping failed");
        }
        let n = i + 1;
        slack.wait_for(n, Duration::from_secs(10)).await;
        to_slack.push(slack.received_at()[i].duration_since(sent));
        let mails = smtp.wait_for(n, Duration::from_secs(10)).await;
        let got = mails[i].received_at();
        to_email.push(got.duration_since(sent_wall).unwrap_or_default());
    }
    println!(
        "   state change -> Slack receiver: {}",
        percentiles(to_slack)
    );
    println!(
        "   state change -> SMTP server (aiosmtpd): {}",
        percentiles(to_email)
    );
    Ok(())
}

async fn burst(colored: usize, jobs: usize) -> anyhow::Result<()> {
    let slack = SlackReceiver::start().await;
    let smtp = SmtpSink::start(SmtpOptions::default()).await;
    let mut checks = String::new();
    for i in 0..colored {
        let _ = writeln!(
            checks,
            "[[check]]\nname = \"blue-{i}\"\nkind = \"service\"\ncolor = \"blue\"\nperiod = \"3s\"\ngrace = \"0s\"\ntoken = \"alerts-bench-token\""
        );
    }
    for i in 0..jobs {
        let _ = writeln!(
            checks,
            "[[check]]\nname = \"job-{i}\"\nkind = \"heartbeat\"\nuuid = \"00000000-0000-4000-8000-{i:012}\"\nperiod = \"3s\"\ngrace = \"0s\""
        );
    }
    let w: Watchdog = spawn_watchdog_with(
        &checks,
        &format!(
            "rate_limit = 0\n{}",
            channels(&slack, &smtp, "repeat = \"0s\"")
        ),
    )
    .await;
    let expected = 1 + jobs;
    let started = Instant::now();
    let limit = Duration::from_secs(120);
    let slack_done = async {
        let t0 = Instant::now();
        while slack.messages().len() < expected && t0.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Instant::now()
    };
    let email_done = async {
        let t0 = Instant::now();
        while smtp.messages().len() < expected && t0.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Instant::now()
    };
    let (slack_at, email_at) = tokio::join!(slack_done, email_done);
    // The deadline: 3 s after the checks were created at start.
    let (_, body) = w.admin_get("/api/v1/events?since=0&limit=10000").await;
    let events = body["events"].as_array().cloned().unwrap_or_default();
    let first_down = events
        .iter()
        .find(|e| e["to"] == "down")
        .and_then(|e| e["at"].as_str())
        .context("no down event")?;
    let deadline = chrono::DateTime::parse_from_rfc3339(first_down)?;
    let since_deadline = |at: Instant| {
        let wall = chrono::Utc::now() - (Instant::now() - at);
        (wall - deadline.to_utc()).num_milliseconds() as f64 / 1000.0
    };
    let grouped = slack
        .messages()
        .iter()
        .filter(|m| {
            m["text"]
                .as_str()
                .unwrap_or("")
                .contains(&format!("{colored} checks of blue"))
        })
        .count();
    println!(
        "   {} checks down at one deadline ({colored} blue services, {jobs} jobs): Slack got {} messages ({grouped} grouped for blue) {:.2}s after the deadline; email got {} {:.2}s after; run took {:.1}s",
        colored + jobs,
        slack.messages().len(),
        since_deadline(slack_at),
        smtp.messages().len(),
        since_deadline(email_at),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
