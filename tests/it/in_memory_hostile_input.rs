//! Properties over hostile input (proptest, stable): arbitrary JSON and arbitrary strings in the
//! four members, alone, as EventBridge details and as SQS bodies.
//!
//! - `classify` never panics, whatever the event;
//! - a document decodes if and only if it satisfies every rule of the service model, checked here
//!   independently with anchored regular expressions written from the model;
//! - the worker, driven with a fake Partner Central, never sends a request that breaks a rule, and
//!   sends every one that keeps them.
//!
//! The fuzz target (fuzz/, nightly) covers arbitrary bytes; these run in `cargo test`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::fakes::{FakeDeadLetters, FakeService};
use fixtures::{eventbridge, sqs_event};
use lambda_runtime::{Context, LambdaEvent};
use opportunity_disassociator::aws::partner_central::ThrottleCount;
use opportunity_disassociator::config::WorkerConfig;
use opportunity_disassociator::domain::request::{Catalog, DisassociationRequest, OpportunityId, RelatedEntity};
use opportunity_disassociator::pacing::Pacer;
use opportunity_disassociator::worker::Worker;
use opportunity_disassociator::worker::inbound::Payload;
use opportunity_disassociator::worker::inbound::{Inbound, classify as classify_payload};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use regex::Regex;
use serde_json::{Map, Value, json};

const MEMBERS: [&str; 4] = ["Catalog", "OpportunityIdentifier", "RelatedEntityType", "RelatedEntityIdentifier"];
const ENTITY_TYPES: [&str; 6] = [
    "Solutions",
    "AwsProducts",
    "AwsMarketplaceOffers",
    "AwsMarketplaceOfferSets",
    "AwsMarketplaceSolutions",
    "AwsMarketplaceProducts",
];

// ------------------------------------------------------------------ the rules, independently

/// ECMAScript's `.` (the model's patterns are ECMAScript): anything but a line terminator.
const DOT: &str = r"[^\n\r\u{2028}\u{2029}]";

static RULES: LazyLock<HashMap<&'static str, Regex>> = LazyLock::new(|| {
    let marketplace = r"arn:aws:aws-marketplace:[a-z]{1,2}-[a-z]*-[0-9]+:[0-9]{12}:AWSMarketplace";
    [
        ("Catalog", r"AWS|Sandbox".to_owned()),
        ("OpportunityIdentifier", r"O[0-9]{1,19}".to_owned()),
        ("RelatedEntityType", ENTITY_TYPES.join("|")),
        ("Solutions", r"S-[0-9]{1,19}".to_owned()),
        ("AwsProducts", r"(?s).*".to_owned()),
        ("AwsMarketplaceOffers", format!("{marketplace}/Offer/{DOT}*")),
        ("AwsMarketplaceOfferSets", format!("{marketplace}/OfferSet/offerset-{DOT}*")),
        ("AwsMarketplaceSolutions", format!("arn:{DOT}*")),
        ("AwsMarketplaceProducts", format!("arn:{DOT}*")),
    ]
    .into_iter()
    .map(|(name, pattern)| (name, Regex::new(&format!(r"\A(?:{pattern})\z")).unwrap()))
    .collect()
});

/// The first rule the four values break, or `None` when the request is valid.
fn broken_rule(catalog: &str, opportunity: &str, entity_type: &str, identifier: &str) -> Option<String> {
    for (member, value) in
        [("Catalog", catalog), ("OpportunityIdentifier", opportunity), ("RelatedEntityType", entity_type)]
    {
        if !RULES[member].is_match(value) {
            return Some(format!("{member} {value:?}"));
        }
    }
    if !(1..=255).contains(&identifier.chars().count()) {
        return Some(format!("RelatedEntityIdentifier length {}", identifier.chars().count()));
    }
    if !RULES[entity_type].is_match(identifier) {
        return Some(format!("RelatedEntityIdentifier {identifier:?} for {entity_type}"));
    }
    None
}

/// The four members of a document when each is a string and together they keep every rule.
fn valid_members(doc: &Value) -> Option<[String; 4]> {
    let values = MEMBERS.map(|m| doc.get(m).and_then(Value::as_str).map(str::to_owned));
    let [Some(c), Some(o), Some(t), Some(i)] = values else { return None };
    broken_rule(&c, &o, &t, &i).is_none().then_some([c, o, t, i])
}

fn members_of(request: &DisassociationRequest) -> [String; 4] {
    members(request.catalog, &request.opportunity, &request.entity)
}

fn members(catalog: Catalog, opportunity: &OpportunityId, entity: &RelatedEntity) -> [String; 4] {
    [
        catalog.as_str().to_owned(),
        opportunity.as_str().to_owned(),
        entity.entity_type().as_str().to_owned(),
        entity.identifier().to_owned(),
    ]
}

fn classify(event: &Value) -> Inbound {
    classify_payload(&Payload::from(event))
}

// ------------------------------------------------------------------ strategies

fn s(pattern: &str) -> BoxedStrategy<String> {
    proptest::string::string_regex(pattern).unwrap().boxed()
}

/// A line of ECMAScript `.`: no line terminator.
const LINE: &str = r"[^\n\r\x{2028}\x{2029}]";
const MARKETPLACE: &str = "arn:aws:aws-marketplace:[a-z]{1,2}-[a-z]{0,6}-[0-9]{1,3}:[0-9]{12}:AWSMarketplace";

/// A valid identifier for each entity type.
fn valid_identifier(entity_type: &str) -> BoxedStrategy<String> {
    match entity_type {
        "Solutions" => s("S-[0-9]{1,19}"),
        "AwsProducts" => s("(?s).{1,80}"),
        "AwsMarketplaceOffers" => s(&format!("{MARKETPLACE}/Offer/{LINE}{{0,30}}")),
        "AwsMarketplaceOfferSets" => s(&format!("{MARKETPLACE}/OfferSet/offerset-{LINE}{{0,30}}")),
        _ => s(&format!("arn:{LINE}{{0,60}}")),
    }
}

/// Identifiers that are nearly valid for some type, or valid for another.
fn near_identifier() -> BoxedStrategy<String> {
    let region = "[a-z]{1,3}-[a-z0-9]{0,6}-[0-9a-z]{0,3}";
    prop_oneof![
        s("S-?[0-9]{0,21}"),
        s(&format!(
            "arn:aws:aws-marketplace:{region}:[0-9]{{11,13}}:AWSMarketplace/(Offer|OfferSet)/(offerset-)?.{{0,30}}"
        )),
        s("(arn|ARN|urn):.{0,40}"),
        s("(?s).{250,260}"),
    ]
    .boxed()
}

/// A valid string made invalid, or not: one character inserted, removed, replaced or appended.
fn mutated(valid: BoxedStrategy<String>) -> BoxedStrategy<String> {
    (valid, any::<prop::sample::Index>(), any::<char>(), 0..4u8)
        .prop_map(|(s, at, c, op)| {
            let mut chars: Vec<char> = s.chars().collect();
            let i = if chars.is_empty() { 0 } else { at.index(chars.len()) };
            match op {
                0 => chars.insert(i, c),
                1 if !chars.is_empty() => {
                    chars.remove(i);
                }
                2 if !chars.is_empty() => chars[i] = c,
                _ => chars.push(c),
            }
            chars.into_iter().collect()
        })
        .boxed()
}

/// What a member becomes when it is broken: nearly valid, any string at all, a string that tricks,
/// a huge one, or no string: missing, null or any other JSON.
fn broken(near: BoxedStrategy<String>) -> BoxedStrategy<Option<Value>> {
    let special = prop::sample::select(vec![
        "",
        " ",
        "\0",
        "\n",
        "\u{2028}",
        "\u{feff}",
        "O١٢٣",
        "ＡＷＳ",
        "null",
        "Solutions ",
        "S-1\n",
        "arn:\r",
    ])
    .prop_map(str::to_owned);
    let huge = (1usize..400, any::<char>()).prop_map(|(n, c)| std::iter::repeat_n(c, n).collect::<String>());
    let string = prop_oneof![4 => mutated(near.clone()), 2 => near, 2 => any::<String>(), 1 => special, 1 => huge];
    prop_oneof![
        8 => string.prop_map(|s| Some(Value::String(s))),
        1 => Just(None),
        1 => Just(Some(Value::Null)),
        1 => arb_json().prop_map(Some),
    ]
    .boxed()
}

/// A member: valid three times in four, else broken.
fn member(valid: BoxedStrategy<String>, near: BoxedStrategy<String>) -> BoxedStrategy<Option<Value>> {
    prop_oneof![3 => valid.prop_map(|s| Some(Value::String(s))), 1 => broken(near)].boxed()
}

/// A request document: a valid one with each member perhaps broken, and perhaps extra members.
fn document() -> BoxedStrategy<Value> {
    prop::sample::select(ENTITY_TYPES.to_vec())
        .prop_flat_map(|entity_type| {
            // Another type (its identifier then rarely fits), or a near miss of one.
            let types = prop_oneof![
                prop::sample::select(ENTITY_TYPES.to_vec()).prop_map(str::to_owned),
                s("(?i)(solutions|awsproducts)|AwsMarketplaceOffer|AwsProduct|Solutions "),
            ]
            .boxed();
            (
                member(s("AWS|Sandbox"), s("(?i)(aws|sandbox)|AWS |Sandbox.")),
                member(s("O[0-9]{1,19}"), s("[Oo0]?[0-9]{0,21}")),
                member(Just(entity_type.to_owned()).boxed(), types),
                member(valid_identifier(entity_type), near_identifier()),
                prop::collection::btree_map(".{0,12}", arb_json(), 0..3),
            )
        })
        .prop_map(|(catalog, opportunity, entity_type, identifier, extra)| {
            let mut map: Map<String, Value> = extra.into_iter().collect();
            for (name, value) in MEMBERS.iter().zip([catalog, opportunity, entity_type, identifier]) {
                match value {
                    Some(value) => map.insert((*name).to_owned(), value),
                    None => map.remove(*name),
                };
            }
            Value::Object(map)
        })
        .boxed()
}

/// Any JSON at all, with the keys the function looks for appearing often.
fn arb_json() -> BoxedStrategy<Value> {
    let keys = prop_oneof![
        prop::sample::select(vec![
            "Records",
            "body",
            "messageId",
            "eventSource",
            "eventSourceARN",
            "attributes",
            "MessageGroupId",
            "detail",
            "detail-type",
            "source",
            "id",
            "version",
            "requestContext",
            "http",
            "method",
            "Catalog",
            "OpportunityIdentifier",
            "RelatedEntityType",
            "RelatedEntityIdentifier",
        ])
        .prop_map(str::to_owned),
        ".{0,8}",
    ]
    .boxed();
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
        prop::sample::select(vec!["aws:sqs", "aws:s3", "2.0", "POST", "Sandbox", "Solutions", "{}", "[]", "x.fifo"])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

fn sqs_record(i: usize, body: String) -> Value {
    fixtures::sqs_record(&format!("m{i}"), &body)
}

/// An event carrying documents, as each trigger carries them; with the documents it carries.
fn event() -> BoxedStrategy<(Value, Vec<Value>)> {
    let body_form = prop_oneof![Just(0u8), Just(1u8), Just(2u8)];
    prop_oneof![
        document().prop_map(|d| (d.clone(), vec![d])),
        document().prop_map(|d| (eventbridge(d.clone()), vec![d])),
        prop::collection::vec((document(), body_form), 1..10).prop_map(|docs| {
            let records = docs
                .iter()
                .enumerate()
                .map(|(i, (d, form))| match form {
                    0 => sqs_record(i, d.to_string()),
                    1 => sqs_record(i, eventbridge(d.clone()).to_string()),
                    // A body cut short: never a request.
                    _ => {
                        let text = d.to_string();
                        sqs_record(i, text.chars().take(text.chars().count() / 2).collect())
                    }
                })
                .collect::<Vec<_>>();
            let carried = docs.into_iter().filter(|(_, form)| *form < 2).map(|(d, _)| d).collect();
            (sqs_event(records), carried)
        }),
    ]
    .boxed()
}

/// Every request an inbound event decoded to.
fn decoded(inbound: Inbound) -> Vec<DisassociationRequest> {
    match inbound {
        Inbound::Sqs(batch) => batch.records.into_iter().filter_map(|r| r.request.ok()).collect(),
        Inbound::EventBridge(record) | Inbound::Direct(record) => record.request.into_iter().collect(),
        _ => Vec::new(),
    }
}

// ------------------------------------------------------------------ classify and decode

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn classify_never_panics_on_any_json(event in arb_json()) {
        let _ = classify(&event);
        let _ = classify(&json!({ "Records": [event.clone()] }));
        let _ = classify(&eventbridge(event));
    }

    #[test]
    fn a_document_decodes_exactly_when_it_keeps_every_rule(doc in document()) {
        let expected = valid_members(&doc);
        match DisassociationRequest::from_document(&doc) {
            Ok(request) => {
                let members = members_of(&request);
                prop_assert!(expected.is_some(), "decoded, but breaks a rule: {:?}", broken_rule(&members[0], &members[1], &members[2], &members[3]));
                prop_assert_eq!(Some(members), expected);
            }
            Err(invalid) => {
                prop_assert!(expected.is_none(), "valid, but refused: {invalid}");
                prop_assert!(!invalid.errors.is_empty());
                // Every error names a member, and stays short whatever the input's size.
                for error in &invalid.errors {
                    prop_assert!(MEMBERS.contains(&error.field) || error.field == "request", "{}", error.field);
                }
                prop_assert!(invalid.to_string().chars().count() < 2_000);
            }
        }
    }

    #[test]
    fn every_request_any_trigger_decodes_keeps_every_rule((event, carried) in event()) {
        let requests = decoded(classify(&event));
        let valid: Vec<[String; 4]> = carried.iter().filter_map(valid_members).collect();
        let mut got: Vec<[String; 4]> = requests.iter().map(members_of).collect();
        for m in &got {
            prop_assert_eq!(broken_rule(&m[0], &m[1], &m[2], &m[3]), None);
        }
        let mut want = valid;
        got.sort();
        want.sort();
        prop_assert_eq!(got, want);
    }
}

// ------------------------------------------------------------------ through the worker

/// The worker over the fake service, which answers every disassociation with success and records
/// what it was sent, and a dead-letter queue that keeps its letters.
fn worker(service: Arc<FakeService>, queue: Arc<FakeDeadLetters>) -> Worker<Arc<FakeService>, Arc<FakeDeadLetters>> {
    let settings: HashMap<&str, &str> =
        [("ALLOWED_CATALOGS", "AWS,Sandbox"), ("PARTNER_CENTRAL_WRITES_PER_SECOND", "1000")].into();
    let config = WorkerConfig::from_lookup(|name| settings.get(name).map(|v| v.to_string())).unwrap();
    let pacer = Arc::new(Pacer::local(config.writes_per_second));
    Worker::new(config, service, Some(queue), pacer, Arc::new(ThrottleCount::default()))
}

fn lambda_event(payload: Value) -> LambdaEvent<Payload> {
    let mut context = Context::default();
    context.request_id = "lambda-req-1".into();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    context.deadline = now + 60_000;
    LambdaEvent::new(Payload::from(&payload), context)
}

#[test]
fn the_worker_sends_every_valid_request_and_nothing_else() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut runner = TestRunner::new(ProptestConfig { cases: 256, ..ProptestConfig::default() });
    runner
        .run(&event(), |(event, carried)| {
            let service = FakeService::with(&[]);
            let queue = Arc::new(FakeDeadLetters::default());
            let worker = worker(service.clone(), queue.clone());
            let sqs = event.get("Records").is_some();
            let answer = runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(30), worker.handle(lambda_event(event.clone()))).await
            });
            let answer = answer.map_err(|_| TestCaseError::fail("the worker did not answer within 30 s"))?;
            let mut sent = service.sent();
            for m in &sent {
                prop_assert_eq!(
                    broken_rule(&m[0], &m[1], &m[2], &m[3]),
                    None,
                    "an invalid request reached the API client"
                );
            }
            let mut valid: Vec<[String; 4]> = carried.iter().filter_map(valid_members).collect();
            sent.sort();
            valid.sort();
            prop_assert_eq!(&sent, &valid, "every valid request is sent once");
            if sqs {
                // A batch is always answered, and only with the records that failed: here, none.
                let answer = answer.map_err(|e| TestCaseError::fail(format!("the batch failed as a whole: {e}")))?;
                prop_assert_eq!(&answer["batchItemFailures"], &json!([]));
                let records = event["Records"].as_array().map_or(0, Vec::len);
                prop_assert_eq!(
                    queue.letters.lock().unwrap().len(),
                    records - sent.len(),
                    "every invalid record is dead-lettered"
                );
            }
            Ok(())
        })
        .unwrap();
}

/// The properties above mean something only if the documents are often valid and often not.
#[test]
fn the_generated_documents_are_both_valid_and_invalid() {
    let mut runner = TestRunner::deterministic();
    let strategy = document();
    let (mut valid, total) = (0, 2_000);
    for _ in 0..total {
        let doc = strategy.new_tree(&mut runner).unwrap().current();
        valid += usize::from(valid_members(&doc).is_some());
    }
    assert!(valid > total / 20 && valid < total * 9 / 10, "{valid} of {total} generated documents are valid");
}

#[test]
fn the_independent_rules_agree_with_known_examples() {
    let offer = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-abc123";
    assert_eq!(broken_rule("Sandbox", "O1234567", "Solutions", "S-0000001"), None);
    assert_eq!(broken_rule("AWS", "O1", "AwsMarketplaceOffers", offer), None);
    assert_eq!(broken_rule("Sandbox", "O1", "AwsProducts", "any\nthing"), None);
    assert!(broken_rule("sandbox", "O1", "Solutions", "S-1").is_some());
    assert!(broken_rule("Sandbox", "O12345678901234567890", "Solutions", "S-1").is_some());
    assert!(broken_rule("Sandbox", "O1", "Solutions", "S-1\n").is_some());
    assert!(broken_rule("Sandbox", "O1", "AwsMarketplaceOfferSets", offer).is_some());
    assert!(broken_rule("Sandbox", "O1", "AwsMarketplaceProducts", "arn:x\u{2028}").is_some());
    assert!(broken_rule("Sandbox", "O1", "AwsProducts", &"p".repeat(256)).is_some());
    assert!(broken_rule("Sandbox", "O1", "AwsProducts", "").is_some());
}
