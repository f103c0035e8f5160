//! Holds (docs/holds.md), driven through in-memory fakes: a record that must wait is sent again to
//! the work queue, delayed, with its hold in its attributes, or kept invisible; a continuation is no
//! attempt; the age bound, FIFO, a broken queue, no queue; EventBridge and direct requests; AWS's
//! review (issue 27) as the cause.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::fakes::{Answer, FakeDeadLetters, FakeHolds, FakeService, Letter};
use fixtures::{eventbridge, fifo, received, sqs_event as sqs, sqs_record as record};
use lambda_runtime::{Context, LambdaEvent};
use opportunity_disassociator::aws::partner_central::{ErrorClass, ThrottleCount};
use opportunity_disassociator::config::WorkerConfig;
use opportunity_disassociator::domain::request::{EntityType, RelatedEntity};
use opportunity_disassociator::pacing::Pacer;
use opportunity_disassociator::worker::Worker;
use opportunity_disassociator::worker::inbound::Payload;
use serde_json::{Value, json};

const RECHECK_MS: u64 = 60_000;

struct World {
    service: Arc<FakeService>,
    letters: Arc<FakeDeadLetters>,
    holds: Arc<FakeHolds>,
    worker: Worker<Arc<FakeService>, Arc<FakeDeadLetters>>,
}

fn world_with(holds: Option<FakeHolds>, vars: &[(&str, &str)]) -> World {
    let mut settings: HashMap<String, String> = [
        ("PARTNER_CENTRAL_WRITES_PER_SECOND", "1000"),
        ("MAX_RECEIVE_COUNT", "3"),
        ("REVIEW_RECHECK_SECONDS", "60"),
        ("MAX_HOLD_SECONDS", "3600"),
        ("WORK_QUEUE_RETENTION_SECONDS", "86400"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    settings.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = WorkerConfig::from_lookup(|name| settings.get(name).cloned()).unwrap();
    let service = FakeService::with(&[]);
    let letters = Arc::new(FakeDeadLetters::default());
    let with_holds = holds.is_some();
    let holds = Arc::new(holds.unwrap_or_default());
    let pacer = Arc::new(Pacer::local(config.writes_per_second));
    let worker = Worker::new(config, service.clone(), Some(letters.clone()), pacer, Arc::new(ThrottleCount::default()));
    let worker = if with_holds { worker.with_holds(holds.clone()) } else { worker };
    World { service, letters, holds, worker }
}

fn world() -> World {
    world_with(Some(FakeHolds::default()), &[])
}

fn solution(id: &str) -> RelatedEntity {
    RelatedEntity::new(EntityType::Solutions, id).unwrap()
}

/// `O1` holds the request's solution, under `status`.
fn reviewed(w: &World, status: &str) {
    w.service.hold("O1", &[solution("S-0000001"), solution("S-0000002")]);
    w.service.review("O1", status);
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The request's message, sent `age_ms` ago, with `attributes` (Lambda's shape).
fn message(id: &str, age_ms: u64, attributes: Value) -> Value {
    let mut message = record(id, &fixtures::solution_request("O1").to_string());
    message["attributes"]["SentTimestamp"] = json!((now_ms() - age_ms).to_string());
    message["messageAttributes"] = attributes;
    message
}

fn number(n: u64) -> Value {
    json!({"stringValue": n.to_string(), "dataType": "Number"})
}

fn text(t: &str) -> Value {
    json!({"stringValue": t, "dataType": "String"})
}

/// The attributes of a message held under review, due at `until`.
fn held_until(until: u64, since: u64, attempts: u64) -> Value {
    json!({"HeldSince": number(since), "HoldUntil": number(until), "HeldFor": text("under_review"), "Attempts": number(attempts)})
}

fn event(payload: Value) -> LambdaEvent<Payload> {
    let mut context = Context::default();
    context.request_id = "lambda-req-1".into();
    context.deadline = now_ms() + 60_000;
    LambdaEvent::new(Payload::from(&payload), context)
}

fn failures(answer: &Value) -> Vec<&str> {
    answer["batchItemFailures"].as_array().unwrap().iter().map(|f| f["itemIdentifier"].as_str().unwrap()).collect()
}

/// Handles `records`, none handed back and none held, and gives the one dead letter they came to.
async fn dead_letter_of(w: &World, records: Vec<Value>) -> Letter {
    let answer = w.worker.handle(event(sqs(records))).await.unwrap();
    assert!(failures(&answer).is_empty());
    assert!(w.holds.requeued.lock().unwrap().is_empty(), "not held");
    only_letter(w)
}

/// The one dead letter sent.
fn only_letter(w: &World) -> Letter {
    let letters = w.letters.letters.lock().unwrap().clone();
    assert_eq!(letters.len(), 1, "{letters:?}");
    letters.into_iter().next().unwrap()
}

fn metric(lines: &[Value], name: &str) -> u64 {
    lines.iter().filter_map(|line| line[name].as_u64()).sum()
}

#[tokio::test]
async fn a_write_refused_under_review_is_sent_again_to_wait_and_the_original_is_done_with() {
    for status in ["Submitted", "In review"] {
        let w = world();
        reviewed(&w, status);
        let attributes = json!({"Trace": text("t-1")});
        let before = now_ms();
        let (answer, lines) = w.worker.handle_measured(event(sqs(vec![message("m1", 5_000, attributes)]))).await;
        let answer = answer.unwrap();
        assert!(failures(&answer).is_empty(), "{status}: the original is deleted, its copy waits");
        let requeued = w.holds.requeued.lock().unwrap().clone();
        assert_eq!(requeued.len(), 1, "{status}");
        let held = &requeued[0];
        assert_eq!(held.body, fixtures::solution_request("O1").to_string(), "the body, unchanged");
        assert_eq!(held.text("HeldFor"), "under_review");
        let until = held.number("HoldUntil");
        assert!((before + RECHECK_MS..=now_ms() + RECHECK_MS).contains(&until), "{status}: REVIEW_RECHECK_SECONDS on");
        let since = held.number("HeldSince");
        assert!((before - 5_000..=now_ms() - 5_000).contains(&since), "its first enqueue: the SentTimestamp");
        assert_eq!(held.number("Attempts"), 0, "waiting is no failed attempt");
        assert_eq!(held.delay_seconds, 60, "the wait, within SQS's 15 minutes");
        assert_eq!(held.text("Trace"), "t-1", "its own attributes are carried over");
        assert_eq!(w.service.writes().len(), 1, "{status}: one write tried");
        assert!(w.letters.letters.lock().unwrap().is_empty());
        assert_eq!(metric(&lines, "HeldForReview"), 1);
        assert_eq!(metric(&lines, "HeldForBudget"), 0);
        assert!((5..=7).contains(&metric(&lines, "OldestHeldAgeSeconds")), "{lines:?}");
    }
}

#[tokio::test]
async fn a_rejected_opportunity_is_dead_lettered_at_the_first_receive_whatever_the_error_says() {
    let w = world();
    reviewed(&w, "Rejected");
    let letter = dead_letter_of(&w, vec![message("m1", 0, json!({}))]).await;
    assert_eq!(letter.code, "OpportunityRejected");
    assert!(letter.message.contains("rejected by AWS's review and is read-only"), "{}", letter.message);
    assert!(letter.message.contains("the write was refused: ValidationException"), "{}", letter.message);
    assert_eq!(
        w.service.writes().len(),
        1,
        "a plain disassociation's first try writes, and the read tells why it was refused"
    );
}

/// A replacement reads the opportunity before writing, and a recheck of a review reads first: a
/// rejected opportunity is dead-lettered by what the read shows, without a write refused.
#[tokio::test]
async fn a_rejected_opportunity_read_before_a_write_is_dead_lettered_without_one() {
    let replacement = fixtures::replacing(fixtures::solution_request("O1"), "Solutions", "S-0000009");
    let recheck = message("m1", 0, held_until(now_ms() - 1, now_ms() - 60_000, 1));
    for (what, record) in [("a replacement", record("m1", &replacement.to_string())), ("a review's recheck", recheck)] {
        let w = world();
        reviewed(&w, "Rejected");
        let letter = dead_letter_of(&w, vec![record]).await;
        assert_eq!(letter.code, "OpportunityRejected", "{what}");
        assert!(letter.message.contains("rejected by AWS's review and is read-only"), "{what}: {}", letter.message);
        assert!(w.service.writes().is_empty(), "{what}: no write");
        assert_eq!(w.service.reads(), 1, "{what}: one read");
    }
}

#[tokio::test]
async fn a_continuation_at_its_first_receive_is_kept_invisible_untried_and_sent_again_at_a_later_one() {
    let w = world();
    reviewed(&w, "In review");
    // Sent 15 minutes ago to wait until two hours from now: the delay could not cover it.
    let (now, sent_ago) = (now_ms(), 900_000);
    let until = now + 7_200_000;
    let first = message("m1", sent_ago, held_until(until, now - 1_000_000, 1));
    let (answer, lines) = w.worker.handle_measured(event(sqs(vec![first.clone()]))).await;
    assert_eq!(failures(&answer.unwrap()), ["m1"], "handed back, to come back when it is due");
    let counted = |name| metric(&lines, name);
    assert_eq!((counted("StillHeld"), counted("HeldForReview")), (1, 0), "counted as waiting on, not held again");
    let invisible = w.holds.invisible.lock().unwrap().clone();
    assert_eq!(invisible, [("rh-m1".to_owned(), 3_600)], "as long as it may wait, at most MAX_HOLD_SECONDS");
    assert!(w.service.writes().is_empty(), "a continuation tries nothing");
    assert_eq!(w.service.reads(), 0);
    // Back before it is due (its wait was longer than MAX_HOLD_SECONDS): sent again, same hold, never
    // a receive nearer to maxReceiveCount.
    let (answer, lines) = w.worker.handle_measured(event(sqs(vec![received(first, 2)]))).await;
    assert!(failures(&answer.unwrap()).is_empty());
    assert_eq!((metric(&lines, "StillHeld"), metric(&lines, "HeldForReview")), (1, 0));
    let requeued = w.holds.requeued.lock().unwrap().clone();
    assert_eq!(requeued.len(), 1);
    assert_eq!(requeued[0].number("HoldUntil"), until, "the same HoldUntil");
    assert_eq!(requeued[0].number("HeldSince"), now - 1_000_000, "the first enqueue, carried over");
    assert_eq!(requeued[0].number("Attempts"), 1, "the continuation was no attempt");
    assert_eq!(requeued[0].delay_seconds, 900);
    assert!(w.service.writes().is_empty());
}

#[tokio::test]
async fn a_due_message_is_tried_and_done_when_the_review_has_ended() {
    let w = world();
    reviewed(&w, "Approved");
    let now = now_ms();
    let due = message("m1", 60_000, held_until(now - 100, now - 3_600_000, 0));
    let answer = w.worker.handle(event(sqs(vec![due]))).await.unwrap();
    assert!(failures(&answer).is_empty());
    assert_eq!(w.service.writes(), ["DisassociateOpportunity Solutions S-0000001"]);
    assert_eq!(w.service.reads(), 1, "the recheck's read, which shows the review over");
    assert!(w.holds.requeued.lock().unwrap().is_empty() && w.letters.letters.lock().unwrap().is_empty());
}

/// A held message sent again was tried before it was held: at its first receive an entity already
/// gone is taken as already disassociated, not as a wrong identifier.
#[tokio::test]
async fn a_held_message_is_no_first_delivery() {
    let w = world();
    w.service.hold("O1", &[solution("S-0000002")]);
    let now = now_ms();
    let due = message("m1", 60_000, held_until(now - 100, now - 3_600_000, 0));
    let (answer, lines) = w.worker.handle_measured(event(sqs(vec![due]))).await;
    assert!(failures(&answer.unwrap()).is_empty());
    assert_eq!((metric(&lines, "AlreadyDisassociated"), metric(&lines, "NotAssociated")), (1, 0));
}

/// A due recheck reads first: still under review, it is held again without spending a write.
#[tokio::test]
async fn a_recheck_still_under_review_is_held_again_without_a_write() {
    let w = world();
    reviewed(&w, "In review");
    let now = now_ms();
    let due = message("m1", 60_000, held_until(now - 100, now - 3_600_000, 1));
    let answer = w.worker.handle(event(sqs(vec![due]))).await.unwrap();
    assert!(failures(&answer).is_empty());
    assert!(w.service.writes().is_empty(), "no write tried while the review lasts");
    assert_eq!(w.service.reads(), 1);
    let requeued = w.holds.requeued.lock().unwrap().clone();
    assert_eq!(requeued.len(), 1);
    assert_eq!(requeued[0].number("HeldSince"), now - 3_600_000, "its first enqueue, carried over");
    assert_eq!(requeued[0].number("Attempts"), 1, "waiting is no attempt");
    assert!(requeued[0].number("HoldUntil") >= now + RECHECK_MS);
}

/// A message that failed twice before it was held is at its third, and last, genuine attempt at the
/// first receive of its copy: dead-lettered with its reason, not retried past maxReceiveCount.
#[tokio::test]
async fn genuine_attempts_are_carried_over_and_count_toward_max_receive_count() {
    let w = world();
    w.service.hold("O1", &[solution("S-0000001")]);
    w.service.answer_any(&vec![Answer::Fail("InternalServerException", ErrorClass::Transient); 3]);
    let now = now_ms();
    let due = message("m1", 60_000, held_until(now - 100, now - 3_600_000, 2));
    let letter = dead_letter_of(&w, vec![due]).await;
    assert!(letter.message.contains("attempt 3 of the queue's maxReceiveCount 3"), "{}", letter.message);
}

#[tokio::test]
async fn a_record_held_past_the_bound_is_dead_lettered_with_how_long_it_waited() {
    // Retention one day, MAX_HOLD_SECONDS an hour: held 23 h 30 min, it may not come back in time.
    let w = world();
    reviewed(&w, "In review");
    let now = now_ms();
    let old = message("m1", 60_000, held_until(now - 100, now - 84_600_000, 0));
    let letter = dead_letter_of(&w, vec![old]).await;
    assert_eq!(letter.code, "UnderReview");
    assert!(letter.message.starts_with("still under review after 23 h 30 min"), "{}", letter.message);
}

#[tokio::test]
async fn a_fifo_message_is_held_by_its_visibility_and_holds_its_group_back() {
    let w = world();
    reviewed(&w, "Submitted");
    let body = fixtures::solution_request("O1").to_string();
    let with_time = |mut r: Value| {
        r["attributes"]["SentTimestamp"] = json!(now_ms().to_string());
        r
    };
    let batch = sqs(vec![with_time(fifo(record("m1", &body), "g")), with_time(fifo(record("m2", &body), "g"))]);
    let answer = w.worker.handle(event(batch)).await.unwrap();
    assert_eq!(failures(&answer), ["m1", "m2"], "the group waits behind it, in order");
    assert_eq!(w.holds.invisible.lock().unwrap().clone(), [("rh-m1".to_owned(), 60)]);
    assert!(w.holds.requeued.lock().unwrap().is_empty(), "a FIFO message is never sent again");
    assert_eq!((w.service.writes().len(), w.service.reads()), (1, 1), "refused, and the read said why");
    // Its hold carries nothing, so its next receive reads first: still under review, no write.
    let again = with_time(received(fifo(record("m1", &body), "g"), 2));
    let answer = w.worker.handle(event(sqs(vec![again]))).await.unwrap();
    assert_eq!(failures(&answer), ["m1"], "held again");
    assert_eq!((w.service.writes().len(), w.service.reads()), (1, 2), "a read, no write");
    // At its last receive a FIFO hold would be redriven without a reason: dead-lettered with it.
    let last = with_time(received(fifo(record("m1", &body), "g"), 3));
    w.worker.handle(event(sqs(vec![last]))).await.unwrap();
    let letter = only_letter(&w);
    let spends = "a FIFO queue holds by visibility, which spends receives";
    assert!(letter.message.contains(spends), "{}", letter.message);
}

#[tokio::test]
async fn a_hold_that_cannot_be_kept_fails_and_is_delivered_again() {
    let w = world_with(Some(FakeHolds { broken: true, ..FakeHolds::default() }), &[]);
    reviewed(&w, "In review");
    let answer = w.worker.handle(event(sqs(vec![message("m1", 0, json!({}))]))).await.unwrap();
    assert_eq!(failures(&answer), ["m1"], "never lost");
    let w = world_with(None, &[]);
    reviewed(&w, "In review");
    let answer = w.worker.handle(event(sqs(vec![message("m1", 0, json!({}))]))).await.unwrap();
    assert_eq!(failures(&answer), ["m1"], "no WORK_QUEUE_URL: retried as a transient failure");
    let error = w.worker.handle(event(fixtures::solution_request("O1"))).await.unwrap_err();
    assert_eq!(error.error_type, "UnderReview");
    assert!(error.message.contains("no WORK_QUEUE_URL"), "{}", error.message);
}

#[tokio::test]
async fn direct_and_eventbridge_requests_that_must_wait_are_queued_and_answered_so() {
    let w = world();
    reviewed(&w, "In review");
    let answer = w.worker.handle(event(fixtures::solution_request("O1"))).await.unwrap();
    assert_eq!(
        (&answer["outcome"], &answer["heldFor"], &answer["queued"]),
        (&json!("held"), &json!("under_review"), &json!(true))
    );
    assert_eq!(answer["request"], fixtures::solution_request("O1"));
    let answer = w.worker.handle(event(eventbridge(fixtures::solution_request("O1")))).await.unwrap();
    assert_eq!(answer["outcome"], "held", "handled: no asynchronous retry spent on waiting");
    let requeued = w.holds.requeued.lock().unwrap().clone();
    assert_eq!(requeued.len(), 2);
    for held in &requeued {
        assert_eq!(held.body, fixtures::solution_request("O1").to_string(), "the request document itself");
        assert_eq!(held.number("Attempts"), 0);
        assert!(held.number("HeldSince") <= now_ms());
        assert_eq!(held.group, "O1");
    }
}

#[tokio::test]
async fn a_replacement_under_review_waits_without_spending_a_write() {
    let w = world();
    reviewed(&w, "Submitted");
    let request = fixtures::replacing(
        fixtures::solution_request("O1"),
        "AwsMarketplaceSolutions",
        "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/s-1",
    );
    let answer = w.worker.handle(event(request)).await.unwrap();
    assert_eq!(answer["outcome"], "held");
    assert!(w.service.writes().is_empty(), "the read showed the review: no write tried");
    assert_eq!(w.holds.requeued.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_short_review_recheck_waits_its_own_length() {
    let w = world_with(Some(FakeHolds::default()), &[("REVIEW_RECHECK_SECONDS", "1.667")]);
    reviewed(&w, "In review");
    w.worker.handle(event(sqs(vec![message("m1", 0, json!({}))]))).await.unwrap();
    let requeued = w.holds.requeued.lock().unwrap().clone();
    assert_eq!(requeued[0].delay_seconds, 2, "rounded up: never due before its time");
}
