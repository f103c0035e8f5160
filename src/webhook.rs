//! CRM webhooks: a signed HTTPS door into the work queue.
//!
//! A CRM POSTs to the function's URL (a Lambda Function URL, payload format 2.0) one request document,
//! or a JSON list of 1 to [`MAX_DOCUMENTS`], plain or base64-encoded as Lambda delivers it. The webhook
//! never calls Partner Central: it checks the signature and the documents, and buffers the requests
//! in the work queue, from where they are paced, retried and dead-lettered like every other request.
//!
//! # Signature
//!
//! `X-Webhook-Timestamp: <Unix seconds>` and `X-Webhook-Signature: sha256=<hex>`, the HMAC-SHA256 of
//! `<timestamp>.<raw body>` under the shared secret (the timestamp exactly as sent; the body as the
//! CRM sent it, before any base64 of Lambda's). The comparison is constant-time; a timestamp more than
//! [`MAX_SKEW_SECONDS`] from now is refused. Within that window a captured request could be replayed
//! (the URL is HTTPS only, so it would have to be captured at either end): it would queue the same
//! requests again. A disassociation already done counts as done again; one undone since (the entity
//! associated again within those minutes) would be done a second time.
//!
//! The signature may be made with the secret's current value or, during a rotation, its previous one
//! (see `secret.rs`).
//!
//! ```
//! use opportunity_disassociator::webhook::signature;
//! let header = signature(b"demo-webhook-secret", "1764000000", br#"{"Catalog":"Sandbox"}"#);
//! assert!(header.starts_with("sha256=") && header.len() == 7 + 64);
//! ```
//!
//! # Answers (JSON bodies)
//!
//! | status | when | queued |
//! |---|---|---|
//! | 202 | every document valid and queued: `{"queued": n, "messageIds": [...]}`, in the documents' order | all |
//! | 400 | a document is invalid: `errors` names each member at fault, by document `index` | nothing |
//! | 401 | the signature is missing, malformed, wrong or stale: `{"message":"unauthorized"}`, nothing more | nothing |
//! | 405 | not a POST | nothing |
//! | 413 | the body is over `WEBHOOK_MAX_BODY_BYTES` (checked before the signature, so an unsigned flood costs no hashing) | nothing |
//! | 503 | the work queue did not take every message: retry | see below |
//! | 500 | the webhook is not configured (no secret): never accepted | nothing |
//!
//! The documents go to the queue in batches of [`MAX_BATCH`], all at once. When one batch fails the
//! answer is 503 even though other batches (or part of the failed one) were queued: the CRM's retry
//! queues those requests a second time, which is safe because the pipeline is idempotent (the
//! second one finds the entity already disassociated, and counts as success). Answering 202 instead
//! would lose the ones that were not queued.
//!
//! A request for a catalog outside `ALLOWED_CATALOGS` is refused here (400, naming `Catalog`) rather
//! than queued: the function would only dead-letter it, and the CRM learns at once instead of an
//! operator later.

use std::fmt;

use aws_lambda_events::http::header::{CONTENT_TYPE, HeaderName};
use aws_lambda_events::http::{HeaderMap, HeaderValue};
use aws_lambda_events::lambda_function_urls::{LambdaFunctionUrlRequest, LambdaFunctionUrlResponse};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;
use tracing::{error, info, warn};

use crate::request::{CATALOG, Catalog, DisassociationRequest};
use crate::secret::WebhookSecret;
use crate::work_queue::{MAX_BATCH, WorkQueue};

/// The header carrying the signing time, in Unix seconds (Function URLs deliver header names lowercased).
pub const TIMESTAMP_HEADER: &str = "x-webhook-timestamp";
/// The header carrying `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-webhook-signature";
const SIGNATURE_PREFIX: &str = "sha256=";
/// How far the signing time may be from now, either way.
pub const MAX_SKEW_SECONDS: u64 = 300;
/// The most documents one webhook call may carry.
pub const MAX_DOCUMENTS: usize = 100;
/// How long a CRM is asked to wait before retrying a 503.
const RETRY_AFTER_SECONDS: &str = "10";

/// Why a request was answered 401. Logged, never sent: the caller learns only "unauthorized".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MissingTimestamp,
    MalformedTimestamp,
    MissingSignature,
    MalformedSignature,
    /// The timestamp is more than [`MAX_SKEW_SECONDS`] from now.
    Stale,
    WrongSignature,
    /// `isBase64Encoded`, and the body is not base64: nothing to check a signature against.
    UndecodableBody,
    /// The event has the Function URL shape but could not be read.
    UnreadableEvent,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingTimestamp => "no X-Webhook-Timestamp header",
            Self::MalformedTimestamp => "X-Webhook-Timestamp is not one value of Unix seconds",
            Self::MissingSignature => "no X-Webhook-Signature header",
            Self::MalformedSignature => "X-Webhook-Signature is not one value sha256=<64 hex digits>",
            Self::Stale => "X-Webhook-Timestamp is more than 300 s from now",
            Self::WrongSignature => "the signature does not match the body and timestamp",
            Self::UndecodableBody => "the body is marked base64 but is not",
            Self::UnreadableEvent => "the Function URL event could not be read",
        })
    }
}

/// The `X-Webhook-Signature` value for a body signed at `timestamp` (as sent in `X-Webhook-Timestamp`).
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut hex = String::with_capacity(SIGNATURE_PREFIX.len() + 64);
    hex.push_str(SIGNATURE_PREFIX);
    for byte in mac(secret, timestamp, body).finalize().into_bytes() {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks the signature headers against the raw body, at `now` (Unix seconds).
pub fn verify(secret: &WebhookSecret, headers: &HeaderMap, body: &[u8], now: u64) -> Result<(), Refusal> {
    let timestamp = match single_header(headers, TIMESTAMP_HEADER) {
        None => return Err(Refusal::MissingTimestamp),
        Some(value) => value.ok_or(Refusal::MalformedTimestamp)?,
    };
    let signed_at = parse_timestamp(timestamp).ok_or(Refusal::MalformedTimestamp)?;
    let tag = match single_header(headers, SIGNATURE_HEADER) {
        None => return Err(Refusal::MissingSignature),
        Some(value) => value.and_then(parse_signature).ok_or(Refusal::MalformedSignature)?,
    };
    if now.abs_diff(signed_at) > MAX_SKEW_SECONDS {
        return Err(Refusal::Stale);
    }
    // Constant-time: `verify_slice` compares every byte whatever the first difference. Every key is
    // tried (the current one first), so the time taken does not say which one matched either.
    let matches =
        secret.keys().fold(false, |matched, key| mac(key, timestamp, body).verify_slice(&tag).is_ok() | matched);
    if matches { Ok(()) } else { Err(Refusal::WrongSignature) }
}

/// A header's only value, as text: `Some(None)` when it is repeated or not visible ASCII.
fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Option<Option<&'a str>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    Some(if values.next().is_some() { None } else { first.to_str().ok() })
}

/// Unix seconds: 1 to 12 ASCII digits, nothing else (no sign, no fraction, no spaces).
fn parse_timestamp(value: &str) -> Option<u64> {
    if !(1..=12).contains(&value.len()) || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// `sha256=` and 64 hex digits (either case) into the 32 bytes of the tag.
fn parse_signature(value: &str) -> Option<[u8; 32]> {
    let hex = value.strip_prefix(SIGNATURE_PREFIX)?.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut tag = [0u8; 32];
    for (byte, pair) in tag.iter_mut().zip(hex.chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16);
        *byte = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(tag)
}

/// One member at fault in one document of the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidMember {
    /// The document's position in the list (0 for a body of one document).
    pub index: usize,
    pub field: &'static str,
    pub message: String,
}

/// An answer to the CRM.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    headers: Vec<(&'static str, &'static str)>,
}

impl Reply {
    fn new(status: u16, body: Value) -> Self {
        Self { status, body, headers: Vec::new() }
    }

    fn message(status: u16, message: impl Into<String>) -> Self {
        Self::new(status, json!({ "message": message.into() }))
    }

    /// 401, and not a word about why.
    pub fn unauthorized() -> Self {
        Self::message(401, "unauthorized")
    }

    /// 500: a Function URL request reached a function without a webhook secret. Never accepted.
    pub fn not_configured() -> Self {
        Self::message(500, "webhook not configured")
    }

    fn bad_request(message: impl Into<String>, errors: Vec<InvalidMember>) -> Self {
        Self::new(400, json!({ "message": message.into(), "errors": errors }))
    }

    /// The HTTP response Lambda returns for a Function URL invocation.
    pub fn into_response(self) -> LambdaFunctionUrlResponse {
        let mut response = LambdaFunctionUrlResponse::default();
        response.status_code = i64::from(self.status);
        response.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in self.headers {
            response.headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        response.body = Some(self.body.to_string());
        response
    }
}

/// The webhook: its secret, the work queue, and the rules a document must meet to be queued.
pub struct Webhook<Q> {
    secret: WebhookSecret,
    queue: Q,
    allowed_catalogs: Vec<Catalog>,
    max_body_bytes: usize,
}

enum BodyError {
    TooLarge,
    NotBase64,
}

impl<Q: WorkQueue> Webhook<Q> {
    pub fn new(secret: WebhookSecret, queue: Q, allowed_catalogs: Vec<Catalog>, max_body_bytes: usize) -> Self {
        Self { secret, queue, allowed_catalogs, max_body_bytes }
    }

    /// Answers one Function URL request received at `now` (Unix seconds).
    pub async fn answer(&self, event: &LambdaFunctionUrlRequest, now: u64) -> Reply {
        let method = event.request_context.http.method.as_deref().unwrap_or_default();
        if !method.eq_ignore_ascii_case("POST") {
            info!(method, "webhook refused (405): not a POST");
            let mut reply = Reply::message(405, "method not allowed: send a POST");
            reply.headers.push(("allow", "POST"));
            return reply;
        }
        let body = match raw_body(event, self.max_body_bytes) {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                info!(max_body_bytes = self.max_body_bytes, "webhook refused (413): the body is too large");
                return Reply::message(413, format!("the body is larger than {} bytes", self.max_body_bytes));
            }
            Err(BodyError::NotBase64) => return refuse(Refusal::UndecodableBody),
        };
        if let Err(refusal) = verify(&self.secret, &event.headers, &body, now) {
            return refuse(refusal);
        }
        match self.parse(&body) {
            Ok(requests) => self.queue(&requests).await,
            Err(reply) => {
                info!(errors = %reply.body["errors"], "webhook refused (400): {}", reply.body["message"]);
                reply
            }
        }
    }

    /// The body's documents, each decoded and in an allowed catalog; or the 400 that names every fault.
    fn parse(&self, body: &[u8]) -> Result<Vec<DisassociationRequest>, Reply> {
        let doc: Value = serde_json::from_slice(body)
            .map_err(|e| Reply::bad_request(format!("the body is not JSON: {e}"), Vec::new()))?;
        let documents: Vec<&Value> = match &doc {
            Value::Array(items) if items.is_empty() => {
                return Err(Reply::bad_request(
                    format!("the list is empty: send 1 to {MAX_DOCUMENTS} request documents"),
                    Vec::new(),
                ));
            }
            Value::Array(items) if items.len() > MAX_DOCUMENTS => {
                return Err(Reply::bad_request(
                    format!("the list has {} documents: send at most {MAX_DOCUMENTS} per request", items.len()),
                    Vec::new(),
                ));
            }
            Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        let mut requests = Vec::with_capacity(documents.len());
        let mut errors = Vec::new();
        let mut invalid_documents = 0;
        for (index, document) in documents.iter().enumerate() {
            match DisassociationRequest::from_document(document) {
                Err(invalid) => {
                    invalid_documents += 1;
                    errors.extend(invalid.errors.into_iter().map(|e| InvalidMember {
                        index,
                        field: e.field,
                        message: e.message,
                    }));
                }
                Ok(request) if !self.allowed_catalogs.contains(&request.catalog) => {
                    invalid_documents += 1;
                    let allowed: Vec<&str> = self.allowed_catalogs.iter().map(|c| c.as_str()).collect();
                    errors.push(InvalidMember {
                        index,
                        field: CATALOG,
                        message: format!(
                            "{} is not an allowed catalog here (ALLOWED_CATALOGS={})",
                            request.catalog,
                            allowed.join(",")
                        ),
                    });
                }
                Ok(request) => requests.push(request),
            }
        }
        if errors.is_empty() {
            return Ok(requests);
        }
        Err(Reply::bad_request(
            format!("{invalid_documents} of {} document(s) invalid: nothing was queued", documents.len()),
            errors,
        ))
    }

    /// Queues every request, in batches sent at once; 202 only when every message was taken. A FIFO
    /// queue orders a group's messages as their sends arrive: there the batches go one after another,
    /// and none is sent after one that failed, so that no batch overtakes an earlier one. (Within a
    /// batch SQS may take some entries and refuse others; the CRM's retry then queues the refused
    /// ones after those taken.)
    async fn queue(&self, requests: &[DisassociationRequest]) -> Reply {
        let batches: Vec<&[DisassociationRequest]> = requests.chunks(MAX_BATCH).collect();
        let results = if self.queue.keeps_order() {
            let mut results = Vec::with_capacity(batches.len());
            for batch in &batches {
                let result = self.queue.send_batch(batch).await;
                let whole = matches!(&result, Ok(ids) if ids.len() == batch.len());
                results.push(result);
                if !whole {
                    break;
                }
            }
            results
        } else {
            futures::future::join_all(batches.iter().map(|batch| self.queue.send_batch(batch))).await
        };
        let mut message_ids = Vec::with_capacity(requests.len());
        let mut queued = 0;
        let mut failures = Vec::new();
        for (batch, result) in batches.iter().zip(results) {
            match result {
                Ok(ids) if ids.len() == batch.len() => {
                    queued += ids.len();
                    message_ids.extend(ids);
                }
                Ok(ids) => {
                    queued += ids.len();
                    failures.push(format!("{} message ids for a batch of {}", ids.len(), batch.len()));
                }
                Err(e) => {
                    queued += e.sent;
                    failures.push(e.message);
                }
            }
        }
        if failures.is_empty() {
            info!(queued, message_ids = ?message_ids, "webhook accepted (202): queued");
            return Reply::new(202, json!({ "queued": queued, "messageIds": message_ids }));
        }
        // The ones already queued are queued again by the CRM's retry: harmless, the pipeline is
        // idempotent, where answering 202 would lose the others.
        error!(
            queued,
            requests = requests.len(),
            errors = ?failures,
            "webhook answered 503: the work queue did not take every message; the CRM's retry queues the {queued} already queued again"
        );
        let mut reply = Reply::message(503, "the work queue cannot take the requests now: retry later");
        reply.headers.push(("retry-after", RETRY_AFTER_SECONDS));
        reply
    }
}

/// Logs why (never the secret or the expected signature), and answers 401.
pub fn refuse(refusal: Refusal) -> Reply {
    warn!(reason = %refusal, "webhook refused (401)");
    Reply::unauthorized()
}

/// The body as the CRM sent it, within `max` bytes.
fn raw_body(event: &LambdaFunctionUrlRequest, max: usize) -> Result<Vec<u8>, BodyError> {
    let text = event.body.as_deref().unwrap_or_default();
    if !event.is_base64_encoded {
        return if text.len() > max { Err(BodyError::TooLarge) } else { Ok(text.as_bytes().to_vec()) };
    }
    // Base64 takes 4 characters per 3 bytes: what cannot fit is refused before it is decoded.
    if text.len() > max.div_ceil(3) * 4 {
        return Err(BodyError::TooLarge);
    }
    let body = BASE64.decode(text).map_err(|_| BodyError::NotBase64)?;
    if body.len() > max { Err(BodyError::TooLarge) } else { Ok(body) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::work_queue::QueueError;
    use std::sync::Mutex;

    const SECRET: &str = "demo-webhook-secret";
    const NOW: u64 = 1_764_000_000;
    const MAX_BODY: usize = 256 * 1024;

    /// A work queue in memory: records every batch, fails the calls it is told to.
    #[derive(Default)]
    struct FakeQueue {
        batches: Mutex<Vec<Vec<DisassociationRequest>>>,
        /// Calls (0-based) that fail, having queued this many of their messages first.
        failing: Vec<(usize, usize)>,
        calls: Mutex<usize>,
        /// A FIFO queue ([`WorkQueue::keeps_order`]).
        fifo: bool,
        /// Sends in flight now, and the most ever at once: each send yields before it is taken, so
        /// sends made concurrently overlap.
        in_flight: Mutex<(usize, usize)>,
    }

    impl FakeQueue {
        fn failing(failing: &[(usize, usize)]) -> Self {
            Self { failing: failing.to_vec(), ..Default::default() }
        }

        fn fifo(failing: &[(usize, usize)]) -> Self {
            Self { failing: failing.to_vec(), fifo: true, ..Default::default() }
        }

        fn most_in_flight(&self) -> usize {
            self.in_flight.lock().unwrap().1
        }

        fn queued(&self) -> Vec<DisassociationRequest> {
            self.batches.lock().unwrap().concat()
        }

        fn batch_sizes(&self) -> Vec<usize> {
            self.batches.lock().unwrap().iter().map(Vec::len).collect()
        }
    }

    impl WorkQueue for FakeQueue {
        fn keeps_order(&self) -> bool {
            self.fifo
        }

        async fn send_batch(&self, requests: &[DisassociationRequest]) -> Result<Vec<String>, QueueError> {
            assert!(requests.len() <= MAX_BATCH, "a batch of {}", requests.len());
            {
                let mut in_flight = self.in_flight.lock().unwrap();
                in_flight.0 += 1;
                in_flight.1 = in_flight.1.max(in_flight.0);
            }
            // A send takes a while: concurrent sends overlap here.
            tokio::task::yield_now().await;
            self.in_flight.lock().unwrap().0 -= 1;
            let call = {
                let mut calls = self.calls.lock().unwrap();
                *calls += 1;
                *calls - 1
            };
            if let Some(&(_, sent)) = self.failing.iter().find(|(c, _)| *c == call) {
                self.batches.lock().unwrap().push(requests[..sent].to_vec());
                return Err(QueueError { sent, message: "the queue is unavailable".into() });
            }
            self.batches.lock().unwrap().push(requests.to_vec());
            Ok((0..requests.len()).map(|i| format!("msg-{call}-{i}")).collect())
        }
    }

    fn webhook(queue: FakeQueue) -> Webhook<FakeQueue> {
        Webhook::new(WebhookSecret::new(SECRET).unwrap(), queue, vec![Catalog::Sandbox], MAX_BODY)
    }

    fn doc(opportunity: &str) -> Value {
        json!({"Catalog": "Sandbox", "OpportunityIdentifier": opportunity, "RelatedEntityType": "Solutions", "RelatedEntityIdentifier": "S-2000004"})
    }

    /// A Function URL event as Lambda delivers it (payload format 2.0): the sample
    /// `events/webhook-signed.json` with this method, headers and body.
    fn event(method: &str, headers: Value, body: &str, base64: bool) -> LambdaFunctionUrlRequest {
        let mut event: Value =
            serde_json::from_str(include_str!("../events/webhook-signed.json")).expect("the sample event");
        event["requestContext"]["http"]["method"] = method.into();
        event["headers"] = headers;
        event["body"] = body.into();
        event["isBase64Encoded"] = base64.into();
        serde_json::from_value(event).expect("a Function URL event")
    }

    fn signed_at(body: &str, timestamp: u64) -> LambdaFunctionUrlRequest {
        let ts = timestamp.to_string();
        let headers = json!({
            "content-type": "application/json",
            "x-webhook-timestamp": ts,
            "x-webhook-signature": signature(SECRET.as_bytes(), &ts, body.as_bytes()),
        });
        event("POST", headers, body, false)
    }

    fn signed(body: &str) -> LambdaFunctionUrlRequest {
        signed_at(body, NOW)
    }

    async fn answer(webhook: &Webhook<FakeQueue>, event: &LambdaFunctionUrlRequest) -> Reply {
        webhook.answer(event, NOW).await
    }

    fn assert_unauthorized(reply: &Reply) {
        assert_eq!(reply.status, 401);
        assert_eq!(reply.body, json!({"message": "unauthorized"}), "a 401 says nothing more");
    }

    #[tokio::test]
    async fn a_signed_document_is_queued_as_its_canonical_request() {
        let webhook = webhook(FakeQueue::default());
        let mut document = doc("O2000004");
        document["Extra"] = json!("dropped");
        let reply = answer(&webhook, &signed(&document.to_string())).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        assert_eq!(reply.body, json!({"queued": 1, "messageIds": ["msg-0-0"]}));
        let queued = webhook.queue.queued();
        assert_eq!(queued.len(), 1);
        assert_eq!(serde_json::to_value(&queued[0]).unwrap(), doc("O2000004"), "extra members are not queued");
    }

    #[tokio::test]
    async fn the_answer_is_a_function_url_response() {
        let webhook = webhook(FakeQueue::default());
        let response = answer(&webhook, &signed(&doc("O1").to_string())).await.into_response();
        let response = serde_json::to_value(response).unwrap();
        assert_eq!(response["statusCode"], 202);
        assert_eq!(response["headers"]["content-type"], "application/json");
        assert_eq!(response["isBase64Encoded"], false);
        let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["queued"], 1);
    }

    #[tokio::test]
    async fn refusals_are_401_and_queue_nothing() {
        let webhook = webhook(FakeQueue::default());
        let body = doc("O1").to_string();
        let ts = NOW.to_string();
        let good = signature(SECRET.as_bytes(), &ts, body.as_bytes());
        let cases: Vec<(&str, Value, String, Refusal)> = vec![
            ("unsigned", json!({}), body.clone(), Refusal::MissingTimestamp),
            ("no signature", json!({"x-webhook-timestamp": ts}), body.clone(), Refusal::MissingSignature),
            ("no timestamp", json!({"x-webhook-signature": good}), body.clone(), Refusal::MissingTimestamp),
            (
                "wrong secret",
                json!({"x-webhook-timestamp": ts, "x-webhook-signature": signature(b"another-secret-of-16+", &ts, body.as_bytes())}),
                body.clone(),
                Refusal::WrongSignature,
            ),
            (
                "tampered body",
                json!({"x-webhook-timestamp": ts, "x-webhook-signature": good}),
                doc("O2").to_string(),
                Refusal::WrongSignature,
            ),
            (
                "timestamp changed after signing",
                json!({"x-webhook-timestamp": (NOW + 1).to_string(), "x-webhook-signature": good}),
                body.clone(),
                Refusal::WrongSignature,
            ),
            (
                "no prefix",
                json!({"x-webhook-timestamp": ts, "x-webhook-signature": good.trim_start_matches("sha256=")}),
                body.clone(),
                Refusal::MalformedSignature,
            ),
            (
                "another algorithm",
                json!({"x-webhook-timestamp": ts, "x-webhook-signature": good.replace("sha256=", "sha1=")}),
                body.clone(),
                Refusal::MalformedSignature,
            ),
            (
                "truncated",
                json!({"x-webhook-timestamp": ts, "x-webhook-signature": &good[..good.len() - 2]}),
                body.clone(),
                Refusal::MalformedSignature,
            ),
            (
                "not hex",
                json!({"x-webhook-timestamp": ts, "x-webhook-signature": format!("sha256={}", "zz".repeat(32))}),
                body.clone(),
                Refusal::MalformedSignature,
            ),
            (
                "fractional timestamp",
                json!({"x-webhook-timestamp": format!("{ts}.5"), "x-webhook-signature": good}),
                body.clone(),
                Refusal::MalformedTimestamp,
            ),
            (
                "negative timestamp",
                json!({"x-webhook-timestamp": "-1", "x-webhook-signature": good}),
                body.clone(),
                Refusal::MalformedTimestamp,
            ),
            (
                "milliseconds",
                json!({"x-webhook-timestamp": format!("{}", NOW * 1000), "x-webhook-signature": good}),
                body.clone(),
                Refusal::MalformedTimestamp,
            ),
        ];
        for (name, headers, body, refusal) in cases {
            let event = event("POST", headers, &body, false);
            assert_eq!(verify(&webhook.secret, &event.headers, body.as_bytes(), NOW), Err(refusal), "{name}");
            assert_unauthorized(&answer(&webhook, &event).await);
        }
        assert!(webhook.queue.queued().is_empty());
        assert_eq!(*webhook.queue.calls.lock().unwrap(), 0, "the queue is never called");
    }

    #[tokio::test]
    async fn the_signature_may_be_in_upper_case_hex_and_is_checked_in_full() {
        let webhook = webhook(FakeQueue::default());
        let body = doc("O1").to_string();
        let ts = NOW.to_string();
        let good = signature(SECRET.as_bytes(), &ts, body.as_bytes());
        let upper = format!("sha256={}", good["sha256=".len()..].to_ascii_uppercase());
        let event1 = event("POST", json!({"x-webhook-timestamp": ts, "x-webhook-signature": upper}), &body, false);
        assert_eq!(answer(&webhook, &event1).await.status, 202);
        // One flipped bit at the very end is refused like one at the start.
        let mut last = good.clone().into_bytes();
        let end = last.len() - 1;
        last[end] = if last[end] == b'0' { b'1' } else { b'0' };
        let last = String::from_utf8(last).unwrap();
        let event2 = event("POST", json!({"x-webhook-timestamp": ts, "x-webhook-signature": last}), &body, false);
        assert_unauthorized(&answer(&webhook, &event2).await);
    }

    #[tokio::test]
    async fn stale_and_future_timestamps_are_refused_past_300_seconds() {
        let webhook = webhook(FakeQueue::default());
        let body = doc("O1").to_string();
        for (signed_at_time, accepted) in
            [(NOW - 300, true), (NOW + 300, true), (NOW - 301, false), (NOW + 301, false), (0, false)]
        {
            let reply = answer(&webhook, &signed_at(&body, signed_at_time)).await;
            if accepted {
                assert_eq!(reply.status, 202, "signed at {signed_at_time}");
            } else {
                assert_unauthorized(&reply);
                let event = signed_at(&body, signed_at_time);
                assert_eq!(verify(&webhook.secret, &event.headers, body.as_bytes(), NOW), Err(Refusal::Stale));
            }
        }
        assert_eq!(webhook.queue.queued().len(), 2);
    }

    #[tokio::test]
    async fn a_base64_body_is_verified_as_the_bytes_the_crm_sent() {
        let webhook = webhook(FakeQueue::default());
        let body = serde_json::to_string(&json!([doc("O1"), doc("O2")])).unwrap();
        let ts = NOW.to_string();
        let headers = json!({"x-webhook-timestamp": ts, "x-webhook-signature": signature(SECRET.as_bytes(), &ts, body.as_bytes())});
        let encoded = event("POST", headers.clone(), &BASE64.encode(&body), true);
        let reply = answer(&webhook, &encoded).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        assert_eq!(reply.body["queued"], 2);
        // The signature is over the decoded body, not over Lambda's base64 of it.
        let headers_over_base64 = json!({"x-webhook-timestamp": ts,
            "x-webhook-signature": signature(SECRET.as_bytes(), &ts, BASE64.encode(&body).as_bytes())});
        assert_unauthorized(&answer(&webhook, &event("POST", headers_over_base64, &BASE64.encode(&body), true)).await);
        assert_unauthorized(&answer(&webhook, &event("POST", headers, "not base64!", true)).await);
    }

    #[tokio::test]
    async fn a_list_of_100_is_queued_in_batches_of_10_in_order() {
        let webhook = webhook(FakeQueue::default());
        let docs: Vec<Value> = (1..=100).map(|i| doc(&format!("O{i}"))).collect();
        let reply = answer(&webhook, &signed(&json!(docs).to_string())).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        assert_eq!(reply.body["queued"], 100);
        let ids: Vec<&str> = reply.body["messageIds"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(ids.len(), 100);
        assert_eq!((ids[0], ids[10], ids[99]), ("msg-0-0", "msg-1-0", "msg-9-9"), "ids in the documents' order");
        assert_eq!(webhook.queue.batch_sizes(), [10; 10]);
        let queued: Vec<String> = webhook.queue.queued().iter().map(|r| r.opportunity.to_string()).collect();
        assert_eq!(queued.first().map(String::as_str), Some("O1"));
        assert_eq!(queued.last().map(String::as_str), Some("O100"));
    }

    #[tokio::test]
    async fn lists_of_101_or_none_and_bodies_that_are_not_json_are_400() {
        let webhook = webhook(FakeQueue::default());
        let docs: Vec<Value> = (1..=101).map(|i| doc(&format!("O{i}"))).collect();
        for (body, says) in [
            (json!(docs).to_string(), "101 documents"),
            ("[]".to_owned(), "empty"),
            ("{not json".to_owned(), "not JSON"),
            (String::new(), "not JSON"),
        ] {
            let reply = answer(&webhook, &signed(&body)).await;
            assert_eq!(reply.status, 400, "{body:.40}");
            assert!(reply.body["message"].as_str().unwrap().contains(says), "{}", reply.body);
        }
        assert_eq!(*webhook.queue.calls.lock().unwrap(), 0);
    }

    #[tokio::test]
    async fn one_invalid_member_refuses_the_whole_body_and_each_is_named() {
        let webhook = webhook(FakeQueue::default());
        let mut bad_opportunity = doc("O3");
        bad_opportunity["OpportunityIdentifier"] = json!("opp-3");
        let mut two_faults = doc("O4");
        two_faults["RelatedEntityType"] = json!("solutions");
        two_faults.as_object_mut().unwrap().remove("RelatedEntityIdentifier");
        let mut production = doc("O5");
        production["Catalog"] = json!("AWS");
        let body = json!([doc("O1"), doc("O2"), bad_opportunity, two_faults, production, "a string"]).to_string();
        let reply = answer(&webhook, &signed(&body)).await;
        assert_eq!(reply.status, 400);
        assert_eq!(reply.body["message"], "4 of 6 document(s) invalid: nothing was queued");
        let named: Vec<(u64, &str)> = reply.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["index"].as_u64().unwrap(), e["field"].as_str().unwrap()))
            .collect();
        assert_eq!(
            named,
            [
                (2, "OpportunityIdentifier"),
                (3, "RelatedEntityIdentifier"),
                (3, "RelatedEntityType"),
                (4, "Catalog"),
                (5, "request")
            ]
        );
        assert!(reply.body["errors"][3]["message"].as_str().unwrap().contains("ALLOWED_CATALOGS=Sandbox"));
        assert_eq!(*webhook.queue.calls.lock().unwrap(), 0, "nothing queued, not even the valid ones");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_413_before_its_signature_is_checked() {
        let webhook =
            Webhook::new(WebhookSecret::new(SECRET).unwrap(), FakeQueue::default(), vec![Catalog::Sandbox], 1024);
        let at_limit = format!("{:<1024}", doc("O1").to_string());
        assert_eq!(answer(&webhook, &signed(&at_limit)).await.status, 202, "exactly the limit is taken");
        let over = format!("{:<1025}", doc("O1").to_string());
        let reply = answer(&webhook, &signed(&over)).await;
        assert_eq!((reply.status, reply.body["message"].as_str()), (413, Some("the body is larger than 1024 bytes")));
        let unsigned = event("POST", json!({}), &over, false);
        assert_eq!(answer(&webhook, &unsigned).await.status, 413);
        for encoded in [BASE64.encode(over.as_bytes()), "A".repeat(10_000)] {
            assert_eq!(answer(&webhook, &event("POST", json!({}), &encoded, true)).await.status, 413);
        }
        let at_limit_encoded = event("POST", json!({}), &BASE64.encode(at_limit.as_bytes()), true);
        assert_unauthorized(&answer(&webhook, &at_limit_encoded).await);
        assert_eq!(webhook.queue.queued().len(), 1);
    }

    #[tokio::test]
    async fn only_post_is_taken() {
        let webhook = webhook(FakeQueue::default());
        let mut get = signed(&doc("O1").to_string());
        get.request_context.http.method = Some("GET".into());
        let reply = answer(&webhook, &get).await;
        assert_eq!(reply.status, 405);
        assert_eq!(serde_json::to_value(reply.into_response()).unwrap()["headers"]["allow"], "POST");
        assert!(webhook.queue.queued().is_empty());
    }

    #[tokio::test]
    async fn a_queue_failure_is_503_so_the_crm_retries() {
        let webhook = webhook(FakeQueue::failing(&[(0, 0)]));
        let reply = answer(&webhook, &signed(&doc("O1").to_string())).await;
        assert_eq!(reply.status, 503);
        assert!(reply.body.get("messageIds").is_none());
        let response = serde_json::to_value(reply.into_response()).unwrap();
        assert_eq!(response["headers"]["retry-after"], "10");
    }

    #[tokio::test]
    async fn a_partial_failure_is_503_even_though_other_batches_went_in() {
        // 25 documents: batches of 10, 10 and 5; the second takes 4 of its 10 and fails.
        let webhook = webhook(FakeQueue::failing(&[(1, 4)]));
        let docs: Vec<Value> = (1..=25).map(|i| doc(&format!("O{i}"))).collect();
        let reply = answer(&webhook, &signed(&json!(docs).to_string())).await;
        assert_eq!(reply.status, 503);
        // What went in stays in: the CRM's retry queues it again, and the pipeline takes it twice safely.
        assert_eq!(webhook.queue.batch_sizes(), [10, 4, 5]);
    }

    #[tokio::test]
    async fn a_fifo_queue_takes_the_batches_one_after_another_and_none_after_a_failure() {
        let docs: Vec<Value> = (1..=25).map(|i| doc(&format!("O{i}"))).collect();
        let body = json!(docs).to_string();

        let fifo = webhook(FakeQueue::fifo(&[]));
        let reply = answer(&fifo, &signed(&body)).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        assert_eq!(fifo.queue.batch_sizes(), [10, 10, 5]);
        assert_eq!(fifo.queue.most_in_flight(), 1, "never two sends at once");

        // The second batch takes 4 of its 10 and fails: the third, whose requests come after those
        // 6, is not sent at all (the CRM's retry sends the whole list again, in order).
        let failing = webhook(FakeQueue::fifo(&[(1, 4)]));
        let reply = answer(&failing, &signed(&body)).await;
        assert_eq!(reply.status, 503);
        assert_eq!(failing.queue.batch_sizes(), [10, 4]);

        // A standard queue takes them all at once.
        let standard = webhook(FakeQueue::default());
        assert_eq!(answer(&standard, &signed(&body)).await.status, 202);
        assert_eq!(standard.queue.most_in_flight(), 3);
    }

    /// `events/webhook-signed.json` is signed with the documented test secret. Its timestamp is fixed,
    /// so it is accepted only within 300 s of it: `tools/sign-webhook` re-signs it for a live run.
    #[tokio::test]
    async fn the_sample_event_is_signed_with_the_documented_secret() {
        let sample: Value =
            serde_json::from_str(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/events/webhook-signed.json")))
                .unwrap();
        let event: LambdaFunctionUrlRequest = serde_json::from_value(sample).unwrap();
        let signed_at: u64 = event.headers[TIMESTAMP_HEADER].to_str().unwrap().parse().unwrap();
        let webhook = webhook(FakeQueue::default());
        let reply = webhook.answer(&event, signed_at + 5).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        assert_eq!(
            serde_json::to_value(&webhook.queue.queued()[0]).unwrap(),
            json!({"Catalog": "Sandbox", "OpportunityIdentifier": "O2000004", "RelatedEntityType": "Solutions", "RelatedEntityIdentifier": "S-2000004"})
        );
        assert_unauthorized(&webhook.answer(&event, signed_at + MAX_SKEW_SECONDS + 1).await);
    }
}
