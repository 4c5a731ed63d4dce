//! Switch benchmark: requests through nginx's live port that fail because of
//! blue/green switches. A real nginx in front of two `bgw-testapp`s; steady
//! load through the live port from
//! - a Rust client opening a new connection per request (GET `/ping` and
//!   POST `/echo`, the echoed body checked),
//! - `wrk` on keep-alive connections (one run GETting `/ping`, one POSTing
//!   to `/echo`),
//! - a Rust client on pooled keep-alive connections (what a typical HTTP
//!   library sees);
//!
//! first for a baseline without switches, then during 50 switches
//! (alternating colors, each verified through the proxy); once per switching
//! mode (`reload`, then `live`), then both side by side. Prints figures;
//! asserts nothing.

use anyhow::{bail, Context};
use bgw_e2e::nginx::Fixture;
use bgw_watchdog::proxy::SwitchMode;
use bgw_wire::Color;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SWITCHES: usize = 50;
const BASELINE: Duration = Duration::from_secs(5);
const NEW_CONN_WORKERS: usize = 8;
const POOLED_WORKERS: usize = 4;
const WRK_CONNECTIONS: usize = 16;

pub async fn run() -> anyhow::Result<()> {
    let testapp = testapp_path()?;
    let mut summaries = Vec::new();
    for mode in [SwitchMode::Reload, SwitchMode::Live] {
        summaries.push(run_mode(&testapp, mode).await?);
    }
    println!(
        "-- switch modes side by side ({SWITCHES} switches each; failed = during minus baseline)"
    );
    println!(
        "   {:<7} {:>13} {:>10} {:>10} {:>15} {:>17} {:>17}",
        "mode",
        "median ms",
        "p95 ms",
        "max ms",
        "new conn failed",
        "wrk k-a failed",
        "pooled failed"
    );
    for s in &summaries {
        println!(
            "   {:<7} {:>13} {:>10} {:>10} {:>15} {:>17} {:>17}",
            s.mode.as_str(),
            s.median_ms,
            s.p95_ms,
            s.max_ms,
            format!("{}/{}", s.new_conn_failed, s.new_conn_total),
            format!("{}/{}", s.wrk_failed, s.wrk_total),
            format!("{}/{}", s.pooled_failed, s.pooled_total),
        );
    }
    Ok(())
}

/// The figures of one mode, for the side-by-side table.
struct Summary {
    mode: SwitchMode,
    median_ms: u128,
    p95_ms: u128,
    max_ms: u128,
    new_conn_failed: u64,
    new_conn_total: u64,
    wrk_failed: u64,
    wrk_total: u64,
    pooled_failed: u64,
    pooled_total: u64,
}

async fn run_mode(testapp: &std::path::Path, mode: SwitchMode) -> anyhow::Result<Summary> {
    let f = Fixture::start_in(testapp, mode).await?;
    let port = f.settings.live_listen;
    println!("== switch (proxy.mode = \"{mode}\"): {SWITCHES} blue/green switches through a real nginx under load");
    println!(
        "   nginx on 127.0.0.1:{port}, worker_shutdown_timeout {}, bodies checked on POST /echo",
        f.settings.worker_shutdown_timeout
    );

    let baseline = measure(port, f.path(), || async {
        tokio::time::sleep(BASELINE).await;
        Ok(Vec::new())
    })
    .await?;
    print_phase(
        &format!("baseline, {}s without switches", BASELINE.as_secs()),
        &baseline,
    );

    let switcher = f.switcher();
    let during = measure(port, f.path(), || async {
        let mut times = Vec::with_capacity(SWITCHES);
        let mut to = Color::Green;
        for _ in 0..SWITCHES {
            let report = switcher.switch(to, "benchmark").await?;
            times.push(report.total);
            to = to.other();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(times)
    })
    .await?;
    let mut times = during.switch_times.clone();
    times.sort();
    let ms = |i: usize| times.get(i).map(|d| d.as_millis()).unwrap_or(0);
    let (median_ms, p95_ms, max_ms) = (
        ms(times.len() / 2),
        ms(times.len() * 95 / 100),
        ms(times.len().saturating_sub(1)),
    );
    let how = match mode {
        SwitchMode::Reload => "render, nginx -t, reload",
        SwitchMode::Live => "live file, PUT to nginx's control location",
    };
    println!(
        "   switch time ({how}, verified through the proxy): median {median_ms} ms, p95 {p95_ms} ms, max {max_ms} ms"
    );
    print_phase(&format!("during {SWITCHES} switches"), &during);
    let summary = Summary {
        mode,
        median_ms,
        p95_ms,
        max_ms,
        new_conn_failed: during
            .new_conn
            .failed
            .saturating_sub(baseline.new_conn.failed),
        new_conn_total: during.new_conn.total,
        wrk_failed: (during.wrk_get.failed() + during.wrk_post.failed())
            .saturating_sub(baseline.wrk_get.failed() + baseline.wrk_post.failed()),
        wrk_total: during.wrk_get.requests + during.wrk_post.requests,
        pooled_failed: during.pooled.failed.saturating_sub(baseline.pooled.failed),
        pooled_total: during.pooled.total,
    };
    println!(
        "   failed because of a switch (during minus baseline): new connections {}, keep-alive wrk {}, keep-alive pooled {}",
        summary.new_conn_failed, summary.wrk_failed, summary.pooled_failed,
    );
    Ok(summary)
}

/// `bgw-testapp` next to this binary (both are built by `cargo build -p bgw-e2e`,
/// in whichever profile: `target/quick/bench` finds `target/quick/bgw-testapp`).
fn testapp_path() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name("bgw-testapp");
    if !path.exists() {
        bail!(
            "{} not found: build it with `cargo build -p bgw-e2e --bin bgw-testapp` (same profile as bench)",
            path.display()
        );
    }
    Ok(path)
}

#[derive(Default, Clone)]
struct Counts {
    total: u64,
    failed: u64,
    errors: BTreeMap<String, u64>,
}

#[derive(Default)]
struct Wrk {
    requests: u64,
    connect: u64,
    read: u64,
    write: u64,
    timeout: u64,
    non_2xx: u64,
}

impl Wrk {
    fn failed(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout + self.non_2xx
    }
}

struct Phase {
    new_conn: Counts,
    pooled: Counts,
    wrk_get: Wrk,
    wrk_post: Wrk,
    switch_times: Vec<Duration>,
    elapsed: Duration,
}

fn print_phase(title: &str, p: &Phase) {
    println!("-- {title} ({:.1}s)", p.elapsed.as_secs_f64());
    let line = |name: &str, c: &Counts| {
        println!("   {name}: {} requests, {} failed", c.total, c.failed);
        for (e, n) in &c.errors {
            println!("      {n} x {e}");
        }
    };
    line(
        &format!(
            "new connection per request (Rust, {NEW_CONN_WORKERS} workers, GET /ping + POST /echo)"
        ),
        &p.new_conn,
    );
    for (name, w) in [("GET /ping", &p.wrk_get), ("POST /echo", &p.wrk_post)] {
        println!(
            "   keep-alive (wrk, {WRK_CONNECTIONS} connections, {name}): {} requests, {} failed (socket errors: connect {}, read {}, write {}, timeout {}; non-2xx {})",
            w.requests, w.failed(), w.connect, w.read, w.write, w.timeout, w.non_2xx
        );
    }
    line(
        &format!("keep-alive (Rust reqwest pool, {POOLED_WORKERS} workers, GET + POST)"),
        &p.pooled,
    );
}

/// Runs the load while `work` runs; returns the counts.
async fn measure<F, Fut>(port: u16, dir: &std::path::Path, work: F) -> anyhow::Result<Phase>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Vec<Duration>>>,
{
    let base = format!("http://127.0.0.1:{port}");
    let stop = Arc::new(AtomicBool::new(false));
    let script = dir.join("post.lua");
    std::fs::write(
        &script,
        "wrk.method = \"POST\"\nwrk.body = \"bgw benchmark body\"\nwrk.headers[\"Content-Type\"] = \"text/plain\"\n",
    )?;
    let wrk_get = start_wrk(&format!("{base}/ping"), None)?;
    let wrk_post = start_wrk(&format!("{base}/echo"), Some(&script))?;

    let new_conn = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()?;
    let pooled = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let new_counts = Arc::new(Mutex::new(Counts::default()));
    let pooled_counts = Arc::new(Mutex::new(Counts::default()));
    let mut tasks = Vec::new();
    for (client, workers, counts, close) in [
        (new_conn, NEW_CONN_WORKERS, new_counts.clone(), true),
        (pooled, POOLED_WORKERS, pooled_counts.clone(), false),
    ] {
        for w in 0..workers {
            tasks.push(tokio::spawn(load(
                client.clone(),
                base.clone(),
                stop.clone(),
                counts.clone(),
                close,
                w,
            )));
        }
    }
    let started = Instant::now();
    let result = work().await;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        let _ = t.await;
    }
    let wrk_get = stop_wrk(wrk_get)?;
    let wrk_post = stop_wrk(wrk_post)?;
    let switch_times = result?;
    let new_conn = new_counts.lock().unwrap().clone();
    let pooled = pooled_counts.lock().unwrap().clone();
    Ok(Phase {
        new_conn,
        pooled,
        wrk_get,
        wrk_post,
        switch_times,
        elapsed,
    })
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// One load worker: alternates GET /ping and POST /echo until `stop`.
async fn load(
    client: reqwest::Client,
    base: String,
    stop: Arc<AtomicBool>,
    counts: Arc<Mutex<Counts>>,
    close: bool,
    worker: usize,
) {
    let mut post = worker % 2 == 1;
    while !stop.load(Ordering::Relaxed) {
        let outcome: Result<(), String> = async {
            let req = if post {
                let body = format!("body {}", SEQ.fetch_add(1, Ordering::Relaxed));
                let resp = with_close(client.post(format!("{base}/echo")), close)
                    .body(body.clone())
                    .send()
                    .await
                    .map_err(describe)?;
                let status = resp.status();
                let text = resp.text().await.map_err(describe)?;
                if !status.is_success() {
                    return Err(format!("POST /echo status {status}"));
                }
                if text != body {
                    return Err("POST /echo answered another body".to_string());
                }
                Ok(())
            } else {
                let resp = with_close(client.get(format!("{base}/ping")), close)
                    .send()
                    .await
                    .map_err(describe)?;
                let status = resp.status();
                let _ = resp.bytes().await.map_err(describe)?;
                if !status.is_success() {
                    return Err(format!("GET /ping status {status}"));
                }
                Ok(())
            };
            req
        }
        .await;
        let mut c = counts.lock().unwrap();
        c.total += 1;
        if let Err(e) = outcome {
            c.failed += 1;
            *c.errors.entry(e).or_default() += 1;
        }
        drop(c);
        post = !post;
    }
}

fn with_close(req: reqwest::RequestBuilder, close: bool) -> reqwest::RequestBuilder {
    if close {
        req.header("Connection", "close")
    } else {
        req
    }
}

/// A short, stable description of a client error (its source chain).
fn describe(e: reqwest::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    let mut text = parts.join(": ");
    text.truncate(160);
    text
}

fn start_wrk(url: &str, script: Option<&std::path::Path>) -> anyhow::Result<Child> {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t1",
        &format!("-c{WRK_CONNECTIONS}"),
        "-d600s",
        "--timeout",
        "10s",
    ]);
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    cmd.arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("start wrk (install it: scripts/install-deps.sh)")
}

/// SIGINT makes wrk stop and print its summary.
fn stop_wrk(child: Child) -> anyhow::Result<Wrk> {
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()?;
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_wrk(&text).with_context(|| format!("cannot read wrk's summary: {text}"))
}

fn parse_wrk(text: &str) -> Option<Wrk> {
    let mut w = Wrk::default();
    let mut seen = false;
    for line in text.lines().map(str::trim) {
        if line.contains(" requests in ") {
            w.requests = line.split_whitespace().next()?.parse().ok()?;
            seen = true;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            for part in rest.split(',') {
                let mut it = part.split_whitespace();
                let (name, n) = (it.next()?, it.next()?.parse().ok()?);
                match name {
                    "connect" => w.connect = n,
                    "read" => w.read = n,
                    "write" => w.write = n,
                    "timeout" => w.timeout = n,
                    _ => {}
                }
            }
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            w.non_2xx = rest.trim().parse().ok()?;
        }
    }
    seen.then_some(w)
}
