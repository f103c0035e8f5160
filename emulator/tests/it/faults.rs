//! Fault injection: rate 1.0 makes every call fail that way, and faulted calls change nothing.

use std::time::{Duration, Instant};

use aws_sdk_partnercentralselling::error::SdkError;
use aws_sdk_partnercentralselling::operation::disassociate_opportunity::DisassociateOpportunityError;
use partner_central_emulator::{EmulatorConfig, FaultConfig, QuotaConfig};

use crate::common::{ClientOptions, client, client_with, control, disassociate, entities, seed, start, start_with};

#[tokio::test]
async fn injected_throttling_and_errors() {
    let emulator = start().await;
    let client = client(&emulator.endpoint()).await;
    let before = entities(&emulator.state());

    emulator.set_faults(FaultConfig { throttle_rate: 1.0, ..FaultConfig::default() }).expect("faults");
    for n in 1..=3 {
        let err = disassociate(&client, n).await.expect_err("throttled").into_service_error();
        assert!(matches!(err, DisassociateOpportunityError::ThrottlingException(_)), "{err:?}");
    }
    emulator.set_faults(FaultConfig { error_rate: 1.0, ..FaultConfig::default() }).expect("faults");
    for n in 1..=3 {
        let err = disassociate(&client, n).await.expect_err("500").into_service_error();
        assert!(matches!(err, DisassociateOpportunityError::InternalServerException(_)), "{err:?}");
    }
    let state = emulator.state();
    assert_eq!(entities(&state), before);
    assert_eq!(state.total_disassociations(), 0);
    assert_eq!(state.faults_injected.throttle, 3);
    assert_eq!(state.faults_injected.internal_error, 3);
    let d = state.operation("DisassociateOpportunity");
    assert_eq!((d.calls, d.successes, d.faults_injected), (6, 0, 6));
    assert_eq!((d.throttled, d.quota_throttled), (3, 0));
    assert_eq!(d.errors.get("InternalServerException"), Some(&3));

    // Back to normal.
    emulator.set_faults(FaultConfig::default()).expect("faults");
    disassociate(&client, 1).await.expect("no faults");
    emulator.shutdown().await;
}

#[tokio::test]
async fn dropped_connections_are_dispatch_failures() {
    let emulator = start_with(EmulatorConfig {
        seed: seed(),
        quotas: QuotaConfig::unlimited(),
        faults: FaultConfig { drop_rate: 1.0, ..FaultConfig::default() },
        ..EmulatorConfig::default()
    })
    .await;
    let client = client(&emulator.endpoint()).await;
    let before = entities(&emulator.state());
    for n in 1..=3 {
        let err = disassociate(&client, n).await.expect_err("dropped");
        match &err {
            // hyper reports IncompleteMessage; the SDK classifies it as a transient
            // connector error (ConnectorError kind Other(TransientError)), which it would retry.
            SdkError::DispatchFailure(f) => {
                assert!(f.is_io() || f.is_other(), "{err:?}");
                assert!(!f.is_timeout() && !f.is_user(), "{err:?}");
            }
            other => panic!("expected a dispatch failure, got {other:?}"),
        }
    }
    let state = emulator.state();
    assert_eq!(entities(&state), before);
    assert_eq!(state.faults_injected.dropped, 3);
    let d = state.operation("DisassociateOpportunity");
    assert_eq!((d.calls, d.successes, d.faults_injected), (3, 0, 3));
    assert!(d.errors.is_empty());
    // Control endpoints are never faulted.
    let r = control(&emulator.endpoint(), "GET", "/_emulator/health", "").await;
    assert_eq!(r.status, 200);
    emulator.shutdown().await;
}

#[tokio::test]
async fn slow_calls_time_out_and_change_nothing() {
    let emulator = start().await;
    emulator.set_faults(FaultConfig { slow_rate: 1.0, slow_ms: 600, ..FaultConfig::default() }).expect("faults");
    let impatient = client_with(
        &emulator.endpoint(),
        ClientOptions { attempt_timeout: Some(Duration::from_millis(150)), ..ClientOptions::default() },
    )
    .await;
    let before = entities(&emulator.state());
    let err = disassociate(&impatient, 1).await.expect_err("timed out");
    assert!(matches!(err, SdkError::TimeoutError(_)), "{err:?}");
    // Let the slow call finish on the emulator's side.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let state = emulator.state();
    assert_eq!(entities(&state), before);
    assert_eq!(state.faults_injected.slow, 1);

    // A patient client gets a 500 and still nothing changed.
    let patient = client(&emulator.endpoint()).await;
    let err = disassociate(&patient, 1).await.expect_err("500").into_service_error();
    assert!(matches!(err, DisassociateOpportunityError::InternalServerException(_)), "{err:?}");
    assert_eq!(entities(&emulator.state()), before);
    emulator.shutdown().await;
}

#[tokio::test]
async fn slow_calls_that_apply_are_the_ambiguous_case() {
    let emulator = start().await;
    emulator
        .set_faults(FaultConfig { slow_rate: 1.0, slow_ms: 500, slow_applies: true, ..FaultConfig::default() })
        .expect("faults");
    let client = client_with(
        &emulator.endpoint(),
        ClientOptions { attempt_timeout: Some(Duration::from_millis(100)), ..ClientOptions::default() },
    )
    .await;
    let err = disassociate(&client, 2).await.expect_err("timed out");
    assert!(matches!(err, SdkError::TimeoutError(_)), "{err:?}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let state = emulator.state();
    assert_eq!(state.disassociation_count("Sandbox", "O2000002", "Solutions", "S-2000002"), 1);
    emulator.set_faults(FaultConfig::default()).expect("faults");
    let err = disassociate(&client, 2).await.expect_err("already gone").into_service_error();
    assert!(matches!(err, DisassociateOpportunityError::ResourceNotFoundException(_)), "{err:?}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn latency_is_added_to_every_call() {
    let emulator = start().await;
    emulator.set_faults(FaultConfig { latency_ms: 300, ..FaultConfig::default() }).expect("faults");
    let client = client(&emulator.endpoint()).await;
    let started = Instant::now();
    client.get_opportunity().catalog("Sandbox").identifier("O1234567").send().await.expect("slow but fine");
    assert!(started.elapsed() >= Duration::from_millis(300));
    emulator.shutdown().await;
}

async fn outcomes(seed_value: u64) -> Vec<&'static str> {
    let emulator = start().await;
    emulator
        .set_faults(FaultConfig {
            throttle_rate: 0.3,
            error_rate: 0.2,
            rng_seed: Some(seed_value),
            ..FaultConfig::default()
        })
        .expect("faults");
    let client = client(&emulator.endpoint()).await;
    let mut out = Vec::new();
    for _ in 0..30 {
        let r = client.get_opportunity().catalog("Sandbox").identifier("O1234567").send().await;
        out.push(match r {
            Ok(_) => "ok",
            Err(e) => match e.raw_response().map(|r| r.status().as_u16()) {
                Some(429) => "throttle",
                Some(500) => "error",
                _ => "other",
            },
        });
    }
    emulator.shutdown().await;
    out
}

#[tokio::test]
async fn fault_sequences_are_reproducible_with_a_seed() {
    let a = outcomes(7).await;
    let b = outcomes(7).await;
    assert_eq!(a, b);
    assert!(a.contains(&"ok") && a.contains(&"throttle") && a.contains(&"error"), "{a:?}");
    assert!(!a.contains(&"other"));
    let c = outcomes(8).await;
    assert_ne!(a, c);
}

#[tokio::test]
async fn invalid_fault_config_is_refused() {
    let emulator = start().await;
    assert!(emulator.set_faults(FaultConfig { drop_rate: 1.5, ..FaultConfig::default() }).is_err());
    assert_eq!(emulator.faults(), FaultConfig::default());
    emulator.shutdown().await;
}
