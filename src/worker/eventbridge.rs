//! The answer to an EventBridge event: its summary when it succeeded, was held in the work queue or
//! was dead-lettered (handled:
//! no asynchronous retry is spent on a request that can never succeed), a function error otherwise,
//! which Lambda retries and, at last, hands to the `OnFailure` destination with the same reason.

use serde_json::{Value, json};

use super::direct::{held, summary};
use super::inbound::Record;
use crate::domain::outcome::{FunctionError, Outcome, names};

pub fn answer(record: &Record, outcome: Outcome) -> Result<Value, FunctionError> {
    match outcome {
        Outcome::Done(done) => Ok(summary(&done, record)),
        Outcome::Held(hold) => Ok(held(&hold, record)),
        Outcome::DeadLettered(failure) => Ok(json!({
            "outcome": names::DEAD_LETTERED,
            "errorCode": failure.code,
            "errorMessage": failure.message,
        })),
        Outcome::Failed(failure) => Err(failure.into()),
    }
}
