//! Chaos: a backlog through moto's SQS (redrive to the dead-letter queue after 3 receives) into the
//! built function, while the emulator throttles, fails, drops and stalls calls; and a function
//! killed with SIGKILL in the middle of a batch.
//!
//! Whatever happens: every valid request ends disassociated or in the dead-letter queue, none is
//! lost, no entity is disassociated twice, every malformed one is dead-lettered with its reason, and
//! the function processes are still running.
//!
//! The short run (1,000 requests, one queue) is part of `cargo test`. The long one (10,000, spread
//! over ten queues because moto slows down with a queue's depth) is `make chaos` (tools/chaos.sh):
//! `cargo test --release --test chaos -- --ignored --nocapture`. `CHAOS_SEED` fixes the emulator's
//! fault draws (the run prints the seed it used).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use common::{Function, Moto, Queues, RuntimeApi, pump_once, pump_once_or_abandon, request};
use partner_central_emulator::{
    DailyQuotaConfig, Emulator, EmulatorConfig, FaultConfig, QuotaConfig, RelatedEntityIdentifiers, RunningEmulator,
    Seed, SeedOpportunity, StateSnapshot, TokenBucketConfig,
};
use serde_json::{Value, json};

const ACCESS_KEY: &str = "AKIDCHAOSTEST";
const SECRET_KEY: &str = "chaos-secret-key";

/// The account's write quota in the emulator, shared by the function processes as the template
/// shares it between instances (`WriteQuotaPerSecond / MaximumConcurrency`).
const WRITES_PER_SECOND: f64 = 200.0;
/// Lambda's timeout for one invocation (the template's 60 s).
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_RECEIVES: u32 = 3;
const MALFORMED_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/malformed");

/// The faults of the issue: 20% throttling, 5% 5xx, 2% dropped connections, 1% of calls slower
/// than the read timeout. A slow call's change still happens (`slow_applies`): the ambiguous case,
/// where the function sees a timeout and the redelivery finds the entity already gone.
fn faults(seed: u64) -> FaultConfig {
    FaultConfig {
        throttle_rate: 0.20,
        error_rate: 0.05,
        drop_rate: 0.02,
        slow_rate: 0.01,
        slow_ms: 1500,
        slow_applies: true,
        rng_seed: Some(seed),
        ..FaultConfig::default()
    }
}

/// One valid request of the backlog: its opportunity and entity, and the body it travels in.
struct Valid {
    opportunity: String,
    entity_type: &'static str,
    identifier: String,
    body: String,
}

fn backlog(count: usize) -> Vec<Valid> {
    (0..count)
        .map(|i| {
            let n = 3_000_000 + i;
            let (entity_type, identifier) =
                if i % 4 == 3 { ("AwsProducts", format!("Product{n}")) } else { ("Solutions", format!("S-{n}")) };
            let opportunity = format!("O{n}");
            let document = request("Sandbox", &opportunity, entity_type, &identifier);
            // A third of the bodies are EventBridge events (an EventBridge pipe or rule into the queue).
            let body = if i % 3 == 0 {
                let mut event = fixtures::eventbridge(document);
                event["id"] = json!(format!("ev-{n}"));
                event.to_string()
            } else {
                document.to_string()
            };
            Valid { opportunity, entity_type, identifier, body }
        })
        .collect()
}

fn seed(backlog: &[Valid]) -> Seed {
    let opportunities = backlog
        .iter()
        .map(|v| {
            let mut related = RelatedEntityIdentifiers::default();
            match v.entity_type {
                "Solutions" => related.solutions.push(v.identifier.clone()),
                _ => related.aws_products.push(v.identifier.clone()),
            }
            // A second solution, so that no business rule stands in the way.
            related.solutions.push(format!("S-9{}", &v.opportunity[1..]));
            SeedOpportunity {
                catalog: "Sandbox".into(),
                id: v.opportunity.clone(),
                related_entity_identifiers: related,
                life_cycle: Default::default(),
            }
        })
        .collect();
    Seed { opportunities, ..Seed::default() }
}

/// The malformed bodies: every file of the malformed corpus that SQS can carry (text, not empty,
/// under 256 KiB), and a huge one. Each must end in the dead-letter queue as a `ValidationError`.
fn malformed_bodies() -> Vec<(String, String)> {
    let mut bodies = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(MALFORMED_DIR).expect("the malformed corpus").flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(text) = std::fs::read_to_string(entry.path()) else { continue };
        if !text.is_empty() && text.len() < 250_000 {
            bodies.push((name, text));
        }
    }
    let huge = request("Sandbox", &format!("O{}", "1".repeat(200_000)), "Solutions", "S-1").to_string();
    bodies.push(("generated: a 200 kB opportunity identifier".into(), huge));
    bodies
}

async fn emulator(seed: Seed, faults: FaultConfig) -> RunningEmulator {
    let bucket = TokenBucketConfig { rate: WRITES_PER_SECOND, burst: 20.0 };
    Emulator::start(EmulatorConfig {
        seed,
        credentials: BTreeMap::from([(ACCESS_KEY.to_owned(), SECRET_KEY.to_owned())]),
        quotas: QuotaConfig { write: Some(bucket), read: Some(bucket) },
        // The long runs write more than a day's quota: the per-second pace is what they test.
        daily_quotas: DailyQuotaConfig::unlimited(),
        faults,
        log_requests: false,
        ..Default::default()
    })
    .await
    .expect("start the emulator")
}

fn env(
    emulator: &RunningEmulator,
    moto: &Moto,
    queues: &Queues,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
        ("AWS_ENDPOINT_URL_PARTNERCENTRAL_SELLING", emulator.endpoint()),
        ("AWS_ENDPOINT_URL_SQS", moto.endpoint.clone()),
        ("DEAD_LETTER_QUEUE_URL", queues.dlq_url.clone()),
        ("PARTNER_CENTRAL_READ_TIMEOUT_SECONDS", "1".to_owned()),
        ("PARTNER_CENTRAL_OPERATION_TIMEOUT_SECONDS", "5".to_owned()),
    ];
    env.extend(extra.iter().cloned());
    env
}

/// The counts of the outcome lines (CloudWatch embedded metrics) of one or more processes.
fn metrics(functions: &[Function]) -> BTreeMap<&'static str, u64> {
    let mut sums = BTreeMap::new();
    for function in functions {
        for line in function.lines() {
            let Ok(line) = serde_json::from_str::<Value>(&line) else { continue };
            if line.get("_aws").is_none() {
                continue;
            }
            for name in
                ["Disassociated", "AlreadyDisassociated", "NotAssociated", "DeadLettered", "Retried", "Throttled"]
            {
                *sums.entry(name).or_insert(0) += line[name].as_u64().unwrap_or(0);
            }
        }
    }
    sums
}

fn attribute(message: &aws_sdk_sqs::types::Message, name: &str) -> Option<String> {
    message.message_attributes()?.get(name)?.string_value().map(str::to_owned)
}

fn still_associated(state: &StateSnapshot, valid: &Valid) -> bool {
    let Some(opportunity) = state.opportunity("Sandbox", &valid.opportunity) else { return true };
    let ids = &opportunity.related_entity_identifiers;
    let list = if valid.entity_type == "Solutions" { &ids.solutions } else { &ids.aws_products };
    list.contains(&valid.identifier)
}

/// What a chaos run ended with.
#[derive(Debug, Default)]
struct Report {
    valid: usize,
    disassociated: usize,
    in_dead_letter_queue: usize,
    /// Disassociated and in the dead-letter queue: a slow call that applied, then every receive failed.
    both: usize,
    lost: Vec<String>,
    disassociated_twice: Vec<String>,
    /// Valid requests the function itself dead-lettered (with an `ErrorCode`), by code.
    valid_dead_lettered_by_function: BTreeMap<String, usize>,
    malformed: usize,
    malformed_dead_lettered: usize,
    malformed_problems: Vec<String>,
    /// Dead letters beyond the first for one message: duplicate deliveries.
    duplicate_letters: usize,
    unexpected_letters: Vec<String>,
}

/// The shape of a chaos run.
struct Plan {
    /// Valid requests in the backlog.
    requests: usize,
    /// Work queues the backlog is spread over, each with its redrive to its own dead-letter queue
    /// (several event source mappings). moto's SQS slows down linearly with a queue's depth (a send
    /// or a receive scans the queue), so a queue is kept to about a thousand messages.
    shards: usize,
    /// Function processes (concurrent execution environments) on the Runtime API.
    processes: usize,
    /// Concurrent event-source-mapping pollers.
    lanes: usize,
    /// `AWS_MAX_ATTEMPTS` of the function's SDK clients; `None` leaves the SDK's default (3), as deployed.
    sdk_attempts: Option<u32>,
    time_limit: Duration,
}

async fn chaos(plan: Plan) {
    let Plan { requests, shards, processes, lanes, sdk_attempts, time_limit } = plan;
    let seed_value = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| common::now_ms() ^ u64::from(std::process::id()));
    let backlog = backlog(requests);
    let malformed = malformed_bodies();
    let emulator = emulator(seed(&backlog), faults(seed_value)).await;
    let moto = Moto::start().await;
    let mut shard_queues = Vec::new();
    for shard in 0..shards {
        shard_queues.push(moto.queues(&format!("chaos-{shard}"), false, MAX_RECEIVES, 30).await);
    }
    let runtime = RuntimeApi::start().await;
    let share = format!("{}", (WRITES_PER_SECOND / processes as f64 * 1000.0).floor() / 1000.0);
    let mut extra = vec![("PARTNER_CENTRAL_WRITES_PER_SECOND", share)];
    extra.extend(sdk_attempts.map(|n| ("AWS_MAX_ATTEMPTS", n.to_string())));
    // The function dead-letters into the first shard's dead-letter queue.
    let mut functions: Vec<Function> =
        (0..processes).map(|_| Function::start(&runtime, &env(&emulator, &moto, &shard_queues[0], &extra))).collect();

    // The malformed bodies are spread through the backlog, and the backlog over the shards.
    let mut bodies: Vec<String> = backlog.iter().map(|v| v.body.clone()).collect();
    let step = (bodies.len() / malformed.len()).max(1);
    for (i, (_, body)) in malformed.iter().enumerate().rev() {
        bodies.insert((i * step).min(bodies.len()), body.clone());
    }
    let mut per_shard = vec![Vec::new(); shards];
    for (i, body) in bodies.iter().enumerate() {
        per_shard[i % shards].push(body.clone());
    }
    let sending = Instant::now();
    let sends = per_shard.iter().zip(&shard_queues).flat_map(|(bodies, queues)| {
        bodies.chunks(bodies.len().div_ceil(2).max(1)).map(|part| moto.send(queues, "", part))
    });
    futures::future::join_all(sends).await;
    println!("chaos: {} messages sent to {shards} queue(s) in {:.1} s", bodies.len(), sending.elapsed().as_secs_f64());

    let started = Instant::now();
    let (invocations, records, undeleted) = {
        // Each lane polls its own shards (or shares one, when there are more lanes than shards).
        let lane = |k: usize| {
            let mine: Vec<&Queues> = if shards >= lanes {
                shard_queues.iter().enumerate().filter(|(s, _)| s % lanes == k).map(|(_, q)| q).collect()
            } else {
                vec![&shard_queues[k % shards]]
            };
            let (moto, runtime) = (&moto, &runtime);
            async move {
                let (mut invocations, mut records, mut undeleted) = (0usize, 0usize, 0usize);
                loop {
                    assert!(started.elapsed() < time_limit, "the backlog did not drain within {time_limit:?}");
                    let mut idle = true;
                    for queues in &mine {
                        let pass = pump_once(moto, queues, runtime, 10, INVOCATION_TIMEOUT).await;
                        if pass.received > 0 {
                            idle = false;
                            invocations += 1;
                            records += pass.received;
                            undeleted += pass.undeleted;
                        }
                    }
                    if idle {
                        let mut left = 0;
                        for queues in &mine {
                            left += moto.depth(&queues.work_url).await;
                        }
                        if left == 0 {
                            return (invocations, records, undeleted);
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        };
        let done = futures::future::join_all((0..lanes).map(lane)).await;
        done.iter().fold((0, 0, 0), |(i, r, u), (li, lr, lu)| (i + li, r + lr, u + lu))
    };
    let elapsed = started.elapsed();

    // Let the last log lines arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let state = emulator.state();
    let mut letters = Vec::new();
    for queues in &shard_queues {
        letters.extend(moto.drain(&queues.dlq_url).await);
    }

    let mut report = Report { valid: backlog.len(), malformed: malformed.len(), ..Report::default() };
    let by_body: HashMap<&str, usize> = backlog.iter().enumerate().map(|(i, v)| (v.body.as_str(), i)).collect();
    let malformed_by_body: HashMap<&str, &str> = malformed.iter().map(|(n, b)| (b.as_str(), n.as_str())).collect();
    let mut valid_letters = vec![0usize; backlog.len()];
    let mut malformed_letters: HashMap<&str, usize> = HashMap::new();
    for letter in &letters {
        let body = letter.body().unwrap_or_default();
        let code = attribute(letter, "ErrorCode");
        if let Some(&i) = by_body.get(body) {
            valid_letters[i] += 1;
            if let Some(code) = code {
                *report.valid_dead_lettered_by_function.entry(code).or_default() += 1;
            }
        } else if let Some(name) = malformed_by_body.get(body) {
            *malformed_letters.entry(name).or_default() += 1;
            let message = attribute(letter, "ErrorMessage").unwrap_or_default();
            if code.as_deref() != Some("ValidationError") || message.is_empty() {
                report.malformed_problems.push(format!("{name}: ErrorCode {code:?}, ErrorMessage {message:?}"));
            }
        } else {
            report.unexpected_letters.push(body.chars().take(120).collect());
        }
    }
    // SQS delivers at least once: a message delivered twice may be dead-lettered twice, which is no
    // loss, only counted.
    for (name, _) in &malformed {
        match malformed_letters.get(name.as_str()).copied().unwrap_or(0) {
            0 => report.malformed_problems.push(format!("{name}: not in the dead-letter queue")),
            n => {
                report.malformed_dead_lettered += 1;
                report.duplicate_letters += n - 1;
            }
        }
    }
    for (i, valid) in backlog.iter().enumerate() {
        let done = !still_associated(&state, valid);
        let count = state.disassociation_count("Sandbox", &valid.opportunity, valid.entity_type, &valid.identifier);
        let dead = valid_letters[i] > 0;
        report.duplicate_letters += valid_letters[i].saturating_sub(1);
        report.disassociated += usize::from(done);
        report.in_dead_letter_queue += usize::from(dead);
        report.both += usize::from(done && dead);
        if !done && !dead {
            report.lost.push(valid.opportunity.clone());
        }
        if count > 1 || (done && count != 1) {
            report.disassociated_twice.push(format!("{} (count {count})", valid.opportunity));
        }
    }

    let outcomes = metrics(&functions);
    let operation = state.operation("DisassociateOpportunity");
    println!(
        "chaos: seed {seed_value}, {} valid + {} malformed requests, {shards} queue(s), {processes} function processes, {lanes} pump lanes, batch 10, SDK attempts {}",
        report.valid,
        report.malformed,
        sdk_attempts.map_or("3 (default)".to_owned(), |n| n.to_string())
    );
    println!(
        "chaos: drained in {:.1} s: {invocations} invocations, {records} records received ({} redeliveries)",
        elapsed.as_secs_f64(),
        records.saturating_sub(report.valid + report.malformed)
    );
    println!(
        "chaos: valid: {} disassociated, {} in the dead-letter queue (by redrive after {MAX_RECEIVES} receives), {} both (applied slow call, then every receive failed), {} lost, {} disassociated twice",
        report.disassociated,
        report.in_dead_letter_queue,
        report.both,
        report.lost.len(),
        report.disassociated_twice.len()
    );
    println!(
        "chaos: malformed: {} of {} in the dead-letter queue as ValidationError with a message",
        report.malformed_dead_lettered, report.malformed
    );
    println!(
        "chaos: DisassociateOpportunity calls {}, successes {}, throttled {} ({} by quota); injected: {} throttles, {} 5xx, {} dropped, {} slow; GetOpportunity calls {}",
        operation.calls,
        operation.successes,
        operation.throttled,
        operation.quota_throttled,
        state.faults_injected.throttle,
        state.faults_injected.internal_error,
        state.faults_injected.dropped,
        state.faults_injected.slow,
        state.operation("GetOpportunity").calls,
    );
    // A duplicate delivered at its first receive (moto's receive is not atomic) is not_associated.
    let completions = outcomes["Disassociated"] + outcomes["AlreadyDisassociated"] + outcomes["NotAssociated"];
    println!(
        "chaos: duplicate deliveries absorbed: {} completed more than once (found already disassociated), {} dead-lettered more than once, {undeleted} done but not deleted (stale receipt handle)",
        completions.saturating_sub(report.disassociated as u64),
        report.duplicate_letters
    );
    println!("chaos: function outcomes (embedded metrics): {outcomes:?}");

    assert!(report.lost.is_empty(), "lost requests: {:?}", report.lost);
    assert!(report.disassociated_twice.is_empty(), "disassociated twice: {:?}", report.disassociated_twice);
    assert_eq!(report.disassociated + report.in_dead_letter_queue - report.both, report.valid);
    assert!(
        report.valid_dead_lettered_by_function.is_empty(),
        "valid requests must reach the dead-letter queue only by redrive: {:?}",
        report.valid_dead_lettered_by_function
    );
    assert!(report.malformed_problems.is_empty(), "{:#?}", report.malformed_problems);
    assert_eq!(report.malformed_dead_lettered, report.malformed);
    assert!(report.unexpected_letters.is_empty(), "{:#?}", report.unexpected_letters);
    assert_eq!(state.total_disassociations(), report.disassociated as u64);
    assert_eq!(state.auth_failures, 0);
    for queues in &shard_queues {
        assert_eq!(moto.depth(&queues.work_url).await, 0);
    }
    for function in &mut functions {
        assert!(function.is_running(), "a function process died");
    }
}

/// Without the SDK's own retries every fault comes back through the queue: some valid requests use
/// up their three receives and reach the dead-letter queue by redrive, which the accounting must show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_through_faults_lose_nothing() {
    let plan =
        Plan { requests: 1_000, shards: 1, processes: 4, lanes: 8, sdk_attempts: Some(1), time_limit: MINUTES_20 };
    chaos(plan).await;
}

/// As deployed (the SDK retries too), at ten times the size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run by `make chaos` (tools/chaos.sh)"]
async fn ten_thousand_requests_through_faults_lose_nothing() {
    let plan =
        Plan { requests: 10_000, shards: 10, processes: 4, lanes: 10, sdk_attempts: None, time_limit: MINUTES_20 * 6 };
    chaos(plan).await;
}

const MINUTES_20: Duration = Duration::from_secs(20 * 60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_killed_mid_batch_loses_nothing() {
    // Every call takes 250 ms and writes are paced at 4/s: a batch of 10 takes about 2.5 s.
    let backlog = backlog(10);
    let slow = FaultConfig { latency_ms: 250, ..FaultConfig::default() };
    let emulator = emulator(seed(&backlog), slow).await;
    let moto = Moto::start().await;
    let queues = moto.queues("crash", false, MAX_RECEIVES, 2).await;
    let runtime = RuntimeApi::start().await;
    let env = env(&emulator, &moto, &queues, &[("PARTNER_CENTRAL_WRITES_PER_SECOND", "4".to_owned())]);
    let mut first = Function::start(&runtime, &env);
    let bodies: Vec<String> = backlog.iter().map(|v| v.body.clone()).collect();
    moto.send(&queues, "", &bodies).await;

    // SIGKILL once a few of the batch's calls have gone through, and give up on the invocation.
    let kill = async {
        while emulator.state().total_disassociations() < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        first.kill().await;
    };
    let (pass, ()) = tokio::join!(
        pump_once_or_abandon(&moto, &queues, &runtime, 10, INVOCATION_TIMEOUT, Duration::from_secs(5)),
        kill
    );
    assert_eq!(pass.received, 10);
    assert!(pass.abandoned, "the batch must not have been answered: {pass:?}");
    assert!(!first.is_running());
    // Calls in flight at the kill still complete on the service side.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let done_before = emulator.state().total_disassociations() as usize;
    assert!((3..10).contains(&done_before), "killed mid-batch: {done_before} of 10 done");

    // A new process on the same Runtime API, as Lambda starts a new execution environment. The
    // batch comes back when its visibility timeout (2 s) ends.
    let mut second = Function::start(&runtime, &env);
    let started = Instant::now();
    while moto.depth(&queues.work_url).await > 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "the batch did not come back");
        let pass = pump_once(&moto, &queues, &runtime, 10, INVOCATION_TIMEOUT).await;
        if pass.received == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let state = emulator.state();
    for valid in &backlog {
        assert!(!still_associated(&state, valid), "{} was not disassociated", valid.opportunity);
        let count = state.disassociation_count("Sandbox", &valid.opportunity, valid.entity_type, &valid.identifier);
        assert_eq!(count, 1, "{}", valid.opportunity);
    }
    assert!(moto.drain(&queues.dlq_url).await.is_empty(), "two receives stay under maxReceiveCount 3");
    let outcomes = metrics(std::slice::from_ref(&second));
    assert_eq!(outcomes["AlreadyDisassociated"], done_before as u64, "the killed process's work is recognised");
    assert_eq!(outcomes["Disassociated"], 10 - done_before as u64);
    assert!(second.is_running());
    println!("crash: killed after {done_before} of 10; the redelivered batch ended {outcomes:?}");
}
