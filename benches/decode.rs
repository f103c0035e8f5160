//! What decoding costs, per trigger: one event from its JSON bytes (as the runtime hands it over)
//! through `inbound::classify`, which recognises the shape and decodes and validates every request in
//! it (the model's patterns, anchored) into domain types. `cargo bench --bench decode`.
//!
//! The Function URL case decodes the envelope only: its body is read after the signature check, in
//! the webhook module.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opportunity_disassociator::inbound::classify;
use serde_json::{Value, json};

fn request() -> Value {
    json!({
        "Catalog": "Sandbox",
        "OpportunityIdentifier": "O1234567890",
        "RelatedEntityType": "AwsMarketplaceOffers",
        "RelatedEntityIdentifier": "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Offer/offer-abc123"
    })
}

fn sqs_record() -> Value {
    json!({"Records": [{
        "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
        "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
        "body": request().to_string(),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1545082649183",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1545082649185"
        },
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:opportunity-disassociations",
        "awsRegion": "us-east-1"
    }]})
}

fn eventbridge_event() -> Value {
    json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Opportunity Disassociation Requested",
        "source": "com.example.crm",
        "account": "123456789012",
        "time": "2025-11-26T07:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": request()
    })
}

fn function_url_request() -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "x-webhook-timestamp": "1764140400",
            "x-webhook-signature": "sha256=00"
        },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abcdefghij",
            "domainName": "abcdefghij.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefghij",
            "http": {
                "method": "POST",
                "path": "/",
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "crm"
            },
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "routeKey": "$default",
            "stage": "$default",
            "time": "26/Nov/2025:07:00:00 +0000",
            "timeEpoch": 1764140400000u64
        },
        "body": request().to_string(),
        "isBase64Encoded": false
    })
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));
    for (name, event) in [
        ("sqs_record", sqs_record()),
        ("eventbridge_event", eventbridge_event()),
        ("direct_request", request()),
        ("function_url_envelope", function_url_request()),
    ] {
        let bytes = serde_json::to_vec(&event).expect("a JSON event");
        group.bench_function(name, |b| {
            b.iter(|| {
                let value: Value = serde_json::from_slice(black_box(&bytes)).expect("valid JSON");
                black_box(classify(&value))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
