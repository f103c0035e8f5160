//! The account's write slots in DynamoDB (`WRITE_SLOTS_TABLE`): one item that every instance of the
//! stack claims its slots in ([`crate::pacing::shared`]), moved on by conditional updates.
//!
//! The item, key `pk` = [`ITEM_KEY`]: `next_ms` (the end of the last slot claimed, milliseconds since
//! the epoch), and, once a throttled answer stretched the spacing, `spacing_ms` and `stretched_ms`.
//! With the day's budget: `budget` (a map of write counts by bucket start, the key in milliseconds
//! since the epoch), `held_turn_ms` (the next turn of a write that waits for room) and
//! `spent_until_ms` (a budget learned spent elsewhere). One small write per Partner Central write;
//! per throttled answer, one for the stretch and one giving the refused write back to its count;
//! one per write refused for no room (its turn). A value out of bounds is repaired by a conditional
//! write on the exact value found ([`Repair`]); the item's other attributes are neither read nor
//! written here. Each answer carries the store's clock (its `Date`), which the
//! pacer checks its own against.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::date_time::{DateTime, Format};
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use futures::future::BoxFuture;

use crate::pacing::shared::{
    Attribute, BudgetClaim, BudgetField, Claim, Field, Reading, Repair, Repaired, SlotStore, StoreError, Stored,
    Stretch,
};

/// The item's key: one item per table, so stacks of one account that share the table share the quota.
pub const ITEM_KEY: &str = "partnercentral-selling-writes";

/// The adapter over DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoSlots {
    client: Client,
    table: String,
}

impl DynamoSlots {
    pub fn new(sdk: &SdkConfig, table: String) -> Self {
        // Bounded: the pacer gives the store up after its own timeout, so a slow table costs a write
        // at most that, and the SDK's retries stay within it.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(500))
            .operation_attempt_timeout(Duration::from_millis(500))
            .operation_timeout(Duration::from_secs(1))
            .build();
        let config = aws_sdk_dynamodb::config::Builder::from(sdk)
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .build();
        Self { client: Client::from_conf(config), table }
    }

    fn key(&self) -> AttributeValue {
        AttributeValue::S(ITEM_KEY.to_owned())
    }

    fn update(&self) -> UpdateItemFluentBuilder {
        self.client.update_item().table_name(&self.table).key("pk", self.key())
    }
}

impl SlotStore for DynamoSlots {
    fn read(&self) -> BoxFuture<'_, Result<Reading, StoreError>> {
        Box::pin(async move {
            let date = StoreClock::default();
            let output = self
                .client
                .get_item()
                .table_name(&self.table)
                .key("pk", self.key())
                .consistent_read(true)
                .customize()
                .interceptor(date.clone())
                .send()
                .await
                .map_err(|e| store_error(&e))?;
            Ok(date.reading(output.item()))
        })
    }

    fn claim(
        &self,
        start_ms: u64,
        spacing_ms: u64,
        budget: Option<BudgetClaim>,
    ) -> BoxFuture<'_, Result<Claim, StoreError>> {
        Box::pin(async move {
            let mut claim = self
                .update()
                .expression_attribute_values(":start", number(start_ms))
                .expression_attribute_values(":next", number(start_ms.saturating_add(spacing_ms)))
                .return_values(ReturnValue::AllNew);
            let mut condition = "(attribute_not_exists(next_ms) OR next_ms <= :start)".to_owned();
            let mut update = "SET next_ms = :next".to_owned();
            if let Some(BudgetClaim { read, spend }) = budget {
                let bucket = spend.bucket.to_string();
                match read {
                    // The first count makes the map.
                    None => {
                        condition.push_str(" AND attribute_not_exists(budget)");
                        update.push_str(", budget = :budget");
                        let map = HashMap::from([(bucket, number(spend.count))]);
                        claim = claim.expression_attribute_values(":budget", AttributeValue::M(map));
                    }
                    // The map as read: as many counts, each as read, and the bucket absent unless read.
                    Some(read) => {
                        condition.push_str(" AND size(budget) = :size");
                        claim = claim.expression_attribute_values(":size", number(read.len() as u64));
                        for (i, (key, count)) in read.iter().enumerate() {
                            condition.push_str(&format!(" AND budget.#b{i} = :b{i}"));
                            claim = claim
                                .expression_attribute_names(format!("#b{i}"), key.to_string())
                                .expression_attribute_values(format!(":b{i}"), number(*count));
                        }
                        if !read.contains_key(&spend.bucket) {
                            condition.push_str(" AND attribute_not_exists(budget.#bucket)");
                        }
                        update.push_str(", budget.#bucket = :count");
                        claim = claim
                            .expression_attribute_names("#bucket", bucket)
                            .expression_attribute_values(":count", number(spend.count));
                        let mut removes = Vec::new();
                        for (i, key) in spend.expired.iter().enumerate() {
                            removes.push(format!("budget.#x{i}"));
                            claim = claim.expression_attribute_names(format!("#x{i}"), key.to_string());
                        }
                        if !removes.is_empty() {
                            update.push_str(&format!(" REMOVE {}", removes.join(", ")));
                        }
                    }
                }
            }
            let claim = claim.condition_expression(condition).update_expression(update);
            let (update, date) = send_conditional(claim).await?;
            match update {
                Update::Applied(item) => Ok(Claim::Claimed(date.reading(item.as_ref()))),
                Update::Refused(Some(item)) => Ok(Claim::Taken(date.reading(Some(&item)))),
                // A store that does not return the item with the refusal: read it.
                Update::Refused(None) => self.read().await.map(Claim::Taken),
            }
        })
    }

    fn stretch(&self, stretch: Stretch, unless_since_ms: u64) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let answer = self
                .update()
                .update_expression("SET spacing_ms = :spacing, stretched_ms = :at")
                .condition_expression("attribute_not_exists(stretched_ms) OR stretched_ms < :since")
                .expression_attribute_values(":spacing", number(stretch.spacing_ms))
                .expression_attribute_values(":at", number(stretch.at_ms))
                .expression_attribute_values(":since", number(unless_since_ms))
                .send()
                .await;
            // Refused: another instance recorded the same overload first.
            conditional(answer).map(|_| ())
        })
    }

    fn give_back(&self, bucket: u64) -> BoxFuture<'_, Result<Option<Reading>, StoreError>> {
        Box::pin(async move {
            let give_back = self
                .update()
                .update_expression("SET budget.#bucket = budget.#bucket - :one")
                .condition_expression("budget.#bucket >= :one")
                .expression_attribute_names("#bucket", bucket.to_string())
                .expression_attribute_values(":one", number(1))
                .return_values(ReturnValue::AllNew);
            let (update, date) = send_conditional(give_back).await?;
            Ok(match update {
                Update::Applied(item) => Some(date.reading(item.as_ref())),
                Update::Refused(_) => None,
            })
        })
    }

    fn repair(&self, repairs: Vec<Repair>) -> BoxFuture<'_, Result<Repaired, StoreError>> {
        Box::pin(async move {
            let (mut sets, mut removes, mut conditions) = (Vec::new(), Vec::new(), Vec::new());
            let mut update = self.update();
            for (i, repair) in repairs.iter().enumerate() {
                // Every name through a placeholder: a count's key is digits.
                let name = match &repair.attribute {
                    Attribute::Bucket(key) => {
                        update = update.expression_attribute_names(format!("#k{i}"), key);
                        format!("budget.#k{i}")
                    }
                    attribute => {
                        update = update.expression_attribute_names(format!("#a{i}"), attribute.name());
                        format!("#a{i}")
                    }
                };
                match repair.became {
                    Some(value) => {
                        sets.push(format!("{name} = :became{i}"));
                        update = update.expression_attribute_values(format!(":became{i}"), number(value));
                    }
                    None => removes.push(name.clone()),
                }
                // On the exact value found, so that two instances repairing at once do not undo each
                // other, nor a repair a claim made meanwhile.
                let (condition, found) = match &repair.found {
                    Field::Missing => (format!("attribute_not_exists({name})"), None),
                    Field::Number(n) => (format!("{name} = :found{i}"), Some(number(*n))),
                    Field::BadNumber(n) => (format!("{name} = :found{i}"), Some(AttributeValue::N(n.clone()))),
                    // The budget's map as a whole is only ever repaired for being of another type.
                    Field::NotNumber(_) if repair.attribute == Attribute::Budget => {
                        (format!("attribute_exists({name}) AND NOT attribute_type({name}, :map)"), None)
                    }
                    Field::NotNumber(_) => {
                        (format!("attribute_exists({name}) AND NOT attribute_type({name}, :number)"), None)
                    }
                };
                if let Some(found) = found {
                    update = update.expression_attribute_values(format!(":found{i}"), found);
                }
                conditions.push(format!("({condition})"));
            }
            let not = |budget: bool| {
                repairs
                    .iter()
                    .any(|r| matches!(r.found, Field::NotNumber(_)) && (r.attribute == Attribute::Budget) == budget)
            };
            if not(false) {
                update = update.expression_attribute_values(":number", AttributeValue::S("N".to_owned()));
            }
            if not(true) {
                update = update.expression_attribute_values(":map", AttributeValue::S("M".to_owned()));
            }
            let mut expression = Vec::new();
            if !sets.is_empty() {
                expression.push(format!("SET {}", sets.join(", ")));
            }
            if !removes.is_empty() {
                expression.push(format!("REMOVE {}", removes.join(", ")));
            }
            let update = update.update_expression(expression.join(" ")).condition_expression(conditions.join(" AND "));
            let (update, date) = send_conditional(update).await?;
            match update {
                Update::Applied(_) => Ok(Repaired::Done),
                Update::Refused(Some(item)) => Ok(Repaired::Refused(Box::new(date.reading(Some(&item))))),
                Update::Refused(None) => self.read().await.map(|reading| Repaired::Refused(Box::new(reading))),
            }
        })
    }
}

/// What a conditional UpdateItem came to: applied (the item after it, when asked for), or refused by
/// its condition (the item as it was, when asked for).
enum Update {
    Applied(Option<Item>),
    Refused(Option<Item>),
}

type Item = HashMap<String, AttributeValue>;

/// Sends a conditional UpdateItem that returns the item with a refusal, and tells the store's clock.
async fn send_conditional(update: UpdateItemFluentBuilder) -> Result<(Update, StoreClock), StoreError> {
    let date = StoreClock::default();
    let answer = update
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .customize()
        .interceptor(date.clone())
        .send()
        .await;
    Ok((conditional(answer)?, date))
}

fn conditional(
    answer: Result<UpdateItemOutput, SdkError<UpdateItemError, HttpResponse>>,
) -> Result<Update, StoreError> {
    match answer {
        Ok(output) => Ok(Update::Applied(output.attributes)),
        Err(SdkError::ServiceError(e)) => match e.into_err() {
            UpdateItemError::ConditionalCheckFailedException(refused) => Ok(Update::Refused(refused.item)),
            other => Err(store_error(&other)),
        },
        Err(e) => Err(store_error(&e)),
    }
}

fn store_error(error: &(dyn std::error::Error + 'static)) -> StoreError {
    StoreError(aws_sdk_dynamodb::error::DisplayErrorContext(error).to_string())
}

fn number(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A number as held.
fn field_of(value: Option<&AttributeValue>) -> Field {
    match value {
        None => Field::Missing,
        Some(AttributeValue::N(n)) => n.parse().map_or_else(|_| Field::BadNumber(n.clone()), Field::Number),
        Some(other) => Field::NotNumber(format!("{other:?}")),
    }
}

/// The pacer's attributes of the item, each as held; the item's other attributes are not read.
fn stored_of(item: &Item) -> Stored {
    let field = |attribute: Attribute| field_of(item.get(attribute.name()));
    let budget = match item.get(Attribute::Budget.name()) {
        None => BudgetField::Missing,
        Some(AttributeValue::M(map)) => {
            BudgetField::Map(map.iter().map(|(key, count)| (key.clone(), field_of(Some(count)))).collect())
        }
        Some(other) => BudgetField::NotMap(format!("{other:?}")),
    };
    Stored {
        next_ms: field(Attribute::NextMs),
        spacing_ms: field(Attribute::SpacingMs),
        stretched_ms: field(Attribute::StretchedMs),
        budget,
        held_turn_ms: field(Attribute::HeldTurnMs),
        spent_until_ms: field(Attribute::SpentUntilMs),
    }
}

/// One call's answer time by the store's clock: its HTTP `Date`, to the second.
#[derive(Debug, Clone, Default)]
struct StoreClock(Arc<Mutex<Option<u64>>>);

impl StoreClock {
    fn reading(&self, item: Option<&Item>) -> Reading {
        let store_ms = *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Reading { stored: item.map(stored_of).unwrap_or_default(), store_ms }
    }
}

impl Intercept for StoreClock {
    fn name(&self) -> &'static str {
        "StoreClock"
    }

    fn read_after_transmit(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let date = context.response().headers().get("date").and_then(|d| DateTime::from_str(d, Format::HttpDate).ok());
        if let Some(ms) = date.and_then(|d| d.to_millis().ok()).and_then(|ms| u64::try_from(ms).ok()) {
            *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(ms);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_item_reads_back_attribute_by_attribute_and_what_cannot_be_used_says_what_it_is() {
        let item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S(ITEM_KEY.into())),
            ("next_ms".to_owned(), number(1_764_000_000_105)),
            ("spacing_ms".to_owned(), number(157)),
            ("stretched_ms".to_owned(), number(1_764_000_000_000)),
            ("budget".to_owned(), AttributeValue::M(HashMap::from([("1764000000000".to_owned(), number(3))]))),
            ("held_turn_ms".to_owned(), number(1_764_000_001_000)),
            // Another feature's attribute: not the pacer's to read.
            ("held_since".to_owned(), AttributeValue::S("x".into())),
        ]);
        assert_eq!(
            stored_of(&item),
            Stored {
                next_ms: Field::Number(1_764_000_000_105),
                spacing_ms: Field::Number(157),
                stretched_ms: Field::Number(1_764_000_000_000),
                budget: BudgetField::Map([("1764000000000".to_owned(), Field::Number(3))].into()),
                held_turn_ms: Field::Number(1_764_000_001_000),
                spent_until_ms: Field::Missing,
            }
        );
        let odd = HashMap::from([
            ("next_ms".to_owned(), AttributeValue::S("x".into())),
            ("spacing_ms".to_owned(), AttributeValue::N("1e30".into())),
        ]);
        assert_eq!(
            stored_of(&odd),
            Stored {
                next_ms: Field::NotNumber("S(\"x\")".into()),
                spacing_ms: Field::BadNumber("1e30".into()),
                stretched_ms: Field::Missing,
                ..Stored::default()
            }
        );
    }
}
