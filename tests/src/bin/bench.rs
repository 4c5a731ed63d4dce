//! Benchmarks that print figures (see the README's "Performance" section).

#[path = "bench/notify.rs"]
mod notify;

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(notify::run())
}
