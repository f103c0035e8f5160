//! In-memory service state, counters, quotas and the fault RNG.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{
    BehaviorConfig, DailyQuotaConfig, FaultConfig, QuotaConfig, RollingQuotaConfig, TokenBucketConfig,
};
use crate::model::{
    EntityType, LifeCycle, LifeCycleChange, RelatedEntityIdentifiers, Seed, SolutionStatus, format_timestamp,
};

/// The account id used in the emulated opportunity ARNs.
pub const ACCOUNT_ID: &str = "123456789012";

/// One opportunity as the emulator holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Opportunity {
    pub catalog: String,
    pub id: String,
    pub life_cycle: LifeCycle,
    pub related: RelatedEntityIdentifiers,
    pub created: u64,
    pub last_modified: u64,
}

impl Opportunity {
    pub fn arn(&self) -> String {
        format!("arn:aws:partnercentral:us-east-1:{ACCOUNT_ID}:catalog/{}/opportunity/{}", self.catalog, self.id)
    }

    pub fn snapshot(&self) -> OpportunityState {
        OpportunityState {
            catalog: self.catalog.clone(),
            id: self.id.clone(),
            arn: self.arn(),
            created_date: format_timestamp(self.created),
            last_modified_date: format_timestamp(self.last_modified),
            life_cycle: self.life_cycle.clone(),
            related_entity_identifiers: self.related.clone(),
        }
    }
}

/// One legacy solution as the emulator holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Solution {
    pub catalog: String,
    pub id: String,
    pub name: String,
    pub status: SolutionStatus,
    pub category: String,
    pub aws_marketplace_solution_arn: Option<String>,
    pub created: u64,
}

impl Solution {
    /// `SolutionBase`, as `ListSolutions` answers it (and the state shows it).
    pub fn snapshot(&self) -> SolutionState {
        SolutionState {
            catalog: self.catalog.clone(),
            id: self.id.clone(),
            // The model's SolutionArn pattern is `S-[0-9]{1,19}`; an ARN shaped like the
            // opportunities' is what a caller can tell apart from the Id.
            arn: format!("arn:aws:partnercentral:us-east-1:{ACCOUNT_ID}:catalog/{}/solution/{}", self.catalog, self.id),
            name: self.name.clone(),
            status: self.status,
            category: self.category.clone(),
            created_date: format_timestamp(self.created),
            aws_marketplace_solution_arn: self.aws_marketplace_solution_arn.clone(),
        }
    }
}

/// A solution in a [`StateSnapshot`], the `SolutionBase` shape `ListSolutions` answers with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SolutionState {
    /// `AWS` or `Sandbox`.
    pub catalog: String,
    /// `S-…` identifier.
    pub id: String,
    /// Emulated ARN.
    pub arn: String,
    /// Name.
    pub name: String,
    /// `Active`, `Inactive` or `Draft`.
    pub status: SolutionStatus,
    /// Category.
    pub category: String,
    /// RFC 3339 UTC timestamp (seed time).
    pub created_date: String,
    /// The Marketplace solution that succeeds it, if any (absent from the JSON otherwise).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub aws_marketplace_solution_arn: Option<String>,
}

/// An opportunity in a [`StateSnapshot`] (and the shape `GetOpportunity` answers with).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OpportunityState {
    /// `AWS` or `Sandbox`.
    pub catalog: String,
    /// `O…` identifier.
    pub id: String,
    /// Emulated ARN.
    pub arn: String,
    /// RFC 3339 UTC timestamp (seed time).
    pub created_date: String,
    /// RFC 3339 UTC timestamp of the last associate/disassociate that changed it.
    pub last_modified_date: String,
    /// Life cycle.
    pub life_cycle: LifeCycle,
    /// Entities currently associated.
    pub related_entity_identifiers: RelatedEntityIdentifiers,
}

/// Counters of one Partner Central operation.
///
/// Every call that reached the operation (signed correctly, known `X-Amz-Target`) is in `calls`;
/// `calls == successes + sum(errors) + dropped connections`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct OperationCounters {
    /// Calls received.
    pub calls: u64,
    /// 200 answers.
    pub successes: u64,
    /// `ThrottlingException` answers, from the quota or injected.
    pub throttled: u64,
    /// `ThrottlingException` answers caused by a quota, per second or daily (not injected).
    pub quota_throttled: u64,
    /// Of `quota_throttled`, the calls refused by the daily quota's window (the per-second bucket
    /// had room).
    pub daily_quota_throttled: u64,
    /// Calls hit by an injected fault (throttle, error, drop or slow).
    pub faults_injected: u64,
    /// Error answers by error type (`ValidationException`, …).
    pub errors: BTreeMap<String, u64>,
}

/// Injected faults, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct FaultCounters {
    /// Injected `ThrottlingException`s.
    pub throttle: u64,
    /// Injected `InternalServerException`s (not counting slow calls).
    pub internal_error: u64,
    /// Connections closed without an answer.
    pub dropped: u64,
    /// Slow calls.
    pub slow: u64,
}

/// How many times one related entity was actually associated or disassociated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EntityCount {
    /// Catalog.
    pub catalog: String,
    /// Opportunity identifier.
    pub opportunity_identifier: String,
    /// Entity type (wire name).
    pub related_entity_type: String,
    /// Entity identifier.
    pub related_entity_identifier: String,
    /// Number of times the change took effect.
    pub count: u64,
}

/// A point-in-time copy of the emulator: opportunities, counters and current configuration.
/// It is what `GET /_emulator/state` answers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StateSnapshot {
    /// All opportunities, sorted by (catalog, id).
    pub opportunities: Vec<OpportunityState>,
    /// All legacy solutions, sorted by (catalog, id).
    pub solutions: Vec<SolutionState>,
    /// Catalogs answering `AccessDeniedException`.
    pub denied_catalogs: Vec<String>,
    /// TCP connections accepted (control connections included).
    pub connections: u64,
    /// TLS handshakes completed (HTTPS only; a client that reuses its connection makes one).
    pub tls_handshakes: u64,
    /// Partner Central requests received (everything but `/_emulator/…`).
    pub requests: u64,
    /// Requests refused by SigV4 verification.
    pub auth_failures: u64,
    /// Signed requests with an unknown `X-Amz-Target` (or method/path).
    pub unknown_operations: u64,
    /// Counters per operation name (`DisassociateOpportunity`, …).
    pub operations: BTreeMap<String, OperationCounters>,
    /// Injected faults by kind.
    pub faults_injected: FaultCounters,
    /// Successful disassociations per entity (a count above 1 means the same entity was
    /// disassociated again after being re-associated).
    pub disassociations: Vec<EntityCount>,
    /// Associations that took effect per entity (an already associated entity is not counted).
    pub associations: Vec<EntityCount>,
    /// The fault configuration in force.
    pub faults: FaultConfig,
    /// The quota configuration in force.
    pub quotas: QuotaConfig,
    /// The daily quota configuration in force.
    pub daily_quotas: DailyQuotaConfig,
    /// What the daily quotas' windows hold now.
    pub daily_use: DailyUse,
    /// The switchable answers in force.
    pub behavior: BehaviorConfig,
}

impl StateSnapshot {
    /// The opportunity (`catalog`, `id`), if any.
    pub fn opportunity(&self, catalog: &str, id: &str) -> Option<&OpportunityState> {
        self.opportunities.iter().find(|o| o.catalog == catalog && o.id == id)
    }

    /// Counters of one operation (zeros if it was never called).
    pub fn operation(&self, name: &str) -> OperationCounters {
        self.operations.get(name).cloned().unwrap_or_default()
    }

    /// How many times the entity was actually disassociated from the opportunity.
    pub fn disassociation_count(&self, catalog: &str, opportunity: &str, entity_type: &str, identifier: &str) -> u64 {
        self.disassociations
            .iter()
            .find(|c| {
                c.catalog == catalog
                    && c.opportunity_identifier == opportunity
                    && c.related_entity_type == entity_type
                    && c.related_entity_identifier == identifier
            })
            .map_or(0, |c| c.count)
    }

    /// Total successful disassociations.
    pub fn total_disassociations(&self) -> u64 {
        self.disassociations.iter().map(|c| c.count).sum()
    }
}

type EntityKey = (String, String, String, String);

/// A token bucket: `rate` tokens per second, at most `burst` tokens.
#[derive(Clone, Debug)]
pub(crate) struct TokenBucket {
    config: TokenBucketConfig,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(config: TokenBucketConfig) -> Self {
        TokenBucket { config, tokens: config.burst, last: Instant::now() }
    }

    /// Refills up to `now`; whether a token is there to take.
    fn has_token(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.config.rate).min(self.config.burst);
        self.tokens >= 1.0
    }

    /// Takes one token if there is one.
    #[cfg(test)]
    pub fn try_take(&mut self, now: Instant) -> bool {
        let taken = self.has_token(now);
        if taken {
            self.tokens -= 1.0;
        }
        taken
    }
}

/// Buckets per window of a [`RollingWindow`].
const WINDOW_BUCKETS: u32 = 4096;

/// A rolling quota's window: the calls admitted in the last `window`, counted per bucket of
/// `window / WINDOW_BUCKETS` (see [`DailyQuotaConfig`] for why and how precise).
#[derive(Clone, Debug)]
pub(crate) struct RollingWindow {
    config: RollingQuotaConfig,
    origin: Instant,
    width: Duration,
    window: Duration,
    /// (bucket index since `origin`, calls admitted in it), oldest first, none empty.
    buckets: VecDeque<(u64, u64)>,
    used: u64,
}

impl RollingWindow {
    pub fn new(config: RollingQuotaConfig, origin: Instant) -> Self {
        let window = Duration::from_secs_f64(config.window_seconds);
        RollingWindow { config, origin, width: window / WINDOW_BUCKETS, window, buckets: VecDeque::new(), used: 0 }
    }

    fn bucket_of(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(since / self.width.as_nanos().max(1)).unwrap_or(u64::MAX)
    }

    /// Drops the buckets wholly older than the window; the calls left in it.
    pub fn used(&mut self, now: Instant) -> u64 {
        while let Some(&(index, count)) = self.buckets.front() {
            let end_nanos = self.width.as_nanos().saturating_mul(u128::from(index) + 1);
            let end = self.origin + Duration::from_nanos(u64::try_from(end_nanos).unwrap_or(u64::MAX));
            if now.saturating_duration_since(end) < self.window {
                break;
            }
            self.buckets.pop_front();
            self.used -= count;
        }
        self.used
    }

    /// Whether one more call fits now.
    fn has_room(&mut self, now: Instant) -> bool {
        self.used(now) < self.config.cap
    }

    /// Counts `calls` admitted at `now` (past the cap too: another tool's calls are not refused).
    pub fn record(&mut self, now: Instant, calls: u64) {
        if calls == 0 {
            return;
        }
        let index = self.bucket_of(now);
        match self.buckets.back_mut() {
            Some((last, count)) if *last == index => *count += calls,
            _ => self.buckets.push_back((index, calls)),
        }
        self.used += calls;
    }

    pub fn usage(&mut self, now: Instant) -> WindowUse {
        let used = self.used(now);
        WindowUse {
            used,
            left: self.config.cap.saturating_sub(used),
            cap: self.config.cap,
            window_seconds: self.config.window_seconds,
        }
    }
}

/// What one daily quota's window holds now (`GET /_emulator/daily-use`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WindowUse {
    /// Calls admitted within the window (another tool's, recorded with `POST
    /// /_emulator/daily-use`, included).
    pub used: u64,
    /// Calls that still fit: `Cap - Used`, 0 when over.
    pub left: u64,
    /// The cap in force.
    pub cap: u64,
    /// The window in force, in seconds.
    pub window_seconds: f64,
}

/// The daily quotas' windows now; `None` where that quota is off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DailyUse {
    /// Writes.
    pub write: Option<WindowUse>,
    /// Reads.
    pub read: Option<WindowUse>,
}

/// Why a call was refused by a quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QuotaRefusal {
    /// The per-second bucket is empty.
    PerSecond,
    /// The bucket had room, the daily window did not.
    Daily,
}

/// Which quota an operation draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QuotaKind {
    Write,
    Read,
}

/// A fault picked for one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    Drop,
    InternalError,
    Throttle,
    Slow,
}

/// Everything behind the emulator's lock.
pub(crate) struct State {
    pub opportunities: BTreeMap<(String, String), Opportunity>,
    pub solutions: BTreeMap<(String, String), Solution>,
    pub denied_catalogs: Vec<String>,
    pub connections: u64,
    pub tls_handshakes: u64,
    pub requests: u64,
    pub auth_failures: u64,
    pub unknown_operations: u64,
    pub operations: BTreeMap<String, OperationCounters>,
    pub fault_counters: FaultCounters,
    pub disassociations: BTreeMap<EntityKey, u64>,
    pub associations: BTreeMap<EntityKey, u64>,
    pub faults: FaultConfig,
    pub rng: fastrand::Rng,
    pub quotas: QuotaConfig,
    pub behavior: BehaviorConfig,
    pub write_bucket: Option<TokenBucket>,
    pub read_bucket: Option<TokenBucket>,
    pub daily_quotas: DailyQuotaConfig,
    pub write_window: Option<RollingWindow>,
    pub read_window: Option<RollingWindow>,
    pub next_request_id: u64,
}

pub(crate) fn now_epoch() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl State {
    pub fn new(seed: &Seed, faults: FaultConfig, quotas: QuotaConfig, daily_quotas: DailyQuotaConfig) -> Self {
        let rng = match faults.rng_seed {
            Some(s) => fastrand::Rng::with_seed(s),
            None => fastrand::Rng::new(),
        };
        let mut state = State {
            opportunities: BTreeMap::new(),
            solutions: BTreeMap::new(),
            denied_catalogs: Vec::new(),
            connections: 0,
            tls_handshakes: 0,
            requests: 0,
            auth_failures: 0,
            unknown_operations: 0,
            operations: BTreeMap::new(),
            fault_counters: FaultCounters::default(),
            disassociations: BTreeMap::new(),
            associations: BTreeMap::new(),
            faults,
            rng,
            quotas: quotas.clone(),
            behavior: BehaviorConfig::default(),
            write_bucket: None,
            read_bucket: None,
            daily_quotas: DailyQuotaConfig::unlimited(),
            write_window: None,
            read_window: None,
            next_request_id: 0,
        };
        state.set_quotas(quotas);
        state.set_daily_quotas(daily_quotas);
        state.apply_seed(seed);
        state
    }

    /// Replaces opportunities, solutions and denied catalogs and resets every counter.
    pub fn apply_seed(&mut self, seed: &Seed) {
        let now = now_epoch();
        self.opportunities = seed
            .opportunities
            .iter()
            .map(|o| {
                (
                    (o.catalog.clone(), o.id.clone()),
                    Opportunity {
                        catalog: o.catalog.clone(),
                        id: o.id.clone(),
                        life_cycle: o.life_cycle.clone(),
                        related: o.related_entity_identifiers.clone(),
                        created: now,
                        last_modified: now,
                    },
                )
            })
            .collect();
        self.solutions = seed
            .solutions
            .iter()
            .map(|s| {
                let solution = Solution {
                    catalog: s.catalog.clone(),
                    id: s.id.clone(),
                    name: s.name.clone().unwrap_or_else(|| s.id.clone()),
                    status: s.status,
                    category: s.category.clone(),
                    aws_marketplace_solution_arn: s.aws_marketplace_solution_arn.clone(),
                    created: now,
                };
                ((s.catalog.clone(), s.id.clone()), solution)
            })
            .collect();
        self.denied_catalogs = seed.denied_catalogs.clone();
        self.connections = 0;
        self.tls_handshakes = 0;
        self.requests = 0;
        self.auth_failures = 0;
        self.unknown_operations = 0;
        self.operations.clear();
        self.fault_counters = FaultCounters::default();
        self.disassociations.clear();
        self.associations.clear();
    }

    pub fn set_quotas(&mut self, quotas: QuotaConfig) {
        self.write_bucket = quotas.write.map(TokenBucket::new);
        self.read_bucket = quotas.read.map(TokenBucket::new);
        self.quotas = quotas;
    }

    /// Replaces the daily quotas; their windows start empty.
    pub fn set_daily_quotas(&mut self, daily_quotas: DailyQuotaConfig) {
        let now = Instant::now();
        self.write_window = daily_quotas.write.map(|c| RollingWindow::new(c, now));
        self.read_window = daily_quotas.read.map(|c| RollingWindow::new(c, now));
        self.daily_quotas = daily_quotas;
    }

    /// What the daily windows hold now.
    pub fn daily_use(&mut self) -> DailyUse {
        let now = Instant::now();
        DailyUse {
            write: self.write_window.as_mut().map(|w| w.usage(now)),
            read: self.read_window.as_mut().map(|w| w.usage(now)),
        }
    }

    /// Counts calls another tool made now against the daily windows (a quota that is off ignores them).
    pub fn spend_daily(&mut self, writes: u64, reads: u64) {
        let now = Instant::now();
        if let Some(w) = self.write_window.as_mut() {
            w.record(now, writes);
        }
        if let Some(r) = self.read_window.as_mut() {
            r.record(now, reads);
        }
    }

    pub fn set_faults(&mut self, faults: FaultConfig) {
        if let Some(seed) = faults.rng_seed {
            self.rng = fastrand::Rng::with_seed(seed);
        }
        self.faults = faults;
    }

    pub fn request_id(&mut self) -> String {
        self.next_request_id += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.next_request_id)
    }

    pub fn counters(&mut self, operation: &str) -> &mut OperationCounters {
        self.operations.entry(operation.to_owned()).or_default()
    }

    /// Draws the faults for one call, independently and in order: drop, internal error, throttle,
    /// slow. A probability of 0 draws nothing, so sequences stay reproducible.
    pub fn draw_fault(&mut self) -> Option<Fault> {
        let f = self.faults.clone();
        for (p, fault) in [
            (f.drop_rate, Fault::Drop),
            (f.error_rate, Fault::InternalError),
            (f.throttle_rate, Fault::Throttle),
            (f.slow_rate, Fault::Slow),
        ] {
            if p > 0.0 && self.rng.f64() < p {
                return Some(fault);
            }
        }
        None
    }

    /// Admits one call of `kind` when both its per-second bucket and its daily window have room,
    /// and only then takes from both: a refused call spends neither.
    pub fn admit(&mut self, kind: QuotaKind) -> Result<(), QuotaRefusal> {
        let now = Instant::now();
        let (mut bucket, mut window) = match kind {
            QuotaKind::Write => (self.write_bucket.as_mut(), self.write_window.as_mut()),
            QuotaKind::Read => (self.read_bucket.as_mut(), self.read_window.as_mut()),
        };
        if bucket.as_mut().is_some_and(|b| !b.has_token(now)) {
            return Err(QuotaRefusal::PerSecond);
        }
        if window.as_mut().is_some_and(|w| !w.has_room(now)) {
            return Err(QuotaRefusal::Daily);
        }
        if let Some(b) = bucket {
            b.tokens -= 1.0;
        }
        if let Some(w) = window {
            w.record(now, 1);
        }
        Ok(())
    }

    /// Sets the members `change` gives of one opportunity's life cycle (as AWS's review would,
    /// which modifies the opportunity); `None` if there is no such opportunity.
    pub fn change_life_cycle(&mut self, catalog: &str, id: &str, change: LifeCycleChange) -> Option<OpportunityState> {
        let opp = self.opportunities.get_mut(&(catalog.to_owned(), id.to_owned()))?;
        if let Some(stage) = change.stage {
            opp.life_cycle.stage = stage;
        }
        if let Some(status) = change.review_status {
            opp.life_cycle.review_status = status;
        }
        opp.last_modified = now_epoch();
        Some(opp.snapshot())
    }

    pub fn is_denied(&self, catalog: &str) -> bool {
        self.denied_catalogs.iter().any(|c| c == catalog)
    }

    pub fn record_association(&mut self, key: EntityKey, disassociation: bool) {
        let map = if disassociation { &mut self.disassociations } else { &mut self.associations };
        *map.entry(key).or_insert(0) += 1;
    }

    pub fn snapshot(&mut self) -> StateSnapshot {
        let daily_use = self.daily_use();
        let counts = |map: &BTreeMap<EntityKey, u64>| {
            map.iter()
                .map(|((c, o, t, i), n)| EntityCount {
                    catalog: c.clone(),
                    opportunity_identifier: o.clone(),
                    related_entity_type: t.clone(),
                    related_entity_identifier: i.clone(),
                    count: *n,
                })
                .collect()
        };
        StateSnapshot {
            opportunities: self.opportunities.values().map(Opportunity::snapshot).collect(),
            solutions: self.solutions.values().map(Solution::snapshot).collect(),
            denied_catalogs: self.denied_catalogs.clone(),
            connections: self.connections,
            tls_handshakes: self.tls_handshakes,
            requests: self.requests,
            auth_failures: self.auth_failures,
            unknown_operations: self.unknown_operations,
            operations: self.operations.clone(),
            faults_injected: self.fault_counters.clone(),
            disassociations: counts(&self.disassociations),
            associations: counts(&self.associations),
            faults: self.faults.clone(),
            quotas: self.quotas.clone(),
            daily_quotas: self.daily_quotas.clone(),
            daily_use,
            behavior: self.behavior.clone(),
        }
    }
}

/// Key of an entity in the association counters.
pub(crate) fn entity_key(catalog: &str, opportunity: &str, entity_type: EntityType, identifier: &str) -> EntityKey {
    (catalog.to_owned(), opportunity.to_owned(), entity_type.as_str().to_owned(), identifier.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn token_bucket_counts() {
        let start = Instant::now();
        let mut b = TokenBucket::new(TokenBucketConfig { rate: 1.0, burst: 1.0 });
        b.last = start;
        assert!(b.try_take(start));
        assert!(!b.try_take(start));
        assert!(!b.try_take(start + Duration::from_millis(500)));
        assert!(b.try_take(start + Duration::from_millis(1000)));
        // Burst is a cap.
        assert!(b.try_take(start + Duration::from_secs(100)));
        assert!(!b.try_take(start + Duration::from_secs(100)));

        let mut fixed = TokenBucket::new(TokenBucketConfig { rate: 0.0, burst: 3.0 });
        let taken = (0..10).filter(|_| fixed.try_take(Instant::now())).count();
        assert_eq!(taken, 3);
    }

    #[test]
    fn a_call_ages_out_of_the_window_a_window_after_it_was_admitted() {
        let start = Instant::now();
        let window = Duration::from_secs(40);
        let width = window / WINDOW_BUCKETS;
        let mut w = RollingWindow::new(RollingQuotaConfig { cap: 2, window_seconds: 40.0 }, start);
        let t1 = start + Duration::from_secs(1);
        let t2 = start + Duration::from_secs(5);
        assert!(w.has_room(t1));
        w.record(t1, 1);
        w.record(t2, 1);
        assert!(!w.has_room(t2));
        // Never early: full until a window after the first call...
        assert!(!w.has_room(t1 + window - Duration::from_nanos(1)));
        // ...and within one bucket's width after it.
        assert!(w.has_room(t1 + window + width));
        assert_eq!(w.used(t1 + window + width), 1);
        assert_eq!(w.used(t2 + window + width), 0);
        assert_eq!(w.usage(t2 + window + width), WindowUse { used: 0, left: 2, cap: 2, window_seconds: 40.0 });
    }

    #[test]
    fn a_window_counts_in_bounded_memory_and_records_past_its_cap() {
        let start = Instant::now();
        let mut w = RollingWindow::new(RollingQuotaConfig { cap: 10_000, window_seconds: 86_400.0 }, start);
        for i in 0..50_000u64 {
            w.record(start + Duration::from_millis(i * 1_700), 1);
        }
        assert!(w.buckets.len() <= WINDOW_BUCKETS as usize + 1, "{}", w.buckets.len());
        let now = start + Duration::from_millis(50_000 * 1_700);
        assert_eq!(w.used(now), 50_000);
        assert_eq!(w.usage(now).left, 0);
        // A day after the last, all gone.
        assert_eq!(w.used(now + Duration::from_secs(86_400) + Duration::from_secs(22)), 0);
        assert!(w.buckets.is_empty());
    }

    #[test]
    fn a_call_needs_room_in_both_its_bucket_and_its_window_and_a_refusal_spends_neither() {
        let per_second = QuotaConfig { write: Some(TokenBucketConfig { rate: 0.0, burst: 3.0 }), read: None };
        let daily = DailyQuotaConfig {
            write: Some(RollingQuotaConfig { cap: 2, window_seconds: 3600.0 }),
            read: Some(RollingQuotaConfig { cap: 1, window_seconds: 3600.0 }),
        };
        let mut st = State::new(&Seed::default(), FaultConfig::default(), per_second, daily);
        assert_eq!(st.admit(QuotaKind::Write), Ok(()));
        assert_eq!(st.admit(QuotaKind::Write), Ok(()));
        assert_eq!(st.admit(QuotaKind::Write), Err(QuotaRefusal::Daily));
        assert_eq!(st.write_bucket.as_ref().map(|b| b.tokens), Some(1.0), "the refused call kept its token");
        assert_eq!(st.admit(QuotaKind::Read), Ok(()));
        assert_eq!(st.admit(QuotaKind::Read), Err(QuotaRefusal::Daily));
        st.set_daily_quotas(DailyQuotaConfig::unlimited());
        assert_eq!(st.admit(QuotaKind::Write), Ok(()));
        assert_eq!(st.admit(QuotaKind::Write), Err(QuotaRefusal::PerSecond));
        assert_eq!(st.daily_use(), DailyUse::default());
        st.set_daily_quotas(DailyQuotaConfig::default());
        st.spend_daily(10_000, 5);
        let used = st.daily_use();
        assert_eq!(used.write.map(|w| (w.used, w.left)), Some((10_000, 0)));
        assert_eq!(used.read.map(|r| (r.used, r.left)), Some((5, 99_995)));
    }

    #[test]
    fn fault_draws_are_reproducible() {
        let faults = FaultConfig {
            throttle_rate: 0.3,
            error_rate: 0.2,
            drop_rate: 0.1,
            rng_seed: Some(42),
            ..FaultConfig::default()
        };
        let mut a =
            State::new(&Seed::default(), faults.clone(), QuotaConfig::unlimited(), DailyQuotaConfig::unlimited());
        let mut b = State::new(&Seed::default(), faults, QuotaConfig::unlimited(), DailyQuotaConfig::unlimited());
        let da: Vec<_> = (0..200).map(|_| a.draw_fault()).collect();
        let db: Vec<_> = (0..200).map(|_| b.draw_fault()).collect();
        assert_eq!(da, db);
        assert!(da.contains(&Some(Fault::Drop)));
        assert!(da.contains(&Some(Fault::Throttle)));
        assert!(da.contains(&None));

        let mut always = State::new(
            &Seed::default(),
            FaultConfig { slow_rate: 1.0, ..FaultConfig::default() },
            QuotaConfig::unlimited(),
            DailyQuotaConfig::unlimited(),
        );
        assert!((0..50).all(|_| always.draw_fault() == Some(Fault::Slow)));
        let mut never = State::new(
            &Seed::default(),
            FaultConfig::default(),
            QuotaConfig::unlimited(),
            DailyQuotaConfig::unlimited(),
        );
        assert!((0..50).all(|_| never.draw_fault().is_none()));
    }
}
