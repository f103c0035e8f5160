//! `opportunity-disassociator-plan`: only wiring. Exit status 0 when everything asked was done, 1 when
//! the input had faults, 2 for usage, AWS or I/O errors; the report on standard error.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use opportunity_disassociator_plan::export::{self, Refused};
use opportunity_disassociator_plan::plan::{self, Summary};
use opportunity_disassociator_plan::scan;
use opportunity_disassociator_plan::send::{self, Ended, Progress, Settings, SqsQueue};

#[derive(Parser)]
#[command(
    name = "opportunity-disassociator-plan",
    version,
    about = "Plan a bulk job for the stack, and send it to the work queue"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read a CRM export (CSV, UTF-8) into a plan: one request document a line
    FromCsv {
        /// The export; its header names the members as the API spells them
        file: PathBuf,
        /// Where the plan goes (`-`: standard output)
        #[arg(long)]
        out: PathBuf,
        /// Plan the rows without faults even when some have faults (they are reported all the same)
        #[arg(long)]
        skip_bad_rows: bool,
        #[command(flatten)]
        budget: Budget,
    },
    /// Send a plan's requests to the stack's work queue; a rerun sends only what was not sent
    Send {
        plan: PathBuf,
        #[arg(long)]
        queue_url: String,
        /// Check everything and write what would be sent to --out; send nothing
        #[arg(long)]
        dry_run: bool,
        /// Where a dry run writes what it would send (`-`: standard output)
        #[arg(long, default_value = "-")]
        out: PathBuf,
        #[command(flatten)]
        budget: Budget,
        /// Send a plan larger than the stack can carry out before the queue's retention as room frees
        #[arg(long)]
        trickle: bool,
        /// With --trickle: seconds between readings of the queue's depth
        #[arg(long, value_name = "SECONDS", default_value_t = 900.0)]
        trickle_every: f64,
    },
    /// Plan the replacement of every legacy solution (S-...) that has an AWS Marketplace counterpart
    MarketplaceSolutions(scan::Args),
}

#[derive(Args)]
struct Budget {
    /// The writes the stack makes a day (its ACCOUNT_WRITES_PER_DAY; the account's quota is 10,000)
    #[arg(long, value_name = "N", default_value_t = plan::WRITES_PER_DAY, value_parser = clap::value_parser!(u64).range(1..))]
    writes_per_day: u64,
}

#[derive(Clone, Copy)]
enum Exit {
    Done = 0,
    Faults = 1,
    Error = 2,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut log = io::stderr().lock();
    let exit = match cli.command {
        Command::FromCsv { file, out, skip_bad_rows, budget } => {
            from_csv(&file, &out, skip_bad_rows, budget.writes_per_day, &mut log)
        }
        Command::Send { plan, queue_url, dry_run, out, budget, trickle, trickle_every } => {
            let settings = Settings {
                writes_per_day: budget.writes_per_day,
                trickle_every: trickle.then(|| Duration::from_secs_f64(trickle_every.max(0.0))),
                dry_run,
                abort_after_batches: std::env::var("PLAN_TEST_ABORT_AFTER_BATCHES").ok().and_then(|v| v.parse().ok()),
                ..Settings::default()
            };
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            match runtime {
                Ok(runtime) => runtime.block_on(send_plan(&plan, &queue_url, &settings, &out, &mut log)),
                Err(e) => fail(&mut log, format!("starting the runtime failed: {e}")),
            }
        }
        Command::MarketplaceSolutions(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            return match runtime {
                Ok(runtime) => ExitCode::from(runtime.block_on(scan::command(args, &mut log))),
                Err(e) => ExitCode::from(fail(&mut log, format!("starting the runtime failed: {e}")) as u8),
            };
        }
    };
    ExitCode::from(exit as u8)
}

fn fail(log: &mut impl Write, message: String) -> Exit {
    let _ = writeln!(log, "error: {message}");
    Exit::Error
}

fn from_csv(file: &Path, out: &Path, skip_bad_rows: bool, writes_per_day: u64, log: &mut impl Write) -> Exit {
    let name = file.display();
    let export = match File::open(file).map_err(Refused::Io).and_then(export::read) {
        Ok(export) => export,
        Err(Refused::Input(message)) => {
            let _ = writeln!(log, "{name}: {message}\nno plan written");
            return Exit::Faults;
        }
        Err(Refused::Io(e)) => return fail(log, format!("{name}: {e}")),
    };
    for fault in &export.faults {
        for error in &fault.errors {
            let _ = writeln!(log, "{name}:{}: {} {}", fault.line, error.field, error.message);
        }
    }
    for duplicate in &export.duplicates {
        let _ = writeln!(log, "{name}:{}: repeats line {}: planned once", duplicate.line, duplicate.first);
    }
    let summary = Summary::of(&export.requests);
    let _ = writeln!(
        log,
        "from-csv: {name}: {} rows, {} with faults, {} repeated{}",
        export.rows,
        export.faults.len(),
        export.duplicates.len(),
        if export.ignored_columns.is_empty() {
            String::new()
        } else {
            format!("; columns left out: {}", export.ignored_columns.join(", "))
        }
    );
    if !export.faults.is_empty() && !skip_bad_rows {
        let _ = writeln!(log, "no plan written: fix the rows above, or plan the others with --skip-bad-rows");
        return Exit::Faults;
    }
    if let Err(e) = plan::write(out, &export.requests) {
        return fail(log, format!("writing {} failed: {e}", out.display()));
    }
    let _ = writeln!(log, "plan: {}: {summary}; {}", out.display(), summary.duration(writes_per_day));
    if export.faults.is_empty() { Exit::Done } else { Exit::Faults }
}

async fn send_plan(path: &Path, queue_url: &str, settings: &Settings, out: &Path, log: &mut impl Write) -> Exit {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return fail(log, format!("reading {} failed: {e}", path.display())),
    };
    let plan = match plan::read(&text) {
        Ok(plan) => plan,
        Err(faults) => {
            for fault in faults {
                for error in fault.errors {
                    let _ = writeln!(log, "{}:{}: {} {}", path.display(), fault.line, error.field, error.message);
                }
            }
            let _ = writeln!(log, "nothing sent: the plan has lines that are not requests");
            return Exit::Faults;
        }
    };
    let mut progress = match Progress::load(Progress::path_for(path), &plan.sha256) {
        Ok(progress) => progress,
        Err(message) => return fail(log, message),
    };
    let sdk = opportunity_disassociator::aws::sdk_config(|name| std::env::var(name).ok(), 5).await;
    let queue = SqsQueue::new(&sdk, queue_url);
    match send::send(&queue, &plan, &mut progress, settings, out, log).await {
        Ok(Ended::Done) => Exit::Done,
        Ok(Ended::Refused(refused)) => {
            for (line, why) in refused {
                let _ = writeln!(log, "{}:{line}: the queue kept refusing it: {why}", path.display());
            }
            let _ = writeln!(log, "run the same command again to send what was refused");
            Exit::Error
        }
        Err(message) => fail(
            log,
            format!("{message}\nrun the same command again to send the rest (state: {})", progress.path().display()),
        ),
    }
}
