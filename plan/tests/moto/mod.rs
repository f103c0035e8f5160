//! moto's server as the SQS API (started as the root package's tests start it), stopped when dropped.

#[path = "../../../tests/common/moto_server.rs"]
mod moto_server;

pub struct Moto {
    _child: tokio::process::Child,
    pub endpoint: String,
    pub sqs: aws_sdk_sqs::Client,
}

impl Moto {
    pub async fn start() -> Self {
        let (child, endpoint, sqs) = moto_server::start("test", "test").await;
        Self { _child: child, endpoint, sqs }
    }

    pub async fn receive(&self, url: &str, max: i32) -> Vec<aws_sdk_sqs::types::Message> {
        let answer = self.sqs.receive_message().queue_url(url).max_number_of_messages(max).send().await;
        answer.expect("receive").messages.unwrap_or_default()
    }
}
