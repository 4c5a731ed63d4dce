//! `bgw-prober`: flags, settings, channels, state directory, logging, then
//! [`bgw_prober::run`] until SIGTERM/SIGINT. Exit 0 after a clean stop, 2 on
//! a bad configuration, 1 on any other failure.

use bgw_checker::settings::Overrides;
use bgw_checker::telemetry::{self, LogFormat};
use bgw_prober::settings;
use clap::Parser;
use std::path::PathBuf;
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
#[command(name = "bgw-prober", version)]
struct Args {
    /// TOML configuration file (the [notify.slack], [notify.email] and
    /// [notify.webhook] sections are set there or by environment).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// `watchdog_url`: base URL of the watchdog (required); reports go to
    /// /api/v1/report and /healthz is probed.
    #[arg(long, value_name = "URL")]
    watchdog_url: Option<String>,
    /// `token`: bearer token of this reporter's check (or use token_file).
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// `token_file`: file whose first line is the token.
    #[arg(long, value_name = "FILE")]
    token_file: Option<String>,
    /// `observer`: the name this prober reports as [default: prober].
    #[arg(long)]
    observer: Option<String>,
    /// `public_url`: the public endpoint to probe (required), e.g. http://203.0.113.10/ping.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// `interval`: time between rounds [default: 5s].
    #[arg(long, value_name = "DURATION")]
    interval: Option<String>,
    /// `timeout`: a probe with no answer within this fails [default: 30s].
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// `threshold`: an answer slower than this fails [default: 2000ms].
    #[arg(long, value_name = "DURATION")]
    threshold: Option<String>,
    /// `silence_after`: the watchdog silent this long → DOWN watchdog alert [default: 30s].
    #[arg(long, value_name = "DURATION")]
    silence_after: Option<String>,
    /// `state_dir`: holds the outage state and the alert outbox [default: /var/lib/bgw-prober].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<String>,
}

impl Args {
    fn overrides(&self) -> Overrides {
        let mut o = Overrides::default();
        o.set("watchdog_url", self.watchdog_url.clone());
        o.set("token", self.token.clone());
        o.set("token_file", self.token_file.clone());
        o.set("observer", self.observer.clone());
        o.set("public_url", self.public_url.clone());
        o.set("interval", self.interval.clone());
        o.set("timeout", self.timeout.clone());
        o.set("threshold", self.threshold.clone());
        o.set("silence_after", self.silence_after.clone());
        o.set("state_dir", self.state_dir.clone());
        o
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    telemetry::init(args.log_format);
    let settings = match settings::load(args.config.as_deref(), std::env::vars(), &args.overrides())
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let n = &settings.notify;
    let channels =
        match bgw_notify::build_channels(n.slack.as_ref(), n.email.as_ref(), n.webhook.as_ref()) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("invalid configuration: {e}");
                return ExitCode::from(2);
            }
        };
    if channels.is_empty() {
        tracing::warn!(
            "no [notify.*] channel configured: the prober reports, but cannot alert on its own"
        );
    }
    let durable = match bgw_prober::Durable::open(&settings.state_dir) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(
                "invalid configuration: key `state_dir`: cannot use {}: {e}",
                settings.state_dir.display()
            );
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let shutdown = bgw_checker::shutdown_signal();
    match runtime.block_on(bgw_prober::run(settings, channels, durable, shutdown)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("bgw-prober failed: {e:#}");
            ExitCode::from(1)
        }
    }
}
