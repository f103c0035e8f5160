//! The worker driven through its ports by in-memory fakes: every trigger, every outcome, mixed and
//! FIFO batches, panic isolation, the deadline and pacing, replacements. No network.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::fakes::{Answer, FakeDeadLetters, FakeService, Letter, Read, Script, api_error};
use fixtures::{eventbridge, fifo, received, sqs_event as sqs, sqs_record as record};
use lambda_runtime::{Context, LambdaEvent};
use opportunity_disassociator::aws::partner_central::{ErrorClass, ThrottleCount};
use opportunity_disassociator::config::WorkerConfig;
use opportunity_disassociator::domain::opportunity::AssociationLimit;
use opportunity_disassociator::domain::request::{EntityType, RelatedEntity};
use opportunity_disassociator::pacing::Pacer;
use opportunity_disassociator::worker::Worker;
use opportunity_disassociator::worker::inbound::Payload;
use serde_json::{Value, json};
use tokio::time::Instant;

struct World {
    service: Arc<FakeService>,
    queue: Arc<FakeDeadLetters>,
    worker: Worker<Arc<FakeService>, Arc<FakeDeadLetters>>,
}

fn config(vars: &[(&str, &str)]) -> WorkerConfig {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    WorkerConfig::from_lookup(|name| map.get(name).cloned()).unwrap()
}

fn world_with(scripts: &[(&'static str, Script)], vars: &[(&str, &str)], dlq: Option<FakeDeadLetters>) -> World {
    let config = config(vars);
    let service = FakeService::with(scripts);
    let with_dlq = dlq.is_some();
    let queue = Arc::new(dlq.unwrap_or_default());
    let pacer = Arc::new(Pacer::local(config.writes_per_second));
    let worker = Worker::new(
        config,
        service.clone(),
        with_dlq.then(|| queue.clone()),
        pacer,
        Arc::new(ThrottleCount::default()),
    );
    World { service, queue, worker }
}

fn world(scripts: &[(&'static str, Script)]) -> World {
    world_with(scripts, &[("PARTNER_CENTRAL_WRITES_PER_SECOND", "1000")], Some(FakeDeadLetters::default()))
}

fn request(opportunity: &str) -> Value {
    fixtures::solution_request(opportunity)
}

fn fifo_record(id: &str, group: &str, body: &str) -> Value {
    fifo(record(id, body), group)
}

fn event(payload: Value, seconds_left: u64) -> LambdaEvent<Payload> {
    event_within(payload, Duration::from_secs(seconds_left))
}

fn event_within(payload: Value, time_left: Duration) -> LambdaEvent<Payload> {
    invocation(Payload::from(&payload), time_left)
}

/// An event given as the very text that arrives (a `Value` would put its keys in order).
fn raw_event(text: &str, seconds_left: u64) -> LambdaEvent<Payload> {
    invocation(text.parse().expect("an event in JSON"), Duration::from_secs(seconds_left))
}

fn invocation(payload: Payload, time_left: Duration) -> LambdaEvent<Payload> {
    let mut context = Context::default();
    context.request_id = "lambda-req-1".into();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    context.deadline = now + time_left.as_millis() as u64;
    LambdaEvent::new(payload, context)
}

/// A metric summed over an invocation's EMF lines.
fn metric(lines: &[Value], name: &str) -> u64 {
    lines.iter().filter_map(|line| line[name].as_u64()).sum()
}

fn failures(answer: &Value) -> Vec<&str> {
    answer["batchItemFailures"].as_array().unwrap().iter().map(|f| f["itemIdentifier"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_direct_request_is_disassociated_and_summarised() {
    let w = world(&[]);
    let answer = w.worker.handle(event(request("O1"), 60)).await.unwrap();
    assert_eq!(answer["outcome"], "disassociated");
    assert_eq!(answer["request"], request("O1"));
    assert_eq!(w.service.calls(), ["O1"]);
}

#[tokio::test]
async fn a_direct_error_names_its_class_and_field_and_is_not_dead_lettered() {
    let w = world(&[("O2", Script::Fail("AccessDeniedException", ErrorClass::Permanent))]);
    let mut bad = request("O1");
    bad["OpportunityIdentifier"] = json!("1234");
    let error = w.worker.handle(event(bad, 60)).await.unwrap_err();
    assert_eq!(error.error_type, "ValidationError");
    assert!(error.message.contains("OpportunityIdentifier"), "{}", error.message);
    let error = w.worker.handle(event(request("O2"), 60)).await.unwrap_err();
    assert_eq!(error.error_type, "AccessDeniedException");
    assert_eq!(w.service.calls(), ["O2"], "the invalid request made no call");
    assert!(w.queue.letters.lock().unwrap().is_empty());
}

#[tokio::test]
async fn every_service_error_class_maps_to_its_outcome() {
    let w = world(&[
        ("O1", Script::Fail("ThrottlingException", ErrorClass::Transient)),
        ("O2", Script::Fail("InternalServerException", ErrorClass::Transient)),
        ("O3", Script::Fail("ValidationException", ErrorClass::Permanent)),
        ("O4", Script::Fail("AccessDeniedException", ErrorClass::Permanent)),
        ("O5", Script::Ambiguous(Read::Absent)),
        ("O6", Script::Ambiguous(Read::NoSuchOpportunity)),
        ("O7", Script::Fail("Timeout", ErrorClass::Transient)),
    ]);
    let records = (1..=8).map(|i| record(&format!("m{i}"), &request(&format!("O{i}")).to_string())).collect();
    let answer = w.worker.handle(event(sqs(records), 60)).await.unwrap();
    assert_eq!(failures(&answer), ["m1", "m2", "m7"], "only transient failures are retried");
    let letters = w.queue.letters.lock().unwrap().clone();
    let codes: Vec<(&str, &str)> = letters.iter().map(|l| (l.source_id.as_deref().unwrap(), l.code.as_str())).collect();
    assert_eq!(
        codes,
        [("m3", "ValidationException"), ("m4", "AccessDeniedException"), ("m6", "ResourceNotFoundException")]
    );
    assert!(letters[2].message.contains("does not exist"));
    assert_eq!(letters[0].lambda_request_id, "lambda-req-1");
    assert_eq!(letters[0].body, request("O3").to_string(), "the original body, unchanged");
    assert_eq!(*w.service.checks.lock().unwrap(), 2, "GetOpportunity only for the two not-found answers");
    let calls = w.service.calls();
    let count = |id: &str| calls.iter().filter(|c| *c == id).count();
    assert_eq!([count("O1"), count("O2"), count("O7")], [3, 3, 3], "transient: AWS_MAX_ATTEMPTS (3) attempts");
    assert_eq!([count("O3"), count("O4"), count("O5"), count("O6")], [1, 1, 1, 1], "the others: one");
}

#[tokio::test]
async fn a_mixed_batch_fails_only_its_bad_records_and_calls_only_for_valid_ones() {
    let w = world(&[]);
    let mut wrong_type = request("O3");
    wrong_type["RelatedEntityType"] = json!("solutions");
    let mut production = request("O4");
    production["Catalog"] = json!("AWS");
    let answer = w
        .worker
        .handle(event(
            sqs(vec![
                record("m1", &request("O1").to_string()),
                record("m2", "{ not json"),
                record("m3", &wrong_type.to_string()),
                record("m4", &production.to_string()),
                record("m5", &eventbridge(request("O5")).to_string()),
            ]),
            60,
        ))
        .await
        .unwrap();
    assert!(failures(&answer).is_empty(), "rejected records are dead-lettered, not retried");
    let mut calls = w.service.calls();
    calls.sort();
    assert_eq!(calls, ["O1", "O5"]);
    let letters = w.queue.letters.lock().unwrap().clone();
    let codes: Vec<&str> = letters.iter().map(|l| l.code.as_str()).collect();
    assert_eq!(codes, ["ValidationError", "ValidationError", "CatalogNotAllowed"]);
    assert_eq!(letters[0].body, "{ not json");
    assert!(letters[1].message.contains("RelatedEntityType"));
}

#[tokio::test]
async fn without_a_dead_letter_queue_rejected_records_are_reported_failed() {
    let w = world_with(&[], &[("PARTNER_CENTRAL_WRITES_PER_SECOND", "1000")], None);
    let answer = w
        .worker
        .handle(event(sqs(vec![record("m1", "[]"), record("m2", &request("O2").to_string())]), 60))
        .await
        .unwrap();
    assert_eq!(failures(&answer), ["m1"]);
}

#[tokio::test]
async fn a_failed_dead_letter_becomes_a_retry() {
    let w = world_with(
        &[],
        &[("PARTNER_CENTRAL_WRITES_PER_SECOND", "1000")],
        Some(FakeDeadLetters { broken: true, ..Default::default() }),
    );
    let answer = w.worker.handle(event(sqs(vec![record("m1", "null")]), 60)).await.unwrap();
    assert_eq!(failures(&answer), ["m1"]);
}

#[tokio::test]
async fn a_panicking_record_fails_alone() {
    let w = world(&[("O2", Script::Panic)]);
    let records = (1..=3).map(|i| record(&format!("m{i}"), &request(&format!("O{i}")).to_string())).collect();
    let answer = w.worker.handle(event(sqs(records), 60)).await.unwrap();
    assert_eq!(failures(&answer), ["m2"]);
    assert_eq!(w.service.calls().len(), 3);
}

#[tokio::test]
async fn a_record_without_a_message_id_is_never_reported_but_dead_lettered() {
    let w = world(&[("O1", Script::Fail("ThrottlingException", ErrorClass::Transient))]);
    let answer = w.worker.handle(event(sqs(vec![record("", &request("O1").to_string())]), 60)).await.unwrap();
    assert!(failures(&answer).is_empty());
    assert_eq!(w.queue.letters.lock().unwrap()[0].code, "ThrottlingException");

    let w = world_with(
        &[("O1", Script::Fail("ThrottlingException", ErrorClass::Transient))],
        &[("PARTNER_CENTRAL_WRITES_PER_SECOND", "1000")],
        None,
    );
    let error = w.worker.handle(event(sqs(vec![record("", &request("O1").to_string())]), 60)).await.unwrap_err();
    assert_eq!(error.error_type, "UnreportableRecord", "with nowhere to put it, the batch fails rather than lose it");
}

#[tokio::test]
async fn fifo_failures_hold_back_the_rest_of_their_group_only() {
    let w = world(&[("O2", Script::Fail("ThrottlingException", ErrorClass::Transient))]);
    let answer = w
        .worker
        .handle(event(
            sqs(vec![
                fifo_record("m1", "a", &request("O1").to_string()),
                fifo_record("m2", "a", &request("O2").to_string()),
                fifo_record("m3", "b", &request("O3").to_string()),
                fifo_record("m4", "a", &request("O4").to_string()),
                fifo_record("m5", "b", &request("O5").to_string()),
            ]),
            60,
        ))
        .await
        .unwrap();
    assert_eq!(failures(&answer), ["m2", "m4"]);
    let mut calls = w.service.calls();
    calls.sort();
    assert_eq!(calls, ["O1", "O2", "O2", "O2", "O3", "O5"], "O2 had its 3 attempts, m4 was not processed");
}

#[tokio::test]
async fn fifo_records_of_a_group_go_out_in_order() {
    let w = world(&[]);
    let records = (1..=6).map(|i| fifo_record(&format!("m{i}"), "g", &request(&format!("O{i}")).to_string())).collect();
    let answer = w.worker.handle(event(sqs(records), 60)).await.unwrap();
    assert!(failures(&answer).is_empty());
    assert_eq!(w.service.calls(), ["O1", "O2", "O3", "O4", "O5", "O6"]);
}

#[tokio::test]
async fn a_dead_lettered_fifo_record_does_not_block_its_group() {
    let w = world(&[("O1", Script::Fail("ValidationException", ErrorClass::Permanent))]);
    let answer = w
        .worker
        .handle(event(
            sqs(vec![
                fifo_record("m1", "a", &request("O1").to_string()),
                fifo_record("m2", "a", &request("O2").to_string()),
            ]),
            60,
        ))
        .await
        .unwrap();
    assert!(failures(&answer).is_empty());
    assert_eq!(w.service.calls(), ["O1", "O2"]);
}

#[tokio::test(start_paused = true)]
async fn writes_are_paced_at_the_configured_rate() {
    let w = world_with(&[], &[("PARTNER_CENTRAL_WRITES_PER_SECOND", "2")], Some(FakeDeadLetters::default()));
    let records = (1..=5).map(|i| record(&format!("m{i}"), &request(&format!("O{i}")).to_string())).collect();
    let answer = w.worker.handle(event(sqs(records), 600)).await.unwrap();
    assert!(failures(&answer).is_empty());
    let times = w.service.call_times();
    let gaps: Vec<Duration> = times.windows(2).map(|p| p[1] - p[0]).collect();
    assert_eq!(gaps, vec![Duration::from_millis(500); 4]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_write_is_retried_in_a_paced_slot_after_the_writes_already_waiting() {
    // 2 writes/s. O1 is throttled once: the interval stretches by half to 750 ms, so O2, already
    // waiting, goes at 750 ms, and O1's retry one interval later, the stretch decayed by then (half
    // of it gone every four base intervals) to 693 ms: at 1,443 ms. Nothing is fired between slots.
    let w = world_with(
        &[("O1", Script::FailTimes(1, "ThrottlingException"))],
        &[("PARTNER_CENTRAL_WRITES_PER_SECOND", "2")],
        Some(FakeDeadLetters::default()),
    );
    let start = Instant::now();
    let records = ["O1", "O2"].iter().map(|o| record(&format!("m-{o}"), &request(o).to_string())).collect();
    let answer = w.worker.handle(event(sqs(records), 600)).await.unwrap();
    assert!(failures(&answer).is_empty(), "{answer}");
    let calls: Vec<(String, Duration)> =
        w.service.calls.lock().unwrap().iter().map(|(o, t)| (o.clone(), *t - start)).collect();
    let expected = [("O1", 0), ("O2", 750), ("O1", 1443)].map(|(o, ms)| (o.to_owned(), Duration::from_millis(ms)));
    assert_eq!(calls, expected);
}

#[tokio::test(start_paused = true)]
async fn a_write_is_tried_at_most_aws_max_attempts_times_and_fails_with_its_last_error() {
    let w = world_with(
        &[("O1", Script::FailTimes(5, "InternalServerException")), ("O2", Script::FailTimes(1, "Timeout"))],
        &[("PARTNER_CENTRAL_WRITES_PER_SECOND", "10"), ("AWS_MAX_ATTEMPTS", "2")],
        Some(FakeDeadLetters::default()),
    );
    let records = ["O1", "O2"].iter().map(|o| record(&format!("m-{o}"), &request(o).to_string())).collect();
    let answer = w.worker.handle(event(sqs(records), 600)).await.unwrap();
    assert_eq!(failures(&answer), ["m-O1"], "O2 succeeded on its second attempt");
    let calls = w.service.calls();
    assert_eq!(calls.iter().filter(|c| *c == "O1").count(), 2);
    assert!(w.queue.letters.lock().unwrap().is_empty(), "a transient failure is never dead-lettered");

    let w = world_with(
        &[("O1", Script::FailTimes(1, "ThrottlingException"))],
        &[("AWS_MAX_ATTEMPTS", "1")],
        Some(FakeDeadLetters::default()),
    );
    let error = w.worker.handle(event(request("O1"), 600)).await.unwrap_err();
    assert_eq!(error.error_type, "ThrottlingException");
    assert_eq!(w.service.calls(), ["O1"], "AWS_MAX_ATTEMPTS=1: no retry");
}

#[tokio::test(start_paused = true)]
async fn a_retry_whose_slot_would_miss_the_deadline_is_left_to_the_queue_with_its_reason() {
    // 1 write/s, 5 s left: a slot may start up to 3.5 s. Throttled at 0 s (interval 1.5 s) and at
    // 1.5 s (interval 1.5 times 1,386 ms, the first stretch as decayed by then): the third slot, at
    // 3.58 s, is too late.
    let w = world_with(
        &[("O1", Script::FailTimes(9, "ThrottlingException"))],
        &[("PARTNER_CENTRAL_WRITES_PER_SECOND", "1")],
        Some(FakeDeadLetters::default()),
    );
    let start = Instant::now();
    let error = w.worker.handle(event(request("O1"), 5)).await.unwrap_err();
    assert_eq!(error.error_type, "ThrottlingException", "the last attempt's reason, not the deadline");
    assert_eq!(
        w.service.call_times().iter().map(|t| *t - start).collect::<Vec<_>>(),
        [0, 1500].map(Duration::from_millis)
    );
    assert!(start.elapsed() < Duration::from_secs(3), "answered without waiting for the refused slot");
}

#[tokio::test(start_paused = true)]
async fn records_that_cannot_finish_before_the_deadline_are_not_started() {
    // 1 write/s, a 0.5 s margin (and 2 ms a record) and a 1 s reserve per call: with 5 s left, slots at
    // 0, 1, 2 and 3 s fit (3 <= 5 - 1.512); 4 s and later do not.
    let w = world_with(&[], &[("PARTNER_CENTRAL_WRITES_PER_SECOND", "1")], Some(FakeDeadLetters::default()));
    let records = (1..=6).map(|i| record(&format!("m{i}"), &request(&format!("O{i}")).to_string())).collect();
    let answer = w.worker.handle(event(sqs(records), 5)).await.unwrap();
    let mut failed = failures(&answer);
    failed.sort();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(w.service.calls().len(), 4);
    assert!(w.queue.letters.lock().unwrap().is_empty(), "a deadline is a retry, not a dead letter");
}

#[tokio::test]
async fn eventbridge_success_summarises_and_rejection_is_handled_by_the_dead_letter_queue() {
    let w = world(&[("O2", Script::Fail("ValidationException", ErrorClass::Permanent))]);
    let answer = w.worker.handle(event(eventbridge(request("O1")), 60)).await.unwrap();
    assert_eq!(answer["outcome"], "disassociated");
    let answer = w.worker.handle(event(eventbridge(request("O2")), 60)).await.unwrap();
    assert_eq!(answer["outcome"], "dead_lettered");
    assert_eq!(answer["errorCode"], "ValidationException");
    let letter = w.queue.letters.lock().unwrap()[0].clone();
    assert_eq!(letter.source_id.as_deref(), Some("ev-1"));
    let body: Value = serde_json::from_str(&letter.body).unwrap();
    assert_eq!(body, eventbridge(request("O2")), "the whole original event");
}

#[tokio::test]
async fn an_eventbridge_dead_letter_is_written_in_characters_sqs_takes_and_reads_back_as_the_event() {
    // U+FFFE and U+FFFF are refused in an SQS body; a rejected event carrying them is still
    // dead-lettered, as the same JSON with those two written as escapes.
    let w = world(&[]);
    let mut detail = request("O1");
    detail["RelatedEntityType"] = json!("Solutions\u{ffff}\u{fffe}");
    let answer = w.worker.handle(event(eventbridge(detail.clone()), 60)).await.unwrap();
    assert_eq!(answer["errorCode"], "ValidationError");
    let letter = w.queue.letters.lock().unwrap()[0].clone();
    assert!(!letter.body.contains(['\u{fffe}', '\u{ffff}']), "{}", letter.body);
    assert!(letter.body.contains("\\uffff"), "{}", letter.body);
    let body: Value = serde_json::from_str(&letter.body).unwrap();
    assert_eq!(body, eventbridge(detail), "the whole original event");
    assert!(w.service.calls().is_empty());
}

#[tokio::test]
async fn eventbridge_retry_and_undeliverable_rejections_are_function_errors() {
    let w = world_with(
        &[("O1", Script::Fail("InternalServerException", ErrorClass::Transient))],
        &[("PARTNER_CENTRAL_WRITES_PER_SECOND", "1000")],
        None,
    );
    let error = w.worker.handle(event(eventbridge(request("O1")), 60)).await.unwrap_err();
    assert_eq!(error.error_type, "InternalServerException");
    let error = w.worker.handle(event(eventbridge(json!({"Catalog": "Sandbox"})), 60)).await.unwrap_err();
    assert_eq!(error.error_type, "ValidationError");
    assert_eq!(w.service.calls(), ["O1", "O1", "O1"], "3 attempts, and no call for the invalid request");
}

#[tokio::test]
async fn an_already_disassociated_entity_counts_as_success() {
    let w = world(&[("O1", Script::Ambiguous(Read::Absent))]);
    let answer = w.worker.handle(event(request("O1"), 60)).await.unwrap();
    assert_eq!(answer["outcome"], "already_disassociated");
}

#[tokio::test]
async fn dry_run_validates_and_makes_no_call() {
    let w = world_with(&[], &[("DRY_RUN", "true")], Some(FakeDeadLetters::default()));
    let answer = w.worker.handle(event(request("O1"), 60)).await.unwrap();
    assert_eq!(answer["outcome"], "dry_run");
    assert!(w.service.calls().is_empty());
    let error = w.worker.handle(event(json!({}), 60)).await.unwrap_err();
    assert_eq!(error.error_type, "ValidationError");
}

#[tokio::test]
async fn an_event_of_another_service_is_a_function_error() {
    let w = world(&[]);
    let error = w.worker.handle(event(json!({"Records": [{"eventSource": "aws:s3"}]}), 60)).await.unwrap_err();
    assert_eq!(error.error_type, "UnsupportedEvent");
    assert!(w.service.calls().is_empty());
}

#[tokio::test]
async fn a_request_with_a_records_member_is_not_answered_as_an_empty_batch() {
    // Read as an SQS event with no record from SQS: an error, not `{"batchItemFailures": []}`,
    // which would report work done that never ran.
    let w = world(&[]);
    let mut document = request("O1");
    document["Records"] = json!([]);
    let error = w.worker.handle(event(document, 60)).await.unwrap_err();
    assert_eq!(error.error_type, "UnsupportedEvent");
    assert!(w.service.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_call_slower_than_the_time_left_is_cut_off_at_the_deadline() {
    let w = world(&[("O1", Script::Slow(Duration::from_secs(30)))]);
    let start = Instant::now();
    let error = w.worker.handle(event(request("O1"), 3)).await.unwrap_err();
    assert_eq!(error.error_type, "DeadlineExceeded");
    assert!(error.message.contains("cut off"), "{}", error.message);
    assert!(start.elapsed() <= Duration::from_millis(2600), "answered before the deadline: {:?}", start.elapsed());
}

#[tokio::test(start_paused = true)]
async fn an_association_check_slower_than_the_time_left_is_cut_off_at_the_deadline() {
    let w =
        world_with(&[("O1", Script::AmbiguousSlowly(Duration::from_secs(30)))], &[], Some(FakeDeadLetters::default()));
    let start = Instant::now();
    let error = w.worker.handle(event(request("O1"), 3)).await.unwrap_err();
    assert_eq!(error.error_type, "DeadlineExceeded");
    assert!(error.message.contains("cut off"), "{}", error.message);
    assert_eq!(*w.service.checks.lock().unwrap(), 1, "the check was started");
    assert!(start.elapsed() <= Duration::from_millis(2600), "answered before the deadline: {:?}", start.elapsed());
    assert!(w.queue.letters.lock().unwrap().is_empty(), "not dead-lettered: the check may yet say it is done");
}

#[tokio::test(start_paused = true)]
async fn a_dead_letter_not_sent_before_the_deadline_is_given_up_and_its_record_delivered_again() {
    // Rejected at once, but the dead-letter queue is slow: rather than let the invocation time out
    // (and the whole batch come back), the record alone is reported failed before the deadline.
    let slow = FakeDeadLetters { slow: Some(Duration::from_secs(30)), ..Default::default() };
    let w = world_with(
        &[("O1", Script::Fail("AccessDeniedException", ErrorClass::Permanent))],
        &[("PARTNER_CENTRAL_WRITES_PER_SECOND", "1000")],
        Some(slow),
    );
    let batch = sqs(vec![record("m1", &request("O1").to_string()), record("m2", &request("O2").to_string())]);
    let start = Instant::now();
    let answer = w.worker.handle(event(batch, 3)).await.unwrap();
    assert_eq!(failures(&answer), ["m1"], "delivered again, not lost; m2 succeeded");
    assert!(w.queue.letters.lock().unwrap().is_empty());
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(3), "answered before the deadline: {elapsed:?}");
    assert!(elapsed > Duration::from_millis(2500), "the dead letter had the margin too: {elapsed:?}");
}

#[tokio::test]
async fn a_deadline_that_is_no_epoch_time_is_taken_as_none() {
    // `cargo lambda watch` sends its timeout (600000) where Lambda sends milliseconds since the epoch.
    let w = world(&[]);
    let mut invocation = event(request("O1"), 60);
    invocation.context.deadline = 600_000;
    assert_eq!(w.worker.handle(invocation).await.unwrap()["outcome"], "disassociated");
}

/// Fast pacing, one attempt per write, and a queue that moves a message after its third receive.
const THIRD_RECEIVE_IS_LAST: [(&str, &str); 3] =
    [("PARTNER_CENTRAL_WRITES_PER_SECOND", "1000"), ("AWS_MAX_ATTEMPTS", "1"), ("MAX_RECEIVE_COUNT", "3")];

/// At the message's last receive (`MAX_RECEIVE_COUNT`, the queue's `maxReceiveCount`), a transient
/// failure is dead-lettered by the function, with its reason: the queue's redrive would move it on the
/// next receive without one. Before that receive it is reported failed, to be delivered again.
#[tokio::test]
async fn a_transient_failure_at_the_last_receive_is_dead_lettered_with_its_reason() {
    let throttled = Script::Fail("ThrottlingException", ErrorClass::Transient);
    let w = world_with(
        &[("O1", throttled.clone()), ("O2", throttled)],
        &THIRD_RECEIVE_IS_LAST,
        Some(FakeDeadLetters::default()),
    );
    let records = vec![
        received(record("m1", &request("O1").to_string()), 3),
        received(record("m2", &request("O2").to_string()), 2),
        received(record("m3", &request("O3").to_string()), 3),
    ];
    let answer = w.worker.handle(event(sqs(records), 60)).await.unwrap();

    assert_eq!(failures(&answer), ["m2"], "m1 is dead-lettered, m3 succeeded");
    let letters = w.queue.letters.lock().unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].source_id.as_deref(), Some("m1"));
    assert_eq!(letters[0].code, "ThrottlingException", "the reason is the failure's own");
    assert!(letters[0].message.contains("receive 3 of the queue's maxReceiveCount 3"), "{}", letters[0].message);
    assert_eq!(letters[0].body, request("O1").to_string(), "the body unchanged");
}

#[tokio::test]
async fn without_max_receive_count_or_a_dead_letter_queue_the_last_receive_is_reported_failed() {
    let throttled = Script::Fail("ThrottlingException", ErrorClass::Transient);
    let with_count = &THIRD_RECEIVE_IS_LAST[..];
    let fast = &with_count[..2];
    let broken = FakeDeadLetters { broken: true, ..Default::default() };
    for (vars, dlq) in [(fast, Some(FakeDeadLetters::default())), (with_count, Some(broken)), (with_count, None)] {
        let w = world_with(&[("O1", throttled.clone())], vars, dlq);
        let records = vec![received(record("m1", &request("O1").to_string()), 3)];
        let answer = w.worker.handle(event(sqs(records), 60)).await.unwrap();
        assert_eq!(failures(&answer), ["m1"], "reported, so the queue keeps it: {vars:?}");
        assert!(w.queue.letters.lock().unwrap().is_empty());
    }
}

/// A FIFO record held back behind its group's failure is reported failed even at its last receive: the
/// record that blocks it is at its last receive too (SQS locks the group while one is in flight), and
/// failed only because its dead letter could not be sent. The redrive moves both, in order, where
/// dead-lettering the second alone would put it ahead of the first.
#[tokio::test]
async fn a_held_back_fifo_record_at_its_last_receive_is_left_to_the_redrive_in_order() {
    let w = world_with(
        &[("O1", Script::Fail("InternalServerException", ErrorClass::Transient))],
        &THIRD_RECEIVE_IS_LAST,
        Some(FakeDeadLetters { refusing: Some("m1"), ..Default::default() }),
    );
    let m1 = received(fifo_record("m1", "g", &request("O1").to_string()), 3);
    let m2 = received(fifo_record("m2", "g", &request("O2").to_string()), 3);
    let answer = w.worker.handle(event(sqs(vec![m1, m2]), 60)).await.unwrap();

    assert_eq!(failures(&answer), ["m1", "m2"]);
    assert_eq!(w.service.calls(), ["O1"], "m2 was never tried");
    assert!(w.queue.letters.lock().unwrap().is_empty(), "m2 is not dead-lettered ahead of m1");
}

// ------------------------------------------------------------------ replacements (ReplaceWith)

const MARKETPLACE_SOLUTION: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-abc";
const OFFER_OLD: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-old";
const OFFER_NEW: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-new";

fn entity(entity_type: EntityType, identifier: &str) -> RelatedEntity {
    RelatedEntity::new(entity_type, identifier).unwrap()
}

fn legacy() -> RelatedEntity {
    entity(EntityType::Solutions, "S-0000001")
}

fn marketplace() -> RelatedEntity {
    entity(EntityType::AwsMarketplaceSolutions, MARKETPLACE_SOLUTION)
}

/// A request to replace `old` by `new` on `opportunity`.
fn replacement(opportunity: &str, old: &RelatedEntity, new: &RelatedEntity) -> Value {
    let request = fixtures::request("Sandbox", opportunity, old.entity_type().as_str(), old.identifier());
    fixtures::replacing(request, new.entity_type().as_str(), new.identifier())
}

/// The legacy solution of O1 to be replaced by a Marketplace solution: the documented order.
fn solution_replacement() -> Value {
    replacement("O1", &legacy(), &marketplace())
}

/// The offer of O1 to be replaced by another: the opportunity holds one offer at most.
fn offer_replacement() -> Value {
    replacement(
        "O1",
        &entity(EntityType::AwsMarketplaceOffers, OFFER_OLD),
        &entity(EntityType::AwsMarketplaceOffers, OFFER_NEW),
    )
}

fn write(operation: &str, entity: &RelatedEntity) -> String {
    format!("{operation} {} {}", entity.entity_type(), entity.identifier())
}

fn associated(entity: &RelatedEntity) -> String {
    write("AssociateOpportunity", entity)
}

fn disassociated(entity: &RelatedEntity) -> String {
    write("DisassociateOpportunity", entity)
}

/// A world whose O1 holds `entities`.
fn holding(entities: &[RelatedEntity]) -> World {
    let w = world(&[]);
    w.service.hold("O1", entities);
    w
}

fn letters(w: &World) -> Vec<Letter> {
    w.queue.letters.lock().unwrap().clone()
}

#[tokio::test]
async fn a_legacy_solution_is_replaced_by_a_marketplace_solution_associated_first() {
    let w = holding(&[legacy()]);
    let answer = w.worker.handle(event(solution_replacement(), 60)).await.unwrap();
    assert_eq!(answer["outcome"], "replaced");
    assert_eq!(answer["request"], solution_replacement(), "the request as understood, ReplaceWith included");
    assert_eq!(w.service.writes(), [associated(&marketplace()), disassociated(&legacy())]);
    assert_eq!(w.service.holdings("O1"), [marketplace()]);
    assert_eq!(w.service.reads(), 1, "one read, before the writes");
}

#[tokio::test]
async fn an_offer_is_replaced_by_another_offer_disassociated_first() {
    let (old, new) =
        (entity(EntityType::AwsMarketplaceOffers, OFFER_OLD), entity(EntityType::AwsMarketplaceOffers, OFFER_NEW));
    let w = holding(&[old.clone(), legacy()]);
    let answer = w.worker.handle(event(offer_replacement(), 60)).await.unwrap();
    assert_eq!(answer["outcome"], "replaced");
    assert_eq!(w.service.writes(), [disassociated(&old), associated(&new)]);
    assert_eq!(w.service.holdings("O1"), [legacy(), new]);
}

/// A valid identifier of `entity_type`, the `i`th of a series.
fn nth_identifier(entity_type: EntityType, i: usize) -> String {
    let marketplace = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace";
    match entity_type {
        EntityType::AwsProducts => format!("Product{i}"),
        EntityType::Solutions => format!("S-{i}"),
        EntityType::AwsMarketplaceSolutions => format!("{marketplace}/Solution/x-{i}"),
        EntityType::AwsMarketplaceProducts => format!("{marketplace}/Product/x-{i}"),
        EntityType::AwsMarketplaceOffers => format!("{marketplace}/Offer/x-{i}"),
        EntityType::AwsMarketplaceOfferSets => format!("{marketplace}/OfferSet/offerset-{i}"),
    }
}

/// For every kind: the documented order while the opportunity has room for one more of the new
/// entity's kind; the old one out first when it is at its limit and removing the old one makes room.
#[tokio::test]
async fn each_kind_is_replaced_associating_first_with_room_and_disassociating_first_at_its_limit() {
    // The limits themselves are pinned in domain::opportunity's tests.
    for entity_type in EntityType::ALL {
        let max = AssociationLimit::of(entity_type).max;
        let identifier = |i: usize| nth_identifier(entity_type, i);
        let old = entity(entity_type, &identifier(0));
        let new = entity(entity_type, &identifier(max));
        for (held, first) in [(max - 1, "AssociateOpportunity"), (max, "DisassociateOpportunity")] {
            if held == 0 {
                continue; // an offer with room is an opportunity without the old one
            }
            let holdings: Vec<RelatedEntity> = (0..held).map(|i| entity(entity_type, &identifier(i))).collect();
            let w = holding(&holdings);
            let answer = w.worker.handle(event(replacement("O1", &old, &new), 60)).await.unwrap();
            assert_eq!(answer["outcome"], "replaced", "{entity_type} holding {held}");
            let writes = w.service.writes();
            assert!(writes[0].starts_with(first), "{entity_type} holding {held} of {max}: {writes:?}");
            assert_eq!(writes.len(), 2);
            let now = w.service.holdings("O1");
            assert!(now.contains(&new) && !now.contains(&old) && now.len() == held, "{entity_type}: {now:?}");
        }
    }
}

#[tokio::test]
async fn a_replacement_already_done_is_already_replaced_with_no_write() {
    let w = holding(&[marketplace()]);
    let answer = w.worker.handle(event(solution_replacement(), 60)).await.unwrap();
    assert_eq!(answer["outcome"], "already_replaced");
    assert!(w.service.writes().is_empty());
    assert_eq!(w.service.reads(), 1);
}

#[tokio::test]
async fn a_redelivery_after_the_association_only_removes_the_old_entity() {
    let w = holding(&[legacy(), marketplace()]);
    let answer = w.worker.handle(event(solution_replacement(), 60)).await.unwrap();
    assert_eq!(answer["outcome"], "replaced");
    assert_eq!(w.service.writes(), [disassociated(&legacy())]);
}

#[tokio::test]
async fn a_redelivery_after_the_old_offer_was_removed_only_associates_the_new_one() {
    let w = holding(&[]);
    let answer = w.worker.handle(event(offer_replacement(), 60)).await.unwrap();
    assert_eq!(answer["outcome"], "replaced", "the intent is the new one on the opportunity");
    assert_eq!(w.service.writes(), [associated(&entity(EntityType::AwsMarketplaceOffers, OFFER_NEW))]);
}

#[tokio::test]
async fn an_association_refused_for_good_removes_nothing_and_names_its_step() {
    let refusals = [
        Answer::Fail("AccessDeniedException", ErrorClass::Permanent),
        Answer::Fail("ValidationException", ErrorClass::Permanent),
        // The opportunity's limit for that kind: a business rule, checked against a read.
        Answer::Fail("ValidationException", ErrorClass::Ambiguous),
    ];
    for refusal in refusals {
        let w = holding(&[legacy()]);
        w.service.answer("AssociateOpportunity", std::slice::from_ref(&refusal));
        let body = solution_replacement().to_string();
        let answer = w.worker.handle(event(sqs(vec![record("m1", &body)]), 60)).await.unwrap();
        assert!(failures(&answer).is_empty(), "{refusal:?}: dead-lettered, not retried");
        assert_eq!(w.service.writes(), [associated(&marketplace())], "{refusal:?}: no disassociation");
        assert_eq!(w.service.holdings("O1"), [legacy()]);
        let letter = &letters(&w)[0];
        assert_eq!(letter.body, body);
        let expected =
            format!("step 1 of 2 (AssociateOpportunity of AwsMarketplaceSolutions {MARKETPLACE_SOLUTION}): ");
        assert!(letter.message.starts_with(&expected), "{refusal:?}: {}", letter.message);
        assert!(letter.message.ends_with("; nothing was removed"), "{}", letter.message);
        assert!(letter.code == "AccessDeniedException" || letter.code == "ValidationException", "the service's code");
    }
}

#[tokio::test]
async fn a_transient_failure_of_the_association_is_retried_and_the_redelivery_replaces() {
    let w = holding(&[legacy()]);
    let throttled = Answer::Fail("ThrottlingException", ErrorClass::Transient);
    w.service.answer("AssociateOpportunity", &[throttled.clone(), throttled.clone(), throttled]);
    let body = solution_replacement().to_string();
    let answer = w.worker.handle(event(sqs(vec![record("m1", &body)]), 60)).await.unwrap();
    assert_eq!(failures(&answer), ["m1"]);
    assert_eq!(w.service.writes(), vec![associated(&marketplace()); 3], "AWS_MAX_ATTEMPTS, and nothing removed");
    assert_eq!(w.service.holdings("O1"), [legacy()]);
    assert!(letters(&w).is_empty());

    let again = w.worker.handle(event(sqs(vec![received(record("m1", &body), 2)]), 60)).await.unwrap();
    assert!(failures(&again).is_empty());
    assert_eq!(w.service.holdings("O1"), [marketplace()]);
}

#[tokio::test]
async fn a_disassociation_refused_for_good_after_the_association_leaves_both_and_says_so() {
    let w = holding(&[legacy()]);
    w.service.answer("DisassociateOpportunity", &[Answer::Fail("AccessDeniedException", ErrorClass::Permanent)]);
    let answer = w.worker.handle(event(eventbridge(solution_replacement()), 60)).await.unwrap();
    assert_eq!(answer["outcome"], "dead_lettered");
    assert_eq!(answer["errorCode"], "AccessDeniedException");
    assert_eq!(w.service.holdings("O1"), [legacy(), marketplace()]);
    let message = &letters(&w)[0].message;
    assert!(
        message.starts_with("step 2 of 2 (DisassociateOpportunity of Solutions S-0000001): AccessDeniedException"),
        "{message}"
    );
    assert!(
        message.ends_with(&format!(
            "AwsMarketplaceSolutions {MARKETPLACE_SOLUTION} is on the opportunity, and Solutions S-0000001 stays on it"
        )),
        "{message}"
    );
}

#[tokio::test]
async fn a_transient_failure_of_the_disassociation_is_finished_by_the_redelivery() {
    let w = holding(&[legacy()]);
    let failing = Answer::Fail("InternalServerException", ErrorClass::Transient);
    w.service.answer("DisassociateOpportunity", &[failing.clone(), failing.clone(), failing]);
    let body = solution_replacement().to_string();
    let answer = w.worker.handle(event(sqs(vec![record("m1", &body)]), 60)).await.unwrap();
    assert_eq!(failures(&answer), ["m1"]);
    assert_eq!(w.service.holdings("O1"), [legacy(), marketplace()], "the replacement stays on");

    let again = w.worker.handle(event(sqs(vec![received(record("m1", &body), 2)]), 60)).await.unwrap();
    assert!(failures(&again).is_empty());
    assert_eq!(w.service.writes().last().unwrap(), &disassociated(&legacy()), "only the step left");
    assert_eq!(w.service.writes().iter().filter(|w| w.starts_with("Associate")).count(), 1);
    assert_eq!(w.service.holdings("O1"), [marketplace()]);
}

#[tokio::test]
async fn an_offer_removed_and_its_replacement_refused_is_dead_lettered_saying_the_opportunity_has_none() {
    let w = holding(&[entity(EntityType::AwsMarketplaceOffers, OFFER_OLD)]);
    w.service.answer("AssociateOpportunity", &[Answer::Fail("ValidationException", ErrorClass::Permanent)]);
    let answer = w.worker.handle(event(sqs(vec![record("m1", &offer_replacement().to_string())]), 60)).await.unwrap();
    assert!(failures(&answer).is_empty());
    assert!(w.service.holdings("O1").is_empty());
    let letter = &letters(&w)[0];
    assert_eq!(letter.code, "ValidationException");
    let expected = format!(
        "the old offer {OFFER_OLD} was removed and the new one {OFFER_NEW} was refused: the opportunity now has no offer or offer set: step 2 of 2 (AssociateOpportunity of AwsMarketplaceOffers {OFFER_NEW}): ValidationException: "
    );
    assert!(letter.message.starts_with(&expected), "{}", letter.message);
}

#[tokio::test]
async fn in_the_offer_order_each_step_fails_as_its_answer_says_and_the_redelivery_finishes() {
    let old = entity(EntityType::AwsMarketplaceOffers, OFFER_OLD);
    let new = entity(EntityType::AwsMarketplaceOffers, OFFER_NEW);
    // Step 1 refused for good: nothing changed.
    let w = holding(std::slice::from_ref(&old));
    w.service.answer("DisassociateOpportunity", &[Answer::Fail("AccessDeniedException", ErrorClass::Permanent)]);
    let error = w.worker.handle(event(offer_replacement(), 60)).await.unwrap_err();
    assert_eq!(error.error_type, "AccessDeniedException");
    assert!(
        error.message.starts_with("step 1 of 2 (DisassociateOpportunity of AwsMarketplaceOffers"),
        "{}",
        error.message
    );
    assert!(error.message.ends_with("; nothing was changed"), "{}", error.message);
    assert_eq!(w.service.holdings("O1"), std::slice::from_ref(&old));

    // Step 2 transient: the old one is gone, the redelivery associates the new one.
    let w = holding(std::slice::from_ref(&old));
    let failing = Answer::Fail("InternalServerException", ErrorClass::Transient);
    w.service.answer("AssociateOpportunity", &[failing.clone(), failing.clone(), failing]);
    let error = w.worker.handle(event(offer_replacement(), 60)).await.unwrap_err();
    assert_eq!(error.error_type, "InternalServerException");
    assert!(error.message.contains("was removed; the redelivery associates"), "{}", error.message);
    assert!(w.service.holdings("O1").is_empty());
    let again = w.worker.handle(event(offer_replacement(), 60)).await.unwrap();
    assert_eq!(again["outcome"], "replaced");
    assert_eq!(w.service.holdings("O1"), [new]);
}

#[tokio::test]
async fn an_ambiguous_answer_to_a_step_is_settled_by_reading_the_opportunity() {
    // The association applied, and answered a conflict (or a business rule): the read shows it there.
    for ambiguous in [("ConflictException", ErrorClass::Ambiguous), ("ValidationException", ErrorClass::Ambiguous)] {
        let w = holding(&[legacy()]);
        w.service.answer("AssociateOpportunity", &[Answer::AppliedThenFail(ambiguous.0, ambiguous.1)]);
        let answer = w.worker.handle(event(solution_replacement(), 60)).await.unwrap();
        assert_eq!(answer["outcome"], "replaced", "{ambiguous:?}");
        assert_eq!(w.service.reads(), 2, "the first read, and the one that settled the answer");
        assert_eq!(w.service.holdings("O1"), [marketplace()]);
    }
    // The disassociation applied, its answer lost (a 5xx): the retry is not found, and the read shows it gone.
    let w = holding(&[legacy()]);
    w.service.answer(
        "DisassociateOpportunity",
        &[Answer::AppliedThenFail("InternalServerException", ErrorClass::Transient)],
    );
    let answer = w.worker.handle(event(solution_replacement(), 60)).await.unwrap();
    assert_eq!(answer["outcome"], "replaced");
    // A read that fails after an ambiguous answer is a retry, nothing removed: the redelivery reads again.
    let w = holding(&[legacy()]);
    w.service.answer("AssociateOpportunity", &[Answer::Fail("ConflictException", ErrorClass::Ambiguous)]);
    w.service.fail_reads(&[None, Some(api_error("InternalServerException", ErrorClass::Transient))]);
    let error = w.worker.handle(event(solution_replacement(), 60)).await.unwrap_err();
    assert_eq!(error.error_type, "InternalServerException");
    assert!(error.message.contains("it answered ConflictException, and reading the opportunity"), "{}", error.message);
    assert_eq!(w.service.holdings("O1"), [legacy()]);
    // The read shows the association did not happen: a conflict that means nothing is there is refused.
    let w = holding(&[legacy()]);
    w.service.answer("AssociateOpportunity", &[Answer::Fail("ConflictException", ErrorClass::Ambiguous)]);
    let error = w.worker.handle(event(solution_replacement(), 60)).await.unwrap_err();
    assert_eq!(error.error_type, "ConflictException");
    assert_eq!(w.service.holdings("O1"), [legacy()]);
}

#[tokio::test(start_paused = true)]
async fn a_replacement_cut_off_between_its_writes_is_finished_by_the_redelivery() {
    // 1 write/s, 5 s left: the last start is at 3.5 s. The association starts at 0 (room for the second
    // slot) but takes 3.6 s: the disassociation cannot start, and the redelivery does it.
    let w = world_with(&[], &[("PARTNER_CENTRAL_WRITES_PER_SECOND", "1")], Some(FakeDeadLetters::default()));
    w.service.hold("O1", &[legacy()]);
    w.service.answer("AssociateOpportunity", &[Answer::Slow(Duration::from_millis(3600))]);
    let error = w.worker.handle(event(solution_replacement(), 5)).await.unwrap_err();
    assert_eq!(error.error_type, "DeadlineExceeded");
    assert!(
        error
            .message
            .starts_with("step 2 of 2 (DisassociateOpportunity of Solutions S-0000001): DeadlineExceeded: not started"),
        "{}",
        error.message
    );
    assert!(error.message.ends_with("the redelivery removes Solutions S-0000001"), "{}", error.message);
    assert_eq!(w.service.holdings("O1"), [legacy(), marketplace()]);

    let answer = w.worker.handle(event(solution_replacement(), 60)).await.unwrap();
    assert_eq!(answer["outcome"], "replaced");
    assert_eq!(w.service.holdings("O1"), [marketplace()]);
}

#[tokio::test(start_paused = true)]
async fn a_replacement_is_started_only_when_both_writes_fit_before_the_deadline() {
    // 1 write/s, 2.4 s left: one write may start up to 0.9 s, so a plain disassociation goes now; a
    // replacement's first write would leave its second no slot, so neither is made.
    let settings = [("PARTNER_CENTRAL_WRITES_PER_SECOND", "1")];
    let w = world_with(&[], &settings, Some(FakeDeadLetters::default()));
    w.service.hold("O1", &[legacy()]);
    let error = w.worker.handle(event_within(solution_replacement(), Duration::from_millis(2400))).await.unwrap_err();
    assert_eq!(error.error_type, "DeadlineExceeded");
    assert!(error.message.starts_with("step 1 of 2 (AssociateOpportunity"), "{}", error.message);
    assert!(w.service.writes().is_empty());

    let w = world_with(&[], &settings, Some(FakeDeadLetters::default()));
    let answer = w.worker.handle(event_within(request("O2"), Duration::from_millis(2400))).await.unwrap();
    assert_eq!(answer["outcome"], "disassociated");
}

#[tokio::test(start_paused = true)]
async fn each_write_of_a_replacement_takes_its_own_paced_slot() {
    let w = world_with(&[], &[("PARTNER_CENTRAL_WRITES_PER_SECOND", "2")], Some(FakeDeadLetters::default()));
    w.service.hold("O1", &[legacy()]);
    let start = Instant::now();
    w.worker.handle(event(solution_replacement(), 60)).await.unwrap();
    let times: Vec<Duration> = w.service.call_times().iter().map(|t| *t - start).collect();
    assert_eq!(times, [Duration::ZERO, Duration::from_millis(500)]);
}

#[tokio::test]
async fn an_eventbridge_replacement_without_a_dead_letter_queue_fails_with_the_reason_it_would_have_had() {
    let w = world_with(&[], &[("PARTNER_CENTRAL_WRITES_PER_SECOND", "1000")], None);
    w.service.hold("O1", &[legacy()]);
    w.service.answer("AssociateOpportunity", &[Answer::Fail("AccessDeniedException", ErrorClass::Permanent)]);
    let error = w.worker.handle(event(eventbridge(solution_replacement()), 60)).await.unwrap_err();
    assert_eq!(error.error_type, "AccessDeniedException");
    assert!(
        error.message.starts_with("step 1 of 2 (AssociateOpportunity of AwsMarketplaceSolutions"),
        "{}",
        error.message
    );
    assert!(error.message.ends_with("nothing was removed"), "{}", error.message);
}

#[tokio::test]
async fn a_replacement_whose_first_read_fails_makes_no_write() {
    let w = holding(&[legacy()]);
    w.service.fail_reads(&[Some(api_error("ThrottlingException", ErrorClass::Transient))]);
    let body = solution_replacement().to_string();
    let answer = w.worker.handle(event(sqs(vec![record("m1", &body)]), 60)).await.unwrap();
    assert_eq!(failures(&answer), ["m1"], "retried");
    w.service.fail_reads(&[Some(api_error("AccessDeniedException", ErrorClass::Permanent))]);
    w.worker.handle(event(sqs(vec![record("m2", &body)]), 60)).await.unwrap();
    let letter = &letters(&w)[0];
    assert_eq!((letter.source_id.as_deref(), letter.code.as_str()), (Some("m2"), "AccessDeniedException"));
    assert!(
        letter.message.starts_with("reading the opportunity (GetOpportunity): AccessDeniedException"),
        "{}",
        letter.message
    );
    assert!(w.service.writes().is_empty());
    // An opportunity that does not exist.
    let w = world(&[("O9", Script::Ambiguous(Read::NoSuchOpportunity))]);
    let error = w.worker.handle(event(replacement("O9", &legacy(), &marketplace()), 60)).await.unwrap_err();
    assert_eq!(error.error_type, "ResourceNotFoundException");
    assert!(error.message.contains("does not exist"), "{}", error.message);
    assert!(w.service.calls().is_empty());
}

#[tokio::test]
async fn dry_run_validates_a_replacement_and_makes_no_call_or_read() {
    let w = world_with(&[], &[("DRY_RUN", "true")], Some(FakeDeadLetters::default()));
    w.service.hold("O1", &[legacy()]);
    let answer = w.worker.handle(event(solution_replacement(), 60)).await.unwrap();
    assert_eq!(answer["outcome"], "dry_run");
    assert_eq!((w.service.writes().len(), w.service.reads()), (0, 0));
    let same = replacement("O1", &legacy(), &legacy());
    let error = w.worker.handle(event(same, 60)).await.unwrap_err();
    assert_eq!(error.error_type, "ValidationError");
    assert!(error.message.contains("ReplaceWith"), "{}", error.message);
}

#[tokio::test]
async fn a_plain_disassociation_of_the_last_entity_of_its_type_refused_suggests_a_replacement() {
    let w = holding(&[legacy(), entity(EntityType::AwsProducts, "AmazonEC2")]);
    w.service.answer("DisassociateOpportunity", &[Answer::Fail("ValidationException", ErrorClass::Ambiguous)]);
    let answer = w.worker.handle(event(sqs(vec![record("m1", &request("O1").to_string())]), 60)).await.unwrap();
    assert!(failures(&answer).is_empty());
    let letter = &letters(&w)[0];
    assert_eq!(letter.code, "ValidationException");
    assert!(
        letter.message.contains("S-0000001 is the last entity of type Solutions on the opportunity"),
        "{}",
        letter.message
    );
    assert!(letter.message.contains("ReplaceWith"), "{}", letter.message);

    // Not the last of its type: refused all the same, with no such suggestion.
    let w = holding(&[legacy(), entity(EntityType::Solutions, "S-0000002")]);
    w.service.answer("DisassociateOpportunity", &[Answer::Fail("ValidationException", ErrorClass::Ambiguous)]);
    w.worker.handle(event(sqs(vec![record("m1", &request("O1").to_string())]), 60)).await.unwrap();
    assert!(!letters(&w)[0].message.contains("ReplaceWith"), "{}", letters(&w)[0].message);
}

#[tokio::test]
async fn an_eventbridge_dead_letter_is_the_event_byte_for_byte() {
    // Keys out of order, numbers no 64-bit float holds, odd spacing: none of it may change.
    let text = r#"{"detail":{"RelatedEntityIdentifier":"S-1",  "Catalog":"Sandbox","OpportunityIdentifier":"O1",
        "RelatedEntityType":"solutions"},"source":"com.example.crm","id":"ev-7" , "detail-type":"x","version":"0",
        "big":12345678901234567890123,"hundred":1e2,"pi":3.14159265358979323846264338327950288}"#;
    let w = world(&[]);
    let answer = w.worker.handle(raw_event(text, 60)).await.unwrap();
    assert_eq!(answer["errorCode"], "ValidationError", "{answer}");
    let letters = w.queue.letters.lock().unwrap().clone();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].body, text, "the bytes that arrived");
    assert_eq!(letters[0].source_id.as_deref(), Some("ev-7"));
}

/// A FIFO record with a malformed attribute (the receive count as a number), in group g, before
/// another record of g and one of group h.
fn batch_with_a_malformed_fifo_record() -> Value {
    let mut malformed = fifo_record("m1", "g", &request("O1").to_string());
    malformed["attributes"]["ApproximateReceiveCount"] = json!(1);
    sqs(vec![
        malformed,
        fifo_record("m2", "g", &request("O2").to_string()),
        fifo_record("m3", "h", &request("O3").to_string()),
    ])
}

#[tokio::test]
async fn a_malformed_fifo_record_holds_back_the_rest_of_its_group() {
    let w = world_with(&[], &[("PARTNER_CENTRAL_WRITES_PER_SECOND", "1000")], None);
    let answer = w.worker.handle(event(batch_with_a_malformed_fifo_record(), 60)).await.unwrap();
    assert_eq!(failures(&answer), ["m1", "m2"], "m2 stays behind m1");
    assert_eq!(w.service.calls(), ["O3"], "m2 was never tried; group h went on");
}

#[tokio::test]
async fn a_malformed_fifo_record_is_dead_lettered_with_its_body_and_its_group_goes_on() {
    let w = world(&[]);
    let answer = w.worker.handle(event(batch_with_a_malformed_fifo_record(), 60)).await.unwrap();
    assert!(failures(&answer).is_empty(), "{answer}");
    let letters = w.queue.letters.lock().unwrap().clone();
    assert_eq!(letters.len(), 1);
    assert_eq!((letters[0].source_id.as_deref(), letters[0].code.as_str()), (Some("m1"), "ValidationError"));
    assert_eq!(letters[0].body, request("O1").to_string(), "its body, not the whole record");
    let mut calls = w.service.calls();
    calls.sort();
    assert_eq!(calls, ["O2", "O3"]);
}

#[tokio::test]
async fn a_record_whose_message_id_is_no_string_is_dead_lettered_with_its_body() {
    let body = request("O1").to_string();
    let mut numbered = record("m1", &body);
    numbered["messageId"] = json!(7);
    let w = world(&[]);
    let answer = w.worker.handle(event(sqs(vec![numbered]), 60)).await.unwrap();
    assert!(failures(&answer).is_empty(), "{answer}");
    let letters = w.queue.letters.lock().unwrap().clone();
    assert_eq!(letters.len(), 1);
    assert_eq!((letters[0].body.as_str(), letters[0].source_id.as_deref()), (body.as_str(), None));
    assert!(w.service.calls().is_empty());
}

#[tokio::test]
async fn a_failed_fifo_record_whose_group_cannot_be_read_holds_back_every_later_record() {
    let mut unreadable = fifo_record("m1", "g", &request("O1").to_string());
    unreadable["attributes"] = json!("not an object");
    let batch = sqs(vec![
        fifo_record("m0", "h", &request("O0").to_string()),
        unreadable,
        fifo_record("m2", "g", &request("O2").to_string()),
        fifo_record("m3", "h", &request("O3").to_string()),
    ]);
    let w = world_with(&[], &[("PARTNER_CENTRAL_WRITES_PER_SECOND", "1000")], None);
    let answer = w.worker.handle(event(batch, 60)).await.unwrap();
    assert_eq!(failures(&answer), ["m1", "m2", "m3"], "it may belong to any group: h's later record waits too");
    assert_eq!(w.service.calls(), ["O0"]);
}

#[tokio::test]
async fn an_entity_absent_at_its_messages_first_receive_is_not_associated() {
    let w = world(&[("O1", Script::Ambiguous(Read::Absent))]);
    let first = record("m1", &request("O1").to_string());
    let (answer, metrics) = w.worker.handle_measured(event(sqs(vec![first]), 60)).await;
    assert!(failures(&answer.unwrap()).is_empty(), "a success: deleted, so nothing loops");
    assert!(w.queue.letters.lock().unwrap().is_empty());
    assert_eq!((metric(&metrics, "NotAssociated"), metric(&metrics, "AlreadyDisassociated")), (1, 0));
}

#[tokio::test]
async fn an_entity_absent_at_a_later_receive_or_an_unknown_one_is_already_disassociated() {
    let w = world(&[("O1", Script::Ambiguous(Read::Absent)), ("O2", Script::Ambiguous(Read::Absent))]);
    let later = received(record("m1", &request("O1").to_string()), 2);
    let uncounted = fixtures::without_attributes(record("m2", &request("O2").to_string()));
    let (answer, metrics) = w.worker.handle_measured(event(sqs(vec![later, uncounted]), 60)).await;
    assert!(failures(&answer.unwrap()).is_empty());
    assert_eq!((metric(&metrics, "NotAssociated"), metric(&metrics, "AlreadyDisassociated")), (0, 2));
}

#[tokio::test]
async fn an_entity_absent_from_an_eventbridge_event_or_a_direct_request_is_already_disassociated() {
    let w = world(&[("O1", Script::Ambiguous(Read::Absent))]);
    for payload in [eventbridge(request("O1")), request("O1")] {
        let (answer, metrics) = w.worker.handle_measured(event(payload, 60)).await;
        assert_eq!(answer.unwrap()["outcome"], "already_disassociated");
        assert_eq!((metric(&metrics, "NotAssociated"), metric(&metrics, "AlreadyDisassociated")), (0, 1));
    }
}

#[tokio::test]
async fn an_entity_absent_after_an_earlier_attempt_of_the_invocation_is_already_disassociated() {
    // The first attempt's 5xx was applied: at the message's first receive still, the entity's absence
    // is the function's own doing.
    let w = world(&[("O1", Script::AppliedThenAmbiguous)]);
    let first = record("m1", &request("O1").to_string());
    let (answer, metrics) = w.worker.handle_measured(event(sqs(vec![first]), 60)).await;
    assert!(failures(&answer.unwrap()).is_empty());
    assert_eq!(w.service.calls(), ["O1", "O1"]);
    assert_eq!((metric(&metrics, "NotAssociated"), metric(&metrics, "AlreadyDisassociated")), (0, 1));
}

/// A replacement dead-lettered at its message's last receive: no redelivery follows, so its reason says
/// what the opportunity is left with and promises nothing more.
#[tokio::test]
async fn a_replacement_dead_lettered_at_its_last_receive_promises_no_redelivery() {
    let w = world_with(&[], &THIRD_RECEIVE_IS_LAST, Some(FakeDeadLetters::default()));
    w.service.hold("O1", &[legacy()]);
    let failing = Answer::Fail("InternalServerException", ErrorClass::Transient);
    w.service.answer("DisassociateOpportunity", &[failing.clone(), failing.clone(), failing]);
    let records = vec![
        received(record("m1", &solution_replacement().to_string()), 3),
        received(record("m2", &solution_replacement().to_string()), 2),
    ];
    let answer = w.worker.handle(event(sqs(records), 60)).await.unwrap();
    assert_eq!(failures(&answer), ["m2"], "m1 is dead-lettered at its last receive, m2 delivered again");
    let letter = &letters(&w)[0];
    assert_eq!(letter.code, "InternalServerException");
    assert!(!letter.message.contains("the redelivery"), "{}", letter.message);
    assert!(letter.message.contains("and Solutions S-0000001 stays on it"), "{}", letter.message);
    assert!(letter.message.contains("receive 3 of the queue's maxReceiveCount 3"), "{}", letter.message);
}
