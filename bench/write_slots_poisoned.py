#!/usr/bin/env python3
"""The shared write-slot table cannot stall the stack (issue 25): the stack scenario's pieces
(stack.py: one emulator quota, moto SQS with a dead-letter queue, moto DynamoDB for the table, one
poller per instance) with two release-built function processes sharing the table, and either

- the table poisoned before the processes start: `next_ms` and `stretched_ms` an hour ahead,
  `spacing_ms` u64::MAX (every number the pacer owns out of bounds), beside an attribute it does not
  own (a map keyed by a time an hour ahead, as the day's budget will keep), which must be left alone;
- and/or one process's clock an hour ahead or behind, set by libfaketime on that process alone
  (`LD_PRELOAD`, `FAKETIME`; `apt-get install faketime`).

Each row drains a backlog (default 40 requests) and reports: done, dead letters, throttled answers,
the time from the pollers' start to the first write the emulator took, the repairs and the clock
warnings the functions logged, and whether the other attribute came through untouched.

    python bench/write_slots_poisoned.py --rust <function binary> --emulator <emulator binary> \\
        --moto <moto_server> --out bench/results/write_slots_poisoned.json --logs bench/results/logs/poisoned
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from driver import Emulator, Entities, FunctionProcess, Moto, fmt, machine  # noqa: E402
from stack import Context, Poller, Stack, WorkQueue, mode_env, operation, queue_env  # noqa: E402

ITEM_KEY = "partnercentral-selling-writes"
HOUR_MS = 3_600_000
U64_MAX = 18_446_744_073_709_551_615
FAKETIME_LIBS = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
]
CLOCKS = {"none": None, "ahead": "+1h", "behind": "-1h"}


def faketime_lib() -> str | None:
    return next((lib for lib in FAKETIME_LIBS if os.path.exists(lib)), None)


class PoisonedStack(Stack):
    """stack.py's Stack in `shared` mode, the table poisoned first if asked, and the first process's
    clock moved by libfaketime if asked."""

    def __init__(self, ctx, instances: int, poisoned: bool, clock: str | None, tag: str):
        self.ctx, self.mode, self.instances, self.tag = ctx, "shared", instances, tag
        self.work = WorkQueue(ctx.sqs, tag)
        self.table = f"stack-write-slots-{tag}"
        ctx.dynamodb.create_table(
            TableName=self.table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        hour_ahead = str(int(time.time() * 1000) + HOUR_MS)
        self.other_attribute = {"M": {hour_ahead: {"N": "7"}}}
        item = {"pk": {"S": ITEM_KEY}, "budget": self.other_attribute}
        if poisoned:
            item.update(next_ms={"N": hour_ahead}, spacing_ms={"N": str(U64_MAX)}, stretched_ms={"N": hour_ahead})
        ctx.dynamodb.put_item(TableName=self.table, Item=item)
        self.env = dict(queue_env(self.work.dlq_url, ctx.moto.endpoint))
        self.env.update(mode_env("shared", ctx.args.quota, instances, self.table, ctx.tables.endpoint))
        self.functions: list[FunctionProcess] = []
        self.groups = []
        self.stop_event = threading.Event()
        self.pollers: list[Poller] = []
        kind = {"name": "stack", "command": [ctx.args.rust]}
        try:
            for i in range(instances):
                env = dict(self.env)
                if clock and i == 0:
                    # The wall clock only: tokio's monotonic clock is left as it is.
                    env.update(LD_PRELOAD=ctx.faketime, FAKETIME=clock, FAKETIME_DONT_FAKE_MONOTONIC="1")
                log = os.path.join(ctx.args.logs, f"{tag}-{i}.log")
                self.functions.append(FunctionProcess(kind, ctx.emulator.endpoint, env, log))
            for fn in self.functions:
                fn.wait_init()
        except BaseException:
            self.close()
            raise
        self.cpu_before = [fn.cpu_ns() for fn in self.functions]

    def item(self) -> dict:
        answer = self.ctx.dynamodb.get_item(TableName=self.table, Key={"pk": {"S": ITEM_KEY}}, ConsistentRead=True)
        return answer.get("Item", {})


def log_lines(stack: PoisonedStack, i: int) -> list[str]:
    with open(os.path.join(stack.ctx.args.logs, f"{stack.tag}-{i}.log"), errors="replace") as f:
        return f.read().splitlines()


def warnings(lines: list[str], text: str) -> int:
    return sum(text in line and '"level":"WARN"' in line for line in lines)


def run(ctx: Context, poisoned: bool, clock_name: str) -> dict:
    args = ctx.args
    tag = f"poison-{'p' if poisoned else 'c'}-{clock_name}-{uuid.uuid4().hex[:6]}"
    ctx.reset_emulator(1.0)
    stack = PoisonedStack(ctx, args.instances, poisoned, CLOCKS[clock_name], tag)
    try:
        stack.work.send(ctx.bodies(args.messages))
        base = operation(ctx.emulator, "DisassociateOpportunity")
        started = time.monotonic()
        stack.start_pollers()
        first_write = None
        cap_at = started + args.drain_cap
        while not (stack.all_idle() and stack.work.depth() == 0) and time.monotonic() < cap_at:
            stack.check_pollers()
            writes = operation(ctx.emulator, "DisassociateOpportunity").get("Successes", 0)
            if first_write is None and writes > base.get("Successes", 0):
                first_write = time.monotonic() - started
            time.sleep(0.02)
        capped = time.monotonic() >= cap_at
        stack.stop_pollers()
        ends = [p.last_success_at for p in stack.pollers if p.last_success_at is not None]
        elapsed = (time.monotonic() if capped or not ends else max(ends)) - started
        counters = operation(ctx.emulator, "DisassociateOpportunity")
        item = stack.item()
        time.sleep(0.2)  # the functions' last lines reach their logs
        lines = [log_lines(stack, i) for i in range(args.instances)]
        successes = counters.get("Successes", 0) - base.get("Successes", 0)
        result = {
            "poisoned": poisoned,
            "clock": clock_name,
            "clock_of_instance_0": CLOCKS[clock_name],
            "instances": args.instances,
            "messages": args.messages,
            "done": stack.work.done_count(),
            "dead_letters": stack.work.dead_letters(),
            "left_in_queue": stack.work.depth(),
            "stopped_by_cap": capped,
            "elapsed_s": elapsed,
            "first_write_s": first_write,
            "successful_writes": successes,
            "throttled": counters.get("QuotaThrottled", 0) - base.get("QuotaThrottled", 0),
            "quota_fraction": successes / (elapsed * args.quota) if elapsed > 0 else None,
            "repairs_logged": [sum("out of bounds: repaired" in line for line in ls) for ls in lines],
            "table_clock_warnings": [warnings(ls, "the write-slot table's") for ls in lines],
            "lambda_clock_warnings": [warnings(ls, "Lambda's") for ls in lines],
            "item_after": item,
            "other_attribute_untouched": item.get("budget") == stack.other_attribute,
        }
        result.update(stack.poller_figures())
        return result
    finally:
        stack.close()


def table(rows: list[dict], quota: float) -> str:
    out = [
        f"Two instances sharing one table, write quota {quota:g}/s (bucket 1), each row a drain of "
        f"{rows[0]['messages'] if rows else '-'} requests:",
        "",
        "| table | instance 0's clock | done | dead letters | first write | elapsed | quota used | throttled "
        "| repairs logged | clock WARNs (table / Lambda) | other attribute |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        out.append(
            f"| {'poisoned' if r['poisoned'] else 'clean'} | {r['clock_of_instance_0'] or 'right'} "
            f"| {r['done']} / {r['messages']} | {r['dead_letters']} | {fmt(r['first_write_s'], 2, ' s')} "
            f"| {fmt(r['elapsed_s'], 1, ' s')}{' (cap)' if r['stopped_by_cap'] else ''} "
            f"| {fmt(100 * r['quota_fraction'], 1, ' %') if r['quota_fraction'] is not None else '-'} "
            f"| {r['throttled']} | {' + '.join(map(str, r['repairs_logged']))} "
            f"| {' + '.join(map(str, r['table_clock_warnings']))} / {' + '.join(map(str, r['lambda_clock_warnings']))} "
            f"| {'untouched' if r['other_attribute_untouched'] else 'CHANGED'} |"
        )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rust", required=True, help="the function's release binary")
    parser.add_argument("--emulator", required=True, help="partner-central-emulator binary")
    parser.add_argument("--moto", required=True, help="moto_server")
    parser.add_argument("--quota", type=float, default=10.0, help="the account's write quota, per second")
    parser.add_argument("--messages", type=int, default=40)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--latency", type=int, default=50, help="API latency added by the emulator, ms")
    parser.add_argument("--tables", default="poisoned,clean", help="poisoned and/or clean")
    parser.add_argument("--clocks", default="none,ahead,behind", help=f"instance 0's clock, of: {', '.join(CLOCKS)}")
    parser.add_argument("--drain-cap", type=float, default=150)
    parser.add_argument("--out", required=True)
    parser.add_argument("--logs", required=True)
    args = parser.parse_args()
    args.burst = [1.0]
    clocks = [c for c in args.clocks.split(",") if c]
    for clock in clocks:
        if clock not in CLOCKS:
            parser.error(f"unknown clock {clock!r}")
    faketime = faketime_lib()
    if any(CLOCKS[c] for c in clocks) and not faketime:
        parser.error("libfaketime is not installed (apt-get install faketime)")

    os.makedirs(args.logs, exist_ok=True)
    entities = Entities(args.messages)
    seed_path = os.path.join(args.logs, "seed.json")
    with open(seed_path, "w") as f:
        json.dump(entities.seed, f)
    emulator = Emulator(args.emulator, seed_path)
    moto, tables = Moto(args.moto), Moto(args.moto)
    rows = []
    try:
        ctx = Context(args, emulator, moto, tables, entities, entities.seed)
        ctx.faketime = faketime
        plan = [(t == "poisoned", c) for t in args.tables.split(",") if t for c in clocks]
        for i, (poisoned, clock) in enumerate(plan):
            label = f"{'poisoned' if poisoned else 'clean'} table, clock {clock}"
            print(f"  [{i + 1}/{len(plan)}] {label} ...", file=sys.stderr, flush=True)
            rows.append(run(ctx, poisoned, clock))
            r = rows[-1]
            summary = {k: r[k] for k in ("done", "dead_letters", "first_write_s", "throttled", "repairs_logged")}
            print(f"      {json.dumps(summary)}", file=sys.stderr, flush=True)
    finally:
        moto.stop()
        tables.stop()
        emulator.stop()
    results = {"machine": machine(), "load": " ".join(f"{x:.2f}" for x in os.getloadavg()), "rows": rows}
    results["table"] = table(rows, args.quota)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(results["table"])
    print(f"\nLoad average after: {results['load']}. JSON: {args.out}")
    failed = [r for r in rows if r["done"] < r["messages"] or r["dead_letters"] or not r["other_attribute_untouched"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
