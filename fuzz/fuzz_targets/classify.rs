//! Any bytes as an inbound event: parsed as the runtime parses a payload, then classified and
//! decoded as the handler does. Nothing may panic, and every request that decodes must survive a
//! round trip through its own API document unchanged (it holds nothing the API would not take).

#![no_main]

use libfuzzer_sys::fuzz_target;
use opportunity_disassociator::inbound::{Inbound, classify};
use opportunity_disassociator::request::DisassociationRequest;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<Value>(data) else { return };
    let requests: Vec<DisassociationRequest> = match classify(&event) {
        Inbound::Sqs(batch) => batch.records.into_iter().filter_map(|r| r.request.ok()).collect(),
        Inbound::EventBridge(envelope) => envelope.request.into_iter().collect(),
        Inbound::Direct(request) => request.into_iter().collect(),
        _ => Vec::new(),
    };
    for request in requests {
        let document = serde_json::to_value(&request).expect("a request serializes");
        let again = DisassociationRequest::from_document(&document).expect("a decoded request decodes again");
        assert_eq!(again, request);
    }
});
