//! The work queue, as the webhook sees it: where signed CRM requests are buffered, so that they are
//! paced, retried and dead-lettered like every other request. The webhook only sends; the queue's
//! event source mapping brings each message back to the function as an SQS record.
//!
//! The worker sends there too: a record that must wait (docs/holds.md) is sent again, delayed, with
//! its hold in message attributes, or kept invisible a while ([`Holds`]).
//!
//! A message is the canonical request document (see [`message_body`]): the same JSON a direct
//! invocation takes, so a message that ends up in the dead-letter queue reads, and redrives, like
//! any other.

use std::future::Future;
use std::sync::Arc;

use aws_config::SdkConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use futures::future::BoxFuture;

use crate::domain::request::DisassociationRequest;

/// The most messages one `SendMessageBatch` takes.
pub const MAX_BATCH: usize = 10;

/// A batch the queue did not take whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueueError {
    /// How many of the batch's messages were queued all the same (a partial batch failure).
    pub sent: usize,
    pub message: String,
}

/// The port: queues one batch of at most [`MAX_BATCH`] requests, and gives their message ids in
/// order when every one of them was taken.
pub trait WorkQueue: Send + Sync {
    fn send_batch(
        &self,
        requests: &[DisassociationRequest],
    ) -> impl Future<Output = Result<Vec<String>, QueueError>> + Send;

    /// Whether the queue keeps messages in the order their sends arrive (a FIFO queue): batches must
    /// then go one after another, as two sent at once may arrive either way round.
    fn keeps_order(&self) -> bool {
        false
    }
}

impl<T: WorkQueue> WorkQueue for Arc<T> {
    fn send_batch(
        &self,
        requests: &[DisassociationRequest],
    ) -> impl Future<Output = Result<Vec<String>, QueueError>> + Send {
        (**self).send_batch(requests)
    }

    fn keeps_order(&self) -> bool {
        (**self).keeps_order()
    }
}

/// SQS's longest `DelaySeconds`.
pub const MAX_DELAY_SECONDS: u32 = 900;

/// SQS's most message attributes on one message.
pub const MAX_ATTRIBUTES: usize = 10;

/// A message attribute's value, as SQS types it (`String`, `Number`, `Binary`, with an optional
/// custom suffix such as `Number.int`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub data_type: String,
    pub value: AttributeValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    Text(String),
    Binary(Vec<u8>),
}

impl Attribute {
    pub fn text(value: impl Into<String>) -> Self {
        Self { data_type: "String".to_owned(), value: AttributeValue::Text(value.into()) }
    }

    pub fn number(value: u64) -> Self {
        Self { data_type: "Number".to_owned(), value: AttributeValue::Text(value.to_string()) }
    }

    fn to_sqs(&self) -> Result<MessageAttributeValue, String> {
        let value = MessageAttributeValue::builder().data_type(&self.data_type);
        let value = match &self.value {
            AttributeValue::Text(text) => value.string_value(text),
            AttributeValue::Binary(bytes) => value.binary_value(aws_smithy_types::Blob::new(bytes.clone())),
        };
        value.build().map_err(|e| e.to_string())
    }
}

/// A message sent back to the work queue to wait there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requeue<'a> {
    pub body: &'a str,
    pub attributes: Vec<(String, Attribute)>,
    /// At most [`MAX_DELAY_SECONDS`]; ignored by a FIFO queue, which delays only queue-wide.
    pub delay_seconds: u32,
    /// A FIFO queue's message group.
    pub group: &'a str,
}

/// The port through which the worker holds a record: it sends it again to the work queue, delayed,
/// or keeps a received message invisible. Boxed futures, so that the worker holds it as a trait
/// object and tests swap it freely.
pub trait Holds: Send + Sync {
    fn requeue<'a>(&'a self, message: Requeue<'a>) -> BoxFuture<'a, Result<(), String>>;

    /// `ChangeMessageVisibility` of a message of the work queue received with `receipt_handle`.
    fn keep_invisible<'a>(&'a self, receipt_handle: &'a str, seconds: u32) -> BoxFuture<'a, Result<(), String>>;
}

impl Holds for SqsWorkQueue {
    fn requeue<'a>(&'a self, message: Requeue<'a>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut send = self.client.send_message().queue_url(&self.queue_url).message_body(message.body);
            for (name, attribute) in &message.attributes {
                send = send.message_attributes(name, attribute.to_sqs()?);
            }
            send = if self.fifo {
                // Its hold comes from its HoldUntil at its first receive, which keeps it invisible.
                let text = format!("{}|{:?}", message.body, message.attributes);
                send.message_group_id(message.group).message_deduplication_id(super::deduplication_id(&text))
            } else {
                send.delay_seconds(message.delay_seconds.min(MAX_DELAY_SECONDS) as i32)
            };
            send.send()
                .await
                .map(|_| ())
                .map_err(|e| format!("SendMessage failed: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)))
        })
    }

    fn keep_invisible<'a>(&'a self, receipt_handle: &'a str, seconds: u32) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.client
                .change_message_visibility()
                .queue_url(&self.queue_url)
                .receipt_handle(receipt_handle)
                .visibility_timeout(seconds as i32)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("ChangeMessageVisibility failed: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)))
        })
    }
}

/// The worker's [`Holds`]: the work queue's client built at the first hold, not at init, as the
/// dead-letter queue's is (most execution environments never hold a record, and building a client
/// shows in the cold start).
#[derive(Debug)]
pub struct LazyWorkQueue {
    sdk: SdkConfig,
    queue_url: String,
    queue: std::sync::OnceLock<SqsWorkQueue>,
}

impl LazyWorkQueue {
    pub fn new(sdk: &SdkConfig, queue_url: String) -> Self {
        Self { sdk: sdk.clone(), queue_url, queue: std::sync::OnceLock::new() }
    }

    fn queue(&self) -> &SqsWorkQueue {
        self.queue.get_or_init(|| SqsWorkQueue::new(&self.sdk, self.queue_url.clone()))
    }
}

impl Holds for LazyWorkQueue {
    fn requeue<'a>(&'a self, message: Requeue<'a>) -> BoxFuture<'a, Result<(), String>> {
        self.queue().requeue(message)
    }

    fn keep_invisible<'a>(&'a self, receipt_handle: &'a str, seconds: u32) -> BoxFuture<'a, Result<(), String>> {
        self.queue().keep_invisible(receipt_handle, seconds)
    }
}

/// The message a request is queued as: its canonical request document, in [`sqs_safe_json`](super::sqs_safe_json).
pub fn message_body(request: &DisassociationRequest) -> String {
    // Serializing this type (strings and unit enums) cannot fail.
    super::sqs_safe_json(serde_json::to_string(request).expect("a request serializes to JSON"))
}

/// The adapter over SQS.
#[derive(Debug, Clone)]
pub struct SqsWorkQueue {
    client: Client,
    queue_url: String,
    fifo: bool,
}

impl SqsWorkQueue {
    pub fn new(sdk: &SdkConfig, queue_url: String) -> Self {
        // The CRM is waiting on the answer: a queue that does not take the batch within a few
        // seconds is answered 503, and the CRM retries, rather than holding its connection open.
        let config = aws_sdk_sqs::config::Builder::from(sdk).timeout_config(super::bounded_timeouts()).build();
        let fifo = super::is_fifo(&queue_url);
        Self { client: Client::from_conf(config), queue_url, fifo }
    }
}

impl WorkQueue for SqsWorkQueue {
    fn keeps_order(&self) -> bool {
        self.fifo
    }

    async fn send_batch(&self, requests: &[DisassociationRequest]) -> Result<Vec<String>, QueueError> {
        message_ids(self.send_entries(requests).await?)
    }
}

/// What became of one entry of a batch: its message id, or why the queue refused it.
pub type Entry = Result<String, String>;

impl SqsWorkQueue {
    /// Queues one batch and says what became of each entry, in order, so that a caller can send again
    /// exactly the entries refused (the bulk sender does).
    pub async fn send_entries(&self, requests: &[DisassociationRequest]) -> Result<Vec<Entry>, QueueError> {
        if requests.len() > MAX_BATCH {
            return Err(QueueError {
                sent: 0,
                message: format!("a batch holds at most {MAX_BATCH} messages, got {}", requests.len()),
            });
        }
        let mut entries = Vec::with_capacity(requests.len());
        for (index, request) in requests.iter().enumerate() {
            let body = message_body(request);
            let mut entry = SendMessageBatchRequestEntry::builder().id(index.to_string());
            if self.fifo {
                // One group per opportunity keeps its requests in order without holding back the
                // others; the body's hash as the deduplication id makes a CRM's retry within
                // SQS's 5-minute window a no-op.
                entry = entry
                    .message_group_id(request.opportunity.as_str())
                    .message_deduplication_id(super::deduplication_id(&body));
            }
            let entry = entry
                .message_body(body)
                .build()
                .map_err(|e| QueueError { sent: 0, message: format!("building the batch failed: {e}") })?;
            entries.push(entry);
        }
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| QueueError {
                sent: 0,
                message: format!("SendMessageBatch failed: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)),
            })?;
        Ok(entry_results(requests.len(), &output))
    }
}

/// What became of each of a batch's `count` entries (ids `0..count`), in order; an entry the answer
/// leaves out is refused.
fn entry_results(count: usize, output: &SendMessageBatchOutput) -> Vec<Entry> {
    let mut entries: Vec<Entry> = vec![Err("missing from the answer".to_owned()); count];
    for failed in output.failed() {
        if let Some(entry) = failed.id().parse::<usize>().ok().and_then(|i| entries.get_mut(i)) {
            let fault = if failed.sender_fault() { "sender" } else { "service" };
            *entry = Err(format!("{} ({fault} fault) {}", failed.code(), failed.message().unwrap_or_default()));
        }
    }
    for taken in output.successful() {
        if let Some(entry) = taken.id().parse::<usize>().ok().and_then(|i| entries.get_mut(i)) {
            *entry = Ok(taken.message_id().to_owned());
        }
    }
    entries
}

/// The message ids of a batch, in order; an error when any entry was refused.
fn message_ids(entries: Vec<Entry>) -> Result<Vec<String>, QueueError> {
    let count = entries.len();
    let sent = entries.iter().filter(|e| e.is_ok()).count();
    if sent == count {
        return Ok(entries.into_iter().flatten().collect());
    }
    let failures: Vec<String> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.as_ref().err().map(|why| format!("entry {i}: {why}")))
        .collect();
    Err(QueueError {
        sent,
        message: format!("SendMessageBatch took {sent} of {count} messages: {}", failures.join("; ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};
    use serde_json::{Value, json};

    fn request(identifier: &str) -> DisassociationRequest {
        DisassociationRequest::from_document(&json!({
            "Catalog": "Sandbox", "OpportunityIdentifier": "O1",
            "RelatedEntityType": "AwsProducts", "RelatedEntityIdentifier": identifier
        }))
        .unwrap()
    }

    fn ok(id: &str, message_id: &str) -> SendMessageBatchResultEntry {
        SendMessageBatchResultEntry::builder().id(id).message_id(message_id).md5_of_message_body("x").build().unwrap()
    }

    fn output(
        successful: Vec<SendMessageBatchResultEntry>,
        failed: Vec<BatchResultErrorEntry>,
    ) -> SendMessageBatchOutput {
        SendMessageBatchOutput::builder().set_successful(Some(successful)).set_failed(Some(failed)).build().unwrap()
    }

    #[test]
    fn a_message_is_the_canonical_request_document() {
        let body = message_body(&request("P-1"));
        let doc: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            doc,
            json!({"Catalog": "Sandbox", "OpportunityIdentifier": "O1", "RelatedEntityType": "AwsProducts", "RelatedEntityIdentifier": "P-1"})
        );
    }

    #[test]
    fn characters_sqs_refuses_are_escaped_and_decode_back() {
        let original = request("P\u{ffff}\u{fffe}\u{1f600}é");
        let body = message_body(&original);
        assert!(!body.contains(['\u{fffe}', '\u{ffff}']), "{body}");
        let back = DisassociationRequest::from_document(&serde_json::from_str(&body).unwrap()).unwrap();
        assert_eq!(back, original);
    }

    #[test]
    fn message_ids_come_back_in_the_order_of_the_entries() {
        let output = output(vec![ok("1", "m-b"), ok("0", "m-a")], vec![]);
        assert_eq!(message_ids(entry_results(2, &output)).unwrap(), ["m-a", "m-b"]);
    }

    #[test]
    fn a_partial_batch_failure_is_an_error_that_counts_what_was_sent() {
        let failed = BatchResultErrorEntry::builder()
            .id("1")
            .code("InternalError")
            .sender_fault(false)
            .message("try again")
            .build()
            .unwrap();
        let answer = entry_results(2, &output(vec![ok("0", "m-a")], vec![failed]));
        assert_eq!(answer[0], Ok("m-a".to_owned()));
        assert!(answer[1].as_ref().is_err_and(|why| why.starts_with("InternalError (service fault)")), "{answer:?}");
        let err = message_ids(answer).unwrap_err();
        assert_eq!(err.sent, 1);
        assert!(err.message.contains("InternalError (service fault)"), "{}", err.message);
        // An answer that leaves an entry out is a failure too, never a shorter list of ids.
        assert_eq!(
            message_ids(entry_results(2, &output(vec![ok("0", "m-a"), ok("7", "m-x")], vec![]))).unwrap_err().sent,
            1
        );
    }
}
