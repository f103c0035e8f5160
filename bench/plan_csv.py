"""from-csv's time and peak memory on a generated CRM export (make bench; figures in bench/README.md).

usage: plan_csv.py --bin PATH [--rows N] [--runs K] [--out FILE]

The export is written as a spreadsheet writes it: a byte-order mark, CRLF, quoted fields with commas,
quotes and a line break, every fifth row a replacement. Each run is timed from start to exit, and its
peak resident memory is the kernel's (wait4's ru_maxrss) for that process alone.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time


def export(path, rows):
    arn = "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-{}"
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("\ufeffCatalog,OpportunityIdentifier,RelatedEntityType,RelatedEntityIdentifier,"
                "ReplaceWith.RelatedEntityType,ReplaceWith.RelatedEntityIdentifier,Note\r\n")
        for i in range(1, rows + 1):
            entity = f'AwsProducts,"Amazon ""EC2"", tier {i}"' if i % 3 == 0 else f"Solutions,S-{i}"
            replacement = f"AwsMarketplaceSolutions,{arn.format(i)}" if i % 5 == 0 else ","
            f.write(f'Sandbox,O{1_000_000 + i},{entity},{replacement},"row {i}, ""noted""\nsecond line"\r\n')


def run(binary, csv_path, plan_path):
    started = time.perf_counter()
    process = subprocess.Popen([binary, "from-csv", csv_path, "--out", plan_path],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"from-csv failed: {stderr.decode(errors='replace')}")
    return seconds, usage.ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        csv_path, plan_path = os.path.join(scratch, "export.csv"), os.path.join(scratch, "plan.jsonl")
        export(csv_path, args.rows)
        csv_mib = os.path.getsize(csv_path) / 2**20
        results = [run(args.bin, csv_path, plan_path) for _ in range(args.runs)]
        with open(plan_path, encoding="utf-8") as f:
            planned = sum(1 for _ in f)
    if planned != args.rows:
        raise SystemExit(f"from-csv planned {planned} requests of {args.rows} rows")
    seconds = [s for s, _ in results]
    peak = max(m for _, m in results)
    summary = {"rows": args.rows, "csv_mib": round(csv_mib, 1), "runs": args.runs,
               "seconds_median": round(statistics.median(seconds), 3), "seconds_max": round(max(seconds), 3),
               "peak_rss_mib": round(peak, 1)}
    print(f"    from-csv, {args.rows} rows ({csv_mib:.1f} MiB): median {summary['seconds_median']} s "
          f"(max {summary['seconds_max']} s) over {args.runs} runs, peak RSS {summary['peak_rss_mib']} MiB")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
