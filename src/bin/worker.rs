//! The worker function (`opportunity-disassociator`): wires the settings, the clients and the pacer
//! into [`Worker`], and runs it.

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use opportunity_disassociator::aws::dead_letters::SqsDeadLetters;
use opportunity_disassociator::aws::partner_central::{SdkPartnerCentral, ThrottleCount};
use opportunity_disassociator::aws::sdk_config;
use opportunity_disassociator::aws::work_queue::LazyWorkQueue;
use opportunity_disassociator::aws::write_slots::DynamoSlots;
use opportunity_disassociator::config::WorkerConfig;
use opportunity_disassociator::pacing::Pacer;
use opportunity_disassociator::pacing::budget::Budget;
use opportunity_disassociator::pacing::shared::SharedSlots;
use opportunity_disassociator::telemetry::logging;
use opportunity_disassociator::worker::Worker;
use opportunity_disassociator::worker::inbound::Payload;

// One thread: the work is waiting on I/O, and a single-threaded runtime spares the cross-thread
// wake-ups and the idle worker threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let config = WorkerConfig::from_env().inspect_err(|e| tracing::error!(setting = e.name, "{e}"))?;
    let sdk = sdk_config(|name| std::env::var(name).ok(), config.max_attempts).await;
    let throttles = Arc::new(ThrottleCount::default());
    let partner_central = SdkPartnerCentral::new(&sdk, &config, throttles.clone());
    if config.warm_up
        && let Some(&catalog) = config.allowed_catalogs.first()
    {
        partner_central.warm_up(catalog).await;
    }
    let dead_letters = (config.dead_letter_queue_url.clone())
        .map(|url| SqsDeadLetters::new(&sdk, url, config.dead_letter_max_message_bytes));
    let window = config.write_budget_window;
    // No turn further ahead than a window and the longest hold.
    let turns_ahead = window + config.max_hold;
    let pacer = match &config.write_slots_table {
        None => Pacer::local(config.writes_per_second),
        Some(table) => {
            let store = Arc::new(DynamoSlots::new(&sdk, table.clone()));
            let slots = SharedSlots::new(
                store,
                config.account_writes_per_second,
                config.write_slot_margin,
                config.max_slot_ahead,
            )
            .with_budget(Budget::new(config.account_writes_per_day, window), turns_ahead);
            if config.warm_up {
                slots.look().await;
            }
            Pacer::shared(config.writes_per_second, slots)
        }
    }
    .with_local_budget(
        Budget::new(config.writes_per_day_alone, window),
        config.account_writes_per_second,
        turns_ahead,
    );
    let pacer = Arc::new(pacer);
    tracing::info!(
        allowed_catalogs = ?config.allowed_catalogs,
        writes_per_second = config.writes_per_second,
        account_writes_per_second = config.account_writes_per_second,
        account_writes_per_day = config.account_writes_per_day,
        write_budget_window_s = config.write_budget_window.as_secs_f64(),
        write_slots_table = config.write_slots_table.as_deref(),
        dead_letter_queue = config.dead_letter_queue_url.is_some(),
        work_queue = config.work_queue_url.is_some(),
        max_receive_count = config.max_receive_count,
        dry_run = config.dry_run,
        warm_up = config.warm_up,
        "initialised"
    );
    let work_queue = config.work_queue_url.clone().map(|url| LazyWorkQueue::new(&sdk, url));
    let worker = Worker::new(config, partner_central, dead_letters, pacer, throttles);
    let worker = match work_queue {
        Some(queue) => worker.with_holds(Arc::new(queue)),
        None => worker,
    };
    let worker = &worker;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Payload>| async move { worker.handle(event).await })).await
}
