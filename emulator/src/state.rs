//! In-memory service state, counters, quotas and the fault RNG.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::config::{BehaviorConfig, FaultConfig, QuotaConfig, TokenBucketConfig};
use crate::model::{EntityType, LifeCycle, RelatedEntityIdentifiers, Seed, format_timestamp};

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
    /// `ThrottlingException` answers caused by the token bucket (not injected).
    pub quota_throttled: u64,
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

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.config.rate).min(self.config.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
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
    pub next_request_id: u64,
}

pub(crate) fn now_epoch() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl State {
    pub fn new(seed: &Seed, faults: FaultConfig, quotas: QuotaConfig) -> Self {
        let rng = match faults.rng_seed {
            Some(s) => fastrand::Rng::with_seed(s),
            None => fastrand::Rng::new(),
        };
        let mut state = State {
            opportunities: BTreeMap::new(),
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
            next_request_id: 0,
        };
        state.set_quotas(quotas);
        state.apply_seed(seed);
        state
    }

    /// Replaces opportunities and denied catalogs and resets every counter.
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

    /// Takes a token from the bucket of `kind`; `true` if allowed (or unlimited).
    pub fn take_token(&mut self, kind: QuotaKind) -> bool {
        let bucket = match kind {
            QuotaKind::Write => self.write_bucket.as_mut(),
            QuotaKind::Read => self.read_bucket.as_mut(),
        };
        bucket.is_none_or(|b| b.try_take(Instant::now()))
    }

    pub fn is_denied(&self, catalog: &str) -> bool {
        self.denied_catalogs.iter().any(|c| c == catalog)
    }

    pub fn record_association(&mut self, key: EntityKey, disassociation: bool) {
        let map = if disassociation { &mut self.disassociations } else { &mut self.associations };
        *map.entry(key).or_insert(0) += 1;
    }

    pub fn snapshot(&self) -> StateSnapshot {
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
    fn fault_draws_are_reproducible() {
        let faults = FaultConfig {
            throttle_rate: 0.3,
            error_rate: 0.2,
            drop_rate: 0.1,
            rng_seed: Some(42),
            ..FaultConfig::default()
        };
        let mut a = State::new(&Seed::default(), faults.clone(), QuotaConfig::unlimited());
        let mut b = State::new(&Seed::default(), faults, QuotaConfig::unlimited());
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
        );
        assert!((0..50).all(|_| always.draw_fault() == Some(Fault::Slow)));
        let mut never = State::new(&Seed::default(), FaultConfig::default(), QuotaConfig::unlimited());
        assert!((0..50).all(|_| never.draw_fault().is_none()));
    }
}
