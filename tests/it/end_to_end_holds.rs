//! Holds end to end (docs/holds.md): the built worker, run as Lambda runs it, against the Partner
//! Central emulator (its review statuses, set at runtime) and moto's SQS, pumped as Lambda's mapping
//! pumps (a failed record left to come back when its visibility runs out, a delayed one when its
//! delay does). Time is scaled by the settings; every wait is for a state, with a timeout.

use std::time::{Duration, Instant};

use crate::common::{
    Function, Keys, Moto, Queues, RuntimeApi, emulator_config, function_env, pump_as_lambda, request, start_emulator,
};
use partner_central_emulator::{
    BehaviorConfig, EmulatorConfig, LifeCycleChange, ReviewErrorCode, ReviewStatus, RunningEmulator,
};
use serde_json::Value;

const KEYS: Keys = Keys { access: "AKIDHOLDSTEST", secret: "holds-secret" };
const TIMEOUT: Duration = Duration::from_secs(60);
/// The longest any state below is waited for.
const WITHIN: Duration = Duration::from_secs(45);

/// O3000002: submitted, two solutions (approved, it may lose one). O3000004: rejected.
const SEED: &str = r#"{
  "Opportunities": [
    {"Catalog": "Sandbox", "Id": "O3000002", "LifeCycle": {"Stage": "Qualified", "ReviewStatus": "Submitted"},
     "RelatedEntityIdentifiers": {"Solutions": ["S-3000021", "S-3000022"]}},
    {"Catalog": "Sandbox", "Id": "O3000004", "LifeCycle": {"Stage": "Qualified", "ReviewStatus": "Rejected"},
     "RelatedEntityIdentifiers": {"Solutions": ["S-3000041", "S-3000042"]}}
  ]
}"#;

/// The error list's codes the service may give a write refused under review or after a rejection:
/// the worker must take them alike (the read decides), each a queue of its own.
const ERROR_LIST_CODES: [(&str, ReviewErrorCode); 2] =
    [("anp", ReviewErrorCode::ActionNotPermitted), ("irs", ReviewErrorCode::InvalidResourceState)];

struct World {
    moto: Moto,
    queues: Queues,
    emulator: RunningEmulator,
    runtime: RuntimeApi,
    function: Function,
}

async fn world(name: &str, code: ReviewErrorCode, extra: &[(&str, &str)]) -> World {
    let moto = Moto::start().await;
    let queues = moto.queues(name, false, 3, 30).await;
    let behavior = BehaviorConfig { review_error_code: code, ..BehaviorConfig::default() };
    let emulator = start_emulator(EmulatorConfig { behavior, ..emulator_config(SEED, &KEYS) }).await;
    let runtime = RuntimeApi::start().await;
    let base = [
        ("PARTNER_CENTRAL_WRITES_PER_SECOND", "20"),
        ("MAX_RECEIVE_COUNT", "3"),
        ("REVIEW_RECHECK_SECONDS", "1"),
        ("MAX_HOLD_SECONDS", "2"),
        ("WORK_QUEUE_RETENTION_SECONDS", "120"),
        ("WORK_QUEUE_URL", queues.work_url.as_str()),
        ("DEAD_LETTER_QUEUE_URL", queues.dlq_url.as_str()),
    ];
    let function =
        Function::start(&runtime, &function_env(&KEYS, &emulator, Some(&moto), &[&base[..], extra].concat()));
    World { moto, queues, emulator, runtime, function }
}

impl World {
    /// Sends the work queue one request: `solution` off `opportunity`.
    async fn send(&self, opportunity: &str, solution: &str) {
        let body = request("Sandbox", opportunity, "Solutions", solution).to_string();
        self.moto.send(&self.queues, "", &[body]).await;
    }

    /// Pumps the work queue as Lambda does until `done`, or fails after [`WITHIN`].
    async fn pump_until(&mut self, what: &str, mut done: impl FnMut(&World) -> bool) {
        let started = Instant::now();
        while !done(self) {
            assert!(started.elapsed() < WITHIN, "not within {WITHIN:?}: {what}\n{:#?}", self.function.lines());
            if pump_as_lambda(&self.moto, &self.queues, &self.runtime, TIMEOUT).await.received == 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// The record lines with this outcome.
    fn outcomes(&self, outcome: &str) -> Vec<Value> {
        let lines = self.function.lines();
        lines.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(|l| l["outcome"] == outcome).collect()
    }

    fn solutions(&self, opportunity: &str) -> Vec<String> {
        let state = self.emulator.state();
        state.opportunity("Sandbox", opportunity).expect("seeded").related_entity_identifiers.solutions.clone()
    }

    fn review(&self, status: ReviewStatus) {
        let change = LifeCycleChange { review_status: Some(status), ..LifeCycleChange::default() };
        self.emulator.set_life_cycle("Sandbox", "O3000002", change).expect("seeded");
    }
}

/// Submitted, then in review, then approved: held at each recheck (never dead-lettered, never
/// counted an attempt), then done by the first recheck after the approval. Both error list codes
/// alike: the read decides.
#[tokio::test]
async fn a_request_under_review_is_held_then_done_once_the_review_ends() {
    for (suffix, code) in ERROR_LIST_CODES {
        let name = &format!("holds-review-{suffix}");
        let mut w = world(name, code, &[]).await;
        w.send("O3000002", "S-3000021").await;
        w.pump_until("held while submitted", |w| !w.outcomes("held").is_empty()).await;
        w.review(ReviewStatus::InReview);
        let seen = w.outcomes("held").len();
        w.pump_until("held again while in review", |w| w.outcomes("held").len() > seen).await;
        let held = w.outcomes("held");
        assert!(held.iter().all(|l| l["held_for"] == "under_review"), "{held:#?}");
        w.review(ReviewStatus::Approved);
        w.pump_until("done after the approval", |w| !w.outcomes("disassociated").is_empty()).await;
        assert_eq!(w.solutions("O3000002"), ["S-3000022"]);
        let state = w.emulator.state();
        let disassociations = &state.operations["DisassociateOpportunity"];
        assert_eq!(
            disassociations.errors.get("ValidationException").copied(),
            Some(1),
            "{name}: one write refused under review; each recheck read first"
        );
        assert_eq!(disassociations.successes, 1);
        assert!(w.moto.drain(&w.queues.dlq_url).await.is_empty(), "{name}: nothing dead-lettered");
        assert_eq!(w.moto.depth(&w.queues.work_url).await, 0, "{name}: nothing left waiting");
    }
}

/// Both error list codes alike: the read decides.
#[tokio::test]
async fn a_request_on_a_rejected_opportunity_is_dead_lettered_at_its_first_receive() {
    for (suffix, code) in ERROR_LIST_CODES {
        let name = &format!("holds-rejected-{suffix}");
        let mut w = world(name, code, &[]).await;
        w.send("O3000004", "S-3000041").await;
        w.pump_until("dead-lettered", |w| !w.outcomes("dead_lettered").is_empty()).await;
        let letters = w.moto.drain(&w.queues.dlq_url).await;
        assert_eq!(letters.len(), 1, "{name}");
        let attribute = |name: &str| letters[0].message_attributes().unwrap()[name].string_value().unwrap().to_owned();
        assert!(
            attribute("ErrorMessage").contains("rejected by AWS's review and is read-only"),
            "{name}: {}",
            attribute("ErrorMessage")
        );
        assert_eq!(attribute("ErrorCode"), "OpportunityRejected", "{name}");
        let state = w.emulator.state();
        let writes = &state.operations["DisassociateOpportunity"];
        assert_eq!(
            (writes.successes, writes.calls),
            (0, 1),
            "{name}: dead-lettered at its first receive, after its one write was refused"
        );
        assert!(w.outcomes("held").is_empty(), "{name}: never held");
        assert_eq!(w.solutions("O3000004"), ["S-3000041", "S-3000042"]);
    }
}

/// A retention of 6 s and holds of at most 2 s: held past 4 s, the request is dead-lettered with how
/// long it waited, before SQS could have deleted it.
#[tokio::test]
async fn a_request_held_past_the_bound_is_dead_lettered_still_under_review() {
    let mut w =
        world("holds-bound", ReviewErrorCode::ActionNotPermitted, &[("WORK_QUEUE_RETENTION_SECONDS", "6")]).await;
    w.send("O3000002", "S-3000021").await;
    w.pump_until("dead-lettered past the bound", |w| !w.outcomes("dead_lettered").is_empty()).await;
    let letters = w.moto.drain(&w.queues.dlq_url).await;
    assert_eq!(letters.len(), 1);
    let message = letters[0].message_attributes().unwrap()["ErrorMessage"].string_value().unwrap().to_owned();
    assert!(message.starts_with("still under review after"), "{message}");
    assert!(!w.outcomes("held").is_empty(), "held before");
    assert_eq!(w.moto.depth(&w.queues.work_url).await, 0);
}
