use std::sync::Arc;

use aws_config::BehaviorVersion;
use lambda_runtime::{LambdaEvent, service_fn};
use opportunity_disassociator::config::Config;
use opportunity_disassociator::dead_letter::SqsDeadLetters;
use opportunity_disassociator::handler::Handler;
use opportunity_disassociator::pacer::Pacer;
use opportunity_disassociator::partner_central::{SdkPartnerCentral, ThrottleCount};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    opportunity_disassociator::logging::init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(setting = e.name, "{e}");
            return Err(e.into());
        }
    };
    let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let pacer = Arc::new(Pacer::new(config.writes_per_second));
    let throttles = Arc::new(ThrottleCount::default());
    let partner_central = SdkPartnerCentral::new(&sdk, &config, pacer.clone(), throttles.clone());
    let dead_letters = config.dead_letter_queue_url.clone().map(|url| SqsDeadLetters::new(&sdk, url));
    tracing::info!(
        allowed_catalogs = ?config.allowed_catalogs,
        writes_per_second = config.writes_per_second,
        dead_letter_queue = config.dead_letter_queue_url.is_some(),
        dry_run = config.dry_run,
        "initialised"
    );
    let handler = Handler::new(config, partner_central, dead_letters, pacer, throttles);
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move { handler.handle(event).await })).await
}
