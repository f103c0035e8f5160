//! opportunity-disassociator: two AWS Lambda functions that keep Partner Central opportunities in
//! step with a partner's own systems, by validated, paced `DisassociateOpportunity` calls.
//!
//! - the **worker** ([`worker`], `src/bin/worker.rs`): SQS, EventBridge and direct events, each request
//!   decoded once ([`domain::request`]), one [`domain::outcome::Outcome`] per record, one answer per
//!   trigger;
//! - the **webhook** ([`webhook`], `src/bin/webhook.rs`): signed CRM requests over a Function URL,
//!   checked and buffered into the worker's queue.
//!
//! The outside world is behind small ports with SDK adapters in [`aws`]; writes are paced by
//! [`pacing`]; settings are read once at init by [`config`]; logs and metrics are in [`telemetry`].
//! The `main`s only wire.

pub mod aws;
pub mod config;
pub mod domain;
pub mod pacing;
pub mod telemetry;
pub mod time;
pub mod webhook;
pub mod worker;
