//! Watchdog killed → the prober's own Slack alert: how long after the
//! watchdog stops answering does `[bgw] DOWN watchdog` reach Slack?
//!
//! A fake watchdog (`/healthz` 200, `/api/v1/report` 202) runs in this
//! process; the real `bgw-prober` binary probes it every `interval` and
//! alerts a local Slack receiver. Each trial stops the watchdog (the port
//! then refuses connections) and measures until the DOWN arrives, then
//! brings the watchdog back and waits for the UP. Target: at most
//! `silence_after` plus 1 s. The prober counts silence from the last answer, which is
//! up to one `interval` before the kill, so a delay a little under
//! `silence_after` is expected.

use anyhow::{bail, Context};
use bgw_e2e::fake_watchdog::FakeWatchdog;
use bgw_e2e::slack::SlackReceiver;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SILENCE_AFTER: Duration = Duration::from_secs(5);
const INTERVAL: &str = "1s";
const TRIALS: usize = 3;

async fn wait_for(slack: &SlackReceiver, n: usize, limit: Duration) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(at) = slack.received_at().get(n - 1) {
            return Ok(*at);
        }
        if Instant::now() > deadline {
            bail!("no Slack message #{n} within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Runs the trials and prints one line per trial and a summary.
pub async fn run() -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let prober_bin = exe
        .parent()
        .context("bench has no directory")?
        .join("bgw-prober");
    if !prober_bin.exists() {
        bail!(
            "{} not found: build it first (cargo build --workspace --bins)",
            prober_bin.display()
        );
    }
    let mut watchdog = FakeWatchdog::start().await;
    let slack = SlackReceiver::start().await;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("prober.toml");
    std::fs::write(
        &config,
        format!(
            "watchdog_url = \"{}\"\ntoken = \"prober-bench-token\"\npublic_url = \"{}/healthz\"\n\
             interval = \"{INTERVAL}\"\ntimeout = \"2s\"\nsilence_after = \"{}s\"\n\
             state_dir = \"{}\"\n[notify.slack]\nwebhook_url = \"{}\"\n",
            watchdog.url(),
            watchdog.url(),
            SILENCE_AFTER.as_secs(),
            dir.path().join("state").display(),
            slack.url(),
        ),
    )?;
    let mut prober = Command::new(&prober_bin)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start bgw-prober")?;
    println!(
        "prober: watchdog killed -> Slack DOWN (silence_after {}s, interval {INTERVAL}, target <= silence_after + 1s)",
        SILENCE_AFTER.as_secs()
    );
    let mut delays = Vec::new();
    let result: anyhow::Result<()> = async {
        // Let the prober hear the watchdog a few times first.
        tokio::time::sleep(Duration::from_secs(3)).await;
        for trial in 1..=TRIALS {
            let before = slack.received_at().len();
            let killed = Instant::now();
            watchdog.server.stop().await;
            let down = wait_for(&slack, before + 1, SILENCE_AFTER * 4).await?;
            let delay = down.duration_since(killed);
            println!(
                "  trial {trial}: DOWN at Slack {:.3}s after the kill ({:+.3}s vs silence_after)",
                delay.as_secs_f64(),
                delay.as_secs_f64() - SILENCE_AFTER.as_secs_f64()
            );
            delays.push(delay);
            watchdog
                .server
                .try_restart()
                .await
                .context("rebind the fake watchdog")?;
            let back = Instant::now();
            let up = wait_for(&slack, before + 2, Duration::from_secs(20)).await?;
            println!(
                "           UP at Slack {:.3}s after the watchdog came back",
                up.duration_since(back).as_secs_f64()
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        Ok(())
    }
    .await;
    let _ = prober.kill();
    let _ = prober.wait();
    result?;
    delays.sort();
    let max = delays.last().copied().unwrap_or_default();
    println!(
        "  min {:.3}s, median {:.3}s, max {:.3}s; target {}s: {}",
        delays[0].as_secs_f64(),
        delays[delays.len() / 2].as_secs_f64(),
        max.as_secs_f64(),
        SILENCE_AFTER.as_secs() + 1,
        if max <= SILENCE_AFTER + Duration::from_secs(1) {
            "met"
        } else {
            "MISSED"
        }
    );
    Ok(())
}
