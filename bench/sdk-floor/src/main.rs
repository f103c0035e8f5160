//! The benchmark's SDK floor: the least a Rust function doing this job with the AWS SDK does. The
//! runtime, the SDK client set up as the function sets up its own (the same `SdkConfig` and trust
//! store, one attempt per call, no stalled-stream protection; not its timeouts or its throttle count)
//! and warmed the same way during init, and per SQS record one `DisassociateOpportunity` call. No
//! logging, no validation, no pacing, no deadlines, no metrics, no dead letters.
//!
//! Set beside the function, it splits the function's cost in two: what the SDK and the runtime cost
//! any function on this machine (this floor), and what the function itself adds (the difference).

use aws_sdk_partnercentralselling::Client;
use aws_sdk_partnercentralselling::config::retry::RetryConfig;
use aws_sdk_partnercentralselling::config::{Builder, Region, StalledStreamProtectionConfig};
use aws_sdk_partnercentralselling::types::RelatedEntityType;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use opportunity_disassociator::aws::partner_central::SdkPartnerCentral;
use opportunity_disassociator::aws::sdk_config;
use opportunity_disassociator::domain::request::Catalog;
use serde::Deserialize;
use serde_json::{Value, json};

/// The request as the API spells it; nothing is checked beyond its shape.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Request {
    catalog: String,
    opportunity_identifier: String,
    related_entity_type: String,
    related_entity_identifier: String,
}

async fn disassociate(client: &Client, body: &str) -> bool {
    let Ok(request) = serde_json::from_str::<Request>(body) else {
        return false;
    };
    client
        .disassociate_opportunity()
        .catalog(request.catalog)
        .opportunity_identifier(request.opportunity_identifier)
        .related_entity_type(RelatedEntityType::from(request.related_entity_type.as_str()))
        .related_entity_identifier(request.related_entity_identifier)
        .send()
        .await
        .is_ok()
}

async fn handle(client: &Client, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let mut failures = Vec::new();
    for record in event.payload["Records"].as_array().into_iter().flatten() {
        if !disassociate(client, record["body"].as_str().unwrap_or_default()).await {
            failures.push(json!({ "itemIdentifier": record["messageId"] }));
        }
    }
    Ok(json!({ "batchItemFailures": failures }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let sdk = sdk_config(|name| std::env::var(name).ok(), 1).await;
    let config = Builder::from(&sdk)
        .region(Region::new("us-east-1"))
        .retry_config(RetryConfig::disabled())
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .build();
    let client = Client::from_conf(config);
    SdkPartnerCentral::from_client(client.clone()).warm_up(Catalog::Aws).await;
    let client = &client;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| handle(client, event))).await
}
