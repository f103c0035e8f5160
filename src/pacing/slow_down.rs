//! One slow-down policy for both pacers, the shared slots and the local one: each throttled answer
//! stretches the spacing by half, up to a cap, and the stretch halves with time, so the writes come
//! back to the full rate by themselves once the throttling stops. Time undoes a stretch, not
//! successes: a pacer that writes little recovers as soon as one that writes much.

/// A throttled answer stretches the spacing by this factor, in thousandths.
const STRETCH_PER_THROTTLE_MILLI: u64 = 1500;
/// How many base spacings it takes a stretch to halve.
const HALF_LIFE_SPACINGS: u64 = 4;
/// How far a run of throttled answers may stretch the spacing: 16 times the base...
const MAX_SLOWDOWN: u64 = 16;
/// ...but never past 10 s (a longer base is not stretched): an invocation must still find a slot.
const MAX_STRETCHED_MS: u64 = 10_000;

/// The spacing as stretched by the last throttled answer, and when (milliseconds on the pacer's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stretch {
    pub spacing_ms: u64,
    pub at_ms: u64,
}

/// The policy for a base spacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowDown {
    base_ms: u64,
    longest_ms: u64,
}

impl SlowDown {
    pub fn new(base_ms: u64) -> Self {
        let base_ms = base_ms.max(1);
        let longest_ms = base_ms.saturating_mul(MAX_SLOWDOWN).min(MAX_STRETCHED_MS).max(base_ms);
        Self { base_ms, longest_ms }
    }

    /// The spacing without a stretch.
    pub fn base_ms(&self) -> u64 {
        self.base_ms
    }

    /// How long a stretch takes to halve: four base spacings, in which a per-second quota admits
    /// several writes.
    pub fn half_life_ms(&self) -> u64 {
        self.base_ms * HALF_LIFE_SPACINGS
    }

    /// The most a stretch may reach.
    pub fn longest_ms(&self) -> u64 {
        self.longest_ms
    }

    /// The spacing at `now_ms`: the base, or the last stretch as it has decayed since.
    pub fn spacing_at(&self, stretch: Option<Stretch>, now_ms: u64) -> u64 {
        let Some(stretch) = stretch else { return self.base_ms };
        let extra = stretch.spacing_ms.min(self.longest_ms).saturating_sub(self.base_ms) as f64;
        let half_lives = now_ms.saturating_sub(stretch.at_ms) as f64 / (self.base_ms * HALF_LIFE_SPACINGS) as f64;
        self.base_ms + (extra * 0.5f64.powf(half_lives)).round() as u64
    }

    /// Whether `spacing_ms` is stretched: throttled answers that keep coming at a stretched spacing
    /// are no longer the per-second quota's doing.
    pub fn is_stretched(&self, spacing_ms: u64) -> bool {
        spacing_ms > self.base_ms
    }

    /// The stretch that a throttled answer at `now_ms` makes of `stretch`.
    pub fn throttled(&self, stretch: Option<Stretch>, now_ms: u64) -> Stretch {
        let current = self.spacing_at(stretch, now_ms);
        let spacing_ms = (current.saturating_mul(STRETCH_PER_THROTTLE_MILLI) / 1000).min(self.longest_ms);
        Stretch { spacing_ms, at_ms: now_ms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_throttle_stretches_by_half_up_to_the_cap() {
        let policy = SlowDown::new(100);
        let mut stretch = None;
        let mut spacings = Vec::new();
        for _ in 0..10 {
            stretch = Some(policy.throttled(stretch, 0));
            spacings.push(policy.spacing_at(stretch, 0));
        }
        assert_eq!(spacings, [150, 225, 337, 505, 757, 1135, 1600, 1600, 1600, 1600]);
    }

    #[test]
    fn a_stretch_halves_every_four_base_spacings() {
        let policy = SlowDown::new(100);
        let stretch = Some(Stretch { spacing_ms: 900, at_ms: 1_000 });
        assert_eq!(policy.spacing_at(stretch, 1_000), 900);
        assert_eq!(policy.spacing_at(stretch, 1_400), 500, "800 extra, halved once");
        assert_eq!(policy.spacing_at(stretch, 1_800), 300);
        assert_eq!(policy.spacing_at(stretch, 10_000), 100, "back to the base");
    }

    #[test]
    fn the_cap_is_sixteen_times_the_base_never_past_ten_seconds_and_never_below_the_base() {
        assert_eq!(SlowDown::new(100).longest_ms(), 1_600);
        assert_eq!(SlowDown::new(5_000).longest_ms(), 10_000);
        assert_eq!(SlowDown::new(20_000).longest_ms(), 20_000);
        // A stretch read from elsewhere is held to the cap too.
        let policy = SlowDown::new(100);
        assert_eq!(policy.spacing_at(Some(Stretch { spacing_ms: u64::MAX, at_ms: 0 }), 0), 1_600);
    }
}
