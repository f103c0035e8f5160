//! Carrying out an outcome: the one place a dead letter is sent or a hold kept (`hold::keep`), and the
//! one place either that cannot be done becomes a retry, so that nothing is ever dropped.

use super::deadline::until;
use super::inbound::{Group, Record};
use super::{Invocation, Worker};
use crate::aws::dead_letters::{DeadLetter, DeadLetters};
use crate::aws::partner_central::PartnerCentral;
use crate::domain::outcome::Outcome;

impl<P: PartnerCentral, D: DeadLetters> Worker<P, D> {
    pub(super) async fn settle(&self, invocation: &Invocation, record: &Record, outcome: Outcome) -> Outcome {
        let failure = match outcome {
            Outcome::DeadLettered(failure) => failure,
            Outcome::Held(hold) => return self.keep(invocation, record, hold).await,
            outcome => return outcome,
        };
        let Some(queue) = &self.dead_letters else { return Outcome::Failed(failure) };
        let letter = DeadLetter {
            body: &record.body,
            failure: &failure,
            lambda_request_id: &invocation.request_id,
            source_id: record.source_id.as_deref(),
            message_group: match &record.group {
                Group::Known(group) => Some(group),
                Group::None | Group::Unreadable => None,
            },
        };
        // Why it was not dead-lettered goes in the record's one log line: after the deadline for dead
        // letters every line counts against the time left for the answer.
        match until(invocation.deadline.letters_end, queue.send(letter)).await {
            Some(Ok(())) => Outcome::DeadLettered(failure),
            Some(Err(e)) => Outcome::Failed(failure.noted(format_args!("not dead-lettered, delivered again: {e}"))),
            None => {
                Outcome::Failed(failure.noted("not dead-lettered before the invocation's deadline, delivered again"))
            }
        }
    }
}
