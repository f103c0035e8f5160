//! `from-csv` as a person runs it: the binary, a spreadsheet's export, the plan and the report.

use std::path::Path;
use std::process::{Command, Output};

use opportunity_disassociator::domain::request::DisassociationRequest;

const HEADER: &str = "Catalog,OpportunityIdentifier,RelatedEntityType,RelatedEntityIdentifier,ReplaceWith.RelatedEntityType,ReplaceWith.RelatedEntityIdentifier,Note";

/// A spreadsheet's export of `rows` rows: a byte-order mark, CRLF, every third identifier an AWS
/// product code quoted with a comma and quotes in it, every fifth row a replacement, a note column
/// with commas and a line break.
fn export(rows: usize) -> (String, Vec<serde_json::Value>) {
    let mut text = format!("\u{feff}{HEADER}\r\n");
    let mut documents = Vec::new();
    for i in 1..=rows {
        let opportunity = format!("O{}", 1_000_000 + i);
        let mut doc = serde_json::json!({"Catalog": "Sandbox", "OpportunityIdentifier": opportunity});
        let (kind, identifier, cell) = if i % 3 == 0 {
            let code = format!("Amazon \"EC2\", tier {i}");
            ("AwsProducts", code.clone(), format!("\"{}\"", code.replace('"', "\"\"")))
        } else {
            ("Solutions", format!("S-{i}"), format!("S-{i}"))
        };
        doc["RelatedEntityType"] = kind.into();
        doc["RelatedEntityIdentifier"] = identifier.into();
        let replacement = if i % 5 == 0 {
            let arn = format!("arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-{i}");
            doc["ReplaceWith"] =
                serde_json::json!({"RelatedEntityType": "AwsMarketplaceSolutions", "RelatedEntityIdentifier": arn});
            format!("AwsMarketplaceSolutions,{arn}")
        } else {
            ",".to_owned()
        };
        text.push_str(&format!(
            "Sandbox,{opportunity},{kind},{cell},{replacement},\"row {i}, \"\"noted\"\"\nsecond line\"\r\n"
        ));
        documents.push(doc);
    }
    (text, documents)
}

fn plan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opportunity-disassociator-plan")).args(args).output().expect("run the binary")
}

fn from_csv(dir: &Path, text: &str, extra: &[&str]) -> (Output, String) {
    let csv = dir.join("export.csv");
    std::fs::write(&csv, text).unwrap();
    let out = dir.join("plan.jsonl");
    let mut args = vec!["from-csv", csv.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend(extra);
    let output = plan(&args);
    let report = String::from_utf8(output.stderr.clone()).unwrap();
    (output, report)
}

#[test]
fn ten_thousand_rows_become_exactly_their_ten_thousand_request_documents() {
    let dir = tempfile::tempdir().unwrap();
    let (text, documents) = export(10_000);
    let (output, report) = from_csv(dir.path(), &text, &[]);
    assert_eq!(output.status.code(), Some(0), "{report}");
    let planned = std::fs::read_to_string(dir.path().join("plan.jsonl")).unwrap();
    let lines: Vec<&str> = planned.lines().collect();
    assert_eq!(lines.len(), 10_000);
    for (line, expected) in lines.iter().zip(&documents) {
        let doc: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(&doc, expected);
        DisassociationRequest::from_document(&doc).expect("a request the worker takes");
    }
    assert!(report.contains("10000 rows, 0 with faults, 0 repeated; columns left out: Note"), "{report}");
    assert!(report.contains("10000 requests (8000 removals, 2000 replacements), 12000 writes"), "{report}");
}

#[test]
fn three_bad_rows_are_named_by_line_and_member_and_no_plan_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (text, _) = export(10_000);
    // Records end with CRLF (the note's line break inside is LF): row i is record i, and it starts on
    // line 2i, as each record spans two lines after the header's one.
    let mut rows: Vec<String> = text.split_inclusive("\r\n").map(str::to_owned).collect();
    let record = |row: usize| row;
    rows[record(10)] = rows[record(10)].replacen("Sandbox,", "Prod,", 1);
    rows[record(4_000)] = rows[record(4_000)].replacen(",O1004000,", ",Q1004000,", 1);
    rows[record(9_999)] = rows[record(9_999)].replacen("AwsProducts", "AwsProduct", 1);
    let (output, report) = from_csv(dir.path(), &rows.concat(), &[]);
    assert_eq!(output.status.code(), Some(1), "{report}");
    let csv = dir.path().join("export.csv");
    let faults: Vec<&str> = report.lines().filter(|l| l.starts_with(csv.to_str().unwrap())).collect();
    let expected = [
        format!("{}:20: Catalog must be AWS or Sandbox", csv.display()),
        format!("{}:8000: OpportunityIdentifier must be O followed by 1 to 19 digits", csv.display()),
        format!("{}:19998: RelatedEntityType must be one of", csv.display()),
    ];
    assert_eq!(faults.len(), 3, "{report}");
    for (fault, expected) in faults.iter().zip(&expected) {
        assert!(fault.starts_with(expected), "{fault} does not start with {expected}");
    }
    assert!(report.contains("no plan written"), "{report}");
    assert!(!dir.path().join("plan.jsonl").exists());

    let (output, report) = from_csv(dir.path(), &rows.concat(), &["--skip-bad-rows"]);
    assert_eq!(output.status.code(), Some(1), "faults are still faults: {report}");
    let planned = std::fs::read_to_string(dir.path().join("plan.jsonl")).unwrap();
    assert_eq!(planned.lines().count(), 9_997);
}

#[test]
fn a_file_in_another_encoding_is_refused_and_writes_no_plan() {
    let dir = tempfile::tempdir().unwrap();
    let (text, _) = export(3);
    let text = text.trim_start_matches('\u{feff}').replace("noted", "not\u{e9}");
    let latin1: Vec<u8> = text.chars().map(|c| c as u32 as u8).collect();
    let csv = dir.path().join("export.csv");
    std::fs::write(&csv, latin1).unwrap();
    let out = dir.path().join("plan.jsonl");
    let output = plan(&["from-csv", csv.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let report = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(report.contains("line 2, column Note: byte 0xE9 is not UTF-8"), "{report}");
    assert!(!out.exists());
}

#[test]
fn usage_errors_exit_with_2() {
    assert_eq!(plan(&["from-csv", "x.csv"]).status.code(), Some(2), "--out is required");
    assert_eq!(plan(&["send", "plan.jsonl"]).status.code(), Some(2), "--queue-url is required");
    let missing = plan(&["from-csv", "/nonexistent/x.csv", "--out", "-"]);
    assert_eq!(missing.status.code(), Some(2), "an I/O error");
}
