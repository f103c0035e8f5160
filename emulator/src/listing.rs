//! `ListSolutions` and `ListOpportunities`: their input as the service model spells it, the
//! filters, the sort and the paging.
//!
//! A page ends at an item; its `NextToken` names that item's place in the sort (its sort key and
//! identifier) and the request it belongs to, so the next page starts right after it whatever was
//! written meanwhile: sorted by `Identifier`, a resumed scan neither skips nor repeats an item.
//! Sorted by a key a write changes (`LastModifiedDate`), a modified item moves, as it would in
//! the service.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::model::{ReviewStatus, SolutionStatus, Stage, parse_timestamp};
use crate::rules::{
    self, FieldError, INVALID_ENUM_VALUE, INVALID_STRING_FORMAT, INVALID_VALUE, REQUIRED_FIELD_MISSING,
    TOO_MANY_VALUES, VALUE_OUT_OF_RANGE,
};
use crate::state::State;

/// `MaxResults` when absent (the model's documented default).
const DEFAULT_PAGE: usize = 20;
/// `PageSize`: 1 to 100.
const MAX_PAGE: u64 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    Ascending,
    Descending,
}

/// What both listings take besides their filters.
struct Paging {
    catalog: String,
    page: usize,
    sort_by: &'static str,
    order: Order,
    /// The place after which the page starts: (sort key, identifier).
    after: Option<(String, String)>,
    /// Which request a `NextToken` belongs to.
    fingerprint: String,
    operation: &'static str,
}

/// `ListSolutions`: `SolutionSummaries` and `NextToken`, or every invalid member.
pub(crate) fn list_solutions(st: &State, body: &Map<String, Value>) -> Result<Value, Vec<FieldError>> {
    let mut errors = Vec::new();
    let paging = paging(
        body,
        "ListSolutions",
        &["Identifier", "Name", "Status", "Category", "CreatedDate"],
        "Identifier",
        &mut errors,
    );
    let statuses = list_member(body, "Status", 10, &mut errors).map(|values| {
        enum_values(values, "Status", &mut errors, |v| SolutionStatus::parse(v).map(SolutionStatus::as_str))
    });
    let identifiers = list_member(body, "Identifier", 20, &mut errors).map(|values| {
        pattern_values(values, "Identifier", "S-[0-9]{1,19}", &mut errors, |v| {
            rules::check_entity_identifier(crate::model::EntityType::Solutions, v).is_ok()
        })
    });
    let categories = list_member(body, "Category", 10, &mut errors);
    let arns = list_member(body, "AwsMarketplaceSolutionArn", 10, &mut errors).map(|values| {
        pattern_values(values, "AwsMarketplaceSolutionArn", "arn:.* (4 to 2048 characters)", &mut errors, |v| {
            rules::is_marketplace_solution_arn(v)
        })
    });
    let Some(paging) = paging.filter(|_| errors.is_empty()) else {
        return Err(errors);
    };
    let within = |values: &Option<Vec<&str>>, value: &str| values.as_ref().is_none_or(|vs| vs.contains(&value));
    let items = st
        .solutions
        .values()
        .filter(|s| s.catalog == paging.catalog)
        .filter(|s| within(&statuses, s.status.as_str()))
        .filter(|s| within(&identifiers, &s.id))
        .filter(|s| within(&categories, &s.category))
        .filter(|s| {
            arns.as_ref().is_none_or(|vs| s.aws_marketplace_solution_arn.as_deref().is_some_and(|a| vs.contains(&a)))
        })
        .map(|s| {
            let key = match paging.sort_by {
                "Name" => s.name.clone(),
                "Status" => s.status.as_str().to_owned(),
                "Category" => s.category.clone(),
                "CreatedDate" => format!("{:020}", s.created),
                _ => s.id.clone(),
            };
            (key, s.id.clone(), serde_json::to_value(s.snapshot()).unwrap_or_default())
        })
        .collect();
    page(items, &paging, "SolutionSummaries")
}

/// `ListOpportunities`: `OpportunitySummaries` and `NextToken`, or every invalid member.
pub(crate) fn list_opportunities(st: &State, body: &Map<String, Value>) -> Result<Value, Vec<FieldError>> {
    let mut errors = Vec::new();
    let paging = paging(
        body,
        "ListOpportunities",
        &["LastModifiedDate", "Identifier", "CustomerCompanyName", "CreatedDate", "TargetCloseDate"],
        "LastModifiedDate",
        &mut errors,
    );
    if let Some(p) = &paging
        && matches!(p.sort_by, "CustomerCompanyName" | "TargetCloseDate")
    {
        errors.push(unsupported("Sort", p.sort_by));
    }
    let identifiers = list_member(body, "Identifier", 20, &mut errors).map(|values| {
        pattern_values(values, "Identifier", "O[0-9]{1,19}", &mut errors, rules::is_opportunity_identifier)
    });
    let stages = list_member(body, "LifeCycleStage", 10, &mut errors)
        .map(|values| enum_values(values, "LifeCycleStage", &mut errors, |v| Stage::parse(v).map(Stage::as_str)));
    let statuses = list_member(body, "LifeCycleReviewStatus", 10, &mut errors).map(|values| {
        enum_values(values, "LifeCycleReviewStatus", &mut errors, |v| ReviewStatus::parse(v).map(ReviewStatus::as_str))
    });
    let modified = date_range(body, "LastModifiedDate", "AfterLastModifiedDate", "BeforeLastModifiedDate", &mut errors);
    let created = date_range(body, "CreatedDate", "AfterCreatedDate", "BeforeCreatedDate", &mut errors);
    for field in ["CustomerCompanyName", "TargetCloseDate"] {
        if body.get(field).is_some_and(|v| !v.is_null()) {
            errors.push(unsupported(field, field));
        }
    }
    let Some(paging) = paging.filter(|_| errors.is_empty()) else {
        return Err(errors);
    };
    let within = |values: &Option<Vec<&str>>, value: &str| values.as_ref().is_none_or(|vs| vs.contains(&value));
    let in_range = |(after, before): (Option<u64>, Option<u64>), at: u64| {
        after.is_none_or(|a| at >= a) && before.is_none_or(|b| at <= b)
    };
    let items = st
        .opportunities
        .values()
        .filter(|o| o.catalog == paging.catalog)
        .filter(|o| within(&identifiers, &o.id))
        .filter(|o| within(&stages, o.life_cycle.stage.as_str()))
        .filter(|o| within(&statuses, o.life_cycle.review_status.as_str()))
        .filter(|o| in_range(modified, o.last_modified) && in_range(created, o.created))
        .map(|o| {
            let key = match paging.sort_by {
                "Identifier" => o.id.clone(),
                "CreatedDate" => format!("{:020}", o.created),
                _ => format!("{:020}", o.last_modified),
            };
            let opp = o.snapshot();
            let summary = json!({
                "Catalog": opp.catalog, "Id": opp.id, "Arn": opp.arn,
                "LastModifiedDate": opp.last_modified_date, "CreatedDate": opp.created_date,
                "LifeCycle": opp.life_cycle,
            });
            (key, o.id.clone(), summary)
        })
        .collect();
    page(items, &paging, "OpportunitySummaries")
}

/// Sorts, skips to the token's place and cuts one page.
fn page(mut items: Vec<(String, String, Value)>, paging: &Paging, member: &str) -> Result<Value, Vec<FieldError>> {
    items.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    if paging.order == Order::Descending {
        items.reverse();
    }
    let start = match &paging.after {
        None => 0,
        Some(after) => {
            let after = (&after.0, &after.1);
            items.partition_point(|(key, id, _)| match paging.order {
                Order::Ascending => (key, id) <= after,
                Order::Descending => (key, id) >= after,
            })
        }
    };
    let rest = &items[start..];
    let shown = &rest[..rest.len().min(paging.page)];
    let mut answer = Map::new();
    answer.insert(member.to_owned(), Value::Array(shown.iter().map(|(_, _, v)| v.clone()).collect()));
    if rest.len() > shown.len()
        && let Some((key, id, _)) = shown.last()
    {
        let place = hex::encode(format!("{key}\u{1f}{id}"));
        answer.insert(
            "NextToken".to_owned(),
            Value::String(format!("{}.{}.{place}", paging.operation, paging.fingerprint)),
        );
    }
    Ok(Value::Object(answer))
}

/// `Catalog`, `MaxResults`, `Sort` and `NextToken`; `None` if any is invalid (each listed in `errors`).
fn paging(
    body: &Map<String, Value>,
    operation: &'static str,
    sort_names: &[&'static str],
    default_sort: &'static str,
    errors: &mut Vec<FieldError>,
) -> Option<Paging> {
    let catalog = rules::check_catalog(rules::string_member(body, "Catalog", errors), errors);
    let page = match body.get("MaxResults") {
        None | Some(Value::Null) => Some(DEFAULT_PAGE),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) if (1..=MAX_PAGE).contains(&n) => usize::try_from(n).ok(),
            _ => {
                errors.push(FieldError {
                    field: "MaxResults",
                    message: format!("MaxResults {n} is out of range: must be an integer from 1 to {MAX_PAGE}."),
                    code: VALUE_OUT_OF_RANGE,
                });
                None
            }
        },
        Some(_) => {
            errors.push(FieldError {
                field: "MaxResults",
                message: "MaxResults must be an integer.".to_owned(),
                code: INVALID_VALUE,
            });
            None
        }
    };
    let sort = match body.get("Sort") {
        None | Some(Value::Null) => Some((default_sort, Order::Descending)),
        Some(Value::Object(sort)) => {
            let order = match sort.get("SortOrder") {
                None | Some(Value::Null) => {
                    errors.push(required("Sort.SortOrder"));
                    None
                }
                Some(Value::String(s)) if s == "ASCENDING" => Some(Order::Ascending),
                Some(Value::String(s)) if s == "DESCENDING" => Some(Order::Descending),
                Some(other) => {
                    errors.push(FieldError {
                        field: "Sort",
                        message: format!("Sort.SortOrder {other} is invalid: must be one of ASCENDING, DESCENDING."),
                        code: INVALID_ENUM_VALUE,
                    });
                    None
                }
            };
            let by = match sort.get("SortBy") {
                None | Some(Value::Null) => {
                    errors.push(required("Sort.SortBy"));
                    None
                }
                Some(Value::String(s)) if sort_names.contains(&s.as_str()) => {
                    sort_names.iter().copied().find(|n| n == s)
                }
                Some(other) => {
                    errors.push(FieldError {
                        field: "Sort",
                        message: format!("Sort.SortBy {other} is invalid: must be one of {}.", sort_names.join(", ")),
                        code: INVALID_ENUM_VALUE,
                    });
                    None
                }
            };
            by.zip(order)
        }
        Some(_) => {
            errors.push(FieldError {
                field: "Sort",
                message: "Sort must be an object.".to_owned(),
                code: INVALID_VALUE,
            });
            None
        }
    };
    let fingerprint = fingerprint(body);
    let after = match body.get("NextToken") {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(token)) => match read_token(token, operation, &fingerprint) {
            Some(place) => Some(Some(place)),
            None => {
                errors.push(FieldError {
                    field: "NextToken",
                    message: "NextToken is invalid: it must be one a previous page of the same request answered."
                        .to_owned(),
                    code: INVALID_VALUE,
                });
                None
            }
        },
        Some(_) => {
            errors.push(FieldError {
                field: "NextToken",
                message: "NextToken must be a string.".to_owned(),
                code: INVALID_VALUE,
            });
            None
        }
    };
    let (catalog, page, (sort_by, order), after) = (catalog?, page?, sort?, after?);
    Some(Paging { catalog, page, sort_by, order, after, fingerprint, operation })
}

/// The request without its paging members, hashed: a token only continues the request it came from.
fn fingerprint(body: &Map<String, Value>) -> String {
    let mut request = body.clone();
    request.remove("NextToken");
    request.remove("MaxResults");
    let digest = Sha256::digest(Value::Object(request).to_string().as_bytes());
    hex::encode(&digest[..8])
}

fn read_token(token: &str, operation: &str, fingerprint: &str) -> Option<(String, String)> {
    let mut parts = token.splitn(3, '.');
    let (op, print, place) = (parts.next()?, parts.next()?, parts.next()?);
    if op != operation || print != fingerprint {
        return None;
    }
    let place = String::from_utf8(hex::decode(place).ok()?).ok()?;
    let (key, id) = place.split_once('\u{1f}')?;
    Some((key.to_owned(), id.to_owned()))
}

fn required(field: &'static str) -> FieldError {
    FieldError { field: "Sort", message: format!("{field} is required."), code: REQUIRED_FIELD_MISSING }
}

fn unsupported(field: &'static str, what: &str) -> FieldError {
    FieldError {
        field,
        message: format!("{what} is not supported by the emulator: it holds no customer or target close date."),
        code: INVALID_VALUE,
    }
}

/// A list member of strings: `None` when absent; each non-string element, or more than `max`, is
/// an error.
fn list_member<'a>(
    body: &'a Map<String, Value>,
    field: &'static str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<&'a str>> {
    let values = match body.get(field) {
        None | Some(Value::Null) => return None,
        Some(Value::Array(values)) => values,
        Some(_) => {
            errors.push(FieldError { field, message: format!("{field} must be a list."), code: INVALID_VALUE });
            return None;
        }
    };
    if values.len() > max {
        errors.push(FieldError {
            field,
            message: format!("{field} holds {} values: at most {max} are allowed.", values.len()),
            code: TOO_MANY_VALUES,
        });
    }
    let strings: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
    if strings.len() != values.len() {
        errors.push(FieldError { field, message: format!("{field} must hold strings only."), code: INVALID_VALUE });
    }
    Some(strings)
}

/// Each value must be one of an enum's spellings.
fn enum_values<'a>(
    values: Vec<&'a str>,
    field: &'static str,
    errors: &mut Vec<FieldError>,
    parse: impl Fn(&str) -> Option<&'static str>,
) -> Vec<&'a str> {
    for value in &values {
        if parse(value).is_none() {
            errors.push(FieldError {
                field,
                message: format!("{field} value {value:?} is not one of the values the service model allows."),
                code: INVALID_ENUM_VALUE,
            });
        }
    }
    values
}

/// Each value must match a pattern.
fn pattern_values<'a>(
    values: Vec<&'a str>,
    field: &'static str,
    pattern: &str,
    errors: &mut Vec<FieldError>,
    matches: impl Fn(&str) -> bool,
) -> Vec<&'a str> {
    for value in &values {
        if !matches(value) {
            errors.push(FieldError {
                field,
                message: format!("{field} value {value:?} does not match the pattern {pattern}."),
                code: INVALID_STRING_FORMAT,
            });
        }
    }
    values
}

/// A date filter (`{"After…": date-time, "Before…": date-time}`): its bounds in epoch seconds,
/// each inclusive; (None, None) when absent or invalid.
fn date_range(
    body: &Map<String, Value>,
    field: &'static str,
    after: &str,
    before: &str,
    errors: &mut Vec<FieldError>,
) -> (Option<u64>, Option<u64>) {
    let range = match body.get(field) {
        None | Some(Value::Null) => return (None, None),
        Some(Value::Object(range)) => range,
        Some(_) => {
            errors.push(FieldError { field, message: format!("{field} must be an object."), code: INVALID_VALUE });
            return (None, None);
        }
    };
    let mut bound = |name: &str| match range.get(name) {
        None | Some(Value::Null) => None,
        Some(value) => {
            let parsed = value.as_str().and_then(parse_timestamp);
            if parsed.is_none() {
                errors.push(FieldError {
                    field,
                    message: format!("{field}.{name} {value} is not an ISO 8601 date-time."),
                    code: INVALID_VALUE,
                });
            }
            parsed
        }
    };
    (bound(after), bound(before))
}
