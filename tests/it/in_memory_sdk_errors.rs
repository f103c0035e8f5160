//! Every error shape of the service, as the wire carries it, through the real SDK deserializers
//! (aws-smithy-mocks serves the HTTP answers) into the adapter's classification and the verdict: the
//! disassociation's, and the association a replacement makes.

use std::sync::Arc;
use std::time::Duration;

use crate::fakes::NoDeadLetters;
use aws_sdk_partnercentralselling::Client;
use aws_sdk_partnercentralselling::config::retry::RetryConfig;
use aws_sdk_partnercentralselling::operation::associate_opportunity::AssociateOpportunityOutput;
use aws_sdk_partnercentralselling::operation::disassociate_opportunity::DisassociateOpportunityOutput;
use aws_sdk_partnercentralselling::operation::get_opportunity::GetOpportunityOutput;
use aws_sdk_partnercentralselling::types::RelatedEntityIdentifiers;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use lambda_runtime::{Context, LambdaEvent};
use opportunity_disassociator::aws::partner_central::{
    ApiError, ErrorClass, PartnerCentral, SdkPartnerCentral, ThrottleCount,
};
use opportunity_disassociator::config::WorkerConfig;
use opportunity_disassociator::domain::opportunity::Holdings;
use opportunity_disassociator::domain::outcome::Done;
use opportunity_disassociator::domain::request::DisassociationRequest;
use opportunity_disassociator::pacing::Pacer;
use opportunity_disassociator::worker::Worker;
use opportunity_disassociator::worker::decide::{Verdict, after_disassociation_error};
use opportunity_disassociator::worker::inbound::Payload;
use serde_json::{Value, json};

fn request() -> DisassociationRequest {
    DisassociationRequest::from_document(&json!({
        "Catalog": "Sandbox", "OpportunityIdentifier": "O1234567",
        "RelatedEntityType": "Solutions", "RelatedEntityIdentifier": "S-0000001"
    }))
    .unwrap()
}

/// An error answer as the service sends it: status, `x-amzn-ErrorType`, `x-amzn-RequestId`, JSON body.
fn wire_error(status: u16, error_type: &str, body: serde_json::Value) -> HttpResponse {
    let mut response = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body.to_string()));
    response.headers_mut().insert("x-amzn-ErrorType", error_type.to_owned());
    response.headers_mut().insert("x-amzn-RequestId", "req-123".to_owned());
    response.headers_mut().insert("Content-Type", "application/x-amz-json-1.0");
    response
}

struct Adapter {
    partner_central: SdkPartnerCentral,
    throttles: Arc<ThrottleCount>,
}

/// The client as the function configures it ([`SdkPartnerCentral::configure`]: one attempt per call),
/// with `read_attempts` SDK attempts for reads, as `AWS_MAX_ATTEMPTS` gives them.
fn adapter(rules: &[&Rule], read_attempts: u32) -> Adapter {
    let throttles = Arc::new(ThrottleCount::default());
    let config = WorkerConfig::from_lookup(|_| None).unwrap();
    let client: Client = mock_client!(aws_sdk_partnercentralselling, RuleMode::Sequential, rules, |b| {
        SdkPartnerCentral::configure(b, &config, throttles.clone())
    });
    let read_retries =
        RetryConfig::standard().with_max_attempts(read_attempts).with_initial_backoff(Duration::from_millis(1));
    Adapter { partner_central: SdkPartnerCentral::from_client(client).with_read_retries(read_retries), throttles }
}

fn disassociate_answers(status: u16, error_type: &'static str, body: serde_json::Value) -> Rule {
    mock!(Client::disassociate_opportunity).then_http_response(move || wire_error(status, error_type, body.clone()))
}

fn associate_answers(status: u16, error_type: &'static str, body: serde_json::Value) -> Rule {
    mock!(Client::associate_opportunity).then_http_response(move || wire_error(status, error_type, body.clone()))
}

/// The Marketplace solution that replaces the request's legacy solution.
const MARKETPLACE_SOLUTION: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-abc";

fn replacement_document() -> Value {
    fixtures::replacing(
        fixtures::request("Sandbox", "O1234567", "Solutions", "S-0000001"),
        "AwsMarketplaceSolutions",
        MARKETPLACE_SOLUTION,
    )
}

impl Adapter {
    async fn associate(&self) -> Result<(), ApiError> {
        let request = DisassociationRequest::from_document(&replacement_document()).unwrap();
        let new = request.replace_with.as_ref().unwrap();
        self.partner_central.associate(request.catalog, &request.opportunity, new).await
    }

    async fn disassociate(&self) -> Result<(), ApiError> {
        let request = request();
        self.partner_central.disassociate(request.catalog, &request.opportunity, &request.entity).await
    }

    async fn read(&self) -> Result<Option<Holdings>, ApiError> {
        let request = request();
        self.partner_central.opportunity(request.catalog, &request.opportunity).await
    }
}

/// What the worker makes of the write and, when it needs one, the read.
async fn verdict_of(adapter: &Adapter) -> Verdict {
    match adapter.disassociate().await {
        Ok(()) => Verdict::Done(Done::Disassociated),
        // Not a first delivery: the verdicts a redelivery gets.
        Err(error) => after_disassociation_error(error, adapter.read(), &request(), false, 0).await,
    }
}

/// Whether the read shows the request's entity on the opportunity (`None`: no such opportunity).
fn holds_it(read: Option<Holdings>) -> Option<bool> {
    read.map(|holdings| holdings.holds(&request().entity))
}

#[tokio::test]
async fn success_is_disassociated() {
    let rule = mock!(Client::disassociate_opportunity)
        .match_requests(|r| {
            r.catalog() == Some("Sandbox")
                && r.opportunity_identifier() == Some("O1234567")
                && r.related_entity_type().map(|t| t.as_str()) == Some("Solutions")
                && r.related_entity_identifier() == Some("S-0000001")
        })
        .then_output(|| DisassociateOpportunityOutput::builder().build());
    let a = adapter(&[&rule], 1);
    assert_eq!(verdict_of(&a).await, Verdict::Done(Done::Disassociated));
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn request_validation_failure_is_rejected_with_its_fields() {
    let rule = disassociate_answers(
        400,
        "ValidationException",
        json!({"Message": "bad input", "Reason": "REQUEST_VALIDATION_FAILED",
               "ErrorList": [{"FieldName": "RelatedEntityIdentifier", "Message": "too long", "Code": "INVALID_STRING_FORMAT"}]}),
    );
    let a = adapter(&[&rule], 1);
    let Verdict::Permanent(failure) = verdict_of(&a).await else { panic!("expected permanent") };
    assert_eq!(failure.code, "ValidationException");
    assert_eq!(failure.request_id.as_deref(), Some("req-123"));
    assert!(failure.message.contains("REQUEST_VALIDATION_FAILED"), "{}", failure.message);
    assert!(
        failure.message.contains("RelatedEntityIdentifier: too long (INVALID_STRING_FORMAT)"),
        "{}",
        failure.message
    );
}

#[tokio::test]
async fn access_denied_is_rejected_whatever_its_status() {
    for status in [403, 400] {
        let rule = disassociate_answers(
            status,
            "AccessDeniedException",
            json!({"Message": "no", "Reason": "INCOMPATIBLE_BENEFIT_AWS_PARTNER_STATE"}),
        );
        let a = adapter(&[&rule], 1);
        let Verdict::Permanent(failure) = verdict_of(&a).await else { panic!("expected permanent") };
        assert_eq!(failure.code, "AccessDeniedException", "status {status}");
    }
}

fn get_shows(solutions: &[&str]) -> Rule {
    let solutions: Vec<String> = solutions.iter().map(|s| s.to_string()).collect();
    mock!(Client::get_opportunity)
        .match_requests(|r| r.catalog() == Some("Sandbox") && r.identifier() == Some("O1234567"))
        .then_output(move || {
            GetOpportunityOutput::builder()
                .catalog("Sandbox")
                .id("O1234567")
                .last_modified_date(aws_smithy_types::DateTime::from_secs(0))
                .created_date(aws_smithy_types::DateTime::from_secs(0))
                .related_entity_identifiers(
                    RelatedEntityIdentifiers::builder().set_solutions(Some(solutions.clone())).build(),
                )
                .build()
                .unwrap()
        })
}

#[tokio::test]
async fn not_found_with_the_entity_gone_is_already_disassociated() {
    let not_found = disassociate_answers(404, "ResourceNotFoundException", json!({"Message": "not associated"}));
    let get = get_shows(&["S-0000002"]);
    let a = adapter(&[&not_found, &get], 1);
    assert!(matches!(verdict_of(&a).await, Verdict::Done(Done::AlreadyDisassociated(_))));
    assert_eq!(get.num_calls(), 1);
}

#[tokio::test]
async fn not_found_with_the_entity_still_there_is_rejected() {
    let not_found = disassociate_answers(404, "ResourceNotFoundException", json!({"Message": "not found"}));
    let get = get_shows(&["S-0000001"]);
    let a = adapter(&[&not_found, &get], 1);
    let Verdict::Permanent(failure) = verdict_of(&a).await else { panic!("expected permanent") };
    assert_eq!(failure.code, "ResourceNotFoundException");
}

#[tokio::test]
async fn a_missing_opportunity_is_rejected() {
    let not_found = disassociate_answers(404, "ResourceNotFoundException", json!({"Message": "no opportunity"}));
    let get = mock!(Client::get_opportunity)
        .then_http_response(|| wire_error(404, "ResourceNotFoundException", json!({"Message": "no opportunity"})));
    let a = adapter(&[&not_found, &get], 1);
    let Verdict::Permanent(failure) = verdict_of(&a).await else { panic!("expected permanent") };
    assert!(failure.message.contains("does not exist"), "{}", failure.message);
    assert_eq!(get.num_calls(), 1);

    let get = mock!(Client::get_opportunity)
        .then_http_response(|| wire_error(404, "ResourceNotFoundException", json!({"Message": "no opportunity"})));
    let a = adapter(&[&get], 1);
    assert_eq!(holds_it(a.read().await.unwrap()), None, "no such opportunity");
}

#[tokio::test]
async fn business_validation_failure_is_checked_like_not_found() {
    let refused = disassociate_answers(
        400,
        "ValidationException",
        json!({"Message": "entity not associated", "Reason": "BUSINESS_VALIDATION_FAILED"}),
    );
    let get = get_shows(&[]);
    let a = adapter(&[&refused, &get], 1);
    assert!(matches!(verdict_of(&a).await, Verdict::Done(Done::AlreadyDisassociated(_))));
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried() {
    for (status, error_type) in
        [(429, "ThrottlingException"), (500, "InternalServerException"), (503, "ServiceUnavailable")]
    {
        let rule = disassociate_answers(status, error_type, json!({"Message": "later"}));
        let a = adapter(&[&rule], 1);
        let Verdict::Transient(failure) = verdict_of(&a).await else { panic!("expected transient for {error_type}") };
        assert_eq!(failure.code, error_type);
    }
}

#[tokio::test]
async fn an_unknown_error_code_is_retried_not_rejected() {
    let rule = disassociate_answers(400, "SomethingNewException", json!({"Message": "?"}));
    let a = adapter(&[&rule], 1);
    let error = a.disassociate().await.unwrap_err();
    assert_eq!((error.code.as_str(), error.class), ("SomethingNewException", ErrorClass::Transient));
}

#[tokio::test]
async fn a_write_is_one_attempt_whose_throttling_is_counted_and_left_to_the_worker() {
    let rule = mock!(Client::disassociate_opportunity)
        .sequence()
        .http_response(|| wire_error(429, "ThrottlingException", json!({"Message": "slow down"})))
        .output(|| DisassociateOpportunityOutput::builder().build())
        .build();
    let a = adapter(&[&rule], 3);
    let error = a.disassociate().await.unwrap_err();
    assert!(error.is_throttling(), "{error:?}");
    assert_eq!(error.class, ErrorClass::Transient);
    assert_eq!(rule.num_calls(), 1, "the SDK did not retry the write");
    assert_eq!(a.throttles.get(), 1);
    // The worker's retry, in its next paced slot, goes through.
    assert_eq!(a.disassociate().await, Ok(()));
}

#[tokio::test]
async fn a_read_is_retried_by_the_sdk_and_every_throttled_attempt_counted() {
    let get = mock!(Client::get_opportunity)
        .sequence()
        .http_response(|| wire_error(429, "ThrottlingException", json!({"Message": "slow down"})))
        .output(|| {
            GetOpportunityOutput::builder()
                .catalog("Sandbox")
                .id("O1234567")
                .last_modified_date(aws_smithy_types::DateTime::from_secs(0))
                .created_date(aws_smithy_types::DateTime::from_secs(0))
                .build()
                .unwrap()
        })
        .build();
    let a = adapter(&[&get], 3);
    assert_eq!(a.read().await.map(holds_it), Ok(Some(false)), "read, and the entity is not there");
    assert_eq!(get.num_calls(), 2, "retried once by the SDK");
    assert_eq!(a.throttles.get(), 1);

    let get = mock!(Client::get_opportunity)
        .then_http_response(|| wire_error(429, "ThrottlingException", json!({"Message": "slow down"})));
    let a = adapter(&[&get], 2);
    assert_eq!(a.read().await.unwrap_err().code, "ThrottlingException");
    assert_eq!(get.num_calls(), 2, "AWS_MAX_ATTEMPTS attempts, no more");
}

// ------------------------------------------------------------------ the association of a replacement

#[tokio::test]
async fn an_association_sends_the_replacement_and_succeeds() {
    let rule = mock!(Client::associate_opportunity)
        .match_requests(|r| {
            r.catalog() == Some("Sandbox")
                && r.opportunity_identifier() == Some("O1234567")
                && r.related_entity_type().map(|t| t.as_str()) == Some("AwsMarketplaceSolutions")
                && r.related_entity_identifier() == Some(MARKETPLACE_SOLUTION)
        })
        .then_output(|| AssociateOpportunityOutput::builder().build());
    let a = adapter(&[&rule], 1);
    assert_eq!(a.associate().await, Ok(()));
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn an_association_refused_for_its_input_or_access_is_permanent() {
    let invalid = associate_answers(
        400,
        "ValidationException",
        json!({"Message": "bad input", "Reason": "REQUEST_VALIDATION_FAILED",
               "ErrorList": [{"FieldName": "RelatedEntityIdentifier", "Message": "bad arn", "Code": "INVALID_STRING_FORMAT"}]}),
    );
    let a = adapter(&[&invalid], 1);
    let error = a.associate().await.unwrap_err();
    assert_eq!((error.code.as_str(), error.class), ("ValidationException", ErrorClass::Permanent));
    assert!(error.message.contains("RelatedEntityIdentifier: bad arn (INVALID_STRING_FORMAT)"), "{}", error.message);
    assert_eq!(error.request_id.as_deref(), Some("req-123"));
    for status in [403, 400] {
        let denied = associate_answers(status, "AccessDeniedException", json!({"Message": "no"}));
        let a = adapter(&[&denied], 1);
        let error = a.associate().await.unwrap_err();
        assert_eq!((error.code.as_str(), error.class), ("AccessDeniedException", ErrorClass::Permanent), "{status}");
    }
}

/// A business rule (the opportunity's limit, or the entity already there: the service does not say
/// which), a conflict (not in the model: the SDK gives an unhandled error) and not found may each mean
/// the association is already made: the opportunity is read to tell.
#[tokio::test]
async fn an_association_answer_that_may_mean_already_there_is_left_to_a_read() {
    let answers = [
        associate_answers(
            400,
            "ValidationException",
            json!({"Message": "too many", "Reason": "BUSINESS_VALIDATION_FAILED",
                   "ErrorList": [{"FieldName": "RelatedEntityIdentifier", "Message": "at most 10", "Code": "TOO_MANY_VALUES"}]}),
        ),
        associate_answers(409, "ConflictException", json!({"Message": "already associated"})),
        associate_answers(404, "ResourceNotFoundException", json!({"Message": "no"})),
    ];
    for (rule, code) in answers.iter().zip(["ValidationException", "ConflictException", "ResourceNotFoundException"]) {
        let a = adapter(&[rule], 1);
        let error = a.associate().await.unwrap_err();
        assert_eq!((error.code.as_str(), error.class), (code, ErrorClass::Ambiguous));
    }
    // A conflict answered to a disassociation means no such thing: refused.
    let conflict = disassociate_answers(409, "ConflictException", json!({"Message": "conflict"}));
    let a = adapter(&[&conflict], 1);
    assert_eq!(a.disassociate().await.unwrap_err().class, ErrorClass::Permanent);
}

#[tokio::test]
async fn throttling_and_server_errors_of_an_association_are_retried_and_throttling_counted() {
    for (status, error_type) in
        [(429, "ThrottlingException"), (500, "InternalServerException"), (503, "ServiceUnavailable")]
    {
        let rule = associate_answers(status, error_type, json!({"Message": "later"}));
        let a = adapter(&[&rule], 3);
        let error = a.associate().await.unwrap_err();
        assert_eq!((error.code.as_str(), error.class), (error_type, ErrorClass::Transient));
        assert_eq!(rule.num_calls(), 1, "one attempt: the worker retries a write in its paced slot");
        assert_eq!(a.throttles.get(), u64::from(status == 429));
    }
}

fn opportunity_holding(solutions: &[&str], marketplace_solutions: &[&str]) -> Rule {
    let (solutions, marketplace): (Vec<String>, Vec<String>) = (
        solutions.iter().map(|s| s.to_string()).collect(),
        marketplace_solutions.iter().map(|s| s.to_string()).collect(),
    );
    mock!(Client::get_opportunity).then_output(move || {
        GetOpportunityOutput::builder()
            .catalog("Sandbox")
            .id("O1234567")
            .last_modified_date(aws_smithy_types::DateTime::from_secs(0))
            .created_date(aws_smithy_types::DateTime::from_secs(0))
            .related_entity_identifiers(
                RelatedEntityIdentifiers::builder()
                    .set_solutions(Some(solutions.clone()))
                    .set_aws_marketplace_solutions(Some(marketplace.clone()))
                    .build(),
            )
            .build()
            .unwrap()
    })
}

/// The whole replacement through the SDK: the conflict answered to the association is settled by the
/// read that shows it made, and the old solution is then disassociated.
#[tokio::test]
async fn a_conflict_answered_to_the_association_is_settled_by_the_read_and_the_replacement_goes_on() {
    let first_read = opportunity_holding(&["S-0000001"], &[]);
    let conflict = associate_answers(409, "ConflictException", json!({"Message": "already associated"}));
    let second_read = opportunity_holding(&["S-0000001"], &[MARKETPLACE_SOLUTION]);
    let disassociated = mock!(Client::disassociate_opportunity)
        .match_requests(|r| r.related_entity_identifier() == Some("S-0000001"))
        .then_output(|| DisassociateOpportunityOutput::builder().build());
    let a = adapter(&[&first_read, &conflict, &second_read, &disassociated], 1);
    let config =
        WorkerConfig::from_lookup(|name| (name == "PARTNER_CENTRAL_WRITES_PER_SECOND").then(|| "1000".into())).unwrap();
    let pacer = Arc::new(Pacer::local(config.writes_per_second));
    let worker = Worker::<_, NoDeadLetters>::new(config, a.partner_central, None, pacer, a.throttles);
    let mut context = Context::default();
    context.deadline = 0;
    let answer = worker.handle(LambdaEvent::new(Payload::from(&replacement_document()), context)).await.unwrap();
    assert_eq!(answer["outcome"], "replaced");
    assert_eq!((first_read.num_calls(), conflict.num_calls(), second_read.num_calls()), (1, 1, 1));
    assert_eq!(disassociated.num_calls(), 1);
}
