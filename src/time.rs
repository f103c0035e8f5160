//! Wall-clock time as the function passes it around: milliseconds since the epoch, and its written
//! form for logs and reasons.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The system clock now, in milliseconds since the epoch (0 for a clock before it).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Milliseconds since the epoch as an RFC 3339 time (the number itself if it cannot be written so).
pub fn rfc3339(ms: u64) -> String {
    let time = aws_smithy_types::DateTime::from_millis(i64::try_from(ms).unwrap_or(i64::MAX));
    time.fmt(aws_smithy_types::date_time::Format::DateTime).unwrap_or_else(|_| ms.to_string())
}

/// A span of time for a person, in its two largest units: `41 s`, `1 min 40 s`, `3 h 30 min`,
/// `12 d 12 h` (whole seconds, rounded up).
pub fn in_words(span: Duration) -> String {
    let s = span.as_secs().saturating_add(u64::from(span.subsec_nanos() > 0));
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec} s"),
        (0, 0, m) => format!("{m} min {sec} s"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_reads_in_its_two_largest_units() {
        let words = |seconds: u64| in_words(Duration::from_secs(seconds));
        assert_eq!(words(41), "41 s");
        assert_eq!(words(100), "1 min 40 s");
        assert_eq!(words(12_600), "3 h 30 min");
        assert_eq!(words(1_080_000), "12 d 12 h");
        assert_eq!(in_words(Duration::from_millis(1_001)), "2 s", "rounded up");
        assert_eq!(in_words(Duration::MAX), format!("{} d 7 h", u64::MAX / 86_400));
    }
}
