//! The agent's typed settings, loaded once at start: the TOML file, then
//! `BGW_<KEY>` environment variables, then flags. Every value is parsed into a
//! type that cannot be invalid; a bad one is an error naming the key (and
//! never quoting a secret), and the agent exits 2.

use crate::log::LogFormat;
use bgw_wire::{parse_duration, settings as layered, Color};
use reqwest::header::HeaderValue;
use reqwest::Url;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Every key the agent knows, in `--help` order.
pub const KEYS: &[&str] = &[
    "watchdog_url",
    "check",
    "token",
    "token_file",
    "color",
    "version",
    "instance",
    "interval",
    "app_url",
    "timeout",
    "log_format",
];

pub const DEFAULT_APP_URL: &str = "http://127.0.0.1:3000/ping";
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base URL of the watchdog, e.g. `http://127.0.0.1:8700`.
    pub watchdog_url: Url,
    pub check: String,
    /// `Bearer <token>`, marked sensitive so its `Debug` hides it.
    pub authorization: HeaderValue,
    pub color: Option<Color>,
    pub version: Option<String>,
    pub instance: String,
    pub interval: Duration,
    pub app_url: Url,
    pub timeout: Duration,
    pub log_format: LogFormat,
}

impl Settings {
    /// `{watchdog_url}/api/v1/heartbeat`, whether or not the base ends in `/`.
    pub fn heartbeat_url(&self) -> Url {
        let base = self.watchdog_url.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/api/v1/heartbeat")).expect("a valid base stays valid")
    }
}

/// A configuration error: names the key, never quotes a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

fn key_error(key: &str, msg: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("key `{key}`: {msg}"))
}

/// Loads the file (`--config`, else `BGW_CONFIG`, else none), the process
/// environment and the flags.
pub fn load(
    config: Option<&Path>,
    flags: &[(&'static str, String)],
) -> Result<Settings, ConfigError> {
    let from_env = std::env::var_os("BGW_CONFIG").map(std::path::PathBuf::from);
    let config = config.or(from_env.as_deref());
    let file = layered::load_file(config).map_err(|e| ConfigError(e.to_string()))?;
    let raw = layer(file, std::env::vars(), flags)?;
    validate(&raw, hostname, |p| std::fs::read_to_string(p))
}

/// Merges the layers into raw string values per key.
///
/// The environment is read as plain strings (not through
/// `bgw_wire::settings::overlay_env`, which reads TOML literals): every agent
/// key is a string, and `BGW_VERSION=1.10` must stay `1.10`, not the float
/// `1.1`. Unknown keys in the file are an error (likely a typo); unknown
/// `BGW_*` variables are ignored, since the container may hold other bgw
/// components' variables.
pub fn layer(
    file: toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
    flags: &[(&'static str, String)],
) -> Result<BTreeMap<&'static str, String>, ConfigError> {
    let mut raw = BTreeMap::new();
    for (name, value) in file {
        let key = KEYS
            .iter()
            .find(|k| **k == name)
            .ok_or_else(|| ConfigError(format!("unknown key `{name}` in the config file")))?;
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => return Err(key_error(key, "expected a string")),
        };
        raw.insert(*key, text);
    }
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("BGW_") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        if let Some(key) = KEYS.iter().find(|k| **k == rest) {
            raw.insert(*key, value);
        }
    }
    for (key, value) in flags {
        raw.insert(*key, value.clone());
    }
    Ok(raw)
}

/// Turns raw values into [`Settings`]. `hostname` supplies the default
/// `instance`; `read` reads `token_file`.
pub fn validate(
    raw: &BTreeMap<&'static str, String>,
    hostname: impl FnOnce() -> Option<String>,
    read: impl FnOnce(&Path) -> std::io::Result<String>,
) -> Result<Settings, ConfigError> {
    let get = |key: &str| raw.get(key).map(|s| s.trim()).filter(|s| !s.is_empty());
    let required = |key: &'static str| {
        get(key).ok_or_else(|| {
            key_error(
                key,
                format!(
                    "not set (in the config file, BGW_{} or --{})",
                    key.to_ascii_uppercase(),
                    key.replace('_', "-")
                ),
            )
        })
    };
    let url = |key: &'static str, value: &str| -> Result<Url, ConfigError> {
        let url = Url::parse(value).map_err(|e| key_error(key, format!("invalid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(key_error(
                key,
                "expected an http:// or https:// URL with a host",
            ));
        }
        Ok(url)
    };
    let duration = |key: &'static str, default: Duration| -> Result<Duration, ConfigError> {
        let Some(v) = get(key) else {
            return Ok(default);
        };
        let d = parse_duration(v).map_err(|e| key_error(key, e))?;
        if d.is_zero() {
            return Err(key_error(key, "must be more than 0"));
        }
        Ok(d)
    };

    let watchdog_url = url("watchdog_url", required("watchdog_url")?)?;
    let check = required("check")?.to_string();
    let token = match (get("token"), get("token_file")) {
        (Some(_), Some(_)) => {
            return Err(ConfigError(
                "keys `token` and `token_file` are both set; set only one".into(),
            ))
        }
        (Some(t), None) => t.to_string(),
        (None, Some(path)) => {
            let text = read(Path::new(path))
                .map_err(|e| key_error("token_file", format!("cannot read {path}: {e}")))?;
            let t = text.trim().to_string();
            if t.is_empty() {
                return Err(key_error("token_file", format!("{path} is empty")));
            }
            t
        }
        (None, None) => {
            return Err(key_error(
                "token",
                "not set (token or token_file, in the config file, BGW_TOKEN / BGW_TOKEN_FILE or --token / --token-file)",
            ))
        }
    };
    let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| key_error("token", "contains characters not allowed in an HTTP header"))?;
    authorization.set_sensitive(true);
    let color = get("color")
        .map(|c| c.parse::<Color>().map_err(|e| key_error("color", e)))
        .transpose()?;
    let version = get("version").map(str::to_string);
    let instance = match get("instance") {
        Some(i) => i.to_string(),
        None => hostname().ok_or_else(|| {
            key_error(
                "instance",
                "not set and no hostname found (/etc/hostname, $HOSTNAME)",
            )
        })?,
    };
    let interval = duration("interval", DEFAULT_INTERVAL)?;
    let app_url = url("app_url", get("app_url").unwrap_or(DEFAULT_APP_URL))?;
    let timeout = duration("timeout", DEFAULT_TIMEOUT)?;
    let log_format = get("log_format")
        .map(|f| {
            f.parse::<LogFormat>()
                .map_err(|e| key_error("log_format", e))
        })
        .transpose()?
        .unwrap_or_default();
    Ok(Settings {
        watchdog_url,
        check,
        authorization,
        color,
        version,
        instance,
        interval,
        app_url,
        timeout,
        log_format,
    })
}

/// The container's hostname: `/etc/hostname`, else `$HOSTNAME`.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::env::var("HOSTNAME")
                .ok()
                .filter(|s| !s.trim().is_empty())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&'static str, &str)]) -> BTreeMap<&'static str, String> {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    fn minimal() -> BTreeMap<&'static str, String> {
        raw(&[
            ("watchdog_url", "http://127.0.0.1:8700"),
            ("check", "blue"),
            ("token", "s3cret-token"),
        ])
    }

    fn no_read(_: &Path) -> std::io::Result<String> {
        panic!("token_file must not be read")
    }

    #[test]
    fn defaults_fill_everything_but_the_three_required_keys() {
        let s = validate(&minimal(), || Some("host1".into()), no_read).unwrap();
        assert_eq!(s.instance, "host1");
        assert_eq!(s.interval, Duration::from_secs(5));
        assert_eq!(s.timeout, Duration::from_secs(2));
        assert_eq!(s.app_url.as_str(), DEFAULT_APP_URL);
        assert_eq!(s.color, None);
        assert_eq!(
            s.heartbeat_url().as_str(),
            "http://127.0.0.1:8700/api/v1/heartbeat"
        );
        assert!(
            !format!("{s:?}").contains("s3cret"),
            "Debug hides the token"
        );
        for key in ["watchdog_url", "check", "token"] {
            let mut r = minimal();
            r.remove(key);
            let e = validate(&r, || Some("h".into()), no_read).unwrap_err();
            assert!(e.to_string().contains(&format!("`{key}`")), "{e}");
        }
    }

    #[test]
    fn flags_win_over_env_and_env_over_the_file() {
        let file: toml::Table =
            "check = \"file\"\ninterval = \"9s\"\ncolor = \"blue\"\nversion = 2\n"
                .parse()
                .unwrap();
        let env = [
            ("BGW_CHECK", "env"),
            ("BGW_INTERVAL", "7s"),
            ("BGW_VERSION", "1.10"),
            ("BGW_LISTEN", "unrelated"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let raw = layer(file, env, &[("check", "flag".to_string())]).unwrap();
        assert_eq!(raw["check"], "flag");
        assert_eq!(raw["interval"], "7s");
        assert_eq!(raw["color"], "blue");
        assert_eq!(raw["version"], "1.10", "env values stay strings");
        assert!(!raw.contains_key("listen"));
    }

    #[test]
    fn unknown_file_keys_and_non_string_values_are_named() {
        let e = layer("intervall = \"5s\"".parse().unwrap(), [], &[]).unwrap_err();
        assert!(e.to_string().contains("`intervall`"), "{e}");
        let e = layer("check = [\"a\"]".parse().unwrap(), [], &[]).unwrap_err();
        assert!(e.to_string().contains("`check`"), "{e}");
    }

    #[test]
    fn bad_values_name_the_key_and_hide_the_token() {
        let cases: &[(&'static str, &str)] = &[
            ("interval", "5"),
            ("interval", "0s"),
            ("timeout", "soon"),
            ("color", "purple"),
            ("watchdog_url", "ftp://x"),
            ("watchdog_url", "not a url"),
            ("app_url", "127.0.0.1:3000"),
            ("log_format", "xml"),
        ];
        for (key, value) in cases {
            let mut r = minimal();
            r.insert(key, value.to_string());
            let e = validate(&r, || Some("h".into()), no_read)
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("`{key}`")), "{key}={value}: {e}");
        }
        let mut r = minimal();
        r.insert("token", "bad\ns3cret".into());
        let e = validate(&r, || Some("h".into()), no_read)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`token`") && !e.contains("s3cret"), "{e}");
    }

    #[test]
    fn token_file_is_read_and_trimmed_and_excludes_token() {
        let mut r = minimal();
        r.remove("token");
        r.insert("token_file", "/run/secrets/t".into());
        let s = validate(
            &r,
            || Some("h".into()),
            |p| {
                assert_eq!(p, Path::new("/run/secrets/t"));
                Ok("filetoken\n".into())
            },
        )
        .unwrap();
        assert_eq!(s.authorization.to_str().unwrap(), "Bearer filetoken");
        r.insert("token", "x".into());
        let e = validate(&r, || Some("h".into()), no_read).unwrap_err();
        assert!(e.to_string().contains("both set"), "{e}");
    }

    #[test]
    fn instance_defaults_to_the_hostname_or_fails_naming_the_key() {
        let e = validate(&minimal(), || None, no_read).unwrap_err();
        assert!(e.to_string().contains("`instance`"), "{e}");
        let mut r = minimal();
        r.insert("instance", "i-1".into());
        assert_eq!(validate(&r, || None, no_read).unwrap().instance, "i-1");
    }
}
