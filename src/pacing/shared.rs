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
//! The day's budget is counted in the same item and claimed by the same conditional write
//! ([`super::budget`]): a slot is claimed only while the window has room, on the condition that the
//! counts are as read. When it has none, the pacer answers when there will be, as a turn: records
//! refused at once come back spread at the budget's pace, not all at the same moment. A budget spent
//! by another tool of the account is learned from the throttles and recorded in the item, so every
//! instance waits for it, and one probes it.
//!
//! Nothing read from the store is used unbounded ([`super::bounds`]): what is out of bounds is
//! repaired, and no slot is claimed further ahead than a horizon. Slots are wall-clock times, so an
//! instance first checks its clock against the store's (the time of its answers): one that disagrees
//! writes no time of its own into the store, repairs nothing, and paces alone until they agree.
//!
//! Slots are read through tokio's clock here (see `Clock`) so that tests on a paused clock see
//! them move.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;
use tracing::{debug, info, warn};

pub use super::bounds::{Attribute, BudgetField, BudgetLimits, Field, Ledger, Limits, Repair, Slots, Stored};
use super::budget::{Budget, Learned, Spend};
use super::slow_down::SlowDown;
pub use super::slow_down::Stretch;
use crate::time::rfc3339;

/// A store call slower than this is taken as a store that does not answer.
const STORE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long an instance paces alone after the store failed, or after its clock disagreed with the
/// store's, before it tries the store again: short after one (a slow answer now and then is no
/// broken store), doubled at each in a row, up to the longest.
const DOWN_FIRST: Duration = Duration::from_secs(1);
const DOWN_LONGEST: Duration = Duration::from_secs(30);
/// Claims refused in a row (others claiming at the same moment) before giving the store up for this write.
const MAX_CLAIM_TRIES: u32 = 8;
/// Readings in a row of a store clock beyond the bound before an instance says that the clocks
/// disagree: one could be a stale answer, three a second apart at least are not.
const CLOCK_READINGS: u32 = 3;
/// The store's clock is read to the second (an HTTP `Date`): a disagreement within that is none.
const STORE_CLOCK_RESOLUTION_MS: u64 = 1_000;

/// What the store answered, with the item as it holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    pub stored: Stored,
    /// The store's clock when it answered (milliseconds since the epoch), when it tells it.
    pub store_ms: Option<u64>,
}

/// A claim's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The slot is ours; the store now holds this.
    Claimed(Reading),
    /// Someone claimed past the slot's start, or the store holds a value that no claim can pass
    /// (to be repaired); it holds this.
    Taken(Reading),
}

/// A repair's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repaired {
    Done,
    /// An attribute no longer held what was found (another instance repaired it, or claimed); the
    /// store holds this.
    Refused(Box<Reading>),
}

/// The store could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// A claim's count in the day's budget: the counts as read, which the claim is conditioned on
/// (`None`: the item held no map, and the claim makes it), and the count it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetClaim {
    pub read: Option<super::budget::Buckets>,
    pub spend: Spend,
}

/// The port: the store every instance claims its slots in.
pub trait SlotStore: Send + Sync {
    /// Reads the item.
    fn read(&self) -> BoxFuture<'_, Result<Reading, StoreError>>;

    /// Claims `[start_ms, start_ms + spacing_ms)`, unless the last slot claimed ends after `start_ms`;
    /// with a budget, also unless its counts are no longer as read, and then counts the write and
    /// removes the expired counts, in the same write.
    fn claim(
        &self,
        start_ms: u64,
        spacing_ms: u64,
        budget: Option<BudgetClaim>,
    ) -> BoxFuture<'_, Result<Claim, StoreError>>;

    /// Records a stretched spacing, unless a stretch was recorded at or after `unless_since_ms` (the
    /// same overload, seen by another instance).
    fn stretch(&self, stretch: Stretch, unless_since_ms: u64) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Writes every repair at once, on the condition that each attribute still holds what was found.
    /// The budget's turns and learned spends are written the same way.
    fn repair(&self, repairs: Vec<Repair>) -> BoxFuture<'_, Result<Repaired, StoreError>>;

    /// Takes one write off the budget's count in `bucket`, unless it no longer counts one: what the
    /// store holds then, or `None` when there was nothing to take off.
    fn give_back(&self, bucket: u64) -> BoxFuture<'_, Result<Option<Reading>, StoreError>>;
}

/// The wall clock in milliseconds since the epoch, advanced by tokio's monotonic clock from one
/// reading of the system clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    epoch_ms: u64,
    at: Instant,
}

impl Clock {
    pub(crate) fn now() -> Self {
        Self { epoch_ms: crate::time::now_ms(), at: Instant::now() }
    }

    pub(crate) fn ms(&self, instant: Instant) -> u64 {
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
    /// The slot claimed begins then; its write counts in that bucket of the day's budget, if kept.
    At(Instant, Option<u64>),
    /// The next slot would begin then, past the latest start: nothing was claimed.
    TooLate(Instant),
    /// The day's budget has no room: not before then (milliseconds since the epoch). Nothing was claimed.
    NoRoom(u64),
    /// The store cannot be used now: pace locally.
    Unavailable,
}

#[derive(Debug, Default)]
struct State {
    /// What the store held at the last answer, within bounds: a claim starts from there.
    known: Slots,
    /// The store failed, or the clocks disagreed: not tried again before then.
    down_until: Option<Instant>,
    /// Store failures in a row.
    failures: u32,
    /// The last reading of the store's clock agreed with this instance's (or the store tells none):
    /// until one does, the instance writes no time of its own into the store.
    clock_agrees: bool,
    /// Readings in a row of a store clock beyond the bound.
    clock_off: u32,
    /// The day's budget as the store held it at the last answer, within bounds.
    ledger: Ledger,
    /// The ledger was read since the gauges were last taken.
    ledger_fresh: bool,
    learned: Learned,
    probe: Probe,
}

/// This instance's part in probing a learned spend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Probe {
    #[default]
    None,
    /// It moved the spend's end on to this: its next write is the probe.
    Taken(u64),
    /// The probe's slot is claimed: its answer ends the spend or keeps it.
    Sent(u64),
}

/// How the store's clock compared with this instance's.
enum ClockVerdict {
    Agrees,
    /// The store's clock is this far ahead of this instance's (behind when negative).
    Off(i64),
}

/// The account-wide slots, as one instance sees them.
pub struct SharedSlots {
    store: Arc<dyn SlotStore>,
    /// The stretches of throttled answers, from a base of the quota's interval and the margin.
    slow_down: SlowDown,
    limits: Limits,
    clock: Clock,
    state: Mutex<State>,
    /// Repairs written and not yet reported (the `WriteSlotRepairs` metric).
    repairs: AtomicU64,
    /// The day's budget, when one is kept.
    budget: Option<(Budget, BudgetLimits)>,
}

impl SharedSlots {
    /// Slots for an account quota of `per_second` writes, spaced with `margin` (a fraction of the
    /// interval) for the call's way to the service; no slot is claimed further ahead than `horizon`.
    pub fn new(store: Arc<dyn SlotStore>, per_second: f64, margin: f64, horizon: Duration) -> Self {
        Self::with_clock(store, per_second, margin, horizon, Clock::now())
    }

    /// Instances of a test whose clocks read `epoch_ms` now: the same for hosts whose clocks agree.
    #[cfg(test)]
    pub(crate) fn at_epoch_ms(
        store: Arc<dyn SlotStore>,
        per_second: f64,
        margin: f64,
        horizon: Duration,
        epoch_ms: u64,
    ) -> Self {
        Self::with_clock(store, per_second, margin, horizon, Clock { epoch_ms, at: Instant::now() })
    }

    fn with_clock(store: Arc<dyn SlotStore>, per_second: f64, margin: f64, horizon: Duration, clock: Clock) -> Self {
        let base_ms = ((1000.0 / per_second) * (1.0 + margin)).ceil().max(1.0) as u64;
        let slow_down = SlowDown::new(base_ms);
        let limits = Limits { horizon_ms: horizon.as_millis() as u64, longest_ms: slow_down.longest_ms() };
        Self {
            store,
            slow_down,
            limits,
            clock,
            state: Mutex::new(State::default()),
            repairs: AtomicU64::new(0),
            budget: None,
        }
    }

    /// Keeps the day's budget in the store too; no turn is given further ahead than `turns_ahead`.
    pub fn with_budget(self, budget: Budget, turns_ahead: Duration) -> Self {
        let limits = BudgetLimits {
            cap: budget.cap(),
            horizon_ms: self.limits.horizon_ms,
            turns_ahead_ms: turns_ahead.as_millis() as u64,
            spent_for_ms: budget.spent_for_ms(),
        };
        Self { budget: Some((budget, limits)), ..self }
    }

    /// The window's writes, used and left, account-wide as last read; once per reading.
    pub fn take_gauges(&self) -> Option<(u64, u64)> {
        let (budget, _) = self.budget?;
        let mut state = self.lock();
        if !std::mem::take(&mut state.ledger_fresh) {
            return None;
        }
        let used = budget.used(&state.ledger.buckets, self.clock.ms(Instant::now()));
        Some((used, budget.cap().saturating_sub(used)))
    }

    /// Whether the spacing is stretched now (see [`SlowDown::is_stretched`]).
    pub fn is_stretched(&self) -> bool {
        self.slow_down.is_stretched(self.spacing().as_millis() as u64)
    }

    /// Reads the store (a warm-up's read gives the store's state before the first claim).
    pub async fn look(&self) {
        match tokio::time::timeout(STORE_TIMEOUT, self.store.read()).await {
            Ok(Ok(reading)) => {
                self.take_in(reading).await;
            }
            Ok(Err(e)) => {
                self.give_up(&e.0);
            }
            Err(_) => {
                self.give_up("no answer in time");
            }
        }
    }

    /// The spacing now: the base, or the last stretch as it has decayed since.
    pub fn spacing(&self) -> Duration {
        let stretch = self.lock().known.stretch;
        Duration::from_millis(self.slow_down.spacing_at(stretch, self.clock.ms(Instant::now())))
    }

    /// Whether the store is given up for now (it failed, or the clocks disagreed).
    fn is_down(&self) -> bool {
        self.lock().down_until.is_some_and(|until| Instant::now() < until)
    }

    /// Repairs written since the last call: those made during init go with the first invocation.
    pub fn take_repairs(&self) -> u64 {
        self.repairs.swap(0, Ordering::Relaxed)
    }

    /// Claims the next slot that begins at or before `latest_start`.
    pub async fn claim(&self, latest_start: Option<Instant>) -> Acquired {
        if self.is_down() {
            return Acquired::Unavailable;
        }
        if !self.lock().clock_agrees {
            self.look().await;
            if self.is_down() || !self.lock().clock_agrees {
                return Acquired::Unavailable;
            }
        }
        let mut tries = 0;
        // The window had no room at the last look: never paced alone past the shared budget for that.
        let mut no_room = false;
        while tries < MAX_CLAIM_TRIES {
            let now_ms = self.clock.ms(Instant::now());
            let known = self.lock().known;
            let start_ms = known.next_ms.max(now_ms);
            let start = self.clock.instant(start_ms);
            if latest_start.is_some_and(|latest| start > latest) {
                return Acquired::TooLate(start);
            }
            // Claimed up to the horizon: wait until the slot comes within it, then claim. Refusals
            // count from there: waiting instances wake together, and one of them claims each time.
            if start_ms > now_ms + self.limits.horizon_ms {
                tokio::time::sleep_until(self.clock.instant(start_ms - self.limits.horizon_ms)).await;
                tries = 0;
                continue;
            }
            tries += 1;
            let budget = match self.budget_claim(start_ms).await {
                Ok(budget) => budget,
                Err(Some(acquired)) => return acquired,
                // A turn or the learned spend's probe was refused, or the probe taken: look again.
                Err(None) => {
                    no_room = true;
                    continue;
                }
            };
            let spacing_ms = self.slow_down.spacing_at(known.stretch, now_ms);
            let bucket = budget.as_ref().map(|claim| claim.spend.bucket);
            let claim = self.store.claim(start_ms, spacing_ms, budget);
            let (claimed, reading) = match tokio::time::timeout(STORE_TIMEOUT, claim).await {
                Ok(Ok(Claim::Claimed(reading))) => (true, reading),
                Ok(Ok(Claim::Taken(reading))) => (false, reading),
                Ok(Err(e)) => return self.give_up(&e.0),
                Err(_) => return self.give_up("no answer in time"),
            };
            if !self.take_in(reading).await {
                // This instance's clock disagrees with the store's: its times are not the others'.
                return Acquired::Unavailable;
            }
            if claimed {
                let mut state = self.lock();
                if let Probe::Taken(until) = state.probe {
                    // One write probes: the next finds the spend as moved on, and waits.
                    state.probe = Probe::Sent(until);
                }
                return Acquired::At(start, bucket);
            }
        }
        // Never claimed: others kept claiming first. Pace locally this once, the store still trusted;
        // unless it was turns they kept taking first: then the window has no room.
        if no_room && let Some((budget, _)) = self.budget {
            let ledger = self.lock().ledger.clone();
            let now_ms = self.clock.ms(Instant::now());
            let spent = ledger.spent_until_ms.filter(|&until| until > now_ms);
            if let Some(until) = spent.or(budget.spend(&ledger.buckets, now_ms).err()) {
                return Acquired::NoRoom(until);
            }
        }
        Acquired::Unavailable
    }

    /// The budget's part of a claim at `start_ms`: what to count (`None` without a budget), or why
    /// not: an answer (no room, the store unavailable), or nothing, to look again.
    async fn budget_claim(&self, start_ms: u64) -> Result<Option<BudgetClaim>, Option<Acquired>> {
        let Some((budget, _)) = self.budget else { return Ok(None) };
        let now_ms = self.clock.ms(Instant::now());
        let (mut ledger, probe) = {
            let state = self.lock();
            (state.ledger.clone(), state.probe)
        };
        if let Some(until) = ledger.spent_until_ms
            && probe != Probe::Taken(until)
        {
            if until > now_ms {
                return Err(self.no_room(budget, until, false).await);
            }
            // The spend's time is up: one write probes it. The instance that moves the time on takes
            // the probe, and the others wait for it.
            let became = now_ms + budget.spent_for_ms();
            let probe =
                Repair { attribute: Attribute::SpentUntilMs, found: Field::Number(until), became: Some(became) };
            return Err(match self.set(vec![probe]).await {
                Ok(true) => {
                    let mut state = self.lock();
                    state.probe = Probe::Taken(became);
                    state.ledger.spent_until_ms = Some(became);
                    None
                }
                Ok(false) => None,
                Err(acquired) => Some(acquired),
            });
        }
        let mut spend = budget.spend(&ledger.buckets, start_ms);
        if spend.is_err() {
            // Full as last read: another instance may have given a refused write back since.
            self.look().await;
            if self.is_down() {
                return Err(Some(Acquired::Unavailable));
            }
            ledger = self.lock().ledger.clone();
            spend = budget.spend(&ledger.buckets, start_ms);
        }
        match spend {
            Ok(spend) => Ok(Some(BudgetClaim { read: ledger.exists.then_some(ledger.buckets), spend })),
            Err(until) => Err(self.no_room(budget, until, true).await),
        }
    }

    /// No room until `until_ms`: the answer is a turn, at least then, and after the turns given
    /// before it, a slot apart; with `as_room_frees` (the budget is full, not spent elsewhere), as
    /// the counted room frees ([`Budget::next_turn`]). So records refused together come back in turn.
    /// Taken on the condition that the learned spend is as read too (a probe elsewhere may have
    /// ended it): `None` when refused, to look again.
    async fn no_room(&self, budget: Budget, until_ms: u64, as_room_frees: bool) -> Option<Acquired> {
        let turns_ahead_ms = self.budget.map_or(0, |(_, limits)| limits.turns_ahead_ms);
        let latest = self.clock.ms(Instant::now()).saturating_add(turns_ahead_ms);
        let (held, spent, (turn, became)) = {
            let state = self.lock();
            let held = state.ledger.held_turn_ms;
            let from = until_ms.max(held.unwrap_or(0));
            let freeing = as_room_frees.then_some(&state.ledger.buckets);
            (held, state.ledger.spent_until_ms, budget.turn(freeing, from, self.slow_down.base_ms(), latest))
        };
        let found = |value: Option<u64>| value.map_or(Field::Missing, Field::Number);
        let changes = vec![
            Repair { attribute: Attribute::HeldTurnMs, found: found(held), became: Some(became) },
            Repair { attribute: Attribute::SpentUntilMs, found: found(spent), became: spent },
        ];
        match self.set(changes).await {
            Ok(true) => {
                self.lock().ledger.held_turn_ms = Some(became);
                Some(Acquired::NoRoom(turn))
            }
            Ok(false) => None,
            // No turn to be had: the time there is room is the answer all the same.
            Err(_) => Some(Acquired::NoRoom(until_ms)),
        }
    }

    /// Writes the budget's attributes on the condition that each holds what was found: true when
    /// written; false when refused (what the store holds is taken in).
    async fn set(&self, changes: Vec<Repair>) -> Result<bool, Acquired> {
        match tokio::time::timeout(STORE_TIMEOUT, self.store.repair(changes)).await {
            Ok(Ok(Repaired::Done)) => Ok(true),
            Ok(Ok(Repaired::Refused(reading))) => {
                if self.take_in(*reading).await {
                    Ok(false)
                } else {
                    Err(Acquired::Unavailable)
                }
            }
            Ok(Err(e)) => Err(self.give_up(&e.0)),
            Err(_) => Err(self.give_up("no answer in time")),
        }
    }

    /// A write went through: a probe of a learned spend ends it for every instance.
    pub async fn succeeded(&self) {
        let probe = {
            let mut state = self.lock();
            state.learned.succeeded();
            std::mem::take(&mut state.probe)
        };
        if let Probe::Sent(until) = probe {
            let end = Repair { attribute: Attribute::SpentUntilMs, found: Field::Number(until), became: None };
            if let Ok(true) = self.set(vec![end]).await {
                info!("a probe of the day's write budget went through: the budget spent elsewhere has room again");
                self.lock().ledger.spent_until_ms = None;
            }
        }
    }

    /// Learns a budget spent elsewhere from a throttled answer (`stretched`: the spacing was
    /// stretched already), and records it for every instance.
    async fn learn_spend(&self, stretched: bool, now_ms: u64) {
        let Some((budget, _)) = self.budget else { return };
        if self.is_down() {
            return;
        }
        let (spent, found) = {
            let mut state = self.lock();
            // A throttled probe leaves the spend as the probe moved it on.
            let probed = matches!(std::mem::take(&mut state.probe), Probe::Sent(_));
            let spent = !probed && state.learned.throttled(stretched, now_ms, self.slow_down.half_life_ms());
            (spent, state.ledger.spent_until_ms)
        };
        if !spent {
            return;
        }
        let until = now_ms + budget.spent_for_ms();
        warn!(
            until = %rfc3339(until),
            "throttled again and again at a stretched spacing: the day's write budget is taken as spent elsewhere; \
             no write until then, then one probe"
        );
        let found = found.map_or(Field::Missing, Field::Number);
        let spend = Repair { attribute: Attribute::SpentUntilMs, found, became: Some(until) };
        if let Ok(true) = self.set(vec![spend]).await {
            self.lock().ledger.spent_until_ms = Some(until);
        }
    }

    /// A write refused for throttling, which counted in `bucket`: the service did not admit it, so
    /// it takes no room in the day's budget (a refused call spends no quota, as the emulator models
    /// the service; the guide does not say). Not below zero, nor in a bucket removed since.
    pub async fn give_back(&self, bucket: u64) {
        if self.is_down() || self.budget.is_none() {
            return;
        }
        match tokio::time::timeout(STORE_TIMEOUT, self.store.give_back(bucket)).await {
            Ok(Ok(Some(reading))) => {
                self.take_in(reading).await;
            }
            // The bucket no longer counts: nothing to give back.
            Ok(Ok(None)) => {}
            // Left counted: the budget only errs on the side of room unused.
            Ok(Err(e)) => debug!(error = %e, "a refused write could not be given back to the day's budget"),
            Err(_) => debug!("a refused write could not be given back to the day's budget: no answer in time"),
        }
    }

    /// A throttled answer: stretch the spacing for every instance.
    pub async fn throttled(&self) {
        if self.is_down() {
            return;
        }
        let now_ms = self.clock.ms(Instant::now());
        let stretched = self.is_stretched();
        let stretch = {
            let mut state = self.lock();
            if !state.clock_agrees {
                return;
            }
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
        self.learn_spend(stretched, now_ms).await;
    }

    /// Takes in what the store answered: first its clock, then its values, held to their bounds, and
    /// what is out of bounds repaired. False when this instance's clock disagrees with the store's:
    /// then nothing is taken in, and nothing repaired (by this clock, good values would look bad).
    async fn take_in(&self, reading: Reading) -> bool {
        let now_ms = self.clock.ms(Instant::now());
        if let (Some(store_ms), ClockVerdict::Off(offset_ms)) = (reading.store_ms, self.verdict(&reading, now_ms)) {
            self.clock_disagrees(store_ms, now_ms, offset_ms);
            return false;
        }
        self.clock_agrees();
        let (slots, mut repairs) = reading.stored.bounded(now_ms, &self.limits);
        self.learn(slots);
        if let Some((_, limits)) = &self.budget {
            let (ledger, budget_repairs) = reading.stored.budget_bounded(now_ms, limits);
            let mut state = self.lock();
            state.ledger = ledger;
            state.ledger_fresh = true;
            repairs.extend(budget_repairs);
        }
        if !repairs.is_empty() {
            self.repair(repairs).await;
        }
        true
    }

    fn verdict(&self, reading: &Reading, now_ms: u64) -> ClockVerdict {
        let Some(store_ms) = reading.store_ms else { return ClockVerdict::Agrees };
        let offset_ms = store_ms as i64 - now_ms as i64;
        if offset_ms.unsigned_abs() <= self.limits.horizon_ms + STORE_CLOCK_RESOLUTION_MS {
            ClockVerdict::Agrees
        } else {
            ClockVerdict::Off(offset_ms)
        }
    }

    fn clock_agrees(&self) {
        let was_off = {
            let mut state = self.lock();
            state.clock_agrees = true;
            std::mem::take(&mut state.clock_off)
        };
        if was_off >= CLOCK_READINGS {
            info!("this instance's clock agrees with the write-slot table's again: back to the shared slots");
        }
    }

    fn clock_disagrees(&self, store_ms: u64, now_ms: u64, offset_ms: i64) {
        let readings = {
            let mut state = self.lock();
            state.clock_agrees = false;
            state.clock_off += 1;
            state.down_until = Some(Instant::now() + rest(state.clock_off));
            state.clock_off
        };
        let ahead = if offset_ms < 0 { "ahead of" } else { "behind" };
        let (clock, store) = (rfc3339(now_ms), rfc3339(store_ms));
        let offset_s = offset_ms.unsigned_abs() as f64 / 1000.0;
        if readings >= CLOCK_READINGS {
            warn!(
                clock = %clock,
                store_clock = %store,
                readings,
                "this instance's clock is {offset_s:.0} s {ahead} the write-slot table's: this instance paces \
                 alone at its share of the quota, and writes and repairs nothing in the table, until the clocks agree"
            );
        } else {
            info!(
                clock = %clock,
                store_clock = %store,
                readings,
                "this instance's clock is {offset_s:.0} s {ahead} the write-slot table's: pacing alone for now"
            );
        }
    }

    fn learn(&self, slots: Slots) {
        let mut state = self.lock();
        state.known = slots;
        state.failures = 0;
    }

    async fn repair(&self, repairs: Vec<Repair>) {
        let answer = tokio::time::timeout(STORE_TIMEOUT, self.store.repair(repairs.clone())).await;
        match answer {
            Ok(Ok(Repaired::Done)) => {
                self.repairs.fetch_add(repairs.len() as u64, Ordering::Relaxed);
                for repair in &repairs {
                    let became = repair.became.map_or_else(|| "removed".to_owned(), |v| v.to_string());
                    warn!(
                        attribute = %repair.attribute,
                        found = %repair.found,
                        became = %became,
                        "the write-slot table held a value out of bounds: repaired"
                    );
                }
            }
            // Another instance repaired it or claimed first: what it holds now is taken in at the next
            // answer (a refused claim carries it).
            Ok(Ok(Repaired::Refused(reading))) => {
                let now_ms = self.clock.ms(Instant::now());
                self.learn(reading.stored.bounded(now_ms, &self.limits).0);
                if let Some((_, limits)) = &self.budget {
                    self.lock().ledger = reading.stored.budget_bounded(now_ms, limits).0;
                }
            }
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
            let down_for = rest(state.failures);
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

/// How long to pace alone after `count` failures (or disagreeing clocks) in a row.
fn rest(count: u32) -> Duration {
    DOWN_FIRST.saturating_mul(1 << count.saturating_sub(1).min(5)).min(DOWN_LONGEST)
}
