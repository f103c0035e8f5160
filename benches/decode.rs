//! What decoding costs, per trigger: one event from its JSON bytes, as the runtime hands it over (the
//! payload parsed and kept as it arrived), through `inbound::classify`, which recognises the shape and
//! decodes and validates every request in it (the model's patterns, anchored) into domain types.
//! `cargo bench --bench decode`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opportunity_disassociator::worker::inbound::{Payload, classify};
use serde_json::Value;

fn request() -> Value {
    fixtures::request(
        "Sandbox",
        "O1234567890",
        "AwsMarketplaceOffers",
        "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-abc123",
    )
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));
    for (name, event) in [
        ("sqs_record", fixtures::sqs_event(vec![fixtures::sqs_record("059f36b4", &request().to_string())])),
        ("eventbridge_event", fixtures::eventbridge(request())),
        ("direct_request", request()),
    ] {
        let bytes = serde_json::to_vec(&event).expect("a JSON event");
        group.bench_function(name, |b| {
            b.iter(|| {
                let payload: Payload = serde_json::from_slice(black_box(&bytes)).expect("valid JSON");
                black_box(classify(&payload))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
