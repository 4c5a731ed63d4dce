//! Notification channels shared by the watchdog and the external prober:
//! Slack (incoming webhook, Block Kit), email (SMTP via lettre) and a generic
//! JSON webhook.
//!
//! The watchdog's outbox decides *what* and *when*; this crate only renders a
//! [`Notification`] and delivers it once per call, reporting whether a retry
//! can help ([`SendError::Transient`]) or not ([`SendError::Permanent`]), and
//! how long to wait ([`retry_delay`]). It never retries by itself, so the
//! caller stays the one place that knows what was delivered.
//!
//! ```no_run
//! # async fn demo(n: bgw_notify::Notification) -> Result<(), Box<dyn std::error::Error>> {
//! let slack = bgw_notify::SlackSettings::new("https://hooks.slack.com/services/T/B/X");
//! let channels = bgw_notify::build_channels(Some(&slack), None, None)?;
//! for channel in &channels {
//!     channel.send(&n).await?;
//! }
//! # Ok(()) }
//! ```

pub mod email;
pub mod error;
mod http;
pub mod message;
pub mod retry;
pub mod settings;
pub mod slack;
pub mod webhook;

use std::sync::Arc;

pub use error::{ConfigError, SendError};
pub use message::{Kind, Member, Notification};
pub use retry::{retry_delay, RETRY_BASE, RETRY_MAX};
pub use settings::{EmailSettings, SlackSettings, WebhookSettings, DEFAULT_TIMEOUT};

/// One configured channel. Cheap to clone (the connection setup is shared).
#[derive(Debug, Clone)]
pub struct Channel {
    inner: Arc<Inner>,
}

#[derive(Debug)]
enum Inner {
    Slack(slack::Slack),
    Email(email::Email),
    Webhook(webhook::Webhook),
}

impl Channel {
    /// A Slack channel; validates the URL (and reads its file) now.
    pub fn slack(settings: &SlackSettings) -> Result<Channel, ConfigError> {
        Ok(Channel::from(Inner::Slack(slack::Slack::new(settings)?)))
    }

    /// An email channel; validates the SMTP URL, addresses and files now.
    pub fn email(settings: &EmailSettings) -> Result<Channel, ConfigError> {
        Ok(Channel::from(Inner::Email(email::Email::new(settings)?)))
    }

    /// A webhook channel; validates the URL (and reads its file) now.
    pub fn webhook(settings: &WebhookSettings) -> Result<Channel, ConfigError> {
        Ok(Channel::from(Inner::Webhook(webhook::Webhook::new(
            settings,
        )?)))
    }

    fn from(inner: Inner) -> Channel {
        Channel {
            inner: Arc::new(inner),
        }
    }

    /// `"slack"`, `"email"` or `"webhook"`: the key the outbox stores.
    pub fn name(&self) -> &'static str {
        match &*self.inner {
            Inner::Slack(_) => "slack",
            Inner::Email(_) => "email",
            Inner::Webhook(_) => "webhook",
        }
    }

    /// Delivers `n` once, within the channel's time limit. Never retries and
    /// never puts a secret in the error.
    pub async fn send(&self, n: &Notification) -> Result<(), SendError> {
        let result = match &*self.inner {
            Inner::Slack(c) => c.send(n).await,
            Inner::Email(c) => c.send(n).await,
            Inner::Webhook(c) => c.send(n).await,
        };
        if let Err(e) = &result {
            tracing::debug!(channel = self.name(), event_id = n.event_id, error = %e, "send failed");
        }
        result
    }
}

/// Builds the configured channels, in the order slack, email, webhook.
/// Fails at start on the first invalid setting, naming its key.
pub fn build_channels(
    slack: Option<&SlackSettings>,
    email: Option<&EmailSettings>,
    webhook: Option<&WebhookSettings>,
) -> Result<Vec<Channel>, ConfigError> {
    let mut channels = Vec::new();
    if let Some(s) = slack {
        channels.push(Channel::slack(s)?);
    }
    if let Some(s) = email {
        channels.push(Channel::email(s)?);
    }
    if let Some(s) = webhook {
        channels.push(Channel::webhook(s)?);
    }
    Ok(channels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_channels_keeps_order_and_names() {
        let channels = build_channels(
            Some(&SlackSettings::new(
                "https://hooks.slack.com/services/T/B/X",
            )),
            Some(&EmailSettings::new(
                "smtp://127.0.0.1:25",
                "bgw@example.org",
                vec!["ops@example.org".into()],
            )),
            Some(&WebhookSettings::new("http://127.0.0.1:9/hook")),
        )
        .unwrap();
        let names: Vec<_> = channels.iter().map(Channel::name).collect();
        assert_eq!(names, ["slack", "email", "webhook"]);
        assert!(build_channels(None, None, None).unwrap().is_empty());
    }

    #[test]
    fn missing_or_bad_urls_are_config_errors_naming_the_key() {
        let e = build_channels(
            Some(&SlackSettings {
                webhook_url: None,
                webhook_url_file: None,
                timeout: bgw_wire::HumanDuration(DEFAULT_TIMEOUT),
            }),
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(e.key, "notify.slack.webhook_url");
        let e = build_channels(
            None,
            None,
            Some(&WebhookSettings::new("localhost:80/SECRET")),
        )
        .unwrap_err();
        assert_eq!(e.key, "notify.webhook.url");
        assert!(!e.to_string().contains("SECRET"), "{e}");
        let e = build_channels(
            Some(&SlackSettings {
                timeout: bgw_wire::HumanDuration(std::time::Duration::ZERO),
                ..SlackSettings::new("https://hooks.slack.com/services/T/B/X")
            }),
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(e.key, "notify.slack.timeout");
    }
}
