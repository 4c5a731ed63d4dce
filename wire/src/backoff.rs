//! Jittered exponential backoff ("full jitter") for every client that retries
//! against the watchdog or a notification channel.
//!
//! The jitter source is std's randomly seeded hasher, so this needs no
//! random-number crate and the agent stays small.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Exponential backoff: attempt `n` waits a random time in
/// `[base * 2^n / 2, base * 2^n]`, capped at `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
    seed: RandomState,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            attempt: 0,
            seed: RandomState::new(),
        }
    }

    /// Number of failures since the last [`Backoff::reset`].
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Forget past failures: the next delay starts from `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The delay before the next attempt; each call counts one failure.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = Self::ceiling(self.base, self.max, self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let mut h = self.seed.build_hasher();
        h.write_u32(self.attempt);
        let unit = (h.finish() >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        ceiling.mul_f64(0.5 + 0.5 * unit)
    }

    /// The largest delay attempt `n` may wait: `min(max, base * 2^n)`.
    pub fn ceiling(base: Duration, max: Duration, attempt: u32) -> Duration {
        base.checked_mul(1u32 << attempt.min(30))
            .map_or(max, |d| d.min(max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_jittered_and_capped() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut prev_ceiling = Duration::ZERO;
        for n in 0..40 {
            let ceiling = Backoff::ceiling(Duration::from_millis(100), Duration::from_secs(2), n);
            let d = b.next_delay();
            assert!(
                d <= ceiling && d >= ceiling / 2,
                "attempt {n}: {d:?} vs {ceiling:?}"
            );
            assert!(ceiling >= prev_ceiling);
            prev_ceiling = ceiling;
        }
        assert_eq!(prev_ceiling, Duration::from_secs(2));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn two_clients_do_not_retry_in_lockstep() {
        let mut a = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let same = (0..10).filter(|_| a.next_delay() == b.next_delay()).count();
        assert!(same < 10);
    }
}
