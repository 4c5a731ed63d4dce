//! `bgw-demo`: the whole system on loopback, narrated. A real nginx in front
//! of two test apps (blue and green), `bgw-watchdog serve` on an embedded
//! SQLite file, a `bgw-agent` beside each app, `bgw-checker`, `bgw-prober`,
//! a local Slack receiver and a real SMTP server (aiosmtpd). Then it plays
//! the story the product exists for: a toggle, a new color that breaks and
//! is rolled back on its own, a job that never finishes, and the watchdog
//! itself dying and being reported by the prober. Everything runs in a
//! temporary directory and stops at the end.

use anyhow::Context;
use bgw_e2e::slack::SlackReceiver;
use bgw_e2e::smtp::{SmtpOptions, SmtpSink};
use bgw_e2e::system::{Options, System};
use bgw_e2e::watchdog::JOB_UUID;
use bgw_wire::Color;
use std::process::{Command, Stdio};
use std::time::Duration;

const PROBER_TOKEN: &str = "prober-token-0123456789";

fn say(text: &str) {
    println!("\n\x1b[1m== {text}\x1b[0m");
}

fn show(out: std::process::Output) {
    print!("{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    if !err.trim().is_empty() {
        print!("{err}");
    }
    println!("(exit {})", out.status.code().unwrap_or(-1));
}

fn print_new(slack: &SlackReceiver, smtp: &SmtpSink, seen: &mut (usize, usize)) {
    let messages = slack.messages();
    for m in &messages[seen.0..] {
        let first = m["text"]
            .as_str()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        println!("   slack <- {first}");
    }
    seen.0 = messages.len();
    let mails = smtp.messages();
    for m in &mails[seen.1..] {
        println!("   email <- {}", m.subject);
    }
    seen.1 = mails.len();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    say("starting: nginx, blue and green apps, watchdog, agents, checker, Slack receiver, SMTP server");
    let slack = SlackReceiver::start().await;
    let smtp = SmtpSink::start(SmtpOptions::default()).await;
    let channels = format!(
        "[notify]\ngroup_window = \"500ms\"\nrepeat = \"1h\"\n[notify.slack]\nwebhook_url = \"{}\"\n[notify.email]\nsmtp_url = \"{}\"\nfrom = \"bgw@example.org\"\nto = [\"ops@example.org\"]\n",
        slack.url(),
        smtp.url()
    );
    let options = Options {
        rollback: Options::rollback_with("cooldown = \"1m\""),
        extra_checks: format!(
            "[[check]]\nname = \"prober\"\nkind = \"reporter\"\nperiod = \"1s\"\ngrace = \"2s\"\ntoken = \"{PROBER_TOKEN}\"\n\
             [[check]]\nname = \"nightly-backup\"\nkind = \"heartbeat\"\nuuid = \"{JOB_UUID}\"\nperiod = \"1h\"\ngrace = \"2s\"\n"
        ),
        extra_tables: channels.clone(),
        ..Options::default()
    };
    let mut system = System::start(options).await.context("start the system")?;
    let dir = tempfile::tempdir()?;
    let prober_config = dir.path().join("prober.toml");
    std::fs::write(
        &prober_config,
        format!(
            "watchdog_url = \"{}\"\ntoken = \"{PROBER_TOKEN}\"\npublic_url = \"http://127.0.0.1:{}/ping\"\ninterval = \"500ms\"\ntimeout = \"1s\"\nsilence_after = \"3s\"\nstate_dir = \"{}\"\n{}",
            system.watchdog.base,
            system.live_port(),
            dir.path().join("prober-state").display(),
            channels.replace("group_window = \"500ms\"\n", "")
        ),
    )?;
    let mut prober = Command::new(bgw_e2e::bin("bgw-prober"))
        .arg("--config")
        .arg(&prober_config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start bgw-prober")?;
    system.watchdog.wait_state("prober", "up").await;
    println!(
        "   watchdog: {}   nginx live port: {}   database: {}",
        system.watchdog.base,
        system.live_port(),
        system.watchdog.db_path().display()
    );
    let mut seen = (0, 0);

    say("bgw-watchdog status");
    show(system.cli(&["status"]));

    say("bgw-watchdog toggle green   (a manual switch: nginx re-rendered, tested, reloaded, verified)");
    show(system.cli(&["toggle", "green", "--reason", "release 1.0.5"]));
    show(system.cli(&["live"]));

    say("green breaks right after the toggle (its /ping now answers 500)");
    system.fixture.green.control("fail").await?;
    let rollback = system
        .wait_event("rollback", Duration::from_secs(20))
        .await?;
    println!("   event: {}", rollback["reason"].as_str().unwrap_or(""));
    system
        .wait_served_by(Color::Blue, Duration::from_secs(10))
        .await?;
    show(system.cli(&["live"]));
    tokio::time::sleep(Duration::from_secs(2)).await;
    print_new(&slack, &smtp, &mut seen);

    say("bgw-watchdog rollback status   (latched: no further automatic switch until an operator acts)");
    show(system.cli(&["rollback", "status"]));
    system.fixture.green.control("ok").await?;

    say("a nightly job pings /start and never finishes: down after its grace");
    let http = reqwest::Client::new();
    http.get(format!("{}/ping/{JOB_UUID}/start", system.watchdog.base))
        .send()
        .await?;
    system.watchdog.wait_state("nightly-backup", "down").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    print_new(&slack, &smtp, &mut seen);

    say("the watchdog itself is killed (kill -9): the prober alerts on its own channels");
    system.watchdog.kill9();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !slack
        .messages()
        .iter()
        .any(|m| m["text"].as_str().unwrap_or("").contains("DOWN watchdog"))
    {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the prober did not alert"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    print_new(&slack, &smtp, &mut seen);

    say("the watchdog restarts on the same SQLite file: deadlines and state survive, the prober says UP");
    system.watchdog.start().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !slack
        .messages()
        .iter()
        .any(|m| m["text"].as_str().unwrap_or("").contains("UP watchdog"))
    {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the prober did not report UP"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    print_new(&slack, &smtp, &mut seen);
    show(system.cli(&["status"]));

    say(&format!(
        "the daily log ({})",
        system.watchdog.log_dir().display()
    ));
    let log = system.watchdog.log_text();
    let interesting: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains(" - OK]") && !l.contains("INFO:") && !l.contains("CONFIG:"))
        .collect();
    for line in interesting.iter().rev().take(25).rev() {
        println!("   {line}");
    }
    println!("   ... and one line per probe, e.g.:");
    for line in log.lines().filter(|l| l.contains(" - OK]")).take(4) {
        println!("   {line}");
    }

    say(&format!(
        "done: {} Slack messages, {} emails",
        slack.messages().len(),
        smtp.messages().len()
    ));
    let _ = prober.kill();
    let _ = prober.wait();
    Ok(())
}
