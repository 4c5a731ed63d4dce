//! A probe result in the seed script's words (the same words the watchdog
//! writes to its log file), for a reporter's own stderr:
//! `[blue-direct - OK] 3ms. Threshold: 2000ms`.

use bgw_wire::ProbeResult;
use std::time::Duration;

/// Logs the [`seed_line`] of every result in `$results` (`&[ProbeResult]`)
/// under `$target` (a literal, as `tracing` wants): `info` when the probe
/// passed, `warn` when it failed. A macro so that each binary keeps its own
/// log target (`bgw_checker::probe`, `bgw_prober::probe`).
#[macro_export]
macro_rules! log_seed_lines {
    ($target:literal, $results:expr, $threshold:expr) => {
        for r in $results {
            let line = $crate::seed_line::seed_line(r, $threshold);
            if r.ok {
                ::tracing::info!(target: $target, "{line}");
            } else {
                ::tracing::warn!(target: $target, "{line}");
            }
        }
    };
}

/// The seed-style line for one result.
pub fn seed_line(r: &ProbeResult, threshold: Duration) -> String {
    let threshold_ms = threshold.as_millis();
    let latency = r.latency_ms.unwrap_or(0);
    let error = r.error.as_deref().unwrap_or("failed");
    let answered_well = r.status.is_some_and(|s| (200..300).contains(&s));
    if r.ok {
        format!(
            "[{} - OK] {latency}ms. Threshold: {threshold_ms}ms",
            r.target
        )
    } else if answered_well && error.starts_with("latency ") {
        format!(
            "WARNING: {} taking too long to respond! {latency}ms. Threshold: {threshold_ms}ms",
            r.target
        )
    } else if answered_well {
        format!("ALERT: {} failing! {error}", r.target)
    } else {
        format!("ALERT: {} not responding! {error}", r.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgw_wire::{Color, Target};

    #[test]
    fn seed_lines_match_the_watchdog_log_style() {
        let mut r = ProbeResult {
            target: Target::BlueDirect,
            color: Some(Color::Blue),
            url: "http://127.0.0.1:3000/ping".into(),
            ok: true,
            status: Some(200),
            latency_ms: Some(3),
            error: None,
        };
        let t = Duration::from_millis(2000);
        assert_eq!(
            seed_line(&r, t),
            "[blue-direct - OK] 3ms. Threshold: 2000ms"
        );
        r.ok = false;
        r.latency_ms = Some(2350);
        r.error = Some("latency 2350ms over threshold 2000ms".into());
        assert_eq!(
            seed_line(&r, t),
            "WARNING: blue-direct taking too long to respond! 2350ms. Threshold: 2000ms"
        );
        r.status = None;
        r.error = Some("connection refused".into());
        assert_eq!(
            seed_line(&r, t),
            "ALERT: blue-direct not responding! connection refused"
        );
        r.status = Some(200);
        r.error = Some("served by green, live is blue".into());
        assert_eq!(
            seed_line(&r, t),
            "ALERT: blue-direct failing! served by green, live is blue"
        );
    }
}
