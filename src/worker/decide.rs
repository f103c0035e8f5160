//! The decision: what becomes of one record. Two steps, both here and nowhere else:
//!
//! 1. `Worker::try_request`: the request's checks and calls, which end in a [`Verdict`] (done,
//!    permanent or transient): a plain disassociation here, a replacement (`ReplaceWith`) in
//!    `super::replace`;
//! 2. `Worker::rule`: the verdict under the trigger's rules (the caller of a direct invocation is
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
use crate::domain::outcome::{Done, Failure, HeldFor, Hold, Outcome, codes};
use crate::domain::request::DisassociationRequest;

impl From<Failed> for Verdict {
    fn from(failed: Failed) -> Self {
        match failed {
            Failed::Permanent(failure) => Verdict::Permanent(failure),
            Failed::Transient(failure) => Verdict::Transient(failure),
            Failed::Held(hold) => Verdict::Held(hold),
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
    /// Must wait for a cause that ends by itself (docs/holds.md).
    Held(Hold),
}

impl<P: PartnerCentral, D: DeadLetters> Worker<P, D> {
    /// Decides what becomes of `record`. `held_back`: an earlier record of its FIFO group failed.
    pub(super) async fn decide(&self, invocation: &Invocation, record: &Record, held_back: bool) -> Outcome {
        // Only an SQS record tells its receive; at the first, it is no redelivery of its message,
        // unless the message is a held one sent again (tried before it was held).
        let carried = &record.carried;
        let first_receive =
            record.trigger == Trigger::Sqs && record.receive_count == Some(1) && carried.hold_until_ms.is_none();
        let now = crate::time::now_ms();
        let verdict = match (&record.request, held_back) {
            // Received before it is due: waits on, untried (a continuation, not an attempt).
            (Ok(_), false) if record.trigger == Trigger::Sqs && carried.continues(now) => {
                let cause = carried.held_for.unwrap_or(HeldFor::Budget);
                Verdict::Held(Hold::continued(cause, carried.hold_until_ms.unwrap_or(now)))
            }
            (_, true) => Verdict::Transient(Failure::new(
                codes::EARLIER_FAILURE_IN_GROUP,
                "an earlier message of this FIFO group failed in this batch",
            )),
            (Err(failure), false) => Verdict::Permanent(failure.clone()),
            (Ok(request), false) => {
                // A review's recheck reads before it writes. A FIFO hold carries no attribute (it is
                // kept by its visibility alone), so any redelivery of a FIFO message may be one.
                let fifo_redelivery = carried.fifo && record.receive_count.is_some_and(|count| count > 1);
                let recheck = record.trigger == Trigger::Sqs
                    && (carried.held_for == Some(HeldFor::UnderReview) || fifo_redelivery);
                self.try_request(invocation, request, first_receive, recheck).await
            }
        };
        self.rule(record, verdict, held_back)
    }

    /// The verdict under the trigger's rules.
    fn rule(&self, record: &Record, verdict: Verdict, held_back: bool) -> Outcome {
        let failure = match verdict {
            Verdict::Done(done) => return Outcome::Done(done),
            // A hold that cannot be kept is a failure (never a hold again), ruled as one.
            Verdict::Held(hold) => match self.rule_hold(record, hold, held_back) {
                Ok(outcome) => return outcome,
                Err(verdict) => return self.rule(record, verdict, held_back),
            },
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
        // and the redrive then moves both, in order. The attempts are the genuine ones: a message held
        // before (docs/holds.md) carries those of its earlier messages, and waiting counts for none.
        match (record.receive_count, self.config.max_receive_count) {
            (Some(count), Some(max)) if !held_back => {
                let attempt = record.carried.failed_before(count) + 1;
                if count >= max {
                    let waited = if attempt < count { " (a receive of it went to waiting)" } else { "" };
                    Outcome::DeadLettered(failure.given_up().noted(format_args!(
                        "receive {count} of the queue's maxReceiveCount {max}, its last before the redrive{waited}"
                    )))
                } else if attempt >= max {
                    Outcome::DeadLettered(failure.given_up().noted(format_args!(
                        "attempt {attempt} of the queue's maxReceiveCount {max}, counting those it failed before it was held and sent again"
                    )))
                } else {
                    Outcome::Failed(failure.given_back())
                }
            }
            _ => Outcome::Failed(failure.given_back()),
        }
    }

    /// The checks and calls of one valid request. A panic here is caught and fails only this record.
    /// `recheck`: a request held while AWS reviewed its opportunity, now due.
    async fn try_request(
        &self,
        invocation: &Invocation,
        request: &DisassociationRequest,
        first_receive: bool,
        recheck: bool,
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
                None => self.disassociate(invocation, request, first_receive, recheck).await,
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
        recheck: bool,
    ) -> Verdict {
        // A review's recheck reads first: while the review lasts (or once AWS rejected the
        // opportunity) no write of the day's budget is spent on a refusal. Whatever else the read
        // shows (or a failed read), the write decides.
        if recheck
            && let Ok(Some(holdings)) = self.read(invocation, request.catalog, &request.opportunity).await
            && let Some(stopped) = stopped_by_review(&holdings, self.review_recheck_at(), None)
        {
            return stopped.into();
        }
        let write = Write::Disassociate(&request.entity);
        match self.write(invocation, request.catalog, &request.opportunity, write).await {
            Ok(()) => Verdict::Done(Done::Disassociated),
            Err(WriteError::Deadline(failure)) => Verdict::Transient(failure),
            Err(WriteError::NoRoom { until_ms }) => WriteError::no_room(until_ms).into(),
            Err(WriteError::Api { error, retried }) => {
                let read = self.read(invocation, request.catalog, &request.opportunity);
                // An earlier attempt of this invocation may have been applied: the entity's absence
                // may then be its doing.
                let recheck_at = self.review_recheck_at();
                after_disassociation_error(error, read, request, first_receive && !retried, recheck_at).await
            }
        }
    }
}

/// The verdict on a `DisassociateOpportunity` error. `read` (what the opportunity holds) is awaited
/// only for a not-found or business-rule answer, which may mean the entity was already disassociated:
/// the service's answer for that is undocumented, so the opportunity itself decides. `first_delivery`:
/// the request cannot have been carried out before (an SQS message at its first receive, not yet
/// tried in this invocation), so an entity absent from the opportunity was never associated with it.
/// `recheck_at_ms`: when a write refused under AWS's review is tried again.
pub async fn after_disassociation_error<F>(
    error: ApiError,
    read: F,
    request: &DisassociationRequest,
    first_delivery: bool,
    recheck_at_ms: u64,
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
        // Still there: refused. Why is told by the read, not the error code, which is the same for
        // a review, a rejected opportunity and a rule that one of its type must stay.
        holdings if holdings.holds(&request.entity) => {
            let failure = Failure::from(error);
            if let Some(stopped) = stopped_by_review(&holdings, recheck_at_ms, Some(&failure)) {
                return stopped.into();
            }
            // The last of its type: a swap needs the new one associated first.
            Verdict::Permanent(if holdings.holds_only(&request.entity) {
                failure.noted(format_args!(
                    "{} is the last entity of type {} on the opportunity: to replace it, send the request again with ReplaceWith naming the new one, which is then associated first",
                    request.entity.identifier(),
                    request.entity.entity_type()
                ))
            } else {
                failure
            })
        }
        holdings if first_delivery => Verdict::Done(Done::NotAssociated(holdings)),
        holdings => Verdict::Done(Done::AlreadyDisassociated(holdings)),
    }
}

/// What the opportunity's review status says of a write: while AWS reviews it, wait for the
/// review's end (held until `recheck_at_ms`); once AWS rejected it, never (a replacement neither).
/// `refused`: the service's answer, when the write was tried. `None`: the status stands in no write's
/// way.
pub fn stopped_by_review(holdings: &Holdings, recheck_at_ms: u64, refused: Option<&Failure>) -> Option<Failed> {
    if let Some(status) = holdings.under_review() {
        return Some(Failed::Held(Hold::under_review(recheck_at_ms, status)));
    }
    holdings.rejected().then(|| Failed::Permanent(Failure::rejected(refused)))
}

impl<P: PartnerCentral, D: DeadLetters> Worker<P, D> {
    /// When a write refused under AWS's review is tried again: `REVIEW_RECHECK_SECONDS` from now.
    pub(super) fn review_recheck_at(&self) -> u64 {
        crate::time::now_ms() + self.config.review_recheck.as_millis() as u64
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
            7,
        )
        .await;
        assert!(matches!(verdict, Verdict::Transient(_)));
        let verdict = after_disassociation_error(
            api("AccessDeniedException", ErrorClass::Permanent),
            unreachable_read(),
            &request(),
            false,
            7,
        )
        .await;
        let Verdict::Permanent(failure) = verdict else { panic!("expected permanent") };
        assert_eq!((failure.code.as_str(), failure.request_id.as_deref()), ("AccessDeniedException", Some("rid")));
    }

    #[tokio::test]
    async fn not_found_is_settled_by_the_opportunity_itself() {
        let ambiguous = || api("ResourceNotFoundException", ErrorClass::Ambiguous);
        let absent = after_disassociation_error(ambiguous(), holding(&["S-2"]), &request(), false, 7).await;
        assert!(matches!(absent, Verdict::Done(Done::AlreadyDisassociated(_))), "{absent:?}");
        let present = after_disassociation_error(ambiguous(), holding(&["S-1"]), &request(), false, 7).await;
        assert!(matches!(present, Verdict::Permanent(_)));
        let Verdict::Permanent(failure) =
            after_disassociation_error(ambiguous(), async { Ok(None) }, &request(), false, 7).await
        else {
            panic!("expected permanent")
        };
        assert!(failure.message.contains("does not exist"));
        let read_failed = after_disassociation_error(
            ambiguous(),
            async { Err(api("InternalServerException", ErrorClass::Transient)) },
            &request(),
            false,
            7,
        )
        .await;
        let Verdict::Transient(failure) = read_failed else { panic!("expected transient") };
        assert_eq!(failure.code, "InternalServerException");
        let read_denied = after_disassociation_error(
            ambiguous(),
            async { Err(api("AccessDeniedException", ErrorClass::Permanent)) },
            &request(),
            false,
            7,
        )
        .await;
        let Verdict::Permanent(failure) = read_denied else { panic!("expected permanent") };
        assert_eq!(failure.code, "ResourceNotFoundException");
    }

    /// A write refused while AWS reviews the opportunity waits for the review to end, whatever the
    /// error's code: the read decides. A rejected one is read-only for good, and the reason does not
    /// suggest a replacement, which would be refused too.
    #[tokio::test]
    async fn a_refusal_under_review_is_held_and_a_rejected_opportunity_is_dead_lettered() {
        for (code, status) in [("ValidationException", "Submitted"), ("ResourceNotFoundException", "In review")] {
            let read = async { Ok(Some(Holdings::default().with(EntityType::Solutions, ["S-1"]).reviewed(status))) };
            let refused = api(code, ErrorClass::Ambiguous);
            let Verdict::Held(hold) = after_disassociation_error(refused, read, &request(), false, 7).await else {
                panic!("expected held")
            };
            assert_eq!((hold.cause, hold.until_ms), (crate::domain::outcome::HeldFor::UnderReview, 7));
            assert!(hold.reason.contains(&format!("review status is {status}")), "{}", hold.reason);
        }
        let refused = || api("ValidationException", ErrorClass::Ambiguous);
        let rejected =
            async { Ok(Some(Holdings::default().with(EntityType::Solutions, ["S-1"]).reviewed("Rejected"))) };
        let Verdict::Permanent(failure) = after_disassociation_error(refused(), rejected, &request(), false, 7).await
        else {
            panic!("expected permanent")
        };
        assert!(!failure.message.contains("ReplaceWith"), "{}", failure.message);
        assert_eq!((failure.code.as_str(), failure.request_id.as_deref()), ("OpportunityRejected", Some("rid")));
        assert!(failure.message.contains("rejected by AWS's review and is read-only"), "{}", failure.message);
        let approved =
            async { Ok(Some(Holdings::default().with(EntityType::Solutions, ["S-1"]).reviewed("Approved"))) };
        let Verdict::Permanent(failure) = after_disassociation_error(refused(), approved, &request(), false, 7).await
        else {
            panic!("expected permanent")
        };
        assert!(failure.message.contains("ReplaceWith"), "approved: the last one can be replaced: {}", failure.message);
    }

    #[tokio::test]
    async fn an_entity_absent_at_a_first_delivery_was_never_associated() {
        let ambiguous = || api("ResourceNotFoundException", ErrorClass::Ambiguous);
        let first = after_disassociation_error(ambiguous(), holding(&["S-2"]), &request(), true, 7).await;
        assert!(matches!(first, Verdict::Done(Done::NotAssociated(_))), "{first:?}");
        let present = after_disassociation_error(ambiguous(), holding(&["S-1"]), &request(), true, 7).await;
        assert!(matches!(present, Verdict::Permanent(_)), "a first delivery changes nothing else");
    }
}
