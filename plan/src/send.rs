//! Sending a plan to the stack's work queue: batches of ten, each refused entry sent again and, when
//! the queue keeps refusing it, reported; the plan lines sent recorded in a state file beside the
//! plan ([`Progress`]), so a rerun after an interruption sends only the rest.
//!
//! The bound: the stack carries out at most `--writes-per-day` writes a day, and the queue deletes a
//! message its retention outlives, unseen. A plan whose writes (a replacement is two) exceed what the
//! stack can carry out within the retention, less the messages already queued, is refused, unless it
//! is trickled: sent as room frees, the queue's depth read again every `--trickle-every`.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use opportunity_disassociator::aws::work_queue::{Entry, MAX_BATCH, SqsWorkQueue};
use opportunity_disassociator::domain::request::DisassociationRequest;
use opportunity_disassociator::time::in_words;

use crate::plan::{self, Plan, Summary, writes};

/// The work queue, as `send` needs it.
pub trait Queue {
    /// How long the queue keeps a message, and how many it holds now.
    fn depth(&self) -> impl Future<Output = Result<Depth, String>>;
    /// Queues one batch of at most [`MAX_BATCH`]; what became of each entry, in order.
    fn send(&self, requests: &[DisassociationRequest]) -> impl Future<Output = Result<Vec<Entry>, String>>;
}

/// The queue's retention and the messages it holds (visible, in flight and delayed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
    pub retention_seconds: u64,
    pub messages: u64,
}

impl Depth {
    /// The writes the stack can still take on before the queue's retention: retention x the daily
    /// budget, less the messages queued (each at least one write).
    pub fn room(&self, writes_per_day: u64) -> u64 {
        let capacity = u128::from(self.retention_seconds) * u128::from(writes_per_day) / 86_400;
        u64::try_from(capacity).unwrap_or(u64::MAX).saturating_sub(self.messages)
    }
}

/// The SQS adapter: the crate's work-queue adapter for the batches, and the queue's attributes.
pub struct SqsQueue {
    work: SqsWorkQueue,
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    pub fn new(sdk: &aws_config::SdkConfig, url: &str) -> Self {
        Self {
            work: SqsWorkQueue::new(sdk, url.to_owned()),
            client: aws_sdk_sqs::Client::new(sdk),
            url: url.to_owned(),
        }
    }
}

impl Queue for SqsQueue {
    async fn depth(&self) -> Result<Depth, String> {
        use aws_sdk_sqs::types::QueueAttributeName as Name;
        let answer = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(Name::MessageRetentionPeriod)
            .attribute_names(Name::ApproximateNumberOfMessages)
            .attribute_names(Name::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(Name::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| format!("GetQueueAttributes failed: {}", aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
        let attributes = answer.attributes();
        let number = |name: &Name| -> Result<u64, String> {
            let value = attributes.and_then(|a| a.get(name)).ok_or_else(|| format!("the queue did not give {name}"))?;
            value.parse().map_err(|_| format!("the queue gave {name} {value:?}, not a number"))
        };
        Ok(Depth {
            retention_seconds: number(&Name::MessageRetentionPeriod)?,
            messages: number(&Name::ApproximateNumberOfMessages)?
                + number(&Name::ApproximateNumberOfMessagesNotVisible)?
                + number(&Name::ApproximateNumberOfMessagesDelayed)?,
        })
    }

    async fn send(&self, requests: &[DisassociationRequest]) -> Result<Vec<Entry>, String> {
        self.work.send_entries(requests).await.map_err(|e| e.message)
    }
}

/// The plan lines already sent, read from and appended to the state file beside the plan. Its first
/// line is the plan's digest, so a state is never applied to another plan; then one line per answer
/// of the queue with the plan lines it took. A line cut short by a kill is not counted.
pub struct Progress {
    path: PathBuf,
    sha256: String,
    sent: HashSet<usize>,
    file: Option<File>,
}

impl Progress {
    /// The state file of a plan: beside it, its name and `.sent`.
    pub fn path_for(plan: &Path) -> PathBuf {
        let mut name = plan.as_os_str().to_owned();
        name.push(".sent");
        PathBuf::from(name)
    }

    pub fn load(path: PathBuf, sha256: &str) -> Result<Self, String> {
        let mut sent = HashSet::new();
        match fs::read_to_string(&path) {
            Ok(text) => {
                let mut lines = text.split_inclusive('\n').filter(|l| l.ends_with('\n'));
                let digest = lines.next().and_then(|l| l.trim_end().strip_prefix("plan-sha256 "));
                if digest != Some(sha256) {
                    return Err(format!(
                        "{} belongs to another plan (the plan changed since it was sent from): remove it to send this plan from its start",
                        path.display()
                    ));
                }
                for line in lines {
                    for number in line.split_whitespace() {
                        sent.insert(
                            number
                                .parse()
                                .map_err(|_| format!("{}: {number:?} is not a line number", path.display()))?,
                        );
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("reading {} failed: {e}", path.display())),
        }
        Ok(Self { path, sha256: sha256.to_owned(), sent, file: None })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_sent(&self, line: usize) -> bool {
        self.sent.contains(&line)
    }

    /// Records plan lines as sent, on disk before anything else is sent.
    fn record(&mut self, lines: &[usize]) -> Result<(), String> {
        if lines.is_empty() {
            return Ok(());
        }
        let failed = |e: io::Error| format!("writing {} failed: {e}", self.path.display());
        if self.file.is_none() {
            let exists = self.path.exists();
            let mut file = OpenOptions::new().create(true).append(true).open(&self.path).map_err(failed)?;
            if !exists {
                writeln!(file, "plan-sha256 {}", self.sha256).map_err(failed)?;
            }
            self.file = Some(file);
        }
        let text: Vec<String> = lines.iter().map(usize::to_string).collect();
        let file = self.file.as_mut().expect("opened above");
        file.write_all(format!("{}\n", text.join(" ")).as_bytes()).and_then(|()| file.sync_data()).map_err(failed)?;
        self.sent.extend(lines);
        Ok(())
    }
}

/// How `send` goes about it.
#[derive(Debug, Clone)]
pub struct Settings {
    pub writes_per_day: u64,
    /// Send what fits now and the rest as room frees, reading the queue's depth at this interval.
    pub trickle_every: Option<Duration>,
    /// Print what would be sent to `out`, and send nothing.
    pub dry_run: bool,
    /// How many times a batch's refused entries are sent, and the pause before the first retry
    /// (doubled each time).
    pub attempts: u32,
    pub retry_pause: Duration,
    /// Tests: end the process abruptly, as a kill would, after this many batches.
    pub abort_after_batches: Option<u64>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            writes_per_day: plan::WRITES_PER_DAY,
            trickle_every: None,
            dry_run: false,
            attempts: 5,
            retry_pause: Duration::from_millis(200),
            abort_after_batches: None,
        }
    }
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Every request of the plan is on the queue (or, in a dry run, would be sent).
    Done,
    /// The queue kept refusing these plan lines (line, why); the rest was sent.
    Refused(Vec<(usize, String)>),
}

/// Sends what of `plan` `progress` does not hold. `Err` stops it with nothing more sent (what was
/// sent is in `progress`); the report goes to `log`, a dry run's requests to `out`.
pub async fn send(
    queue: &impl Queue,
    plan: &Plan,
    progress: &mut Progress,
    settings: &Settings,
    out: &Path,
    log: &mut impl Write,
) -> Result<Ended, String> {
    let mut pending: Vec<&(usize, DisassociationRequest)> =
        plan.requests.iter().filter(|(line, _)| !progress.is_sent(*line)).collect();
    let already = plan.requests.len() - pending.len();
    let summary = Summary::of(pending.iter().map(|(_, r)| r));
    let say = |log: &mut dyn Write, text: String| {
        writeln!(log, "{text}").map_err(|e| format!("writing the report failed: {e}"))
    };
    say(log, format!("send: {} already sent (state: {}); to send: {summary}", already, progress.path().display()))?;
    if pending.is_empty() {
        return Ok(Ended::Done);
    }
    let mut depth = queue.depth().await?;
    let mut room = depth.room(settings.writes_per_day);
    say(
        log,
        format!(
            "queue: keeps a message {}, holds {} now; at {} writes a day the stack can take on {room} more writes before the retention",
            in_words(Duration::from_secs(depth.retention_seconds)),
            depth.messages,
            settings.writes_per_day
        ),
    )?;
    if summary.writes > room && settings.trickle_every.is_none() {
        return Err(format!(
            "refused: {} writes are more than the {room} the stack can carry out before the queue's retention deletes what waits \
             (retention x --writes-per-day, less the messages queued): send a smaller plan, raise the queue's retention \
             (14 days at most), or --trickle to send it as room frees; nothing was sent",
            summary.writes
        ));
    }
    if settings.dry_run {
        let round = fitting(&pending, room, depth.messages);
        let requests: Vec<DisassociationRequest> = pending[..round].iter().map(|(_, r)| r.clone()).collect();
        plan::write(out, &requests).map_err(|e| format!("writing {} failed: {e}", out.display()))?;
        let rest = if round < pending.len() {
            format!("; {} more as room frees (--trickle)", pending.len() - round)
        } else {
            String::new()
        };
        say(
            log,
            format!(
                "dry run: would send {} requests in {} batches{rest}; nothing sent",
                round,
                round.div_ceil(MAX_BATCH)
            ),
        )?;
        return Ok(Ended::Done);
    }

    let mut refused = Vec::new();
    let mut batches = 0u64;
    let mut sent = 0usize;
    loop {
        let round = fitting(&pending, room, depth.messages);
        for batch in pending[..round].chunks(MAX_BATCH) {
            let (taken, kept_refusing) = send_batch(queue, batch, progress, settings).await?;
            sent += taken;
            refused.extend(kept_refusing);
            batches += 1;
            if settings.abort_after_batches == Some(batches) {
                std::process::abort();
            }
            if batches.is_multiple_of(100) {
                say(log, format!("send: {sent} of {} sent", pending.len()))?;
            }
        }
        pending.drain(..round);
        let Some(every) = settings.trickle_every else { break };
        if pending.is_empty() {
            break;
        }
        say(
            log,
            format!(
                "trickle: {sent} sent, {} to go; reading the queue's depth again in {}",
                pending.len(),
                in_words(every)
            ),
        )?;
        tokio::time::sleep(every).await;
        depth = queue.depth().await?;
        room = depth.room(settings.writes_per_day);
    }
    say(log, format!("send: {sent} requests sent in {batches} batches; state: {}", progress.path().display()))?;
    if refused.is_empty() { Ok(Ended::Done) } else { Ok(Ended::Refused(refused)) }
}

/// How many of `pending`'s first requests fit in `room` writes; at least one when the queue is empty,
/// so a request larger than the whole room still goes (it is the only thing the stack has to do).
fn fitting(pending: &[&(usize, DisassociationRequest)], room: u64, queued: u64) -> usize {
    let mut total = 0;
    let count = pending.iter().take_while(|(_, r)| {
        total += writes(r);
        total <= room
    });
    let count = count.count();
    if count == 0 && queued == 0 { pending.len().min(1) } else { count }
}

/// One batch, its refused entries sent again up to `settings.attempts` times; each answer's taken
/// entries recorded at once. The count taken, and the entries still refused with the last reason.
async fn send_batch(
    queue: &impl Queue,
    batch: &[&(usize, DisassociationRequest)],
    progress: &mut Progress,
    settings: &Settings,
) -> Result<(usize, Vec<(usize, String)>), String> {
    let mut left: Vec<&(usize, DisassociationRequest)> = batch.to_vec();
    let mut pause = settings.retry_pause;
    let mut taken = 0;
    for attempt in 1..=settings.attempts.max(1) {
        let requests: Vec<DisassociationRequest> = left.iter().map(|(_, r)| r.clone()).collect();
        let answer = queue.send(&requests).await?;
        let mut refused = Vec::new();
        let mut lines = Vec::new();
        for (entry, sent) in left.iter().zip(answer) {
            match sent {
                Ok(_) => lines.push(entry.0),
                Err(why) => refused.push((*entry, why)),
            }
        }
        progress.record(&lines)?;
        taken += lines.len();
        if refused.is_empty() {
            return Ok((taken, Vec::new()));
        }
        if attempt == settings.attempts.max(1) {
            return Ok((taken, refused.into_iter().map(|((line, _), why)| (*line, why)).collect()));
        }
        left = refused.into_iter().map(|(entry, _)| entry).collect();
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
    unreachable!("the last attempt returns")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use opportunity_disassociator::aws::work_queue::message_body;
    use serde_json::json;

    /// A queue that refuses the entries named in `refuse` (by identifier) the first `times` times.
    struct Fake {
        depth: Depth,
        refuse: Vec<&'static str>,
        times: Mutex<u32>,
        bodies: Mutex<Vec<String>>,
    }

    impl Fake {
        fn new(messages: u64) -> Self {
            Self {
                depth: Depth { retention_seconds: 4 * 86_400, messages },
                refuse: vec![],
                times: Mutex::new(0),
                bodies: Mutex::new(vec![]),
            }
        }
    }

    impl Queue for Fake {
        async fn depth(&self) -> Result<Depth, String> {
            Ok(self.depth)
        }

        async fn send(&self, requests: &[DisassociationRequest]) -> Result<Vec<Entry>, String> {
            assert!(requests.len() <= MAX_BATCH);
            let mut times = self.times.lock().unwrap();
            let mut answer = Vec::new();
            for request in requests {
                if *times > 0 && self.refuse.contains(&request.entity.identifier()) {
                    answer.push(Err("InternalError (service fault) try again".to_owned()));
                } else {
                    self.bodies.lock().unwrap().push(message_body(request));
                    answer.push(Ok(format!("m-{}", request.entity.identifier())));
                }
            }
            *times = times.saturating_sub(1);
            Ok(answer)
        }
    }

    fn plan_of(count: usize) -> Plan {
        let text: String = (1..=count)
            .map(|i| {
                let doc = json!({"Catalog": "Sandbox", "OpportunityIdentifier": format!("O{i}"),
                    "RelatedEntityType": "AwsProducts", "RelatedEntityIdentifier": format!("P-{i}")});
                format!("{doc}\n")
            })
            .collect();
        plan::read(&text).unwrap()
    }

    fn settings() -> Settings {
        Settings { retry_pause: Duration::ZERO, ..Settings::default() }
    }

    async fn run(queue: &Fake, plan: &Plan, dir: &Path, settings: &Settings) -> (Result<Ended, String>, String) {
        let mut progress = Progress::load(dir.join("plan.jsonl.sent"), &plan.sha256).unwrap();
        let mut log = Vec::new();
        let ended = send(queue, plan, &mut progress, settings, &dir.join("dry.jsonl"), &mut log).await;
        (ended, String::from_utf8(log).unwrap())
    }

    #[tokio::test]
    async fn refused_entries_are_sent_again_and_each_request_is_queued_once() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Fake { refuse: vec!["P-3", "P-12"], times: Mutex::new(2), ..Fake::new(0) };
        let plan = plan_of(25);
        let (ended, _) = run(&queue, &plan, dir.path(), &settings()).await;
        assert_eq!(ended, Ok(Ended::Done));
        let mut bodies = queue.bodies.lock().unwrap().clone();
        bodies.sort();
        bodies.dedup();
        assert_eq!(bodies.len(), 25);
        assert_eq!(queue.bodies.lock().unwrap().len(), 25, "nothing sent twice");
    }

    #[tokio::test]
    async fn entries_the_queue_keeps_refusing_are_reported_and_sent_by_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Fake { refuse: vec!["P-3"], times: Mutex::new(100), ..Fake::new(0) };
        let plan = plan_of(12);
        let (ended, _) = run(&queue, &plan, dir.path(), &Settings { attempts: 3, ..settings() }).await;
        let Ok(Ended::Refused(refused)) = ended else { panic!("{ended:?}") };
        assert_eq!(refused.iter().map(|(line, _)| *line).collect::<Vec<_>>(), [3]);
        assert_eq!(queue.bodies.lock().unwrap().len(), 11);

        let again = Fake::new(0);
        let (ended, log) = run(&again, &plan, dir.path(), &settings()).await;
        assert_eq!(ended, Ok(Ended::Done));
        assert!(log.contains("11 already sent"), "{log}");
        assert_eq!(again.bodies.lock().unwrap().as_slice(), [message_body(&plan.requests[2].1)]);
    }

    #[tokio::test]
    async fn a_plan_larger_than_the_stack_can_hold_before_the_retention_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // Four days at 10 writes a day is 40 writes; 35 already queued leave room for 5.
        let queue = Fake::new(35);
        let plan = plan_of(6);
        let tight = Settings { writes_per_day: 10, ..settings() };
        let (ended, _) = run(&queue, &plan, dir.path(), &tight).await;
        assert!(ended.as_ref().is_err_and(|e| e.contains("6 writes are more than the 5")), "{ended:?}");
        assert!(queue.bodies.lock().unwrap().is_empty());
        assert!(!dir.path().join("plan.jsonl.sent").exists());

        let (ended, _) = run(&Fake::new(34), &plan, dir.path(), &tight).await;
        assert_eq!(ended, Ok(Ended::Done), "room for 6");
    }

    #[tokio::test]
    async fn a_dry_run_writes_what_would_be_sent_and_sends_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Fake::new(0);
        let plan = plan_of(3);
        let (ended, log) = run(&queue, &plan, dir.path(), &Settings { dry_run: true, ..settings() }).await;
        assert_eq!(ended, Ok(Ended::Done));
        assert!(log.contains("would send 3 requests in 1 batches"), "{log}");
        let written = fs::read_to_string(dir.path().join("dry.jsonl")).unwrap();
        assert_eq!(plan::read(&written).unwrap().requests, plan.requests);
        assert!(queue.bodies.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_sends_what_fits_and_the_rest_as_room_frees() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_of(12);
        // Room for 10 writes, then the fake's queue never drains: each round sends what fits again.
        let queue = Fake { depth: Depth { retention_seconds: 86_400, messages: 0 }, ..Fake::new(0) };
        let trickle = Settings { writes_per_day: 10, trickle_every: Some(Duration::from_secs(60)), ..settings() };
        let (ended, log) = run(&queue, &plan, dir.path(), &trickle).await;
        assert_eq!(ended, Ok(Ended::Done));
        assert!(log.contains("trickle: 10 sent, 2 to go"), "{log}");
        assert_eq!(queue.bodies.lock().unwrap().len(), 12);
    }

    #[test]
    fn a_state_from_another_plan_is_refused_and_a_line_cut_short_is_not_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sent");
        fs::write(&path, "plan-sha256 abc\n1 2 3\n4 5").unwrap();
        let progress = Progress::load(path.clone(), "abc").unwrap();
        assert!(progress.is_sent(3) && !progress.is_sent(4));
        assert!(Progress::load(path, "def").err().unwrap().contains("another plan"));
    }
}
