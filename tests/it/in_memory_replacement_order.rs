//! Properties of a replacement in the documented order (the new entity associated first), over
//! arbitrary sequences of service answers (proptest): an opportunity the fake service keeps, which may
//! answer each write with success, any error, a conflict, or an error after applying it (an answer
//! lost, or ambiguous), and each read with the truth or a failure. The request is delivered again
//! after every failure (a retry, or an operator's redrive of a dead letter) until it succeeds.
//!
//! - no `DisassociateOpportunity` of the old entity reaches the opportunity while the replacement is
//!   not on it;
//! - a delivery that succeeds leaves the opportunity replaced (old gone, new there);
//! - once the scripted answers run out, the next delivery succeeds.

use std::sync::Arc;

use crate::fakes::{Answer, FakeService, NoDeadLetters};
use lambda_runtime::{Context, LambdaEvent};
use opportunity_disassociator::aws::partner_central::{ApiError, ErrorClass, ThrottleCount};
use opportunity_disassociator::config::WorkerConfig;
use opportunity_disassociator::domain::request::{EntityType, RelatedEntity};
use opportunity_disassociator::pacing::Pacer;
use opportunity_disassociator::worker::Worker;
use opportunity_disassociator::worker::inbound::Payload;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::Value;

const OLD: &str = "S-0000001";
const NEW: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-new";

/// An error the service may answer, with the class the adapter gives it.
const ERRORS: [(&str, ErrorClass); 8] = [
    ("ThrottlingException", ErrorClass::Transient),
    ("InternalServerException", ErrorClass::Transient),
    ("Timeout", ErrorClass::Transient),
    ("AccessDeniedException", ErrorClass::Permanent),
    ("ValidationException", ErrorClass::Permanent),
    // A business rule, a conflict, not found: may mean "already done".
    ("ValidationException", ErrorClass::Ambiguous),
    ("ConflictException", ErrorClass::Ambiguous),
    ("ResourceNotFoundException", ErrorClass::Ambiguous),
];

#[derive(Debug, Clone, Copy)]
enum WriteAnswer {
    /// Applied, and answered success.
    Success,
    /// Not applied, answered with `ERRORS[i]`.
    Refused(usize),
    /// Applied, and answered with `ERRORS[i]` all the same.
    AppliedThenFailed(usize),
}

#[derive(Debug, Clone, Copy)]
enum ReadAnswer {
    Truth,
    Failed(usize),
}

/// The fake's answer to one write, as the scenario draws it.
fn scripted(answer: WriteAnswer) -> Answer {
    match answer {
        WriteAnswer::Success => Answer::Ok,
        WriteAnswer::Refused(i) => Answer::Fail(ERRORS[i].0, ERRORS[i].1),
        WriteAnswer::AppliedThenFailed(i) => Answer::AppliedThenFail(ERRORS[i].0, ERRORS[i].1),
    }
}

fn old() -> RelatedEntity {
    RelatedEntity::new(EntityType::Solutions, OLD).unwrap()
}

fn new() -> RelatedEntity {
    RelatedEntity::new(EntityType::AwsMarketplaceSolutions, NEW).unwrap()
}

/// What the writes so far did wrong: a write of anything but the two entities, or the old one
/// removed while the new one was not on.
fn violations(service: &FakeService) -> Vec<String> {
    let (old, new) = (old(), new());
    let mut violations = Vec::new();
    for (write, before) in service.seen() {
        if write != format!("AssociateOpportunity {} {NEW}", new.entity_type())
            && write != format!("DisassociateOpportunity {} {OLD}", old.entity_type())
        {
            violations.push(write);
        } else if write.starts_with("DisassociateOpportunity") && !before.contains(&new) {
            violations.push("DisassociateOpportunity of the old solution while the new one is not on".into());
        }
    }
    violations
}

fn replaced(service: &FakeService) -> bool {
    let holdings = service.holdings("O1");
    !holdings.contains(&old()) && holdings.contains(&new())
}

fn write_answer() -> impl Strategy<Value = WriteAnswer> {
    prop_oneof![
        2 => Just(WriteAnswer::Success),
        3 => (0..ERRORS.len()).prop_map(WriteAnswer::Refused),
        2 => (0..ERRORS.len()).prop_map(WriteAnswer::AppliedThenFailed),
    ]
}

fn error(index: usize) -> ApiError {
    let (code, class) = ERRORS[index];
    ApiError { code: code.into(), message: format!("scripted {code}"), request_id: None, class }
}

fn read_answer() -> impl Strategy<Value = ReadAnswer> {
    prop_oneof![3 => Just(ReadAnswer::Truth), 1 => (0..ERRORS.len()).prop_map(ReadAnswer::Failed)]
}

/// Where the model starts (a first delivery, or one after a partial replacement), and its answers.
fn scenario() -> impl Strategy<Value = (bool, bool, usize, Vec<WriteAnswer>, Vec<ReadAnswer>)> {
    (
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.2),
        0..4usize,
        prop::collection::vec(write_answer(), 0..12),
        prop::collection::vec(read_answer(), 0..6),
    )
}

fn request() -> Value {
    fixtures::replacing(fixtures::request("Sandbox", "O1", "Solutions", OLD), "AwsMarketplaceSolutions", NEW)
}

#[test]
fn in_the_documented_order_no_answer_removes_the_old_entity_before_the_new_one_is_on() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut runner = TestRunner::new(ProptestConfig { cases: 512, ..ProptestConfig::default() });
    runner
        .run(&scenario(), |(old, new, others, writes, reads)| {
            let service = FakeService::with(&[]);
            let mut holdings: Vec<RelatedEntity> = (2..2 + others)
                .map(|i| RelatedEntity::new(EntityType::Solutions, &format!("S-000000{i}")).unwrap())
                .collect();
            holdings.extend(old.then(self::old));
            holdings.extend(new.then(self::new));
            service.hold("O1", &holdings);
            service.answer_any(&writes.into_iter().map(scripted).collect::<Vec<_>>());
            let reads: Vec<Option<ApiError>> = reads
                .into_iter()
                .map(|read| match read {
                    ReadAnswer::Truth => None,
                    ReadAnswer::Failed(i) => Some(error(i)),
                })
                .collect();
            service.fail_reads(&reads);
            let config = WorkerConfig::from_lookup(|name| {
                (name == "PARTNER_CENTRAL_WRITES_PER_SECOND").then(|| "1000".to_owned())
            })
            .unwrap();
            let pacer = Arc::new(Pacer::local(config.writes_per_second));
            let worker = Worker::<_, NoDeadLetters>::new(
                config,
                service.clone(),
                None,
                pacer,
                Arc::new(ThrottleCount::default()),
            );
            // Each delivery takes at least one scripted answer until they run out, then succeeds.
            let mut succeeded = false;
            for _ in 0..24 {
                let was_scripted = service.scripted();
                let mut context = Context::default();
                context.deadline = 0;
                let answer = runtime.block_on(worker.handle(LambdaEvent::new(Payload::from(&request()), context)));
                let violations = violations(&service);
                prop_assert!(violations.is_empty(), "{violations:?}");
                match answer {
                    Ok(answer) => {
                        let outcome = answer["outcome"].as_str().unwrap_or_default().to_owned();
                        prop_assert!(outcome == "replaced" || outcome == "already_replaced", "{answer}");
                        prop_assert!(replaced(&service), "{outcome}, but the opportunity is not replaced");
                        succeeded = true;
                        break;
                    }
                    Err(error) => prop_assert!(was_scripted, "failed with no scripted answer left: {error}"),
                }
            }
            prop_assert!(succeeded, "not replaced after every scripted answer ran out");
            // A delivery after success makes no write.
            service.clear_script();
            service.answer_any(&[scripted(WriteAnswer::Refused(3))]);
            let mut context = Context::default();
            context.deadline = 0;
            let again = runtime.block_on(worker.handle(LambdaEvent::new(Payload::from(&request()), context)));
            prop_assert_eq!(again.map(|a| a["outcome"].clone()).ok(), Some(Value::from("already_replaced")));
            Ok(())
        })
        .unwrap();
}
