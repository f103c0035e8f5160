//! Configuration types and the error type.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::Seed;

/// Errors of [`crate::Emulator::start`] and of the configuration setters.
#[derive(Debug)]
pub enum EmulatorError {
    /// Binding or serving failed.
    Io(std::io::Error),
    /// A configuration value (seed, faults, quotas, credentials) is invalid.
    Config(String),
    /// The HTTPS certificate or configuration could not be made.
    Tls(String),
}

impl fmt::Display for EmulatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmulatorError::Io(e) => write!(f, "I/O error: {e}"),
            EmulatorError::Config(msg) => write!(f, "invalid configuration: {msg}"),
            EmulatorError::Tls(msg) => write!(f, "TLS set-up failed: {msg}"),
        }
    }
}

impl std::error::Error for EmulatorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EmulatorError::Io(e) => Some(e),
            EmulatorError::Config(_) | EmulatorError::Tls(_) => None,
        }
    }
}

impl From<std::io::Error> for EmulatorError {
    fn from(e: std::io::Error) -> Self {
        EmulatorError::Io(e)
    }
}

/// Fault injection for Partner Central operations (never for `/_emulator/…`).
///
/// Each call within the quota draws, independently and in this order: drop (`drop_rate`),
/// internal error (`error_rate`), throttle (`throttle_rate`), slow (`slow_rate`); the first hit
/// wins. A call over the quota draws nothing.
/// A faulted call never changes state, except a slow call when `slow_applies` is set.
/// `latency_ms` is added to every call. JSON member names are PascalCase (`ThrottleRate`, …);
/// absent members take their defaults (0 / false / null).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Probability of an injected `ThrottlingException` (429).
    pub throttle_rate: f64,
    /// Probability of an injected `InternalServerException` (500).
    pub error_rate: f64,
    /// Probability of closing the connection without an answer.
    pub drop_rate: f64,
    /// Latency added to every call, in milliseconds.
    pub latency_ms: u64,
    /// Probability of a slow call, delayed by `slow_ms`.
    pub slow_rate: f64,
    /// Delay of a slow call, in milliseconds.
    pub slow_ms: u64,
    /// `false` (default): after the delay a slow call answers `InternalServerException` and
    /// changes nothing. `true`: after the delay it is processed normally (the change happens
    /// even if the client has already timed out — the ambiguous case).
    pub slow_applies: bool,
    /// Reseeds the fault RNG when set (at start or at runtime); unseeded means random.
    pub rng_seed: Option<u64>,
}

impl FaultConfig {
    /// Checks that every probability is within 0..=1.
    pub fn validate(&self) -> Result<(), EmulatorError> {
        for (name, p) in [
            ("ThrottleRate", self.throttle_rate),
            ("ErrorRate", self.error_rate),
            ("DropRate", self.drop_rate),
            ("SlowRate", self.slow_rate),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(EmulatorError::Config(format!("{name} must be a probability between 0 and 1, got {p}")));
            }
        }
        Ok(())
    }
}

/// The answer to `AssociateOpportunity` for an entity that is already associated. The real
/// service's answer is undocumented; JSON and `--already-associated` spell it `success` or
/// `conflict`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlreadyAssociated {
    /// 200 `{}`, nothing changes (idempotent).
    #[default]
    Success,
    /// `ConflictException` (409). It is not in the service model, so the SDK gives it as an
    /// unhandled error whose code is `ConflictException`.
    Conflict,
}

impl AlreadyAssociated {
    /// The wire spelling, `success` or `conflict`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlreadyAssociated::Success => "success",
            AlreadyAssociated::Conflict => "conflict",
        }
    }
}

impl std::str::FromStr for AlreadyAssociated {
    type Err = EmulatorError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "success" => Ok(AlreadyAssociated::Success),
            "conflict" => Ok(AlreadyAssociated::Conflict),
            other => {
                Err(EmulatorError::Config(format!("AlreadyAssociated must be success or conflict, got {other:?}")))
            }
        }
    }
}

/// The `ErrorList` code of the `ValidationException` that refuses a write to an opportunity under
/// review or rejected. The real one is undocumented; these are the model's two candidates, spelt on
/// the wire, in JSON and in `--review-error-code` as the model spells them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReviewErrorCode {
    /// `ACTION_NOT_PERMITTED` (the default: what a public sync has seen).
    #[default]
    #[serde(rename = "ACTION_NOT_PERMITTED")]
    ActionNotPermitted,
    /// `INVALID_RESOURCE_STATE`.
    #[serde(rename = "INVALID_RESOURCE_STATE")]
    InvalidResourceState,
}

impl ReviewErrorCode {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewErrorCode::ActionNotPermitted => "ACTION_NOT_PERMITTED",
            ReviewErrorCode::InvalidResourceState => "INVALID_RESOURCE_STATE",
        }
    }
}

impl std::str::FromStr for ReviewErrorCode {
    type Err = EmulatorError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "ACTION_NOT_PERMITTED" => Ok(ReviewErrorCode::ActionNotPermitted),
            "INVALID_RESOURCE_STATE" => Ok(ReviewErrorCode::InvalidResourceState),
            other => Err(EmulatorError::Config(format!(
                "ReviewErrorCode must be ACTION_NOT_PERMITTED or INVALID_RESOURCE_STATE, got {other:?}"
            ))),
        }
    }
}

/// Switchable answers where the real service's behaviour is undocumented (`GET`/`POST
/// /_emulator/behavior`, [`crate::RunningEmulator::set_behavior`]). JSON member names are
/// PascalCase; absent members take their defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct BehaviorConfig {
    /// Associating an entity that is already associated: `success` (default) or `conflict`.
    pub already_associated: AlreadyAssociated,
    /// The `ErrorList` code refusing a write under review or rejected: `ACTION_NOT_PERMITTED`
    /// (default) or `INVALID_RESOURCE_STATE`.
    pub review_error_code: ReviewErrorCode,
}

/// A token bucket: `Rate` tokens per second refill, at most `Burst` tokens (the bucket starts
/// full). `Rate` 0 gives exactly `Burst` calls in total, handy for exact tests.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TokenBucketConfig {
    /// Tokens per second.
    pub rate: f64,
    /// Bucket size.
    pub burst: f64,
}

impl TokenBucketConfig {
    fn validate(&self, name: &str) -> Result<(), EmulatorError> {
        if !self.rate.is_finite() || self.rate < 0.0 {
            return Err(EmulatorError::Config(format!("{name}.Rate must be a finite number >= 0, got {}", self.rate)));
        }
        if !self.burst.is_finite() || self.burst < 1.0 {
            return Err(EmulatorError::Config(format!(
                "{name}.Burst must be a finite number >= 1, got {}",
                self.burst
            )));
        }
        Ok(())
    }
}

/// Quotas: writes (`AssociateOpportunity`, `DisassociateOpportunity`, one shared bucket) and
/// reads (`GetOpportunity`). `null` means unlimited. Over quota a call answers
/// `ThrottlingException` (429).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct QuotaConfig {
    /// Write bucket; the service's quota is 1 per second.
    pub write: Option<TokenBucketConfig>,
    /// Read bucket; the service's quota is 10 per second.
    pub read: Option<TokenBucketConfig>,
}

impl Default for QuotaConfig {
    /// The service's quotas: writes 1/s burst 1, reads 10/s burst 10.
    fn default() -> Self {
        QuotaConfig {
            write: Some(TokenBucketConfig { rate: 1.0, burst: 1.0 }),
            read: Some(TokenBucketConfig { rate: 10.0, burst: 10.0 }),
        }
    }
}

impl QuotaConfig {
    /// No quotas at all.
    pub fn unlimited() -> Self {
        QuotaConfig { write: None, read: None }
    }

    /// Checks rates (>= 0) and bursts (>= 1).
    pub fn validate(&self) -> Result<(), EmulatorError> {
        if let Some(w) = &self.write {
            w.validate("Write")?;
        }
        if let Some(r) = &self.read {
            r.validate("Read")?;
        }
        Ok(())
    }
}

/// A rolling quota: at most `Cap` admitted calls in any window of `WindowSeconds` seconds (the
/// service's daily quota: 10,000 writes and 100,000 reads per 86,400 s). A call counts from the
/// moment it is admitted and ages out a window later (see [`crate::DailyQuotaConfig`] for the
/// precision).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RollingQuotaConfig {
    /// Calls admitted per window.
    pub cap: u64,
    /// Length of the window, in seconds (fractions allowed, so tests can shrink it).
    pub window_seconds: f64,
}

impl RollingQuotaConfig {
    /// The service's window: 86,400 s.
    pub const DAY_SECONDS: f64 = 86_400.0;

    fn validate(&self, name: &str) -> Result<(), EmulatorError> {
        // A window under a millisecond would age calls out within the timer's own granularity.
        if !self.window_seconds.is_finite() || !(0.001..=1e9).contains(&self.window_seconds) {
            return Err(EmulatorError::Config(format!(
                "{name}.WindowSeconds must be a number from 0.001 to 1e9, got {}",
                self.window_seconds
            )));
        }
        Ok(())
    }
}

/// The rolling daily quotas, beside the per-second ones ([`QuotaConfig`]): writes
/// (`AssociateOpportunity`, `DisassociateOpportunity`, one shared window) and reads (every other
/// operation). `null` means unlimited. A call must find room in both its per-second bucket and
/// its window; past either it answers the same `ThrottlingException` (429): the service does not
/// tell them apart.
///
/// Each window is counted in 4,096 buckets of `WindowSeconds / 4096`, holding counts, not
/// timestamps, so its memory stays small whatever the cap. A call ages out when the whole of its
/// bucket is older than the window: between exactly one window and one window plus a bucket's
/// width (21 s of a day, 10 ms of a 40 s window) after it was admitted, never earlier, so the
/// emulator is never more lenient than the cap.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DailyQuotaConfig {
    /// The writes' window; the service's is 10,000 per 86,400 s.
    pub write: Option<RollingQuotaConfig>,
    /// The reads' window; the service's is 100,000 per 86,400 s.
    pub read: Option<RollingQuotaConfig>,
}

impl Default for DailyQuotaConfig {
    /// The service's daily quotas: 10,000 writes and 100,000 reads per 86,400 s.
    fn default() -> Self {
        DailyQuotaConfig {
            write: Some(RollingQuotaConfig { cap: 10_000, window_seconds: RollingQuotaConfig::DAY_SECONDS }),
            read: Some(RollingQuotaConfig { cap: 100_000, window_seconds: RollingQuotaConfig::DAY_SECONDS }),
        }
    }
}

impl DailyQuotaConfig {
    /// No daily quotas at all.
    pub fn unlimited() -> Self {
        DailyQuotaConfig { write: None, read: None }
    }

    /// Checks the windows' lengths.
    pub fn validate(&self) -> Result<(), EmulatorError> {
        if let Some(w) = &self.write {
            w.validate("Write")?;
        }
        if let Some(r) = &self.read {
            r.validate("Read")?;
        }
        Ok(())
    }
}

/// Everything [`crate::Emulator::start`] needs. `Default` gives 127.0.0.1 on an ephemeral port,
/// no opportunities, credentials `test`/`test`, the service's quotas (per second and per day), no faults, an already
/// associated entity answering success, 15 minutes of allowed clock skew, and request logging
/// to stderr.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Address to bind (default 127.0.0.1).
    pub host: IpAddr,
    /// Port to bind; 0 picks a free one.
    pub port: u16,
    /// Initial data.
    pub seed: Seed,
    /// Known access key id -> secret access key.
    pub credentials: BTreeMap<String, String>,
    /// Per-second quotas.
    pub quotas: QuotaConfig,
    /// Rolling daily quotas.
    pub daily_quotas: DailyQuotaConfig,
    /// Fault injection.
    pub faults: FaultConfig,
    /// Switchable answers (already-associated entities).
    pub behavior: BehaviorConfig,
    /// Largest accepted difference between `X-Amz-Date` and the emulator's clock.
    pub max_clock_skew: Duration,
    /// Log one line per request to stderr.
    pub log_requests: bool,
    /// Serve HTTPS with a certificate authority made at start (see [`crate::RunningEmulator::ca_pem`]).
    pub tls: bool,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            seed: Seed::default(),
            credentials: BTreeMap::from([("test".to_owned(), "test".to_owned())]),
            quotas: QuotaConfig::default(),
            daily_quotas: DailyQuotaConfig::default(),
            faults: FaultConfig::default(),
            behavior: BehaviorConfig::default(),
            max_clock_skew: Duration::from_secs(15 * 60),
            log_requests: true,
            tls: false,
        }
    }
}

impl EmulatorConfig {
    /// Checks the seed, faults, quotas and credentials.
    pub fn validate(&self) -> Result<(), EmulatorError> {
        self.seed.validate()?;
        self.faults.validate()?;
        self.quotas.validate()?;
        self.daily_quotas.validate()?;
        if self.credentials.is_empty() {
            return Err(EmulatorError::Config("at least one access key is needed".to_owned()));
        }
        if self.credentials.keys().any(|k| k.is_empty() || k.contains('/')) {
            return Err(EmulatorError::Config("access key ids must be non-empty and contain no '/'".to_owned()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_config_json() {
        let f: FaultConfig =
            serde_json::from_str(r#"{"ThrottleRate":0.5,"LatencyMs":10,"RngSeed":7}"#).expect("parses");
        assert_eq!(f.throttle_rate, 0.5);
        assert_eq!(f.latency_ms, 10);
        assert_eq!(f.rng_seed, Some(7));
        assert_eq!(f.error_rate, 0.0);
        assert!(f.validate().is_ok());
        assert!(serde_json::from_str::<FaultConfig>(r#"{"throttle_rate":0.5}"#).is_err());
        for bad in [-0.1, 1.5, f64::NAN] {
            let f = FaultConfig { drop_rate: bad, ..FaultConfig::default() };
            assert!(f.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn quota_config_json() {
        let q: QuotaConfig = serde_json::from_str(r#"{"Write":{"Rate":0,"Burst":2},"Read":null}"#).expect("parses");
        assert_eq!(q.write, Some(TokenBucketConfig { rate: 0.0, burst: 2.0 }));
        assert_eq!(q.read, None);
        assert!(q.validate().is_ok());
        let bad = QuotaConfig { write: Some(TokenBucketConfig { rate: 1.0, burst: 0.5 }), read: None };
        assert!(bad.validate().is_err());
        assert!(EmulatorConfig::default().validate().is_ok());
    }

    #[test]
    fn behavior_config_json() {
        let b: BehaviorConfig = serde_json::from_str(r#"{"AlreadyAssociated":"conflict"}"#).expect("parses");
        assert_eq!(b.already_associated, AlreadyAssociated::Conflict);
        assert_eq!(serde_json::from_str::<BehaviorConfig>("{}").ok(), Some(BehaviorConfig::default()));
        assert_eq!(BehaviorConfig::default().already_associated, AlreadyAssociated::Success);
        assert_eq!(
            serde_json::to_value(&b).ok(),
            Some(serde_json::json!({"AlreadyAssociated": "conflict", "ReviewErrorCode": "ACTION_NOT_PERMITTED"}))
        );
        let b: BehaviorConfig =
            serde_json::from_str(r#"{"ReviewErrorCode":"INVALID_RESOURCE_STATE"}"#).expect("parses");
        assert_eq!(b.review_error_code, ReviewErrorCode::InvalidResourceState);
        assert_eq!(b.already_associated, AlreadyAssociated::Success);
        assert!(serde_json::from_str::<BehaviorConfig>(r#"{"ReviewErrorCode":"action_not_permitted"}"#).is_err());
        assert_eq!(
            "INVALID_RESOURCE_STATE".parse::<ReviewErrorCode>().ok(),
            Some(ReviewErrorCode::InvalidResourceState)
        );
        assert!("INVALID_VALUE".parse::<ReviewErrorCode>().is_err());
        for bad in [r#"{"AlreadyAssociated":"Conflict"}"#, r#"{"AlreadyAssociated":1}"#, r#"{"Other":1}"#] {
            assert!(serde_json::from_str::<BehaviorConfig>(bad).is_err(), "{bad}");
        }
        assert_eq!("success".parse::<AlreadyAssociated>().ok(), Some(AlreadyAssociated::Success));
        assert!("yes".parse::<AlreadyAssociated>().is_err());
        assert_eq!(AlreadyAssociated::Conflict.as_str(), "conflict");
    }
}
