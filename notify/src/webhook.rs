//! The generic webhook: a POST of the notification as JSON.
//!
//! The body is exactly `serde_json` of [`Notification`]:
//!
//! ```json
//! {
//!   "event_id": 42,                 // id of the causing event (0 if none)
//!   "kind": "down",                 // down | up | reminder | flapping | rollback |
//!                                   // rollback_refused | switch_failed |
//!                                   // delivery_failed | all_is_well
//!   "check": "blue",
//!   "color": "blue",                // "blue" | "green" | null
//!   "state": "down",
//!   "reason": "no heartbeat for 12s (period 5s, grace 5s)",
//!   "at": "2026-11-26T14:03:20Z",   // RFC 3339, UTC: when it happened
//!   "down_for": null,               // on recovery: "3m12s"
//!   "live": "blue",                 // live color at the time, or null
//!   "from": null, "to": null,       // rollback / switch colors
//!   "members": [],                  // [{"check", "color", "state", "reason"}]
//!   "source": "watchdog"            // "watchdog" | "prober"
//! }
//! ```
//!
//! Headers: `Content-Type: application/json`, `User-Agent: bgw-notify/<version>`
//! and `X-Bgw-Event-Id: <event_id>`, which a receiver can use to drop the rare
//! repeat (the outbox delivers at least once; see the watchdog's README).
//! Answers are classified like Slack's: 2xx delivered; 429 (with
//! `Retry-After`), 5xx, timeouts and connection errors retried; other 4xx
//! are permanent.

use crate::error::SendError;
use crate::http::HttpTarget;
use crate::message::Notification;
use crate::settings::{check_timeout, parse_http_url, read_secret, WebhookSettings};
use crate::ConfigError;

/// Header carrying the notification's event id.
pub const EVENT_ID_HEADER: &str = "X-Bgw-Event-Id";

/// A configured webhook.
#[derive(Debug)]
pub(crate) struct Webhook {
    target: HttpTarget,
}

impl Webhook {
    pub(crate) fn new(settings: &WebhookSettings) -> Result<Self, ConfigError> {
        const KEY: &str = "notify.webhook.url";
        let url = read_secret(
            settings.url.as_ref(),
            settings.url_file.as_deref(),
            KEY,
            "notify.webhook.url_file",
        )?
        .ok_or_else(|| ConfigError::new(KEY, "missing: set url or url_file"))?;
        let url = parse_http_url(&url, KEY)?;
        let timeout = check_timeout(settings.timeout, "notify.webhook.timeout")?;
        let target = HttpTarget::new(url, timeout).map_err(|e| ConfigError::new(KEY, e))?;
        Ok(Webhook { target })
    }

    pub(crate) async fn send(&self, n: &Notification) -> Result<(), SendError> {
        let body = serde_json::to_vec(n).expect("a Notification always serializes");
        self.target
            .post_json(body, &[(EVENT_ID_HEADER, n.event_id.to_string())])
            .await
    }
}
