//! Partner Central calls within an invocation: each write in a paced slot, retried in a later slot
//! while its failure is transient; every call cut off at the end of calls.

use tokio::time::Instant;
use tracing::info;

use super::deadline::until;
use super::{Invocation, Worker};
use crate::aws::dead_letters::DeadLetters;
use crate::aws::partner_central::{ApiError, ErrorClass, PartnerCentral};
use crate::domain::opportunity::Holdings;
use crate::domain::outcome::{Failure, Hold, codes};
use crate::domain::request::{Catalog, OpportunityId, RelatedEntity};
use crate::pacing::Refused;

/// One write to an opportunity.
#[derive(Debug, Clone, Copy)]
pub enum Write<'a> {
    Associate(&'a RelatedEntity),
    Disassociate(&'a RelatedEntity),
}

impl std::fmt::Display for Write<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Write::Associate(entity) => write!(f, "AssociateOpportunity of {entity}"),
            Write::Disassociate(entity) => write!(f, "DisassociateOpportunity of {entity}"),
        }
    }
}

/// Why a call, or a request, did not go through: for good, or for now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failed {
    /// Will never succeed as it is.
    Permanent(Failure),
    /// May succeed later.
    Transient(Failure),
    /// Must wait (docs/holds.md).
    Held(Hold),
}

impl Failed {
    /// A call's error, as its class says (an ambiguous answer that no read settled counts for good).
    pub fn of(error: ApiError) -> Self {
        match error.class {
            ErrorClass::Transient => Failed::Transient(error.into()),
            ErrorClass::Permanent | ErrorClass::Ambiguous => Failed::Permanent(error.into()),
        }
    }
}

/// Settles an ambiguous answer (`error`: not found, a business rule, a conflict) by `read`, what
/// the opportunity holds, since the service's answers for "already done" are undocumented: the
/// holdings, for the caller to judge; or why they cannot be had (the opportunity does not exist; the
/// read failed, transiently or not).
pub async fn settle_by_read<F>(error: &ApiError, opportunity: &OpportunityId, read: F) -> Result<Holdings, Failed>
where
    F: Future<Output = Result<Option<Holdings>, ApiError>>,
{
    match read.await {
        Ok(Some(holdings)) => Ok(holdings),
        Ok(None) => Err(Failed::Permanent(Failure {
            request_id: error.request_id.clone(),
            ..Failure::no_such_opportunity(opportunity)
        })),
        Err(read) if read.class == ErrorClass::Transient => {
            Err(Failed::Transient(Failure::unsettled(&error.code, read.into())))
        }
        Err(_) => Err(Failed::Permanent(error.clone().into())),
    }
}

/// Why a write did not go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// The service's answer to the last attempt: permanent, or transient after `AWS_MAX_ATTEMPTS`.
    /// `retried`: earlier attempts were made, and one that failed transiently may yet have been applied.
    Api { error: ApiError, retried: bool },
    /// No attempt could start, or the last was cut off, before the end of calls.
    Deadline(Failure),
    /// The day's write budget has no room: the record should come back then (milliseconds since
    /// the epoch). Nothing was called.
    NoRoom { until_ms: u64 },
}

impl WriteError {
    /// What a write refused for the day's budget comes to: a hold until the budget has room.
    pub fn no_room(until_ms: u64) -> Failed {
        Failed::Held(Hold::budget(until_ms))
    }
}

/// A call cut off at the end of calls: whether the service applied it is unknown, and the redelivery
/// will find out (already done counts as success).
fn cut_off() -> Failure {
    Failure::new(codes::DEADLINE, "the call was cut off at the invocation's deadline")
}

impl<P: PartnerCentral, D: DeadLetters> Worker<P, D> {
    /// Makes one write. Every attempt, retries included, takes its own paced slot: a retry fired
    /// outside the pacer would land between paced writes and throttle the next one. A throttled
    /// answer stretches the pacer's interval first, so the retry waits longer than the write it repeats.
    pub(super) async fn write(
        &self,
        invocation: &Invocation,
        catalog: Catalog,
        opportunity: &OpportunityId,
        write: Write<'_>,
    ) -> Result<(), WriteError> {
        self.write_followed_by(invocation, catalog, opportunity, write, 0).await
    }

    /// [`Worker::write`], when `writes_after` more writes must follow it in this invocation: its every
    /// attempt starts early enough to leave each of them a paced slot, at the pacer's current
    /// interval, and a call before the end of calls.
    pub(super) async fn write_followed_by(
        &self,
        invocation: &Invocation,
        catalog: Catalog,
        opportunity: &OpportunityId,
        write: Write<'_>,
        writes_after: u32,
    ) -> Result<(), WriteError> {
        let room_after = self.pacer.interval() * writes_after;
        let latest_start =
            invocation.deadline.latest_call_start().map(|latest| latest.checked_sub(room_after).unwrap_or(latest));
        let mut last_error: Option<ApiError> = None;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let slot = match self.pacer.acquire(latest_start).await {
                Ok(slot) => slot,
                Err(Refused::NoRoom { until_ms }) => return Err(WriteError::NoRoom { until_ms }),
                // Retried later for the reason its last attempt failed, if it had one.
                Err(Refused::TooLate(too_late)) => {
                    return Err(match last_error {
                        Some(error) => WriteError::Api { error, retried: true },
                        None => {
                            let wait = too_late.slot.saturating_duration_since(Instant::now());
                            WriteError::Deadline(Failure::new(
                                codes::DEADLINE,
                                format!(
                                    "not started: the next paced write slot is {} ms away, too close to the invocation's deadline",
                                    wait.as_millis()
                                ),
                            ))
                        }
                    });
                }
            };
            let started = Instant::now();
            let result = match write {
                Write::Associate(entity) => {
                    until(invocation.deadline.calls_end, self.partner_central.associate(catalog, opportunity, entity))
                        .await
                }
                Write::Disassociate(entity) => {
                    until(
                        invocation.deadline.calls_end,
                        self.partner_central.disassociate(catalog, opportunity, entity),
                    )
                    .await
                }
            };
            invocation.metrics.latency(catalog, started.elapsed().as_secs_f64() * 1000.0);
            let error = match result {
                Some(Ok(())) => {
                    self.pacer.succeeded().await;
                    return Ok(());
                }
                Some(Err(error)) => error,
                None => return Err(WriteError::Deadline(cut_off())),
            };
            if error.is_throttling() {
                self.pacer.throttled(slot).await;
            }
            if error.class != ErrorClass::Transient || attempt >= self.config.max_attempts {
                return Err(WriteError::Api { error, retried: attempt > 1 });
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

    /// What the opportunity holds (a read: not paced with the writes), cut off at the end of calls.
    pub(super) async fn read(
        &self,
        invocation: &Invocation,
        catalog: Catalog,
        opportunity: &OpportunityId,
    ) -> Result<Option<Holdings>, ApiError> {
        invocation.metrics.read(catalog);
        match until(invocation.deadline.calls_end, self.partner_central.opportunity(catalog, opportunity)).await {
            Some(result) => result,
            None => {
                let failure = cut_off();
                Err(ApiError {
                    code: failure.code,
                    message: failure.message,
                    request_id: None,
                    class: ErrorClass::Transient,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::outcome::HeldFor;

    #[test]
    fn a_write_refused_for_the_budget_is_held_until_it_has_room() {
        let Failed::Held(hold) = WriteError::no_room(1_764_003_600_000) else { panic!("not held") };
        assert_eq!((hold.cause, hold.until_ms), (HeldFor::Budget, 1_764_003_600_000));
        assert_eq!(hold.reason, "the day's write budget has no room until 2025-11-24T17:00:00Z");
    }
}
