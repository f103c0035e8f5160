//! The rolling daily quotas: a cap per window, the same refusal as the per-second quota, and the
//! window's use for tests and benches. Windows are shrunk by their setting; waits poll the state.

use std::time::{Duration, Instant};

use partner_central_emulator::{
    DailyQuotaConfig, DailyUse, EmulatorConfig, QuotaConfig, RollingQuotaConfig, TokenBucketConfig, WindowUse,
};
use serde_json::json;

use crate::common::{control, disassociate_body, seed, signed_call, start_with};

fn daily(write: Option<(u64, f64)>, read: Option<(u64, f64)>) -> DailyQuotaConfig {
    let window = |(cap, window_seconds)| RollingQuotaConfig { cap, window_seconds };
    DailyQuotaConfig { write: write.map(window), read: read.map(window) }
}

fn get_body(id: &str) -> String {
    json!({"Catalog": "Sandbox", "Identifier": id}).to_string()
}

#[tokio::test]
async fn past_the_cap_a_write_gets_the_same_throttling_answer_as_past_the_per_second_quota() {
    let emulator = start_with(EmulatorConfig {
        seed: seed(),
        quotas: QuotaConfig::unlimited(),
        daily_quotas: daily(Some((3, 3600.0)), Some((2, 3600.0))),
        ..EmulatorConfig::default()
    })
    .await;
    let ep = emulator.endpoint();
    for n in 1..=3 {
        let r = signed_call(
            &ep,
            "DisassociateOpportunity",
            &disassociate_body(&format!("O200000{n}"), "Solutions", &format!("S-200000{n}")),
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    let refused =
        signed_call(&ep, "DisassociateOpportunity", &disassociate_body("O2000004", "Solutions", "S-2000004")).await;
    let daily_body = refused.assert_aws_error(429, "ThrottlingException");
    assert_eq!(
        emulator.state().opportunity("Sandbox", "O2000004").map(|o| o.related_entity_identifiers.solutions.len()),
        Some(1)
    );

    // Reads have their own window.
    for expected in [200, 200, 429] {
        assert_eq!(signed_call(&ep, "GetOpportunity", &get_body("O1234567")).await.status, expected);
    }

    // The per-second refusal reads exactly the same.
    emulator.set_daily_quotas(DailyQuotaConfig::unlimited()).expect("daily quotas");
    emulator
        .set_quotas(QuotaConfig { write: Some(TokenBucketConfig { rate: 0.0, burst: 1.0 }), read: None })
        .expect("quotas");
    assert_eq!(
        signed_call(&ep, "DisassociateOpportunity", &disassociate_body("O2000004", "Solutions", "S-2000004"))
            .await
            .status,
        200
    );
    let per_second =
        signed_call(&ep, "DisassociateOpportunity", &disassociate_body("O2000005", "Solutions", "S-2000005")).await;
    assert_eq!(per_second.assert_aws_error(429, "ThrottlingException"), daily_body);

    let state = emulator.state();
    let writes = state.operation("DisassociateOpportunity");
    assert_eq!(
        (writes.successes, writes.throttled, writes.quota_throttled, writes.daily_quota_throttled),
        (4, 2, 2, 1)
    );
    let reads = state.operation("GetOpportunity");
    assert_eq!((reads.successes, reads.quota_throttled, reads.daily_quota_throttled), (2, 1, 1));
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_write_ages_out_a_window_after_it_was_made_and_frees_its_room() {
    let window = Duration::from_millis(1500);
    let emulator = start_with(EmulatorConfig {
        seed: seed(),
        quotas: QuotaConfig::unlimited(),
        daily_quotas: daily(Some((2, window.as_secs_f64())), None),
        ..EmulatorConfig::default()
    })
    .await;
    let ep = emulator.endpoint();
    let first_sent = Instant::now();
    assert_eq!(
        signed_call(&ep, "DisassociateOpportunity", &disassociate_body("O2000001", "Solutions", "S-2000001"))
            .await
            .status,
        200
    );
    assert_eq!(
        signed_call(&ep, "DisassociateOpportunity", &disassociate_body("O2000002", "Solutions", "S-2000002"))
            .await
            .status,
        200
    );
    let r = signed_call(&ep, "DisassociateOpportunity", &disassociate_body("O2000003", "Solutions", "S-2000003")).await;
    r.assert_aws_error(429, "ThrottlingException");
    let in_use = emulator.daily_use();
    assert_eq!(in_use.write.map(|w| (w.used, w.left)), Some((2, 0)));
    assert_eq!(in_use.read, None);

    // Wait for the window to free (by its own view), then the write goes through.
    let deadline = Instant::now() + window * 4;
    loop {
        let used = control(&ep, "GET", "/_emulator/daily-use", "").await.json()["Write"]["Used"].as_u64();
        if used == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "the window still holds {used:?} writes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(first_sent.elapsed() >= window, "a write aged out before a window had passed");
    assert_eq!(
        signed_call(&ep, "DisassociateOpportunity", &disassociate_body("O2000003", "Solutions", "S-2000003"))
            .await
            .status,
        200
    );
    assert_eq!(emulator.daily_use().write.map(|w| w.used), Some(1));
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_control_endpoints_set_the_caps_and_show_and_spend_the_window() {
    let emulator =
        start_with(EmulatorConfig { seed: seed(), quotas: QuotaConfig::unlimited(), ..EmulatorConfig::default() })
            .await;
    let ep = emulator.endpoint();

    // The service's defaults.
    let r = control(&ep, "GET", "/_emulator/daily-quotas", "").await;
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"Write": {"Cap": 10000, "WindowSeconds": 86400.0}, "Read": {"Cap": 100000, "WindowSeconds": 86400.0}})
        )
    );
    let r = control(&ep, "GET", "/_emulator/daily-use", "").await;
    assert_eq!(
        r.json(),
        json!({"Write": {"Used": 0, "Left": 10000, "Cap": 10000, "WindowSeconds": 86400.0},
               "Read": {"Used": 0, "Left": 100000, "Cap": 100000, "WindowSeconds": 86400.0}})
    );

    let r =
        control(&ep, "POST", "/_emulator/daily-quotas", r#"{"Write":{"Cap":40,"WindowSeconds":40},"Read":null}"#).await;
    assert_eq!((r.status, r.json()), (200, json!({"Write": {"Cap": 40, "WindowSeconds": 40.0}, "Read": null})));
    assert_eq!(emulator.state().daily_quotas, daily(Some((40, 40.0)), None));
    for bad in [
        r#"{"Write":{"Cap":40,"WindowSeconds":0},"Read":null}"#,
        r#"{"Write":{"Cap":-1,"WindowSeconds":40},"Read":null}"#,
        r#"{"Write":{"Cap":40},"Read":null}"#,
        r#"{"Write":{"Cap":40,"WindowSeconds":40,"Used":3},"Read":null}"#,
        "nope",
    ] {
        let r = control(&ep, "POST", "/_emulator/daily-quotas", bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.json()["Message"].is_string(), "{bad}");
    }
    assert_eq!(emulator.state().daily_quotas, daily(Some((40, 40.0)), None));

    // Another tool of the account spent 39 writes: one is left, then the window is full.
    let r = control(&ep, "POST", "/_emulator/daily-use", r#"{"Write":39,"Read":5}"#).await;
    assert_eq!((r.status, r.json()["Write"]["Used"].clone(), r.json()["Read"].clone()), (200, json!(39), json!(null)));
    assert_eq!(
        signed_call(&ep, "DisassociateOpportunity", &disassociate_body("O2000001", "Solutions", "S-2000001"))
            .await
            .status,
        200
    );
    signed_call(&ep, "DisassociateOpportunity", &disassociate_body("O2000002", "Solutions", "S-2000002"))
        .await
        .assert_aws_error(429, "ThrottlingException");
    let expected = DailyUse { write: Some(WindowUse { used: 40, left: 0, cap: 40, window_seconds: 40.0 }), read: None };
    assert_eq!(emulator.daily_use(), expected);
    let state = emulator.state();
    assert_eq!(state.daily_use, expected);
    let r = control(&ep, "GET", "/_emulator/state", "").await;
    assert_eq!(r.json()["DailyUse"]["Write"]["Used"], 40);
    assert_eq!(control(&ep, "POST", "/_emulator/daily-use", r#"{"Writes":1}"#).await.status, 400);

    // Setting the quotas again empties the windows.
    emulator.set_daily_quotas(daily(Some((40, 40.0)), None)).expect("daily quotas");
    assert_eq!(emulator.daily_use().write.map(|w| w.used), Some(0));
    assert!(emulator.set_daily_quotas(daily(Some((1, f64::INFINITY)), None)).is_err());
    emulator.shutdown().await;
}
