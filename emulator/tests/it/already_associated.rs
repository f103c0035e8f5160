//! Associating an entity that is already associated: `success` (default) or `conflict`, switched
//! by the library, the control endpoint and the binary's flag.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use aws_sdk_partnercentralselling::error::ProvideErrorMetadata;
use aws_sdk_partnercentralselling::operation::associate_opportunity::AssociateOpportunityError;
use aws_sdk_partnercentralselling::types::RelatedEntityType;
use partner_central_emulator::{AlreadyAssociated, BehaviorConfig, EmulatorConfig, QuotaConfig};
use serde_json::json;

use crate::common::{client, control, disassociate_body, entities, seed, signed_call, start, start_with};

const BODY: &str = r#"{"Catalog":"Sandbox","OpportunityIdentifier":"O2000001","RelatedEntityType":"Solutions","RelatedEntityIdentifier":"S-2000001"}"#;

#[tokio::test]
async fn success_by_default_conflict_when_switched() {
    let emulator = start().await;
    assert_eq!(emulator.behavior().already_associated, AlreadyAssociated::Success);
    let client = client(&emulator.endpoint()).await;
    let before = entities(&emulator.state());
    let associate = || {
        client
            .associate_opportunity()
            .catalog("Sandbox")
            .opportunity_identifier("O2000001")
            .related_entity_type(RelatedEntityType::Solutions)
            .related_entity_identifier("S-2000001")
            .send()
    };
    associate().await.expect("default: success");

    emulator
        .set_behavior(BehaviorConfig { already_associated: AlreadyAssociated::Conflict, ..BehaviorConfig::default() });
    let err = associate().await.expect_err("conflict");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(409));
    let err = err.into_service_error();
    assert_eq!(err.code(), Some("ConflictException"));
    assert!(err.message().unwrap_or("").contains("already associated"), "{err:?}");
    // Not in the service model: the SDK has no variant for it.
    assert!(
        !matches!(
            err,
            AssociateOpportunityError::ValidationException(_)
                | AssociateOpportunityError::ResourceNotFoundException(_)
                | AssociateOpportunityError::AccessDeniedException(_)
                | AssociateOpportunityError::ThrottlingException(_)
                | AssociateOpportunityError::InternalServerException(_)
        ),
        "{err:?}"
    );

    // The raw answer.
    let r = signed_call(&emulator.endpoint(), "AssociateOpportunity", BODY).await;
    let body = r.assert_aws_error(409, "ConflictException");
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "only __type and Message: {body}");

    // A new entity is still associated normally.
    let new = r#"{"Catalog":"Sandbox","OpportunityIdentifier":"O2000001","RelatedEntityType":"Solutions","RelatedEntityIdentifier":"S-2000009"}"#;
    assert_eq!(signed_call(&emulator.endpoint(), "AssociateOpportunity", new).await.status, 200);

    let state = emulator.state();
    let a = state.operation("AssociateOpportunity");
    assert_eq!((a.calls, a.successes), (4, 2));
    assert_eq!(a.errors.get("ConflictException"), Some(&2));
    assert_eq!(state.associations.len(), 1, "only S-2000009 took effect");
    assert_eq!(state.associations[0].related_entity_identifier, "S-2000009");
    let o = state.opportunity("Sandbox", "O2000001").expect("seeded");
    assert_eq!(o.related_entity_identifiers.solutions, ["S-2000001", "S-2000009"]);
    assert_ne!(entities(&state), before);
    assert_eq!(state.behavior.already_associated, AlreadyAssociated::Conflict);

    emulator.set_behavior(BehaviorConfig::default());
    associate().await.expect("back to success");
    emulator.shutdown().await;
}

#[tokio::test]
async fn control_endpoint_switches_it() {
    let emulator = start_with(EmulatorConfig {
        seed: seed(),
        quotas: QuotaConfig::unlimited(),
        behavior: BehaviorConfig { already_associated: AlreadyAssociated::Conflict, ..BehaviorConfig::default() },
        ..EmulatorConfig::default()
    })
    .await;
    let ep = emulator.endpoint();
    let r = control(&ep, "GET", "/_emulator/behavior", "").await;
    assert_eq!((r.status, r.json()["AlreadyAssociated"].clone()), (200, json!("conflict")));
    signed_call(&ep, "AssociateOpportunity", BODY).await.assert_aws_error(409, "ConflictException");

    let r = control(&ep, "POST", "/_emulator/behavior", r#"{"AlreadyAssociated":"success"}"#).await;
    assert_eq!((r.status, r.json()["AlreadyAssociated"].clone()), (200, json!("success")));
    assert_eq!(emulator.behavior().already_associated, AlreadyAssociated::Success);
    assert_eq!(signed_call(&ep, "AssociateOpportunity", BODY).await.status, 200);

    let r = control(&ep, "POST", "/_emulator/behavior", r#"{"AlreadyAssociated":"conflict"}"#).await;
    assert_eq!(r.status, 200);
    signed_call(&ep, "AssociateOpportunity", BODY).await.assert_aws_error(409, "ConflictException");
    // Absent members take their defaults, as the other control endpoints do.
    let r = control(&ep, "POST", "/_emulator/behavior", "{}").await;
    assert_eq!((r.status, r.json()["AlreadyAssociated"].clone()), (200, json!("success")));

    for bad in [r#"{"AlreadyAssociated":"Conflict"}"#, r#"{"AlreadyAssociated":"maybe"}"#, r#"{"Other":1}"#, "nope"] {
        let r = control(&ep, "POST", "/_emulator/behavior", bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.json()["Message"].is_string(), "{bad}");
    }
    assert_eq!(emulator.behavior().already_associated, AlreadyAssociated::Success);
    let state = control(&ep, "GET", "/_emulator/state", "").await.json();
    assert_eq!(state["Behavior"], json!({"AlreadyAssociated": "success", "ReviewErrorCode": "ACTION_NOT_PERMITTED"}));
    assert_eq!(state["Operations"]["AssociateOpportunity"]["Errors"]["ConflictException"], 2);
    assert_eq!(control(&ep, "DELETE", "/_emulator/behavior", "").await.status, 405);
    // Disassociation is not affected.
    assert_eq!(
        signed_call(&ep, "DisassociateOpportunity", &disassociate_body("O2000001", "Solutions", "S-2000001"))
            .await
            .status,
        200
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn binary_flag_sets_it() {
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/seed.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_partner-central-emulator"))
        .args(["--seed", seed, "--no-quotas", "--quiet", "--already-associated", "conflict"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("line");
    let endpoint = line.trim_end().strip_prefix("partner-central-emulator listening on ").map(str::to_owned);
    let result = async move {
        let endpoint = endpoint.unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        signed_call(&endpoint, "AssociateOpportunity", BODY).await.assert_aws_error(409, "ConflictException");
        let r = control(&endpoint, "GET", "/_emulator/behavior", "").await;
        assert_eq!(r.json()["AlreadyAssociated"], json!("conflict"));
    };
    let outcome = tokio::spawn(result).await;
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
