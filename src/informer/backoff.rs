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

    #[test]
    fn grows_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first < Duration::from_millis(150));
        for _ in 0..10 {
            assert!(b.next_delay() < Duration::from_millis(1500));
        }
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(150));
    }
}
