//! The webhook's shared secret: where it comes from, and a type that never shows it.
//!
//! In AWS the secret lives in Secrets Manager (`WEBHOOK_SECRET_ARN`) and is read once, at init: a
//! secret that cannot be read fails init naming the setting, instead of failing every webhook. For
//! local runs `WEBHOOK_SECRET` holds the value itself. Either way the bytes are kept in a
//! [`WebhookSecret`], whose `Debug` prints `<redacted>`, so no log line or config dump can carry it.
//!
//! A rotated secret reaches an instance only when it starts: rotate by updating the CRM first to
//! send with the new secret, then forcing new instances (a configuration change or a deploy).

use std::fmt;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_secretsmanager::Client;
use aws_smithy_types::timeout::TimeoutConfig;

use crate::config::ConfigError;

/// The fewest bytes a secret may have: a short HMAC key is a guessable one.
pub const MIN_SECRET_BYTES: usize = 16;

/// The HMAC key of the webhook. Compared and hashed only, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// The secret, when it is at least [`MIN_SECRET_BYTES`] long.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, String> {
        let bytes = bytes.into();
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(format!("the secret must be at least {MIN_SECRET_BYTES} bytes, it has {}", bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// The key bytes, for the HMAC only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// Where the webhook secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `WEBHOOK_SECRET_ARN`: a Secrets Manager secret, read once at init.
    SecretsManager(String),
    /// `WEBHOOK_SECRET`: the value itself, for local runs.
    Value(WebhookSecret),
}

impl SecretSource {
    /// The secret itself: read from Secrets Manager when it lives there. An error names the setting.
    pub async fn resolve(&self, sdk: &SdkConfig) -> Result<WebhookSecret, ConfigError> {
        match self {
            Self::Value(secret) => Ok(secret.clone()),
            Self::SecretsManager(arn) => fetch(sdk, arn).await.map_err(|reason| ConfigError {
                name: "WEBHOOK_SECRET_ARN",
                value: arn.clone(),
                reason,
            }),
        }
    }
}

/// Reads a secret's current value: its `SecretString`, byte for byte (not trimmed), or its
/// `SecretBinary`.
async fn fetch(sdk: &SdkConfig, arn: &str) -> Result<WebhookSecret, String> {
    // Init has 10 s in all: a Secrets Manager that does not answer must fail it, not hang it.
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build();
    let config = aws_sdk_secretsmanager::config::Builder::from(sdk).timeout_config(timeouts).build();
    let answer =
        Client::from_conf(config).get_secret_value().secret_id(arn).send().await.map_err(|e| {
            format!("GetSecretValue failed: {}", aws_sdk_secretsmanager::error::DisplayErrorContext(&e))
        })?;
    let bytes = match (answer.secret_string(), answer.secret_binary()) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(blob)) => blob.as_ref().to_vec(),
        (None, None) => return Err("the secret has no value".to_owned()),
    };
    WebhookSecret::new(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_itself() {
        let secret = WebhookSecret::new("demo-webhook-secret").unwrap();
        assert_eq!(format!("{secret:?}"), "WebhookSecret(<redacted>)");
        let source = SecretSource::Value(secret);
        assert!(!format!("{source:?}").contains("demo-webhook-secret"));
    }

    #[test]
    fn a_short_secret_is_refused() {
        assert!(WebhookSecret::new("short").unwrap_err().contains("at least 16 bytes"));
        assert!(WebhookSecret::new(vec![0u8; 16]).is_ok());
    }
}
