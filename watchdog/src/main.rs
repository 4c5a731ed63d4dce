//! `bgw-watchdog`: parse flags, load the configuration, run the command,
//! map the result to an exit code. Everything else lives in the library.

use bgw_watchdog::{cli, config};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "bgw-watchdog",
    version,
    about = "Dead-man switch, alerting and blue/green control for services behind nginx",
    long_about = "bgw-watchdog receives heartbeats from bgw-agent, reports from bgw-checker and \
bgw-prober, and healthchecks-style pings; keeps every check's state and deadline in SQLite; \
writes /var/log/challenge/YYYY-MM-DD.log; alerts on missed deadlines and failures; and switches \
nginx between blue and green.\n\nConfiguration: --config FILE (TOML), overridden by BGW_<SECTION>_<KEY> \
environment variables (e.g. BGW_LISTEN, BGW_PROXY_LIVE_FILE), overridden by flags."
)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, short, global = true, env = "BGW_CONFIG")]
    config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t)]
    log_format: bgw_reporter::telemetry::LogFormat,
    /// Admin API of the running watchdog (default: http://<listen>).
    #[arg(long, global = true)]
    url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the watchdog (exits 0 after a clean shutdown on SIGTERM/SIGINT).
    Serve {
        /// Address to listen on (overrides `listen`).
        #[arg(long)]
        listen: Option<String>,
        /// SQLite database, sqlite://PATH (overrides `database`).
        #[arg(long)]
        database: Option<String>,
        /// Directory of the daily log files (overrides `log_dir`).
        #[arg(long)]
        log_dir: Option<PathBuf>,
    },
    /// Validate the configuration and print what would be monitored (exit 2 if invalid).
    CheckConfig,
    /// The status page in the terminal: live color, rollback, every check, targets, recent events.
    Status {
        /// Print the view as JSON (for scripts).
        #[arg(long)]
        json: bool,
        /// Redraw every 2 s until Ctrl-C.
        #[arg(long)]
        watch: bool,
        /// Page of checks (50 a page, worst first).
        #[arg(long, default_value_t = 1)]
        page: usize,
    },
    /// Pause alerting for a check.
    Pause { check: String },
    /// Resume alerting for a check.
    Resume { check: String },
    /// Print the live color, blue or green (exit 1 if undefined).
    Live,
    /// Switch the live color (no argument: the other one); exit 1 refused or failed.
    Toggle {
        /// The color to make live.
        to: Option<bgw_wire::Color>,
        /// Why, for the record (shown in the toggle's event).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Update the image of a color's service; refused (exit 1) when it is LIVE.
    Deploy {
        color: bgw_wire::Color,
        image: String,
    },
    /// Scale a color's service to n replicas.
    Scale { color: bgw_wire::Color, n: u32 },
    /// Show, re-arm or disable the automatic rollback.
    Rollback {
        #[arg(value_parser = ["status", "rearm", "disable"])]
        action: String,
    },
    /// Silence notifications for a check, a color (blue/green) or observer:target.
    Silence {
        target: String,
        /// How long, e.g. 30m, 2h.
        duration: String,
        /// Why (required; shown in `silences` and recorded).
        #[arg(long)]
        reason: String,
    },
    /// List the active silences.
    Silences,
    /// End a silence now.
    Unsilence { id: i64 },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    bgw_reporter::telemetry::init(cli.log_format);
    let overrides = match &cli.command {
        Command::Serve {
            listen,
            database,
            log_dir,
        } => config::Overrides {
            listen: listen.clone(),
            database: database.clone(),
            log_dir: log_dir.clone(),
        },
        _ => config::Overrides::default(),
    };
    let settings = match config::load(cli.config.as_deref(), &overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bgw-watchdog: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli.command, cli.url, settings)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bgw-watchdog: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(
    command: Command,
    url: Option<String>,
    settings: config::Settings,
) -> anyhow::Result<ExitCode> {
    let client = || {
        cli::Client::new(
            &url.clone().unwrap_or_else(|| settings.listen.to_string()),
            cli::admin_token(&settings),
        )
    };
    match command {
        Command::Serve { .. } => {
            let listener = tokio::net::TcpListener::bind(settings.listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
            bgw_watchdog::run(settings, listener, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig => {
            print!("{}", describe(&settings));
            print!(
                "{}",
                bgw_watchdog::proxy::check_mode(&settings.proxy).await.text
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json, watch, page } => {
            let client = client()?;
            let ansi = !json && std::io::IsTerminal::is_terminal(&std::io::stdout());
            loop {
                let out = cli::status_page(&client, page, json, ansi).await?;
                print!("{}{out}", if watch && ansi { "\x1b[2J\x1b[H" } else { "" });
                if !watch {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                    _ = shutdown_signal() => break,
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Pause { check } => {
            print!("{}", cli::pause_resume(&client()?, &check, "pause").await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Resume { check } => {
            print!("{}", cli::pause_resume(&client()?, &check, "resume").await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Live => {
            print!(
                "{}",
                cli::live(&client()?, &settings.proxy.live_file).await?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Toggle { to, reason } => {
            print!("{}", cli::toggle(&client()?, to, reason.as_deref()).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Deploy { color, image } => {
            print!("{}", cli::deploy(&client()?, color, &image).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Scale { color, n } => {
            print!("{}", cli::scale(&client()?, color, n).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Rollback { action } => {
            print!("{}", cli::rollback(&client()?, &action).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Silence {
            target,
            duration,
            reason,
        } => {
            print!(
                "{}",
                cli::silence(&client()?, &target, &duration, &reason).await?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Silences => {
            print!("{}", cli::silences(&client()?).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Unsilence { id } => {
            print!("{}", cli::unsilence(&client()?, id).await?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn describe(s: &config::Settings) -> String {
    let mut out = format!(
        "configuration ok\nlisten: {}\ndatabase: {}\nlog_dir: {}\nadmin API: {}\nchecks: {}\n",
        s.listen,
        s.database,
        s.log_dir.display(),
        if s.admin_token.is_some() {
            "token required"
        } else {
            "generated token (no admin_token): writes need it, reads are open to loopback"
        },
        s.checks.len()
    );
    for c in &s.checks {
        out.push_str(&format!(
            "  - {} ({}): {}\n",
            c.name,
            c.kind.as_str(),
            c.fingerprint()
        ));
    }
    let p = &s.proxy;
    out.push_str(&format!(
        "proxy{}: live_file {}, nginx_conf {}, template {}, live :{} idle :{}, blue {}, green {}\n",
        if s.proxy_configured {
            ""
        } else {
            " (defaults: no [proxy] section)"
        },
        p.live_file.display(),
        p.nginx_conf.display(),
        p.template,
        p.live_listen,
        p.idle_listen,
        p.blue.0.join(","),
        p.green.0.join(","),
    ));
    out.push_str(&format!(
        "  test_cmd: {}\n  reload_cmd: {}\n  deploy_cmd: {}\n  scale_cmd: {}\n",
        p.test_cmd, p.reload_cmd, p.deploy_cmd, p.scale_cmd
    ));
    let r = &s.rollback;
    if r.enabled {
        out.push_str(&format!(
            "rollback: {} within {} of a toggle, quorum {} observers, fail_after {}, cooldown {}, failover {}\n",
            match r.mode {
                bgw_watchdog::rollback::Mode::Auto => "automatic",
                bgw_watchdog::rollback::Mode::DryRun => "dry-run",
            },
            r.window,
            r.quorum,
            r.fail_after,
            r.cooldown,
            if r.failover { "on" } else { "off" },
        ));
    } else {
        out.push_str("rollback: disabled (rollback.enabled = false)\n");
    }
    out
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}
