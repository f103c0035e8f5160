//! Any bytes as an inbound event, parsed as the runtime parses a payload, then classified and decoded
//! as the worker does; and the same bytes as the body of an SQS record and of a direct request. Nothing
//! may panic, and every request that decodes must survive a round trip through its own API document
//! unchanged (it holds nothing the API would not take).

#![no_main]

use libfuzzer_sys::fuzz_target;
use opportunity_disassociator::domain::request::DisassociationRequest;
use opportunity_disassociator::worker::inbound::{Inbound, Payload, classify};

fn check(payload: &[u8]) {
    let Ok(payload) = serde_json::from_slice::<Payload>(payload) else { return };
    let requests: Vec<DisassociationRequest> = match classify(&payload) {
        Inbound::Sqs(batch) => batch.records.into_iter().filter_map(|r| r.request.ok()).collect(),
        Inbound::EventBridge(record) | Inbound::Direct(record) => record.request.into_iter().collect(),
        Inbound::Unsupported(_) => Vec::new(),
    };
    for request in requests {
        let document = serde_json::to_value(&request).expect("a request serializes");
        let again = DisassociationRequest::from_document(&document).expect("a decoded request decodes again");
        assert_eq!(again, request);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    // The bytes inside well-formed envelopes reach the body's decoding, past the envelope's checks.
    if let Ok(text) = std::str::from_utf8(data) {
        let record = fixtures::fifo(fixtures::sqs_record("m-1", text), "g");
        check(fixtures::sqs_event(vec![record]).to_string().as_bytes());
    }
});
