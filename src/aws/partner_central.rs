//! The Partner Central Selling API, behind a small port so the worker can be driven by a fake.
//!
//! The SDK adapter turns every error into an [`ApiError`] (`errors`). A write is one attempt: the
//! worker retries it in its own paced slot. Reads are retried by the SDK.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_partnercentralselling::Client;
use aws_sdk_partnercentralselling::config::{Region, StalledStreamProtectionConfig};
use aws_sdk_partnercentralselling::error::SdkError;
use aws_sdk_partnercentralselling::operation::get_opportunity::GetOpportunityError;
use aws_sdk_partnercentralselling::types::{RelatedEntityIdentifiers, RelatedEntityType};
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;

use crate::config::WorkerConfig;
use crate::domain::opportunity::Holdings;
use crate::domain::request::{Catalog, EntityType, OpportunityId, RelatedEntity};

mod errors;

pub use errors::{ApiError, ErrorClass, ThrottleCount, classify_generic, throttle_watch};
use errors::{classify_write, error_chain};

/// The longest init waits for the connection warm-up.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(2);
/// Matches the model's `O[0-9]{1,19}` and names no opportunity: the warm-up reads nothing real.
const WARM_UP_OPPORTUNITY: &str = "O0";

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
    /// paced writes, outside the pacer, and throttle the next one; the worker retries it in a paced
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
    /// connection behind. One attempt, at most `WARM_UP_TIMEOUT`: when the service cannot be
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
            Ok(output) => {
                let held = output.related_entity_identifiers().map(holdings).unwrap_or_default();
                Ok(Some(match output.life_cycle().and_then(|l| l.review_status()) {
                    Some(status) => held.reviewed(status.as_str()),
                    None => held,
                }))
            }
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
