//! What an instance may believe of the shared slots. The store is the one thing every instance
//! shares, so one bad value in it (a bug, a manual edit, an older version's item, a host whose clock
//! is wrong) must not stall them all: whatever an instance reads is held to bounds it can compute
//! alone, from the quota and its own clock, without knowing how many instances run. What is out of
//! bounds is repaired ([`super::shared`] writes the repairs).
//!
//! The bounds are per attribute. The per-second pacing's (`next_ms`, `spacing_ms`, `stretched_ms`)
//! are bounded by the horizon ([`Stored::bounded`]); the day's budget's (`budget`, `held_turn_ms`,
//! `spent_until_ms`) by bounds of their own ([`Stored::budget_bounded`]), since its times lie up to a
//! window ahead on purpose.

use std::collections::BTreeMap;
use std::fmt;

use super::budget::Buckets;
use super::slow_down::Stretch;

/// Room for the difference between two hosts' clocks, beyond which a slot's end read from the store
/// cannot have been written by a host that keeps time with this one. Lambda's clocks agree within
/// milliseconds.
const CLOCK_SLACK_MS: u64 = 1_000;

/// One number of the item, as the store holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Field {
    /// Not in the item.
    #[default]
    Missing,
    /// A whole number of milliseconds.
    Number(u64),
    /// A number, but not a whole one from 0 to `u64::MAX` (negative, fractional, too large): as held.
    BadNumber(String),
    /// Not a number at all: shown as held.
    NotNumber(String),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Missing => f.write_str("missing"),
            Field::Number(n) => write!(f, "{n}"),
            Field::BadNumber(n) => write!(f, "the number {n}"),
            Field::NotNumber(shown) => write!(f, "{shown}, not a number"),
        }
    }
}

/// The budget's map of counts by bucket start, as the store holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BudgetField {
    #[default]
    Missing,
    /// Each count by its key, as held.
    Map(BTreeMap<String, Field>),
    /// Not a map: shown as held.
    NotMap(String),
}

/// The pacer's attributes of the item, as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    pub next_ms: Field,
    pub spacing_ms: Field,
    pub stretched_ms: Field,
    pub budget: BudgetField,
    pub held_turn_ms: Field,
    pub spent_until_ms: Field,
}

/// The attributes the pacer owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    NextMs,
    SpacingMs,
    StretchedMs,
    /// The budget's map, as a whole.
    Budget,
    /// One count of the budget's map, by its key.
    Bucket(String),
    HeldTurnMs,
    SpentUntilMs,
}

impl Attribute {
    /// The attribute's name in the item (a count's is that of its map).
    pub fn name(&self) -> &'static str {
        match self {
            Attribute::NextMs => "next_ms",
            Attribute::SpacingMs => "spacing_ms",
            Attribute::StretchedMs => "stretched_ms",
            Attribute::Budget | Attribute::Bucket(_) => "budget",
            Attribute::HeldTurnMs => "held_turn_ms",
            Attribute::SpentUntilMs => "spent_until_ms",
        }
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attribute::Bucket(key) => write!(f, "budget.{key}"),
            other => f.write_str(other.name()),
        }
    }
}

/// An attribute out of bounds, and what it is to become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    pub attribute: Attribute,
    /// What the store held: the repair is written on the condition that it still does, so two
    /// instances repairing at once do not undo each other.
    pub found: Field,
    /// `None`: removed.
    pub became: Option<u64>,
}

/// The shared slots as an instance uses them: every value within bounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slots {
    /// The end of the last slot claimed (milliseconds since the epoch); 0 when none was.
    pub next_ms: u64,
    pub stretch: Option<Stretch>,
}

/// The bounds, from the quota and the instance's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// No slot is claimed that starts further ahead of now than this (`MAX_SLOT_AHEAD_SECONDS`).
    pub horizon_ms: u64,
    /// The longest spacing a stretch may reach.
    pub longest_ms: u64,
}

impl Limits {
    /// The furthest ahead of now a slot's end can be: one that starts at the horizon, stretched to the
    /// longest, written by a host whose clock is a little ahead.
    fn latest_next_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add(self.horizon_ms).saturating_add(self.longest_ms).saturating_add(CLOCK_SLACK_MS)
    }
}

/// The day's budget as an instance uses it: every value within bounds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    /// The item holds the budget's map (a claim adds to it; the first creates it).
    pub exists: bool,
    pub buckets: Buckets,
    /// The next turn of a write that waits for room (milliseconds since the epoch).
    pub held_turn_ms: Option<u64>,
    /// A budget spent by someone else: no write before then, and then one probe.
    pub spent_until_ms: Option<u64>,
}

/// The budget's bounds, from its settings and the instance's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetLimits {
    pub cap: u64,
    /// As [`Limits::horizon_ms`]: no write counts in a bucket that starts further ahead.
    pub horizon_ms: u64,
    /// No turn is given further ahead than this.
    pub turns_ahead_ms: u64,
    /// A learned spend lasts this long.
    pub spent_for_ms: u64,
}

impl Stored {
    /// The budget within bounds at `now_ms`, and the repairs that make the store hold it:
    /// - a `budget` that is not a map is removed; in it, a key that is not a whole number, or a
    ///   bucket further ahead than a slot can start, is removed, a count past the cap becomes the
    ///   cap (the most any bucket can count), and a count that is not a usable number is removed;
    /// - `held_turn_ms` beyond the furthest turn, or `spent_until_ms` beyond the longest spend,
    ///   becomes now; either, not a usable number, is removed.
    pub fn budget_bounded(&self, now_ms: u64, limits: &BudgetLimits) -> (Ledger, Vec<Repair>) {
        let mut repairs = Vec::new();
        let latest_bucket = now_ms.saturating_add(limits.horizon_ms).saturating_add(CLOCK_SLACK_MS);
        let mut buckets = Buckets::new();
        let exists = match &self.budget {
            BudgetField::Missing => false,
            BudgetField::NotMap(shown) => {
                let found = Field::NotNumber(shown.clone());
                repairs.push(Repair { attribute: Attribute::Budget, found, became: None });
                false
            }
            BudgetField::Map(map) => {
                for (key, count) in map {
                    let attribute = Attribute::Bucket(key.clone());
                    let bucket = key.parse::<u64>().ok().filter(|&b| b <= latest_bucket);
                    let became = match (bucket, count) {
                        (Some(bucket), Field::Number(n)) if *n <= limits.cap => {
                            buckets.insert(bucket, *n);
                            continue;
                        }
                        (Some(bucket), Field::Number(_)) => {
                            buckets.insert(bucket, limits.cap);
                            Some(limits.cap)
                        }
                        _ => None,
                    };
                    repairs.push(Repair { attribute, found: count.clone(), became });
                }
                true
            }
        };
        let mut bound = |attribute: Attribute, field: &Field, most: u64| -> Option<u64> {
            let became = match field {
                Field::Missing => return None,
                Field::Number(n) if *n <= most => return Some(*n),
                Field::Number(_) => Some(now_ms),
                Field::BadNumber(_) | Field::NotNumber(_) => None,
            };
            repairs.push(Repair { attribute, found: field.clone(), became });
            became
        };
        let slack = |ahead_ms: u64| now_ms.saturating_add(ahead_ms).saturating_add(CLOCK_SLACK_MS);
        let held_turn_ms = bound(Attribute::HeldTurnMs, &self.held_turn_ms, slack(limits.turns_ahead_ms));
        let spent_until_ms = bound(Attribute::SpentUntilMs, &self.spent_until_ms, slack(limits.spent_for_ms));
        (Ledger { exists, buckets, held_turn_ms, spent_until_ms }, repairs)
    }

    /// The slots within bounds at `now_ms`, and the repairs that make the store hold them:
    /// - `next_ms` beyond `Limits::latest_next_ms`, or not a usable number, becomes now (no slot
    ///   is taken past now); missing is no slot claimed yet;
    /// - `spacing_ms` beyond the longest becomes the longest; not a usable number is removed;
    /// - `stretched_ms` further ahead than the horizon becomes now (the stretch decays from now);
    ///   not a usable number is removed;
    /// - a stretch is only both of them.
    pub fn bounded(&self, now_ms: u64, limits: &Limits) -> (Slots, Vec<Repair>) {
        let mut repairs = Vec::new();
        let mut bound = |attribute: Attribute, field: &Field, most: u64, too_large: u64| -> Option<u64> {
            let became = match field {
                Field::Missing => return None,
                Field::Number(n) if *n <= most => return Some(*n),
                Field::Number(_) => Some(too_large),
                Field::BadNumber(_) | Field::NotNumber(_) => match attribute {
                    Attribute::NextMs => Some(now_ms),
                    _ => None,
                },
            };
            repairs.push(Repair { attribute, found: field.clone(), became });
            became
        };
        let next_ms = bound(Attribute::NextMs, &self.next_ms, limits.latest_next_ms(now_ms), now_ms);
        let spacing_ms = bound(Attribute::SpacingMs, &self.spacing_ms, limits.longest_ms, limits.longest_ms);
        let stretched_ms =
            bound(Attribute::StretchedMs, &self.stretched_ms, now_ms.saturating_add(limits.horizon_ms), now_ms);
        let stretch = spacing_ms.zip(stretched_ms).map(|(spacing_ms, at_ms)| Stretch { spacing_ms, at_ms });
        (Slots { next_ms: next_ms.unwrap_or(0), stretch }, repairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_764_000_000_000;
    const HOUR: u64 = 3_600_000;
    const LIMITS: Limits = Limits { horizon_ms: 10_000, longest_ms: 1_600 };

    fn stored(next_ms: Field, spacing_ms: Field, stretched_ms: Field) -> Stored {
        Stored { next_ms, spacing_ms, stretched_ms, ..Stored::default() }
    }

    fn repair(attribute: Attribute, found: Field, became: Option<u64>) -> Repair {
        Repair { attribute, found, became }
    }

    #[test]
    fn values_within_bounds_are_taken_as_they_are() {
        let item = stored(Field::Number(NOW + 12_600), Field::Number(1_600), Field::Number(NOW + 10_000));
        let (slots, repairs) = item.bounded(NOW, &LIMITS);
        assert_eq!(
            slots,
            Slots { next_ms: NOW + 12_600, stretch: Some(Stretch { spacing_ms: 1_600, at_ms: NOW + 10_000 }) }
        );
        assert!(repairs.is_empty());
        // A slot's end in the past is an idle table, and a stretch in the past has decayed: both fine.
        let old = stored(Field::Number(1), Field::Number(0), Field::Number(0));
        assert!(old.bounded(NOW, &LIMITS).1.is_empty());
    }

    #[test]
    fn a_missing_attribute_is_never_set_and_needs_no_repair() {
        assert_eq!(Stored::default().bounded(NOW, &LIMITS), (Slots::default(), vec![]));
        // Half a stretch is none.
        let half = stored(Field::Missing, Field::Number(500), Field::Missing);
        assert_eq!(half.bounded(NOW, &LIMITS), (Slots::default(), vec![]));
    }

    #[test]
    fn a_slot_further_ahead_than_any_instance_claims_becomes_now() {
        // The furthest a slot can end: the horizon, the longest spacing and a second of clocks.
        let furthest = NOW + 10_000 + 1_600 + 1_000;
        assert!(stored(Field::Number(furthest), Field::Missing, Field::Missing).bounded(NOW, &LIMITS).1.is_empty());
        for found in [furthest + 1, NOW + HOUR, u64::MAX] {
            let (slots, repairs) = stored(Field::Number(found), Field::Missing, Field::Missing).bounded(NOW, &LIMITS);
            assert_eq!(slots.next_ms, NOW);
            assert_eq!(repairs, [repair(Attribute::NextMs, Field::Number(found), Some(NOW))]);
        }
    }

    #[test]
    fn a_stretch_past_its_cap_becomes_the_cap() {
        for found in [1_601, 1_600_000_000, u64::MAX] {
            let (slots, repairs) =
                stored(Field::Missing, Field::Number(found), Field::Number(NOW)).bounded(NOW, &LIMITS);
            assert_eq!(slots.stretch, Some(Stretch { spacing_ms: 1_600, at_ms: NOW }));
            assert_eq!(repairs, [repair(Attribute::SpacingMs, Field::Number(found), Some(1_600))]);
        }
    }

    #[test]
    fn a_stretch_timed_in_the_future_beyond_the_horizon_decays_from_now() {
        let (slots, repairs) =
            stored(Field::Missing, Field::Number(900), Field::Number(NOW + HOUR)).bounded(NOW, &LIMITS);
        assert_eq!(slots.stretch, Some(Stretch { spacing_ms: 900, at_ms: NOW }));
        assert_eq!(repairs, [repair(Attribute::StretchedMs, Field::Number(NOW + HOUR), Some(NOW))]);
    }

    #[test]
    fn values_of_the_wrong_type_or_range_are_repaired() {
        let bad = |s: &str| Field::BadNumber(s.to_owned());
        let not = |s: &str| Field::NotNumber(s.to_owned());
        let item = stored(bad("1e30"), bad("-5"), not("S(\"x\")"));
        let (slots, repairs) = item.bounded(NOW, &LIMITS);
        assert_eq!(slots, Slots { next_ms: NOW, stretch: None });
        assert_eq!(
            repairs,
            [
                repair(Attribute::NextMs, bad("1e30"), Some(NOW)),
                repair(Attribute::SpacingMs, bad("-5"), None),
                repair(Attribute::StretchedMs, not("S(\"x\")"), None),
            ]
        );
        let (slots, repairs) = stored(not("BOOL(true)"), Field::Missing, Field::Missing).bounded(NOW, &LIMITS);
        assert_eq!(slots.next_ms, NOW);
        assert_eq!(repairs, [repair(Attribute::NextMs, not("BOOL(true)"), Some(NOW))]);
    }

    #[test]
    fn every_number_poisoned_at_once() {
        let item = stored(Field::Number(NOW + HOUR), Field::Number(u64::MAX), Field::Number(NOW + HOUR));
        let (slots, repairs) = item.bounded(NOW, &LIMITS);
        assert_eq!(slots, Slots { next_ms: NOW, stretch: Some(Stretch { spacing_ms: 1_600, at_ms: NOW }) });
        assert_eq!(repairs.len(), 3);
    }

    const BUDGET: BudgetLimits =
        BudgetLimits { cap: 40, horizon_ms: 10_000, turns_ahead_ms: 60_000, spent_for_ms: 1_666 };

    fn budget_of(entries: &[(&str, Field)]) -> Stored {
        let map = entries.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        Stored { budget: BudgetField::Map(map), ..Stored::default() }
    }

    #[test]
    fn a_budget_within_bounds_is_taken_as_it_is_far_away_turns_included() {
        let mut item = budget_of(&[(&NOW.to_string(), Field::Number(40)), ("1", Field::Number(3))]);
        item.held_turn_ms = Field::Number(NOW + 60_000);
        item.spent_until_ms = Field::Number(NOW + 1_666);
        let (ledger, repairs) = item.budget_bounded(NOW, &BUDGET);
        assert!(repairs.is_empty(), "{repairs:?}");
        assert_eq!(ledger.buckets, Buckets::from([(1, 3), (NOW, 40)]));
        assert_eq!(
            (ledger.exists, ledger.held_turn_ms, ledger.spent_until_ms),
            (true, Some(NOW + 60_000), Some(NOW + 1_666))
        );
        // Nor do the per-second bounds look at them.
        assert!(item.bounded(NOW, &LIMITS).1.is_empty());
        assert_eq!(Stored::default().budget_bounded(NOW, &BUDGET), (Ledger::default(), vec![]));
    }

    #[test]
    fn every_poisoned_budget_value_is_repaired() {
        let ahead = (NOW + HOUR).to_string();
        let bad = |s: &str| Field::BadNumber(s.to_owned());
        let mut item = budget_of(&[
            (&ahead, Field::Number(7)),
            ("soon", Field::Number(1)),
            ("5", Field::Number(u64::MAX)),
            ("6", bad("1e30")),
            ("7", Field::NotNumber("S(\"x\")".into())),
        ]);
        item.held_turn_ms = Field::Number(NOW + HOUR);
        item.spent_until_ms = bad("-1");
        let (ledger, repairs) = item.budget_bounded(NOW, &BUDGET);
        assert_eq!(ledger.buckets, Buckets::from([(5, 40)]));
        assert_eq!((ledger.held_turn_ms, ledger.spent_until_ms), (Some(NOW), None));
        let bucket = |k: &str| Attribute::Bucket(k.to_owned());
        assert_eq!(
            repairs,
            [
                repair(Attribute::Bucket(ahead.clone()), Field::Number(7), None),
                repair(bucket("5"), Field::Number(u64::MAX), Some(40)),
                repair(bucket("6"), bad("1e30"), None),
                repair(bucket("7"), Field::NotNumber("S(\"x\")".into()), None),
                repair(bucket("soon"), Field::Number(1), None),
                repair(Attribute::HeldTurnMs, Field::Number(NOW + HOUR), Some(NOW)),
                repair(Attribute::SpentUntilMs, bad("-1"), None),
            ]
        );
        let not_a_map = Stored { budget: BudgetField::NotMap("S(\"x\")".into()), ..Stored::default() };
        let (ledger, repairs) = not_a_map.budget_bounded(NOW, &BUDGET);
        assert!(!ledger.exists);
        assert_eq!(repairs, [repair(Attribute::Budget, Field::NotNumber("S(\"x\")".into()), None)]);
    }
}
