//! moto's server as the SQS API, started from `MOTO_SERVER` (the Makefile sets it to the venv's), and
//! stopped when dropped.

use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use tokio::process::{Child, Command};

pub struct Moto {
    _child: Child,
    pub endpoint: String,
    pub sqs: aws_sdk_sqs::Client,
}

impl Moto {
    pub async fn start() -> Self {
        let path = std::env::var("MOTO_SERVER")
            .expect("MOTO_SERVER names moto's server (make test sets it; tools/venv.sh installs it)");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&path)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {path}: {e}"));
        let up = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(up.elapsed() < Duration::from_secs(60), "moto's server did not listen within 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let endpoint = format!("http://127.0.0.1:{port}");
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .endpoint_url(&endpoint)
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .build();
        Self { _child: child, endpoint, sqs: aws_sdk_sqs::Client::from_conf(config) }
    }

    pub async fn receive(&self, url: &str, max: i32) -> Vec<aws_sdk_sqs::types::Message> {
        let answer = self.sqs.receive_message().queue_url(url).max_number_of_messages(max).send().await;
        answer.expect("receive").messages.unwrap_or_default()
    }
}
