//! The invocation's deadline, and the time kept back before it: calls end first, then dead letters,
//! then the answer. A late answer is a timeout, and a timeout brings the whole batch back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Time kept back at the end of an invocation for dead letters and the answer: calls end this long
/// before the deadline.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);
/// Time kept back for the answer alone: a dead letter not sent by then is given up, and its record
/// delivered again, rather than let the invocation time out.
const ANSWER_RESERVE: Duration = Duration::from_millis(100);
/// The least time a call is given: a record whose paced slot leaves less before the end of calls is
/// not started. A call that takes longer is cut off there and retried later.
pub const CALL_RESERVE: Duration = Duration::from_secs(1);

/// Lambda's deadlines are milliseconds since the epoch; an earlier value is no such time (`cargo lambda
/// watch` sends its timeout, 600000, instead) and is taken as no deadline at all.
const EARLIEST_DEADLINE_MS: u64 = 1_000_000_000_000;

/// When each kind of work must be over; `None` throughout when the event has no deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// When calls must be over.
    pub calls_end: Option<Instant>,
    /// When dead letters must be sent.
    pub letters_end: Option<Instant>,
}

impl Deadline {
    /// From Lambda's deadline (milliseconds since the epoch).
    pub fn from_epoch_ms(deadline_ms: u64) -> Self {
        let deadline = instant_of(deadline_ms);
        Self {
            calls_end: deadline.map(|deadline| ahead_of(deadline, DEADLINE_MARGIN)),
            letters_end: deadline.map(|deadline| ahead_of(deadline, ANSWER_RESERVE)),
        }
    }

    /// The last moment a write may start and still have [`CALL_RESERVE`] before the end of calls.
    pub fn latest_call_start(&self) -> Option<Instant> {
        self.calls_end.map(|end| ahead_of(end, CALL_RESERVE))
    }
}

/// Runs `work` until it ends or `end` comes, whichever is first: `None` when it was cut off. Without
/// an end, until it ends.
pub async fn until<F: Future>(end: Option<Instant>, work: F) -> Option<F::Output> {
    match end {
        None => Some(work.await),
        Some(end) => tokio::time::timeout_at(end, work).await.ok(),
    }
}

/// The deadline on the monotonic clock; `None` without one. A deadline already past is now.
fn instant_of(deadline_ms: u64) -> Option<Instant> {
    if deadline_ms < EARLIEST_DEADLINE_MS {
        return None;
    }
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
}

/// `reserve` ahead of `end`. With less than that left, the result is already past, so nothing more
/// is started (every paced slot is refused, every timeout fires at once).
fn ahead_of(end: Instant, reserve: Duration) -> Instant {
    end.checked_sub(reserve).unwrap_or(end)
}
