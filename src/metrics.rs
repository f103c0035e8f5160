//! CloudWatch Embedded Metric Format: per invocation, one JSON log line per catalog with the count of
//! each outcome and the API latencies, and one with the throttled answers. No agent, no extra call:
//! CloudWatch Logs turns the lines into metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::request::Catalog;

/// What a record counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Counted {
    Disassociated,
    AlreadyDisassociated,
    DryRun,
    DeadLettered,
    Retried,
}

impl Counted {
    const ALL: [Counted; 5] =
        [Self::Disassociated, Self::AlreadyDisassociated, Self::DryRun, Self::DeadLettered, Self::Retried];

    fn metric(self) -> &'static str {
        match self {
            Self::Disassociated => "Disassociated",
            Self::AlreadyDisassociated => "AlreadyDisassociated",
            Self::DryRun => "DryRun",
            Self::DeadLettered => "DeadLettered",
            Self::Retried => "Retried",
        }
    }
}

/// The catalog dimension of a record whose request could not be decoded.
const NO_CATALOG: &str = "None";

#[derive(Debug, Default)]
struct PerCatalog {
    counts: BTreeMap<Counted, u64>,
    latencies_ms: Vec<f64>,
}

/// The metrics of one invocation, gathered from concurrently processed records.
#[derive(Debug, Default)]
pub struct InvocationMetrics {
    by_catalog: Mutex<BTreeMap<&'static str, PerCatalog>>,
}

impl InvocationMetrics {
    pub fn count(&self, catalog: Option<Catalog>, counted: Counted) {
        let mut map = self.lock();
        *map.entry(catalog.map_or(NO_CATALOG, Catalog::as_str)).or_default().counts.entry(counted).or_default() += 1;
    }

    /// A record counted as `from` turned out to be `to` after all.
    pub fn recount(&self, catalog: Option<Catalog>, from: Counted, to: Counted) {
        let mut map = self.lock();
        let counts = &mut map.entry(catalog.map_or(NO_CATALOG, Catalog::as_str)).or_default().counts;
        if let Some(n) = counts.get_mut(&from) {
            *n = n.saturating_sub(1);
        }
        *counts.entry(to).or_default() += 1;
    }

    pub fn latency(&self, catalog: Catalog, millis: f64) {
        self.lock().entry(catalog.as_str()).or_default().latencies_ms.push(millis);
    }

    /// The EMF lines of this invocation: one per catalog seen, and one for throttling when any.
    pub fn emf_lines(&self, namespace: &str, service: &str, throttled: u64, timestamp_ms: u64) -> Vec<Value> {
        let map = self.lock();
        let mut lines = Vec::new();
        for (catalog, per) in map.iter() {
            let mut metrics: Vec<Value> =
                Counted::ALL.iter().map(|c| json!({"Name": c.metric(), "Unit": "Count"})).collect();
            let mut line = json!({
                "Service": service,
                "Catalog": catalog,
            });
            for counted in Counted::ALL {
                line[counted.metric()] = json!(per.counts.get(&counted).copied().unwrap_or(0));
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
        if throttled > 0 {
            lines.push(json!({
                "_aws": {
                    "Timestamp": timestamp_ms,
                    "CloudWatchMetrics": [{
                        "Namespace": namespace,
                        "Dimensions": [["Service"]],
                        "Metrics": [{"Name": "Throttled", "Unit": "Count"}],
                    }],
                },
                "Service": service,
                "Throttled": throttled,
            }));
        }
        lines
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, PerCatalog>> {
        self.by_catalog.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_catalog_with_every_outcome_and_latency() {
        let metrics = InvocationMetrics::default();
        metrics.count(Some(Catalog::Sandbox), Counted::Disassociated);
        metrics.count(Some(Catalog::Sandbox), Counted::Disassociated);
        metrics.count(Some(Catalog::Sandbox), Counted::Retried);
        metrics.latency(Catalog::Sandbox, 12.5);
        metrics.count(None, Counted::DeadLettered);
        let lines = metrics.emf_lines("Ns", "svc", 3, 1_700_000_000_000);
        assert_eq!(lines.len(), 3);
        let none = &lines[0];
        assert_eq!((none["Catalog"].as_str(), none["DeadLettered"].as_u64()), (Some("None"), Some(1)));
        let sandbox = &lines[1];
        assert_eq!(sandbox["Catalog"], "Sandbox");
        assert_eq!(sandbox["Disassociated"], 2);
        assert_eq!(sandbox["Retried"], 1);
        assert_eq!(sandbox["AlreadyDisassociated"], 0);
        assert_eq!(sandbox["ApiLatency"], json!([12.5]));
        let directive = &sandbox["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Ns");
        assert_eq!(directive["Dimensions"], json!([["Service"], ["Service", "Catalog"]]));
        let names: Vec<&str> =
            directive["Metrics"].as_array().unwrap().iter().filter_map(|m| m["Name"].as_str()).collect();
        assert!(names.contains(&"ApiLatency") && names.contains(&"Disassociated"));
        assert_eq!(sandbox["_aws"]["Timestamp"], 1_700_000_000_000u64);
        assert_eq!(lines[2]["Throttled"], 3);
        assert_eq!(lines[2]["Service"], "svc");
    }

    #[test]
    fn a_record_recounted_moves_from_one_count_to_the_other() {
        let metrics = InvocationMetrics::default();
        metrics.count(None, Counted::Retried);
        metrics.count(None, Counted::Retried);
        metrics.recount(None, Counted::Retried, Counted::DeadLettered);
        let line = &metrics.emf_lines("Ns", "svc", 0, 0)[0];
        assert_eq!((line["Catalog"].as_str(), line["Retried"].as_u64()), (Some("None"), Some(1)));
        assert_eq!(line["DeadLettered"], 1);
    }

    #[test]
    fn an_idle_invocation_writes_nothing() {
        assert!(InvocationMetrics::default().emf_lines("Ns", "svc", 0, 0).is_empty());
    }
}
