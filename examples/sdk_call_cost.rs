//! What the SDK's call costs beside a bare one: the same `DisassociateOpportunity`, once through
//! `aws-sdk-partnercentralselling` (one attempt, as the function's client makes it) and once as a
//! SigV4-signed POST through the same hyper, against the emulator with 0 and 50 ms of added latency.
//! Medians of the wall time and of the calling thread's CPU time (`/proc/thread-self/schedstat`) per
//! call, one call every 5 ms, alternating rounds. The emulator runs on a thread of its own.
//!
//! ```sh
//! cargo run --release --example sdk_call_cost [calls per round, default 150]
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_partnercentralselling::Client;
use aws_sdk_partnercentralselling::config::{Builder, Region, StalledStreamProtectionConfig};
use aws_sdk_partnercentralselling::types::RelatedEntityType;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_smithy_types::retry::RetryConfig;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use partner_central_emulator::{DailyQuotaConfig, Emulator, EmulatorConfig, FaultConfig, QuotaConfig, Seed};

const PER_OPPORTUNITY: usize = 10;

fn thread_cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat (Linux)");
    stat.split_whitespace().next().and_then(|ns| ns.parse::<f64>().ok()).expect("run time") / 1e6
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn seed(opportunities: usize) -> Seed {
    let opportunities: Vec<_> = (0..opportunities)
        .map(|o| {
            let solutions: Vec<_> = (0..PER_OPPORTUNITY).map(|s| format!("S-5{o:06}{s:02}")).collect();
            serde_json::json!({"Catalog": "Sandbox", "Id": format!("O5{o:06}"),
                "RelatedEntityIdentifiers": {"Solutions": solutions}})
        })
        .collect();
    Seed::from_json(&serde_json::json!({ "Opportunities": opportunities }).to_string()).expect("seed")
}

/// The bare call: the request document, SigV4, one POST, the answer read whole.
struct Bare {
    client: HyperClient<HttpConnector, Full<Bytes>>,
    endpoint: String,
    host: String,
    identity: aws_smithy_runtime_api::client::identity::Identity,
}

impl Bare {
    async fn disassociate(&self, opportunity: &str, solution: &str) {
        let body = serde_json::to_vec(&serde_json::json!({"Catalog": "Sandbox", "OpportunityIdentifier": opportunity,
            "RelatedEntityType": "Solutions", "RelatedEntityIdentifier": solution}))
        .expect("body");
        let headers = [
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", "AWSPartnerCentralSelling.DisassociateOpportunity"),
            ("host", self.host.as_str()),
        ];
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&self.identity)
            .region("us-east-1")
            .name("partnercentral-selling")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("signing params")
            .into();
        let signable = SignableRequest::new("POST", &self.endpoint, headers.into_iter(), SignableBody::Bytes(&body))
            .expect("signable");
        let (instructions, _) = sign(signable, &params).expect("signature").into_parts();
        let mut request = http::Request::post(&self.endpoint);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let mut request = request.body(Full::new(Bytes::from(body))).expect("request");
        instructions.apply_to_request_http1x(&mut request);
        let response = self.client.request(request).await.expect("bare call");
        let status = response.status();
        let answer = response.into_body().collect().await.expect("answer").to_bytes();
        assert!(status.is_success(), "{status}: {answer:?}");
    }
}

fn main() {
    let calls: usize = std::env::args().nth(1).map_or(150, |n| n.parse().expect("calls per round"));
    let (rounds, warm) = (2, 10);
    let pairs = 2 * 2 * rounds * (calls + warm);
    let config = EmulatorConfig {
        seed: seed(pairs.div_ceil(PER_OPPORTUNITY)),
        credentials: BTreeMap::from([("test".to_owned(), "test".to_owned())]),
        quotas: QuotaConfig::unlimited(),
        daily_quotas: DailyQuotaConfig::unlimited(),
        log_requests: false,
        ..Default::default()
    };
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let emulator = Emulator::start(config).await.expect("emulator");
            sender.send(emulator).expect("hand over");
            std::future::pending::<()>().await;
        });
    });
    let emulator = receiver.recv().expect("the emulator started");
    let endpoint = emulator.endpoint();

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let credentials = aws_credential_types::Credentials::new("test", "test", None, None, "example");
        let sdk = Client::from_conf(
            Builder::new()
                .behavior_version(aws_sdk_partnercentralselling::config::BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(credentials.clone())
                .endpoint_url(&endpoint)
                .retry_config(RetryConfig::disabled())
                .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
                .build(),
        );
        let bare = Bare {
            client: HyperClient::builder(hyper_util::rt::TokioExecutor::new()).build_http(),
            host: endpoint.trim_start_matches("http://").to_owned(),
            endpoint: format!("{endpoint}/"),
            identity: credentials.into(),
        };
        let mut next = 0;
        println!("| API latency | client | wall per call | CPU per call |\n|---:|---|---:|---:|");
        for latency_ms in [0, 50] {
            emulator.set_faults(FaultConfig { latency_ms, ..Default::default() }).expect("faults");
            let mut figures = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
            for _ in 0..rounds {
                for (which, (walls, cpus)) in figures.iter_mut().enumerate() {
                    for i in 0..calls + warm {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        let (o, s) = (next / PER_OPPORTUNITY, next % PER_OPPORTUNITY);
                        next += 1;
                        let (opportunity, solution) = (format!("O5{o:06}"), format!("S-5{o:06}{s:02}"));
                        let (cpu, started) = (thread_cpu_ms(), Instant::now());
                        if which == 0 {
                            sdk.disassociate_opportunity()
                                .catalog("Sandbox")
                                .opportunity_identifier(&opportunity)
                                .related_entity_type(RelatedEntityType::Solutions)
                                .related_entity_identifier(&solution)
                                .send()
                                .await
                                .expect("SDK call");
                        } else {
                            bare.disassociate(&opportunity, &solution).await;
                        }
                        if i >= warm {
                            walls.push(started.elapsed().as_secs_f64() * 1e3);
                            cpus.push(thread_cpu_ms() - cpu);
                        }
                    }
                }
            }
            for (name, (walls, cpus)) in ["SDK", "bare SigV4 + hyper"].iter().zip(figures) {
                println!("| {latency_ms} ms | {name} | {:.3} ms | {:.3} ms |", median(walls), median(cpus));
            }
        }
    });
}
