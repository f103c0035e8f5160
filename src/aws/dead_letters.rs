//! The dead-letter queue: where a request that can never succeed goes at once, with its reason, so
//! it is not retried in vain.
//!
//! The body is the original one, unchanged, so a redrive puts back exactly what came in. The reason
//! travels in message attributes named as Lambda's own dead-letter messages name them (`ErrorCode`,
//! `ErrorMessage`, `RequestID`), so one runbook reads both.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;
use aws_smithy_types::timeout::TimeoutConfig;

use crate::domain::outcome::Failure;

/// What to send to the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter<'a> {
    /// The original body, unchanged.
    pub body: &'a str,
    pub failure: &'a Failure,
    /// The Lambda request id of the invocation that gave up on it.
    pub lambda_request_id: &'a str,
    /// The SQS message id or EventBridge event id it came with.
    pub source_id: Option<&'a str>,
    /// The FIFO message group it came from, if any.
    pub message_group: Option<&'a str>,
}

/// The port: sends one dead letter.
pub trait DeadLetters: Send + Sync {
    fn send(&self, letter: DeadLetter<'_>) -> impl Future<Output = Result<(), String>> + Send;
}

impl<T: DeadLetters> DeadLetters for std::sync::Arc<T> {
    fn send(&self, letter: DeadLetter<'_>) -> impl Future<Output = Result<(), String>> + Send {
        (**self).send(letter)
    }
}

/// Attribute values are kept short: an attribute counts against the 256 KiB message size.
const MAX_ATTRIBUTE_CHARS: usize = 1024;

/// The adapter over SQS.
///
/// Its client is built at the first dead letter, not at init: most execution environments never send
/// one, and building it shows in the cold start (bench/README.md).
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    sdk: SdkConfig,
    client: OnceLock<Client>,
    queue_url: String,
}

impl SqsDeadLetters {
    pub fn new(sdk: &SdkConfig, queue_url: String) -> Self {
        Self { sdk: sdk.clone(), client: OnceLock::new(), queue_url }
    }

    fn client(&self) -> &Client {
        self.client.get_or_init(|| {
            // The invocation's end of dead letters bounds each send; these bound it when there is none
            // (`cargo lambda watch`), so that a queue which takes the connection and never answers
            // cannot hold a record for ever. SendMessage answers in milliseconds.
            let timeouts = TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(5))
                .build();
            Client::from_conf(aws_sdk_sqs::config::Builder::from(&self.sdk).timeout_config(timeouts).build())
        })
    }
}

impl DeadLetters for SqsDeadLetters {
    async fn send(&self, letter: DeadLetter<'_>) -> Result<(), String> {
        let mut message = self
            .client()
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(letter.body)
            .message_attributes("ErrorCode", string_attribute(&letter.failure.code)?)
            .message_attributes("ErrorMessage", string_attribute(&letter.failure.message)?)
            .message_attributes("RequestID", string_attribute(letter.lambda_request_id)?);
        if let Some(id) = &letter.failure.request_id {
            message = message.message_attributes("ServiceRequestID", string_attribute(id)?);
        }
        if let Some(id) = letter.source_id {
            message = message.message_attributes("SourceID", string_attribute(id)?);
        }
        if super::is_fifo(&self.queue_url) {
            // A FIFO source's dead-letter queue is FIFO too: keep the group, and let a redelivered
            // message dead-letter only once.
            message = message
                .message_group_id(letter.message_group.unwrap_or("dead-letters"))
                .message_deduplication_id(dedup_id(letter.source_id.unwrap_or(letter.body)));
        }
        message.send().await.map(|_| ()).map_err(|e| {
            let detail = aws_sdk_sqs::error::DisplayErrorContext(&e).to_string();
            format!("sending the dead letter failed: {detail}")
        })
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, String> {
    let mut value: String = value.chars().take(MAX_ATTRIBUTE_CHARS).collect();
    if value.is_empty() {
        value.push('-');
    }
    MessageAttributeValue::builder().data_type("String").string_value(value).build().map_err(|e| e.to_string())
}

/// A deduplication id is at most 128 characters from a narrow alphabet: a hex hash fits any source id.
fn dedup_id(source: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    source.hash(&mut hasher);
    format!("{:016x}{}", hasher.finish(), source.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::outcome::Failure;

    /// A dead-letter queue that takes the connection and never answers: a send must still end, by
    /// the client's own timeouts, when the invocation has no deadline to cut it off.
    #[tokio::test]
    async fn a_silent_dead_letter_queue_fails_the_send_instead_of_hanging() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((connection, _)) = listener.accept().await {
                held.push(connection);
            }
        });
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "test"))
            .load()
            .await;
        let queue = SqsDeadLetters::new(&sdk, format!("{endpoint}/123456789012/dlq"));
        let failure = Failure::new("ValidationError", "not a request");
        let letter = DeadLetter {
            body: "{}",
            failure: &failure,
            lambda_request_id: "lambda-req-1",
            source_id: Some("m-1"),
            message_group: None,
        };
        let started = std::time::Instant::now();
        let sent = tokio::time::timeout(Duration::from_secs(20), queue.send(letter)).await;
        silent.abort();
        let error = sent.expect("the send must end by itself, not hang").unwrap_err();
        assert!(error.contains("sending the dead letter failed"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    }
}
