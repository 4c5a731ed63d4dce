//! How long to wait before the next delivery attempt: jittered exponential
//! backoff that honours the server's `Retry-After`.
//!
//! The outbox calls [`retry_delay`] after each transient failure; the value is
//! pure (apart from the jitter), so the outbox can store the next attempt time
//! and survive a restart.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use bgw_wire::Backoff;

/// Delay after the first failure (at most; jitter makes it 0.5–1 s).
pub const RETRY_BASE: Duration = Duration::from_secs(1);

/// No wait is ever longer than this, whatever the server asks: a channel
/// that recovers is used again within 10 minutes.
pub const RETRY_MAX: Duration = Duration::from_secs(600);

/// The wait before the next attempt, after `attempt` failed attempts
/// (1 after the first failure; 0 is read as 1).
///
/// Without `retry_after`: a random time in `[c/2, c]` where
/// `c = min(RETRY_MAX, RETRY_BASE * 2^(attempt-1))`, so retries spread out
/// (1 s, 2 s, 4 s, ... 10 min) and many clients do not retry in lockstep.
/// With `retry_after` (HTTP 429/503 `Retry-After`): at least that long, so
/// we never come back before the server said we may. Capped at [`RETRY_MAX`].
pub fn retry_delay(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let ceiling = Backoff::ceiling(RETRY_BASE, RETRY_MAX, attempt.max(1) - 1);
    let jittered = ceiling.mul_f64(0.5 + 0.5 * unit_random());
    let delay = match retry_after {
        Some(asked) => jittered.max(asked),
        None => jittered,
    };
    delay.min(RETRY_MAX)
}

/// A random number in `[0, 1)` from std's randomly keyed hasher (no extra
/// crate needed for jitter).
fn unit_random() -> f64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_up_to_the_cap() {
        for attempt in 1..40 {
            let ceiling = Backoff::ceiling(RETRY_BASE, RETRY_MAX, attempt - 1);
            let d = retry_delay(attempt, None);
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "attempt {attempt}: {d:?} not in [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
        assert!(retry_delay(1, None) <= Duration::from_secs(1));
        assert!(retry_delay(3, None) >= Duration::from_secs(2));
        assert!(retry_delay(3, None) <= Duration::from_secs(4));
        assert!(retry_delay(30, None) >= RETRY_MAX / 2);
        assert!(retry_delay(0, None) <= RETRY_BASE);
    }

    #[test]
    fn retry_after_is_a_floor_but_never_beyond_the_cap() {
        assert!(retry_delay(1, Some(Duration::from_secs(30))) >= Duration::from_secs(30));
        assert_eq!(retry_delay(1, Some(Duration::from_secs(7200))), RETRY_MAX);
        // A short Retry-After does not shorten a long backoff.
        assert!(retry_delay(8, Some(Duration::from_secs(1))) >= Duration::from_secs(64));
    }

    #[test]
    fn jitter_spreads_retries() {
        let delays: std::collections::HashSet<_> = (0..20).map(|_| retry_delay(10, None)).collect();
        assert!(delays.len() > 1, "20 delays all equal: {delays:?}");
    }
}
