//! Inbound events: the worker recognises the shape itself, and decodes each request once.
//!
//! - SQS: `{"Records": [...]}`, each body a request document, an EventBridge event carrying one, or
//!   the record Lambda wrote for a failed asynchronous invocation of such an event (redriven);
//! - EventBridge: an event (`source`, `detail-type`, `detail`) whose `detail` is the request document;
//! - direct: the request document itself (`aws lambda invoke`, `sam local invoke`, Step Functions).
//!
//! Anything else is unsupported, a Function URL request included: the webhook is its own function.
//! Decoding never fails the whole event for one bad record: each record carries its own result.

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::hold::Carried;
use crate::aws::is_fifo;
use crate::aws::sqs_safe_json;
use crate::domain::outcome::{Failure, codes};
use crate::domain::request::{self, DisassociationRequest};

/// An invocation's payload: the JSON as it arrived, and parsed. The runtime deserializes it, so a
/// payload that is not JSON is refused by the runtime itself, before the worker runs.
#[derive(Debug)]
pub struct Payload {
    raw: Box<RawValue>,
    value: Value,
}

impl Payload {
    /// The bytes that arrived, as text.
    pub fn raw(&self) -> &str {
        self.raw.get()
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        // RawValue only scans the text: a full parse also refuses lone surrogates and deep nesting.
        let value = serde_json::from_str(raw.get()).map_err(serde::de::Error::custom)?;
        Ok(Self { raw, value })
    }
}

impl From<&Value> for Payload {
    fn from(value: &Value) -> Self {
        // Writing a Value as JSON cannot fail, and it reads back as the same Value.
        let raw = RawValue::from_string(value.to_string()).expect("a Value is JSON");
        Self { raw, value: value.clone() }
    }
}

impl std::str::FromStr for Payload {
    type Err = serde_json::Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        serde_json::from_str(text)
    }
}

/// An event, by shape.
#[derive(Debug)]
pub enum Inbound {
    Sqs(SqsBatch),
    EventBridge(Record),
    Direct(Record),
    /// Not an event this function takes: answered with a function error.
    Unsupported(Failure),
}

/// Where a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Sqs,
    EventBridge,
    Direct,
}

/// The records of an SQS event, in order.
#[derive(Debug)]
pub struct SqsBatch {
    pub records: Vec<Record>,
    /// Whether the source queue is FIFO (its ARN ends in `.fifo`).
    pub fifo: bool,
}

/// A FIFO record's message group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Group {
    /// Not FIFO, or no group given.
    None,
    Known(String),
    /// The record's attributes could not be read: it may belong to any group.
    Unreadable,
}

/// One request as it arrived, decoded once.
#[derive(Debug)]
pub struct Record {
    pub trigger: Trigger,
    pub request: Result<DisassociationRequest, Failure>,
    /// What arrived, unchanged (an SQS body, an EventBridge event): a dead letter's body.
    pub body: String,
    /// The SQS message id (`None` when missing or empty: such a record can never be reported failed,
    /// as an empty `itemIdentifier` fails the whole batch), or the EventBridge event id.
    pub source_id: Option<String>,
    pub group: Group,
    /// How many times SQS has delivered the message, this time included (`ApproximateReceiveCount`).
    pub receive_count: Option<u32>,
    /// What an SQS message carries of a hold (docs/holds.md); nothing for the other triggers.
    pub carried: Carried,
}

/// Recognises the event's shape and decodes every request in it.
pub fn classify(payload: &Payload) -> Inbound {
    let event = &payload.value;
    if let Some(records) = event.get("Records") {
        return sqs_batch(records);
    }
    if is_eventbridge(event) {
        return Inbound::EventBridge(Record {
            trigger: Trigger::EventBridge,
            request: detail(event),
            // The dead letter's body: the event's very bytes.
            body: sqs_safe_json(payload.raw().to_owned()),
            source_id: event.get("id").and_then(Value::as_str).map(str::to_owned),
            group: Group::None,
            receive_count: None,
            carried: Carried::default(),
        });
    }
    if is_http_request(event) {
        return Inbound::Unsupported(Failure::new(
            codes::UNSUPPORTED_EVENT,
            "an HTTP request (a Function URL's): the webhook is its own function, opportunity-disassociator-webhook",
        ));
    }
    Inbound::Direct(Record {
        trigger: Trigger::Direct,
        request: DisassociationRequest::from_document(event).map_err(Failure::from),
        body: payload.raw().to_owned(),
        source_id: None,
        group: Group::None,
        receive_count: None,
        carried: Carried::default(),
    })
}

fn is_eventbridge(value: &Value) -> bool {
    value.get("detail-type").is_some() && value.get("source").is_some()
}

/// An HTTP request event (payload format 2.0: a Function URL's or an HTTP API's). A request member at
/// the top level means a direct invocation (by someone allowed to invoke the function), so such a
/// document stays a direct request whatever else it carries.
fn is_http_request(value: &Value) -> bool {
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

/// An EventBridge event's request: its detail.
fn detail(event: &Value) -> Result<DisassociationRequest, Failure> {
    match event.get("detail") {
        None | Some(Value::Null) => Err(Failure::new(
            codes::VALIDATION_ERROR,
            "the EventBridge event has no detail: it must carry the request document",
        )),
        Some(detail) => DisassociationRequest::from_document(detail).map_err(Failure::from),
    }
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
    let fifo = records.iter().filter_map(|r| r.get("eventSourceARN").and_then(Value::as_str)).any(is_fifo);
    Inbound::Sqs(SqsBatch { records: records.iter().map(|r| sqs_record(r, fifo)).collect(), fifo })
}

/// A record Lambda wrote for a failed asynchronous invocation (the `OnFailure` destination of the
/// direct EventBridge path) carries the original event in `requestPayload`: redriven from the
/// dead-letter queue to the work queue, it is that event which is processed again. It is known by
/// `requestContext.functionArn` and `requestPayload`, not by `responseContext`: an event that aged out
/// in the asynchronous queue (`EventAgeExceeded`) may never have reached the function. No request
/// document has those members.
fn unwrap_async_record(doc: Value) -> Value {
    let is_invocation_record =
        doc.get("requestContext").and_then(|c| c.get("functionArn")).is_some() && doc.get("requestPayload").is_some();
    match doc {
        Value::Object(mut map) if is_invocation_record => map.remove("requestPayload").unwrap_or(Value::Null),
        other => other,
    }
}

/// One SQS record. Lambda always sends its envelope well formed, but the function does not rely on
/// it: each member is read apart, so a malformed one spoils only what depends on it. Such a record
/// is a validation failure, dead-lettered with its body, and keeps its id and its FIFO group.
fn sqs_record(record: &Value, fifo: bool) -> Record {
    let mut faults = Vec::new();
    let mut text = |name: &str, value: Option<&Value>| -> Option<String> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                faults.push(format!("{name} is not a string"));
                None
            }
        }
    };
    let message_id = text("messageId", record.get("messageId")).filter(|id| !id.is_empty());
    let body = text("body", record.get("body"));
    let attributes = match record.get("attributes") {
        None | Some(Value::Null) => Some(Map::new()),
        Some(Value::Object(map)) => Some(map.clone()),
        Some(_) => {
            faults.push("attributes is not an object".to_owned());
            None
        }
    };
    let group = match &attributes {
        None if fifo => Group::Unreadable,
        None => Group::None,
        Some(attributes) => match attributes.get("MessageGroupId") {
            None | Some(Value::Null) => Group::None,
            Some(Value::String(group)) => Group::Known(group.clone()),
            Some(_) if fifo => {
                faults.push("attributes.MessageGroupId is not a string".to_owned());
                Group::Unreadable
            }
            Some(_) => {
                faults.push("attributes.MessageGroupId is not a string".to_owned());
                Group::None
            }
        },
    };
    let receive_count = attributes.as_ref().and_then(|a| a.get("ApproximateReceiveCount")).and_then(|count| {
        let parsed = count.as_str().and_then(|n| n.parse().ok());
        if parsed.is_none() {
            faults.push("attributes.ApproximateReceiveCount is not a count in a string".to_owned());
        }
        parsed
    });
    // Without a readable body, the record itself is what is kept for the dead-letter queue.
    let body_kept = body.clone().unwrap_or_else(|| if faults.is_empty() { String::new() } else { record.to_string() });
    let request = if !faults.is_empty() {
        Err(Failure::new(codes::VALIDATION_ERROR, format!("malformed SQS record: {}", faults.join("; "))))
    } else {
        match serde_json::from_str::<Value>(body.as_deref().unwrap_or_default()).map(unwrap_async_record) {
            Err(e) => Err(Failure::new(codes::VALIDATION_ERROR, format!("the message body is not JSON: {e}"))),
            Ok(doc) if is_eventbridge(&doc) => detail(&doc),
            Ok(doc) => DisassociationRequest::from_document(&doc).map_err(Failure::from),
        }
    };
    let carried = Carried::of(record, fifo);
    Record { trigger: Trigger::Sqs, request, body: body_kept, source_id: message_id, group, receive_count, carried }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixtures::{eventbridge, fifo, sqs_event, sqs_record};
    use serde_json::json;

    fn request_doc() -> Value {
        fixtures::request("Sandbox", "O1", "Solutions", "S-1")
    }

    fn classify(event: &Value) -> Inbound {
        super::classify(&Payload::from(event))
    }

    #[test]
    fn a_plain_document_is_a_direct_invocation() {
        let Inbound::Direct(record) = classify(&request_doc()) else { panic!("expected direct") };
        assert_eq!(record.request.unwrap().opportunity.as_str(), "O1");
        let Inbound::Direct(record) = classify(&json!({"Catalog": "Sandbox"})) else { panic!("expected direct") };
        let failure = record.request.unwrap_err();
        assert_eq!(failure.code, "ValidationError");
        assert!(failure.message.contains("OpportunityIdentifier"));
    }

    #[test]
    fn an_eventbridge_event_carries_the_request_in_detail() {
        let Inbound::EventBridge(record) = classify(&eventbridge(request_doc())) else {
            panic!("expected EventBridge")
        };
        assert_eq!(record.source_id.as_deref(), Some("ev-1"));
        assert!(record.request.is_ok());
        let mut no_detail = eventbridge(Value::Null);
        no_detail.as_object_mut().unwrap().remove("detail");
        let Inbound::EventBridge(record) = classify(&no_detail) else { panic!("expected EventBridge") };
        assert!(record.request.unwrap_err().message.contains("no detail"));
    }

    #[test]
    fn an_eventbridge_event_keeps_the_bytes_that_arrived() {
        let raw = r#"{"version":"0","id":"ev-9","source":"crm","detail-type":"x","big":12345678901234567890123,"small":1e2,
            "detail":{"RelatedEntityType":"Solutions","Catalog":"Sandbox","OpportunityIdentifier":"O1","RelatedEntityIdentifier":"S-1"}}"#;
        let Inbound::EventBridge(record) = super::classify(&raw.parse().unwrap()) else {
            panic!("expected EventBridge")
        };
        assert_eq!(record.body, raw, "not re-serialised: key order, numbers and spacing as sent");
    }

    #[test]
    fn sqs_bodies_may_be_documents_or_eventbridge_events_and_fail_alone() {
        let event = sqs_event(vec![
            sqs_record("m1", &request_doc().to_string()),
            sqs_record("m2", &eventbridge(request_doc()).to_string()),
            sqs_record("m3", "not json"),
            sqs_record("m4", "{\"Catalog\": \"Sandbox\"}"),
            json!({"messageId": "m5", "body": 42, "eventSource": "aws:sqs"}),
            sqs_record("", &request_doc().to_string()),
        ]);
        let Inbound::Sqs(batch) = classify(&event) else { panic!("expected SQS") };
        assert!(!batch.fifo);
        let r = &batch.records;
        assert_eq!(r.len(), 6);
        assert!(r[0].request.is_ok());
        assert!(r[1].request.is_ok());
        assert!(r[2].request.as_ref().unwrap_err().message.contains("not JSON"));
        assert_eq!(r[2].body, "not json", "the original body is kept unchanged");
        assert!(r[3].request.as_ref().unwrap_err().message.contains("RelatedEntityType"));
        assert_eq!(r[4].source_id.as_deref(), Some("m5"));
        assert!(r[4].request.as_ref().unwrap_err().message.contains("malformed SQS record"));
        assert_eq!(r[5].source_id, None, "an empty message id is never used");
    }

    #[test]
    fn a_malformed_envelope_keeps_what_can_be_read() {
        let body = request_doc().to_string();
        let mut count_as_number = fifo(sqs_record("m1", &body), "g1");
        count_as_number["attributes"]["ApproximateReceiveCount"] = json!(2);
        let mut id_as_number = fifo(sqs_record("m2", &body), "g2");
        id_as_number["messageId"] = json!(7);
        let mut no_group = fifo(sqs_record("m3", &body), "g3");
        no_group["attributes"] = json!("none");
        let Inbound::Sqs(batch) = classify(&sqs_event(vec![count_as_number, id_as_number, no_group])) else {
            panic!("expected SQS")
        };
        let r = &batch.records;
        assert!(r.iter().all(|r| r.request.as_ref().unwrap_err().message.contains("malformed SQS record")));
        assert_eq!((r[0].source_id.as_deref(), &r[0].group), (Some("m1"), &Group::Known("g1".into())));
        assert_eq!(r[0].body, body, "the body, not the whole record");
        assert_eq!((r[1].source_id.as_deref(), &r[1].group), (None, &Group::Known("g2".into())));
        assert_eq!(r[1].body, body);
        assert_eq!((r[2].source_id.as_deref(), &r[2].group), (Some("m3"), &Group::Unreadable));
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
        let Inbound::Sqs(batch) = classify(&sqs_event(vec![sqs_record("m1", &invocation_record.to_string())])) else {
            panic!("expected SQS")
        };
        assert!(batch.records[0].request.is_ok(), "{:?}", batch.records[0].request);
        assert_eq!(batch.records[0].body, invocation_record.to_string(), "the body itself is kept unchanged");
    }

    #[test]
    fn an_invocation_record_without_a_response_context_is_unwrapped_too() {
        // An event that aged out in the asynchronous queue before the function ever ran.
        let invocation_record = invocation_record("EventAgeExceeded", 0);
        let Inbound::Sqs(batch) = classify(&sqs_event(vec![sqs_record("m1", &invocation_record.to_string())])) else {
            panic!("expected SQS")
        };
        assert!(batch.records[0].request.is_ok(), "{:?}", batch.records[0].request);
    }

    #[test]
    fn the_receive_count_is_read_from_the_record_attributes() {
        let counted = fixtures::received(sqs_record("m1", &request_doc().to_string()), 3);
        let uncounted = fixtures::without_attributes(sqs_record("m2", &request_doc().to_string()));
        let Inbound::Sqs(batch) = classify(&sqs_event(vec![counted, uncounted])) else { panic!("expected SQS") };
        assert_eq!(batch.records[0].receive_count, Some(3));
        assert_eq!(batch.records[1].receive_count, None);
    }

    #[test]
    fn fifo_batches_are_recognised_with_their_groups() {
        let Inbound::Sqs(batch) = classify(&sqs_event(vec![fifo(sqs_record("m1", &request_doc().to_string()), "g1")]))
        else {
            panic!("expected SQS")
        };
        assert!(batch.fifo);
        assert_eq!(batch.records[0].group, Group::Known("g1".into()));
    }

    #[test]
    fn a_function_url_request_is_no_event_of_the_worker() {
        let body = request_doc().to_string();
        let headers = json!({"x-webhook-timestamp": "1764000000", "x-webhook-signature": "sha256=00"});
        let Inbound::Unsupported(failure) = classify(&fixtures::function_url("POST", headers, &body, false)) else {
            panic!("expected unsupported")
        };
        assert_eq!(failure.code, "UnsupportedEvent");
        assert!(failure.message.contains("webhook is its own function"), "{}", failure.message);
    }

    #[test]
    fn an_http_request_is_never_confused_with_a_direct_request_or_an_eventbridge_event() {
        // A direct request carrying stray HTTP-like members stays a direct request.
        let mut doc = request_doc();
        doc["version"] = json!("2.0");
        doc["requestContext"] = json!({"http": {"method": "POST"}});
        assert!(matches!(classify(&doc), Inbound::Direct(Record { request: Ok(_), .. })));
        // EventBridge events are version "0"; a 2.0 without requestContext.http is no HTTP request.
        assert!(matches!(classify(&eventbridge(request_doc())), Inbound::EventBridge(_)));
        assert!(matches!(
            classify(&json!({"version": "2.0", "body": "{}"})),
            Inbound::Direct(Record { request: Err(_), .. })
        ));
        let mut rest_api = fixtures::function_url("POST", json!({}), "{}", false);
        rest_api["version"] = json!("1.0");
        assert!(matches!(classify(&rest_api), Inbound::Direct(Record { request: Err(_), .. })));
    }

    #[test]
    fn other_record_sources_are_unsupported() {
        let event = sqs_event(vec![json!({"eventSource": "aws:s3", "s3": {}})]);
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
        let sns = sqs_event(vec![json!({"EventSource": "aws:sns", "Sns": {"Message": request_doc().to_string()}})]);
        assert!(matches!(classify(&sns), Inbound::Unsupported(_)));
        // One record that names SQS is enough: a malformed sibling still fails alone.
        let batch = sqs_event(vec![sqs_record("m-1", &request_doc().to_string()), json!({"messageId": "m-2"})]);
        let Inbound::Sqs(batch) = classify(&batch) else { panic!("expected a batch") };
        assert_eq!(batch.records.len(), 2);
        assert!(batch.records[1].request.is_err());
    }
}

#[cfg(test)]
mod payload_tests {
    use super::Payload;

    #[test]
    fn a_payload_is_refused_unless_it_parses_in_full() {
        for (text, why) in [
            (r#"{"a": "\ud800"}"#, "hex escape"),
            (&format!("{}{}", "[".repeat(200), "]".repeat(200)), "recursion limit"),
            ("{'a': 1}", "key must be a string"),
        ] {
            let error = text.parse::<Payload>().unwrap_err().to_string();
            assert!(error.contains(why), "{text:.20}: {error}");
        }
        assert_eq!(r#" {"a" : 1e2} "#.parse::<Payload>().unwrap().raw(), r#"{"a" : 1e2}"#);
    }
}
