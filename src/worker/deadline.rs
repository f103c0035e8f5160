//! The invocation's deadline, and the time kept back before it: calls end first, then dead letters,
//! then the answer. A late answer is a timeout, and a timeout brings the whole batch back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Time kept back for the answer, whatever the batch: a dead letter not sent by then is given up,
/// and its record delivered again, rather than let the invocation time out.
const ANSWER_BASE: Duration = Duration::from_millis(100);
/// Time kept back for the answer per record of the batch: at the end of dead letters every record
/// may still be pending, and each is then given up, logged and answered, on as little as a 128 MB
/// function's share of a core (bench/README.md, "Big batches").
const ANSWER_PER_RECORD: Duration = Duration::from_millis(2);
/// Time for dead letters: calls end this long before the answer's reserve.
const LETTERS_WINDOW: Duration = Duration::from_millis(400);
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
    /// From Lambda's deadline (milliseconds since the epoch), for an event of `records` records.
    pub fn from_epoch_ms(deadline_ms: u64, records: usize) -> Self {
        Self::before(instant_of(deadline_ms), records)
    }

    /// The ends of calls and of dead letters ahead of `deadline`, for an event of `records` records.
    pub fn before(deadline: Option<Instant>, records: usize) -> Self {
        let letters_end = deadline.map(|deadline| ahead_of(deadline, answer_reserve(records)));
        Self { calls_end: letters_end.map(|end| ahead_of(end, LETTERS_WINDOW)), letters_end }
    }

    /// The last moment a write may start and still have [`CALL_RESERVE`] before the end of calls.
    pub fn latest_call_start(&self) -> Option<Instant> {
        self.calls_end.map(|end| ahead_of(end, CALL_RESERVE))
    }
}

/// The time kept back for the answer to an event of `records` records: what follows the end of dead
/// letters (cancelling the sends still pending, a log line per record, the answer) grows with them.
pub fn answer_reserve(records: usize) -> Duration {
    let records = u32::try_from(records).unwrap_or(u32::MAX);
    ANSWER_BASE.saturating_add(ANSWER_PER_RECORD.saturating_mul(records))
}

/// Runs `work` until it ends or `end` comes, whichever is first: `None` when it was cut off, or not
/// started because `end` had come (a timeout would first poll it, and so start it). Without an end,
/// until it ends.
pub async fn until<F: Future>(end: Option<Instant>, work: F) -> Option<F::Output> {
    match end {
        None => Some(work.await),
        Some(end) if Instant::now() >= end => None,
        Some(end) => tokio::time::timeout_at(end, work).await.ok(),
    }
}

/// The deadline on the monotonic clock; `None` without one. A deadline already past is now.
fn instant_of(deadline_ms: u64) -> Option<Instant> {
    if deadline_ms < EARLIEST_DEADLINE_MS {
        return None;
    }
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_millis() as u64;
    if deadline_ms.abs_diff(now_ms) > LONGEST_TIMEOUT_MS {
        clock_disagrees(deadline_ms, now_ms);
        return None;
    }
    Some(Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
}

/// Lambda's longest timeout: at an invocation's start its deadline is never further away than this,
/// ahead or past, by a clock that agrees with Lambda's.
const LONGEST_TIMEOUT_MS: u64 = 900_000;

/// A deadline further away than any timeout says that this host's clock is wrong, not that the time
/// is up: the invocation runs without a deadline of its own (Lambda's timeout still ends it), rather
/// than refuse every record for a reason that hides the clock.
fn clock_disagrees(deadline_ms: u64, now_ms: u64) {
    let (when, apart_ms, clock) = match deadline_ms.checked_sub(now_ms) {
        Some(ahead) => ("ahead", ahead, "behind"),
        None => ("past", now_ms - deadline_ms, "ahead of"),
    };
    tracing::warn!(
        deadline_ms,
        clock_ms = now_ms,
        "the invocation's deadline is {} s {when} by this instance's clock, further than any timeout: this \
         clock runs {clock} Lambda's; the invocation runs without a deadline of its own",
        apart_ms / 1000
    );
}

/// `reserve` ahead of `end`. With less than that left, the result is already past, so nothing more
/// is started (every paced slot is refused, every timeout fires at once).
fn ahead_of(end: Instant, reserve: Duration) -> Instant {
    end.checked_sub(reserve).unwrap_or(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lambda's batch sizes: one record (EventBridge, direct), the template's 10, up to the 10,000 of
    /// a standard queue.
    const BATCHES: [usize; 5] = [1, 10, 100, 1_000, 10_000];

    #[test]
    fn the_answer_reserve_grows_with_the_batch() {
        let reserves: Vec<Duration> = BATCHES.iter().map(|&n| answer_reserve(n)).collect();
        let expected = [102, 120, 300, 2_100, 20_100].map(Duration::from_millis);
        assert_eq!(reserves, expected);
    }

    #[test]
    fn calls_end_before_dead_letters_which_end_before_the_answer() {
        let deadline = Instant::now() + Duration::from_secs(60);
        for records in BATCHES {
            let ends = Deadline::before(Some(deadline), records);
            let (calls_end, letters_end) = (ends.calls_end.unwrap(), ends.letters_end.unwrap());
            assert_eq!(deadline - letters_end, answer_reserve(records), "{records} records");
            assert_eq!(letters_end - calls_end, LETTERS_WINDOW, "{records} records");
            assert!(ends.latest_call_start().unwrap() < calls_end);
        }
    }

    #[test]
    fn a_reserve_longer_than_the_time_left_starts_nothing() {
        let deadline = Instant::now() + Duration::from_secs(1);
        let ends = Deadline::before(Some(deadline), 10_000);
        assert!(ends.letters_end.unwrap() <= Instant::now(), "the dead letters' end is already past");
        assert!(ends.calls_end.unwrap() <= Instant::now());
    }

    #[test]
    fn without_a_deadline_nothing_ends() {
        assert_eq!(Deadline::from_epoch_ms(600_000, 10), Deadline { calls_end: None, letters_end: None });
    }

    #[test]
    fn a_deadline_no_timeout_can_give_is_a_wrong_clock_not_the_end() {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let none = Deadline { calls_end: None, letters_end: None };
        // An hour past: this clock runs an hour fast; an hour ahead: it runs an hour slow.
        assert_eq!(Deadline::from_epoch_ms(now_ms - 3_600_000, 10), none);
        assert_eq!(Deadline::from_epoch_ms(now_ms + 3_600_000, 10), none);
        // Within Lambda's longest timeout either way, it is a deadline (a past one is now).
        assert!(Deadline::from_epoch_ms(now_ms + 60_000, 10).calls_end.is_some());
        let past = Deadline::from_epoch_ms(now_ms - 1_000, 10).calls_end.unwrap();
        assert!(past <= Instant::now());
    }

    #[tokio::test(start_paused = true)]
    async fn work_is_not_started_once_its_end_has_come() {
        let started = std::cell::Cell::new(false);
        let end = Instant::now();
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(until(Some(end), async { started.set(true) }).await, None);
        assert!(!started.get());
        assert_eq!(until(None, async { 7 }).await, Some(7));
    }
}
