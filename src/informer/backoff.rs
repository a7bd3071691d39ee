//! Exponential backoff with jitter between failed requests.

use std::time::Duration;

use tokio::time::Instant;

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

/// The wait before each relist: client-go's reflector backoff manager
/// (`NewExponentialBackoffManager(800ms, 30s, 2m, 2.0, 1.0)`). The delay grows like
/// [`Backoff`] from one relist to the next, whatever caused it and whether or not the
/// list in between succeeded, and starts over only once [`RELIST_RESET_AFTER`] has
/// passed since the previous relist: so a server that answers 410 to every watch sees
/// a few LISTs a minute, not thousands.
#[derive(Debug, Clone, Default)]
pub struct RelistBackoff {
    backoff: Backoff,
    /// When the previous relist's delay was drawn.
    last: Option<Instant>,
    /// Relists since the backoff last started over, this one included.
    in_a_row: u32,
}

/// client-go's `backoffResetDuration` for its reflector: two minutes without a relist
/// and the next one waits the initial delay again.
pub const RELIST_RESET_AFTER: Duration = Duration::from_secs(120);

impl RelistBackoff {
    /// The delay before this relist, and how many relists in a row it makes (1 for the
    /// first after a quiet spell).
    pub fn next_delay(&mut self) -> (Duration, u32) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) > RELIST_RESET_AFTER)
        {
            self.backoff.reset();
            self.in_a_row = 0;
        }
        self.last = Some(now);
        self.in_a_row = self.in_a_row.saturating_add(1);
        (self.backoff.next_delay(), self.in_a_row)
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

    /// Relists in a row keep growing the delay; two quiet minutes start it over.
    #[tokio::test(start_paused = true)]
    async fn relists_back_off_until_two_quiet_minutes() {
        let mut relists = RelistBackoff::default();
        let mut delays = Vec::new();
        for _ in 0..8 {
            let (delay, _) = relists.next_delay();
            delays.push(delay);
            tokio::time::sleep(delay).await;
        }
        // Jitter is at most 1.5x and at least 0.5x: the eighth is at the cap's band.
        assert!(delays[0] <= Duration::from_millis(1200), "{delays:?}");
        assert!(delays[7] >= Duration::from_secs(15), "{delays:?}");
        assert_eq!(relists.next_delay().1, 9);
        tokio::time::sleep(RELIST_RESET_AFTER + Duration::from_secs(1)).await;
        let (delay, in_a_row) = relists.next_delay();
        assert_eq!(in_a_row, 1);
        assert!(delay <= Duration::from_millis(1200), "{delay:?}");
    }
}
