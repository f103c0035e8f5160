//! Control endpoints: plain JSON, unsigned.

use partner_central_emulator::{FaultConfig, StateSnapshot};
use serde_json::json;

use crate::common::{control, disassociate_body, signed_call, start};

#[tokio::test]
async fn health_state_faults_quotas_seed() {
    let emulator = start().await;
    let ep = emulator.endpoint();

    let r = control(&ep, "GET", "/_emulator/health", "").await;
    assert_eq!((r.status, r.json()), (200, json!({"Status": "ok"})));
    assert_eq!(r.header("content-type"), Some("application/json"));

    let r = signed_call(&ep, "DisassociateOpportunity", &disassociate_body("O2000001", "Solutions", "S-2000001")).await;
    assert_eq!(r.status, 200);

    let r = control(&ep, "GET", "/_emulator/state", "").await;
    assert_eq!(r.status, 200);
    let state: StateSnapshot = serde_json::from_slice(&r.body).expect("state parses");
    assert_eq!(state, emulator.state());
    assert_eq!(state.disassociation_count("Sandbox", "O2000001", "Solutions", "S-2000001"), 1);
    let body = r.json();
    assert_eq!(body["Operations"]["DisassociateOpportunity"]["Calls"], 1);
    assert_eq!(body["Operations"]["DisassociateOpportunity"]["Successes"], 1);
    assert_eq!(body["Disassociations"][0]["RelatedEntityIdentifier"], "S-2000001");
    assert_eq!(body["Disassociations"][0]["Count"], 1);
    assert_eq!(body["DeniedCatalogs"], json!(["AWS"]));
    assert!(body["Opportunities"][0]["RelatedEntityIdentifiers"]["Solutions"].is_array());
    assert_eq!(body["FaultsInjected"]["Dropped"], 0);
    assert_eq!(body["Requests"], 1);

    // Faults.
    let r = control(&ep, "POST", "/_emulator/faults", r#"{"ThrottleRate":0.25,"LatencyMs":5,"RngSeed":3}"#).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["ThrottleRate"], 0.25);
    assert_eq!(
        emulator.faults(),
        FaultConfig { throttle_rate: 0.25, latency_ms: 5, rng_seed: Some(3), ..FaultConfig::default() }
    );
    let r = control(&ep, "GET", "/_emulator/faults", "").await;
    assert_eq!(r.json()["LatencyMs"], 5);
    for bad in [r#"{"ThrottleRate":2}"#, r#"{"throttle_rate":0.1}"#, "nope"] {
        let r = control(&ep, "POST", "/_emulator/faults", bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.json()["Message"].is_string());
    }
    assert_eq!(emulator.faults().throttle_rate, 0.25);

    // Quotas.
    let r = control(&ep, "POST", "/_emulator/quotas", r#"{"Write":{"Rate":0,"Burst":1},"Read":null}"#).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(emulator.state().quotas.read, None);
    let r = control(&ep, "POST", "/_emulator/quotas", r#"{"Write":{"Rate":1,"Burst":0}}"#).await;
    assert_eq!(r.status, 400);

    // Seed replaces everything and resets counters.
    let r = control(
        &ep,
        "POST",
        "/_emulator/seed",
        r#"{"Opportunities":[{"Catalog":"AWS","Id":"O42","RelatedEntityIdentifiers":{"AwsProducts":["AmazonEKS"]}}]}"#,
    )
    .await;
    assert_eq!((r.status, r.json()), (200, json!({"Status": "ok", "Opportunities": 1})));
    let state = emulator.state();
    assert_eq!(state.opportunities.len(), 1);
    assert!(state.denied_catalogs.is_empty());
    assert_eq!(state.requests, 0);
    assert!(state.disassociations.is_empty());
    assert_eq!(state.opportunities[0].life_cycle.stage, partner_central_emulator::Stage::Prospect);
    let r = control(&ep, "POST", "/_emulator/seed", r#"{"Opportunities":[{"Catalog":"AWS","Id":"bad"}]}"#).await;
    assert_eq!(r.status, 400);
    assert_eq!(emulator.state().opportunities.len(), 1);

    // Unknown endpoint, wrong method.
    assert_eq!(control(&ep, "GET", "/_emulator/nope", "").await.status, 404);
    assert_eq!(control(&ep, "POST", "/_emulator/state", "").await.status, 405);
    assert_eq!(control(&ep, "GET", "/_emulator/seed", "").await.status, 405);
    emulator.shutdown().await;
}

#[tokio::test]
async fn library_seed_resets_and_shutdown_stops_serving() {
    let emulator = start().await;
    let ep = emulator.endpoint();
    assert!(ep.starts_with("http://127.0.0.1:"));
    emulator.seed(partner_central_emulator::Seed::default()).expect("seed");
    assert!(emulator.state().opportunities.is_empty());
    emulator.shutdown().await;
    let r = crate::common::raw(&ep, "GET", "/_emulator/health", &[], b"").await;
    assert!(r.is_err(), "{r:?}");
}
