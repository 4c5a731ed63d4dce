//! `bgw-agent`: probes its app locally and sends dead-man heartbeats to the
//! bgw watchdog, beside the app (sidecar) or as its entrypoint (wrapper).
//! This file only parses the command line, loads the settings, runs the agent
//! on a current-thread runtime and maps the outcome to an exit code.

mod args;
mod child;
mod log;
mod probe;
mod run;
mod sender;
mod settings;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match args::parse(std::env::args_os().skip(1)) {
        Ok(args::Invocation::Run(args)) => args,
        Ok(args::Invocation::Help) => {
            print!("{}", args::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(args::Invocation::Version) => {
            println!("bgw-agent {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            log::error(e);
            return ExitCode::from(2);
        }
    };
    let settings = match settings::load(args.config.as_deref(), &args.flags) {
        Ok(s) => s,
        Err(e) => {
            log::error(e);
            return ExitCode::from(2);
        }
    };
    log::init(settings.log_format);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error(format!("cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run::run(settings, args.command));
    // Do not wait for a resolver thread stuck on a dead DNS server.
    runtime.shutdown_background();
    ExitCode::from(code.clamp(0, 255) as u8)
}
