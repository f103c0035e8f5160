//! `marketplace-solutions`: the legacy-Solutions move planned from the account's own state.
//!
//! `ListSolutions` (every page) gives the mapping from each legacy solution (`S-...`) to its AWS
//! Marketplace counterpart (`AwsMarketplaceSolutionArn`); `ListOpportunities` (every page, sorted by
//! identifier) gives the opportunities with their stage and review status; `GetOpportunity` gives each
//! one's associations. Every legacy solution on an opportunity that has a counterpart becomes one
//! request with `ReplaceWith`, which the worker carries out in the documented order.
//!
//! What is left out, and why, is in the [`Tally`]:
//! - a legacy solution without a counterpart, or one `ListSolutions` does not list;
//! - an opportunity whose stage is `Closed Lost` (unless `--include-closed`), or whose review status is
//!   `Rejected` (read-only: every write would be refused): not read at all;
//! - a replacement **already done**: a counterpart on an opportunity that no longer holds any legacy
//!   solution it replaces, counted for each such counterpart whatever else is planned on the
//!   opportunity. An opportunity that holds both (a replacement cut short after its association) is
//!   planned: the worker sees the counterpart already there and only disassociates the legacy
//!   solution. Those are counted apart;
//! - a legacy solution whose counterpart would be one Marketplace solution too many for the
//!   opportunity (the limit on associations): the worker would refuse it.
//!
//! An opportunity under review (`Submitted`, `In review`) is planned, since the stack holds its
//! request until the review ends, and counted apart.
//!
//! Every page of `ListOpportunities` is listed before any opportunity is read, so the number of
//! opportunities to read, and with it the progress bar's ETA, is known for the whole scan once the
//! listing (one read in a hundred) is done. Every read, a page or an opportunity, waits for its turn in
//! one [`Pacer`] at `--reads-per-second`, and is one attempt: a throttled or failed read is tried again
//! in a later turn, never by the SDK outside the pacing. After each list page and after each
//! [`PAGE_SIZE`] opportunities read, what is new is appended to the [`Journal`] and the small [`State`]
//! saved, so a scan stopped anywhere lists at most one page, or reads at most that many opportunities,
//! again.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_partnercentralselling::Client;
use aws_sdk_partnercentralselling::config::retry::RetryConfig;
use aws_sdk_partnercentralselling::config::timeout::TimeoutConfig;
use aws_sdk_partnercentralselling::config::{Region, StalledStreamProtectionConfig};
use aws_sdk_partnercentralselling::types::{OpportunitySort, OpportunitySortName, ReviewStatus, SortOrder, Stage};
use indicatif::{ProgressBar, ProgressStyle};
use opportunity_disassociator::aws::partner_central::{
    ApiError, ErrorClass, PartnerCentral, SdkPartnerCentral, classify_generic,
};
use opportunity_disassociator::aws::work_queue::message_body;
use opportunity_disassociator::domain::opportunity::{AssociationLimit, Holdings};
use opportunity_disassociator::domain::request::{
    Catalog, DisassociationRequest, EntityType, OpportunityId, RelatedEntity,
};
use opportunity_disassociator::pacing::Pacer;
use opportunity_disassociator::time::in_words;
use serde::{Deserialize, Serialize};

use crate::plan::{self, Summary};

/// The reads a second by default: half the account's read quota, which the worker shares.
pub const READS_PER_SECOND: f64 = 5.0;
/// The largest page both list operations take, and the opportunities read between two saves of the state.
pub const PAGE_SIZE: usize = 100;
/// Attempts of one read before the scan stops (its state kept, so a rerun goes on from there).
const ATTEMPTS: u32 = 8;
/// Partner Central exists in this region only.
const REGION: &str = "us-east-1";
/// The longest one read may take, connection included.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// `marketplace-solutions`' options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The catalog to scan: AWS or Sandbox
    #[arg(long, value_parser = parse_catalog)]
    pub catalog: Catalog,
    /// Where the plan goes
    #[arg(long)]
    pub out: PathBuf,
    /// Reads a second, every List and Get page counted (the account's quota is 10, shared with the worker)
    #[arg(long, value_name = "R", default_value_t = READS_PER_SECOND, value_parser = parse_rate)]
    pub reads_per_second: f64,
    /// Where an unfinished scan keeps its progress (default: beside --out, `PLAN.scan-state.json`)
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Plan opportunities whose stage is Closed Lost too
    #[arg(long)]
    pub include_closed: bool,
    /// The writes the stack makes a day, for the plan's duration (the account's quota is 10,000)
    #[arg(long, value_name = "N", default_value_t = plan::WRITES_PER_DAY, value_parser = clap::value_parser!(u64).range(1..))]
    pub writes_per_day: u64,
}

fn parse_catalog(value: &str) -> Result<Catalog, String> {
    Catalog::parse(value).ok_or_else(|| format!("must be AWS or Sandbox, got {value:?}"))
}

fn parse_rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("must be a number of reads a second above 0, got {value:?}")),
    }
}

/// `n` and the noun that goes with it: "1 opportunity", "3 opportunities".
fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn opportunities(n: u64) -> String {
    counted(n, "opportunity", "opportunities")
}

/// The state file of a scan planned to `out`.
pub fn state_path_for(out: &Path) -> PathBuf {
    let mut path = out.as_os_str().to_owned();
    path.push(".scan-state.json");
    PathBuf::from(path)
}

/// The journal beside a state file.
pub fn journal_path_for(state: &Path) -> PathBuf {
    let mut path = state.as_os_str().to_owned();
    path.push(".journal");
    PathBuf::from(path)
}

/// Runs the command: exit status 0 when the plan is written, 2 for AWS or I/O errors.
pub async fn command(args: Args, log: &mut impl Write) -> u8 {
    let state_path = args.state.clone().unwrap_or_else(|| state_path_for(&args.out));
    let sdk = opportunity_disassociator::aws::sdk_config(|name| std::env::var(name).ok(), 1).await;
    let reads = SdkReads::new(&sdk);
    let settings = Settings { catalog: args.catalog, include_closed: args.include_closed };
    let mut scan = match Scan::open(reads, settings, args.reads_per_second, state_path.clone()) {
        Ok(scan) => scan,
        Err(message) => {
            let _ = writeln!(log, "error: {message}");
            return 2;
        }
    };
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    if let Err(message) = scan.run(&mut progress, log).await {
        progress.finish();
        let _ = writeln!(
            log,
            "error: {message}\n{}run the same command again to go on from there (state: {})",
            scan.reads_line(args.reads_per_second),
            state_path.display()
        );
        return 2;
    }
    progress.finish();
    let requests = match scan.found.decoded_requests() {
        Ok(requests) => requests,
        Err(message) => {
            let _ = writeln!(log, "error: {message}");
            return 2;
        }
    };
    let _ = write!(log, "{}", scan.report(args.reads_per_second));
    if let Err(e) = plan::write(&args.out, &requests) {
        let _ = writeln!(log, "error: writing {} failed: {e}", args.out.display());
        return 2;
    }
    let summary = Summary::of(&requests);
    let _ = writeln!(log, "plan: {}: {summary}; {}", args.out.display(), summary.duration(args.writes_per_day));
    // The scan is over: a rerun scans again rather than rewriting this plan from old reads.
    let _ = std::fs::remove_file(&state_path);
    let _ = std::fs::remove_file(journal_path_for(&state_path));
    0
}

/// One opportunity as `ListOpportunities` lists it: all the scan needs before reading it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    #[serde(deserialize_with = "opportunity_id")]
    pub id: OpportunityId,
    pub closed_lost: bool,
    pub under_review: bool,
    /// `Rejected` is read-only: every write to it is refused.
    pub rejected: bool,
}

fn opportunity_id<'de, D: serde::Deserializer<'de>>(from: D) -> Result<OpportunityId, D::Error> {
    let id = String::deserialize(from)?;
    OpportunityId::parse(&id)
        .ok_or_else(|| serde::de::Error::custom(format!("{id:?} is not an opportunity identifier")))
}

/// One legacy solution as `ListSolutions` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Solution {
    pub id: String,
    pub counterpart: Option<String>,
}

/// A page of a list, and the token of the next one (`None`: the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// The reads a scan makes, behind a port so that a test can drive it without the network.
pub trait Reads {
    fn solutions(
        &self,
        catalog: Catalog,
        token: Option<&str>,
    ) -> impl Future<Output = Result<Page<Solution>, ApiError>>;
    fn opportunities(
        &self,
        catalog: Catalog,
        token: Option<&str>,
    ) -> impl Future<Output = Result<Page<Listed>, ApiError>>;
    /// What the opportunity holds; `None` when it is gone.
    fn opportunity(
        &self,
        catalog: Catalog,
        id: &OpportunityId,
    ) -> impl Future<Output = Result<Option<Holdings>, ApiError>>;
}

/// The reads over the SDK: one attempt per call (the scan retries in its own paced turns).
pub struct SdkReads {
    client: Client,
    get: SdkPartnerCentral,
}

impl SdkReads {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        let config = aws_sdk_partnercentralselling::config::Builder::from(sdk)
            .region(Region::new(REGION))
            .retry_config(RetryConfig::disabled())
            .timeout_config(TimeoutConfig::builder().operation_timeout(READ_TIMEOUT).build())
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .build();
        let client = Client::from_conf(config);
        Self { get: SdkPartnerCentral::from_client(client.clone()), client }
    }
}

impl Reads for SdkReads {
    async fn solutions(&self, catalog: Catalog, token: Option<&str>) -> Result<Page<Solution>, ApiError> {
        let output = self
            .client
            .list_solutions()
            .catalog(catalog.as_str())
            .max_results(PAGE_SIZE as i32)
            .set_next_token(token.map(str::to_owned))
            .send()
            .await
            .map_err(|e| classify_generic(&e))?;
        let items = output
            .solution_summaries()
            .iter()
            .map(|s| Solution {
                id: s.id().to_owned(),
                counterpart: s.aws_marketplace_solution_arn().map(str::to_owned),
            })
            .collect();
        Ok(Page { items, next: output.next_token().map(str::to_owned) })
    }

    async fn opportunities(&self, catalog: Catalog, token: Option<&str>) -> Result<Page<Listed>, ApiError> {
        let by_identifier = OpportunitySort::builder()
            .sort_by(OpportunitySortName::Identifier)
            .sort_order(SortOrder::Ascending)
            .build()
            .map_err(|e| ApiError {
                code: "ClientError".into(),
                message: e.to_string(),
                request_id: None,
                class: ErrorClass::Permanent,
            })?;
        let output = self
            .client
            .list_opportunities()
            .catalog(catalog.as_str())
            .max_results(PAGE_SIZE as i32)
            .sort(by_identifier)
            .set_next_token(token.map(str::to_owned))
            .send()
            .await
            .map_err(|e| classify_generic(&e))?;
        let mut items = Vec::new();
        for summary in output.opportunity_summaries() {
            let Some(id) = summary.id().and_then(OpportunityId::parse) else {
                return Err(ApiError {
                    code: "ResponseError".into(),
                    message: format!("ListOpportunities listed an opportunity without a valid Id: {:?}", summary.id()),
                    request_id: None,
                    class: ErrorClass::Permanent,
                });
            };
            let life_cycle = summary.life_cycle();
            let stage = life_cycle.and_then(|l| l.stage());
            let review = life_cycle.and_then(|l| l.review_status());
            items.push(Listed {
                id,
                closed_lost: stage == Some(&Stage::ClosedLost),
                under_review: matches!(review, Some(ReviewStatus::Submitted | ReviewStatus::InReview)),
                rejected: review == Some(&ReviewStatus::Rejected),
            });
        }
        Ok(Page { items, next: output.next_token().map(str::to_owned) })
    }

    async fn opportunity(&self, catalog: Catalog, id: &OpportunityId) -> Result<Option<Holdings>, ApiError> {
        self.get.opportunity(catalog, id).await
    }
}

/// Why a legacy solution on an opportunity is not planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Reason {
    /// `ListSolutions` gives it no `AwsMarketplaceSolutionArn`.
    NoCounterpart,
    /// `ListSolutions` does not list it at all.
    NotListed,
    /// Its `AwsMarketplaceSolutionArn` is not a valid `AwsMarketplaceSolutions` identifier.
    InvalidCounterpart,
    /// The opportunity holds as many Marketplace solutions as it may: the association would be refused.
    NoRoom,
}

impl Reason {
    fn describe(self) -> &'static str {
        match self {
            Self::NoCounterpart => "has no Marketplace counterpart (no AwsMarketplaceSolutionArn)",
            Self::NotListed => "is not listed by ListSolutions",
            Self::InvalidCounterpart => "has an AwsMarketplaceSolutionArn that is not an ARN",
            Self::NoRoom => "its counterpart would be one Marketplace solution too many for the opportunity",
        }
    }
}

/// What the scan saw and decided, kept in the state so a resumed scan reports the whole of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Opportunities listed.
    pub listed: u64,
    /// Opportunities left out for their stage, `Closed Lost`, and not read.
    pub closed_lost: u64,
    /// Opportunities left out for their review status, `Rejected` (read-only), and not read.
    pub rejected: u64,
    /// Opportunities listed and gone when read.
    pub gone: u64,
    /// Opportunities with at least one replacement planned.
    pub planned: u64,
    /// Of those, the ones under review (`Submitted`, `In review`).
    pub under_review: u64,
    /// Replacements planned whose counterpart the opportunity already holds (only the removal is left).
    pub counterpart_already_on: u64,
    /// Replacements already done: counterparts found on an opportunity that holds none of the legacy
    /// solutions they replace.
    pub already_replaced: u64,
    /// Legacy solutions left out, by reason: each solution with the number of opportunities it is on.
    pub left_out: BTreeMap<Reason, BTreeMap<String, u64>>,
}

/// The mapping from each legacy solution to its counterpart, as `ListSolutions` gives it.
pub type Mapping = BTreeMap<String, Option<String>>;

/// Plans one opportunity: one replacement for each legacy solution it holds that has a counterpart.
pub fn plan_opportunity(
    catalog: Catalog,
    listed: &Listed,
    holdings: &Holdings,
    mapping: &Mapping,
    counterparts: &BTreeSet<&str>,
    tally: &mut Tally,
) -> Vec<DisassociationRequest> {
    let held = holdings.of(EntityType::AwsMarketplaceSolutions);
    let limit = AssociationLimit::of(EntityType::AwsMarketplaceSolutions);
    let mut room = limit.max.saturating_sub(holdings.counted_by(limit));
    let mut added: BTreeSet<&str> = BTreeSet::new();
    let mut requests = Vec::new();
    let mut left_out = |reason: Reason, solution: &str| {
        *tally.left_out.entry(reason).or_default().entry(solution.to_owned()).or_default() += 1;
    };
    for legacy in holdings.of(EntityType::Solutions) {
        let counterpart = match mapping.get(legacy) {
            None => {
                left_out(Reason::NotListed, legacy);
                continue;
            }
            Some(None) => {
                left_out(Reason::NoCounterpart, legacy);
                continue;
            }
            Some(Some(counterpart)) => counterpart,
        };
        let (Ok(entity), Ok(replacement)) = (
            RelatedEntity::new(EntityType::Solutions, legacy),
            RelatedEntity::new(EntityType::AwsMarketplaceSolutions, counterpart),
        ) else {
            left_out(Reason::InvalidCounterpart, legacy);
            continue;
        };
        let already_on = held.iter().any(|h| h == counterpart);
        if already_on {
            tally.counterpart_already_on += 1;
        } else if !added.contains(counterpart.as_str()) {
            if room == 0 {
                left_out(Reason::NoRoom, legacy);
                continue;
            }
            room -= 1;
            added.insert(counterpart);
        }
        requests.push(DisassociationRequest {
            catalog,
            opportunity: listed.id.clone(),
            entity,
            replace_with: Some(replacement),
        });
    }
    let legacy_held: BTreeSet<&str> = holdings.of(EntityType::Solutions).iter().map(String::as_str).collect();
    let replaced = held.iter().filter(|arn| {
        counterparts.contains(arn.as_str())
            && !mapping
                .iter()
                .any(|(legacy, c)| c.as_deref() == Some(arn.as_str()) && legacy_held.contains(legacy.as_str()))
    });
    tally.already_replaced += replaced.count() as u64;
    if !requests.is_empty() {
        tally.planned += 1;
        if listed.under_review {
            tally.under_review += 1;
        }
    }
    requests
}

/// How far a list has got: the token of the next page to read, and whether the last one was read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub next_token: Option<String>,
    pub pages: u64,
    pub done: bool,
}

impl Listing {
    /// A page is read: `next` is the token of the one after it, if any.
    fn advance(&mut self, next: Option<String>) {
        self.pages += 1;
        self.done = next.is_none();
        self.next_token = next;
    }
}

/// An unfinished scan: its cursors and tallies, and how much of the [`Journal`] they cover. Small
/// whatever the account: saved after each list page and each [`PAGE_SIZE`] opportunities read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub catalog: String,
    pub include_closed: bool,
    pub solutions: Listing,
    pub opportunities: Listing,
    /// Of the listed opportunities to read, how many are read (in the order listed).
    pub read: usize,
    pub tally: Tally,
    /// The bytes of the journal this state covers: anything past them is from a save cut short.
    pub journal: u64,
}

impl State {
    fn new(catalog: Catalog, include_closed: bool) -> Self {
        Self {
            catalog: catalog.as_str().to_owned(),
            include_closed,
            solutions: Listing::default(),
            opportunities: Listing::default(),
            read: 0,
            tally: Tally::default(),
            journal: 0,
        }
    }

    /// The scan left at `path`, or a new one when there is none. A state of another scan (another
    /// catalog, or `--include-closed` given differently) is refused rather than mixed in.
    pub fn load(path: &Path, catalog: Catalog, include_closed: bool) -> Result<Self, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::new(catalog, include_closed)),
            Err(e) => return Err(format!("reading the state {} failed: {e}", path.display())),
        };
        let state: Self = serde_json::from_str(&text).map_err(|e| {
            format!("the state {} is not a scan's state ({e}): remove it to scan again", path.display())
        })?;
        if state.catalog != catalog.as_str() || state.include_closed != include_closed {
            return Err(format!(
                "the state {} is of another scan (catalog {}, include closed {}): remove it, or give another --state",
                path.display(),
                state.catalog,
                state.include_closed
            ));
        }
        Ok(state)
    }

    /// Written beside its place and renamed into it, so a scan stopped mid-write keeps the last state.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string(self).map_err(|e| format!("encoding the state failed: {e}"))?;
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        std::fs::write(&partial, text)
            .and_then(|()| std::fs::rename(&partial, path))
            .map_err(|e| format!("writing the state {} failed: {e}", path.display()))
    }
}

/// One thing a scan found: a line of its [`Journal`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    Solution(Solution),
    Listed(Listed),
    /// A planned request, as its plan line.
    Planned(String),
}

/// Everything a scan found so far, as its journal holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub mapping: Mapping,
    /// Every opportunity listed, in the order listed.
    pub listed: Vec<Listed>,
    /// The requests planned, as plan lines.
    pub requests: Vec<String>,
}

impl Found {
    fn add(&mut self, entry: Entry) {
        match entry {
            Entry::Solution(solution) => {
                self.mapping.insert(solution.id, solution.counterpart);
            }
            Entry::Listed(listed) => self.listed.push(listed),
            Entry::Planned(line) => self.requests.push(line),
        }
    }

    /// The requests planned, decoded by the rules of every request.
    pub fn decoded_requests(&self) -> Result<Vec<DisassociationRequest>, String> {
        self.requests
            .iter()
            .map(|line| {
                serde_json::from_str(line)
                    .map_err(|e| e.to_string())
                    .and_then(|doc| DisassociationRequest::from_document(&doc).map_err(|e| e.to_string()))
                    .map_err(|e| {
                        format!("the journal holds a request that is not valid ({e}): remove it to scan again")
                    })
            })
            .collect()
    }
}

/// What a scan found, one [`Entry`] a line, only ever appended: each save appends what is new, then
/// saves the state with the journal's length, so the cost of a save does not grow with the plan.
pub struct Journal {
    file: File,
    path: PathBuf,
    len: u64,
}

impl Journal {
    /// The journal at `path` cut to the `covered` bytes its state counts (a save cut short may have
    /// appended more), and what it holds.
    pub fn open(path: &Path, covered: u64) -> Result<(Self, Found), String> {
        let failed = |e: std::io::Error| format!("reading the journal {} failed: {e}", path.display());
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(failed)?;
        let len = file.metadata().map_err(failed)?.len();
        if len < covered {
            return Err(format!(
                "the journal {} holds {len} bytes, its state counts {covered}: remove both to scan again",
                path.display()
            ));
        }
        file.set_len(covered).map_err(failed)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(failed)?;
        let mut found = Found::default();
        for line in text.lines() {
            let entry = serde_json::from_str(line).map_err(|e| {
                format!(
                    "the journal {} holds a line that is not an entry ({e}): remove it to scan again",
                    path.display()
                )
            })?;
            found.add(entry);
        }
        Ok((Self { file, path: path.to_owned(), len: covered }, found))
    }

    /// Appends the entries in one write; the journal's length after them.
    fn append(&mut self, entries: &[Entry]) -> Result<u64, String> {
        let mut text = String::new();
        for entry in entries {
            let line = serde_json::to_string(entry).map_err(|e| format!("encoding the journal failed: {e}"))?;
            text.push_str(&line);
            text.push('\n');
        }
        // From the length counted, so that an append that failed halfway is written over.
        self.file
            .seek(SeekFrom::Start(self.len))
            .and_then(|_| self.file.write_all(text.as_bytes()))
            .and_then(|()| self.file.flush())
            .map_err(|e| format!("writing the journal {} failed: {e}", self.path.display()))?;
        self.len += text.len() as u64;
        Ok(self.len)
    }
}

/// What the scan is asked: the catalog, and whether closed opportunities are planned.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub catalog: Catalog,
    pub include_closed: bool,
}

/// Why a listed opportunity is not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unread {
    ClosedLost,
    Rejected,
}

impl Settings {
    /// Why a listed opportunity is left unread: `Closed Lost` (unless `--include-closed`), or
    /// `Rejected`. `None`: it is read.
    fn unread(&self, listed: &Listed) -> Option<Unread> {
        if listed.closed_lost && !self.include_closed {
            Some(Unread::ClosedLost)
        } else if listed.rejected {
            Some(Unread::Rejected)
        } else {
            None
        }
    }

    fn reads(&self, listed: &Listed) -> bool {
        self.unread(listed).is_none()
    }
}

/// A scan under way.
pub struct Scan<R> {
    reads: R,
    settings: Settings,
    meter: Meter,
    pub state: State,
    pub found: Found,
    journal: Journal,
    state_path: PathBuf,
    started: Instant,
}

/// The pacing of every read, and the count of reads this run made.
pub struct Meter {
    pacer: Pacer,
    /// Reads made, and how many of them were throttled.
    pub made: u64,
    pub throttled: u64,
}

impl<R: Reads> Scan<R> {
    /// The scan left at `state_path` (its state and its journal), or a new one.
    pub fn open(reads: R, settings: Settings, reads_per_second: f64, state_path: PathBuf) -> Result<Self, String> {
        let state = State::load(&state_path, settings.catalog, settings.include_closed)?;
        let (journal, found) = Journal::open(&journal_path_for(&state_path), state.journal)?;
        Ok(Self {
            reads,
            settings,
            meter: Meter { pacer: Pacer::local(reads_per_second), made: 0, throttled: 0 },
            state,
            found,
            journal,
            state_path,
            started: Instant::now(),
        })
    }

    /// Appends what is new to the journal, then saves the state that covers it.
    fn save(&mut self, new: Vec<Entry>) -> Result<(), String> {
        self.state.journal = self.journal.append(&new)?;
        for entry in new {
            self.found.add(entry);
        }
        self.state.save(&self.state_path)
    }

    /// Reads what is left to read: every list page first, then each opportunity to read, saving the
    /// state after each list page and after each [`PAGE_SIZE`] opportunities read.
    pub async fn run(&mut self, progress: &mut Progress, log: &mut impl Write) -> Result<(), String> {
        let catalog = self.settings.catalog;
        let mut relisted = false;
        while !self.state.solutions.done {
            let token = self.state.solutions.next_token.clone();
            let skipped =
                format!("the {} listed already", counted(self.found.mapping.len() as u64, "solution", "solutions"));
            let read = || self.reads.solutions(catalog, token.as_deref());
            let Some(page) =
                self.meter.page("ListSolutions", token.as_deref(), &mut relisted, &skipped, log, read).await?
            else {
                self.state.solutions.next_token = None;
                continue;
            };
            self.state.solutions.advance(page.next);
            let new = page.items.into_iter().filter(|s| !self.found.mapping.contains_key(&s.id));
            let new = new.map(Entry::Solution).collect();
            self.save(new)?;
        }
        let mut relisted = false;
        let mut known: HashSet<OpportunityId> = self.found.listed.iter().map(|l| l.id.clone()).collect();
        while !self.state.opportunities.done {
            let token = self.state.opportunities.next_token.clone();
            let last = self.found.listed.last().map_or_else(String::new, |l| format!(" (up to {})", l.id));
            let skipped = format!("the {} listed already{last}", opportunities(known.len() as u64));
            let read = || self.reads.opportunities(catalog, token.as_deref());
            let Some(mut page) =
                self.meter.page("ListOpportunities", token.as_deref(), &mut relisted, &skipped, log, read).await?
            else {
                self.state.opportunities.next_token = None;
                continue;
            };
            // Those listed already, when the list is read again from its first page, are skipped.
            page.items.retain(|l| known.insert(l.id.clone()));
            for listed in &page.items {
                self.state.tally.listed += 1;
                match self.settings.unread(listed) {
                    Some(Unread::ClosedLost) => self.state.tally.closed_lost += 1,
                    Some(Unread::Rejected) => self.state.tally.rejected += 1,
                    None => {}
                }
            }
            self.state.opportunities.advance(page.next);
            self.save(page.items.into_iter().map(Entry::Listed).collect())?;
            progress.listed(&self.state, log);
        }
        drop(known);
        let to_read: Vec<Listed> = self.found.listed.iter().filter(|l| self.settings.reads(l)).cloned().collect();
        progress.reading(to_read.len(), self.state.read);
        let mapping = self.found.mapping.clone();
        let counterparts: BTreeSet<&str> = mapping.values().flatten().map(String::as_str).collect();
        for chunk in to_read[self.state.read.min(to_read.len())..].chunks(PAGE_SIZE) {
            let mut tally = self.state.tally.clone();
            let mut planned = Vec::new();
            for listed in chunk {
                let holdings = self
                    .meter
                    .read("GetOpportunity", || self.reads.opportunity(catalog, &listed.id))
                    .await
                    .map_err(|f| f.to_string())?;
                progress.read_one();
                let Some(holdings) = holdings else {
                    tally.gone += 1;
                    continue;
                };
                let requests = plan_opportunity(catalog, listed, &holdings, &mapping, &counterparts, &mut tally);
                planned.extend(requests.iter().map(|r| Entry::Planned(message_body(r))));
            }
            // The chunk counts only once every opportunity in it is read: a stop before this rereads it.
            self.state.tally = tally;
            self.state.read += chunk.len();
            self.save(planned)?;
            progress.saved(
                &self.state,
                to_read.len(),
                self.found.requests.len(),
                self.meter.made,
                self.started.elapsed(),
                log,
            );
        }
        Ok(())
    }

    /// Reads made by this run, and how many of them were throttled.
    pub fn reads(&self) -> (u64, u64) {
        (self.meter.made, self.meter.throttled)
    }

    /// The scan's report: what was read, planned and left out, and why.
    pub fn report(&self, reads_per_second: f64) -> String {
        let t = &self.state.tally;
        let mut out = format!(
            "marketplace-solutions: {}: {} listed ({} with a counterpart); {} listed\n",
            self.state.catalog,
            counted(self.found.mapping.len() as u64, "legacy solution", "legacy solutions"),
            self.found.mapping.values().flatten().count(),
            opportunities(t.listed)
        );
        let requests = self.found.requests.len();
        out.push_str(&format!(
            "  planned: {} on {}; {} of them under review (the stack holds their requests until the review ends); {} the counterpart already on (only the removal is left)\n",
            counted(requests as u64, "replacement", "replacements"),
            opportunities(t.planned),
            t.under_review,
            counted(t.counterpart_already_on, "replacement finds", "replacements find")
        ));
        if t.closed_lost > 0 {
            let hint = if self.settings.include_closed { "" } else { " (--include-closed plans them)" };
            out.push_str(&format!("  left out: {} Closed Lost, not read{hint}\n", opportunities(t.closed_lost)));
        }
        if t.rejected > 0 {
            out.push_str(&format!("  left out: {} Rejected (read-only), not read\n", opportunities(t.rejected)));
        }
        if t.already_replaced > 0 {
            out.push_str(&format!(
                "  left out: {} already done (a counterpart on an opportunity that no longer holds its legacy solution)\n",
                counted(t.already_replaced, "replacement", "replacements")
            ));
        }
        if t.gone > 0 {
            out.push_str(&format!("  left out: {} listed but gone when read\n", opportunities(t.gone)));
        }
        for (reason, solutions) in &t.left_out {
            for (solution, on) in solutions {
                out.push_str(&format!("  left out: {solution} {} (on {})\n", reason.describe(), opportunities(*on)));
            }
        }
        out.push_str(&self.reads_line(reads_per_second));
        out
    }

    /// The report's line on the reads this run made: how many, at what rate, how many throttled.
    pub fn reads_line(&self, reads_per_second: f64) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 { self.meter.made as f64 / elapsed } else { 0.0 };
        format!(
            "  reads: {} in {elapsed:.1} s, {rate:.2} reads/s (--reads-per-second {reads_per_second}), {} throttled\n",
            self.meter.made, self.meter.throttled
        )
    }
}

/// A read that failed for good: what it was, after how many attempts, and the last answer.
#[derive(Debug)]
pub struct Failed {
    what: &'static str,
    attempts: u32,
    error: ApiError,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed after {} attempt(s): {}", self.what, self.attempts, self.error)
    }
}

impl Meter {
    /// The page of a list at `token`; `None` when the service refused the token (a saved one may have
    /// expired): the list is then read again from its first page, once a run (`relisted`), and the
    /// log says so, and what is `skipped` as listed already.
    async fn page<T, F, Fut>(
        &mut self,
        what: &'static str,
        token: Option<&str>,
        relisted: &mut bool,
        skipped: &str,
        log: &mut impl Write,
        call: F,
    ) -> Result<Option<Page<T>>, String>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Page<T>, ApiError>>,
    {
        match self.read(what, call).await {
            Ok(page) => Ok(Some(page)),
            Err(failed) if token.is_some() && !*relisted && failed.error.code == "ValidationException" => {
                *relisted = true;
                let _ = writeln!(
                    log,
                    "{failed}\nthe NextToken saved is refused: listing again from the first page, skipping {skipped}"
                );
                Ok(None)
            }
            Err(failed) => Err(failed.to_string()),
        }
    }

    /// One read, in its paced turn; a throttled or passing failure is tried again in a later turn.
    async fn read<T, F, Fut>(&mut self, what: &'static str, call: F) -> Result<T, Failed>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Without a latest start (and a budget) the pacer always gives a turn.
            let slot = self.pacer.acquire(None).await.unwrap_or_default();
            self.made += 1;
            let error = match call().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            // Counted on every attempt, the last one included, so that the report misses none.
            if error.is_throttling() {
                self.throttled += 1;
            }
            if error.class != ErrorClass::Transient || attempt == ATTEMPTS {
                return Err(Failed { what, attempts: attempt, error });
            }
            if error.is_throttling() {
                self.pacer.throttled(slot).await;
            }
        }
    }
}

/// Progress on standard error: a bar with an ETA on a terminal, a line a save otherwise.
pub enum Progress {
    Bar(ProgressBar),
    /// Lines, with when this run began reading opportunities and how many were read then.
    Lines(Option<(tokio::time::Instant, usize)>),
    Silent,
}

impl Progress {
    pub fn new(terminal: bool) -> Self {
        if !terminal {
            return Self::Lines(None);
        }
        let bar = ProgressBar::new_spinner();
        bar.set_message("listing opportunities");
        Self::Bar(bar)
    }

    /// A list page of opportunities is saved.
    fn listed(&mut self, state: &State, log: &mut impl Write) {
        match self {
            Self::Bar(bar) => bar.set_message(format!("listing: {} listed", opportunities(state.tally.listed))),
            Self::Lines(_) => {
                let _ = writeln!(
                    log,
                    "listing: page {}, {} listed",
                    state.opportunities.pages,
                    opportunities(state.tally.listed)
                );
            }
            Self::Silent => {}
        }
    }

    /// The listing is done: `total` opportunities to read, `read` of them read already.
    fn reading(&mut self, total: usize, read: usize) {
        match self {
            Self::Bar(bar) => {
                bar.set_length(total as u64);
                bar.set_position(read as u64);
                bar.reset_eta();
                bar.set_message("0 planned");
                // Within 80 columns, so that a terminal of that width does not wrap it.
                let style = ProgressStyle::with_template("{bar:20} {pos}/{len} opportunities read, ETA {eta}, {msg}");
                if let Ok(style) = style {
                    bar.set_style(style);
                }
            }
            Self::Lines(since) => *since = Some((tokio::time::Instant::now(), read)),
            Self::Silent => {}
        }
    }

    fn read_one(&mut self) {
        if let Self::Bar(bar) = self {
            bar.inc(1);
        }
    }

    /// The opportunities read so far are saved.
    fn saved(
        &mut self,
        state: &State,
        total: usize,
        planned: usize,
        made: u64,
        elapsed: Duration,
        log: &mut impl Write,
    ) {
        match self {
            Self::Bar(bar) => bar.set_message(format!("{planned} planned")),
            Self::Lines(since) => {
                let planned = counted(planned as u64, "replacement", "replacements");
                let rate = made as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
                // The opportunities left at the pace this run has read them: the pacing's, or less
                // when the service throttles.
                let (began, read_then) = since.unwrap_or((tokio::time::Instant::now(), 0));
                let read_now = state.read.saturating_sub(read_then).max(1) as f64;
                let left = began.elapsed().mul_f64(total.saturating_sub(state.read) as f64 / read_now);
                let _ = writeln!(
                    log,
                    "read {} of {total} opportunities, {planned} planned, {made} reads at {rate:.2}/s, about {} left",
                    state.read,
                    in_words(left)
                );
            }
            Self::Silent => {}
        }
    }

    fn finish(&mut self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use super::*;

    const ARN_A: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-a";
    const ARN_B: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-b";

    fn mapping() -> Mapping {
        [("S-1", Some(ARN_A)), ("S-2", Some(ARN_B)), ("S-3", None), ("S-4", Some(ARN_A))]
            .into_iter()
            .map(|(s, c)| (s.to_owned(), c.map(str::to_owned)))
            .collect()
    }

    fn listed(id: &str) -> Listed {
        Listed { id: OpportunityId::parse(id).unwrap(), closed_lost: false, under_review: false, rejected: false }
    }

    fn plan_one(listed: &Listed, holdings: &Holdings, tally: &mut Tally) -> Vec<(String, String)> {
        let mapping = mapping();
        let counterparts: BTreeSet<&str> = mapping.values().flatten().map(String::as_str).collect();
        plan_opportunity(Catalog::Sandbox, listed, holdings, &mapping, &counterparts, tally)
            .into_iter()
            .map(|r| (r.entity.identifier().to_owned(), r.replace_with.unwrap().identifier().to_owned()))
            .collect()
    }

    fn solutions(ids: &[&str]) -> Holdings {
        Holdings::default().with(EntityType::Solutions, ids.iter().copied())
    }

    #[test]
    fn each_legacy_solution_with_a_counterpart_becomes_one_replacement() {
        let mut tally = Tally::default();
        let planned = plan_one(&listed("O1"), &solutions(&["S-1", "S-2", "S-3", "S-9"]), &mut tally);
        assert_eq!(planned, [("S-1".to_owned(), ARN_A.to_owned()), ("S-2".to_owned(), ARN_B.to_owned())]);
        assert_eq!(tally.planned, 1);
        assert_eq!(tally.left_out[&Reason::NoCounterpart]["S-3"], 1);
        assert_eq!(tally.left_out[&Reason::NotListed]["S-9"], 1);
    }

    #[test]
    fn each_replacement_already_done_is_counted_whatever_else_is_planned_on_the_opportunity() {
        let mut tally = Tally::default();
        // S-2 replaced by ARN_B already; S-1 still there, planned: ARN_A is not a replacement done.
        let holdings = solutions(&["S-1"]).with(EntityType::AwsMarketplaceSolutions, [ARN_B]);
        assert_eq!(plan_one(&listed("O1"), &holdings, &mut tally), [("S-1".to_owned(), ARN_A.to_owned())]);
        assert_eq!((tally.already_replaced, tally.planned), (1, 1));
        // Both counterparts on, neither legacy solution (S-3 has no counterpart): two replacements
        // done on one opportunity, nothing planned.
        let holdings = solutions(&["S-3"]).with(EntityType::AwsMarketplaceSolutions, [ARN_A, ARN_B]);
        assert!(plan_one(&listed("O2"), &holdings, &mut tally).is_empty());
        assert_eq!((tally.already_replaced, tally.planned), (3, 1));
        let dir = tempfile::tempdir().unwrap();
        let account = Account::new(0, 10);
        let mut run = scan(&account, &dir.path().join("s.json"));
        run.state.tally = tally;
        let report = run.report(1.0);
        assert!(
            report.contains(
                "left out: 3 replacements already done (a counterpart on an opportunity that no longer holds its legacy solution)"
            ),
            "{report}"
        );
    }

    #[test]
    fn a_replacement_cut_short_is_planned_and_counted_apart() {
        let mut tally = Tally::default();
        let holdings = solutions(&["S-1"]).with(EntityType::AwsMarketplaceSolutions, [ARN_A]);
        assert_eq!(plan_one(&listed("O1"), &holdings, &mut tally), [("S-1".to_owned(), ARN_A.to_owned())]);
        assert_eq!((tally.counterpart_already_on, tally.already_replaced), (1, 0));
    }

    #[test]
    fn a_counterpart_beyond_the_limit_of_marketplace_solutions_is_left_out() {
        let full: Vec<String> = (0..9).map(|i| format!("arn:aws:other/{i}")).collect();
        let mut tally = Tally::default();
        // One place left: S-1 and S-4 share ARN_A and fit in it; S-2's ARN_B does not.
        let holdings = solutions(&["S-1", "S-2", "S-4"]).with(EntityType::AwsMarketplaceSolutions, full);
        let planned = plan_one(&listed("O1"), &holdings, &mut tally);
        assert_eq!(planned, [("S-1".to_owned(), ARN_A.to_owned()), ("S-4".to_owned(), ARN_A.to_owned())]);
        assert_eq!(tally.left_out[&Reason::NoRoom]["S-2"], 1);
    }

    #[test]
    fn an_opportunity_under_review_is_planned_and_counted_apart() {
        let mut tally = Tally::default();
        let review = Listed { under_review: true, ..listed("O1") };
        assert_eq!(plan_one(&review, &solutions(&["S-1"]), &mut tally).len(), 1);
        assert_eq!((tally.planned, tally.under_review), (1, 1));
    }

    /// An account in memory: opportunities O1..On, pages of `page` each; every call is logged, and a
    /// call can be made to fail.
    struct Account {
        opportunities: Vec<(Listed, Holdings)>,
        page: usize,
        calls: RefCell<Vec<String>>,
        /// The `GetOpportunity` of this opportunity fails, permanently.
        broken: RefCell<Option<String>>,
        /// The next calls answered with throttling.
        throttle: Cell<u32>,
        /// `NextToken`s of `ListOpportunities` refused as expired.
        expired: RefCell<BTreeSet<String>>,
        /// How long each `GetOpportunity` takes.
        latency: Cell<Duration>,
    }

    impl Account {
        fn new(count: usize, page: usize) -> Self {
            let opportunities = (1..=count)
                .map(|i| {
                    let mut l = listed(&format!("O{i}"));
                    l.closed_lost = i % 7 == 0;
                    l.rejected = i == 10;
                    let held = if i % 3 == 0 { vec!["S-1", "S-3"] } else { vec!["S-2"] };
                    (l, solutions(&held))
                })
                .collect();
            Self {
                opportunities,
                page,
                calls: RefCell::default(),
                broken: RefCell::default(),
                throttle: Cell::new(0),
                expired: RefCell::default(),
                latency: Cell::default(),
            }
        }

        fn answer(&self, call: String) -> Result<(), ApiError> {
            self.calls.borrow_mut().push(call.clone());
            let error =
                |code: &str, class| ApiError { code: code.into(), message: call.clone(), request_id: None, class };
            if self.throttle.get() > 0 {
                self.throttle.set(self.throttle.get() - 1);
                return Err(error("ThrottlingException", ErrorClass::Transient));
            }
            if self.broken.borrow().as_deref() == Some(call.as_str()) {
                return Err(error("AccessDeniedException", ErrorClass::Permanent));
            }
            Ok(())
        }

        fn count(&self, prefix: &str) -> usize {
            self.calls.borrow().iter().filter(|c| c.starts_with(prefix)).count()
        }
    }

    impl Reads for &Account {
        async fn solutions(&self, _: Catalog, token: Option<&str>) -> Result<Page<Solution>, ApiError> {
            self.answer(format!("ListSolutions {token:?}"))?;
            let all: Vec<Solution> =
                mapping().into_iter().map(|(id, counterpart)| Solution { id, counterpart }).collect();
            let (items, next) = match token {
                None => (all[..2].to_vec(), Some("2".to_owned())),
                Some(_) => (all[2..].to_vec(), None),
            };
            Ok(Page { items, next })
        }

        async fn opportunities(&self, _: Catalog, token: Option<&str>) -> Result<Page<Listed>, ApiError> {
            self.answer(format!("ListOpportunities {token:?}"))?;
            let expired = token.is_some_and(|t| self.expired.borrow().contains(t));
            let (Ok(start), false) = (token.map_or(Ok(0), str::parse::<usize>), expired) else {
                let message = format!("NextToken {token:?} is invalid");
                return Err(ApiError {
                    code: "ValidationException".into(),
                    message,
                    request_id: None,
                    class: ErrorClass::Permanent,
                });
            };
            let end = (start + self.page).min(self.opportunities.len());
            let items = self.opportunities[start..end].iter().map(|(l, _)| l.clone()).collect();
            Ok(Page { items, next: (end < self.opportunities.len()).then(|| end.to_string()) })
        }

        async fn opportunity(&self, _: Catalog, id: &OpportunityId) -> Result<Option<Holdings>, ApiError> {
            tokio::time::sleep(self.latency.get()).await;
            self.answer(format!("GetOpportunity {id}"))?;
            Ok(self.opportunities.iter().find(|(l, _)| &l.id == id).map(|(_, h)| h.clone()))
        }
    }

    /// The scan whose state is at `path`: a new one, or the one left there.
    fn scan<'a>(account: &'a Account, path: &Path) -> Scan<&'a Account> {
        let settings = Settings { catalog: Catalog::Sandbox, include_closed: false };
        Scan::open(account, settings, 1000.0, path.to_owned()).unwrap()
    }

    /// The opportunities a scan of `account` reads, in the order it reads them.
    fn to_read(account: &Account) -> Vec<OpportunityId> {
        let settings = Settings { catalog: Catalog::Sandbox, include_closed: false };
        account.opportunities.iter().filter(|(l, _)| settings.reads(l)).map(|(l, _)| l.id.clone()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn every_page_is_listed_before_any_opportunity_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let account = Account::new(45, 10);
        let mut run = scan(&account, &dir.path().join("s.json"));
        run.run(&mut Progress::Silent, &mut Vec::new()).await.unwrap();
        let calls = account.calls.borrow();
        let last_list = calls.iter().rposition(|c| c.starts_with("ListOpportunities")).unwrap();
        let first_get = calls.iter().position(|c| c.starts_with("GetOpportunity")).unwrap();
        assert_eq!((last_list, first_get), (2 + 4, 2 + 5), "{calls:?}");
        assert_eq!(run.state.read, to_read(&account).len());
    }

    /// A scan of an account run to its end, and one of an equal account stopped where its `broken`
    /// call fails, its state kept at `path` for the test to resume.
    struct Stopped {
        /// The whole scan's account, what the scan found and its tally.
        whole: Account,
        found: Found,
        tally: Tally,
        /// The stopped scan's account (its call no longer broken), its error and what it found.
        account: Account,
        error: String,
        stopped_found: Found,
    }

    async fn stopped(count: usize, page: usize, broken: &str, path: &Path) -> Stopped {
        let whole = Account::new(count, page);
        let mut once = scan(&whole, &path.with_extension("whole.json"));
        once.run(&mut Progress::Silent, &mut Vec::new()).await.unwrap();
        let (found, tally) = (once.found, once.state.tally);
        let account = Account::new(count, page);
        *account.broken.borrow_mut() = Some(broken.to_owned());
        let mut stopped = scan(&account, path);
        let error = stopped.run(&mut Progress::Silent, &mut Vec::new()).await.unwrap_err();
        let stopped_found = stopped.found;
        *account.broken.borrow_mut() = None;
        Stopped { whole, found, tally, account, error, stopped_found }
    }

    /// The scan at `path` resumed to its end: it found what the whole scan found.
    async fn resumed<'a>(stopped: &'a Stopped, path: &Path, log: &mut Vec<u8>) -> Scan<&'a Account> {
        let mut resumed = scan(&stopped.account, path);
        resumed.run(&mut Progress::Silent, log).await.unwrap();
        assert_eq!(resumed.found, stopped.found);
        assert_eq!(resumed.state.tally, stopped.tally);
        resumed
    }

    #[tokio::test(start_paused = true)]
    async fn the_lines_give_the_time_left_at_the_pace_of_the_reads_so_far() {
        let dir = tempfile::tempdir().unwrap();
        let account = Account::new(250, 100);
        let settings = Settings { catalog: Catalog::Sandbox, include_closed: false };
        let mut run = Scan::open(&account, settings, 10.0, dir.path().join("s.json")).unwrap();
        let mut log = Vec::new();
        run.run(&mut Progress::Lines(None), &mut log).await.unwrap();
        let log = String::from_utf8(log).unwrap();
        assert!(log.contains("listing: page 3, 250 opportunities listed\n"), "{log}");
        // 100 reads at 10/s took 10 s (the first in the turn after the last list page): 114 left.
        assert_eq!(to_read(&account).len(), 214);
        assert!(log.contains("read 100 of 214 opportunities, 100 replacements planned, 105 reads at "), "{log}");
        assert!(log.contains("/s, about 12 s left\nread 200 of 214"), "{log}");

        // Each read taking 300 ms, the pace is not the asked 10/s: the time left is 114 at 300 ms.
        let account = Account::new(250, 100);
        account.latency.set(Duration::from_millis(300));
        let mut run = Scan::open(&account, settings, 10.0, dir.path().join("slow.json")).unwrap();
        let mut log = Vec::new();
        run.run(&mut Progress::Lines(None), &mut log).await.unwrap();
        let log = String::from_utf8(log).unwrap();
        assert!(log.contains("/s, about 35 s left\nread 200 of 214"), "{log}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_scan_stopped_while_reading_reads_only_the_opportunities_since_the_last_save_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let s = stopped(250, 100, "GetOpportunity O150", &path).await;
        assert!(s.error.contains("GetOpportunity failed after 1 attempt(s)"), "{}", s.error);
        let kept = State::load(&path, Catalog::Sandbox, false).unwrap();
        assert!(kept.opportunities.done);
        assert_eq!(kept.read, PAGE_SIZE);

        resumed(&s, &path, &mut Vec::new()).await;
        // Read again: the opportunities after the last save up to O150, O150's failed read included.
        let o150 = to_read(&s.account).iter().position(|id| id.as_str() == "O150").unwrap();
        let again = o150 + 1 - PAGE_SIZE;
        assert!(again <= PAGE_SIZE);
        assert_eq!(s.account.count("GetOpportunity"), s.whole.count("GetOpportunity") + again);
        let listed = s.account.count("ListOpportunities");
        assert_eq!(listed, s.whole.count("ListOpportunities"), "the listing is not read again");
        assert_eq!(s.account.count("ListSolutions"), 2, "the mapping is read once");
    }

    #[tokio::test(start_paused = true)]
    async fn each_save_appends_to_the_journal_and_keeps_the_state_small() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let s = stopped(250, 100, "GetOpportunity O250", &path).await;
        let kept = State::load(&path, Catalog::Sandbox, false).unwrap();
        assert_eq!(kept.read, 2 * PAGE_SIZE);
        assert_eq!(s.stopped_found.requests.len(), 2 * PAGE_SIZE, "one replacement on each opportunity read");
        // The state holds cursors and tallies only: no opportunity listed, no request planned.
        let state = std::fs::read_to_string(&path).unwrap();
        assert!(state.len() < 600, "{} bytes: {state}", state.len());
        let journal = journal_path_for(&path);
        assert_eq!(std::fs::metadata(&journal).unwrap().len(), kept.journal);

        // A save cut short: the journal holds more than its state counts, which the resume cuts off.
        let mut file = OpenOptions::new().append(true).open(&journal).unwrap();
        file.write_all(b"{\"Planned\":\"{\\\"Catalog\\\":\"").unwrap();
        let resumed = resumed(&s, &path, &mut Vec::new()).await;
        let (_, found) = Journal::open(&journal, resumed.state.journal).unwrap();
        assert_eq!(found, s.found);
    }

    #[tokio::test(start_paused = true)]
    async fn a_scan_stopped_while_listing_lists_only_that_page_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let s = stopped(45, 10, "ListOpportunities Some(\"20\")", &path).await;
        assert!(s.error.contains("ListOpportunities failed after 1 attempt(s)"), "{}", s.error);
        let kept = State::load(&path, Catalog::Sandbox, false).unwrap();
        assert_eq!((kept.opportunities.pages, kept.read), (2, 0));
        assert_eq!(s.stopped_found.listed.last().map(|l| l.id.as_str()), Some("O20"));

        resumed(&s, &path, &mut Vec::new()).await;
        assert_eq!(s.account.count("ListOpportunities"), s.whole.count("ListOpportunities") + 1);
        assert_eq!(s.account.count("GetOpportunity"), s.whole.count("GetOpportunity"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_refused_on_resuming_lists_again_from_the_first_page_skipping_those_listed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let s = stopped(45, 10, "ListOpportunities Some(\"20\")", &path).await;
        let mut kept = State::load(&path, Catalog::Sandbox, false).unwrap();
        kept.opportunities.next_token = Some("expired".to_owned());
        kept.save(&path).unwrap();

        let mut log = Vec::new();
        resumed(&s, &path, &mut log).await;
        let log = String::from_utf8(log).unwrap();
        assert!(
            log.contains("ListOpportunities failed after 1 attempt(s): ValidationException: NextToken Some(\"expired\") is invalid\nthe NextToken saved is refused: listing again from the first page, skipping the 20 opportunities listed already (up to O20)"),
            "{log}"
        );
        // Two pages, the broken third, then the refused token and every page again.
        assert_eq!(s.account.count("ListOpportunities"), 2 + 1 + 1 + 5);
        assert_eq!(s.account.count("GetOpportunity"), s.whole.count("GetOpportunity"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_refused_again_after_listing_again_stops_the_scan() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let account = Account::new(45, 10);
        let mut state = State::new(Catalog::Sandbox, false);
        state.opportunities.next_token = Some("expired".to_owned());
        state.save(&path).unwrap();
        // The first page, listed again, answers a token the account refuses too.
        account.expired.borrow_mut().insert("10".to_owned());
        let error = scan(&account, &path).run(&mut Progress::Silent, &mut Vec::new()).await.unwrap_err();
        assert!(error.contains("ListOpportunities failed after 1 attempt(s): ValidationException"), "{error}");
        assert_eq!(account.count("ListOpportunities"), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn closed_lost_opportunities_are_not_read_and_the_tally_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let account = Account::new(21, 10);
        let mut run = scan(&account, &dir.path().join("s.json"));
        run.run(&mut Progress::Silent, &mut Vec::new()).await.unwrap();
        let t = &run.state.tally;
        assert_eq!((t.listed, t.closed_lost, t.rejected), (21, 3, 1));
        assert_eq!(account.count("GetOpportunity"), 17);
        assert!(!account.calls.borrow().contains(&"GetOpportunity O7".to_owned()));
        assert!(!account.calls.borrow().contains(&"GetOpportunity O10".to_owned()));
        // Every opportunity holds S-2 or S-1 (both with counterparts), and S-3 on every third one.
        assert_eq!(run.found.requests.len(), 17);
        assert_eq!(t.left_out[&Reason::NoCounterpart]["S-3"], 6);
        let report = run.report(1000.0);
        assert!(
            report.contains("left out: 3 opportunities Closed Lost, not read (--include-closed plans them)"),
            "{report}"
        );
        assert!(report.contains("left out: S-3 has no Marketplace counterpart"), "{report}");
        assert!(report.contains("left out: 1 opportunity Rejected (read-only)"), "{report}");
    }

    #[tokio::test(start_paused = true)]
    async fn closed_lost_opportunities_are_planned_with_include_closed_and_left_out_without() {
        let dir = tempfile::tempdir().unwrap();
        let planned_on =
            |found: &Found, id: &str| found.requests.iter().filter(|r| r.contains(&format!("\"{id}\""))).count();
        let account = Account::new(21, 10);
        let settings = Settings { catalog: Catalog::Sandbox, include_closed: true };
        let mut with = Scan::open(&account, settings, 1000.0, dir.path().join("with.json")).unwrap();
        with.run(&mut Progress::Silent, &mut Vec::new()).await.unwrap();
        assert!(account.calls.borrow().contains(&"GetOpportunity O7".to_owned()));
        assert_eq!((planned_on(&with.found, "O7"), planned_on(&with.found, "O14")), (1, 1));
        assert_eq!((with.state.tally.closed_lost, with.found.requests.len()), (0, 20));
        assert!(!with.report(1000.0).contains("Closed Lost"));

        let account = Account::new(21, 10);
        let mut without = scan(&account, &dir.path().join("without.json"));
        without.run(&mut Progress::Silent, &mut Vec::new()).await.unwrap();
        assert!(!account.calls.borrow().contains(&"GetOpportunity O7".to_owned()));
        assert_eq!((planned_on(&without.found, "O7"), planned_on(&without.found, "O14")), (0, 0));
        assert_eq!((without.state.tally.closed_lost, without.found.requests.len()), (3, 17));
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_read_is_tried_again_in_a_later_turn() {
        let dir = tempfile::tempdir().unwrap();
        let account = Account::new(3, 10);
        account.throttle.set(2);
        let mut run = scan(&account, &dir.path().join("s.json"));
        run.run(&mut Progress::Silent, &mut Vec::new()).await.unwrap();
        assert_eq!(run.reads(), (2 + 2 + 1 + 3, 2));
        assert_eq!(account.calls.borrow()[..3], ["ListSolutions None", "ListSolutions None", "ListSolutions None"]);
        assert_eq!(run.found.requests.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_throttled_on_every_attempt_stops_the_scan_with_every_throttle_counted() {
        let dir = tempfile::tempdir().unwrap();
        let account = Account::new(3, 10);
        account.throttle.set(ATTEMPTS);
        let mut run = scan(&account, &dir.path().join("s.json"));
        let error = run.run(&mut Progress::Silent, &mut Vec::new()).await.unwrap_err();
        assert!(
            error.contains(&format!("ListSolutions failed after {ATTEMPTS} attempt(s): ThrottlingException")),
            "{error}"
        );
        assert_eq!(run.reads(), (u64::from(ATTEMPTS), u64::from(ATTEMPTS)));
        assert!(run.reads_line(1000.0).ends_with(&format!("{ATTEMPTS} throttled\n")));
    }

    #[test]
    fn a_state_of_another_scan_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        State::new(Catalog::Sandbox, false).save(&path).unwrap();
        let error = State::load(&path, Catalog::Aws, false).unwrap_err();
        assert!(error.contains("is of another scan (catalog Sandbox"), "{error}");
        assert!(State::load(&path, Catalog::Sandbox, true).is_err());
        assert_eq!(State::load(&path, Catalog::Sandbox, false).unwrap(), State::new(Catalog::Sandbox, false));
    }
}
