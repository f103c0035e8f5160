//! The AWS CLI against the emulator: `aws partnercentral-selling list-solutions` and
//! `list-opportunities` with `--endpoint-url`, its own paging included. The CLI is the pinned one
//! of the tool venv: `AWS_CLI` (which the Makefile sets), or the checkout's `.venv/bin/aws`; without
//! either the test fails, naming `make venv`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::start;

/// The CLI to run: `AWS_CLI`, or the venv's of the checkout (from the emulator package or the
/// checkout beneath it), as `tests/it/moto_server.rs` finds moto. Never an `aws` found on PATH: it
/// may be a shim of a version manager with no CLI behind it, or another version.
fn aws_cli() -> PathBuf {
    let path = std::env::var_os("AWS_CLI").map(PathBuf::from).unwrap_or_else(|| {
        let venv = |root: &Path| root.join(".venv/bin/aws");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        [venv(root), venv(&root.join(".."))].into_iter().find(|p| p.is_file()).unwrap_or_else(|| venv(&root.join("..")))
    });
    assert!(
        path.is_file(),
        "the AWS CLI is not at {}: run `make venv` (it installs the pinned tools in .venv/), or set AWS_CLI",
        path.display()
    );
    path
}

/// Runs `aws partnercentral-selling ARGS --endpoint-url ENDPOINT --output json` with test
/// credentials and nothing from the user's AWS configuration; its JSON output.
async fn aws(cli: &PathBuf, endpoint: &str, args: &[&str]) -> Value {
    let mut command = Command::new(cli);
    command.arg("partnercentral-selling").args(args).args(["--endpoint-url", endpoint, "--output", "json"]);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            command.env_remove(key);
        }
    }
    command.envs([
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    // Blocking, off the runtime's thread: the emulator answers on it meanwhile.
    let output = tokio::task::spawn_blocking(move || command.output()).await.expect("task").expect("the CLI runs");
    assert!(output.status.success(), "aws {args:?}: {}\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

fn ids(page: &Value, member: &str) -> Vec<String> {
    page[member]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["Id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_aws_cli_lists_solutions_and_opportunities() {
    let cli = aws_cli();
    let emulator = start().await;
    let ep = emulator.endpoint();

    // Pages of 4, followed by the CLI itself: every Sandbox solution, newest identifier first,
    // with its Marketplace counterpart (a botocore without that member would drop it).
    let solutions = aws(&cli, &ep, &["list-solutions", "--catalog", "Sandbox", "--page-size", "4"]).await;
    let expected: Vec<String> =
        emulator.state().solutions.iter().filter(|s| s.catalog == "Sandbox").map(|s| s.id.clone()).rev().collect();
    assert_eq!(ids(&solutions, "SolutionSummaries"), expected);
    let legacy = solutions["SolutionSummaries"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["Id"] == "S-4000001"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        legacy["AwsMarketplaceSolutionArn"],
        "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-abc"
    );
    assert_eq!(emulator.state().operation("ListSolutions").successes, expected.len().div_ceil(4) as u64);

    let filtered = aws(
        &cli,
        &ep,
        &[
            "list-solutions",
            "--catalog",
            "Sandbox",
            "--status",
            "Inactive",
            "--sort",
            "SortBy=Identifier,SortOrder=ASCENDING",
        ],
    )
    .await;
    assert_eq!(ids(&filtered, "SolutionSummaries"), ["S-2000005", "S-3000004"]);

    let under_review = aws(
        &cli,
        &ep,
        &[
            "list-opportunities",
            "--catalog",
            "Sandbox",
            "--life-cycle-review-status",
            "In review",
            "Submitted",
            "--sort",
            "SortBy=Identifier,SortOrder=ASCENDING",
        ],
    )
    .await;
    assert_eq!(ids(&under_review, "OpportunitySummaries"), ["O3000002", "O3000003"]);
    assert_eq!(under_review["OpportunitySummaries"][1]["LifeCycle"]["ReviewStatus"], "In review");

    let first = aws(&cli, &ep, &["list-opportunities", "--catalog", "Sandbox", "--max-items", "3"]).await;
    assert_eq!(ids(&first, "OpportunitySummaries").len(), 3);
    let token = first["NextToken"].as_str().expect("the CLI's token").to_owned();
    let rest = aws(&cli, &ep, &["list-opportunities", "--catalog", "Sandbox", "--starting-token", &token]).await;
    let mut all = ids(&first, "OpportunitySummaries");
    all.extend(ids(&rest, "OpportunitySummaries"));
    let mut expected: Vec<String> =
        emulator.state().opportunities.iter().filter(|o| o.catalog == "Sandbox").map(|o| o.id.clone()).collect();
    all.sort();
    expected.sort();
    assert_eq!(all, expected);
    emulator.shutdown().await;
}
