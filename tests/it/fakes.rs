//! The test doubles of the worker's ports, one set for every in-memory test: a Partner Central
//! service that keeps opportunities and answers as scripted, dead-letter queues that keep, refuse or
//! never take letters.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use opportunity_disassociator::aws::dead_letters::{DeadLetter, DeadLetters};
use opportunity_disassociator::aws::partner_central::{ApiError, ErrorClass, PartnerCentral};
use opportunity_disassociator::aws::work_queue::{Attribute, AttributeValue, Holds, Requeue};
use opportunity_disassociator::domain::opportunity::Holdings;
use opportunity_disassociator::domain::request::{Catalog, EntityType, OpportunityId, RelatedEntity};
use tokio::time::Instant;

/// What `GetOpportunity` shows after a not-found answer (otherwise: the entity still there).
#[derive(Clone, Copy, Debug)]
pub enum Read {
    Absent,
    NoSuchOpportunity,
}

/// What the fake service answers for an opportunity.
#[derive(Clone)]
pub enum Script {
    Ok,
    Fail(&'static str, ErrorClass),
    /// Not found, and GetOpportunity answers this.
    Ambiguous(Read),
    /// Not found, and GetOpportunity answers (absent) only after this long.
    AmbiguousSlowly(Duration),
    Panic,
    /// Answers success after this long.
    Slow(Duration),
    /// Fails this many times with this transient code, then succeeds.
    FailTimes(u32, &'static str),
    /// A 5xx whose change was applied all the same: not found from then on, the entity gone.
    AppliedThenAmbiguous,
}

/// A scripted answer to one write of an opportunity whose holdings the fake keeps (see `FakeService::hold`).
#[derive(Clone, Debug)]
pub enum Answer {
    /// Applied, and answered success.
    Ok,
    /// Refused: nothing changes.
    Fail(&'static str, ErrorClass),
    /// Applied, and answered with this error all the same (an answer lost, or one that is ambiguous).
    AppliedThenFail(&'static str, ErrorClass),
    /// Applied after this long.
    Slow(Duration),
}

#[derive(Default)]
pub struct FakeService {
    pub scripts: HashMap<&'static str, Script>,
    pub calls: Mutex<Vec<(String, Instant)>>,
    pub checks: Mutex<u32>,
    /// Opportunities whose holdings the writes change, by id. Unscripted, a write applies; an
    /// entity already there is associated again with success, one not there is not found.
    pub held: Mutex<HashMap<String, Vec<RelatedEntity>>>,
    /// The next answers to each write of those opportunities, by operation name.
    pub answers: Mutex<HashMap<&'static str, VecDeque<Answer>>>,
    /// The next reads, in order: `Some` fails with that error.
    pub read_failures: Mutex<VecDeque<Option<ApiError>>>,
    /// Every write to those opportunities, as `Operation Type Identifier`.
    pub writes: Mutex<Vec<String>>,
    /// The next answers to a write of either operation, when its own are used up.
    pub any_answers: Mutex<VecDeque<Answer>>,
    /// Every write to those opportunities, with what the opportunity held just before it.
    pub seen: Mutex<Vec<(String, Vec<RelatedEntity>)>>,
    /// Every disassociation asked for, as its four members.
    pub sent: Mutex<Vec<[String; 4]>>,
    /// The review status of held opportunities, by id: under review or rejected, every write is
    /// refused with a `ValidationException`, as the service does.
    pub review: Mutex<HashMap<String, String>>,
}

impl FakeService {
    pub fn with(scripts: &[(&'static str, Script)]) -> Arc<Self> {
        Arc::new(Self { scripts: scripts.iter().cloned().collect(), ..Default::default() })
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().iter().map(|(o, _)| o.clone()).collect()
    }

    pub fn call_times(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().iter().map(|(_, t)| *t).collect()
    }

    /// `opportunity` holds `entities`, and writes change what it holds.
    pub fn hold(&self, opportunity: &str, entities: &[RelatedEntity]) {
        self.held.lock().unwrap().insert(opportunity.to_owned(), entities.to_vec());
    }

    pub fn holdings(&self, opportunity: &str) -> Vec<RelatedEntity> {
        self.held.lock().unwrap()[opportunity].clone()
    }

    /// `opportunity`'s review status becomes `status` (`Submitted`, `In review`, `Approved`, ...).
    pub fn review(&self, opportunity: &str, status: &str) {
        self.review.lock().unwrap().insert(opportunity.to_owned(), status.to_owned());
    }

    /// The next answers of `operation` (`AssociateOpportunity`, `DisassociateOpportunity`).
    pub fn answer(&self, operation: &'static str, answers: &[Answer]) {
        self.answers.lock().unwrap().entry(operation).or_default().extend(answers.iter().cloned());
    }

    /// The next reads' answers: `None` reads the opportunity, `Some` fails with that error.
    pub fn fail_reads(&self, failures: &[Option<ApiError>]) {
        self.read_failures.lock().unwrap().extend(failures.iter().cloned());
    }

    /// The next answers of either write, after its own (see [`FakeService::answer`]).
    pub fn answer_any(&self, answers: &[Answer]) {
        self.any_answers.lock().unwrap().extend(answers.iter().cloned());
    }

    /// Whether scripted answers are left.
    pub fn scripted(&self) -> bool {
        self.answers.lock().unwrap().values().any(|a| !a.is_empty())
            || !self.any_answers.lock().unwrap().is_empty()
            || !self.read_failures.lock().unwrap().is_empty()
    }

    /// Forgets every scripted answer left.
    pub fn clear_script(&self) {
        self.answers.lock().unwrap().clear();
        self.any_answers.lock().unwrap().clear();
        self.read_failures.lock().unwrap().clear();
    }

    /// Every write to a held opportunity, with what it held just before.
    pub fn seen(&self) -> Vec<(String, Vec<RelatedEntity>)> {
        self.seen.lock().unwrap().clone()
    }

    /// Every disassociation asked for: catalog, opportunity, entity type, identifier.
    pub fn sent(&self) -> Vec<[String; 4]> {
        self.sent.lock().unwrap().clone()
    }

    pub fn writes(&self) -> Vec<String> {
        self.writes.lock().unwrap().clone()
    }

    pub fn reads(&self) -> u32 {
        *self.checks.lock().unwrap()
    }

    /// A write to a held opportunity: scripted, or applied as a service would.
    async fn write_held(
        &self,
        operation: &'static str,
        opportunity: &str,
        entity: &RelatedEntity,
    ) -> Result<(), ApiError> {
        tokio::task::yield_now().await;
        let write = format!("{operation} {} {}", entity.entity_type(), entity.identifier());
        self.writes.lock().unwrap().push(write.clone());
        self.seen.lock().unwrap().push((write, self.holdings(opportunity)));
        self.calls.lock().unwrap().push((opportunity.to_owned(), Instant::now()));
        let status = self.review.lock().unwrap().get(opportunity).cloned();
        if let Some("Submitted" | "In review" | "Rejected") = status.as_deref() {
            return Err(api_error("ValidationException", ErrorClass::Ambiguous));
        }
        let answer = self.answers.lock().unwrap().get_mut(operation).and_then(VecDeque::pop_front);
        let answer = answer.or_else(|| self.any_answers.lock().unwrap().pop_front());
        let apply = || {
            let mut held = self.held.lock().unwrap();
            let entities = held.get_mut(opportunity).unwrap();
            let there = entities.contains(entity);
            match (operation, there) {
                ("AssociateOpportunity", false) => entities.push(entity.clone()),
                ("DisassociateOpportunity", true) => entities.retain(|e| e != entity),
                ("DisassociateOpportunity", false) => {
                    return Err(api_error("ResourceNotFoundException", ErrorClass::Ambiguous));
                }
                _ => {}
            }
            Ok(())
        };
        match answer {
            None | Some(Answer::Ok) => apply(),
            Some(Answer::Fail(code, class)) => Err(api_error(code, class)),
            Some(Answer::AppliedThenFail(code, class)) => {
                let _ = apply();
                Err(api_error(code, class))
            }
            Some(Answer::Slow(delay)) => {
                tokio::time::sleep(delay).await;
                apply()
            }
        }
    }
}

impl PartnerCentral for FakeService {
    async fn associate(
        &self,
        _catalog: Catalog,
        opportunity: &OpportunityId,
        entity: &RelatedEntity,
    ) -> Result<(), ApiError> {
        self.write_held("AssociateOpportunity", opportunity.as_str(), entity).await
    }

    async fn disassociate(
        &self,
        catalog: Catalog,
        opportunity: &OpportunityId,
        entity: &RelatedEntity,
    ) -> Result<(), ApiError> {
        let members = [catalog.as_str(), opportunity.as_str(), entity.entity_type().as_str(), entity.identifier()];
        self.sent.lock().unwrap().push(members.map(str::to_owned));
        if self.held.lock().unwrap().contains_key(opportunity.as_str()) {
            return self.write_held("DisassociateOpportunity", opportunity.as_str(), entity).await;
        }
        // A call goes over the network: other records' tasks run meanwhile.
        tokio::task::yield_now().await;
        let id = opportunity.as_str();
        let earlier = {
            let mut calls = self.calls.lock().unwrap();
            let earlier = calls.iter().filter(|(o, _)| o == id).count() as u32;
            calls.push((id.to_owned(), Instant::now()));
            earlier
        };
        match self.scripts.get(id).cloned().unwrap_or(Script::Ok) {
            Script::Ok => Ok(()),
            Script::Fail(code, class) => Err(api_error(code, class)),
            Script::Ambiguous(_) | Script::AmbiguousSlowly(_) => {
                Err(api_error("ResourceNotFoundException", ErrorClass::Ambiguous))
            }
            Script::Panic => panic!("scripted panic for {id}"),
            Script::Slow(delay) => {
                tokio::time::sleep(delay).await;
                Ok(())
            }
            Script::FailTimes(times, code) if earlier < times => Err(api_error(code, ErrorClass::Transient)),
            Script::FailTimes(..) => Ok(()),
            Script::AppliedThenAmbiguous if earlier == 0 => {
                Err(api_error("InternalServerException", ErrorClass::Transient))
            }
            Script::AppliedThenAmbiguous => Err(api_error("ResourceNotFoundException", ErrorClass::Ambiguous)),
        }
    }

    async fn opportunity(&self, _catalog: Catalog, opportunity: &OpportunityId) -> Result<Option<Holdings>, ApiError> {
        *self.checks.lock().unwrap() += 1;
        if let Some(Some(failure)) = self.read_failures.lock().unwrap().pop_front() {
            return Err(failure);
        }
        if let Some(entities) = self.held.lock().unwrap().get(opportunity.as_str()) {
            let holdings = entities.iter().fold(Holdings::default(), |holdings, entity| {
                holdings.with(entity.entity_type(), [entity.identifier()])
            });
            return Ok(Some(match self.review.lock().unwrap().get(opportunity.as_str()) {
                Some(status) => holdings.reviewed(status.clone()),
                None => holdings,
            }));
        }
        let holding = |ids: &[&str]| Ok(Some(Holdings::default().with(EntityType::Solutions, ids.iter().copied())));
        match self.scripts.get(opportunity.as_str()) {
            Some(Script::Ambiguous(Read::Absent) | Script::AppliedThenAmbiguous) => holding(&["S-0000002"]),
            Some(Script::Ambiguous(Read::NoSuchOpportunity)) => Ok(None),
            Some(Script::AmbiguousSlowly(delay)) => {
                tokio::time::sleep(*delay).await;
                holding(&[])
            }
            _ => holding(&["S-0000001"]),
        }
    }
}

pub fn api_error(code: &str, class: ErrorClass) -> ApiError {
    ApiError { code: code.to_owned(), message: format!("scripted {code}"), request_id: Some("svc-req-1".into()), class }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Letter {
    pub body: String,
    pub code: String,
    pub message: String,
    pub lambda_request_id: String,
    pub source_id: Option<String>,
}

#[derive(Default)]
pub struct FakeDeadLetters {
    pub letters: Mutex<Vec<Letter>>,
    pub broken: bool,
    /// Refuses the dead letter of this source id only.
    pub refusing: Option<&'static str>,
    /// Each send takes this long.
    pub slow: Option<Duration>,
}

impl DeadLetters for FakeDeadLetters {
    async fn send(&self, letter: DeadLetter<'_>) -> Result<(), String> {
        if self.broken || (self.refusing.is_some() && letter.source_id == self.refusing) {
            return Err("queue unavailable".into());
        }
        if let Some(delay) = self.slow {
            tokio::time::sleep(delay).await;
        }
        self.letters.lock().unwrap().push(Letter {
            body: letter.body.to_owned(),
            code: letter.failure.code.clone(),
            message: letter.failure.message.clone(),
            lambda_request_id: letter.lambda_request_id.to_owned(),
            source_id: letter.source_id.map(str::to_owned),
        });
        Ok(())
    }
}

/// A dead-letter queue that never takes a letter (a test whose path sends none).
pub struct NoDeadLetters;

impl DeadLetters for NoDeadLetters {
    async fn send(&self, _letter: DeadLetter<'_>) -> Result<(), String> {
        Err("no dead-letter queue".into())
    }
}

/// A message the worker sent back to the work queue to wait.
#[derive(Debug, Clone, PartialEq)]
pub struct Requeued {
    pub body: String,
    pub attributes: HashMap<String, Attribute>,
    pub delay_seconds: u32,
    pub group: String,
}

impl Requeued {
    /// A number attribute's value.
    pub fn number(&self, name: &str) -> u64 {
        match &self.attributes[name].value {
            AttributeValue::Text(text) => text.parse().unwrap(),
            AttributeValue::Binary(_) => panic!("{name} is binary"),
        }
    }

    pub fn text(&self, name: &str) -> &str {
        match &self.attributes[name].value {
            AttributeValue::Text(text) => text,
            AttributeValue::Binary(_) => panic!("{name} is binary"),
        }
    }
}

/// The work queue as the worker holds records in it: keeps what is sent and kept invisible.
#[derive(Default)]
pub struct FakeHolds {
    pub requeued: Mutex<Vec<Requeued>>,
    /// Receipt handles kept invisible, and for how many seconds.
    pub invisible: Mutex<Vec<(String, u32)>>,
    /// Refuses every call.
    pub broken: bool,
}

impl Holds for FakeHolds {
    fn requeue<'a>(&'a self, message: Requeue<'a>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if self.broken {
                return Err("SendMessage failed: queue unavailable".into());
            }
            self.requeued.lock().unwrap().push(Requeued {
                body: message.body.to_owned(),
                attributes: message.attributes.into_iter().collect(),
                delay_seconds: message.delay_seconds,
                group: message.group.to_owned(),
            });
            Ok(())
        })
    }

    fn keep_invisible<'a>(&'a self, receipt_handle: &'a str, seconds: u32) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if self.broken {
                return Err("ChangeMessageVisibility failed: queue unavailable".into());
            }
            self.invisible.lock().unwrap().push((receipt_handle.to_owned(), seconds));
            Ok(())
        })
    }
}
