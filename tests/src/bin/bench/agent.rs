//! Agent benchmarks. Prints figures; asserts nothing.
//!
//! - Footprint: the `bgw-agent` binary's size, and the resident memory and
//!   CPU time of an agent sending one heartbeat per second (sidecar mode,
//!   probing a real `bgw-testapp`) to an in-process watchdog stand-in that
//!   accepts every heartbeat. Runs 60 s, or `BENCH_AGENT_SECS` seconds.
//! - Crash to Slack: in wrapper mode, the time from the app's crash to the
//!   `DOWN` message at a local Slack receiver, through the real
//!   `bgw-watchdog` with the README's notification defaults (the first alert
//!   of a group never waits for `group_window`), over `BENCH_AGENT_CRASHES`
//!   crashes (default 5).
//!
//! The agent measured is the one next to `bench`, or `BENCH_AGENT_BIN`.
//!
//! Build first: `cargo build --release --workspace --bins` (and, for the
//! small profile's size, `cargo build --profile release-small -p
//! bgw-agent`), then `target/release/bench agent`.

use anyhow::{bail, Context};
use axum::routing::post;
use axum::Router;
use bgw_e2e::slack::SlackReceiver;
use bgw_e2e::watchdog::{spawn_watchdog_with, BLUE_TOKEN};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// CPU and memory of the agent are sampled after this warm-up, so the
/// steady-state figure excludes start-up (TLS roots, first connections).
const WARM_UP: Duration = Duration::from_secs(3);

/// `BENCH_AGENT_CRASHES` (default 5).
pub fn crashes() -> anyhow::Result<usize> {
    match std::env::var("BENCH_AGENT_CRASHES") {
        Ok(v) => v.parse().context("BENCH_AGENT_CRASHES: expected a count"),
        Err(_) => Ok(5),
    }
}

pub async fn run() -> anyhow::Result<()> {
    footprint().await?;
    crash_to_slack("README defaults", "", crashes()?).await
}

async fn footprint() -> anyhow::Result<()> {
    let secs: u64 = match std::env::var("BENCH_AGENT_SECS") {
        Ok(v) => v.parse().context("BENCH_AGENT_SECS: expected seconds")?,
        Err(_) => 60,
    };
    let run_for = Duration::from_secs(secs.max(WARM_UP.as_secs() + 1));
    let dir = std::env::current_exe()?
        .parent()
        .context("bench has no directory")?
        .to_path_buf();
    let agent_bin = agent_bin(&dir)?;
    let testapp_bin = sibling(&dir, "bgw-testapp")?;
    println!("== agent: footprint of bgw-agent with interval 1s (it sends every 0.9 s)");
    println!("   measured: {}", agent_bin.display());
    if let Some(target) = dir.parent() {
        for profile in ["release", "release-small"] {
            let path = target.join(profile).join("bgw-agent");
            if path.exists() {
                print_size(&format!("binary ({profile})"), &path);
            }
        }
    }

    // The watchdog stand-in: accepts and counts heartbeats.
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let app = Router::new().route(
        "/api/v1/heartbeat",
        post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                (
                    axum::http::StatusCode::ACCEPTED,
                    r#"{"state":"up","next_deadline":null}"#,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let watchdog = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let app_port = free_port()?;
    let _testapp = Killed(
        Command::new(&testapp_bin)
            .args(["--listen", &format!("127.0.0.1:{app_port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start bgw-testapp")?,
    );
    let agent = Killed(
        Command::new(&agent_bin)
            .env_clear()
            .env("BGW_TOKEN", "bench-token")
            .args(["--watchdog-url", &format!("http://{watchdog}")])
            .args(["--check", "blue", "--instance", "bench", "--interval", "1s"])
            .args(["--app-url", &format!("http://127.0.0.1:{app_port}/ping")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start bgw-agent")?,
    );
    let pid = agent.0.id();
    let tick = clock_ticks_per_second();

    let started = Instant::now();
    tokio::time::sleep(WARM_UP).await;
    let (cpu_warm, beats_warm) = (cpu_ticks(pid)?, received.load(Ordering::Relaxed));
    let warm_at = Instant::now();
    tokio::time::sleep(run_for.saturating_sub(started.elapsed())).await;
    let (cpu_end, beats_end) = (cpu_ticks(pid)?, received.load(Ordering::Relaxed));
    let steady = warm_at.elapsed();
    let (rss, hwm) = (status_kib(pid, "VmRSS")?, status_kib(pid, "VmHWM")?);

    let total_cpu = Duration::from_secs_f64(cpu_end as f64 / tick);
    let steady_cpu = Duration::from_secs_f64((cpu_end - cpu_warm) as f64 / tick);
    println!(
        "   run: {:.0} s, {beats_end} heartbeats received ({} after warm-up in {:.0} s)",
        started.elapsed().as_secs_f64(),
        beats_end - beats_warm,
        steady.as_secs_f64()
    );
    println!(
        "   RSS: {:.2} MiB at the end, peak {:.2} MiB",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!(
        "   CPU: {} ms in total (user+system), {} ms after warm-up = {:.3}% of one core",
        total_cpu.as_millis(),
        steady_cpu.as_millis(),
        100.0 * steady_cpu.as_secs_f64() / steady.as_secs_f64()
    );
    println!("   (CPU time resolution: {:.0} ms)", 1000.0 / tick);
    Ok(())
}

/// The app's crash (`POST /control/exit?code=1`) → the `DOWN` message at the
/// Slack receiver, through the real watchdog, in wrapper mode, with the
/// README's notification defaults (`policy` empty) or another `[notify]`
/// policy. Each crash is of its own check, so none is judged flapping, and
/// crashes are `group_window` apart, so each is the first of its group: an
/// app that crashes is news, not a follow-up.
pub async fn crash_to_slack(label: &str, policy: &str, crashes: usize) -> anyhow::Result<()> {
    let dir = std::env::current_exe()?
        .parent()
        .context("bench has no directory")?
        .to_path_buf();
    let agent_bin = agent_bin(&dir)?;
    let testapp_bin = sibling(&dir, "bgw-testapp")?;
    sibling(&dir, "bgw-watchdog")?;
    let slack = SlackReceiver::start().await;
    // A 60 s deadline: only the agent's own `fail` can bring the alert early.
    let mut checks = String::new();
    for i in 0..crashes {
        checks.push_str(&format!(
            "[[check]]\nname = \"blue-{i}\"\nkind = \"service\"\ncolor = \"blue\"\n\
             period = \"30s\"\ngrace = \"30s\"\ntoken = \"{BLUE_TOKEN}\"\n"
        ));
    }
    let notify = format!(
        "[notify]\n{policy}\n[notify.slack]\nwebhook_url = \"{}\"\n",
        slack.url()
    );
    let watchdog = spawn_watchdog_with(&checks, &notify).await;
    let mut latencies = Vec::with_capacity(crashes);
    for round in 0..crashes {
        let check = format!("blue-{round}");
        let port = free_port()?;
        let mut agent = Killed(
            Command::new(&agent_bin)
                .env_clear()
                .env("BGW_TOKEN", BLUE_TOKEN)
                .args(["--watchdog-url", &watchdog.base])
                .args(["--check", &check, "--color", "blue", "--instance", "bench"])
                .args(["--interval", "30s"])
                .args(["--app-url", &format!("http://127.0.0.1:{port}/ping")])
                .arg("--")
                .arg(&testapp_bin)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("start bgw-agent")?,
        );
        watchdog.wait_state(&check, "up").await;
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let before = slack.messages().len();
        let crashed = Instant::now();
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/control/exit?code=1"))
            .send()
            .await
            .context("crash the app")?;
        let messages = slack.wait_for(before + 1, Duration::from_secs(20)).await;
        let text = messages[before]["text"].as_str().unwrap_or("");
        if !text.contains("DOWN") {
            bail!("expected a DOWN message, got {text:?}");
        }
        latencies.push(slack.received_at()[before].saturating_duration_since(crashed));
        let _ = agent.0.wait();
    }
    println!(
        "   app crash (wrapper mode) -> Slack DOWN, {label}: {} (the crash request included)",
        bgw_e2e::measure::percentiles(latencies)
    );
    Ok(())
}

fn agent_bin(dir: &Path) -> anyhow::Result<PathBuf> {
    match std::env::var_os("BENCH_AGENT_BIN") {
        Some(path) => Ok(PathBuf::from(path)),
        None => sibling(dir, "bgw-agent"),
    }
}

/// A child killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sibling(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} not found: build it with `cargo build{} --workspace --bins`",
            path.display(),
            match profile(dir) {
                "debug" => "",
                "release" => " --release",
                _ => " --profile <this profile>",
            }
        );
    }
    Ok(path)
}

fn profile(dir: &Path) -> &str {
    dir.file_name().and_then(|n| n.to_str()).unwrap_or("?")
}

fn print_size(label: &str, path: &Path) {
    if let Ok(meta) = std::fs::metadata(path) {
        println!(
            "   {label}: {} bytes = {:.2} MB",
            meta.len(),
            meta.len() as f64 / 1e6
        );
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// utime + stime of `pid` in clock ticks (`/proc/<pid>/stat` fields 14, 15).
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which may hold spaces: state is first.
    let rest = &stat[stat.rfind(')').context("malformed stat")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

/// A `kB` line of `/proc/<pid>/status`.
fn status_kib(pid: u32, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{key}:")))
        .with_context(|| format!("no {key} in /proc/{pid}/status"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("malformed status line")?
        .parse()?)
}

/// `getconf CLK_TCK` (sysconf would need `unsafe`); 100 on Linux in practice.
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
