//! HTTP server: routing, SigV4, faults, quotas, the three operations and the control endpoints.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::config::{AlreadyAssociated, BehaviorConfig, DailyQuotaConfig, EmulatorConfig, FaultConfig, QuotaConfig};
use crate::listing;
use crate::model::{LifeCycleChange, ReviewStatus, Seed};
use crate::rules::{self, FieldError};
use crate::sigv4;
use crate::state::{Fault, QuotaKind, QuotaRefusal, State, entity_key, now_epoch};

/// Signing name and region a request must be signed for.
pub const SIGNING_NAME: &str = "partnercentral-selling";
/// The only region of the service.
pub const REGION: &str = "us-east-1";
/// `X-Amz-Target` prefix of the service.
pub const TARGET_PREFIX: &str = "AWSPartnerCentralSelling.";

const MAX_API_BODY: usize = 1024 * 1024;
const MAX_CONTROL_BODY: usize = 16 * 1024 * 1024;
const AWS_JSON: &str = "application/x-amz-json-1.0";
const LOG_PREFIX: &str = "partner-central-emulator:";

pub(crate) struct Shared {
    state: Mutex<State>,
    credentials: BTreeMap<String, String>,
    max_skew: Duration,
    log: bool,
}

impl Shared {
    pub fn new(config: &EmulatorConfig) -> Self {
        Shared {
            state: Mutex::new({
                let mut state =
                    State::new(&config.seed, config.faults.clone(), config.quotas.clone(), config.daily_quotas.clone());
                state.behavior = config.behavior.clone();
                state
            }),
            credentials: config.credentials.clone(),
            max_skew: config.max_clock_skew,
            log: config.log_requests,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Returned by the service to make hyper close the connection without an answer.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

type Resp = Response<Full<Bytes>>;

/// An answer before it becomes an HTTP response.
struct Answer {
    status: StatusCode,
    error_type: Option<String>,
    body: Value,
}

enum Outcome {
    Answer(Answer),
    Drop,
}

fn ok(body: Value) -> Answer {
    Answer { status: StatusCode::OK, error_type: None, body }
}

fn aws_error(status: StatusCode, name: &str, message: &str, extra: Option<Map<String, Value>>) -> Answer {
    let mut body = Map::new();
    body.insert("__type".to_owned(), Value::String(name.to_owned()));
    body.insert("Message".to_owned(), Value::String(message.to_owned()));
    if let Some(extra) = extra {
        body.extend(extra);
    }
    Answer { status, error_type: Some(name.to_owned()), body: Value::Object(body) }
}

fn validation_error(reason: &str, errors: &[FieldError]) -> Answer {
    let message = format!(
        "{} validation error{} detected: {}",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" },
        errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join(" ")
    );
    let list: Vec<Value> =
        errors.iter().map(|e| json!({"FieldName": e.field, "Message": e.message, "Code": e.code})).collect();
    let mut extra = Map::new();
    extra.insert("Reason".to_owned(), Value::String(reason.to_owned()));
    extra.insert("ErrorList".to_owned(), Value::Array(list));
    aws_error(StatusCode::BAD_REQUEST, "ValidationException", &message, Some(extra))
}

fn access_denied(catalog: &str) -> Answer {
    let mut extra = Map::new();
    extra.insert("Reason".to_owned(), Value::String("INCOMPATIBLE_BENEFIT_AWS_PARTNER_STATE".to_owned()));
    aws_error(
        StatusCode::FORBIDDEN,
        "AccessDeniedException",
        &format!("You do not have sufficient access to perform this action on catalog {catalog}."),
        Some(extra),
    )
}

fn not_found(message: &str) -> Answer {
    aws_error(StatusCode::NOT_FOUND, "ResourceNotFoundException", message, None)
}

fn throttled(message: &str) -> Answer {
    aws_error(StatusCode::TOO_MANY_REQUESTS, "ThrottlingException", message, None)
}

fn conflict(message: &str) -> Answer {
    aws_error(StatusCode::CONFLICT, "ConflictException", message, None)
}

fn internal(message: &str) -> Answer {
    aws_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerException", message, None)
}

fn to_response(answer: &Answer, content_type: &str, request_id: Option<&str>) -> Resp {
    let body = serde_json::to_vec(&answer.body).unwrap_or_else(|_| b"{}".to_vec());
    let mut builder = Response::builder().status(answer.status).header("content-type", content_type);
    if let Some(id) = request_id {
        builder = builder.header("x-amzn-requestid", id);
    }
    if let Some(t) = &answer.error_type {
        builder = builder.header("x-amzn-errortype", t.as_str());
    }
    builder.body(Full::new(Bytes::from(body))).unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Associate,
    Disassociate,
    Get,
    ListSolutions,
    ListOpportunities,
}

impl Operation {
    fn from_target(target: &str) -> Option<Operation> {
        match target.strip_prefix(TARGET_PREFIX)? {
            "AssociateOpportunity" => Some(Operation::Associate),
            "DisassociateOpportunity" => Some(Operation::Disassociate),
            "GetOpportunity" => Some(Operation::Get),
            "ListSolutions" => Some(Operation::ListSolutions),
            "ListOpportunities" => Some(Operation::ListOpportunities),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Operation::Associate => "AssociateOpportunity",
            Operation::Disassociate => "DisassociateOpportunity",
            Operation::Get => "GetOpportunity",
            Operation::ListSolutions => "ListSolutions",
            Operation::ListOpportunities => "ListOpportunities",
        }
    }

    fn quota(self) -> QuotaKind {
        match self {
            Operation::Associate | Operation::Disassociate => QuotaKind::Write,
            Operation::Get | Operation::ListSolutions | Operation::ListOpportunities => QuotaKind::Read,
        }
    }
}

/// Accepts connections until `shutdown` changes (or its sender is dropped). With `tls`, each
/// connection's handshake runs in the connection's own task.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                shared.lock().connections += 1;
                let service = {
                    let shared = shared.clone();
                    service_fn(move |req| handle(shared.clone(), req))
                };
                let http = http1::Builder::new();
                match &tls {
                    None => {
                        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                        connections.spawn(async move {
                            let _ = conn.await;
                        });
                    }
                    Some(acceptor) => {
                        let (handshake, watcher, shared) = (acceptor.accept(stream), graceful.watcher(), shared.clone());
                        connections.spawn(async move {
                            let Ok(stream) = handshake.await else { return };
                            shared.lock().tls_handshakes += 1;
                            let _ = watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await;
                        });
                    }
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(2), graceful.shutdown()).await;
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, String> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(format!("cannot read request body: {e}")),
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Resp, DropConnection> {
    let started = Instant::now();
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    if path == "/_emulator" || path.starts_with("/_emulator/") {
        let answer = control(&shared, req).await;
        if shared.log {
            let (status, elapsed) = (answer.status.as_u16(), started.elapsed().as_millis());
            eprintln!("{LOG_PREFIX} {method} {path} -> {status} ({elapsed} ms)");
        }
        return Ok(to_response(&answer, "application/json", None));
    }

    let (parts, body) = req.into_parts();
    let body = read_body(body, MAX_API_BODY).await;
    // Once received, a call runs to completion even if the client goes away (as a real service
    // would): the processing is detached from the connection.
    let task = tokio::spawn(process(shared, parts, body, started));
    match task.await {
        Ok(Some(response)) => Ok(response),
        Ok(None) => Err(DropConnection),
        Err(_) => Ok(to_response(&internal("An internal error occurred."), AWS_JSON, None)),
    }
}

/// Authenticates, routes and runs one Partner Central call; `None` means drop the connection.
async fn process(
    shared: Arc<Shared>,
    parts: hyper::http::request::Parts,
    body: Result<Bytes, String>,
    started: Instant,
) -> Option<Resp> {
    let path = parts.uri.path().to_owned();
    let method = parts.method.clone();
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let request_id = {
        let mut st = shared.lock();
        st.requests += 1;
        st.request_id()
    };
    let (label, outcome) = match body {
        Err(msg) => {
            ("-".to_owned(), Outcome::Answer(aws_error(StatusCode::BAD_REQUEST, "SerializationException", &msg, None)))
        }
        Ok(body) => {
            let verified = sigv4::verify(
                &sigv4::SignedParts {
                    method: parts.method.as_str(),
                    path: parts.uri.path(),
                    query: parts.uri.query(),
                    headers: &parts.headers,
                    body: &body,
                },
                &sigv4::Expectations {
                    service: SIGNING_NAME,
                    region: REGION,
                    credentials: &shared.credentials,
                    max_skew: shared.max_skew,
                    now: SystemTime::now(),
                },
            );
            let operation = Operation::from_target(&target);
            match (verified, operation) {
                (Err(e), _) => {
                    shared.lock().auth_failures += 1;
                    (
                        label_of(&target),
                        Outcome::Answer(aws_error(StatusCode::FORBIDDEN, e.error_type, &e.message, None)),
                    )
                }
                (Ok(()), Some(op)) if parts.method == Method::POST && parts.uri.path() == "/" => {
                    let outcome = run_operation(&shared, op, &body).await;
                    record_outcome(&shared, op, &outcome);
                    (op.name().to_owned(), outcome)
                }
                (Ok(()), _) => {
                    shared.lock().unknown_operations += 1;
                    let message = if target.is_empty() {
                        format!("Missing X-Amz-Target header for {} {}", parts.method, parts.uri.path())
                    } else {
                        format!("Unknown operation {target:?} for {} {}", parts.method, parts.uri.path())
                    };
                    (
                        label_of(&target),
                        Outcome::Answer(aws_error(
                            StatusCode::BAD_REQUEST,
                            "UnknownOperationException",
                            &message,
                            None,
                        )),
                    )
                }
            }
        }
    };

    let (result, response) = match outcome {
        Outcome::Drop => ("connection dropped (injected)".to_owned(), None),
        Outcome::Answer(answer) => (
            format!("{} {}", answer.status.as_u16(), answer.error_type.as_deref().unwrap_or("-")),
            Some(to_response(&answer, AWS_JSON, Some(&request_id))),
        ),
    };
    if shared.log {
        let elapsed = started.elapsed().as_millis();
        eprintln!("{LOG_PREFIX} {request_id} {method} {path} {label} -> {result} ({elapsed} ms)");
    }
    response
}

fn label_of(target: &str) -> String {
    if target.is_empty() { "-".to_owned() } else { target.to_owned() }
}

fn record_outcome(shared: &Shared, op: Operation, outcome: &Outcome) {
    let Outcome::Answer(answer) = outcome else {
        return;
    };
    let mut st = shared.lock();
    let counters = st.counters(op.name());
    match &answer.error_type {
        None => counters.successes += 1,
        Some(t) => {
            *counters.errors.entry(t.clone()).or_insert(0) += 1;
            if t == "ThrottlingException" {
                counters.throttled += 1;
            }
        }
    }
}

async fn run_operation(shared: &Shared, op: Operation, body: &[u8]) -> Outcome {
    // The quota is checked as the request arrives, as a front door does, before the added latency:
    // checked after it, the timer's late wake-ups (milliseconds on a busy machine) would move
    // the check and throttle a client that paced its sends correctly.
    let (faults, admitted) = {
        let mut st = shared.lock();
        st.counters(op.name()).calls += 1;
        let admitted = st.admit(op.quota());
        if let Err(refusal) = admitted {
            let counters = st.counters(op.name());
            counters.quota_throttled += 1;
            if refusal == QuotaRefusal::Daily {
                counters.daily_quota_throttled += 1;
            }
        }
        (st.faults.clone(), admitted.is_ok())
    };
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if !admitted {
        return Outcome::Answer(throttled("Rate exceeded."));
    }

    let fault = {
        let mut st = shared.lock();
        let fault = st.draw_fault();
        if let Some(f) = fault {
            st.counters(op.name()).faults_injected += 1;
            let c = &mut st.fault_counters;
            match f {
                Fault::Drop => c.dropped += 1,
                Fault::InternalError => c.internal_error += 1,
                Fault::Throttle => c.throttle += 1,
                Fault::Slow => c.slow += 1,
            }
        }
        fault
    };
    match fault {
        Some(Fault::Drop) => return Outcome::Drop,
        Some(Fault::InternalError) => {
            return Outcome::Answer(internal("An internal error occurred (injected fault)."));
        }
        Some(Fault::Throttle) => {
            return Outcome::Answer(throttled("Rate exceeded (injected fault)."));
        }
        Some(Fault::Slow) => {
            tokio::time::sleep(Duration::from_millis(faults.slow_ms)).await;
            if !faults.slow_applies {
                return Outcome::Answer(internal("An internal error occurred after a slow call (injected fault)."));
            }
        }
        None => {}
    }

    let input = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Outcome::Answer(aws_error(
                    StatusCode::BAD_REQUEST,
                    "SerializationException",
                    "The request body must be a JSON object.",
                    None,
                ));
            }
            Err(e) => {
                return Outcome::Answer(aws_error(
                    StatusCode::BAD_REQUEST,
                    "SerializationException",
                    &format!("The request body is not valid JSON: {e}"),
                    None,
                ));
            }
        }
    };

    let mut st = shared.lock();
    Outcome::Answer(match op {
        Operation::Associate => associate(&mut st, &input, false),
        Operation::Disassociate => associate(&mut st, &input, true),
        Operation::Get => get_opportunity(&st, &input),
        Operation::ListSolutions => list(&st, &input, listing::list_solutions),
        Operation::ListOpportunities => list(&st, &input, listing::list_opportunities),
    })
}

fn associate(st: &mut State, input: &Map<String, Value>, disassociate: bool) -> Answer {
    let input = match rules::validate_association(input) {
        Ok(i) => i,
        Err(errors) => return validation_error("REQUEST_VALIDATION_FAILED", &errors),
    };
    if st.is_denied(&input.catalog) {
        return access_denied(&input.catalog);
    }
    let key = (input.catalog.clone(), input.opportunity_identifier.clone());
    let review_error_code = st.behavior.review_error_code.as_str();
    let Some(opp) = st.opportunities.get_mut(&key) else {
        return not_found(&format!(
            "Opportunity {} not found in catalog {}.",
            input.opportunity_identifier, input.catalog
        ));
    };
    let status = opp.life_cycle.review_status;
    if status.refuses_writes() {
        let id = &input.opportunity_identifier;
        let message = if status == ReviewStatus::Rejected {
            format!("Opportunity {id} was Rejected and is read-only: it cannot be modified.")
        } else {
            format!(
                "Opportunity {id} cannot be modified while its review status is {status}: no changes can be made until the review is complete."
            )
        };
        return validation_error(
            "BUSINESS_VALIDATION_FAILED",
            &[FieldError { field: "OpportunityIdentifier", message, code: review_error_code }],
        );
    }
    let (t, ident) = (input.entity_type, input.entity_identifier.as_str());
    let associated = opp.related.contains(t, ident);
    if disassociate {
        if !associated {
            return not_found(&format!(
                "Related entity {t} {ident} is not associated with opportunity {}.",
                input.opportunity_identifier
            ));
        }
        // A Marketplace solution is a solution too (the successor AWS recommends to a legacy one):
        // either kind keeps a submitted opportunity's last solution in place.
        if t.is_solution() && opp.life_cycle.is_submitted() && opp.related.solution_count() == 1 {
            return validation_error(
                "BUSINESS_VALIDATION_FAILED",
                &[FieldError {
                    field: "RelatedEntityIdentifier",
                    message: format!(
                        "Solution {ident} is the last solution of submitted opportunity {}; at least one solution must remain associated.",
                        input.opportunity_identifier
                    ),
                    code: rules::ACTION_NOT_PERMITTED,
                }],
            );
        }
        opp.related.list_mut(t).retain(|i| i != ident);
    } else {
        if associated {
            return match st.behavior.already_associated {
                AlreadyAssociated::Success => ok(json!({})),
                AlreadyAssociated::Conflict => conflict(&format!(
                    "Related entity {t} {ident} is already associated with opportunity {}.",
                    input.opportunity_identifier
                )),
            };
        }
        if let Err(limit) = opp.related.check_room_for(t) {
            return validation_error(
                "BUSINESS_VALIDATION_FAILED",
                &[FieldError {
                    field: "RelatedEntityIdentifier",
                    message: format!(
                        "Cannot associate {t} {ident} with opportunity {}: {limit}.",
                        input.opportunity_identifier
                    ),
                    code: rules::TOO_MANY_VALUES,
                }],
            );
        }
        opp.related.list_mut(t).push(ident.to_owned());
    }
    opp.last_modified = now_epoch();
    st.record_association(entity_key(&input.catalog, &input.opportunity_identifier, t, ident), disassociate);
    ok(json!({}))
}

fn get_opportunity(st: &State, input: &Map<String, Value>) -> Answer {
    let input = match rules::validate_get(input) {
        Ok(i) => i,
        Err(errors) => return validation_error("REQUEST_VALIDATION_FAILED", &errors),
    };
    if st.is_denied(&input.catalog) {
        return access_denied(&input.catalog);
    }
    match st.opportunities.get(&(input.catalog.clone(), input.identifier.clone())) {
        None => not_found(&format!("Opportunity {} not found in catalog {}.", input.identifier, input.catalog)),
        Some(opp) => ok(serde_json::to_value(opp.snapshot()).unwrap_or_else(|_| json!({}))),
    }
}

/// One of the listings: a page, or every invalid member.
type Listing = fn(&State, &Map<String, Value>) -> Result<Value, Vec<FieldError>>;

fn list(st: &State, input: &Map<String, Value>, run: Listing) -> Answer {
    // Validation first, then catalog access, as for the other operations.
    match run(st, input) {
        Err(errors) => validation_error("REQUEST_VALIDATION_FAILED", &errors),
        Ok(page) => match input.get("Catalog").and_then(Value::as_str) {
            Some(catalog) if st.is_denied(catalog) => access_denied(catalog),
            _ => ok(page),
        },
    }
}

fn control_error(status: StatusCode, message: impl Into<String>) -> Answer {
    Answer { status, error_type: None, body: json!({"Message": message.into()}) }
}

async fn control(shared: &Shared, req: Request<Incoming>) -> Answer {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let method = req.method().clone();
    let endpoint = path.strip_prefix("/_emulator").unwrap_or("");
    if let Some(rest) = endpoint.strip_prefix("/opportunities/") {
        return life_cycle_control(shared, req, rest).await;
    }
    let allowed: &[Method] = match endpoint {
        "/health" | "/state" => &[Method::GET],
        "/faults" | "/quotas" | "/daily-quotas" | "/daily-use" | "/behavior" => &[Method::GET, Method::POST],
        "/seed" | "/seed/generate" => &[Method::POST],
        _ => {
            return control_error(
                StatusCode::NOT_FOUND,
                format!(
                    "unknown control endpoint {path}; try /_emulator/state, /_emulator/faults, /_emulator/quotas, /_emulator/daily-quotas, /_emulator/daily-use, /_emulator/behavior, /_emulator/seed, /_emulator/seed/generate, /_emulator/opportunities/{{Catalog}}/{{Id}}/life-cycle, /_emulator/health"
                ),
            );
        }
    };
    if !allowed.contains(&method) {
        return control_error(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {path}"));
    }
    let body = match read_body(req.into_body(), MAX_CONTROL_BODY).await {
        Ok(b) => b,
        Err(msg) => return control_error(StatusCode::BAD_REQUEST, msg),
    };
    match (endpoint, method == Method::POST) {
        ("/health", _) => ok(json!({"Status": "ok"})),
        ("/state", _) => ok(serde_json::to_value(shared.lock().snapshot()).unwrap_or_default()),
        ("/faults", false) => ok(serde_json::to_value(&shared.lock().faults).unwrap_or_default()),
        ("/faults", true) => match parse_control::<FaultConfig>(&body) {
            Err(e) => e,
            Ok(faults) => match faults.validate() {
                Err(e) => control_error(StatusCode::BAD_REQUEST, e.to_string()),
                Ok(()) => {
                    let mut st = shared.lock();
                    st.set_faults(faults);
                    ok(serde_json::to_value(&st.faults).unwrap_or_default())
                }
            },
        },
        ("/quotas", false) => ok(serde_json::to_value(&shared.lock().quotas).unwrap_or_default()),
        ("/quotas", true) => match parse_control::<QuotaConfig>(&body) {
            Err(e) => e,
            Ok(quotas) => match quotas.validate() {
                Err(e) => control_error(StatusCode::BAD_REQUEST, e.to_string()),
                Ok(()) => {
                    let mut st = shared.lock();
                    st.set_quotas(quotas);
                    ok(serde_json::to_value(&st.quotas).unwrap_or_default())
                }
            },
        },
        ("/daily-quotas", false) => ok(serde_json::to_value(&shared.lock().daily_quotas).unwrap_or_default()),
        ("/daily-quotas", true) => match parse_control::<DailyQuotaConfig>(&body) {
            Err(e) => e,
            Ok(daily_quotas) => match daily_quotas.validate() {
                Err(e) => control_error(StatusCode::BAD_REQUEST, e.to_string()),
                Ok(()) => {
                    let mut st = shared.lock();
                    st.set_daily_quotas(daily_quotas);
                    ok(serde_json::to_value(&st.daily_quotas).unwrap_or_default())
                }
            },
        },
        ("/daily-use", false) => ok(serde_json::to_value(shared.lock().daily_use()).unwrap_or_default()),
        ("/daily-use", true) => match parse_control::<Spend>(&body) {
            Err(e) => e,
            Ok(spend) => {
                let mut st = shared.lock();
                st.spend_daily(spend.write, spend.read);
                ok(serde_json::to_value(st.daily_use()).unwrap_or_default())
            }
        },
        ("/behavior", false) => ok(serde_json::to_value(&shared.lock().behavior).unwrap_or_default()),
        ("/behavior", true) => match parse_control::<BehaviorConfig>(&body) {
            Err(e) => e,
            Ok(behavior) => {
                let mut st = shared.lock();
                st.behavior = behavior;
                ok(serde_json::to_value(&st.behavior).unwrap_or_default())
            }
        },
        ("/seed/generate", _) => match parse_control::<Generate>(&body) {
            Err(e) => e,
            Ok(Generate { opportunities, .. }) if opportunities > MAX_GENERATED => control_error(
                StatusCode::BAD_REQUEST,
                format!("Opportunities must be at most {MAX_GENERATED}, got {opportunities}"),
            ),
            Ok(Generate { opportunities, rng_seed }) => {
                let seed = Seed::generate(opportunities, rng_seed);
                shared.lock().apply_seed(&seed);
                ok(
                    json!({"Status": "ok", "Opportunities": seed.opportunities.len(), "Solutions": seed.solutions.len()}),
                )
            }
        },
        ("/seed", _) => match parse_control::<Seed>(&body) {
            Err(e) => e,
            Ok(seed) => match seed.validate() {
                Err(e) => control_error(StatusCode::BAD_REQUEST, e.to_string()),
                Ok(()) => {
                    shared.lock().apply_seed(&seed);
                    ok(json!({"Status": "ok", "Opportunities": seed.opportunities.len()}))
                }
            },
        },
        _ => control_error(StatusCode::NOT_FOUND, "unknown control endpoint"),
    }
}

/// `POST /_emulator/opportunities/{Catalog}/{Id}/life-cycle` with a [`LifeCycleChange`]: sets the
/// members given and nothing else; answers the opportunity as the state shows it.
async fn life_cycle_control(shared: &Shared, req: Request<Incoming>, rest: &str) -> Answer {
    let parts: Vec<&str> = rest.split('/').collect();
    let [catalog, id, "life-cycle"] = parts.as_slice() else {
        return control_error(
            StatusCode::NOT_FOUND,
            format!(
                "unknown control endpoint /_emulator/opportunities/{rest}; try /_emulator/opportunities/{{Catalog}}/{{Id}}/life-cycle"
            ),
        );
    };
    if req.method() != Method::POST {
        return control_error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed on a life cycle; POST a change", req.method()),
        );
    }
    let (catalog, id) = ((*catalog).to_owned(), (*id).to_owned());
    let body = match read_body(req.into_body(), MAX_CONTROL_BODY).await {
        Ok(b) => b,
        Err(msg) => return control_error(StatusCode::BAD_REQUEST, msg),
    };
    let change = match parse_control::<LifeCycleChange>(&body) {
        Ok(change) => change,
        Err(e) => return e,
    };
    match shared.lock().change_life_cycle(&catalog, &id, change) {
        Some(opportunity) => ok(serde_json::to_value(opportunity).unwrap_or_default()),
        None => control_error(StatusCode::NOT_FOUND, format!("no opportunity {id} in catalog {catalog}")),
    }
}

/// The largest generated seed (a bound on what one control call can make the emulator hold).
const MAX_GENERATED: usize = 1_000_000;

/// `POST /_emulator/seed/generate`: [`Seed::generate`]'s two numbers.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Generate {
    opportunities: usize,
    #[serde(default)]
    rng_seed: u64,
}

/// `POST /_emulator/daily-use`: calls another tool of the account made just now.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
#[derive(Default)]
struct Spend {
    write: u64,
    read: u64,
}

fn parse_control<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Answer> {
    serde_json::from_slice(body).map_err(|e| control_error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}
