//! CRM webhooks: a signed HTTPS door into the work queue, as its own function
//! (`opportunity-disassociator-webhook`).
//!
//! A CRM POSTs to the function's URL (a Lambda Function URL, payload format 2.0) one request document,
//! or a JSON list of 1 to [`MAX_DOCUMENTS`], plain or base64-encoded as Lambda delivers it. The webhook
//! never calls Partner Central: it checks the [`signature`], then the [`documents`], and buffers the
//! requests in the work queue, from where the worker paces, retries and dead-letters them like every
//! other request. Its answers ([`reply`]) are listed in docs/webhook.md.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lambda_events::lambda_function_urls::{LambdaFunctionUrlRequest, LambdaFunctionUrlResponse};
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use tracing::{Instrument, error, info, info_span, warn};

use crate::aws::work_queue::{MAX_BATCH, WorkQueue};
use crate::domain::outcome::{Failure, FunctionError, codes};
use crate::domain::request::{Catalog, DisassociationRequest};
use crate::domain::secret::WebhookSecret;

pub mod documents;
pub mod reply;
pub mod signature;

use documents::BodyError;
pub use documents::MAX_DOCUMENTS;
use reply::Reply;
use signature::{Refusal, verify};

/// The webhook: its secret, the work queue, and the rules a document must meet to be queued.
pub struct Webhook<Q> {
    secret: WebhookSecret,
    queue: Q,
    allowed_catalogs: Vec<Catalog>,
    max_body_bytes: usize,
}

impl<Q: WorkQueue> Webhook<Q> {
    pub fn new(secret: WebhookSecret, queue: Q, allowed_catalogs: Vec<Catalog>, max_body_bytes: usize) -> Self {
        Self { secret, queue, allowed_catalogs, max_body_bytes }
    }

    /// Handles one invocation: a Function URL request is always answered over HTTP, never with a
    /// function error (Lambda would answer that 502, which says nothing to the CRM). Any other event
    /// is no business of this function's.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<LambdaFunctionUrlResponse, FunctionError> {
        let (payload, context) = event.into_parts();
        if !is_function_url(&payload) {
            let failure = Failure::new(
                codes::UNSUPPORTED_EVENT,
                "not a Function URL request: the webhook function takes only its URL's requests",
            );
            error!(request_id = %context.request_id, error_code = %failure.code, "{}", failure.message);
            return Err(failure.into());
        }
        let request = serde_json::from_value::<LambdaFunctionUrlRequest>(payload);
        let source_ip = request.as_ref().ok().and_then(|r| r.request_context.http.source_ip.clone());
        let span = info_span!("webhook", request_id = %context.request_id, source_ip);
        let reply = async {
            match request {
                Err(e) => {
                    warn!(reason = without_quoted_values(&e.to_string()), "the Function URL event could not be read");
                    refuse(Refusal::UnreadableEvent)
                }
                Ok(request) => {
                    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                    self.answer(&request, now).await
                }
            }
        }
        .instrument(span)
        .await;
        Ok(reply.into_response())
    }

    /// Answers one Function URL request received at `now` (Unix seconds).
    pub async fn answer(&self, event: &LambdaFunctionUrlRequest, now: u64) -> Reply {
        let method = event.request_context.http.method.as_deref().unwrap_or_default();
        if !method.eq_ignore_ascii_case("POST") {
            info!(method, "webhook refused (405): not a POST");
            return Reply::method_not_allowed();
        }
        // The size is checked before the signature, so an unsigned flood costs no hashing.
        let body = match documents::raw_body(event, self.max_body_bytes) {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                info!(max_body_bytes = self.max_body_bytes, "webhook refused (413): the body is too large");
                return Reply::too_large(self.max_body_bytes);
            }
            Err(BodyError::NotBase64) => return refuse(Refusal::UndecodableBody),
        };
        if let Err(refusal) = verify(&self.secret, &event.headers, &body, now) {
            return refuse(refusal);
        }
        match documents::requests(&body, &self.allowed_catalogs) {
            Ok(requests) => self.queue(&requests).await,
            Err(rejection) => {
                // The log line says what the reply says, as the reply says it.
                info!(errors = %json!(rejection.errors), "webhook refused (400): {}", json!(rejection.message));
                Reply::bad_request(rejection)
            }
        }
    }

    /// Queues every request, in batches sent at once; 202 only when every message was taken. A FIFO
    /// queue orders a group's messages as their sends arrive: there the batches go one after another,
    /// and none is sent after one that failed, so that no batch overtakes an earlier one.
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
            return Reply::accepted(message_ids);
        }
        // Answering 202 would lose the ones not queued; the CRM's retry queues the others a second
        // time, which the worker takes as already done.
        error!(
            queued,
            requests = requests.len(),
            errors = ?failures,
            "webhook answered 503: the work queue did not take every message; the CRM's retry queues the {queued} already queued again"
        );
        Reply::unavailable()
    }
}

/// Logs why (never the secret or the expected signature), and answers 401.
fn refuse(refusal: Refusal) -> Reply {
    warn!(reason = %refusal, "webhook refused (401)");
    Reply::unauthorized()
}

/// A Function URL request (payload format 2.0): `version` "2.0" and `requestContext.http.method`.
fn is_function_url(value: &Value) -> bool {
    value.get("version").and_then(Value::as_str) == Some("2.0")
        && value.pointer("/requestContext/http/method").is_some_and(Value::is_string)
}

/// A decoding error with every quoted value blanked out: such a value may be a header (a signature,
/// say), which has no place in a log line.
fn without_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for (i, part) in message.split('"').enumerate() {
        out.push_str(if i % 2 == 1 { "\"...\"" } else { part });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::work_queue::QueueError;
    use crate::webhook::signature::{MAX_SKEW_SECONDS, TIMESTAMP_HEADER, signature};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use serde_json::json;
    use std::sync::Mutex;

    const SECRET: &str = "demo-webhook-secret";
    const NOW: u64 = 1_764_000_000;
    const MAX_BODY: usize = 256 * 1024;

    /// A work queue in memory: records every batch, fails the calls it is told to.
    #[derive(Default)]
    struct FakeWorkQueue {
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

    impl FakeWorkQueue {
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

    impl WorkQueue for FakeWorkQueue {
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

    fn webhook(queue: FakeWorkQueue) -> Webhook<FakeWorkQueue> {
        Webhook::new(WebhookSecret::new(SECRET).unwrap(), queue, vec![Catalog::Sandbox], MAX_BODY)
    }

    fn doc(opportunity: &str) -> Value {
        json!({"Catalog": "Sandbox", "OpportunityIdentifier": opportunity, "RelatedEntityType": "Solutions", "RelatedEntityIdentifier": "S-2000004"})
    }

    fn event(method: &str, headers: Value, body: &str, base64: bool) -> LambdaFunctionUrlRequest {
        serde_json::from_value(fixtures::function_url(method, headers, body, base64)).expect("a Function URL event")
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

    async fn answer(webhook: &Webhook<FakeWorkQueue>, event: &LambdaFunctionUrlRequest) -> Reply {
        webhook.answer(event, NOW).await
    }

    fn assert_unauthorized(reply: &Reply) {
        assert_eq!(reply.status, 401);
        assert_eq!(reply.body, json!({"message": "unauthorized"}), "a 401 says nothing more");
    }

    #[tokio::test]
    async fn a_signed_document_is_queued_as_its_canonical_request() {
        let webhook = webhook(FakeWorkQueue::default());
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
        let webhook = webhook(FakeWorkQueue::default());
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
        let webhook = webhook(FakeWorkQueue::default());
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
        let webhook = webhook(FakeWorkQueue::default());
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
        let webhook = webhook(FakeWorkQueue::default());
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
        let webhook = webhook(FakeWorkQueue::default());
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
        let webhook = webhook(FakeWorkQueue::default());
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
        let webhook = webhook(FakeWorkQueue::default());
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
        let webhook = webhook(FakeWorkQueue::default());
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
    async fn a_replacement_is_checked_like_the_rest_and_queued_with_its_replace_with() {
        let webhook = webhook(FakeWorkQueue::default());
        let marketplace = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-abc";
        let replacement = fixtures::replacing(doc("O1"), "AwsMarketplaceSolutions", marketplace);
        let not_an_arn = fixtures::replacing(doc("O2"), "AwsMarketplaceSolutions", "sol-abc");
        let body = json!([replacement, not_an_arn]).to_string();
        let reply = answer(&webhook, &signed(&body)).await;
        assert_eq!(reply.status, 400);
        assert_eq!(reply.body["errors"][0]["field"], "ReplaceWith.RelatedEntityIdentifier");
        assert_eq!(reply.body["errors"][0]["index"], 1);

        let reply = answer(&webhook, &signed(&replacement.to_string())).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        let queued = webhook.queue.queued();
        let body: Value = serde_json::from_str(&crate::aws::work_queue::message_body(&queued[0])).unwrap();
        assert_eq!(body, replacement, "the message carries ReplaceWith to the worker");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_413_before_its_signature_is_checked() {
        let webhook =
            Webhook::new(WebhookSecret::new(SECRET).unwrap(), FakeWorkQueue::default(), vec![Catalog::Sandbox], 1024);
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
        let webhook = webhook(FakeWorkQueue::default());
        let mut get = signed(&doc("O1").to_string());
        get.request_context.http.method = Some("GET".into());
        let reply = answer(&webhook, &get).await;
        assert_eq!(reply.status, 405);
        assert_eq!(serde_json::to_value(reply.into_response()).unwrap()["headers"]["allow"], "POST");
        assert!(webhook.queue.queued().is_empty());
    }

    #[tokio::test]
    async fn a_queue_failure_is_503_so_the_crm_retries() {
        let webhook = webhook(FakeWorkQueue::failing(&[(0, 0)]));
        let reply = answer(&webhook, &signed(&doc("O1").to_string())).await;
        assert_eq!(reply.status, 503);
        assert!(reply.body.get("messageIds").is_none());
        let response = serde_json::to_value(reply.into_response()).unwrap();
        assert_eq!(response["headers"]["retry-after"], "10");
    }

    #[tokio::test]
    async fn a_partial_failure_is_503_even_though_other_batches_went_in() {
        // 25 documents: batches of 10, 10 and 5; the second takes 4 of its 10 and fails.
        let webhook = webhook(FakeWorkQueue::failing(&[(1, 4)]));
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

        let fifo = webhook(FakeWorkQueue::fifo(&[]));
        let reply = answer(&fifo, &signed(&body)).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        assert_eq!(fifo.queue.batch_sizes(), [10, 10, 5]);
        assert_eq!(fifo.queue.most_in_flight(), 1, "never two sends at once");

        // The second batch takes 4 of its 10 and fails: the third, whose requests come after those
        // 6, is not sent at all (the CRM's retry sends the whole list again, in order).
        let failing = webhook(FakeWorkQueue::fifo(&[(1, 4)]));
        let reply = answer(&failing, &signed(&body)).await;
        assert_eq!(reply.status, 503);
        assert_eq!(failing.queue.batch_sizes(), [10, 4]);

        // A standard queue takes them all at once.
        let standard = webhook(FakeWorkQueue::default());
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
        let webhook = webhook(FakeWorkQueue::default());
        let reply = webhook.answer(&event, signed_at + 5).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        assert_eq!(
            serde_json::to_value(&webhook.queue.queued()[0]).unwrap(),
            json!({"Catalog": "Sandbox", "OpportunityIdentifier": "O2000004", "RelatedEntityType": "Solutions", "RelatedEntityIdentifier": "S-2000004"})
        );
        assert_unauthorized(&webhook.answer(&event, signed_at + MAX_SKEW_SECONDS + 1).await);
    }

    fn invocation(payload: Value) -> LambdaEvent<Value> {
        LambdaEvent::new(payload, lambda_runtime::Context::default())
    }

    #[tokio::test]
    async fn an_unreadable_function_url_event_is_401_and_its_values_are_not_logged() {
        let webhook = webhook(FakeWorkQueue::default());
        let mut broken = fixtures::function_url("POST", json!({}), "{}", false);
        broken["isBase64Encoded"] = json!("sha256=abc");
        let response = webhook.handle(invocation(broken.clone())).await.unwrap();
        assert_eq!(response.status_code, 401);
        let reason = serde_json::from_value::<LambdaFunctionUrlRequest>(broken).unwrap_err().to_string();
        let logged = without_quoted_values(&reason);
        assert!(logged.contains("invalid type") && !logged.contains("sha256=abc"), "{logged}");
        assert!(webhook.queue.queued().is_empty());
    }

    #[tokio::test]
    async fn an_event_that_is_no_function_url_request_is_unsupported() {
        let webhook = webhook(FakeWorkQueue::default());
        let error = webhook.handle(invocation(doc("O1"))).await.unwrap_err();
        assert_eq!(error.error_type, "UnsupportedEvent");
        assert!(webhook.queue.queued().is_empty());
    }
}
