//! Rollback benchmark: how long after the new live color breaks does the
//! live port serve the previous color again, with nobody touching anything.
//! The whole system runs (`bgw_e2e::system`: a real nginx, two
//! `bgw-testapp`s, `bgw-watchdog serve`, a `bgw-agent` beside each app and
//! `bgw-checker`), with period 1s, grace 1s, fail_after 2, quorum 2, agents
//! and checker every 300 ms.
//!
//! Each run: toggle to green (manual, which also releases the latch of the
//! previous run), wait until the live port serves green, make green fail
//! (`POST /control/fail`: `/ping` answers 500), then poll the live port on
//! new connections every 5 ms until it answers from blue. Prints every run,
//! the median and the max; asserts nothing.

use anyhow::{bail, Context};
use bgw_e2e::nginx::served_by;
use bgw_e2e::system::{Options, System};
use bgw_wire::Color;
use std::time::{Duration, Instant};

const RUNS: usize = 7;

pub async fn run() -> anyhow::Result<()> {
    let s = System::start(Options::default())
        .await
        .context("start the system")?;
    println!(
        "== rollback: failure of the new live color -> live port served by the previous one ({RUNS} runs)"
    );
    println!(
        "   period 1s, grace 1s, fail_after 2, quorum 2 (agents + checker), agents and checker every 300ms"
    );
    let mut times = Vec::with_capacity(RUNS);
    for run in 1..=RUNS {
        s.fixture.green.control("ok").await?;
        s.watchdog.wait_state("green", "up").await;
        let before = s.events_of("rollback").await.len();
        let (code, body) = s
            .watchdog
            .admin_post("/api/v1/toggle", serde_json::json!({"to": "green"}))
            .await;
        if code != 200 {
            bail!("toggle to green: {code} {body}");
        }
        s.wait_served_by(Color::Green, Duration::from_secs(10))
            .await?;
        // Let the observers see green healthy first, as after a real deploy.
        tokio::time::sleep(Duration::from_millis(700)).await;

        let start = Instant::now();
        s.fixture.green.control("fail").await?;
        loop {
            if served_by(s.live_port()).await.as_deref() == Some("blue") {
                break;
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!("run {run}: no rollback within 30s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let took = start.elapsed();
        let events = s
            .wait_events("rollback", before + 1, Duration::from_secs(10))
            .await?;
        let switch_ms = events
            .last()
            .and_then(|e| e["data"]["took_ms"].as_u64())
            .unwrap_or(0);
        println!(
            "   run {run}: {} ms (of which the switch itself: {switch_ms} ms)",
            took.as_millis()
        );
        times.push(took);
    }
    times.sort();
    let median = times[times.len() / 2];
    let max = times[times.len() - 1];
    println!(
        "   median {} ms, max {} ms, min {} ms (target: under 3000 ms)",
        median.as_millis(),
        max.as_millis(),
        times[0].as_millis()
    );
    Ok(())
}
