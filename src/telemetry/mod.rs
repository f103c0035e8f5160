//! What the functions tell the operator: JSON log lines ([`logging`]) and CloudWatch metrics as
//! embedded-metric log lines ([`metrics`]).

pub mod logging;
pub mod metrics;
