//! Quotas as token buckets; counts, not timings.

use aws_sdk_partnercentralselling::operation::disassociate_opportunity::DisassociateOpportunityError;
use aws_sdk_partnercentralselling::operation::get_opportunity::GetOpportunityError;
use aws_sdk_partnercentralselling::types::RelatedEntityType;
use partner_central_emulator::{EmulatorConfig, FaultConfig, QuotaConfig, TokenBucketConfig};
use tokio::task::JoinSet;

use crate::common::{client, disassociate, entities, seed, start_with};

#[tokio::test]
async fn a_burst_of_writes_is_throttled_by_the_default_quota() {
    // Default quotas: writes 1 per second, burst 1.
    let emulator = start_with(EmulatorConfig { seed: seed(), ..EmulatorConfig::default() }).await;
    let client = client(&emulator.endpoint()).await;
    let mut calls = JoinSet::new();
    for n in 1..=5 {
        let client = client.clone();
        calls.spawn(async move { disassociate(&client, n).await });
    }
    let (mut ok, mut throttled) = (0, 0);
    while let Some(result) = calls.join_next().await {
        match result.expect("task") {
            Ok(_) => ok += 1,
            Err(e) => match e.into_service_error() {
                DisassociateOpportunityError::ThrottlingException(_) => throttled += 1,
                other => panic!("unexpected {other:?}"),
            },
        }
    }
    assert_eq!(ok + throttled, 5);
    assert!(ok >= 1, "the bucket starts full");
    assert!(throttled >= 1, "five writes at once exceed 1/s burst 1");
    let state = emulator.state();
    let d = state.operation("DisassociateOpportunity");
    assert_eq!(d.calls, 5);
    assert_eq!(d.successes, ok);
    assert_eq!(d.throttled, throttled);
    assert_eq!(d.quota_throttled, throttled);
    assert_eq!(d.faults_injected, 0);
    assert_eq!(state.total_disassociations(), ok);
    emulator.shutdown().await;
}

#[tokio::test]
async fn exact_counts_with_a_non_refilling_bucket() {
    let emulator = start_with(EmulatorConfig {
        seed: seed(),
        quotas: QuotaConfig {
            write: Some(TokenBucketConfig { rate: 0.0, burst: 2.0 }),
            read: Some(TokenBucketConfig { rate: 0.0, burst: 3.0 }),
        },
        ..EmulatorConfig::default()
    })
    .await;
    let client = client(&emulator.endpoint()).await;
    let before = entities(&emulator.state());
    let mut results = Vec::new();
    for n in 1..=5 {
        results.push(disassociate(&client, n).await.is_ok());
    }
    assert_eq!(results, [true, true, false, false, false]);
    // Associate shares the write bucket.
    let err = client
        .associate_opportunity()
        .catalog("Sandbox")
        .opportunity_identifier("O2000001")
        .related_entity_type(RelatedEntityType::Solutions)
        .related_entity_identifier("S-2000001")
        .send()
        .await
        .expect_err("write bucket empty");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(429));

    // Reads have their own bucket.
    let mut reads = Vec::new();
    for _ in 0..5 {
        let r = client.get_opportunity().catalog("Sandbox").identifier("O1234567").send().await;
        reads.push(match r {
            Ok(_) => "ok",
            Err(e) => match e.into_service_error() {
                GetOpportunityError::ThrottlingException(_) => "throttled",
                _ => "other",
            },
        });
    }
    assert_eq!(reads, ["ok", "ok", "ok", "throttled", "throttled"]);

    let state = emulator.state();
    assert_eq!(state.total_disassociations(), 2);
    let changed: Vec<_> =
        before.iter().zip(entities(&state).iter()).filter(|(a, b)| a != b).map(|(a, _)| a.1.clone()).collect();
    assert_eq!(changed, ["O2000001", "O2000002"]);
    assert_eq!(state.operation("DisassociateOpportunity").quota_throttled, 3);
    assert_eq!(state.operation("AssociateOpportunity").quota_throttled, 1);
    assert_eq!(state.operation("GetOpportunity").quota_throttled, 2);

    // Quotas can be changed at runtime.
    emulator.set_quotas(QuotaConfig::unlimited()).expect("quotas");
    client.get_opportunity().catalog("Sandbox").identifier("O1234567").send().await.expect("unlimited");
    assert!(
        emulator
            .set_quotas(QuotaConfig { write: Some(TokenBucketConfig { rate: -1.0, burst: 1.0 }), read: None })
            .is_err()
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_quota_is_taken_as_a_request_arrives_not_after_the_added_latency() {
    // One write token, never refilled. A arrives first and sleeps 400 ms of added latency; B arrives
    // 100 ms later with no latency. The token is A's: taken after the latency, it would be B's.
    let emulator = start_with(EmulatorConfig {
        seed: seed(),
        quotas: QuotaConfig { write: Some(TokenBucketConfig { rate: 0.0, burst: 1.0 }), read: None },
        faults: FaultConfig { latency_ms: 400, ..FaultConfig::default() },
        ..EmulatorConfig::default()
    })
    .await;
    let client = client(&emulator.endpoint()).await;
    let first = {
        let client = client.clone();
        tokio::spawn(async move { disassociate(&client, 1).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    emulator.set_faults(FaultConfig::default()).expect("faults");
    let second = disassociate(&client, 2).await;
    assert!(
        matches!(second.map_err(|e| e.into_service_error()), Err(DisassociateOpportunityError::ThrottlingException(_))),
        "the later arrival finds the bucket empty"
    );
    first.await.expect("task").expect("the first arrival holds the token");
    assert_eq!(emulator.state().operation("DisassociateOpportunity").quota_throttled, 1);
    emulator.shutdown().await;
}
