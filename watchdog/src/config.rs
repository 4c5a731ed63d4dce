//! The watchdog's configuration: `watchdog.toml`, then `BGW_*` environment
//! variables, then flags. Everything is parsed here, once, into types that
//! cannot be invalid; a bad key is an error that names it (exit 2).

use crate::schedule::Cadence;
use bgw_wire::{Color, HumanDuration};
use secrecy::{ExposeSecret, SecretString};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Sections whose keys `BGW_<SECTION>_<KEY>` can set.
pub const ENV_SECTIONS: &[&str] = &[
    "server",
    "proxy",
    "rollback",
    "status_page",
    "notify",
    "notify.slack",
    "notify.email",
    "notify.webhook",
];

/// A configuration error: names the key and what is wrong, never a secret.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err(key: impl std::fmt::Display, msg: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("key `{key}`: {msg}"))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default = "default_database")]
    database: String,
    #[serde(default = "default_log_dir")]
    log_dir: PathBuf,
    admin_token: Option<SecretString>,
    admin_token_file: Option<PathBuf>,
    #[serde(default = "default_ping_history")]
    ping_history: u32,
    #[serde(default = "default_max_instances")]
    max_instances: u32,
    #[serde(default = "default_retention")]
    retention: HumanDuration,
    #[serde(default = "default_durability")]
    durability: crate::store::Durability,
    #[serde(default = "default_rate_limit")]
    rate_limit: u32,
    #[serde(default = "default_startup_grace")]
    startup_grace: HumanDuration,
    #[serde(default = "default_threshold")]
    probe_threshold: HumanDuration,
    #[serde(default = "default_fail_after")]
    target_fail_after: u32,
    #[serde(default)]
    check: Vec<RawCheck>,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    proxy: Option<crate::proxy::ProxySettings>,
    #[serde(default)]
    rollback: Option<crate::rollback::RollbackSettings>,
    #[serde(default)]
    notify: RawNotify,
    #[serde(default)]
    status_page: crate::page::Settings,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    slack: Option<bgw_notify::SlackSettings>,
    email: Option<bgw_notify::EmailSettings>,
    webhook: Option<bgw_notify::WebhookSettings>,
    repeat: Option<HumanDuration>,
    all_is_well: Option<String>,
    timezone: Option<String>,
    flap_threshold: Option<u32>,
    flap_window: Option<HumanDuration>,
    group_window: Option<HumanDuration>,
}

/// `[server]`: the connection layer's bounds (see `crate::server`).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    header_timeout: Option<HumanDuration>,
    body_timeout: Option<HumanDuration>,
    reserve_header_timeout: Option<HumanDuration>,
    max_header_bytes: Option<usize>,
    max_connections: Option<u64>,
    reserved_connections: Option<u64>,
    shutdown_timeout: Option<HumanDuration>,
    failed_auth_per_second: Option<u32>,
}

/// Shortest token accepted (admin and check tokens): shorter ones are
/// guessable.
pub const MIN_TOKEN_LEN: usize = 16;

/// `[notify]`: the channels and the alerting policy.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub channels: Vec<bgw_notify::Channel>,
    pub policy: crate::alerting::Policy,
    /// Cron schedule of the all-is-well summary.
    pub all_is_well: Option<Cadence>,
}

fn default_listen() -> String {
    "127.0.0.1:8700".into()
}
fn default_database() -> String {
    "sqlite:///var/lib/bgw/watchdog.db".into()
}
fn default_log_dir() -> PathBuf {
    "/var/log/challenge".into()
}
fn default_durability() -> crate::store::Durability {
    crate::store::Durability::Fsync
}
fn default_ping_history() -> u32 {
    100
}
fn default_retention() -> HumanDuration {
    HumanDuration(90 * crate::retention::DAY)
}
fn default_max_instances() -> u32 {
    64
}
fn default_rate_limit() -> u32 {
    200
}
fn default_threshold() -> HumanDuration {
    HumanDuration(Duration::from_millis(2000))
}
fn default_fail_after() -> u32 {
    3
}
fn default_startup_grace() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    name: String,
    kind: String,
    color: Option<Color>,
    period: Option<HumanDuration>,
    schedule: Option<String>,
    timezone: Option<String>,
    grace: Option<HumanDuration>,
    min_instances: Option<u32>,
    max_instances: Option<u32>,
    token: Option<SecretString>,
    token_file: Option<PathBuf>,
    uuid: Option<String>,
}

/// The validated configuration of `bgw-watchdog`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// `sqlite://path` (created with its migrations at start).
    pub database: String,
    pub log_dir: PathBuf,
    pub admin_token: Option<SecretString>,
    /// Pings kept per check; older ones are overwritten.
    pub ping_history: u32,
    /// Instances a service tracks at most; a new instance id beyond is
    /// refused (409) until one leaves or goes missing.
    pub max_instances: usize,
    /// Events, settled notifications and ended silences older than this
    /// are deleted (see `crate::retention`).
    pub retention: Duration,
    /// `fsync` (default) or `os`: see [`crate::store::Durability`].
    pub durability: crate::store::Durability,
    /// Requests per second allowed per token (0: unlimited); bursts of twice that.
    pub rate_limit: u32,
    /// After a start, how long reporters' silence counts as "not heard yet".
    pub startup_grace: Duration,
    /// The latency threshold named in probe log lines (the watchers judge it).
    pub probe_threshold_ms: u64,
    /// Failed rounds in a row before a probe target alerts.
    pub target_fail_after: u32,
    pub checks: Vec<CheckSpec>,
    /// `[proxy]`, validated; the contract's defaults when the section is absent.
    pub proxy: crate::proxy::ProxySettings,
    /// Whether `[proxy]` was written in the configuration (`check-config` says so).
    pub proxy_configured: bool,
    /// `[rollback]`, validated; the contract's defaults when absent.
    pub rollback: crate::rollback::RollbackSettings,
    pub notify: NotifySettings,
    /// `[server]`: timeouts, sizes and connection limits.
    pub server: crate::server::ServerSettings,
    /// `[status_page]`: who may see `GET /` and its live stream.
    pub status_page: crate::page::Settings,
}

pub use crate::check::secrets_equal;
use crate::check::{CheckKind, CheckSpec};

/// Flag values that override the file and the environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub database: Option<String>,
    pub log_dir: Option<PathBuf>,
}

/// Loads the layered configuration: file, `BGW_*` env, then flags.
///
/// Parsing runs in a short-lived thread and the watchdog keeps a copy made
/// afterwards: a large file (100,000 checks) leaves hundreds of MiB of
/// parser garbage behind, and in that thread's own malloc arena it is given
/// back whole instead of fragmenting the heap the watchdog then lives in.
pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Settings, ConfigError> {
    let path = path.map(Path::to_path_buf);
    let overrides = overrides.clone();
    let parsed =
        std::thread::spawn(move || load_from(path.as_deref(), std::env::vars(), &overrides))
            .join()
            .map_err(|_| ConfigError("the configuration loader panicked".into()))??;
    let settings = parsed.clone();
    drop(parsed);
    release_free_memory();
    Ok(settings)
}

/// Hands memory that malloc holds but nobody uses back to the system.
#[allow(unsafe_code)]
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas and has no
    // preconditions; it is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// [`load`] with an explicit environment (tests).
pub fn load_from(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: &Overrides,
) -> Result<Settings, ConfigError> {
    let mut table = bgw_wire::settings::load_file(path).map_err(|e| ConfigError(e.to_string()))?;
    let from_env = bgw_wire::settings::overlay_env(&mut table, env, ENV_SECTIONS);
    let (mut raw, ignored): (RawSettings, _) =
        bgw_wire::settings::deserialize_ignoring_foreign_env(table, &from_env)
            .map_err(|e| ConfigError(e.to_string()))?;
    for var in ignored {
        tracing::debug!(variable = %var, "ignoring an environment variable that is not a bgw-watchdog setting");
    }
    if let Some(v) = &overrides.listen {
        raw.listen = v.clone();
    }
    if let Some(v) = &overrides.database {
        raw.database = v.clone();
    }
    if let Some(v) = &overrides.log_dir {
        raw.log_dir = v.clone();
    }
    validate(raw)
}

fn validate(raw: RawSettings) -> Result<Settings, ConfigError> {
    let listen: SocketAddr = raw.listen.parse().map_err(|e| {
        err(
            "listen",
            format_args!(
                "{:?} is not an address like 127.0.0.1:8700 ({e})",
                raw.listen
            ),
        )
    })?;
    let database = normalize_database(&raw.database)?;
    if raw.retention.0 < crate::retention::DAY {
        // Reminders and the all-is-well summary are timed from the last
        // one recorded: they must outlive a day.
        return Err(err("retention", "must be at least 1d"));
    }
    if !(1..=10_000).contains(&raw.max_instances) {
        return Err(err(
            "max_instances",
            format_args!("{} is not between 1 and 10000", raw.max_instances),
        ));
    }
    let admin_token = secret_or_file(
        raw.admin_token,
        raw.admin_token_file.as_deref(),
        "admin_token",
    )?;
    let proxy_configured = raw.proxy.is_some();
    let proxy = raw.proxy.unwrap_or_default();
    proxy
        .validate()
        .map_err(|e| err(format_args!("proxy.{}", e.key), e.message))?;
    let rollback = raw.rollback.unwrap_or_default();
    rollback
        .validate()
        .map_err(|e| err(format_args!("rollback.{}", e.key), e.message))?;
    raw.status_page
        .validate()
        .map_err(|(key, message)| err(format_args!("status_page.{key}"), message))?;
    let mut checks = Vec::with_capacity(raw.check.len());
    let mut names = std::collections::HashSet::new();
    let mut uuids = std::collections::HashSet::new();
    for (i, c) in raw.check.into_iter().enumerate() {
        let spec = validate_check(i, c, raw.max_instances)?;
        if !names.insert(spec.name.clone()) {
            return Err(err(
                format_args!("check[{i}].name"),
                format_args!("duplicate check name {:?}", spec.name),
            ));
        }
        if let CheckKind::Heartbeat { uuid } = &spec.kind {
            if !uuids.insert(uuid.clone()) {
                return Err(err(format_args!("check[{i}].uuid"), "duplicate uuid"));
            }
        }
        checks.push(spec);
    }
    Ok(Settings {
        listen,
        database,
        log_dir: raw.log_dir,
        admin_token,
        ping_history: raw.ping_history.clamp(1, 100_000),
        max_instances: raw.max_instances as usize,
        retention: raw.retention.0,
        durability: raw.durability,
        rate_limit: raw.rate_limit,
        startup_grace: raw.startup_grace.0,
        probe_threshold_ms: raw.probe_threshold.0.as_millis() as u64,
        target_fail_after: raw.target_fail_after.max(1),
        checks,
        proxy,
        proxy_configured,
        rollback,
        notify: validate_notify(raw.notify)?,
        server: validate_server(raw.server)?,
        status_page: raw.status_page,
    })
}

fn validate_server(raw: RawServer) -> Result<crate::server::ServerSettings, ConfigError> {
    let d = crate::server::ServerSettings::default();
    let duration = |key: &str, v: Option<HumanDuration>, default: Duration| {
        let v = v.map_or(default, |v| v.0);
        if v < Duration::from_millis(100) || v > Duration::from_secs(3600) {
            return Err(err(
                format_args!("server.{key}"),
                "must be between 100ms and 1h",
            ));
        }
        Ok(v)
    };
    let max_header_bytes = raw.max_header_bytes.unwrap_or(d.max_header_bytes);
    if !(1024..=1 << 20).contains(&max_header_bytes) {
        return Err(err(
            "server.max_header_bytes",
            "must be between 1024 and 1048576",
        ));
    }
    let max_connections = raw.max_connections.unwrap_or(d.max_connections);
    if max_connections < 4 {
        return Err(err("server.max_connections", "must be at least 4"));
    }
    let reserved_connections = raw.reserved_connections.unwrap_or(d.reserved_connections);
    if reserved_connections == 0 || reserved_connections > max_connections / 4 {
        return Err(err(
            "server.reserved_connections",
            "must be between 1 and a quarter of server.max_connections",
        ));
    }
    Ok(crate::server::ServerSettings {
        header_timeout: duration("header_timeout", raw.header_timeout, d.header_timeout)?,
        body_timeout: duration("body_timeout", raw.body_timeout, d.body_timeout)?,
        reserve_header_timeout: duration(
            "reserve_header_timeout",
            raw.reserve_header_timeout,
            d.reserve_header_timeout,
        )?,
        max_header_bytes,
        max_connections,
        reserved_connections,
        shutdown_timeout: duration("shutdown_timeout", raw.shutdown_timeout, d.shutdown_timeout)?,
        failed_auth_per_second: raw
            .failed_auth_per_second
            .unwrap_or(d.failed_auth_per_second),
    })
}

fn validate_notify(raw: RawNotify) -> Result<NotifySettings, ConfigError> {
    let channels =
        bgw_notify::build_channels(raw.slack.as_ref(), raw.email.as_ref(), raw.webhook.as_ref())
            .map_err(|e| ConfigError(e.to_string()))?;
    let defaults = crate::alerting::Policy::default();
    let all_is_well = raw
        .all_is_well
        .as_deref()
        .map(|expr| Cadence::cron(expr, raw.timezone.as_deref().unwrap_or("UTC")))
        .transpose()
        .map_err(|e| err("notify.all_is_well", e))?;
    if raw.timezone.is_some() && all_is_well.is_none() {
        return Err(err(
            "notify.timezone",
            "only meaningful with notify.all_is_well",
        ));
    }
    let flap_threshold = raw.flap_threshold.unwrap_or(defaults.flap_threshold);
    if flap_threshold == 0 {
        return Err(err("notify.flap_threshold", "must be at least 1"));
    }
    Ok(NotifySettings {
        channels,
        policy: crate::alerting::Policy {
            repeat: raw
                .repeat
                .map_or(defaults.repeat, |r| (!r.0.is_zero()).then_some(r.0)),
            flap_threshold,
            flap_window: raw.flap_window.map_or(defaults.flap_window, |d| d.0),
            group_window: raw.group_window.map_or(defaults.group_window, |d| d.0),
        },
        all_is_well,
    })
}

/// Accepts `sqlite://path`, `sqlite:path` or a bare path.
fn normalize_database(db: &str) -> Result<String, ConfigError> {
    let path = db
        .strip_prefix("sqlite://")
        .or_else(|| db.strip_prefix("sqlite:"))
        .unwrap_or(db);
    if path.is_empty() {
        return Err(err("database", "empty path"));
    }
    if db.contains("://") && !db.starts_with("sqlite://") {
        return Err(err("database", "only sqlite:// databases are supported"));
    }
    Ok(path.to_string())
}

fn secret_or_file(
    value: Option<SecretString>,
    file: Option<&Path>,
    key: &str,
) -> Result<Option<SecretString>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(err(
            key,
            format_args!("set either {key} or {key}_file, not both"),
        )),
        (Some(v), None) => {
            let len = v.expose_secret().trim().chars().count();
            if len == 0 {
                Err(err(key, "empty"))
            } else if len < MIN_TOKEN_LEN {
                Err(err(
                    key,
                    format_args!("too short ({len} characters): use at least {MIN_TOKEN_LEN}"),
                ))
            } else {
                Ok(Some(v))
            }
        }
        (None, Some(f)) => {
            let text = std::fs::read_to_string(f).map_err(|e| {
                err(
                    format_args!("{key}_file"),
                    format_args!("cannot read {}: {e}", f.display()),
                )
            })?;
            let t = text.trim();
            if t.is_empty() {
                return Err(err(
                    format_args!("{key}_file"),
                    format_args!("{} is empty", f.display()),
                ));
            }
            if t.chars().count() < MIN_TOKEN_LEN {
                return Err(err(
                    format_args!("{key}_file"),
                    format_args!(
                        "the token in {} is too short: use at least {MIN_TOKEN_LEN} characters",
                        f.display()
                    ),
                ));
            }
            Ok(Some(SecretString::from(t.to_string())))
        }
        (None, None) => Ok(None),
    }
}

fn validate_check(i: usize, c: RawCheck, max_instances: u32) -> Result<CheckSpec, ConfigError> {
    let key = |k: &str| format!("check[{i}].{k}");
    if c.name.is_empty()
        || c.name.len() > 64
        || !c
            .name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
    {
        return Err(err(
            key("name"),
            format_args!("{:?}: use 1-64 letters, digits, '-', '_' or '.'", c.name),
        ));
    }
    let cadence = match (&c.period, &c.schedule) {
        (Some(_), Some(_)) => {
            return Err(err(
                key("schedule"),
                "set either period or schedule, not both",
            ))
        }
        (Some(p), None) => {
            if p.0 < Duration::from_millis(100) {
                return Err(err(key("period"), "must be at least 100ms"));
            }
            if c.timezone.is_some() {
                return Err(err(key("timezone"), "only meaningful with schedule"));
            }
            Cadence::Period(p.0)
        }
        (None, Some(expr)) => {
            if c.kind != "heartbeat" {
                return Err(err(
                    key("schedule"),
                    "only heartbeat checks take a cron schedule; use period",
                ));
            }
            Cadence::cron(expr, c.timezone.as_deref().unwrap_or("UTC"))
                .map_err(|e| err(key("schedule"), e))?
        }
        (None, None) => {
            return Err(err(
                key("period"),
                "missing: set period (or schedule for heartbeat checks)",
            ))
        }
    };
    let grace = c.grace.map_or(Duration::ZERO, |g| g.0);
    let token = secret_or_file(c.token, c.token_file.as_deref(), &key("token"))?;
    let kind = match c.kind.as_str() {
        "service" => {
            if token.is_none() {
                return Err(err(
                    key("token"),
                    "a service check needs the token its agents present",
                ));
            }
            if c.uuid.is_some() {
                return Err(err(key("uuid"), "only heartbeat checks have a uuid"));
            }
            let min = c.min_instances.unwrap_or(1);
            if min == 0 {
                return Err(err(key("min_instances"), "must be at least 1"));
            }
            let max = c.max_instances.unwrap_or(max_instances);
            if !(1..=10_000).contains(&max) {
                return Err(err(
                    key("max_instances"),
                    format_args!("{max} is not between 1 and 10000"),
                ));
            }
            if min > max {
                return Err(err(
                    key("min_instances"),
                    format_args!("{min} is more than max_instances = {max}"),
                ));
            }
            CheckKind::Service {
                color: c.color,
                min_instances: min,
            }
        }
        "heartbeat" => {
            let uuid = c.uuid.ok_or_else(|| {
                err(
                    key("uuid"),
                    "missing: a heartbeat check is pinged at /ping/<uuid>",
                )
            })?;
            let uuid = uuid.to_ascii_lowercase();
            if !is_uuid(&uuid) {
                return Err(err(
                    key("uuid"),
                    format_args!(
                        "{uuid:?} is not a UUID like 5f0c8a56-1b2c-4d3e-8f90-0123456789ab"
                    ),
                ));
            }
            for (k, set) in [
                ("color", c.color.is_some()),
                ("min_instances", c.min_instances.is_some()),
                ("max_instances", c.max_instances.is_some()),
            ] {
                if set {
                    return Err(err(key(k), "only service checks take this key"));
                }
            }
            CheckKind::Heartbeat { uuid }
        }
        "reporter" => {
            if token.is_none() {
                return Err(err(
                    key("token"),
                    "a reporter check needs the token its reporter presents",
                ));
            }
            for (k, set) in [
                ("color", c.color.is_some()),
                ("min_instances", c.min_instances.is_some()),
                ("max_instances", c.max_instances.is_some()),
                ("uuid", c.uuid.is_some()),
            ] {
                if set {
                    return Err(err(
                        key(k),
                        "only service or heartbeat checks take this key",
                    ));
                }
            }
            CheckKind::Reporter
        }
        other => {
            return Err(err(
                key("kind"),
                format_args!("{other:?}: expected service, heartbeat or reporter"),
            ))
        }
    };
    Ok(CheckSpec {
        name: c.name,
        kind,
        cadence,
        grace,
        token,
        max_instances: c.max_instances.unwrap_or(max_instances) as usize,
    })
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(toml: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.toml");
        std::fs::write(&p, toml).unwrap();
        load_from(
            Some(&p),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            &Overrides::default(),
        )
    }

    const GOOD: &str = r#"
admin_token = "admin-secret-0123456789"
[[check]]
name = "blue"
kind = "service"
color = "blue"
period = "5s"
grace = "5s"
token = "svc-secret-0123456789"
[[check]]
name = "nightly-backup"
kind = "heartbeat"
uuid = "5F0C8A56-1B2C-4D3E-8F90-0123456789AB"
schedule = "0 3 * * *"
timezone = "Europe/Madrid"
grace = "30m"
[[check]]
name = "checker"
kind = "reporter"
period = "5s"
grace = "10s"
token = "rep-secret-0123456789"
"#;

    #[test]
    fn the_contract_example_loads_with_defaults() {
        let s = load_str(GOOD, &[]).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8700");
        assert_eq!(s.database, "/var/lib/bgw/watchdog.db");
        assert_eq!(s.log_dir, PathBuf::from("/var/log/challenge"));
        assert_eq!(s.checks.len(), 3);
        assert_eq!(
            s.checks[1].kind,
            CheckKind::Heartbeat {
                uuid: "5f0c8a56-1b2c-4d3e-8f90-0123456789ab".into()
            }
        );
        assert!(s.checks[0].token_matches("svc-secret-0123456789"));
        assert!(!s.checks[0].token_matches("svc-secret-012345678A"));
    }

    #[test]
    fn env_wins_over_file_and_flags_win_over_env() {
        let s = load_str(
            GOOD,
            &[("BGW_LISTEN", "127.0.0.1:9000"), ("BGW_LOG_DIR", "/tmp/x")],
        )
        .unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.log_dir, PathBuf::from("/tmp/x"));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.toml");
        std::fs::write(&p, GOOD).unwrap();
        let s = load_from(
            Some(&p),
            [("BGW_LISTEN".to_string(), "127.0.0.1:9000".to_string())],
            &Overrides {
                listen: Some("127.0.0.1:9100".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.listen.port(), 9100);
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("listen = \"nowhere\"", "`listen`"),
            ("[[check]]\nname = \"a\"\nkind = \"service\"\nperiod = \"5x\"\ntoken = \"t\"", "check"),
            ("[[check]]\nname = \"a\"\nkind = \"service\"\nperiod = \"5s\"", "`check[0].token`"),
            ("[[check]]\nname = \"a b\"\nkind = \"reporter\"\nperiod = \"5s\"\ntoken = \"t\"", "`check[0].name`"),
            ("[[check]]\nname = \"a\"\nkind = \"cron\"\nperiod = \"5s\"", "`check[0].kind`"),
            ("[[check]]\nname = \"a\"\nkind = \"heartbeat\"\nuuid = \"nope\"\nperiod = \"5s\"", "`check[0].uuid`"),
            ("[[check]]\nname = \"a\"\nkind = \"heartbeat\"\nuuid = \"5f0c8a56-1b2c-4d3e-8f90-0123456789ab\"\nschedule = \"99 * * * *\"", "`check[0].schedule`"),
            ("[[check]]\nname = \"a\"\nkind = \"heartbeat\"\nuuid = \"5f0c8a56-1b2c-4d3e-8f90-0123456789ab\"\nschedule = \"0 3 * * *\"\ntimezone = \"Mars/Olympus\"", "`check[0].schedule`"),
            ("bogus = 1", "bogus"),
        ];
        for (toml, needle) in cases {
            let e = load_str(toml, &[]).unwrap_err().to_string();
            assert!(
                e.contains(needle),
                "{toml:?} gave {e:?}, expected {needle:?}"
            );
        }
    }

    #[test]
    fn proxy_and_rollback_are_typed_with_contract_defaults() {
        let s = load_str(GOOD, &[]).unwrap();
        assert!(!s.proxy_configured);
        assert_eq!(s.proxy, crate::proxy::ProxySettings::default());
        assert_eq!(s.proxy.live_file, PathBuf::from("/var/live"));
        assert_eq!(s.rollback, crate::rollback::RollbackSettings::default());
        let s = load_str(
            &format!("{GOOD}\n[proxy]\nlive_file = \"/tmp/live\"\nlive_listen = 8000\n[rollback]\nquorum = 1\nmode = \"dry-run\"\n"),
            &[("BGW_ROLLBACK_FAIL_AFTER", "2")],
        )
        .unwrap();
        assert!(s.proxy_configured);
        assert_eq!(s.proxy.live_file, PathBuf::from("/tmp/live"));
        assert_eq!(s.proxy.live_listen, 8000);
        assert_eq!((s.rollback.quorum, s.rollback.fail_after), (1, 2));
        assert_eq!(s.rollback.mode, crate::rollback::Mode::DryRun);
    }

    #[test]
    fn bad_proxy_or_rollback_keys_are_named() {
        let cases = [
            ("[proxy]\nlive_listen = 0", "`proxy.live_listen`"),
            ("[proxy]\nlive_port = 80", "live_port"),
            ("[proxy]\ngreen = \"host:99999\"", "`proxy.green`"),
            ("[rollback]\nquorum = 0", "`rollback.quorum`"),
            ("[rollback]\nmode = \"yolo\"", "rollback.mode"),
            ("[rollback]\nwindow = \"soon\"", "rollback.window"),
        ];
        for (toml, needle) in cases {
            let e = load_str(toml, &[]).unwrap_err().to_string();
            assert!(
                e.contains(needle),
                "{toml:?} gave {e:?}, expected {needle:?}"
            );
        }
    }

    #[test]
    fn duplicate_names_are_rejected() {
        let t = "[[check]]\nname = \"a\"\nkind = \"reporter\"\nperiod = \"5s\"\ntoken = \"0123456789abcdef\"\n"
            .repeat(2);
        let e = load_str(&t, &[]).unwrap_err().to_string();
        assert!(e.contains("duplicate check name"), "{e}");
    }

    #[test]
    fn tokens_shorter_than_16_characters_are_refused_naming_the_key() {
        let e = load_str("admin_token = \"short-admin\"", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`admin_token`") && e.contains("too short"),
            "{e}"
        );
        assert!(!e.contains("short-admin"), "{e}");
        let e = load_str(
            "[[check]]\nname = \"a\"\nkind = \"reporter\"\nperiod = \"5s\"\ntoken = \"fifteen-chars-x\"",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`check[0].token`"), "{e}");
        assert!(load_str("admin_token = \"sixteen-chars-xx\"", &[]).is_ok());
    }

    #[test]
    fn server_limits_have_defaults_and_bad_ones_name_their_key() {
        let s = load_str(GOOD, &[]).unwrap();
        assert_eq!(s.server, crate::server::ServerSettings::default());
        let s = load_str(GOOD, &[("BGW_SERVER_HEADER_TIMEOUT", "3s")]).unwrap();
        assert_eq!(s.server.header_timeout, Duration::from_secs(3));
        for (toml, needle) in [
            (
                "[server]\nheader_timeout = \"1ms\"",
                "`server.header_timeout`",
            ),
            (
                "[server]\nmax_header_bytes = 10",
                "`server.max_header_bytes`",
            ),
            (
                "[server]\nmax_connections = 100\nreserved_connections = 60",
                "`server.reserved_connections`",
            ),
        ] {
            let e = load_str(toml, &[]).unwrap_err().to_string();
            assert!(e.contains(needle), "{toml:?} gave {e:?}");
        }
    }

    #[test]
    fn errors_never_show_secrets() {
        let e = load_str("admin_token = \"hunter2\"\nadmin_token_file = \"/x\"", &[])
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn bounds_default_to_64_instances_and_90_days_a_check_may_override_its_cap_and_bad_values_name_their_key(
    ) {
        let s = load_str(GOOD, &[]).unwrap();
        assert_eq!(s.max_instances, 64);
        assert_eq!(s.retention, Duration::from_secs(90 * 86_400));
        let s = load_str(
            &format!("max_instances = 2\nretention = \"30d\"\n{GOOD}"),
            &[],
        )
        .unwrap();
        assert_eq!(
            (s.max_instances, s.retention),
            (2, Duration::from_secs(30 * 86_400))
        );
        let e = load_str(&format!("max_instances = 0\n{GOOD}"), &[]).unwrap_err();
        assert!(e.to_string().contains("`max_instances`"), "{e}");
        let e = load_str(&format!("retention = \"1h\"\n{GOOD}"), &[]).unwrap_err();
        assert!(e.to_string().contains("`retention`"), "{e}");
        let svc = "[[check]]\nname = \"big\"\nkind = \"service\"\ncolor = \"green\"\nperiod = \"5s\"\ngrace = \"5s\"\nmin_instances = 3\ntoken = \"svc-secret-0123456789\"\n";
        let e = load_str(&format!("max_instances = 2\n{GOOD}{svc}"), &[]).unwrap_err();
        assert!(
            e.to_string().contains("min_instances") && e.to_string().contains("max_instances = 2"),
            "{e}"
        );
        // Per service check: it overrides the default for that check only.
        let s = load_str(
            &format!("max_instances = 2\n{GOOD}{svc}max_instances = 500\n"),
            &[],
        )
        .unwrap();
        let cap = |name: &str| {
            s.checks
                .iter()
                .find(|c| c.name == name)
                .unwrap()
                .max_instances
        };
        assert_eq!((cap("blue"), cap("big")), (2, 500));
        let job = "[[check]]\nname = \"j\"\nkind = \"heartbeat\"\nuuid = \"00000000-0000-0000-0000-000000000001\"\nperiod = \"5s\"\nmax_instances = 3\n";
        let e = load_str(&format!("{GOOD}{job}"), &[]).unwrap_err();
        assert!(e.to_string().contains("max_instances`"), "{e}");
    }
}
