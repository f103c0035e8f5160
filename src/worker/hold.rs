//! Holding a record that must wait (docs/holds.md): what a held message carries, how a receive of it
//! is counted, and how a hold is carried out.
//!
//! A held record of a standard queue is sent again to the work queue, delayed (at most 15 minutes),
//! with its hold in message attributes, and the original is done with: a new message starts its own
//! receive count, so waiting spends none of `maxReceiveCount`. Received before its `HoldUntil` (a
//! continuation, not an attempt), it is kept invisible until then (at most `MAX_HOLD_SECONDS`) at its
//! first receive, and sent again at a later one. A FIFO message is held by visibility alone.

use std::time::Duration;

use crate::time::{in_words, now_ms, rfc3339};

use base64::Engine;
use serde_json::Value;

use super::deadline::until;
use super::decide::Verdict;
use super::inbound::{Record, Trigger};
use super::{Invocation, Worker};
use crate::aws::dead_letters::DeadLetters;
use crate::aws::partner_central::PartnerCentral;
use crate::aws::work_queue::{Attribute, AttributeValue, MAX_ATTRIBUTES, MAX_DELAY_SECONDS, Requeue, message_body};
use crate::domain::outcome::{Failure, HeldFor, Hold, Kept, Outcome};

/// The message attributes of a hold. `HeldSince`: when the record was first queued (epoch ms), kept
/// from one re-send to the next; `HoldUntil`: when it is due (epoch ms); `HeldFor`: the cause;
/// `Attempts`: the genuine attempts it failed before (receives that were not continuations).
pub const HELD_SINCE: &str = "HeldSince";
pub const HOLD_UNTIL: &str = "HoldUntil";
pub const HELD_FOR: &str = "HeldFor";
pub const ATTEMPTS: &str = "Attempts";
const HOLD_ATTRIBUTES: [&str; 4] = [HELD_SINCE, HOLD_UNTIL, HELD_FOR, ATTEMPTS];

/// A message received this little before its `HoldUntil` is due: SQS's delay and the function's
/// clock may differ by that much, and an early try costs nothing a late one would not.
const DUE_EARLY_MS: u64 = 1_000;

/// What an SQS record carries of a hold, and what a re-send needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carried {
    pub held_since_ms: Option<u64>,
    pub hold_until_ms: Option<u64>,
    pub held_for: Option<HeldFor>,
    /// Genuine attempts failed by earlier messages of the record.
    pub attempts: u32,
    /// `SentTimestamp`: when this message was sent (epoch ms).
    pub sent_ms: Option<u64>,
    pub receipt_handle: Option<String>,
    /// The record's other message attributes, carried over by a re-send.
    pub attributes: Vec<(String, Attribute)>,
    /// Its queue is FIFO.
    pub fifo: bool,
}

impl Carried {
    /// Reads a Lambda SQS record's hold. An attribute that cannot be read is left out: the record is
    /// then tried at once, or counted as a fresh one, never refused for it.
    pub fn of(record: &Value, fifo: bool) -> Self {
        let attributes = record.get("messageAttributes").and_then(Value::as_object);
        let text = |name: &str| {
            attributes.and_then(|a| a.get(name)).and_then(|a| a.get("stringValue")).and_then(Value::as_str)
        };
        let number = |name: &str| text(name).and_then(|t| t.trim().parse::<u64>().ok());
        let others = attributes
            .into_iter()
            .flatten()
            .filter(|(name, _)| !HOLD_ATTRIBUTES.contains(&name.as_str()))
            .filter_map(|(name, value)| Some((name.clone(), attribute(value)?)))
            .collect();
        Self {
            held_since_ms: number(HELD_SINCE),
            hold_until_ms: number(HOLD_UNTIL),
            held_for: text(HELD_FOR).and_then(HeldFor::parse),
            attempts: number(ATTEMPTS).and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
            sent_ms: record.pointer("/attributes/SentTimestamp").and_then(Value::as_str).and_then(|t| t.parse().ok()),
            receipt_handle: record.get("receiptHandle").and_then(Value::as_str).map(str::to_owned),
            attributes: others,
            fifo,
        }
    }

    /// Whether this message was received before it is due: a continuation of its hold.
    pub fn continues(&self, now_ms: u64) -> bool {
        self.hold_until_ms.is_some_and(|until| now_ms + DUE_EARLY_MS < until)
    }

    /// The genuine attempts failed before this receive (number `receive_count`): those carried, and
    /// this message's earlier receives but a continuation. Only the first receive can have been one
    /// (a later one is sent again), and it was when the delay could not cover the wait.
    pub fn failed_before(&self, receive_count: u32) -> u32 {
        let continued_first = match (self.hold_until_ms, self.sent_ms) {
            (Some(until), Some(sent)) => {
                until.saturating_sub(sent) > u64::from(MAX_DELAY_SECONDS) * 1000 + DUE_EARLY_MS
            }
            _ => false,
        };
        let earlier = receive_count.saturating_sub(1);
        self.attempts + earlier.saturating_sub(u32::from(continued_first && earlier > 0))
    }
}

/// One attribute of a Lambda SQS record (`stringValue` or base64 `binaryValue`, and `dataType`).
fn attribute(value: &Value) -> Option<Attribute> {
    let data_type = value.get("dataType").and_then(Value::as_str)?.to_owned();
    let value =
        match (value.get("stringValue").and_then(Value::as_str), value.get("binaryValue").and_then(Value::as_str)) {
            (Some(text), _) => AttributeValue::Text(text.to_owned()),
            (None, Some(binary)) => {
                AttributeValue::Binary(base64::engine::general_purpose::STANDARD.decode(binary).ok()?)
            }
            (None, None) => return None,
        };
    Some(Attribute { data_type, value })
}

/// Whole seconds from `now_ms` to `until_ms`, rounded up, at most `most`.
fn seconds_until(until_ms: u64, now_ms: u64, most: u64) -> u32 {
    (until_ms.saturating_sub(now_ms).div_ceil(1000)).min(most) as u32
}

impl<P: PartnerCentral, D: DeadLetters> Worker<P, D> {
    /// A hold under the trigger's rules: held, or the verdict it becomes, which the trigger's rules
    /// for failures then take (`Worker::rule`): transient with no work queue to hold it in, permanent
    /// past the age bound or for a FIFO message at its last receive.
    pub(super) fn rule_hold(&self, record: &Record, hold: Hold, held_back: bool) -> Result<Outcome, Verdict> {
        let now = now_ms();
        if self.holds.is_none() {
            return Err(Verdict::Transient(
                hold.failure().noted("no WORK_QUEUE_URL to hold it in: retried as a transient failure"),
            ));
        }
        let carried = &record.carried;
        let since = match record.trigger {
            Trigger::Sqs => carried.held_since_ms.or(carried.sent_ms).unwrap_or(now),
            Trigger::EventBridge | Trigger::Direct => now,
        };
        let bound = self.config.work_queue_retention.saturating_sub(self.config.max_hold).as_millis() as u64;
        let age = now.saturating_sub(since);
        if record.trigger == Trigger::Sqs && age > bound {
            let reason = match hold.cause {
                HeldFor::Budget => format!(
                    "held for the day's budget since {}, {} ago",
                    rfc3339(since),
                    in_words(Duration::from_millis(age))
                ),
                HeldFor::UnderReview => {
                    format!(
                        "still under review after {} (held since {})",
                        in_words(Duration::from_millis(age)),
                        rfc3339(since)
                    )
                }
            };
            let failure = Failure::new(
                hold.cause.code(),
                format!(
                    "{reason}: past the bound on holding, the work queue's retention less MAX_HOLD_SECONDS ({}); {}",
                    in_words(Duration::from_millis(bound)),
                    hold.reason
                ),
            );
            return Err(Verdict::Permanent(failure));
        }
        if let (true, Some(count), Some(max)) = (carried.fifo, record.receive_count, self.config.max_receive_count)
            && count >= max
            && !held_back
        {
            let failure = hold.failure().noted(format_args!(
                "held at receive {count} of the queue's maxReceiveCount {max}, its last before the redrive: a FIFO queue holds by visibility, which spends receives"
            ));
            return Err(Verdict::Permanent(failure));
        }
        Ok(Outcome::Held(Hold { since_ms: Some(since), ..hold }))
    }

    /// Carries out a hold: the record sent again, delayed, or kept invisible. If neither can be done
    /// it fails, and is delivered again as any failure is: never lost.
    pub(super) async fn keep(&self, invocation: &Invocation, record: &Record, hold: Hold) -> Outcome {
        let Some(holds) = &self.holds else {
            return Outcome::Failed(hold.failure());
        };
        let now = now_ms();
        let carried = &record.carried;
        let continuation = carried.hold_until_ms == Some(hold.until_ms);
        let first_receive = record.receive_count.unwrap_or(1) <= 1;
        let failed = |hold: &Hold, why: String| {
            Outcome::Failed(hold.failure().noted(format_args!("not held, delivered again: {why}")))
        };
        let (kept, sent) = if record.trigger == Trigger::Sqs && (carried.fifo || (continuation && first_receive)) {
            let Some(handle) = &carried.receipt_handle else {
                return failed(&hold, "no receipt handle to keep it invisible by".to_owned());
            };
            let seconds = seconds_until(hold.until_ms, now, self.config.max_hold.as_secs());
            (Kept::Invisible, until(invocation.deadline.letters_end, holds.keep_invisible(handle, seconds)).await)
        } else {
            let body = match (record.trigger, &record.request) {
                (Trigger::Sqs, _) => record.body.clone(),
                (_, Ok(request)) => message_body(request),
                (_, Err(_)) => return failed(&hold, "an invalid request is never held".to_owned()),
            };
            let attempts = match record.trigger {
                Trigger::Sqs => carried.failed_before(record.receive_count.unwrap_or(1)),
                Trigger::EventBridge | Trigger::Direct => 0,
            };
            let mut attributes = vec![
                (HELD_SINCE.to_owned(), Attribute::number(hold.since_ms.unwrap_or(now))),
                (HOLD_UNTIL.to_owned(), Attribute::number(hold.until_ms)),
                (HELD_FOR.to_owned(), Attribute::text(hold.cause.as_str())),
                (ATTEMPTS.to_owned(), Attribute::number(u64::from(attempts))),
            ];
            let room = MAX_ATTRIBUTES - attributes.len();
            if carried.attributes.len() > room {
                let dropped: Vec<&str> = carried.attributes[room..].iter().map(|(name, _)| name.as_str()).collect();
                tracing::warn!(?dropped, "SQS takes {MAX_ATTRIBUTES} message attributes: these are not carried over");
            }
            attributes.extend(carried.attributes.iter().take(room).cloned());
            let group = record.request.as_ref().map_or("held", |r| r.opportunity.as_str());
            let message = Requeue {
                body: &body,
                attributes,
                delay_seconds: seconds_until(hold.until_ms, now, u64::from(MAX_DELAY_SECONDS)),
                group,
            };
            (Kept::Requeued, until(invocation.deadline.letters_end, holds.requeue(message)).await)
        };
        match sent {
            Some(Ok(())) => Outcome::Held(Hold { kept, ..hold }),
            Some(Err(e)) => failed(&hold, e),
            None => failed(&hold, "the invocation's deadline came first".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(attributes: Value, sent: u64) -> Value {
        json!({"messageId": "m1", "receiptHandle": "rh-1", "attributes": {"SentTimestamp": sent.to_string()},
               "messageAttributes": attributes})
    }

    fn number(n: u64) -> Value {
        json!({"stringValue": n.to_string(), "dataType": "Number"})
    }

    #[test]
    fn a_held_message_carries_its_hold_and_its_other_attributes() {
        let carried = Carried::of(
            &record(
                json!({"HeldSince": number(5), "HoldUntil": number(9_000), "HeldFor": {"stringValue": "under_review", "dataType": "String"},
                       "Attempts": number(2), "Trace": {"stringValue": "t-1", "dataType": "String"},
                       "Blob": {"binaryValue": "AAE=", "dataType": "Binary"}, "Broken": {"dataType": "String"}}),
                7,
            ),
            false,
        );
        assert_eq!(
            (carried.held_since_ms, carried.hold_until_ms, carried.held_for, carried.attempts, carried.sent_ms),
            (Some(5), Some(9_000), Some(HeldFor::UnderReview), 2, Some(7))
        );
        assert_eq!(carried.receipt_handle.as_deref(), Some("rh-1"));
        let mut names: Vec<&str> = carried.attributes.iter().map(|(n, _)| n.as_str()).collect();
        names.sort();
        assert_eq!(names, ["Blob", "Trace"], "the hold's own are not carried twice; an unreadable one is left out");
        assert!(carried.attributes.contains(&(
            "Blob".to_owned(),
            Attribute { data_type: "Binary".to_owned(), value: AttributeValue::Binary(vec![0, 1]) }
        )));
    }

    #[test]
    fn unreadable_hold_attributes_count_as_none() {
        let carried = Carried::of(
            &record(json!({"HoldUntil": {"stringValue": "soon", "dataType": "Number"}, "Attempts": 3}), 7),
            false,
        );
        assert_eq!((carried.hold_until_ms, carried.attempts), (None, 0));
        assert!(!carried.continues(0));
    }

    #[test]
    fn a_continuation_is_a_receive_before_it_is_due_and_no_attempt() {
        // Sent at 0 to wait an hour: the delay (15 min) could not cover it, so its first receive was a
        // continuation.
        let long = Carried { hold_until_ms: Some(3_600_000), sent_ms: Some(0), attempts: 1, ..Carried::default() };
        assert!(long.continues(900_000));
        assert!(!long.continues(3_599_500), "due a little early");
        assert_eq!(long.failed_before(1), 1);
        assert_eq!(long.failed_before(2), 1, "the first receive was the continuation");
        assert_eq!(long.failed_before(3), 2);
        // Sent to wait 10 min: its delay covered the wait, so its first receive was an attempt.
        let short = Carried { hold_until_ms: Some(600_000), sent_ms: Some(0), attempts: 1, ..Carried::default() };
        assert_eq!(short.failed_before(2), 2);
        assert_eq!(Carried::default().failed_before(3), 2, "a message never held: its earlier receives");
    }

    #[test]
    fn a_wait_is_whole_seconds_rounded_up_and_at_most_the_most() {
        assert_eq!(seconds_until(1_500, 0, 900), 2, "rounded up");
        assert_eq!(seconds_until(10_000_000, 0, 900), 900);
        assert_eq!(seconds_until(0, 5, 900), 0);
    }
}
