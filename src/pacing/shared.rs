//! The account's write quota, shared by every instance: each write claims the next free slot in one
//! store that every instance of the stack reads and writes (a DynamoDB item in AWS:
//! `aws::write_slots`), so that any number of instances pace as one, and a lone instance with a
//! backlog takes every slot.
//!
//! The store holds the end of the last slot claimed. A claim moves it on by one spacing, on the
//! condition that no one moved it past the slot's start meanwhile; a refused claim learns where it
//! is and tries again. The spacing is the quota's interval plus a margin for the time between the
//! claim and the call's arrival (instances' latencies and clocks differ a little). A throttled
//! answer (another writer in the account) stretches the spacing for every instance; the stretch
//! halves with time, so the stack comes back to the full quota when the other writer stops.
//!
//! Slots are wall-clock times, shared between hosts: read through tokio's clock here (see [`Clock`])
//! so that tests on a paused clock see them move.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use tokio::time::Instant;
use tracing::warn;

use super::slow_down::SlowDown;
pub use super::slow_down::Stretch;

/// A store call slower than this is taken as a store that does not answer.
const STORE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long an instance paces alone after the store failed, before it tries the store again: short
/// after one failure (a slow answer now and then is no broken store), doubled at each failure in a
/// row, up to the longest.
const DOWN_FIRST: Duration = Duration::from_secs(1);
const DOWN_LONGEST: Duration = Duration::from_secs(30);
/// Claims refused in a row (others claiming at the same moment) before giving the store up for this write.
const MAX_CLAIM_TRIES: u32 = 8;

/// What the store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slots {
    /// The end of the last slot claimed (milliseconds since the epoch); 0 when none was.
    pub next_ms: u64,
    pub stretch: Option<Stretch>,
}

/// A claim's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The slot is ours; the store now holds this.
    Claimed(Slots),
    /// Someone claimed past the slot's start; the store holds this.
    Taken(Slots),
}

/// The store could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// The port: the store every instance claims its slots in.
pub trait SlotStore: Send + Sync {
    /// Claims `[start_ms, start_ms + spacing_ms)`, unless the last slot claimed ends after `start_ms`.
    fn claim(&self, start_ms: u64, spacing_ms: u64) -> BoxFuture<'_, Result<Claim, StoreError>>;

    /// Records a stretched spacing, unless a stretch was recorded at or after `unless_since_ms` (the
    /// same overload, seen by another instance).
    fn stretch(&self, stretch: Stretch, unless_since_ms: u64) -> BoxFuture<'_, Result<(), StoreError>>;
}

/// The wall clock in milliseconds since the epoch, advanced by tokio's monotonic clock from one
/// reading of the system clock.
#[derive(Debug, Clone, Copy)]
struct Clock {
    epoch_ms: u64,
    at: Instant,
}

impl Clock {
    fn now() -> Self {
        let epoch_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Self { epoch_ms, at: Instant::now() }
    }

    fn ms(&self, instant: Instant) -> u64 {
        match instant.checked_duration_since(self.at) {
            Some(after) => self.epoch_ms + after.as_millis() as u64,
            None => self.epoch_ms.saturating_sub(self.at.duration_since(instant).as_millis() as u64),
        }
    }

    fn instant(&self, ms: u64) -> Instant {
        if ms >= self.epoch_ms {
            self.at + Duration::from_millis(ms - self.epoch_ms)
        } else {
            self.at.checked_sub(Duration::from_millis(self.epoch_ms - ms)).unwrap_or(self.at)
        }
    }
}

/// What a shared acquire came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// The slot claimed begins then.
    At(Instant),
    /// The next slot would begin then, past the latest start: nothing was claimed.
    TooLate(Instant),
    /// The store cannot be used now: pace locally.
    Unavailable,
}

#[derive(Debug)]
struct State {
    /// What the store held at the last answer: a claim starts from there.
    known: Slots,
    /// The store failed: not tried again before then.
    down_until: Option<Instant>,
    /// Store failures in a row.
    failures: u32,
}

/// The account-wide slots, as one instance sees them.
pub struct SharedSlots {
    store: Arc<dyn SlotStore>,
    /// The stretches of throttled answers, from a base of the quota's interval and the margin.
    slow_down: SlowDown,
    clock: Clock,
    state: Mutex<State>,
}

impl SharedSlots {
    /// Slots for an account quota of `per_second` writes, spaced with `margin` (a fraction of the
    /// interval) for the call's way to the service.
    pub fn new(store: Arc<dyn SlotStore>, per_second: f64, margin: f64) -> Self {
        Self::with_clock(store, per_second, margin, Clock::now())
    }

    /// Instances of a test that share one clock, as hosts with synchronised clocks do.
    #[cfg(test)]
    pub(crate) fn at_epoch_ms(store: Arc<dyn SlotStore>, per_second: f64, margin: f64, epoch_ms: u64) -> Self {
        Self::with_clock(store, per_second, margin, Clock { epoch_ms, at: Instant::now() })
    }

    fn with_clock(store: Arc<dyn SlotStore>, per_second: f64, margin: f64, clock: Clock) -> Self {
        let base_ms = ((1000.0 / per_second) * (1.0 + margin)).ceil().max(1.0) as u64;
        Self {
            store,
            slow_down: SlowDown::new(base_ms),
            clock,
            state: Mutex::new(State { known: Slots::default(), down_until: None, failures: 0 }),
        }
    }

    /// What the store held when last seen (a warm-up's read gives it before the first claim).
    pub fn learn(&self, slots: Slots) {
        let mut state = self.lock();
        state.known = slots;
        state.failures = 0;
    }

    /// The spacing now: the base, or the last stretch as it has decayed since.
    pub fn spacing(&self) -> Duration {
        let stretch = self.lock().known.stretch;
        Duration::from_millis(self.slow_down.spacing_at(stretch, self.clock.ms(Instant::now())))
    }

    /// Whether the store is given up for now.
    pub fn is_down(&self) -> bool {
        self.lock().down_until.is_some_and(|until| Instant::now() < until)
    }

    /// Claims the next slot that begins at or before `latest_start`.
    pub async fn claim(&self, latest_start: Option<Instant>) -> Acquired {
        if self.is_down() {
            return Acquired::Unavailable;
        }
        for _ in 0..MAX_CLAIM_TRIES {
            let now_ms = self.clock.ms(Instant::now());
            let known = self.lock().known;
            let start_ms = known.next_ms.max(now_ms);
            let start = self.clock.instant(start_ms);
            if latest_start.is_some_and(|latest| start > latest) {
                return Acquired::TooLate(start);
            }
            let spacing_ms = self.slow_down.spacing_at(known.stretch, now_ms);
            match tokio::time::timeout(STORE_TIMEOUT, self.store.claim(start_ms, spacing_ms)).await {
                Ok(Ok(Claim::Claimed(slots))) => {
                    self.learn(slots);
                    return Acquired::At(start);
                }
                Ok(Ok(Claim::Taken(slots))) => self.learn(slots),
                Ok(Err(e)) => return self.give_up(&e.0),
                Err(_) => return self.give_up("no answer in time"),
            }
        }
        // Never claimed: others kept claiming first. Pace locally this once, the store still trusted.
        Acquired::Unavailable
    }

    /// A throttled answer: stretch the spacing for every instance.
    pub async fn throttled(&self) {
        if self.is_down() {
            return;
        }
        let now_ms = self.clock.ms(Instant::now());
        let stretch = {
            let mut state = self.lock();
            let stretch = self.slow_down.throttled(state.known.stretch, now_ms);
            state.known.stretch = Some(stretch);
            // Claim the next slot no earlier than one stretched spacing from now.
            state.known.next_ms = state.known.next_ms.max(now_ms + stretch.spacing_ms);
            stretch
        };
        // Throttled answers to several instances within one spacing are one overload: stretched once.
        let unless_since_ms = now_ms.saturating_sub(self.slow_down.base_ms());
        match tokio::time::timeout(STORE_TIMEOUT, self.store.stretch(stretch, unless_since_ms)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.give_up(&e.0);
            }
            Err(_) => {
                self.give_up("no answer in time");
            }
        }
    }

    fn give_up(&self, why: &str) -> Acquired {
        let down_for = {
            let mut state = self.lock();
            state.failures += 1;
            let down_for = DOWN_FIRST.saturating_mul(1 << (state.failures - 1).min(5)).min(DOWN_LONGEST);
            state.down_until = Some(Instant::now() + down_for);
            down_for
        };
        warn!(
            error = why,
            retry_in_s = down_for.as_secs_f64(),
            "the shared write slots cannot be used: this instance paces alone at its share of the quota"
        );
        Acquired::Unavailable
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
