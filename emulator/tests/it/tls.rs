//! HTTPS: the real SDK trusts the certificate authority the emulator made, and nothing else; the
//! state counts connections and handshakes, so a test can tell a reused connection from a new one.

use aws_sdk_partnercentralselling::Client;
use aws_sdk_partnercentralselling::error::DisplayErrorContext;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use partner_central_emulator::{EmulatorConfig, QuotaConfig, RunningEmulator};

use crate::common::{client, seed, start_with};

async fn start_tls() -> RunningEmulator {
    start_with(EmulatorConfig {
        seed: seed(),
        quotas: QuotaConfig::unlimited(),
        tls: true,
        ..EmulatorConfig::default()
    })
    .await
}

/// An HTTPS client whose only root is `pem`.
fn trusting(pem: &str) -> SharedHttpClient {
    let trust = TrustStore::empty().with_native_roots(false).with_pem_certificate(pem.as_bytes());
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(TlsContext::builder().with_trust_store(trust).build().expect("tls context"))
        .build_https()
}

async fn sdk(emulator: &RunningEmulator, http: SharedHttpClient) -> Client {
    let config = client(&emulator.endpoint()).await.config().to_builder().http_client(http).build();
    Client::from_conf(config)
}

/// One read; a failure as its whole chain of causes.
async fn get(client: &Client) -> Result<(), String> {
    let call = client.get_opportunity().catalog("Sandbox").identifier("O1234567").send().await;
    call.map(drop).map_err(|e| DisplayErrorContext(e).to_string())
}

#[tokio::test]
async fn serves_https_to_a_client_that_trusts_its_authority_over_one_connection() {
    let emulator = start_tls().await;
    assert!(emulator.endpoint().starts_with("https://127.0.0.1:"), "{}", emulator.endpoint());
    let pem = emulator.ca_pem().expect("a CA with tls").to_owned();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");

    let client = sdk(&emulator, trusting(&pem)).await;
    for _ in 0..3 {
        get(&client).await.expect("GetOpportunity over HTTPS");
    }
    let state = emulator.state();
    assert_eq!(state.operation("GetOpportunity").successes, 3);
    assert_eq!((state.connections, state.tls_handshakes), (1, 1), "three calls, one connection, one handshake");
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_authority_is_refused_before_any_request() {
    let emulator = start_tls().await;
    let other = start_tls().await;
    let client = sdk(&emulator, trusting(other.ca_pem().expect("pem"))).await;
    let error = get(&client).await.expect_err("another authority's certificate");
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    let state = emulator.state();
    assert_eq!((state.connections, state.tls_handshakes, state.requests), (1, 0, 0));
}

#[tokio::test]
async fn plain_http_is_served_as_before_and_counts_connections() {
    let emulator = start_with(EmulatorConfig { seed: seed(), ..EmulatorConfig::default() }).await;
    assert!(emulator.endpoint().starts_with("http://"));
    assert!(emulator.ca_pem().is_none());
    let client = client(&emulator.endpoint()).await;
    get(&client).await.expect("plain HTTP");
    get(&client).await.expect("plain HTTP");
    let state = emulator.state();
    assert_eq!((state.connections, state.tls_handshakes), (1, 0));
}
