//! What the `bgw-checker` and `bgw-prober` binaries share at the edge: the
//! flags every reporter takes ([`Common`], [`Timing`]) and the run of a
//! `main` ([`run`]): start on a current-thread runtime, stop on
//! SIGTERM/SIGINT, and map the outcome to the exit code (0 after a clean
//! stop, 2 on a bad configuration, 1 on any other failure).
//!
//! The binaries log the [`Failure`] themselves, so that the line carries
//! their own log target.

use crate::settings::Overrides;
use crate::telemetry::LogFormat;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;

/// The first flags of every reporter (flatten into the binary's `Args`).
#[derive(Debug, clap::Args)]
pub struct Common {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// `watchdog_url`: base URL of the watchdog (required), e.g. http://127.0.0.1:8700.
    #[arg(long, value_name = "URL")]
    pub watchdog_url: Option<String>,
    /// `token`: bearer token of this reporter's check (or use token_file).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// `token_file`: file whose first line is the token.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<String>,
}

impl Common {
    /// The flags given, as overrides of the file and the environment.
    pub fn overrides(&self) -> Overrides {
        let mut o = Overrides::default();
        o.set("watchdog_url", self.watchdog_url.clone());
        o.set("token", self.token.clone());
        o.set("token_file", self.token_file.clone());
        o
    }
}

/// The round timing flags of every reporter.
#[derive(Debug, clap::Args)]
pub struct Timing {
    /// `interval`: time between rounds [default: 5s].
    #[arg(long, value_name = "DURATION")]
    pub interval: Option<String>,
    /// `timeout`: a probe with no answer within this fails [default: 30s].
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// `threshold`: an answer slower than this fails [default: 2000ms].
    #[arg(long, value_name = "DURATION")]
    pub threshold: Option<String>,
}

impl Timing {
    /// Adds the flags given to `o`.
    pub fn add_to(&self, o: &mut Overrides) {
        o.set("interval", self.interval.clone());
        o.set("timeout", self.timeout.clone());
        o.set("threshold", self.threshold.clone());
    }
}

/// Completes on SIGTERM or SIGINT; handed to the binary's `run`.
pub type Shutdown = Pin<Box<dyn Future<Output = ()>>>;

/// Why a binary stopped other than cleanly.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Exit 2.
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{binary} failed: {error:#}")]
    Run {
        binary: &'static str,
        error: anyhow::Error,
    },
}

impl Failure {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Config(_) => ExitCode::from(2),
            Failure::Runtime(_) | Failure::Run { .. } => ExitCode::from(1),
        }
    }
}

/// Prepares with `start` (its error is a bad configuration), then runs
/// `run` on a current-thread runtime until SIGTERM/SIGINT.
pub fn run<T, F>(
    binary: &'static str,
    start: impl FnOnce() -> Result<T, String>,
    run: impl FnOnce(T, Shutdown) -> F,
) -> Result<(), Failure>
where
    F: Future<Output = anyhow::Result<()>>,
{
    let prepared = start().map_err(Failure::Config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::Runtime)?;
    runtime
        .block_on(run(prepared, Box::pin(shutdown_signal())))
        .map_err(|error| Failure::Run { binary, error })
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
