//! Pacing the writes under the account's write quota (1 per second, shared by every caller in the
//! account; its burst is undocumented, so pacing assumes none).
//!
//! With a shared store ([`shared`]: `WRITE_SLOTS_TABLE`), every instance of the stack claims its slots
//! in one place and the stack paces as one. Without it, or while the store cannot be used, each
//! instance paces alone at its share ([`local`]: `PARTNER_CENTRAL_WRITES_PER_SECOND`): slower, never
//! unpaced, and fresh: a slow-down left from before is stale. Either way every attempt of a write
//! waits for a slot, and a throttled answer stretches the spacing of the pacer in use, by one policy
//! ([`slow_down`]).

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

    /// The service answered with throttling: the pacer in use slows down.
    pub async fn throttled(&self) {
        match &self.shared {
            Some(shared) if !shared.is_down() => shared.throttled().await,
            _ => self.local.throttled(),
        }
    }

    /// The time between two slots now.
    pub fn interval(&self) -> Duration {
        match &self.shared {
            Some(shared) if !shared.is_down() => shared.spacing(),
            _ => self.local.interval(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Mutex};

    use futures::future::BoxFuture;

    use super::shared::{Claim, SlotStore, Slots, StoreError, Stretch};
    use super::*;

    /// A store in memory: the one every instance of a test shares.
    #[derive(Debug, Default)]
    pub struct MemoryStore {
        slots: Mutex<Slots>,
        /// Every call fails while set.
        pub failing: std::sync::atomic::AtomicBool,
        /// Every call takes this long (milliseconds) while set.
        pub delay_ms: std::sync::atomic::AtomicU64,
        /// Calls made.
        pub calls: std::sync::atomic::AtomicU64,
    }

    impl MemoryStore {
        pub fn slots(&self) -> Slots {
            *self.slots.lock().unwrap()
        }

        async fn answer(&self) -> Result<(), StoreError> {
            use std::sync::atomic::Ordering;
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

    impl SlotStore for MemoryStore {
        fn claim(&self, start_ms: u64, spacing_ms: u64) -> BoxFuture<'_, Result<Claim, StoreError>> {
            Box::pin(async move {
                self.answer().await?;
                let mut slots = self.slots.lock().unwrap();
                if slots.next_ms > start_ms {
                    return Ok(Claim::Taken(*slots));
                }
                slots.next_ms = start_ms + spacing_ms;
                Ok(Claim::Claimed(*slots))
            })
        }

        fn stretch(&self, stretch: Stretch, unless_since_ms: u64) -> BoxFuture<'_, Result<(), StoreError>> {
            Box::pin(async move {
                self.answer().await?;
                let mut slots = self.slots.lock().unwrap();
                if slots.stretch.is_none_or(|s| s.at_ms < unless_since_ms) {
                    slots.stretch = Some(stretch);
                }
                Ok(())
            })
        }
    }

    fn instance(store: &Arc<MemoryStore>, per_second: f64) -> Arc<Pacer> {
        let slots = SharedSlots::at_epoch_ms(store.clone(), per_second, 0.05, 1_764_000_000_000);
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
        let stretched = store.slots().stretch.expect("recorded in the store");
        assert_eq!(stretched.spacing_ms, 157, "1.5 times 105 ms");
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
        assert_eq!(store.slots().stretch.unwrap().spacing_ms, 157);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_past_the_latest_start_is_refused_and_nothing_is_claimed() {
        let store = Arc::new(MemoryStore::default());
        let (a, b) = (instance(&store, 1.0), instance(&store, 1.0));
        a.acquire(None).await.unwrap();
        b.acquire(None).await.unwrap();
        let before = store.slots();
        let now = Instant::now();
        let refused = a.acquire(Some(now + Duration::from_millis(500))).await;
        assert!(matches!(refused, Err(TooLate { slot }) if slot > now + Duration::from_millis(500)));
        assert_eq!(store.slots(), before, "nothing claimed");
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
        assert!(store.slots().next_ms > 0);

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

    #[tokio::test(start_paused = true)]
    async fn without_a_store_an_instance_paces_alone() {
        let pacer = Arc::new(Pacer::local(4.0));
        let times = run(std::slice::from_ref(&pacer), 3).await;
        assert_eq!(gaps(&times), vec![Duration::from_millis(250); 2]);
        assert_eq!(pacer.interval(), Duration::from_millis(250));
    }
}
