//! CloudWatch Embedded Metric Format: per invocation, one JSON log line per catalog with the count of
//! each outcome, of the reads and the API latencies, and one with the throttled answers. No agent, no extra call:
//! CloudWatch Logs turns the lines into metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::domain::outcome::{Done, HeldFor, Hold, Outcome};
use crate::domain::request::Catalog;

/// The count of the reads (`GetOpportunity`; the warm-up's is not an invocation's), listed after
/// the outcomes' in a catalog's line.
const READS: &str = "Reads";

/// The metric an outcome counts in. Dashboards and alarms read these names: they never change.
pub fn metric_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Done(Done::Disassociated) => "Disassociated",
        Outcome::Done(Done::AlreadyDisassociated(_)) => "AlreadyDisassociated",
        Outcome::Done(Done::NotAssociated(_)) => "NotAssociated",
        Outcome::Done(Done::Replaced) => "Replaced",
        Outcome::Done(Done::AlreadyReplaced) => "AlreadyReplaced",
        Outcome::Done(Done::DryRun) => "DryRun",
        // Counted once where it was held, not again each time it comes back early to wait on.
        Outcome::Held(Hold { continued: true, .. }) => "StillHeld",
        Outcome::Held(hold) => match hold.cause {
            HeldFor::Budget => "HeldForBudget",
            HeldFor::UnderReview => "HeldForReview",
        },
        Outcome::DeadLettered(_) => "DeadLettered",
        Outcome::Failed(_) => "Retried",
    }
}

/// The counts of a catalog's line, by metric name, in the order the lines list them: each outcome's,
/// then the reads.
fn count_metrics() -> impl Iterator<Item = &'static str> {
    Outcome::every_kind().into_iter().map(|outcome| metric_name(&outcome)).chain([READS])
}

/// The catalog dimension of a record whose request could not be decoded.
const NO_CATALOG: &str = "None";

#[derive(Debug, Default)]
struct PerCatalog {
    counts: BTreeMap<&'static str, u64>,
    latencies_ms: Vec<f64>,
}

/// The metrics of one invocation, gathered from concurrently processed records.
#[derive(Debug, Default)]
pub struct InvocationMetrics {
    by_catalog: Mutex<BTreeMap<&'static str, PerCatalog>>,
    /// The earliest `HeldSince` of the records held in the invocation (epoch ms).
    oldest_held_since_ms: Mutex<Option<u64>>,
}

impl InvocationMetrics {
    pub fn count(&self, catalog: Option<Catalog>, outcome: &Outcome) {
        if let Outcome::Held(hold) = outcome
            && let Some(since) = hold.since_ms
        {
            let mut oldest = self.oldest_held_since_ms.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *oldest = Some(oldest.map_or(since, |o| o.min(since)));
        }
        let mut map = self.lock();
        *map.entry(catalog.map_or(NO_CATALOG, Catalog::as_str))
            .or_default()
            .counts
            .entry(metric_name(outcome))
            .or_default() += 1;
    }

    /// One read of an opportunity (`GetOpportunity`).
    pub fn read(&self, catalog: Catalog) {
        *self.lock().entry(catalog.as_str()).or_default().counts.entry(READS).or_default() += 1;
    }

    pub fn latency(&self, catalog: Catalog, millis: f64) {
        self.lock().entry(catalog.as_str()).or_default().latencies_ms.push(millis);
    }

    /// The EMF lines of this invocation: one per catalog seen, and one for throttling when any.
    pub fn emf_lines(&self, namespace: &str, service: &str, throttled: u64, timestamp_ms: u64) -> Vec<Value> {
        let map = self.lock();
        let mut lines = Vec::new();
        for (catalog, per) in map.iter() {
            let mut metrics: Vec<Value> = count_metrics().map(|name| json!({"Name": name, "Unit": "Count"})).collect();
            let mut line = json!({
                "Service": service,
                "Catalog": catalog,
            });
            for name in count_metrics() {
                line[name] = json!(per.counts.get(name).copied().unwrap_or(0));
            }
            if !per.latencies_ms.is_empty() {
                metrics.push(json!({"Name": "ApiLatency", "Unit": "Milliseconds"}));
                line["ApiLatency"] = json!(per.latencies_ms);
            }
            line["_aws"] = json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": [["Service"], ["Service", "Catalog"]],
                    "Metrics": metrics,
                }],
            });
            lines.push(line);
        }
        let oldest = *self.oldest_held_since_ms.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(since) = oldest {
            // A gauge of the stack's oldest held record: read with the Maximum statistic (an alarm
            // before the age bound dead-letters it); nothing is emitted while nothing runs.
            let age = timestamp_ms.saturating_sub(since) / 1000;
            lines.push(service_line(namespace, service, &[("OldestHeldAgeSeconds", "Seconds", age)], timestamp_ms));
        }
        if throttled > 0 {
            lines.push(service_line(namespace, service, &[("Throttled", "Count", throttled)], timestamp_ms));
        }
        lines
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, PerCatalog>> {
        self.by_catalog.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The line of an invocation's repairs of the write-slot table (`WriteSlotRepairs`), when it made
/// any: values out of bounds there, which no instance in order writes, so any count is worth a look.
pub fn repairs_line(namespace: &str, service: &str, repairs: u64, timestamp_ms: u64) -> Option<Value> {
    (repairs > 0).then(|| service_line(namespace, service, &[("WriteSlotRepairs", "Count", repairs)], timestamp_ms))
}

/// The line of the day's write budget (`BudgetUsed`, `BudgetLeft`: the window's writes, account-wide,
/// as this invocation last read them): gauges, so read with the Maximum statistic, not Sum.
pub fn budget_line(namespace: &str, service: &str, (used, left): (u64, u64), timestamp_ms: u64) -> Value {
    service_line(namespace, service, &[("BudgetUsed", "Count", used), ("BudgetLeft", "Count", left)], timestamp_ms)
}

/// A line of metrics (`name`, `unit`, `value`) with the dimension `Service` alone.
fn service_line(namespace: &str, service: &str, metrics: &[(&str, &str, u64)], timestamp_ms: u64) -> Value {
    let names: Vec<Value> = metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect();
    let mut line = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": [["Service"]], "Metrics": names}],
        },
        "Service": service,
    });
    for (name, _, value) in metrics {
        line[*name] = json!(value);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::outcome::Failure;

    #[test]
    fn one_line_per_catalog_with_every_outcome_and_latency() {
        let metrics = InvocationMetrics::default();
        let failure = || Failure::new("x", "y");
        metrics.count(Some(Catalog::Sandbox), &Outcome::Done(Done::Disassociated));
        metrics.count(Some(Catalog::Sandbox), &Outcome::Done(Done::Disassociated));
        metrics.count(Some(Catalog::Sandbox), &Outcome::Failed(failure()));
        metrics.count(Some(Catalog::Sandbox), &Outcome::Done(Done::Replaced));
        metrics.count(Some(Catalog::Sandbox), &Outcome::Done(Done::AlreadyReplaced));
        metrics.read(Catalog::Sandbox);
        metrics.read(Catalog::Sandbox);
        metrics.latency(Catalog::Sandbox, 12.5);
        metrics.count(None, &Outcome::DeadLettered(failure()));
        let lines = metrics.emf_lines("Ns", "svc", 3, 1_700_000_000_000);
        assert_eq!(lines.len(), 3);
        let none = &lines[0];
        assert_eq!((none["Catalog"].as_str(), none["DeadLettered"].as_u64()), (Some("None"), Some(1)));
        let sandbox = &lines[1];
        assert_eq!(sandbox["Catalog"], "Sandbox");
        assert_eq!(sandbox["Disassociated"], 2);
        assert_eq!(sandbox["Retried"], 1);
        assert_eq!(sandbox["AlreadyDisassociated"], 0);
        assert_eq!((sandbox["Replaced"].as_u64(), sandbox["AlreadyReplaced"].as_u64()), (Some(1), Some(1)));
        assert_eq!(sandbox["Reads"], 2);
        assert_eq!(sandbox["ApiLatency"], json!([12.5]));
        let directive = &sandbox["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Ns");
        assert_eq!(directive["Dimensions"], json!([["Service"], ["Service", "Catalog"]]));
        let names: Vec<&str> =
            directive["Metrics"].as_array().unwrap().iter().filter_map(|m| m["Name"].as_str()).collect();
        for name in ["ApiLatency", "Disassociated", "Replaced", "AlreadyReplaced", "Reads"] {
            assert!(names.contains(&name), "{name}");
        }
        assert_eq!(sandbox["_aws"]["Timestamp"], 1_700_000_000_000u64);
        assert_eq!(lines[2]["Throttled"], 3);
        assert_eq!(lines[2]["Service"], "svc");
    }

    #[test]
    fn every_outcome_counts_in_a_metric_of_its_own_and_every_line_lists_them_all() {
        let names: Vec<&str> = count_metrics().collect();
        assert_eq!(
            names,
            [
                "Disassociated",
                "AlreadyDisassociated",
                "NotAssociated",
                "Replaced",
                "AlreadyReplaced",
                "DryRun",
                "HeldForBudget",
                "HeldForReview",
                "StillHeld",
                "DeadLettered",
                "Retried",
                "Reads"
            ]
        );
        let kinds: std::collections::BTreeSet<&str> = Outcome::every_kind().iter().map(metric_name).collect();
        assert_eq!(kinds.len(), Outcome::every_kind().len(), "one of each kind");
    }

    #[test]
    fn held_records_count_by_cause_and_the_oldest_gives_its_age() {
        let metrics = InvocationMetrics::default();
        let held = |hold: Hold, since| Outcome::Held(Hold { since_ms: Some(since), ..hold });
        metrics.count(Some(Catalog::Sandbox), &held(Hold::budget(0), 40_000));
        metrics.count(Some(Catalog::Sandbox), &held(Hold::under_review(0, "Submitted"), 10_000));
        metrics.count(Some(Catalog::Sandbox), &held(Hold::under_review(0, "In review"), 70_000));
        metrics.count(Some(Catalog::Sandbox), &held(Hold::continued(HeldFor::UnderReview, 0), 70_000));
        let lines = metrics.emf_lines("Ns", "svc", 0, 100_000);
        let count = |name: &str| lines[0][name].as_u64();
        assert_eq!((count("HeldForBudget"), count("HeldForReview"), count("StillHeld")), (Some(1), Some(2), Some(1)));
        assert_eq!(lines[1]["OldestHeldAgeSeconds"], 90);
        assert_eq!(lines[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], "OldestHeldAgeSeconds");
    }

    /// The names the template's alarms and dashboard read in the stack's namespace (`MetricsNamespace`):
    /// an alarm's `MetricName` under `Namespace: !Ref MetricsNamespace`, and a dashboard row
    /// `["${MetricsNamespace}", "Name", ...]` or `[".", "Name", ...]` after one of those.
    fn read_by_the_template(template: &str) -> std::collections::BTreeSet<String> {
        let mut names = std::collections::BTreeSet::new();
        let (mut ours, mut alarm_in_ours) = (false, false);
        let quoted = |rest: &str| rest.split('"').next().unwrap_or_default().to_owned();
        for line in template.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix("MetricName: ").filter(|_| alarm_in_ours) {
                names.insert(name.to_owned());
            }
            alarm_in_ours = line == "Namespace: !Ref MetricsNamespace";
            if let Some((_, rest)) = line.split_once(r#"["${MetricsNamespace}", ""#) {
                ours = true;
                names.insert(quoted(rest));
            } else if line.contains(r#"["AWS/"#) {
                ours = false;
            } else if let Some(rest) = line.strip_prefix(r#"[".", ""#).filter(|_| ours) {
                names.insert(quoted(rest));
            }
        }
        names
    }

    /// A metric renamed or dropped on one side would leave a graph empty and an alarm silent.
    #[test]
    fn the_template_reads_only_metrics_the_worker_writes() {
        let metrics = InvocationMetrics::default();
        for outcome in Outcome::every_kind() {
            metrics.count(Some(Catalog::Sandbox), &outcome);
        }
        metrics.count(Some(Catalog::Sandbox), &Outcome::Held(Hold { since_ms: Some(1), ..Hold::budget(0) }));
        metrics.read(Catalog::Sandbox);
        metrics.latency(Catalog::Sandbox, 1.0);
        let mut lines = metrics.emf_lines("Ns", "svc", 1, 100_000);
        lines.extend(repairs_line("Ns", "svc", 1, 100_000));
        lines.push(budget_line("Ns", "svc", (1, 1), 100_000));
        let written: std::collections::BTreeSet<String> = lines
            .iter()
            .flat_map(|line| line["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap().clone())
            .map(|metric| metric["Name"].as_str().unwrap().to_owned())
            .collect();
        let read = read_by_the_template(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml")));
        assert!(read.contains("StillHeld") && read.contains("OldestHeldAgeSeconds") && read.len() > 15, "{read:?}");
        let unwritten: Vec<&String> = read.difference(&written).collect();
        assert!(unwritten.is_empty(), "the template reads {unwritten:?}, which the worker never writes");
    }

    #[test]
    fn an_idle_invocation_writes_nothing() {
        assert!(InvocationMetrics::default().emf_lines("Ns", "svc", 0, 0).is_empty());
    }

    #[test]
    fn repairs_of_the_write_slot_table_have_a_line_of_their_own_when_there_are_any() {
        assert_eq!(repairs_line("Ns", "svc", 0, 0), None);
        let line = repairs_line("Ns", "svc", 3, 1_700_000_000_000).unwrap();
        assert_eq!(line["WriteSlotRepairs"], 3);
        assert_eq!(line["Service"], "svc");
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], "WriteSlotRepairs");
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Ns");
    }

    #[test]
    fn the_budget_gauges_have_a_line_of_their_own() {
        let line = budget_line("Ns", "svc", (30, 10), 1_700_000_000_000);
        assert_eq!((line["BudgetUsed"].as_u64(), line["BudgetLeft"].as_u64()), (Some(30), Some(10)));
        let names: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["Name"].as_str())
            .collect();
        assert_eq!(names, ["BudgetUsed", "BudgetLeft"]);
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Service"]]));
    }
}
