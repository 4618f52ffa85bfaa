//! Reconnect delays: exponential with full jitter, capped.

use std::time::Duration;

/// Delays between reconnect attempts: attempt n waits a random time in
/// `[base·2ⁿ / 2, base·2ⁿ]`, capped at `max`, so a restarted server is not hit by every client
/// at once.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            attempt: 0,
            rng: fastrand::Rng::new(),
        }
    }

    /// A backoff with a fixed seed (tests).
    pub fn seeded(base: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            rng: fastrand::Rng::with_seed(seed),
            ..Self::new(base, max)
        }
    }

    /// Attempts since the last success.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.attempt.min(16);
        self.attempt = self.attempt.saturating_add(1);
        let ceiling = self
            .base
            .saturating_mul(1u32 << exp)
            .min(self.max)
            .as_millis() as u64;
        let floor = ceiling / 2;
        Duration::from_millis(self.rng.u64(floor..=ceiling))
    }

    /// A connection succeeded: start again from `base`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_jitter_up_to_the_cap_and_resets() {
        let mut b = Backoff::seeded(Duration::from_millis(100), Duration::from_secs(2), 7);
        let delays: Vec<u64> = (0..8).map(|_| b.next_delay().as_millis() as u64).collect();
        for (n, d) in delays.iter().enumerate() {
            let ceiling = (100u64 << n).min(2000);
            assert!(*d >= ceiling / 2 && *d <= ceiling, "attempt {n}: {d} ms");
        }
        assert!(delays[7] >= 1000, "capped, not reset");
        let other: Vec<u64> = {
            let mut c = Backoff::seeded(Duration::from_millis(100), Duration::from_secs(2), 8);
            (0..8).map(|_| c.next_delay().as_millis() as u64).collect()
        };
        assert_ne!(delays, other, "jittered");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
