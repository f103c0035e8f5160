//! The plan: the requests of a bulk job, one request document a line (JSON Lines), each line exactly
//! the message body the work queue takes ([`message_body`]), so a plan can be read, diffed, cut and
//! sent by any tool. Every command that makes a plan writes it with [`write()`] and reports it with a
//! [`Summary`]; [`read`] decodes it back by the same rules as every other request.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use opportunity_disassociator::aws::work_queue::message_body;
use opportunity_disassociator::domain::request::{DisassociationRequest, FieldError};
use opportunity_disassociator::time::in_words;
use sha2::{Digest, Sha256};

/// The account's daily write budget (Partner Central's quota): the default of `--writes-per-day`.
pub const WRITES_PER_DAY: u64 = 10_000;
/// The writes a second the stack makes by default (the template's `WriteQuotaPerSecond`).
const WRITES_PER_SECOND: u64 = 1;

/// The writes one request costs: a removal is one `DisassociateOpportunity`; a replacement is an
/// `AssociateOpportunity` and then the removal.
pub fn writes(request: &DisassociationRequest) -> u64 {
    if request.replace_with.is_some() { 2 } else { 1 }
}

/// Writes the plan to `path` (`-`: standard output). A file is written beside its place and renamed
/// into it, so a failed write leaves no partial plan.
pub fn write(path: &Path, requests: &[DisassociationRequest]) -> io::Result<()> {
    let mut text = String::new();
    for request in requests {
        text.push_str(&message_body(request));
        text.push('\n');
    }
    if path == Path::new("-") {
        return io::stdout().lock().write_all(text.as_bytes());
    }
    // A device or a pipe (`/dev/null`, `/dev/stdout`) is written in place: a rename would replace it.
    if fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return fs::OpenOptions::new().write(true).open(path)?.write_all(text.as_bytes());
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    fs::write(&partial, &text)?;
    fs::rename(&partial, path)
}

/// A line of a plan that is not a valid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFault {
    pub line: usize,
    pub errors: Vec<FieldError>,
}

/// A plan read back: its requests with their line numbers (1-based), and its digest.
pub struct Plan {
    pub requests: Vec<(usize, DisassociationRequest)>,
    pub sha256: String,
}

/// Reads a plan, decoding every line as a request document (empty lines are skipped). `Err` holds
/// every line at fault, so a hand-edited plan is sent whole or not at all.
pub fn read(text: &str) -> Result<Plan, Vec<LineFault>> {
    let mut requests = Vec::new();
    let mut faults = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let decoded = serde_json::from_str(line)
            .map_err(|e| vec![FieldError { field: "line", message: format!("is not JSON: {e}") }])
            .and_then(|doc| DisassociationRequest::from_document(&doc).map_err(|invalid| invalid.errors));
        match decoded {
            Ok(request) => requests.push((line_number, request)),
            Err(errors) => faults.push(LineFault { line: line_number, errors }),
        }
    }
    if !faults.is_empty() {
        return Err(faults);
    }
    Ok(Plan { requests, sha256: hex::encode(Sha256::digest(text.as_bytes())) })
}

/// What a plan holds and what it costs, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub removals: usize,
    pub replacements: usize,
    pub writes: u64,
}

impl Summary {
    pub fn of<'a>(requests: impl IntoIterator<Item = &'a DisassociationRequest>) -> Self {
        let mut summary = Self::default();
        for request in requests {
            match request.replace_with {
                Some(_) => summary.replacements += 1,
                None => summary.removals += 1,
            }
            summary.writes += writes(request);
        }
        summary
    }

    pub fn requests(&self) -> usize {
        self.removals + self.replacements
    }

    /// How long the writes take: the daily budget's days, and never less than the per-second pace.
    pub fn duration(&self, writes_per_day: u64) -> String {
        let by_budget = self.writes as f64 * 86_400.0 / writes_per_day.max(1) as f64;
        let by_pace = (self.writes / WRITES_PER_SECOND) as f64;
        let (seconds, bound) = if by_budget >= by_pace {
            (by_budget, format!("at {writes_per_day} writes a day"))
        } else {
            (by_pace, format!("at {WRITES_PER_SECOND} write/s"))
        };
        format!("about {} {bound}", in_words(Duration::from_secs(seconds.ceil() as u64)))
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests ({} removals, {} replacements), {} writes",
            self.requests(),
            self.removals,
            self.replacements,
            self.writes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(identifier: &str, replacement: Option<&str>) -> DisassociationRequest {
        let mut doc = json!({"Catalog": "Sandbox", "OpportunityIdentifier": "O1",
            "RelatedEntityType": "Solutions", "RelatedEntityIdentifier": identifier});
        if let Some(r) = replacement {
            doc["ReplaceWith"] = json!({"RelatedEntityType": "Solutions", "RelatedEntityIdentifier": r});
        }
        DisassociationRequest::from_document(&doc).unwrap()
    }

    #[test]
    fn a_plan_reads_back_as_the_requests_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.jsonl");
        let requests = vec![request("S-1", None), request("S-2", Some("S-3"))];
        write(&path, &requests).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().next().unwrap(), message_body(&requests[0]));
        let plan = read(&text).unwrap();
        let back: Vec<_> = plan.requests.into_iter().map(|(_, r)| r).collect();
        assert_eq!(back, requests);
        assert!(!dir.path().join("plan.jsonl.partial").exists());
    }

    #[test]
    fn a_pipe_is_written_in_place_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("plan.fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
        assert!(made.success());
        let reader = std::thread::spawn({
            let fifo = fifo.clone();
            move || fs::read_to_string(fifo).unwrap()
        });
        write(&fifo, &[request("S-1", None)]).unwrap();
        assert_eq!(reader.join().unwrap(), format!("{}\n", message_body(&request("S-1", None))));
        assert!(!fs::metadata(&fifo).unwrap().is_file(), "still a pipe, not a file renamed over it");
    }

    #[test]
    fn every_faulty_line_of_a_plan_is_named() {
        let good = message_body(&request("S-1", None));
        let text = format!("{good}\nnot json\n{good}\n{}\n", r#"{"Catalog":"Prod","OpportunityIdentifier":"X"}"#);
        let faults = read(&text).err().unwrap();
        assert_eq!(faults.iter().map(|f| f.line).collect::<Vec<_>>(), [2, 4]);
        let fields: Vec<_> = faults[1].errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["RelatedEntityType", "RelatedEntityIdentifier", "Catalog", "OpportunityIdentifier"]);
    }

    #[test]
    fn a_replacement_costs_two_writes() {
        let summary = Summary::of(&[request("S-1", None), request("S-2", Some("S-3"))]);
        assert_eq!(summary, Summary { removals: 1, replacements: 1, writes: 3 });
        assert_eq!(summary.to_string(), "2 requests (1 removals, 1 replacements), 3 writes");
    }

    #[test]
    fn the_duration_is_the_daily_budget_or_the_pace_whichever_is_longer() {
        let summary = Summary { removals: 10_000, replacements: 10_000, writes: 30_000 };
        assert_eq!(summary.duration(10_000), "about 3 d 0 h at 10000 writes a day");
        let small = Summary { removals: 100, replacements: 0, writes: 100 };
        assert_eq!(small.duration(10_000_000), "about 1 min 40 s at 1 write/s");
    }
}
