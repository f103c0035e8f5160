use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use opportunity_disassociator::config::Config;
use opportunity_disassociator::dead_letter::SqsDeadLetters;
use opportunity_disassociator::handler::Handler;
use opportunity_disassociator::pacer::Pacer;
use opportunity_disassociator::partner_central::{SdkPartnerCentral, ThrottleCount, sdk_config, warm_up_wanted};
use opportunity_disassociator::webhook::Webhook;
use opportunity_disassociator::work_queue::SqsWorkQueue;
use serde_json::Value;

// One thread: the work is waiting on I/O (Partner Central, SQS), and a single-threaded runtime spares the
// cross-thread wake-ups on every call and the idle worker threads, at init and per record.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    opportunity_disassociator::logging::init();
    let settings = Config::from_env().and_then(|config| Ok((config, warm_up_wanted(|name| std::env::var(name).ok())?)));
    let (config, warm_up) = match settings {
        Ok(settings) => settings,
        Err(e) => {
            tracing::error!(setting = e.name, "{e}");
            return Err(e.into());
        }
    };
    let sdk = sdk_config(|name| std::env::var(name).ok(), config.max_attempts).await;
    let pacer = Arc::new(Pacer::new(config.writes_per_second));
    let throttles = Arc::new(ThrottleCount::default());
    let partner_central = SdkPartnerCentral::new(&sdk, &config, throttles.clone());
    // DRY_RUN calls nothing, not even the warm-up's read: it is what a first deploy to an account is
    // made with, before the account's access to Partner Central is known to work.
    let warm_up = warm_up && !config.dry_run;
    if warm_up && let Some(&catalog) = config.allowed_catalogs.first() {
        partner_central.warm_up(catalog).await;
    }
    let dead_letters = config.dead_letter_queue_url.clone().map(|url| SqsDeadLetters::new(&sdk, url));
    // The webhook secret is read once, here: one that cannot be read fails init, naming its setting.
    let webhook = match (&config.webhook_secret, &config.work_queue_url) {
        (Some(source), Some(queue_url)) => match source.resolve(&sdk).await {
            Ok(secret) => Some(Webhook::new(
                secret,
                SqsWorkQueue::new(&sdk, queue_url.clone()),
                config.allowed_catalogs.clone(),
                config.webhook_max_body_bytes,
            )),
            Err(e) => {
                tracing::error!(setting = e.name, "{e}");
                return Err(e.into());
            }
        },
        _ => None,
    };
    tracing::info!(
        allowed_catalogs = ?config.allowed_catalogs,
        writes_per_second = config.writes_per_second,
        dead_letter_queue = config.dead_letter_queue_url.is_some(),
        max_receive_count = config.max_receive_count,
        dry_run = config.dry_run,
        warm_up,
        webhook = webhook.is_some(),
        "initialised"
    );
    let handler = Handler::new(config, partner_central, dead_letters, pacer, throttles).with_webhook(webhook);
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move { handler.handle(event).await })).await
}
