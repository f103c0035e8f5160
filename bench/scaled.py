"""Scaled time: the deployed stack against the day's write budget (issue 26) and AWS's review
(issue 27), run by `bench/stack.py --scenario budget,review`.

The stack is the template's (bench/template.py reads it): `MaximumConcurrency` function processes
with the environment Lambda gives the worker, fed by Lambda's event source mapping as Lambda runs it
(bench/mapping.py: a failed record comes back when its visibility runs out, the function's timeout
is enforced), one work queue and its dead-letter queue (moto), the write-slots table (moto
DynamoDB), and the Partner Central emulator with its per-second and rolling daily quotas. Time is
scaled (`Scale`): the template's values stay but for those a day's budget makes slow to watch.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import threading
import time
import uuid
from dataclasses import asdict, dataclass

import moto_sqs
from driver import Emulator, Entities, FunctionProcess
from mapping import DeadLetters, Environment, EventSourceMapping, LambdaPoller, MappingSettings
from stack import CpuGroup, Poller, WorkQueue, aws_clients, create_write_slots_table
from template import DEAD_LETTER_QUEUE, WORK_QUEUE, WRITE_SLOTS_TABLE, Template

DAY_S = 86_400
# The service's quotas, per account: writes 1/s and 10,000 a day; reads 10/s and 100,000 a day.
REAL_WRITES_PER_SECOND = 1
REAL_WRITES_PER_DAY = 10_000
REAL_READS_PER_SECOND = 10
REAL_READS_PER_DAY = 100_000
# Defaults of the worker's settings for the day's budget and the review (issues 26 and 27), scaled
# below with the day.
REAL_MAX_HOLD_S = 43_200
REAL_REVIEW_RECHECK_S = 3_600
FOREIGN_OPPORTUNITY_PREFIX = "O6"
REVIEW_OPPORTUNITY = "O7000000"
REVIEW_SOLUTION = "S-7000000"


@dataclass(frozen=True)
class Scale:
    """Issue 26's scaled time: 10 writes/s, 40 writes per 40 s window, the function's timeout 3 s,
    the queue's visibility 8 s; the rest follows from the template."""

    writes_per_second: float = 10.0
    window_s: float = 40.0
    writes_per_window: int = 40
    function_timeout_s: float = 3.0
    visibility_s: int = 8

    @property
    def rate_factor(self) -> float:
        """How many times the service's per-second quotas."""
        return self.writes_per_second / REAL_WRITES_PER_SECOND

    def day(self, seconds: float) -> float:
        """A duration counted in days in the real world, counted in windows here."""
        return seconds / DAY_S * self.window_s

    @property
    def reads_per_second(self) -> float:
        return REAL_READS_PER_SECOND * self.rate_factor

    @property
    def reads_per_window(self) -> int:
        return round(REAL_READS_PER_DAY / REAL_WRITES_PER_DAY * self.writes_per_window)

    def ideal_last_write_s(self, writes: int) -> float:
        """The last of `writes` writes at the best the quotas allow from an empty window: each full
        window's budget, then the rest at the per-second rate."""
        windows, rest = divmod(writes - 1, self.writes_per_window)
        return windows * self.window_s + rest / self.writes_per_second


def settings_from(template: Template, scale: Scale) -> dict:
    """What the mapping, the queues and the worker get: the template's, scaled."""
    t = template.summary()
    function_scale = scale.function_timeout_s / t["function_timeout_s"]
    return {
        "template": t,
        "max_receive_count": t["max_receive_count"],
        "concurrency": t["maximum_concurrency"],
        "batch_size": t["batch_size"],
        # The batching window is kept in proportion to the function's timeout.
        "batching_window_s": t["batching_window_s"] * function_scale,
        "function_timeout_s": scale.function_timeout_s,
        "memory_mb": t["memory_mb"],
        "visibility_s": scale.visibility_s,
        "retention_s": round(scale.day(t["retention_s"])),
        "dead_letter_retention_s": round(scale.day(t["dead_letter_retention_s"])),
        "writes_per_second": scale.writes_per_second,
        "writes_per_window": scale.writes_per_window,
        "window_s": scale.window_s,
        "reads_per_second": scale.reads_per_second,
        "reads_per_window": scale.reads_per_window,
        "max_hold_s": scale.day(REAL_MAX_HOLD_S),
        "review_recheck_s": scale.day(REAL_REVIEW_RECHECK_S),
    }


def number_text(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def scaled_worker_settings(s: dict) -> dict:
    """The settings of issues 26 and 27 (`ACCOUNT_WRITES_PER_DAY` and the rest), scaled."""
    return {
        "ACCOUNT_WRITES_PER_DAY": str(s["writes_per_window"]),
        "WRITE_BUDGET_WINDOW_SECONDS": number_text(s["window_s"]),
        "MAX_HOLD_SECONDS": number_text(s["max_hold_s"]),
        "REVIEW_RECHECK_SECONDS": number_text(s["review_recheck_s"]),
        "WORK_QUEUE_RETENTION_SECONDS": str(s["retention_s"]),
    }


class EmulatorLog:
    """The emulator's per-request lines, each with the moment the request arrived (the line's read
    time less the request's own duration, which the line gives)."""

    def __init__(self):
        self.lines: list[tuple[float, str]] = []
        self.lock = threading.Lock()

    def add(self, at: float, line: str):
        elapsed_ms = 0.0
        if line.rstrip().endswith(" ms)"):
            try:
                elapsed_ms = float(line.rstrip()[:-4].rsplit("(", 1)[1])
            except (IndexError, ValueError):
                pass
        with self.lock:
            self.lines.append((at - elapsed_ms / 1000, line.strip()))

    def arrivals(self, operation: str, status: str, since: float) -> list[float]:
        """When requests of `operation` answered with `status` (e.g. "200") arrived, after `since`."""
        with self.lock:
            return [
                at for at, line in self.lines if at >= since and f"{operation} -> {status}" in line
            ]


def set_daily_quota(emulator: Emulator, writes: int, reads: int, window_s: float):
    emulator.control(
        "daily-quotas",
        {
            "Write": {"Cap": writes, "WindowSeconds": window_s},
            "Read": {"Cap": reads, "WindowSeconds": window_s},
        },
    )


def daily_refusals(counters: dict) -> int:
    return counters.get("DailyQuotaThrottled", 0)


class World:
    """One run's stack: an emulator of its own, the queues, the table, the environments, the mapping."""

    def __init__(self, ctx, tag: str, seed: dict):
        self.ctx, self.tag = ctx, tag
        s = ctx.settings
        self.log = EmulatorLog()
        seed_path = os.path.join(ctx.args.logs, f"{tag}-seed.json")
        with open(seed_path, "w") as f:
            json.dump(seed, f)
        self.emulator = Emulator(ctx.args.emulator, seed_path, on_line=self.log.add)
        self.environments: list[Environment] = []
        self.groups: list[CpuGroup] = []
        self.mapping = None
        self.letters = None
        try:
            self.emulator.reset(
                seed,
                latency_ms=ctx.args.latency,
                write={"Rate": s["writes_per_second"], "Burst": 1.0},
                read={"Rate": s["reads_per_second"], "Burst": s["reads_per_second"]},
            )
            set_daily_quota(self.emulator, s["writes_per_window"], s["reads_per_window"], s["window_s"])
            self.work = WorkQueue(
                ctx.sqs,
                tag,
                visibility_s=s["visibility_s"],
                max_receive_count=s["max_receive_count"],
                retention_s=s["retention_s"],
                dead_letter_retention_s=s["dead_letter_retention_s"],
            )
            self.table = create_write_slots_table(ctx.dynamodb, f"scaled-write-slots-{tag}")
            resources = {WORK_QUEUE: self.work.url, DEAD_LETTER_QUEUE: self.work.dlq_url, WRITE_SLOTS_TABLE: self.table}
            self.env = ctx.template.lambda_environment(resources)
            self.env.update(scaled_worker_settings(s))
            # The test world's endpoints: in AWS the SDK finds the services itself.
            self.env["AWS_ENDPOINT_URL_SQS"] = ctx.moto.endpoint
            self.env["AWS_ENDPOINT_URL_DYNAMODB"] = ctx.tables.endpoint
            self.environments = [
                Environment(self.starter(i), after_init=self.limit_cpu(i)) for i in range(s["concurrency"])
            ]
        except BaseException:
            self.close()
            raise

    def starter(self, instance: int):
        def start(generation: int) -> FunctionProcess:
            log = os.path.join(self.ctx.args.logs, f"{self.tag}-{instance}.log")
            kind = {"name": f"scaled-{instance}", "command": [self.ctx.args.rust]}
            return FunctionProcess(kind, self.emulator.endpoint, self.env, log, self.ctx.settings["function_timeout_s"])

        return start

    def limit_cpu(self, instance: int):
        """Lambda runs init on a full vCPU and invocations on the memory's share of one."""

        def limit(fn: FunctionProcess, generation: int):
            group = CpuGroup(f"bench-scaled-{self.tag}-{instance}-{generation}")
            self.groups.append(group)
            group.add(fn.proc.pid)

        return limit if self.ctx.cpu_limit else None

    def start(self):
        s = self.ctx.settings
        settings = MappingSettings(
            concurrency=s["concurrency"],
            batch_size=s["batch_size"],
            batching_window_s=s["batching_window_s"],
            function_timeout_s=s["function_timeout_s"],
        )
        self.letters = DeadLetters(self.ctx.sqs, self.work.dlq_url)
        self.letters.start()
        stop = threading.Event()
        if self.ctx.args.mapping == "instant":
            pollers = [Poller(self.work, e.ready(), stop) for e in self.environments]
        else:
            pollers = [LambdaPoller(self.work, e, settings, stop) for e in self.environments]
        self.mapping = EventSourceMapping(pollers, stop, self.work)
        self.mapping.start()

    def check(self):
        self.mapping.check()
        if self.letters.error is not None:
            raise RuntimeError(f"the dead-letter watcher failed: {self.letters.error!r}") from self.letters.error

    def written(self, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of `pairs` (opportunity, solution) the emulator has disassociated."""
        state = self.emulator.control("state")
        return {
            (d["OpportunityIdentifier"], d["RelatedEntityIdentifier"])
            for d in state.get("Disassociations", [])
            if (d["OpportunityIdentifier"], d["RelatedEntityIdentifier"]) in pairs
        }

    def counters(self, name: str) -> dict:
        return self.emulator.control("state").get("Operations", {}).get(name, {})

    def close(self):
        if self.mapping:
            self.mapping.stop()
        if self.letters:
            self.letters.finish()
        for environment in self.environments:
            environment.close()
        for group in self.groups:
            group.remove()
        self.emulator.stop()


def pair_of(body: str) -> tuple[str, str]:
    doc = json.loads(body)
    return doc["OpportunityIdentifier"], doc["RelatedEntityIdentifier"]


def foreign_seed(count: int) -> list[dict]:
    """Opportunities for the foreign tool's writes: one association each per solution, ten a piece."""
    return [
        {
            "Catalog": "Sandbox",
            "Id": f"{FOREIGN_OPPORTUNITY_PREFIX}{o:06d}",
            "RelatedEntityIdentifiers": {"Solutions": []},
        }
        for o in range(math.ceil(count / 10))
    ]


def spend_window(endpoint: str, writes: int, rate: float) -> dict:
    """Another tool of the account makes `writes` successful writes (AssociateOpportunity) at `rate`,
    one attempt per call, a refused one sent again in the next slot: the window's budget is spent."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    client = boto3.client(
        "partnercentral-selling",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1}),
    )
    ok = refused = 0
    due = time.monotonic()
    first = None
    while ok < writes:
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
        due = max(due + 1 / rate, time.monotonic())
        try:
            client.associate_opportunity(
                Catalog="Sandbox",
                OpportunityIdentifier=f"{FOREIGN_OPPORTUNITY_PREFIX}{ok // 10:06d}",
                RelatedEntityType="Solutions",
                RelatedEntityIdentifier=f"S-6{ok:06d}",
            )
            first = first if first is not None else time.monotonic()
            ok += 1
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ThrottlingException":
                raise
            refused += 1
    return {"writes": ok, "refused": refused, "first_write_at": first, "last_write_at": time.monotonic()}


def budget(ctx, foreign_first: bool) -> dict:
    """A backlog of --backlog drained against the day's budget; with `foreign_first`, another tool has
    spent the whole window just before, and the stack was not told."""
    args, s = ctx.args, ctx.settings
    tag = f"budget-{'foreign' if foreign_first else 'fresh'}-{uuid.uuid4().hex[:6]}"
    entities = Entities(args.backlog)
    bodies = [json.dumps(entities.document()) for _ in range(args.backlog)]
    pairs = {pair_of(b) for b in bodies}
    seed = {"Opportunities": entities.seed["Opportunities"] + foreign_seed(s["writes_per_window"])}
    load = os.getloadavg()[0]
    world = World(ctx, tag, seed)
    try:
        # Init before the backlog arrives: the figures are the drain's, not the cold starts'.
        for environment in world.environments:
            environment.ready()
        world.work.send(bodies)
        foreign = None
        if foreign_first:
            foreign = spend_window(world.emulator.endpoint, s["writes_per_window"], s["writes_per_second"])
        base = world.counters("DisassociateOpportunity")
        started = time.monotonic()
        world.start()
        capped, end = drain_until_settled(world, pairs, started, args.cap_windows * s["window_s"])
        world.mapping.stop()
        world.letters.finish()
        world.check()
        result = settle_figures(world, pairs, started, base, load)
        result.update(
            {
                "scenario": "budget, foreign writer first" if foreign_first else "budget",
                "backlog": args.backlog,
                "stopped_by_cap": capped,
                "ended_s": end - started,
                "ideal_last_write_s": ctx.scale.ideal_last_write_s(args.backlog),
            }
        )
        if foreign:
            result["foreign"] = {
                "writes": foreign["writes"],
                "refused": foreign["refused"],
                "first_write_s": foreign["first_write_at"] - started,
                "last_write_s": foreign["last_write_at"] - started,
            }
        return result
    finally:
        world.close()


def review(ctx, review_s: float) -> dict:
    """--requests requests to an idle stack, one of them on an opportunity under review for
    `review_s` (`Submitted`, `In review` from half of it, then `Approved`; 0: approved from the
    start, the control): the writes tried on it while under review, and the others' delay."""
    args, s = ctx.args, ctx.settings
    tag = f"review-{review_s:g}-{uuid.uuid4().hex[:6]}"
    entities = Entities(args.requests - 1)
    bodies = [json.dumps(entities.document()) for _ in range(args.requests - 1)]
    held = {
        "Catalog": "Sandbox",
        "OpportunityIdentifier": REVIEW_OPPORTUNITY,
        "RelatedEntityType": "Solutions",
        "RelatedEntityIdentifier": REVIEW_SOLUTION,
    }
    # In the middle of the first batch, so that a record that holds up its batch shows.
    bodies.insert(min(5, len(bodies)), json.dumps(held))
    pairs = {pair_of(b) for b in bodies}
    status = "Submitted" if review_s > 0 else "Approved"
    seed = {
        "Opportunities": entities.seed["Opportunities"]
        + [
            {
                "Catalog": "Sandbox",
                "Id": REVIEW_OPPORTUNITY,
                "LifeCycle": {"Stage": "Qualified", "ReviewStatus": status},
                # Two solutions: an approved opportunity keeps its last one.
                "RelatedEntityIdentifiers": {"Solutions": [REVIEW_SOLUTION, REVIEW_SOLUTION + "1"]},
            }
        ]
    }
    load = os.getloadavg()[0]
    world = World(ctx, tag, seed)
    try:
        for environment in world.environments:
            environment.ready()
        world.start()
        time.sleep(1.0)  # pollers idle, as a stack between requests
        base = world.counters("DisassociateOpportunity")
        world.work.send(bodies)
        started = time.monotonic()
        changes = [(review_s / 2, "In review"), (review_s, "Approved")] if review_s > 0 else []
        path = f"opportunities/Sandbox/{REVIEW_OPPORTUNITY}/life-cycle"
        capped = False
        # When the emulator first shows the held request written: its original message is done with
        # when it is held (sent again to wait), so its deletion says nothing of when it was written.
        held_pair = (REVIEW_OPPORTUNITY, REVIEW_SOLUTION)
        held_written_at = None
        while True:
            world.check()
            now = time.monotonic()
            if held_written_at is None and world.written({held_pair}):
                held_written_at = now
            while changes and now - started >= changes[0][0]:
                world.emulator.control(path, {"ReviewStatus": changes.pop(0)[1]})
            if now - started > review_s + args.cap_windows * s["window_s"]:
                capped = True
                break
            if not changes and world.work.depth() == 0:
                letters = {pair_of(letter["body"]) for letter in world.letters.snapshot()}
                if pairs <= world.written(pairs) | letters:
                    # Written between this pass's first look and this one: it was written by now.
                    if held_written_at is None and world.written({held_pair}):
                        held_written_at = now
                    break
            time.sleep(0.1)
        world.mapping.stop()
        world.letters.finish()
        world.check()
        counters = world.counters("DisassociateOpportunity")
        written = world.written(pairs)
        letters = world.letters.snapshot()
        by_body = {body: message_id for message_id, body in world.work.bodies.items()}
        held_id = by_body[json.dumps(held)]
        others = [
            world.work.done_at[m] - world.work.sent_at[m]
            for m in world.work.sent_at
            if m != held_id and m in world.work.done_at and pair_of(world.work.bodies[m]) in written
        ]
        refusals = counters.get("Errors", {}).get("ValidationException", 0)
        refusals -= base.get("Errors", {}).get("ValidationException", 0)
        # A write throttled before the emulator looked at the opportunity is tried but not refused
        # under review: with none throttled in the run, the refusals are every write tried on it.
        throttled = counters.get("Throttled", 0) - base.get("Throttled", 0)
        result = {
            "scenario": f"review {review_s:g} s" if review_s > 0 else "review, control (approved from the start)",
            "review_s": review_s,
            "requests": len(bodies),
            "load_1min_before": load,
            "stopped_by_cap": capped,
            "done": len(written),
            "dead_lettered": len(letters),
            "dead_letter_codes": count_codes(letters),
            "lost": max(0, len(pairs) - len(written | {pair_of(letter["body"]) for letter in letters})),
            "writes_refused_under_review": refusals,
            "writes_throttled": throttled,
            "held_done_s": (
                held_written_at - started
                if held_written_at is not None
                else None
            ),
            "others_done_median_s": statistics.median(others) if others else None,
            "others_done_max_s": max(others) if others else None,
            "others_done": len(others),
            "dead_letters": [{k: v for k, v in letter.items()} for letter in letters],
        }
        result.update(world.mapping.figures())
        return result
    finally:
        world.close()


def count_codes(letters: list[dict]) -> dict[str, int]:
    codes: dict[str, int] = {}
    for letter in letters:
        code = letter["error_code"] or "redrive (no ErrorCode)"
        codes[code] = codes.get(code, 0) + 1
    return codes


def drain_until_settled(world: World, pairs: set, started: float, cap_s: float) -> tuple[bool, float]:
    """Until every record is written or dead-lettered and the queue is empty, or the queue is empty
    and the pollers idle (what is neither is lost), or the cap."""
    quiet_since = None
    while True:
        world.check()
        now = time.monotonic()
        if now - started > cap_s:
            return True, now
        depth = world.work.depth()
        if depth == 0:
            letters = {pair_of(letter["body"]) for letter in world.letters.snapshot()}
            if pairs <= world.written(pairs) | letters:
                return False, now
            if world.mapping.all_idle():
                quiet_since = quiet_since or now
                if now - quiet_since > 2.0:
                    return False, now
            else:
                quiet_since = None
        else:
            quiet_since = None
        time.sleep(0.25)


def settle_figures(world: World, pairs: set, started: float, base: dict, load: float) -> dict:
    s = world.ctx.settings
    counters = world.counters("DisassociateOpportunity")
    written = world.written(pairs)
    letters = world.letters.snapshot()
    expired, dead = set(), set()
    codes: dict[str, int] = {}
    for letter in letters:
        pair = pair_of(letter["body"])
        # moto keeps a message past its retention (it withholds it and counts its receives, so the
        # redrive moves it in the end); SQS deletes it: that one is lost.
        seen = time.time() - (time.monotonic() - letter["seen_at"])
        if letter["error_code"] is None and seen > letter["sent_timestamp_ms"] / 1000 + s["retention_s"]:
            expired.add(pair)
            continue
        dead.add(pair)
        code = letter["error_code"] or "redrive (no ErrorCode)"
        codes[code] = codes.get(code, 0) + 1
    depth = world.work.depth()
    accounted = written | dead
    writes_ok = world.log.arrivals("DisassociateOpportunity", "200", started)
    refused_daily = daily_refusals(counters) - daily_refusals(base)
    refused_all = counters.get("QuotaThrottled", 0) - base.get("QuotaThrottled", 0)
    result = {
        "load_1min_before": load,
        "done": len(written),
        "dead_lettered": len(dead),
        "done_and_dead_lettered": len(written & dead),
        "dead_letter_codes": codes,
        "expired": len(expired - written),
        "left_in_queue": depth,
        "lost": max(0, len(pairs) - len(accounted) - depth),
        "write_calls": counters.get("Calls", 0) - base.get("Calls", 0),
        "refused_daily": refused_daily,
        "refused_per_second": refused_all - refused_daily,
        "last_write_s": (max(writes_ok) - started) if writes_ok else None,
        "dead_letters": [
            {k: v for k, v in letter.items() if k != "body"} | {"pair": pair_of(letter["body"])} for letter in letters
        ],
    }
    result.update(world.mapping.figures())
    return result


# ------------------------------------------------------------------------------------ run and report


class Context:
    def __init__(self, args, moto, tables):
        self.args, self.moto, self.tables = args, moto, tables
        self.template = Template(args.template, {"WriteQuotaPerSecond": f"{Scale().writes_per_second:g}"})
        self.scale = Scale()
        self.settings = settings_from(self.template, self.scale)
        self.cpu_limit = args.cpu_limit
        self.sqs, self.dynamodb = aws_clients(moto, tables)


def run(args, moto, tables, scenarios: list[str], progress) -> dict:
    ctx = Context(args, moto, tables)
    for line in moto_sqs.check(ctx.sqs, moto_sqs.clients(moto.endpoint)[1], uuid.uuid4().hex[:6]):
        progress(f"moto as SQS: {line}")
    plan = []
    if "budget" in scenarios:
        plan += [("budget", False), ("budget", True)]
    if "review" in scenarios:
        plan += [("review", 0.0), ("review", args.review_seconds)]
    results = {"settings": ctx.settings, "mapping": args.mapping, "cpu_limit": ctx.cpu_limit, "runs": []}
    plan = [step for step in plan for _ in range(args.repeat)]
    for i, (kind, variant) in enumerate(plan):
        if kind == "budget":
            progress(f"[{i + 1}/{len(plan)}] budget{', foreign writer first' if variant else ''} ...")
            r = budget(ctx, foreign_first=variant)
            keys = ("done", "dead_lettered", "lost", "refused_daily", "last_write_s")
        else:
            progress(f"[{i + 1}/{len(plan)}] review {variant:g} s ...")
            r = review(ctx, variant)
            keys = ("done", "dead_lettered", "writes_refused_under_review", "held_done_s", "others_done_max_s")
        brief = {k: r.get(k) for k in keys}
        progress(f"    {json.dumps(brief, default=str)}")
        results["runs"].append(r)
    return results


def markdown(header: str, rows: list[list]) -> list[str]:
    """A table: the first column left-aligned, the others right-aligned."""
    columns = header.split("|")
    lines = ["| " + " | ".join(columns) + " |", "|---|" + "---:|" * (len(columns) - 1)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def codes_text(codes: dict[str, int]) -> str:
    return ", ".join(f"{code} {n}" for code, n in sorted(codes.items())) or "-"


def fmt_s(value) -> str:
    return "-" if value is None else f"{value:.1f} s"


def table(results: dict) -> str:
    s = results["settings"]
    out = [
        f"Scaled time: {s['writes_per_second']:g} writes/s (bucket of 1) and {s['writes_per_window']} writes per "
        f"{s['window_s']:g} s window; function timeout {s['function_timeout_s']:g} s, visibility "
        f"{s['visibility_s']} s, retention {s['retention_s']} s (dead letters {s['dead_letter_retention_s']} s), "
        f"{s['concurrency']} instances, "
        f"batches of {s['batch_size']}, batching window {s['batching_window_s']:g} s, maxReceiveCount "
        f"{s['max_receive_count']}; mapping: {results['mapping']}; CPU limit: "
        f"{'128 MB share' if results['cpu_limit'] else 'none'}.",
        "",
    ]
    budgets = [r for r in results["runs"] if r["scenario"].startswith("budget")]
    if budgets:
        out += markdown(
            "scenario|backlog|done|dead-lettered (ErrorCode)|lost|left in queue|refused: daily / per second"
            "|last write (ideal)|invocations / timeouts|load",
            [
                [
                    r["scenario"],
                    r["backlog"],
                    r["done"],
                    f"{r['dead_lettered']} ({codes_text(r['dead_letter_codes'])})",
                    r["lost"],
                    r["left_in_queue"],
                    f"{r['refused_daily']} / {r['refused_per_second']}",
                    f"{fmt_s(r['last_write_s'])}{' (cap)' if r['stopped_by_cap'] else ''} "
                    f"({r['ideal_last_write_s']:.1f} s)",
                    f"{r['invocations']} / {r['timeouts']}",
                    f"{r['load_1min_before']:.2f}",
                ]
                for r in budgets
            ],
        )
    reviews = [r for r in results["runs"] if r["scenario"].startswith("review")]
    if reviews:
        out += ["", f"{reviews[0]['requests']} requests to an idle stack, one on an opportunity under review:", ""]
        out += markdown(
            "scenario|done|dead-lettered (ErrorCode)|lost|writes refused under review (throttled, any)|that one done at"
            "|the others done: median / max|load",
            [
                [
                    r["scenario"],
                    r["done"],
                    f"{r['dead_lettered']} ({codes_text(r['dead_letter_codes'])})",
                    r["lost"],
                    f"{r['writes_refused_under_review']} ({r.get('writes_throttled', '?')})",
                    fmt_s(r["held_done_s"]),
                    f"{fmt_s(r['others_done_median_s'])} / {fmt_s(r['others_done_max_s'])}",
                    f"{r['load_1min_before']:.2f}",
                ]
                for r in reviews
            ],
        )
    return "\n".join(out)
