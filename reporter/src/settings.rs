//! The settings helpers of every reporter: the TOML file, then `BGW_<KEY>`
//! environment variables, then flags ([`layered`]), and the validation of
//! the keys `bgw-checker` and `bgw-prober` have in common ([`required`],
//! [`token`], [`observer`], [`http_url`], [`positive`], [`timing`]). Every
//! error names the key; no error quotes a value, so a token never reaches a
//! log.

use bgw_wire::HumanDuration;
use secrecy::SecretString;
use std::path::Path;
use std::time::Duration;

/// A configuration problem, naming the key. The binaries exit 2 on it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// An error about one key: ``key `KEY`: MESSAGE``.
    pub fn key(key: &str, message: impl std::fmt::Display) -> ConfigError {
        ConfigError(format!("key `{key}`: {message}"))
    }
}

impl From<bgw_wire::settings::SettingsError> for ConfigError {
    fn from(e: bgw_wire::settings::SettingsError) -> ConfigError {
        ConfigError(e.0)
    }
}

/// Values given as flags; they win over the environment and the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides(pub Vec<(&'static str, toml::Value)>);

impl Overrides {
    pub fn set(&mut self, key: &'static str, value: Option<impl Into<toml::Value>>) {
        if let Some(v) = value {
            self.0.push((key, v.into()));
        }
    }
}

/// Reads the file (if any), overlays the `BGW_*` variables of `env` that name
/// one of `keys` or a key under one of `sections`, then the flags, and
/// deserializes the result. Variables meant for the other bgw binaries
/// (`BGW_LISTEN`) are ignored, not errors; unknown keys in the file are
/// errors.
pub fn layered<T: serde::de::DeserializeOwned>(
    config: Option<&Path>,
    env: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    keys: &[&str],
    sections: &[&str],
    flags: &Overrides,
) -> Result<T, ConfigError> {
    let mut table = bgw_wire::settings::load_file(config)?;
    let env = env.into_iter().map(|(k, v)| (k.into(), v.into()));
    let ours = env.filter(|(name, _): &(String, String)| {
        let Some(rest) = name.strip_prefix("BGW_") else {
            return false;
        };
        let rest = rest.to_ascii_lowercase();
        keys.contains(&rest.as_str())
            || sections
                .iter()
                .any(|s| rest.starts_with(&format!("{}_", s.replace('.', "_"))))
    });
    bgw_wire::settings::overlay_env(&mut table, ours, sections);
    for (key, value) in &flags.0 {
        table.insert(key.to_string(), value.clone());
    }
    Ok(bgw_wire::settings::deserialize(table)?)
}

/// A key that has no default.
pub fn required<T>(key: &str, value: Option<T>) -> Result<T, ConfigError> {
    value.ok_or_else(|| ConfigError::key(key, "missing"))
}

/// `observer`, trimmed, or `default`; it must not be blank.
pub fn observer(value: Option<String>, default: &str) -> Result<String, ConfigError> {
    let observer = value.unwrap_or_else(|| default.into());
    if observer.trim().is_empty() {
        return Err(ConfigError::key("observer", "is empty"));
    }
    Ok(observer.trim().to_string())
}

/// `interval`, `timeout` and `threshold`, with the contract's defaults
/// (5s, 30s, 2000ms); each must be more than zero.
pub fn timing(
    interval: Option<HumanDuration>,
    timeout: Option<HumanDuration>,
    threshold: Option<HumanDuration>,
) -> Result<(Duration, Duration, Duration), ConfigError> {
    Ok((
        positive("interval", interval, Duration::from_secs(5))?,
        positive("timeout", timeout, Duration::from_secs(30))?,
        positive("threshold", threshold, Duration::from_millis(2000))?,
    ))
}

/// `token`, or the first line of `token_file`; exactly one must be set.
pub fn token(
    token: Option<String>,
    token_file: Option<&Path>,
) -> Result<SecretString, ConfigError> {
    match (token, token_file) {
        (Some(_), Some(_)) => Err(ConfigError(
            "keys `token` and `token_file`: set one of them, not both".into(),
        )),
        (None, None) => Err(ConfigError::key("token", "missing (or set `token_file`)")),
        (Some(t), None) if t.trim().is_empty() => Err(ConfigError::key("token", "is empty")),
        (Some(t), None) => Ok(SecretString::from(t.trim().to_string())),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::key("token_file", format!("cannot read {}: {e}", path.display()))
            })?;
            let t = text.lines().next().unwrap_or("").trim();
            if t.is_empty() {
                return Err(ConfigError::key(
                    "token_file",
                    format!("{} is empty", path.display()),
                ));
            }
            Ok(SecretString::from(t.to_string()))
        }
    }
}

/// An `http://` or `https://` URL with a host.
pub fn http_url(key: &str, value: &str) -> Result<reqwest::Url, ConfigError> {
    let url = reqwest::Url::parse(value.trim()).map_err(|e| {
        ConfigError::key(
            key,
            format!("not a URL ({e}); write it like http://127.0.0.1:8700"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::key(
            key,
            "must be an http:// or https:// URL with a host",
        ));
    }
    Ok(url)
}

/// A duration that must be more than zero.
pub fn positive(
    key: &str,
    value: Option<HumanDuration>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let d = value.map_or(default, |h| h.0);
    if d.is_zero() {
        return Err(ConfigError::key(key, "must be more than 0"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn token_file_is_read_and_trimmed_and_excludes_token() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), "from-file\nsecond line\n").unwrap();
        assert_eq!(
            token(None, Some(f.path())).unwrap().expose_secret(),
            "from-file"
        );
        let e = token(Some("a".into()), Some(f.path())).unwrap_err();
        assert!(e.to_string().contains("not both"));
        let e = token(None, Some(Path::new("/nonexistent/token"))).unwrap_err();
        assert!(e.to_string().contains("`token_file`"), "{e}");
        let e = token(Some("  ".into()), None).unwrap_err();
        assert_eq!(e.to_string(), "key `token`: is empty");
    }

    #[test]
    fn only_http_urls_with_a_host_are_accepted() {
        assert_eq!(
            http_url("watchdog_url", " http://127.0.0.1:8700 ")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8700/"
        );
        for bad in ["ftp://x", "127.0.0.1:8700", "http://"] {
            let e = http_url("watchdog_url", bad).unwrap_err().to_string();
            assert!(e.starts_with("key `watchdog_url`:"), "{bad}: {e}");
        }
    }

    #[test]
    fn timing_has_the_contract_defaults_and_refuses_zero() {
        let (i, t, th) = timing(None, None, None).unwrap();
        assert_eq!(
            (i, t, th),
            (
                Duration::from_secs(5),
                Duration::from_secs(30),
                Duration::from_millis(2000)
            )
        );
        let e = timing(Some(HumanDuration(Duration::ZERO)), None, None).unwrap_err();
        assert_eq!(e.to_string(), "key `interval`: must be more than 0");
    }
}
