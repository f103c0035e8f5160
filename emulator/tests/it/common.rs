//! Helpers: emulator start-up, SDK clients, a raw HTTP/1.1 client and an independent signer.

use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_partnercentralselling::Client;
use aws_sdk_partnercentralselling::config::{Credentials, Region};
use aws_sdk_partnercentralselling::error::SdkError;
use aws_sdk_partnercentralselling::operation::disassociate_opportunity::DisassociateOpportunityError;
use aws_sdk_partnercentralselling::types::RelatedEntityType;
use partner_central_emulator::{Emulator, EmulatorConfig, QuotaConfig, RunningEmulator, Seed, StateSnapshot};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const SEED: &str = include_str!("../../seed.json");

pub fn seed() -> Seed {
    Seed::from_json(SEED).expect("seed.json")
}

/// The sample seed, no quotas, no faults.
pub async fn start() -> RunningEmulator {
    start_with(EmulatorConfig { seed: seed(), quotas: QuotaConfig::unlimited(), ..EmulatorConfig::default() }).await
}

pub async fn start_with(config: EmulatorConfig) -> RunningEmulator {
    Emulator::start(config).await.expect("emulator starts")
}

pub struct ClientOptions<'a> {
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub session_token: Option<&'a str>,
    pub region: &'a str,
    pub attempt_timeout: Option<Duration>,
}

impl Default for ClientOptions<'_> {
    fn default() -> Self {
        ClientOptions {
            access_key: "test",
            secret_key: "test",
            session_token: None,
            region: "us-east-1",
            attempt_timeout: None,
        }
    }
}

/// The real SDK, retries disabled, pointed at the emulator.
pub async fn client(endpoint: &str) -> Client {
    client_with(endpoint, ClientOptions::default()).await
}

pub async fn client_with(endpoint: &str, o: ClientOptions<'_>) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(o.region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            o.access_key,
            o.secret_key,
            o.session_token.map(str::to_owned),
            None,
            "test",
        ))
        .retry_config(RetryConfig::disabled());
    if let Some(t) = o.attempt_timeout {
        loader = loader.timeout_config(TimeoutConfig::builder().operation_attempt_timeout(t).build());
    }
    Client::new(&loader.load().await)
}

/// A raw HTTP response.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Asserts the AWS error shape and returns the body.
    pub fn assert_aws_error(&self, status: u16, name: &str) -> Value {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("x-amzn-ErrorType"), Some(name), "{self:?}");
        assert_eq!(self.header("content-type"), Some("application/x-amz-json-1.0"));
        let body = self.json();
        assert_eq!(body["__type"], name, "{body}");
        assert!(body["Message"].is_string(), "{body}");
        body
    }
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the whole answer.
pub async fn raw(
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<Raw> {
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await?;
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len()));
    stream.write_all(req.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    let text_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP answer: {buf:?}")))?;
    let head = String::from_utf8_lossy(&buf[..text_end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    Ok(Raw { status, headers, body: buf[text_end + 4..].to_vec() })
}

/// Plain JSON control request.
pub async fn control(endpoint: &str, method: &str, path: &str, body: &str) -> Raw {
    raw(endpoint, method, path, &[("content-type".to_owned(), "application/json".to_owned())], body.as_bytes())
        .await
        .expect("control request")
}

pub struct Signing<'a> {
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub time: SystemTime,
}

impl Default for Signing<'_> {
    fn default() -> Self {
        Signing {
            access_key: "test",
            secret_key: "test",
            region: "us-east-1",
            service: "partnercentral-selling",
            time: SystemTime::now(),
        }
    }
}

/// The awsJson request headers for `operation`, signed with `aws-sigv4` (the SDK's signer) when
/// `signing` is given.
pub fn aws_headers(
    endpoint: &str,
    operation: &str,
    body: &[u8],
    signing: Option<Signing<'_>>,
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    use aws_smithy_runtime_api::client::identity::Identity;

    let host = endpoint.trim_start_matches("http://").to_owned();
    let mut headers = vec![
        ("host".to_owned(), host),
        ("content-type".to_owned(), "application/x-amz-json-1.0".to_owned()),
        ("x-amz-target".to_owned(), format!("AWSPartnerCentralSelling.{operation}")),
    ];
    let Some(s) = signing else {
        return headers;
    };
    let identity: Identity = aws_credential_types::Credentials::new(s.access_key, s.secret_key, None, None, "t").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(s.region)
        .name(s.service)
        .time(s.time)
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let url = format!("{endpoint}/");
    let request = SignableRequest::new(
        "POST",
        &url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .expect("signable");
    let (instructions, _) = sign(request, &params).expect("signed").into_parts();
    let (added, _) = instructions.into_parts();
    headers.extend(added.into_iter().map(|h| (h.name().to_owned(), h.value().to_owned())));
    headers
}

/// A correctly signed raw call.
pub async fn signed_call(endpoint: &str, operation: &str, body: &str) -> Raw {
    let headers = aws_headers(endpoint, operation, body.as_bytes(), Some(Signing::default()));
    raw(endpoint, "POST", "/", &headers, body.as_bytes()).await.expect("request")
}

/// What a `DisassociateOpportunity` call through the SDK gives.
pub type DisassociateResult =
    Result<(), SdkError<DisassociateOpportunityError, aws_sdk_partnercentralselling::config::http::HttpResponse>>;

/// The seed's solution `S-200000{n}` off `O200000{n}`, in the Sandbox catalog.
pub async fn disassociate(client: &Client, n: u32) -> DisassociateResult {
    let (opportunity, solution) = (format!("O200000{n}"), format!("S-200000{n}"));
    disassociate_entity(client, "Sandbox", &opportunity, RelatedEntityType::Solutions, &solution).await
}

/// One `DisassociateOpportunity` call with every member as given (the SDK checks none of them).
pub async fn disassociate_entity(
    client: &Client,
    catalog: &str,
    opportunity: &str,
    entity_type: RelatedEntityType,
    identifier: &str,
) -> DisassociateResult {
    client
        .disassociate_opportunity()
        .catalog(catalog)
        .opportunity_identifier(opportunity)
        .related_entity_type(entity_type)
        .related_entity_identifier(identifier)
        .send()
        .await
        .map(|_| ())
}

/// What an `AssociateOpportunity` call through the SDK gives.
pub type AssociateResult = Result<
    (),
    SdkError<
        aws_sdk_partnercentralselling::operation::associate_opportunity::AssociateOpportunityError,
        aws_sdk_partnercentralselling::config::http::HttpResponse,
    >,
>;

/// One `AssociateOpportunity` call with every member as given.
pub async fn associate_entity(
    client: &Client,
    opportunity: &str,
    entity_type: RelatedEntityType,
    identifier: &str,
) -> AssociateResult {
    client
        .associate_opportunity()
        .catalog("Sandbox")
        .opportunity_identifier(opportunity)
        .related_entity_type(entity_type)
        .related_entity_identifier(identifier)
        .send()
        .await
        .map(|_| ())
}

pub fn disassociate_body(opportunity: &str, entity_type: &str, identifier: &str) -> String {
    serde_json::json!({
        "Catalog": "Sandbox",
        "OpportunityIdentifier": opportunity,
        "RelatedEntityType": entity_type,
        "RelatedEntityIdentifier": identifier,
    })
    .to_string()
}

/// Every opportunity of the state with its related entities, for "nothing changed" checks.
pub fn entities(state: &StateSnapshot) -> Vec<(String, String, String)> {
    state
        .opportunities
        .iter()
        .map(|o| {
            (o.catalog.clone(), o.id.clone(), serde_json::to_string(&o.related_entity_identifiers).unwrap_or_default())
        })
        .collect()
}
