//! What becomes of a record: one [`Outcome`], decided once (`worker::decide`), carried out once
//! (`worker::settle`), and read by the log line, the metrics and the trigger's answer.
//!
//! Every string the function puts in an answer, a log line's `outcome` or a dead letter's
//! `ErrorCode` is a constant here: [`codes`] for errors, [`names`] for outcomes.

use crate::domain::opportunity::Holdings;
use crate::domain::request::InvalidRequest;

/// Error codes the function gives itself (the service's own codes pass through unchanged). They are
/// the `ErrorCode` attribute of a dead letter and the `errorType` of a function error.
pub mod codes {
    /// The document is not a valid request (our own validation, before any call).
    pub const VALIDATION_ERROR: &str = "ValidationError";
    /// The request names a catalog outside `ALLOWED_CATALOGS`.
    pub const CATALOG_NOT_ALLOWED: &str = "CatalogNotAllowed";
    /// The event is of no shape the function takes.
    pub const UNSUPPORTED_EVENT: &str = "UnsupportedEvent";
    /// Not started, or cut off: the invocation's remaining time could not cover its paced call.
    pub const DEADLINE: &str = "DeadlineExceeded";
    /// Not started: an earlier record of the same FIFO message group failed in this batch.
    pub const EARLIER_FAILURE_IN_GROUP: &str = "EarlierFailureInGroup";
    /// Processing the record panicked (a bug of ours): retried, and caught so it fails only itself.
    pub const PANIC: &str = "Panic";
    /// A record without a message id failed and could not be dead-lettered: the whole batch fails.
    pub const UNREPORTABLE_RECORD: &str = "UnreportableRecord";
    /// The answer could not be written as JSON.
    pub const SERIALIZATION_ERROR: &str = "SerializationError";
    /// A record that had to wait for the day's write budget and could not (no work queue to hold it
    /// in, or held past the bound).
    pub const HELD_FOR_BUDGET: &str = "HeldForBudget";
    /// A record that had to wait for AWS's review of the opportunity and could not.
    pub const UNDER_REVIEW: &str = "UnderReview";
    /// AWS's review rejected the opportunity, as a read showed: it is read-only for good.
    pub const OPPORTUNITY_REJECTED: &str = "OpportunityRejected";
    /// The service's own code for an opportunity that does not exist, also given by the function
    /// when a read shows it.
    pub const RESOURCE_NOT_FOUND: &str = "ResourceNotFoundException";
}

/// The names of outcomes: a log line's `outcome`, an answer's `outcome`.
pub mod names {
    pub const DISASSOCIATED: &str = "disassociated";
    pub const ALREADY_DISASSOCIATED: &str = "already_disassociated";
    pub const NOT_ASSOCIATED: &str = "not_associated";
    pub const REPLACED: &str = "replaced";
    pub const ALREADY_REPLACED: &str = "already_replaced";
    pub const DRY_RUN: &str = "dry_run";
    pub const HELD: &str = "held";
    pub const DEAD_LETTERED: &str = "dead_lettered";
    pub const FAILED: &str = "failed";
}

/// Why a record did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The service's error code, or one of [`codes`].
    pub code: String,
    pub message: String,
    /// The service's request id, when the service answered.
    pub request_id: Option<String>,
    /// What a redelivery will do about it: said only when the record goes back to its trigger, not
    /// when it is dead-lettered (no redelivery follows).
    pub redelivery: Option<String>,
}

impl Failure {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self { code: code.to_owned(), message: message.into(), request_id: None, redelivery: None }
    }

    /// The opportunity the request names does not exist in its catalog, as a read showed.
    pub fn no_such_opportunity(opportunity: impl std::fmt::Display) -> Self {
        Self::new(codes::RESOURCE_NOT_FOUND, format!("the opportunity {opportunity} does not exist in this catalog"))
    }

    /// The opportunity was rejected by AWS's review, as a read showed: it takes no change, and no
    /// redelivery changes that. `refused`: the service's answer to the write, when one was tried.
    pub fn rejected(refused: Option<&Failure>) -> Self {
        let failure = Self::new(
            codes::OPPORTUNITY_REJECTED,
            "the opportunity was rejected by AWS's review and is read-only: it takes no change, a replacement neither",
        );
        match refused {
            None => failure,
            Some(refused) => Self {
                request_id: refused.request_id.clone(),
                ..failure.noted(format_args!("the write was refused: {}: {}", refused.code, refused.message))
            },
        }
    }

    /// A write answered `answered` (ambiguous), and the read that was to settle it failed with `read`.
    pub fn unsettled(answered: &str, read: Failure) -> Self {
        let message = format!(
            "it answered {answered}, and reading the opportunity to see whether it is done failed: {}",
            read.message
        );
        Self { message, ..read }
    }

    /// The same failure, with what a redelivery will do about it.
    pub fn until_redelivered(self, redelivery: impl std::fmt::Display) -> Self {
        Self { redelivery: Some(redelivery.to_string()), ..self }
    }

    /// The failure as it goes back to its trigger: its message says what the redelivery will do.
    pub fn given_back(self) -> Self {
        match self.redelivery {
            Some(redelivery) => Self { message: format!("{}; {redelivery}", self.message), redelivery: None, ..self },
            None => self,
        }
    }

    /// The failure as it is dead-lettered: no redelivery follows, and its message promises none.
    pub fn given_up(self) -> Self {
        Self { redelivery: None, ..self }
    }

    /// The same failure, its message followed by `note`.
    pub fn noted(mut self, note: impl std::fmt::Display) -> Self {
        self.message = format!("{} ({note})", self.message);
        self
    }
}

impl From<InvalidRequest> for Failure {
    fn from(error: InvalidRequest) -> Self {
        Self::new(codes::VALIDATION_ERROR, error.to_string())
    }
}

/// A request that succeeded, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    Disassociated,
    /// The service said not found, and the opportunity exists without that entity: a redelivery of
    /// a request already carried out, as far as the event can tell. With what the read showed the
    /// opportunity holds, so that the record's warning can show a wrong identifier.
    AlreadyDisassociated(Holdings),
    /// The same answer for an SQS message at its first receive, which is no redelivery of that
    /// message: most likely a wrong identifier. Still a success, so that it does not loop.
    NotAssociated(Holdings),
    /// A replacement (`ReplaceWith`): the new entity confirmed on the opportunity and the old one gone,
    /// by the writes this delivery made.
    Replaced,
    /// A replacement the opportunity already showed done (old gone, new there): no write was made.
    AlreadyReplaced,
    /// `DRY_RUN`: valid, and the call was logged instead of made.
    DryRun,
}

impl Done {
    pub fn name(&self) -> &'static str {
        match self {
            Done::Disassociated => names::DISASSOCIATED,
            Done::AlreadyDisassociated(_) => names::ALREADY_DISASSOCIATED,
            Done::NotAssociated(_) => names::NOT_ASSOCIATED,
            Done::Replaced => names::REPLACED,
            Done::AlreadyReplaced => names::ALREADY_REPLACED,
            Done::DryRun => names::DRY_RUN,
        }
    }

    /// What the opportunity holds, when a not-found answer was settled by reading it.
    pub fn holdings(&self) -> Option<&Holdings> {
        match self {
            Done::AlreadyDisassociated(holdings) | Done::NotAssociated(holdings) => Some(holdings),
            _ => None,
        }
    }
}

/// Why a record waits: a cause that ends by itself, so waiting is neither a failure nor an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldFor {
    /// The account's writes of the day are spent until `until_ms`.
    Budget,
    /// AWS reviews the opportunity (`Submitted`, `In review`): it takes no change until the review ends.
    UnderReview,
}

impl HeldFor {
    /// The log field `held_for`, the `HeldFor` message attribute, a direct answer's `heldFor`.
    pub fn as_str(self) -> &'static str {
        match self {
            HeldFor::Budget => "budget",
            HeldFor::UnderReview => "under_review",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [HeldFor::Budget, HeldFor::UnderReview].into_iter().find(|cause| cause.as_str() == text)
    }

    /// The `ErrorCode` of a record held for this cause that could not be held (or no longer).
    pub fn code(self) -> &'static str {
        match self {
            HeldFor::Budget => codes::HELD_FOR_BUDGET,
            HeldFor::UnderReview => codes::UNDER_REVIEW,
        }
    }
}

/// How a held record was kept (docs/holds.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Decided, not yet carried out.
    Pending,
    /// Sent again to the work queue, delayed, with its hold in its attributes: the original is done with.
    Requeued,
    /// Left in its queue, invisible until it is due (a FIFO message, or a continuation's first
    /// receive): reported failed to SQS.
    Invisible,
}

/// A record that must wait, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub cause: HeldFor,
    /// When to try again, in epoch milliseconds.
    pub until_ms: u64,
    /// Why, in words: the record's log line.
    pub reason: String,
    /// When it was first queued (the `HeldSince` it carries, or its first enqueue), in epoch
    /// milliseconds: what the age bound and `OldestHeldAgeSeconds` read. `None` until decided.
    pub since_ms: Option<u64>,
    pub kept: Kept,
    /// A held record received before its time and put back to wait, untried: no new hold.
    pub continued: bool,
}

impl Hold {
    pub fn new(cause: HeldFor, until_ms: u64, reason: impl Into<String>) -> Self {
        Self { cause, until_ms, reason: reason.into(), since_ms: None, kept: Kept::Pending, continued: false }
    }

    /// The hold as a failure, when it cannot be kept: its cause's code, its reason.
    pub fn failure(&self) -> Failure {
        Failure::new(self.cause.code(), self.reason.clone())
    }

    /// A record held for `cause` until `until_ms`, received before then: it waits on, untried.
    pub fn continued(cause: HeldFor, until_ms: u64) -> Self {
        let reason = format!("waits on, until its HoldUntil, {}", crate::time::rfc3339(until_ms));
        Self { continued: true, ..Self::new(cause, until_ms, reason) }
    }

    /// Held for the day's write budget, which has room again at `until_ms` (epoch milliseconds).
    pub fn budget(until_ms: u64) -> Self {
        let until = crate::time::rfc3339(until_ms);
        Self::new(HeldFor::Budget, until_ms, format!("the day's write budget has no room until {until}"))
    }

    /// Held while AWS reviews the opportunity (its `ReviewStatus`), to be tried again at `until_ms`.
    pub fn under_review(until_ms: u64, status: &str) -> Self {
        Self::new(
            HeldFor::UnderReview,
            until_ms,
            format!("the opportunity's review status is {status}: it takes no change until AWS's review ends"),
        )
    }
}

/// What becomes of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done(Done),
    /// Must wait for a cause that ends by itself: queued to be tried again later, not a failure.
    Held(Hold),
    /// Goes to the dead-letter queue with its reason (once carried out: went there).
    DeadLettered(Failure),
    /// Handed back to its trigger: reported failed to SQS, a function error for EventBridge (Lambda's
    /// async retries) and for a direct caller.
    Failed(Failure),
}

impl Outcome {
    /// One outcome of every kind, in the order the metrics list them (a success's holdings empty, a
    /// failure's reason blank): what a list per kind is derived from.
    pub fn every_kind() -> [Outcome; 11] {
        let blank = || Failure::new("", "");
        [
            Outcome::Done(Done::Disassociated),
            Outcome::Done(Done::AlreadyDisassociated(Holdings::default())),
            Outcome::Done(Done::NotAssociated(Holdings::default())),
            Outcome::Done(Done::Replaced),
            Outcome::Done(Done::AlreadyReplaced),
            Outcome::Done(Done::DryRun),
            Outcome::Held(Hold::budget(0)),
            Outcome::Held(Hold::under_review(0, "")),
            Outcome::Held(Hold::continued(HeldFor::Budget, 0)),
            Outcome::DeadLettered(blank()),
            Outcome::Failed(blank()),
        ]
    }

    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Done(done) => done.name(),
            Outcome::Held(_) => names::HELD,
            Outcome::DeadLettered(_) => names::DEAD_LETTERED,
            Outcome::Failed(_) => names::FAILED,
        }
    }

    /// Whether the record goes back to its trigger (reported failed to SQS): a failure, or a hold kept
    /// by the message's visibility.
    pub fn goes_back(&self) -> bool {
        matches!(self, Outcome::Failed(_) | Outcome::Held(Hold { kept: Kept::Invisible, .. }))
    }

    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Outcome::Done(_) | Outcome::Held(_) => None,
            Outcome::DeadLettered(failure) | Outcome::Failed(failure) => Some(failure),
        }
    }
}

/// A function error, as Lambda reports it: `errorType` names the class of failure, `errorMessage` the
/// cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error_type}: {message}")]
pub struct FunctionError {
    pub error_type: String,
    pub message: String,
}

impl From<Failure> for FunctionError {
    fn from(failure: Failure) -> Self {
        Self { error_type: failure.code, message: failure.message }
    }
}

impl From<FunctionError> for lambda_runtime::Diagnostic {
    fn from(error: FunctionError) -> Self {
        lambda_runtime::Diagnostic { error_type: error.error_type, error_message: error.message }
    }
}
