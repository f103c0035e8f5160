//! One outcome per record, decided in one place.

use serde::Serialize;

use crate::partner_central::{ApiError, Association, ErrorClass};
use crate::request::InvalidRequest;

/// Error codes the function itself gives (the service's own codes pass through unchanged). They are
/// the `ErrorCode` attribute of a dead letter and the `errorType` of a direct invocation's error.
pub mod codes {
    /// The document is not a valid request (our own validation, before any call).
    pub const VALIDATION_ERROR: &str = "ValidationError";
    /// The request names a catalog outside `ALLOWED_CATALOGS`.
    pub const CATALOG_NOT_ALLOWED: &str = "CatalogNotAllowed";
    /// The event is of no shape the function knows.
    pub const UNSUPPORTED_EVENT: &str = "UnsupportedEvent";
    /// Not started, or cut off: the invocation's remaining time could not cover its paced call.
    pub const DEADLINE: &str = "DeadlineExceeded";
    /// Not started: an earlier record of the same FIFO message group failed in this batch.
    pub const EARLIER_FAILURE_IN_GROUP: &str = "EarlierFailureInGroup";
    /// Processing the record panicked (a bug of ours): retried, and caught so it fails only itself.
    pub const PANIC: &str = "Panic";
}

/// Why a record did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The service's error code, or one of [`codes`].
    pub code: String,
    pub message: String,
    /// The service's request id, when the service answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Failure {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self { code: code.to_owned(), message: message.into(), request_id: None }
    }
}

impl From<InvalidRequest> for Failure {
    fn from(error: InvalidRequest) -> Self {
        Self::new(codes::VALIDATION_ERROR, error.to_string())
    }
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Self { code: error.code, message: error.message, request_id: error.request_id }
    }
}

/// What became of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Disassociated,
    /// The service said not found, and the opportunity exists without that entity: a redelivery of
    /// a request already carried out. Counts as success.
    AlreadyDisassociated,
    /// `DRY_RUN`: valid, and the call was logged instead of made.
    DryRun,
    /// Permanent: will never succeed as it is. Dead-lettered when a dead-letter queue is set.
    Rejected(Failure),
    /// Transient: reported failed so that the queue or Lambda's async retry brings it back.
    Retry(Failure),
}

impl Outcome {
    /// Decides the outcome of a `DisassociateOpportunity` error. `association` is asked only for a
    /// not-found (or business-rule) answer, which may mean the entity was already disassociated.
    pub async fn of_error<F>(error: ApiError, association: F) -> Outcome
    where
        F: Future<Output = Result<Association, ApiError>>,
    {
        match error.class {
            ErrorClass::Transient => Outcome::Retry(error.into()),
            ErrorClass::Permanent => Outcome::Rejected(error.into()),
            ErrorClass::Missing => match association.await {
                Ok(Association::Absent) => Outcome::AlreadyDisassociated,
                Ok(Association::Present) => Outcome::Rejected(error.into()),
                Ok(Association::NoSuchOpportunity) => Outcome::Rejected(Failure {
                    message: format!("the opportunity does not exist in this catalog ({})", error.message),
                    ..error.into()
                }),
                Err(check) if check.class == ErrorClass::Transient => Outcome::Retry(check.into()),
                Err(_) => Outcome::Rejected(error.into()),
            },
        }
    }

    /// The name used in logs, summaries and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Disassociated => "disassociated",
            Outcome::AlreadyDisassociated => "already_disassociated",
            Outcome::DryRun => "dry_run",
            Outcome::Rejected(_) => "rejected",
            Outcome::Retry(_) => "retry",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: &str, class: ErrorClass) -> ApiError {
        ApiError { code: code.into(), message: "m".into(), request_id: Some("rid".into()), class }
    }

    async fn unreachable_check() -> Result<Association, ApiError> {
        panic!("GetOpportunity must not be called for this error")
    }

    #[tokio::test]
    async fn transient_errors_retry_and_permanent_ones_are_rejected_without_a_check() {
        let outcome = Outcome::of_error(api("ThrottlingException", ErrorClass::Transient), unreachable_check()).await;
        assert_eq!(outcome.name(), "retry");
        let outcome = Outcome::of_error(api("AccessDeniedException", ErrorClass::Permanent), unreachable_check()).await;
        let Outcome::Rejected(failure) = outcome else { panic!("expected rejected") };
        assert_eq!((failure.code.as_str(), failure.request_id.as_deref()), ("AccessDeniedException", Some("rid")));
    }

    #[tokio::test]
    async fn not_found_is_settled_by_the_opportunity_itself() {
        let missing = || api("ResourceNotFoundException", ErrorClass::Missing);
        let absent = Outcome::of_error(missing(), async { Ok(Association::Absent) }).await;
        assert_eq!(absent, Outcome::AlreadyDisassociated);
        let present = Outcome::of_error(missing(), async { Ok(Association::Present) }).await;
        assert_eq!(present.name(), "rejected");
        let Outcome::Rejected(failure) =
            Outcome::of_error(missing(), async { Ok(Association::NoSuchOpportunity) }).await
        else {
            panic!("expected rejected")
        };
        assert!(failure.message.contains("does not exist"));
        let check_failed =
            Outcome::of_error(missing(), async { Err(api("InternalServerException", ErrorClass::Transient)) }).await;
        let Outcome::Retry(failure) = check_failed else { panic!("expected retry") };
        assert_eq!(failure.code, "InternalServerException");
        let check_denied =
            Outcome::of_error(missing(), async { Err(api("AccessDeniedException", ErrorClass::Permanent)) }).await;
        let Outcome::Rejected(failure) = check_denied else { panic!("expected rejected") };
        assert_eq!(failure.code, "ResourceNotFoundException");
    }
}
