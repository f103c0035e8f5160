//! The webhook's shared secret: where it comes from.
//!
//! In AWS the secret lives in Secrets Manager (`WEBHOOK_SECRET_ARN`) and is read once, at init: a
//! secret that cannot be read fails init naming the setting, instead of failing every webhook. For
//! local runs `WEBHOOK_SECRET` holds the value itself. Either way the bytes are kept in a
//! [`WebhookSecret`], whose `Debug` prints `<redacted>`, so no log line or config dump can carry it.
//!
//! A rotated secret reaches an instance only when it starts, so an instance from Secrets Manager
//! takes two keys: the secret's current value (`AWSCURRENT`) and, while there is one, its previous
//! value (`AWSPREVIOUS`). Rotate without a gap: put the new value, force new instances (a
//! configuration change or a deploy), and only then switch the CRM to the new secret. Until the next
//! rotation the old value is accepted too; to retire it at once (a leaked secret), take its
//! `AWSPREVIOUS` label off (`aws secretsmanager update-secret-version-stage`) before forcing new
//! instances.

use aws_config::SdkConfig;
use aws_sdk_secretsmanager::Client;

use crate::config::{ConfigError, SecretSource};
use crate::domain::secret::WebhookSecret;

/// The secret itself, from where `source` says: read from Secrets Manager when it lives there. An
/// error names the setting.
pub async fn resolve(source: &SecretSource, sdk: &SdkConfig) -> Result<WebhookSecret, ConfigError> {
    match source {
        SecretSource::Value(secret) => Ok(secret.clone()),
        SecretSource::SecretsManager(arn) => fetch(sdk, arn).await.map_err(|reason| ConfigError {
            name: "WEBHOOK_SECRET_ARN",
            value: arn.clone(),
            reason,
        }),
    }
}

/// Reads a secret's current value and, when it has one, its previous value (both at once): each its
/// `SecretString`, byte for byte (not trimmed), or its `SecretBinary`. The current value must be
/// readable and usable; a previous value that is missing, unreadable or unusable is left out, and
/// said so in the log.
async fn fetch(sdk: &SdkConfig, arn: &str) -> Result<WebhookSecret, String> {
    // Init has 10 s in all: a Secrets Manager that does not answer must fail it, not hang it.
    let config = aws_sdk_secretsmanager::config::Builder::from(sdk).timeout_config(super::bounded_timeouts());
    let client = Client::from_conf(config.build());
    let (current, previous) = tokio::join!(value(&client, arn, CURRENT), value(&client, arn, PREVIOUS));
    let mut secret = WebhookSecret::new(current?)?;
    if let Err(reason) = previous.and_then(|bytes| secret.add_previous(bytes)) {
        tracing::info!(reason, "the webhook accepts the secret's current value only");
    }
    Ok(secret)
}

const CURRENT: &str = "AWSCURRENT";
const PREVIOUS: &str = "AWSPREVIOUS";

/// One version of the secret, by its staging label.
async fn value(client: &Client, arn: &str, stage: &str) -> Result<Vec<u8>, String> {
    let answer = client.get_secret_value().secret_id(arn).version_stage(stage).send().await.map_err(|e| {
        format!("GetSecretValue ({stage}) failed: {}", aws_sdk_secretsmanager::error::DisplayErrorContext(&e))
    })?;
    match (answer.secret_string(), answer.secret_binary()) {
        (Some(text), _) => Ok(text.as_bytes().to_vec()),
        (None, Some(blob)) => Ok(blob.as_ref().to_vec()),
        (None, None) => Err(format!("the secret's {stage} version has no value")),
    }
}
