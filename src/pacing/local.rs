//! One instance's own pacing: a fixed share of the account's quota, stretched when the service says
//! it is throttling. It paces alone when no shared store is set, and takes over when the store fails.
//!
//! No crate fits: rate limiters such as `governor` keep a fixed rate, and this one must stretch its
//! interval on a throttled answer and come back to its base rate as calls succeed. A waiter whose slot
//! would come too late for its deadline is refused before it waits. Waiters are served in arrival
//! order by the [`super::Pacer`] in front, which lets one wait at a time.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How far a run of throttled answers may stretch the interval: 16 times the base interval...
pub(super) const MAX_SLOWDOWN: u32 = 16;
/// ...but never past 10 s (a longer base is not stretched). Only successes undo a stretch, and a stretch
/// longer than an invocation would leave no slot in which a success could come.
pub(super) const MAX_STRETCHED: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct LocalPacer {
    base: Duration,
    /// The longest the interval may grow to ([`MAX_SLOWDOWN`], [`MAX_STRETCHED`]).
    longest: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    interval: Duration,
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
        let base = Duration::from_secs_f64(1.0 / per_second);
        Self {
            base,
            longest: (base * MAX_SLOWDOWN).min(MAX_STRETCHED).max(base),
            state: Mutex::new(State { interval: base, next_slot: Instant::now() }),
        }
    }

    /// The current interval between writes.
    pub fn interval(&self) -> Duration {
        self.lock().interval
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
                    state.next_slot = now + state.interval;
                    return Ok(());
                }
                slot
            };
            // A throttled answer may push the slot further while we sleep: look again on waking.
            tokio::time::sleep_until(slot).await;
        }
    }

    /// The service answered with throttling: double the interval (up to a bound) and hold the next
    /// slot back by a full interval from now.
    pub fn throttled(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        state.interval = (state.interval * 2).min(self.longest);
        state.next_slot = state.next_slot.max(now + state.interval);
    }

    /// A write went through: come back toward the base rate a quarter at a time.
    pub fn succeeded(&self) {
        let mut state = self.lock();
        if state.interval > self.base {
            state.interval = (state.interval * 3 / 4).max(self.base);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent under any panic (plain assignments), so a poisoned lock is usable.
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
    async fn throttling_stretches_the_interval_and_success_restores_it() {
        let pacer = LocalPacer::new(1.0);
        pacer.acquire(None).await.unwrap();
        pacer.throttled();
        assert_eq!(pacer.interval(), Duration::from_secs(2));
        pacer.throttled();
        assert_eq!(pacer.interval(), Duration::from_secs(4));
        let start = Instant::now();
        pacer.acquire(None).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(4), "the next slot is held back by the new interval");
        for _ in 0..10 {
            pacer.throttled();
        }
        assert_eq!(pacer.interval(), Duration::from_secs(10), "bounded by MAX_STRETCHED");
        for _ in 0..20 {
            pacer.succeeded();
        }
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
