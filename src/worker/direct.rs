//! The answer to a direct invocation: the caller is waiting, so a failure goes back to it as a
//! function error (`errorType` the code, `errorMessage` the reason), never to the dead-letter queue.

use serde_json::{Value, json};

use super::inbound::Record;
use crate::domain::outcome::{Done, FunctionError, Outcome};

pub fn answer(record: &Record, outcome: Outcome) -> Result<Value, FunctionError> {
    match outcome {
        Outcome::Done(done) => Ok(summary(&done, record)),
        Outcome::DeadLettered(failure) | Outcome::Failed(failure) => Err(failure.into()),
    }
}

/// What a request came to, and the request as it was understood.
pub(super) fn summary(done: &Done, record: &Record) -> Value {
    json!({ "outcome": done.name(), "request": record.request.as_ref().ok() })
}
