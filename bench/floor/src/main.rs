//! The benchmark's floor: what any Rust Lambda function pays before it does anything. No logging, no
//! configuration, no client: the runtime, one `service_fn`, the payload echoed back.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move { Ok::<Value, Error>(event.payload) })).await
}
