//! The direct health check the rollback policy asks for right before it
//! switches: `GET http://<address><path>` on every upstream address of a
//! color, bypassing nginx, on new connections.

use super::settings::ProxySettings;
use bgw_wire::Color;
use std::time::{Duration, Instant};

/// The result of probing one color directly.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DirectHealth {
    /// `Some(true)`: every address answered 2xx in time; `Some(false)`: one
    /// did not; `None`: nothing could be probed (unix socket addresses).
    pub healthy: Option<bool>,
    /// What was seen, e.g. `blue-direct: GET http://127.0.0.1:3000/ping returned 502`.
    pub reason: String,
}

/// Probes every address of `color`'s upstream with `timeout` each.
pub async fn probe_direct(
    settings: &ProxySettings,
    color: Color,
    timeout: Duration,
) -> DirectHealth {
    let client = match reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            return DirectHealth {
                healthy: None,
                reason: format!("{color}-direct: no HTTP client: {e}"),
            }
        }
    };
    let mut seen = Vec::new();
    let mut probed = 0;
    for address in &settings.upstream(color).0 {
        if address.starts_with("unix:") {
            continue;
        }
        probed += 1;
        let url = format!("http://{address}{}", settings.path);
        let started = Instant::now();
        match client.get(&url).send().await {
            Ok(resp) if resp.status().is_success() => {
                seen.push(format!(
                    "GET {url} {} in {} ms",
                    resp.status().as_u16(),
                    started.elapsed().as_millis()
                ));
            }
            Ok(resp) => {
                return DirectHealth {
                    healthy: Some(false),
                    reason: format!(
                        "{color}-direct: GET {url} returned {}",
                        resp.status().as_u16()
                    ),
                }
            }
            Err(e) => {
                let why = if e.is_timeout() {
                    format!("timed out after {}", bgw_wire::format_duration(timeout))
                } else if e.is_connect() {
                    "connection failed".to_string()
                } else {
                    "request failed".to_string()
                };
                return DirectHealth {
                    healthy: Some(false),
                    reason: format!("{color}-direct: GET {url} {why}"),
                };
            }
        }
    }
    if probed == 0 {
        return DirectHealth {
            healthy: None,
            reason: format!("{color}-direct: no TCP address to probe"),
        };
    }
    DirectHealth {
        healthy: Some(true),
        reason: format!("{color}-direct: {}", seen.join(", ")),
    }
}
