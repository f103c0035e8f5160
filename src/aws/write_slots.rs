//! The account's write slots in DynamoDB (`WRITE_SLOTS_TABLE`): one item that every instance of the
//! stack claims its slots in ([`crate::pacing::shared`]), moved on by conditional updates.
//!
//! The item, key `pk` = [`ITEM_KEY`]: `next_ms` (the end of the last slot claimed, milliseconds since
//! the epoch), and, once a throttled answer stretched the spacing, `spacing_ms` and `stretched_ms`.
//! One small write per Partner Central write, and one per throttled answer.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use futures::future::BoxFuture;

use crate::pacing::shared::{Claim, SlotStore, Slots, StoreError, Stretch};

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

    /// Reads the item: at init, it opens the connection and gives the pacer the store's state.
    pub async fn read(&self) -> Result<Slots, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", self.key())
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        Ok(output.item().map(slots_of).unwrap_or_default())
    }
}

impl SlotStore for DynamoSlots {
    fn claim(&self, start_ms: u64, spacing_ms: u64) -> BoxFuture<'_, Result<Claim, StoreError>> {
        Box::pin(async move {
            let answer = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", self.key())
                .update_expression("SET next_ms = :next")
                .condition_expression("attribute_not_exists(next_ms) OR next_ms <= :start")
                .expression_attribute_values(":start", number(start_ms))
                .expression_attribute_values(":next", number(start_ms + spacing_ms))
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            match conditional(answer)? {
                Update::Applied(item) => Ok(Claim::Claimed(item.as_ref().map(slots_of).unwrap_or_default())),
                Update::Refused(Some(item)) => Ok(Claim::Taken(slots_of(&item))),
                // A store that does not return the item with the refusal: read it.
                Update::Refused(None) => self.read().await.map(Claim::Taken),
            }
        })
    }

    fn stretch(&self, stretch: Stretch, unless_since_ms: u64) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let answer = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", self.key())
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
}

/// What a conditional UpdateItem came to: applied (the item after it, when asked for), or refused by
/// its condition (the item as it was, when asked for).
enum Update {
    Applied(Option<Item>),
    Refused(Option<Item>),
}

type Item = HashMap<String, AttributeValue>;

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

/// The item's state; a member missing or unreadable counts as never set.
fn slots_of(item: &Item) -> Slots {
    let get = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok());
    let stretch = match (get("spacing_ms"), get("stretched_ms")) {
        (Some(spacing_ms), Some(at_ms)) => Some(Stretch { spacing_ms, at_ms }),
        _ => None,
    };
    Slots { next_ms: get("next_ms").unwrap_or(0), stretch }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_item_reads_back_as_the_slots_and_a_partial_one_as_unset() {
        let item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S(ITEM_KEY.into())),
            ("next_ms".to_owned(), number(1_764_000_000_105)),
            ("spacing_ms".to_owned(), number(157)),
            ("stretched_ms".to_owned(), number(1_764_000_000_000)),
        ]);
        assert_eq!(
            slots_of(&item),
            Slots { next_ms: 1_764_000_000_105, stretch: Some(Stretch { spacing_ms: 157, at_ms: 1_764_000_000_000 }) }
        );
        let partial = HashMap::from([
            ("spacing_ms".to_owned(), number(157)),
            ("next_ms".to_owned(), AttributeValue::S("x".into())),
        ]);
        assert_eq!(slots_of(&partial), Slots::default());
    }
}
