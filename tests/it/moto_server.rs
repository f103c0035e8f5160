//! Starting moto's server as the SQS API, for the root package's tests (through `tests/it/common.rs`) and
//! the plan package's (by path). Its path comes from `MOTO_SERVER` (the Makefile sets it to the
//! venv's), or the checkout's `.venv/bin/moto_server`.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Starts moto's server on a free loopback port and waits until it listens: the process (stopped when
/// dropped), its endpoint, and an SQS client on it with the given credentials.
pub async fn start(access_key: &str, secret_key: &str) -> (Child, String, aws_sdk_sqs::Client) {
    // The checkout's venv, from the root package or the plan package beneath it.
    let path = std::env::var("MOTO_SERVER").unwrap_or_else(|_| {
        let venv = |root: &str| format!("{root}/.venv/bin/moto_server");
        let root = env!("CARGO_MANIFEST_DIR");
        [venv(root), venv(&format!("{root}/.."))]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or(venv(root))
    });
    assert!(
        std::path::Path::new(&path).exists(),
        "moto's server is not at {path}: run the tests with `make test` (it installs the pinned tools), or set MOTO_SERVER"
    );
    // Through tools/moto_server.py, run by the venv's Python beside moto_server: it serializes writes
    // to a DynamoDB item, as DynamoDB does and moto does not. Included, since the plan package compiles
    // this file from its own directory.
    let python = std::path::Path::new(&path).with_file_name("python");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(&python)
        .args(["-c", include_str!("../../tools/moto_server.py"), "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start moto_server");
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "moto_server did not start within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("eu-west-1"))
        .endpoint_url(&endpoint)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(access_key, secret_key, None, None, "test"))
        .build();
    (child, endpoint, aws_sdk_sqs::Client::from_conf(config))
}
