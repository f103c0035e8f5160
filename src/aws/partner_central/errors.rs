//! What a failed Partner Central call means: every SDK error shape turned into an [`ApiError`] keyed
//! on the error code (not the HTTP status: AccessDenied has been seen arriving as 400), its
//! [`ErrorClass`], and the watch that counts throttled attempts. The two writes,
//! `AssociateOpportunity` and `DisassociateOpportunity`, have the same modelled errors and are
//! classified alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_partnercentralselling::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_partnercentralselling::operation::RequestId;
use aws_sdk_partnercentralselling::operation::associate_opportunity::AssociateOpportunityError;
use aws_sdk_partnercentralselling::operation::disassociate_opportunity::DisassociateOpportunityError;
use aws_sdk_partnercentralselling::types::error::{
    AccessDeniedException, ResourceNotFoundException, ValidationException,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::domain::outcome::{Failure, codes};

/// What a failed call means for the request that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient (throttling, 5xx, timeouts, connection errors, answers we do not understand): try again later.
    Transient,
    /// The request itself is at fault and will never succeed as it is.
    Permanent,
    /// Not found, or refused for a business rule (and, for an association, a conflict): may mean the
    /// entity is already disassociated (or associated), which only the opportunity itself can tell.
    Ambiguous,
}

/// A failed call, keyed on the service's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    pub class: ErrorClass,
}

impl ApiError {
    /// The service refused the call for the rate of calls, not for the call itself.
    pub fn is_throttling(&self) -> bool {
        self.code == "ThrottlingException"
    }
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Self { code: error.code, message: error.message, request_id: error.request_id, redelivery: None }
    }
}

/// Throttled answers seen by the client, over the life of the process.
#[derive(Debug, Default)]
pub struct ThrottleCount(AtomicU64);

impl ThrottleCount {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The modelled errors the two writes share, seen through either operation's error type.
pub(super) enum WriteErrorShape<'a> {
    Validation(&'a ValidationException),
    AccessDenied(&'a AccessDeniedException),
    NotFound(&'a ResourceNotFoundException),
    Other,
}

/// A write's error type: `AssociateOpportunity`'s or `DisassociateOpportunity`'s.
pub(super) trait WriteOperationError: ProvideErrorMetadata + std::error::Error + 'static {
    fn shape(&self) -> WriteErrorShape<'_>;
    /// What a `ConflictException` (not in the model: an unhandled error) means for this write.
    const CONFLICT: ErrorClass;
}

impl WriteOperationError for AssociateOpportunityError {
    fn shape(&self) -> WriteErrorShape<'_> {
        match self {
            Self::ValidationException(v) => WriteErrorShape::Validation(v),
            Self::AccessDeniedException(a) => WriteErrorShape::AccessDenied(a),
            Self::ResourceNotFoundException(n) => WriteErrorShape::NotFound(n),
            _ => WriteErrorShape::Other,
        }
    }
    /// The entity may already be there: the opportunity tells.
    const CONFLICT: ErrorClass = ErrorClass::Ambiguous;
}

impl WriteOperationError for DisassociateOpportunityError {
    fn shape(&self) -> WriteErrorShape<'_> {
        match self {
            Self::ValidationException(v) => WriteErrorShape::Validation(v),
            Self::AccessDeniedException(a) => WriteErrorShape::AccessDenied(a),
            Self::ResourceNotFoundException(n) => WriteErrorShape::NotFound(n),
            _ => WriteErrorShape::Other,
        }
    }
    const CONFLICT: ErrorClass = ErrorClass::Permanent;
}

pub(super) fn classify_write<E: WriteOperationError>(
    error: &SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> ApiError {
    let detail = match error {
        SdkError::ServiceError(service) => match service.err().shape() {
            WriteErrorShape::Validation(v) => {
                let fields: Vec<String> = v
                    .error_list()
                    .iter()
                    .map(|f| format!("{}: {} ({})", f.field_name().unwrap_or("-"), f.message(), f.code().as_str()))
                    .collect();
                let business = v.reason().as_str() == "BUSINESS_VALIDATION_FAILED";
                let mut message = format!("{} [{}]", v.message(), v.reason().as_str());
                if !fields.is_empty() {
                    message.push_str(&format!(" {}", fields.join("; ")));
                }
                Some((message, if business { ErrorClass::Ambiguous } else { ErrorClass::Permanent }))
            }
            WriteErrorShape::AccessDenied(a) => {
                let reason = a.reason().map(|r| format!(" [{}]", r.as_str())).unwrap_or_default();
                Some((format!("{}{reason}", a.message().unwrap_or("")), ErrorClass::Permanent))
            }
            WriteErrorShape::NotFound(n) => Some((n.message().unwrap_or("").to_owned(), ErrorClass::Ambiguous)),
            WriteErrorShape::Other if service.err().code() == Some("ConflictException") => {
                Some((service.err().message().unwrap_or("").to_owned(), E::CONFLICT))
            }
            WriteErrorShape::Other => None,
        },
        _ => None,
    };
    match detail {
        Some((message, class)) => ApiError {
            code: error.code().unwrap_or("ServiceError").to_owned(),
            message,
            request_id: error.request_id().map(str::to_owned),
            class,
        },
        None => classify_generic(error),
    }
}

/// Everything but the modelled permanent errors of the writes: the error code decides,
/// and whatever is not known to be the request's fault is transient, so the queue's redrive policy,
/// not a guess, ends its retries.
pub fn classify_generic<E>(error: &SdkError<E, aws_smithy_runtime_api::http::Response>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let request_id = error.request_id().map(str::to_owned);
    let (code, message, class) = match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("UnknownError").to_owned();
            let message = service.err().message().unwrap_or("").to_owned();
            let class = match code.as_str() {
                "ValidationException" | "AccessDeniedException" | "ConflictException" => ErrorClass::Permanent,
                codes::RESOURCE_NOT_FOUND => ErrorClass::Ambiguous,
                _ => ErrorClass::Transient,
            };
            (code, message, class)
        }
        SdkError::TimeoutError(_) => {
            ("Timeout".to_owned(), "the call did not finish in time".to_owned(), ErrorClass::Transient)
        }
        SdkError::DispatchFailure(failure) => {
            let code = if failure.is_timeout() { "Timeout" } else { "ConnectionError" };
            (code.to_owned(), error_chain(error), ErrorClass::Transient)
        }
        SdkError::ResponseError(_) => ("ResponseError".to_owned(), error_chain(error), ErrorClass::Transient),
        // Credentials or endpoint resolution failed before sending: not the request's fault.
        _ => ("ClientError".to_owned(), error_chain(error), ErrorClass::Transient),
    };
    ApiError { code, message, request_id, class }
}

pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    parts.dedup();
    parts.join(": ")
}

/// The interceptor that counts every throttled attempt in `throttles` (the `Throttled` metric),
/// the SDK's retries of reads included.
pub fn throttle_watch(throttles: Arc<ThrottleCount>) -> impl Intercept + 'static {
    ThrottleWatch { throttles }
}

/// Sees every attempt's answer, so that throttling the SDK retries by itself is still counted.
#[derive(Debug)]
struct ThrottleWatch {
    throttles: Arc<ThrottleCount>,
}

impl Intercept for ThrottleWatch {
    fn name(&self) -> &'static str {
        "ThrottleWatch"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(response) = context.response() {
            let error_type = response.headers().get("x-amzn-errortype").unwrap_or("");
            // The header may carry a suffix (`ThrottlingException:http://...`): compare its name only.
            let name = error_type.split(':').next().unwrap_or("");
            if name == "ThrottlingException" || (name.is_empty() && response.status().as_u16() == 429) {
                self.throttles.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}
