//! `bgw-prober`: flags, settings, channels, state directory, logging, then
//! [`bgw_prober::run`] until SIGTERM/SIGINT. Exit 0 after a clean stop, 2 on
//! a bad configuration, 1 on any other failure.

use bgw_notify::Channel;
use bgw_prober::settings::{self, Settings};
use bgw_reporter::cli::{self, Common, Timing};
use bgw_reporter::settings::Overrides;
use bgw_reporter::telemetry;
use clap::Parser;
use std::process::ExitCode;

/// Probes the public endpoint and the watchdog from outside the cluster,
/// reports both to the watchdog, and alerts on its own channels (Slack,
/// email, webhook) when the watchdog stays silent.
///
/// Every key can be set in the TOML file (`--config`), as an environment
/// variable `BGW_<KEY>` (`BGW_SILENCE_AFTER`; `BGW_NOTIFY_SLACK_WEBHOOK_URL`
/// for `[notify.slack] webhook_url`), or as a flag; flags win over the
/// environment, the environment over the file. Durations are written like
/// 500ms, 5s, 10m.
#[derive(Debug, Parser)]
#[command(
    name = "bgw-prober",
    version,
    mut_arg("config", |a| a.help(
        "TOML configuration file (the [notify.slack], [notify.email] and \
         [notify.webhook] sections are set there or by environment)"
    )),
    mut_arg("watchdog_url", |a| a.help(
        "`watchdog_url`: base URL of the watchdog (required); reports go to \
         /api/v1/report and /healthz is probed"
    ))
)]
struct Args {
    #[command(flatten)]
    common: Common,
    /// `observer`: the name this prober reports as [default: prober].
    #[arg(long)]
    observer: Option<String>,
    /// `public_url`: the public endpoint to probe (required), e.g. http://203.0.113.10/ping.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    #[command(flatten)]
    timing: Timing,
    /// `silence_after`: the watchdog silent this long → DOWN watchdog alert [default: 30s].
    #[arg(long, value_name = "DURATION")]
    silence_after: Option<String>,
    /// `state_dir`: holds the outage state and the alert outbox [default: /var/lib/bgw-prober].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<String>,
}

impl Args {
    fn overrides(&self) -> Overrides {
        let mut o = self.common.overrides();
        o.set("observer", self.observer.clone());
        o.set("public_url", self.public_url.clone());
        self.timing.add_to(&mut o);
        o.set("silence_after", self.silence_after.clone());
        o.set("state_dir", self.state_dir.clone());
        o
    }
}

/// Settings, channels and the state directory; an error is a bad
/// configuration.
fn start(args: &Args) -> Result<(Settings, Vec<Channel>, bgw_prober::Durable), String> {
    let settings = settings::load(
        args.common.config.as_deref(),
        std::env::vars(),
        &args.overrides(),
    )
    .map_err(|e| e.to_string())?;
    let n = &settings.notify;
    let channels =
        bgw_notify::build_channels(n.slack.as_ref(), n.email.as_ref(), n.webhook.as_ref())
            .map_err(|e| e.to_string())?;
    if channels.is_empty() {
        tracing::warn!(
            "no [notify.*] channel configured: the prober reports, but cannot alert on its own"
        );
    }
    let durable = bgw_prober::Durable::open(&settings.state_dir).map_err(|e| {
        format!(
            "key `state_dir`: cannot use {}: {e}",
            settings.state_dir.display()
        )
    })?;
    Ok((settings, channels, durable))
}

fn main() -> ExitCode {
    let args = Args::parse();
    telemetry::init(args.common.log_format);
    let run = |(settings, channels, durable), shutdown| {
        bgw_prober::run(settings, channels, durable, shutdown)
    };
    cli::run("bgw-prober", || start(&args), run).map_or_else(
        |failure| {
            tracing::error!("{failure}");
            failure.exit_code()
        },
        |()| ExitCode::SUCCESS,
    )
}
