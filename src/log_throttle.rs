//! At most one log line per period for a failure that can repeat fast (an API server
//! that is down, a listener out of file descriptors, a filter failing on every
//! notification), with the count of the occurrences that were not logged.

use std::time::{Duration, Instant};

/// Says when a repeating failure is due to be logged again.
#[derive(Debug)]
pub(crate) struct LogThrottle {
    every: Duration,
    logged: Option<Instant>,
    unlogged: u64,
}

impl LogThrottle {
    /// A line at most every `every`.
    pub(crate) const fn new(every: Duration) -> LogThrottle {
        LogThrottle {
            every,
            logged: None,
            unlogged: 0,
        }
    }

    /// One more occurrence: `Some(n)` when it is to be logged now, `n` being how many
    /// were not logged since the last line; `None` (and counted) otherwise.
    pub(crate) fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .logged
            .is_some_and(|at| now.duration_since(at) < self.every)
        {
            self.unlogged += 1;
            return None;
        }
        self.logged = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }

    /// Occurrences since the last line, not logged.
    #[cfg(test)]
    pub(crate) fn unlogged(&self) -> u64 {
        self.unlogged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_with_the_count_of_the_rest() {
        let mut t = LogThrottle::new(Duration::from_secs(3600));
        assert_eq!(t.due(), Some(0));
        assert_eq!((t.due(), t.due()), (None, None));
        assert_eq!(t.unlogged(), 2);
        let mut t = LogThrottle::new(Duration::ZERO);
        assert_eq!((t.due(), t.due()), (Some(0), Some(0)));
    }
}
