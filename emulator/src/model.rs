//! Data model: seed file, opportunities, related entities, timestamps.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::EmulatorError;
use crate::rules;

/// The six related-entity types of `AssociateOpportunity` / `DisassociateOpportunity`
/// (case-sensitive on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityType {
    /// `Solutions` (identifier `S-` followed by 1 to 19 digits).
    Solutions,
    /// `AwsProducts` (a product code, free string).
    AwsProducts,
    /// `AwsMarketplaceOffers` (offer ARN).
    AwsMarketplaceOffers,
    /// `AwsMarketplaceOfferSets` (offer set ARN).
    AwsMarketplaceOfferSets,
    /// `AwsMarketplaceSolutions` (any ARN).
    AwsMarketplaceSolutions,
    /// `AwsMarketplaceProducts` (any ARN).
    AwsMarketplaceProducts,
}

impl EntityType {
    /// Every entity type, in wire order.
    pub const ALL: [EntityType; 6] = [
        EntityType::Solutions,
        EntityType::AwsProducts,
        EntityType::AwsMarketplaceOffers,
        EntityType::AwsMarketplaceOfferSets,
        EntityType::AwsMarketplaceSolutions,
        EntityType::AwsMarketplaceProducts,
    ];

    /// The wire name (`RelatedEntityType` value and `RelatedEntityIdentifiers` member name).
    pub fn as_str(self) -> &'static str {
        match self {
            EntityType::Solutions => "Solutions",
            EntityType::AwsProducts => "AwsProducts",
            EntityType::AwsMarketplaceOffers => "AwsMarketplaceOffers",
            EntityType::AwsMarketplaceOfferSets => "AwsMarketplaceOfferSets",
            EntityType::AwsMarketplaceSolutions => "AwsMarketplaceSolutions",
            EntityType::AwsMarketplaceProducts => "AwsMarketplaceProducts",
        }
    }

    /// Parses a wire name, case-sensitively. `None` for anything else.
    pub fn parse(value: &str) -> Option<EntityType> {
        EntityType::ALL.into_iter().find(|t| t.as_str() == value)
    }

    /// Whether it is a solution for the last-solution rule: legacy or Marketplace.
    pub fn is_solution(self) -> bool {
        matches!(self, EntityType::Solutions | EntityType::AwsMarketplaceSolutions)
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The related entities of one opportunity: one list per entity type, serialized with exactly
/// the member names of the service's `RelatedEntityIdentifiers` structure.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct RelatedEntityIdentifiers {
    /// `AwsMarketplaceOffers`.
    pub aws_marketplace_offers: Vec<String>,
    /// `AwsMarketplaceOfferSets`.
    pub aws_marketplace_offer_sets: Vec<String>,
    /// `Solutions`.
    pub solutions: Vec<String>,
    /// `AwsProducts`.
    pub aws_products: Vec<String>,
    /// `AwsMarketplaceSolutions`.
    pub aws_marketplace_solutions: Vec<String>,
    /// `AwsMarketplaceProducts`.
    pub aws_marketplace_products: Vec<String>,
}

impl RelatedEntityIdentifiers {
    /// The list for one entity type.
    pub fn list(&self, entity_type: EntityType) -> &[String] {
        match entity_type {
            EntityType::Solutions => &self.solutions,
            EntityType::AwsProducts => &self.aws_products,
            EntityType::AwsMarketplaceOffers => &self.aws_marketplace_offers,
            EntityType::AwsMarketplaceOfferSets => &self.aws_marketplace_offer_sets,
            EntityType::AwsMarketplaceSolutions => &self.aws_marketplace_solutions,
            EntityType::AwsMarketplaceProducts => &self.aws_marketplace_products,
        }
    }

    /// The solutions held, legacy (`Solutions`) and Marketplace (`AwsMarketplaceSolutions`) alike.
    pub fn solution_count(&self) -> usize {
        self.solutions.len() + self.aws_marketplace_solutions.len()
    }

    /// The mutable list for one entity type.
    pub fn list_mut(&mut self, entity_type: EntityType) -> &mut Vec<String> {
        match entity_type {
            EntityType::Solutions => &mut self.solutions,
            EntityType::AwsProducts => &mut self.aws_products,
            EntityType::AwsMarketplaceOffers => &mut self.aws_marketplace_offers,
            EntityType::AwsMarketplaceOfferSets => &mut self.aws_marketplace_offer_sets,
            EntityType::AwsMarketplaceSolutions => &mut self.aws_marketplace_solutions,
            EntityType::AwsMarketplaceProducts => &mut self.aws_marketplace_products,
        }
    }

    /// Whether `identifier` is currently associated as `entity_type`.
    pub fn contains(&self, entity_type: EntityType, identifier: &str) -> bool {
        self.list(entity_type).iter().any(|i| i == identifier)
    }

    /// Whether one more entity of `entity_type` fits the association limits; `Err` says which
    /// limit it would break.
    pub fn check_room_for(&self, entity_type: EntityType) -> Result<(), String> {
        let limit = AssociationLimit::of(entity_type);
        let held = limit.held(self);
        if held < limit.max { Ok(()) } else { Err(limit.describe(held)) }
    }

    /// Checks every association limit (see [`AssociationLimit`]); `Err` names the first broken one.
    pub fn check_limits(&self) -> Result<(), String> {
        for limit in AssociationLimit::ALL {
            let held = limit.held(self);
            if held > limit.max {
                return Err(limit.describe(held));
            }
        }
        Ok(())
    }
}

/// How many associations an opportunity may hold (Partner Central developer guide, quotas):
/// 20 `AwsProducts`, 10 `Solutions`, 10 `AwsMarketplaceSolutions`, 10 `AwsMarketplaceProducts`,
/// and one AWS Marketplace offer or offer set (`AwsMarketplaceOffers` and `AwsMarketplaceOfferSets`
/// together).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AssociationLimit {
    /// The entity types the limit counts together.
    pub types: &'static [EntityType],
    /// The most entities of those types an opportunity may hold.
    pub max: usize,
    /// What the limit is about, for messages.
    pub what: &'static str,
}

impl AssociationLimit {
    /// Every limit.
    pub const ALL: [AssociationLimit; 5] = [
        AssociationLimit { types: &[EntityType::AwsProducts], max: 20, what: "AWS products (AwsProducts)" },
        AssociationLimit { types: &[EntityType::Solutions], max: 10, what: "solutions (Solutions)" },
        AssociationLimit {
            types: &[EntityType::AwsMarketplaceSolutions],
            max: 10,
            what: "AWS Marketplace solutions (AwsMarketplaceSolutions)",
        },
        AssociationLimit {
            types: &[EntityType::AwsMarketplaceProducts],
            max: 10,
            what: "AWS Marketplace products (AwsMarketplaceProducts)",
        },
        AssociationLimit {
            types: &[EntityType::AwsMarketplaceOffers, EntityType::AwsMarketplaceOfferSets],
            max: 1,
            what: "AWS Marketplace offer or offer set (AwsMarketplaceOffers and AwsMarketplaceOfferSets together)",
        },
    ];

    /// The limit that counts `entity_type`.
    pub fn of(entity_type: EntityType) -> AssociationLimit {
        let index = match entity_type {
            EntityType::AwsProducts => 0,
            EntityType::Solutions => 1,
            EntityType::AwsMarketplaceSolutions => 2,
            EntityType::AwsMarketplaceProducts => 3,
            EntityType::AwsMarketplaceOffers | EntityType::AwsMarketplaceOfferSets => 4,
        };
        Self::ALL[index]
    }

    /// How many entities counted by this limit `related` holds.
    pub fn held(&self, related: &RelatedEntityIdentifiers) -> usize {
        self.types.iter().map(|t| related.list(*t).len()).sum()
    }

    fn describe(&self, held: usize) -> String {
        format!("an opportunity can hold at most {} {}; it holds {held}", self.max, self.what)
    }
}

/// `LifeCycle.Stage`, exactly as the service model spells it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Stage {
    /// `Prospect`.
    #[default]
    Prospect,
    /// `Qualified`.
    Qualified,
    /// `Technical Validation`.
    #[serde(rename = "Technical Validation")]
    TechnicalValidation,
    /// `Business Validation`.
    #[serde(rename = "Business Validation")]
    BusinessValidation,
    /// `Committed`.
    Committed,
    /// `Launched`.
    Launched,
    /// `Closed Lost`.
    #[serde(rename = "Closed Lost")]
    ClosedLost,
}

impl Stage {
    /// Every stage, in the model's order.
    pub const ALL: [Stage; 7] = [
        Stage::Prospect,
        Stage::Qualified,
        Stage::TechnicalValidation,
        Stage::BusinessValidation,
        Stage::Committed,
        Stage::Launched,
        Stage::ClosedLost,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Prospect => "Prospect",
            Stage::Qualified => "Qualified",
            Stage::TechnicalValidation => "Technical Validation",
            Stage::BusinessValidation => "Business Validation",
            Stage::Committed => "Committed",
            Stage::Launched => "Launched",
            Stage::ClosedLost => "Closed Lost",
        }
    }

    /// Parses the wire spelling, case-sensitively.
    pub fn parse(value: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

/// `LifeCycle.ReviewStatus`, exactly as the service model spells it (`In review`, not
/// `In Review`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ReviewStatus {
    /// `Pending Submission`.
    #[default]
    #[serde(rename = "Pending Submission")]
    PendingSubmission,
    /// `Submitted`: every write is refused.
    Submitted,
    /// `In review`: every write is refused.
    #[serde(rename = "In review")]
    InReview,
    /// `Approved`.
    Approved,
    /// `Rejected`: read-only, every write is refused.
    Rejected,
    /// `Action Required`.
    #[serde(rename = "Action Required")]
    ActionRequired,
}

impl ReviewStatus {
    /// Every status, in the model's order.
    pub const ALL: [ReviewStatus; 6] = [
        ReviewStatus::PendingSubmission,
        ReviewStatus::Submitted,
        ReviewStatus::InReview,
        ReviewStatus::Approved,
        ReviewStatus::Rejected,
        ReviewStatus::ActionRequired,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::PendingSubmission => "Pending Submission",
            ReviewStatus::Submitted => "Submitted",
            ReviewStatus::InReview => "In review",
            ReviewStatus::Approved => "Approved",
            ReviewStatus::Rejected => "Rejected",
            ReviewStatus::ActionRequired => "Action Required",
        }
    }

    /// Parses the wire spelling, case-sensitively.
    pub fn parse(value: &str) -> Option<ReviewStatus> {
        ReviewStatus::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// Whether AWS accepts no change at all: under review (`Submitted`, `In review`) or
    /// `Rejected` (read-only).
    pub fn refuses_writes(self) -> bool {
        matches!(self, ReviewStatus::Submitted | ReviewStatus::InReview | ReviewStatus::Rejected)
    }

    /// Whether the opportunity counts as submitted (at least one solution must stay on it).
    pub fn is_submitted(self) -> bool {
        matches!(
            self,
            ReviewStatus::Submitted | ReviewStatus::InReview | ReviewStatus::Approved | ReviewStatus::ActionRequired
        )
    }
}

impl fmt::Display for ReviewStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `LifeCycle` of an opportunity (only the members the emulator uses). A seed with a stage or
/// status the model does not spell exactly is refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct LifeCycle {
    /// `Stage`; `Prospect` by default.
    #[serde(default)]
    pub stage: Stage,
    /// `ReviewStatus`; `Pending Submission` by default. `Submitted` and `In review` refuse every
    /// write, `Rejected` too (read-only); `Approved` and `Action Required` keep the last solution
    /// (legacy or Marketplace) of the opportunity.
    #[serde(default)]
    pub review_status: ReviewStatus,
}

impl LifeCycle {
    /// Whether the opportunity counts as submitted (at least one solution must stay on it).
    pub fn is_submitted(&self) -> bool {
        self.review_status.is_submitted()
    }
}

/// A change of an opportunity's life cycle (`POST /_emulator/opportunities/{Catalog}/{Id}/life-cycle`,
/// [`crate::RunningEmulator::set_life_cycle`]): the members given are set, the others kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct LifeCycleChange {
    /// The new `Stage`, if any.
    pub stage: Option<Stage>,
    /// The new `ReviewStatus`, if any.
    pub review_status: Option<ReviewStatus>,
}

/// One opportunity of a [`Seed`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SeedOpportunity {
    /// `AWS` or `Sandbox`.
    pub catalog: String,
    /// Opportunity identifier, `O` followed by 1 to 19 digits.
    pub id: String,
    /// Entities associated at start.
    #[serde(default)]
    pub related_entity_identifiers: RelatedEntityIdentifiers,
    /// Life cycle; defaults to `Prospect` / `Pending Submission`.
    #[serde(default)]
    pub life_cycle: LifeCycle,
}

/// `SolutionStatus`, as the service model spells it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SolutionStatus {
    /// `Active`.
    #[default]
    Active,
    /// `Inactive`.
    Inactive,
    /// `Draft`.
    Draft,
}

impl SolutionStatus {
    /// Every status, in the model's order.
    pub const ALL: [SolutionStatus; 3] = [SolutionStatus::Active, SolutionStatus::Inactive, SolutionStatus::Draft];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SolutionStatus::Active => "Active",
            SolutionStatus::Inactive => "Inactive",
            SolutionStatus::Draft => "Draft",
        }
    }

    /// Parses the wire spelling, case-sensitively.
    pub fn parse(value: &str) -> Option<SolutionStatus> {
        SolutionStatus::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

/// One legacy solution (`S-…`) of a [`Seed`], as `ListSolutions` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SeedSolution {
    /// `AWS` or `Sandbox`.
    pub catalog: String,
    /// `S-` followed by 1 to 19 digits.
    pub id: String,
    /// Its name; the identifier when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// `Active` (default), `Inactive` or `Draft`.
    #[serde(default)]
    pub status: SolutionStatus,
    /// Its category; `Software Product` when absent.
    #[serde(default = "default_category")]
    pub category: String,
    /// The AWS Marketplace solution that succeeds it, when it has one (4 to 2,048 characters,
    /// `arn:.*`).
    #[serde(default)]
    pub aws_marketplace_solution_arn: Option<String>,
}

fn default_category() -> String {
    "Software Product".to_owned()
}

/// The emulator's initial data: the seed file (`--seed FILE`), `POST /_emulator/seed` and
/// [`crate::RunningEmulator::seed`].
///
/// ```json
/// {
///   "DeniedCatalogs": ["AWS"],
///   "Solutions": [
///     {"Catalog": "Sandbox", "Id": "S-0000001", "Name": "Analytics Suite", "Status": "Active",
///      "Category": "Software Product",
///      "AwsMarketplaceSolutionArn": "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-1"}
///   ],
///   "Opportunities": [
///     {"Catalog": "Sandbox", "Id": "O1234567",
///      "RelatedEntityIdentifiers": {"Solutions": ["S-0000001"]},
///      "LifeCycle": {"Stage": "Prospect", "ReviewStatus": "Pending Submission"}}
///   ]
/// }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Seed {
    /// Catalogs whose every call answers `AccessDeniedException`.
    #[serde(default)]
    pub denied_catalogs: Vec<String>,
    /// The opportunities, keyed by (`Catalog`, `Id`).
    #[serde(default)]
    pub opportunities: Vec<SeedOpportunity>,
    /// The partner's legacy solutions, keyed by (`Catalog`, `Id`), for `ListSolutions`. An
    /// opportunity may hold a solution that is not listed here (the emulator does not check).
    #[serde(default)]
    pub solutions: Vec<SeedSolution>,
}

impl Seed {
    /// Parses a seed from JSON and validates it.
    pub fn from_json(text: &str) -> Result<Seed, EmulatorError> {
        let seed: Seed =
            serde_json::from_str(text).map_err(|e| EmulatorError::Config(format!("invalid seed JSON: {e}")))?;
        seed.validate()?;
        Ok(seed)
    }

    /// Reads, parses and validates a seed file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Seed, EmulatorError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| EmulatorError::Config(format!("cannot read seed file {}: {e}", path.display())))?;
        Seed::from_json(&text)
    }

    /// Checks catalogs, opportunity identifiers and entity identifiers against the service rules,
    /// every opportunity against the association limits ([`AssociationLimit`]), and that no
    /// (catalog, id) appears twice.
    pub fn validate(&self) -> Result<(), EmulatorError> {
        let mut seen = std::collections::BTreeSet::new();
        for catalog in &self.denied_catalogs {
            if !rules::is_catalog(catalog) {
                return Err(EmulatorError::Config(format!(
                    "seed: DeniedCatalogs entry {catalog:?} is not AWS or Sandbox"
                )));
            }
        }
        for opp in &self.opportunities {
            if !rules::is_catalog(&opp.catalog) {
                return Err(EmulatorError::Config(format!(
                    "seed: opportunity {:?} has Catalog {:?}, expected AWS or Sandbox",
                    opp.id, opp.catalog
                )));
            }
            if !rules::is_opportunity_identifier(&opp.id) {
                return Err(EmulatorError::Config(format!(
                    "seed: opportunity Id {:?} does not match O[0-9]{{1,19}}",
                    opp.id
                )));
            }
            if !seen.insert((opp.catalog.clone(), opp.id.clone())) {
                return Err(EmulatorError::Config(format!(
                    "seed: opportunity {}/{} appears twice",
                    opp.catalog, opp.id
                )));
            }
            for entity_type in EntityType::ALL {
                for identifier in opp.related_entity_identifiers.list(entity_type) {
                    if let Err(msg) = rules::check_entity_identifier(entity_type, identifier) {
                        return Err(EmulatorError::Config(format!(
                            "seed: opportunity {}/{}: {entity_type} identifier {identifier:?}: {msg}",
                            opp.catalog, opp.id
                        )));
                    }
                }
            }
            if let Err(msg) = opp.related_entity_identifiers.check_limits() {
                return Err(EmulatorError::Config(format!("seed: opportunity {}/{}: {msg}", opp.catalog, opp.id)));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for solution in &self.solutions {
            let name = format!("seed: solution {}/{}", solution.catalog, solution.id);
            if !rules::is_catalog(&solution.catalog) {
                return Err(EmulatorError::Config(format!("{name}: Catalog is not AWS or Sandbox")));
            }
            if rules::check_entity_identifier(EntityType::Solutions, &solution.id).is_err() {
                return Err(EmulatorError::Config(format!("{name}: Id does not match S-[0-9]{{1,19}}")));
            }
            if let Some(arn) = &solution.aws_marketplace_solution_arn
                && !rules::is_marketplace_solution_arn(arn)
            {
                return Err(EmulatorError::Config(format!(
                    "{name}: AwsMarketplaceSolutionArn {arn:?} is not 4 to 2048 characters matching arn:.*"
                )));
            }
            if !seen.insert((solution.catalog.clone(), solution.id.clone())) {
                return Err(EmulatorError::Config(format!("{name} appears twice")));
            }
        }
        Ok(())
    }
}

/// Formats epoch seconds as an RFC 3339 / ISO 8601 UTC timestamp (`2024-05-01T12:00:00Z`), the
/// `date-time` format the service model uses for `CreatedDate` and `LastModifiedDate`.
pub fn format_timestamp(epoch_secs: u64) -> String {
    let days = (epoch_secs / 86_400) as i64;
    let rem = epoch_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Parses an ISO 8601 / RFC 3339 date-time (`2024-05-01T12:00:00Z`, fractions and a `±HH:MM`
/// offset allowed) to epoch seconds, fractions dropped; `None` if it is not one or is before 1970.
pub fn parse_timestamp(value: &str) -> Option<u64> {
    let (date, time) = value.split_once(['T', 't'])?;
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = digits(date_parts.next()?, 4)?;
    let month: u32 = u32::try_from(digits(date_parts.next()?, 2)?).ok()?;
    let day: u32 = u32::try_from(digits(date_parts.next()?, 2)?).ok()?;
    let (clock, offset) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        (clock, 0)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (clock, zone) = time.split_at(at);
        let (hours, minutes) = zone[1..].split_once(':')?;
        let seconds = digits(hours, 2)? * 3600 + digits(minutes, 2)? * 60;
        (clock, if zone.starts_with('-') { -seconds } else { seconds })
    };
    let clock = clock.split_once('.').map_or(clock, |(whole, fraction)| {
        if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) { "" } else { whole }
    });
    let mut clock_parts = clock.splitn(3, ':');
    let (h, m, s) = (digits(clock_parts.next()?, 2)?, digits(clock_parts.next()?, 2)?, digits(clock_parts.next()?, 2)?);
    let days_in_month = [
        31,
        28 + u32::from(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)),
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month[month as usize - 1] || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let epoch = days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s - offset;
    u64::try_from(epoch).ok()
}

/// Exactly `len` ASCII digits.
fn digits(value: &str, len: usize) -> Option<i64> {
    if value.len() == len && value.bytes().all(|b| b.is_ascii_digit()) { value.parse().ok() } else { None }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01, proleptic Gregorian.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_timestamp(1_714_564_800), "2024-05-01T12:00:00Z");
        for days in [-1000_i64, 0, 59, 60, 11_016, 19_844, 60_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn stages_and_review_statuses_are_the_model_strings() {
        let statuses: Vec<&str> = ReviewStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            statuses,
            ["Pending Submission", "Submitted", "In review", "Approved", "Rejected", "Action Required"]
        );
        for s in ReviewStatus::ALL {
            assert_eq!(serde_json::to_value(s).ok(), Some(serde_json::json!(s.as_str())));
            assert_eq!(ReviewStatus::parse(s.as_str()), Some(s));
        }
        for s in Stage::ALL {
            assert_eq!(serde_json::to_value(s).ok(), Some(serde_json::json!(s.as_str())));
            assert_eq!(Stage::parse(s.as_str()), Some(s));
        }
        assert_eq!(ReviewStatus::parse("In Review"), None);
        let refusing: Vec<ReviewStatus> = ReviewStatus::ALL.into_iter().filter(|s| s.refuses_writes()).collect();
        assert_eq!(refusing, [ReviewStatus::Submitted, ReviewStatus::InReview, ReviewStatus::Rejected]);
    }

    #[test]
    fn timestamps_parse() {
        assert_eq!(parse_timestamp("2024-05-01T12:00:00Z"), Some(1_714_564_800));
        assert_eq!(parse_timestamp("2024-05-01T12:00:00.123Z"), Some(1_714_564_800));
        assert_eq!(parse_timestamp("2024-05-01T14:00:00+02:00"), Some(1_714_564_800));
        assert_eq!(parse_timestamp("2024-05-01T07:30:00-04:30"), Some(1_714_564_800));
        assert_eq!(parse_timestamp(&format_timestamp(951_782_400)), Some(951_782_400));
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01T12:00Z",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-05-01T12:00:00",
            "1969-12-31T23:59:59Z",
            "2024-05-01T12:00:00.Z",
            "x024-05-01T12:00:00Z",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn entity_type_names_are_case_sensitive() {
        for t in EntityType::ALL {
            assert_eq!(EntityType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EntityType::parse("solutions"), None);
        assert_eq!(EntityType::parse("AWSProducts"), None);
        assert_eq!(EntityType::parse(""), None);
    }

    #[test]
    fn related_entity_identifiers_serialize_every_list() {
        let json = serde_json::to_value(RelatedEntityIdentifiers::default()).unwrap_or_default();
        let obj = json.as_object().cloned().unwrap_or_default();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut expected: Vec<&str> = EntityType::ALL.iter().map(|t| t.as_str()).collect();
        expected.sort_unstable();
        assert_eq!(keys, expected);
    }

    #[test]
    fn seed_validation() {
        let ok = r#"{"DeniedCatalogs":["AWS"],"Opportunities":[{"Catalog":"Sandbox","Id":"O1",
            "RelatedEntityIdentifiers":{"Solutions":["S-1"],"AwsProducts":["AmazonEC2"]}}]}"#;
        let seed = Seed::from_json(ok).expect("valid seed");
        assert_eq!(seed.opportunities[0].life_cycle, LifeCycle::default());
        let statuses = r#"{"Opportunities":[{"Catalog":"Sandbox","Id":"O1",
            "LifeCycle":{"Stage":"Closed Lost","ReviewStatus":"In review"}}]}"#;
        let seed = Seed::from_json(statuses).expect("valid seed");
        assert_eq!(
            seed.opportunities[0].life_cycle,
            LifeCycle { stage: Stage::ClosedLost, review_status: ReviewStatus::InReview }
        );
        for bad in [
            r#"{"DeniedCatalogs":["aws"]}"#,
            r#"{"Opportunities":[{"Catalog":"Sandbox","Id":"1"}]}"#,
            r#"{"Opportunities":[{"Catalog":"Sandbox","Id":"O1","RelatedEntityIdentifiers":{"Solutions":["X"]}}]}"#,
            r#"{"Opportunities":[{"Catalog":"Sandbox","Id":"O1"},{"Catalog":"Sandbox","Id":"O1"}]}"#,
            r#"{"Opportunities":[{"Catalog":"Sandbox","Id":"O1","Typo":1}]}"#,
            r#"{"Opportunities":[{"Catalog":"Sandbox","Id":"O1","LifeCycle":{"ReviewStatus":"In Review"}}]}"#,
            r#"{"Opportunities":[{"Catalog":"Sandbox","Id":"O1","LifeCycle":{"Stage":"closed lost"}}]}"#,
            "not json",
        ] {
            assert!(Seed::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seed_solutions() {
        let ok = r#"{"Solutions":[{"Catalog":"Sandbox","Id":"S-1"},
            {"Catalog":"Sandbox","Id":"S-2","Name":"Two","Status":"Draft","Category":"Managed Service",
             "AwsMarketplaceSolutionArn":"arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-2"}]}"#;
        let seed = Seed::from_json(ok).expect("valid seed");
        assert_eq!(seed.solutions[0].status, SolutionStatus::Active);
        assert_eq!(seed.solutions[0].category, "Software Product");
        assert_eq!(seed.solutions[1].status, SolutionStatus::Draft);
        for bad in [
            r#"{"Solutions":[{"Catalog":"Sandbox","Id":"S-x"}]}"#,
            r#"{"Solutions":[{"Catalog":"sandbox","Id":"S-1"}]}"#,
            r#"{"Solutions":[{"Catalog":"Sandbox","Id":"S-1","Status":"active"}]}"#,
            r#"{"Solutions":[{"Catalog":"Sandbox","Id":"S-1","AwsMarketplaceSolutionArn":"sol-1"}]}"#,
            r#"{"Solutions":[{"Catalog":"Sandbox","Id":"S-1"},{"Catalog":"Sandbox","Id":"S-1"}]}"#,
            r#"{"Solutions":[{"Catalog":"Sandbox","Id":"S-1","Typo":1}]}"#,
        ] {
            assert!(Seed::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seed_association_limits() {
        let offer = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-1";
        let offer_set = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/OfferSet/offerset-1";
        let seed = |related: serde_json::Value| {
            Seed::from_json(
                &serde_json::json!({"Opportunities": [{"Catalog": "Sandbox", "Id": "O1",
                    "RelatedEntityIdentifiers": related}]})
                .to_string(),
            )
        };
        let many = |prefix: &str, n: usize| (1..=n).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>();
        let full = serde_json::json!({
            "AwsProducts": many("P", 20), "Solutions": many("S-", 10),
            "AwsMarketplaceSolutions": many("arn:s", 10), "AwsMarketplaceProducts": many("arn:p", 10),
            "AwsMarketplaceOffers": [offer]});
        assert!(seed(full).is_ok());
        for (related, limit) in [
            (serde_json::json!({"AwsProducts": many("P", 21)}), "at most 20 AWS products"),
            (serde_json::json!({"Solutions": many("S-", 11)}), "at most 10 solutions"),
            (serde_json::json!({"AwsMarketplaceSolutions": many("arn:s", 11)}), "at most 10 AWS Marketplace solutions"),
            (serde_json::json!({"AwsMarketplaceProducts": many("arn:p", 11)}), "at most 10 AWS Marketplace products"),
            (serde_json::json!({"AwsMarketplaceOffers": [offer, format!("{offer}x")]}), "offer or offer set"),
            (
                serde_json::json!({"AwsMarketplaceOfferSets": [offer_set, format!("{offer_set}x")]}),
                "offer or offer set",
            ),
            (
                serde_json::json!({"AwsMarketplaceOffers": [offer], "AwsMarketplaceOfferSets": [offer_set]}),
                "offer or offer set",
            ),
        ] {
            let err = seed(related.clone()).expect_err("over a limit").to_string();
            assert!(err.contains("Sandbox/O1") && err.contains(limit), "{related}: {err}");
        }
    }

    #[test]
    fn association_limit_of_every_type() {
        for t in EntityType::ALL {
            assert!(AssociationLimit::of(t).types.contains(&t), "{t}");
        }
        let mut related = RelatedEntityIdentifiers::default();
        assert!(related.check_room_for(EntityType::AwsMarketplaceOfferSets).is_ok());
        related.aws_marketplace_offers.push("arn:x".to_owned());
        assert!(related.check_room_for(EntityType::AwsMarketplaceOfferSets).is_err());
        assert!(related.check_room_for(EntityType::AwsMarketplaceOffers).is_err());
        assert!(related.check_room_for(EntityType::Solutions).is_ok());
    }

    #[test]
    fn sample_seed_file_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/seed.json");
        let seed = Seed::from_file(path).expect("seed.json is valid");
        assert_eq!(seed.denied_catalogs, vec!["AWS".to_owned()]);
        assert!(seed.opportunities.len() >= 6);
    }
}
