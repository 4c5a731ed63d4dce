//! `bgw-checker`: flags, settings, logging, then [`bgw_checker::run`] until
//! SIGTERM/SIGINT. Exit 0 after a clean stop, 2 on a bad configuration, 1 on
//! any other failure.

use bgw_checker::settings;
use bgw_reporter::cli::{self, Common, Timing};
use bgw_reporter::settings::Overrides;
use bgw_reporter::telemetry;
use clap::Parser;
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
    #[command(flatten)]
    common: Common,
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
    #[command(flatten)]
    timing: Timing,
}

impl Args {
    fn overrides(&self) -> Overrides {
        let mut o = self.common.overrides();
        o.set("observer", self.observer.clone());
        o.set("blue", self.blue.clone());
        o.set("green", self.green.clone());
        o.set("proxy", self.proxy.clone());
        o.set("live_listen", self.live_listen.map(i64::from));
        o.set("idle_listen", self.idle_listen.map(i64::from));
        o.set("live_file", self.live_file.clone());
        o.set("path", self.path.clone());
        self.timing.add_to(&mut o);
        o
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    telemetry::init(args.common.log_format);
    let start = || {
        settings::load(
            args.common.config.as_deref(),
            std::env::vars(),
            &args.overrides(),
        )
        .map_err(|e| e.to_string())
    };
    cli::run("bgw-checker", start, bgw_checker::run).map_or_else(
        |failure| {
            tracing::error!("{failure}");
            failure.exit_code()
        },
        |()| ExitCode::SUCCESS,
    )
}
