//! The decision: what becomes of one record. Two steps, both here and nowhere else:
//!
//! 1. [`Worker::try_request`]: the request's checks and calls, which end in a [`Verdict`] (done,
//!    permanent or transient): a plain disassociation here, a replacement (`ReplaceWith`) in
//!    [`super::replace`];
//! 2. [`Worker::rule`]: the verdict under the trigger's rules (the caller of a direct invocation is
//!    waiting; a dead-letter queue may be set; a message at its last receive; a record without an id to
//!    report it by), which gives the [`Outcome`].

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use serde_json::json;
use tracing::info;

use super::calls::{Failed, Write, WriteError, settle_by_read};
use super::inbound::{Record, Trigger};
use super::{Invocation, Worker};
use crate::aws::dead_letters::DeadLetters;
use crate::aws::partner_central::{ApiError, ErrorClass, PartnerCentral};
use crate::domain::opportunity::{Holdings, Order};
use crate::domain::outcome::{Done, Failure, Outcome, codes};
use crate::domain::request::DisassociationRequest;

impl From<Failed> for Verdict {
    fn from(failed: Failed) -> Self {
        match failed {
            Failed::Permanent(failure) => Verdict::Permanent(failure),
            Failed::Transient(failure) => Verdict::Transient(failure),
        }
    }
}

/// What trying a request came to, before the trigger's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Done(Done),
    /// Will never succeed as it is.
    Permanent(Failure),
    /// May succeed later.
    Transient(Failure),
}

impl<P: PartnerCentral, D: DeadLetters> Worker<P, D> {
    /// Decides what becomes of `record`. `held_back`: an earlier record of its FIFO group failed.
    pub(super) async fn decide(&self, invocation: &Invocation, record: &Record, held_back: bool) -> Outcome {
        // Only an SQS record tells its receive; at the first, it is no redelivery of its message.
        let first_receive = record.trigger == Trigger::Sqs && record.receive_count == Some(1);
        let verdict = match (&record.request, held_back) {
            (_, true) => Verdict::Transient(Failure::new(
                codes::EARLIER_FAILURE_IN_GROUP,
                "an earlier message of this FIFO group failed in this batch",
            )),
            (Err(failure), false) => Verdict::Permanent(failure.clone()),
            (Ok(request), false) => self.try_request(invocation, request, first_receive).await,
        };
        self.rule(record, verdict, held_back)
    }

    /// The verdict under the trigger's rules.
    fn rule(&self, record: &Record, verdict: Verdict, held_back: bool) -> Outcome {
        let failure = match verdict {
            Verdict::Done(done) => return Outcome::Done(done),
            // The caller is waiting for the answer: failures go back to it, not to the dead-letter queue.
            Verdict::Permanent(failure) | Verdict::Transient(failure) if record.trigger == Trigger::Direct => {
                return Outcome::Failed(failure.given_back());
            }
            Verdict::Permanent(failure) if self.dead_letters.is_some() => {
                return Outcome::DeadLettered(failure.given_up());
            }
            Verdict::Permanent(failure) => return Outcome::Failed(failure.given_back()),
            Verdict::Transient(failure) => failure,
        };
        if self.dead_letters.is_none() || record.trigger != Trigger::Sqs {
            return Outcome::Failed(failure.given_back());
        }
        // Never reported (an empty identifier fails the whole batch): dead-lettered instead.
        if record.source_id.is_none() {
            return Outcome::DeadLettered(failure.given_up().noted("no message id to report it failed by"));
        }
        // At its last receive SQS's redrive would move it without a reason. Not a held-back record: the
        // record blocking its group is at its last receive too (a group has one message in flight),
        // and the redrive then moves both, in order.
        match (record.receive_count, self.config.max_receive_count) {
            (Some(count), Some(max)) if count >= max && !held_back => Outcome::DeadLettered(failure.given_up().noted(
                format_args!("receive {count} of the queue's maxReceiveCount {max}, its last before the redrive"),
            )),
            _ => Outcome::Failed(failure.given_back()),
        }
    }

    /// The checks and calls of one valid request. A panic here is caught and fails only this record.
    async fn try_request(
        &self,
        invocation: &Invocation,
        request: &DisassociationRequest,
        first_receive: bool,
    ) -> Verdict {
        if let Err(reason) = request.catalog.allowed_in(&self.config.allowed_catalogs) {
            return Verdict::Permanent(Failure::new(codes::CATALOG_NOT_ALLOWED, reason));
        }
        if self.config.dry_run {
            match &request.replace_with {
                None => info!(request = %json!(request), "DRY_RUN: would call DisassociateOpportunity"),
                Some(new) => info!(
                    request = %json!(request),
                    order = %Order::rule(&request.entity, new),
                    "DRY_RUN: would replace {} by {}; the order depends on what the opportunity holds, which a dry run does not read",
                    request.entity,
                    new
                ),
            }
            return Verdict::Done(Done::DryRun);
        }
        let calls = async {
            match &request.replace_with {
                None => self.disassociate(invocation, request, first_receive).await,
                Some(new) => self.replace(invocation, request, new).await,
            }
        };
        match AssertUnwindSafe(calls).catch_unwind().await {
            Ok(decided) => decided,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                Verdict::Transient(Failure::new(codes::PANIC, format!("processing panicked: {message}")))
            }
        }
    }

    async fn disassociate(
        &self,
        invocation: &Invocation,
        request: &DisassociationRequest,
        first_receive: bool,
    ) -> Verdict {
        let write = Write::Disassociate(&request.entity);
        match self.write(invocation, request.catalog, &request.opportunity, write).await {
            Ok(()) => Verdict::Done(Done::Disassociated),
            Err(WriteError::Deadline(failure)) => Verdict::Transient(failure),
            Err(WriteError::NoRoom { until_ms }) => WriteError::no_room(until_ms).into(),
            Err(WriteError::Api { error, retried }) => {
                let read = self.read(invocation, request.catalog, &request.opportunity);
                // An earlier attempt of this invocation may have been applied: the entity's absence
                // may then be its doing.
                after_disassociation_error(error, read, request, first_receive && !retried).await
            }
        }
    }
}

/// The verdict on a `DisassociateOpportunity` error. `read` (what the opportunity holds) is awaited
/// only for a not-found or business-rule answer, which may mean the entity was already disassociated:
/// the service's answer for that is undocumented, so the opportunity itself decides. `first_delivery`:
/// the request cannot have been carried out before (an SQS message at its first receive, not yet
/// tried in this invocation), so an entity absent from the opportunity was never associated with it.
pub async fn after_disassociation_error<F>(
    error: ApiError,
    read: F,
    request: &DisassociationRequest,
    first_delivery: bool,
) -> Verdict
where
    F: Future<Output = Result<Option<Holdings>, ApiError>>,
{
    if error.class != ErrorClass::Ambiguous {
        return Failed::of(error).into();
    }
    let holdings = match settle_by_read(&error, &request.opportunity, read).await {
        Ok(holdings) => holdings,
        Err(failed) => return failed.into(),
    };
    match holdings {
        // Still there: refused for good. Why is told by the read, not the error code, which is the
        // same for a review and for a rule that one of its type must stay.
        holdings if holdings.holds(&request.entity) => {
            let failure = Failure::from(error);
            Verdict::Permanent(match holdings.frozen() {
                // A replacement would be refused too: no hint that it would not.
                Some(status) => failure.noted(format_args!(
                    "the opportunity's review status is {status}: it takes no change until AWS's review is done, a replacement neither"
                )),
                // The last of its type: a swap needs the new one associated first.
                None if holdings.holds_only(&request.entity) => failure.noted(format_args!(
                    "{} is the last entity of type {} on the opportunity: to replace it, send the request again with ReplaceWith naming the new one, which is then associated first",
                    request.entity.identifier(),
                    request.entity.entity_type()
                )),
                None => failure,
            })
        }
        holdings if first_delivery => Verdict::Done(Done::NotAssociated(holdings)),
        holdings => Verdict::Done(Done::AlreadyDisassociated(holdings)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::request::EntityType;

    fn api(code: &str, class: ErrorClass) -> ApiError {
        ApiError { code: code.into(), message: "m".into(), request_id: Some("rid".into()), class }
    }

    fn request() -> DisassociationRequest {
        DisassociationRequest::from_document(&json!({"Catalog": "Sandbox", "OpportunityIdentifier": "O1",
            "RelatedEntityType": "Solutions", "RelatedEntityIdentifier": "S-1"}))
        .unwrap()
    }

    async fn unreachable_read() -> Result<Option<Holdings>, ApiError> {
        panic!("GetOpportunity must not be called for this error")
    }

    async fn holding(solutions: &[&str]) -> Result<Option<Holdings>, ApiError> {
        Ok(Some(Holdings::default().with(EntityType::Solutions, solutions.iter().copied())))
    }

    #[tokio::test]
    async fn transient_errors_are_retried_and_permanent_ones_need_no_read() {
        let verdict = after_disassociation_error(
            api("ThrottlingException", ErrorClass::Transient),
            unreachable_read(),
            &request(),
            false,
        )
        .await;
        assert!(matches!(verdict, Verdict::Transient(_)));
        let verdict = after_disassociation_error(
            api("AccessDeniedException", ErrorClass::Permanent),
            unreachable_read(),
            &request(),
            false,
        )
        .await;
        let Verdict::Permanent(failure) = verdict else { panic!("expected permanent") };
        assert_eq!((failure.code.as_str(), failure.request_id.as_deref()), ("AccessDeniedException", Some("rid")));
    }

    #[tokio::test]
    async fn not_found_is_settled_by_the_opportunity_itself() {
        let ambiguous = || api("ResourceNotFoundException", ErrorClass::Ambiguous);
        let absent = after_disassociation_error(ambiguous(), holding(&["S-2"]), &request(), false).await;
        assert!(matches!(absent, Verdict::Done(Done::AlreadyDisassociated(_))), "{absent:?}");
        let present = after_disassociation_error(ambiguous(), holding(&["S-1"]), &request(), false).await;
        assert!(matches!(present, Verdict::Permanent(_)));
        let Verdict::Permanent(failure) =
            after_disassociation_error(ambiguous(), async { Ok(None) }, &request(), false).await
        else {
            panic!("expected permanent")
        };
        assert!(failure.message.contains("does not exist"));
        let read_failed = after_disassociation_error(
            ambiguous(),
            async { Err(api("InternalServerException", ErrorClass::Transient)) },
            &request(),
            false,
        )
        .await;
        let Verdict::Transient(failure) = read_failed else { panic!("expected transient") };
        assert_eq!(failure.code, "InternalServerException");
        let read_denied = after_disassociation_error(
            ambiguous(),
            async { Err(api("AccessDeniedException", ErrorClass::Permanent)) },
            &request(),
            false,
        )
        .await;
        let Verdict::Permanent(failure) = read_denied else { panic!("expected permanent") };
        assert_eq!(failure.code, "ResourceNotFoundException");
    }

    /// A write refused while AWS reviews the opportunity: a replacement would be refused too, so the
    /// reason must not suggest one, last entity of its type or not.
    #[tokio::test]
    async fn a_refusal_under_review_does_not_suggest_a_replacement() {
        let refused = || api("ValidationException", ErrorClass::Ambiguous);
        for status in ["Submitted", "In review", "Rejected"] {
            let read = async { Ok(Some(Holdings::default().with(EntityType::Solutions, ["S-1"]).reviewed(status))) };
            let Verdict::Permanent(failure) = after_disassociation_error(refused(), read, &request(), false).await
            else {
                panic!("expected permanent")
            };
            assert!(!failure.message.contains("ReplaceWith"), "{status}: {}", failure.message);
            assert!(failure.message.contains(&format!("review status is {status}")), "{}", failure.message);
        }
        let approved =
            async { Ok(Some(Holdings::default().with(EntityType::Solutions, ["S-1"]).reviewed("Approved"))) };
        let Verdict::Permanent(failure) = after_disassociation_error(refused(), approved, &request(), false).await
        else {
            panic!("expected permanent")
        };
        assert!(failure.message.contains("ReplaceWith"), "approved: the last one can be replaced: {}", failure.message);
    }

    #[tokio::test]
    async fn an_entity_absent_at_a_first_delivery_was_never_associated() {
        let ambiguous = || api("ResourceNotFoundException", ErrorClass::Ambiguous);
        let first = after_disassociation_error(ambiguous(), holding(&["S-2"]), &request(), true).await;
        assert!(matches!(first, Verdict::Done(Done::NotAssociated(_))), "{first:?}");
        let present = after_disassociation_error(ambiguous(), holding(&["S-1"]), &request(), true).await;
        assert!(matches!(present, Verdict::Permanent(_)), "a first delivery changes nothing else");
    }
}
