//! Every error shape, parsed by the real SDK into the right variant, and the raw wire shape.

use aws_sdk_partnercentralselling::error::ProvideErrorMetadata;
use aws_sdk_partnercentralselling::operation::associate_opportunity::AssociateOpportunityError;
use aws_sdk_partnercentralselling::operation::disassociate_opportunity::DisassociateOpportunityError;
use aws_sdk_partnercentralselling::operation::get_opportunity::GetOpportunityError;
use aws_sdk_partnercentralselling::types::{
    AccessDeniedExceptionErrorCode, RelatedEntityType, ValidationExceptionErrorCode as Code, ValidationExceptionReason,
};
use partner_central_emulator::{EmulatorConfig, FaultConfig, QuotaConfig, TokenBucketConfig};

use crate::common::{client, disassociate, disassociate_entity, seed, signed_call, start, start_with};

fn fields(e: &aws_sdk_partnercentralselling::types::error::ValidationException) -> Vec<(String, Code)> {
    e.error_list().iter().map(|x| (x.field_name().unwrap_or("").to_owned(), x.code().clone())).collect()
}

#[tokio::test]
async fn missing_members_are_all_listed() {
    let emulator = start().await;
    let client = client(&emulator.endpoint()).await;
    // The SDK validates nothing client-side: the request goes out with one member.
    let err = client.disassociate_opportunity().catalog("Sandbox").send().await.expect_err("invalid");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    match err.into_service_error() {
        DisassociateOpportunityError::ValidationException(e) => {
            assert_eq!(e.reason(), &ValidationExceptionReason::RequestValidationFailed);
            assert_eq!(
                fields(&e),
                vec![
                    ("OpportunityIdentifier".to_owned(), Code::RequiredFieldMissing),
                    ("RelatedEntityType".to_owned(), Code::RequiredFieldMissing),
                    ("RelatedEntityIdentifier".to_owned(), Code::RequiredFieldMissing),
                ]
            );
            assert!(!e.message().is_empty());
            assert!(e.error_list().iter().all(|x| !x.message().is_empty()));
        }
        other => panic!("unexpected {other:?}"),
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn invalid_values_are_all_listed() {
    let emulator = start().await;
    let client = client(&emulator.endpoint()).await;
    let err = disassociate_entity(&client, "sandbox", "o123", RelatedEntityType::from("solutions"), "")
        .await
        .expect_err("invalid")
        .into_service_error();
    match err {
        DisassociateOpportunityError::ValidationException(e) => assert_eq!(
            fields(&e),
            vec![
                ("Catalog".to_owned(), Code::InvalidEnumValue),
                ("OpportunityIdentifier".to_owned(), Code::InvalidStringFormat),
                ("RelatedEntityType".to_owned(), Code::InvalidEnumValue),
                ("RelatedEntityIdentifier".to_owned(), Code::InvalidStringFormat),
            ]
        ),
        other => panic!("unexpected {other:?}"),
    }
    // Per-type pattern: a product code is not a solution identifier; nothing changed.
    let err = disassociate_entity(&client, "Sandbox", "O1234567", RelatedEntityType::Solutions, "AmazonEC2")
        .await
        .expect_err("invalid")
        .into_service_error();
    match err {
        DisassociateOpportunityError::ValidationException(e) => {
            assert_eq!(fields(&e), vec![("RelatedEntityIdentifier".to_owned(), Code::InvalidStringFormat)])
        }
        other => panic!("unexpected {other:?}"),
    }
    // Too long.
    let err = client
        .associate_opportunity()
        .catalog("Sandbox")
        .opportunity_identifier("O1234567")
        .related_entity_type(RelatedEntityType::AwsProducts)
        .related_entity_identifier("x".repeat(256))
        .send()
        .await
        .expect_err("invalid")
        .into_service_error();
    assert!(matches!(err, AssociateOpportunityError::ValidationException(_)), "{err:?}");
    let state = emulator.state();
    assert_eq!(state.total_disassociations(), 0);
    assert!(state.associations.is_empty());
    emulator.shutdown().await;
}

#[tokio::test]
async fn get_opportunity_validation() {
    let emulator = start().await;
    let client = client(&emulator.endpoint()).await;
    let err = client
        .get_opportunity()
        .catalog("Prod")
        .identifier("123")
        .send()
        .await
        .expect_err("invalid")
        .into_service_error();
    match err {
        GetOpportunityError::ValidationException(e) => assert_eq!(
            fields(&e),
            vec![("Catalog".to_owned(), Code::InvalidEnumValue), ("Identifier".to_owned(), Code::InvalidStringFormat),]
        ),
        other => panic!("unexpected {other:?}"),
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn denied_catalog_is_access_denied() {
    let emulator = start().await;
    let client = client(&emulator.endpoint()).await;
    let err = disassociate_entity(&client, "AWS", "O9000001", RelatedEntityType::Solutions, "S-9000001")
        .await
        .expect_err("denied");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    match err.into_service_error() {
        DisassociateOpportunityError::AccessDeniedException(e) => {
            assert_eq!(e.reason(), Some(&AccessDeniedExceptionErrorCode::IncompatibleBenefitAwsPartnerState));
            assert!(!e.message().unwrap_or("").is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = client
        .get_opportunity()
        .catalog("AWS")
        .identifier("O9000001")
        .send()
        .await
        .expect_err("denied")
        .into_service_error();
    assert!(matches!(err, GetOpportunityError::AccessDeniedException(_)), "{err:?}");
    assert_eq!(
        emulator.state().opportunity("AWS", "O9000001").map(|o| o.related_entity_identifiers.solutions.len()),
        Some(1)
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn unknown_opportunity_and_unassociated_entity_are_not_found() {
    let emulator = start().await;
    let client = client(&emulator.endpoint()).await;
    let err = disassociate_entity(&client, "Sandbox", "O7777777", RelatedEntityType::Solutions, "S-1")
        .await
        .expect_err("unknown");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
    match err.into_service_error() {
        DisassociateOpportunityError::ResourceNotFoundException(e) => {
            assert!(e.message().unwrap_or("").contains("Opportunity O7777777 not found"), "{e:?}")
        }
        other => panic!("unexpected {other:?}"),
    }
    // Same opportunity id in the other catalog does not exist.
    let err = client
        .get_opportunity()
        .catalog("Sandbox")
        .identifier("O9000001")
        .send()
        .await
        .expect_err("unknown")
        .into_service_error();
    assert!(matches!(err, GetOpportunityError::ResourceNotFoundException(_)), "{err:?}");
    let err = disassociate_entity(&client, "Sandbox", "O2000001", RelatedEntityType::Solutions, "S-2000002")
        .await
        .expect_err("not associated")
        .into_service_error();
    match err {
        DisassociateOpportunityError::ResourceNotFoundException(e) => assert!(
            e.message().unwrap_or("").contains("S-2000002 is not associated with opportunity O2000001"),
            "{e:?}"
        ),
        other => panic!("unexpected {other:?}"),
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn last_solution_of_submitted_opportunity_is_business_validation() {
    let emulator = start().await;
    let client = client(&emulator.endpoint()).await;
    let err = disassociate_entity(&client, "Sandbox", "O3000001", RelatedEntityType::Solutions, "S-3000001")
        .await
        .expect_err("business rule")
        .into_service_error();
    match err {
        DisassociateOpportunityError::ValidationException(e) => {
            assert_eq!(e.reason(), &ValidationExceptionReason::BusinessValidationFailed);
            assert_eq!(fields(&e), vec![("RelatedEntityIdentifier".to_owned(), Code::ActionNotPermitted)]);
        }
        other => panic!("unexpected {other:?}"),
    }
    // Documented order: associate the new one first, then the old one can go.
    client
        .associate_opportunity()
        .catalog("Sandbox")
        .opportunity_identifier("O3000001")
        .related_entity_type(RelatedEntityType::Solutions)
        .related_entity_identifier("S-3000002")
        .send()
        .await
        .expect("associate");
    disassociate_entity(&client, "Sandbox", "O3000001", RelatedEntityType::Solutions, "S-3000001")
        .await
        .expect("disassociate");
    emulator.shutdown().await;
}

/// A Marketplace solution counts as a solution: a legacy one can be replaced by one associated
/// first, and the last of either kind stays.
#[tokio::test]
async fn a_marketplace_solution_keeps_a_submitted_opportunity_solved() {
    let emulator = start().await;
    let client = client(&emulator.endpoint()).await;
    let marketplace = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-abc";
    let refused = |err: aws_sdk_partnercentralselling::error::SdkError<DisassociateOpportunityError, _>| match err
        .into_service_error()
    {
        DisassociateOpportunityError::ValidationException(e) => {
            assert_eq!(e.reason(), &ValidationExceptionReason::BusinessValidationFailed);
            assert_eq!(fields(&e), vec![("RelatedEntityIdentifier".to_owned(), Code::ActionNotPermitted)]);
        }
        other => panic!("unexpected {other:?}"),
    };
    // O4000001 is approved, with one legacy solution: removed first, it is refused.
    let err = disassociate_entity(&client, "Sandbox", "O4000001", RelatedEntityType::Solutions, "S-4000001")
        .await
        .expect_err("the wrong order");
    refused(err);
    client
        .associate_opportunity()
        .catalog("Sandbox")
        .opportunity_identifier("O4000001")
        .related_entity_type(RelatedEntityType::AwsMarketplaceSolutions)
        .related_entity_identifier(marketplace)
        .send()
        .await
        .expect("the Marketplace solution first");
    disassociate_entity(&client, "Sandbox", "O4000001", RelatedEntityType::Solutions, "S-4000001")
        .await
        .expect("then the legacy one goes");
    let err =
        disassociate_entity(&client, "Sandbox", "O4000001", RelatedEntityType::AwsMarketplaceSolutions, marketplace)
            .await
            .expect_err("the last solution, now a Marketplace one");
    refused(err);
    let state = emulator.state();
    let held = &state.opportunity("Sandbox", "O4000001").expect("seeded").related_entity_identifiers;
    assert_eq!(
        (held.solutions.len(), held.aws_marketplace_solutions.as_slice()),
        (0, [marketplace.to_owned()].as_slice())
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn throttling_and_internal_errors_are_parsed() {
    let emulator = start_with(EmulatorConfig {
        seed: seed(),
        quotas: QuotaConfig { write: Some(TokenBucketConfig { rate: 0.0, burst: 1.0 }), read: None },
        ..EmulatorConfig::default()
    })
    .await;
    let client = client(&emulator.endpoint()).await;
    disassociate(&client, 1).await.expect("first write fits the bucket");
    let err = disassociate(&client, 1).await.expect_err("throttled");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(429));
    assert!(matches!(err.into_service_error(), DisassociateOpportunityError::ThrottlingException(_)),);

    emulator.set_faults(FaultConfig { error_rate: 1.0, ..FaultConfig::default() }).expect("faults");
    let err = client.get_opportunity().catalog("Sandbox").identifier("O1234567").send().await.expect_err("500");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500));
    let err = err.into_service_error();
    assert_eq!(err.code(), Some("InternalServerException"));
    assert!(matches!(err, GetOpportunityError::InternalServerException(_)), "{err:?}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn raw_wire_shapes() {
    let emulator = start().await;
    let ep = emulator.endpoint();

    let r = signed_call(&ep, "DisassociateOpportunity", "{}").await;
    let body = r.assert_aws_error(400, "ValidationException");
    assert_eq!(body["Reason"], "REQUEST_VALIDATION_FAILED");
    assert_eq!(body["ErrorList"].as_array().map(Vec::len), Some(4));
    assert_eq!(body["ErrorList"][0]["FieldName"], "Catalog");
    assert_eq!(body["ErrorList"][0]["Code"], "REQUIRED_FIELD_MISSING");

    // An empty body counts as {}.
    let r = signed_call(&ep, "GetOpportunity", "").await;
    r.assert_aws_error(400, "ValidationException");

    for bad in ["not json", "[1,2]", "\"x\"", "{\"Catalog\":"] {
        let r = signed_call(&ep, "DisassociateOpportunity", bad).await;
        r.assert_aws_error(400, "SerializationException");
    }

    let r = signed_call(&ep, "CreateOpportunity", "{}").await;
    r.assert_aws_error(400, "UnknownOperationException");
    let r = signed_call(&ep, "disassociateOpportunity", "{}").await;
    r.assert_aws_error(400, "UnknownOperationException");

    let r = signed_call(
        &ep,
        "DisassociateOpportunity",
        r#"{"Catalog":"AWS","OpportunityIdentifier":"O9000001","RelatedEntityType":"Solutions","RelatedEntityIdentifier":"S-9000001"}"#,
    )
    .await;
    let body = r.assert_aws_error(403, "AccessDeniedException");
    assert_eq!(body["Reason"], "INCOMPATIBLE_BENEFIT_AWS_PARTNER_STATE");

    let r = signed_call(&ep, "GetOpportunity", r#"{"Catalog":"Sandbox","Identifier":"O5"}"#).await;
    r.assert_aws_error(404, "ResourceNotFoundException");

    // Unknown members are ignored; non-string members are INVALID_VALUE.
    let r = signed_call(&ep, "GetOpportunity", r#"{"Catalog":"Sandbox","Identifier":"O2000001","Extra":true}"#).await;
    assert_eq!(r.status, 200);
    let r = signed_call(&ep, "GetOpportunity", r#"{"Catalog":"Sandbox","Identifier":2000001}"#).await;
    let body = r.assert_aws_error(400, "ValidationException");
    assert_eq!(body["ErrorList"][0]["Code"], "INVALID_VALUE");

    let state = emulator.state();
    assert_eq!(state.unknown_operations, 2);
    assert_eq!(state.operation("DisassociateOpportunity").errors.get("SerializationException"), Some(&4));
    emulator.shutdown().await;
}

#[tokio::test]
async fn hostile_inputs_get_answers_not_panics() {
    use crate::common::{aws_headers, control, raw};
    let emulator = start().await;
    let ep = emulator.endpoint();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let bodies = [
        deep,
        "{\"Catalog\":\"\u{0}\u{2028}\",\"OpportunityIdentifier\":\"O\u{661}\"}".to_owned(),
        format!("{{\"RelatedEntityIdentifier\":\"{}\"}}", "é".repeat(100_000)),
        "\u{feff}{}".to_owned(),
        "null".to_owned(),
    ];
    for body in &bodies {
        let r = signed_call(&ep, "DisassociateOpportunity", body).await;
        assert!(r.status == 400, "{}: {r:?}", &body[..body.len().min(40)]);
    }
    // Over the 1 MiB limit.
    let big = format!("{{\"Catalog\":\"{}\"}}", "x".repeat(1_100_000));
    let r = signed_call(&ep, "DisassociateOpportunity", &big).await;
    r.assert_aws_error(400, "SerializationException");
    // Non-ASCII Authorization header bytes, odd methods and paths.
    let mut h = aws_headers(&ep, "GetOpportunity", b"{}", None);
    h.push(("authorization".to_owned(), "AWS4-HMAC-SHA256 Credential=\u{e9}".to_owned()));
    let r = raw(&ep, "POST", "/", &h, b"{}").await.expect("answer");
    assert_eq!(r.status, 403);
    for (method, path) in [("GET", "/"), ("PUT", "/x?y=%zz&&="), ("DELETE", "/%2F..%2F")] {
        let r = raw(&ep, method, path, &[], b"").await.expect("answer");
        r.assert_aws_error(403, "MissingAuthenticationTokenException");
    }
    // A signed empty body counts as {}.
    let h = aws_headers(&ep, "GetOpportunity", b"", Some(crate::common::Signing::default()));
    let r = raw(&ep, "POST", "/", &h, b"").await.expect("answer");
    r.assert_aws_error(400, "ValidationException");
    assert_eq!(control(&ep, "GET", "/_emulator/health", "").await.status, 200);
    assert_eq!(control(&ep, "POST", "/_emulator/seed", &"[".repeat(50_000)).await.status, 400);
    emulator.shutdown().await;
}
