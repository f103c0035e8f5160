//! The answer to an SQS batch: the records handed back (failed, or held by their visibility), by
//! message id (`batchItemFailures`, which needs `ReportBatchItemFailures` on the event source
//! mapping). Everything else is deleted.

use aws_lambda_events::sqs::SqsBatchResponse;
use serde_json::Value;
use tracing::error;

use super::inbound::SqsBatch;
use crate::domain::outcome::{FunctionError, Outcome, codes};

pub fn answer(request_id: &str, batch: &SqsBatch, outcomes: &[Outcome]) -> Result<Value, FunctionError> {
    let mut response = SqsBatchResponse::default();
    let mut unreportable = 0;
    for (record, outcome) in batch.records.iter().zip(outcomes) {
        if outcome.goes_back() {
            match &record.source_id {
                Some(id) => response.add_failure(id.clone()),
                None => unreportable += 1,
            }
        }
    }
    if unreportable > 0 {
        // An empty identifier would fail the batch anyway: fail it plainly, so none is lost (the
        // records of the batch already dead-lettered then come back, and may be dead-lettered twice).
        let message = format!(
            "{unreportable} record(s) without a message id failed and could not be dead-lettered: failing the whole batch so none is lost"
        );
        error!(request_id, "{message}");
        return Err(FunctionError { error_type: codes::UNREPORTABLE_RECORD.to_owned(), message });
    }
    serde_json::to_value(response)
        .map_err(|e| FunctionError { error_type: codes::SERIALIZATION_ERROR.to_owned(), message: e.to_string() })
}
