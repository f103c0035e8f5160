//! The local pacer: a fixed share of the account's write quota, stretched when the service says it
//! is throttling, by the same policy as the shared slots ([`super::slow_down`]). It paces alone when
//! no shared store is set, and takes over when the store cannot be used.
//!
//! No crate fits: rate limiters such as `governor` keep a fixed rate, and this one must stretch its
//! interval on a throttled answer and come back to its base rate with time. A waiter whose slot would
//! come too late for its deadline is refused before it waits. Waiters are served in arrival order by
//! the [`super::Pacer`] in front, which lets one wait at a time.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::budget::{Buckets, Budget, Learned};
use super::shared::Clock;
use super::slow_down::{SlowDown, Stretch};

#[derive(Debug)]
pub struct LocalPacer {
    slow_down: SlowDown,
    /// Stretches are timed in milliseconds since then.
    origin: Instant,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    stretch: Option<Stretch>,
    next_slot: Instant,
}

/// The slot would begin too late for the call to finish before the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLate {
    /// When the earliest slot would begin.
    pub slot: Instant,
}

impl LocalPacer {
    pub fn new(per_second: f64) -> Self {
        // Rounded up: a share rounded down would exceed the quota.
        let base_ms = (1000.0 / per_second).ceil() as u64;
        let origin = Instant::now();
        Self {
            slow_down: SlowDown::new(base_ms),
            origin,
            state: Mutex::new(State { stretch: None, next_slot: origin }),
        }
    }

    fn now_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_millis() as u64
    }

    /// Whether the interval is stretched now (see [`SlowDown::is_stretched`]).
    pub fn is_stretched(&self) -> bool {
        self.slow_down.is_stretched(self.interval().as_millis() as u64)
    }

    /// The current interval between writes.
    pub fn interval(&self) -> Duration {
        let now_ms = self.now_ms(Instant::now());
        Duration::from_millis(self.slow_down.spacing_at(self.lock().stretch, now_ms))
    }

    /// Waits for the next write slot. `latest_start`, when given, is the last moment a slot may begin:
    /// a later slot is refused at once, without waiting, and nothing is consumed.
    pub async fn acquire(&self, latest_start: Option<Instant>) -> Result<(), TooLate> {
        loop {
            let now = Instant::now();
            let slot = {
                let mut state = self.lock();
                let slot = state.next_slot.max(now);
                if latest_start.is_some_and(|latest| slot > latest) {
                    return Err(TooLate { slot });
                }
                if slot <= now {
                    let interval = self.slow_down.spacing_at(state.stretch, self.now_ms(now));
                    state.next_slot = now + Duration::from_millis(interval);
                    return Ok(());
                }
                slot
            };
            // A throttled answer may push the slot further while we sleep: look again on waking.
            tokio::time::sleep_until(slot).await;
        }
    }

    /// The service answered with throttling: stretch the interval and hold the next slot back by a
    /// full stretched interval from now.
    pub fn throttled(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        let stretch = self.slow_down.throttled(state.stretch, self.now_ms(now));
        state.stretch = Some(stretch);
        state.next_slot = state.next_slot.max(now + Duration::from_millis(stretch.spacing_ms));
    }

    /// Starts fresh, as a pacer just made: no stretch, a slot free now. Taking over from the shared
    /// slots, a stretch left from before (the shared pacer's throttles were its own) is stale.
    pub fn reset(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        state.stretch = None;
        state.next_slot = now;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent under any panic (plain assignments), so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Pacing alone, an instance's writes collide with its peers' (each paces at its share with no way to
/// stagger: a bucket of 1 refuses whichever comes second), so it sees runs of throttled answers that
/// the per-second quota explains, a write in two refused. Such a run is taken for a budget spent
/// elsewhere only when it lasts this many of the longest spacings at the account's quota: ten or
/// so writes refused in a row, which collisions alone make vanishingly rare.
const ALONE_SPENT_RUN_LONGEST_SPACINGS: u64 = 8;

/// An instance's own count of its writes against its share of the day's budget, while it paces
/// alone, by the same buckets as the shared slots, and the same rule for a budget spent elsewhere
/// over a longer run (its peers' collisions).
#[derive(Debug)]
pub struct LocalBudget {
    budget: Budget,
    /// A run of throttled answers longer than this is no per-second quota's, nor its peers', doing.
    explained_ms: u64,
    /// The account's per-second spacing: how far apart turns go as the room frees.
    spacing_ms: u64,
    /// No turn is given further ahead than this.
    turns_ahead_ms: u64,
    clock: Clock,
    state: Mutex<BudgetState>,
}

#[derive(Debug, Default)]
struct BudgetState {
    buckets: Buckets,
    learned: Learned,
    /// A budget spent elsewhere, learned: no write before then, then one probe.
    spent_until_ms: Option<u64>,
    /// The next write is the probe.
    probing: bool,
    /// The next turn of a write that waits for room.
    held_turn_ms: u64,
}

impl LocalBudget {
    /// `budget`: this instance's share of the account's, whose per-second quota is
    /// `account_per_second`; no turn further ahead than `turns_ahead`.
    pub fn new(budget: Budget, account_per_second: f64, turns_ahead: Duration) -> Self {
        let spacing_ms = (1000.0 / account_per_second).ceil().max(1.0) as u64;
        Self {
            budget,
            explained_ms: SlowDown::new(spacing_ms).longest_ms() * ALONE_SPENT_RUN_LONGEST_SPACINGS,
            spacing_ms,
            turns_ahead_ms: turns_ahead.as_millis() as u64,
            clock: Clock::now(),
            state: Mutex::default(),
        }
    }

    /// Room for a write now, or the turn (milliseconds since the epoch) to come back at. A learned
    /// spend whose time is up lets this write through as its probe.
    pub fn room(&self) -> Result<(), u64> {
        let now_ms = self.clock.ms(Instant::now());
        let mut state = self.lock();
        let until = match state.spent_until_ms {
            Some(until) if until > now_ms => Some(until),
            Some(_) => {
                state.spent_until_ms = Some(now_ms + self.budget.spent_for_ms());
                state.probing = true;
                None
            }
            None => None,
        };
        let (until, as_room_frees) = match until {
            Some(until) => (until, false),
            None => match self.budget.spend(&state.buckets, now_ms) {
                Ok(_) => return Ok(()),
                Err(until) => (until, true),
            },
        };
        // Turns as the room frees, as the shared slots give them.
        let latest = now_ms.saturating_add(self.turns_ahead_ms);
        let from = until.max(state.held_turn_ms);
        let freeing = as_room_frees.then_some(&state.buckets);
        let (turn, next) = self.budget.turn(freeing, from, self.spacing_ms, latest);
        state.held_turn_ms = next;
        Err(turn)
    }

    /// Counts a write whose slot starts now: the bucket it counts in.
    pub fn count(&self) -> Option<u64> {
        let now_ms = self.clock.ms(Instant::now());
        let mut state = self.lock();
        let spend = self.budget.spend(&state.buckets, now_ms).ok()?;
        for bucket in spend.expired {
            state.buckets.remove(&bucket);
        }
        state.buckets.insert(spend.bucket, spend.count);
        Some(spend.bucket)
    }

    /// A write counted in `bucket` that the service refused: it takes no room.
    pub fn give_back(&self, bucket: u64) {
        if let Some(count) = self.lock().buckets.get_mut(&bucket) {
            *count = count.saturating_sub(1);
        }
    }

    /// A throttled answer (`stretched`: the interval was stretched already).
    pub fn throttled(&self, stretched: bool) {
        let now_ms = self.clock.ms(Instant::now());
        let mut state = self.lock();
        if std::mem::take(&mut state.probing) {
            return;
        }
        if state.learned.throttled(stretched, now_ms, self.explained_ms) {
            state.spent_until_ms = Some(now_ms + self.budget.spent_for_ms());
        }
    }

    /// A write went through: a probe ends the learned spend.
    pub fn succeeded(&self) {
        let mut state = self.lock();
        state.learned.succeeded();
        if std::mem::take(&mut state.probing) {
            state.spent_until_ms = None;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BudgetState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn spaces_writes_at_the_configured_rate() {
        let pacer = LocalPacer::new(2.0);
        let start = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..5 {
            pacer.acquire(None).await.unwrap();
            starts.push(start.elapsed());
        }
        let expected: Vec<Duration> = (0..5).map(|i| Duration::from_millis(500 * i)).collect();
        assert_eq!(starts, expected);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_waiters_share_the_rate() {
        let pacer = Arc::new(LocalPacer::new(1.0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let pacer = pacer.clone();
                tokio::spawn(async move {
                    pacer.acquire(None).await.unwrap();
                    start.elapsed()
                })
            })
            .collect();
        let mut starts = Vec::new();
        for task in tasks {
            starts.push(task.await.unwrap());
        }
        starts.sort();
        assert_eq!(starts, [0, 1, 2, 3].map(Duration::from_secs));
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_stretches_the_interval_and_time_restores_it() {
        let pacer = LocalPacer::new(1.0);
        pacer.acquire(None).await.unwrap();
        pacer.throttled();
        assert_eq!(pacer.interval(), Duration::from_millis(1_500));
        pacer.throttled();
        assert_eq!(pacer.interval(), Duration::from_millis(2_250));
        let start = Instant::now();
        pacer.acquire(None).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(2_250), "the next slot is held back by the new interval");
        for _ in 0..10 {
            pacer.throttled();
        }
        assert_eq!(pacer.interval(), Duration::from_secs(10), "bounded by the policy's cap");
        // Half of the stretch is gone after four base intervals, all of it after a minute.
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(pacer.interval(), Duration::from_millis(5_500));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(pacer.interval(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn the_stretch_is_bounded_by_both_limits_and_never_shrinks_the_base() {
        let stretched = |per_second: f64| {
            let pacer = LocalPacer::new(per_second);
            for _ in 0..20 {
                pacer.throttled();
            }
            pacer.interval()
        };
        assert_eq!(stretched(10.0), Duration::from_millis(1600), "16 times a short base");
        assert_eq!(stretched(0.2), Duration::from_secs(10), "a 5 s base stretches to 10 s, not 80 s");
        assert_eq!(stretched(0.05), Duration::from_secs(20), "a base past 10 s is kept as it is");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_starts_fresh() {
        let pacer = LocalPacer::new(1.0);
        pacer.acquire(None).await.unwrap();
        for _ in 0..5 {
            pacer.throttled();
        }
        pacer.reset();
        assert_eq!(pacer.interval(), Duration::from_secs(1));
        let start = Instant::now();
        pacer.acquire(None).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO, "no slot held back either");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stretch_left_by_an_earlier_burst_leaves_room_for_a_write_within_a_minute() {
        // The template's slowest share, 0.2 writes per second, after a long run of throttled answers.
        let pacer = LocalPacer::new(0.2);
        pacer.acquire(None).await.unwrap();
        for _ in 0..10 {
            pacer.throttled();
        }
        // The next invocation, 60 s long with its last start 1.5 s before the end, still gets a slot.
        let latest_start = Instant::now() + Duration::from_millis(58_500);
        assert!(pacer.acquire(Some(latest_start)).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn refuses_a_slot_past_the_latest_start_without_consuming_it() {
        let pacer = LocalPacer::new(1.0);
        pacer.acquire(None).await.unwrap();
        let now = Instant::now();
        let refused = pacer.acquire(Some(now + Duration::from_millis(500))).await;
        assert_eq!(refused, Err(TooLate { slot: now + Duration::from_secs(1) }));
        assert_eq!(Instant::now(), now, "refused without waiting");
        pacer.acquire(Some(now + Duration::from_secs(1))).await.unwrap();
        assert_eq!(Instant::now(), now + Duration::from_secs(1));
    }
}
