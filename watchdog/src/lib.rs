//! The bgw watchdog: receives heartbeats and reports, keeps every check's
//! state and deadline in SQLite, writes the daily log, alerts, and controls
//! the blue/green switch.

pub mod admin_token;
pub mod alarm;
pub mod alerting;
pub mod api;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod event;
pub mod ledger;
pub mod logfile;
pub mod metrics;
pub mod monitor;
pub mod outbox;
pub mod page;
pub mod proxy;
pub mod reports;
pub mod retention;
pub mod rollback;
pub mod rollup;
pub mod schedule;
pub mod server;
pub mod state;
pub mod store;

use anyhow::Context;
use std::future::Future;
use std::sync::Arc;

/// Runs the watchdog until `shutdown` resolves, on the system clock: opens
/// the log dir and the store, syncs the configured checks, starts the
/// monitor and serves the API on `listener`. Returns after a clean shutdown
/// (every acknowledged signal committed, every log line written).
pub async fn run(
    settings: config::Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with(settings, listener, shutdown, clock::Clock::system()).await
}

/// [`run`] on a given clock (tests pass a manual one).
pub async fn run_with(
    mut settings: config::Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    clock: clock::Clock,
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
    let store = store::Store::open_with(&settings.database, settings.durability).await?;
    let now = clock.now();
    let specs: Vec<(check::CheckSpec, state::Rules)> = std::mem::take(&mut settings.checks)
        .into_iter()
        .map(|s| {
            let rules = check::rules_of(&s);
            (s, rules)
        })
        .collect();
    let (loaded, sync_events) = store.sync_checks(&specs, now).await?;
    let check_tokens = specs
        .iter()
        .filter_map(|(s, _)| s.token.as_ref())
        .map(|t| secrecy::ExposeSecret::expose_secret(t).to_string())
        .collect();
    let catalog = Arc::new(check::Catalog::new(
        specs
            .into_iter()
            .zip(&loaded)
            .map(|((spec, rules), l)| check::Entry {
                id: l.id,
                spec,
                rules,
            })
            .collect(),
    ));
    let (log, log_task) = logfile::LogSink::spawn(log);
    for e in sync_events {
        if let Some(line) = e.log_line() {
            log.write(e.at, line).await;
        }
    }
    let notify = settings.notify;
    let flap_window = chrono::TimeDelta::from_std(notify.policy.flap_window).unwrap_or_default();
    let initial = monitor::Initial {
        checks: loaded,
        targets: store.targets().await?,
        control: store.control_state().await?,
        silences: store.silences(now).await?,
        memory: store.flap_memory(now - flap_window).await?,
    };
    let metrics = Arc::new(metrics::Metrics::default());
    let (committed, wake) = tokio::sync::watch::channel(0u64);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (monitor, monitor_task) = monitor::spawn(
        store.clone(),
        catalog.clone(),
        initial,
        monitor::Deps {
            clock: clock.clone(),
            log: log.clone(),
            metrics: metrics.clone(),
            ping_history: settings.ping_history,
            alerting: monitor::Alerting {
                channels: notify.channels.iter().map(|c| c.name()).collect(),
                policy: notify.policy.clone(),
                live_file: Some(settings.proxy.live_file.clone()),
            },
            threshold_ms: settings.probe_threshold_ms,
            fail_after: settings.target_fail_after,
            started: now,
            startup_grace: settings.startup_grace,
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
        store: store.clone(),
        monitor: monitor.clone(),
        metrics: metrics.clone(),
        clock: clock.clone(),
        group_window: notify.policy.group_window,
    };
    background.push(tokio::spawn(
        alarm::StoreAlarm {
            channels: notify.channels.clone(),
            health: monitor.store_health(),
            clock: clock.clone(),
            settle: std::time::Duration::from_secs(2),
        }
        .run(stopped.clone()),
    ));
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
        outbox::Timers {
            store: store.clone(),
            monitor: monitor.clone(),
            clock: clock.clone(),
            repeat: notify.policy.repeat,
            all_is_well: notify.all_is_well,
        },
        stopped.clone(),
    )));
    background.push(tokio::spawn(
        retention::Retention {
            store: store.clone(),
            clock: clock.clone(),
            keep: settings.retention,
            batch: 1000,
            pause: std::time::Duration::from_millis(50),
            every: std::time::Duration::from_secs(3600),
        }
        .run(stopped.clone()),
    ));
    // One switcher per process: the API and the rollback watcher share its lock.
    let switcher = proxy::Switcher::new(settings.proxy.clone())
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    // proxy.mode = "live": nginx must run the live-mode config (written,
    // tested and reloaded only when it differs) and hold the live color.
    let installing = switcher.clone();
    tokio::spawn(async move {
        if let Err(e) = installing.install().await {
            tracing::error!(error = %e, "proxy: live mode is not installed in nginx; switches fail until it is");
        }
    });
    let last_decision = control::watcher::Last::default();
    background.push(tokio::spawn(
        control::watcher::Watcher {
            switcher: switcher.clone(),
            monitor: monitor.clone(),
            settings: settings.rollback.clone(),
            clock: clock.clone(),
            last: last_decision.clone(),
            stopped: stopped.clone(),
        }
        .run(),
    ));
    // Live streams of the status page end when shutdown begins (else the
    // graceful shutdown would wait for them).
    let (page_stop, page_stopping) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = page_stop.send(true);
    };
    let page = page::Page::new(
        settings.status_page.clone(),
        settings.probe_threshold_ms,
        monitor.subscribe(),
        page_stopping,
    );
    let state = api::AppState {
        page,
        switcher,
        rollback: Arc::new(settings.rollback.clone()),
        last_decision,
        monitor,
        store: store.clone(),
        clock,
        metrics,
        admin: admin.clone(),
        failed_auth: Arc::new(api::auth::FailedAuthLimiter::new(
            settings.server.failed_auth_per_second,
        )),
        limiter: Arc::new(api::RateLimiter::new(settings.rate_limit)),
        started: now,
        channels: Arc::new(channel_health),
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
    // Stop the outbox workers, timers and watcher (a send in flight
    // finishes first), then every monitor handle is gone.
    let _ = stop.send(true);
    for task in background {
        let _ = task.await;
    }
    // The router and every monitor handle are gone: the monitor drains its
    // queue, commits, and ends; then the log writer flushes.
    monitor_task.await.context("monitor task panicked")?;
    drop(log);
    log_task.await.context("log writer panicked")?;
    store.close().await;
    tracing::info!("bgw-watchdog stopped cleanly");
    Ok(())
}
