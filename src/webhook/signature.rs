//! The webhook's signature: `X-Webhook-Timestamp: <Unix seconds>` and `X-Webhook-Signature:
//! sha256=<hex>`, the HMAC-SHA256 of `<timestamp>.<raw body>` under the shared secret (the timestamp
//! exactly as sent; the body as the CRM sent it, before any base64 of Lambda's). The comparison is
//! constant-time; a timestamp more than [`MAX_SKEW_SECONDS`] from now is refused. docs/webhook.md
//! says what a CRM sends, and what replay within that window can and cannot do.
//!
//! ```
//! use opportunity_disassociator::webhook::signature::signature;
//! let header = signature(b"demo-webhook-secret", "1764000000", br#"{"Catalog":"Sandbox"}"#);
//! assert!(header.starts_with("sha256=") && header.len() == 7 + 64);
//! ```

use std::fmt;

use aws_lambda_events::http::HeaderMap;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::domain::secret::WebhookSecret;

/// The header carrying the signing time, in Unix seconds (Function URLs deliver header names lowercased).
pub const TIMESTAMP_HEADER: &str = "x-webhook-timestamp";
/// The header carrying `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-webhook-signature";
const SIGNATURE_PREFIX: &str = "sha256=";
/// How far the signing time may be from now, either way.
pub const MAX_SKEW_SECONDS: u64 = 300;

/// Why a request was answered 401. Logged, never sent: the caller learns only "unauthorized".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MissingTimestamp,
    MalformedTimestamp,
    MissingSignature,
    MalformedSignature,
    /// The timestamp is more than [`MAX_SKEW_SECONDS`] from now.
    Stale,
    WrongSignature,
    /// `isBase64Encoded`, and the body is not base64: nothing to check a signature against.
    UndecodableBody,
    /// The event has the Function URL shape but could not be read.
    UnreadableEvent,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingTimestamp => "no X-Webhook-Timestamp header",
            Self::MalformedTimestamp => "X-Webhook-Timestamp is not one value of Unix seconds",
            Self::MissingSignature => "no X-Webhook-Signature header",
            Self::MalformedSignature => "X-Webhook-Signature is not one value sha256=<64 hex digits>",
            Self::Stale => "X-Webhook-Timestamp is more than 300 s from now",
            Self::WrongSignature => "the signature does not match the body and timestamp",
            Self::UndecodableBody => "the body is marked base64 but is not",
            Self::UnreadableEvent => "the Function URL event could not be read",
        })
    }
}

/// The `X-Webhook-Signature` value for a body signed at `timestamp` (as sent in `X-Webhook-Timestamp`).
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    format!("{SIGNATURE_PREFIX}{}", hex::encode(mac(secret, timestamp, body).finalize().into_bytes()))
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks the signature headers against the raw body, at `now` (Unix seconds).
pub fn verify(secret: &WebhookSecret, headers: &HeaderMap, body: &[u8], now: u64) -> Result<(), Refusal> {
    let timestamp = match single_header(headers, TIMESTAMP_HEADER) {
        None => return Err(Refusal::MissingTimestamp),
        Some(value) => value.ok_or(Refusal::MalformedTimestamp)?,
    };
    let signed_at = parse_timestamp(timestamp).ok_or(Refusal::MalformedTimestamp)?;
    let tag = match single_header(headers, SIGNATURE_HEADER) {
        None => return Err(Refusal::MissingSignature),
        Some(value) => value.and_then(parse_signature).ok_or(Refusal::MalformedSignature)?,
    };
    if now.abs_diff(signed_at) > MAX_SKEW_SECONDS {
        return Err(Refusal::Stale);
    }
    // Constant-time: `verify_slice` compares every byte whatever the first difference. Every key is
    // tried (the current one first), so the time taken does not say which one matched either.
    let matches =
        secret.keys().fold(false, |matched, key| mac(key, timestamp, body).verify_slice(&tag).is_ok() | matched);
    if matches { Ok(()) } else { Err(Refusal::WrongSignature) }
}

/// A header's only value, as text: `Some(None)` when it is repeated or not visible ASCII.
fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Option<Option<&'a str>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    Some(if values.next().is_some() { None } else { first.to_str().ok() })
}

/// Unix seconds: 1 to 12 ASCII digits, nothing else (no sign, no fraction, no spaces).
fn parse_timestamp(value: &str) -> Option<u64> {
    if !(1..=12).contains(&value.len()) || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// `sha256=` and 64 hex digits (either case) into the 32 bytes of the tag.
fn parse_signature(value: &str) -> Option<[u8; 32]> {
    let mut tag = [0u8; 32];
    hex::decode_to_slice(value.strip_prefix(SIGNATURE_PREFIX)?, &mut tag).ok()?;
    Some(tag)
}
