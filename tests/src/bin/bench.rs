//! Benchmarks that print figures (see the README's "Performance" section).

#[path = "bench/prober.rs"]
mod prober;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    prober::run().await?;
    Ok(())
}
