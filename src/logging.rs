//! Logs: JSON lines by default (Lambda's `AWS_LAMBDA_LOG_FORMAT=Text` gives plain text), at
//! `AWS_LAMBDA_LOG_LEVEL` (or `RUST_LOG`) for this crate. The SDK's own crates log at WARN unless
//! `RUST_LOG` asks for more, so no request, header or credential is logged by default.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .map(|l| l.trim().to_ascii_lowercase())
        .filter(|l| ["trace", "debug", "info", "warn", "error"].contains(&l.as_str()))
        .unwrap_or_else(|| "info".to_owned());
    let filter = match std::env::var("RUST_LOG") {
        Ok(custom) if !custom.trim().is_empty() => EnvFilter::new(custom),
        _ => EnvFilter::new(format!("warn,opportunity_disassociator={level},lambda_runtime={level}")),
    };
    let text = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(false);
    if text {
        builder.init();
    } else {
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).init();
    }
}
