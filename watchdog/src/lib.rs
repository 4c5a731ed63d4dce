//! The bgw watchdog: receives heartbeats and reports, keeps every check's
//! state and deadline in SQLite, writes the daily log, alerts, and controls
//! the blue/green switch.

pub mod admin_token;
pub mod alerting;
pub mod api;
pub mod cli;
pub mod config;
pub mod control;
pub mod logfile;
pub mod metrics;
pub mod monitor;
pub mod observers;
pub mod outbox;
pub mod proxy;
pub mod reports;
pub mod rollback;
pub mod schedule;
pub mod server;
pub mod state;
pub mod store;

use anyhow::Context;
use std::future::Future;
use std::sync::Arc;

/// Runs the watchdog until `shutdown` resolves: opens the log dir and the
/// store, syncs the configured checks, starts the monitor and serves the API
/// on `listener`. Returns after a clean shutdown (every acknowledged signal
/// committed, every log line written).
pub async fn run(
    mut settings: config::Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let nofile = server::raise_nofile_limit();
    let limits = server::ConnLimits::new(&settings.server, nofile);
    let admin = Arc::new(match settings.admin_token.take() {
        Some(t) => api::auth::AdminAuth::configured(t),
        None => api::auth::AdminAuth::generated(admin_token::load_or_create(
            &admin_token::path_for(&settings.database),
        )?),
    });
    let log = logfile::DailyLog::open(&settings.log_dir).context("cannot use log_dir")?;
    let pool = store::open_with(&settings.database, settings.durability).await?;
    let now = chrono::Utc::now();
    let specs: Vec<(config::CheckSpec, state::Rules)> = std::mem::take(&mut settings.checks)
        .into_iter()
        .map(|s| {
            let rules = monitor::rules_of(&s);
            (s, rules)
        })
        .collect();
    let (loaded, sync_events) = store::sync_checks(&pool, &specs, now).await?;
    let check_tokens = specs
        .iter()
        .filter_map(|(s, _)| s.token.as_ref())
        .map(|t| secrecy::ExposeSecret::expose_secret(t).to_string())
        .collect();
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
    for e in sync_events {
        if let Some(line) = monitor::log_line(&e) {
            log.write(e.at, line).await;
        }
    }
    let metrics = Arc::new(metrics::Metrics::default());
    let (committed, wake) = tokio::sync::watch::channel(0u64);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let notify = settings.notify;
    let planner = outbox::Planner {
        channels: notify.channels.iter().map(|c| c.name()).collect(),
        policy: notify.policy.clone(),
        live_file: Some(settings.proxy.live_file.clone()),
        started: now,
        hold_after_start: settings.startup_grace,
    };
    let (monitor, monitor_task) = monitor::spawn(
        pool.clone(),
        catalog.clone(),
        loaded,
        monitor::Hooks {
            log: log.clone(),
            metrics: metrics.clone(),
            ping_history: settings.ping_history,
            planner: Some(planner),
            committed,
            wal: match settings.durability {
                store::Durability::Fsync => Some(
                    store::wal_file(&settings.database)
                        .context("cannot open the database's write-ahead log")?,
                ),
                store::Durability::Os => None,
            },
        },
    );
    let mut background = Vec::new();
    let mut channel_health = Vec::new();
    let delivery = outbox::Delivery {
        pool: pool.clone(),
        monitor: monitor.clone(),
        metrics: metrics.clone(),
        group_window: notify.policy.group_window,
    };
    for channel in notify.channels {
        let health = Arc::new(outbox::ChannelHealth {
            name: channel.name(),
            ..Default::default()
        });
        channel_health.push(health.clone());
        background.push(tokio::spawn(outbox::run_channel(
            delivery.clone(),
            channel,
            health,
            wake.clone(),
            stopped.clone(),
        )));
    }
    drop(delivery);
    background.push(tokio::spawn(outbox::run_timers(
        pool.clone(),
        monitor.clone(),
        notify.policy.repeat,
        notify.all_is_well,
        stopped.clone(),
    )));
    let observers = Arc::new(
        observers::Observers::load(
            pool.clone(),
            log.clone(),
            settings.probe_threshold_ms,
            settings.target_fail_after,
        )
        .await?,
    );
    // One switcher per process: the API and the rollback watcher share its lock.
    let switcher = proxy::Switcher::new(settings.proxy.clone())
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    let control = Arc::new(control::watcher::Shared::default());
    background.push(tokio::spawn(
        control::watcher::Watcher {
            switcher: switcher.clone(),
            pool: pool.clone(),
            monitor: monitor.clone(),
            observers: observers.clone(),
            settings: settings.rollback.clone(),
            startup_grace: settings.startup_grace,
            started: now,
            shared: control.clone(),
            committed: wake.clone(),
            stopped: stopped.clone(),
        }
        .run(),
    ));
    let state = api::AppState {
        switcher,
        rollback: Arc::new(settings.rollback.clone()),
        control,
        monitor,
        pool: pool.clone(),
        metrics,
        admin: admin.clone(),
        failed_auth: Arc::new(api::auth::FailedAuthLimiter::new(
            settings.server.failed_auth_per_second,
        )),
        limiter: Arc::new(api::RateLimiter::new(settings.rate_limit)),
        started: now,
        channels: Arc::new(channel_health),
        observers,
    };
    tracing::info!(
        listen = %listener.local_addr()?,
        checks = catalog.checks.len(),
        database = %settings.database,
        log_dir = %settings.log_dir.display(),
        max_connections = limits.general + limits.reserve,
        reserved_connections = limits.reserve,
        open_files = nofile,
        "bgw-watchdog serving"
    );
    server::serve(
        listener,
        api::router(state),
        settings.server.clone(),
        limits,
        api::auth::privileged(admin, check_tokens),
        Arc::default(),
        shutdown,
    )
    .await;
    // Stop the outbox workers and timers (a send in flight finishes first),
    // then every monitor handle is gone.
    let _ = stop.send(true);
    for task in background {
        let _ = task.await;
    }
    // The router and every monitor handle are gone: the monitor drains its
    // queue, commits, and ends; then the log writer flushes.
    monitor_task.await.context("monitor task panicked")?;
    drop(log);
    log_task.await.context("log writer panicked")?;
    pool.close().await;
    tracing::info!("bgw-watchdog stopped cleanly");
    Ok(())
}
