//! `bgw-checker`, the watcher on the proxy host: every `interval` it probes
//! blue and green directly and through nginx's live and idle ports, checks
//! that each port is served by the color `live_file` says it must be, and
//! sends one report per round to the watchdog.
//!
//! The probing ([`probe`]), the report delivery ([`delivery`]), the schedule
//! of overlapping rounds ([`rounds`]), the settings helpers ([`settings`])
//! and the binary's edge ([`cli`], [`telemetry`]) are also used by
//! `bgw-prober`.

pub mod cli;
pub mod delivery;
pub mod probe;
pub mod round;
pub mod rounds;
pub mod settings;
pub mod telemetry;

use bgw_wire::Report;
use delivery::{Delivery, Endpoint};
use probe::HttpProber;
use round::{Round, Targets};
use rounds::Rounds;
use settings::Settings;
use std::future::Future;
use std::time::Duration;

/// Runs rounds until `shutdown` completes.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let user_agent = format!("bgw-checker/{}", env!("CARGO_PKG_VERSION"));
    let round = Round {
        prober: HttpProber::new(&user_agent)?,
        targets: Targets::from_settings(&settings)?,
        live_file: settings.live_file.clone(),
        timeout: settings.timeout,
        threshold: settings.threshold,
    };
    let endpoint = Endpoint::new(
        &user_agent,
        &settings.watchdog_url,
        settings.token.clone(),
        settings.timeout,
    )?;
    let delivery = Delivery::spawn(endpoint, max_backoff(settings.interval));
    tracing::info!(
        watchdog = %settings.watchdog_url,
        observer = %settings.observer,
        blue = %round.targets.blue,
        green = %round.targets.green,
        live = %round.targets.live,
        idle = %round.targets.idle,
        live_file = %settings.live_file.display(),
        interval = %bgw_wire::format_duration(settings.interval),
        "bgw-checker started"
    );
    let round = std::sync::Arc::new(round);
    let mut rounds = Rounds::new(settings.interval);
    tokio::pin!(shutdown);
    loop {
        let finished = tokio::select! {
            _ = &mut shutdown => break,
            finished = rounds.next(|| {
                let round = round.clone();
                async move { round.run().await }
            }) => finished,
        };
        log_seed_lines!("bgw_checker::probe", &finished.outcome, settings.threshold);
        if finished.newest {
            delivery.submit(Report {
                observer: settings.observer.clone(),
                results: finished.outcome,
            });
        } else {
            tracing::debug!("a newer round was reported already; not sending this one");
        }
    }
    rounds.stop();
    delivery.stop();
    tracing::info!("bgw-checker stopped");
    Ok(())
}

/// Retries while the watchdog is unreachable wait at most one interval
/// (between 250 ms and 30 s): a restarted watchdog hears from the checker
/// and the prober within one period, which is all the time it gives their
/// checks before judging a deadline that passed while it was down.
pub fn max_backoff(interval: Duration) -> Duration {
    interval.clamp(Duration::from_millis(250), Duration::from_secs(30))
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
