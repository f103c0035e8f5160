//! No secret, credential or signature in any log line, at any log level.
//!
//! A full mixed run (direct, EventBridge, SQS through moto with faults, retries, redrive and dead
//! letters, and the CRM webhook with good and bad signatures) with distinctive credentials (an
//! access key, a secret key and a session token, which the emulator's SigV4 check accepts) and a
//! distinctive webhook secret, read from the environment or from Secrets Manager (moto's). It runs
//! at DEBUG and TRACE, set both ways (`AWS_LAMBDA_LOG_LEVEL`, which Lambda sets, and `RUST_LOG`, which
//! opens the SDK's own crates), in JSON and text; then every log line of both functions is searched.

use std::time::{Duration, Instant};

use crate::common::{
    Function, Keys, Moto, Queues, RuntimeApi, emulator_config, function_url_event, now_secs, pump_once, request,
    signed_webhook, start_emulator,
};
use partner_central_emulator::{EmulatorConfig, FaultConfig, QuotaConfig, RunningEmulator};
use serde_json::{Value, json};

const KEYS: Keys = Keys { access: "AKIALOGSECRETSTEST01", secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYlog0secret0b5e" };
const ACCESS_KEY: &str = KEYS.access;
const SECRET_KEY: &str = KEYS.secret;
const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjELOGsessionTOKENmustNEVERbeLOGGED9d2f";
const WEBHOOK_SECRET: &str = "webhook-hmac-secret-must-never-be-logged-31c8";
const TIMEOUT: Duration = Duration::from_secs(60);

const SEED: &str = r#"{
  "DeniedCatalogs": ["AWS"],
  "Opportunities": [
    {"Catalog": "Sandbox", "Id": "O1", "RelatedEntityIdentifiers": {"Solutions": ["S-1"]}},
    {"Catalog": "Sandbox", "Id": "O2", "RelatedEntityIdentifiers": {"Solutions": ["S-2"]}},
    {"Catalog": "Sandbox", "Id": "O3", "RelatedEntityIdentifiers": {"Solutions": ["S-3"]}},
    {"Catalog": "Sandbox", "Id": "O4", "RelatedEntityIdentifiers": {"Solutions": ["S-4"]}},
    {"Catalog": "Sandbox", "Id": "O5", "RelatedEntityIdentifiers": {"Solutions": ["S-5"]}},
    {"Catalog": "Sandbox", "Id": "O6", "RelatedEntityIdentifiers": {"Solutions": ["S-6"]}},
    {"Catalog": "Sandbox", "Id": "O7", "RelatedEntityIdentifiers": {"Solutions": ["S-7"]}},
    {"Catalog": "Sandbox", "Id": "O8", "RelatedEntityIdentifiers": {"Solutions": ["S-8"]}},
    {"Catalog": "AWS", "Id": "O9", "RelatedEntityIdentifiers": {"Solutions": ["S-9"]}}
  ]
}"#;

/// One way to ask for verbose logs.
struct Logging {
    name: &'static str,
    env: &'static [(&'static str, &'static str)],
    /// The webhook secret from Secrets Manager (its answer then crosses the SDK's logging) or the environment.
    secret_from_manager: bool,
}

const LOGGINGS: [Logging; 5] = [
    Logging { name: "lambda-debug", env: &[("AWS_LAMBDA_LOG_LEVEL", "DEBUG")], secret_from_manager: false },
    Logging { name: "lambda-trace", env: &[("AWS_LAMBDA_LOG_LEVEL", "TRACE")], secret_from_manager: true },
    Logging { name: "rust-log-debug", env: &[("RUST_LOG", "debug")], secret_from_manager: true },
    Logging { name: "rust-log-trace", env: &[("RUST_LOG", "trace")], secret_from_manager: true },
    Logging {
        name: "rust-log-trace-text",
        env: &[("RUST_LOG", "trace"), ("AWS_LAMBDA_LOG_FORMAT", "Text")],
        secret_from_manager: false,
    },
];

/// A webhook call signed with `secret`, and the signature it carries.
fn webhook(body: &str, timestamp: u64, secret: &str) -> (Value, String) {
    let event = signed_webhook(body, timestamp, secret);
    let signature = event["headers"]["x-webhook-signature"].as_str().expect("signed").to_owned();
    (event, signature)
}

fn status(answer: &crate::common::Answer) -> u64 {
    answer.as_ref().ok().and_then(|r| r["statusCode"].as_u64()).unwrap_or(0)
}

async fn emulator() -> RunningEmulator {
    start_emulator(EmulatorConfig { quotas: QuotaConfig::unlimited(), ..emulator_config(SEED, &KEYS) }).await
}

async fn webhook_secret_arn(moto: &Moto, name: &str) -> String {
    let created = moto.secrets_manager().create_secret().name(name).secret_string(WEBHOOK_SECRET).send().await;
    created.expect("create the secret").arn.expect("an ARN")
}

/// One full mixed run; gives every log line of both functions and every signature they were shown.
async fn mixed_run(logging: &Logging, moto: &Moto) -> (Vec<String>, Vec<String>) {
    let emulator = emulator().await;
    let queues: Queues = moto.queues(&format!("secrets-{}", logging.name), false, 3, 30).await;
    let runtime = RuntimeApi::start().await;
    let webhook_runtime = RuntimeApi::start().await;
    let mut env: Vec<(&str, String)> = vec![
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ("AWS_SESSION_TOKEN", SESSION_TOKEN.into()),
        ("AWS_ENDPOINT_URL_PARTNERCENTRAL_SELLING", emulator.endpoint()),
        ("AWS_ENDPOINT_URL_SQS", moto.endpoint.clone()),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.endpoint.clone()),
        ("DEAD_LETTER_QUEUE_URL", queues.dlq_url.clone()),
        ("WORK_QUEUE_URL", queues.work_url.clone()),
        ("ALLOWED_CATALOGS", "Sandbox,AWS".into()),
        ("PARTNER_CENTRAL_WRITES_PER_SECOND", "50".into()),
        ("PARTNER_CENTRAL_READ_TIMEOUT_SECONDS", "1".into()),
        ("PARTNER_CENTRAL_OPERATION_TIMEOUT_SECONDS", "5".into()),
    ];
    if logging.secret_from_manager {
        env.push(("WEBHOOK_SECRET_ARN", webhook_secret_arn(moto, &format!("webhook-{}", logging.name)).await));
    } else {
        env.push(("WEBHOOK_SECRET", WEBHOOK_SECRET.into()));
    }
    env.extend(logging.env.iter().map(|(k, v)| (*k, v.to_string())));
    // Each function is given every setting: what it does not read must not reach its logs either.
    let mut function = Function::start(&runtime, &env);
    let mut webhook_function = Function::start_webhook(&webhook_runtime, &env);
    let name = logging.name;

    // Direct: done, already done (GetOpportunity), invalid, no such opportunity.
    let doc = request("Sandbox", "O1", "Solutions", "S-1");
    assert_eq!(runtime.invoke(doc.clone(), TIMEOUT).await.expect(name)["outcome"], "disassociated", "{name}");
    assert_eq!(runtime.invoke(doc, TIMEOUT).await.expect(name)["outcome"], "already_disassociated", "{name}");
    let invalid = runtime.invoke(request("Sandbox", "1", "Solutions", "S-1"), TIMEOUT).await.unwrap_err();
    assert_eq!(invalid["errorType"], "ValidationError", "{name}");
    let missing = runtime.invoke(request("Sandbox", "O7777777", "Solutions", "S-1"), TIMEOUT).await.unwrap_err();
    assert_eq!(missing["errorType"], "ResourceNotFoundException", "{name}");

    // EventBridge: done, and denied (dead-lettered).
    let event = fixtures::eventbridge;
    let done = runtime.invoke(event(request("Sandbox", "O2", "Solutions", "S-2")), TIMEOUT).await.expect(name);
    assert_eq!(done["outcome"], "disassociated", "{name}");
    let denied = runtime.invoke(event(request("AWS", "O9", "Solutions", "S-9")), TIMEOUT).await.expect(name);
    assert_eq!(denied["errorCode"], "AccessDeniedException", "{name}");
    let unsupported = runtime.invoke(json!({"Records": "x"}), TIMEOUT).await.unwrap_err();
    assert_eq!(unsupported["errorType"], "UnsupportedEvent", "{name}");

    // The webhook: signed (queued), wrongly signed, stale, unsigned.
    let mut signatures = Vec::new();
    let body =
        json!([request("Sandbox", "O3", "Solutions", "S-3"), request("Sandbox", "O4", "Solutions", "S-4")]).to_string();
    let (signed, good) = webhook(&body, now_secs(), WEBHOOK_SECRET);
    assert_eq!(status(&webhook_runtime.invoke(signed.clone(), TIMEOUT).await), 202, "{name}");
    let (forged, bad) = webhook(&body, now_secs(), "a-guess-at-the-secret-0000000000");
    assert_eq!(status(&webhook_runtime.invoke(forged, TIMEOUT).await), 401, "{name}");
    let (stale, old) = webhook(&body, now_secs() - 3600, WEBHOOK_SECRET);
    assert_eq!(status(&webhook_runtime.invoke(stale, TIMEOUT).await), 401, "{name}");
    let unsigned = function_url_event(&body, json!({"content-type": "application/json"}));
    assert_eq!(status(&webhook_runtime.invoke(unsigned, TIMEOUT).await), 401, "{name}");
    // Handed to the worker, a signed webhook is refused as an unsupported event.
    let refused = runtime.invoke(signed, TIMEOUT).await.unwrap_err();
    assert_eq!(refused["errorType"], "UnsupportedEvent", "{name}");
    signatures.extend([good, bad, old]);

    // SQS, with faults: SDK retries, throttling, 5xx, dropped connections, timeouts, redrive.
    let mut bodies: Vec<String> =
        (5..=8).map(|i| request("Sandbox", &format!("O{i}"), "Solutions", &format!("S-{i}")).to_string()).collect();
    bodies.push("{ not json".into());
    bodies.push(event(request("Sandbox", "O5", "Solutions", "S-5")).to_string());
    moto.send(&queues, "", &bodies).await;
    emulator
        .set_faults(FaultConfig {
            throttle_rate: 0.3,
            error_rate: 0.1,
            drop_rate: 0.1,
            slow_rate: 0.1,
            slow_ms: 1_500,
            rng_seed: Some(7),
            ..FaultConfig::default()
        })
        .unwrap();
    let started = Instant::now();
    while moto.depth(&queues.work_url).await > 0 {
        assert!(started.elapsed() < Duration::from_secs(120), "{name}: the queue did not drain");
        pump_once(moto, &queues, &runtime, 10, TIMEOUT).await;
    }
    emulator.set_faults(FaultConfig::default()).unwrap();
    let state = emulator.state();
    assert_eq!(state.auth_failures, 0, "{name}: the emulator took every signature made with the session token");
    assert!(state.faults_injected.dropped + state.faults_injected.throttle > 0, "{name}: faults were injected");
    assert!(moto.depth(&queues.dlq_url).await > 0, "{name}: something was dead-lettered");

    assert!(function.is_running(), "{name}: the worker process died");
    assert!(webhook_function.is_running(), "{name}: the webhook process died");
    (function.all_lines().await.into_iter().chain(webhook_function.all_lines().await).collect(), signatures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_credential_or_signature_is_ever_logged() {
    let moto = Moto::start().await;
    let runs = futures::future::join_all(LOGGINGS.iter().map(|logging| mixed_run(logging, &moto))).await;
    let mut leaks = Vec::new();
    for (logging, (lines, signatures)) in LOGGINGS.iter().zip(&runs) {
        println!("{}: {} log lines", logging.name, lines.len());
        assert!(lines.len() > 30, "{}: only {} log lines: is the level set?", logging.name, lines.len());
        let mut forbidden: Vec<(&str, String)> = vec![
            ("the secret access key", SECRET_KEY.to_owned()),
            ("the session token", SESSION_TOKEN.to_owned()),
            ("the access key id", ACCESS_KEY.to_owned()),
            ("the webhook secret", WEBHOOK_SECRET.to_owned()),
            ("a SigV4 signature", "Signature=".to_owned()),
            ("an Authorization header", "authorization".to_owned()),
        ];
        for signature in signatures {
            forbidden.push(("a webhook signature", signature.trim_start_matches("sha256=").to_owned()));
        }
        for line in lines {
            let lower = line.to_ascii_lowercase();
            for (what, needle) in &forbidden {
                if line.contains(needle.as_str()) || lower.contains(&needle.to_ascii_lowercase()) {
                    let at = lower.find(&needle.to_ascii_lowercase()).unwrap_or(0);
                    let from = line.floor_char_boundary(at.saturating_sub(100));
                    let to = line.ceil_char_boundary((at + 100).min(line.len()));
                    leaks.push(format!("{}: {what}: ...{}...", logging.name, &line[from..to]));
                }
            }
        }
    }
    leaks.sort();
    leaks.dedup();
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
}
