//! The handler: event in, each request decoded once, one outcome per record, one response out.
//!
//! Sources only translate: [`crate::inbound`] decodes, [`Handler::outcome`] decides, and the answer
//! of each source is made from the outcomes here. A webhook is the exception that proves it: it
//! decides no outcome, it only buffers requests in the work queue ([`crate::webhook`]).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::lambda_function_urls::LambdaFunctionUrlRequest;
use aws_lambda_events::sqs::SqsBatchResponse;
use futures::FutureExt;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{Value, json};
use tokio::time::Instant;
use tracing::{Instrument, error, info, info_span, warn};

use crate::config::Config;
use crate::dead_letter::{DeadLetter, DeadLetters};
use crate::inbound::{Envelope, Inbound, SqsBatch, SqsRecord, classify};
use crate::metrics::{Counted, InvocationMetrics};
use crate::outcome::{Failure, Outcome, codes};
use crate::pacer::Pacer;
use crate::partner_central::{ApiError, ErrorClass, PartnerCentral, ThrottleCount};
use crate::request::DisassociationRequest;
use crate::webhook::{Refusal, Reply, Webhook, refuse};
use crate::work_queue::{NoWorkQueue, WorkQueue, sqs_safe_json};

/// Time kept back at the end of an invocation for dead letters and the answer itself: calls end this
/// long before the deadline.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);
/// Time kept back for the answer alone: a dead letter not sent by then is given up, and its record
/// delivered again, rather than let the invocation time out (which would deliver the whole batch again).
const ANSWER_RESERVE: Duration = Duration::from_millis(100);
/// The least time a call is given: a record whose paced slot leaves less before the deadline (less
/// the margin) is not started. A call takes a few hundred milliseconds; one that takes longer is cut
/// off at the deadline (less the margin) and retried later, so no call can time the invocation out.
const CALL_RESERVE: Duration = Duration::from_secs(1);

/// A function error: `errorType` names the class of failure, `errorMessage` the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error_type}: {message}")]
pub struct HandlerError {
    pub error_type: String,
    pub message: String,
}

impl From<Failure> for HandlerError {
    fn from(failure: Failure) -> Self {
        Self { error_type: failure.code, message: failure.message }
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        Diagnostic { error_type: error.error_type, error_message: error.message }
    }
}

/// What became of a record once its outcome is carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Disposition {
    Done(Outcome),
    DeadLettered(Failure),
    /// To be delivered again: reported failed, or a function error.
    Failed(Failure),
}

/// Where a record came from, for its dead letter.
struct Origin<'a> {
    body: &'a str,
    source_id: Option<&'a str>,
    group: Option<&'a str>,
    /// This delivery is the message's last before SQS's redrive (its receive count, and the queue's
    /// `maxReceiveCount`): a passing failure is dead-lettered now, with its reason.
    last_receive: Option<(u32, u32)>,
}

/// One invocation's context.
struct Invocation {
    request_id: String,
    /// When calls must be over: the deadline less the margin. `None` when the event has no deadline.
    calls_end: Option<Instant>,
    /// When dead letters must be sent: the deadline less the answer's reserve.
    letters_end: Option<Instant>,
    metrics: InvocationMetrics,
}

/// Runs `work` until it ends or `end` comes, whichever is first: `None` when it was cut off. Without
/// an end, until it ends.
async fn until<F: Future>(end: Option<Instant>, work: F) -> Option<F::Output> {
    match end {
        None => Some(work.await),
        Some(end) => tokio::time::timeout_at(end, work).await.ok(),
    }
}

/// A call cut off at the invocation's deadline: whether the service applied it is unknown, and the
/// redelivery will find out (already disassociated counts as success).
fn cut_off() -> Outcome {
    Outcome::Retry(Failure::new(codes::DEADLINE, "the call was cut off at the invocation's deadline"))
}

/// The function, generic over its ports so tests can drive it with fakes. `W`, the webhook's work
/// queue, is [`NoWorkQueue`] until [`Handler::with_webhook`] sets one.
pub struct Handler<P, D, W = NoWorkQueue> {
    config: Config,
    partner_central: P,
    dead_letters: Option<D>,
    pacer: Arc<Pacer>,
    throttles: Arc<ThrottleCount>,
    webhook: Option<Webhook<W>>,
}

impl<P: PartnerCentral, D: DeadLetters> Handler<P, D> {
    pub fn new(
        config: Config,
        partner_central: P,
        dead_letters: Option<D>,
        pacer: Arc<Pacer>,
        throttles: Arc<ThrottleCount>,
    ) -> Self {
        Self { config, partner_central, dead_letters, pacer, throttles, webhook: None }
    }
}

impl<P: PartnerCentral, D: DeadLetters, W: WorkQueue> Handler<P, D, W> {
    /// Serves CRM webhooks (Function URL requests) with `webhook`; without one they are answered 500
    /// `webhook not configured`, never accepted.
    pub fn with_webhook<V: WorkQueue>(self, webhook: Option<Webhook<V>>) -> Handler<P, D, V> {
        let Self { config, partner_central, dead_letters, pacer, throttles, webhook: _ } = self;
        Handler { config, partner_central, dead_letters, pacer, throttles, webhook }
    }

    /// Handles one invocation, whatever triggered it.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, HandlerError> {
        let (payload, context) = event.into_parts();
        let context_deadline = context.deadline;
        let deadline = deadline_instant(context.deadline);
        let invocation = Invocation {
            calls_end: deadline.map(|deadline| ahead_of(deadline, DEADLINE_MARGIN)),
            letters_end: deadline.map(|deadline| ahead_of(deadline, ANSWER_RESERVE)),
            request_id: context.request_id,
            metrics: InvocationMetrics::default(),
        };
        tracing::debug!(
            request_id = %invocation.request_id,
            deadline_ms = context_deadline,
            remaining_ms = invocation.calls_end.map(|end| end.saturating_duration_since(Instant::now()).as_millis() as u64),
            "invocation started"
        );
        let throttled_before = self.throttles.get();
        let answer = match classify(&payload) {
            Inbound::Sqs(batch) => self.sqs(&invocation, batch).await,
            Inbound::EventBridge(envelope) => self.eventbridge(&invocation, envelope, &payload).await,
            Inbound::Webhook(request) => self.webhook(&invocation, request).await,
            Inbound::Direct(request) => self.direct(&invocation, request).await,
            Inbound::Unsupported(failure) => {
                error!(request_id = %invocation.request_id, error_code = %failure.code, "{}", failure.message);
                Err(failure.into())
            }
        };
        let throttled = self.throttles.get().saturating_sub(throttled_before);
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        for line in
            invocation.metrics.emf_lines(&self.config.metrics_namespace, &self.config.service_name, throttled, now_ms)
        {
            println!("{line}");
        }
        answer
    }

    async fn sqs(&self, invocation: &Invocation, batch: SqsBatch) -> Result<Value, HandlerError> {
        // FIFO: records of one message group run in order, and stop at the first failure so that no
        // later message of the group overtakes it. Otherwise every record is its own lane.
        let mut lanes: Vec<Vec<usize>> = Vec::new();
        if batch.fifo {
            let mut groups: Vec<(Option<&str>, usize)> = Vec::new();
            for (index, record) in batch.records.iter().enumerate() {
                match groups.iter().find(|(group, _)| *group == record.group.as_deref()) {
                    Some((_, lane)) => lanes[*lane].push(index),
                    None => {
                        groups.push((record.group.as_deref(), lanes.len()));
                        lanes.push(vec![index]);
                    }
                }
            }
        } else {
            lanes = (0..batch.records.len()).map(|i| vec![i]).collect();
        }

        let batch = &batch;
        let lane_runs = lanes.iter().map(|lane| async move {
            let mut results = Vec::with_capacity(lane.len());
            let mut blocked = false;
            for &index in lane {
                let record = &batch.records[index];
                let disposition = if blocked {
                    // Held back untried: reported failed, logged and counted. Never dead-lettered here,
                    // even at its last receive: the group is locked while one message is in flight, so
                    // the record that blocks it is at its last receive too, and failed only because its
                    // own dead letter could not be sent. The redrive then moves both, in order.
                    let disposition = Disposition::Failed(Failure::new(
                        codes::EARLIER_FAILURE_IN_GROUP,
                        "an earlier message of this FIFO group failed in this batch",
                    ));
                    let span = record_span(invocation, record.message_id.as_deref(), &record.request);
                    span.in_scope(|| self.log_and_count(invocation, &record.request, &disposition));
                    disposition
                } else {
                    self.sqs_record(invocation, record).await
                };
                blocked |= batch.fifo && matches!(disposition, Disposition::Failed(_));
                results.push((index, disposition));
            }
            results
        });
        let mut results: Vec<(usize, Disposition)> = futures::future::join_all(lane_runs).await.concat();
        results.sort_by_key(|(index, _)| *index);

        let mut response = SqsBatchResponse::default();
        let mut unreportable = 0;
        for (index, disposition) in results {
            if let Disposition::Failed(failure) = disposition {
                match &batch.records[index].message_id {
                    Some(id) => response.add_failure(id.clone()),
                    None => {
                        // Never reported (an empty identifier fails the whole batch): dead-letter it,
                        // and if even that fails, fail the batch so nothing is lost (the records of the
                        // batch already dead-lettered then come back, and may be dead-lettered twice).
                        let record = &batch.records[index];
                        let origin = Origin { source_id: None, last_receive: None, ..self.sqs_origin(record) };
                        if self.dead_letter(invocation, &failure, &origin).await {
                            let catalog = record.request.as_ref().ok().map(|r| r.catalog);
                            invocation.metrics.recount(catalog, Counted::Retried, Counted::DeadLettered);
                            let span = record_span(invocation, None, &record.request);
                            span.in_scope(|| warn!(outcome = "dead_lettered", error_code = %failure.code, "no message id to report it failed by: dead-lettered instead"));
                        } else {
                            unreportable += 1;
                        }
                    }
                }
            }
        }
        if unreportable > 0 {
            let message = format!(
                "{unreportable} record(s) without a message id failed and could not be dead-lettered: failing the whole batch so none is lost"
            );
            error!(request_id = %invocation.request_id, "{message}");
            return Err(HandlerError { error_type: "UnreportableRecord".to_owned(), message });
        }
        serde_json::to_value(response)
            .map_err(|e| HandlerError { error_type: "SerializationError".to_owned(), message: e.to_string() })
    }

    async fn sqs_record(&self, invocation: &Invocation, record: &SqsRecord) -> Disposition {
        let source_id = record.message_id.as_deref();
        let span = record_span(invocation, source_id, &record.request);
        async {
            let origin = self.sqs_origin(record);
            let outcome = self.outcome(invocation, &record.request).await;
            let disposition = self.settle(invocation, outcome, &origin).await;
            self.log_and_count(invocation, &record.request, &disposition);
            disposition
        }
        .instrument(span)
        .await
    }

    async fn eventbridge(
        &self,
        invocation: &Invocation,
        envelope: Envelope,
        event: &Value,
    ) -> Result<Value, HandlerError> {
        let span = record_span(invocation, envelope.id.as_deref(), &envelope.request);
        async {
            // The event is the dead letter's body: in characters SQS takes, the same JSON.
            let body = sqs_safe_json(event.to_string());
            let origin = Origin { body: &body, source_id: envelope.id.as_deref(), group: None, last_receive: None };
            let outcome = self.outcome(invocation, &envelope.request).await;
            let disposition = self.settle(invocation, outcome, &origin).await;
            self.log_and_count(invocation, &envelope.request, &disposition);
            match disposition {
                Disposition::Done(outcome) => Ok(summary(&outcome, envelope.request.as_ref().ok())),
                // Handled: no async retry is spent on a request that can never succeed.
                Disposition::DeadLettered(failure) => Ok(json!({
                    "outcome": "dead_lettered",
                    "errorCode": failure.code,
                    "errorMessage": failure.message,
                })),
                Disposition::Failed(failure) => Err(failure.into()),
            }
        }
        .instrument(span)
        .await
    }

    async fn direct(
        &self,
        invocation: &Invocation,
        request: Result<DisassociationRequest, Failure>,
    ) -> Result<Value, HandlerError> {
        let span = record_span(invocation, None, &request);
        async {
            // The caller is waiting for the answer: failures go back to it, not to the dead-letter queue.
            let outcome = self.outcome(invocation, &request).await;
            let disposition = match outcome {
                Outcome::Rejected(failure) | Outcome::Retry(failure) => Disposition::Failed(failure),
                done => Disposition::Done(done),
            };
            self.log_and_count(invocation, &request, &disposition);
            match disposition {
                Disposition::Done(outcome) => Ok(summary(&outcome, request.as_ref().ok())),
                Disposition::DeadLettered(failure) | Disposition::Failed(failure) => Err(failure.into()),
            }
        }
        .instrument(span)
        .await
    }

    /// Answers a Function URL request over HTTP: always a response, never a function error (Lambda
    /// would answer that 502, which says nothing to the CRM).
    async fn webhook(
        &self,
        invocation: &Invocation,
        request: Result<Box<LambdaFunctionUrlRequest>, String>,
    ) -> Result<Value, HandlerError> {
        let source_ip = request.as_ref().ok().and_then(|r| r.request_context.http.source_ip.clone());
        let span = info_span!("webhook", request_id = %invocation.request_id, source_ip);
        let reply = async {
            match (&self.webhook, request) {
                (None, _) => {
                    error!(
                        "a Function URL request arrived, but the webhook is not configured (WEBHOOK_SECRET_ARN or WEBHOOK_SECRET, and WORK_QUEUE_URL): answered 500"
                    );
                    Reply::not_configured()
                }
                (Some(_), Err(reason)) => {
                    warn!(reason, "the Function URL event could not be read");
                    refuse(Refusal::UnreadableEvent)
                }
                (Some(webhook), Ok(request)) => {
                    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                    webhook.answer(&request, now).await
                }
            }
        }
        .instrument(span)
        .await;
        serde_json::to_value(reply.into_response())
            .map_err(|e| HandlerError { error_type: "SerializationError".to_owned(), message: e.to_string() })
    }

    /// Decides one request's outcome. A panic here is caught and fails only this record.
    async fn outcome(&self, invocation: &Invocation, request: &Result<DisassociationRequest, Failure>) -> Outcome {
        let request = match request {
            Ok(request) => request,
            Err(failure) => return Outcome::Rejected(failure.clone()),
        };
        match AssertUnwindSafe(self.call(invocation, request)).catch_unwind().await {
            Ok(outcome) => outcome,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                Outcome::Retry(Failure::new(codes::PANIC, format!("processing panicked: {message}")))
            }
        }
    }

    async fn call(&self, invocation: &Invocation, request: &DisassociationRequest) -> Outcome {
        if !self.config.allowed_catalogs.contains(&request.catalog) {
            let allowed: Vec<&str> = self.config.allowed_catalogs.iter().map(|c| c.as_str()).collect();
            return Outcome::Rejected(Failure::new(
                codes::CATALOG_NOT_ALLOWED,
                format!("catalog {} is not in ALLOWED_CATALOGS ({})", request.catalog, allowed.join(",")),
            ));
        }
        if self.config.dry_run {
            info!(request = %json!(request), "DRY_RUN: would call DisassociateOpportunity");
            return Outcome::DryRun;
        }
        let latest_start = invocation.calls_end.map(|end| ahead_of(end, CALL_RESERVE));
        // Every attempt of a write, retries included, takes its own paced slot: a retry fired outside
        // the pacer would land between paced writes and throttle the next one. A throttled answer
        // stretches the pacer's interval first, so the retry waits longer than the write it repeats.
        let mut last_error: Option<ApiError> = None;
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Err(too_late) = self.pacer.acquire(latest_start).await {
                return match last_error {
                    // The record is retried later for the reason its last attempt failed.
                    Some(error) => Outcome::Retry(error.into()),
                    None => {
                        let wait = too_late.slot.saturating_duration_since(Instant::now());
                        Outcome::Retry(Failure::new(
                            codes::DEADLINE,
                            format!(
                                "not started: the next paced write slot is {} ms away, too close to the invocation's deadline",
                                wait.as_millis()
                            ),
                        ))
                    }
                };
            }
            let started = Instant::now();
            let result = until(invocation.calls_end, self.partner_central.disassociate(request)).await;
            invocation.metrics.latency(request.catalog, started.elapsed().as_secs_f64() * 1000.0);
            let error = match result {
                Some(Ok(())) => {
                    self.pacer.succeeded();
                    return Outcome::Disassociated;
                }
                Some(Err(error)) => error,
                None => return cut_off(),
            };
            if error.is_throttling() {
                self.pacer.throttled();
            }
            if error.class != ErrorClass::Transient || attempt >= self.config.max_attempts {
                // The association check, when the error needs one, is cut off at the deadline too.
                let outcome = Outcome::of_error(error, self.partner_central.association(request));
                return until(invocation.calls_end, outcome).await.unwrap_or_else(cut_off);
            }
            info!(
                attempt,
                max_attempts = self.config.max_attempts,
                error_code = %error.code,
                "write attempt failed, retrying in the next paced slot"
            );
            last_error = Some(error);
        }
    }

    /// Where an SQS record came from, for its dead letter.
    fn sqs_origin<'a>(&self, record: &'a SqsRecord) -> Origin<'a> {
        let last_receive = match (record.receive_count, self.config.max_receive_count) {
            (Some(count), Some(max)) if count >= max => Some((count, max)),
            _ => None,
        };
        Origin {
            body: &record.body,
            source_id: record.message_id.as_deref(),
            group: record.group.as_deref(),
            last_receive,
        }
    }

    /// Carries out an outcome: a rejected request is dead-lettered when a queue is set, and so is a
    /// passing failure at the message's last receive (SQS's redrive would move it without a reason);
    /// if the dead letter cannot be sent, the record is reported failed instead, so nothing is ever
    /// dropped.
    async fn settle(&self, invocation: &Invocation, outcome: Outcome, origin: &Origin<'_>) -> Disposition {
        match outcome {
            Outcome::Rejected(failure) if self.dead_letters.is_some() => {
                if self.dead_letter(invocation, &failure, origin).await {
                    Disposition::DeadLettered(failure)
                } else {
                    Disposition::Failed(failure)
                }
            }
            Outcome::Retry(failure) => match origin.last_receive {
                Some((count, max)) if self.dead_letters.is_some() => {
                    let last = Failure {
                        message: format!(
                            "{} (receive {count} of the queue's maxReceiveCount {max}: dead-lettered with its reason, as the next would be moved without one)",
                            failure.message
                        ),
                        ..failure.clone()
                    };
                    if self.dead_letter(invocation, &last, origin).await {
                        Disposition::DeadLettered(last)
                    } else {
                        Disposition::Failed(failure)
                    }
                }
                _ => Disposition::Failed(failure),
            },
            Outcome::Rejected(failure) => Disposition::Failed(failure),
            done => Disposition::Done(done),
        }
    }

    /// Sends a dead letter; `false` when there is no queue or the send failed.
    async fn dead_letter(&self, invocation: &Invocation, failure: &Failure, origin: &Origin<'_>) -> bool {
        let Some(queue) = &self.dead_letters else { return false };
        let letter = DeadLetter {
            body: origin.body,
            failure,
            lambda_request_id: &invocation.request_id,
            source_id: origin.source_id,
            message_group: origin.group,
        };
        match until(invocation.letters_end, queue.send(letter)).await {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                warn!(error = %e, "could not dead-letter the record: it will be delivered again");
                false
            }
            None => {
                warn!(
                    "the dead letter was not sent before the invocation's deadline: the record will be delivered again"
                );
                false
            }
        }
    }

    fn log_and_count(
        &self,
        invocation: &Invocation,
        request: &Result<DisassociationRequest, Failure>,
        disposition: &Disposition,
    ) {
        let catalog = request.as_ref().ok().map(|r| r.catalog);
        let metrics = &invocation.metrics;
        match disposition {
            Disposition::Done(outcome) => {
                let counted = match outcome {
                    Outcome::AlreadyDisassociated => Counted::AlreadyDisassociated,
                    Outcome::DryRun => Counted::DryRun,
                    _ => Counted::Disassociated,
                };
                metrics.count(catalog, counted);
                info!(outcome = outcome.name(), "done");
            }
            Disposition::DeadLettered(failure) => {
                metrics.count(catalog, Counted::DeadLettered);
                warn!(outcome = "dead_lettered", error_code = %failure.code, service_request_id = ?failure.request_id, "{}", failure.message);
            }
            Disposition::Failed(failure) => {
                metrics.count(catalog, Counted::Retried);
                warn!(outcome = "failed", error_code = %failure.code, service_request_id = ?failure.request_id, "{}", failure.message);
            }
        }
    }
}

/// Every log line of a record carries the request id, its message or event id and its opportunity.
fn record_span(
    invocation: &Invocation,
    source_id: Option<&str>,
    request: &Result<DisassociationRequest, Failure>,
) -> tracing::Span {
    let opportunity_id = request.as_ref().ok().map(|r| r.opportunity.as_str());
    info_span!("record", request_id = %invocation.request_id, source_id, opportunity_id)
}

/// The answer to a direct or EventBridge invocation that succeeded.
fn summary(outcome: &Outcome, request: Option<&DisassociationRequest>) -> Value {
    json!({ "outcome": outcome.name(), "request": request })
}

/// Lambda's deadlines are milliseconds since the epoch; an earlier value is no such time (`cargo lambda
/// watch` sends its timeout, 600000, instead) and is taken as no deadline at all.
const EARLIEST_DEADLINE_MS: u64 = 1_000_000_000_000;

/// The invocation's deadline (milliseconds since the epoch) on the monotonic clock; `None` without
/// one. A deadline already past is now.
fn deadline_instant(deadline_ms: u64) -> Option<Instant> {
    if deadline_ms < EARLIEST_DEADLINE_MS {
        return None;
    }
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
}

/// `reserve` ahead of `end`. With less than that left, the result is already past, so nothing more
/// is started (every paced slot is refused, every timeout fires at once).
fn ahead_of(end: Instant, reserve: Duration) -> Instant {
    end.checked_sub(reserve).unwrap_or(end)
}
