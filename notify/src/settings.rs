//! Configuration of each channel, as the watchdog and the prober embed it
//! under `[notify.slack]`, `[notify.email]` and `[notify.webhook]`.
//!
//! These types only hold what the file says; [`crate::build_channels`]
//! validates them (URLs, addresses, readable files) once at start, so a bad
//! value stops the binary with a message naming the key, never at the first
//! alert. A secret may be given inline or as a `*_file` path (Docker/systemd
//! secrets); files are read once, at start, and surrounding whitespace is
//! trimmed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bgw_wire::HumanDuration;
use secrecy::{ExposeSecret, SecretString};

use crate::error::ConfigError;

/// Default time limit of one send, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

fn default_timeout() -> HumanDuration {
    HumanDuration(DEFAULT_TIMEOUT)
}

/// `[notify.slack]`: a Slack incoming webhook.
///
/// ```toml
/// [notify.slack]
/// webhook_url = "https://hooks.slack.com/services/T000/B000/XXXX"
/// # or: webhook_url_file = "/run/secrets/slack_webhook"
/// timeout = "10s"
/// ```
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    /// The webhook URL; its path is the secret.
    #[serde(default)]
    pub webhook_url: Option<SecretString>,
    /// A file holding the webhook URL (instead of `webhook_url`).
    #[serde(default)]
    pub webhook_url_file: Option<PathBuf>,
    /// Time limit of one send (default `10s`).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

impl SlackSettings {
    pub fn new(webhook_url: impl Into<String>) -> Self {
        SlackSettings {
            webhook_url: Some(SecretString::from(webhook_url.into())),
            webhook_url_file: None,
            timeout: default_timeout(),
        }
    }
}

/// `[notify.webhook]`: a JSON POST of every [`crate::Notification`] to a URL.
///
/// ```toml
/// [notify.webhook]
/// url = "https://example.org/hook"   # or url_file = "/run/secrets/hook_url"
/// timeout = "10s"
/// ```
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// The URL; it may hold a token (path, query or user:password).
    #[serde(default)]
    pub url: Option<SecretString>,
    /// A file holding the URL (instead of `url`).
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// Time limit of one send (default `10s`).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

impl WebhookSettings {
    pub fn new(url: impl Into<String>) -> Self {
        WebhookSettings {
            url: Some(SecretString::from(url.into())),
            url_file: None,
            timeout: default_timeout(),
        }
    }
}

/// `[notify.email]`: email over SMTP.
///
/// ```toml
/// [notify.email]
/// smtp_url = "smtps://bgw:secret@mail.example.org:465"  # implicit TLS
/// # smtp_url = "smtp://mail.example.org:587?tls=required"  # STARTTLS
/// # smtp_url = "smtp://127.0.0.1:25"                       # plain, local relay
/// from = "bgw@example.org"          # or "bgw <bgw@example.org>"
/// to = ["ops@example.org"]          # or one string
/// username = "bgw"                  # instead of user:password in the URL
/// password_file = "/run/secrets/smtp_password"   # or password = "..."
/// ca_file = "/etc/bgw/private-ca.pem"            # extra trusted CA (optional)
/// timeout = "10s"
/// ```
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// `smtp://host:port` (plain), `smtp://host:port?tls=required` (STARTTLS),
    /// `smtps://host:port` (implicit TLS); may hold `user:password@`.
    pub smtp_url: SecretString,
    /// Sender mailbox.
    pub from: String,
    /// Recipients: one address or a list.
    #[serde(deserialize_with = "one_or_many")]
    pub to: Vec<String>,
    /// SMTP user name (instead of the URL's).
    #[serde(default)]
    pub username: Option<String>,
    /// SMTP password (instead of the URL's).
    #[serde(default)]
    pub password: Option<SecretString>,
    /// A file holding the SMTP password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// PEM file of a CA to trust besides the public roots (private CA,
    /// self-signed server).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Time limit of one send, connection and TLS included (default `10s`).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

impl EmailSettings {
    pub fn new(smtp_url: impl Into<String>, from: impl Into<String>, to: Vec<String>) -> Self {
        EmailSettings {
            smtp_url: SecretString::from(smtp_url.into()),
            from: from.into(),
            to,
            username: None,
            password: None,
            password_file: None,
            ca_file: None,
            timeout: default_timeout(),
        }
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    match <OneOrMany as serde::Deserialize>::deserialize(d) {
        Ok(OneOrMany::One(s)) => Ok(vec![s]),
        Ok(OneOrMany::Many(v)) => Ok(v),
        Err(_) => Err(serde::de::Error::custom(
            "expected an address or a list of addresses",
        )),
    }
}

/// Resolves a secret given inline (`key`) or as a file (`file_key`): exactly
/// one must be set. Errors name the keys and the file, never the content.
pub(crate) fn read_secret(
    value: Option<&SecretString>,
    file: Option<&Path>,
    key: &str,
    file_key: &str,
) -> Result<Option<SecretString>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            key,
            format!("set either {key} or {file_key}, not both"),
        )),
        (Some(v), None) => Ok(Some(v.clone())),
        (None, Some(path)) => {
            let content = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new(file_key, format!("cannot read {}: {e}", path.display()))
            })?;
            let trimmed = content.trim();
            if trimmed.is_empty() {
                return Err(ConfigError::new(
                    file_key,
                    format!("{} is empty", path.display()),
                ));
            }
            Ok(Some(SecretString::from(trimmed.to_string())))
        }
        (None, None) => Ok(None),
    }
}

/// Parses an `http(s)` URL held in a secret; the error never shows it.
pub(crate) fn parse_http_url(secret: &SecretString, key: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(secret.expose_secret().trim())
        .map_err(|e| ConfigError::new(key, format!("not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(
            key,
            format!("scheme must be http or https, not {:?}", url.scheme()),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new(key, "the URL has no host"));
    }
    Ok(url)
}

/// Checks a timeout is usable (a zero timeout would fail every send).
pub(crate) fn check_timeout(timeout: HumanDuration, key: &str) -> Result<Duration, ConfigError> {
    if timeout.0.is_zero() {
        return Err(ConfigError::new(key, "must be more than 0s"));
    }
    Ok(timeout.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_to_accepts_one_address_or_a_list() {
        let one: EmailSettings =
            serde_json::from_str(r#"{"smtp_url": "smtp://h", "from": "a@b.c", "to": "x@y.z"}"#)
                .unwrap();
        assert_eq!(one.to, vec!["x@y.z"]);
        assert_eq!(one.timeout.0, DEFAULT_TIMEOUT);
        let many: EmailSettings = serde_json::from_str(
            r#"{"smtp_url": "smtp://h", "from": "a@b.c", "to": ["x@y.z", "w@y.z"]}"#,
        )
        .unwrap();
        assert_eq!(many.to.len(), 2);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = serde_json::from_str::<SlackSettings>(r#"{"webhook": "x"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `webhook`"), "{e}");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let s = SlackSettings::new("https://hooks.slack.com/services/T0/B0/SECRETPATH");
        assert!(!format!("{s:?}").contains("SECRETPATH"));
    }

    #[test]
    fn secret_from_file_is_trimmed_and_both_forms_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("url");
        std::fs::write(&path, "https://x/y\n").unwrap();
        let got = read_secret(None, Some(&path), "k", "k_file")
            .unwrap()
            .unwrap();
        assert_eq!(got.expose_secret(), "https://x/y");
        let both = read_secret(Some(&"v".into()), Some(&path), "k", "k_file").unwrap_err();
        assert_eq!(both.key, "k");
        let missing =
            read_secret(None, Some(Path::new("/nonexistent/x")), "k", "k_file").unwrap_err();
        assert_eq!(missing.key, "k_file");
    }

    #[test]
    fn invalid_url_error_names_the_key_but_not_the_value() {
        let e = parse_http_url(&"ftp://secret-host/SECRETPATH".into(), "notify.webhook.url")
            .unwrap_err();
        assert!(e.to_string().starts_with("notify.webhook.url: "), "{e}");
        assert!(!e.to_string().contains("SECRETPATH"), "{e}");
        let e = parse_http_url(&"not a url SECRET".into(), "k").unwrap_err();
        assert!(!e.to_string().contains("SECRET"), "{e}");
    }
}
