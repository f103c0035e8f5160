//! The request: the `DisassociateOpportunity` input document, decoded once into a type that cannot hold
//! an invalid request.
//!
//! The service model's patterns are unanchored and the Rust SDK checks nothing client-side, so every
//! rule is applied here, anchored, before anything is sent. The document is spelled as the API and
//! `aws partnercentral-selling disassociate-opportunity --cli-input-json` spell it:
//!
//! ```
//! use opportunity_disassociator::domain::request::DisassociationRequest;
//! let doc = serde_json::json!({
//!     "Catalog": "Sandbox",
//!     "OpportunityIdentifier": "O1234567",
//!     "RelatedEntityType": "Solutions",
//!     "RelatedEntityIdentifier": "S-0000001"
//! });
//! let request = DisassociationRequest::from_document(&doc).unwrap();
//! assert_eq!(request.opportunity.as_str(), "O1234567");
//! ```
//!
//! An optional `ReplaceWith` (`{"RelatedEntityType": ..., "RelatedEntityIdentifier": ...}`) names the
//! entity that takes the removed one's place: checked by the same rules, and never the entity removed.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

/// The four members of the input document, in the API's spelling.
pub const CATALOG: &str = "Catalog";
pub const OPPORTUNITY_IDENTIFIER: &str = "OpportunityIdentifier";
pub const RELATED_ENTITY_TYPE: &str = "RelatedEntityType";
pub const RELATED_ENTITY_IDENTIFIER: &str = "RelatedEntityIdentifier";
/// The optional member naming the replacement, and its two members as error messages (and a CRM
/// export's columns) name them.
pub const REPLACE_WITH: &str = "ReplaceWith";
pub const REPLACE_WITH_TYPE: &str = "ReplaceWith.RelatedEntityType";
pub const REPLACE_WITH_IDENTIFIER: &str = "ReplaceWith.RelatedEntityIdentifier";

/// A Partner Central catalog: `AWS` (production) or `Sandbox` (testing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Catalog {
    #[serde(rename = "AWS")]
    Aws,
    Sandbox,
}

impl Catalog {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "AWS" => Some(Self::Aws),
            "Sandbox" => Some(Self::Sandbox),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aws => "AWS",
            Self::Sandbox => "Sandbox",
        }
    }

    /// `Err` with the reason when the catalog is not one of `allowed` (`ALLOWED_CATALOGS`).
    pub fn allowed_in(self, allowed: &[Catalog]) -> Result<(), String> {
        if allowed.contains(&self) {
            return Ok(());
        }
        let allowed: Vec<&str> = allowed.iter().map(|c| c.as_str()).collect();
        Err(format!("catalog {self} is not in ALLOWED_CATALOGS={}", allowed.join(",")))
    }
}

impl fmt::Display for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An opportunity identifier: `O` followed by 1 to 19 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct OpportunityId(String);

impl OpportunityId {
    pub fn parse(value: &str) -> Option<Self> {
        let digits = value.strip_prefix('O')?;
        is_digits(digits, 1, 19).then(|| Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OpportunityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The six related entity types of the current service model (case-sensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum EntityType {
    Solutions,
    AwsProducts,
    AwsMarketplaceOffers,
    AwsMarketplaceOfferSets,
    AwsMarketplaceSolutions,
    AwsMarketplaceProducts,
}

impl EntityType {
    pub const ALL: [EntityType; 6] = [
        Self::Solutions,
        Self::AwsProducts,
        Self::AwsMarketplaceOffers,
        Self::AwsMarketplaceOfferSets,
        Self::AwsMarketplaceSolutions,
        Self::AwsMarketplaceProducts,
    ];

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Solutions => "Solutions",
            Self::AwsProducts => "AwsProducts",
            Self::AwsMarketplaceOffers => "AwsMarketplaceOffers",
            Self::AwsMarketplaceOfferSets => "AwsMarketplaceOfferSets",
            Self::AwsMarketplaceSolutions => "AwsMarketplaceSolutions",
            Self::AwsMarketplaceProducts => "AwsMarketplaceProducts",
        }
    }

    /// What an identifier of this type must look like, for error messages.
    fn expected_identifier(self) -> &'static str {
        match self {
            Self::Solutions => "S- followed by 1 to 19 digits",
            Self::AwsProducts => "a product code",
            Self::AwsMarketplaceOffers => {
                "an ARN arn:aws:aws-marketplace:<region>:<12-digit account>:AWSMarketplace/Offer/<id>"
            }
            Self::AwsMarketplaceOfferSets => {
                "an ARN arn:aws:aws-marketplace:<region>:<12-digit account>:AWSMarketplace/OfferSet/offerset-<id>"
            }
            Self::AwsMarketplaceSolutions | Self::AwsMarketplaceProducts => "an ARN (arn:...)",
        }
    }

    /// The identifier rule of the service model for this type, anchored. Length is checked apart.
    fn accepts(self, id: &str) -> bool {
        match self {
            Self::Solutions => id.strip_prefix("S-").is_some_and(|d| is_digits(d, 1, 19)),
            Self::AwsProducts => true,
            Self::AwsMarketplaceOffers => marketplace_arn_tail(id, "Offer/").is_some(),
            Self::AwsMarketplaceOfferSets => marketplace_arn_tail(id, "OfferSet/offerset-").is_some(),
            Self::AwsMarketplaceSolutions | Self::AwsMarketplaceProducts => {
                id.strip_prefix("arn:").is_some_and(no_line_terminator)
            }
        }
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A related entity: its type and an identifier valid for that type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RelatedEntity {
    #[serde(rename = "RelatedEntityType")]
    entity_type: EntityType,
    #[serde(rename = "RelatedEntityIdentifier")]
    identifier: String,
}

impl fmt::Display for RelatedEntity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.entity_type, self.identifier)
    }
}

impl RelatedEntity {
    /// Checks the identifier against its type's rule and the 1 to 255 character bound.
    pub fn new(entity_type: EntityType, identifier: &str) -> Result<Self, String> {
        let len = identifier.chars().count();
        if !(1..=255).contains(&len) {
            return Err(format!("must be 1 to 255 characters, got {len}"));
        }
        if !entity_type.accepts(identifier) {
            return Err(format!("a {entity_type} identifier must be {}", entity_type.expected_identifier()));
        }
        Ok(Self { entity_type, identifier: identifier.to_owned() })
    }

    pub fn entity_type(&self) -> EntityType {
        self.entity_type
    }

    pub fn identifier(&self) -> &str {
        &self.identifier
    }
}

/// A valid `DisassociateOpportunity` request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct DisassociationRequest {
    #[serde(rename = "Catalog")]
    pub catalog: Catalog,
    #[serde(rename = "OpportunityIdentifier")]
    pub opportunity: OpportunityId,
    #[serde(flatten)]
    pub entity: RelatedEntity,
    /// The entity that takes `entity`'s place: associated, and `entity` disassociated, in the order the
    /// opportunity's association limits allow ([`crate::domain::opportunity::Order::of`]).
    #[serde(rename = "ReplaceWith", skip_serializing_if = "Option::is_none")]
    pub replace_with: Option<RelatedEntity>,
}

/// One member that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// Why a document is not a valid request: every member at fault, by name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid request: {}", describe(.errors))]
pub struct InvalidRequest {
    pub errors: Vec<FieldError>,
}

fn describe(errors: &[FieldError]) -> String {
    let parts: Vec<String> = errors.iter().map(|e| format!("{} {}", e.field, e.message)).collect();
    parts.join("; ")
}

impl InvalidRequest {
    fn single(field: &'static str, message: impl Into<String>) -> Self {
        Self { errors: vec![FieldError { field, message: message.into() }] }
    }
}

impl DisassociationRequest {
    /// Decodes the input document. Extra members are ignored; each missing or malformed member is
    /// named in the error.
    pub fn from_document(doc: &Value) -> Result<Self, InvalidRequest> {
        let Some(map) = doc.as_object() else {
            return Err(InvalidRequest::single(
                "request",
                format!(
                    "must be a JSON object with {CATALOG}, {OPPORTUNITY_IDENTIFIER}, {RELATED_ENTITY_TYPE} and {RELATED_ENTITY_IDENTIFIER}, got {}",
                    kind(doc)
                ),
            ));
        };
        let mut errors = Vec::new();
        let catalog = string_member(map, CATALOG, &mut errors);
        let opportunity = string_member(map, OPPORTUNITY_IDENTIFIER, &mut errors);
        let entity_type = string_member(map, RELATED_ENTITY_TYPE, &mut errors);
        let identifier = string_member(map, RELATED_ENTITY_IDENTIFIER, &mut errors);

        let catalog = catalog.and_then(|c| {
            let parsed = Catalog::parse(c);
            if parsed.is_none() {
                errors
                    .push(FieldError { field: CATALOG, message: format!("must be AWS or Sandbox, got {}", quoted(c)) });
            }
            parsed
        });
        let opportunity = opportunity.and_then(|o| {
            let parsed = OpportunityId::parse(o);
            if parsed.is_none() {
                errors.push(FieldError {
                    field: OPPORTUNITY_IDENTIFIER,
                    message: format!("must be O followed by 1 to 19 digits, got {}", quoted(o)),
                });
            }
            parsed
        });
        let entity =
            related_entity(entity_type, identifier, [RELATED_ENTITY_TYPE, RELATED_ENTITY_IDENTIFIER], &mut errors);
        let replace_with = match map.get(REPLACE_WITH) {
            None | Some(Value::Null) => None,
            Some(Value::Object(replacement)) => {
                let entity_type = string_member(replacement, REPLACE_WITH_TYPE, &mut errors);
                let identifier = string_member(replacement, REPLACE_WITH_IDENTIFIER, &mut errors);
                let replacement =
                    related_entity(entity_type, identifier, [REPLACE_WITH_TYPE, REPLACE_WITH_IDENTIFIER], &mut errors);
                if replacement.is_some() && replacement == entity {
                    errors.push(FieldError {
                        field: REPLACE_WITH,
                        message: "names the entity removed: a replacement must be another entity".into(),
                    });
                }
                replacement
            }
            Some(other) => {
                errors.push(FieldError {
                    field: REPLACE_WITH,
                    message: format!(
                        "must be an object with {RELATED_ENTITY_TYPE} and {RELATED_ENTITY_IDENTIFIER}, got {}",
                        kind(other)
                    ),
                });
                None
            }
        };
        match (catalog, opportunity, entity) {
            (Some(catalog), Some(opportunity), Some(entity)) if errors.is_empty() => {
                Ok(Self { catalog, opportunity, entity, replace_with })
            }
            _ => Err(InvalidRequest { errors }),
        }
    }
}

/// A member that must be a string: `None`, with its fault in `errors`, when it is missing or is not.
/// `field` names it in the error (the path to it, for a member of `ReplaceWith`); its name in `map` is
/// the last part of that path.
fn string_member<'a>(
    map: &'a Map<String, Value>,
    field: &'static str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    let name = field.rsplit('.').next().unwrap_or(field);
    match map.get(name) {
        None | Some(Value::Null) => {
            errors.push(FieldError { field, message: "is required".into() });
            None
        }
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            errors.push(FieldError { field, message: format!("must be a string, got {}", kind(other)) });
            None
        }
    }
}

/// A related entity from its type and identifier, each fault in `errors` under the names in `fields`
/// (type, identifier).
fn related_entity(
    entity_type: Option<&str>,
    identifier: Option<&str>,
    [type_field, identifier_field]: [&'static str; 2],
    errors: &mut Vec<FieldError>,
) -> Option<RelatedEntity> {
    let entity_type = entity_type.and_then(|t| {
        let parsed = EntityType::parse(t);
        if parsed.is_none() {
            let names: Vec<&str> = EntityType::ALL.iter().map(|t| t.as_str()).collect();
            errors.push(FieldError {
                field: type_field,
                message: format!("must be one of {} (case-sensitive), got {}", names.join(", "), quoted(t)),
            });
        }
        parsed
    });
    match (entity_type, identifier) {
        (Some(t), Some(id)) => match RelatedEntity::new(t, id) {
            Ok(entity) => Some(entity),
            Err(message) => {
                errors.push(FieldError { field: identifier_field, message });
                None
            }
        },
        // Without a known type only the length rule can be checked.
        (None, Some(id)) if !(1..=255).contains(&id.chars().count()) => {
            errors.push(FieldError {
                field: identifier_field,
                message: format!("must be 1 to 255 characters, got {}", id.chars().count()),
            });
            None
        }
        _ => None,
    }
}

/// `true` when `s` is `min..=max` ASCII digits.
fn is_digits(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// ECMAScript `.` matches anything but a line terminator; the model's `.*` tails mean that.
fn no_line_terminator(s: &str) -> bool {
    !s.chars().any(|c| matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}'))
}

/// Matches `arn:aws:aws-marketplace:[a-z]{1,2}-[a-z]*-\d+:\d{12}:AWSMarketplace/<resource>.*`, anchored,
/// and returns what follows `<resource>`.
fn marketplace_arn_tail<'a>(arn: &'a str, resource: &str) -> Option<&'a str> {
    let rest = arn.strip_prefix("arn:aws:aws-marketplace:")?;
    let (region, rest) = rest.split_once(':')?;
    let mut parts = region.split('-');
    let (area, word, number) = (parts.next()?, parts.next()?, parts.next()?);
    let region_ok = parts.next().is_none()
        && (1..=2).contains(&area.len())
        && area.bytes().all(|b| b.is_ascii_lowercase())
        && word.bytes().all(|b| b.is_ascii_lowercase())
        && is_digits(number, 1, usize::MAX);
    if !region_ok {
        return None;
    }
    let (account, rest) = rest.split_once(':')?;
    if !is_digits(account, 12, 12) {
        return None;
    }
    let tail = rest.strip_prefix("AWSMarketplace/")?.strip_prefix(resource)?;
    no_line_terminator(tail).then_some(tail)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Quotes a value for an error message, cut short so a huge input cannot flood a log line.
fn quoted(value: &str) -> String {
    const MAX: usize = 80;
    if value.chars().count() <= MAX {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(MAX).collect();
        format!("{head:?}... ({} characters)", value.chars().count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(catalog: &str, opportunity: &str, entity_type: &str, identifier: &str) -> Value {
        json!({
            "Catalog": catalog,
            "OpportunityIdentifier": opportunity,
            "RelatedEntityType": entity_type,
            "RelatedEntityIdentifier": identifier,
        })
    }

    fn fields(result: Result<DisassociationRequest, InvalidRequest>) -> Vec<&'static str> {
        result.expect_err("expected an invalid request").errors.iter().map(|e| e.field).collect()
    }

    fn entity_ok(entity_type: &str, identifier: &str) -> bool {
        DisassociationRequest::from_document(&doc("Sandbox", "O1", entity_type, identifier)).is_ok()
    }

    const OFFER: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-abc123";
    const OFFER_SET: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/OfferSet/offerset-abc";

    #[test]
    fn decodes_a_valid_request_and_ignores_extra_members() {
        let mut d = doc("Sandbox", "O1234567", "Solutions", "S-0000001");
        d["ClientToken"] = json!("ignored");
        let request = DisassociationRequest::from_document(&d).unwrap();
        assert_eq!(request.catalog, Catalog::Sandbox);
        assert_eq!(request.opportunity.as_str(), "O1234567");
        assert_eq!(request.entity.entity_type(), EntityType::Solutions);
        assert_eq!(request.entity.identifier(), "S-0000001");
        assert_eq!(serde_json::to_value(&request).unwrap(), doc("Sandbox", "O1234567", "Solutions", "S-0000001"));
    }

    #[test]
    fn accepts_both_catalogs_and_rejects_others() {
        assert!(DisassociationRequest::from_document(&doc("AWS", "O1", "Solutions", "S-1")).is_ok());
        for bad in ["aws", "sandbox", "Prod", "", "AWS "] {
            assert_eq!(fields(DisassociationRequest::from_document(&doc(bad, "O1", "Solutions", "S-1"))), ["Catalog"]);
        }
    }

    #[test]
    fn opportunity_identifier_is_o_and_1_to_19_digits_anchored() {
        for good in ["O1", "O1234567", "O1234567890123456789"] {
            assert!(OpportunityId::parse(good).is_some(), "{good}");
        }
        for bad in ["O", "o123", "O12345678901234567890", "XO123", "O123X", " O123", "O12 3", "O١٢٣"] {
            assert!(OpportunityId::parse(bad).is_none(), "{bad}");
            let r = DisassociationRequest::from_document(&doc("Sandbox", bad, "Solutions", "S-1"));
            assert_eq!(fields(r), ["OpportunityIdentifier"], "{bad}");
        }
    }

    #[test]
    fn accepts_all_six_entity_types_case_sensitively() {
        let samples = [
            ("Solutions", "S-0000001"),
            ("AwsProducts", "AmazonEC2"),
            ("AwsMarketplaceOffers", OFFER),
            ("AwsMarketplaceOfferSets", OFFER_SET),
            ("AwsMarketplaceSolutions", "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/s-1"),
            ("AwsMarketplaceProducts", "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Product/p-1"),
        ];
        for (t, id) in samples {
            assert!(entity_ok(t, id), "{t} {id}");
        }
        assert_eq!(EntityType::ALL.len(), samples.len());
        for bad in ["solutions", "SOLUTIONS", "Solution", "AwsProduct", "awsProducts", ""] {
            let r = DisassociationRequest::from_document(&doc("Sandbox", "O1", bad, "S-1"));
            assert_eq!(fields(r), ["RelatedEntityType"], "{bad}");
        }
    }

    #[test]
    fn solution_identifiers_are_s_dash_and_1_to_19_digits() {
        assert!(entity_ok("Solutions", "S-1"));
        assert!(entity_ok("Solutions", "S-1234567890123456789"));
        for bad in ["S-", "S1", "s-1", "S-12345678901234567890", "S-1a", "xS-1", "S-1\n"] {
            assert!(!entity_ok("Solutions", bad), "{bad:?}");
        }
    }

    #[test]
    fn offer_identifiers_follow_the_marketplace_arn_rule() {
        assert!(entity_ok(
            "AwsMarketplaceOffers",
            "arn:aws:aws-marketplace:eu-west-2:123456789012:AWSMarketplace/Offer/"
        ));
        assert!(entity_ok("AwsMarketplaceOffers", "arn:aws:aws-marketplace:u--1:123456789012:AWSMarketplace/Offer/x"));
        for bad in [
            "offer-abc123",
            "arn:aws:aws-marketplace:us-east-1:12345678901:AWSMarketplace/Offer/o",
            "arn:aws:aws-marketplace:us-east-1:1234567890123:AWSMarketplace/Offer/o",
            "arn:aws:aws-marketplace:use-east-1:123456789012:AWSMarketplace/Offer/o",
            "arn:aws:aws-marketplace:US-east-1:123456789012:AWSMarketplace/Offer/o",
            "arn:aws:aws-marketplace:us-east:123456789012:AWSMarketplace/Offer/o",
            "arn:aws:aws-marketplace:us-east-1-2:123456789012:AWSMarketplace/Offer/o",
            "arn:aws-cn:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/o",
            "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/OfferSet/offerset-o",
            "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/o\nx",
            " arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/o",
        ] {
            assert!(!entity_ok("AwsMarketplaceOffers", bad), "{bad:?}");
        }
    }

    #[test]
    fn offer_set_identifiers_need_the_offerset_prefix() {
        assert!(entity_ok("AwsMarketplaceOfferSets", OFFER_SET));
        assert!(!entity_ok("AwsMarketplaceOfferSets", OFFER));
        assert!(!entity_ok(
            "AwsMarketplaceOfferSets",
            "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/OfferSet/set-1"
        ));
    }

    #[test]
    fn marketplace_solutions_and_products_need_an_arn() {
        for t in ["AwsMarketplaceSolutions", "AwsMarketplaceProducts"] {
            assert!(entity_ok(t, "arn:"), "{t}");
            assert!(entity_ok(t, "arn:aws:anything"), "{t}");
            assert!(!entity_ok(t, "prod-123"), "{t}");
            assert!(!entity_ok(t, "ARN:aws"), "{t}");
            assert!(!entity_ok(t, "arn:a\rb"), "{t}");
        }
    }

    #[test]
    fn identifiers_are_1_to_255_characters_for_every_type() {
        assert!(entity_ok("AwsProducts", &"x".repeat(255)));
        assert!(entity_ok("AwsProducts", &"é".repeat(255)), "characters, not bytes");
        assert!(!entity_ok("AwsProducts", &"x".repeat(256)));
        assert!(!entity_ok("AwsProducts", ""));
        assert!(!entity_ok("AwsMarketplaceProducts", &format!("arn:{}", "x".repeat(252))));
        let r = DisassociationRequest::from_document(&doc("Sandbox", "O1", "NoSuchType", &"x".repeat(300)));
        assert_eq!(fields(r), ["RelatedEntityType", "RelatedEntityIdentifier"]);
    }

    #[test]
    fn names_every_missing_or_malformed_member() {
        let r = DisassociationRequest::from_document(&json!({"Catalog": "Sandbox"}));
        assert_eq!(fields(r), ["OpportunityIdentifier", "RelatedEntityType", "RelatedEntityIdentifier"]);
        let r = DisassociationRequest::from_document(&json!({
            "Catalog": 1, "OpportunityIdentifier": null, "RelatedEntityType": ["Solutions"], "RelatedEntityIdentifier": {}
        }));
        let err = r.unwrap_err();
        assert_eq!(err.errors.len(), 4);
        assert_eq!(err.errors[0].message, "must be a string, got a number");
        assert_eq!(err.errors[1].message, "is required");
        assert!(err.to_string().starts_with("invalid request: Catalog must be a string"));
    }

    #[test]
    fn rejects_documents_that_are_not_objects() {
        for d in [json!(null), json!([]), json!("O1"), json!(3)] {
            assert_eq!(fields(DisassociationRequest::from_document(&d)), ["request"]);
        }
    }

    const MARKETPLACE_SOLUTION: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-abc";

    fn replacing(entity_type: &str, identifier: &str, replace_with: Value) -> Value {
        let mut d = doc("Sandbox", "O1234567", entity_type, identifier);
        d["ReplaceWith"] = replace_with;
        d
    }

    #[test]
    fn decodes_a_replacement_and_writes_it_back_only_when_present() {
        let replacement =
            json!({"RelatedEntityType": "AwsMarketplaceSolutions", "RelatedEntityIdentifier": MARKETPLACE_SOLUTION});
        let d = replacing("Solutions", "S-0000001", replacement.clone());
        let request = DisassociationRequest::from_document(&d).unwrap();
        let new = request.replace_with.as_ref().expect("a replacement");
        assert_eq!((new.entity_type(), new.identifier()), (EntityType::AwsMarketplaceSolutions, MARKETPLACE_SOLUTION));
        assert_eq!(serde_json::to_value(&request).unwrap(), d, "ReplaceWith carried through, as sent");
        let plain = DisassociationRequest::from_document(&doc("Sandbox", "O1", "Solutions", "S-1")).unwrap();
        assert_eq!(plain.replace_with, None);
        assert!(serde_json::to_value(&plain).unwrap().get("ReplaceWith").is_none());
        let null = DisassociationRequest::from_document(&replacing("Solutions", "S-1", Value::Null)).unwrap();
        assert_eq!(null.replace_with, None, "null is no replacement");
    }

    #[test]
    fn a_replacement_is_checked_by_the_same_rules_and_every_fault_named() {
        let r = DisassociationRequest::from_document(&replacing(
            "Solutions",
            "S-1",
            json!({"RelatedEntityType": "AwsMarketplaceOffers", "RelatedEntityIdentifier": OFFER_SET}),
        ));
        assert_eq!(fields(r), ["ReplaceWith.RelatedEntityIdentifier"]);
        let r = DisassociationRequest::from_document(&replacing(
            "Solution",
            "S-1",
            json!({"RelatedEntityType": "solutions", "RelatedEntityIdentifier": 7}),
        ));
        assert_eq!(
            fields(r),
            ["RelatedEntityType", "ReplaceWith.RelatedEntityIdentifier", "ReplaceWith.RelatedEntityType"],
            "the document's own faults and the replacement's, at once"
        );
        let r = DisassociationRequest::from_document(&replacing("Solutions", "S-1", json!({})));
        assert_eq!(fields(r), ["ReplaceWith.RelatedEntityType", "ReplaceWith.RelatedEntityIdentifier"]);
        let r = DisassociationRequest::from_document(&replacing(
            "Solutions",
            "S-1",
            json!({"RelatedEntityType": "NoSuchType", "RelatedEntityIdentifier": "x".repeat(256)}),
        ));
        assert_eq!(fields(r), ["ReplaceWith.RelatedEntityType", "ReplaceWith.RelatedEntityIdentifier"]);
    }

    #[test]
    fn a_replacement_that_is_no_object_or_the_entity_removed_is_invalid() {
        for bad in [json!("S-2"), json!(["Solutions", "S-2"]), json!(true)] {
            let r = DisassociationRequest::from_document(&replacing("Solutions", "S-1", bad.clone()));
            let err = r.unwrap_err();
            assert_eq!(err.errors.iter().map(|e| e.field).collect::<Vec<_>>(), ["ReplaceWith"], "{bad}");
            assert!(err.errors[0].message.contains("must be an object"), "{}", err.errors[0].message);
        }
        let same = json!({"RelatedEntityType": "Solutions", "RelatedEntityIdentifier": "S-1"});
        let err = DisassociationRequest::from_document(&replacing("Solutions", "S-1", same)).unwrap_err();
        assert_eq!(err.errors[0].field, "ReplaceWith");
        assert!(err.errors[0].message.contains("the entity removed"), "{}", err.errors[0].message);
        // The same identifier as another type is another entity.
        let other_type = json!({"RelatedEntityType": "AwsProducts", "RelatedEntityIdentifier": "S-1"});
        assert!(DisassociationRequest::from_document(&replacing("Solutions", "S-1", other_type)).is_ok());
    }

    #[test]
    fn error_messages_quote_huge_values_briefly() {
        let r = DisassociationRequest::from_document(&doc(&"A".repeat(10_000), "O1", "Solutions", "S-1"));
        let message = &r.unwrap_err().errors[0].message;
        assert!(message.len() < 200, "{message}");
        assert!(message.contains("10000 characters"));
    }
}
