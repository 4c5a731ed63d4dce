//! Status page benchmark: the page's size with the README's example and with
//! 10,000 checks (paginated), and the heartbeat ingest rate with and without
//! 100 open live streams (`/events/stream`). Prints figures; asserts nothing.

use anyhow::Context;
use bgw_e2e::watchdog::{default_checks, spawn_watchdog_with, BLUE_TOKEN};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn run() -> anyhow::Result<()> {
    println!("== status page ==");
    let w = spawn_watchdog_with(&default_checks("5s", "5s"), "").await;
    let http = reqwest::Client::new();
    let size = |path: String| {
        let http = http.clone();
        async move {
            let start = Instant::now();
            let body = http.get(path).send().await?.bytes().await?;
            anyhow::Ok((body.len(), start.elapsed()))
        }
    };
    let (n, t) = size(format!("{}/", w.base)).await?;
    println!("README example (3 checks): GET / {n} bytes in {t:?}");

    let many: String = (0..10_000)
        .map(|i| {
            format!(
                "[[check]]\nname = \"job-{i:05}\"\nkind = \"heartbeat\"\nuuid = \"00000000-0000-4000-8000-{i:012}\"\nperiod = \"1h\"\n"
            )
        })
        .collect();
    let big = spawn_watchdog_with(&many, "").await;
    for path in ["/", "/?page=100", "/status.json"] {
        tokio::time::sleep(Duration::from_millis(600)).await; // past the shared facts' freshness
        let (n, cold) = size(format!("{}{path}", big.base)).await?;
        let (_, warm) = size(format!("{}{path}", big.base)).await?;
        println!("10,000 checks: GET {path} {n} bytes, {cold:?} gathering the facts, {warm:?} from the shared facts");
    }
    drop(big);

    let rate = heartbeat_rate(&w.base, Duration::from_secs(5)).await?;
    println!("heartbeats acknowledged, no stream open: {rate:.0}/s (16 concurrent clients)");
    let bytes = Arc::new(AtomicU64::new(0));
    let mut streams = Vec::new();
    for _ in 0..100 {
        let resp = http
            .get(format!("{}/events/stream", w.base))
            .send()
            .await
            .context("open a stream")?;
        let bytes = bytes.clone();
        streams.push(tokio::spawn(async move {
            let mut resp = resp;
            while let Ok(Some(chunk)) = resp.chunk().await {
                bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = bytes.load(Ordering::Relaxed);
    let rate = heartbeat_rate(&w.base, Duration::from_secs(5)).await?;
    let sent = bytes.load(Ordering::Relaxed) - before;
    println!(
        "heartbeats acknowledged, 100 streams open: {rate:.0}/s; the streams received {:.0} KiB/s in all",
        sent as f64 / 1024.0 / 5.0
    );
    for s in streams {
        s.abort();
    }
    Ok(())
}

async fn heartbeat_rate(base: &str, for_: Duration) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..16 {
        let (done, url) = (done.clone(), format!("{base}/api/v1/heartbeat"));
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut seq = 0u64;
            while start.elapsed() < for_ {
                seq += 1;
                let ok = http
                    .post(&url)
                    .bearer_auth(BLUE_TOKEN)
                    .json(
                        &serde_json::json!({"check": "blue", "instance": format!("i{c}"),
                        "color": "blue", "version": "1.0.4", "status": "ok", "seq": seq}),
                    )
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() == 202);
                if ok {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}
