//! The Partner Central Selling API, behind a small port so the handler can be driven by a fake.
//!
//! The SDK adapter turns every error shape into an [`ApiError`] keyed on the error code (not the HTTP
//! status: AccessDenied has been seen arriving as 400), and tells the pacer about every throttled
//! attempt, including the ones the SDK retries by itself.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_config::SdkConfig;
use aws_sdk_partnercentralselling::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_partnercentralselling::operation::RequestId;
use aws_sdk_partnercentralselling::operation::disassociate_opportunity::DisassociateOpportunityError;
use aws_sdk_partnercentralselling::operation::get_opportunity::GetOpportunityError;
use aws_sdk_partnercentralselling::types::{RelatedEntityIdentifiers, RelatedEntityType};
use aws_sdk_partnercentralselling::{Client, config::Region};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::timeout::TimeoutConfig;

use crate::config::Config;
use crate::pacer::Pacer;
use crate::request::{DisassociationRequest, EntityType};

/// What a failed call means for the request that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Passing (throttling, 5xx, timeouts, connection errors, answers we do not understand): try again later.
    Transient,
    /// The request itself is at fault and will never succeed as it is.
    Permanent,
    /// Not found, or refused for a business rule: may mean the entity is already disassociated, which
    /// only `GetOpportunity` can tell.
    Missing,
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

/// Where the related entity stands on the opportunity, as `GetOpportunity` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Association {
    Present,
    Absent,
    NoSuchOpportunity,
}

/// The two calls the function makes.
pub trait PartnerCentral: Send + Sync {
    fn disassociate(&self, request: &DisassociationRequest) -> impl Future<Output = Result<(), ApiError>> + Send;
    fn association(
        &self,
        request: &DisassociationRequest,
    ) -> impl Future<Output = Result<Association, ApiError>> + Send;
}

impl<T: PartnerCentral> PartnerCentral for Arc<T> {
    fn disassociate(&self, request: &DisassociationRequest) -> impl Future<Output = Result<(), ApiError>> + Send {
        (**self).disassociate(request)
    }

    fn association(
        &self,
        request: &DisassociationRequest,
    ) -> impl Future<Output = Result<Association, ApiError>> + Send {
        (**self).association(request)
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

/// The adapter over the AWS SDK client.
#[derive(Debug, Clone)]
pub struct SdkPartnerCentral {
    client: Client,
}

impl SdkPartnerCentral {
    /// Builds the client from the loaded SDK config (so `AWS_ENDPOINT_URL_PARTNERCENTRAL_SELLING`,
    /// credentials and retry settings apply as everywhere in the SDK), pointed at the service's region
    /// whatever region runs the function.
    pub fn new(sdk: &SdkConfig, config: &Config, pacer: Arc<Pacer>, throttles: Arc<ThrottleCount>) -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .operation_attempt_timeout(config.read_timeout + config.connect_timeout)
            .operation_timeout(config.operation_timeout)
            .build();
        let conf = aws_sdk_partnercentralselling::config::Builder::from(sdk)
            .region(Region::new(config.partner_central_region.clone()))
            .timeout_config(timeouts)
            .interceptor(throttle_watch(pacer, throttles))
            .build();
        Self { client: Client::from_conf(conf) }
    }

    /// Wraps a client built elsewhere (tests build one with `aws-smithy-mocks`).
    pub fn from_client(client: Client) -> Self {
        Self { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl PartnerCentral for SdkPartnerCentral {
    async fn disassociate(&self, request: &DisassociationRequest) -> Result<(), ApiError> {
        self.client
            .disassociate_opportunity()
            .catalog(request.catalog.as_str())
            .opportunity_identifier(request.opportunity.as_str())
            .related_entity_type(sdk_entity_type(request.entity.entity_type()))
            .related_entity_identifier(request.entity.identifier())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify_disassociate(&e))
    }

    async fn association(&self, request: &DisassociationRequest) -> Result<Association, ApiError> {
        let result = self
            .client
            .get_opportunity()
            .catalog(request.catalog.as_str())
            .identifier(request.opportunity.as_str())
            .send()
            .await;
        match result {
            Ok(output) => {
                let present = output.related_entity_identifiers().is_some_and(|ids| {
                    entity_list(ids, request.entity.entity_type()).iter().any(|id| id == request.entity.identifier())
                });
                Ok(if present { Association::Present } else { Association::Absent })
            }
            Err(SdkError::ServiceError(e)) if matches!(e.err(), GetOpportunityError::ResourceNotFoundException(_)) => {
                Ok(Association::NoSuchOpportunity)
            }
            Err(e) => Err(classify_get(&e)),
        }
    }
}

fn sdk_entity_type(entity_type: EntityType) -> RelatedEntityType {
    match entity_type {
        EntityType::Solutions => RelatedEntityType::Solutions,
        EntityType::AwsProducts => RelatedEntityType::AwsProducts,
        EntityType::AwsMarketplaceOffers => RelatedEntityType::AwsMarketplaceOffers,
        EntityType::AwsMarketplaceOfferSets => RelatedEntityType::AwsMarketplaceOfferSets,
        EntityType::AwsMarketplaceSolutions => RelatedEntityType::AwsMarketplaceSolutions,
        EntityType::AwsMarketplaceProducts => RelatedEntityType::AwsMarketplaceProducts,
    }
}

fn entity_list(ids: &RelatedEntityIdentifiers, entity_type: EntityType) -> &[String] {
    match entity_type {
        EntityType::Solutions => ids.solutions(),
        EntityType::AwsProducts => ids.aws_products(),
        EntityType::AwsMarketplaceOffers => ids.aws_marketplace_offers(),
        EntityType::AwsMarketplaceOfferSets => ids.aws_marketplace_offer_sets(),
        EntityType::AwsMarketplaceSolutions => ids.aws_marketplace_solutions(),
        EntityType::AwsMarketplaceProducts => ids.aws_marketplace_products(),
    }
}

fn classify_disassociate(
    error: &SdkError<DisassociateOpportunityError, aws_smithy_runtime_api::http::Response>,
) -> ApiError {
    let detail = match error {
        SdkError::ServiceError(service) => match service.err() {
            DisassociateOpportunityError::ValidationException(v) => {
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
                Some((message, if business { ErrorClass::Missing } else { ErrorClass::Permanent }))
            }
            DisassociateOpportunityError::AccessDeniedException(a) => {
                let reason = a.reason().map(|r| format!(" [{}]", r.as_str())).unwrap_or_default();
                Some((format!("{}{reason}", a.message().unwrap_or("")), ErrorClass::Permanent))
            }
            DisassociateOpportunityError::ResourceNotFoundException(n) => {
                Some((n.message().unwrap_or("").to_owned(), ErrorClass::Missing))
            }
            _ => None,
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

fn classify_get(error: &SdkError<GetOpportunityError, aws_smithy_runtime_api::http::Response>) -> ApiError {
    classify_generic(error)
}

/// Everything but the modelled permanent errors of `DisassociateOpportunity`: the error code decides,
/// and whatever is not known to be the request's fault is transient, so the queue's redrive policy,
/// not a guess, ends its retries.
fn classify_generic<E>(error: &SdkError<E, aws_smithy_runtime_api::http::Response>) -> ApiError
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
                "ResourceNotFoundException" => ErrorClass::Missing,
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

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    parts.dedup();
    parts.join(": ")
}

/// The interceptor that tells `pacer` and `throttles` of every throttled attempt.
pub fn throttle_watch(pacer: Arc<Pacer>, throttles: Arc<ThrottleCount>) -> impl Intercept + 'static {
    ThrottleWatch { pacer, throttles }
}

/// Sees every attempt's answer, so that throttling the SDK retries by itself still slows the pacer.
#[derive(Debug)]
struct ThrottleWatch {
    pacer: Arc<Pacer>,
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
                self.pacer.throttled();
            }
        }
        Ok(())
    }
}
