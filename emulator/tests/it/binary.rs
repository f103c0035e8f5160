//! The `partner-central-emulator` binary: one stdout line, serves, stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{control, signed_call};

#[tokio::test]
async fn binary_prints_endpoint_serves_and_stops_on_sigterm() {
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/seed.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_partner-central-emulator"))
        .args(["--port", "0", "--seed", seed, "--write-rate", "0", "--write-burst", "1", "--rng-seed", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("line");
    let endpoint = line
        .trim_end()
        .strip_prefix("partner-central-emulator listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");

    assert_eq!(control(&endpoint, "GET", "/_emulator/health", "").await.status, 200);
    let body = r#"{"Catalog":"Sandbox","OpportunityIdentifier":"O2000001","RelatedEntityType":"Solutions","RelatedEntityIdentifier":"S-2000001"}"#;
    assert_eq!(signed_call(&endpoint, "DisassociateOpportunity", body).await.status, 200);
    // --write-rate 0 --write-burst 1: the second write is throttled.
    let r = signed_call(&endpoint, "AssociateOpportunity", body).await;
    r.assert_aws_error(429, "ThrottlingException");
    let state = control(&endpoint, "GET", "/_emulator/state", "").await.json();
    assert_eq!(state["Disassociations"][0]["Count"], 1);
    assert_eq!(state["Operations"]["AssociateOpportunity"]["QuotaThrottled"], 1);

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let mut exited = None;
    for _ in 0..100 {
        if let Some(s) = child.try_wait().expect("wait") {
            exited = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some(exit) = exited else {
        let _ = child.kill();
        panic!("the emulator did not stop on SIGTERM");
    };
    assert!(exit.success(), "{exit:?}");
    let mut log = String::new();
    if let Some(stderr) = child.stderr.take() {
        use std::io::Read;
        let _ = BufReader::new(stderr).read_to_string(&mut log);
    }
    assert!(log.contains("DisassociateOpportunity -> 200 -"), "{log}");
    assert!(log.contains("AssociateOpportunity -> 429 ThrottlingException"), "{log}");
}

#[test]
fn binary_rejects_bad_arguments() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_partner-central-emulator")).args(["--drop-rate", "3"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DropRate"));
    let out = Command::new(env!("CARGO_BIN_EXE_partner-central-emulator"))
        .args(["--already-associated", "maybe"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--already-associated"));
    let out = Command::new(env!("CARGO_BIN_EXE_partner-central-emulator")).arg("--help").output().expect("run");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--slow-ms") && help.contains("--already-associated success|conflict"), "{help}");
}

#[test]
fn binary_refuses_a_seed_over_a_limit() {
    let path = std::env::temp_dir().join(format!("emulator-seed-over-limit-{}.json", std::process::id()));
    let seed = r#"{"Opportunities":[{"Catalog":"Sandbox","Id":"O1","RelatedEntityIdentifiers":{
        "AwsMarketplaceOffers":["arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-1"],
        "AwsMarketplaceOfferSets":["arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/OfferSet/offerset-1"]}}]}"#;
    std::fs::write(&path, seed).expect("write the seed");
    let out =
        Command::new(env!("CARGO_BIN_EXE_partner-central-emulator")).arg("--seed").arg(&path).output().expect("run");
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "it must not start listening");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Sandbox/O1") && stderr.contains("at most 1 AWS Marketplace offer or offer set"),
        "{stderr}"
    );
}
