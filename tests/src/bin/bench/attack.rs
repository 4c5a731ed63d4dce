//! Attack drill: the real watchdog under systemd's default open-file limit
//! (1,024) while 2,000 idle connections, then 900 connections each sending
//! 400 KB of unfinished headers, are held against it. Prints heartbeat
//! latency (p99, each on a new connection) and `/healthz` answers during
//! each attack, resident memory before, during and after, and the time a
//! clean shutdown takes while clients hold connections. Asserts nothing.

use bgw_e2e::attack::{self, fresh_client};
use bgw_e2e::measure::{percentiles, rss_kib};
use bgw_e2e::watchdog::{default_checks, spawn_watchdog_adjusted, Watchdog, BLUE_TOKEN};
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const NOFILE: u64 = 1024;

pub async fn run() -> anyhow::Result<()> {
    println!("== attack (watchdog under LimitNOFILE={NOFILE})");
    let limit = attack::raise_nofile_limit();
    println!("attacker's open-file limit: {limit}");
    idle().await?;
    half_heads().await?;
    shutdown().await?;
    Ok(())
}

async fn start(extra: &str) -> Watchdog {
    spawn_watchdog_adjusted(&default_checks("1h", "1h"), extra, |w| {
        w.nofile = Some(NOFILE)
    })
    .await
}

fn addr(w: &Watchdog) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], w.port))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Heartbeats and `/healthz` on new connections for `span`: the heartbeat
/// latencies, and how many of each were answered out of how many sent.
async fn probe(w: &Watchdog, span: Duration) -> (Vec<Duration>, (usize, usize), (usize, usize)) {
    let http = fresh_client(Duration::from_secs(5));
    let end = Instant::now() + span;
    let mut latencies = Vec::new();
    let (mut beats, mut beats_sent, mut health, mut health_sent) = (0, 0, 0, 0);
    let mut seq = 0u64;
    while Instant::now() < end {
        seq += 1;
        let t = Instant::now();
        beats_sent += 1;
        let r = http
            .post(format!("{}/api/v1/heartbeat", w.base))
            .bearer_auth(BLUE_TOKEN)
            .json(&json!({"check": "blue", "instance": "bench", "status": "ok", "seq": seq}))
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 202) {
            beats += 1;
            latencies.push(t.elapsed());
        }
        health_sent += 1;
        let r = http.get(format!("{}/healthz", w.base)).send().await;
        if r.is_ok_and(|r| r.status() == 200) {
            health += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (latencies, (beats, beats_sent), (health, health_sent))
}

fn report(
    label: &str,
    (latencies, beats, health): (Vec<Duration>, (usize, usize), (usize, usize)),
) {
    println!(
        "{label}: heartbeats answered {}/{} ({}); /healthz answered {}/{}",
        beats.0,
        beats.1,
        percentiles(latencies),
        health.0,
        health.1
    );
}

async fn idle() -> anyhow::Result<()> {
    let w = start("").await;
    let pid = w.pid().expect("running");
    report("no attack", probe(&w, Duration::from_secs(2)).await);
    let before = rss_kib(pid)?;
    let held = attack::idle_connections(addr(&w), 2000).await;
    println!("2,000 idle connections: {} connected", held.len());
    report("  during", probe(&w, Duration::from_secs(5)).await);
    let during = rss_kib(pid)?;
    drop(held);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid)?;
    println!(
        "  RSS before {} during {} after {}",
        mib(before),
        mib(during),
        mib(after)
    );
    Ok(())
}

async fn half_heads() -> anyhow::Result<()> {
    let w = start("").await;
    let pid = w.pid().expect("running");
    let before = rss_kib(pid)?;
    let started = Instant::now();
    let attack = attack::half_heads(addr(&w), 900, 400_000, Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let probed = probe(&w, Duration::from_secs(5)).await;
    let during = rss_kib(pid)?;
    let peak = bgw_e2e::measure::status_kib(pid, "VmHWM:")?;
    println!("900 connections x 400 KB of unfinished headers:");
    report("  during", probed);
    let outcomes = tokio::task::spawn_blocking(move || attack.join().expect("attack")).await?;
    let mut closed: Vec<Duration> = outcomes.iter().filter_map(|o| o.closed_after).collect();
    closed.sort();
    println!(
        "  closed by the watchdog: {}/{} (last after {:.1} s; attack started {:.1} s before the last close)",
        closed.len(),
        outcomes.len(),
        closed.last().map_or(0.0, |d| d.as_secs_f64()),
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid)?;
    println!(
        "  RSS before {} during {} (peak {}) after {}",
        mib(before),
        mib(during),
        mib(peak),
        mib(after)
    );
    Ok(())
}

async fn shutdown() -> anyhow::Result<()> {
    // Long header and body timeouts: only the shutdown deadline (default
    // 10 s) ends what the clients hold.
    let mut w = start("[server]\nheader_timeout = \"60s\"\nbody_timeout = \"60s\"\n").await;
    let heads = attack::half_heads(addr(&w), 500, 4_000, Duration::from_secs(30));
    let mut body = tokio::net::TcpStream::connect(addr(&w)).await?;
    tokio::io::AsyncWriteExt::write_all(
        &mut body,
        format!(
            "POST /api/v1/heartbeat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {BLUE_TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t = Instant::now();
    let code = w.terminate();
    println!(
        "clean shutdown with 500 half-sent heads and a half-sent body held: exit {code:?} after {:.2} s (shutdown_timeout 10s)",
        t.elapsed().as_secs_f64()
    );
    drop(body);
    let _ = tokio::task::spawn_blocking(move || heads.join()).await;
    Ok(())
}
