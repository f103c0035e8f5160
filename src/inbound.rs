//! Inbound events: the function recognises the shape itself, and decodes each request once.
//!
//! - SQS: `{"Records": [...]}`, each body a request document or an EventBridge event carrying one;
//! - EventBridge: an event (`source`, `detail-type`, `detail`) whose `detail` is the request document;
//! - direct: the request document itself (`aws lambda invoke`, `sam local invoke`, Step Functions).
//!
//! Decoding never fails the whole event for one bad record: each record carries its own result.

use aws_lambda_events::sqs::SqsMessage;
use serde_json::Value;

use crate::outcome::{Failure, codes};
use crate::request::DisassociationRequest;

/// An event, by shape.
#[derive(Debug)]
pub enum Inbound {
    Sqs(SqsBatch),
    EventBridge(Envelope),
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
    Inbound::Direct(DisassociationRequest::from_document(event).map_err(Failure::from))
}

fn is_eventbridge(value: &Value) -> bool {
    value.get("detail-type").is_some() && value.get("source").is_some()
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
    if let Some(source) =
        records.iter().filter_map(|r| r.get("eventSource").and_then(Value::as_str)).find(|s| *s != "aws:sqs")
    {
        return Inbound::Unsupported(Failure::new(
            codes::UNSUPPORTED_EVENT,
            format!("not an SQS event (eventSource {source:?}): the function takes SQS, EventBridge and direct events"),
        ));
    }
    let fifo = records
        .iter()
        .filter_map(|r| r.get("eventSourceARN").and_then(Value::as_str))
        .any(|arn| arn.ends_with(".fifo"));
    Inbound::Sqs(SqsBatch { records: records.iter().map(sqs_record).collect(), fifo })
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
                body: record.to_string(),
                event_id: None,
                request: Err(Failure::new(codes::VALIDATION_ERROR, format!("malformed SQS record: {e}"))),
            };
        }
    };
    let body = message.body.unwrap_or_default();
    let (event_id, request) = match serde_json::from_str::<Value>(&body) {
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

    #[test]
    fn fifo_batches_are_recognised_with_their_groups() {
        let mut rec = record("m1", &request_doc().to_string());
        rec["eventSourceARN"] = json!("arn:aws:sqs:us-east-1:123456789012:work.fifo");
        rec["attributes"] = json!({"MessageGroupId": "g1"});
        let Inbound::Sqs(batch) = classify(&sqs(vec![rec])) else { panic!("expected SQS") };
        assert!(batch.fifo);
        assert_eq!(batch.records[0].group.as_deref(), Some("g1"));
    }

    #[test]
    fn other_record_sources_are_unsupported() {
        let event = sqs(vec![json!({"eventSource": "aws:s3", "s3": {}})]);
        let Inbound::Unsupported(failure) = classify(&event) else { panic!("expected unsupported") };
        assert_eq!(failure.code, "UnsupportedEvent");
        assert!(matches!(classify(&json!({"Records": "x"})), Inbound::Unsupported(_)));
    }
}
