//! `marketplace-solutions` as a person runs it, against the Partner Central emulator holding a
//! generated account of 1,000 opportunities (reads scaled to 100/s, the scan at half of it): the plan
//! holds exactly the replacements the seed implies, no read is throttled, a scan killed halfway reads
//! at most one page's worth of opportunities again, and `send` followed by the worker leaves no legacy solution that had a
//! counterpart on an opportunity the plan covers.

mod moto;

use std::cell::Cell;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_partnercentralselling::config::{Credentials, Region, SharedCredentialsProvider};
use lambda_runtime::{Context, LambdaEvent};
use moto::Moto;
use opportunity_disassociator::aws::dead_letters::SqsDeadLetters;
use opportunity_disassociator::aws::partner_central::{ApiError, ErrorClass, SdkPartnerCentral, ThrottleCount};
use opportunity_disassociator::config::WorkerConfig;
use opportunity_disassociator::domain::opportunity::Holdings;
use opportunity_disassociator::domain::request::{Catalog, OpportunityId};
use opportunity_disassociator::pacing::Pacer;
use opportunity_disassociator::worker::Worker;
use opportunity_disassociator::worker::inbound::Payload;
use opportunity_disassociator_plan::scan::{Listed, Page, Progress, Reads, Scan, SdkReads, Settings, Solution};
use partner_central_emulator::{
    Emulator, EmulatorConfig, LifeCycleChange, QuotaConfig, ReviewStatus, RunningEmulator, Seed, Stage,
    TokenBucketConfig,
};
use serde_json::{Value, json};

const OPPORTUNITIES: usize = 1000;
const PAGE: usize = 100;
/// The emulator's read quota (the service's, as the emulator models it) scaled up tenfold so the
/// test is quick, and the scan at half of it, as its default is half the service's.
const SCALE: f64 = 10.0;
const READS_PER_SECOND: &str = "50";

/// (opportunity, legacy solution, counterpart) of every replacement.
type Replacement = (String, String, String);

/// What reading every opportunity of the seed implies, computed from the seed alone: each legacy
/// solution with a counterpart, on each opportunity neither Closed Lost nor Rejected.
fn implied(seed: &Seed) -> BTreeSet<Replacement> {
    let mut replacements = BTreeSet::new();
    for opportunity in &seed.opportunities {
        let life_cycle = &opportunity.life_cycle;
        if life_cycle.stage == Stage::ClosedLost || life_cycle.review_status == ReviewStatus::Rejected {
            continue;
        }
        for legacy in &opportunity.related_entity_identifiers.solutions {
            let solution = seed.solutions.iter().find(|s| &s.id == legacy).expect("the seed lists its solutions");
            if let Some(arn) = &solution.aws_marketplace_solution_arn {
                replacements.insert((opportunity.id.clone(), legacy.clone(), arn.clone()));
            }
        }
    }
    replacements
}

fn planned(plan: &Path) -> Vec<Replacement> {
    let text = std::fs::read_to_string(plan).expect("the plan is written");
    text.lines()
        .map(|line| {
            let doc: Value = serde_json::from_str(line).unwrap();
            let field = |v: &Value| v.as_str().unwrap().to_owned();
            assert_eq!((&doc["Catalog"], &doc["RelatedEntityType"]), (&json!("Sandbox"), &json!("Solutions")));
            assert_eq!(doc["ReplaceWith"]["RelatedEntityType"], "AwsMarketplaceSolutions");
            (
                field(&doc["OpportunityIdentifier"]),
                field(&doc["RelatedEntityIdentifier"]),
                field(&doc["ReplaceWith"]["RelatedEntityIdentifier"]),
            )
        })
        .collect()
}

fn scan(emulator: &RunningEmulator, plan: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_opportunity-disassociator-plan"));
    command
        .args(["marketplace-solutions", "--catalog", "Sandbox", "--out", plan.to_str().unwrap()])
        .args(["--reads-per-second", READS_PER_SECOND])
        .env("AWS_ENDPOINT_URL_PARTNERCENTRAL_SELLING", emulator.endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Opportunities the state records as read (0 while there is no state).
fn read_so_far(state: &Path) -> u64 {
    std::fs::read_to_string(state)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|state| state["read"].as_u64())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_migration_is_planned_exactly_resumed_after_a_kill_and_carried_out_by_the_worker() {
    let seed = Seed::generate(OPPORTUNITIES, 29);
    let expected = implied(&seed);
    let read = QuotaConfig::default().read.map(|bucket| TokenBucketConfig { rate: bucket.rate * SCALE, ..bucket });
    let quotas = QuotaConfig { read, write: None };
    let config = EmulatorConfig { seed: seed.clone(), quotas, ..EmulatorConfig::default() };
    let emulator = Emulator::start(config).await.expect("the emulator starts");
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.jsonl");
    let state = dir.path().join("plan.jsonl.scan-state.json");

    // A scan killed (SIGKILL) halfway: once it has listed every page and saved half its reads.
    let read_once = seed
        .opportunities
        .iter()
        .filter(|o| o.life_cycle.stage != Stage::ClosedLost && o.life_cycle.review_status != ReviewStatus::Rejected)
        .count() as u64;
    let mut first = scan(&emulator, &plan).spawn().unwrap();
    let started = Instant::now();
    while read_so_far(&state) < read_once / 2 {
        assert!(started.elapsed() < Duration::from_secs(120), "the scan read no half within 120 s");
        assert!(first.try_wait().unwrap().is_none(), "the scan ended before it was killed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().await.unwrap();
    assert!(!plan.exists(), "no plan from a scan killed halfway");

    let second = scan(&emulator, &plan).output().await.unwrap();
    let report = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{report}");
    assert!(!state.exists(), "the state of a finished scan is removed");
    assert!(!dir.path().join("plan.jsonl.scan-state.json.journal").exists(), "and its journal");

    let got = planned(&plan);
    assert_eq!(got.len(), expected.len(), "one request per replacement, none twice\n{report}");
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), expected, "{report}");

    // Every read of both runs, counted by the emulator: none throttled, the listing (done before the
    // kill) not read again, at most one page's worth of opportunities read twice.
    let reads = emulator.state();
    for operation in ["ListSolutions", "ListOpportunities", "GetOpportunity"] {
        assert_eq!(reads.operation(operation).throttled, 0, "{operation} throttled\n{report}");
    }
    assert_eq!(reads.operation("ListSolutions").calls, 1, "the mapping is read once");
    let pages = (OPPORTUNITIES / PAGE) as u64;
    let list_calls = reads.operation("ListOpportunities").calls;
    assert_eq!(list_calls, pages, "ListOpportunities called {list_calls} times");
    let get_calls = reads.operation("GetOpportunity").calls;
    assert!(
        (read_once..=read_once + PAGE as u64).contains(&get_calls),
        "GetOpportunity called {get_calls} times for {read_once} opportunities to read"
    );
    assert!(report.contains("0 throttled"), "{report}");

    // The worker's own reads are paced by no one but the SDK's retries: out of the scan's way, no quota.
    emulator.set_quotas(QuotaConfig { read: None, write: None }).unwrap();

    // The plan onto moto's SQS, then the worker: the reviews ended (as AWS would end them), every
    // batch of the queue delivered to the worker as Lambda's event source mapping does.
    let moto = Moto::start().await;
    let queue = moto.sqs.create_queue().queue_name("marketplace-solutions").send().await.unwrap();
    let queue_url = queue.queue_url().unwrap().to_owned();
    let send = tokio::process::Command::new(env!("CARGO_BIN_EXE_opportunity-disassociator-plan"))
        .args(["send", plan.to_str().unwrap(), "--queue-url", &queue_url])
        .env("AWS_ENDPOINT_URL_SQS", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "eu-west-1")
        .output()
        .await
        .unwrap();
    assert!(send.status.success(), "{}", String::from_utf8_lossy(&send.stderr));
    for opportunity in &seed.opportunities {
        if matches!(opportunity.life_cycle.review_status, ReviewStatus::Submitted | ReviewStatus::InReview) {
            let approved =
                LifeCycleChange { review_status: Some(ReviewStatus::Approved), ..LifeCycleChange::default() };
            emulator.set_life_cycle("Sandbox", &opportunity.id, approved).unwrap();
        }
    }
    let worker = worker(&emulator).await;
    let arn = "arn:aws:sqs:eu-west-1:123456789012:marketplace-solutions";
    let mut delivered = 0;
    loop {
        let messages = moto.receive(&queue_url, 10).await;
        if messages.is_empty() {
            break;
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                    "attributes": {}, "messageAttributes": {}, "md5OfBody": m.md5_of_body(),
                    "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": "eu-west-1"})
            })
            .collect();
        let payload: Payload = serde_json::from_value(json!({ "Records": records })).unwrap();
        let mut context = Context::default();
        context.request_id = format!("batch-{delivered}");
        context.deadline = now_ms() + 60_000;
        let answer = worker.handle(LambdaEvent::new(payload, context)).await.expect("the worker answers");
        assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
        for m in &messages {
            moto.sqs
                .delete_message()
                .queue_url(&queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        delivered += messages.len();
    }
    assert_eq!(delivered, expected.len());

    let after = emulator.state();
    let counterpart = |legacy: &str| {
        seed.solutions.iter().find(|s| s.id == legacy).and_then(|s| s.aws_marketplace_solution_arn.clone())
    };
    for opportunity in &seed.opportunities {
        let now = after.opportunity("Sandbox", &opportunity.id).unwrap();
        let left_out = opportunity.life_cycle.stage == Stage::ClosedLost
            || opportunity.life_cycle.review_status == ReviewStatus::Rejected;
        if left_out {
            assert_eq!(now.related_entity_identifiers, opportunity.related_entity_identifiers, "{}", opportunity.id);
            continue;
        }
        let replaced: Vec<_> = expected.iter().filter(|(o, _, _)| *o == opportunity.id).collect();
        for legacy in &now.related_entity_identifiers.solutions {
            assert!(counterpart(legacy).is_none(), "{} keeps {legacy}, which has a counterpart", opportunity.id);
        }
        for (_, _, arn) in replaced {
            assert!(
                now.related_entity_identifiers.aws_marketplace_solutions.contains(arn),
                "{} lacks {arn}",
                opportunity.id
            );
        }
    }
}

/// The SDK's settings of the stack, against the emulator with test credentials.
async fn sdk(emulator: &RunningEmulator, lookup: impl Fn(&str) -> Option<String>, attempts: u32) -> SdkConfig {
    let credentials = Credentials::new("test", "test", None, None, "test");
    opportunity_disassociator::aws::sdk_config(lookup, attempts)
        .await
        .into_builder()
        .endpoint_url(emulator.endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build()
}

/// The worker as the stack runs it, but for the Lambda runtime around it: its settings from the
/// same names, the SDK against the emulator, writes paced well above the test's needs.
async fn worker(emulator: &RunningEmulator) -> Worker<SdkPartnerCentral, SqsDeadLetters> {
    let lookup = |name: &str| match name {
        "ALLOWED_CATALOGS" => Some("Sandbox".to_owned()),
        "PARTNER_CENTRAL_WRITES_PER_SECOND" | "ACCOUNT_WRITES_PER_SECOND" => Some("500".to_owned()),
        _ => None,
    };
    let config = WorkerConfig::from_lookup(lookup).expect("the worker's settings");
    let sdk = sdk(emulator, lookup, config.max_attempts).await;
    let throttles = Arc::new(ThrottleCount::default());
    let partner_central = SdkPartnerCentral::new(&sdk, &config, throttles.clone());
    let pacer = Arc::new(Pacer::local(config.writes_per_second));
    Worker::new(config, partner_central, None, pacer, throttles)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The scan's reads over the SDK, but for the third page of opportunities, refused for good: a scan
/// that stops while listing, the emulator's own `NextToken` saved.
struct StoppedOnThirdPage {
    sdk: SdkReads,
    pages: Cell<u32>,
}

impl Reads for StoppedOnThirdPage {
    async fn solutions(&self, catalog: Catalog, token: Option<&str>) -> Result<Page<Solution>, ApiError> {
        self.sdk.solutions(catalog, token).await
    }

    async fn opportunities(&self, catalog: Catalog, token: Option<&str>) -> Result<Page<Listed>, ApiError> {
        self.pages.set(self.pages.get() + 1);
        if self.pages.get() == 3 {
            let message = "the test stops the scan here".to_owned();
            return Err(ApiError {
                code: "AccessDeniedException".into(),
                message,
                request_id: None,
                class: ErrorClass::Permanent,
            });
        }
        self.sdk.opportunities(catalog, token).await
    }

    async fn opportunity(&self, catalog: Catalog, id: &OpportunityId) -> Result<Option<Holdings>, ApiError> {
        self.sdk.opportunity(catalog, id).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_token_the_service_refuses_is_listed_again_from_the_first_page() {
    let seed = Seed::generate(350, 29);
    let expected = implied(&seed);
    let config = EmulatorConfig {
        seed: seed.clone(),
        quotas: QuotaConfig { read: None, write: None },
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(config).await.expect("the emulator starts");
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.jsonl");
    let state = dir.path().join("plan.jsonl.scan-state.json");

    let reads = StoppedOnThirdPage { sdk: SdkReads::new(&sdk(&emulator, |_| None, 1).await), pages: Cell::new(0) };
    let settings = Settings { catalog: Catalog::Sandbox, include_closed: false };
    let mut stopped = Scan::open(reads, settings, 1000.0, state.clone()).unwrap();
    stopped.run(&mut Progress::Silent, &mut Vec::new()).await.expect_err("stopped on the third page");
    // The emulator's token, corrupted: the service refuses an expired one the same way.
    let mut saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let token = saved["opportunities"]["next_token"].as_str().expect("a token saved").to_owned();
    saved["opportunities"]["next_token"] = json!(format!("{token}0"));
    std::fs::write(&state, saved.to_string()).unwrap();

    let resumed = scan(&emulator, &plan).output().await.unwrap();
    let report = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{report}");
    assert!(report.contains("ListOpportunities failed after 1 attempt(s): ValidationException"), "{report}");
    assert!(
        report.contains("the NextToken saved is refused: listing again from the first page, skipping the 200 opportunities listed already"),
        "{report}"
    );
    let got = planned(&plan);
    assert_eq!(got.len(), expected.len(), "one request per replacement, none twice\n{report}");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), expected, "{report}");
    // Two pages, the refused token, then the four pages from the first.
    assert_eq!(emulator.state().operation("ListOpportunities").calls, 2 + 1 + 4);
}
