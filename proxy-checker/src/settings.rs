//! The checker's configuration: TOML file, then `BGW_<KEY>` environment
//! variables, then flags (layered by [`bgw_reporter::settings`]), parsed into
//! [`Settings`] whose fields cannot be invalid. Every error names the key;
//! no error quotes a value, so a token never reaches a log.

use bgw_reporter::settings::{
    http_url, layered, observer, required, timing, token, ConfigError, Overrides,
};
use bgw_wire::HumanDuration;
use secrecy::SecretString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every key of the checker, as written in the file (env: `BGW_` + upper case).
pub const KEYS: &[&str] = &[
    "watchdog_url",
    "token",
    "token_file",
    "observer",
    "blue",
    "green",
    "proxy",
    "live_listen",
    "idle_listen",
    "live_file",
    "path",
    "interval",
    "timeout",
    "threshold",
];

/// The checker's settings, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base URL of the watchdog; reports go to `{watchdog_url}/api/v1/report`.
    pub watchdog_url: reqwest::Url,
    pub token: SecretString,
    pub observer: String,
    /// Direct address (`host:port`) of the blue app.
    pub blue: String,
    pub green: String,
    /// Host of the nginx proxy.
    pub proxy: String,
    pub live_listen: u16,
    pub idle_listen: u16,
    pub live_file: PathBuf,
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub threshold: Duration,
}

/// The keys as the file and the environment give them, before validation.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    watchdog_url: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    observer: Option<String>,
    blue: Option<String>,
    green: Option<String>,
    proxy: Option<String>,
    live_listen: Option<u16>,
    idle_listen: Option<u16>,
    live_file: Option<PathBuf>,
    path: Option<String>,
    interval: Option<HumanDuration>,
    timeout: Option<HumanDuration>,
    threshold: Option<HumanDuration>,
}

/// `host:port`, as the original scripts wrote the app addresses.
fn address(key: &str, value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    let bad = || ConfigError::key(key, "expected host:port, like 127.0.0.1:3000");
    let (h, port) = v.rsplit_once(':').ok_or_else(bad)?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(bad()),
    }
    host(key, h).map_err(|_| bad())?;
    Ok(v.to_string())
}

/// A bare host name or IP address (the proxy); IPv6 in brackets.
fn host(key: &str, value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    let bad = || {
        ConfigError::key(
            key,
            "expected a host name or IP address without a port, like 127.0.0.1",
        )
    };
    let bracketed = v.starts_with('[') && v.ends_with(']');
    if v.is_empty() || v.contains(['@', '/', '?', '#']) || (v.contains(':') && !bracketed) {
        return Err(bad());
    }
    let url = reqwest::Url::parse(&format!("http://{v}/")).map_err(|_| bad())?;
    if url.path() != "/" || url.port().is_some() {
        return Err(bad());
    }
    Ok(v.to_string())
}

/// Loads and validates the checker's settings.
pub fn load(
    config: Option<&Path>,
    env: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    flags: &Overrides,
) -> Result<Settings, ConfigError> {
    let raw: Raw = layered(config, env, KEYS, &[], flags)?;
    let watchdog_url = http_url("watchdog_url", &required("watchdog_url", raw.watchdog_url)?)?;
    let token = token(raw.token, raw.token_file.as_deref())?;
    let observer = observer(raw.observer, "checker")?;
    let path = raw.path.unwrap_or_else(|| "/ping".into());
    if !path.starts_with('/') || path.contains(char::is_whitespace) {
        return Err(ConfigError::key(
            "path",
            "must start with / and contain no spaces, like /ping",
        ));
    }
    let live_listen = raw.live_listen.unwrap_or(80);
    let idle_listen = raw.idle_listen.unwrap_or(8080);
    for (key, port) in [("live_listen", live_listen), ("idle_listen", idle_listen)] {
        if port == 0 {
            return Err(ConfigError::key(key, "must be a port from 1 to 65535"));
        }
    }
    let blue = address("blue", raw.blue.as_deref().unwrap_or("127.0.0.1:3000"))?;
    let green = address("green", raw.green.as_deref().unwrap_or("127.0.0.1:3001"))?;
    let proxy = host("proxy", raw.proxy.as_deref().unwrap_or("127.0.0.1"))?;
    let (interval, timeout, threshold) = timing(raw.interval, raw.timeout, raw.threshold)?;
    Ok(Settings {
        watchdog_url,
        token,
        observer,
        blue,
        green,
        proxy,
        live_listen,
        idle_listen,
        live_file: raw.live_file.unwrap_or_else(|| "/var/live".into()),
        path,
        interval,
        timeout,
        threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    const MINIMAL: &[(&str, &str)] = &[
        ("BGW_WATCHDOG_URL", "http://127.0.0.1:8700"),
        ("BGW_TOKEN", "s3cret"),
    ];

    #[test]
    fn defaults_follow_the_contract() {
        let s = load(None, MINIMAL.to_vec(), &Overrides::default()).unwrap();
        assert_eq!(s.observer, "checker");
        assert_eq!(s.blue, "127.0.0.1:3000");
        assert_eq!(s.green, "127.0.0.1:3001");
        assert_eq!(s.proxy, "127.0.0.1");
        assert_eq!((s.live_listen, s.idle_listen), (80, 8080));
        assert_eq!(s.live_file, PathBuf::from("/var/live"));
        assert_eq!(s.path, "/ping");
        assert_eq!(s.interval, Duration::from_secs(5));
        assert_eq!(s.timeout, Duration::from_secs(30));
        assert_eq!(s.threshold, Duration::from_millis(2000));
        assert_eq!(s.token.expose_secret(), "s3cret");
    }

    #[test]
    fn flags_win_over_env_and_env_over_file() {
        let f = file("interval = \"10s\"\nthreshold = \"1s\"\nlive_listen = 81\nwatchdog_url = \"http://a:1\"\ntoken = \"t\"\n");
        let mut flags = Overrides::default();
        flags.set("threshold", Some("750ms"));
        let s = load(
            Some(f.path()),
            [
                ("BGW_INTERVAL", "2s"),
                ("BGW_THRESHOLD", "3s"),
                ("BGW_LIVE_LISTEN", "82"),
            ],
            &flags,
        )
        .unwrap();
        assert_eq!(s.interval, Duration::from_secs(2));
        assert_eq!(s.threshold, Duration::from_millis(750));
        assert_eq!(s.live_listen, 82);
    }

    #[test]
    fn variables_of_other_binaries_are_ignored() {
        let mut vars = MINIMAL.to_vec();
        vars.extend_from_slice(&[("BGW_LISTEN", "x"), ("BGW_PROXY_LIVE_FILE", "/x")]);
        let s = load(None, vars, &Overrides::default()).unwrap();
        assert_eq!(s.proxy, "127.0.0.1");
    }

    #[test]
    fn bad_values_name_the_key_and_hide_the_token() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("BGW_INTERVAL", "5 parsecs")], "`interval`"),
            (&[("BGW_TIMEOUT", "0s")], "`timeout`"),
            (&[("BGW_THRESHOLD", "2000")], "`threshold`"),
            (&[("BGW_LIVE_LISTEN", "99999")], "`live_listen`"),
            (&[("BGW_IDLE_LISTEN", "0")], "`idle_listen`"),
            (&[("BGW_BLUE", "localhost")], "`blue`"),
            (&[("BGW_GREEN", "http://x:1/ping")], "`green`"),
            (&[("BGW_PROXY", "127.0.0.1:80")], "`proxy`"),
            (&[("BGW_PATH", "ping")], "`path`"),
            (&[("BGW_WATCHDOG_URL", "ftp://x")], "`watchdog_url`"),
            (&[("BGW_OBSERVER", " ")], "`observer`"),
        ];
        for (extra, key) in cases {
            let mut vars = MINIMAL.to_vec();
            vars.extend_from_slice(extra);
            let e = load(None, vars, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{extra:?}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn missing_watchdog_url_or_token_is_an_error() {
        let e = load(None, [("BGW_TOKEN", "t")], &Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("`watchdog_url`: missing"), "{e}");
        let e = load(
            None,
            [("BGW_WATCHDOG_URL", "http://a:1")],
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("`token`"), "{e}");
    }

    #[test]
    fn token_file_is_read_and_trimmed() {
        let f = file("from-file\n");
        let s = load(
            None,
            [
                ("BGW_WATCHDOG_URL", "http://a:1"),
                ("BGW_TOKEN_FILE", f.path().to_str().unwrap()),
            ],
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.token.expose_secret(), "from-file");
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        let f = file("watchdog_url = \"http://a:1\"\ntoken = \"t\"\nintervall = \"5s\"\n");
        let e = load(
            Some(f.path()),
            Vec::<(String, String)>::new(),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("intervall"), "{e}");
    }

    #[test]
    fn ipv6_addresses_are_accepted() {
        let mut vars = MINIMAL.to_vec();
        vars.extend_from_slice(&[("BGW_BLUE", "[::1]:3000"), ("BGW_PROXY", "[::1]")]);
        let s = load(None, vars, &Overrides::default()).unwrap();
        assert_eq!(s.blue, "[::1]:3000");
        assert_eq!(s.proxy, "[::1]");
    }
}
