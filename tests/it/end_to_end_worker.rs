//! End to end: the built function, run as Lambda runs it under a Runtime API served here, against
//! the Partner Central emulator (through the real SDK: signing, the endpoint override, error parsing)
//! and moto's SQS (partial batch responses, dead letters and their attributes, redrive).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{
    Function, Keys, Moto, RuntimeApi, emulator_config, function_env, pump_once, request, start_emulator,
};
use partner_central_emulator::{EmulatorConfig, FaultConfig, QuotaConfig, RunningEmulator, TokenBucketConfig};
use serde_json::{Value, json};

/// Credentials only these tests use, so the log check below can look for them.
const KEYS: Keys = Keys { access: "AKIDENDTOENDTEST", secret: "e2e-secret-must-never-be-logged-5f3a" };

const SEED: &str = r#"{
  "DeniedCatalogs": ["AWS"],
  "Opportunities": [
    {"Catalog": "Sandbox", "Id": "O1234567", "RelatedEntityIdentifiers": {
        "Solutions": ["S-0000001", "S-0000002"],
        "AwsMarketplaceOffers": ["arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-abc123"]}},
    {"Catalog": "Sandbox", "Id": "O2000001", "RelatedEntityIdentifiers": {"Solutions": ["S-2000001"]}},
    {"Catalog": "Sandbox", "Id": "O2000002", "RelatedEntityIdentifiers": {"Solutions": ["S-2000002"]}},
    {"Catalog": "Sandbox", "Id": "O2000003", "RelatedEntityIdentifiers": {"Solutions": ["S-2000003"]}},
    {"Catalog": "Sandbox", "Id": "O2000004", "RelatedEntityIdentifiers": {"Solutions": ["S-2000004"]}},
    {"Catalog": "Sandbox", "Id": "O2000005", "RelatedEntityIdentifiers": {"Solutions": ["S-2000005"]}},
    {"Catalog": "Sandbox", "Id": "O2000006", "RelatedEntityIdentifiers": {"Solutions": ["S-2000006"]}},
    {"Catalog": "Sandbox", "Id": "O2000007", "RelatedEntityIdentifiers": {"Solutions": ["S-2000007"]}},
    {"Catalog": "Sandbox", "Id": "O2000008", "RelatedEntityIdentifiers": {"Solutions": ["S-2000008"]}},
    {"Catalog": "AWS", "Id": "O9000001", "RelatedEntityIdentifiers": {"Solutions": ["S-9000001"]}}
  ]
}"#;

const TIMEOUT: Duration = Duration::from_secs(60);

async fn emulator(quotas: QuotaConfig, faults: FaultConfig) -> RunningEmulator {
    seeded_emulator(SEED, quotas, faults).await
}

async fn seeded_emulator(seed: &str, quotas: QuotaConfig, faults: FaultConfig) -> RunningEmulator {
    start_emulator(EmulatorConfig { quotas, faults, ..emulator_config(seed, &KEYS) }).await
}

fn writes(rate: f64, burst: f64) -> QuotaConfig {
    QuotaConfig { write: Some(TokenBucketConfig { rate, burst }), ..QuotaConfig::default() }
}

/// The function's environment against `emulator` (and moto when given), at 1 write/s, logging at DEBUG.
fn env(emulator: &RunningEmulator, moto: Option<&Moto>, extra: &[(&str, &str)]) -> Vec<(&'static str, String)> {
    let base = [
        ("PARTNER_CENTRAL_WRITES_PER_SECOND", "1"),
        ("PARTNER_CENTRAL_OPERATION_TIMEOUT_SECONDS", "10"),
        ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
    ];
    function_env(&KEYS, emulator, moto, &[&base[..], extra].concat())
}

fn solutions(emulator: &RunningEmulator, id: &str) -> Vec<String> {
    emulator.state().opportunity("Sandbox", id).expect("seeded").related_entity_identifiers.solutions.clone()
}

/// An SQS event of `records` (message id, body), without receive counts; FIFO in `fifo_group` when given.
fn sqs_event(records: &[(&str, Value)], fifo_group: Option<&str>) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(id, body)| {
            let body = match body {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let record = fixtures::without_attributes(fixtures::sqs_record(id, &body));
            match fifo_group {
                Some(group) => fixtures::fifo(record, group),
                None => record,
            }
        })
        .collect();
    fixtures::sqs_event(records)
}

fn failures(answer: &Value) -> Vec<String> {
    answer["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

/// The function's log lines that are JSON: its log records and its EMF metric lines.
/// Every line the function wrote that is JSON (it is ended first: see [`Function::all_lines`]).
async fn json_lines(function: &mut Function) -> Vec<Value> {
    function.all_lines().await.iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// A metric summed over the EMF lines (those with `_aws`) among `lines`.
fn emf_total(lines: &[Value], metric: &str) -> u64 {
    lines.iter().filter(|l| l.get("_aws").is_some()).filter_map(|l| l[metric].as_u64()).sum()
}

fn attribute(message: &aws_sdk_sqs::types::Message, name: &str) -> Option<String> {
    message.message_attributes()?.get(name)?.string_value().map(str::to_owned)
}

#[tokio::test]
async fn a_direct_request_is_signed_disassociated_and_idempotent_on_redelivery() {
    let emulator = emulator(QuotaConfig::default(), FaultConfig::default()).await;
    let runtime = RuntimeApi::start().await;
    let mut function = Function::start(&runtime, &env(&emulator, None, &[]));
    let doc = request("Sandbox", "O1234567", "Solutions", "S-0000001");

    let answer = runtime.invoke(doc.clone(), TIMEOUT).await.expect("success");
    assert_eq!(answer["outcome"], "disassociated");
    assert_eq!(solutions(&emulator, "O1234567"), ["S-0000002"]);
    let state = emulator.state();
    assert_eq!(state.auth_failures, 0, "every request carried a valid SigV4 signature for us-east-1");

    let again = runtime.invoke(doc, TIMEOUT).await.expect("success");
    assert_eq!(again["outcome"], "already_disassociated");
    assert_eq!(emulator.state().disassociation_count("Sandbox", "O1234567", "Solutions", "S-0000001"), 1);
    assert_eq!(emulator.state().operation("GetOpportunity").calls, 1);

    let missing = runtime.invoke(request("Sandbox", "O7777777", "Solutions", "S-1"), TIMEOUT).await.unwrap_err();
    assert_eq!(missing["errorType"], "ResourceNotFoundException");

    let offer = request(
        "Sandbox",
        "O1234567",
        "AwsMarketplaceOffers",
        "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-abc123",
    );
    assert_eq!(runtime.invoke(offer, TIMEOUT).await.unwrap()["outcome"], "disassociated");

    // Every log line is JSON; a record's lines carry the request id and the opportunity.
    let lines = function.all_lines().await;
    let json_lines: Vec<Value> = lines.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert_eq!(json_lines.len(), lines.len(), "non-JSON log lines: {lines:#?}");
    let done: Vec<&Value> = json_lines.iter().filter(|l| l["outcome"] == "disassociated").collect();
    assert_eq!(done.len(), 2);
    assert_eq!(done[0]["span"]["request_id"], "req-1");
    assert_eq!(done[0]["span"]["opportunity_id"], "O1234567");
    for line in &lines {
        assert!(!line.contains(KEYS.secret) && !line.contains("Signature="), "a secret in the logs: {line}");
    }
}

#[tokio::test]
async fn an_invalid_request_makes_no_call_and_names_its_field() {
    let emulator = emulator(QuotaConfig::default(), FaultConfig::default()).await;
    let runtime = RuntimeApi::start().await;
    let _function = Function::start(&runtime, &env(&emulator, None, &[]));
    let mut bad = request("Sandbox", "O1234567", "Solutions", "S-0000001");
    bad["RelatedEntityType"] = json!("solutions");
    let error = runtime.invoke(bad, TIMEOUT).await.unwrap_err();
    assert_eq!(error["errorType"], "ValidationError");
    assert!(error["errorMessage"].as_str().unwrap().contains("RelatedEntityType"));
    let production = request("AWS", "O9000001", "Solutions", "S-9000001");
    assert_eq!(runtime.invoke(production, TIMEOUT).await.unwrap_err()["errorType"], "CatalogNotAllowed");
    assert_eq!(emulator.state().requests, 0, "nothing reached the service");
}

#[tokio::test]
async fn rejected_requests_are_dead_lettered_with_their_reason() {
    let emulator = emulator(QuotaConfig::default(), FaultConfig::default()).await;
    let moto = Moto::start().await;
    let queues = moto.queues("rejects", false, 3, 30).await;
    let runtime = RuntimeApi::start().await;
    let _function = Function::start(
        &runtime,
        &env(
            &emulator,
            Some(&moto),
            &[("DEAD_LETTER_QUEUE_URL", &queues.dlq_url), ("ALLOWED_CATALOGS", "Sandbox,AWS")],
        ),
    );

    // EventBridge: the AWS catalog is denied by the emulator -> dead-lettered, answered as handled.
    let mut event = fixtures::eventbridge(request("AWS", "O9000001", "Solutions", "S-9000001"));
    event["id"] = json!("ev-42");
    let answer = runtime.invoke(event.clone(), TIMEOUT).await.expect("handled");
    assert_eq!(answer["outcome"], "dead_lettered");
    assert_eq!(answer["errorCode"], "AccessDeniedException");

    // SQS: a mixed batch. Only the transiently failed record would be reported; here none is.
    let batch = sqs_event(
        &[
            ("m1", request("Sandbox", "O2000001", "Solutions", "S-2000001")),
            ("m2", json!("{ this is not json")),
            ("m3", request("Sandbox", "O2000002", "Solutions", "S-9999999")),
            ("m4", request("Sandbox", "O0", "Solutions", "S-1")),
        ],
        None,
    );
    let answer = runtime.invoke(batch, TIMEOUT).await.expect("batch response");
    assert_eq!(failures(&answer), Vec::<String>::new());
    assert!(solutions(&emulator, "O2000001").is_empty());

    let letters = moto.drain(&queues.dlq_url).await;
    let mut by_source: BTreeMap<String, (String, String, String, String)> = BTreeMap::new();
    for letter in &letters {
        by_source.insert(
            attribute(letter, "SourceID").unwrap_or_default(),
            (
                attribute(letter, "ErrorCode").unwrap(),
                attribute(letter, "ErrorMessage").unwrap(),
                attribute(letter, "RequestID").unwrap(),
                letter.body().unwrap().to_owned(),
            ),
        );
    }
    assert_eq!(by_source.len(), 3, "{by_source:#?}");
    let (code, _, request_id, body) = &by_source["ev-42"];
    assert_eq!((code.as_str(), request_id.as_str()), ("AccessDeniedException", "req-1"));
    assert_eq!(serde_json::from_str::<Value>(body).unwrap(), event);
    assert_eq!(by_source["m2"].0, "ValidationError");
    assert_eq!(by_source["m2"].3, "{ this is not json", "the original body, unchanged");
    // S-9999999 is not on O2000002: the service says not found, GetOpportunity shows the opportunity
    // without it, and that is the state the request asked for.
    assert!(!by_source.contains_key("m3"), "an entity absent from an existing opportunity is already disassociated");
    assert_eq!(by_source["m4"].0, "ResourceNotFoundException");
    assert!(by_source["m4"].1.contains("does not exist"));
}

/// A wrong identifier (S-0000010 for the S-0000001 the opportunity holds), through the queue at its first
/// receive: a success all the same (deleted, no dead letter), but a WARN line that names it beside what
/// the opportunity holds, and the `NotAssociated` metric an operator can watch.
#[tokio::test]
async fn a_wrong_identifier_at_its_first_receive_is_not_associated_and_said_so() {
    let emulator = emulator(QuotaConfig::default(), FaultConfig::default()).await;
    let moto = Moto::start().await;
    let queues = moto.queues("not-associated", false, 3, 30).await;
    let runtime = RuntimeApi::start().await;
    let mut function =
        Function::start(&runtime, &env(&emulator, Some(&moto), &[("DEAD_LETTER_QUEUE_URL", &queues.dlq_url)]));
    let typo = request("Sandbox", "O1234567", "Solutions", "S-0000010").to_string();
    moto.send(&queues, "", &[typo]).await;

    let pass = pump_once(&moto, &queues, &runtime, 10, TIMEOUT).await;
    assert_eq!((pass.received, pass.failed), (1, 0), "a success: not reported failed");
    assert_eq!(moto.depth(&queues.work_url).await, 0, "deleted");
    assert!(moto.drain(&queues.dlq_url).await.is_empty(), "no dead letter");
    assert_eq!(solutions(&emulator, "O1234567"), ["S-0000001", "S-0000002"], "nothing changed");

    let lines = json_lines(&mut function).await;
    let warning = lines.iter().find(|l| l["outcome"] == "not_associated").expect("the record's line");
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert_eq!((warning["entity_type"].as_str(), warning["entity"].as_str()), (Some("Solutions"), Some("S-0000010")));
    let held = warning["held"].as_str().unwrap_or_default();
    assert!(held.contains("S-0000001") && held.contains("S-0000002"), "what the opportunity holds: {warning}");
    assert_eq!((emf_total(&lines, "NotAssociated"), emf_total(&lines, "AlreadyDisassociated")), (1, 0));
}

#[tokio::test]
async fn paced_writes_stay_under_the_quota() {
    // A bucket of 2/s with no burst, and the function paced a little under it: an exact match would
    // let network jitter bring two calls closer than the refill interval.
    let emulator = emulator(writes(2.0, 1.0), FaultConfig::default()).await;
    let runtime = RuntimeApi::start().await;
    let _function = Function::start(&runtime, &env(&emulator, None, &[("PARTNER_CENTRAL_WRITES_PER_SECOND", "1.8")]));
    let records: Vec<(String, Value)> = (1..=8)
        .map(|i| (format!("m{i}"), request("Sandbox", &format!("O200000{i}"), "Solutions", &format!("S-200000{i}"))))
        .collect();
    let records: Vec<(&str, Value)> = records.iter().map(|(id, v)| (id.as_str(), v.clone())).collect();
    let answer = runtime.invoke(sqs_event(&records, None), TIMEOUT).await.unwrap();
    assert!(failures(&answer).is_empty());
    let counters = emulator.state().operation("DisassociateOpportunity");
    assert_eq!((counters.calls, counters.successes, counters.throttled), (8, 8, 0));
}

#[tokio::test]
async fn throttled_writes_are_retried_not_dead_lettered_and_all_land() {
    // The function is told 20 writes/s but the account allows 2: the service throttles, the pacer
    // slows down, and throttled records come back through the queue until all are done.
    let emulator = emulator(writes(2.0, 1.0), FaultConfig::default()).await;
    let moto = Moto::start().await;
    let queues = moto.queues("throttled", false, 10, 30).await;
    let runtime = RuntimeApi::start().await;
    let mut function = Function::start(
        &runtime,
        &env(
            &emulator,
            Some(&moto),
            &[
                ("PARTNER_CENTRAL_WRITES_PER_SECOND", "20"),
                ("AWS_MAX_ATTEMPTS", "1"),
                ("DEAD_LETTER_QUEUE_URL", &queues.dlq_url),
            ],
        ),
    );
    let bodies: Vec<String> = (1..=8)
        .map(|i| request("Sandbox", &format!("O200000{i}"), "Solutions", &format!("S-200000{i}")).to_string())
        .collect();
    moto.send(&queues, "", &bodies).await;
    let mut passes = 0;
    while moto.depth(&queues.work_url).await > 0 {
        passes += 1;
        assert!(passes < 40, "the backlog did not drain");
        pump_once(&moto, &queues, &runtime, 10, TIMEOUT).await;
    }
    let state = emulator.state();
    assert_eq!(state.total_disassociations(), 8);
    assert!(state.operation("DisassociateOpportunity").throttled > 0, "the quota was hit, as intended");
    assert!(moto.drain(&queues.dlq_url).await.is_empty(), "throttling never dead-letters");
    let lines = json_lines(&mut function).await;
    let throttled = emf_total(&lines, "Throttled");
    assert_eq!(
        throttled,
        state.operation("DisassociateOpportunity").throttled,
        "every throttled answer is in the metrics"
    );
    assert_eq!(emf_total(&lines, "Disassociated"), 8);
}

#[tokio::test]
async fn a_fifo_group_stops_at_its_first_failure() {
    // Exactly one write is allowed: m1 succeeds, m2 is throttled, m3 must not overtake it.
    let emulator = emulator(writes(0.0, 1.0), FaultConfig::default()).await;
    let runtime = RuntimeApi::start().await;
    let mut function = Function::start(
        &runtime,
        &env(&emulator, None, &[("AWS_MAX_ATTEMPTS", "1"), ("PARTNER_CENTRAL_WRITES_PER_SECOND", "50")]),
    );
    let batch = sqs_event(
        &[
            ("m1", request("Sandbox", "O2000001", "Solutions", "S-2000001")),
            ("m2", request("Sandbox", "O2000002", "Solutions", "S-2000002")),
            ("m3", request("Sandbox", "O2000003", "Solutions", "S-2000003")),
        ],
        Some("opportunity-group"),
    );
    let answer = runtime.invoke(batch, TIMEOUT).await.unwrap();
    assert_eq!(failures(&answer), ["m2", "m3"]);
    assert_eq!(emulator.state().operation("DisassociateOpportunity").calls, 2, "m3 was never sent");
    assert_eq!(solutions(&emulator, "O2000003"), ["S-2000003"]);

    // m3, held back untried, is logged and counted like m2: two records retried, each with its line.
    let lines = json_lines(&mut function).await;
    assert_eq!(emf_total(&lines, "Retried"), 2);
    let held_back = lines.iter().find(|l| l["error_code"] == "EarlierFailureInGroup");
    let held_back = held_back.expect("a log line for the held-back record");
    assert_eq!(held_back["outcome"], "failed", "{held_back}");
    assert_eq!(held_back["span"]["source_id"], "m3", "the line names its message: {held_back}");
}

/// One message whose every call fails (a 5xx), through a queue with `maxReceiveCount` 3, pumped until
/// it is gone: each pass's (received, reported failed), and what reached the dead-letter queue.
async fn a_message_that_keeps_failing(
    name: &str,
    extra: &[(&str, &str)],
) -> (Vec<(usize, usize)>, Vec<aws_sdk_sqs::types::Message>, String) {
    let faults = FaultConfig { error_rate: 1.0, ..FaultConfig::default() };
    let emulator = emulator(QuotaConfig::unlimited(), faults).await;
    let moto = Moto::start().await;
    let queues = moto.queues(name, false, 3, 30).await;
    let runtime = RuntimeApi::start().await;
    let mut settings = vec![
        ("AWS_MAX_ATTEMPTS", "1"),
        ("DEAD_LETTER_QUEUE_URL", queues.dlq_url.as_str()),
        ("PARTNER_CENTRAL_WRITES_PER_SECOND", "50"),
    ];
    settings.extend_from_slice(extra);
    let _function = Function::start(&runtime, &env(&emulator, Some(&moto), &settings));
    let body = request("Sandbox", "O2000001", "Solutions", "S-2000001").to_string();
    moto.send(&queues, "", std::slice::from_ref(&body)).await;
    let mut passes = Vec::new();
    for _ in 0..10 {
        let pass = pump_once(&moto, &queues, &runtime, 10, TIMEOUT).await;
        if pass.received > 0 {
            passes.push((pass.received, pass.failed));
        }
    }
    let letters = moto.drain(&queues.dlq_url).await;
    assert_eq!(solutions(&emulator, "O2000001"), ["S-2000001"]);
    (passes, letters, body)
}

#[tokio::test]
async fn a_message_that_keeps_failing_reaches_the_dead_letter_queue_by_redrive() {
    let (passes, letters, body) = a_message_that_keeps_failing("redrive", &[]).await;
    assert_eq!(passes, [(1, 1); 3], "a 5xx is retried, never dropped; received maxReceiveCount times");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].body(), Some(body.as_str()));
    assert_eq!(attribute(&letters[0], "ErrorCode"), None, "the redrive gives no reason");
}

/// The same with `MAX_RECEIVE_COUNT` set to the queue's `maxReceiveCount`, as the template sets it: at
/// the third receive the function dead-letters the message itself, with its reason, and the queue
/// deletes it; nothing is left for the redrive to move without one.
#[tokio::test]
async fn at_its_last_receive_a_failing_message_is_dead_lettered_by_the_function_with_its_reason() {
    let (passes, letters, body) = a_message_that_keeps_failing("last-receive", &[("MAX_RECEIVE_COUNT", "3")]).await;
    assert_eq!(passes, [(1, 1), (1, 1), (1, 0)], "reported failed twice, then dead-lettered and deleted");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].body(), Some(body.as_str()));
    assert_eq!(attribute(&letters[0], "ErrorCode").as_deref(), Some("InternalServerException"), "the reason");
    let message = attribute(&letters[0], "ErrorMessage").expect("the reason's message");
    assert!(message.contains("receive 3 of the queue's maxReceiveCount 3"), "{message}");
}

#[tokio::test]
async fn dropped_connections_and_slow_calls_are_retryable_errors() {
    let emulator = emulator(QuotaConfig::unlimited(), FaultConfig { drop_rate: 1.0, ..FaultConfig::default() }).await;
    let runtime = RuntimeApi::start().await;
    let mut function = Function::start(
        &runtime,
        &env(
            &emulator,
            None,
            &[
                ("AWS_MAX_ATTEMPTS", "1"),
                ("PARTNER_CENTRAL_READ_TIMEOUT_SECONDS", "1"),
                ("PARTNER_CENTRAL_OPERATION_TIMEOUT_SECONDS", "2"),
            ],
        ),
    );
    let doc = request("Sandbox", "O2000001", "Solutions", "S-2000001");
    let dropped = runtime.invoke(doc.clone(), TIMEOUT).await.unwrap_err();
    assert_eq!(dropped["errorType"], "ConnectionError", "{dropped}");

    emulator.set_faults(FaultConfig { slow_rate: 1.0, slow_ms: 3000, ..FaultConfig::default() }).unwrap();
    let slow = runtime.invoke(doc, TIMEOUT).await.unwrap_err();
    assert_eq!(slow["errorType"], "Timeout", "{slow}");
    assert_eq!(solutions(&emulator, "O2000001"), ["S-2000001"], "neither changed anything");
    assert!(function.is_running());
}

#[tokio::test]
async fn a_bad_setting_fails_init_naming_it() {
    let emulator = emulator(QuotaConfig::default(), FaultConfig::default()).await;
    let runtime = RuntimeApi::start().await;
    let mut function =
        Function::start(&runtime, &env(&emulator, None, &[("PARTNER_CENTRAL_WRITES_PER_SECOND", "fast")]));
    let output = function.init_failure().await;
    assert!(output.contains("PARTNER_CENTRAL_WRITES_PER_SECOND"), "{output}");
}

#[tokio::test]
async fn every_sample_event_does_what_the_demo_says() {
    let seed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/emulator/seed.json")).unwrap();
    let emulator = seeded_emulator(&seed, QuotaConfig::unlimited(), FaultConfig::default()).await;
    let moto = Moto::start().await;
    let queues = moto.queues("samples", false, 3, 30).await;
    let runtime = RuntimeApi::start().await;
    let _function = Function::start(
        &runtime,
        &env(
            &emulator,
            Some(&moto),
            &[("DEAD_LETTER_QUEUE_URL", &queues.dlq_url), ("PARTNER_CENTRAL_WRITES_PER_SECOND", "50")],
        ),
    );
    let mut names: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    let mut dead_letters = 0;
    for name in names {
        // The webhook sample is signed with a timestamp, so it is re-signed and tested in tests/webhook_end_to_end.rs.
        if name.starts_with("webhook-") {
            continue;
        }
        let payload: Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap(),
        )
        .unwrap();
        let throttled = name == "eventbridge-throttled.json";
        if throttled {
            emulator.set_faults(FaultConfig { throttle_rate: 1.0, ..FaultConfig::default() }).unwrap();
        }
        let answer = runtime.invoke(payload, TIMEOUT).await;
        emulator.set_faults(FaultConfig::default()).unwrap();
        let letters = moto.drain(&queues.dlq_url).await.len();
        dead_letters += letters;
        let summary = match &answer {
            Ok(v) if v.get("batchItemFailures").is_some() => {
                format!("failures {:?}, dead letters {letters}", failures(v))
            }
            Ok(v) => v["outcome"].as_str().unwrap_or("?").to_owned(),
            Err(e) => format!("error {}", e["errorType"].as_str().unwrap_or("?")),
        };
        let expected = match name.as_str() {
            "direct.json" | "eventbridge.json" | "marketplace-offer.json" => "disassociated",
            "direct-already-disassociated.json" => "already_disassociated",
            "direct-invalid.json" => "error ValidationError",
            // The last solution of an approved opportunity, removed first: refused.
            "direct-last-solution.json" => "error ValidationException",
            "replace-solution.json" | "replace-offer.json" => "replaced",
            // An eleventh Marketplace solution: refused for good, nothing removed.
            "replace-refused.json" => "failures [], dead letters 1",
            "eventbridge-throttled.json" => "error ThrottlingException",
            "sqs-eventbridge-record.json" => "failures [], dead letters 0",
            "sqs-mixed-batch.json" => "failures [], dead letters 4",
            "sqs-fifo-batch.json" => "failures [], dead letters 1",
            // Rejected by AWS's review: read-only, dead-lettered without a write.
            "sqs-rejected.json" => "failures [], dead letters 1",
            other => panic!("events/{other} has no expectation here: add one"),
        };
        assert_eq!(summary, expected, "events/{name}: {answer:?}");
    }
    assert_eq!(dead_letters, 7);
    let state = emulator.state();
    let marketplace = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-abc";
    let o = &state.opportunity("Sandbox", "O4000001").unwrap().related_entity_identifiers;
    assert_eq!((o.solutions.len(), o.aws_marketplace_solutions.as_slice()), (0, [marketplace.to_owned()].as_slice()));
    let rejected = &state.opportunity("Sandbox", "O3000004").unwrap().related_entity_identifiers;
    assert_eq!(
        (rejected.solutions.as_slice(), rejected.aws_marketplace_solutions.len()),
        (["S-3000004".to_owned()].as_slice(), 0)
    );
    let new_offer = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-ghi789";
    let o = &state.opportunity("Sandbox", "O4000002").unwrap().related_entity_identifiers;
    assert_eq!(o.aws_marketplace_offers, [new_offer]);
    let o = &state.opportunity("Sandbox", "O4000004").unwrap().related_entity_identifiers;
    assert_eq!((o.solutions.as_slice(), o.aws_marketplace_solutions.len()), (["S-4000004".to_owned()].as_slice(), 10));
    let o = state.opportunity("Sandbox", "O1234567").unwrap();
    assert_eq!(o.related_entity_identifiers.solutions, ["S-0000002"]);
    assert_eq!(o.related_entity_identifiers.aws_products, ["AmazonS3"], "the throttled sample changed nothing");
    assert!(o.related_entity_identifiers.aws_marketplace_offers.is_empty());
    assert!(state.opportunity("Sandbox", "O2000003").unwrap().related_entity_identifiers.solutions.is_empty());
    assert_eq!(state.opportunity("Sandbox", "O3000001").unwrap().related_entity_identifiers.solutions, ["S-3000001"]);
}

/// `DRY_RUN` calls nothing: not the write, and not the warm-up's read either, even when `WARM_UP` asks
/// for it.
#[tokio::test]
async fn dry_run_makes_no_call_at_all_not_even_the_warm_up() {
    let emulator = emulator(QuotaConfig::default(), FaultConfig::default()).await;
    let runtime = RuntimeApi::start().await;
    let _function = Function::start(&runtime, &env(&emulator, None, &[("DRY_RUN", "true"), ("WARM_UP", "true")]));

    runtime.wait_for_first_poll(TIMEOUT).await;
    let answer = runtime.invoke(request("Sandbox", "O2000001", "Solutions", "S-2000001"), TIMEOUT).await;
    let state = emulator.state();

    assert_eq!(answer.expect("success")["outcome"], "dry_run");
    assert_eq!(state.connections, 0, "no connection was opened");
    assert_eq!(state.operation("GetOpportunity").calls, 0);
    assert_eq!(state.operation("DisassociateOpportunity").calls, 0);
    assert_eq!(solutions(&emulator, "O2000001"), ["S-2000001"], "nothing changed");
}

/// Over HTTPS (the emulator's own certificate authority, trusted through `SSL_CERT_FILE` as a private
/// CA would be): with `WARM_UP`, init opens the connection with one read, so the first invocation's
/// write makes no TLS handshake; without it, the first invocation makes the handshake itself.
#[tokio::test]
async fn the_warm_up_makes_the_tls_handshake_during_init_and_the_first_invocation_reuses_it() {
    for warm_up in [true, false] {
        let emulator = start_emulator(EmulatorConfig { tls: true, ..emulator_config(SEED, &KEYS) }).await;
        assert!(emulator.endpoint().starts_with("https://"));
        let ca_file = std::env::temp_dir().join(format!("e2e-emulator-ca-{}-{warm_up}.pem", std::process::id()));
        std::fs::write(&ca_file, emulator.ca_pem().expect("a CA")).expect("write the CA");
        let runtime = RuntimeApi::start().await;
        let ca = ca_file.to_string_lossy().into_owned();
        let setting = if warm_up { "true" } else { "false" };
        let _function =
            Function::start(&runtime, &env(&emulator, None, &[("SSL_CERT_FILE", &ca), ("WARM_UP", setting)]));

        runtime.wait_for_first_poll(TIMEOUT).await;
        let init = emulator.state();
        let answer = runtime.invoke(request("Sandbox", "O2000001", "Solutions", "S-2000001"), TIMEOUT).await;
        let after = emulator.state();
        let _ = std::fs::remove_file(&ca_file);

        assert_eq!(answer.expect("success")["outcome"], "disassociated", "WARM_UP={setting}");
        assert_eq!(after.operation("DisassociateOpportunity").successes, 1);
        assert_eq!((after.connections, after.tls_handshakes), (1, 1), "WARM_UP={setting}: one connection in all");
        if warm_up {
            assert_eq!((init.connections, init.tls_handshakes), (1, 1), "the handshake was made during init");
            assert_eq!(init.operation("GetOpportunity").calls, 1, "with one read");
            assert_eq!(init.operation("DisassociateOpportunity").calls, 0, "and no write");
        } else {
            assert_eq!((init.connections, init.tls_handshakes), (0, 0), "nothing during init");
        }
    }
}
