//! `bgw-checker`, the watcher on the proxy host: every `interval` it probes
//! blue and green directly and through nginx's live and idle ports, checks
//! that each port is served by the color `live_file` says it must be, and
//! sends one report per round to the watchdog.
//!
//! What is the checker's own is here: its round ([`round`]) and its
//! settings ([`settings`]). The probe, the rounds scheduler, the report
//! delivery, the live file reader and the binary's edge come from
//! `bgw-reporter`, shared with `bgw-prober`.

pub mod round;
pub mod settings;

use bgw_reporter::delivery::{max_backoff, Delivery, Endpoint};
use bgw_reporter::probe::HttpProber;
use bgw_reporter::rounds::Rounds;
use bgw_wire::Report;
use round::{Round, Targets};
use settings::Settings;
use std::future::Future;

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
        bgw_reporter::log_seed_lines!("bgw_checker::probe", &finished.outcome, settings.threshold);
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
