//! The command line, parsed by hand (no clap: the agent stays small).
//!
//! `bgw-agent [--config FILE] [--KEY VALUE | --KEY=VALUE]... [-- COMMAND ARGS...]`.
//! Each key flag maps to one configuration key; the layering (flags over env
//! over file) happens in [`crate::settings`].

use std::ffi::OsString;
use std::path::PathBuf;

/// Flag name → configuration key. `--version` prints the agent's version, so
/// the `version` key (the app's version) is `--app-version`.
pub const FLAGS: &[(&str, &str)] = &[
    ("--watchdog-url", "watchdog_url"),
    ("--check", "check"),
    ("--token", "token"),
    ("--token-file", "token_file"),
    ("--color", "color"),
    ("--app-version", "version"),
    ("--instance", "instance"),
    ("--interval", "interval"),
    ("--app-url", "app_url"),
    ("--timeout", "timeout"),
    ("--log-format", "log_format"),
];

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    Help,
    Version,
    Run(Args),
}

/// A run: the config file, the keys set by flags, and the app to wrap (empty
/// in sidecar mode).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub config: Option<PathBuf>,
    pub flags: Vec<(&'static str, String)>,
    pub command: Vec<OsString>,
}

/// A usage error; the message never echoes a flag's value (it may be a token).
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (see bgw-agent --help)", self.0)
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, UsageError> {
    let mut out = Args::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            out.command = args.collect();
            if out.command.is_empty() {
                return Err(UsageError(
                    "`--` must be followed by the app's command".into(),
                ));
            }
            break;
        }
        let Some(arg) = arg.to_str() else {
            return Err(UsageError(format!(
                "unexpected argument {arg:?}; put the app's command after `--`"
            )));
        };
        match arg {
            "-h" | "--help" => return Ok(Invocation::Help),
            "-V" | "--version" => return Ok(Invocation::Version),
            _ => {}
        }
        if !arg.starts_with("--") {
            return Err(UsageError(format!(
                "unexpected argument `{arg}`; put the app's command after `--`"
            )));
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (arg, None),
        };
        let key = match name {
            "--config" => None,
            _ => Some(
                FLAGS
                    .iter()
                    .find(|(flag, _)| *flag == name)
                    .map(|(_, key)| *key)
                    .ok_or_else(|| UsageError(format!("unknown flag `{name}`")))?,
            ),
        };
        let value = match inline {
            Some(v) => v,
            None => args
                .next()
                .and_then(|v| v.into_string().ok())
                .ok_or_else(|| UsageError(format!("flag `{name}` needs a value")))?,
        };
        match key {
            None => out.config = Some(PathBuf::from(value)),
            Some(key) => out.flags.push((key, value)),
        }
    }
    Ok(Invocation::Run(out))
}

/// `--help`: every key, both modes, what is sent when.
pub const HELP: &str = "\
bgw-agent: probes its app locally and sends dead-man heartbeats to the bgw watchdog

USAGE:
    bgw-agent [--config FILE] [FLAGS]                  sidecar mode
    bgw-agent [--config FILE] [FLAGS] -- COMMAND ARGS  wrapper mode

MODES:
    sidecar  Without a command the agent runs beside the app. Every `interval`
             it probes `app_url` and sends a heartbeat: `ok`, or `fail` with the
             reason. On SIGTERM/SIGINT it sends `stopping` and exits 0.
    wrapper  With `-- COMMAND ARGS` the agent is the container's entrypoint: it
             starts the app as its child (same stdin/stdout/stderr), probes and
             heartbeats as above, and:
             - when the app exits or is killed on its own, it sends `fail` at
               once (`app exited with code 1`, `app killed by signal 9`) and
               exits with the app's code (128+N when killed by signal N);
             - on SIGTERM/SIGINT it sends `stopping` (waiting at most 1s),
               forwards the signal to the app, waits for it and exits with its
               code. SIGHUP, SIGUSR1 and SIGUSR2 are forwarded as they come.

CONFIGURATION (flags win over environment, environment over the file):
    watchdog_url   --watchdog-url   BGW_WATCHDOG_URL   required
        The watchdog's base URL, e.g. http://10.0.0.5:8700.
    check          --check          BGW_CHECK          required
        The watchdog's `service` check this instance belongs to, e.g. blue.
    token          --token          BGW_TOKEN          required, or token_file
        The check's bearer token. Never logged. Prefer BGW_TOKEN or
        token_file: a flag's value is visible to `ps`.
    token_file     --token-file     BGW_TOKEN_FILE
        A file holding the token (e.g. /run/secrets/bgw_blue); not with token.
    color          --color          BGW_COLOR          optional
        blue or green; sent with every heartbeat.
    version        --app-version    BGW_VERSION        optional
        The app's version; sent with every heartbeat.
    instance       --instance       BGW_INSTANCE       default: the hostname
        This instance's name (/etc/hostname, else $HOSTNAME).
    interval       --interval       BGW_INTERVAL       default: 5s
        Time between heartbeats: 500ms, 5s, 1m... (sent a tenth early, at most
        1s, so they reach a watchdog whose period equals it in time).
    app_url        --app-url        BGW_APP_URL        default: http://127.0.0.1:3000/ping
        Probed (GET) before each heartbeat; 2xx is ok.
    timeout        --timeout        BGW_TIMEOUT        default: 2s
        Probe timeout.
    log_format     --log-format     BGW_LOG_FORMAT     default: text
        text or json; logs go to stderr.

    --config FILE   a TOML file with the keys above (or BGW_CONFIG=FILE), e.g.
                        watchdog_url = \"http://10.0.0.5:8700\"
                        check = \"blue\"
                        token_file = \"/run/secrets/bgw_blue\"
                        color = \"blue\"
    -h, --help      this text
    -V, --version   the agent's version

WHAT IS SENT (POST {watchdog_url}/api/v1/heartbeat, Authorization: Bearer <token>):
    ok        the app answered 2xx          detail: GET /ping 200 in 3 ms
    fail      it did not, or the child died detail: GET /ping returned 502,
              GET /ping: connection refused, GET /ping: timed out after 2s
    stopping  on SIGTERM/SIGINT: a planned stop raises no alert
    At start the agent waits up to one interval for the app's first good answer
    before it reports `fail`. While the watchdog is unreachable it retries with
    jittered backoff (at most `interval` apart), sending only the latest state,
    and logs the outage once. The token is never logged.

EXIT CODES:
    0    stopped by SIGTERM/SIGINT (sidecar mode)
    2    bad configuration or usage (the message names the key)
    N    wrapper mode: the app's exit code (128+N when killed by signal N);
         127 when the command cannot be found, 126 when it cannot be run
";

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Invocation, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn flags_map_to_keys_in_both_spellings_and_the_command_follows_the_separator() {
        let inv = parse_strs(&[
            "--config",
            "/etc/agent.toml",
            "--check=blue",
            "--app-version",
            "1.2.3",
            "--",
            "app",
            "--listen",
            "x",
        ])
        .unwrap();
        assert_eq!(
            inv,
            Invocation::Run(Args {
                config: Some("/etc/agent.toml".into()),
                flags: vec![("check", "blue".into()), ("version", "1.2.3".into())],
                command: ["app", "--listen", "x"].map(OsString::from).to_vec(),
            })
        );
    }

    #[test]
    fn help_and_version_win_over_everything() {
        assert_eq!(
            parse_strs(&["--check", "b", "--help"]).unwrap(),
            Invocation::Help
        );
        assert_eq!(parse_strs(&["-V"]).unwrap(), Invocation::Version);
        // After `--` they belong to the app.
        assert!(matches!(
            parse_strs(&["--", "app", "--version"]).unwrap(),
            Invocation::Run(a) if a.command.len() == 2
        ));
    }

    #[test]
    fn usage_errors_name_the_flag_but_never_echo_a_value() {
        let e = parse_strs(&["--tokn", "s3cret"]).unwrap_err().to_string();
        assert!(e.contains("--tokn") && !e.contains("s3cret"), "{e}");
        let e = parse_strs(&["--token"]).unwrap_err().to_string();
        assert!(e.contains("`--token` needs a value"), "{e}");
        let e = parse_strs(&["app"]).unwrap_err().to_string();
        assert!(e.contains("after `--`"), "{e}");
        assert!(parse_strs(&["--"]).is_err());
    }

    #[test]
    fn help_mentions_every_key_and_flag() {
        for (flag, key) in FLAGS {
            assert!(HELP.contains(flag), "{flag}");
            assert!(HELP.contains(key), "{key}");
        }
    }
}
