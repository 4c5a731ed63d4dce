//! The HTTP delivery shared by Slack and the webhook: one POST of a JSON body
//! with a time limit, and the classification of the answer.
//!
//! 2xx is delivered. 429 and 5xx, timeouts and connection errors are
//! transient (with the server's `Retry-After` when it sends one). Any other
//! answer (400 `invalid_payload`, 403, 404 `no_service`, a redirect) is
//! permanent: retrying the same payload to the same URL will not help.
//! Redirects are not followed, so a URL's secret is never replayed to
//! another host.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

use crate::error::{error_chain, Scrubber, SendError};

/// Longest part of an answer body quoted in an error.
const BODY_EXCERPT: usize = 200;

/// A POST target: a client with the channel's time limit and the URL.
#[derive(Debug)]
pub(crate) struct HttpTarget {
    client: reqwest::Client,
    url: url::Url,
    timeout: Duration,
    scrubber: Scrubber,
}

impl HttpTarget {
    pub(crate) fn new(url: url::Url, timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("bgw-notify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", e.without_url()))?;
        let mut scrubber = Scrubber::default();
        scrubber.add_url(&url);
        Ok(HttpTarget {
            client,
            url,
            timeout,
            scrubber,
        })
    }

    /// POSTs `body` (already JSON) with `headers`; classifies the outcome.
    pub(crate) async fn post_json(
        &self,
        body: Vec<u8>,
        headers: &[(&'static str, String)],
    ) -> Result<(), SendError> {
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let result = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let retry_after = parse_retry_after(response.headers());
                // The body is only read for the error message; a slow body
                // is bounded by the client's timeout.
                let body = response.text().await.unwrap_or_default();
                classify(status, retry_after, &body)
            }
            Err(e) => Err(self.request_error(e)),
        };
        result.map_err(|e| e.scrubbed(&self.scrubber))
    }

    fn request_error(&self, e: reqwest::Error) -> SendError {
        let e = e.without_url();
        if e.is_timeout() {
            SendError::transient(format!(
                "no answer within {}",
                bgw_wire::format_duration(self.timeout)
            ))
        } else if e.is_connect() {
            SendError::transient(format!("cannot connect: {}", error_chain(&e)))
        } else if e.is_builder() {
            SendError::permanent(format!("cannot build the request: {}", error_chain(&e)))
        } else {
            SendError::transient(format!("request failed: {}", error_chain(&e)))
        }
    }
}

/// Classifies an HTTP answer (see the module doc).
pub(crate) fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &str,
) -> Result<(), SendError> {
    if status.is_success() {
        return Ok(());
    }
    let excerpt: String = body.trim().chars().take(BODY_EXCERPT).collect();
    let reason = if excerpt.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        format!("HTTP {}: {excerpt}", status.as_u16())
    };
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Err(SendError::Transient {
            reason,
            retry_after,
        })
    } else if status.is_redirection() {
        Err(SendError::permanent(format!(
            "{reason} (redirects are not followed: fix the URL)"
        )))
    } else {
        Err(SendError::permanent(reason))
    }
}

/// `Retry-After` as seconds or as an HTTP date.
pub(crate) fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_like_slack_documents_them() {
        assert!(classify(StatusCode::OK, None, "ok").is_ok());
        assert!(classify(StatusCode::NO_CONTENT, None, "").is_ok());
        let e = classify(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(3)),
            "",
        )
        .unwrap_err();
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert!(e.is_transient());
        for code in [500, 502, 503, 504] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(classify(status, None, "").unwrap_err().is_transient());
        }
        for (code, body) in [
            (400, "invalid_payload"),
            (403, "action_prohibited"),
            (404, "no_service"),
            (410, "channel_is_archived"),
            (301, ""),
        ] {
            let status = StatusCode::from_u16(code).unwrap();
            let e = classify(status, None, body).unwrap_err();
            assert!(!e.is_transient(), "{code}");
            assert!(e.reason().contains(&code.to_string()), "{e}");
            assert!(e.reason().contains(body), "{e}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "17".parse().unwrap());
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(17)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        h.insert(RETRY_AFTER, later.parse().unwrap());
        let d = parse_retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(parse_retry_after(&h), None);
    }
}
