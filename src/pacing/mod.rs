//! Pacing the writes under the account's write quota (1 per second, shared by every caller in the
//! account; its burst is undocumented, so pacing assumes none).
//!
//! With a shared store ([`shared`]: `WRITE_SLOTS_TABLE`), every instance of the stack claims its slots
//! in one place and the stack paces as one. Without it, or while the store cannot be used, each
//! instance paces alone at its share ([`local`]: `PARTNER_CENTRAL_WRITES_PER_SECOND`): slower, never
//! unpaced, and fresh: a slow-down left from before is stale. Either way every attempt of a write
//! waits for a slot, and a throttled answer stretches the spacing of the pacer in use, by one policy
//! ([`slow_down`]).
//!
//! The worker's pacer also keeps the day's write budget ([`budget`]): in the shared slots, or, pacing
//! alone, its own writes against its share. With no room, a write is refused at once with the time
//! to come back at. The plan's scanner paces its reads with a pacer that keeps no budget.

pub mod bounds;
pub mod budget;
pub mod local;
pub mod shared;
pub mod slow_down;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use budget::Budget;
pub use local::TooLate;
use local::{LocalBudget, LocalPacer};
use shared::{Acquired, SharedSlots};

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The slot would begin past the latest start.
    TooLate(TooLate),
    /// The day's write budget has no room: come back then (milliseconds since the epoch).
    NoRoom { until_ms: u64 },
}

/// A slot given, and where its write counts in the day's budget: a write the service refuses for
/// throttling is given back by [`Pacer::throttled`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slot {
    counted: Option<Counted>,
}

/// The bucket of the day's budget a write counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    /// In the shared slots.
    Shared(u64),
    /// In this instance's own count, pacing alone.
    Local(u64),
}

/// The worker's pacer.
pub struct Pacer {
    local: LocalPacer,
    shared: Option<SharedSlots>,
    /// This instance's share of the day's budget, while it paces alone.
    local_budget: Option<LocalBudget>,
    /// One slot at a time per instance, in arrival order (tokio's mutex is fair).
    queue: tokio::sync::Mutex<()>,
    /// The last slot came from the local pacer.
    alone: AtomicBool,
}

impl Pacer {
    /// Pacing alone at `per_second`.
    pub fn local(per_second: f64) -> Self {
        Self {
            local: LocalPacer::new(per_second),
            shared: None,
            local_budget: None,
            queue: tokio::sync::Mutex::new(()),
            alone: AtomicBool::new(true),
        }
    }

    /// Pacing in the account's shared slots, or alone at `per_second` while they cannot be used.
    pub fn shared(per_second: f64, slots: SharedSlots) -> Self {
        Self { shared: Some(slots), alone: AtomicBool::new(false), ..Self::local(per_second) }
    }

    /// Keeps `budget` (this instance's share of the day's) while pacing alone, giving no turn
    /// further ahead than `turns_ahead`; the account's per-second quota is `account_per_second`.
    pub fn with_local_budget(self, budget: Budget, account_per_second: f64, turns_ahead: Duration) -> Self {
        let budget = LocalBudget::new(budget, account_per_second, turns_ahead);
        Self { local_budget: Some(budget), ..self }
    }

    /// Waits for the next write slot. `latest_start`, when given, is the last moment a slot may
    /// begin: a later one is refused at once, without waiting, and nothing is consumed. So is a
    /// write the day's budget has no room for.
    pub async fn acquire(&self, latest_start: Option<Instant>) -> Result<Slot, Refused> {
        let _turn = self.queue.lock().await;
        if let Some(shared) = &self.shared {
            match shared.claim(latest_start).await {
                Acquired::At(slot, bucket) => {
                    self.alone.store(false, Ordering::Relaxed);
                    tokio::time::sleep_until(slot).await;
                    return Ok(Slot { counted: bucket.map(Counted::Shared) });
                }
                Acquired::TooLate(slot) => return Err(Refused::TooLate(TooLate { slot })),
                Acquired::NoRoom(until_ms) => return Err(Refused::NoRoom { until_ms }),
                Acquired::Unavailable => {}
            }
            if !self.alone.swap(true, Ordering::Relaxed) {
                self.local.reset();
            }
        }
        if let Some(budget) = &self.local_budget {
            budget.room().map_err(|until_ms| Refused::NoRoom { until_ms })?;
        }
        self.local.acquire(latest_start).await.map_err(Refused::TooLate)?;
        let counted = self.local_budget.as_ref().and_then(LocalBudget::count);
        Ok(Slot { counted: counted.map(Counted::Local) })
    }

    /// The service answered the write in `slot` with throttling: the pacer that gave the last slot
    /// slows down and learns whether the day's budget was spent elsewhere, and the write, refused,
    /// is given back to the budget it counted in.
    pub async fn throttled(&self, slot: Slot) {
        match &self.shared {
            Some(shared) if !self.alone.load(Ordering::Relaxed) => shared.throttled().await,
            _ => {
                let stretched = self.local.is_stretched();
                self.local.throttled();
                if let Some(budget) = &self.local_budget {
                    budget.throttled(stretched);
                }
            }
        }
        match (slot.counted, &self.shared, &self.local_budget) {
            (Some(Counted::Shared(bucket)), Some(shared), _) => shared.give_back(bucket).await,
            (Some(Counted::Local(bucket)), _, Some(budget)) => budget.give_back(bucket),
            _ => {}
        }
    }

    /// The service took the write.
    pub async fn succeeded(&self) {
        match &self.shared {
            Some(shared) if !self.alone.load(Ordering::Relaxed) => shared.succeeded().await,
            _ => {
                if let Some(budget) = &self.local_budget {
                    budget.succeeded();
                }
            }
        }
    }

    /// The day's window's writes, used and left, account-wide, when the shared slots were read
    /// since the last call (the `BudgetUsed` and `BudgetLeft` gauges).
    pub fn take_budget_gauges(&self) -> Option<(u64, u64)> {
        self.shared.as_ref().and_then(SharedSlots::take_gauges)
    }

    /// Repairs written in the shared slots since the last call.
    pub fn take_repairs(&self) -> u64 {
        self.shared.as_ref().map_or(0, SharedSlots::take_repairs)
    }

    /// The time between two slots now.
    pub fn interval(&self) -> Duration {
        match &self.shared {
            Some(shared) if !self.alone.load(Ordering::Relaxed) => shared.spacing(),
            _ => self.local.interval(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Mutex};

    use std::time::{SystemTime, UNIX_EPOCH};

    use futures::future::BoxFuture;

    use super::shared::{
        Attribute, BudgetClaim, BudgetField, Claim, Field, Reading, Repair, Repaired, SlotStore, StoreError, Stored,
        Stretch,
    };
    use super::*;

    const EPOCH_MS: u64 = 1_764_000_000_000;
    const HORIZON: Duration = Duration::from_secs(10);

    /// A store in memory: the one every instance of a test shares. It answers as DynamoDB does,
    /// comparing numbers as numbers and anything else as refused, and tells its clock, which reads
    /// `EPOCH_MS` at the test's start.
    #[derive(Debug)]
    pub struct MemoryStore {
        stored: Mutex<Stored>,
        started: Instant,
        /// Every call fails while set.
        pub failing: std::sync::atomic::AtomicBool,
        /// Every call takes this long (milliseconds) while set.
        pub delay_ms: std::sync::atomic::AtomicU64,
        /// Calls made.
        pub calls: std::sync::atomic::AtomicU64,
        /// How far the store's clock is ahead of `EPOCH_MS` at the test's start (behind when negative).
        pub clock_offset_ms: std::sync::atomic::AtomicI64,
    }

    impl Default for MemoryStore {
        fn default() -> Self {
            Self {
                stored: Mutex::default(),
                started: Instant::now(),
                failing: Default::default(),
                delay_ms: Default::default(),
                calls: Default::default(),
                clock_offset_ms: Default::default(),
            }
        }
    }

    /// A number as DynamoDB compares it; `None` for another type.
    fn number(field: &Field) -> Option<f64> {
        match field {
            Field::Number(n) => Some(*n as f64),
            Field::BadNumber(n) => n.parse().ok(),
            Field::Missing | Field::NotNumber(_) => None,
        }
    }

    impl MemoryStore {
        pub fn stored(&self) -> Stored {
            self.stored.lock().unwrap().clone()
        }

        pub fn poison(&self, stored: Stored) {
            *self.stored.lock().unwrap() = stored;
        }

        fn reading(&self) -> Reading {
            let offset = self.clock_offset_ms.load(Ordering::Relaxed);
            let store_ms = (EPOCH_MS + self.started.elapsed().as_millis() as u64).saturating_add_signed(offset);
            Reading { stored: self.stored(), store_ms: Some(store_ms) }
        }

        async fn answer(&self) -> Result<(), StoreError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let delay = self.delay_ms.load(Ordering::Relaxed);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            // A store call goes over the network: others run meanwhile.
            tokio::task::yield_now().await;
            if self.failing.load(Ordering::Relaxed) {
                Err(StoreError("the store is unavailable".into()))
            } else {
                Ok(())
            }
        }
    }

    /// An attribute as held (the budget's map as a whole: only whether it is one, as a condition
    /// on its type sees it).
    fn get(stored: &Stored, attribute: &Attribute) -> Field {
        match (attribute, &stored.budget) {
            (Attribute::NextMs, _) => stored.next_ms.clone(),
            (Attribute::SpacingMs, _) => stored.spacing_ms.clone(),
            (Attribute::StretchedMs, _) => stored.stretched_ms.clone(),
            (Attribute::HeldTurnMs, _) => stored.held_turn_ms.clone(),
            (Attribute::SpentUntilMs, _) => stored.spent_until_ms.clone(),
            (Attribute::Budget, BudgetField::NotMap(shown)) => Field::NotNumber(shown.clone()),
            (Attribute::Budget, _) => Field::Missing,
            (Attribute::Bucket(key), BudgetField::Map(map)) => map.get(key).cloned().unwrap_or_default(),
            (Attribute::Bucket(_), _) => Field::Missing,
        }
    }

    fn set(stored: &mut Stored, attribute: &Attribute, became: Option<u64>) {
        let value = became.map_or(Field::Missing, Field::Number);
        match attribute {
            Attribute::NextMs => stored.next_ms = value,
            Attribute::SpacingMs => stored.spacing_ms = value,
            Attribute::StretchedMs => stored.stretched_ms = value,
            Attribute::HeldTurnMs => stored.held_turn_ms = value,
            Attribute::SpentUntilMs => stored.spent_until_ms = value,
            Attribute::Budget => stored.budget = BudgetField::Missing,
            Attribute::Bucket(key) => {
                if let BudgetField::Map(map) = &mut stored.budget {
                    match value {
                        Field::Missing => map.remove(key),
                        value => map.insert(key.clone(), value),
                    };
                }
            }
        }
    }

    /// The budget's part of a claim's condition, as DynamoDB checks it: the map as read (as many
    /// counts, each as read, and the claim's bucket absent unless read), or no map when none was read.
    fn budget_as_read(stored: &Stored, claim: &BudgetClaim) -> bool {
        match (&claim.read, &stored.budget) {
            (None, BudgetField::Missing) => true,
            (Some(read), BudgetField::Map(map)) => {
                map.len() == read.len()
                    && read.iter().all(|(k, &v)| map.get(&k.to_string()).and_then(number) == Some(v as f64))
                    && (read.contains_key(&claim.spend.bucket) || !map.contains_key(&claim.spend.bucket.to_string()))
            }
            _ => false,
        }
    }

    impl SlotStore for MemoryStore {
        fn read(&self) -> BoxFuture<'_, Result<Reading, StoreError>> {
            Box::pin(async move {
                self.answer().await?;
                Ok(self.reading())
            })
        }

        fn claim(
            &self,
            start_ms: u64,
            spacing_ms: u64,
            budget: Option<BudgetClaim>,
        ) -> BoxFuture<'_, Result<Claim, StoreError>> {
            Box::pin(async move {
                self.answer().await?;
                let mut stored = self.stored.lock().unwrap();
                let next = &stored.next_ms;
                let taken = *next != Field::Missing && number(next).is_none_or(|n| n > start_ms as f64);
                if taken || budget.as_ref().is_some_and(|claim| !budget_as_read(&stored, claim)) {
                    drop(stored);
                    return Ok(Claim::Taken(self.reading()));
                }
                stored.next_ms = Field::Number(start_ms + spacing_ms);
                if let Some(BudgetClaim { spend, .. }) = budget {
                    if stored.budget == BudgetField::Missing {
                        stored.budget = BudgetField::Map(Default::default());
                    }
                    if let BudgetField::Map(map) = &mut stored.budget {
                        for bucket in spend.expired {
                            map.remove(&bucket.to_string());
                        }
                        map.insert(spend.bucket.to_string(), Field::Number(spend.count));
                    }
                }
                drop(stored);
                Ok(Claim::Claimed(self.reading()))
            })
        }

        fn stretch(&self, stretch: Stretch, unless_since_ms: u64) -> BoxFuture<'_, Result<(), StoreError>> {
            Box::pin(async move {
                self.answer().await?;
                let mut stored = self.stored.lock().unwrap();
                let at = &stored.stretched_ms;
                if *at == Field::Missing || number(at).is_some_and(|at| at < unless_since_ms as f64) {
                    stored.spacing_ms = Field::Number(stretch.spacing_ms);
                    stored.stretched_ms = Field::Number(stretch.at_ms);
                }
                Ok(())
            })
        }

        fn give_back(&self, bucket: u64) -> BoxFuture<'_, Result<Option<Reading>, StoreError>> {
            Box::pin(async move {
                self.answer().await?;
                let mut stored = self.stored.lock().unwrap();
                let BudgetField::Map(map) = &mut stored.budget else { return Ok(None) };
                match map.get(&bucket.to_string()).and_then(number) {
                    Some(count) if count >= 1.0 => {
                        map.insert(bucket.to_string(), Field::Number(count as u64 - 1));
                        drop(stored);
                        Ok(Some(self.reading()))
                    }
                    _ => Ok(None),
                }
            })
        }

        fn repair(&self, repairs: Vec<Repair>) -> BoxFuture<'_, Result<Repaired, StoreError>> {
            Box::pin(async move {
                self.answer().await?;
                let mut stored = self.stored.lock().unwrap();
                let holds = |held: &Field, found: &Field| match found {
                    Field::NotNumber(_) => matches!(held, Field::NotNumber(_)),
                    found => held == found,
                };
                if !repairs.iter().all(|r| holds(&get(&stored, &r.attribute), &r.found)) {
                    drop(stored);
                    return Ok(Repaired::Refused(Box::new(self.reading())));
                }
                for repair in repairs {
                    set(&mut stored, &repair.attribute, repair.became);
                }
                Ok(Repaired::Done)
            })
        }
    }

    fn instance(store: &Arc<MemoryStore>, per_second: f64) -> Arc<Pacer> {
        instance_at(store, per_second, EPOCH_MS)
    }

    /// An instance whose clock reads `epoch_ms` at the test's start.
    fn instance_at(store: &Arc<MemoryStore>, per_second: f64, epoch_ms: u64) -> Arc<Pacer> {
        let slots = SharedSlots::at_epoch_ms(store.clone(), per_second, 0.05, HORIZON, epoch_ms);
        Arc::new(Pacer::shared(per_second / 2.0, slots))
    }

    /// Each pacer acquires `writes` slots, one after another; gives every slot's time.
    async fn run(pacers: &[Arc<Pacer>], writes: usize) -> Vec<Duration> {
        let start = Instant::now();
        let tasks: Vec<_> = pacers
            .iter()
            .map(|pacer| {
                let pacer = pacer.clone();
                tokio::spawn(async move {
                    let mut times = Vec::new();
                    for _ in 0..writes {
                        pacer.acquire(None).await.unwrap();
                        times.push(start.elapsed());
                    }
                    times
                })
            })
            .collect();
        joined(tasks).await
    }

    /// Every task's slot times, in order.
    async fn joined(tasks: Vec<tokio::task::JoinHandle<Vec<Duration>>>) -> Vec<Duration> {
        let mut times = Vec::new();
        for task in tasks {
            times.extend(task.await.unwrap());
        }
        times.sort();
        times
    }

    fn gaps(times: &[Duration]) -> Vec<Duration> {
        times.windows(2).map(|w| w[1] - w[0]).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn instances_sharing_the_store_take_turns_at_the_account_rate() {
        let store = Arc::new(MemoryStore::default());
        let pacers: Vec<_> = (0..5).map(|_| instance(&store, 10.0)).collect();
        let times = run(&pacers, 6).await;
        assert_eq!(times.len(), 30);
        // 100 ms for 10 writes/s, and the 5 % margin: never closer, and never an idle slot between.
        for gap in gaps(&times) {
            assert_eq!(gap, Duration::from_millis(105), "{times:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_instance_takes_every_slot() {
        let store = Arc::new(MemoryStore::default());
        let _idle: Vec<_> = (0..4).map(|_| instance(&store, 10.0)).collect();
        let times = run(&[instance(&store, 10.0)], 10).await;
        assert_eq!(gaps(&times), vec![Duration::from_millis(105); 9], "the whole quota, not a fifth of it");
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_stretches_the_spacing_for_every_instance_and_it_decays_back() {
        let store = Arc::new(MemoryStore::default());
        let (a, b) = (instance(&store, 10.0), instance(&store, 10.0));
        let slot = a.acquire(None).await.unwrap();
        a.throttled(slot).await;
        assert_eq!(store.stored().spacing_ms, Field::Number(157), "1.5 times 105 ms, recorded in the store");
        // B learns of it at its next claim, whose answer carries the store's state.
        b.acquire(None).await.unwrap();
        b.acquire(None).await.unwrap();
        let learned = b.interval();
        assert!(learned > Duration::from_millis(105) && learned <= Duration::from_millis(157), "{learned:?}");
        // Half of the stretch is gone after four base spacings, nearly all after a few seconds.
        tokio::time::sleep(Duration::from_secs(5)).await;
        b.acquire(None).await.unwrap();
        assert_eq!(b.interval(), Duration::from_millis(105));
        // A second instance throttled by the same overload within a spacing does not stretch it again.
        a.throttled(Slot::default()).await;
        b.throttled(Slot::default()).await;
        assert_eq!(store.stored().spacing_ms, Field::Number(157));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_past_the_latest_start_is_refused_and_nothing_is_claimed() {
        let store = Arc::new(MemoryStore::default());
        let (a, b) = (instance(&store, 1.0), instance(&store, 1.0));
        a.acquire(None).await.unwrap();
        b.acquire(None).await.unwrap();
        let before = store.stored();
        let now = Instant::now();
        let refused = a.acquire(Some(now + Duration::from_millis(500))).await;
        assert!(matches!(refused, Err(Refused::TooLate(TooLate { slot })) if slot > now + Duration::from_millis(500)));
        assert_eq!(store.stored(), before, "nothing claimed");
        assert_eq!(Instant::now(), now, "refused without waiting");
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_that_fails_or_stalls_leaves_the_instance_pacing_alone_at_its_share() {
        let store = Arc::new(MemoryStore::default());
        let pacer = instance(&store, 10.0);
        store.failing.store(true, Ordering::Relaxed);
        let times = run(std::slice::from_ref(&pacer), 4).await;
        // Its share, 5 writes/s: slower, but paced.
        assert_eq!(gaps(&times), vec![Duration::from_millis(200); 3]);
        // The store is tried again after a while, and used when it answers.
        store.failing.store(false, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(31)).await;
        let times = run(std::slice::from_ref(&pacer), 3).await;
        assert_eq!(gaps(&times), vec![Duration::from_millis(105); 2]);
        assert!(matches!(store.stored().next_ms, Field::Number(n) if n > EPOCH_MS));

        // A store that does not answer in time is given up the same way.
        let store = Arc::new(MemoryStore::default());
        let pacer = instance(&store, 10.0);
        store.delay_ms.store(5_000, Ordering::Relaxed);
        let started = Instant::now();
        pacer.acquire(None).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(1), "waited for the store's timeout, then paced alone");
        let times = run(std::slice::from_ref(&pacer), 3).await;
        assert_eq!(gaps(&times), vec![Duration::from_millis(200); 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn falling_back_to_local_pacing_starts_without_the_shared_slow_down() {
        let store = Arc::new(MemoryStore::default());
        let pacer = instance(&store, 10.0);
        pacer.acquire(None).await.unwrap();
        for _ in 0..6 {
            pacer.throttled(Slot::default()).await;
        }
        assert!(pacer.interval() > Duration::from_millis(1_000), "stretched in the shared slots");
        store.failing.store(true, Ordering::Relaxed);
        let times = run(std::slice::from_ref(&pacer), 4).await;
        // The share's base, 5 writes/s, from the first local slot on: the throttles were the shared
        // pacer's, and a stretch of the local one would be stale by now.
        assert_eq!(gaps(&times), vec![Duration::from_millis(200); 3]);
        assert_eq!(pacer.interval(), Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_failing_again_and_again_is_tried_less_and_less_often() {
        let store = Arc::new(MemoryStore::default());
        let pacer = instance(&store, 10.0);
        store.failing.store(true, Ordering::Relaxed);
        // 40 s of writes at the local share (5/s): the store is tried at 0, 1, 3, 7, 15 and 31 s, then
        // every 30 s at most.
        run(std::slice::from_ref(&pacer), 200).await;
        assert_eq!(store.calls.load(Ordering::Relaxed), 6);
    }

    const HOUR_MS: u64 = 3_600_000;

    /// The store's numbers as an instance at `EPOCH_MS` plus `elapsed` must find them: within bounds.
    fn within_bounds(store: &MemoryStore) -> bool {
        let now_ms = EPOCH_MS + Instant::now().duration_since(store.started).as_millis() as u64;
        let limits = bounds::Limits { horizon_ms: HORIZON.as_millis() as u64, longest_ms: 1_680 };
        store.stored().bounded(now_ms, &limits).1.is_empty()
    }

    #[tokio::test(start_paused = true)]
    async fn every_poisoned_value_is_repaired_and_the_next_slot_is_claimed_at_once_in_the_table() {
        let n = Field::Number;
        let text = |s: &str| Field::NotNumber(format!("S({s:?})"));
        let bad = |s: &str| Field::BadNumber(s.to_owned());
        let cases = [
            ("next_ms an hour ahead", Stored { next_ms: n(EPOCH_MS + HOUR_MS), ..Stored::default() }, 1),
            ("next_ms u64::MAX", Stored { next_ms: n(u64::MAX), ..Stored::default() }, 1),
            ("next_ms beyond u64", Stored { next_ms: bad("1e30"), ..Stored::default() }, 1),
            ("next_ms negative", Stored { next_ms: bad("-5"), ..Stored::default() }, 1),
            ("next_ms a string", Stored { next_ms: text("soon"), ..Stored::default() }, 1),
            (
                "a huge stretch",
                Stored { spacing_ms: n(1_000_000_000), stretched_ms: n(EPOCH_MS), ..Stored::default() },
                1,
            ),
            (
                "a u64::MAX stretch",
                Stored { spacing_ms: n(u64::MAX), stretched_ms: n(EPOCH_MS), ..Stored::default() },
                1,
            ),
            (
                "a stretch timed an hour ahead",
                Stored { spacing_ms: n(1_680), stretched_ms: n(EPOCH_MS + HOUR_MS), ..Stored::default() },
                1,
            ),
            (
                "a stretch of the wrong types",
                Stored { spacing_ms: text("x"), stretched_ms: bad("0.5"), ..Stored::default() },
                2,
            ),
            ("half a stretch", Stored { spacing_ms: n(1_680), ..Stored::default() }, 0),
            (
                "every number poisoned",
                Stored {
                    next_ms: n(EPOCH_MS + HOUR_MS),
                    spacing_ms: n(u64::MAX),
                    stretched_ms: n(EPOCH_MS + HOUR_MS),
                    ..Stored::default()
                },
                3,
            ),
        ];
        for (case, poison, repairs) in cases {
            let store = Arc::new(MemoryStore::default());
            store.poison(poison);
            let (a, b) = (instance(&store, 10.0), instance(&store, 10.0));
            let started = Instant::now();
            a.acquire(Some(started + Duration::from_secs(1))).await.unwrap_or_else(|e| panic!("{case}: {e:?}"));
            b.acquire(Some(started + Duration::from_secs(3))).await.unwrap_or_else(|e| panic!("{case}: {e:?}"));
            assert!(started.elapsed() <= Duration::from_millis(1_680), "{case}: within a (stretched) spacing");
            assert_eq!(a.take_repairs() + b.take_repairs(), repairs, "{case}: repaired once, not by both");
            assert!(within_bounds(&store), "{case}: {:?}", store.stored());
            assert!(
                matches!(store.stored().next_ms, Field::Number(n) if n > EPOCH_MS),
                "{case}: the slots were claimed in the table, not paced alone: {:?}",
                store.stored()
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_repair_the_stack_comes_back_to_the_account_rate() {
        let store = Arc::new(MemoryStore::default());
        let n = Field::Number;
        store.poison(Stored {
            next_ms: n(EPOCH_MS + HOUR_MS),
            spacing_ms: n(u64::MAX),
            stretched_ms: n(EPOCH_MS + HOUR_MS),
            ..Stored::default()
        });
        let pacers = [instance(&store, 10.0), instance(&store, 10.0)];
        let times = run(&pacers, 20).await;
        // The capped stretch (1,680 ms) decays by half every 420 ms: the last gaps are the base's.
        let gaps = gaps(&times);
        assert!(gaps[0] <= Duration::from_millis(1_680), "{gaps:?}");
        assert_eq!(gaps[gaps.len() - 5..], [Duration::from_millis(105); 5], "{gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_instance_whose_clock_is_an_hour_ahead_paces_alone_and_writes_nothing_in_the_table() {
        let store = Arc::new(MemoryStore::default());
        let fast = instance_at(&store, 10.0, EPOCH_MS + HOUR_MS);
        let times = run(std::slice::from_ref(&fast), 4).await;
        assert_eq!(gaps(&times), vec![Duration::from_millis(200); 3], "its share, 5 writes/s");
        assert_eq!(store.stored(), Stored::default(), "no time of its clock in the table");
        fast.throttled(Slot::default()).await;
        assert_eq!(store.stored(), Stored::default(), "nor a stretch");
        // The other instance keeps the table to itself, at the account's rate.
        let good = instance(&store, 10.0);
        let times = run(std::slice::from_ref(&good), 4).await;
        assert_eq!(gaps(&times), vec![Duration::from_millis(105); 3]);
        assert_eq!(good.take_repairs(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_instance_whose_clock_is_an_hour_behind_paces_alone_and_repairs_nothing() {
        let store = Arc::new(MemoryStore::default());
        let good = instance(&store, 10.0);
        good.acquire(None).await.unwrap();
        let claimed = store.stored();
        let slow = instance_at(&store, 10.0, EPOCH_MS - HOUR_MS);
        // The good instance's slot is an hour ahead by the slow clock: not a slot an hour away.
        let now = Instant::now();
        slow.acquire(Some(now + Duration::from_secs(1))).await.expect("paced alone, not refused");
        let times = run(std::slice::from_ref(&slow), 4).await;
        assert_eq!(gaps(&times), vec![Duration::from_millis(200); 3], "its share, 5 writes/s");
        assert_eq!(slow.take_repairs(), 0);
        assert_eq!(store.stored(), claimed, "the good instance's values left as they are");
    }

    #[tokio::test(start_paused = true)]
    async fn clocks_that_disagree_are_read_again_until_they_agree() {
        let store = Arc::new(MemoryStore::default());
        let pacer = instance(&store, 10.0);
        store.clock_offset_ms.store(HOUR_MS as i64, Ordering::Relaxed);
        // 40 s at its share: the store's clock is read at 0, 1, 3, 7, 15 and 31 s, never agreeing.
        run(std::slice::from_ref(&pacer), 200).await;
        assert_eq!(store.calls.load(Ordering::Relaxed), 6);
        assert_eq!(store.stored(), Stored::default());
        assert_eq!(pacer.interval(), Duration::from_millis(200));
        // The clocks agree again: at the next reading the instance is back in the table.
        store.clock_offset_ms.store(0, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(30)).await;
        let times = run(std::slice::from_ref(&pacer), 3).await;
        assert_eq!(gaps(&times), vec![Duration::from_millis(105); 2]);
        assert_ne!(store.stored().next_ms, Field::Missing);
    }

    #[tokio::test(start_paused = true)]
    async fn no_slot_is_claimed_further_ahead_than_the_horizon() {
        // Eight instances at 0.5 writes/s (2,100 ms spacing) would hold slots up to 16.8 s ahead.
        let store = Arc::new(MemoryStore::default());
        let pacers: Vec<_> = (0..8).map(|_| instance(&store, 0.5)).collect();
        let task = tokio::spawn(async move { run(&pacers, 1).await });
        while !task.is_finished() {
            if let Field::Number(next_ms) = store.stored().next_ms {
                let now_ms = EPOCH_MS + store.started.elapsed().as_millis() as u64;
                assert!(next_ms <= now_ms + 10_000 + 2_100, "{} ms ahead", next_ms - now_ms);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let times = task.await.unwrap();
        assert_eq!(gaps(&times), vec![Duration::from_millis(2_100); 7], "paced all the same");
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_store_an_instance_paces_alone() {
        let pacer = Arc::new(Pacer::local(4.0));
        let times = run(std::slice::from_ref(&pacer), 3).await;
        assert_eq!(gaps(&times), vec![Duration::from_millis(250); 2]);
        assert_eq!(pacer.interval(), Duration::from_millis(250));
    }

    const WINDOW: Duration = Duration::from_secs(40);

    /// An instance of a stack whose budget is `cap` writes in 40 s, shared in the store.
    fn budgeted(store: &Arc<MemoryStore>, per_second: f64, cap: u64) -> Arc<Pacer> {
        let slots = SharedSlots::at_epoch_ms(store.clone(), per_second, 0.05, HORIZON, EPOCH_MS)
            .with_budget(Budget::new(cap, WINDOW), WINDOW * 3 / 2);
        Arc::new(Pacer::shared(per_second / 2.0, slots))
    }

    /// The instant of a time the pacer answered (milliseconds since the epoch, by the test's clocks).
    fn instant_of(store: &MemoryStore, ms: u64) -> Instant {
        store.started + Duration::from_millis(ms - EPOCH_MS)
    }

    /// Each pacer writes for `run_for`, coming back at its turn when refused; gives every slot's time.
    async fn write_for(store: &Arc<MemoryStore>, pacers: &[Arc<Pacer>], run_for: Duration) -> Vec<Duration> {
        let end = Instant::now() + run_for;
        let tasks: Vec<_> = pacers
            .iter()
            .map(|pacer| {
                let (pacer, store) = (pacer.clone(), store.clone());
                tokio::spawn(async move {
                    let mut times = Vec::new();
                    while Instant::now() < end {
                        match pacer.acquire(None).await {
                            Ok(_) => {
                                times.push(store.started.elapsed());
                                pacer.succeeded().await;
                            }
                            Err(Refused::NoRoom { until_ms }) => {
                                let turn = instant_of(&store, until_ms);
                                assert!(turn > Instant::now(), "a turn in the future");
                                tokio::time::sleep_until(turn.min(end)).await;
                            }
                            Err(refused) => panic!("{refused:?}"),
                        }
                    }
                    times
                })
            })
            .collect();
        joined(tasks).await
    }

    /// The most slots that started within any one window.
    fn most_in_a_window(times: &[Duration]) -> usize {
        times
            .iter()
            .enumerate()
            .map(|(i, &t)| times[i..].iter().take_while(|&&u| u < t + WINDOW).count())
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn instances_sharing_a_budget_never_claim_more_than_it_in_any_window_and_use_it_all() {
        let store = Arc::new(MemoryStore::default());
        let pacers: Vec<_> = (0..3).map(|_| budgeted(&store, 10.0, 40)).collect();
        let times = write_for(&store, &pacers, Duration::from_secs(130)).await;
        assert_eq!(most_in_a_window(&times), 40, "{times:?}");
        // Three windows' budgets and part of a fourth: a write frees its room within a bucket of a window.
        assert!(times.len() >= 120, "{} writes", times.len());
        let BudgetField::Map(map) = store.stored().budget else { panic!("no budget map: {:?}", store.stored()) };
        assert!(map.len() <= 50, "expired counts removed: {}", map.len());
    }

    #[tokio::test(start_paused = true)]
    async fn no_room_answers_when_the_oldest_count_expires_and_then_turns_a_slot_apart_as_the_room_frees() {
        let store = Arc::new(MemoryStore::default());
        let (a, b) = (budgeted(&store, 10.0, 5), budgeted(&store, 10.0, 5));
        for _ in 0..5 {
            a.acquire(None).await.unwrap();
        }
        let budget = Budget::new(5, WINDOW);
        let room = budget.expiry(budget.bucket_of(EPOCH_MS));
        let before = Instant::now();
        assert_eq!(a.acquire(None).await, Err(Refused::NoRoom { until_ms: room }));
        assert_eq!(Instant::now(), before, "refused at once");
        // Refused together, they come back as the room frees, a slot (105 ms) apart: the five writes
        // (0 to 420 ms) count two in the first bucket and three in the next, which frees a bucket later.
        let next = budget.expiry(budget.bucket_of(EPOCH_MS + 420));
        assert_eq!(next, room + 833);
        assert_eq!(b.acquire(None).await, Err(Refused::NoRoom { until_ms: room + 105 }));
        assert_eq!(a.acquire(None).await, Err(Refused::NoRoom { until_ms: next }));
        assert_eq!(b.acquire(None).await, Err(Refused::NoRoom { until_ms: next + 105 }));
        assert_eq!(store.stored().held_turn_ms, Field::Number(next + 210));
        tokio::time::sleep_until(instant_of(&store, room)).await;
        a.acquire(None).await.expect("room again at the first turn");
    }

    #[tokio::test(start_paused = true)]
    async fn no_turn_is_given_further_ahead_than_a_window_and_a_half() {
        let store = Arc::new(MemoryStore::default());
        let pacer = budgeted(&store, 10.0, 1);
        pacer.acquire(None).await.unwrap();
        let mut last = 0;
        for _ in 0..10 {
            let Err(Refused::NoRoom { until_ms }) = pacer.acquire(None).await else { panic!("room") };
            last = until_ms;
        }
        assert_eq!(last, EPOCH_MS + 60_000, "turns every 40 s, held at the bound");
    }

    #[tokio::test(start_paused = true)]
    async fn a_budget_spent_elsewhere_is_learned_after_three_throttles_in_a_row_at_a_stretched_spacing_and_probed_once()
    {
        let store = Arc::new(MemoryStore::default());
        let (a, b) = (budgeted(&store, 10.0, 1_000), budgeted(&store, 10.0, 1_000));
        a.acquire(None).await.unwrap();
        // At the base spacing (the per-second quota's), then at a stretched one, in a run longer than
        // a stretch's half-life (420 ms).
        for _ in 0..4 {
            a.throttled(Slot::default()).await;
        }
        assert_eq!(store.stored().spent_until_ms, Field::Missing, "a run a per-second quota explains");
        tokio::time::sleep(Duration::from_millis(500)).await;
        a.throttled(Slot::default()).await;
        let spent_until = EPOCH_MS + 500 + 40_000 / 24;
        assert_eq!(store.stored().spent_until_ms, Field::Number(spent_until), "recorded for every instance");
        assert!(matches!(b.acquire(None).await, Err(Refused::NoRoom { until_ms }) if until_ms >= spent_until));
        // Then one write probes it: the others wait for it.
        tokio::time::sleep_until(instant_of(&store, spent_until)).await;
        a.acquire(None).await.expect("the probe");
        assert!(matches!(b.acquire(None).await, Err(Refused::NoRoom { .. })), "one probe, not two");
        // It went through: every instance writes again.
        a.succeeded().await;
        assert_eq!(store.stored().spent_until_ms, Field::Missing);
        b.acquire(None).await.expect("room again");
    }

    #[tokio::test(start_paused = true)]
    async fn while_the_budget_is_spent_elsewhere_the_throttled_writes_are_at_most_one_probe_per_24th_of_a_window() {
        for shared in [true, false] {
            let (pacer, epoch_ms) = match shared {
                true => (budgeted(&Arc::new(MemoryStore::default()), 10.0, 1_000), EPOCH_MS),
                false => local_budgeted(1_000),
            };
            let started = Instant::now();
            let instant_of = |ms: u64| started + Duration::from_millis(ms - epoch_ms);
            let end = Instant::now() + WINDOW;
            let mut throttled = 0;
            while Instant::now() < end {
                match pacer.acquire(None).await {
                    // The service refuses every write.
                    Ok(slot) => {
                        throttled += 1;
                        pacer.throttled(slot).await;
                    }
                    Err(Refused::NoRoom { until_ms }) => tokio::time::sleep_until(instant_of(until_ms).min(end)).await,
                    Err(refused) => panic!("{refused:?}"),
                }
            }
            // A probe each 24th of the window, after the throttled writes that taught it: a few, or
            // pacing alone a dozen or so (its peers' collisions explain shorter runs).
            let taught = if shared { 4 } else { 14 };
            assert!(
                (24..=24 + taught).contains(&throttled),
                "shared: {shared}: {throttled} throttled writes in a window"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_refused_for_throttling_is_given_back_to_the_budget_it_counted_in() {
        let store = Arc::new(MemoryStore::default());
        let (a, b) = (budgeted(&store, 10.0, 5), budgeted(&store, 10.0, 5));
        let mut slots = Vec::new();
        for _ in 0..5 {
            slots.push(a.acquire(None).await.unwrap());
        }
        assert!(matches!(b.acquire(None).await, Err(Refused::NoRoom { .. })), "the budget is full");
        let counted = || {
            let BudgetField::Map(map) = store.stored().budget else { panic!("no budget: {:?}", store.stored()) };
            map.values().map(|count| number(count).unwrap() as u64).sum::<u64>()
        };
        a.throttled(slots[4]).await;
        assert_eq!(counted(), 4, "the refused write takes no room, for any instance");
        b.acquire(None).await.expect("its room, taken by another instance");
        assert_eq!(counted(), 5);
        // A bucket that no longer counts, or counts nothing, is left as it is.
        tokio::time::sleep(WINDOW * 2).await;
        let fresh = a.acquire(None).await.unwrap();
        a.throttled(slots[0]).await;
        assert_eq!(counted(), 1, "the expired buckets removed by the claim, and none given back to");
        a.throttled(fresh).await;
        a.throttled(fresh).await;
        assert_eq!(counted(), 0, "never below none");

        // Pacing alone: its own count, the same way.
        let (pacer, _) = local_budgeted(2);
        let first = pacer.acquire(None).await.unwrap();
        pacer.acquire(None).await.unwrap();
        assert!(matches!(pacer.acquire(None).await, Err(Refused::NoRoom { .. })));
        pacer.throttled(first).await;
        pacer.acquire(None).await.expect("the refused write's room");
        assert!(matches!(pacer.acquire(None).await, Err(Refused::NoRoom { .. })));
    }

    /// A pacer alone with a budget of `cap`, and its clock's reading now (the system's).
    fn local_budgeted(cap: u64) -> (Arc<Pacer>, u64) {
        let epoch_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        (Arc::new(Pacer::local(5.0).with_local_budget(Budget::new(cap, WINDOW), 10.0, WINDOW * 3 / 2)), epoch_ms)
    }

    /// Pacing alone at its share, an instance's writes collide with its peers' (a bucket of 1 refuses
    /// whichever comes second): eight refused in a row are no budget spent elsewhere, as they are
    /// through the shared slots.
    #[tokio::test(start_paused = true)]
    async fn pacing_alone_a_run_of_collisions_with_its_peers_is_no_spent_budget() {
        let (pacer, _) = local_budgeted(1_000);
        for _ in 0..8 {
            let slot = pacer.acquire(None).await.expect("room: no spend learned");
            pacer.throttled(slot).await;
        }
        pacer.acquire(None).await.expect("room after eight collisions in a row");
        let (shared, _) = (budgeted(&Arc::new(MemoryStore::default()), 10.0, 1_000), EPOCH_MS);
        for _ in 0..8 {
            let Ok(slot) = shared.acquire(None).await else { return };
            shared.throttled(slot).await;
        }
        panic!("through the shared slots, eight refused in a row are a spend learned");
    }

    #[tokio::test(start_paused = true)]
    async fn pacing_alone_an_instance_keeps_its_share_of_the_budget() {
        let (pacer, epoch_ms) = local_budgeted(3);
        for _ in 0..3 {
            pacer.acquire(None).await.unwrap();
        }
        let Err(Refused::NoRoom { until_ms }) = pacer.acquire(None).await else { panic!("room past the share") };
        // A window from the first write (0.4 s ago, at 5 writes/s), and up to a bucket and a second of clocks.
        let wait_ms = until_ms - epoch_ms;
        assert!((39_000..=42_000).contains(&wait_ms), "{wait_ms} ms");
        // And a store that fails leaves a shared instance at that share.
        let store = Arc::new(MemoryStore::default());
        store.failing.store(true, Ordering::Relaxed);
        let slots = SharedSlots::at_epoch_ms(store.clone(), 10.0, 0.05, HORIZON, EPOCH_MS)
            .with_budget(Budget::new(40, WINDOW), WINDOW);
        let pacer = Pacer::shared(5.0, slots).with_local_budget(Budget::new(2, WINDOW), 10.0, WINDOW);
        pacer.acquire(None).await.unwrap();
        pacer.acquire(None).await.unwrap();
        assert!(matches!(pacer.acquire(None).await, Err(Refused::NoRoom { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn a_poisoned_budget_is_repaired_and_counted_from_again() {
        let store = Arc::new(MemoryStore::default());
        let map = [
            ((EPOCH_MS + HOUR_MS).to_string(), Field::Number(7)),
            (EPOCH_MS.to_string(), Field::Number(u64::MAX)),
            ("x".to_owned(), Field::NotNumber("S(\"x\")".into())),
        ];
        store.poison(Stored {
            budget: BudgetField::Map(map.into_iter().collect()),
            held_turn_ms: Field::Number(EPOCH_MS + 100 * HOUR_MS),
            spent_until_ms: Field::BadNumber("-1".into()),
            ..Stored::default()
        });
        let pacer = budgeted(&store, 10.0, 40);
        // The count past the cap became the cap: no room until it expires, at a turn within bounds.
        let Err(Refused::NoRoom { until_ms }) = pacer.acquire(None).await else { panic!("room") };
        assert!(until_ms <= EPOCH_MS + 41_000, "{until_ms}");
        assert_eq!(pacer.take_repairs(), 5);
        let stored = store.stored();
        assert_eq!(stored.budget, BudgetField::Map([(EPOCH_MS.to_string(), Field::Number(40))].into()));
        assert_eq!(stored.spent_until_ms, Field::Missing);
        // A budget that is not a map is removed, and the next claim makes it again.
        store.poison(Stored { budget: BudgetField::NotMap("S(\"x\")".into()), ..Stored::default() });
        let pacer = budgeted(&store, 10.0, 40);
        pacer.acquire(None).await.unwrap();
        assert_eq!(pacer.take_repairs(), 1);
        assert!(matches!(store.stored().budget, BudgetField::Map(map) if map.len() == 1));
    }

    #[tokio::test(start_paused = true)]
    async fn the_gauges_say_the_window_s_writes_once_per_reading() {
        let store = Arc::new(MemoryStore::default());
        let pacer = budgeted(&store, 10.0, 40);
        assert_eq!(pacer.take_budget_gauges(), None, "nothing read yet");
        for _ in 0..3 {
            pacer.acquire(None).await.unwrap();
        }
        assert_eq!(pacer.take_budget_gauges(), Some((3, 37)));
        assert_eq!(pacer.take_budget_gauges(), None, "not read since");
        assert_eq!(Arc::new(Pacer::local(1.0)).take_budget_gauges(), None);
    }
}
