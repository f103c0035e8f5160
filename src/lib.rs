//! opportunity-disassociator: an AWS Lambda function that turns EventBridge events, SQS messages and
//! direct invocations into validated, paced Partner Central `DisassociateOpportunity` calls, with
//! one decided outcome per record.
//!
//! `main.rs` only wires; the flow is [`inbound`] (decode once) -> [`handler`] (decide, carry out) ->
//! the answer of each trigger. The outside world is behind ports: [`partner_central`],
//! [`dead_letter`] and, for the CRM [`webhook`] that buffers signed requests, [`work_queue`].

pub mod config;
pub mod dead_letter;
pub mod handler;
pub mod inbound;
pub mod logging;
pub mod metrics;
pub mod outcome;
pub mod pacer;
pub mod partner_central;
pub mod request;
pub mod secret;
pub mod webhook;
pub mod work_queue;
