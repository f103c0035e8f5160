//! The malformed corpus (tests/malformed/, and a few huge events made here) delivered as raw bytes by
//! the Runtime API to the built function: each gets a clear error, nothing reaches Partner Central,
//! and the process lives on.
//!
//! Where the error comes from:
//! - not JSON (or not UTF-8, a lone surrogate escape, nesting beyond serde_json's 128 levels):
//!   `lambda_runtime` parses the payload before the handler runs, and answers the invocation with
//!   its own error (`errorType` `&lambda_runtime::deserializer::DeserializeError`, the parser's
//!   message with the member's path, line and column). It reads the first JSON value and ignores
//!   whatever follows (`{...} garbage` is taken as `{...}`). Lambda itself refuses a non-JSON `Invoke` payload, so only a
//!   hand-made Runtime API can deliver these; the process must survive them all the same.
//! - JSON that is no request: a function error naming the member and the rule (`ValidationError`)
//!   or the shape (`UnsupportedEvent`);
//! - an EventBridge event without a usable detail: dead-lettered with its reason, answered as handled;
//! - an SQS batch of bad records: each record dead-lettered with its reason, the batch answered.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{Function, Moto, RuntimeApi, request};
use partner_central_emulator::{Emulator, EmulatorConfig, QuotaConfig, RunningEmulator, Seed};
use serde_json::{Value, json};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/malformed");
const TIMEOUT: Duration = Duration::from_secs(60);
const RUNTIME_ERROR: &str = "&lambda_runtime::deserializer::DeserializeError";

/// What one malformed event must be answered with.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Not JSON: the runtime's own error, with the parser's message.
    NotJson(&'static str),
    /// A function error of this type whose message says this.
    Error(&'static str, &'static str),
    /// An EventBridge event: handled, dead-lettered with this code and a message saying this.
    DeadLettered(&'static str, &'static str),
    /// An SQS batch: answered without failures, with this many records dead-lettered as `ValidationError`.
    Batch(usize),
}

fn expectations() -> BTreeMap<&'static str, Expect> {
    use Expect::*;
    BTreeMap::from([
        ("not-json.txt", NotJson("expected ident")),
        ("truncated.json", NotJson("EOF while parsing a string")),
        // lambda_runtime reads the first JSON value and ignores what follows it.
        ("trailing-garbage.json", Error("ValidationError", "OpportunityIdentifier is required")),
        ("single-quotes.json", NotJson("key must be a string")),
        ("nan.json", NotJson("expected value")),
        ("empty.json", NotJson("EOF while parsing a value")),
        ("lone-high-surrogate.json", NotJson("unexpected end of hex escape")),
        ("lone-low-surrogate.json", NotJson("lone leading surrogate in hex escape")),
        ("nesting-beyond-limit.json", NotJson("recursion limit exceeded")),
        ("not-utf8.bin", NotJson("invalid unicode code point")),
        ("null.json", Error("ValidationError", "request must be a JSON object")),
        ("array.json", Error("ValidationError", "got an array")),
        ("number.json", Error("ValidationError", "got a number")),
        ("string.json", Error("ValidationError", "got a string")),
        ("empty-object.json", Error("ValidationError", "Catalog is required")),
        ("wrong-types.json", Error("ValidationError", "Catalog must be a string, got a number")),
        ("nulls.json", Error("ValidationError", "RelatedEntityIdentifier is required")),
        ("nul-escapes.json", Error("ValidationError", "Catalog must be AWS or Sandbox, got \"Sandbox\\0\"")),
        (
            "look-alike-values.json",
            Error("ValidationError", "OpportunityIdentifier must be O followed by 1 to 19 digits"),
        ),
        ("identifier-too-long.json", Error("ValidationError", "must be 1 to 255 characters, got 256")),
        ("nested-member.json", Error("ValidationError", "RelatedEntityIdentifier must be a string, got an array")),
        ("eventbridge-no-detail.json", DeadLettered("ValidationError", "has no detail")),
        ("eventbridge-null-detail.json", DeadLettered("ValidationError", "has no detail")),
        ("eventbridge-detail-as-string.json", DeadLettered("ValidationError", "got a string")),
        ("eventbridge-bad-detail.json", DeadLettered("ValidationError", "OpportunityIdentifier must be O")),
        ("sqs-records-not-an-array.json", Error("UnsupportedEvent", "Records must be an array")),
        ("sqs-records-null.json", Error("UnsupportedEvent", "Records must be an array")),
        ("sqs-other-event-source.json", Error("UnsupportedEvent", "eventSource \"aws:s3\"")),
        ("sns-event.json", Error("UnsupportedEvent", "no record with eventSource \"aws:sqs\"")),
        ("sqs-bad-records.json", Batch(12)),
    ])
}

/// Events too large to keep as files: four 1 MiB members, and an SQS record with a 200 kB body.
fn generated() -> Vec<(&'static str, Vec<u8>, Expect)> {
    let huge = "A".repeat(1 << 20);
    let four_huge = json!({"Catalog": huge, "OpportunityIdentifier": huge, "RelatedEntityType": huge, "RelatedEntityIdentifier": huge});
    let big_body = request("Sandbox", &format!("O{}", "9".repeat(200_000)), "Solutions", "S-1").to_string();
    let sqs = fixtures::sqs_event(vec![fixtures::without_attributes(fixtures::sqs_record("huge-body", &big_body))]);
    vec![
        (
            "generated: four 1 MiB members",
            four_huge.to_string().into_bytes(),
            Expect::Error("ValidationError", "(1048576 characters)"),
        ),
        ("generated: an SQS body of 200 kB", sqs.to_string().into_bytes(), Expect::Batch(1)),
    ]
}

fn attribute(message: &aws_sdk_sqs::types::Message, name: &str) -> Option<String> {
    message.message_attributes()?.get(name)?.string_value().map(str::to_owned)
}

async fn emulator() -> RunningEmulator {
    let seed = Seed::from_json(r#"{"Opportunities": [{"Catalog": "Sandbox", "Id": "O1", "RelatedEntityIdentifiers": {"Solutions": ["S-1"]}}]}"#)
        .expect("seed");
    Emulator::start(EmulatorConfig {
        seed,
        quotas: QuotaConfig::unlimited(),
        log_requests: false,
        ..Default::default()
    })
    .await
    .expect("start the emulator")
}

#[tokio::test]
async fn every_malformed_event_gets_a_clear_error_and_the_process_lives_on() {
    corpus_run(&[]).await;
}

/// At TRACE `lambda_runtime` would log each raw payload, and exit on one that is not UTF-8: the
/// logging filter keeps that line off, so the process lives on at every level.
#[tokio::test]
async fn the_process_lives_on_at_trace_level_too() {
    corpus_run(&[("AWS_LAMBDA_LOG_LEVEL", "TRACE")]).await;
}

async fn corpus_run(log_env: &[(&'static str, &str)]) {
    let mut cases: Vec<(String, Vec<u8>, Expect)> = Vec::new();
    let mut expected = expectations();
    let mut files: Vec<_> = std::fs::read_dir(CORPUS).expect("the malformed corpus").flatten().collect();
    files.sort_by_key(|f| f.file_name());
    for file in files {
        let name = file.file_name().to_string_lossy().into_owned();
        let expect =
            expected.remove(name.as_str()).unwrap_or_else(|| panic!("{name}: add its expectation to this test"));
        cases.push((name, std::fs::read(file.path()).unwrap(), expect));
    }
    assert!(expected.is_empty(), "expectations without a file: {:?}", expected.keys());
    cases.extend(generated().into_iter().map(|(name, bytes, expect)| (name.to_owned(), bytes, expect)));

    let emulator = emulator().await;
    let moto = Moto::start().await;
    let queues = moto.queues("malformed", false, 3, 30).await;
    let runtime = RuntimeApi::start().await;
    let mut function = Function::start(
        &runtime,
        &[
            ("AWS_ENDPOINT_URL_PARTNERCENTRAL_SELLING", emulator.endpoint()),
            ("AWS_ENDPOINT_URL_SQS", moto.endpoint.clone()),
            ("DEAD_LETTER_QUEUE_URL", queues.dlq_url.clone()),
            ("PARTNER_CENTRAL_WRITES_PER_SECOND", "100".into()),
        ]
        .into_iter()
        .chain(log_env.iter().map(|(k, v)| (*k, v.to_string())))
        .collect::<Vec<_>>(),
    );

    let mut problems = Vec::new();
    for (name, bytes, expect) in &cases {
        let answer = runtime.invoke_bytes(bytes.clone(), TIMEOUT).await;
        let letters = moto.drain(&queues.dlq_url).await;
        let problem = check(expect, &answer, &letters);
        if !function.is_running() {
            panic!("{name}: the function process died (answer {answer:?})");
        }
        if let Some(problem) = problem {
            problems.push(format!("{name}: {problem}\n  answer: {}", brief(&answer)));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(emulator.state().requests, 0, "no malformed event reached Partner Central");

    // Still alive and well: a valid request goes through.
    let valid = runtime.invoke(request("Sandbox", "O1", "Solutions", "S-1"), TIMEOUT).await;
    assert_eq!(valid.expect("success")["outcome"], "disassociated");
    let lines = function.all_lines().await;
    assert!(!lines.iter().any(|l| l.contains("panicked")), "a panic in the logs");
    // Error messages quote values briefly: no log line carries a huge value.
    let longest = lines.iter().map(String::len).max().unwrap_or(0);
    assert!(longest < 20_000, "a log line of {longest} bytes");
}

/// `None` when the answer (and the dead letters it sent) is what `expect` says.
fn check(expect: &Expect, answer: &Result<Value, Value>, letters: &[aws_sdk_sqs::types::Message]) -> Option<String> {
    let message_of = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_owned();
    match (*expect, answer) {
        (Expect::NotJson(says), Err(error)) => {
            let message = message_of(error, "errorMessage");
            (error["errorType"] != RUNTIME_ERROR || !message.contains(says) || !letters.is_empty())
                .then(|| format!("expected the runtime's {RUNTIME_ERROR} saying {says:?}"))
        }
        (Expect::Error(code, says), Err(error)) => {
            let message = message_of(error, "errorMessage");
            (error["errorType"] != code || !message.contains(says) || message.len() > 2_000 || !letters.is_empty())
                .then(|| format!("expected a short {code} error saying {says:?}, and no dead letter"))
        }
        (Expect::DeadLettered(code, says), Ok(handled)) => {
            let ok = handled["outcome"] == "dead_lettered"
                && handled["errorCode"] == code
                && message_of(handled, "errorMessage").contains(says)
                && letters.len() == 1
                && attribute(&letters[0], "ErrorCode").as_deref() == Some(code)
                && attribute(&letters[0], "ErrorMessage").is_some_and(|m| m.contains(says));
            (!ok).then(|| {
                format!("expected it handled and dead-lettered as {code} saying {says:?}; letters {letters:?}")
            })
        }
        (Expect::Batch(count), Ok(response)) => {
            let clean = response["batchItemFailures"] == json!([]);
            let reasons: Vec<(Option<String>, Option<String>)> =
                letters.iter().map(|l| (attribute(l, "ErrorCode"), attribute(l, "ErrorMessage"))).collect();
            let ok = clean
                && letters.len() == count
                && reasons.iter().all(|(code, message)| {
                    code.as_deref() == Some("ValidationError") && message.as_ref().is_some_and(|m| !m.is_empty())
                });
            (!ok)
                .then(|| format!("expected no batch failure and {count} ValidationError dead letters; got {reasons:?}"))
        }
        (expect, _) => Some(format!("expected {expect:?}")),
    }
}

fn brief(answer: &Result<Value, Value>) -> String {
    let text = format!("{answer:?}");
    if text.len() > 400 {
        format!("{}...", &text[..text.char_indices().nth(400).map_or(text.len(), |(i, _)| i)])
    } else {
        text
    }
}
