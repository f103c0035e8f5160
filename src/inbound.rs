//! Inbound events: the function recognises the shape itself, and decodes each request once.
//!
//! - SQS: `{"Records": [...]}`, each body a request document or an EventBridge event carrying one;
//! - EventBridge: an event (`source`, `detail-type`, `detail`) whose `detail` is the request document;
//! - webhook: a Lambda Function URL request (payload format 2.0: `version` "2.0" and
//!   `requestContext.http.method`), a CRM's signed POST, answered over HTTP by [`crate::webhook`];
//! - direct: the request document itself (`aws lambda invoke`, `sam local invoke`, Step Functions).
//!
//! Decoding never fails the whole event for one bad record: each record carries its own result.

use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest;
use aws_lambda_events::sqs::SqsMessage;
use serde_json::Value;

use crate::outcome::{Failure, codes};
use crate::request::{self, DisassociationRequest};

/// An event, by shape.
#[derive(Debug)]
pub enum Inbound {
    Sqs(SqsBatch),
    EventBridge(Envelope),
    /// A Function URL request: `Err` (why) when it has the shape but cannot be read.
    Webhook(Result<Box<LambdaFunctionUrlRequest>, String>),
    Direct(Result<DisassociationRequest, Failure>),
    /// Not an event this function takes: answered with a function error.
    Unsupported(Failure),
}

/// The records of an SQS event, in order.
#[derive(Debug)]
pub struct SqsBatch {
    pub records: Vec<SqsRecord>,
    /// Whether the source queue is FIFO (its ARN ends in `.fifo`).
    pub fifo: bool,
}

/// One SQS record, decoded.
#[derive(Debug)]
pub struct SqsRecord {
    /// `None` when the record has no usable message id: such a record can never be reported failed
    /// (an empty `itemIdentifier` fails the whole batch), so it is dead-lettered instead.
    pub message_id: Option<String>,
    /// The FIFO message group.
    pub group: Option<String>,
    /// How many times SQS has delivered the message, this time included (`ApproximateReceiveCount`).
    pub receive_count: Option<u32>,
    /// The original body, unchanged, for the dead-letter queue.
    pub body: String,
    /// The EventBridge event id when the body is an EventBridge event.
    pub event_id: Option<String>,
    pub request: Result<DisassociationRequest, Failure>,
}

/// An EventBridge event, decoded.
#[derive(Debug)]
pub struct Envelope {
    pub id: Option<String>,
    pub request: Result<DisassociationRequest, Failure>,
}

/// Recognises the event's shape and decodes every request in it.
pub fn classify(event: &Value) -> Inbound {
    if let Some(records) = event.get("Records") {
        return sqs_batch(records);
    }
    if is_eventbridge(event) {
        return Inbound::EventBridge(envelope(event));
    }
    if is_function_url(event) {
        return Inbound::Webhook(
            serde_json::from_value(event.clone()).map(Box::new).map_err(|e| without_quoted_values(&e.to_string())),
        );
    }
    Inbound::Direct(DisassociationRequest::from_document(event).map_err(Failure::from))
}

fn is_eventbridge(value: &Value) -> bool {
    value.get("detail-type").is_some() && value.get("source").is_some()
}

/// A Function URL event. Lambda builds it, so a caller controls only its headers and body: a request
/// member at the top level means a direct invocation (by someone allowed to invoke the function), so
/// such a document stays a direct request whatever else it carries.
fn is_function_url(value: &Value) -> bool {
    value.get("version").and_then(Value::as_str) == Some("2.0")
        && value.pointer("/requestContext/http/method").is_some_and(Value::is_string)
        && [
            request::CATALOG,
            request::OPPORTUNITY_IDENTIFIER,
            request::RELATED_ENTITY_TYPE,
            request::RELATED_ENTITY_IDENTIFIER,
        ]
        .iter()
        .all(|member| value.get(member).is_none())
}

/// A decoding error with every quoted value blanked out: for a Function URL event such a value may
/// be a header (a signature, say), which has no place in a log line.
fn without_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for (i, part) in message.split('"').enumerate() {
        out.push_str(if i % 2 == 1 { "\"...\"" } else { part });
    }
    out
}

fn envelope(event: &Value) -> Envelope {
    let id = event.get("id").and_then(Value::as_str).map(str::to_owned);
    let request = match event.get("detail") {
        None | Some(Value::Null) => Err(Failure::new(
            codes::VALIDATION_ERROR,
            "the EventBridge event has no detail: it must carry the request document",
        )),
        Some(detail) => DisassociationRequest::from_document(detail).map_err(Failure::from),
    };
    Envelope { id, request }
}

fn sqs_batch(records: &Value) -> Inbound {
    let Some(records) = records.as_array() else {
        return Inbound::Unsupported(Failure::new(codes::UNSUPPORTED_EVENT, "Records must be an array of SQS records"));
    };
    let mut sources = records.iter().filter_map(|r| r.get("eventSource").and_then(Value::as_str)).peekable();
    if let Some(source) = sources.clone().find(|s| *s != "aws:sqs") {
        return Inbound::Unsupported(Failure::new(
            codes::UNSUPPORTED_EVENT,
            format!("not an SQS event (eventSource {source:?}): the function takes SQS, EventBridge and direct events"),
        ));
    }
    // Lambda never sends an empty batch, and names the source on every record of one. `Records` with no
    // record from SQS is someone else's event (SNS spells it `EventSource`), or a document that merely
    // has such a member: answering it with an empty batch response would report work that never ran.
    if sources.peek().is_none() {
        return Inbound::Unsupported(Failure::new(
            codes::UNSUPPORTED_EVENT,
            "not an SQS event (no record with eventSource \"aws:sqs\"): the function takes SQS, EventBridge and direct events",
        ));
    }
    let fifo = records
        .iter()
        .filter_map(|r| r.get("eventSourceARN").and_then(Value::as_str))
        .any(|arn| arn.ends_with(".fifo"));
    Inbound::Sqs(SqsBatch { records: records.iter().map(sqs_record).collect(), fifo })
}

/// A record Lambda wrote for a failed asynchronous invocation (the `OnFailure` destination of the
/// direct EventBridge path) carries the original event in `requestPayload`: redriven from the
/// dead-letter queue to the work queue, it is that event which is processed again. It is known by
/// `requestContext.functionArn` and `requestPayload`, not by `responseContext`: an event that aged out
/// in the asynchronous queue (`EventAgeExceeded`) may never have reached the function, and so have no
/// response to describe. No request document has those members.
fn unwrap_async_record(doc: Value) -> Value {
    let is_invocation_record =
        doc.get("requestContext").and_then(|c| c.get("functionArn")).is_some() && doc.get("requestPayload").is_some();
    match doc {
        Value::Object(mut map) if is_invocation_record => map.remove("requestPayload").unwrap_or(Value::Null),
        other => other,
    }
}

fn sqs_record(record: &Value) -> SqsRecord {
    let message: SqsMessage = match serde_json::from_value(record.clone()) {
        Ok(message) => message,
        Err(e) => {
            // Keep what can be kept: the id, so the record fails alone; the record itself as the body.
            let message_id = record.get("messageId").and_then(Value::as_str).filter(|id| !id.is_empty());
            return SqsRecord {
                message_id: message_id.map(str::to_owned),
                group: None,
                receive_count: None,
                body: record.to_string(),
                event_id: None,
                request: Err(Failure::new(codes::VALIDATION_ERROR, format!("malformed SQS record: {e}"))),
            };
        }
    };
    let body = message.body.unwrap_or_default();
    let (event_id, request) = match serde_json::from_str::<Value>(&body).map(unwrap_async_record) {
        Err(e) => (None, Err(Failure::new(codes::VALIDATION_ERROR, format!("the message body is not JSON: {e}")))),
        Ok(doc) if is_eventbridge(&doc) => {
            let envelope = envelope(&doc);
            (envelope.id, envelope.request)
        }
        Ok(doc) => (None, DisassociationRequest::from_document(&doc).map_err(Failure::from)),
    };
    SqsRecord {
        message_id: message.message_id.filter(|id| !id.is_empty()),
        group: message.attributes.get("MessageGroupId").cloned(),
        receive_count: message.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()),
        body,
        event_id,
        request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request_doc() -> Value {
        json!({"Catalog": "Sandbox", "OpportunityIdentifier": "O1", "RelatedEntityType": "Solutions", "RelatedEntityIdentifier": "S-1"})
    }

    fn eventbridge(detail: Value) -> Value {
        json!({"version": "0", "id": "ev-1", "source": "com.example.crm", "detail-type": "Opportunity Disassociation Requested", "detail": detail})
    }

    fn sqs(records: Vec<Value>) -> Value {
        json!({ "Records": records })
    }

    fn record(id: &str, body: &str) -> Value {
        json!({"messageId": id, "body": body, "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:work", "attributes": {}})
    }

    #[test]
    fn a_plain_document_is_a_direct_invocation() {
        let Inbound::Direct(Ok(request)) = classify(&request_doc()) else { panic!("expected direct") };
        assert_eq!(request.opportunity.as_str(), "O1");
        let Inbound::Direct(Err(failure)) = classify(&json!({"Catalog": "Sandbox"})) else { panic!("expected direct") };
        assert_eq!(failure.code, "ValidationError");
        assert!(failure.message.contains("OpportunityIdentifier"));
    }

    #[test]
    fn an_eventbridge_event_carries_the_request_in_detail() {
        let Inbound::EventBridge(envelope) = classify(&eventbridge(request_doc())) else {
            panic!("expected EventBridge")
        };
        assert_eq!(envelope.id.as_deref(), Some("ev-1"));
        assert!(envelope.request.is_ok());
        let mut no_detail = eventbridge(Value::Null);
        no_detail.as_object_mut().unwrap().remove("detail");
        let Inbound::EventBridge(envelope) = classify(&no_detail) else { panic!("expected EventBridge") };
        assert!(envelope.request.unwrap_err().message.contains("no detail"));
    }

    #[test]
    fn sqs_bodies_may_be_documents_or_eventbridge_events_and_fail_alone() {
        let event = sqs(vec![
            record("m1", &request_doc().to_string()),
            record("m2", &eventbridge(request_doc()).to_string()),
            record("m3", "not json"),
            record("m4", "{\"Catalog\": \"Sandbox\"}"),
            json!({"messageId": "m5", "body": 42, "eventSource": "aws:sqs"}),
            record("", &request_doc().to_string()),
        ]);
        let Inbound::Sqs(batch) = classify(&event) else { panic!("expected SQS") };
        assert!(!batch.fifo);
        let r = &batch.records;
        assert_eq!(r.len(), 6);
        assert!(r[0].request.is_ok() && r[0].event_id.is_none());
        assert!(r[1].request.is_ok());
        assert_eq!(r[1].event_id.as_deref(), Some("ev-1"));
        assert!(r[2].request.as_ref().unwrap_err().message.contains("not JSON"));
        assert_eq!(r[2].body, "not json", "the original body is kept unchanged");
        assert!(r[3].request.as_ref().unwrap_err().message.contains("RelatedEntityType"));
        assert_eq!(r[4].message_id.as_deref(), Some("m5"));
        assert!(r[4].request.as_ref().unwrap_err().message.contains("malformed SQS record"));
        assert_eq!(r[5].message_id, None, "an empty message id is never used");
    }

    /// The record Lambda writes for a failed asynchronous invocation of an EventBridge event, without
    /// its response members.
    fn invocation_record(condition: &str, invoke_count: u32) -> Value {
        json!({
            "version": "1.0",
            "timestamp": "2026-11-26T09:00:00.000Z",
            "requestContext": {"requestId": "r-1", "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST",
                               "condition": condition, "approximateInvokeCount": invoke_count},
            "requestPayload": eventbridge(request_doc())
        })
    }

    #[test]
    fn a_redriven_async_invocation_record_is_processed_as_its_original_event() {
        let mut invocation_record = invocation_record("RetriesExhausted", 3);
        invocation_record["responseContext"] =
            json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"});
        invocation_record["responsePayload"] =
            json!({"errorType": "ThrottlingException", "errorMessage": "Rate exceeded"});
        let Inbound::Sqs(batch) = classify(&sqs(vec![record("m1", &invocation_record.to_string())])) else {
            panic!("expected SQS")
        };
        assert!(batch.records[0].request.is_ok(), "{:?}", batch.records[0].request);
        assert_eq!(batch.records[0].event_id.as_deref(), Some("ev-1"));
        assert_eq!(batch.records[0].body, invocation_record.to_string(), "the body itself is kept unchanged");
    }

    #[test]
    fn an_invocation_record_without_a_response_context_is_unwrapped_too() {
        // An event that aged out in the asynchronous queue before the function ever ran.
        let invocation_record = invocation_record("EventAgeExceeded", 0);
        let Inbound::Sqs(batch) = classify(&sqs(vec![record("m1", &invocation_record.to_string())])) else {
            panic!("expected SQS")
        };
        assert!(batch.records[0].request.is_ok(), "{:?}", batch.records[0].request);
        assert_eq!(batch.records[0].event_id.as_deref(), Some("ev-1"));
    }

    #[test]
    fn the_receive_count_is_read_from_the_record_attributes() {
        let mut counted = record("m1", &request_doc().to_string());
        counted["attributes"] = json!({"ApproximateReceiveCount": "3"});
        let Inbound::Sqs(batch) = classify(&sqs(vec![counted, record("m2", &request_doc().to_string())])) else {
            panic!("expected SQS")
        };
        assert_eq!(batch.records[0].receive_count, Some(3));
        assert_eq!(batch.records[1].receive_count, None);
    }

    #[test]
    fn fifo_batches_are_recognised_with_their_groups() {
        let mut rec = record("m1", &request_doc().to_string());
        rec["eventSourceARN"] = json!("arn:aws:sqs:us-east-1:123456789012:work.fifo");
        rec["attributes"] = json!({"MessageGroupId": "g1"});
        let Inbound::Sqs(batch) = classify(&sqs(vec![rec])) else { panic!("expected SQS") };
        assert!(batch.fifo);
        assert_eq!(batch.records[0].group.as_deref(), Some("g1"));
    }

    fn function_url(body: &str) -> Value {
        json!({"version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
            "headers": {"x-webhook-timestamp": "1764000000", "x-webhook-signature": "sha256=00"},
            "requestContext": {"http": {"method": "POST", "path": "/", "sourceIp": "203.0.113.9"}, "timeEpoch": 1764000000000u64},
            "body": body, "isBase64Encoded": false})
    }

    #[test]
    fn a_function_url_request_is_a_webhook() {
        let body = request_doc().to_string();
        let Inbound::Webhook(Ok(request)) = classify(&function_url(&body)) else { panic!("expected a webhook") };
        assert_eq!(request.body.as_deref(), Some(body.as_str()));
        assert_eq!(request.request_context.http.method.as_deref(), Some("POST"));
        assert_eq!(request.headers["x-webhook-timestamp"], "1764000000");
        // The shape, but unreadable (Lambda never sends this): still a webhook, refused as such.
        let mut broken = function_url(&body);
        broken["isBase64Encoded"] = json!("sha256=abc");
        let Inbound::Webhook(Err(reason)) = classify(&broken) else { panic!("expected an unreadable webhook") };
        assert!(reason.contains("invalid type") && !reason.contains("sha256=abc"), "{reason}");
    }

    #[test]
    fn a_webhook_is_never_confused_with_a_direct_request_or_an_eventbridge_event() {
        // A direct request carrying stray webhook-like members stays a direct request.
        let mut doc = request_doc();
        doc["version"] = json!("2.0");
        doc["requestContext"] = json!({"http": {"method": "POST"}});
        assert!(matches!(classify(&doc), Inbound::Direct(Ok(_))));
        // EventBridge events are version "0"; a 2.0 without requestContext.http is no Function URL event.
        assert!(matches!(classify(&eventbridge(request_doc())), Inbound::EventBridge(_)));
        assert!(matches!(classify(&json!({"version": "2.0", "body": "{}"})), Inbound::Direct(Err(_))));
        let mut rest_api = function_url("{}");
        rest_api["version"] = json!("1.0");
        assert!(matches!(classify(&rest_api), Inbound::Direct(Err(_))));
        // A body that is itself a request document is still the webhook's to check.
        assert!(matches!(classify(&function_url(&request_doc().to_string())), Inbound::Webhook(Ok(_))));
    }

    #[test]
    fn other_record_sources_are_unsupported() {
        let event = sqs(vec![json!({"eventSource": "aws:s3", "s3": {}})]);
        let Inbound::Unsupported(failure) = classify(&event) else { panic!("expected unsupported") };
        assert_eq!(failure.code, "UnsupportedEvent");
        assert!(matches!(classify(&json!({"Records": "x"})), Inbound::Unsupported(_)));
    }

    #[test]
    fn records_with_none_from_sqs_are_no_batch() {
        // A direct request that also carries a `Records` member is not an empty batch done.
        let mut doc = request_doc();
        doc["Records"] = json!([]);
        let Inbound::Unsupported(failure) = classify(&doc) else { panic!("expected unsupported") };
        assert!(failure.message.contains("no record with eventSource"), "{}", failure.message);
        // SNS names its source `EventSource`.
        let sns = sqs(vec![json!({"EventSource": "aws:sns", "Sns": {"Message": request_doc().to_string()}})]);
        assert!(matches!(classify(&sns), Inbound::Unsupported(_)));
        // One record that names SQS is enough: a malformed sibling still fails alone.
        let batch = sqs(vec![record("m-1", &request_doc().to_string()), json!({"messageId": "m-2"})]);
        let Inbound::Sqs(batch) = classify(&batch) else { panic!("expected a batch") };
        assert_eq!(batch.records.len(), 2);
        assert!(batch.records[1].request.is_err());
    }
}
