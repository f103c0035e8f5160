//! Wall-clock time as the function passes it around: milliseconds since the epoch, and its written
//! form for logs and reasons.

use std::time::{SystemTime, UNIX_EPOCH};

/// The system clock now, in milliseconds since the epoch (0 for a clock before it).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Milliseconds since the epoch as an RFC 3339 time (the number itself if it cannot be written so).
pub fn rfc3339(ms: u64) -> String {
    let time = aws_smithy_types::DateTime::from_millis(i64::try_from(ms).unwrap_or(i64::MAX));
    time.fmt(aws_smithy_types::date_time::Format::DateTime).unwrap_or_else(|_| ms.to_string())
}
