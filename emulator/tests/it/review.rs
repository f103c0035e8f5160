//! Review states: every write refused while `Submitted` or `In review`, `Rejected` read-only, the
//! status changed at run time without touching the rest of the state, and either error list code.

use aws_sdk_partnercentralselling::Client;
use aws_sdk_partnercentralselling::error::ProvideErrorMetadata;
use aws_sdk_partnercentralselling::operation::associate_opportunity::AssociateOpportunityError;
use aws_sdk_partnercentralselling::operation::disassociate_opportunity::DisassociateOpportunityError;
use aws_sdk_partnercentralselling::types::error::ValidationException;
use aws_sdk_partnercentralselling::types::{
    RelatedEntityType, ReviewStatus as SdkReviewStatus, ValidationExceptionErrorCode as Code, ValidationExceptionReason,
};
use partner_central_emulator::{BehaviorConfig, LifeCycleChange, ReviewErrorCode, ReviewStatus, Stage, StateSnapshot};
use serde_json::json;

use crate::common::{client, control, disassociate, disassociate_entity, entities, start};

fn refusal(e: &ValidationException) -> (ValidationExceptionReason, Vec<(String, Code)>, String) {
    let list =
        e.error_list().iter().map(|f| (f.field_name().unwrap_or_default().to_owned(), f.code().clone())).collect();
    (e.reason().clone(), list, e.message().to_owned())
}

/// Both writes on `opportunity`, each expected refused for its review state; the refusals.
async fn both_writes_refused(
    client: &Client,
    opportunity: &str,
) -> Vec<(ValidationExceptionReason, Vec<(String, Code)>, String)> {
    let solution = format!("S-{}", &opportunity[1..]);
    let mut refusals = Vec::new();
    // Removing its only solution, removing one it does not have, adding one, adding one it has.
    for (entity, disassociate) in
        [(&solution, true), (&"S-1".to_owned(), true), (&"S-1".to_owned(), false), (&solution, false)]
    {
        let e = if disassociate {
            match disassociate_entity(client, "Sandbox", opportunity, RelatedEntityType::Solutions, entity)
                .await
                .expect_err("refused under review")
                .into_service_error()
            {
                DisassociateOpportunityError::ValidationException(e) => e,
                other => panic!("{opportunity}: unexpected {other:?}"),
            }
        } else {
            match client
                .associate_opportunity()
                .catalog("Sandbox")
                .opportunity_identifier(opportunity)
                .related_entity_type(RelatedEntityType::Solutions)
                .related_entity_identifier(entity)
                .send()
                .await
                .expect_err("refused under review")
                .into_service_error()
            {
                AssociateOpportunityError::ValidationException(e) => e,
                other => panic!("{opportunity}: unexpected {other:?}"),
            }
        };
        refusals.push(refusal(&e));
    }
    refusals
}

fn solutions(state: &StateSnapshot, id: &str) -> Vec<String> {
    state.opportunity("Sandbox", id).map(|o| o.related_entity_identifiers.solutions.clone()).unwrap_or_default()
}

async fn review_status(client: &Client, id: &str) -> Option<SdkReviewStatus> {
    let out = client.get_opportunity().catalog("Sandbox").identifier(id).send().await.expect("a read is never refused");
    out.life_cycle().and_then(|l| l.review_status()).cloned()
}

#[tokio::test]
async fn every_write_is_refused_while_submitted_or_in_review_and_reads_go_on() {
    let emulator = start().await;
    let client = client(&emulator.endpoint()).await;
    let before = entities(&emulator.state());
    for (id, status) in [("O3000002", "Submitted"), ("O3000003", "In review")] {
        for (reason, list, message) in both_writes_refused(&client, id).await {
            assert_eq!(reason, ValidationExceptionReason::BusinessValidationFailed);
            assert_eq!(list, [("OpportunityIdentifier".to_owned(), Code::ActionNotPermitted)]);
            assert!(message.contains(id) && message.contains(&format!("review status is {status}")), "{message}");
        }
    }
    assert_eq!(entities(&emulator.state()), before, "nothing changed");
    assert_eq!(review_status(&client, "O3000003").await, Some(SdkReviewStatus::InReview));
    let state = emulator.state();
    assert_eq!(state.operation("DisassociateOpportunity").errors.get("ValidationException"), Some(&4));
    assert_eq!(state.operation("AssociateOpportunity").errors.get("ValidationException"), Some(&4));
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_rejected_opportunity_is_read_only() {
    let emulator = start().await;
    let client = client(&emulator.endpoint()).await;
    for (reason, list, message) in both_writes_refused(&client, "O3000004").await {
        assert_eq!(reason, ValidationExceptionReason::BusinessValidationFailed);
        assert_eq!(list, [("OpportunityIdentifier".to_owned(), Code::ActionNotPermitted)]);
        assert!(message.contains("O3000004 was Rejected and is read-only"), "{message}");
    }
    assert_eq!(solutions(&emulator.state(), "O3000004"), ["S-3000004"]);
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_review_runs_its_course_at_run_time_and_the_rest_of_the_state_stays() {
    let emulator = start().await;
    let ep = emulator.endpoint();
    let client = client(&ep).await;
    disassociate(&client, 1).await.expect("a write elsewhere");
    let path = "/_emulator/opportunities/Sandbox/O2000002/life-cycle";

    // Submitted, then In review: refused; Approved: done. One status at a time, the stage kept.
    for status in ["Submitted", "In review"] {
        let r = control(&ep, "POST", path, &json!({"ReviewStatus": status}).to_string()).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.json()["LifeCycle"], json!({"Stage": "Prospect", "ReviewStatus": status}));
        assert_eq!(r.json()["Id"], "O2000002");
        let err = disassociate(&client, 2).await.expect_err("under review").into_service_error();
        assert!(matches!(err, DisassociateOpportunityError::ValidationException(_)), "{err:?}");
    }
    let r = control(&ep, "POST", path, r#"{"ReviewStatus":"Approved","Stage":"Committed"}"#).await;
    assert_eq!(r.json()["LifeCycle"], json!({"Stage": "Committed", "ReviewStatus": "Approved"}));
    // Approved: writes go through again (in the documented order, its last solution stays).
    client
        .associate_opportunity()
        .catalog("Sandbox")
        .opportunity_identifier("O2000002")
        .related_entity_type(RelatedEntityType::Solutions)
        .related_entity_identifier("S-2000009")
        .send()
        .await
        .expect("the review is over");
    disassociate(&client, 2).await.expect("the review is over");

    let state = emulator.state();
    assert_eq!(state.disassociation_count("Sandbox", "O2000001", "Solutions", "S-2000001"), 1, "kept");
    assert_eq!(state.disassociation_count("Sandbox", "O2000002", "Solutions", "S-2000002"), 1);
    let d = state.operation("DisassociateOpportunity");
    assert_eq!((d.calls, d.successes), (4, 2), "the counters ran on");
    assert_eq!(solutions(&state, "O2000003"), ["S-2000003"]);

    // The library does the same.
    let change = LifeCycleChange { review_status: Some(ReviewStatus::Rejected), ..LifeCycleChange::default() };
    let opp = emulator.set_life_cycle("Sandbox", "O2000003", change).expect("changed");
    assert_eq!((opp.life_cycle.stage, opp.life_cycle.review_status), (Stage::Prospect, ReviewStatus::Rejected));
    let err = disassociate(&client, 3).await.expect_err("rejected").into_service_error();
    assert!(err.message().is_some_and(|m| m.contains("read-only")), "{err:?}");
    assert!(emulator.set_life_cycle("AWS", "O2000003", change).is_err(), "no such opportunity in AWS");
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_error_list_code_is_switchable() {
    let emulator = start().await;
    let ep = emulator.endpoint();
    let client = client(&ep).await;
    let r = control(&ep, "POST", "/_emulator/behavior", r#"{"ReviewErrorCode":"INVALID_RESOURCE_STATE"}"#).await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"AlreadyAssociated": "success", "ReviewErrorCode": "INVALID_RESOURCE_STATE"}))
    );
    for id in ["O3000002", "O3000003", "O3000004"] {
        for (reason, list, _) in both_writes_refused(&client, id).await {
            assert_eq!(reason, ValidationExceptionReason::BusinessValidationFailed);
            assert_eq!(list, [("OpportunityIdentifier".to_owned(), Code::InvalidResourceState)], "{id}");
        }
    }
    // The last-solution rule keeps its own code.
    let err = disassociate_entity(&client, "Sandbox", "O3000001", RelatedEntityType::Solutions, "S-3000001")
        .await
        .expect_err("last solution")
        .into_service_error();
    let DisassociateOpportunityError::ValidationException(e) = err else { panic!("unexpected {err:?}") };
    assert_eq!(refusal(&e).1, [("RelatedEntityIdentifier".to_owned(), Code::ActionNotPermitted)]);
    emulator.set_behavior(BehaviorConfig::default());
    assert_eq!(emulator.behavior().review_error_code, ReviewErrorCode::ActionNotPermitted);
    emulator.shutdown().await;
}

#[tokio::test]
async fn bad_life_cycle_changes_are_refused_and_change_nothing() {
    let emulator = start().await;
    let ep = emulator.endpoint();
    let before = emulator.state().opportunities;
    for (method, path, body, status) in [
        ("POST", "/_emulator/opportunities/Sandbox/O2000002/life-cycle", r#"{"ReviewStatus":"In Review"}"#, 400),
        ("POST", "/_emulator/opportunities/Sandbox/O2000002/life-cycle", r#"{"Stage":"Closed Won"}"#, 400),
        ("POST", "/_emulator/opportunities/Sandbox/O2000002/life-cycle", r#"{"Status":"Approved"}"#, 400),
        ("POST", "/_emulator/opportunities/Sandbox/O2000002/life-cycle", "nope", 400),
        ("POST", "/_emulator/opportunities/Sandbox/O9/life-cycle", r#"{"ReviewStatus":"Approved"}"#, 404),
        ("POST", "/_emulator/opportunities/O2000002/life-cycle", r#"{"ReviewStatus":"Approved"}"#, 404),
        ("POST", "/_emulator/opportunities/Sandbox/O2000002/review", r#"{"ReviewStatus":"Approved"}"#, 404),
        ("GET", "/_emulator/opportunities/Sandbox/O2000002/life-cycle", "", 405),
    ] {
        let r = control(&ep, method, path, body).await;
        assert_eq!(r.status, status, "{method} {path} {body}: {r:?}");
        assert!(r.json()["Message"].is_string(), "{r:?}");
    }
    assert_eq!(emulator.state().opportunities, before);
    // An empty change sets nothing (the modification date aside).
    let r = control(&ep, "POST", "/_emulator/opportunities/Sandbox/O2000002/life-cycle", "{}").await;
    assert_eq!(r.json()["LifeCycle"], json!({"Stage": "Prospect", "ReviewStatus": "Pending Submission"}));
    emulator.shutdown().await;
}
