//! The account's write quota shared through the write-slots table, end to end: the built worker, two
//! instances at once, moto's DynamoDB as the table and moto's SQS as the work queue, against the
//! Partner Central emulator. How close to the quota the stack gets is a benchmark's figure
//! (bench/stack.py); here: that the instances claim their slots in the table, that every request
//! lands, and that a table that cannot be reached leaves each instance pacing alone, never unpaced.

use std::time::Duration;

use crate::common::{
    Function, Moto, Queues, RuntimeApi, TEST_KEYS, emulator_config, function_env, pump_until_drained, start_emulator,
};
use aws_sdk_dynamodb::types::AttributeValue;
use opportunity_disassociator::aws::write_slots::ITEM_KEY;
use partner_central_emulator::{EmulatorConfig, QuotaConfig, RunningEmulator, TokenBucketConfig};

const MESSAGES: usize = 20;

/// `MESSAGES` opportunities, each holding one solution; writes at 10 per second, no burst.
async fn emulator() -> RunningEmulator {
    let opportunities: Vec<String> = (0..MESSAGES)
        .map(|i| format!(r#"{{"Catalog": "Sandbox", "Id": "O50000{i:02}", "RelatedEntityIdentifiers": {{"Solutions": ["S-50000{i:02}"]}}}}"#))
        .collect();
    let seed = format!(r#"{{"Opportunities": [{}]}}"#, opportunities.join(","));
    let quotas = QuotaConfig { write: Some(TokenBucketConfig { rate: 10.0, burst: 1.0 }), ..QuotaConfig::default() };
    start_emulator(EmulatorConfig { quotas, ..emulator_config(&seed, &TEST_KEYS) }).await
}

fn env(
    emulator: &RunningEmulator,
    moto: &Moto,
    queues: &Queues,
    dynamodb: &str,
    table: &str,
) -> Vec<(&'static str, String)> {
    let settings = [
        ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb.to_owned()),
        ("DEAD_LETTER_QUEUE_URL", queues.dlq_url.clone()),
        ("WRITE_SLOTS_TABLE", table.to_owned()),
        ("ACCOUNT_WRITES_PER_SECOND", "10".into()),
        ("PARTNER_CENTRAL_WRITES_PER_SECOND", "5".into()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
    ];
    function_env(&TEST_KEYS, emulator, Some(moto), &settings)
}

async fn backlog(moto: &Moto, name: &str) -> Queues {
    let queues = moto.queues(name, false, 3, 30).await;
    let bodies: Vec<String> = (0..MESSAGES)
        .map(|i| {
            fixtures::request("Sandbox", &format!("O50000{i:02}"), "Solutions", &format!("S-50000{i:02}")).to_string()
        })
        .collect();
    moto.send(&queues, "", &bodies).await;
    queues
}

/// Two instances, each fed by its own poller, at once.
async fn drain(moto: &Moto, queues: &Queues, [a, b]: [&RuntimeApi; 2]) {
    let within = Duration::from_secs(120);
    tokio::join!(pump_until_drained(moto, queues, a, within), pump_until_drained(moto, queues, b, within));
}

/// The requests that did not land exactly once, with how many times each did (empty: all did).
fn not_landed_once(emulator: &RunningEmulator) -> Vec<(String, u64)> {
    let state = emulator.state();
    (0..MESSAGES)
        .map(|i| {
            let id = format!("O50000{i:02}");
            let count = state.disassociation_count("Sandbox", &id, "Solutions", &format!("S-50000{i:02}"));
            (id, count)
        })
        .filter(|(_, count)| *count != 1)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_claim_their_slots_in_one_table_and_every_request_lands() {
    let emulator = emulator().await;
    let moto = Moto::start().await;
    let table = moto.write_slots_table("write-slots").await;
    let queues = backlog(&moto, "shared").await;
    let (a, b) = (RuntimeApi::start().await, RuntimeApi::start().await);
    let mut fa = Function::start(&a, &env(&emulator, &moto, &queues, &moto.endpoint, &table));
    let mut fb = Function::start(&b, &env(&emulator, &moto, &queues, &moto.endpoint, &table));
    let before = crate::common::now_ms();
    drain(&moto, &queues, [&a, &b]).await;

    assert_eq!(not_landed_once(&emulator), [], "every request landed once");
    assert!(moto.drain(&queues.dlq_url).await.is_empty(), "nothing dead-lettered");
    let item = moto
        .dynamodb()
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S(ITEM_KEY.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the instances wrote the slots item");
    let next_ms: u64 = item["next_ms"].as_n().unwrap().parse().unwrap();
    // 20 slots of 105 ms after the first: the item ends at least that far past the start.
    assert!(next_ms >= before + 19 * 105, "next_ms {next_ms}, started at {before}");
    for function in [&mut fa, &mut fb] {
        let lines = function.all_lines().await.join("\n");
        assert!(!lines.contains("cannot be used"), "the table was used throughout: {lines}");
        assert!(!lines.contains("paces alone"), "no instance fell back: {lines}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_that_cannot_be_reached_leaves_each_instance_pacing_alone() {
    let emulator = emulator().await;
    let moto = Moto::start().await;
    let queues = backlog(&moto, "unreachable").await;
    let closed = format!("http://127.0.0.1:{}", crate::common::free_port());
    let (a, b) = (RuntimeApi::start().await, RuntimeApi::start().await);
    let mut fa = Function::start(&a, &env(&emulator, &moto, &queues, &closed, "write-slots"));
    let mut fb = Function::start(&b, &env(&emulator, &moto, &queues, &closed, "write-slots"));
    drain(&moto, &queues, [&a, &b]).await;

    let logs = [fa.all_lines().await.join("\n"), fb.all_lines().await.join("\n")];
    assert_eq!(not_landed_once(&emulator), [], "every request landed once\n{}", logs.join("\n"));
    assert!(moto.drain(&queues.dlq_url).await.is_empty(), "nothing dead-lettered");
    for lines in logs {
        assert!(lines.contains("paces alone at its share"), "each instance said it fell back: {lines}");
    }
}

/// The shared slots rely on DynamoDB's conditional writes being atomic: of many conditional writes at
/// once on one item, each on the value all of them read, exactly one is applied. moto alone does not
/// keep this (tools/moto_server.py makes it); every test here stands on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_conditional_writes_at_once_on_one_item_exactly_one_is_applied() {
    const WRITERS: usize = 48;
    let moto = Moto::start().await;
    let table = moto.write_slots_table("write-slots-atomic").await;
    for round in 0..20 {
        let writes = (0..WRITERS).map(|writer| {
            let (dynamodb, table) = (moto.dynamodb(), table.clone());
            tokio::spawn(async move {
                dynamodb
                    .update_item()
                    .table_name(table)
                    .key("pk", AttributeValue::S(ITEM_KEY.into()))
                    .update_expression("SET claimed_by = :writer, round = :round")
                    .condition_expression("attribute_not_exists(round) OR round < :round")
                    .expression_attribute_values(":writer", AttributeValue::N(writer.to_string()))
                    .expression_attribute_values(":round", AttributeValue::N(round.to_string()))
                    .send()
                    .await
            })
        });
        let mut applied = 0;
        for write in futures::future::join_all(writes).await {
            match write.unwrap() {
                Ok(_) => applied += 1,
                Err(e) => assert!(
                    e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()),
                    "refused only by its condition: {e:?}"
                ),
            }
        }
        assert_eq!(applied, 1, "round {round}: one write applied of {WRITERS}");
    }
}
