//! The webhook's shared secret: where it comes from, and a type that never shows it.
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

use std::fmt;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_secretsmanager::Client;
use aws_smithy_types::timeout::TimeoutConfig;

use crate::config::ConfigError;

/// The fewest bytes a secret may have: a short HMAC key is a guessable one.
pub const MIN_SECRET_BYTES: usize = 16;

/// The HMAC keys of the webhook: the secret's value, and its previous value during a rotation.
/// Compared and hashed only, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    current: Vec<u8>,
    previous: Option<Vec<u8>>,
}

impl WebhookSecret {
    /// The secret, when it can be a key ([`check`]).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, String> {
        let current = bytes.into();
        check(&current)?;
        Ok(Self { current, previous: None })
    }

    /// Accepts the secret's previous value too, when it can be a key and differs from the current one;
    /// otherwise the secret stays as it was.
    pub fn add_previous(&mut self, previous: impl Into<Vec<u8>>) -> Result<(), String> {
        let previous = previous.into();
        check(&previous).map_err(|reason| format!("the previous value: {reason}"))?;
        if previous != self.current {
            self.previous = Some(previous);
        }
        Ok(())
    }

    /// The keys a signature may be made with, the current one first: for the HMAC only.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(self.current.as_slice()).chain(self.previous.as_deref())
    }
}

/// A key is at least [`MIN_SECRET_BYTES`] long, and neither begins nor ends with white space: the
/// bytes are used exactly as stored, and a trailing newline (a secret put from a file) would give a
/// key the CRM does not sign with, so every request would be refused with nothing to say why.
fn check(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(format!("the secret must be at least {MIN_SECRET_BYTES} bytes, it has {}", bytes.len()));
    }
    if bytes.first().is_some_and(u8::is_ascii_whitespace) || bytes.last().is_some_and(u8::is_ascii_whitespace) {
        return Err("the secret begins or ends with white space (a newline from a file?): store it without".to_owned());
    }
    Ok(())
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

/// Reads a secret's current value and, when it has one, its previous value (both at once): each its
/// `SecretString`, byte for byte (not trimmed), or its `SecretBinary`. The current value must be
/// readable and usable; a previous value that is missing, unreadable or unusable is left out, and
/// said so in the log.
async fn fetch(sdk: &SdkConfig, arn: &str) -> Result<WebhookSecret, String> {
    // Init has 10 s in all: a Secrets Manager that does not answer must fail it, not hang it.
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build();
    let client = Client::from_conf(aws_sdk_secretsmanager::config::Builder::from(sdk).timeout_config(timeouts).build());
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

    #[test]
    fn a_secret_with_white_space_around_it_is_refused() {
        for value in
            ["demo-webhook-secret\n", "demo-webhook-secret\r\n", " demo-webhook-secret", "demo-webhook-secret\t"]
        {
            let reason = WebhookSecret::new(value).unwrap_err();
            assert!(reason.contains("white space"), "{value:?}: {reason}");
        }
        assert!(WebhookSecret::new("demo webhook secret").is_ok(), "inside the value it is part of the key");
    }

    #[test]
    fn the_previous_value_is_a_second_key_when_it_can_be_one() {
        let keys = |secret: &WebhookSecret| secret.keys().map(<[u8]>::to_vec).collect::<Vec<_>>();
        let current = WebhookSecret::new("the-new-webhook-secret").unwrap();
        let mut both = current.clone();
        both.add_previous("the-old-webhook-secret").unwrap();
        assert_eq!(keys(&both), [b"the-new-webhook-secret".to_vec(), b"the-old-webhook-secret".to_vec()]);
        let mut same = current.clone();
        same.add_previous("the-new-webhook-secret").unwrap();
        assert_eq!(keys(&same).len(), 1, "the same");
        let mut refused = current.clone();
        assert!(refused.add_previous("short").unwrap_err().starts_with("the previous value"));
        assert_eq!(refused, current, "left as it was");
        assert!(!format!("{both:?}").contains("old"), "never shown");
    }
}
