//! opportunity-disassociator-plan: the bulk path into the stack. A person or a pipeline step turns a
//! job (a CRM export today) into a plan, reads its summary, and sends it to the work queue, where the
//! worker carries each request out at the account's pace.
//!
//! - [`plan`]: the plan file (one request document a line) and its summary; every command that makes
//!   a plan writes it there;
//! - [`export`]: a CRM export (CSV) read into requests, every faulty row named;
//! - [`scan`]: the legacy-Solutions move, planned from the account's own state;
//! - [`send`]: a plan onto the work queue, resumable, within the queue's retention.
//!
//! The requests are the crate's own ([`opportunity_disassociator::domain::request`]) and the batches go
//! through its work-queue adapter, so a plan holds nothing the worker would not take.

pub mod export;
pub mod plan;
pub mod scan;
pub mod send;
