//! The Partner Central Selling API, behind a small port so the worker can be driven by a fake.
//!
//! The SDK adapter turns every error shape into an [`ApiError`] keyed on the error code (not the HTTP
//! status: AccessDenied has been seen arriving as 400). A write is one attempt: the worker retries it
//! in its own paced slot. Reads are retried by the SDK. The two writes, `AssociateOpportunity` and
//! `DisassociateOpportunity`, have the same modelled errors and are classified alike.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_partnercentralselling::Client;
use aws_sdk_partnercentralselling::config::{Region, StalledStreamProtectionConfig};
use aws_sdk_partnercentralselling::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_partnercentralselling::operation::RequestId;
use aws_sdk_partnercentralselling::operation::associate_opportunity::AssociateOpportunityError;
use aws_sdk_partnercentralselling::operation::disassociate_opportunity::DisassociateOpportunityError;
use aws_sdk_partnercentralselling::operation::get_opportunity::GetOpportunityError;
use aws_sdk_partnercentralselling::types::error::{
    AccessDeniedException, ResourceNotFoundException, ValidationException,
};
use aws_sdk_partnercentralselling::types::{RelatedEntityIdentifiers, RelatedEntityType};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;

use crate::config::WorkerConfig;
use crate::domain::opportunity::Holdings;
use crate::domain::outcome::Failure;
use crate::domain::request::{Catalog, EntityType, OpportunityId, RelatedEntity};

/// The longest init waits for the connection warm-up.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(2);
/// Matches the model's `O[0-9]{1,19}` and names no opportunity: the warm-up reads nothing real.
const WARM_UP_OPPORTUNITY: &str = "O0";

/// What a failed call means for the request that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Passing (throttling, 5xx, timeouts, connection errors, answers we do not understand): try again later.
    Transient,
    /// The request itself is at fault and will never succeed as it is.
    Permanent,
    /// Not found, or refused for a business rule (and, for an association, a conflict): may mean the
    /// entity is already disassociated (or associated), which only the opportunity itself can tell.
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

impl ApiError {
    /// The service refused the call for the rate of calls, not for the call itself.
    pub fn is_throttling(&self) -> bool {
        self.code == "ThrottlingException"
    }
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Self { code: error.code, message: error.message, request_id: error.request_id }
    }
}

/// The calls the worker makes: the two writes, and the read that says what an opportunity holds.
pub trait PartnerCentral: Send + Sync {
    fn associate(
        &self,
        catalog: Catalog,
        opportunity: &OpportunityId,
        entity: &RelatedEntity,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;

    fn disassociate(
        &self,
        catalog: Catalog,
        opportunity: &OpportunityId,
        entity: &RelatedEntity,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;

    /// What the opportunity holds; `None` when it does not exist in that catalog.
    fn opportunity(
        &self,
        catalog: Catalog,
        opportunity: &OpportunityId,
    ) -> impl Future<Output = Result<Option<Holdings>, ApiError>> + Send;
}

impl<T: PartnerCentral> PartnerCentral for Arc<T> {
    fn associate(
        &self,
        catalog: Catalog,
        opportunity: &OpportunityId,
        entity: &RelatedEntity,
    ) -> impl Future<Output = Result<(), ApiError>> + Send {
        (**self).associate(catalog, opportunity, entity)
    }

    fn disassociate(
        &self,
        catalog: Catalog,
        opportunity: &OpportunityId,
        entity: &RelatedEntity,
    ) -> impl Future<Output = Result<(), ApiError>> + Send {
        (**self).disassociate(catalog, opportunity, entity)
    }

    fn opportunity(
        &self,
        catalog: Catalog,
        opportunity: &OpportunityId,
    ) -> impl Future<Output = Result<Option<Holdings>, ApiError>> + Send {
        (**self).opportunity(catalog, opportunity)
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
    /// The SDK retries of a read, set per call because the client itself makes one attempt.
    read_retries: Option<RetryConfig>,
}

impl SdkPartnerCentral {
    /// Builds the client from the loaded SDK config (so `AWS_ENDPOINT_URL_PARTNERCENTRAL_SELLING` and
    /// credentials apply as everywhere in the SDK), pointed at the service's region whatever region
    /// runs the function, as [`SdkPartnerCentral::configure`] sets it up.
    pub fn new(sdk: &SdkConfig, config: &WorkerConfig, throttles: Arc<ThrottleCount>) -> Self {
        let builder = Self::configure(aws_sdk_partnercentralselling::config::Builder::from(sdk), config, throttles);
        Self::from_client(Client::from_conf(builder.build()))
            .with_read_retries(RetryConfig::standard().with_max_attempts(config.max_attempts))
    }

    /// The client's settings: the service's region, the timeouts, the [`throttle_watch`], and one
    /// attempt per call. A write must not be retried by the SDK: its retry would go out between two
    /// paced writes, outside the pacer, and throttle the next one; the handler retries it in a paced
    /// slot instead. Reads get the SDK's retries back per call ([`PartnerCentral::opportunity`]).
    ///
    /// No stalled-stream protection: it watches a body's throughput over seconds, and these bodies are
    /// a few hundred bytes, already bounded by the read, attempt and operation timeouts. Its timers and
    /// body wrappers cost every call CPU for nothing.
    pub fn configure(
        builder: aws_sdk_partnercentralselling::config::Builder,
        config: &WorkerConfig,
        throttles: Arc<ThrottleCount>,
    ) -> aws_sdk_partnercentralselling::config::Builder {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .operation_attempt_timeout(config.read_timeout + config.connect_timeout)
            .operation_timeout(config.operation_timeout)
            .build();
        builder
            .region(Region::new(config.partner_central_region.clone()))
            .timeout_config(timeouts)
            .retry_config(RetryConfig::disabled())
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .interceptor(throttle_watch(throttles))
    }

    /// Wraps a client built elsewhere (tests build one with `aws-smithy-mocks`); reads use the
    /// client's own retry settings.
    pub fn from_client(client: Client) -> Self {
        Self { client, read_retries: None }
    }

    /// Reads are retried by the SDK as `retries` says (`AWS_MAX_ATTEMPTS`); the client itself makes
    /// one attempt per call.
    pub fn with_read_retries(mut self, retries: RetryConfig) -> Self {
        self.read_retries = Some(retries);
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens the connection to Partner Central during init, so that the first invocation's call finds
    /// it in the pool: the TLS handshake and the SDK's first-request work are done while init has a
    /// full vCPU, not in an invocation that at 128 MB gets a fraction of one.
    ///
    /// A read, never a write: `GetOpportunity` of an identifier that names no opportunity, in a catalog
    /// the role may read. Any answer, the expected `ResourceNotFoundException` included, leaves a warm
    /// connection behind. One attempt, at most [`WARM_UP_TIMEOUT`]: when the service cannot be
    /// reached, init goes on (the first call connects by itself) and says so in the log.
    pub async fn warm_up(&self, catalog: Catalog) {
        let started = Instant::now();
        let call = self.client.get_opportunity().catalog(catalog.as_str()).identifier(WARM_UP_OPPORTUNITY).send();
        let failure = match tokio::time::timeout(WARM_UP_TIMEOUT, call).await {
            Ok(Ok(_) | Err(SdkError::ServiceError(_) | SdkError::ResponseError(_))) => None,
            Ok(Err(e)) => Some(error_chain(&e)),
            Err(_) => Some(format!("no answer within {} s", WARM_UP_TIMEOUT.as_secs_f64())),
        };
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        match failure {
            None => tracing::debug!(elapsed_ms, "connection to Partner Central warmed"),
            Some(error) => tracing::warn!(elapsed_ms, %error, "could not warm the connection to Partner Central"),
        }
    }
}

impl PartnerCentral for SdkPartnerCentral {
    async fn associate(
        &self,
        catalog: Catalog,
        opportunity: &OpportunityId,
        entity: &RelatedEntity,
    ) -> Result<(), ApiError> {
        self.client
            .associate_opportunity()
            .catalog(catalog.as_str())
            .opportunity_identifier(opportunity.as_str())
            .related_entity_type(sdk_entity_type(entity.entity_type()))
            .related_entity_identifier(entity.identifier())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify_write(&e))
    }

    async fn disassociate(
        &self,
        catalog: Catalog,
        opportunity: &OpportunityId,
        entity: &RelatedEntity,
    ) -> Result<(), ApiError> {
        self.client
            .disassociate_opportunity()
            .catalog(catalog.as_str())
            .opportunity_identifier(opportunity.as_str())
            .related_entity_type(sdk_entity_type(entity.entity_type()))
            .related_entity_identifier(entity.identifier())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify_write(&e))
    }

    async fn opportunity(&self, catalog: Catalog, opportunity: &OpportunityId) -> Result<Option<Holdings>, ApiError> {
        let mut call =
            self.client.get_opportunity().catalog(catalog.as_str()).identifier(opportunity.as_str()).customize();
        if let Some(retries) = &self.read_retries {
            call = call.config_override(
                aws_sdk_partnercentralselling::config::Builder::default().retry_config(retries.clone()),
            );
        }
        match call.send().await {
            Ok(output) => Ok(Some(output.related_entity_identifiers().map(holdings).unwrap_or_default())),
            Err(SdkError::ServiceError(e)) if matches!(e.err(), GetOpportunityError::ResourceNotFoundException(_)) => {
                Ok(None)
            }
            Err(e) => Err(classify_generic(&e)),
        }
    }
}

fn holdings(ids: &RelatedEntityIdentifiers) -> Holdings {
    EntityType::ALL.into_iter().fold(Holdings::default(), |holdings, entity_type| {
        holdings.with(entity_type, entity_list(ids, entity_type).iter().cloned())
    })
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

/// The modelled errors the two writes share, seen through either operation's error type.
enum WriteErrorShape<'a> {
    Validation(&'a ValidationException),
    AccessDenied(&'a AccessDeniedException),
    NotFound(&'a ResourceNotFoundException),
    Other,
}

/// A write's error type: `AssociateOpportunity`'s or `DisassociateOpportunity`'s.
trait WriteOperationError: ProvideErrorMetadata + std::error::Error + 'static {
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
    const CONFLICT: ErrorClass = ErrorClass::Missing;
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

fn classify_write<E: WriteOperationError>(error: &SdkError<E, aws_smithy_runtime_api::http::Response>) -> ApiError {
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
                Some((message, if business { ErrorClass::Missing } else { ErrorClass::Permanent }))
            }
            WriteErrorShape::AccessDenied(a) => {
                let reason = a.reason().map(|r| format!(" [{}]", r.as_str())).unwrap_or_default();
                Some((format!("{}{reason}", a.message().unwrap_or("")), ErrorClass::Permanent))
            }
            WriteErrorShape::NotFound(n) => Some((n.message().unwrap_or("").to_owned(), ErrorClass::Missing)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    #[tokio::test]
    async fn the_client_makes_one_attempt_without_stalled_stream_protection() {
        let config = WorkerConfig::from_lookup(|_| None).unwrap();
        let sdk = crate::aws::sdk_config(|name| (name == "AWS_REGION").then(|| "eu-west-1".to_owned()), 3).await;
        let partner_central = SdkPartnerCentral::new(&sdk, &config, Arc::new(ThrottleCount::default()));
        let client_config = partner_central.client().config();
        assert_eq!(client_config.retry_config().map(|r| r.max_attempts()), Some(1));
        assert_eq!(client_config.stalled_stream_protection().map(|s| s.is_enabled()), Some(false));
        assert_eq!(client_config.region().map(|r| r.as_ref()), Some(config.partner_central_region.as_str()));
    }

    #[tokio::test]
    async fn the_warm_up_is_one_read_whatever_it_answers() {
        let throttled = mock!(Client::get_opportunity)
            .match_requests(|input| {
                input.catalog() == Some("Sandbox") && input.identifier() == Some(WARM_UP_OPPORTUNITY)
            })
            .then_http_response(|| {
                let body = SdkBody::from(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#);
                let mut response = HttpResponse::new(StatusCode::try_from(429).unwrap(), body);
                response.headers_mut().insert("x-amzn-ErrorType", "ThrottlingException");
                response
            });
        let throttles = Arc::new(ThrottleCount::default());
        let config = WorkerConfig::from_lookup(|_| None).unwrap();
        let client = mock_client!(aws_sdk_partnercentralselling, RuleMode::MatchAny, [&throttled], |b| {
            SdkPartnerCentral::configure(b, &config, throttles.clone())
        });
        let retries = RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(1));
        SdkPartnerCentral::from_client(client).with_read_retries(retries).warm_up(Catalog::Sandbox).await;
        assert_eq!(throttled.num_calls(), 1, "never retried, and init goes on");
        assert_eq!(throttles.get(), 1, "counted");
    }
}
