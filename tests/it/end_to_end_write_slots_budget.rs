//! The day's write budget, end to end: the built worker, moto's DynamoDB holding the write slots, the
//! emulator enforcing a rolling daily quota scaled to 40 s. The stack stops writing when its budget
//! is spent, before the service refuses anything, and says until when; a budget that another tool of
//! the account spent is learned from the throttled answers, recorded for every instance, and probed
//! by one write at a time. A write the service refused takes no room in the budget.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use opportunity_disassociator::aws::write_slots::ITEM_KEY;
use partner_central_emulator::{DailyQuotaConfig, RollingQuotaConfig, RunningEmulator};

use crate::common::{
    Function, Moto, Queues, RuntimeApi, TEST_KEYS, function_env, now_ms, pump_once, solutions_backlog,
    solutions_emulator,
};

const MESSAGES: usize = 20;
const TIMEOUT: Duration = Duration::from_secs(60);
const WINDOW_MS: u64 = 40_000;

fn opportunity(i: usize) -> (String, String) {
    (format!("O80000{i:02}"), format!("S-80000{i:02}"))
}

/// The emulator at 10 writes/s (a bucket of 1) and `cap` writes per 40 s.
async fn emulator(cap: u64) -> RunningEmulator {
    let opportunities: Vec<_> = (0..MESSAGES).map(opportunity).collect();
    let daily_quotas = DailyQuotaConfig { write: Some(RollingQuotaConfig { cap, window_seconds: 40.0 }), read: None };
    solutions_emulator(&opportunities, daily_quotas).await
}

async fn backlog(moto: &Moto, name: &str, messages: usize) -> Queues {
    let opportunities: Vec<_> = (0..messages).map(opportunity).collect();
    solutions_backlog(moto, name, &opportunities).await
}

/// A stack of two instances whose budget is `per_window` writes per 40 s.
fn env(
    emulator: &RunningEmulator,
    moto: &Moto,
    queues: &Queues,
    table: &str,
    per_window: u64,
) -> Vec<(&'static str, String)> {
    let settings = [
        ("DEAD_LETTER_QUEUE_URL", queues.dlq_url.clone()),
        ("MAX_RECEIVE_COUNT", "3".into()),
        ("WRITE_SLOTS_TABLE", table.to_owned()),
        ("ACCOUNT_WRITES_PER_SECOND", "10".into()),
        ("MAXIMUM_CONCURRENCY", "2".into()),
        ("ACCOUNT_WRITES_PER_DAY", per_window.to_string()),
        ("WRITE_BUDGET_WINDOW_SECONDS", "40".into()),
        // Half the window, as the day's real hold is half of it: turns no further than 1.5 windows ahead.
        ("MAX_HOLD_SECONDS", "20".into()),
    ];
    function_env(&TEST_KEYS, emulator, Some(moto), &settings)
}

fn landed(emulator: &RunningEmulator) -> usize {
    let state = emulator.state();
    (0..MESSAGES)
        .filter(|&i| {
            let (id, solution) = opportunity(i);
            state.disassociation_count("Sandbox", &id, "Solutions", &solution) == 1
        })
        .count()
}

/// Writes the emulator received.
fn calls(emulator: &RunningEmulator) -> u64 {
    emulator.state().operations.get("DisassociateOpportunity").map_or(0, |o| o.calls)
}

/// Writes the emulator refused for its daily quota.
fn refused_for_the_day(emulator: &RunningEmulator) -> u64 {
    emulator.state().operations.get("DisassociateOpportunity").map_or(0, |o| o.daily_quota_throttled)
}

/// The times the records refused for the budget were told to come back at (milliseconds since the epoch).
fn no_room_until(functions: &[&Function]) -> Vec<u64> {
    functions
        .iter()
        .flat_map(|f| f.lines())
        // Without a work queue to hold them in, they are handed back, saying until when.
        .filter(|l| l.contains("\"error_code\":\"HeldForBudget\""))
        .map(|l| {
            let (_, after) = l.split_once("no room until ").expect("the time in the message");
            let time = after.split([' ', '"']).next().expect("the time");
            let time = DateTime::from_str(time, Format::DateTime).unwrap_or_else(|e| panic!("{time}: {e}"));
            time.to_millis().unwrap() as u64
        })
        .collect()
}

async fn item(moto: &Moto, table: &str) -> HashMap<String, AttributeValue> {
    let key = AttributeValue::S(ITEM_KEY.into());
    let answer = moto.dynamodb().get_item().table_name(table).key("pk", key).consistent_read(true).send().await;
    answer.unwrap().item.expect("the slots item")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_stops_writing_when_its_budget_is_spent_and_says_until_when() {
    let emulator = emulator(8).await;
    let moto = Moto::start().await;
    let table = moto.write_slots_table("write-slots-budget").await;
    let queues = backlog(&moto, "budget", MESSAGES).await;
    let env = env(&emulator, &moto, &queues, &table, 8);
    let (a, b) = (RuntimeApi::start().await, RuntimeApi::start().await);
    let functions = [Function::start(&a, &env), Function::start(&b, &env)];
    let started_ms = now_ms();
    // A pass of each instance: the budget's 8 writes land, and every other record is refused for it.
    let mut refused = 0;
    let waiting = tokio::time::Instant::now();
    while landed(&emulator) < 8 || refused == 0 {
        assert!(waiting.elapsed() < Duration::from_secs(30), "{} landed, refused {refused}", landed(&emulator));
        let (pa, pb) =
            tokio::join!(pump_once(&moto, &queues, &a, 10, TIMEOUT), pump_once(&moto, &queues, &b, 10, TIMEOUT));
        refused += pa.failed + pb.failed;
    }
    // The budget's writes, not one more; an attempt refused by the per-second quota was given back.
    assert_eq!(landed(&emulator), 8, "the budget's writes, not one more");
    let throttled = emulator.state().operations["DisassociateOpportunity"].throttled;
    assert_eq!(calls(&emulator), 8 + throttled);
    assert_eq!(refused_for_the_day(&emulator), 0, "the service refused nothing for the day: the stack stopped first");
    assert!(moto.drain(&queues.dlq_url).await.is_empty(), "nothing dead-lettered");

    let until = no_room_until(&[&functions[0], &functions[1]]);
    assert_eq!(until.len(), refused, "every refused record said until when");
    let first_room = *until.iter().min().unwrap();
    // A window after the first write, at most a bucket (833 ms) later, and turns no further than a
    // window and a half ahead.
    assert!(first_room >= started_ms + WINDOW_MS, "{first_room} vs {started_ms}");
    assert!(until.iter().all(|&t| t <= now_ms() + WINDOW_MS * 3 / 2 + 1_000), "{until:?}");
    let mut distinct = until.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() > 1, "records refused together come back in turns: {until:?}");

    let item = item(&moto, &table).await;
    let counts = item["budget"].as_m().expect("the budget's counts");
    let counted: u64 = counts.values().map(|n| n.as_n().unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!(counted, 8, "{counts:?}");
    assert!(item.contains_key("held_turn_ms"));
    let gauges = functions
        .iter()
        .flat_map(Function::lines)
        .any(|l| l.contains("\"BudgetUsed\":8") && l.contains("\"BudgetLeft\":0"));
    assert!(gauges, "the gauges said the budget was spent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_spent_elsewhere_is_learned_from_the_throttles_and_probed_by_one_write() {
    let emulator = emulator(40).await;
    // Another tool of the account spent the window just before (as `POST /_emulator/daily-use` does).
    emulator.spend_daily(40, 0);
    let moto = Moto::start().await;
    let table = moto.write_slots_table("write-slots-spent").await;
    let queues = backlog(&moto, "spent", 10).await;
    let env = env(&emulator, &moto, &queues, &table, 40);
    let runtime = RuntimeApi::start().await;
    let function = Function::start(&runtime, &env);
    let pass = pump_once(&moto, &queues, &runtime, 10, TIMEOUT).await;
    assert_eq!(landed(&emulator), 0);
    assert_eq!(pass.failed, pass.received, "{pass:?}");
    // Throttled at the base spacing, then three in a row at a stretched one: learned. (A stretch the
    // table refuses as the same overload leaves the spacing at its base for a throttle or two.)
    let throttled = refused_for_the_day(&emulator);
    assert!((4..=8).contains(&throttled), "{throttled} writes refused before the spend was learned");
    assert!(function.lines().iter().any(|l| l.contains("taken as spent elsewhere")));
    let spent = item(&moto, &table).await;
    let spent_until: u64 = spent["spent_until_ms"].as_n().expect("recorded for every instance").parse().unwrap();
    assert!(spent_until <= now_ms() + WINDOW_MS / 24 + 1_000, "{spent_until}");
    assert!(!no_room_until(&[&function]).is_empty(), "the rest were refused for the budget");

    // When its time is up, one write probes it: refused again, the spend is recorded again.
    let waiting = tokio::time::Instant::now();
    while now_ms() <= spent_until {
        assert!(waiting.elapsed() < Duration::from_secs(5), "the spend's time is not up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pump_once(&moto, &queues, &runtime, 10, TIMEOUT).await;
    assert_eq!(refused_for_the_day(&emulator), throttled + 1, "one probe, not a write per record");
    let again: u64 = item_spent_until(&moto, &table).await;
    assert!(again > spent_until, "{again} after {spent_until}");
    assert!(moto.drain(&queues.dlq_url).await.is_empty(), "nothing dead-lettered");
    // Every write was refused, and each was given back: none takes room in the stack's budget.
    let counts = item(&moto, &table).await["budget"].as_m().expect("the budget's counts").clone();
    let counted: u64 = counts.values().map(|n| n.as_n().unwrap().parse::<u64>().unwrap()).sum();
    assert_eq!(counted, 0, "{} refused writes, counted {counts:?}", refused_for_the_day(&emulator));
}

async fn item_spent_until(moto: &Moto, table: &str) -> u64 {
    item(moto, table).await["spent_until_ms"].as_n().expect("spent_until_ms").parse().unwrap()
}
