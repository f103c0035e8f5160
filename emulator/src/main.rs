//! `partner-central-emulator`: runs the emulator until SIGTERM/SIGINT. See the library docs.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use partner_central_emulator::{
    AlreadyAssociated, DailyQuotaConfig, Emulator, EmulatorConfig, FaultConfig, QuotaConfig, ReviewErrorCode,
    RollingQuotaConfig, Seed, TokenBucketConfig,
};

const USAGE: &str = "\
Usage: partner-central-emulator [OPTIONS]

Local emulator of the AWS Partner Central Selling API (awsJson1_0, SigV4).

Options:
  --host IP            address to bind (default 127.0.0.1)
  --port N             port to bind (default 0: ephemeral)
  --seed FILE          seed JSON (DeniedCatalogs, Opportunities, Solutions)
  --seed-generate N    a generated seed of N opportunities instead (see Seed::generate)
  --seed-generate-rng S
                       the generated seed's random seed (default 0)
  --write-rate R       write quota, calls per second (default 1)
  --write-burst B      write bucket size (default max(1, write rate))
  --read-rate R        read quota, calls per second (default 10)
  --read-burst B       read bucket size (default max(1, read rate))
  --write-daily-cap N  writes admitted per rolling window (default 10000)
  --write-window-seconds S
                       the writes' rolling window, in seconds (default 86400)
  --read-daily-cap N   reads admitted per rolling window (default 100000)
  --read-window-seconds S
                       the reads' rolling window, in seconds (default 86400)
  --no-daily-quotas    no daily quotas (the per-second ones stay)
  --no-quotas          no quotas at all, per second or daily
  --throttle-rate P    probability of an injected ThrottlingException
  --error-rate P       probability of an injected InternalServerException
  --drop-rate P        probability of closing the connection without answering
  --latency-ms N       latency added to every call
  --slow-rate P        probability of a slow call
  --slow-ms N          delay of a slow call
  --slow-applies       a slow call is processed after its delay (default: answers 500, no change)
  --rng-seed N         seed of the fault RNG
  --already-associated success|conflict
                       answer to associating an entity already associated
                       (default success; conflict: ConflictException, 409)
  --review-error-code ACTION_NOT_PERMITTED|INVALID_RESOURCE_STATE
                       ErrorList code refusing a write under review or rejected
                       (default ACTION_NOT_PERMITTED)
  --access-key K       access key id (with --secret-key; default test/test)
  --secret-key S       secret access key
  --tls CA_FILE        serve HTTPS, with a certificate authority made at start whose
                       certificate (PEM) is written to CA_FILE: trust it to connect
  --quiet              no per-request log on stderr
  -h, --help           this help
  -V, --version        version
";

fn parse<T: FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("invalid value {value:?} for {flag}"))
}

/// What the command line asks for.
struct Options {
    config: EmulatorConfig,
    /// With `--tls`: where the certificate authority's PEM goes.
    ca_file: Option<PathBuf>,
}

fn parse_args(args: Vec<String>) -> Result<Option<Options>, String> {
    let mut config = EmulatorConfig::default();
    let mut faults = FaultConfig::default();
    let (mut write_rate, mut write_burst, mut read_rate, mut read_burst) =
        (None::<f64>, None::<f64>, None::<f64>, None::<f64>);
    let (mut write_cap, mut write_window, mut read_cap, mut read_window) =
        (None::<u64>, None::<f64>, None::<u64>, None::<f64>);
    let (mut no_quotas, mut no_daily_quotas) = (false, false);
    let (mut access_key, mut secret_key) = (None, None);
    let mut seed_file = None;
    let (mut generate, mut generate_rng) = (None::<usize>, 0u64);
    let mut ca_file = None;

    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let takes_value = !matches!(
            flag.as_str(),
            "--no-quotas" | "--no-daily-quotas" | "--slow-applies" | "--quiet" | "-h" | "--help" | "-V" | "--version"
        );
        let value = if takes_value {
            match inline {
                Some(v) => v,
                None => iter.next().ok_or_else(|| format!("{flag} needs a value"))?,
            }
        } else {
            if inline.is_some() {
                return Err(format!("{flag} takes no value"));
            }
            String::new()
        };
        match flag.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            "-V" | "--version" => {
                println!("partner-central-emulator {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            "--host" => config.host = parse::<IpAddr>(&flag, &value)?,
            "--port" => config.port = parse(&flag, &value)?,
            "--seed" => seed_file = Some(value),
            "--seed-generate" => generate = Some(parse(&flag, &value)?),
            "--seed-generate-rng" => generate_rng = parse(&flag, &value)?,
            "--write-rate" => write_rate = Some(parse(&flag, &value)?),
            "--write-burst" => write_burst = Some(parse(&flag, &value)?),
            "--read-rate" => read_rate = Some(parse(&flag, &value)?),
            "--read-burst" => read_burst = Some(parse(&flag, &value)?),
            "--write-daily-cap" => write_cap = Some(parse(&flag, &value)?),
            "--write-window-seconds" => write_window = Some(parse(&flag, &value)?),
            "--read-daily-cap" => read_cap = Some(parse(&flag, &value)?),
            "--read-window-seconds" => read_window = Some(parse(&flag, &value)?),
            "--no-daily-quotas" => no_daily_quotas = true,
            "--no-quotas" => no_quotas = true,
            "--throttle-rate" => faults.throttle_rate = parse(&flag, &value)?,
            "--error-rate" => faults.error_rate = parse(&flag, &value)?,
            "--drop-rate" => faults.drop_rate = parse(&flag, &value)?,
            "--latency-ms" => faults.latency_ms = parse(&flag, &value)?,
            "--slow-rate" => faults.slow_rate = parse(&flag, &value)?,
            "--slow-ms" => faults.slow_ms = parse(&flag, &value)?,
            "--slow-applies" => faults.slow_applies = true,
            "--rng-seed" => faults.rng_seed = Some(parse(&flag, &value)?),
            "--already-associated" => config.behavior.already_associated = parse::<AlreadyAssociated>(&flag, &value)?,
            "--review-error-code" => config.behavior.review_error_code = parse::<ReviewErrorCode>(&flag, &value)?,
            "--access-key" => access_key = Some(value),
            "--secret-key" => secret_key = Some(value),
            "--quiet" => config.log_requests = false,
            "--tls" => ca_file = Some(PathBuf::from(value)),
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }

    let bucket = |rate: Option<f64>, burst: Option<f64>, default: TokenBucketConfig| {
        let rate = rate.unwrap_or(default.rate);
        TokenBucketConfig { rate, burst: burst.unwrap_or(if rate.is_finite() { rate.max(1.0) } else { 1.0 }) }
    };
    let defaults = QuotaConfig::default();
    config.quotas = if no_quotas {
        QuotaConfig::unlimited()
    } else {
        QuotaConfig {
            write: defaults.write.map(|d| bucket(write_rate, write_burst, d)),
            read: defaults.read.map(|d| bucket(read_rate, read_burst, d)),
        }
    };
    let window = |cap: Option<u64>, seconds: Option<f64>, default: RollingQuotaConfig| RollingQuotaConfig {
        cap: cap.unwrap_or(default.cap),
        window_seconds: seconds.unwrap_or(default.window_seconds),
    };
    let daily = DailyQuotaConfig::default();
    config.daily_quotas = if no_quotas || no_daily_quotas {
        DailyQuotaConfig::unlimited()
    } else {
        DailyQuotaConfig {
            write: daily.write.map(|d| window(write_cap, write_window, d)),
            read: daily.read.map(|d| window(read_cap, read_window, d)),
        }
    };
    config.faults = faults;
    match (access_key, secret_key) {
        (Some(k), Some(s)) => config.credentials = BTreeMap::from([(k, s)]),
        (None, None) => {}
        _ => return Err("--access-key and --secret-key go together".to_owned()),
    }
    match (seed_file, generate) {
        (Some(_), Some(_)) => return Err("--seed and --seed-generate go alone".to_owned()),
        (Some(path), None) => config.seed = Seed::from_file(path).map_err(|e| e.to_string())?,
        (None, Some(n)) => config.seed = Seed::generate(n, generate_rng),
        (None, None) => {}
    }
    config.tls = ca_file.is_some();
    config.validate().map_err(|e| e.to_string())?;
    Ok(Some(Options { config, ca_file }))
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let Options { config, ca_file } = match parse_args(std::env::args().skip(1).collect()) {
        Ok(Some(options)) => options,
        Ok(None) => return ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("partner-central-emulator: {msg}");
            return ExitCode::from(2);
        }
    };
    let emulator = match Emulator::start(config).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("partner-central-emulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let (Some(path), Some(pem)) = (ca_file, emulator.ca_pem()) {
        // Written before the line below, so that a client that has read the line can trust it.
        if let Err(e) = std::fs::write(&path, pem) {
            eprintln!("partner-central-emulator: cannot write the CA certificate to {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "partner-central-emulator listening on {}", emulator.endpoint());
        let _ = out.flush();
    }
    wait_for_signal().await;
    eprintln!("partner-central-emulator: shutting down");
    emulator.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Option<EmulatorConfig>, String> {
        options(list).map(|o| o.map(|o| o.config))
    }

    fn options(list: &[&str]) -> Result<Option<Options>, String> {
        parse_args(list.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn defaults() {
        let c = args(&[]).expect("ok").expect("config");
        assert_eq!(c.port, 0);
        assert_eq!(c.quotas, QuotaConfig::default());
        assert_eq!(c.daily_quotas, DailyQuotaConfig::default());
        assert_eq!(c.credentials.get("test").map(String::as_str), Some("test"));
    }

    #[test]
    fn flags() {
        let c = args(&[
            "--port=8080",
            "--write-rate",
            "5",
            "--read-rate",
            "0",
            "--read-burst",
            "3",
            "--throttle-rate",
            "0.25",
            "--drop-rate=1",
            "--latency-ms",
            "7",
            "--slow-rate",
            "0.5",
            "--slow-ms",
            "3000",
            "--slow-applies",
            "--rng-seed",
            "9",
            "--access-key",
            "AK",
            "--secret-key",
            "SK",
            "--quiet",
            "--already-associated",
            "conflict",
            "--review-error-code",
            "INVALID_RESOURCE_STATE",
        ])
        .expect("ok")
        .expect("config");
        assert_eq!(c.port, 8080);
        assert_eq!(c.quotas.write, Some(TokenBucketConfig { rate: 5.0, burst: 5.0 }));
        assert_eq!(c.quotas.read, Some(TokenBucketConfig { rate: 0.0, burst: 3.0 }));
        assert_eq!(c.faults.throttle_rate, 0.25);
        assert_eq!(c.faults.drop_rate, 1.0);
        assert_eq!(c.faults.latency_ms, 7);
        assert!(c.faults.slow_applies);
        assert_eq!(c.faults.rng_seed, Some(9));
        assert_eq!(c.credentials.len(), 1);
        assert!(!c.log_requests);
        assert_eq!(c.behavior.already_associated, AlreadyAssociated::Conflict);
        assert_eq!(c.behavior.review_error_code, ReviewErrorCode::InvalidResourceState);
        let c = args(&["--write-daily-cap", "40", "--write-window-seconds=40", "--read-daily-cap", "7"])
            .expect("ok")
            .expect("config");
        assert_eq!(c.daily_quotas.write, Some(RollingQuotaConfig { cap: 40, window_seconds: 40.0 }));
        assert_eq!(c.daily_quotas.read, Some(RollingQuotaConfig { cap: 7, window_seconds: 86_400.0 }));
        assert_eq!(c.quotas, QuotaConfig::default());
        let c = args(&["--no-daily-quotas"]).expect("ok").expect("config");
        assert_eq!((c.quotas, c.daily_quotas), (QuotaConfig::default(), DailyQuotaConfig::unlimited()));
        let c = args(&["--no-quotas"]).expect("ok").expect("config");
        assert_eq!(c.daily_quotas, DailyQuotaConfig::unlimited());
        assert_eq!(c.quotas, QuotaConfig::unlimited());
        assert_eq!(c.behavior.already_associated, AlreadyAssociated::Success);
        assert!(!c.tls);
        let c = args(&["--seed-generate", "100", "--seed-generate-rng", "3"]).expect("ok").expect("config");
        assert_eq!(c.seed, Seed::generate(100, 3));
        let o = options(&["--tls", "/tmp/ca.pem"]).expect("ok").expect("options");
        assert!(o.config.tls);
        assert_eq!(o.ca_file, Some(PathBuf::from("/tmp/ca.pem")));
    }

    #[test]
    fn errors() {
        for bad in [
            &["--port"][..],
            &["--port", "x"],
            &["--throttle-rate", "2"],
            &["--access-key", "a"],
            &["--bogus"],
            &["--quiet=1"],
            &["--seed", "/nonexistent/seed.json"],
            &["--write-burst", "0"],
            &["--tls"],
            &["--already-associated", "Conflict"],
            &["--already-associated"],
            &["--write-daily-cap", "-1"],
            &["--write-window-seconds", "0"],
            &["--read-window-seconds", "nan"],
            &["--no-daily-quotas=1"],
            &["--review-error-code", "ACTION_NOT_ALLOWED"],
            &["--seed-generate", "-1"],
            &["--seed-generate", "10", "--seed", "/dev/null"],
        ] {
            assert!(args(bad).is_err(), "{bad:?}");
        }
    }
}
