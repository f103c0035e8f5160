//! A poisoned write-slots table cannot stall the stack, end to end: the built worker, two instances,
//! moto's DynamoDB holding an item whose every number is out of bounds (times an hour ahead, a
//! stretch of u64::MAX, a number past u64, another type, a day's budget counting writes an hour
//! ahead and past its cap) beside an attribute the pacer does not own. Every request lands, none is
//! dead-lettered, the item is repaired with a WARN saying what was found and what it became, and the
//! other attribute is left as it was.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::{
    Function, Moto, RuntimeApi, TEST_KEYS, function_env, now_ms, pump_until_drained, solutions_backlog,
    solutions_emulator,
};
use aws_sdk_dynamodb::types::AttributeValue;
use opportunity_disassociator::aws::write_slots::ITEM_KEY;
use partner_central_emulator::DailyQuotaConfig;

const MESSAGES: usize = 20;
const HOUR_MS: u64 = 3_600_000;

fn opportunity(i: usize) -> (String, String) {
    (format!("O70000{i:02}"), format!("S-70000{i:02}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_drain_through_a_table_whose_every_number_is_poisoned() {
    let opportunities: Vec<_> = (0..MESSAGES).map(opportunity).collect();
    let emulator = solutions_emulator(&opportunities, DailyQuotaConfig::default()).await;
    let moto = Moto::start().await;
    let table = moto.write_slots_table("write-slots-poisoned").await;
    let hour_ahead = (now_ms() + HOUR_MS).to_string();
    let budget = AttributeValue::M(HashMap::from([
        (hour_ahead.clone(), AttributeValue::N("7".into())),
        ("x".to_owned(), AttributeValue::S("seven".into())),
    ]));
    let other = AttributeValue::M(HashMap::from([(hour_ahead.clone(), AttributeValue::N("7".into()))]));
    let poisoned = HashMap::from([
        ("pk".to_owned(), AttributeValue::S(ITEM_KEY.into())),
        ("next_ms".to_owned(), AttributeValue::N(hour_ahead.clone())),
        ("spacing_ms".to_owned(), AttributeValue::N(u64::MAX.to_string())),
        ("stretched_ms".to_owned(), AttributeValue::S(hour_ahead.clone())),
        ("budget".to_owned(), budget),
        ("held_turn_ms".to_owned(), AttributeValue::N((now_ms() + 1_000 * HOUR_MS).to_string())),
        ("another_feature".to_owned(), other.clone()),
    ]);
    let dynamodb = moto.dynamodb();
    dynamodb.put_item().table_name(&table).set_item(Some(poisoned)).send().await.expect("poison the item");

    let queues = solutions_backlog(&moto, "poisoned", &opportunities).await;
    let settings = [
        ("DEAD_LETTER_QUEUE_URL", queues.dlq_url.clone()),
        ("MAX_RECEIVE_COUNT", "3".into()),
        ("WRITE_SLOTS_TABLE", table.clone()),
        ("ACCOUNT_WRITES_PER_SECOND", "10".into()),
        ("PARTNER_CENTRAL_WRITES_PER_SECOND", "5".into()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
    ];
    let env = function_env(&TEST_KEYS, &emulator, Some(&moto), &settings);
    let (a, b) = (RuntimeApi::start().await, RuntimeApi::start().await);
    let functions = [Function::start(&a, &env), Function::start(&b, &env)];
    let within = Duration::from_secs(120);
    tokio::join!(pump_until_drained(&moto, &queues, &a, within), pump_until_drained(&moto, &queues, &b, within));

    let landed = (0..MESSAGES)
        .filter(|&i| {
            let (id, solution) = opportunity(i);
            emulator.state().disassociation_count("Sandbox", &id, "Solutions", &solution) == 1
        })
        .count();
    assert_eq!(landed, MESSAGES, "every request landed once");
    assert!(moto.drain(&queues.dlq_url).await.is_empty(), "nothing dead-lettered");

    let items = dynamodb.scan().table_name(&table).consistent_read(true).send().await.unwrap().items.unwrap();
    let [item] = items.as_slice() else { panic!("one item: {items:?}") };
    let now_ms = now_ms();
    let next_ms: u64 = item["next_ms"].as_n().unwrap().parse().expect("next_ms is a number again");
    assert!(next_ms <= now_ms + 12_600, "next_ms within bounds: {next_ms}, now {now_ms}");
    // A throttled answer during the drain may have stretched the spacing since: within the cap all the same.
    let spacing_ms: u64 = item["spacing_ms"].as_n().unwrap().parse().unwrap();
    assert!(spacing_ms <= 1_680, "the stretch held to its cap, 16 times 105 ms: {spacing_ms}");
    if let Some(at) = item.get("stretched_ms") {
        let at_ms: u64 = at.as_n().expect("a number again").parse().unwrap();
        assert!(at_ms <= now_ms, "{at_ms}");
    }
    assert_eq!(item["another_feature"], other, "an attribute the pacer does not own left as it was");
    let counts = item["budget"].as_m().expect("the budget's map");
    assert!(!counts.contains_key(&hour_ahead) && !counts.contains_key("x"), "{counts:?}");
    let counted: u64 = counts.values().map(|n| n.as_n().unwrap().parse::<u64>().unwrap()).sum();
    assert!(counted >= MESSAGES as u64, "every write counted: {counts:?}");
    let turn: u64 = item["held_turn_ms"].as_n().unwrap().parse().unwrap();
    assert!(turn <= now_ms, "the turn a thousand hours ahead became now: {turn}");

    // Each value was repaired once, by one instance or the other, and said so.
    let repairs = |attribute: &str| -> Vec<String> {
        functions
            .iter()
            .flat_map(Function::lines)
            .filter(|l| l.contains("out of bounds: repaired") && l.contains(&format!("\"attribute\":\"{attribute}\"")))
            .collect()
    };
    let repaired = |attribute: &str| repairs(attribute).len();
    let started = tokio::time::Instant::now();
    let attributes =
        ["next_ms", "spacing_ms", "stretched_ms", &format!("budget.{hour_ahead}"), "budget.x", "held_turn_ms"];
    while attributes.iter().any(|a| repaired(a) == 0) {
        assert!(started.elapsed() < Duration::from_secs(10), "no repair logged: {:?}", functions[0].lines());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for attribute in attributes {
        assert_eq!(repaired(attribute), 1, "{attribute} repaired once, not fought over: {:#?}", repairs(attribute));
    }
    let warn = functions.iter().flat_map(Function::lines).find(|l| l.contains("\"attribute\":\"spacing_ms\"")).unwrap();
    assert!(warn.contains(&format!("\"found\":\"{}\"", u64::MAX)) && warn.contains("\"became\":\"1680\""), "{warn}");
    assert!(
        functions.iter().flat_map(Function::lines).any(|l| l.contains("\"WriteSlotRepairs\"")),
        "the repairs counted in the metrics"
    );
}
