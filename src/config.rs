//! Settings, read and checked once at init: a bad value fails init with a message that names it,
//! instead of failing the first invocation.

use std::time::Duration;

use crate::request::Catalog;
use crate::secret::{SecretSource, WebhookSecret};

/// The default and the bounds of `WEBHOOK_MAX_BODY_BYTES`: 256 KiB by default, the classic SQS message
/// size limit, far above 100 request documents (about 40 KB); at most 6 MB, Lambda's own limit on a
/// synchronous invocation's payload.
pub const DEFAULT_WEBHOOK_MAX_BODY_BYTES: usize = 256 * 1024;
const WEBHOOK_MAX_BODY_BYTES_RANGE: std::ops::RangeInclusive<usize> = 1024..=6_000_000;

/// The function's settings. Every field comes from one environment variable (see the README).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `ALLOWED_CATALOGS`: catalogs requests may name (default `Sandbox`), so that a test event can
    /// never touch the production `AWS` catalog by accident.
    pub allowed_catalogs: Vec<Catalog>,
    /// `PARTNER_CENTRAL_REGION`: the service exists only in us-east-1, whatever region runs the function.
    pub partner_central_region: String,
    /// `PARTNER_CENTRAL_WRITES_PER_SECOND`: this instance's share of the account's write quota.
    pub writes_per_second: f64,
    /// `PARTNER_CENTRAL_CONNECT_TIMEOUT_SECONDS`, like the CLI's `--cli-connect-timeout`.
    pub connect_timeout: Duration,
    /// `PARTNER_CENTRAL_READ_TIMEOUT_SECONDS`, like the CLI's `--cli-read-timeout`.
    pub read_timeout: Duration,
    /// `PARTNER_CENTRAL_OPERATION_TIMEOUT_SECONDS`: one call (a read with its SDK retries; one attempt
    /// of a write), also cut off at the invocation's deadline.
    pub operation_timeout: Duration,
    /// `AWS_MAX_ATTEMPTS` (default 3, the SDK's): attempts per write, each in its own paced slot (see
    /// the handler), and per read or SQS call, retried by the SDK in standard mode. Read here, and
    /// handed to the SDK, because the SDK's own loader panics on a value it cannot use.
    pub max_attempts: u32,
    /// `DEAD_LETTER_QUEUE_URL`: where permanent failures go at once, with their reason.
    pub dead_letter_queue_url: Option<String>,
    /// `MAX_RECEIVE_COUNT`: the work queue's `maxReceiveCount`. A record that fails at that receive,
    /// its last before SQS's redrive would move it without a reason, is dead-lettered with its reason
    /// instead. `None`: failed records are always reported, and the redrive takes them.
    pub max_receive_count: Option<u32>,
    /// `DRY_RUN`: validate and log the call, make none.
    pub dry_run: bool,
    /// `METRICS_NAMESPACE`: the CloudWatch namespace of the embedded metrics.
    pub metrics_namespace: String,
    /// `METRICS_SERVICE_NAME`: the `Service` dimension of the embedded metrics.
    pub service_name: String,
    /// `WEBHOOK_SECRET_ARN` (Secrets Manager, read at init) or `WEBHOOK_SECRET` (the value, for local
    /// runs): the HMAC key of the CRM webhook. `None`: the webhook is off and refuses every request.
    /// `Debug` never shows the value.
    pub webhook_secret: Option<SecretSource>,
    /// `WORK_QUEUE_URL`: the queue the webhook buffers requests into; required with a webhook secret.
    pub work_queue_url: Option<String>,
    /// `WEBHOOK_MAX_BODY_BYTES`: the largest webhook body taken (default 256 KiB); larger is answered 413.
    pub webhook_max_body_bytes: usize,
}

/// A setting that cannot be used, by name.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid setting {name}={value:?}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub reason: String,
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let error = |name: &'static str, value: &str, reason: &str| ConfigError {
            name,
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let seconds = |name: &'static str, default: f64| -> Result<Duration, ConfigError> {
            match get(name) {
                None => Ok(Duration::from_secs_f64(default)),
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s <= 900.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| error(name, &v, "must be a number of seconds above 0 and at most 900")),
            }
        };

        let allowed_catalogs = match get("ALLOWED_CATALOGS") {
            None => vec![Catalog::Sandbox],
            Some(v) => {
                let mut catalogs = Vec::new();
                for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let catalog = Catalog::parse(part)
                        .ok_or_else(|| error("ALLOWED_CATALOGS", &v, "each entry must be AWS or Sandbox"))?;
                    if !catalogs.contains(&catalog) {
                        catalogs.push(catalog);
                    }
                }
                if catalogs.is_empty() {
                    return Err(error("ALLOWED_CATALOGS", &v, "names no catalog"));
                }
                catalogs
            }
        };

        let partner_central_region = get("PARTNER_CENTRAL_REGION").unwrap_or_else(|| "us-east-1".to_owned());
        let region_ok =
            partner_central_region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(error(
                "PARTNER_CENTRAL_REGION",
                &partner_central_region,
                "must be a region name such as us-east-1",
            ));
        }

        let writes_per_second = match get("PARTNER_CENTRAL_WRITES_PER_SECOND") {
            None => 1.0,
            Some(v) => {
                // At least one write every 10 s: with a longer interval an invocation has room for only
                // a few writes, and the rest of its batch would spend receive after receive untried.
                v.parse::<f64>().ok().filter(|r| r.is_finite() && *r >= 0.1 && *r <= 1000.0).ok_or_else(|| {
                    error("PARTNER_CENTRAL_WRITES_PER_SECOND", &v, "must be a number from 0.1 to 1000")
                })?
            }
        };

        let connect_timeout = seconds("PARTNER_CENTRAL_CONNECT_TIMEOUT_SECONDS", 3.0)?;
        let read_timeout = seconds("PARTNER_CENTRAL_READ_TIMEOUT_SECONDS", 10.0)?;
        let operation_timeout = seconds("PARTNER_CENTRAL_OPERATION_TIMEOUT_SECONDS", 20.0)?;
        if operation_timeout < read_timeout {
            return Err(error(
                "PARTNER_CENTRAL_OPERATION_TIMEOUT_SECONDS",
                &format!("{}", operation_timeout.as_secs_f64()),
                "must be at least PARTNER_CENTRAL_READ_TIMEOUT_SECONDS",
            ));
        }

        let max_attempts = match get("AWS_MAX_ATTEMPTS") {
            None => 3,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| error("AWS_MAX_ATTEMPTS", &v, "must be a number of attempts, 1 or more"))?,
        };

        let max_receive_count = match get("MAX_RECEIVE_COUNT") {
            None => None,
            Some(v) => Some(v.parse::<u32>().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| {
                error("MAX_RECEIVE_COUNT", &v, "must be the work queue's maxReceiveCount, 1 to 1000")
            })?),
        };

        let dead_letter_queue_url = get("DEAD_LETTER_QUEUE_URL");
        if let Some(url) = &dead_letter_queue_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(error("DEAD_LETTER_QUEUE_URL", url, "must be an SQS queue URL (https://...)"));
        }

        let work_queue_url = get("WORK_QUEUE_URL");
        if let Some(url) = &work_queue_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(error("WORK_QUEUE_URL", url, "must be an SQS queue URL (https://...)"));
        }
        // The value is never put in an error: only whether it was set.
        let webhook_secret = match (get("WEBHOOK_SECRET_ARN"), lookup("WEBHOOK_SECRET").filter(|v| !v.is_empty())) {
            (Some(_), Some(_)) => {
                return Err(error(
                    "WEBHOOK_SECRET",
                    "<redacted>",
                    "set either WEBHOOK_SECRET_ARN (Secrets Manager) or WEBHOOK_SECRET (local runs), not both",
                ));
            }
            (Some(arn), None) => {
                let parts: Vec<&str> = arn.split(':').collect();
                if parts.len() < 7 || parts[0] != "arn" || parts[2] != "secretsmanager" || parts[5] != "secret" {
                    return Err(error(
                        "WEBHOOK_SECRET_ARN",
                        &arn,
                        "must be a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>)",
                    ));
                }
                Some(SecretSource::SecretsManager(arn))
            }
            (None, Some(value)) => Some(SecretSource::Value(
                WebhookSecret::new(value).map_err(|reason| error("WEBHOOK_SECRET", "<redacted>", &reason))?,
            )),
            (None, None) => None,
        };
        if webhook_secret.is_some() && work_queue_url.is_none() {
            return Err(error(
                "WORK_QUEUE_URL",
                "",
                "is required with WEBHOOK_SECRET_ARN or WEBHOOK_SECRET: the webhook queues requests there",
            ));
        }
        let webhook_max_body_bytes = match get("WEBHOOK_MAX_BODY_BYTES") {
            None => DEFAULT_WEBHOOK_MAX_BODY_BYTES,
            Some(v) => {
                v.parse::<usize>().ok().filter(|n| WEBHOOK_MAX_BODY_BYTES_RANGE.contains(n)).ok_or_else(|| {
                    error("WEBHOOK_MAX_BODY_BYTES", &v, "must be a number of bytes from 1024 to 6000000")
                })?
            }
        };

        let dry_run = match get("DRY_RUN").map(|v| v.to_ascii_lowercase()) {
            None => false,
            Some(v) if v == "true" || v == "1" || v == "yes" => true,
            Some(v) if v == "false" || v == "0" || v == "no" => false,
            Some(v) => return Err(error("DRY_RUN", &v, "must be true or false")),
        };

        Ok(Self {
            allowed_catalogs,
            partner_central_region,
            writes_per_second,
            connect_timeout,
            read_timeout,
            operation_timeout,
            max_attempts,
            dead_letter_queue_url,
            max_receive_count,
            dry_run,
            metrics_namespace: get("METRICS_NAMESPACE").unwrap_or_else(|| "OpportunityDisassociator".to_owned()),
            service_name: get("METRICS_SERVICE_NAME").unwrap_or_else(|| "opportunity-disassociator".to_owned()),
            webhook_secret,
            work_queue_url,
            webhook_max_body_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_safe() {
        let config = load(&[]).unwrap();
        assert_eq!(config.allowed_catalogs, [Catalog::Sandbox]);
        assert_eq!(config.partner_central_region, "us-east-1");
        assert_eq!(config.writes_per_second, 1.0);
        assert_eq!(config.connect_timeout, Duration::from_secs(3));
        assert_eq!(config.read_timeout, Duration::from_secs(10));
        assert_eq!(config.max_attempts, 3, "the SDK's default");
        assert_eq!(config.dead_letter_queue_url, None);
        assert_eq!(config.max_receive_count, None);
        assert!(!config.dry_run);
        assert_eq!(config.webhook_secret, None, "the webhook is off unless a secret is set");
        assert_eq!(config.work_queue_url, None);
        assert_eq!(config.webhook_max_body_bytes, 262_144);
    }

    #[test]
    fn reads_every_setting() {
        let config = load(&[
            ("ALLOWED_CATALOGS", " AWS , Sandbox,AWS"),
            ("PARTNER_CENTRAL_REGION", "us-west-2"),
            ("PARTNER_CENTRAL_WRITES_PER_SECOND", "0.5"),
            ("PARTNER_CENTRAL_CONNECT_TIMEOUT_SECONDS", "1.5"),
            ("PARTNER_CENTRAL_READ_TIMEOUT_SECONDS", "4"),
            ("PARTNER_CENTRAL_OPERATION_TIMEOUT_SECONDS", "8"),
            ("AWS_MAX_ATTEMPTS", "5"),
            ("DEAD_LETTER_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/dlq"),
            ("MAX_RECEIVE_COUNT", "3"),
            ("DRY_RUN", "TRUE"),
            ("METRICS_NAMESPACE", "Ns"),
            ("METRICS_SERVICE_NAME", "svc"),
        ])
        .unwrap();
        assert_eq!(config.allowed_catalogs, [Catalog::Aws, Catalog::Sandbox]);
        assert_eq!(config.partner_central_region, "us-west-2");
        assert_eq!(config.writes_per_second, 0.5);
        assert_eq!(config.connect_timeout, Duration::from_millis(1500));
        assert_eq!(config.operation_timeout, Duration::from_secs(8));
        assert_eq!(config.max_attempts, 5);
        assert!(config.dead_letter_queue_url.is_some());
        assert_eq!(config.max_receive_count, Some(3));
        assert!(config.dry_run);
        assert_eq!((config.metrics_namespace.as_str(), config.service_name.as_str()), ("Ns", "svc"));
    }

    #[test]
    fn bad_values_name_their_setting() {
        for (name, value) in [
            ("ALLOWED_CATALOGS", "Production"),
            ("ALLOWED_CATALOGS", " , "),
            ("PARTNER_CENTRAL_REGION", "US East"),
            ("PARTNER_CENTRAL_WRITES_PER_SECOND", "0"),
            ("PARTNER_CENTRAL_WRITES_PER_SECOND", "0.05"),
            ("PARTNER_CENTRAL_WRITES_PER_SECOND", "fast"),
            ("PARTNER_CENTRAL_WRITES_PER_SECOND", "NaN"),
            ("PARTNER_CENTRAL_CONNECT_TIMEOUT_SECONDS", "-1"),
            ("PARTNER_CENTRAL_READ_TIMEOUT_SECONDS", "inf"),
            ("PARTNER_CENTRAL_OPERATION_TIMEOUT_SECONDS", "1"),
            ("AWS_MAX_ATTEMPTS", "0"),
            ("AWS_MAX_ATTEMPTS", "three"),
            ("DEAD_LETTER_QUEUE_URL", "my-dlq"),
            ("MAX_RECEIVE_COUNT", "0"),
            ("MAX_RECEIVE_COUNT", "1001"),
            ("MAX_RECEIVE_COUNT", "three"),
            ("DRY_RUN", "maybe"),
            ("WORK_QUEUE_URL", "work"),
            ("WEBHOOK_SECRET_ARN", "my-secret"),
            ("WEBHOOK_SECRET_ARN", "arn:aws:sqs:us-east-1:123456789012:work"),
            ("WEBHOOK_SECRET", "too-short"),
            ("WEBHOOK_MAX_BODY_BYTES", "100"),
            ("WEBHOOK_MAX_BODY_BYTES", "7000000"),
            ("WEBHOOK_MAX_BODY_BYTES", "lots"),
        ] {
            let err = load(&[(name, value)]).expect_err(name);
            assert_eq!(err.name, name, "{value}");
            assert!(err.to_string().contains(name));
        }
    }

    const SECRET_ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:webhook-AbCdEf";
    const WORK_QUEUE: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/work";

    #[test]
    fn reads_the_webhook_settings() {
        let config = load(&[
            ("WEBHOOK_SECRET_ARN", SECRET_ARN),
            ("WORK_QUEUE_URL", WORK_QUEUE),
            ("WEBHOOK_MAX_BODY_BYTES", "65536"),
        ])
        .unwrap();
        assert_eq!(config.webhook_secret, Some(SecretSource::SecretsManager(SECRET_ARN.into())));
        assert_eq!(config.work_queue_url.as_deref(), Some(WORK_QUEUE));
        assert_eq!(config.webhook_max_body_bytes, 65536);
        let local = load(&[("WEBHOOK_SECRET", "demo-webhook-secret"), ("WORK_QUEUE_URL", WORK_QUEUE)]).unwrap();
        let Some(SecretSource::Value(secret)) = &local.webhook_secret else { panic!("expected the value") };
        assert_eq!(secret.keys().collect::<Vec<_>>(), [b"demo-webhook-secret"], "the value is used as given");
        // A work queue alone is harmless: the webhook stays off.
        assert_eq!(load(&[("WORK_QUEUE_URL", WORK_QUEUE)]).unwrap().webhook_secret, None);
    }

    #[test]
    fn a_webhook_secret_needs_the_work_queue_and_only_one_source() {
        let err = load(&[("WEBHOOK_SECRET", "demo-webhook-secret")]).unwrap_err();
        assert_eq!(err.name, "WORK_QUEUE_URL");
        let err = load(&[
            ("WEBHOOK_SECRET", "demo-webhook-secret"),
            ("WEBHOOK_SECRET_ARN", SECRET_ARN),
            ("WORK_QUEUE_URL", WORK_QUEUE),
        ])
        .unwrap_err();
        assert_eq!(err.name, "WEBHOOK_SECRET");
        assert!(err.reason.contains("not both"));
    }

    #[test]
    fn the_webhook_secret_is_never_shown() {
        let secret = "demo-webhook-secret-never-shown";
        let config = load(&[("WEBHOOK_SECRET", secret), ("WORK_QUEUE_URL", WORK_QUEUE)]).unwrap();
        assert!(!format!("{config:?}").contains(secret), "Debug shows the secret");
        assert!(!format!("{config:#?}").contains(secret), "Debug shows the secret");
        for vars in [
            vec![("WEBHOOK_SECRET", "short-secret")],
            vec![("WEBHOOK_SECRET", secret)],
            vec![("WEBHOOK_SECRET", secret), ("WEBHOOK_SECRET_ARN", SECRET_ARN), ("WORK_QUEUE_URL", WORK_QUEUE)],
        ] {
            let err = load(&vars).unwrap_err();
            assert!(!err.to_string().contains("short-secret") && !err.to_string().contains(secret), "{err}");
        }
    }
}
