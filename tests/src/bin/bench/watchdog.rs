//! Watchdog benchmarks: acknowledged heartbeats and pings per second over
//! HTTP (wrk, 32 connections, sharing the machine's cores with the
//! watchdog), the time from a deadline to its `down` event, and resident
//! memory and idle CPU with 100,000 checks. Prints figures; asserts nothing.

use anyhow::{bail, Context};
use bgw_e2e::measure::{cpu_time, percentiles, rss_kib};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-token-0123456789";
const ADMIN: &str = "bench-admin-0123456789";
const UUID: &str = "5f0c8a56-1b2c-4d3e-8f90-0123456789ab";

struct Watchdog {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn start(checks: &str, extra: &str) -> anyhow::Result<(Watchdog, Duration)> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = dir.path().join("watchdog.toml");
    std::fs::write(
        &config,
        format!(
            "{extra}\nlisten = \"127.0.0.1:{port}\"\ndatabase = \"sqlite://{db}\"\nlog_dir = \"{log}\"\nadmin_token = \"{ADMIN}\"\n{checks}",
            db = dir.path().join("w.db").display(),
            log = dir.path().join("log").display(),
        ),
    )?;
    let started = Instant::now();
    let child = Command::new(bgw_e2e::bin("bgw-watchdog"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("start bgw-watchdog")?;
    let w = Watchdog {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Ok(r) = http.get(format!("{}/healthz", w.base)).send().await {
            if r.status() == 200 {
                return Ok((w, started.elapsed()));
            }
        }
        if Instant::now() > deadline {
            bail!("watchdog did not start");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn run() -> anyhow::Result<()> {
    println!("== watchdog");
    throughput().await?;
    deadline_latency().await?;
    many_checks(100_000).await?;
    Ok(())
}

struct WrkResult {
    requests_per_sec: f64,
    non_2xx: u64,
    latency: String,
}

fn wrk(url: &str, script: Option<&Path>, secs: u32) -> anyhow::Result<WrkResult> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "-c32", &format!("-d{secs}s"), "--latency"]);
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    let out = cmd
        .arg(url)
        .output()
        .context("run wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("unexpected wrk output:\n{text}"))?;
    let non_2xx = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut latency = String::new();
    for q in ["50%", "99%"] {
        if let Some(v) = text.lines().find_map(|l| l.trim().strip_prefix(q)) {
            let _ = write!(latency, "p{} {} ", q.trim_end_matches('%'), v.trim());
        }
    }
    Ok(WrkResult {
        requests_per_sec: rps,
        non_2xx,
        latency,
    })
}

async fn metric(base: &str, name: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .with_context(|| format!("no metric {name}"))
}

async fn throughput() -> anyhow::Result<()> {
    let checks = format!(
        "[[check]]\nname = \"svc\"\nkind = \"service\"\nperiod = \"1h\"\ngrace = \"1h\"\ntoken = \"{TOKEN}\"\n\
         [[check]]\nname = \"job\"\nkind = \"heartbeat\"\nuuid = \"{UUID}\"\nperiod = \"1h\"\ngrace = \"1h\"\n"
    );
    for durability in ["fsync", "os"] {
        let (w, _) = start(
            &checks,
            &format!("rate_limit = 0\ndurability = \"{durability}\""),
        )
        .await?;
        println!("   durability = \"{durability}\":");
        throughput_of(&w).await?;
    }
    Ok(())
}

async fn throughput_of(w: &Watchdog) -> anyhow::Result<()> {
    let script = w._dir.path().join("heartbeat.lua");
    std::fs::write(
        &script,
        format!(
            r#"wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {TOKEN}"
local n = 0
request = function()
  n = n + 1
  local body = string.format('{{"check":"svc","instance":"i%d","status":"ok","seq":%d}}', n % 32, n)
  return wrk.format("POST", "/api/v1/heartbeat", nil, body)
end
"#
        ),
    )?;
    let secs = 10;
    let cpu0 = cpu_time(w.child.id())?;
    let hb = wrk(&format!("{}/api/v1/heartbeat", w.base), Some(&script), secs)?;
    let acked = metric(&w.base, "bgw_heartbeats_received_total").await?;
    let batches = metric(&w.base, "bgw_commit_batches_total").await?;
    let syncs = metric(&w.base, "bgw_wal_syncs_total").await?;
    let cpu = cpu_time(w.child.id())? - cpu0;
    println!(
        "   heartbeats (POST /api/v1/heartbeat, 32 connections, {secs}s): {:.0}/s acknowledged ({} non-2xx); latency {}; {:.0} heartbeats in {:.0} commits ({:.1} per commit), {:.0} WAL fsyncs; watchdog CPU {:.0}% of one core",
        hb.requests_per_sec, hb.non_2xx, hb.latency, acked, batches, acked / batches.max(1.0), syncs,
        cpu.as_secs_f64() / f64::from(secs) * 100.0
    );
    let ping = wrk(&format!("{}/ping/{UUID}", w.base), None, secs)?;
    println!(
        "   pings (GET /ping/<uuid>, 32 connections, {secs}s): {:.0}/s ({} non-2xx); latency {}",
        ping.requests_per_sec, ping.non_2xx, ping.latency
    );
    Ok(())
}

/// 2,000 checks each heartbeated once, with period 1s and grace 0: each
/// goes down at its own deadline. The gap between the deadline (the event's
/// `at`) and when the scheduler recorded it (`noticed_at`) is the latency.
async fn deadline_latency() -> anyhow::Result<()> {
    let n = 2000;
    let mut checks = String::new();
    for i in 0..n {
        let _ = writeln!(
            checks,
            "[[check]]\nname = \"c{i}\"\nkind = \"service\"\nperiod = \"1s\"\ngrace = \"0s\"\ntoken = \"{TOKEN}\""
        );
    }
    let (w, _) = start(&checks, "rate_limit = 0").await?;
    let http = reqwest::Client::new();
    for i in 0..n {
        let r = http
            .post(format!("{}/api/v1/heartbeat", w.base))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"check": format!("c{i}"), "instance": "a", "status": "ok"}))
            .send()
            .await?;
        if r.status() != 202 {
            bail!("heartbeat answered {}", r.status());
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut lags = Vec::new();
    let mut since = 0i64;
    loop {
        let v: serde_json::Value = http
            .get(format!(
                "{}/api/v1/events?since={since}&limit=10000",
                w.base
            ))
            .bearer_auth(ADMIN)
            .send()
            .await?
            .json()
            .await?;
        let events = v["events"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            break;
        }
        for e in &events {
            since = e["id"].as_i64().unwrap_or(since);
            if e["kind"] == "state" && e["to"] == "down" {
                let at = chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap_or(""))?;
                let noticed =
                    chrono::DateTime::parse_from_rfc3339(e["noticed_at"].as_str().unwrap_or(""))?;
                lags.push((noticed - at).to_std().unwrap_or_default());
            }
        }
    }
    println!(
        "   deadline -> down event ({n} checks, period 1s, grace 0): {}",
        percentiles(lags)
    );
    Ok(())
}

async fn many_checks(n: usize) -> anyhow::Result<()> {
    let mut checks = String::with_capacity(n * 100);
    for i in 0..n {
        let _ = writeln!(
            checks,
            "[[check]]\nname = \"c{i}\"\nkind = \"reporter\"\nperiod = \"1h\"\ngrace = \"1h\"\ntoken = \"reporter-token-{i:06}\""
        );
    }
    let (w, startup) = start(&checks, "").await?;
    let pid = w.child.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu0 = cpu_time(pid)?;
    let idle = Duration::from_secs(10);
    tokio::time::sleep(idle).await;
    let cpu = cpu_time(pid)? - cpu0;
    let rss = rss_kib(pid)?;
    println!(
        "   {n} checks: first start (sync into SQLite) {:.1}s; resident memory {:.0} MiB; idle CPU {:.2}% over {}s",
        startup.as_secs_f64(),
        rss as f64 / 1024.0,
        cpu.as_secs_f64() / idle.as_secs_f64() * 100.0,
        idle.as_secs()
    );
    Ok(())
}
