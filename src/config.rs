//! Settings, read and checked once at init: a bad value fails init with a message that names it,
//! instead of failing the first invocation. Each function reads only its own settings
//! ([`WorkerConfig`], [`WebhookConfig`]), each through the same readers (`Settings`).
//! docs/configuration.md lists them all.

use std::ops::RangeInclusive;
use std::time::Duration;

use crate::domain::request::Catalog;
use crate::domain::secret::WebhookSecret;

/// The default and the bounds of `WEBHOOK_MAX_BODY_BYTES`: 256 KiB by default, far above 100 request
/// documents; at most 6 MB, Lambda's own limit on a synchronous invocation's payload.
pub const DEFAULT_WEBHOOK_MAX_BODY_BYTES: usize = 256 * 1024;
const WEBHOOK_MAX_BODY_BYTES_RANGE: RangeInclusive<usize> = 1024..=6_000_000;

/// The default and the bounds of `DEAD_LETTER_MAX_MESSAGE_BYTES`: SQS's `MaximumMessageSize`, from
/// 1 KiB to 1 MiB; 1 MiB by default, as SQS now gives a new queue (a queue made before keeps its
/// 256 KiB: tell the function).
pub const DEFAULT_DEAD_LETTER_MAX_MESSAGE_BYTES: usize = 1_048_576;
const DEAD_LETTER_MAX_MESSAGE_BYTES_RANGE: RangeInclusive<usize> = 1024..=1_048_576;
/// Lambda's longest timeout: no timeout of a call or a slot can be longer.
const LAMBDA_MOST_SECONDS: f64 = 900.0;

/// A setting that cannot be used, by name.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid setting {name}={value:?}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub reason: String,
}

/// The worker's settings (SQS, EventBridge and direct requests into Partner Central calls).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// `ALLOWED_CATALOGS`: catalogs requests may name (default `Sandbox`), so that a test event can
    /// never touch the production `AWS` catalog by accident.
    pub allowed_catalogs: Vec<Catalog>,
    /// `PARTNER_CENTRAL_REGION`: the service exists only in us-east-1, whatever region runs the function.
    pub partner_central_region: String,
    /// This instance's share of the account's write quota, when it paces alone (no `WRITE_SLOTS_TABLE`,
    /// or the table cannot be used): `PARTNER_CENTRAL_WRITES_PER_SECOND`, or else
    /// `ACCOUNT_WRITES_PER_SECOND / MAXIMUM_CONCURRENCY`.
    pub writes_per_second: f64,
    /// `ACCOUNT_WRITES_PER_SECOND`: the account's write quota, which every instance shares through
    /// `WRITE_SLOTS_TABLE`.
    pub account_writes_per_second: f64,
    /// `ACCOUNT_WRITES_PER_DAY` (default 10,000, the account's quota): the writes the stack may make
    /// in any window of `WRITE_BUDGET_WINDOW_SECONDS`; lower leaves room for the account's other tools.
    pub account_writes_per_day: u64,
    /// This instance's share of `ACCOUNT_WRITES_PER_DAY` when it paces alone: divided by
    /// `MAXIMUM_CONCURRENCY`, rounded down.
    pub writes_per_day_alone: u64,
    /// `WRITE_BUDGET_WINDOW_SECONDS` (default 86,400): the rolling window of the day's budget.
    pub write_budget_window: Duration,
    /// `WRITE_SLOTS_TABLE`: the DynamoDB table the instances claim their write slots in. `None`: each
    /// instance paces alone at `PARTNER_CENTRAL_WRITES_PER_SECOND`.
    pub write_slots_table: Option<String>,
    /// `WRITE_SLOT_MARGIN`: added to the quota's interval between two slots, as a fraction of it, for
    /// the differences between instances' latencies and clocks.
    pub write_slot_margin: f64,
    /// `MAX_SLOT_AHEAD_SECONDS`: no shared slot is claimed that starts further ahead than this, so
    /// that a time further ahead in the table is out of bounds for every instance, and a clock that
    /// far off the table's disagrees with it.
    pub max_slot_ahead: Duration,
    /// `PARTNER_CENTRAL_CONNECT_TIMEOUT_SECONDS`, like the CLI's `--cli-connect-timeout`.
    pub connect_timeout: Duration,
    /// `PARTNER_CENTRAL_READ_TIMEOUT_SECONDS`, like the CLI's `--cli-read-timeout`.
    pub read_timeout: Duration,
    /// `PARTNER_CENTRAL_OPERATION_TIMEOUT_SECONDS`: one call (a read with its SDK retries; one attempt
    /// of a write), also cut off at the invocation's deadline.
    pub operation_timeout: Duration,
    /// `AWS_MAX_ATTEMPTS` (default 3, the SDK's): attempts per write, each in its own paced slot, and
    /// per read or SQS call, retried by the SDK. Read here because the SDK's own loader panics on a
    /// value it cannot use.
    pub max_attempts: u32,
    /// `DEAD_LETTER_QUEUE_URL`: where permanent failures go at once, with their reason.
    pub dead_letter_queue_url: Option<String>,
    /// `DEAD_LETTER_MAX_MESSAGE_BYTES`: the dead-letter queue's `MaximumMessageSize`. A dead letter's
    /// reason is shortened to fit it with the body; a body that cannot fit alone is not sent.
    pub dead_letter_max_message_bytes: usize,
    /// `MAX_RECEIVE_COUNT`: the work queue's `maxReceiveCount`. A record that fails at that receive,
    /// its last before SQS's redrive would move it without a reason, is dead-lettered with its reason
    /// instead. `None`: failed records are always reported, and the redrive takes them.
    pub max_receive_count: Option<u32>,
    /// `WORK_QUEUE_URL`: the work queue, where a record that must wait (docs/holds.md) is sent to
    /// wait. `None`: such a record fails as a transient failure, and is retried.
    pub work_queue_url: Option<String>,
    /// `MAX_HOLD_SECONDS` (default 43,200, SQS's longest visibility timeout): the longest a held
    /// message is kept invisible at once.
    pub max_hold: Duration,
    /// `REVIEW_RECHECK_SECONDS` (default 3,600): how long a write refused under AWS's review waits
    /// before it is tried again.
    pub review_recheck: Duration,
    /// `WORK_QUEUE_RETENTION_SECONDS`: the work queue's `MessageRetentionPeriod` (default 1,123,200,
    /// the template's 13 days). A record held longer than this minus `MAX_HOLD_SECONDS` is
    /// dead-lettered, as its next return might come after SQS has deleted it.
    pub work_queue_retention: Duration,
    /// `DRY_RUN`: validate and log the call, make none.
    pub dry_run: bool,
    /// `WARM_UP` (`true`, `false`, or `auto`: only in Lambda): whether init opens the connection to
    /// Partner Central with a read. Never under `DRY_RUN`, which calls nothing.
    pub warm_up: bool,
    /// `METRICS_NAMESPACE`: the CloudWatch namespace of the embedded metrics.
    pub metrics_namespace: String,
    /// `METRICS_SERVICE_NAME`: the `Service` dimension of the embedded metrics.
    pub service_name: String,
}

/// Where the webhook secret comes from (`aws::secrets` reads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `WEBHOOK_SECRET_ARN`: a Secrets Manager secret, read once at init.
    SecretsManager(String),
    /// `WEBHOOK_SECRET`: the value itself, for local runs.
    Value(WebhookSecret),
}

/// The webhook's settings (signed CRM requests into the work queue).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// `ALLOWED_CATALOGS`, as the worker reads it: a request for another catalog is refused at once.
    pub allowed_catalogs: Vec<Catalog>,
    /// `WEBHOOK_SECRET_ARN` (Secrets Manager, read at init) or `WEBHOOK_SECRET` (the value, for local
    /// runs): the HMAC key. Required. `Debug` never shows the value.
    pub secret: SecretSource,
    /// `WORK_QUEUE_URL`: the queue requests are buffered into. Required.
    pub work_queue_url: String,
    /// `WEBHOOK_MAX_BODY_BYTES`: the largest body taken (default 256 KiB); larger is answered 413.
    pub max_body_bytes: usize,
}

impl WorkerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let settings = Settings(lookup);
        let account_writes_per_second =
            settings.number("ACCOUNT_WRITES_PER_SECOND", 1.0, 0.1..=1000.0, "must be a number from 0.1 to 1000")?;
        let writes_per_second = settings.alone_share(account_writes_per_second)?;
        let (account_writes_per_day, writes_per_day_alone) = settings.day_budget()?;
        let write_budget_window = Duration::from_secs_f64(settings.number(
            "WRITE_BUDGET_WINDOW_SECONDS",
            86_400.0,
            1.0..=2_592_000.0,
            "must be a number of seconds from 1 to 2592000 (30 days)",
        )?);
        let read_timeout = settings.seconds("PARTNER_CENTRAL_READ_TIMEOUT_SECONDS", 10.0, LAMBDA_MOST_SECONDS)?;
        let operation_timeout =
            settings.seconds("PARTNER_CENTRAL_OPERATION_TIMEOUT_SECONDS", 20.0, LAMBDA_MOST_SECONDS)?;
        if operation_timeout < read_timeout {
            return Err(ConfigError {
                name: "PARTNER_CENTRAL_OPERATION_TIMEOUT_SECONDS",
                value: format!("{}", operation_timeout.as_secs_f64()),
                reason: "must be at least PARTNER_CENTRAL_READ_TIMEOUT_SECONDS".to_owned(),
            });
        }
        let dry_run = settings.flag("DRY_RUN", false)?;
        let max_hold = settings.seconds("MAX_HOLD_SECONDS", 43_200.0, 43_200.0)?;
        let work_queue_retention = settings.seconds("WORK_QUEUE_RETENTION_SECONDS", 1_123_200.0, 1_209_600.0)?;
        if work_queue_retention <= max_hold {
            return Err(ConfigError {
                name: "WORK_QUEUE_RETENTION_SECONDS",
                value: format!("{}", work_queue_retention.as_secs_f64()),
                reason: "must be more than MAX_HOLD_SECONDS: a held message must come back before SQS deletes it"
                    .to_owned(),
            });
        }
        Ok(Self {
            allowed_catalogs: settings.catalogs("ALLOWED_CATALOGS")?,
            partner_central_region: settings.region("PARTNER_CENTRAL_REGION", "us-east-1")?,
            writes_per_second,
            account_writes_per_second,
            account_writes_per_day,
            writes_per_day_alone,
            write_budget_window,
            write_slots_table: settings.table_name("WRITE_SLOTS_TABLE")?,
            write_slot_margin: settings.number(
                "WRITE_SLOT_MARGIN",
                0.05,
                0.0..=0.5,
                "must be a fraction from 0 to 0.5",
            )?,
            max_slot_ahead: settings.seconds("MAX_SLOT_AHEAD_SECONDS", 10.0, LAMBDA_MOST_SECONDS)?,
            connect_timeout: settings.seconds("PARTNER_CENTRAL_CONNECT_TIMEOUT_SECONDS", 3.0, LAMBDA_MOST_SECONDS)?,
            read_timeout,
            operation_timeout,
            max_attempts: settings.number(
                "AWS_MAX_ATTEMPTS",
                3,
                1..=u32::MAX,
                "must be a number of attempts, 1 or more",
            )?,
            dead_letter_queue_url: settings.queue_url("DEAD_LETTER_QUEUE_URL")?,
            dead_letter_max_message_bytes: settings.number(
                "DEAD_LETTER_MAX_MESSAGE_BYTES",
                DEFAULT_DEAD_LETTER_MAX_MESSAGE_BYTES,
                DEAD_LETTER_MAX_MESSAGE_BYTES_RANGE,
                "must be the dead-letter queue's MaximumMessageSize, a number of bytes from 1024 to 1048576",
            )?,
            max_receive_count: settings.optional_number(
                "MAX_RECEIVE_COUNT",
                1..=1000,
                "must be the work queue's maxReceiveCount, 1 to 1000",
            )?,
            work_queue_url: settings.queue_url("WORK_QUEUE_URL")?,
            max_hold,
            review_recheck: settings.seconds("REVIEW_RECHECK_SECONDS", 3_600.0, 1_209_600.0)?,
            work_queue_retention,
            dry_run,
            warm_up: settings.warm_up()? && !dry_run,
            metrics_namespace: settings
                .text("METRICS_NAMESPACE")
                .unwrap_or_else(|| "OpportunityDisassociator".to_owned()),
            service_name: settings
                .text("METRICS_SERVICE_NAME")
                .unwrap_or_else(|| "opportunity-disassociator".to_owned()),
        })
    }
}

impl WebhookConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let settings = Settings(lookup);
        let secret = settings.secret()?;
        let work_queue_url = settings.queue_url("WORK_QUEUE_URL")?.ok_or_else(|| ConfigError {
            name: "WORK_QUEUE_URL",
            value: String::new(),
            reason: "is required: the webhook queues requests there".to_owned(),
        })?;
        Ok(Self {
            allowed_catalogs: settings.catalogs("ALLOWED_CATALOGS")?,
            secret,
            work_queue_url,
            max_body_bytes: settings.number(
                "WEBHOOK_MAX_BODY_BYTES",
                DEFAULT_WEBHOOK_MAX_BODY_BYTES,
                WEBHOOK_MAX_BODY_BYTES_RANGE,
                "must be a number of bytes from 1024 to 6000000",
            )?,
        })
    }
}

/// The environment, one typed setting at a time. Every reader trims the value, takes an empty one
/// as unset, and names the setting in its error.
struct Settings<L>(L);

impl<L: Fn(&str) -> Option<String>> Settings<L> {
    fn text(&self, name: &str) -> Option<String> {
        (self.0)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    fn error(name: &'static str, value: &str, reason: &str) -> ConfigError {
        ConfigError { name, value: value.to_owned(), reason: reason.to_owned() }
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`, in any case).
    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.text(name).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(other) => Err(Self::error(name, other, "must be true or false")),
        }
    }

    /// `PARTNER_CENTRAL_WRITES_PER_SECOND`, or else the account's quota divided by
    /// `MAXIMUM_CONCURRENCY`: the rate at which that many instances pacing alone stay within the quota.
    /// At least one write every 10 s: with a longer interval an invocation has room for only a few
    /// writes, and the rest of its batch would spend receive after receive untried.
    fn alone_share(&self, account_writes_per_second: f64) -> Result<f64, ConfigError> {
        const AT_LEAST: f64 = 0.1;
        let explicit = self.optional_number(
            "PARTNER_CENTRAL_WRITES_PER_SECOND",
            AT_LEAST..=1000.0,
            "must be a number from 0.1 to 1000",
        )?;
        if let Some(share) = explicit {
            return Ok(share);
        }
        let instances = self.instances()?;
        let share = account_writes_per_second / instances as f64;
        if share < AT_LEAST {
            return Err(Self::error(
                "MAXIMUM_CONCURRENCY",
                &instances.to_string(),
                &format!(
                    "leaves each instance pacing alone {share:.3} writes/s of ACCOUNT_WRITES_PER_SECOND={account_writes_per_second}, \
                     below one write every 10 s: fewer instances, or set PARTNER_CENTRAL_WRITES_PER_SECOND"
                ),
            ));
        }
        Ok(share)
    }

    /// `MAXIMUM_CONCURRENCY`: the most instances at once (1 unless told), among which a quota is shared.
    fn instances(&self) -> Result<u64, ConfigError> {
        self.number("MAXIMUM_CONCURRENCY", 1, 1..=1000, "must be a whole number of instances from 1 to 1000")
    }

    /// `ACCOUNT_WRITES_PER_DAY`, and an instance's share of it when it paces alone.
    fn day_budget(&self) -> Result<(u64, u64), ConfigError> {
        let per_day = self.number(
            "ACCOUNT_WRITES_PER_DAY",
            10_000,
            1..=100_000_000,
            "must be a whole number of writes from 1 to 100000000",
        )?;
        let instances = self.instances()?;
        if per_day < instances {
            return Err(Self::error(
                "ACCOUNT_WRITES_PER_DAY",
                &per_day.to_string(),
                &format!("leaves each of MAXIMUM_CONCURRENCY={instances} instances pacing alone no write per window"),
            ));
        }
        Ok((per_day, per_day / instances))
    }

    /// A number within `range`.
    fn number<T>(
        &self,
        name: &'static str,
        default: T,
        range: RangeInclusive<T>,
        reason: &str,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd,
    {
        Ok(self.optional_number(name, range, reason)?.unwrap_or(default))
    }

    fn optional_number<T>(
        &self,
        name: &'static str,
        range: RangeInclusive<T>,
        reason: &str,
    ) -> Result<Option<T>, ConfigError>
    where
        T: std::str::FromStr + PartialOrd,
    {
        let Some(value) = self.text(name) else { return Ok(None) };
        // `contains` is false for NaN, so a float setting cannot be NaN.
        match value.parse::<T>() {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(Self::error(name, &value, reason)),
        }
    }

    /// Seconds above 0 and at most `most` (decimals allowed: tests scale time).
    fn seconds(&self, name: &'static str, default: f64, most: f64) -> Result<Duration, ConfigError> {
        let reason = format!("must be a number of seconds above 0 and at most {most}");
        let seconds = self.number(name, default, f64::MIN_POSITIVE..=most, &reason)?;
        Ok(Duration::from_secs_f64(seconds))
    }

    /// An SQS queue URL.
    fn queue_url(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        match self.text(name) {
            Some(url) if !(url.starts_with("https://") || url.starts_with("http://")) => {
                Err(Self::error(name, &url, "must be an SQS queue URL (https://...)"))
            }
            url => Ok(url),
        }
    }

    /// A DynamoDB table name: 3 to 255 of `a-z A-Z 0-9 _ - .`.
    fn table_name(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        match self.text(name) {
            Some(table)
                if !(3..=255).contains(&table.len())
                    || !table.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) =>
            {
                Err(Self::error(name, &table, "must be a DynamoDB table name (3 to 255 of a-z A-Z 0-9 _ - .)"))
            }
            table => Ok(table),
        }
    }

    fn region(&self, name: &'static str, default: &str) -> Result<String, ConfigError> {
        let region = self.text(name).unwrap_or_else(|| default.to_owned());
        if region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            Ok(region)
        } else {
            Err(Self::error(name, &region, "must be a region name such as us-east-1"))
        }
    }

    /// A comma-separated list of catalogs, `Sandbox` by default.
    fn catalogs(&self, name: &'static str) -> Result<Vec<Catalog>, ConfigError> {
        let Some(value) = self.text(name) else { return Ok(vec![Catalog::Sandbox]) };
        let mut catalogs = Vec::new();
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let catalog =
                Catalog::parse(part).ok_or_else(|| Self::error(name, &value, "each entry must be AWS or Sandbox"))?;
            if !catalogs.contains(&catalog) {
                catalogs.push(catalog);
            }
        }
        if catalogs.is_empty() {
            return Err(Self::error(name, &value, "names no catalog"));
        }
        Ok(catalogs)
    }

    /// `WARM_UP`: `true`, `false`, or `auto` (the default): only in Lambda, which sets
    /// `AWS_LAMBDA_INITIALIZATION_TYPE` in every execution environment. A harness that runs the binary
    /// under a Runtime API of its own then sees exactly the calls its events cause.
    fn warm_up(&self) -> Result<bool, ConfigError> {
        match self.text("WARM_UP").map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("auto") => Ok(self.text("AWS_LAMBDA_INITIALIZATION_TYPE").is_some()),
            Some(_) => self
                .flag("WARM_UP", false)
                .map_err(|e| ConfigError { reason: "must be true, false or auto".to_owned(), ..e }),
        }
    }

    /// The webhook's secret: `WEBHOOK_SECRET_ARN` or `WEBHOOK_SECRET`, exactly one. The value is never
    /// put in an error, only whether it was set.
    fn secret(&self) -> Result<SecretSource, ConfigError> {
        // The value is used exactly as set: white space around it is refused, not trimmed.
        let value = (self.0)("WEBHOOK_SECRET").filter(|v| !v.is_empty());
        match (self.text("WEBHOOK_SECRET_ARN"), value) {
            (Some(_), Some(_)) => Err(Self::error(
                "WEBHOOK_SECRET",
                "<redacted>",
                "set either WEBHOOK_SECRET_ARN (Secrets Manager) or WEBHOOK_SECRET (local runs), not both",
            )),
            (Some(arn), None) => {
                let parts: Vec<&str> = arn.split(':').collect();
                if parts.len() < 7 || parts[0] != "arn" || parts[2] != "secretsmanager" || parts[5] != "secret" {
                    return Err(Self::error(
                        "WEBHOOK_SECRET_ARN",
                        &arn,
                        "must be a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>)",
                    ));
                }
                Ok(SecretSource::SecretsManager(arn))
            }
            (None, Some(value)) => WebhookSecret::new(value)
                .map(SecretSource::Value)
                .map_err(|reason| Self::error("WEBHOOK_SECRET", "<redacted>", &reason)),
            (None, None) => Err(Self::error(
                "WEBHOOK_SECRET_ARN",
                "",
                "is required (or WEBHOOK_SECRET for local runs): a Function URL request is never accepted without a secret",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    fn worker(vars: &[(&str, &str)]) -> Result<WorkerConfig, ConfigError> {
        WorkerConfig::from_lookup(lookup(vars))
    }

    fn webhook(vars: &[(&str, &str)]) -> Result<WebhookConfig, ConfigError> {
        WebhookConfig::from_lookup(lookup(vars))
    }

    #[test]
    fn defaults_are_safe() {
        let config = worker(&[]).unwrap();
        assert_eq!(config.allowed_catalogs, [Catalog::Sandbox]);
        assert_eq!(config.partner_central_region, "us-east-1");
        assert_eq!(config.writes_per_second, 1.0);
        assert_eq!(config.account_writes_per_second, 1.0);
        assert_eq!(config.write_slots_table, None, "pacing alone unless a table is set");
        assert_eq!(config.write_slot_margin, 0.05);
        assert_eq!(config.max_slot_ahead, Duration::from_secs(10));
        assert_eq!(config.account_writes_per_day, 10_000, "the account's quota");
        assert_eq!(config.writes_per_day_alone, 10_000);
        assert_eq!(config.write_budget_window, Duration::from_secs(86_400));
        assert_eq!(config.connect_timeout, Duration::from_secs(3));
        assert_eq!(config.read_timeout, Duration::from_secs(10));
        assert_eq!(config.max_attempts, 3, "the SDK's default");
        assert_eq!(config.dead_letter_queue_url, None);
        assert_eq!(config.dead_letter_max_message_bytes, 1_048_576, "what SQS gives a new queue");
        assert_eq!(config.max_receive_count, None);
        assert!(!config.dry_run);
        assert!(!config.warm_up, "not in Lambda");
        assert_eq!(config.work_queue_url, None, "nothing is held without a work queue");
        assert_eq!(config.max_hold, Duration::from_secs(43_200), "SQS's longest visibility");
        assert_eq!(config.review_recheck, Duration::from_secs(3_600));
        assert_eq!(config.work_queue_retention, Duration::from_secs(1_123_200), "the template's 13 days");
        let webhook = webhook(&[("WEBHOOK_SECRET", "demo-webhook-secret"), ("WORK_QUEUE_URL", WORK_QUEUE)]).unwrap();
        assert_eq!(webhook.max_body_bytes, 262_144);
    }

    #[test]
    fn reads_every_setting() {
        let config = worker(&[
            ("ALLOWED_CATALOGS", " AWS , Sandbox,AWS"),
            ("PARTNER_CENTRAL_REGION", "us-west-2"),
            ("PARTNER_CENTRAL_WRITES_PER_SECOND", "0.5"),
            ("ACCOUNT_WRITES_PER_SECOND", "2"),
            ("WRITE_SLOTS_TABLE", "stack-write-slots"),
            ("WRITE_SLOT_MARGIN", "0.1"),
            ("MAX_SLOT_AHEAD_SECONDS", "30"),
            ("ACCOUNT_WRITES_PER_DAY", "41"),
            ("MAXIMUM_CONCURRENCY", "2"),
            ("WRITE_BUDGET_WINDOW_SECONDS", "40.5"),
            ("PARTNER_CENTRAL_CONNECT_TIMEOUT_SECONDS", "1.5"),
            ("PARTNER_CENTRAL_READ_TIMEOUT_SECONDS", "4"),
            ("PARTNER_CENTRAL_OPERATION_TIMEOUT_SECONDS", "8"),
            ("AWS_MAX_ATTEMPTS", "5"),
            ("DEAD_LETTER_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/dlq"),
            ("DEAD_LETTER_MAX_MESSAGE_BYTES", "262144"),
            ("MAX_RECEIVE_COUNT", "3"),
            ("WORK_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/work"),
            ("MAX_HOLD_SECONDS", "20"),
            ("REVIEW_RECHECK_SECONDS", "1.667"),
            ("WORK_QUEUE_RETENTION_SECONDS", "520"),
            ("DRY_RUN", "TRUE"),
            ("METRICS_NAMESPACE", "Ns"),
            ("METRICS_SERVICE_NAME", "svc"),
        ])
        .unwrap();
        assert_eq!(config.allowed_catalogs, [Catalog::Aws, Catalog::Sandbox]);
        assert_eq!(config.partner_central_region, "us-west-2");
        assert_eq!(config.writes_per_second, 0.5);
        assert_eq!(config.account_writes_per_second, 2.0);
        assert_eq!(config.write_slots_table.as_deref(), Some("stack-write-slots"));
        assert_eq!(config.write_slot_margin, 0.1);
        assert_eq!(config.max_slot_ahead, Duration::from_secs(30));
        assert_eq!((config.account_writes_per_day, config.writes_per_day_alone), (41, 20), "the share rounded down");
        assert_eq!(config.write_budget_window, Duration::from_millis(40_500));
        assert_eq!(config.connect_timeout, Duration::from_millis(1500));
        assert_eq!(config.operation_timeout, Duration::from_secs(8));
        assert_eq!(config.max_attempts, 5);
        assert!(config.dead_letter_queue_url.is_some());
        assert_eq!(config.dead_letter_max_message_bytes, 262_144);
        assert_eq!(config.max_receive_count, Some(3));
        assert!(config.work_queue_url.is_some());
        assert_eq!(config.max_hold, Duration::from_secs(20));
        assert_eq!(config.review_recheck, Duration::from_millis(1667));
        assert_eq!(config.work_queue_retention, Duration::from_secs(520));
        assert!(config.dry_run);
        assert_eq!((config.metrics_namespace.as_str(), config.service_name.as_str()), ("Ns", "svc"));
    }

    #[test]
    fn an_instance_pacing_alone_takes_the_quota_divided_by_the_instances_unless_told_its_share() {
        let share = |vars: &[(&str, &str)]| worker(vars).map(|c| c.writes_per_second);
        assert_eq!(share(&[("ACCOUNT_WRITES_PER_SECOND", "0.8"), ("MAXIMUM_CONCURRENCY", "2")]), Ok(0.4));
        assert_eq!(share(&[("ACCOUNT_WRITES_PER_SECOND", "10"), ("MAXIMUM_CONCURRENCY", "3")]), Ok(10.0 / 3.0));
        assert_eq!(share(&[("ACCOUNT_WRITES_PER_SECOND", "2")]), Ok(2.0), "one instance unless told");
        let told = [
            ("ACCOUNT_WRITES_PER_SECOND", "0.8"),
            ("MAXIMUM_CONCURRENCY", "2"),
            ("PARTNER_CENTRAL_WRITES_PER_SECOND", "0.3"),
        ];
        assert_eq!(share(&told), Ok(0.3), "an explicit share wins");
        // Five instances of a quota of 0.4 would each pace alone at one write every 12.5 s.
        let error = worker(&[("ACCOUNT_WRITES_PER_SECOND", "0.4"), ("MAXIMUM_CONCURRENCY", "5")]).unwrap_err();
        assert_eq!(error.name, "MAXIMUM_CONCURRENCY");
        assert!(error.reason.contains("0.080 writes/s"), "{error}");
        // The day's budget is divided the same way, and must leave each instance a write.
        let error = worker(&[("ACCOUNT_WRITES_PER_DAY", "1"), ("MAXIMUM_CONCURRENCY", "2")]).unwrap_err();
        assert_eq!(error.name, "ACCOUNT_WRITES_PER_DAY");
        let day = worker(&[("ACCOUNT_WRITES_PER_DAY", "10000"), ("MAXIMUM_CONCURRENCY", "3")]).unwrap();
        assert_eq!(day.writes_per_day_alone, 3_333);
    }

    #[test]
    fn warms_up_in_lambda_unless_told_otherwise_and_never_in_a_dry_run() {
        let lambda = ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand");
        let warm_up = |vars: &[(&str, &str)]| worker(vars).map(|c| c.warm_up);
        assert_eq!(warm_up(&[lambda]), Ok(true));
        assert_eq!(warm_up(&[]), Ok(false), "not in Lambda");
        assert_eq!(warm_up(&[lambda, ("WARM_UP", "auto")]), Ok(true));
        assert_eq!(warm_up(&[lambda, ("WARM_UP", " False ")]), Ok(false));
        assert_eq!(warm_up(&[("WARM_UP", "true")]), Ok(true));
        assert_eq!(warm_up(&[lambda, ("DRY_RUN", "true")]), Ok(false), "DRY_RUN calls nothing");
        let error = worker(&[("WARM_UP", "sometimes")]).unwrap_err();
        assert_eq!((error.name, error.reason.as_str()), ("WARM_UP", "must be true, false or auto"));
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
            ("ACCOUNT_WRITES_PER_SECOND", "0"),
            ("ACCOUNT_WRITES_PER_SECOND", "lots"),
            ("MAXIMUM_CONCURRENCY", "0"),
            ("MAXIMUM_CONCURRENCY", "2.5"),
            ("MAXIMUM_CONCURRENCY", "11"),
            ("WRITE_SLOTS_TABLE", "ab"),
            ("WRITE_SLOTS_TABLE", "my table"),
            ("WRITE_SLOT_MARGIN", "0.6"),
            ("WRITE_SLOT_MARGIN", "-0.1"),
            ("ACCOUNT_WRITES_PER_DAY", "0"),
            ("ACCOUNT_WRITES_PER_DAY", "2.5"),
            ("ACCOUNT_WRITES_PER_DAY", "lots"),
            ("WRITE_BUDGET_WINDOW_SECONDS", "0"),
            ("WRITE_BUDGET_WINDOW_SECONDS", "-40"),
            ("WRITE_BUDGET_WINDOW_SECONDS", "a day"),
            ("PARTNER_CENTRAL_CONNECT_TIMEOUT_SECONDS", "-1"),
            ("PARTNER_CENTRAL_READ_TIMEOUT_SECONDS", "inf"),
            ("PARTNER_CENTRAL_OPERATION_TIMEOUT_SECONDS", "1"),
            ("AWS_MAX_ATTEMPTS", "0"),
            ("AWS_MAX_ATTEMPTS", "three"),
            ("DEAD_LETTER_QUEUE_URL", "my-dlq"),
            ("DEAD_LETTER_MAX_MESSAGE_BYTES", "1023"),
            ("DEAD_LETTER_MAX_MESSAGE_BYTES", "1048577"),
            ("DEAD_LETTER_MAX_MESSAGE_BYTES", "256KiB"),
            ("MAX_RECEIVE_COUNT", "0"),
            ("MAX_RECEIVE_COUNT", "1001"),
            ("MAX_RECEIVE_COUNT", "three"),
            ("DRY_RUN", "maybe"),
            ("WORK_QUEUE_URL", "work"),
            ("MAX_HOLD_SECONDS", "43201"),
            ("MAX_HOLD_SECONDS", "0"),
            ("REVIEW_RECHECK_SECONDS", "soon"),
            ("WORK_QUEUE_RETENTION_SECONDS", "1209601"),
            ("WORK_QUEUE_RETENTION_SECONDS", "43200"),
        ] {
            let err = worker(&[(name, value)]).expect_err(name);
            assert_eq!(err.name, name, "{value}");
            assert!(err.to_string().contains(name));
        }
        for (name, value) in [
            ("WORK_QUEUE_URL", "work"),
            ("WEBHOOK_MAX_BODY_BYTES", "100"),
            ("WEBHOOK_MAX_BODY_BYTES", "7000000"),
            ("WEBHOOK_MAX_BODY_BYTES", "lots"),
            ("ALLOWED_CATALOGS", "Production"),
        ] {
            let err =
                webhook(&[("WEBHOOK_SECRET", "demo-webhook-secret"), ("WORK_QUEUE_URL", WORK_QUEUE), (name, value)])
                    .expect_err(name);
            assert_eq!(err.name, name, "{value}");
        }
        for (name, value) in [
            ("WEBHOOK_SECRET_ARN", "my-secret"),
            ("WEBHOOK_SECRET_ARN", "arn:aws:sqs:us-east-1:123456789012:work"),
            ("WEBHOOK_SECRET", "too-short"),
        ] {
            let err = webhook(&[("WORK_QUEUE_URL", WORK_QUEUE), (name, value)]).expect_err(name);
            assert_eq!(err.name, name, "{value}");
        }
    }

    const SECRET_ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:webhook-AbCdEf";
    const WORK_QUEUE: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/work";

    #[test]
    fn reads_the_webhook_settings() {
        let config = webhook(&[
            ("WEBHOOK_SECRET_ARN", SECRET_ARN),
            ("WORK_QUEUE_URL", WORK_QUEUE),
            ("WEBHOOK_MAX_BODY_BYTES", "65536"),
        ])
        .unwrap();
        assert_eq!(config.secret, SecretSource::SecretsManager(SECRET_ARN.into()));
        assert_eq!(config.work_queue_url, WORK_QUEUE);
        assert_eq!(config.max_body_bytes, 65536);
        let local = webhook(&[("WEBHOOK_SECRET", "demo-webhook-secret"), ("WORK_QUEUE_URL", WORK_QUEUE)]).unwrap();
        let SecretSource::Value(secret) = &local.secret else { panic!("expected the value") };
        assert_eq!(secret.keys().collect::<Vec<_>>(), [b"demo-webhook-secret"], "the value is used as given");
    }

    #[test]
    fn the_webhook_needs_a_secret_from_one_source_and_the_work_queue() {
        let err = webhook(&[("WORK_QUEUE_URL", WORK_QUEUE)]).unwrap_err();
        assert_eq!(err.name, "WEBHOOK_SECRET_ARN", "without a secret the webhook fails init");
        let err = webhook(&[("WEBHOOK_SECRET", "demo-webhook-secret")]).unwrap_err();
        assert_eq!(err.name, "WORK_QUEUE_URL");
        let err = webhook(&[
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
        let config = webhook(&[("WEBHOOK_SECRET", secret), ("WORK_QUEUE_URL", WORK_QUEUE)]).unwrap();
        assert!(!format!("{config:?}").contains(secret), "Debug shows the secret");
        assert!(!format!("{config:#?}").contains(secret), "Debug shows the secret");
        for vars in [
            vec![("WEBHOOK_SECRET", "short-secret"), ("WORK_QUEUE_URL", WORK_QUEUE)],
            vec![("WEBHOOK_SECRET", secret)],
            vec![("WEBHOOK_SECRET", secret), ("WEBHOOK_SECRET_ARN", SECRET_ARN), ("WORK_QUEUE_URL", WORK_QUEUE)],
        ] {
            let err = webhook(&vars).unwrap_err();
            assert!(!err.to_string().contains("short-secret") && !err.to_string().contains(secret), "{err}");
        }
    }
}
