//! Benchmarks that print figures (see the README's "Performance" section).
//! `bench` runs them all; `bench <name>` runs one (`switch`, `prober`).

#[path = "bench/prober.rs"]
mod prober;
#[path = "bench/switch.rs"]
mod switch;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let only = std::env::args().nth(1);
    let wants = |name: &str| match &only {
        None => true,
        Some(o) => o == name,
    };
    if wants("switch") {
        switch::run().await?;
    }
    if wants("prober") {
        prober::run().await?;
    }
    Ok(())
}
