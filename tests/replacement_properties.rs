//! Properties of a replacement in the documented order (the new entity associated first), over
//! arbitrary sequences of service answers (proptest): a model opportunity, and a service that may
//! answer each write with success, any error, a conflict, or an error after applying it (an answer
//! lost, or ambiguous), and each read with the truth or a failure. The request is delivered again
//! after every failure (a retry, or an operator's redrive of a dead letter) until it succeeds.
//!
//! - no `DisassociateOpportunity` of the old entity reaches the opportunity while the replacement is
//!   not on it;
//! - a delivery that succeeds leaves the opportunity replaced (old gone, new there);
//! - once the scripted answers run out, the next delivery succeeds.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use lambda_runtime::{Context, LambdaEvent};
use opportunity_disassociator::aws::dead_letters::{DeadLetter, DeadLetters};
use opportunity_disassociator::aws::partner_central::{ApiError, ErrorClass, PartnerCentral, ThrottleCount};
use opportunity_disassociator::config::WorkerConfig;
use opportunity_disassociator::domain::opportunity::Holdings;
use opportunity_disassociator::domain::request::{Catalog, EntityType, OpportunityId, RelatedEntity};
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

fn error(index: usize) -> ApiError {
    let (code, class) = ERRORS[index];
    ApiError { code: code.into(), message: format!("scripted {code}"), request_id: None, class }
}

/// The opportunity and the scripted answers. Unscripted, writes succeed and reads tell the truth.
struct Model {
    /// Whether the old legacy solution and the new Marketplace solution are on the opportunity.
    old: Mutex<bool>,
    new: Mutex<bool>,
    /// Other solutions on it, which nothing touches.
    others: Vec<String>,
    writes: Mutex<VecDeque<WriteAnswer>>,
    reads: Mutex<VecDeque<ReadAnswer>>,
    violations: Mutex<Vec<String>>,
}

impl Model {
    fn replaced(&self) -> bool {
        !*self.old.lock().unwrap() && *self.new.lock().unwrap()
    }

    fn scripted(&self) -> bool {
        !self.writes.lock().unwrap().is_empty() || !self.reads.lock().unwrap().is_empty()
    }

    /// One write: `apply` changes the opportunity as the write would.
    fn write(&self, apply: impl FnOnce()) -> Result<(), ApiError> {
        match self.writes.lock().unwrap().pop_front().unwrap_or(WriteAnswer::Success) {
            WriteAnswer::Success => {
                apply();
                Ok(())
            }
            WriteAnswer::Refused(i) => Err(error(i)),
            WriteAnswer::AppliedThenFailed(i) => {
                apply();
                Err(error(i))
            }
        }
    }
}

impl PartnerCentral for Model {
    async fn associate(&self, _: Catalog, _: &OpportunityId, entity: &RelatedEntity) -> Result<(), ApiError> {
        if entity.identifier() != NEW {
            self.violations.lock().unwrap().push(format!("associated {entity}"));
        }
        self.write(|| *self.new.lock().unwrap() = true)
    }

    async fn disassociate(&self, _: Catalog, _: &OpportunityId, entity: &RelatedEntity) -> Result<(), ApiError> {
        if entity.identifier() != OLD {
            self.violations.lock().unwrap().push(format!("disassociated {entity}"));
        }
        if !*self.new.lock().unwrap() {
            self.violations
                .lock()
                .unwrap()
                .push("DisassociateOpportunity of the old solution while the new one is not on".into());
        }
        self.write(|| *self.old.lock().unwrap() = false)
    }

    async fn opportunity(&self, _: Catalog, _: &OpportunityId) -> Result<Option<Holdings>, ApiError> {
        if let ReadAnswer::Failed(i) = self.reads.lock().unwrap().pop_front().unwrap_or(ReadAnswer::Truth) {
            return Err(error(i));
        }
        let mut solutions = self.others.clone();
        if *self.old.lock().unwrap() {
            solutions.push(OLD.into());
        }
        let marketplace: Vec<&str> = if *self.new.lock().unwrap() { vec![NEW] } else { vec![] };
        Ok(Some(
            Holdings::default()
                .with(EntityType::Solutions, solutions)
                .with(EntityType::AwsMarketplaceSolutions, marketplace),
        ))
    }
}

struct NoDeadLetters;

impl DeadLetters for NoDeadLetters {
    async fn send(&self, _letter: DeadLetter<'_>) -> Result<(), String> {
        Err("direct invocations are never dead-lettered".into())
    }
}

fn write_answer() -> impl Strategy<Value = WriteAnswer> {
    prop_oneof![
        2 => Just(WriteAnswer::Success),
        3 => (0..ERRORS.len()).prop_map(WriteAnswer::Refused),
        2 => (0..ERRORS.len()).prop_map(WriteAnswer::AppliedThenFailed),
    ]
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
            let model = Arc::new(Model {
                old: Mutex::new(old),
                new: Mutex::new(new),
                others: (2..2 + others).map(|i| format!("S-000000{i}")).collect(),
                writes: Mutex::new(writes.into()),
                reads: Mutex::new(reads.into()),
                violations: Mutex::new(Vec::new()),
            });
            let config = WorkerConfig::from_lookup(|name| {
                (name == "PARTNER_CENTRAL_WRITES_PER_SECOND").then(|| "1000".to_owned())
            })
            .unwrap();
            let pacer = Arc::new(Pacer::local(config.writes_per_second));
            let worker =
                Worker::<_, NoDeadLetters>::new(config, model.clone(), None, pacer, Arc::new(ThrottleCount::default()));
            // Each delivery takes at least one scripted answer until they run out, then succeeds.
            let mut succeeded = false;
            for _ in 0..24 {
                let was_scripted = model.scripted();
                let mut context = Context::default();
                context.deadline = 0;
                let answer = runtime.block_on(worker.handle(LambdaEvent::new(Payload::from(&request()), context)));
                let violations = model.violations.lock().unwrap().clone();
                prop_assert!(violations.is_empty(), "{violations:?}");
                match answer {
                    Ok(answer) => {
                        let outcome = answer["outcome"].as_str().unwrap_or_default().to_owned();
                        prop_assert!(outcome == "replaced" || outcome == "already_replaced", "{answer}");
                        prop_assert!(model.replaced(), "{outcome}, but the opportunity is not replaced");
                        succeeded = true;
                        break;
                    }
                    Err(error) => prop_assert!(was_scripted, "failed with no scripted answer left: {error}"),
                }
            }
            prop_assert!(succeeded, "not replaced after every scripted answer ran out");
            // A delivery after success makes no write.
            model.reads.lock().unwrap().clear();
            model.writes.lock().unwrap().push_front(WriteAnswer::Refused(3));
            let mut context = Context::default();
            context.deadline = 0;
            let again = runtime.block_on(worker.handle(LambdaEvent::new(Payload::from(&request()), context)));
            prop_assert_eq!(again.map(|a| a["outcome"].clone()).ok(), Some(Value::from("already_replaced")));
            Ok(())
        })
        .unwrap();
}
