//! The integration tests, as one binary (one link of the SDK, not one per file). A file's name says
//! its level and its feature:
//!
//! - `in_memory_*`: the worker's library driven through in-memory fakes ([`fakes`]), or the SDK's
//!   own deserializers over mocked answers: no process, no network;
//! - `end_to_end_*`: the built functions run as Lambda runs them, under a Runtime API served here,
//!   against the Partner Central emulator and moto ([`common`]);
//! - `built_*`: facts about the built binaries themselves.

mod built_executables;
mod common;
mod end_to_end_chaos;
mod end_to_end_holds;
mod end_to_end_log_secrets;
mod end_to_end_malformed;
mod end_to_end_replacement;
mod end_to_end_webhook;
mod end_to_end_worker;
mod end_to_end_write_slots;
mod end_to_end_write_slots_budget;
mod end_to_end_write_slots_poisoned;
mod fakes;
mod in_memory_holds;
mod in_memory_hostile_input;
mod in_memory_replacement_order;
mod in_memory_sdk_errors;
mod in_memory_worker;
mod moto_server;
