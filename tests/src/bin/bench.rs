//! Benchmarks that print figures (see the README's "Performance" section).
//! `bench` runs them all; `bench <name>...` runs some:
//! `watchdog`, `alerts`, `notify`, `agent`, `prober`, `switch`, `rollback`,
//! `attack`, `page`. Build with `cargo build --release --workspace --bins`
//! (or `--profile quick`) first: the benchmarks start the binaries next to
//! this one (`target/release/` or `target/quick/`).

#[path = "bench/agent.rs"]
mod agent;
#[path = "bench/alerts.rs"]
mod alerts;
#[path = "bench/attack.rs"]
mod attack;
#[path = "bench/notify.rs"]
mod notify;
#[path = "bench/page.rs"]
mod page;
#[path = "bench/prober.rs"]
mod prober;
#[path = "bench/rollback.rs"]
mod rollback;
#[path = "bench/switch.rs"]
mod switch;
#[path = "bench/watchdog.rs"]
mod watchdog;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let only: Vec<String> = std::env::args().skip(1).collect();
    let wants = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    if wants("watchdog") {
        watchdog::run().await?;
    }
    if wants("alerts") {
        alerts::run().await?;
    }
    if wants("notify") {
        notify::run().await?;
    }
    if wants("agent") {
        agent::run().await?;
    }
    if wants("prober") {
        prober::run().await?;
    }
    if wants("switch") {
        switch::run().await?;
    }
    if wants("rollback") {
        rollback::run().await?;
    }
    if wants("attack") {
        attack::run().await?;
    }
    if wants("page") {
        page::run().await?;
    }
    Ok(())
}
