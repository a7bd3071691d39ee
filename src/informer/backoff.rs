//! Exponential backoff with jitter between failed requests.

use std::time::Duration;

/// client-go's reflector backoff: 800ms doubling up to 30s, jittered so that many
/// kubebridge instances restarted together do not hit the API server in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(800), Duration::from_secs(30))
    }
}

impl Backoff {
    /// A backoff starting at `initial`, never longer than `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            attempt: 0,
        }
    }

    /// The next delay: `initial * 2^attempt`, capped, then scaled by a random factor in
    /// [0.5, 1.5).
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.initial.saturating_mul(1u32 << self.attempt.min(16));
        self.attempt = self.attempt.saturating_add(1);
        exp.min(self.max).mul_f64(0.5 + fastrand::f64())
    }

    /// Back to the initial delay, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every delay lies in the jitter band around `initial * 2^attempt` capped at
    /// `max`: a backoff that does not grow falls below the band by the third attempt,
    /// one without its cap rises above it by the sixth, and one that does not reset
    /// starts the next round above the first band.
    #[test]
    fn grows_caps_and_resets() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        let mut b = Backoff::new(initial, max);
        let in_band = |delay: Duration, attempt: u32| {
            let base = initial.saturating_mul(1 << attempt).min(max);
            // Jitter scales by [0.5, 1.5); the upper end is inclusive for float rounding.
            let (low, high) = (base.mul_f64(0.5), base.mul_f64(1.5));
            assert!(
                delay >= low && delay <= high,
                "attempt {attempt}: {delay:?} outside [{low:?}, {high:?}]"
            );
        };
        for attempt in 0..12 {
            in_band(b.next_delay(), attempt);
        }
        b.reset();
        in_band(b.next_delay(), 0);
        in_band(b.next_delay(), 1);
    }
}
