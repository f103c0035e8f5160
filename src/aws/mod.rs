//! The AWS adapters: each port's SDK implementation, and the SDK set-up they share.
//!
//! - [`partner_central`]: the Partner Central Selling API (the worker's writes and reads);
//! - [`dead_letters`]: the dead-letter queue (the worker);
//! - [`work_queue`]: the work queue (the webhook buffers requests there);
//! - [`secrets`]: the webhook's secret from Secrets Manager;
//! - [`write_slots`]: the account's write slots in DynamoDB, shared by every instance.
//!
//! Every client is built from [`sdk_config`], so the standard endpoint settings
//! (`AWS_ENDPOINT_URL_PARTNERCENTRAL_SELLING`, `AWS_ENDPOINT_URL_SQS`, ...) and credentials apply
//! everywhere, and the function never knows whether it talks to AWS or to a local stand-in.

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_partnercentralselling::config::Region;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder as HttpClientBuilder, ConnectorBuilder, proxy::ProxyConfig};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use sha2::{Digest, Sha256};
use std::time::Duration;

pub mod dead_letters;
pub mod partner_central;
pub mod secrets;
pub mod work_queue;
pub mod write_slots;

/// The roots AWS documents for its endpoints (Amazon Trust Services), built in: see [`https_client`].
const AMAZON_TRUST_SERVICES: &str = include_str!("amazon_trust_services.pem");

/// The SDK configuration every client of the function is built from: `aws_config`'s defaults (retry and
/// timeout settings, endpoint URLs from the environment) with the [`https_client`]. The region and the
/// credentials, when the environment holds them as Lambda's always does (`AWS_REGION`, the execution
/// role's keys), are taken from there directly: the default chains would pick them first anyway, and
/// building the rest of them (profile files, web identity with its STS client, container and instance
/// metadata clients) costs init for nothing (bench/README.md, "What made it lean").
pub async fn sdk_config(lookup: impl Fn(&str) -> Option<String>, max_attempts: u32) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client(&lookup))
        .retry_config(RetryConfig::standard().with_max_attempts(max_attempts));
    let value = |name| lookup(name).map(|v: String| v.trim().to_owned()).filter(|v| !v.is_empty());
    if let Some(region) = value("AWS_REGION") {
        loader = loader.region(Region::new(region));
    }
    if value("AWS_ACCESS_KEY_ID").is_some() && value("AWS_SECRET_ACCESS_KEY").is_some() {
        loader = loader.credentials_provider(EnvironmentVariableCredentialsProvider::new());
    }
    loader.load().await
}

/// The HTTPS client every SDK client of the function shares: the SDK's default one (hyper 1, rustls on
/// aws-lc, proxy settings from the environment), but for its trust store: the default reads and
/// parses the system's for every connector built, which costs init (bench/README.md, "What made it
/// lean"). AWS endpoints chain to Amazon Trust Services, so those roots are built in. When
/// `SSL_CERT_FILE` or `SSL_CERT_DIR` is set (a TLS-inspecting proxy, a private CA), the system store
/// is used as the SDK uses it, honouring them.
pub fn https_client(lookup: impl Fn(&str) -> Option<String>) -> SharedHttpClient {
    let system = ["SSL_CERT_FILE", "SSL_CERT_DIR"].iter().any(|name| lookup(name).is_some_and(|v| !v.is_empty()));
    let trust_store = if system {
        TrustStore::default()
    } else {
        TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES.as_bytes())
    };
    let tls_context = TlsContext::builder().with_trust_store(trust_store).build().unwrap_or_default();
    HttpClientBuilder::new().build_with_connector_fn(move |settings, components| {
        let mut connector = ConnectorBuilder::default()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(tls_context.clone());
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// The timeouts of a client whose calls answer in milliseconds (SQS, Secrets Manager): a service that
/// takes the connection and never answers fails the call within seconds instead of holding it.
pub fn bounded_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build()
}

/// An SQS deduplication id for a message made from `text`: its SHA-256 in hex, which fits the id's
/// 128 characters and narrow alphabet whatever the text, and stays the same from one release to the
/// next.
pub fn deduplication_id(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The SQS queue is FIFO: its URL (or ARN) ends in `.fifo`.
pub fn is_fifo(queue: &str) -> bool {
    queue.ends_with(".fifo")
}

/// JSON text in characters SQS takes in a message body. SQS refuses the noncharacters U+FFFE and
/// U+FFFF (every other character JSON leaves unescaped is allowed), and a free-form identifier may
/// hold them: they are written as JSON escapes, which can only occur inside strings and decode back
/// to the same value.
pub fn sqs_safe_json(json: String) -> String {
    if json.contains(['\u{fffe}', '\u{ffff}']) {
        json.replace('\u{fffe}', "\\ufffe").replace('\u{ffff}', "\\uffff")
    } else {
        json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(vars: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        let vars = vars.to_vec();
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[tokio::test]
    async fn the_sdk_config_takes_lambdas_region_and_credentials_from_the_environment() {
        let lambda = lookup(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ]);
        let sdk = sdk_config(lambda, 3).await;
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-1"));
        // The shortcut: the environment's provider alone, not the default chain built around it.
        let provider = format!("{:?}", sdk.credentials_provider());
        assert!(provider.contains("EnvironmentVariableCredentialsProvider"), "{provider}");
        assert!(!provider.contains("DefaultCredentialsChain"), "{provider}");
        // Without the keys in the environment (a laptop's profile, say), the default chain is built.
        let laptop = sdk_config(lookup(&[("AWS_REGION", "eu-west-1")]), 3).await;
        let provider = format!("{:?}", laptop.credentials_provider());
        assert!(provider.contains("DefaultCredentialsChain"), "{provider}");
    }

    #[test]
    fn a_deduplication_id_is_the_texts_sha256_whatever_the_release() {
        assert_eq!(deduplication_id("m-1"), "a461b472cb41a9ec3dee5c90cf8e4a78252c9d82319adf75830031b8c309bfc6");
        let long = deduplication_id(&"é".repeat(10_000));
        assert!(long.len() <= 128 && long.bytes().all(|b| b.is_ascii_hexdigit()), "{long}");
    }

    #[test]
    fn a_fifo_queue_is_known_by_its_name() {
        assert!(is_fifo("https://sqs.us-east-1.amazonaws.com/123456789012/work.fifo"));
        assert!(!is_fifo("arn:aws:sqs:us-east-1:123456789012:work"));
    }
}
