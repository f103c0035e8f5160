//! The webhook function (`opportunity-disassociator-webhook`): reads its secret once, wires it and
//! the work queue into [`Webhook`], and runs it. It makes no Partner Central call.

use lambda_runtime::{LambdaEvent, service_fn};
use opportunity_disassociator::aws::work_queue::SqsWorkQueue;
use opportunity_disassociator::aws::{sdk_config, secrets};
use opportunity_disassociator::config::WebhookConfig;
use opportunity_disassociator::telemetry::logging;
use opportunity_disassociator::webhook::Webhook;
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let config = WebhookConfig::from_env().inspect_err(|e| tracing::error!(setting = e.name, "{e}"))?;
    // The SDK's default attempts for the two SQS and Secrets Manager clients.
    let sdk = sdk_config(|name| std::env::var(name).ok(), 3).await;
    // Read once, here: a secret that cannot be read fails init, naming its setting.
    let secret =
        secrets::resolve(&config.secret, &sdk).await.inspect_err(|e| tracing::error!(setting = e.name, "{e}"))?;
    let queue = SqsWorkQueue::new(&sdk, config.work_queue_url.clone());
    tracing::info!(allowed_catalogs = ?config.allowed_catalogs, max_body_bytes = config.max_body_bytes, "initialised");
    let webhook = Webhook::new(secret, queue, config.allowed_catalogs, config.max_body_bytes);
    let webhook = &webhook;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move { webhook.handle(event).await })).await
}
