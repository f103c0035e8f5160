//! SigV4: the SDK's signatures are accepted; wrong secret, key, region, service, time, tampering
//! and unsigned requests are refused with the AWS error names.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_partnercentralselling::error::ProvideErrorMetadata;
use partner_central_emulator::{EmulatorConfig, QuotaConfig};

use crate::common::{ClientOptions, Signing, aws_headers, client, client_with, raw, seed, start, start_with};

const GET_BODY: &str = r#"{"Catalog":"Sandbox","Identifier":"O1234567"}"#;

async fn sdk_get(endpoint: &str, options: ClientOptions<'_>) -> Result<(), (Option<u16>, Option<String>)> {
    let client = client_with(endpoint, options).await;
    match client.get_opportunity().catalog("Sandbox").identifier("O1234567").send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            Err((status, e.code().map(str::to_owned)))
        }
    }
}

fn refused(status: u16, code: &str) -> Result<(), (Option<u16>, Option<String>)> {
    Err((Some(status), Some(code.to_owned())))
}

#[tokio::test]
async fn sdk_signatures_are_verified() {
    let emulator = start().await;
    let ep = emulator.endpoint();
    assert_eq!(sdk_get(&ep, ClientOptions::default()).await, Ok(()));
    // A session token is signed by the SDK and accepted.
    assert_eq!(
        sdk_get(&ep, ClientOptions { session_token: Some("session"), ..ClientOptions::default() }).await,
        Ok(())
    );
    assert_eq!(
        sdk_get(&ep, ClientOptions { secret_key: "wrong", ..ClientOptions::default() }).await,
        refused(403, "InvalidSignatureException")
    );
    assert_eq!(
        sdk_get(&ep, ClientOptions { access_key: "AKIAUNKNOWN", ..ClientOptions::default() }).await,
        refused(403, "UnrecognizedClientException")
    );
    assert_eq!(
        sdk_get(&ep, ClientOptions { region: "us-west-2", ..ClientOptions::default() }).await,
        refused(403, "InvalidSignatureException")
    );
    let state = emulator.state();
    assert_eq!(state.auth_failures, 3);
    // Refused requests never reach the operation.
    assert_eq!(state.operation("GetOpportunity").calls, 2);
    emulator.shutdown().await;
}

#[tokio::test]
async fn raw_requests_signed_wrongly_are_refused() {
    let emulator = start().await;
    let ep = emulator.endpoint();
    let body = GET_BODY.as_bytes();
    let send = |headers: Vec<(String, String)>, body: &'static [u8]| {
        let ep = ep.clone();
        async move { raw(&ep, "POST", "/", &headers, body).await.expect("request") }
    };

    // Correct, via aws-sigv4 directly.
    let ok = send(aws_headers(&ep, "GetOpportunity", body, Some(Signing::default())), GET_BODY.as_bytes()).await;
    assert_eq!(ok.status, 200, "{ok:?}");

    // Unsigned.
    let r = send(aws_headers(&ep, "GetOpportunity", body, None), GET_BODY.as_bytes()).await;
    let b = r.assert_aws_error(403, "MissingAuthenticationTokenException");
    assert_eq!(b["Message"], "Missing Authentication Token");

    // Wrong service.
    let h = aws_headers(&ep, "GetOpportunity", body, Some(Signing { service: "partnercentral", ..Signing::default() }));
    let b = send(h, GET_BODY.as_bytes()).await.assert_aws_error(403, "InvalidSignatureException");
    assert!(b["Message"].as_str().unwrap_or("").contains("correct service"), "{b}");

    // Wrong region.
    let h = aws_headers(&ep, "GetOpportunity", body, Some(Signing { region: "eu-west-1", ..Signing::default() }));
    let b = send(h, GET_BODY.as_bytes()).await.assert_aws_error(403, "InvalidSignatureException");
    assert!(b["Message"].as_str().unwrap_or("").contains("valid region"), "{b}");

    // Wrong secret.
    let h = aws_headers(&ep, "GetOpportunity", body, Some(Signing { secret_key: "nope", ..Signing::default() }));
    send(h, GET_BODY.as_bytes()).await.assert_aws_error(403, "InvalidSignatureException");

    // Too old and too far in the future (more than 15 minutes).
    let old = SystemTime::now() - Duration::from_secs(20 * 60);
    let h = aws_headers(&ep, "GetOpportunity", body, Some(Signing { time: old, ..Signing::default() }));
    let b = send(h, GET_BODY.as_bytes()).await.assert_aws_error(403, "InvalidSignatureException");
    assert!(b["Message"].as_str().unwrap_or("").starts_with("Signature expired"), "{b}");
    let future = SystemTime::now() + Duration::from_secs(20 * 60);
    let h = aws_headers(&ep, "GetOpportunity", body, Some(Signing { time: future, ..Signing::default() }));
    send(h, GET_BODY.as_bytes()).await.assert_aws_error(403, "InvalidSignatureException");
    // Within 15 minutes is fine.
    let recent = SystemTime::now() - Duration::from_secs(10 * 60);
    let h = aws_headers(&ep, "GetOpportunity", body, Some(Signing { time: recent, ..Signing::default() }));
    assert_eq!(send(h, GET_BODY.as_bytes()).await.status, 200);

    // Body changed after signing.
    let h = aws_headers(&ep, "GetOpportunity", body, Some(Signing::default()));
    send(h, br#"{"Catalog":"Sandbox","Identifier":"O2000001"}"#)
        .await
        .assert_aws_error(403, "InvalidSignatureException");

    // Target changed after signing.
    let mut h = aws_headers(&ep, "GetOpportunity", body, Some(Signing::default()));
    for (k, v) in h.iter_mut() {
        if k == "x-amz-target" {
            *v = "AWSPartnerCentralSelling.DisassociateOpportunity".to_owned();
        }
    }
    send(h, GET_BODY.as_bytes()).await.assert_aws_error(403, "InvalidSignatureException");

    // Malformed Authorization.
    let mut h = aws_headers(&ep, "GetOpportunity", body, None);
    h.push(("x-amz-date".to_owned(), "20250101T000000Z".to_owned()));
    h.push(("authorization".to_owned(), "AWS4-HMAC-SHA256 Credential=test".to_owned()));
    send(h, GET_BODY.as_bytes()).await.assert_aws_error(403, "IncompleteSignatureException");

    let state = emulator.state();
    assert_eq!(state.auth_failures, 9);
    assert_eq!(state.operation("GetOpportunity").successes, 2);
    emulator.shutdown().await;
}

#[tokio::test]
async fn credentials_are_configurable() {
    let emulator = start_with(EmulatorConfig {
        seed: seed(),
        quotas: QuotaConfig::unlimited(),
        credentials: BTreeMap::from([("AKIAEMULATOR".to_owned(), "s3cr3t/key+x".to_owned())]),
        ..EmulatorConfig::default()
    })
    .await;
    let ep = emulator.endpoint();
    assert_eq!(sdk_get(&ep, ClientOptions::default()).await, refused(403, "UnrecognizedClientException"));
    assert_eq!(
        sdk_get(
            &ep,
            ClientOptions { access_key: "AKIAEMULATOR", secret_key: "s3cr3t/key+x", ..ClientOptions::default() }
        )
        .await,
        Ok(())
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn sdk_client_reuses_connections_across_calls() {
    let emulator = start().await;
    let client = client(&emulator.endpoint()).await;
    for _ in 0..5 {
        client.get_opportunity().catalog("Sandbox").identifier("O2000003").send().await.expect("get");
    }
    assert_eq!(emulator.state().operation("GetOpportunity").successes, 5);
    emulator.shutdown().await;
}
