//! The account's write budget over a rolling window (`ACCOUNT_WRITES_PER_DAY` per
//! `WRITE_BUDGET_WINDOW_SECONDS`): counted in buckets, so that the count is small to keep and to
//! share. A write counts in the bucket of its slot's start; a bucket counts until its start, its
//! width and a window have passed, so a write frees its room up to one bucket late, never early. A
//! write the service refused for throttling was not admitted, and is given back.
//!
//! The same arithmetic serves the shared slots (the buckets in the write-slot item) and an instance
//! pacing alone (its own writes, at its share of the budget). A budget spent by another tool of the
//! account shows only as throttled answers: [`Learned`] tells it from the per-second pacing.

use std::collections::BTreeMap;
use std::time::Duration;

/// Buckets per window: the item holds at most this many live counts (and the current one).
pub const BUCKETS_PER_WINDOW: u64 = 48;
/// Throttled answers in a row, each while the spacing was already stretched, over a run longer than
/// the per-second pacing explains (see [`Learned`]): the budget was spent by someone else.
pub const THROTTLES_FOR_SPENT: u32 = 3;
/// A learned spend lasts this part of a window, then one write probes it.
const PROBES_PER_WINDOW: u64 = 24;

/// Counts of writes by bucket start (milliseconds since the epoch).
pub type Buckets = BTreeMap<u64, u64>;

/// The budget: a cap of writes in any window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    cap: u64,
    window_ms: u64,
    width_ms: u64,
}

/// Room for a write at a slot's start: the bucket it counts in, that bucket's count with it, and
/// the buckets that no longer count (to be removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spend {
    pub bucket: u64,
    pub count: u64,
    pub expired: Vec<u64>,
}

impl Budget {
    /// `cap` writes (at least 1) in any `window` (at least one millisecond per bucket).
    pub fn new(cap: u64, window: Duration) -> Self {
        let window_ms = (window.as_millis() as u64).max(BUCKETS_PER_WINDOW);
        Self { cap: cap.max(1), window_ms, width_ms: window_ms / BUCKETS_PER_WINDOW }
    }

    pub fn cap(&self) -> u64 {
        self.cap
    }

    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    pub fn width_ms(&self) -> u64 {
        self.width_ms
    }

    /// How long a learned spend lasts before a probe.
    pub fn spent_for_ms(&self) -> u64 {
        self.window_ms / PROBES_PER_WINDOW
    }

    /// The turn of a write that waits for room, at or after `from_ms` (the room's time, and after the
    /// turns given before), never past `latest_ms`: as the counted room frees when `freeing` gives
    /// the buckets (the budget is full: [`Budget::next_turn`]), or `from_ms` (a budget spent
    /// elsewhere frees nothing the stack counted). With the next turn's earliest time, a slot later.
    pub fn turn(&self, freeing: Option<&Buckets>, from_ms: u64, spacing_ms: u64, latest_ms: u64) -> (u64, u64) {
        let turn = freeing.and_then(|buckets| self.next_turn(buckets, from_ms, spacing_ms));
        let turn = turn.unwrap_or(from_ms).min(latest_ms);
        (turn, turn.saturating_add(spacing_ms).min(latest_ms))
    }

    /// The first turn at or after `from_ms` for a write that waits for room, as the room frees: each
    /// counted bucket frees its writes when it expires, laid out `spacing_ms` apart (the per-second
    /// quota's); the writes made in those turns free theirs a window and a bucket later (never
    /// early: a write frees its room at most a bucket after a window), and so on twice over. So
    /// records refused together come back at the rate the room comes back, not spread evenly over
    /// the window. `None` when no bucket is counted.
    pub fn next_turn(&self, buckets: &Buckets, from_ms: u64, spacing_ms: u64) -> Option<u64> {
        let cycle_ms = self.window_ms.saturating_add(self.width_ms);
        let spacing_ms = spacing_ms.max(1);
        let mut turn: Option<u64> = None;
        for (&bucket, &count) in buckets {
            for cycle in 0..3 {
                let start = self.expiry(bucket).saturating_add(cycle_ms.saturating_mul(cycle));
                let end = start.saturating_add(count.saturating_mul(spacing_ms));
                let candidate = match from_ms {
                    from if from < start => start,
                    from if from < end => from,
                    _ => continue,
                };
                turn = Some(turn.map_or(candidate, |t| t.min(candidate)));
            }
        }
        turn
    }

    /// The start of the bucket that a slot starting at `ms` counts in.
    pub fn bucket_of(&self, ms: u64) -> u64 {
        ms - ms % self.width_ms
    }

    /// When a bucket stops counting.
    pub fn expiry(&self, bucket: u64) -> u64 {
        bucket.saturating_add(self.width_ms).saturating_add(self.window_ms)
    }

    /// The writes that count at `at_ms`.
    pub fn used(&self, buckets: &Buckets, at_ms: u64) -> u64 {
        buckets.iter().filter(|&(&b, _)| self.expiry(b) > at_ms).map(|(_, &n)| n).fold(0, u64::saturating_add)
    }

    /// Room for one write whose slot starts at `start_ms`, or the earliest time there is room
    /// (milliseconds since the epoch), when enough of the counted buckets have expired.
    pub fn spend(&self, buckets: &Buckets, start_ms: u64) -> Result<Spend, u64> {
        let used = self.used(buckets, start_ms);
        if used < self.cap {
            let bucket = self.bucket_of(start_ms);
            let count = buckets.get(&bucket).copied().unwrap_or(0) + 1;
            let expired = buckets.keys().copied().filter(|&b| self.expiry(b) <= start_ms).collect();
            return Ok(Spend { bucket, count, expired });
        }
        // Oldest first: the buckets expire in the order they start.
        let mut left = used;
        for (&bucket, &count) in buckets.range(..).filter(|&(&b, _)| self.expiry(b) > start_ms) {
            left = left.saturating_sub(count);
            if left < self.cap {
                return Err(self.expiry(bucket));
            }
        }
        Err(start_ms.saturating_add(self.window_ms))
    }
}

/// A budget spent by someone else, as one pacer learns it from throttled answers: a run of them
/// with no write through, [`THROTTLES_FOR_SPENT`] of them while the spacing was already stretched,
/// lasting longer than a stretch takes to halve at the account's quota (`SlowDown::half_life_ms`).
/// A per-second quota admits writes within that; a spent budget admits none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Learned {
    /// Throttled answers in the run, each while the spacing was already stretched.
    throttles: u32,
    /// When the run's first throttled answer came.
    since_ms: Option<u64>,
}

impl Learned {
    /// A throttled answer at `now_ms`; `stretched`: the spacing was stretched already when it came;
    /// `explained_ms`: the longest run the per-second quota explains. True when it makes the spend
    /// learned (a new run starts).
    pub fn throttled(&mut self, stretched: bool, now_ms: u64, explained_ms: u64) -> bool {
        let since_ms = *self.since_ms.get_or_insert(now_ms);
        if stretched {
            self.throttles += 1;
        }
        if self.throttles >= THROTTLES_FOR_SPENT && now_ms.saturating_sub(since_ms) > explained_ms {
            *self = Self::default();
            return true;
        }
        false
    }

    /// A write went through: a new run starts.
    pub fn succeeded(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_764_000_000_000;

    /// The tests' scale: 40 writes in 40 s, buckets of 833 ms.
    fn budget() -> Budget {
        Budget::new(40, Duration::from_secs(40))
    }

    #[test]
    fn buckets_are_a_forty_eighth_of_the_window() {
        assert_eq!(budget().width_ms(), 833);
        let day = Budget::new(10_000, Duration::from_secs(86_400));
        assert_eq!((day.width_ms(), day.spent_for_ms()), (1_800_000, 3_600_000));
        assert_eq!(day.bucket_of(T0 + 1_799_999), day.bucket_of(T0 + 1), "one bucket");
        assert_eq!(day.bucket_of(T0) % 1_800_000, 0);
    }

    #[test]
    fn a_write_frees_its_room_a_window_after_its_bucket_ends_never_before_a_window_after_it() {
        let b = budget();
        let start = T0 + 500;
        let bucket = b.bucket_of(start);
        let buckets = Buckets::from([(bucket, 1)]);
        assert_eq!(b.expiry(bucket), bucket + 833 + 40_000);
        assert!(b.expiry(bucket) >= start + 40_000, "never early");
        assert!(b.expiry(bucket) <= start + 40_000 + 833, "at most a bucket late");
        assert_eq!(b.used(&buckets, b.expiry(bucket) - 1), 1);
        assert_eq!(b.used(&buckets, b.expiry(bucket)), 0);
    }

    #[test]
    fn room_until_the_cap_then_the_time_the_oldest_bucket_expires() {
        let b = budget();
        let mut buckets = Buckets::new();
        let mut now = T0;
        for i in 0..40 {
            let spend = b.spend(&buckets, now).unwrap_or_else(|until| panic!("write {i}: no room until {until}"));
            assert_eq!(spend.count, buckets.get(&spend.bucket).copied().unwrap_or(0) + 1);
            buckets.insert(spend.bucket, spend.count);
            now += 100;
        }
        assert_eq!(b.used(&buckets, now), 40);
        let oldest = *buckets.keys().next().unwrap();
        assert_eq!(b.spend(&buckets, now), Err(b.expiry(oldest)));
        // Then the oldest bucket's writes are free again, and it is removed with the next claim.
        let spend = b.spend(&buckets, b.expiry(oldest)).unwrap();
        assert_eq!(spend.expired, [oldest]);
    }

    #[test]
    fn over_the_cap_room_comes_when_enough_buckets_have_expired() {
        // A cap lowered since: 40 counted against a cap of 10 frees room only when 31 are gone.
        let b = Budget::new(10, Duration::from_secs(40));
        let buckets: Buckets = (0..4).map(|i| (b.bucket_of(T0) + i * 833, 10)).collect();
        let third = b.bucket_of(T0) + 3 * 833;
        assert_eq!(b.spend(&buckets, T0 + 4_000), Err(b.expiry(third)));
        assert!(b.spend(&buckets, b.expiry(third)).is_ok());
    }

    #[test]
    fn three_throttles_in_a_row_while_stretched_over_a_long_run_make_a_spend_and_a_success_starts_again() {
        let mut learned = Learned::default();
        let explained = 420;
        assert!(!learned.throttled(false, T0, explained), "a throttle at the base spacing is the per-second quota's");
        assert!(!learned.throttled(true, T0 + 200, explained));
        assert!(!learned.throttled(true, T0 + 400, explained));
        learned.succeeded();
        assert!(!learned.throttled(true, T0 + 500, explained));
        assert!(!learned.throttled(true, T0 + 600, explained));
        assert!(!learned.throttled(true, T0 + 700, explained), "three, in a run the per-second quota explains");
        assert!(!learned.throttled(true, T0 + 920, explained), "four, the run not longer than a half-life");
        assert!(learned.throttled(true, T0 + 921, explained), "a run that a per-second quota does not explain");
        assert!(!learned.throttled(true, T0 + 922, explained), "counted again from there");
    }

    #[test]
    fn turns_come_as_the_room_frees_a_slot_apart_then_a_window_and_a_bucket_later() {
        let b = budget();
        let (first, second) = (b.bucket_of(T0), b.bucket_of(T0) + 833);
        let buckets = Buckets::from([(first, 3), (second, 2)]);
        let mut turns = Vec::new();
        let mut from = 0;
        for _ in 0..7 {
            let turn = b.next_turn(&buckets, from, 100).unwrap();
            turns.push(turn);
            from = turn + 100;
        }
        let (e1, e2) = (b.expiry(first), b.expiry(second));
        let cycle = 40_000 + 833;
        assert_eq!(turns, [e1, e1 + 100, e1 + 200, e2, e2 + 100, e1 + cycle, e1 + cycle + 100]);
        assert!(turns.iter().all(|&t| t >= T0 + 40_000), "none before the room frees");
        assert_eq!(b.next_turn(&Buckets::new(), T0, 100), None);
    }
}
