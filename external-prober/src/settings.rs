//! The prober's configuration: TOML file, then `BGW_<KEY>` environment
//! variables (`BGW_NOTIFY_SLACK_WEBHOOK_URL` for `[notify.slack]`
//! `webhook_url`), then flags; parsed into [`Settings`], with errors that
//! name the key and never quote a secret.

use bgw_notify::{EmailSettings, SlackSettings, WebhookSettings};
use bgw_reporter::settings::{
    http_url, layered, observer, positive, required, timing, token, ConfigError, Overrides,
};
use bgw_wire::HumanDuration;
use secrecy::SecretString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The prober's top-level keys.
pub const KEYS: &[&str] = &[
    "watchdog_url",
    "token",
    "token_file",
    "observer",
    "public_url",
    "interval",
    "timeout",
    "threshold",
    "silence_after",
    "state_dir",
];

/// The sections, for `BGW_<SECTION>_<KEY>` variables.
pub const SECTIONS: &[&str] = &["notify", "notify.slack", "notify.email", "notify.webhook"];

/// The prober's settings, validated (the channels themselves are validated
/// by `bgw_notify::build_channels` at start).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base URL of the watchdog: reports go to `/api/v1/report`, the
    /// watchdog itself is probed at `/healthz`.
    pub watchdog_url: reqwest::Url,
    pub token: SecretString,
    pub observer: String,
    /// The public endpoint, as a visitor reaches it.
    pub public_url: reqwest::Url,
    pub interval: Duration,
    pub timeout: Duration,
    pub threshold: Duration,
    /// The watchdog silent this long → the prober's own DOWN.
    pub silence_after: Duration,
    /// Holds `state.json` and `outbox/`.
    pub state_dir: PathBuf,
    pub notify: Notify,
}

/// `[notify.slack]`, `[notify.email]`, `[notify.webhook]`, as in the
/// watchdog's file. The watchdog's `repeat` and `all_is_well` keys are
/// accepted (so the section can be copied as is) and ignored: the prober
/// alerts once per outage.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    pub slack: Option<SlackSettings>,
    pub email: Option<EmailSettings>,
    pub webhook: Option<WebhookSettings>,
    #[serde(default, rename = "repeat")]
    _repeat: Option<toml::Value>,
    #[serde(default, rename = "all_is_well")]
    _all_is_well: Option<toml::Value>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    watchdog_url: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    observer: Option<String>,
    public_url: Option<String>,
    interval: Option<HumanDuration>,
    timeout: Option<HumanDuration>,
    threshold: Option<HumanDuration>,
    silence_after: Option<HumanDuration>,
    state_dir: Option<PathBuf>,
    #[serde(default)]
    notify: Notify,
}

/// Loads and validates the prober's settings.
pub fn load(
    config: Option<&Path>,
    env: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    flags: &Overrides,
) -> Result<Settings, ConfigError> {
    let raw: Raw = layered(config, env, KEYS, SECTIONS, flags)?;
    let watchdog_url = http_url("watchdog_url", &required("watchdog_url", raw.watchdog_url)?)?;
    let public_url = http_url("public_url", &required("public_url", raw.public_url)?)?;
    let observer = observer(raw.observer, "prober")?;
    let state_dir = raw
        .state_dir
        .unwrap_or_else(|| PathBuf::from("/var/lib/bgw-prober"));
    if state_dir.as_os_str().is_empty() {
        return Err(ConfigError::key("state_dir", "is empty"));
    }
    let token = token(raw.token, raw.token_file.as_deref())?;
    let (interval, timeout, threshold) = timing(raw.interval, raw.timeout, raw.threshold)?;
    Ok(Settings {
        watchdog_url,
        token,
        observer,
        public_url,
        interval,
        timeout,
        threshold,
        silence_after: positive("silence_after", raw.silence_after, Duration::from_secs(30))?,
        state_dir,
        notify: raw.notify,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &[(&str, &str)] = &[
        ("BGW_WATCHDOG_URL", "http://127.0.0.1:8700"),
        ("BGW_PUBLIC_URL", "http://203.0.113.10/ping"),
        ("BGW_TOKEN", "s3cret"),
    ];

    #[test]
    fn defaults_follow_the_contract() {
        let s = load(None, MINIMAL.to_vec(), &Overrides::default()).unwrap();
        assert_eq!(s.observer, "prober");
        assert_eq!(s.interval, Duration::from_secs(5));
        assert_eq!(s.timeout, Duration::from_secs(30));
        assert_eq!(s.threshold, Duration::from_millis(2000));
        assert_eq!(s.silence_after, Duration::from_secs(30));
        assert_eq!(s.state_dir, PathBuf::from("/var/lib/bgw-prober"));
        assert_eq!(s.public_url.as_str(), "http://203.0.113.10/ping");
        assert!(s.notify.slack.is_none() && s.notify.email.is_none());
    }

    #[test]
    fn notify_sections_come_from_the_file_and_the_environment() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            f.path(),
            "silence_after = \"10s\"\n[notify]\nrepeat = \"1h\"\n[notify.email]\n\
             smtp_url = \"smtp://127.0.0.1:25\"\nfrom = \"bgw@example.org\"\nto = [\"ops@example.org\"]\n",
        )
        .unwrap();
        let mut vars = MINIMAL.to_vec();
        vars.extend_from_slice(&[(
            "BGW_NOTIFY_SLACK_WEBHOOK_URL",
            "http://127.0.0.1:9/services/T/B/X",
        )]);
        let s = load(Some(f.path()), vars, &Overrides::default()).unwrap();
        assert_eq!(s.silence_after, Duration::from_secs(10));
        assert!(s.notify.slack.is_some());
        assert_eq!(s.notify.email.unwrap().to, vec!["ops@example.org"]);
    }

    #[test]
    fn bad_values_name_the_key_and_hide_secrets() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("BGW_SILENCE_AFTER", "soon")], "`silence_after`"),
            (&[("BGW_SILENCE_AFTER", "0s")], "`silence_after`"),
            (&[("BGW_PUBLIC_URL", "203.0.113.10/ping")], "`public_url`"),
            (&[("BGW_INTERVAL", "5")], "`interval`"),
            (&[("BGW_NOTIFY_SLACK_WEBHOK_URL", "x")], "webhok_url"),
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
    fn public_url_and_watchdog_url_are_required() {
        let e = load(
            None,
            [("BGW_WATCHDOG_URL", "http://a:1"), ("BGW_TOKEN", "t")],
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("`public_url`: missing"), "{e}");
    }

    #[test]
    fn flags_win_over_the_environment() {
        let mut flags = Overrides::default();
        flags.set("silence_after", Some("3s"));
        flags.set("state_dir", Some("/tmp/p"));
        let mut vars = MINIMAL.to_vec();
        vars.extend_from_slice(&[("BGW_SILENCE_AFTER", "1m")]);
        let s = load(None, vars, &flags).unwrap();
        assert_eq!(s.silence_after, Duration::from_secs(3));
        assert_eq!(s.state_dir, PathBuf::from("/tmp/p"));
    }
}
