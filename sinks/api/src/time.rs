//! The envelope's timestamp format: UTC, RFC 3339, with milliseconds.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Shows a time as `2023-11-14T22:13:20.123Z`, the form of the envelope's `time` and
/// of a CloudEvent's `time`.
///
/// Written here rather than taken from a time crate so that this crate depends on
/// serde alone; `humantime::format_rfc3339_millis` prints the same (the tests compare
/// the two). A time before 1970 shows as the epoch: kubebridge stamps notifications
/// with the clock, which is never that far behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc3339Millis(pub SystemTime);

impl Rfc3339Millis {
    /// The text, written digit by digit into a fixed buffer: every notification is
    /// stamped, and `write!` with padded fields (the `Display` form, which serves the
    /// rest) cost more than the rest of the envelope's fields together. `None` after
    /// the year 9999 (four digits).
    pub fn to_bytes(self) -> Option<[u8; 24]> {
        let since = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let (year, month, day) = civil_from_days(secs / 86_400);
        if year > 9999 {
            return None;
        }
        let of_day = secs % 86_400;
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut value: u64| {
            for i in (at..at + width).rev() {
                // A digit: the remainder is below 10.
                out[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, of_day / 3600);
        put(14, 2, of_day % 3600 / 60);
        put(17, 2, of_day % 60);
        put(20, 3, u64::from(since.subsec_millis()));
        Some(out)
    }
}

impl fmt::Display for Rfc3339Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let since = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let (year, month, day) = civil_from_days(secs / 86_400);
        let of_day = secs % 86_400;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            of_day / 3600,
            of_day % 3600 / 60,
            of_day % 60,
            since.subsec_millis()
        )
    }
}

/// The proleptic Gregorian date `days` after 1970-01-01, by Howard Hinnant's
/// `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>): counted
/// in 400-year eras from 0000-03-01, so that the leap day ends a year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(millis)
    }

    #[test]
    fn known_instants() {
        assert_eq!(Rfc3339Millis(at(0)).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Rfc3339Millis(at(1_700_000_000_123)).to_string(),
            "2023-11-14T22:13:20.123Z"
        );
        // A leap day, and the last millisecond of a leap year.
        assert_eq!(
            Rfc3339Millis(at(951_782_400_000)).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            Rfc3339Millis(at(1_735_689_599_999)).to_string(),
            "2024-12-31T23:59:59.999Z"
        );
        assert_eq!(
            Rfc3339Millis(at(253_402_300_799_999)).to_string(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(
            Rfc3339Millis(at(253_402_300_800_000)).to_string(),
            "10000-01-01T00:00:00.000Z"
        );
        assert_eq!(Rfc3339Millis(at(253_402_300_800_000)).to_bytes(), None);
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(
            Rfc3339Millis(before).to_string(),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn agrees_with_humantime() {
        // Steps that are not a divisor of a day, so every time of day, every day of
        // the month and the leap years up to 2200 are visited.
        let mut millis = 0u64;
        while millis < 7_258_118_400_000 {
            let t = at(millis);
            let want = humantime::format_rfc3339_millis(t).to_string();
            assert_eq!(Rfc3339Millis(t).to_string(), want, "at {millis} ms");
            let bytes = Rfc3339Millis(t).to_bytes().expect("before the year 10000");
            assert_eq!(
                std::str::from_utf8(&bytes),
                Ok(want.as_str()),
                "at {millis} ms"
            );
            millis += 86_400_000 / 7 * 3 + 1_234_567;
        }
    }
}
