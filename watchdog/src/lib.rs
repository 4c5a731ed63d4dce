//! The bgw watchdog: receives heartbeats and reports, keeps every check's
//! state and deadline in SQLite, writes the daily log, alerts, and controls
//! the blue/green switch.

pub mod api;
pub mod cli;
pub mod config;
pub mod control;
pub mod logfile;
pub mod metrics;
pub mod monitor;
pub mod proxy;
pub mod reports;
pub mod rollback;
pub mod schedule;
pub mod state;
pub mod store;

use anyhow::Context;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// Runs the watchdog until `shutdown` resolves: opens the log dir and the
/// store, syncs the configured checks, starts the monitor and serves the API
/// on `listener`. Returns after a clean shutdown (every acknowledged signal
/// committed, every log line written).
pub async fn run(
    settings: config::Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let log = logfile::DailyLog::open(&settings.log_dir).context("cannot use log_dir")?;
    let pool = store::open(&settings.database).await?;
    let now = chrono::Utc::now();
    let specs: Vec<(config::CheckSpec, state::Rules)> = settings
        .checks
        .iter()
        .map(|s| (s.clone(), monitor::rules_of(s)))
        .collect();
    let (loaded, sync_events) = store::sync_checks(&pool, &specs, now).await?;
    let catalog = Arc::new(monitor::Catalog::new(
        specs
            .into_iter()
            .zip(&loaded)
            .map(|((spec, rules), l)| monitor::Entry {
                id: l.id,
                spec,
                rules,
            })
            .collect(),
    ));
    let (log, log_task) = logfile::LogSink::spawn(log);
    for e in &sync_events {
        if let Some(line) = monitor::log_line(e) {
            log.write(e.at, line).await;
        }
    }
    let metrics = Arc::new(metrics::Metrics::default());
    let committed = Arc::new(tokio::sync::Notify::new());
    let (monitor, monitor_task) = monitor::spawn(
        pool.clone(),
        catalog.clone(),
        loaded,
        monitor::Hooks {
            log: log.clone(),
            metrics: metrics.clone(),
            ping_history: settings.ping_history,
            committed: committed.clone(),
        },
    );
    let state = api::AppState {
        monitor,
        pool: pool.clone(),
        metrics,
        admin_token: settings.admin_token.map(Arc::new),
        limiter: Arc::new(api::RateLimiter::new(settings.rate_limit)),
        started: now,
    };
    tracing::info!(
        listen = %listener.local_addr()?,
        checks = catalog.checks.len(),
        database = %settings.database,
        log_dir = %settings.log_dir.display(),
        "bgw-watchdog serving"
    );
    axum::serve(
        listener,
        api::router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("HTTP server failed")?;
    // The router and every monitor handle are gone: the monitor drains its
    // queue, commits, and ends; then the log writer flushes.
    monitor_task.await.context("monitor task panicked")?;
    drop(log);
    log_task.await.context("log writer panicked")?;
    pool.close().await;
    tracing::info!("bgw-watchdog stopped cleanly");
    Ok(())
}
