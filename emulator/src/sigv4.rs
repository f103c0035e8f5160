//! AWS Signature Version 4 verification (header-based `Authorization`, HMAC-SHA256).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use hyper::HeaderMap;
use sha2::{Digest, Sha256};

use crate::model::days_from_civil;

type HmacSha256 = Hmac<Sha256>;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Why a request was refused; `error_type` is the AWS error name sent back (status 403).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AuthError {
    pub error_type: &'static str,
    pub message: String,
}

fn missing_token() -> AuthError {
    AuthError { error_type: "MissingAuthenticationTokenException", message: "Missing Authentication Token".to_owned() }
}

fn incomplete(message: impl Into<String>) -> AuthError {
    AuthError { error_type: "IncompleteSignatureException", message: message.into() }
}

fn invalid(message: impl Into<String>) -> AuthError {
    AuthError { error_type: "InvalidSignatureException", message: message.into() }
}

/// What a signature must be scoped to, and which keys are known.
pub(crate) struct Expectations<'a> {
    pub service: &'a str,
    pub region: &'a str,
    pub credentials: &'a BTreeMap<String, String>,
    pub max_skew: Duration,
    pub now: SystemTime,
}

/// The request parts that are signed.
pub(crate) struct SignedParts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

struct Authorization<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    terminator: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, AuthError> {
    let Some(rest) = value.strip_prefix(ALGORITHM) else {
        return Err(incomplete(format!("Authorization header requires the {ALGORITHM} algorithm.")));
    };
    if !rest.starts_with(' ') {
        return Err(incomplete("Authorization header is malformed."));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((key, val)) = part.split_once('=') else {
            return Err(incomplete(format!(
                "Authorization header requires each component to be of the form key=value: {part:?}."
            )));
        };
        match key.trim() {
            "Credential" => credential = Some(val.trim()),
            "SignedHeaders" => signed_headers = Some(val.trim()),
            "Signature" => signature = Some(val.trim()),
            _ => {}
        }
    }
    let Some(credential) = credential else {
        return Err(incomplete("Authorization header requires 'Credential' parameter."));
    };
    let Some(signed_headers) = signed_headers else {
        return Err(incomplete("Authorization header requires 'SignedHeaders' parameter."));
    };
    let Some(signature) = signature else {
        return Err(incomplete("Authorization header requires 'Signature' parameter."));
    };
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, terminator] = parts.as_slice() else {
        return Err(incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'."
        )));
    };
    let signed_headers: Vec<&str> = signed_headers.split(';').collect();
    if signed_headers.iter().any(|h| h.is_empty()) {
        return Err(incomplete("SignedHeaders is malformed."));
    }
    Ok(Authorization { access_key, date, region, service, terminator, signed_headers, signature })
}

/// Parses `YYYYMMDDTHHMMSSZ` into seconds since the epoch.
pub(crate) fn parse_amz_date(value: &str) -> Option<u64> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let s = value.get(range)?;
        if s.bytes().all(|c| c.is_ascii_digit()) { s.parse().ok() } else { None }
    };
    let (y, mo, d) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (h, mi, s) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(y), mo, d);
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s);
    u64::try_from(secs).ok()
}

fn format_amz_date(epoch: u64) -> String {
    // 2024-05-01T12:00:00Z -> 20240501T120000Z
    crate::model::format_timestamp(epoch).replace(['-', ':'], "")
}

/// Percent-encodes everything but the RFC 3986 unreserved characters (and `/` if asked).
fn uri_encode(input: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(input.len());
    for &b in input {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(input: &str) -> Vec<u8> {
    fn hex_val(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The canonical URI of a non-S3 service: the path as sent, URI-encoded once more.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() { "/".to_owned() } else { uri_encode(path.as_bytes(), true) }
}

fn canonical_query(query: Option<&str>) -> String {
    let Some(query) = query else {
        return String::new();
    };
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (uri_encode(&percent_decode(k), false), uri_encode(&percent_decode(v), false))
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// Trims the value and collapses runs of spaces into one.
fn canonical_header_value(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let mut out = String::with_capacity(text.len());
    let mut last_space = false;
    for c in text.trim().chars() {
        if c == ' ' {
            if !last_space {
                out.push(c);
            }
            last_space = true;
        } else {
            out.push(c);
            last_space = false;
        }
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Result<Vec<u8>, AuthError> {
    let mut mac = HmacSha256::new_from_slice(key).map_err(|_| invalid("bad key"))?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// Verifies the SigV4 `Authorization` header of a request.
pub(crate) fn verify(req: &SignedParts<'_>, expect: &Expectations<'_>) -> Result<(), AuthError> {
    let headers = req.headers;
    let Some(auth) = headers.get("authorization") else {
        return Err(missing_token());
    };
    let auth = auth.to_str().map_err(|_| incomplete("Authorization header is not valid ASCII."))?;
    let auth = parse_authorization(auth)?;

    let amz_date = headers.get("x-amz-date").and_then(|v| v.to_str().ok()).ok_or_else(|| {
        incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    })?;
    let request_time = parse_amz_date(amz_date).ok_or_else(|| {
        incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See http://en.wikipedia.org/wiki/ISO_8601"
        ))
    })?;

    let Some(secret) = expect.credentials.get(auth.access_key) else {
        return Err(AuthError {
            error_type: "UnrecognizedClientException",
            message: "The security token included in the request is invalid.".to_owned(),
        });
    };

    if auth.terminator != "aws4_request" {
        return Err(invalid(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'.",
            auth.terminator
        )));
    }
    if amz_date.get(..8) != Some(auth.date) {
        return Err(invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{amz_date}'.",
            auth.date,
            amz_date.get(..8).unwrap_or_default()
        )));
    }
    if auth.region != expect.region {
        return Err(invalid(format!("Credential should be scoped to a valid region, not '{}'. ", auth.region)));
    }
    if auth.service != expect.service {
        return Err(invalid(format!("Credential should be scoped to correct service: '{}'. ", expect.service)));
    }

    let now = expect.now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let skew = expect.max_skew.as_secs();
    if request_time.saturating_add(skew) < now {
        return Err(invalid(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - {} min.)",
            format_amz_date(now.saturating_sub(skew)),
            format_amz_date(now),
            skew / 60
        )));
    }
    if request_time > now.saturating_add(skew) {
        return Err(invalid(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + {} min.)",
            format_amz_date(now.saturating_add(skew)),
            format_amz_date(now),
            skew / 60
        )));
    }

    if !auth.signed_headers.contains(&"host") {
        return Err(incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."));
    }

    let mut canonical_headers = String::new();
    for name in &auth.signed_headers {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid("The request signature we calculated does not match the signature you provided."));
        }
        let values: Vec<String> = headers.get_all(*name).iter().map(|v| canonical_header_value(v.as_bytes())).collect();
        if values.is_empty() {
            return Err(invalid(format!(
                "The request signature we calculated does not match the signature you provided. Signed header '{name}' is missing from the request."
            )));
        }
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&values.join(","));
        canonical_headers.push('\n');
    }

    let payload_hash = hex::encode(Sha256::digest(req.body));
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_uri(req.path),
        canonical_query(req.query),
        canonical_headers,
        auth.signed_headers.join(";"),
        payload_hash
    );
    let scope = format!("{}/{}/{}/{}", auth.date, auth.region, auth.service, auth.terminator);
    let string_to_sign =
        format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(canonical_request.as_bytes())));

    let k_date = hmac(format!("AWS4{secret}").as_bytes(), auth.date.as_bytes())?;
    let k_region = hmac(&k_date, auth.region.as_bytes())?;
    let k_service = hmac(&k_region, auth.service.as_bytes())?;
    let k_signing = hmac(&k_service, b"aws4_request")?;

    let mismatch = || {
        invalid(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        )
    };
    let provided = hex::decode(auth.signature).map_err(|_| mismatch())?;
    let mut mac = HmacSha256::new_from_slice(&k_signing).map_err(|_| mismatch())?;
    mac.update(string_to_sign.as_bytes());
    // Constant-time comparison.
    mac.verify_slice(&provided).map_err(|_| mismatch())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
                map.append(k, v);
            }
        }
        map
    }

    fn creds() -> BTreeMap<String, String> {
        BTreeMap::from([("AKIDEXAMPLE".to_owned(), "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned())])
    }

    /// The IAM `ListUsers` example of the AWS SigV4 documentation.
    const IAM_SIGNATURE: &str = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";

    fn iam_request(signature: &str, date: &str) -> HeaderMap {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature={signature}"
        );
        headers(&[
            ("host", "iam.amazonaws.com"),
            ("content-type", "application/x-www-form-urlencoded; charset=utf-8"),
            ("x-amz-date", date),
            ("authorization", &auth),
        ])
    }

    fn check(h: &HeaderMap, query: &str, now: u64) -> Result<(), AuthError> {
        let creds = creds();
        verify(
            &SignedParts { method: "GET", path: "/", query: Some(query), headers: h, body: b"" },
            &Expectations {
                service: "iam",
                region: "us-east-1",
                credentials: &creds,
                max_skew: Duration::from_secs(900),
                now: UNIX_EPOCH + Duration::from_secs(now),
            },
        )
    }

    const T_20150830: u64 = 1_440_938_160; // 2015-08-30T12:36:00Z

    #[test]
    fn aws_documentation_example_verifies() {
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(T_20150830));
        let h = iam_request(IAM_SIGNATURE, "20150830T123600Z");
        assert_eq!(check(&h, "Action=ListUsers&Version=2010-05-08", T_20150830), Ok(()));
        // Query order does not matter.
        assert_eq!(check(&h, "Version=2010-05-08&Action=ListUsers", T_20150830), Ok(()));
    }

    #[test]
    fn tampering_is_detected() {
        let h = iam_request(IAM_SIGNATURE, "20150830T123600Z");
        let e = check(&h, "Action=ListGroups&Version=2010-05-08", T_20150830).expect_err("query");
        assert_eq!(e.error_type, "InvalidSignatureException");
        let mut bad_sig = IAM_SIGNATURE.to_owned();
        bad_sig.replace_range(0..1, "6");
        let h2 = iam_request(&bad_sig, "20150830T123600Z");
        let e = check(&h2, "Action=ListUsers&Version=2010-05-08", T_20150830).expect_err("sig");
        assert_eq!(e.error_type, "InvalidSignatureException");
        let h3 = iam_request("zz", "20150830T123600Z");
        assert!(check(&h3, "Action=ListUsers&Version=2010-05-08", T_20150830).is_err());
    }

    #[test]
    fn clock_skew_is_limited_to_fifteen_minutes() {
        let h = iam_request(IAM_SIGNATURE, "20150830T123600Z");
        let q = "Action=ListUsers&Version=2010-05-08";
        assert_eq!(check(&h, q, T_20150830 + 900), Ok(()));
        assert_eq!(check(&h, q, T_20150830 - 900), Ok(()));
        let e = check(&h, q, T_20150830 + 901).expect_err("expired");
        assert!(e.message.starts_with("Signature expired"), "{}", e.message);
        let e = check(&h, q, T_20150830 - 901).expect_err("future");
        assert!(e.message.starts_with("Signature not yet current"), "{}", e.message);
    }

    #[test]
    fn malformed_and_missing_headers() {
        let q = "Action=ListUsers&Version=2010-05-08";
        let e = check(&headers(&[("host", "x")]), q, T_20150830).expect_err("missing");
        assert_eq!(e.error_type, "MissingAuthenticationTokenException");
        for auth in [
            "AWS4-HMAC-SHA1 Credential=a/b/c/d/e, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, Signature=00",
            "AWS4-HMAC-SHA256",
            "",
        ] {
            let h = headers(&[("host", "x"), ("x-amz-date", "20150830T123600Z"), ("authorization", auth)]);
            let e = check(&h, q, T_20150830).expect_err(auth);
            assert_eq!(e.error_type, "IncompleteSignatureException", "{auth}");
        }
        let mut h = iam_request(IAM_SIGNATURE, "20150830T123600Z");
        h.remove("x-amz-date");
        assert_eq!(check(&h, q, T_20150830).map_err(|e| e.error_type), Err("IncompleteSignatureException"));
        let h = iam_request(IAM_SIGNATURE, "2015-08-30T12:36:00Z");
        assert_eq!(check(&h, q, T_20150830).map_err(|e| e.error_type), Err("IncompleteSignatureException"));
        let mut h = iam_request(IAM_SIGNATURE, "20150830T123600Z");
        h.remove("content-type");
        assert_eq!(check(&h, q, T_20150830).map_err(|e| e.error_type), Err("InvalidSignatureException"));
    }

    #[test]
    fn scope_is_checked() {
        let q = "Action=ListUsers&Version=2010-05-08";
        let cases = [
            ("OTHERKEY/20150830/us-east-1/iam/aws4_request", "UnrecognizedClientException"),
            ("AKIDEXAMPLE/20150830/us-west-2/iam/aws4_request", "InvalidSignatureException"),
            ("AKIDEXAMPLE/20150830/us-east-1/sts/aws4_request", "InvalidSignatureException"),
            ("AKIDEXAMPLE/20150831/us-east-1/iam/aws4_request", "InvalidSignatureException"),
            ("AKIDEXAMPLE/20150830/us-east-1/iam/aws5_request", "InvalidSignatureException"),
        ];
        for (cred, expected) in cases {
            let auth = format!(
                "AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=content-type;host;x-amz-date, Signature={IAM_SIGNATURE}"
            );
            let h = headers(&[
                ("host", "iam.amazonaws.com"),
                ("content-type", "application/x-www-form-urlencoded; charset=utf-8"),
                ("x-amz-date", "20150830T123600Z"),
                ("authorization", &auth),
            ]);
            let e = check(&h, q, T_20150830).expect_err(cred);
            assert_eq!(e.error_type, expected, "{cred}");
        }
    }

    #[test]
    fn canonical_helpers() {
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/a b/%41"), "/a%20b/%2541");
        assert_eq!(canonical_query(Some("b=2&a=%7e x&a=1")), "a=1&a=~%20x&b=2");
        assert_eq!(canonical_query(Some("flag")), "flag=");
        assert_eq!(canonical_header_value(b"  a   b  c "), "a b c");
        assert_eq!(percent_decode("%4"), b"%4".to_vec());
        assert_eq!(percent_decode("%zz%41"), b"%zzA".to_vec());
        assert_eq!(parse_amz_date("20150830T123600"), None);
        assert_eq!(parse_amz_date("20151330T123600Z"), None);
        assert_eq!(parse_amz_date("2015083OT123600Z"), None);
        assert_eq!(format_amz_date(T_20150830), "20150830T123600Z");
    }
}
