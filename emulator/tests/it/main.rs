//! Integration tests: the real SDK and raw HTTP against an in-process emulator, plus the binary.

mod already_associated;
mod binary;
mod common;
mod control;
mod daily_quotas;
mod errors;
mod faults;
mod limits;
mod listing;
mod operations;
mod quotas;
mod review;
mod sigv4;
mod tls;
