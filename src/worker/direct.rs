//! The answer to a direct invocation: the caller is waiting, so a failure goes back to it as a
//! function error (`errorType` the code, `errorMessage` the reason), never to the dead-letter queue.
//! A request that must wait is queued to wait in the work queue, and the answer says so.

use serde_json::{Value, json};

use super::inbound::Record;
use crate::domain::outcome::{Done, FunctionError, Hold, Outcome, names};

pub fn answer(record: &Record, outcome: Outcome) -> Result<Value, FunctionError> {
    match outcome {
        Outcome::Done(done) => Ok(summary(&done, record)),
        Outcome::Held(hold) => Ok(held(&hold, record)),
        Outcome::DeadLettered(failure) | Outcome::Failed(failure) => Err(failure.into()),
    }
}

/// A request that must wait, queued to wait in the work queue (docs/holds.md): done with, as far as
/// the caller goes.
pub(super) fn held(hold: &Hold, record: &Record) -> Value {
    json!({
        "outcome": names::HELD,
        "heldFor": hold.cause.as_str(),
        "holdUntil": hold.until_ms,
        "queued": true,
        "reason": hold.reason,
        "request": record.request.as_ref().ok(),
    })
}

/// What a request came to, and the request as it was understood.
pub(super) fn summary(done: &Done, record: &Record) -> Value {
    json!({ "outcome": done.name(), "request": record.request.as_ref().ok() })
}
