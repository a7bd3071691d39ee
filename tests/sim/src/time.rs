//! Timestamps as Kubernetes writes them (RFC 3339, seconds precision, UTC), through jiff, and kubectl-style human durations.

use jiff::Timestamp;

/// Seconds since the Unix epoch, now.
pub(crate) fn now_unix() -> i64 {
    Timestamp::now().as_second()
}

/// Formats Unix seconds as `2024-01-02T03:04:05Z`, the form Kubernetes uses for metav1.Time.
pub(crate) fn format_rfc3339(secs: i64) -> String {
    Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The current time as an RFC 3339 string.
pub(crate) fn now_rfc3339() -> String {
    format_rfc3339(now_unix())
}

/// Parses an RFC 3339 timestamp (`Z` or a numeric offset, any fraction) into Unix seconds; None when malformed.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    s.parse::<Timestamp>().ok().map(|t| t.as_second())
}

/// kubectl's short "AGE" rendering (apimachinery duration.HumanDuration, simplified).
pub(crate) fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    if s < 120 {
        format!("{s}s")
    } else if s < 600 {
        format!("{}m{}s", s / 60, s % 60)
    } else if s < 3 * 3600 {
        format!("{}m", s / 60)
    } else if s < 8 * 3600 {
        let m = (s / 60) % 60;
        if m == 0 {
            format!("{}h", s / 3600)
        } else {
            format!("{}h{}m", s / 3600, m)
        }
    } else if s < 48 * 3600 {
        format!("{}h", s / 3600)
    } else if s < 8 * 86_400 {
        let h = (s / 3600) % 24;
        if h == 0 {
            format!("{}d", s / 86_400)
        } else {
            format!("{}d{}h", s / 86_400, h)
        }
    } else if s < 2 * 365 * 86_400 {
        format!("{}d", s / 86_400)
    } else {
        format!("{}y", s / (365 * 86_400))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = 1_700_000_000;
        let s = format_rfc3339(t);
        assert_eq!(s, "2023-11-14T22:13:20Z");
        assert_eq!(parse_rfc3339(&s), Some(t));
        assert_eq!(parse_rfc3339("2023-11-14T23:13:20.123+01:00"), Some(t));
    }
}
