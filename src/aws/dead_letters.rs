//! The dead-letter queue: where a request that can never succeed goes at once, with its reason, so
//! it is not retried in vain.
//!
//! The body is the original one, unchanged, so a redrive puts back exactly what came in. The reason
//! travels in message attributes named as Lambda's own dead-letter messages name them (`ErrorCode`,
//! `ErrorMessage`, `RequestID`), so one runbook reads both.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use aws_config::SdkConfig;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;
use tokio::sync::Semaphore;

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

/// Attribute values are cut at this many characters before they are fitted: a reason longer than that
/// (a service message echoing a whole input) says nothing more, and would only crowd the body out.
const MAX_ATTRIBUTE_CHARS: usize = 1024;

/// Dead letters in flight at once. A batch may hold thousands, and every send cancelled at the end of
/// dead letters costs time kept back for the answer (the HTTP client's pool scans its waiters on each):
/// those not yet sent wait here, where giving one up costs next to nothing. It also keeps the
/// connections well under Lambda's limit on open files.
const SENDS_IN_FLIGHT: usize = 16;

/// The data type of every attribute the function sends.
const STRING: &str = "String";

/// The adapter over SQS.
///
/// Its client is built at the first dead letter, not at init: most execution environments never send
/// one, and building it shows in the cold start (bench/README.md).
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    sdk: SdkConfig,
    client: OnceLock<Client>,
    queue_url: String,
    /// The queue's `MaximumMessageSize` (`DEAD_LETTER_MAX_MESSAGE_BYTES`).
    max_message_bytes: usize,
    in_flight: Arc<Semaphore>,
}

impl SqsDeadLetters {
    pub fn new(sdk: &SdkConfig, queue_url: String, max_message_bytes: usize) -> Self {
        let in_flight = Arc::new(Semaphore::new(SENDS_IN_FLIGHT));
        Self { sdk: sdk.clone(), client: OnceLock::new(), queue_url, max_message_bytes, in_flight }
    }

    fn client(&self) -> &Client {
        self.client.get_or_init(|| {
            // The invocation's end of dead letters bounds each send; these bound it when there is none
            // (`cargo lambda watch`), so that a queue which takes the connection and never answers
            // cannot hold a record for ever. SendMessage answers in milliseconds.
            let config = aws_sdk_sqs::config::Builder::from(&self.sdk).timeout_config(super::bounded_timeouts());
            Client::from_conf(config.build())
        })
    }
}

impl DeadLetters for SqsDeadLetters {
    async fn send(&self, letter: DeadLetter<'_>) -> Result<(), String> {
        let mut attributes = vec![
            ("ErrorMessage", attribute_value(&letter.failure.message)),
            ("RequestID", attribute_value(letter.lambda_request_id)),
        ];
        if let Some(id) = &letter.failure.request_id {
            attributes.push(("ServiceRequestID", attribute_value(id)));
        }
        if let Some(id) = letter.source_id {
            attributes.push(("SourceID", attribute_value(id)));
        }
        attributes.push(("ErrorCode", attribute_value(&letter.failure.code)));
        let fitted = fit(letter.body, &attributes, self.max_message_bytes).map_err(|e| e.to_string())?;
        let mut message = self.client().send_message().queue_url(&self.queue_url).message_body(fitted.body);
        for (name, value) in fitted.attributes {
            let value = MessageAttributeValue::builder()
                .data_type(STRING)
                .string_value(value)
                .build()
                .map_err(|e| e.to_string())?;
            message = message.message_attributes(name, value);
        }
        if super::is_fifo(&self.queue_url) {
            // A FIFO source's dead-letter queue is FIFO too: keep the group, and let a redelivered
            // message dead-letter only once.
            message = message
                .message_group_id(letter.message_group.unwrap_or("dead-letters"))
                .message_deduplication_id(super::deduplication_id(letter.source_id.unwrap_or(letter.body)));
        }
        // Never closed, so a permit always comes.
        let _permit = self.in_flight.acquire().await.map_err(|e| e.to_string())?;
        message.send().await.map(|_| ()).map_err(|e| {
            let detail = aws_sdk_sqs::error::DisplayErrorContext(&e).to_string();
            format!("sending the dead letter failed: {detail}")
        })
    }
}

/// An attribute's value as sent: at most [`MAX_ATTRIBUTE_CHARS`], never empty (SQS refuses that).
fn attribute_value(value: &str) -> String {
    let value: String = value.chars().take(MAX_ATTRIBUTE_CHARS).collect();
    if value.is_empty() { "-".to_owned() } else { value }
}

/// A dead letter as it fits in the queue: the body unchanged, the attributes that fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fitted<'a> {
    pub body: &'a str,
    /// `(name, value)`, in the order given; shortened or left out to fit.
    pub attributes: Vec<(&'static str, &'a str)>,
}

/// A body that does not fit in the dead-letter queue even alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the body ({body} bytes) is larger than the dead-letter queue's largest message ({limit} bytes, DEAD_LETTER_MAX_MESSAGE_BYTES): it cannot be dead-lettered"
)]
pub struct TooLarge {
    pub body: usize,
    pub limit: usize,
}

/// The dead letter fitted in `limit` bytes, as SQS counts a message's size: the body's UTF-8 bytes, and
/// for each attribute the bytes of its name, its data type and its value (the SendMessage reference:
/// every part of a message attribute counts toward the limit). The body is never changed; the
/// attributes, given in the order they give way, are cut (at a character's boundary) or left out,
/// the first first, until the whole fits: the reason's message goes first, its code last.
pub fn fit<'a>(body: &'a str, attributes: &'a [(&'static str, String)], limit: usize) -> Result<Fitted<'a>, TooLarge> {
    if body.len() > limit {
        return Err(TooLarge { body: body.len(), limit });
    }
    let size: usize = attributes.iter().map(|(name, value)| name.len() + STRING.len() + value.len()).sum();
    let mut excess = (body.len() + size).saturating_sub(limit);
    let mut fitted = Vec::with_capacity(attributes.len());
    for (name, value) in attributes {
        let kept = &value[..value.floor_char_boundary(value.len().saturating_sub(excess))];
        if kept.is_empty() {
            // Left out: an attribute's value may not be empty, and its name and type go with it.
            excess = excess.saturating_sub(name.len() + STRING.len() + value.len());
        } else {
            excess = excess.saturating_sub(value.len() - kept.len());
            fitted.push((*name, kept));
        }
    }
    Ok(Fitted { body, attributes: fitted })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::outcome::Failure;
    use std::time::Duration;

    /// What a dead letter of `code` costs in attributes, body aside.
    fn cost(attributes: &[(&'static str, &str)]) -> usize {
        attributes.iter().map(|(name, value)| name.len() + STRING.len() + value.len()).sum()
    }

    fn reason(message: &str) -> Vec<(&'static str, String)> {
        [
            ("ErrorMessage", message),
            ("RequestID", "lambda-req-1"),
            ("SourceID", "m-1"),
            ("ErrorCode", "ValidationError"),
        ]
        .map(|(name, value)| (name, value.to_owned()))
        .to_vec()
    }

    const LIMIT: usize = 262_144;

    #[test]
    fn a_dead_letter_that_fits_is_sent_whole() {
        let attributes = reason("the message body is not JSON");
        let fitted = fit("{}", &attributes, LIMIT).unwrap();
        let whole: Vec<(&str, &str)> = attributes.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(fitted, Fitted { body: "{}", attributes: whole });
    }

    #[test]
    fn the_reason_gives_way_to_the_body_message_first_code_last() {
        let attributes = reason(&"m".repeat(1000));
        let code = cost(&[("ErrorCode", "ValidationError")]);
        // Room for the code alone: every other attribute is left out.
        let body = "b".repeat(LIMIT - code);
        let fitted = fit(&body, &attributes, LIMIT).unwrap();
        assert_eq!(fitted.attributes, [("ErrorCode", "ValidationError")]);
        // Ten bytes more: the code and nothing else still (no other attribute fits in ten bytes).
        let body = "b".repeat(LIMIT - code - 10);
        assert_eq!(fit(&body, &attributes, LIMIT).unwrap().attributes, [("ErrorCode", "ValidationError")]);
        // Room for all but 100 bytes of the message: the message alone is cut.
        let body = "b".repeat(LIMIT - cost_of(&attributes) + 100);
        let fitted = fit(&body, &attributes, LIMIT).unwrap();
        assert_eq!(fitted.attributes[0], ("ErrorMessage", "m".repeat(900).as_str()));
        assert_eq!(&fitted.attributes[1..], &whole(&attributes)[1..]);
        assert_eq!(body.len() + cost(&fitted.attributes), LIMIT, "exactly at the limit");
    }

    fn cost_of(attributes: &[(&'static str, String)]) -> usize {
        cost(&whole(attributes))
    }

    fn whole<'a>(attributes: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        attributes.iter().map(|(n, v)| (*n, v.as_str())).collect()
    }

    #[test]
    fn a_body_of_exactly_the_limit_goes_alone_and_one_byte_more_not_at_all() {
        let attributes = reason("m");
        let body = "b".repeat(LIMIT);
        let fitted = fit(&body, &attributes, LIMIT).unwrap();
        assert!(fitted.attributes.is_empty(), "{:?}", fitted.attributes);
        assert!(std::ptr::eq(fitted.body, body.as_str()), "the body itself, unchanged");
        let over = "b".repeat(LIMIT + 1);
        assert_eq!(fit(&over, &attributes, LIMIT), Err(TooLarge { body: LIMIT + 1, limit: LIMIT }));
        // Bytes, not characters: 65,537 four-byte characters are over 256 KiB.
        let wide = "\u{1f600}".repeat(LIMIT / 4 + 1);
        assert!(fit(&wide, &attributes, LIMIT).is_err());
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        for (character, width) in [("é", 2), ("€", 3), ("\u{1f600}", 4)] {
            let attributes = reason(&character.repeat(100));
            for overshoot in 1..=8 {
                let body = "b".repeat(LIMIT - cost_of(&attributes) + overshoot);
                let fitted = fit(&body, &attributes, LIMIT).unwrap();
                let message = fitted.attributes[0].1;
                assert_eq!(message.len() % width, 0, "{character}: whole characters only");
                assert_eq!(message.len(), 100 * width - overshoot.div_ceil(width) * width, "{character} -{overshoot}");
                assert!(body.len() + cost(&fitted.attributes) <= LIMIT);
                assert_eq!(fitted.body, body, "the body is never changed");
            }
        }
    }

    #[test]
    fn an_attribute_value_is_capped_and_never_empty() {
        assert_eq!(attribute_value(&"é".repeat(2000)).chars().count(), MAX_ATTRIBUTE_CHARS);
        assert_eq!(attribute_value(""), "-");
    }

    /// A dead-letter queue on loopback that takes every connection and never answers: its endpoint,
    /// and how many connections it has taken.
    async fn silent_queue() -> (String, Arc<std::sync::atomic::AtomicUsize>, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = taken.clone();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((connection, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(connection);
            }
        });
        (endpoint, taken, server)
    }

    async fn dead_letters_at(endpoint: &str) -> SqsDeadLetters {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "test"))
            .load()
            .await;
        SqsDeadLetters::new(&sdk, format!("{endpoint}/123456789012/dlq"), LIMIT)
    }

    fn letter(failure: &Failure) -> DeadLetter<'_> {
        DeadLetter {
            body: "{}",
            failure,
            lambda_request_id: "lambda-req-1",
            source_id: Some("m-1"),
            message_group: None,
        }
    }

    /// A dead-letter queue that takes the connection and never answers: a send must still end, by
    /// the client's own timeouts, when the invocation has no deadline to cut it off.
    #[tokio::test]
    async fn a_silent_dead_letter_queue_fails_the_send_instead_of_hanging() {
        let (endpoint, _, server) = silent_queue().await;
        let queue = dead_letters_at(&endpoint).await;
        let failure = Failure::new("ValidationError", "not a request");
        let started = std::time::Instant::now();
        let sent = tokio::time::timeout(Duration::from_secs(20), queue.send(letter(&failure))).await;
        server.abort();
        let error = sent.expect("the send must end by itself, not hang").unwrap_err();
        assert!(error.contains("sending the dead letter failed"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    }

    /// However many records of a batch are dead-lettered at once, only a few sends are in flight:
    /// the others wait their turn, where giving them up at the deadline costs next to nothing.
    #[tokio::test]
    async fn only_a_few_dead_letters_are_in_flight_at_once() {
        let (endpoint, taken, server) = silent_queue().await;
        let queue = dead_letters_at(&endpoint).await;
        let failure = Failure::new("ValidationError", "not a request");
        let sends = futures::future::join_all((0..3 * SENDS_IN_FLIGHT).map(|_| queue.send(letter(&failure))));
        assert!(tokio::time::timeout(Duration::from_millis(1500), sends).await.is_err(), "all still pending");
        server.abort();
        assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), SENDS_IN_FLIGHT);
    }
}
