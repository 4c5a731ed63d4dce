//! Errors of the notification channels, and the policy that keeps secrets out
//! of them.
//!
//! Policy:
//! - A [`SendError`] says whether trying again can help: `Transient` (timeouts,
//!   connection errors, HTTP 429 and 5xx, SMTP 4xx) or `Permanent` (other HTTP
//!   4xx, SMTP 5xx). The outbox retries the first and gives up on the second.
//! - A [`ConfigError`] names the configuration key (`notify.email.to`) and what
//!   is wrong with it, never the value of a secret.
//! - No message ever contains a secret: the Slack webhook URL (its path is the
//!   token), the webhook URL, the SMTP URL or password. Errors are built from
//!   our own words plus the library's error chain, and every secret the
//!   channel knows is then scrubbed from the text ([`Scrubber`]).

use std::time::Duration;

/// Why a send failed, and whether a retry can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later; `retry_after` is the server's `Retry-After`, if any.
    #[error("{reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Retrying will not help (bad payload, revoked webhook, rejected address).
    #[error("{reason}")]
    Permanent { reason: String },
}

impl SendError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient { .. })
    }

    pub fn reason(&self) -> &str {
        match self {
            SendError::Transient { reason, .. } | SendError::Permanent { reason } => reason,
        }
    }

    /// The server's requested wait, when it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::Transient { retry_after, .. } => *retry_after,
            SendError::Permanent { .. } => None,
        }
    }

    pub(crate) fn transient(reason: impl Into<String>) -> Self {
        SendError::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub(crate) fn permanent(reason: impl Into<String>) -> Self {
        SendError::Permanent {
            reason: reason.into(),
        }
    }

    pub(crate) fn scrubbed(self, scrubber: &Scrubber) -> Self {
        match self {
            SendError::Transient {
                reason,
                retry_after,
            } => SendError::Transient {
                reason: scrubber.scrub(&reason),
                retry_after,
            },
            SendError::Permanent { reason } => SendError::Permanent {
                reason: scrubber.scrub(&reason),
            },
        }
    }
}

/// An invalid channel configuration, found at start.
/// Displays as `notify.email.to: invalid address "x"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// The full key: `notify.slack.webhook_url`.
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Removes known secrets from text before it leaves the channel.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scrubber {
    secrets: Vec<String>,
}

impl Scrubber {
    /// Secrets shorter than this are not scrubbed: replacing every `a` in a
    /// message would make it unreadable, and such a secret is no secret.
    const MIN_LEN: usize = 4;

    pub(crate) fn add(&mut self, secret: &str) {
        if secret.len() >= Self::MIN_LEN && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_string());
            // Longest first, so a URL is replaced whole before its path is.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// Adds the parts of a URL that can carry a secret: the whole URL, its
    /// path (a Slack webhook's token), its query and its password.
    pub(crate) fn add_url(&mut self, url: &url::Url) {
        self.add(url.as_str());
        if url.path().len() > 1 {
            self.add(url.path());
            self.add(url.path().trim_start_matches('/'));
        }
        if let Some(query) = url.query() {
            self.add(query);
        }
        if let Some(password) = url.password() {
            self.add(password);
            if let Ok(decoded) = percent_decode(password) {
                self.add(&decoded);
            }
        }
    }

    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "[redacted]");
            }
        }
        out
    }
}

/// Decodes `%XX` escapes (URL user and password are stored encoded).
pub(crate) fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
}

/// Joins an error and its sources: `error sending request: connection refused`.
/// Libraries that wrap an error in one of the same kind repeat themselves
/// (`Connection error: Connection error: ...`); repeats are dropped.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in out.split(": ") {
        if parts
            .last()
            .is_none_or(|last| !last.eq_ignore_ascii_case(part))
        {
            parts.push(part);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubber_removes_url_path_query_and_password() {
        let mut s = Scrubber::default();
        s.add_url(
            &"https://u:p%40ss123@hooks.example/services/T0/B0/XYZ?token=abcd"
                .parse()
                .unwrap(),
        );
        let text = s.scrub("POST /services/T0/B0/XYZ?token=abcd failed, pass p@ss123 or p%40ss123");
        assert!(!text.contains("XYZ"), "{text}");
        assert!(!text.contains("abcd"), "{text}");
        assert!(!text.contains("p@ss123"), "{text}");
        assert!(!text.contains("p%40ss123"), "{text}");
    }

    #[test]
    fn error_chain_drops_repeated_wrappers() {
        #[derive(Debug)]
        struct E(&'static str, Option<Box<E>>);
        impl std::fmt::Display for E {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for E {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let e = E(
            "Connection error: Connection error",
            Some(Box::new(E("invalid peer certificate", None))),
        );
        assert_eq!(
            error_chain(&e),
            "Connection error: invalid peer certificate"
        );
    }

    #[test]
    fn percent_decode_handles_escapes_and_stray_percent_signs() {
        assert_eq!(percent_decode("a%40b").unwrap(), "a@b");
        assert_eq!(percent_decode("100%").unwrap(), "100%");
        assert_eq!(percent_decode("%zz").unwrap(), "%zz");
    }
}
