"""The legacy-Solutions scan's read rate and peak memory (make bench; figures in bench/README.md).

usage: scan.py --bin PATH --emulator PATH [--opportunities N] [--rates 50,100,200] [--out FILE]

Each rate is a row of its own: a fresh emulator holding a generated account (`--seed-generate N`),
then the release `opportunity-disassociator-plan marketplace-solutions` at `--reads-per-second R`.
Time is scaled: the emulator's read quota is the account's (10/s, a bucket of 10) sped up to 2R, so
the scan asks half the quota, as its default of 5/s is half of 10/s; the bucket keeps its 10 tokens.
Reads are counted twice, by the scan's own report and by the emulator (its calls and throttled
answers of ListSolutions, ListOpportunities and GetOpportunity). The wall time is the process's,
start to exit; its peak resident memory and CPU time are the kernel's (wait4's rusage) for that
process alone. A row fails unless the plan holds exactly the replacements the account implies.
A row whose rate is above the asked one, or that saw a throttled read, is marked (`marks` in the
JSON, `<-` and the reason on its line): a report to read, not a pass or a fail.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request

READS = ("ListSolutions", "ListOpportunities", "GetOpportunity")
# The account's read quota, as the emulator models it by default.
QUOTA_BURST = 10
# The scan's report line: "reads: 8912 in 178.3 s, 49.98 reads/s (--reads-per-second 50), 0 throttled".
REPORT = re.compile(r"reads: (\d+) in ([\d.]+) s, ([\d.]+) reads/s \(--reads-per-second [\d.]+\), (\d+) throttled")


def emulator_state(endpoint):
    with urllib.request.urlopen(endpoint + "/_emulator/state", timeout=60) as response:
        return json.load(response)


def implied(state):
    """The replacements a read of every opportunity implies: each legacy solution with a counterpart,
    on each opportunity neither Closed Lost nor Rejected (the generated account keeps every one
    within the limit of Marketplace solutions)."""
    counterparts = {s["Id"]: s.get("AwsMarketplaceSolutionArn") for s in state["Solutions"]}
    rows = 0
    for opportunity in state["Opportunities"]:
        life_cycle = opportunity.get("LifeCycle") or {}
        if life_cycle.get("Stage") == "Closed Lost" or life_cycle.get("ReviewStatus") == "Rejected":
            continue
        rows += sum(1 for s in opportunity["RelatedEntityIdentifiers"].get("Solutions", []) if counterparts.get(s))
    return rows


def start_emulator(binary, opportunities, quota):
    process = subprocess.Popen(
        [binary, "--port", "0", "--quiet", "--seed-generate", str(opportunities), "--seed-generate-rng", "29",
         "--read-rate", str(quota), "--read-burst", str(QUOTA_BURST)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    if "listening on " not in line:
        process.kill()
        raise SystemExit(f"the emulator did not start: {line!r}")
    return process, line.split("listening on ", 1)[1].strip()


def scan(binary, endpoint, rate, scratch, limit):
    plan_path = os.path.join(scratch, f"plan-{rate}.jsonl")
    env = dict(os.environ, AWS_ENDPOINT_URL_PARTNERCENTRAL_SELLING=endpoint, AWS_ACCESS_KEY_ID="test",
               AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
    started = time.perf_counter()
    process = subprocess.Popen(
        [binary, "marketplace-solutions", "--catalog", "Sandbox", "--out", plan_path, "--reads-per-second", str(rate)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    # A scan that stops reading is killed: a bench that hangs measures nothing.
    watchdog = threading.Timer(limit, process.kill)
    watchdog.start()
    report = process.stderr.read().decode(errors="replace")
    # Cancelled before the process is reaped, so that no later kill can reach a reused pid.
    watchdog.cancel()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"marketplace-solutions failed (or was killed after {limit:.0f} s):\n{report}")
    found = REPORT.search(report)
    if not found:
        raise SystemExit(f"marketplace-solutions reported no reads line:\n{report}")
    with open(plan_path, encoding="utf-8") as f:
        rows = sum(1 for _ in f)
    made, seconds, achieved, throttled = found.groups()
    return {"wall_s": round(wall, 2), "scan_s": float(seconds), "reads_per_second": float(achieved),
            "scan_reads": int(made), "scan_throttled": int(throttled), "plan_rows": rows,
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2)}


def row(args, rate):
    quota = 2 * rate
    emulator, endpoint = start_emulator(args.emulator, args.opportunities, quota)
    try:
        expected = implied(emulator_state(endpoint))
        with tempfile.TemporaryDirectory() as scratch:
            # Twice the reads the account can need (one a page or an opportunity), and a minute more.
            limit = 2 * args.opportunities * 1.05 / rate + 60
            result = scan(args.bin, endpoint, rate, scratch, limit)
        operations = emulator_state(endpoint)["Operations"]
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait()
    calls = sum(operations.get(name, {}).get("Calls", 0) for name in READS)
    throttled = sum(operations.get(name, {}).get("Throttled", 0) for name in READS)
    if result["plan_rows"] != expected:
        raise SystemExit(f"the plan holds {result['plan_rows']} replacements, the account implies {expected}")
    if calls != result["scan_reads"]:
        raise SystemExit(f"the scan reports {result['scan_reads']} reads, the emulator counted {calls}")
    marks = []
    if result["reads_per_second"] > rate:
        marks.append(f"above the asked {rate}/s")
    if throttled or result["scan_throttled"]:
        marks.append(f"{max(throttled, result['scan_throttled'])} throttled")
    result.update(asked=rate, quota=quota, reads=calls, throttled=throttled, expected_rows=expected,
                  opportunities=args.opportunities, marks=marks,
                  calls={name: operations.get(name, {}).get("Calls", 0) for name in READS})
    flagged = f"  <- {'; '.join(marks)}" if marks else ""
    print(f"    {rate:>4}/s asked (quota {quota}/s): {result['reads_per_second']:.2f} reads/s, {calls} reads, "
          f"{throttled} throttled, wall {result['wall_s']} s, CPU {result['cpu_s']} s, "
          f"peak RSS {result['peak_rss_mib']} MiB, {result['plan_rows']} plan rows{flagged}")
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True, help="opportunity-disassociator-plan, release")
    parser.add_argument("--emulator", required=True, help="partner-central-emulator, release")
    parser.add_argument("--opportunities", type=int, default=10_000)
    parser.add_argument("--rates", default="50,100,200", help="--reads-per-second of each row")
    parser.add_argument("--out")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    print(f"    {args.opportunities} opportunities, a fresh emulator per row, read quota twice the asked rate")
    results = [row(args, rate) for rate in rates]
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
