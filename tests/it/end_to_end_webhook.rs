//! The CRM webhook end to end: the built webhook function answers a signed Function URL event by
//! queueing the request in moto's SQS, and the worker, fed that queue by an event source mapping in
//! small, makes the call against the Partner Central emulator. Also: the secret read from Secrets
//! Manager (moto's) at init, a webhook without a secret failing init, the worker refusing a Function
//! URL request, and every refusal leaving the queue empty.

use std::time::Duration;

use crate::common::{
    Function, Keys, Moto, Queues, RuntimeApi, emulator_config, function_env, function_url_event, now_secs, pump_once,
    request, signed_webhook, start_emulator,
};
use aws_config::BehaviorVersion;
use opportunity_disassociator::aws::work_queue::{SqsWorkQueue, WorkQueue};
use opportunity_disassociator::domain::request::DisassociationRequest;
use partner_central_emulator::{EmulatorConfig, QuotaConfig, RunningEmulator, TokenBucketConfig};
use serde_json::{Value, json};

const KEYS: Keys = Keys { access: "AKIDWEBHOOKTEST", secret: "webhook-e2e-aws-secret-key-7c1d" };
/// The documented test secret of the samples and the demo.
const WEBHOOK_SECRET: &str = "demo-webhook-secret";
const TIMEOUT: Duration = Duration::from_secs(60);

const SEED: &str = r#"{
  "Opportunities": [
    {"Catalog": "Sandbox", "Id": "O2000004", "RelatedEntityIdentifiers": {"Solutions": ["S-2000004"]}},
    {"Catalog": "Sandbox", "Id": "O2000005", "RelatedEntityIdentifiers": {"Solutions": ["S-2000005", "S-2000006"]}},
    {"Catalog": "Sandbox", "Id": "O2000007", "RelatedEntityIdentifiers": {"Solutions": ["S-2000007"]}}
  ]
}"#;

async fn emulator() -> RunningEmulator {
    // The worker's pace below (5 writes/s): a replacement's two writes are not throttled.
    let quotas = QuotaConfig { write: Some(TokenBucketConfig { rate: 5.0, burst: 1.0 }), ..QuotaConfig::default() };
    start_emulator(EmulatorConfig { quotas, ..emulator_config(SEED, &KEYS) }).await
}

/// Either function's environment, against the emulator and moto, logging at DEBUG.
fn env(emulator: &RunningEmulator, moto: &Moto, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let base = [
        ("PARTNER_CENTRAL_WRITES_PER_SECOND", "5".to_owned()),
        ("PARTNER_CENTRAL_OPERATION_TIMEOUT_SECONDS", "10".to_owned()),
        ("AWS_LAMBDA_LOG_LEVEL", "DEBUG".to_owned()),
    ];
    function_env(&KEYS, emulator, Some(moto), &[&base[..], extra].concat())
}

fn signed(body: &str) -> Value {
    signed_webhook(body, now_secs(), WEBHOOK_SECRET)
}

/// The HTTP status and the parsed JSON body of a Function URL response.
fn http(answer: crate::common::Answer) -> (u64, Value) {
    let response = answer.expect("a webhook is always answered with a response, never a function error");
    let body = serde_json::from_str(response["body"].as_str().expect("a body")).expect("a JSON body");
    (response["statusCode"].as_u64().expect("a status"), body)
}

/// The webhook and the worker, each under its own Runtime API, on `queues`.
struct Stack {
    runtime: RuntimeApi,
    webhook: Function,
    worker_runtime: RuntimeApi,
    worker: Function,
}

async fn stack(emulator: &RunningEmulator, moto: &Moto, queues: &Queues) -> Stack {
    let runtime = RuntimeApi::start().await;
    let webhook = Function::start_webhook(
        &runtime,
        &env(emulator, moto, &[("WEBHOOK_SECRET", WEBHOOK_SECRET.into()), ("WORK_QUEUE_URL", queues.work_url.clone())]),
    );
    let worker_runtime = RuntimeApi::start().await;
    let worker =
        Function::start(&worker_runtime, &env(emulator, moto, &[("DEAD_LETTER_QUEUE_URL", queues.dlq_url.clone())]));
    Stack { runtime, webhook, worker_runtime, worker }
}

fn solutions(emulator: &RunningEmulator, id: &str) -> Vec<String> {
    emulator.state().opportunity("Sandbox", id).expect("seeded").related_entity_identifiers.solutions.clone()
}

#[tokio::test]
async fn a_signed_webhook_is_queued_and_the_queue_disassociates_it() {
    let emulator = emulator().await;
    let moto = Moto::start().await;
    let queues = moto.queues("webhook", false, 3, 30).await;
    let Stack { runtime, webhook: mut function, worker_runtime, worker: _worker } =
        stack(&emulator, &moto, &queues).await;

    // The CRM's body, with its own spacing and an extra member: the signature covers it as sent.
    let body = r#"{ "Catalog": "Sandbox", "OpportunityIdentifier": "O2000004",
        "RelatedEntityType": "Solutions", "RelatedEntityIdentifier": "S-2000004", "CrmRecordId": "00Q5e000" }"#;
    let (status, answer) = http(runtime.invoke(signed(body), TIMEOUT).await);
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["queued"], 1);
    assert_eq!(answer["messageIds"].as_array().unwrap().len(), 1);
    assert_eq!(emulator.state().requests, 0, "the webhook never calls Partner Central");
    assert_eq!(solutions(&emulator, "O2000004"), ["S-2000004"]);
    assert_eq!(moto.depth(&queues.work_url).await, 1);

    // The queue's event source mapping brings the message to the worker: it is paced, called, and
    // deleted from the queue like any other request.
    let pass = pump_once(&moto, &queues, &worker_runtime, 10, TIMEOUT).await;
    assert_eq!((pass.received, pass.failed), (1, 0));
    assert!(solutions(&emulator, "O2000004").is_empty(), "the emulator shows the entity disassociated");
    assert_eq!(emulator.state().disassociation_count("Sandbox", "O2000004", "Solutions", "S-2000004"), 1);
    assert_eq!(moto.depth(&queues.work_url).await, 0);
    assert!(moto.drain(&queues.dlq_url).await.is_empty());

    // A list: every member queued, then each one disassociated in turn.
    let list = json!([
        request("Sandbox", "O2000005", "Solutions", "S-2000005"),
        request("Sandbox", "O2000005", "Solutions", "S-2000006"),
    ])
    .to_string();
    let (status, answer) = http(runtime.invoke(signed(&list), TIMEOUT).await);
    assert_eq!((status, answer["queued"].as_u64()), (202, Some(2)), "{answer}");
    let mut passes = 0;
    while moto.depth(&queues.work_url).await > 0 && passes < 5 {
        pump_once(&moto, &queues, &worker_runtime, 10, TIMEOUT).await;
        passes += 1;
    }
    assert!(solutions(&emulator, "O2000005").is_empty());

    // The secret never reaches the logs.
    let lines = function.all_lines().await;
    assert!(lines.iter().any(|l| l.contains("webhook accepted (202)")), "{lines:#?}");
    for line in &lines {
        assert!(!line.contains(WEBHOOK_SECRET), "the webhook secret in the logs: {line}");
    }
}

#[tokio::test]
async fn refused_webhooks_queue_nothing() {
    let emulator = emulator().await;
    let moto = Moto::start().await;
    let queues = moto.queues("refusals", false, 3, 30).await;
    let runtime = RuntimeApi::start().await;
    let _function = Function::start_webhook(
        &runtime,
        &env(
            &emulator,
            &moto,
            &[
                ("WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
                ("WORK_QUEUE_URL", queues.work_url.clone()),
                ("WEBHOOK_MAX_BODY_BYTES", "2048".into()),
            ],
        ),
    );
    let body = request("Sandbox", "O2000004", "Solutions", "S-2000004").to_string();

    let unsigned = function_url_event(&body, json!({"content-type": "application/json"}));
    // Well past 300 s either way: the function's clock may have moved a second on since signing.
    let stale = signed_webhook(&body, now_secs() - 330, WEBHOOK_SECRET);
    let future = signed_webhook(&body, now_secs() + 330, WEBHOOK_SECRET);
    let wrong_secret = signed_webhook(&body, now_secs(), "not-the-webhook-secret");
    let mut tampered = signed(&body);
    tampered["body"] = json!(body.replace("S-2000004", "S-2000005"));
    for (name, event) in [
        ("unsigned", unsigned),
        ("stale", stale),
        ("future", future),
        ("wrong secret", wrong_secret),
        ("tampered", tampered),
    ] {
        let (status, answer) = http(runtime.invoke(event, TIMEOUT).await);
        assert_eq!((status, answer), (401, json!({"message": "unauthorized"})), "{name}");
    }

    let oversized = format!("{body:<2049}");
    let (status, _) = http(runtime.invoke(signed(&oversized), TIMEOUT).await);
    assert_eq!(status, 413);

    let mut invalid = request("Sandbox", "O2000004", "Solutions", "S-2000004");
    invalid["RelatedEntityIdentifier"] = json!("2000004");
    let list = json!([request("Sandbox", "O2000004", "Solutions", "S-2000004"), invalid]).to_string();
    let (status, answer) = http(runtime.invoke(signed(&list), TIMEOUT).await);
    assert_eq!(status, 400);
    assert_eq!(answer["errors"][0]["index"], 1);
    assert_eq!(answer["errors"][0]["field"], "RelatedEntityIdentifier");

    assert_eq!(moto.depth(&queues.work_url).await, 0, "nothing was queued");
    assert_eq!(emulator.state().requests, 0);
}

#[tokio::test]
async fn a_queue_that_cannot_take_the_requests_is_503() {
    let emulator = emulator().await;
    let moto = Moto::start().await;
    let runtime = RuntimeApi::start().await;
    let missing_queue = format!("{}/123456789012/no-such-queue", moto.endpoint);
    let _function = Function::start_webhook(
        &runtime,
        &env(&emulator, &moto, &[("WEBHOOK_SECRET", WEBHOOK_SECRET.into()), ("WORK_QUEUE_URL", missing_queue)]),
    );
    let body = request("Sandbox", "O2000004", "Solutions", "S-2000004").to_string();
    let response = runtime.invoke(signed(&body), TIMEOUT).await.expect("a response");
    assert_eq!(response["statusCode"], 503);
    assert_eq!(response["headers"]["retry-after"], "10");
}

/// A Function URL request is never accepted without a secret: the webhook function does not start
/// without one, and the worker, which takes no Function URL request, refuses it as an unsupported
/// event, queues nothing and calls nothing.
#[tokio::test]
async fn without_a_secret_a_function_url_request_is_never_accepted() {
    let emulator = emulator().await;
    let moto = Moto::start().await;
    let queues = moto.queues("unconfigured", false, 3, 30).await;
    let runtime = RuntimeApi::start().await;
    let mut webhook =
        Function::start_webhook(&runtime, &env(&emulator, &moto, &[("WORK_QUEUE_URL", queues.work_url.clone())]));
    let output = webhook.init_failure().await;
    assert!(output.contains("WEBHOOK_SECRET_ARN"), "init names the setting: {output}");

    let worker_runtime = RuntimeApi::start().await;
    let _worker = Function::start(
        &worker_runtime,
        &env(
            &emulator,
            &moto,
            &[
                ("WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
                ("WORK_QUEUE_URL", queues.work_url.clone()),
                ("DEAD_LETTER_QUEUE_URL", queues.dlq_url.clone()),
            ],
        ),
    );
    let body = request("Sandbox", "O2000004", "Solutions", "S-2000004").to_string();
    let error = worker_runtime.invoke(signed(&body), TIMEOUT).await.expect_err("a function error");
    assert_eq!(error["errorType"], "UnsupportedEvent", "{error}");
    assert_eq!(moto.depth(&queues.work_url).await, 0);
    assert!(moto.drain(&queues.dlq_url).await.is_empty());
    assert_eq!(emulator.state().requests, 0);
}

#[tokio::test]
async fn the_secret_is_read_from_secrets_manager_once_at_init() {
    let emulator = emulator().await;
    let moto = Moto::start().await;
    let queues = moto.queues("secret", false, 3, 30).await;
    let secrets = moto.secrets_manager();
    let generated = "Jx8vQ2mN7pR4tW9yB3cF6hK1";
    let arn = secrets
        .create_secret()
        .name("opportunity-disassociator-test-webhook")
        .secret_string(generated)
        .send()
        .await
        .expect("create the secret")
        .arn
        .unwrap();
    let runtime = RuntimeApi::start().await;
    let mut function = Function::start_webhook(
        &runtime,
        &env(&emulator, &moto, &[("WEBHOOK_SECRET_ARN", arn.clone()), ("WORK_QUEUE_URL", queues.work_url.clone())]),
    );
    let body = request("Sandbox", "O2000004", "Solutions", "S-2000004").to_string();
    let (status, _) = http(runtime.invoke(signed_webhook(&body, now_secs(), generated), TIMEOUT).await);
    assert_eq!(status, 202);

    // Read once: a rotation in Secrets Manager reaches new instances only.
    let rotated = "a-rotated-secret-value-0000";
    secrets.put_secret_value().secret_id(&arn).secret_string(rotated).send().await.unwrap();
    let (status, _) = http(runtime.invoke(signed_webhook(&body, now_secs(), generated), TIMEOUT).await);
    assert_eq!(status, 202);
    let (status, _) = http(runtime.invoke(signed_webhook(&body, now_secs(), rotated), TIMEOUT).await);
    assert_eq!(status, 401, "this instance read the secret before the rotation");
    assert_eq!(moto.depth(&queues.work_url).await, 2);

    // A new instance takes both values (AWSCURRENT and AWSPREVIOUS), so the CRM can switch to the new
    // one once the instances are new, without a gap; any other key is still refused.
    let runtime2 = RuntimeApi::start().await;
    let mut function2 = Function::start_webhook(
        &runtime2,
        &env(&emulator, &moto, &[("WEBHOOK_SECRET_ARN", arn.clone()), ("WORK_QUEUE_URL", queues.work_url.clone())]),
    );
    for key in [rotated, generated] {
        let (status, _) = http(runtime2.invoke(signed_webhook(&body, now_secs(), key), TIMEOUT).await);
        assert_eq!(status, 202, "signed with {key}");
    }
    let (status, _) =
        http(runtime2.invoke(signed_webhook(&body, now_secs(), "some-other-secret-value-0"), TIMEOUT).await);
    assert_eq!(status, 401);
    assert_eq!(moto.depth(&queues.work_url).await, 4);

    for line in function.all_lines().await.into_iter().chain(function2.all_lines().await) {
        assert!(!line.contains(generated) && !line.contains(rotated), "the webhook secret in the logs: {line}");
    }
}

#[tokio::test]
async fn a_secret_that_cannot_be_read_fails_init_naming_the_setting() {
    let emulator = emulator().await;
    let moto = Moto::start().await;
    let runtime = RuntimeApi::start().await;
    let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:no-such-secret-AbCdEf";
    let mut function = Function::start_webhook(
        &runtime,
        &env(
            &emulator,
            &moto,
            &[("WEBHOOK_SECRET_ARN", arn.into()), ("WORK_QUEUE_URL", format!("{}/123456789012/work", moto.endpoint))],
        ),
    );
    let output = function.init_failure().await;
    assert!(output.contains("WEBHOOK_SECRET_ARN"), "{output}");
}

#[tokio::test]
async fn a_fifo_work_queue_gets_a_group_per_opportunity_and_deduplicates_retries() {
    let moto = Moto::start().await;
    let queues = moto.queues("webhook-fifo", true, 3, 30).await;
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url(&moto.endpoint)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "test"))
        .load()
        .await;
    let queue = SqsWorkQueue::new(&sdk, queues.work_url.clone());
    let requests: Vec<DisassociationRequest> = [("O2000004", "S-2000004"), ("O2000005", "S-2000005")]
        .iter()
        .map(|(o, s)| DisassociationRequest::from_document(&request("Sandbox", o, "Solutions", s)).unwrap())
        .collect();
    let ids = queue.send_batch(&requests).await.expect("queued");
    assert_eq!(ids.len(), 2);
    // A CRM retry of the same requests within SQS's deduplication window queues nothing new.
    queue.send_batch(&requests).await.expect("queued again");
    let messages = moto.drain(&queues.work_url).await;
    let mut groups: Vec<String> = messages
        .iter()
        .map(|m| m.attributes().unwrap()[&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId].clone())
        .collect();
    groups.sort();
    assert_eq!(groups, ["O2000004", "O2000005"]);
    let body: Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(body["Catalog"], "Sandbox");
}

/// A replacement sent to the webhook reaches the worker with its `ReplaceWith`, through the queue.
#[tokio::test]
async fn a_replacement_sent_to_the_webhook_is_carried_through_the_queue_and_made() {
    let emulator = emulator().await;
    let moto = Moto::start().await;
    let queues = moto.queues("webhook-replacement", false, 3, 30).await;
    let Stack { runtime, webhook: _webhook, worker_runtime, worker: _worker } = stack(&emulator, &moto, &queues).await;
    let marketplace = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-abc";
    let body = fixtures::replacing(
        request("Sandbox", "O2000007", "Solutions", "S-2000007"),
        "AwsMarketplaceSolutions",
        marketplace,
    );
    let (status, answer) = http(runtime.invoke(signed(&body.to_string()), TIMEOUT).await);
    assert_eq!(status, 202, "{answer}");

    let pass = pump_once(&moto, &queues, &worker_runtime, 10, TIMEOUT).await;
    assert_eq!((pass.received, pass.failed), (1, 0));
    let state = emulator.state();
    let held = &state.opportunity("Sandbox", "O2000007").expect("seeded").related_entity_identifiers;
    assert!(held.solutions.is_empty());
    assert_eq!(held.aws_marketplace_solutions, [marketplace]);
    assert_eq!(state.operation("AssociateOpportunity").successes, 1);
    assert!(moto.drain(&queues.dlq_url).await.is_empty());
}
