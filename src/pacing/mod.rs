//! Pacing the writes under the account's write quota (1 per second, shared by every caller in the
//! account; its burst is undocumented, so pacing assumes none).
//!
//! With a shared store ([`shared`]: `WRITE_SLOTS_TABLE`), every instance of the stack claims its slots
//! in one place and the stack paces as one. Without it, or while the store cannot be used, each
//! instance paces alone at its share ([`local`]: `PARTNER_CENTRAL_WRITES_PER_SECOND`): slower, never
//! unpaced, and fresh: a slow-down left from before is stale. Either way every attempt of a write
//! waits for a slot, and a throttled answer stretches the spacing of the pacer in use, by one policy
//! ([`slow_down`]).

pub mod bounds;
pub mod local;
pub mod shared;
pub mod slow_down;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use local::LocalPacer;
pub use local::TooLate;
use shared::{Acquired, SharedSlots};

/// The worker's pacer.
pub struct Pacer {
    local: LocalPacer,
    shared: Option<SharedSlots>,
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
            queue: tokio::sync::Mutex::new(()),
            alone: AtomicBool::new(true),
        }
    }

    /// Pacing in the account's shared slots, or alone at `per_second` while they cannot be used.
    pub fn shared(per_second: f64, slots: SharedSlots) -> Self {
        Self { shared: Some(slots), alone: AtomicBool::new(false), ..Self::local(per_second) }
    }

    /// Waits for the next write slot. `latest_start`, when given, is the last moment a slot may
    /// begin: a later one is refused at once, without waiting, and nothing is consumed.
    pub async fn acquire(&self, latest_start: Option<Instant>) -> Result<(), TooLate> {
        let _turn = self.queue.lock().await;
        if let Some(shared) = &self.shared {
            match shared.claim(latest_start).await {
                Acquired::At(slot) => {
                    self.alone.store(false, Ordering::Relaxed);
                    tokio::time::sleep_until(slot).await;
                    return Ok(());
                }
                Acquired::TooLate(slot) => return Err(TooLate { slot }),
                Acquired::Unavailable => {}
            }
            if !self.alone.swap(true, Ordering::Relaxed) {
                self.local.reset();
            }
        }
        self.local.acquire(latest_start).await
    }

    /// The service answered with throttling: the pacer that gave the last slot slows down.
    pub async fn throttled(&self) {
        match &self.shared {
            Some(shared) if !self.alone.load(Ordering::Relaxed) => shared.throttled().await,
            _ => self.local.throttled(),
        }
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

    use futures::future::BoxFuture;

    use super::shared::{Attribute, Claim, Field, Reading, Repair, Repaired, SlotStore, StoreError, Stored, Stretch};
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

    fn field(stored: &mut Stored, attribute: Attribute) -> &mut Field {
        match attribute {
            Attribute::NextMs => &mut stored.next_ms,
            Attribute::SpacingMs => &mut stored.spacing_ms,
            Attribute::StretchedMs => &mut stored.stretched_ms,
        }
    }

    impl SlotStore for MemoryStore {
        fn read(&self) -> BoxFuture<'_, Result<Reading, StoreError>> {
            Box::pin(async move {
                self.answer().await?;
                Ok(self.reading())
            })
        }

        fn claim(&self, start_ms: u64, spacing_ms: u64) -> BoxFuture<'_, Result<Claim, StoreError>> {
            Box::pin(async move {
                self.answer().await?;
                let next = self.stored().next_ms;
                if next != Field::Missing && number(&next).is_none_or(|n| n > start_ms as f64) {
                    return Ok(Claim::Taken(self.reading()));
                }
                self.stored.lock().unwrap().next_ms = Field::Number(start_ms + spacing_ms);
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

        fn repair(&self, repairs: Vec<Repair>) -> BoxFuture<'_, Result<Repaired, StoreError>> {
            Box::pin(async move {
                self.answer().await?;
                let mut stored = self.stored.lock().unwrap();
                let holds = |held: &Field, found: &Field| match found {
                    Field::NotNumber(_) => matches!(held, Field::NotNumber(_)),
                    found => held == found,
                };
                if !repairs.iter().all(|r| holds(field(&mut stored, r.attribute), &r.found)) {
                    drop(stored);
                    return Ok(Repaired::Refused(self.reading()));
                }
                for repair in repairs {
                    *field(&mut stored, repair.attribute) = repair.became.map_or(Field::Missing, Field::Number);
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
        a.acquire(None).await.unwrap();
        a.throttled().await;
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
        a.throttled().await;
        b.throttled().await;
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
        assert!(matches!(refused, Err(TooLate { slot }) if slot > now + Duration::from_millis(500)));
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
            pacer.throttled().await;
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
                Stored { next_ms: n(EPOCH_MS + HOUR_MS), spacing_ms: n(u64::MAX), stretched_ms: n(EPOCH_MS + HOUR_MS) },
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
        fast.throttled().await;
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
}
