//! The worker: SQS, EventBridge and direct events in, one outcome per record, one answer out.
//!
//! ```text
//! event ─> inbound::classify ─> records, each request decoded once
//!   each record ─> decide (checks, paced calls, or a replacement's; the trigger's rules) ─> Outcome
//!               ─> settle (a dead letter sent, a hold kept, or either turned into a retry) ─> Outcome
//!               ─> its log line and metrics
//! outcomes ─> the trigger's answer: sqs | eventbridge | direct
//! ```

use std::sync::Arc;

use lambda_runtime::LambdaEvent;
use serde_json::Value;
use tracing::{Instrument, error, info, info_span, warn};

use crate::aws::dead_letters::DeadLetters;
use crate::aws::partner_central::{PartnerCentral, ThrottleCount};
use crate::aws::work_queue::Holds;
use crate::config::WorkerConfig;
use crate::domain::outcome::{Done, FunctionError, Outcome};
use crate::pacing::Pacer;
use crate::telemetry::metrics::InvocationMetrics;

mod batch;
mod calls;
pub mod deadline;
pub mod decide;
mod direct;
mod eventbridge;
pub mod hold;
pub mod inbound;
mod replace;
mod settle;
mod sqs;

use deadline::Deadline;
use inbound::{Inbound, Payload, Record};

/// One invocation's context.
pub(crate) struct Invocation {
    request_id: String,
    deadline: Deadline,
    metrics: InvocationMetrics,
}

/// The worker, generic over its ports so tests can drive it with fakes.
pub struct Worker<P, D> {
    config: WorkerConfig,
    partner_central: P,
    dead_letters: Option<D>,
    pacer: Arc<Pacer>,
    throttles: Arc<ThrottleCount>,
    /// The work queue, where a record that must wait is held (`WORK_QUEUE_URL`).
    holds: Option<Arc<dyn Holds>>,
}

impl<P: PartnerCentral, D: DeadLetters> Worker<P, D> {
    pub fn new(
        config: WorkerConfig,
        partner_central: P,
        dead_letters: Option<D>,
        pacer: Arc<Pacer>,
        throttles: Arc<ThrottleCount>,
    ) -> Self {
        Self { config, partner_central, dead_letters, pacer, throttles, holds: None }
    }

    /// The worker, holding in `holds` a record that must wait (docs/holds.md); without it such a
    /// record fails as a transient failure.
    pub fn with_holds(self, holds: Arc<dyn Holds>) -> Self {
        Self { holds: Some(holds), ..self }
    }

    /// Handles one invocation, whatever triggered it. The payload is taken as it arrived, so that a
    /// dead letter can carry the very bytes of an event.
    pub async fn handle(&self, event: LambdaEvent<Payload>) -> Result<Value, FunctionError> {
        let (answer, metric_lines) = self.handle_measured(event).await;
        for line in metric_lines {
            println!("{line}");
        }
        answer
    }

    /// [`Worker::handle`], giving the invocation's metric lines (EMF) instead of printing them.
    pub async fn handle_measured(&self, event: LambdaEvent<Payload>) -> (Result<Value, FunctionError>, Vec<Value>) {
        let (payload, context) = event.into_parts();
        let inbound = inbound::classify(&payload);
        let records = match &inbound {
            Inbound::Sqs(batch) => batch.records.len(),
            _ => 1,
        };
        let invocation = Invocation {
            deadline: Deadline::from_epoch_ms(context.deadline, records),
            request_id: context.request_id,
            metrics: InvocationMetrics::default(),
        };
        tracing::debug!(request_id = %invocation.request_id, deadline_ms = context.deadline, "invocation started");
        let throttled_before = self.throttles.get();
        let answer = match inbound {
            Inbound::Sqs(batch) => {
                let outcomes = self.run_batch(&invocation, &batch).await;
                sqs::answer(&invocation.request_id, &batch, &outcomes)
            }
            Inbound::EventBridge(record) => {
                let outcome = self.process(&invocation, &record, false).await;
                eventbridge::answer(&record, outcome)
            }
            Inbound::Direct(record) => {
                let outcome = self.process(&invocation, &record, false).await;
                direct::answer(&record, outcome)
            }
            Inbound::Unsupported(failure) => {
                error!(request_id = %invocation.request_id, error_code = %failure.code, "{}", failure.message);
                Err(failure.into())
            }
        };
        let throttled = self.throttles.get().saturating_sub(throttled_before);
        let now_ms = crate::time::now_ms();
        let (namespace, service) = (&self.config.metrics_namespace, &self.config.service_name);
        let mut lines = invocation.metrics.emf_lines(namespace, service, throttled, now_ms);
        let repairs = self.pacer.take_repairs();
        lines.extend(crate::telemetry::metrics::repairs_line(namespace, service, repairs, now_ms));
        if let Some(gauges) = self.pacer.take_budget_gauges() {
            lines.push(crate::telemetry::metrics::budget_line(namespace, service, gauges, now_ms));
        }
        (answer, lines)
    }

    /// One record, from its decision to its log line.
    async fn process(&self, invocation: &Invocation, record: &Record, held_back: bool) -> Outcome {
        let opportunity_id = record.request.as_ref().ok().map(|r| r.opportunity.as_str());
        let span = info_span!(
            "record",
            request_id = %invocation.request_id,
            source_id = record.source_id.as_deref(),
            opportunity_id
        );
        async {
            let outcome = self.decide(invocation, record, held_back).await;
            let outcome = self.settle(invocation, record, outcome).await;
            report(invocation, record, &outcome);
            outcome
        }
        .instrument(span)
        .await
    }
}

/// The record's log line (one, whatever became of it) and its count in the metrics.
fn report(invocation: &Invocation, record: &Record, outcome: &Outcome) {
    let request = record.request.as_ref().ok();
    invocation.metrics.count(request.map(|r| r.catalog), outcome);
    let holdings = match outcome {
        Outcome::Done(done) => done.holdings(),
        _ => None,
    };
    match (outcome, request, holdings) {
        // A wrong identifier looks like this too: shown above INFO, with what is there instead (the
        // log field keeps its name, `held`: operators' queries read it).
        (Outcome::Done(done), Some(request), Some(holdings)) => warn!(
            outcome = outcome.name(),
            entity_type = request.entity.entity_type().as_str(),
            entity = request.entity.identifier(),
            held = ?holdings.of(request.entity.entity_type()),
            "{}",
            match done {
                Done::NotAssociated(_) => {
                    "not found, and the opportunity does not hold this entity at the message's first receive: \
                     was the identifier right? (held: what the opportunity holds of this type)"
                }
                _ => {
                    "not found, and the opportunity does not hold this entity: taken as already disassociated, \
                     unless the identifier is wrong (held: what the opportunity holds of this type)"
                }
            }
        ),
        (Outcome::Done(_), ..) => info!(outcome = outcome.name(), "done"),
        (Outcome::Held(hold), ..) => info!(
            outcome = outcome.name(),
            held_for = hold.cause.as_str(),
            hold_until_ms = hold.until_ms,
            held_since_ms = hold.since_ms,
            kept = ?hold.kept,
            "{}",
            hold.reason
        ),
        (Outcome::DeadLettered(failure) | Outcome::Failed(failure), ..) => warn!(
            outcome = outcome.name(),
            error_code = %failure.code,
            service_request_id = ?failure.request_id,
            "{}",
            failure.message
        ),
    }
}
