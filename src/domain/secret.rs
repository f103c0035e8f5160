//! The webhook's shared secret as a value: the HMAC keys, checked once when read (config, or Secrets
//! Manager at init), compared and hashed only, never shown.

use std::fmt;

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
    /// The secret, when it can be a key (`check`).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_itself() {
        let secret = WebhookSecret::new("demo-webhook-secret").unwrap();
        assert_eq!(format!("{secret:?}"), "WebhookSecret(<redacted>)");
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
