//! `bgw-checker`: flags, settings, logging, then [`bgw_checker::run`] until
//! SIGTERM/SIGINT. Exit 0 after a clean stop, 2 on a bad configuration, 1 on
//! any other failure.

use bgw_checker::settings::{self, Overrides};
use bgw_checker::telemetry::{self, LogFormat};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Probes blue and green directly and through nginx's live and idle ports,
/// checks that each port is served by the right color, and reports every
/// round to the watchdog.
///
/// Every key can be set in the TOML file (`--config`), as an environment
/// variable `BGW_<KEY>` (e.g. `BGW_WATCHDOG_URL`), or as a flag; flags win
/// over the environment, the environment over the file. Durations are
/// written like 500ms, 5s, 10m.
#[derive(Debug, Parser)]
#[command(name = "bgw-checker", version)]
struct Args {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// `watchdog_url`: base URL of the watchdog (required), e.g. http://127.0.0.1:8700.
    #[arg(long, value_name = "URL")]
    watchdog_url: Option<String>,
    /// `token`: bearer token of this reporter's check (or use token_file).
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// `token_file`: file whose first line is the token.
    #[arg(long, value_name = "FILE")]
    token_file: Option<String>,
    /// `observer`: the name this checker reports as [default: checker].
    #[arg(long)]
    observer: Option<String>,
    /// `blue`: direct address of the blue app [default: 127.0.0.1:3000].
    #[arg(long, value_name = "HOST:PORT")]
    blue: Option<String>,
    /// `green`: direct address of the green app [default: 127.0.0.1:3001].
    #[arg(long, value_name = "HOST:PORT")]
    green: Option<String>,
    /// `proxy`: host of the nginx proxy [default: 127.0.0.1].
    #[arg(long, value_name = "HOST")]
    proxy: Option<String>,
    /// `live_listen`: nginx port that serves the live color [default: 80].
    #[arg(long, value_name = "PORT")]
    live_listen: Option<u16>,
    /// `idle_listen`: nginx port that serves the idle color [default: 8080].
    #[arg(long, value_name = "PORT")]
    idle_listen: Option<u16>,
    /// `live_file`: file holding the live color, "blue" or "green" [default: /var/live].
    #[arg(long, value_name = "FILE")]
    live_file: Option<String>,
    /// `path`: path probed on every target [default: /ping].
    #[arg(long)]
    path: Option<String>,
    /// `interval`: time between rounds [default: 5s].
    #[arg(long, value_name = "DURATION")]
    interval: Option<String>,
    /// `timeout`: a probe with no answer within this fails [default: 30s].
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// `threshold`: an answer slower than this fails [default: 2000ms].
    #[arg(long, value_name = "DURATION")]
    threshold: Option<String>,
}

impl Args {
    fn overrides(&self) -> Overrides {
        let mut o = Overrides::default();
        o.set("watchdog_url", self.watchdog_url.clone());
        o.set("token", self.token.clone());
        o.set("token_file", self.token_file.clone());
        o.set("observer", self.observer.clone());
        o.set("blue", self.blue.clone());
        o.set("green", self.green.clone());
        o.set("proxy", self.proxy.clone());
        o.set("live_listen", self.live_listen.map(i64::from));
        o.set("idle_listen", self.idle_listen.map(i64::from));
        o.set("live_file", self.live_file.clone());
        o.set("path", self.path.clone());
        o.set("interval", self.interval.clone());
        o.set("timeout", self.timeout.clone());
        o.set("threshold", self.threshold.clone());
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
    match runtime.block_on(bgw_checker::run(settings, bgw_checker::shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("bgw-checker failed: {e:#}");
            ExitCode::from(1)
        }
    }
}
