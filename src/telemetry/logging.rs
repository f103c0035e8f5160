//! Logs: JSON lines by default (Lambda's `AWS_LAMBDA_LOG_FORMAT=Text` gives plain text), at
//! `AWS_LAMBDA_LOG_LEVEL` (or `RUST_LOG`) for this crate. The SDK's own crates log at WARN unless
//! `RUST_LOG` asks for more.
//!
//! Whatever the level asked for, a few of the libraries' own lines are never written, because they
//! carry what must not reach a log (tests/it/end_to_end_log_secrets.rs checks every line of a full run at TRACE):
//! - `lambda_runtime`'s raw event at TRACE: a webhook's signature headers and every request in full.
//!   (It also makes the runtime exit on a payload that is not UTF-8.)
//! - the SDK's endpoint and auth resolution at DEBUG and its request dumps at TRACE: the access key
//!   id, the `Authorization` header's name (its value is redacted by the SDK) and signing details.
//! - `aws_sigv4` at TRACE: the canonical request and the signing parameters, access key id included.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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
    let registry = tracing_subscriber::registry().with(filter).with(ceiling());
    let fmt = tracing_subscriber::fmt::layer().with_target(false).with_ansi(false);
    if text {
        registry.with(fmt).init();
    } else {
        registry.with(fmt.json().flatten_event(true).with_current_span(true).with_span_list(false)).init();
    }
}

/// The most each sensitive target may log, on top of the level asked for (the most specific target
/// decides; everything else is left to the level).
fn ceiling() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("lambda_runtime::layers::api_response", LevelFilter::DEBUG)
        .with_target("aws_smithy_runtime::client::orchestrator", LevelFilter::DEBUG)
        .with_target("aws_smithy_runtime::client::orchestrator::endpoints", LevelFilter::INFO)
        .with_target("aws_smithy_runtime::client::orchestrator::auth", LevelFilter::INFO)
        .with_target("aws_sigv4", LevelFilter::INFO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    fn allows(target: &str, level: Level) -> bool {
        ceiling().would_enable(target, &level)
    }

    #[test]
    fn sensitive_targets_are_capped_and_the_rest_is_left_to_the_level() {
        assert!(!allows("lambda_runtime::layers::api_response", Level::TRACE));
        assert!(allows("lambda_runtime::layers::api_response", Level::DEBUG));
        assert!(allows("lambda_runtime::runtime", Level::TRACE));
        assert!(!allows("aws_smithy_runtime::client::orchestrator", Level::TRACE));
        assert!(allows("aws_smithy_runtime::client::orchestrator", Level::DEBUG));
        assert!(!allows("aws_smithy_runtime::client::orchestrator::endpoints", Level::DEBUG));
        assert!(!allows("aws_smithy_runtime::client::orchestrator::auth", Level::DEBUG));
        assert!(!allows("aws_sigv4::http_request::sign", Level::DEBUG));
        assert!(allows("aws_smithy_runtime::client::retries::strategy::standard", Level::TRACE));
        assert!(allows("opportunity_disassociator::worker", Level::TRACE));
    }
}
