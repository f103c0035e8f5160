//! A local emulator of the AWS Partner Central Selling API, for demos and end-to-end tests.
//!
//! It is an independent implementation of the service's documented rules (it does not use the
//! function under test), speaking the real wire protocol so the real Rust SDK talks to it:
//! awsJson1_0 over HTTP/1.1, `POST /` with `X-Amz-Target: AWSPartnerCentralSelling.<Operation>`,
//! SigV4-signed for service `partnercentral-selling` in `us-east-1`.
//!
//! # Operations
//!
//! * `DisassociateOpportunity`, `AssociateOpportunity`: input `Catalog`,
//!   `OpportunityIdentifier`, `RelatedEntityType`, `RelatedEntityIdentifier`; success is 200 `{}`.
//!   Disassociating an entity that is not associated answers `ResourceNotFoundException`
//!   ("Related entity … is not associated with opportunity …"; the real service's answer is
//!   undocumented, this is the emulator's choice). While an opportunity's `LifeCycle.ReviewStatus`
//!   is `Submitted` or `In review` every write to it is refused, and a `Rejected` one is read-only:
//!   `ValidationException`, reason `BUSINESS_VALIDATION_FAILED`, one `ErrorList` entry, `FieldName`
//!   `OpportunityIdentifier`, code `ACTION_NOT_PERMITTED` or `INVALID_RESOURCE_STATE` as
//!   [`BehaviorConfig::review_error_code`] says (the real one is undocumented; these are the model's
//!   candidates), with a message naming the status or saying the opportunity is rejected and
//!   read-only. Disassociating the last solution of an
//!   opportunity whose `LifeCycle.ReviewStatus` is `Submitted`, `In review`, `Approved` or
//!   `Action Required` answers `ValidationException` with reason `BUSINESS_VALIDATION_FAILED` and
//!   code `ACTION_NOT_PERMITTED`. `Solutions` and `AwsMarketplaceSolutions` entries both count as
//!   solutions (AWS recommends the latter as the successor of the former), so a legacy solution can
//!   be replaced by a Marketplace solution associated first, and not the other way round.
//! * Associating an entity that is already associated changes nothing and answers, as
//!   [`BehaviorConfig`] says (the real answer is undocumented): 200 `{}` (`success`, the default) or
//!   `ConflictException` (`conflict`, 409; not in the service model, so the SDK gives an unhandled
//!   error whose code is `ConflictException`).
//! * Association limits per opportunity (Partner Central developer guide, quotas;
//!   [`AssociationLimit`]): 20 `AwsProducts`, 10 `Solutions`, 10 `AwsMarketplaceSolutions`,
//!   10 `AwsMarketplaceProducts`, and one AWS Marketplace offer or offer set
//!   (`AwsMarketplaceOffers` and `AwsMarketplaceOfferSets` together hold at most 1: an offer is
//!   replaced by disassociating the old one first). An `AssociateOpportunity` that would break a
//!   limit changes nothing and answers `ValidationException` with reason
//!   `BUSINESS_VALIDATION_FAILED` and one `ErrorList` entry, `FieldName`
//!   `RelatedEntityIdentifier`, code `TOO_MANY_VALUES`, whose message names the limit. The code
//!   the real service uses there is undocumented; `TOO_MANY_VALUES` is the emulator's choice from
//!   the model's `ValidationExceptionErrorCode`. Seeds that break a limit are refused.
//! * `GetOpportunity` (a read): input `Catalog`, `Identifier`; answers `Catalog`, `Id`, `Arn`,
//!   `CreatedDate`, `LastModifiedDate` (RFC 3339 strings: the model's `date-time` format, which is
//!   what the SDK parses), `LifeCycle` and `RelatedEntityIdentifiers` (all six lists, always).
//! * `ListSolutions` (a read): input `Catalog` (required), `MaxResults` (1 to 100, default 20),
//!   `NextToken`, `Sort` (`SortBy` `Identifier` | `Name` | `Status` | `Category` | `CreatedDate`
//!   and `SortOrder` `ASCENDING` | `DESCENDING`, both required; default `Identifier`
//!   descending), filters `Status` (up to 10), `Identifier` (up to 20, `S-[0-9]{1,19}`),
//!   `Category` (up to 10), `AwsMarketplaceSolutionArn` (up to 10, `arn:.*`); answers
//!   `SolutionSummaries` (`SolutionBase`: `Catalog`, `Id`, `Arn`, `Name`, `Status`, `Category`,
//!   `CreatedDate`, and `AwsMarketplaceSolutionArn` when the legacy solution has a counterpart) and
//!   `NextToken` when more remain. `Arn` is shaped like an opportunity's (the model's pattern for
//!   it, `S-[0-9]{1,19}`, would repeat the `Id`).
//! * `ListOpportunities` (a read): input `Catalog`, `MaxResults`, `NextToken` as above, `Sort`
//!   (`SortBy` `LastModifiedDate` | `Identifier` | `CreatedDate`; default `LastModifiedDate`
//!   descending), filters `Identifier` (up to 20), `LifeCycleStage` (up to 10),
//!   `LifeCycleReviewStatus` (up to 10), `LastModifiedDate` and `CreatedDate` (`After…`/`Before…`
//!   ISO 8601 date-times, bounds included); answers `OpportunitySummaries` (`Catalog`, `Id`, `Arn`,
//!   `LastModifiedDate`, `CreatedDate`, `LifeCycle` with `Stage` and `ReviewStatus`) and
//!   `NextToken`. The emulator holds no customer or target close date: the `CustomerCompanyName`
//!   and `TargetCloseDate` filters, and sorting by them, answer `ValidationException`
//!   (`INVALID_VALUE`) rather than a wrong page.
//! * Paging: a `NextToken` names the last item's place in the sort and the request it belongs to
//!   (every member but `NextToken` and `MaxResults`); the next page starts right after that place,
//!   so a scan sorted by `Identifier` reads every item exactly once whatever is written meanwhile.
//!   A token not answered to the same request is `ValidationException`, `FieldName` `NextToken`,
//!   code `INVALID_VALUE`; `MaxResults` out of 1 to 100 is code `VALUE_OUT_OF_RANGE`.
//!
//! Validation (all failures of a request are listed in `ErrorList`, reason
//! `REQUEST_VALIDATION_FAILED`): every member required (`REQUIRED_FIELD_MISSING`; a non-string
//! is `INVALID_VALUE`); `Catalog` `AWS` | `Sandbox` (`INVALID_ENUM_VALUE`); opportunity
//! identifiers `O[0-9]{1,19}` (`INVALID_STRING_FORMAT`); `RelatedEntityType` one of the six
//! names, case-sensitive (`INVALID_ENUM_VALUE`); `RelatedEntityIdentifier` 1 to 255 characters
//! and its per-type pattern (`INVALID_STRING_FORMAT`). Unknown members are ignored. An empty
//! body counts as `{}`; a body that is not a JSON object answers `SerializationException` (400),
//! as AWS does.
//!
//! # Errors
//!
//! Every error carries the header `x-amzn-ErrorType: <Name>` and the body
//! `{"__type": "<Name>", "Message": "…", …}`.
//!
//! | error | status | extra members |
//! |---|---|---|
//! | `ValidationException` | 400 | `Reason` (`REQUEST_VALIDATION_FAILED`, or `BUSINESS_VALIDATION_FAILED` for the last-solution rule and the association limits), `ErrorList` [`FieldName`, `Message`, `Code`] |
//! | `SerializationException` | 400 | (body not a JSON object, or not readable: over 1 MiB) |
//! | `UnknownOperationException` | 400 | |
//! | `AccessDeniedException` | 403 | `Reason` = `INCOMPATIBLE_BENEFIT_AWS_PARTNER_STATE` |
//! | `MissingAuthenticationTokenException` | 403 | (no `Authorization` header) |
//! | `IncompleteSignatureException` | 403 | (malformed `Authorization`, no `X-Amz-Date`) |
//! | `UnrecognizedClientException` | 403 | (unknown access key) |
//! | `InvalidSignatureException` | 403 | (wrong secret/region/service/scope, tampering, clock skew over [`EmulatorConfig::max_clock_skew`], 15 min by default) |
//! | `ResourceNotFoundException` | 404 | |
//! | `ConflictException` | 409 | (only with `AlreadyAssociated` `conflict`; not in the service model) |
//! | `ThrottlingException` | 429 | (past the per-second quota, the daily quota or injected: the same answer, as the service gives) |
//! | `InternalServerException` | 500 | |
//!
//! Processing order of a Partner Central request: reading the body (one that cannot be read, or is
//! over 1 MiB, answers `SerializationException` at once), SigV4 verification, operation routing,
//! quotas (the per-second token bucket and the rolling daily window, taken as the request arrives;
//! a call refused by either spends neither), added latency (a call over quota waits it
//! too, then answers `ThrottlingException`), fault draw (only for calls within the quota), JSON
//! parsing, validation, catalog access (`DeniedCatalogs`), then the operation (opportunity lookup,
//! review status, already-associated answer, last-solution rule, association limits). So a faulted or throttled
//! call never changes state (except a slow call with `SlowApplies`, see [`FaultConfig`]).
//!
//! # Library use
//!
//! ```no_run
//! # async fn demo() -> Result<(), partner_central_emulator::EmulatorError> {
//! use partner_central_emulator::{AlreadyAssociated, BehaviorConfig, Emulator, EmulatorConfig, FaultConfig, Seed};
//! let seed = Seed::from_json(r#"{"Opportunities":[{"Catalog":"Sandbox","Id":"O1",
//!     "RelatedEntityIdentifiers":{"Solutions":["S-1"]}}]}"#)?;
//! let emulator = Emulator::start(EmulatorConfig { seed, ..EmulatorConfig::default() }).await?;
//! let endpoint = emulator.endpoint(); // http://127.0.0.1:PORT, give it to the SDK
//! emulator.set_faults(FaultConfig { throttle_rate: 0.5, rng_seed: Some(1), ..FaultConfig::default() })?;
//! emulator.set_behavior(BehaviorConfig { already_associated: AlreadyAssociated::Conflict, ..BehaviorConfig::default() });
//! let state = emulator.state();
//! assert_eq!(state.disassociation_count("Sandbox", "O1", "Solutions", "S-1"), 0);
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Binary
//!
//! ```text
//! partner-central-emulator [--host IP] [--port N] [--seed FILE | --seed-generate N [--seed-generate-rng S]]
//!     [--write-rate R] [--write-burst B] [--read-rate R] [--read-burst B]
//!     [--write-daily-cap N] [--write-window-seconds S] [--read-daily-cap N]
//!     [--read-window-seconds S] [--no-daily-quotas] [--no-quotas]
//!     [--throttle-rate P] [--error-rate P] [--drop-rate P] [--latency-ms N]
//!     [--slow-rate P] [--slow-ms N] [--slow-applies] [--rng-seed N]
//!     [--already-associated success|conflict]
//!     [--review-error-code ACTION_NOT_PERMITTED|INVALID_RESOURCE_STATE]
//!     [--access-key K --secret-key S] [--tls CA_FILE] [--quiet]
//! ```
//!
//! It prints one line, `partner-central-emulator listening on http://127.0.0.1:PORT`, to stdout,
//! logs one line per request to stderr, and serves until SIGTERM or SIGINT. Defaults: port 0
//! (ephemeral), no opportunities, credentials `test`/`test`, writes 1/s burst 1, reads 10/s
//! burst 10 (a rate given without its burst gets burst max(1, rate)), 10,000 writes and 100,000
//! reads per rolling 86,400 s ([`DailyQuotaConfig`]), no faults, an already
//! associated entity answering success. A seed file that breaks a rule or an association limit
//! stops it at start with the reason (exit status 2).
//!
//! With `--tls CA_FILE` ([`EmulatorConfig::tls`]) it serves HTTPS (TLS 1.2 and 1.3, HTTP/1.1) with a
//! certificate for `localhost`, `127.0.0.1` and `::1`, signed by a certificate authority made at
//! start, whose certificate it writes to `CA_FILE` before printing `… listening on
//! https://127.0.0.1:PORT`. The function trusts it with `SSL_CERT_FILE=CA_FILE`. The state's
//! `Connections` and `TlsHandshakes` then show whether a client reused its connection.
//!
//! # Control endpoints (plain JSON, unsigned, never faulted)
//!
//! * `GET /_emulator/health` → `{"Status":"ok"}`
//! * `GET /_emulator/state` → a [`StateSnapshot`]:
//!   `{"Opportunities":[{"Catalog","Id","Arn","CreatedDate","LastModifiedDate","LifeCycle",
//!   "RelatedEntityIdentifiers"}], "Solutions":[{…SolutionBase…}], "DeniedCatalogs":[…], "Connections":n, "TlsHandshakes":n,
//!   "Requests":n, "AuthFailures":n, "UnknownOperations":n,
//!   "Operations":{"DisassociateOpportunity":{"Calls","Successes","Throttled","QuotaThrottled",
//!   "DailyQuotaThrottled","FaultsInjected","Errors":{"<ErrorType>":n}}, …},
//!   "FaultsInjected":{"Throttle","InternalError","Dropped","Slow"},
//!   "Disassociations":[{"Catalog","OpportunityIdentifier","RelatedEntityType",
//!   "RelatedEntityIdentifier","Count"}], "Associations":[…same…], "Faults":{…}, "Quotas":{…},
//!   "DailyQuotas":{…}, "DailyUse":{…}, "Behavior":{…}}`. Every answer of an operation is in its
//!   counters: a refused association is an `Errors` entry `ValidationException`, an
//!   already-associated conflict `ConflictException`; `QuotaThrottled` counts the refusals by
//!   either quota, `DailyQuotaThrottled` those by the daily one.
//! * `GET`/`POST /_emulator/faults` — a [`FaultConfig`]: `{"ThrottleRate":0.0,"ErrorRate":0.0,
//!   "DropRate":0.0,"LatencyMs":0,"SlowRate":0.0,"SlowMs":0,"SlowApplies":false,"RngSeed":null}`
//!   (POST replaces the whole configuration; absent members are 0/false/null; answers the new one)
//! * `GET`/`POST /_emulator/quotas` — a [`QuotaConfig`]:
//!   `{"Write":{"Rate":1.0,"Burst":1.0},"Read":{"Rate":10.0,"Burst":10.0}}` (`null` = unlimited)
//! * `GET`/`POST /_emulator/daily-quotas` — a [`DailyQuotaConfig`]:
//!   `{"Write":{"Cap":10000,"WindowSeconds":86400.0},"Read":{"Cap":100000,"WindowSeconds":86400.0}}`
//!   (`null` = unlimited; POST replaces both and empties the windows)
//! * `GET /_emulator/daily-use` — a [`DailyUse`], what each window holds now:
//!   `{"Write":{"Used":n,"Left":n,"Cap":n,"WindowSeconds":s},"Read":{…}}` (`null` where off).
//!   `POST` it `{"Write":n,"Read":n}` (absent = 0) to count calls another tool of the account made
//!   just now (they fill the window, past the cap too); answers the new use. Seeding keeps the
//!   windows, as the account's quota outlives any data.
//! * `GET`/`POST /_emulator/behavior` — a [`BehaviorConfig`]: `{"AlreadyAssociated":"success",
//!   "ReviewErrorCode":"ACTION_NOT_PERMITTED"}` (or `"conflict"`, `"INVALID_RESOURCE_STATE"`;
//!   POST replaces the whole configuration; absent members take their defaults; answers the new
//!   one)
//! * `POST /_emulator/opportunities/{Catalog}/{Id}/life-cycle` — a [`LifeCycleChange`]:
//!   `{"ReviewStatus":"In review"}`, `{"Stage":"Closed Lost"}` or both, spelt exactly as the model
//!   does; sets the members given on that one opportunity, as AWS's review would (its
//!   `LastModifiedDate` too), and nothing else: no counter, window or other opportunity changes.
//!   Answers the opportunity as `GET /_emulator/state` shows it; 404 for an unknown opportunity.
//! * `POST /_emulator/seed` — a [`Seed`]; replaces opportunities, solutions and denied catalogs and
//!   resets all counters; answers `{"Status":"ok","Opportunities":n}`.
//! * `POST /_emulator/seed/generate` — `{"Opportunities":n,"RngSeed":s}` (`RngSeed` 0 when absent,
//!   n at most 1,000,000): seeds [`Seed::generate`]`(n, s)` as `/seed` would; answers
//!   `{"Status":"ok","Opportunities":n,"Solutions":m}`. A seed that breaks a rule or an
//!   association limit answers 400 and changes nothing.
//!
//! Control errors answer 400/404/405 with `{"Message":"…"}`.

mod config;
mod generate;
mod listing;
mod model;
mod rules;
mod server;
mod sigv4;
mod state;
mod tls;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{
    AlreadyAssociated, BehaviorConfig, DailyQuotaConfig, EmulatorConfig, EmulatorError, FaultConfig, QuotaConfig,
    ReviewErrorCode, RollingQuotaConfig, TokenBucketConfig,
};
pub use model::{
    AssociationLimit, EntityType, LifeCycle, LifeCycleChange, RelatedEntityIdentifiers, ReviewStatus, Seed,
    SeedOpportunity, SeedSolution, SolutionStatus, Stage, format_timestamp, parse_timestamp,
};
pub use server::{REGION, SIGNING_NAME, TARGET_PREFIX};
pub use state::{
    ACCOUNT_ID, DailyUse, EntityCount, FaultCounters, OperationCounters, OpportunityState, SolutionState,
    StateSnapshot, WindowUse,
};

use server::Shared;

/// Entry point: [`Emulator::start`].
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// Validates `config`, binds `config.host:config.port` and serves in the background on the
    /// current tokio runtime.
    pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, EmulatorError> {
        config.validate()?;
        let tls = if config.tls { Some(tls::Tls::generate()?) } else { None };
        let listener = TcpListener::bind(SocketAddr::new(config.host, config.port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(&config));
        let (shutdown, receiver) = watch::channel(false);
        let (acceptor, ca_pem) = tls.map(|t| (t.acceptor, t.ca_pem)).unzip();
        let task = tokio::spawn(server::serve(listener, shared.clone(), acceptor, receiver));
        Ok(RunningEmulator { addr, ca_pem, shared, shutdown, task: Some(task) })
    }
}

/// A running emulator. Dropping it stops accepting connections; [`RunningEmulator::shutdown`]
/// also waits for the server to finish.
pub struct RunningEmulator {
    addr: SocketAddr,
    ca_pem: Option<String>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningEmulator").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl RunningEmulator {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint URL for the SDK, `http://127.0.0.1:PORT`, or `https://` with
    /// [`EmulatorConfig::tls`] (a wildcard bind address is replaced by loopback).
    pub fn endpoint(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let scheme = if self.ca_pem.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// With [`EmulatorConfig::tls`], the PEM of the certificate authority made at start, which
    /// signed the emulator's certificate: trust it and nothing else to reach the emulator.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A snapshot of opportunities, counters and configuration.
    pub fn state(&self) -> StateSnapshot {
        self.shared.lock().snapshot()
    }

    /// The fault configuration in force.
    pub fn faults(&self) -> FaultConfig {
        self.shared.lock().faults.clone()
    }

    /// Replaces the fault configuration (reseeding the RNG if `rng_seed` is set).
    pub fn set_faults(&self, faults: FaultConfig) -> Result<(), EmulatorError> {
        faults.validate()?;
        self.shared.lock().set_faults(faults);
        Ok(())
    }

    /// Replaces the quotas (buckets start full).
    pub fn set_quotas(&self, quotas: QuotaConfig) -> Result<(), EmulatorError> {
        quotas.validate()?;
        self.shared.lock().set_quotas(quotas);
        Ok(())
    }

    /// Replaces the daily quotas (their windows start empty).
    pub fn set_daily_quotas(&self, daily_quotas: DailyQuotaConfig) -> Result<(), EmulatorError> {
        daily_quotas.validate()?;
        self.shared.lock().set_daily_quotas(daily_quotas);
        Ok(())
    }

    /// What the daily quotas' windows hold now.
    pub fn daily_use(&self) -> DailyUse {
        self.shared.lock().daily_use()
    }

    /// Counts `writes` and `reads` another tool of the account made now against the daily windows.
    pub fn spend_daily(&self, writes: u64, reads: u64) {
        self.shared.lock().spend_daily(writes, reads);
    }

    /// The switchable answers in force.
    pub fn behavior(&self) -> BehaviorConfig {
        self.shared.lock().behavior.clone()
    }

    /// Replaces the switchable answers, e.g. `AlreadyAssociated::Conflict`.
    pub fn set_behavior(&self, behavior: BehaviorConfig) {
        self.shared.lock().behavior = behavior;
    }

    /// Changes one opportunity's life cycle (the members `change` gives) and nothing else, e.g. a
    /// review starting or ending; answers the opportunity as it now is.
    pub fn set_life_cycle(
        &self,
        catalog: &str,
        id: &str,
        change: LifeCycleChange,
    ) -> Result<OpportunityState, EmulatorError> {
        self.shared
            .lock()
            .change_life_cycle(catalog, id, change)
            .ok_or_else(|| EmulatorError::Config(format!("no opportunity {id} in catalog {catalog}")))
    }

    /// Replaces opportunities and denied catalogs, and resets every counter.
    pub fn seed(&self, seed: Seed) -> Result<(), EmulatorError> {
        seed.validate()?;
        self.shared.lock().apply_seed(&seed);
        Ok(())
    }

    /// Stops accepting, lets in-flight requests finish (at most 2 seconds) and waits.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
