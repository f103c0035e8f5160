//! Replacements (`ReplaceWith`) end to end: the built function, run as Lambda runs it, against the
//! Partner Central emulator (its association limits, its last-solution rule, its answer to an entity
//! associated again) and moto's SQS for a redelivery.

use std::time::Duration;

use crate::common::{
    Function, Keys, Moto, RuntimeApi, emulator_config, function_env, pump_once, request, start_emulator,
};
use partner_central_emulator::{
    AlreadyAssociated, BehaviorConfig, EmulatorConfig, FaultConfig, QuotaConfig, RunningEmulator, TokenBucketConfig,
};
use serde_json::{Value, json};

const KEYS: Keys = Keys { access: "AKIDREPLACEMENTTEST", secret: "replacement-secret" };
const TIMEOUT: Duration = Duration::from_secs(60);

const MARKETPLACE_SOLUTION: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-abc";
const OFFER_OLD: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-def456";
const OFFER_NEW: &str = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-ghi789";

/// O5000001: approved, one legacy solution (it cannot lose its last solution). O5000002: one offer (it
/// cannot hold two). O5000003: approved, two legacy solutions, both to be replaced by one Marketplace
/// solution at once. O5000004: submitted (under AWS review), one legacy solution.
const SEED: &str = r#"{
  "Opportunities": [
    {"Catalog": "Sandbox", "Id": "O5000001", "LifeCycle": {"Stage": "Qualified", "ReviewStatus": "Approved"},
     "RelatedEntityIdentifiers": {"Solutions": ["S-5000001"]}},
    {"Catalog": "Sandbox", "Id": "O5000002", "RelatedEntityIdentifiers": {
        "AwsMarketplaceOffers": ["arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-def456"]}},
    {"Catalog": "Sandbox", "Id": "O5000003", "LifeCycle": {"Stage": "Qualified", "ReviewStatus": "Approved"},
     "RelatedEntityIdentifiers": {"Solutions": ["S-5000031", "S-5000032"]}},
    {"Catalog": "Sandbox", "Id": "O5000004", "LifeCycle": {"Stage": "Qualified", "ReviewStatus": "Submitted"},
     "RelatedEntityIdentifiers": {"Solutions": ["S-5000041"]}}
  ]
}"#;

async fn emulator(quotas: QuotaConfig, faults: FaultConfig, behavior: BehaviorConfig) -> RunningEmulator {
    start_emulator(EmulatorConfig { quotas, faults, behavior, ..emulator_config(SEED, &KEYS) }).await
}

/// The worker's environment: 20 writes/s unless `extra` says otherwise.
fn env(emulator: &RunningEmulator, moto: Option<&Moto>, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let base = [("PARTNER_CENTRAL_WRITES_PER_SECOND", "20"), ("PARTNER_CENTRAL_OPERATION_TIMEOUT_SECONDS", "10")];
    function_env(&KEYS, emulator, moto, &[&base[..], extra].concat())
}

fn replacing(opportunity: &str, old: (&str, &str), new: (&str, &str)) -> Value {
    fixtures::replacing(request("Sandbox", opportunity, old.0, old.1), new.0, new.1)
}

/// What the opportunity holds, as `(type, identifier)`, in the emulator's order.
fn held(emulator: &RunningEmulator, opportunity: &str) -> Vec<(&'static str, String)> {
    let state = emulator.state();
    let related = &state.opportunity("Sandbox", opportunity).expect("seeded").related_entity_identifiers;
    let lists = [
        ("Solutions", &related.solutions),
        ("AwsMarketplaceSolutions", &related.aws_marketplace_solutions),
        ("AwsMarketplaceOffers", &related.aws_marketplace_offers),
    ];
    lists.into_iter().flat_map(|(t, ids)| ids.iter().map(move |id| (t, id.clone()))).collect()
}

/// A metric summed over the function's EMF lines (it is ended first: see [`Function::all_lines`]).
async fn emf_total(function: &mut Function, metric: &str) -> u64 {
    let lines: Vec<Value> = function.all_lines().await.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    lines.iter().filter(|l| l.get("_aws").is_some()).filter_map(|l| l[metric].as_u64()).sum()
}

/// The last legacy solution of an approved opportunity: removed first, as a partner with two tools does
/// it, it is refused, and the reason says how to do it; replaced, the Marketplace solution is
/// associated first and the legacy one can go. Delivered again, nothing is written.
#[tokio::test]
async fn the_last_solution_is_replaced_in_the_documented_order_and_a_redelivery_writes_nothing() {
    let emulator = emulator(QuotaConfig::default(), FaultConfig::default(), BehaviorConfig::default()).await;
    let runtime = RuntimeApi::start().await;
    let mut function =
        Function::start(&runtime, &env(&emulator, None, &[("PARTNER_CENTRAL_WRITES_PER_SECOND", "0.9")]));

    let wrong_order = runtime.invoke(request("Sandbox", "O5000001", "Solutions", "S-5000001"), TIMEOUT).await;
    let error = wrong_order.expect_err("the last solution cannot go first");
    assert_eq!(error["errorType"], "ValidationException");
    let message = error["errorMessage"].as_str().unwrap();
    assert!(message.contains("S-5000001 is the last entity of type Solutions on the opportunity"), "{message}");
    assert!(message.contains("ReplaceWith"), "{message}");

    let doc = replacing("O5000001", ("Solutions", "S-5000001"), ("AwsMarketplaceSolutions", MARKETPLACE_SOLUTION));
    let answer = runtime.invoke(doc.clone(), TIMEOUT).await.expect("replaced");
    assert_eq!(answer["outcome"], "replaced");
    assert_eq!(held(&emulator, "O5000001"), [("AwsMarketplaceSolutions", MARKETPLACE_SOLUTION.to_owned())]);
    let state = emulator.state();
    let (associate, disassociate) =
        (state.operation("AssociateOpportunity"), state.operation("DisassociateOpportunity"));
    assert_eq!((associate.calls, associate.successes), (1, 1));
    assert_eq!((disassociate.calls, disassociate.successes), (2, 1), "the refused one, then the replacement's");
    assert_eq!(state.operation("DisassociateOpportunity").throttled, 0, "two writes, each in its paced slot");

    let again = runtime.invoke(doc, TIMEOUT).await.expect("already replaced");
    assert_eq!(again["outcome"], "already_replaced");
    let after = emulator.state();
    assert_eq!(after.operation("AssociateOpportunity").calls, 1, "no write on redelivery");
    assert_eq!(after.operation("DisassociateOpportunity").calls, 2, "no write on redelivery");
    assert_eq!(after.operation("GetOpportunity").calls, 3, "one read per replacement, one for the refusal");

    assert_eq!(emf_total(&mut function, "Replaced").await, 1);
    assert_eq!(emf_total(&mut function, "AlreadyReplaced").await, 1);
    assert_eq!(emf_total(&mut function, "Reads").await, 3);
}

/// Under AWS review the last solution is refused (`ACTION_NOT_PERMITTED`), and a replacement would be
/// refused too: the request must wait for the review (docs/holds.md). Without a work queue to hold it
/// in, the direct caller is told so; the reason names the review status and does not suggest
/// `ReplaceWith`.
#[tokio::test]
async fn the_last_solution_of_an_opportunity_under_review_waits_without_suggesting_a_replacement() {
    let emulator = emulator(QuotaConfig::default(), FaultConfig::default(), BehaviorConfig::default()).await;
    let runtime = RuntimeApi::start().await;
    let _function = Function::start(&runtime, &env(&emulator, None, &[]));

    let refused = runtime.invoke(request("Sandbox", "O5000004", "Solutions", "S-5000041"), TIMEOUT).await;
    let error = refused.expect_err("refused under review");
    assert_eq!(error["errorType"], "UnderReview");
    let message = error["errorMessage"].as_str().unwrap();
    assert!(message.contains("no WORK_QUEUE_URL to hold it in"), "{message}");
    assert!(!message.contains("ReplaceWith"), "{message}");
    assert!(message.contains("review status is Submitted"), "{message}");
    assert_eq!(held(&emulator, "O5000004"), [("Solutions", "S-5000041".to_owned())]);
}

/// An opportunity holds one offer at most: the old one goes first, then the new one is associated,
/// and the emulator never had to refuse an association for its limit.
#[tokio::test]
async fn an_offer_is_replaced_by_another_disassociating_first() {
    let emulator = emulator(QuotaConfig::unlimited(), FaultConfig::default(), BehaviorConfig::default()).await;
    let runtime = RuntimeApi::start().await;
    let _function = Function::start(&runtime, &env(&emulator, None, &[]));
    let doc = replacing("O5000002", ("AwsMarketplaceOffers", OFFER_OLD), ("AwsMarketplaceOffers", OFFER_NEW));
    let answer = runtime.invoke(doc, TIMEOUT).await.expect("replaced");
    assert_eq!(answer["outcome"], "replaced");
    assert_eq!(held(&emulator, "O5000002"), [("AwsMarketplaceOffers", OFFER_NEW.to_owned())]);
    let associate = emulator.state().operation("AssociateOpportunity");
    assert_eq!((associate.calls, associate.successes), (1, 1));
    assert!(associate.errors.is_empty(), "never refused for the one-offer limit: {:?}", associate.errors);
}

/// The quota lets the association through and throttles the disassociation: the message comes back
/// from the queue, the read shows the replacement on, and only the disassociation is made.
#[tokio::test]
async fn a_redelivery_finishes_a_replacement_cut_off_between_its_writes() {
    let one_write = QuotaConfig { write: Some(TokenBucketConfig { rate: 0.0, burst: 1.0 }), read: None };
    let emulator = emulator(one_write, FaultConfig::default(), BehaviorConfig::default()).await;
    let moto = Moto::start().await;
    let queues = moto.queues("replacement", false, 5, 30).await;
    let runtime = RuntimeApi::start().await;
    let mut function = Function::start(
        &runtime,
        &env(&emulator, Some(&moto), &[("AWS_MAX_ATTEMPTS", "1"), ("DEAD_LETTER_QUEUE_URL", &queues.dlq_url)]),
    );
    let doc = replacing("O5000001", ("Solutions", "S-5000001"), ("AwsMarketplaceSolutions", MARKETPLACE_SOLUTION));
    moto.send(&queues, "", &[doc.to_string()]).await;

    let first = pump_once(&moto, &queues, &runtime, 10, TIMEOUT).await;
    assert_eq!((first.received, first.failed), (1, 1), "throttled between its writes: retried");
    assert_eq!(
        held(&emulator, "O5000001"),
        [("Solutions", "S-5000001".to_owned()), ("AwsMarketplaceSolutions", MARKETPLACE_SOLUTION.to_owned())],
        "the replacement on, the old one still there"
    );

    emulator.set_quotas(QuotaConfig::unlimited()).unwrap();
    let second = pump_once(&moto, &queues, &runtime, 10, TIMEOUT).await;
    assert_eq!((second.received, second.failed), (1, 0));
    assert_eq!(held(&emulator, "O5000001"), [("AwsMarketplaceSolutions", MARKETPLACE_SOLUTION.to_owned())]);
    let state = emulator.state();
    assert_eq!(state.operation("AssociateOpportunity").calls, 1, "not associated again");
    assert_eq!(state.operation("DisassociateOpportunity").successes, 1);
    assert!(moto.drain(&queues.dlq_url).await.is_empty());
    assert_eq!(emf_total(&mut function, "Replaced").await, 1);
}

/// Two requests replace the two legacy solutions of one opportunity by the same Marketplace solution,
/// in one batch: both read it absent, so the second association finds it already there. With either
/// answer the emulator can give to that (success, or a conflict), the read settles it and both
/// replacements finish.
#[tokio::test]
async fn an_association_answered_already_there_by_success_or_conflict_is_settled_by_the_read() {
    for answer in [AlreadyAssociated::Success, AlreadyAssociated::Conflict] {
        // The added latency keeps both reads ahead of the first association.
        let faults = FaultConfig { latency_ms: 200, ..FaultConfig::default() };
        let emulator = emulator(
            QuotaConfig::unlimited(),
            faults,
            BehaviorConfig { already_associated: answer, ..BehaviorConfig::default() },
        )
        .await;
        let runtime = RuntimeApi::start().await;
        let _function = Function::start(&runtime, &env(&emulator, None, &[("PARTNER_CENTRAL_WRITES_PER_SECOND", "2")]));
        let records: Vec<Value> = ["S-5000031", "S-5000032"]
            .iter()
            .enumerate()
            .map(|(i, old)| {
                let body = replacing("O5000003", ("Solutions", old), ("AwsMarketplaceSolutions", MARKETPLACE_SOLUTION));
                fixtures::sqs_record(&format!("m{i}"), &body.to_string())
            })
            .collect();
        let batch = fixtures::sqs_event(records);
        let response = runtime.invoke(batch, TIMEOUT).await.expect("a batch response");
        assert_eq!(response["batchItemFailures"], json!([]), "{answer:?}");
        assert_eq!(held(&emulator, "O5000003"), [("AwsMarketplaceSolutions", MARKETPLACE_SOLUTION.to_owned())]);
        let associate = emulator.state().operation("AssociateOpportunity");
        assert_eq!(associate.calls, 2, "{answer:?}: both associated, the second finding it there");
        let conflicts = associate.errors.get("ConflictException").copied().unwrap_or(0);
        assert_eq!(conflicts, u64::from(answer == AlreadyAssociated::Conflict), "{answer:?}");
    }
}
