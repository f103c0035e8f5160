//! Request validation, written from the service model rules (patterns anchored here).
//!
//! | member | rule |
//! |---|---|
//! | `Catalog` | `AWS` or `Sandbox` |
//! | `OpportunityIdentifier` / `Identifier` | `O[0-9]{1,19}` |
//! | `RelatedEntityType` | one of the six [`EntityType`] names, case-sensitive |
//! | `RelatedEntityIdentifier` | 1 to 255 characters, and the per-type pattern |
//!
//! Per-type patterns: Solutions `S-[0-9]{1,19}`; AwsMarketplaceOffers
//! `arn:aws:aws-marketplace:[a-z]{1,2}-[a-z]*-\d+:\d{12}:AWSMarketplace/Offer/.*`;
//! AwsMarketplaceOfferSets
//! `arn:aws:aws-marketplace:[a-z]{1,2}-[a-z]*-\d+:\d{12}:AWSMarketplace/OfferSet/offerset-.*`;
//! AwsMarketplaceSolutions and AwsMarketplaceProducts `arn:.*`; AwsProducts any string.
//! `.*` follows Java regex semantics (the model's flavour): any character but a line terminator.

use serde_json::{Map, Value};

use crate::model::EntityType;

/// `ValidationExceptionErrorCode` values used by the emulator.
pub(crate) const REQUIRED_FIELD_MISSING: &str = "REQUIRED_FIELD_MISSING";
pub(crate) const INVALID_ENUM_VALUE: &str = "INVALID_ENUM_VALUE";
pub(crate) const INVALID_STRING_FORMAT: &str = "INVALID_STRING_FORMAT";
pub(crate) const INVALID_VALUE: &str = "INVALID_VALUE";
pub(crate) const ACTION_NOT_PERMITTED: &str = "ACTION_NOT_PERMITTED";
pub(crate) const TOO_MANY_VALUES: &str = "TOO_MANY_VALUES";
pub(crate) const VALUE_OUT_OF_RANGE: &str = "VALUE_OUT_OF_RANGE";

/// One entry of a `ValidationException`'s `ErrorList`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub field: &'static str,
    pub message: String,
    pub code: &'static str,
}

/// Validated input of Associate/DisassociateOpportunity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AssociationInput {
    pub catalog: String,
    pub opportunity_identifier: String,
    pub entity_type: EntityType,
    pub entity_identifier: String,
}

/// Validated input of GetOpportunity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GetInput {
    pub catalog: String,
    pub identifier: String,
}

pub(crate) fn is_catalog(value: &str) -> bool {
    value == "AWS" || value == "Sandbox"
}

fn is_digits(value: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit())
}

/// `O[0-9]{1,19}`, anchored.
pub(crate) fn is_opportunity_identifier(value: &str) -> bool {
    value.strip_prefix('O').is_some_and(|d| is_digits(d, 1, 19))
}

/// Java's `.` does not match these line terminators.
fn is_line_terminator(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// `.*`, anchored.
fn any_line(value: &str) -> bool {
    !value.chars().any(is_line_terminator)
}

/// `[a-z]{1,2}-[a-z]*-\d+`, anchored.
fn is_region(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let [a, b, c] = parts.as_slice() else {
        return false;
    };
    (1..=2).contains(&a.len())
        && a.bytes().all(|x| x.is_ascii_lowercase())
        && b.bytes().all(|x| x.is_ascii_lowercase())
        && !c.is_empty()
        && c.bytes().all(|x| x.is_ascii_digit())
}

/// `arn:aws:aws-marketplace:<region>:<12 digits>:AWSMarketplace/<resource>` with `resource`
/// checked by `rest`.
fn is_marketplace_arn(value: &str, rest: impl Fn(&str) -> bool) -> bool {
    let Some(tail) = value.strip_prefix("arn:aws:aws-marketplace:") else {
        return false;
    };
    let Some((region, tail)) = tail.split_once(':') else {
        return false;
    };
    let Some((account, tail)) = tail.split_once(':') else {
        return false;
    };
    is_region(region) && is_digits(account, 12, 12) && tail.strip_prefix("AWSMarketplace/").is_some_and(rest)
}

/// `AwsMarketplaceSolutionArn`: 4 to 2,048 characters, `arn:.*`.
pub(crate) fn is_marketplace_solution_arn(value: &str) -> bool {
    (4..=2048).contains(&value.chars().count()) && value.starts_with("arn:") && any_line(value)
}

/// The length rule and the per-type pattern of `RelatedEntityIdentifier`. `Err` carries a message.
pub(crate) fn check_entity_identifier(entity_type: EntityType, value: &str) -> Result<(), String> {
    let len = value.chars().count();
    if !(1..=255).contains(&len) {
        return Err(format!("must be 1 to 255 characters long, got {len}"));
    }
    let (ok, pattern) = match entity_type {
        EntityType::Solutions => (value.strip_prefix("S-").is_some_and(|d| is_digits(d, 1, 19)), "S-[0-9]{1,19}"),
        EntityType::AwsProducts => (true, ""),
        EntityType::AwsMarketplaceOffers => (
            is_marketplace_arn(value, |r| r.strip_prefix("Offer/").is_some_and(any_line)),
            "arn:aws:aws-marketplace:[a-z]{1,2}-[a-z]*-\\d+:\\d{12}:AWSMarketplace/Offer/.*",
        ),
        EntityType::AwsMarketplaceOfferSets => (
            is_marketplace_arn(value, |r| r.strip_prefix("OfferSet/offerset-").is_some_and(any_line)),
            "arn:aws:aws-marketplace:[a-z]{1,2}-[a-z]*-\\d+:\\d{12}:AWSMarketplace/OfferSet/offerset-.*",
        ),
        EntityType::AwsMarketplaceSolutions | EntityType::AwsMarketplaceProducts => {
            (value.strip_prefix("arn:").is_some_and(any_line), "arn:.*")
        }
    };
    if ok { Ok(()) } else { Err(format!("does not match the {entity_type} pattern {pattern}")) }
}

/// Reads a string member: `Ok(None)` if absent or null, `Err` if not a string.
pub(crate) fn string_member<'a>(
    body: &'a Map<String, Value>,
    field: &'static str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match body.get(field) {
        None | Some(Value::Null) => {
            errors.push(FieldError { field, message: format!("{field} is required."), code: REQUIRED_FIELD_MISSING });
            None
        }
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            errors.push(FieldError { field, message: format!("{field} must be a string."), code: INVALID_VALUE });
            None
        }
    }
}

pub(crate) fn check_catalog(value: Option<&str>, errors: &mut Vec<FieldError>) -> Option<String> {
    let value = value?;
    if is_catalog(value) {
        Some(value.to_owned())
    } else {
        errors.push(FieldError {
            field: "Catalog",
            message: format!("Catalog {value:?} is invalid: must be one of AWS, Sandbox."),
            code: INVALID_ENUM_VALUE,
        });
        None
    }
}

fn check_opportunity_identifier(
    field: &'static str,
    value: Option<&str>,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let value = value?;
    if is_opportunity_identifier(value) {
        Some(value.to_owned())
    } else {
        errors.push(FieldError {
            field,
            message: format!("{field} {value:?} does not match the pattern O[0-9]{{1,19}}."),
            code: INVALID_STRING_FORMAT,
        });
        None
    }
}

/// Validates the input of Associate/DisassociateOpportunity; every violated field is reported.
pub(crate) fn validate_association(body: &Map<String, Value>) -> Result<AssociationInput, Vec<FieldError>> {
    let mut errors = Vec::new();
    let catalog = string_member(body, "Catalog", &mut errors);
    let opportunity = string_member(body, "OpportunityIdentifier", &mut errors);
    let entity_type = string_member(body, "RelatedEntityType", &mut errors);
    let entity_identifier = string_member(body, "RelatedEntityIdentifier", &mut errors);

    let catalog = check_catalog(catalog, &mut errors);
    let opportunity = check_opportunity_identifier("OpportunityIdentifier", opportunity, &mut errors);
    let entity_type = match entity_type {
        None => None,
        Some(value) => match EntityType::parse(value) {
            Some(t) => Some(t),
            None => {
                let allowed: Vec<&str> = EntityType::ALL.iter().map(|t| t.as_str()).collect();
                errors.push(FieldError {
                    field: "RelatedEntityType",
                    message: format!("RelatedEntityType {value:?} is invalid: must be one of {}.", allowed.join(", ")),
                    code: INVALID_ENUM_VALUE,
                });
                None
            }
        },
    };
    let entity_identifier = match entity_identifier {
        None => None,
        Some(value) => {
            // With an unknown type only the length rule can be checked.
            let result = match entity_type {
                Some(t) => check_entity_identifier(t, value),
                None => check_entity_identifier(EntityType::AwsProducts, value),
            };
            match result {
                Ok(()) => Some(value.to_owned()),
                Err(msg) => {
                    errors.push(FieldError {
                        field: "RelatedEntityIdentifier",
                        message: format!("RelatedEntityIdentifier {msg}."),
                        code: INVALID_STRING_FORMAT,
                    });
                    None
                }
            }
        }
    };
    match (catalog, opportunity, entity_type, entity_identifier) {
        (Some(catalog), Some(opportunity_identifier), Some(entity_type), Some(entity_identifier))
            if errors.is_empty() =>
        {
            Ok(AssociationInput { catalog, opportunity_identifier, entity_type, entity_identifier })
        }
        _ => Err(errors),
    }
}

/// Validates the input of GetOpportunity; every violated field is reported.
pub(crate) fn validate_get(body: &Map<String, Value>) -> Result<GetInput, Vec<FieldError>> {
    let mut errors = Vec::new();
    let catalog = string_member(body, "Catalog", &mut errors);
    let identifier = string_member(body, "Identifier", &mut errors);
    let catalog = check_catalog(catalog, &mut errors);
    let identifier = check_opportunity_identifier("Identifier", identifier, &mut errors);
    match (catalog, identifier) {
        (Some(catalog), Some(identifier)) if errors.is_empty() => Ok(GetInput { catalog, identifier }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn fields(errors: &[FieldError]) -> Vec<(&'static str, &'static str)> {
        errors.iter().map(|e| (e.field, e.code)).collect()
    }

    fn valid() -> Value {
        json!({"Catalog": "Sandbox", "OpportunityIdentifier": "O1234567",
               "RelatedEntityType": "Solutions", "RelatedEntityIdentifier": "S-0000001"})
    }

    fn with(member: &str, value: Value) -> Map<String, Value> {
        let mut m = obj(valid());
        m.insert(member.to_owned(), value);
        m
    }

    #[test]
    fn valid_input_passes() {
        let input = validate_association(&obj(valid())).expect("valid");
        assert_eq!(input.catalog, "Sandbox");
        assert_eq!(input.entity_type, EntityType::Solutions);
        let mut aws = obj(valid());
        aws.insert("Catalog".into(), json!("AWS"));
        assert!(validate_association(&aws).is_ok());
    }

    #[test]
    fn every_missing_member_is_listed() {
        let errors = validate_association(&Map::new()).expect_err("invalid");
        assert_eq!(
            fields(&errors),
            vec![
                ("Catalog", REQUIRED_FIELD_MISSING),
                ("OpportunityIdentifier", REQUIRED_FIELD_MISSING),
                ("RelatedEntityType", REQUIRED_FIELD_MISSING),
                ("RelatedEntityIdentifier", REQUIRED_FIELD_MISSING),
            ]
        );
        let mut m = obj(valid());
        m.insert("Catalog".into(), Value::Null);
        m.remove("RelatedEntityIdentifier");
        let errors = validate_association(&m).expect_err("invalid");
        assert_eq!(
            fields(&errors),
            vec![("Catalog", REQUIRED_FIELD_MISSING), ("RelatedEntityIdentifier", REQUIRED_FIELD_MISSING)]
        );
    }

    #[test]
    fn non_string_members_are_invalid_values() {
        let errors = validate_association(&with("OpportunityIdentifier", json!(1234))).expect_err("x");
        assert_eq!(fields(&errors), vec![("OpportunityIdentifier", INVALID_VALUE)]);
    }

    #[test]
    fn catalog_rule() {
        for bad in ["aws", "sandbox", "", "AWS ", "Production"] {
            let errors = validate_association(&with("Catalog", json!(bad))).expect_err(bad);
            assert_eq!(fields(&errors), vec![("Catalog", INVALID_ENUM_VALUE)], "{bad}");
        }
    }

    #[test]
    fn opportunity_identifier_rule() {
        for good in ["O1", "O1234567890123456789"] {
            assert!(is_opportunity_identifier(good), "{good}");
        }
        for bad in ["", "O", "o123", "O12345678901234567890", "O12a", " O1", "O1\n", "O-1", "O١"] {
            assert!(!is_opportunity_identifier(bad), "{bad}");
            let errors = validate_association(&with("OpportunityIdentifier", json!(bad))).expect_err(bad);
            assert_eq!(fields(&errors), vec![("OpportunityIdentifier", INVALID_STRING_FORMAT)]);
        }
    }

    #[test]
    fn entity_type_rule() {
        for bad in ["solutions", "Solution", "", "AwsMarketplaceOffer", "SOLUTIONS"] {
            let errors = validate_association(&with("RelatedEntityType", json!(bad))).expect_err(bad);
            assert_eq!(fields(&errors), vec![("RelatedEntityType", INVALID_ENUM_VALUE)], "{bad}");
        }
    }

    #[test]
    fn entity_identifier_patterns() {
        use EntityType::*;
        let offer = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-abc";
        let offer_set = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/OfferSet/offerset-abc";
        let good: &[(EntityType, &str)] = &[
            (Solutions, "S-1"),
            (Solutions, "S-1234567890123456789"),
            (AwsProducts, "AmazonEC2"),
            (AwsProducts, "any thing at all"),
            (AwsMarketplaceOffers, offer),
            (AwsMarketplaceOffers, "arn:aws:aws-marketplace:u--1:123456789012:AWSMarketplace/Offer/"),
            (AwsMarketplaceOfferSets, offer_set),
            (AwsMarketplaceSolutions, "arn:aws:aws-marketplace:us-east-1:1:x"),
            (AwsMarketplaceProducts, "arn:"),
        ];
        for (t, v) in good {
            assert_eq!(check_entity_identifier(*t, v), Ok(()), "{t} {v}");
        }
        let long = "a".repeat(256);
        let bad: &[(EntityType, &str)] = &[
            (Solutions, "S-"),
            (Solutions, "s-1"),
            (Solutions, "S-12345678901234567890"),
            (Solutions, "S-1x"),
            (Solutions, "S1"),
            (AwsProducts, ""),
            (AwsProducts, &long),
            (AwsMarketplaceOffers, offer_set),
            (AwsMarketplaceOffers, "arn:aws:aws-marketplace:us-east-1:12345678901:AWSMarketplace/Offer/x"),
            (AwsMarketplaceOffers, "arn:aws:aws-marketplace:USA-east-1:123456789012:AWSMarketplace/Offer/x"),
            (AwsMarketplaceOffers, "arn:aws:aws-marketplace:us-east:123456789012:AWSMarketplace/Offer/x"),
            (AwsMarketplaceOffers, "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/x\ny"),
            (AwsMarketplaceOffers, "xarn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/x"),
            (AwsMarketplaceOfferSets, offer),
            (AwsMarketplaceOfferSets, "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/OfferSet/x"),
            (AwsMarketplaceSolutions, "S-1"),
            (AwsMarketplaceProducts, "ARN:x"),
            (AwsMarketplaceProducts, "arn:\u{2028}"),
        ];
        for (t, v) in bad {
            assert!(check_entity_identifier(*t, v).is_err(), "{t} {v}");
        }
        // 255 characters (not bytes) is the limit.
        let max = format!("arn:{}", "é".repeat(251));
        assert_eq!(check_entity_identifier(AwsMarketplaceProducts, &max), Ok(()));
    }

    #[test]
    fn identifier_checked_against_its_type_and_length_when_type_unknown() {
        let mut m = with("RelatedEntityIdentifier", json!("AmazonEC2"));
        let errors = validate_association(&m).expect_err("S- pattern");
        assert_eq!(fields(&errors), vec![("RelatedEntityIdentifier", INVALID_STRING_FORMAT)]);
        m.insert("RelatedEntityType".into(), json!("Bogus"));
        let errors = validate_association(&m).expect_err("bad type");
        assert_eq!(fields(&errors), vec![("RelatedEntityType", INVALID_ENUM_VALUE)]);
        m.insert("RelatedEntityIdentifier".into(), json!(""));
        let errors = validate_association(&m).expect_err("bad type and empty id");
        assert_eq!(
            fields(&errors),
            vec![("RelatedEntityType", INVALID_ENUM_VALUE), ("RelatedEntityIdentifier", INVALID_STRING_FORMAT)]
        );
    }

    #[test]
    fn all_four_invalid_are_all_listed() {
        let m = obj(json!({"Catalog": "prod", "OpportunityIdentifier": "X",
                           "RelatedEntityType": "solutions", "RelatedEntityIdentifier": ""}));
        let errors = validate_association(&m).expect_err("invalid");
        assert_eq!(
            fields(&errors),
            vec![
                ("Catalog", INVALID_ENUM_VALUE),
                ("OpportunityIdentifier", INVALID_STRING_FORMAT),
                ("RelatedEntityType", INVALID_ENUM_VALUE),
                ("RelatedEntityIdentifier", INVALID_STRING_FORMAT),
            ]
        );
    }

    #[test]
    fn get_rules() {
        let ok = obj(json!({"Catalog": "AWS", "Identifier": "O1"}));
        assert!(validate_get(&ok).is_ok());
        let errors = validate_get(&Map::new()).expect_err("missing");
        assert_eq!(fields(&errors), vec![("Catalog", REQUIRED_FIELD_MISSING), ("Identifier", REQUIRED_FIELD_MISSING)]);
        let errors = validate_get(&obj(json!({"Catalog": "x", "Identifier": "P1"}))).expect_err("bad");
        assert_eq!(fields(&errors), vec![("Catalog", INVALID_ENUM_VALUE), ("Identifier", INVALID_STRING_FORMAT)]);
    }
}
