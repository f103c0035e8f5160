//! Settings, read and checked once at init: a bad value fails init with a message that names it,
//! instead of failing the first invocation.

use std::time::Duration;

use crate::request::Catalog;

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
    /// `PARTNER_CENTRAL_OPERATION_TIMEOUT_SECONDS`: one call, all its retries included. A record is
    /// started only when its paced slot plus this much fits before the invocation's deadline.
    pub operation_timeout: Duration,
    /// `DEAD_LETTER_QUEUE_URL`: where permanent failures go at once, with their reason.
    pub dead_letter_queue_url: Option<String>,
    /// `DRY_RUN`: validate and log the call, make none.
    pub dry_run: bool,
    /// `METRICS_NAMESPACE`: the CloudWatch namespace of the embedded metrics.
    pub metrics_namespace: String,
    /// `METRICS_SERVICE_NAME`: the `Service` dimension of the embedded metrics.
    pub service_name: String,
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
                v.parse::<f64>().ok().filter(|r| r.is_finite() && *r >= 0.001 && *r <= 1000.0).ok_or_else(|| {
                    error("PARTNER_CENTRAL_WRITES_PER_SECOND", &v, "must be a number from 0.001 to 1000")
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

        let dead_letter_queue_url = get("DEAD_LETTER_QUEUE_URL");
        if let Some(url) = &dead_letter_queue_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(error("DEAD_LETTER_QUEUE_URL", url, "must be an SQS queue URL (https://...)"));
        }

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
            dead_letter_queue_url,
            dry_run,
            metrics_namespace: get("METRICS_NAMESPACE").unwrap_or_else(|| "OpportunityDisassociator".to_owned()),
            service_name: get("METRICS_SERVICE_NAME").unwrap_or_else(|| "opportunity-disassociator".to_owned()),
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
        assert_eq!(config.dead_letter_queue_url, None);
        assert!(!config.dry_run);
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
            ("DEAD_LETTER_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/dlq"),
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
        assert!(config.dead_letter_queue_url.is_some());
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
            ("PARTNER_CENTRAL_WRITES_PER_SECOND", "fast"),
            ("PARTNER_CENTRAL_WRITES_PER_SECOND", "NaN"),
            ("PARTNER_CENTRAL_CONNECT_TIMEOUT_SECONDS", "-1"),
            ("PARTNER_CENTRAL_READ_TIMEOUT_SECONDS", "inf"),
            ("PARTNER_CENTRAL_OPERATION_TIMEOUT_SECONDS", "1"),
            ("DEAD_LETTER_QUEUE_URL", "my-dlq"),
            ("DRY_RUN", "maybe"),
        ] {
            let err = load(&[(name, value)]).expect_err(name);
            assert_eq!(err.name, name, "{value}");
            assert!(err.to_string().contains(name));
        }
    }
}
