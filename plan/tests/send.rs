//! `send` as a person runs it, against moto's SQS: every request on the queue once, a kill halfway
//! and a rerun included; the retention's bound; a dry run; a trickle.

mod moto;

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use moto::Moto;
use opportunity_disassociator::aws::work_queue::message_body;
use opportunity_disassociator::domain::request::DisassociationRequest;

/// A plan of `count` removals, one a line, as `from-csv` writes them (the message bodies).
fn write_plan(dir: &Path, count: usize) -> (PathBuf, Vec<String>) {
    let lines: Vec<String> = (1..=count)
        .map(|i| {
            let doc = serde_json::json!({"Catalog": "Sandbox", "OpportunityIdentifier": format!("O{i}"),
                "RelatedEntityType": "Solutions", "RelatedEntityIdentifier": format!("S-{i}")});
            message_body(&DisassociationRequest::from_document(&doc).unwrap())
        })
        .collect();
    let path = dir.join("plan.jsonl");
    std::fs::write(&path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    (path, lines)
}

fn command(moto: &Moto, plan: &Path, queue_url: &str, extra: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_opportunity-disassociator-plan"));
    command
        .args(["send", plan.to_str().unwrap(), "--queue-url", queue_url])
        .args(extra)
        .env("AWS_ENDPOINT_URL_SQS", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "eu-west-1")
        .env_remove("PLAN_TEST_ABORT_AFTER_BATCHES")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

async fn send(moto: &Moto, plan: &Path, queue_url: &str, extra: &[&str]) -> (Output, String) {
    let output = command(moto, plan, queue_url, extra).output().await.expect("run send");
    let report = String::from_utf8(output.stderr.clone()).unwrap();
    (output, report)
}

async fn queue(moto: &Moto, name: &str, retention_seconds: u32) -> String {
    let created = moto
        .sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::MessageRetentionPeriod, retention_seconds.to_string())
        .attributes(QueueAttributeName::VisibilityTimeout, "600")
        .send()
        .await
        .expect("create the queue");
    created.queue_url.unwrap()
}

/// Receives and deletes everything the queue holds now: each body with the times it came.
async fn drain(moto: &Moto, url: &str, bodies: &mut HashMap<String, usize>) {
    loop {
        let messages = moto.receive(url, 10).await;
        if messages.is_empty() {
            return;
        }
        for message in messages {
            *bodies.entry(message.body().unwrap().to_owned()).or_default() += 1;
            moto.sqs
                .delete_message()
                .queue_url(url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_queued_once_even_when_the_sender_is_killed_halfway_and_run_again() {
    let moto = Moto::start().await;
    let url = queue(&moto, "bulk", 4 * 86_400).await;
    let dir = tempfile::tempdir().unwrap();
    let (plan, lines) = write_plan(dir.path(), 253);

    let killed = command(&moto, &plan, &url, &[]).env("PLAN_TEST_ABORT_AFTER_BATCHES", "12").output().await.unwrap();
    assert_eq!(killed.status.signal(), Some(6), "ended abruptly (SIGABRT): {killed:?}");

    let (output, report) = send(&moto, &plan, &url, &[]).await;
    assert_eq!(output.status.code(), Some(0), "{report}");
    assert!(report.contains("120 already sent"), "{report}");
    assert!(report.contains("133 requests sent in 14 batches"), "{report}");

    let (output, report) = send(&moto, &plan, &url, &[]).await;
    assert_eq!(output.status.code(), Some(0), "{report}");
    assert!(report.contains("253 already sent"), "a third run sends nothing: {report}");

    let mut bodies = HashMap::new();
    drain(&moto, &url, &mut bodies).await;
    let expected: HashMap<String, usize> = lines.into_iter().map(|l| (l, 1)).collect();
    assert_eq!(bodies, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_larger_than_the_stack_can_carry_out_before_the_retention_is_refused_and_a_dry_run_sends_nothing() {
    let moto = Moto::start().await;
    // A minute's retention at 14,400 writes a day: room for 10 writes.
    let url = queue(&moto, "short", 60).await;
    let dir = tempfile::tempdir().unwrap();
    let (plan, lines) = write_plan(dir.path(), 11);

    let (output, report) = send(&moto, &plan, &url, &["--writes-per-day", "14400"]).await;
    assert_eq!(output.status.code(), Some(2), "{report}");
    assert!(report.contains("refused: 11 writes are more than the 10"), "{report}");

    let (output, report) = send(&moto, &plan, &url, &["--dry-run", "--writes-per-day", "15840"]).await;
    assert_eq!(output.status.code(), Some(0), "{report}");
    let printed: Vec<String> = String::from_utf8(output.stdout).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(printed, lines, "what would be sent, on standard output");

    let mut bodies = HashMap::new();
    drain(&moto, &url, &mut bodies).await;
    assert!(bodies.is_empty(), "nothing sent: {bodies:?}");
    assert!(!dir.path().join("plan.jsonl.sent").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickle_sends_the_rest_as_the_stack_takes_messages_off_the_queue() {
    let moto = Moto::start().await;
    let url = queue(&moto, "trickle", 60).await;
    let dir = tempfile::tempdir().unwrap();
    let (plan, lines) = write_plan(dir.path(), 25);
    let mut sender = command(&moto, &plan, &url, &["--writes-per-day", "14400", "--trickle", "--trickle-every", "0.2"])
        .spawn()
        .unwrap();

    // The stack's part, played here: take what is queued off the queue until the sender is done.
    let mut bodies = HashMap::new();
    let finished = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            drain(&moto, &url, &mut bodies).await;
            if let Some(status) = sender.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the trickle ends once the plan is sent");
    drain(&moto, &url, &mut bodies).await;
    let mut report = String::new();
    tokio::io::AsyncReadExt::read_to_string(sender.stderr.as_mut().unwrap(), &mut report).await.unwrap();
    assert_eq!(finished.code(), Some(0), "{report}");
    assert!(report.contains("trickle: 10 sent, 15 to go"), "{report}");
    let expected: HashMap<String, usize> = lines.into_iter().map(|l| (l, 1)).collect();
    assert_eq!(bodies, expected);
}
