#!/usr/bin/env python3
"""The stack scenario: several function instances share one account's write quota.

The write quota belongs to the partner account: every instance of the function, and every other tool
in the account, draws on it. This scenario runs the stack as it is deployed, on loopback:

- N function processes (the release binary), each under its own Lambda Runtime API and with
  Lambda's environment (driver.py's `FunctionProcess`), plus what the template sets for the queue
  (`DEAD_LETTER_QUEUE_URL` = the dead-letter queue below, `MAX_RECEIVE_COUNT` 3);
- N pollers on ONE moto SQS work queue with a dead-letter queue (maxReceiveCount 3), each bound to
  one process, as Lambda's SQS event source mapping with MaximumConcurrency N: batches of up to 10,
  one batch in flight per instance, the next one received while the function works on this one,
  the records not reported failed deleted, the failed ones made visible again at once;
- ONE Partner Central emulator, whose write token bucket (`--quota` per second, bucket `--burst`)
  is the account's quota;
- optionally a foreign writer: another tool of the same account (boto3's `partnercentral-selling`
  client, SigV4, one attempt per call) sending `AssociateOpportunity` at `--foreign` times the quota
  into the same bucket, during the first part of each drain.

The function processes pace their writes by a mode (`MODES` and `mode_env` below, the one place
where each mode's settings are): `static` (quota / N each, the template today), `full` (the whole
quota each, for reference), `shared` (the account-wide limiter on a DynamoDB item: its table is
created in moto before the processes start).

With `--lambda-cpu` (default: when /sys/fs/cgroup/cpu is writable) each process, once its init is
over, runs in its own cgroup v1 cpu group with cpu.cfs_quota_us = period x 128/1769: the share of a
vCPU Lambda gives a 128 MB function (init runs on a full vCPU in Lambda, and here too).

Scenarios: a backlog drain for every mode x instances x bucket; the same beside the foreign writer;
a burst of messages to an idle stack (enqueue to done per message). A table on stdout, JSON in --out.

    .venv-bench/bin/python bench/stack.py --rust <function binary> --emulator <emulator binary> \\
        --moto <moto_server> [--modes static,full] [--quick]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import statistics
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from driver import Emulator, Entities, FunctionProcess, Moto, fmt, machine, sqs_record  # noqa: E402
from mapping import Environment, EventSourceMapping, LambdaPoller, MappingSettings  # noqa: E402
from template import Template, default_path  # noqa: E402

LAMBDA_MEMORY_MB = 128
# Lambda gives a function one full vCPU at 1,769 MB, and CPU in proportion to its memory.
FULL_VCPU_MB = 1769
MAX_RECEIVE_COUNT = 3  # the template's MaxReceiveCount default
BATCH_SIZE = 10
# An idle poller's receive waits for a send or a release by this harness, at most this long: SQS's
# long polling answers as soon as a message is visible (moto's does not wake on a visibility change).
LONG_POLL_S = 1.0
FOREIGN_OPPORTUNITY = "O6000000"
FOREIGN_SOLUTION = "S-6000000"

MODES = {
    "static": "each instance paces at quota / N (the template today)",
    "full": "each instance paces at the whole quota (reference)",
    "shared": "the account-wide limiter on a DynamoDB item, quota / N as its fallback share",
}
MODES_WITH_TABLE = {"shared"}


def per_instance_rate(quota: float, instances: int) -> float:
    """quota / N rounded down to 3 decimals, as the template's WritesPerSecondPerInstance table."""
    return math.floor(quota / instances * 1000) / 1000


def rate_text(rate: float) -> str:
    return f"{rate:g}"


def mode_env(mode: str, quota: float, instances: int, table: str | None, dynamodb_endpoint: str) -> dict:
    """The settings each mode gives every function process: the one place to adjust them."""
    share = rate_text(per_instance_rate(quota, instances))
    if mode == "static":
        return {"PARTNER_CENTRAL_WRITES_PER_SECOND": share}
    if mode == "full":
        return {"PARTNER_CENTRAL_WRITES_PER_SECOND": rate_text(quota)}
    if mode == "shared":
        return {
            "WRITE_SLOTS_TABLE": table,
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
            "ACCOUNT_WRITES_PER_SECOND": rate_text(quota),
            # The fallback share, when the table cannot be reached.
            "PARTNER_CENTRAL_WRITES_PER_SECOND": share,
        }
    raise ValueError(f"unknown mode {mode!r}")


def queue_env(dead_letter_url: str, sqs_endpoint: str) -> dict:
    """What the template sets for the queue, the same in every mode."""
    return {
        "DEAD_LETTER_QUEUE_URL": dead_letter_url,
        "AWS_ENDPOINT_URL_SQS": sqs_endpoint,
        "MAX_RECEIVE_COUNT": str(MAX_RECEIVE_COUNT),
    }


def percentile(values: list[float], share: float) -> float | None:
    """Nearest rank."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def nice_thread():
    # The SQS calls' threads (boto3 parsing is CPU) come after the Runtime API's, as in driver.py.
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


# ------------------------------------------------------------------------------------ CPU limit


class CpuGroup:
    """A cgroup v1 cpu group holding one process, at Lambda's share of a vCPU for 128 MB."""

    ROOT = "/sys/fs/cgroup/cpu"

    def __init__(self, name: str):
        self.path = os.path.join(self.ROOT, name)
        os.mkdir(self.path)
        try:
            with open(os.path.join(self.path, "cpu.cfs_period_us")) as f:
                self.period_us = int(f.read())
            self.quota_us = int(self.period_us * LAMBDA_MEMORY_MB / FULL_VCPU_MB)
            self._write("cpu.cfs_quota_us", self.quota_us)
        except OSError:
            self.remove()
            raise

    def _write(self, name: str, value):
        with open(os.path.join(self.path, name), "w") as f:
            f.write(str(value))

    def add(self, pid: int):
        self._write("cgroup.procs", pid)

    def stats(self) -> dict:
        out = {}
        try:
            with open(os.path.join(self.path, "cpu.stat")) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    out[key] = int(value)
        except (OSError, ValueError):
            pass
        return out

    def remove(self):
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)  # the process is still exiting

    @classmethod
    def check(cls) -> str | None:
        """None when a group can be made here, else why not."""
        try:
            group = cls(f"bench-stack-probe-{os.getpid()}")
        except OSError as error:
            return f"{cls.ROOT} not writable ({error.strerror or error})"
        group.remove()
        return None


# ------------------------------------------------------------------------------------ queue


class WorkQueue:
    """The work queue and its dead-letter queue, and what the pollers have seen done."""

    def __init__(
        self,
        sqs,
        tag: str,
        visibility_s: int = 360,
        max_receive_count: int = MAX_RECEIVE_COUNT,
        retention_s: int | None = None,
        dead_letter_retention_s: int | None = None,
    ):
        """The template's queues by default but for their retention (SQS's default then); the scaled
        scenarios give all of it."""
        self.sqs = sqs
        dead_letter = {"MessageRetentionPeriod": str(dead_letter_retention_s)} if dead_letter_retention_s else {}
        self.dlq_url = sqs.create_queue(QueueName=f"stack-{tag}-dlq", Attributes=dead_letter)["QueueUrl"]
        dlq_arn = self.arn(self.dlq_url)
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
        attributes = {"VisibilityTimeout": str(visibility_s), "RedrivePolicy": json.dumps(redrive)}
        if retention_s:
            attributes["MessageRetentionPeriod"] = str(retention_s)
        self.url = sqs.create_queue(QueueName=f"stack-{tag}", Attributes=attributes)["QueueUrl"]
        self.queue_arn = self.arn(self.url)
        self.lock = threading.Condition()
        self.generation = 0  # grows at every send or release: an idle poller wakes on it
        self.sent_at: dict[str, float] = {}
        self.bodies: dict[str, str] = {}
        self.done_at: dict[str, float] = {}

    def arn(self, url: str) -> str:
        return self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def changed(self):
        with self.lock:
            self.generation += 1
            self.lock.notify_all()

    def wait_change(self, seen: int, timeout: float, stop: threading.Event):
        with self.lock:
            self.lock.wait_for(lambda: self.generation != seen or stop.is_set(), timeout)

    def send(self, bodies: list[str]):
        for start in range(0, len(bodies), 10):
            entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start:start + 10])]
            sent = time.monotonic()
            answer = self.sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
            if answer.get("Failed"):
                raise RuntimeError(f"SendMessageBatch failed: {answer['Failed']}")
            with self.lock:
                for entry in answer["Successful"]:
                    self.sent_at[entry["MessageId"]] = sent
                    self.bodies[entry["MessageId"]] = entries[int(entry["Id"])]["MessageBody"]
            self.changed()

    def receive(self, count: int = BATCH_SIZE):
        with self.lock:
            seen = self.generation
        messages = self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=count,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        return seen, messages

    def delete(self, messages):
        if messages:
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            self.sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)

    def release(self, messages):
        if messages:
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(messages)
            ]
            self.sqs.change_message_visibility_batch(QueueUrl=self.url, Entries=entries)
            self.changed()

    def mark_done(self, message_ids, at: float):
        with self.lock:
            for message_id in message_ids:
                self.done_at.setdefault(message_id, at)

    def done_count(self) -> int:
        with self.lock:
            return len(self.done_at)

    def depth(self) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        names.append("ApproximateNumberOfMessagesDelayed")
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=names)["Attributes"]
        return sum(int(v) for v in attributes.values())

    def dead_letters(self) -> int:
        name = "ApproximateNumberOfMessages"
        return int(self.sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=[name])["Attributes"][name])


class Poller(threading.Thread):
    """One instance's share of the event source mapping: one batch in flight to its own process."""

    def __init__(self, work: WorkQueue, fn: FunctionProcess, stop: threading.Event):
        super().__init__(daemon=True)
        self.work, self.fn, self.stop = work, fn, stop
        self.idle = False
        self.error: BaseException | None = None
        self.invocations = self.function_errors = self.records = self.failed_records = 0
        self.last_success_at: float | None = None

    def run(self):
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, initializer=nice_thread)
        try:
            self._run(pool)
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            self.error = error
        finally:
            pool.shutdown(wait=True)

    def _settle(self, received, ok, answer):
        if ok and isinstance(answer, dict):
            failed = {f.get("itemIdentifier") for f in answer.get("batchItemFailures") or []}
        else:
            failed = {m["MessageId"] for m in received}
        self.work.delete([m for m in received if m["MessageId"] not in failed])
        self.work.release([m for m in received if m["MessageId"] in failed])

    def _run(self, pool):
        next_batch = pool.submit(self.work.receive)
        settling = None
        while True:
            seen, received = next_batch.result()
            if self.stop.is_set():
                break
            if not received:
                if settling is not None:
                    settling.result()
                    settling = None
                self.idle = True
                self.work.wait_change(seen, LONG_POLL_S, self.stop)
                if self.stop.is_set():
                    return
                self.idle = False
                next_batch = pool.submit(self.work.receive)
                continue
            records = [
                sqs_record(m["Body"], m["MessageId"], m["ReceiptHandle"], m.get("Attributes")) for m in received
            ]
            for record in records:
                record["eventSourceARN"] = self.work.queue_arn
            request_id = self.fn.api.enqueue({"Records": records})
            if settling is not None:
                settling.result()
            next_batch = pool.submit(self.work.receive)
            ok, answer, _ = self.fn.api.wait(request_id)
            answered = time.monotonic()
            self.invocations += 1
            self.records += len(received)
            self.function_errors += not ok
            if ok and isinstance(answer, dict):
                failed = {f.get("itemIdentifier") for f in answer.get("batchItemFailures") or []}
            else:
                failed = {m["MessageId"] for m in received}
            succeeded = [m["MessageId"] for m in received if m["MessageId"] not in failed]
            self.failed_records += len(received) - len(succeeded)
            if succeeded:
                self.work.mark_done(succeeded, answered)
                self.last_success_at = answered
            settling = pool.submit(self._settle, received, ok, answer)
        # Stopped with a batch received and not handed over: make it visible again.
        if settling is not None:
            settling.result()
        self.work.release(received)


# ------------------------------------------------------------------------------------ foreign writer


class ForeignWriter(threading.Thread):
    """Another tool of the same account: AssociateOpportunity started at an even pace, each write
    retried as botocore's standard mode retries it (`attempts` in all, backoff with jitter)."""

    def __init__(self, endpoint: str, rate: float, attempts: int):
        super().__init__(daemon=True)
        import boto3
        from botocore.config import Config

        self.client = boto3.client(
            "partnercentral-selling",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"mode": "standard", "total_max_attempts": attempts}),
        )
        self.interval = 1.0 / rate
        self.stop = threading.Event()
        self.ok = self.failed = 0
        self.error_codes: dict[str, int] = {}

    def run(self):
        from botocore.exceptions import ClientError

        due = time.monotonic()
        while not self.stop.is_set():
            try:
                self.client.associate_opportunity(
                    Catalog="Sandbox",
                    OpportunityIdentifier=FOREIGN_OPPORTUNITY,
                    RelatedEntityType="Solutions",
                    RelatedEntityIdentifier=FOREIGN_SOLUTION,
                )
                self.ok += 1
            except Exception as error:  # noqa: BLE001 - a failed write of the other tool, counted
                self.failed += 1
                code = error.response.get("Error", {}).get("Code", "?") if isinstance(error, ClientError) else None
                code = code or type(error).__name__
                self.error_codes[code] = self.error_codes.get(code, 0) + 1
            # The next write starts on the schedule, or at once when retries made this one late.
            due = max(due + self.interval, time.monotonic() - self.interval)
            self.stop.wait(max(0.0, due - time.monotonic()))


# ------------------------------------------------------------------------------------ the stack


class Stack:
    """N function processes, each under its own Runtime API, and N pollers on one work queue."""

    def __init__(self, ctx, mode: str, instances: int, cpu_limit: bool, tag: str):
        self.ctx, self.mode, self.instances, self.tag = ctx, mode, instances, tag
        self.work = WorkQueue(ctx.sqs, tag)
        self.table = None
        if mode in MODES_WITH_TABLE:
            self.table = create_write_slots_table(ctx.dynamodb, f"stack-write-slots-{tag}")
        self.env = dict(queue_env(self.work.dlq_url, ctx.moto.endpoint))
        self.env.update(mode_env(mode, ctx.args.quota, instances, self.table, ctx.tables.endpoint))
        self.functions: list[FunctionProcess] = []
        self.groups: list[CpuGroup] = []
        self.stop_event = threading.Event()
        self.pollers: list = []
        self.mapping: EventSourceMapping | None = None
        kind = {"name": "stack", "command": [ctx.args.rust]}
        try:
            for i in range(instances):
                log = os.path.join(ctx.args.logs, f"{tag}-{i}.log")
                self.functions.append(FunctionProcess(kind, ctx.emulator.endpoint, self.env, log))
            for fn in self.functions:
                fn.wait_init()
            # After init: Lambda runs init on a full vCPU, invocations on the memory's share of one.
            if cpu_limit:
                for i, fn in enumerate(self.functions):
                    group = CpuGroup(f"bench-stack-{tag}-{i}")
                    self.groups.append(group)
                    group.add(fn.proc.pid)
        except BaseException:
            self.close()
            raise
        self.cpu_before = [fn.cpu_ns() for fn in self.functions]

    def start_pollers(self):
        if self.ctx.args.mapping == "lambda":
            settings = lambda_mapping_settings(self.ctx.args.template)
            self.pollers = [
                LambdaPoller(self.work, Environment(self.restart(i), fn), settings, self.stop_event)
                for i, fn in enumerate(self.functions)
            ]
        else:
            self.pollers = [Poller(self.work, fn, self.stop_event) for fn in self.functions]
        self.mapping = EventSourceMapping(self.pollers, self.stop_event, self.work)
        self.mapping.start()

    def restart(self, instance: int):
        def start(generation: int) -> FunctionProcess:
            log = os.path.join(self.ctx.args.logs, f"{self.tag}-{instance}.{generation}.log")
            kind = {"name": "stack", "command": [self.ctx.args.rust]}
            return FunctionProcess(kind, self.ctx.emulator.endpoint, self.env, log)

        return start

    def cpu_figures(self) -> dict:
        cpu = [
            (after - before) / 1e6 if None not in (before, after) else None
            for before, after in zip(self.cpu_before, (fn.cpu_ns() for fn in self.functions))
        ]
        groups = [g.stats() for g in self.groups]
        return {
            "function_cpu_ms": cpu,
            "cfs_nr_periods": sum(g.get("nr_periods", 0) for g in groups) if groups else None,
            "cfs_nr_throttled": sum(g.get("nr_throttled", 0) for g in groups) if groups else None,
            "cfs_throttled_ms": sum(g.get("throttled_time", 0) for g in groups) / 1e6 if groups else None,
        }

    def close(self):
        self.stop_event.set()
        for fn in self.functions:
            fn.stop()
        for group in self.groups:
            group.remove()
        if self.table:
            try:
                self.ctx.dynamodb.delete_table(TableName=self.table)
            except Exception:  # noqa: BLE001 - moto goes away at the end anyway
                pass


class Context:
    def __init__(self, args, emulator: Emulator, moto: Moto, tables: Moto, entities: Entities, seed: dict):
        self.args, self.emulator, self.moto, self.entities, self.seed = args, emulator, moto, entities, seed
        # DynamoDB in a moto server of its own: in AWS it is another service than SQS, and the
        # harness's own SQS traffic (sends, receives, deletes of N pollers) must not slow the table.
        self.tables = tables
        self.sqs, self.dynamodb = aws_clients(moto, tables)


    def reset_emulator(self, burst: float):
        self.emulator.reset(
            self.seed,
            latency_ms=self.args.latency,
            write={"Rate": self.args.quota, "Burst": burst},
            read={"Rate": 10.0, "Burst": 10.0},
        )

    def bodies(self, count: int) -> list[str]:
        self.entities.rewind()
        return [json.dumps(self.entities.document()) for _ in range(count)]


def create_write_slots_table(dynamodb, name: str) -> str:
    """The write-slots table as the template declares it (key `pk`, a string; on demand)."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def aws_clients(moto: Moto, tables: Moto):
    """The harness's SQS and DynamoDB clients: one attempt per call, a connection for every poller."""
    import boto3
    from botocore.config import Config

    client = dict(
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(max_pool_connections=50, retries={"total_max_attempts": 1}),
    )
    return boto3.client("sqs", endpoint_url=moto.endpoint, **client), boto3.client(
        "dynamodb", endpoint_url=tables.endpoint, **client
    )


def lambda_mapping_settings(template_path: str) -> MappingSettings:
    """The template's event source mapping, unscaled."""
    t = Template(template_path).summary()
    return MappingSettings(
        concurrency=t["maximum_concurrency"],
        batch_size=t["batch_size"],
        batching_window_s=t["batching_window_s"],
        function_timeout_s=t["function_timeout_s"],
    )


def operation(emulator: Emulator, name: str) -> dict:
    return emulator.control("state").get("Operations", {}).get(name, {})


def drain(ctx: Context, mode: str, instances: int, burst: float, cpu_limit: bool, foreign: float) -> dict:
    """A backlog of --messages drained by the stack; with `foreign`, beside the foreign writer for the
    first part of it (until --foreign-backlog of the backlog is done or --foreign-seconds have passed,
    whichever comes first)."""
    args = ctx.args
    cpu = "cpu" if cpu_limit else "free"
    tag = f"{mode}-{instances}-b{burst:g}-{cpu}-f{round(100 * foreign)}-{uuid.uuid4().hex[:6]}"
    load = os.getloadavg()[0]
    ctx.reset_emulator(burst)
    stack = Stack(ctx, mode, instances, cpu_limit, tag)
    writer = ForeignWriter(ctx.emulator.endpoint, foreign * args.quota, args.foreign_attempts) if foreign else None
    foreign_stop = None
    try:
        stack.work.send(ctx.bodies(args.messages))
        # The counters start here: what init did (one warm-up read each) is not the drain's.
        base = operation(ctx.emulator, "DisassociateOpportunity")
        started = time.monotonic()
        stack.start_pollers()
        if writer:
            writer.start()
        capped = False
        while True:
            stack.mapping.check()
            now = time.monotonic()
            if writer and foreign_stop is None:
                done = stack.work.done_count() >= args.messages * args.foreign_backlog
                if done or now - started >= args.foreign_seconds:
                    writer.stop.set()
                    writer.join()
                    at = time.monotonic()
                    successes = operation(ctx.emulator, "DisassociateOpportunity").get("Successes", 0)
                    foreign_stop = {"at_s": at - started, "stack_successes": successes - base.get("Successes", 0)}
            if now - started > args.drain_cap:
                capped = True
                break
            if stack.mapping.all_idle() and stack.work.depth() == 0:
                break
            time.sleep(0.05)
        stack.mapping.stop()
        stack.mapping.check()
        ends = [p.last_success_at for p in stack.pollers if p.last_success_at is not None]
        elapsed = (time.monotonic() if capped or not ends else max(ends)) - started
        counters = operation(ctx.emulator, "DisassociateOpportunity")
        if writer and foreign_stop is None:
            # It wrote through the whole drain: "while" is all of it.
            writer.stop.set()
            writer.join()
            foreign_stop = {"at_s": elapsed, "stack_successes": counters.get("Successes", 0) - base.get("Successes", 0)}
        foreign_counters = operation(ctx.emulator, "AssociateOpportunity")
        result = {
            "mode": mode,
            "instances": instances,
            "burst": burst,
            "cpu_limit": cpu_limit,
            "foreign": foreign,
            "load_1min_before": load,
            "env": {k: v for k, v in stack.env.items() if k not in ("DEAD_LETTER_QUEUE_URL",)},
            "messages": args.messages,
            "elapsed_s": elapsed,
            "stopped_by_cap": capped,
            "calls": counters.get("Calls", 0) - base.get("Calls", 0),
            "successful_writes": counters.get("Successes", 0) - base.get("Successes", 0),
            "throttled": counters.get("QuotaThrottled", 0) - base.get("QuotaThrottled", 0),
            "dead_letters": stack.work.dead_letters(),
            "left_in_queue": stack.work.depth(),
        }
        result["quota_fraction"] = result["successful_writes"] / (elapsed * args.quota) if elapsed > 0 else None
        result["throttled_per_write"] = (
            result["throttled"] / result["successful_writes"] if result["successful_writes"] else None
        )
        if writer:
            writer.stop.set()
            writer.join()
            result["foreign_writer"] = {
                "rate": foreign * args.quota,
                "attempts_per_write": args.foreign_attempts,
                "writes_ok": writer.ok,
                "writes_failed": writer.failed,
                "error_codes": writer.error_codes,
                "emulator": {k: foreign_counters.get(k, 0) for k in ("Calls", "Successes", "QuotaThrottled")},
            }
            if foreign_stop:
                # Stopped by the backlog's end, it is stopped (and joined) just after the last write.
                foreign_stop["at_s"] = min(foreign_stop["at_s"], elapsed)
                during_s = foreign_stop["at_s"]
                after_s = elapsed - during_s
                after_writes = result["successful_writes"] - foreign_stop["stack_successes"]
                foreign_stop["fraction_during"] = foreign_stop["stack_successes"] / (during_s * args.quota)
                foreign_stop["fraction_after"] = after_writes / (after_s * args.quota) if after_s > 0.5 else None
                foreign_stop["after_s"] = after_s
            result["foreign_phase"] = foreign_stop
        result.update(stack.mapping.figures())
        result.update(stack.cpu_figures())
        return result
    finally:
        if writer:
            writer.stop.set()
        stack.close()


def burst_to_idle(ctx: Context, mode: str, instances: int, burst: float, cpu_limit: bool) -> dict:
    """--burst-messages sent at once to a stack that has been idle for a second: enqueue to done."""
    args = ctx.args
    tag = f"spike-{mode}-{instances}-b{burst:g}-{'cpu' if cpu_limit else 'free'}-{uuid.uuid4().hex[:6]}"
    load = os.getloadavg()[0]
    ctx.reset_emulator(burst)
    stack = Stack(ctx, mode, instances, cpu_limit, tag)
    try:
        base = operation(ctx.emulator, "DisassociateOpportunity")
        stack.start_pollers()
        time.sleep(1.0)
        stack.work.send(ctx.bodies(args.burst_messages))
        sent_ids = set(stack.work.sent_at)
        started = time.monotonic()
        capped = False
        while True:
            stack.mapping.check()
            if sent_ids <= set(stack.work.done_at):
                break
            if stack.mapping.all_idle() and stack.work.depth() == 0:
                break  # what is not done went to the dead-letter queue
            if time.monotonic() - started > args.drain_cap:
                capped = True
                break
            time.sleep(0.02)
        stack.mapping.stop()
        latencies = [
            (stack.work.done_at[m] - stack.work.sent_at[m]) * 1000 for m in sent_ids if m in stack.work.done_at
        ]
        counters = operation(ctx.emulator, "DisassociateOpportunity")
        result = {
            "mode": mode,
            "instances": instances,
            "burst": burst,
            "cpu_limit": cpu_limit,
            "load_1min_before": load,
            "messages": len(sent_ids),
            "done": len(latencies),
            "stopped_by_cap": capped,
            "median_ms": statistics.median(latencies) if latencies else None,
            "p99_ms": percentile(latencies, 0.99),
            "max_ms": max(latencies) if latencies else None,
            "throttled": counters.get("QuotaThrottled", 0) - base.get("QuotaThrottled", 0),
            "dead_letters": stack.work.dead_letters(),
            "latencies_ms": sorted(latencies),
        }
        result.update(stack.mapping.figures())
        result.update(stack.cpu_figures())
        return result
    finally:
        stack.close()


# ------------------------------------------------------------------------------------ report


def percent(fraction) -> str:
    return fmt(100 * fraction, 1, " %") if fraction is not None else "-"


def cpu_label(on: bool) -> str:
    return "128 MB share" if on else "none"


def table(results: dict) -> str:
    cfg = results["config"]
    out = []
    limit = cfg["lambda_cpu"]
    if limit["applied"]:
        cpu = (
            f"CPU limit: applied where the CPU column says so (cgroup v1 cpu group per process after its init, "
            f"cfs_quota_us {limit['quota_us']} of period {limit['period_us']} = "
            f"{LAMBDA_MEMORY_MB}/{FULL_VCPU_MB} of a vCPU)"
        )
    else:
        cpu = f"CPU limit: NOT applied ({limit['reason']})"
    out.append(
        f"Stack: write quota {cfg['quota']:g}/s for the whole account (emulator token bucket), API latency "
        f"{cfg['latency_ms']} ms, batch size {BATCH_SIZE}, maxReceiveCount {MAX_RECEIVE_COUNT}, one process and "
        f"one poller per instance on one queue. {cpu}. Load average (1 min) before: {results['load_before']}."
    )
    drains = [d for d in results["drains"] if not d["foreign"]]
    if drains:
        out += ["", f"Backlog drain of {cfg['messages']} messages:", ""]
        out.append(
            "| mode | instances | bucket | CPU limit | quota used | throttled (% of writes) | dead letters "
            "| left in queue | elapsed | load |"
        )
        out.append("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
        for d in drains:
            out.append(
                f"| {d['mode']} | {d['instances']} | {d['burst']:g} | {cpu_label(d['cpu_limit'])} "
                f"| {percent(d['quota_fraction'])} "
                f"| {d['throttled']} ({fmt(100 * (d['throttled_per_write'] or 0), 1, ' %')}) "
                f"| {d['dead_letters']} | {d['left_in_queue']} "
                f"| {fmt(d['elapsed_s'], 1, ' s')}{' (cap)' if d['stopped_by_cap'] else ''} "
                f"| {d['load_1min_before']:.2f} |"
            )
    foreign = [d for d in results["drains"] if d["foreign"]]
    if foreign:
        out += [
            "",
            f"Beside a foreign writer (AssociateOpportunity in the same account) at the given share of the quota, "
            f"until {100 * cfg['foreign_backlog']:g} % of the backlog is done or {cfg['foreign_seconds']:g} s:",
            "",
        ]
        out.append(
            "| mode | instances | bucket | CPU limit | foreign | it stopped at | quota used while | after | "
            "overall | throttled (stack) | dead letters | left in queue "
            "| foreign writes ok / given up / throttled answers | elapsed | load |"
        )
        out.append("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for d in foreign:
            phase = d.get("foreign_phase") or {}
            fw = d.get("foreign_writer", {})
            out.append(
                f"| {d['mode']} | {d['instances']} | {d['burst']:g} | {cpu_label(d['cpu_limit'])} "
                f"| {100 * d['foreign']:g} % | {fmt(phase.get('at_s'), 1, ' s')} "
                f"| {percent(phase.get('fraction_during'))} | {percent(phase.get('fraction_after'))} "
                f"| {percent(d['quota_fraction'])} "
                f"| {d['throttled']} ({fmt(100 * (d['throttled_per_write'] or 0), 1, ' %')}) "
                f"| {d['dead_letters']} | {d['left_in_queue']} "
                f"| {fw.get('writes_ok', '-')} / {fw.get('writes_failed', '-')} "
                f"/ {fw.get('emulator', {}).get('QuotaThrottled', '-')} "
                f"| {fmt(d['elapsed_s'], 1, ' s')}{' (cap)' if d['stopped_by_cap'] else ''} "
                f"| {d['load_1min_before']:.2f} |"
            )
    bursts = results["bursts"]
    if bursts:
        title = f"A burst of {cfg['burst_messages']} messages to an idle stack, from sent to the queue to done:"
        out += ["", title, ""]
        out.append("| mode | instances | bucket | CPU limit | median | p99 | max | throttled | dead letters | load |")
        out.append("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
        for b in bursts:
            out.append(
                f"| {b['mode']} | {b['instances']} | {b['burst']:g} | {cpu_label(b['cpu_limit'])} "
                f"| {fmt(b['median_ms'], 0, ' ms')} | {fmt(b['p99_ms'], 0, ' ms')} | {fmt(b['max_ms'], 0, ' ms')} "
                f"| {b['throttled']} | {b['dead_letters']} | {b['load_1min_before']:.2f} |"
            )
    return "\n".join(out)


# ------------------------------------------------------------------------------------ main


def numbers(text: str, kind=int) -> list:
    return [kind(x) for x in text.split(",") if x.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rust", required=True, help="the function's release binary")
    parser.add_argument("--emulator", required=True, help="partner-central-emulator binary")
    parser.add_argument("--moto", required=True, help="moto_server")
    parser.add_argument("--modes", default="static,shared", help=f"comma-separated, of: {', '.join(MODES)}")
    parser.add_argument("--instances", default=None, help="comma-separated (default 1,2,5)")
    parser.add_argument("--burst", default=None, help="emulator write bucket sizes, comma-separated (default 1,2)")
    parser.add_argument("--quota", type=float, default=10.0, help="the account's write quota, per second")
    parser.add_argument("--messages", type=int, default=None, help="backlog per drain (default 200)")
    parser.add_argument("--latency", type=int, default=50, help="API latency added by the emulator, ms")
    parser.add_argument("--foreign", type=float, default=0.2, help="foreign writer's share of the quota (0: none)")
    parser.add_argument(
        "--foreign-burst", default=None, help="bucket sizes for the rows with the foreign writer (default 1)"
    )
    parser.add_argument(
        "--foreign-seconds", type=float, default=None, help="the foreign writer stops after this (default 10)"
    )
    parser.add_argument(
        "--foreign-backlog", type=float, default=0.5, help="it stops once this share of the backlog is done"
    )
    parser.add_argument(
        "--foreign-attempts", type=int, default=3, help="the foreign writer's attempts per write (botocore's 3)"
    )
    parser.add_argument("--burst-messages", type=int, default=None, help="the burst to an idle stack (default 30)")
    parser.add_argument(
        "--lambda-cpu",
        choices=("auto", "on", "off", "both"),
        default="auto",
        help="cgroup CPU limit per process at 128/1769 of a vCPU (auto: when possible; both: every row twice)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="run every scenario this many times (a row each)")
    parser.add_argument("--drain-cap", type=float, default=150, help="seconds before a drain is stopped")
    parser.add_argument("--quick", action="store_true", help="a smaller run: 60 messages, instances 1,2, bucket 1")
    parser.add_argument("--no-drains", action="store_true")
    parser.add_argument("--no-bursts", action="store_true")
    parser.add_argument(
        "--scenario",
        default="stack",
        help="comma-separated, of: stack (the scenarios above); in scaled time, budget (the day's write budget) "
        "and review (a request on an opportunity under AWS's review)",
    )
    parser.add_argument(
        "--mapping",
        choices=("lambda", "instant"),
        default=None,
        help="the event source mapping: lambda (failed records come back after their visibility timeout, the "
        "function's timeout enforced; the default for budget) or instant (made visible again at once, as "
        "published until 2026-12-04; the default for stack)",
    )
    parser.add_argument("--template", default=default_path(), help="the SAM template the stack follows")
    parser.add_argument("--backlog", type=int, default=150, help="budget: the backlog")
    parser.add_argument("--cap-windows", type=float, default=8, help="budget, review: windows before a run is stopped")
    parser.add_argument("--requests", type=int, default=20, help="review: the requests")
    parser.add_argument("--review-seconds", type=float, default=15, help="review: how long the review lasts")
    parser.add_argument("--out", required=True, help="where the JSON goes")
    parser.add_argument("--logs", required=True, help="a folder for the functions' output")
    args = parser.parse_args()

    scenarios = [x for x in args.scenario.split(",") if x]
    for scenario in scenarios:
        if scenario not in ("stack", "budget", "review"):
            parser.error(f"unknown scenario {scenario!r}")
    if "stack" not in scenarios:
        return main_scaled(args, scenarios)
    if len(scenarios) > 1:
        parser.error("stack runs alone: its results and --out are its own")
    args.mapping = args.mapping or "instant"

    quick = args.quick
    args.instances = numbers(args.instances or ("1,2" if quick else "1,2,5"))
    args.burst = numbers(args.burst or ("1" if quick else "1,2"), float)
    args.foreign_burst = numbers(args.foreign_burst or "1", float)
    args.messages = args.messages or (60 if quick else 200)
    args.foreign_seconds = args.foreign_seconds or (3.0 if quick else 10.0)
    args.burst_messages = args.burst_messages or (10 if quick else 30)
    modes = [m for m in args.modes.split(",") if m]
    for mode in modes:
        if mode not in MODES:
            parser.error(f"unknown mode {mode!r}; known: {', '.join(MODES)}")

    reason = CpuGroup.check()
    if args.lambda_cpu == "on" and reason:
        parser.error(f"--lambda-cpu on: {reason}")
    cpu_settings = {"auto": [reason is None], "on": [True], "off": [False], "both": [True, False]}[args.lambda_cpu]
    if reason:
        cpu_settings = [False]
        print(f"  CPU limit not applied: {reason}", file=sys.stderr, flush=True)

    os.makedirs(args.logs, exist_ok=True)
    entities = Entities(max(args.messages, args.burst_messages))
    seed = dict(entities.seed)
    seed["Opportunities"] = entities.seed["Opportunities"] + [
        {"Catalog": "Sandbox", "Id": FOREIGN_OPPORTUNITY, "RelatedEntityIdentifiers": {"Solutions": []}}
    ]
    seed_path = os.path.join(args.logs, "seed.json")
    with open(seed_path, "w") as f:
        json.dump(seed, f)

    period = 100000
    try:
        with open(os.path.join(CpuGroup.ROOT, "cpu.cfs_period_us")) as f:
            period = int(f.read())
    except OSError:
        pass
    results = {
        "machine": machine(),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "config": {
            "modes": modes,
            "mode_descriptions": {m: MODES[m] for m in modes},
            "instances": args.instances,
            "buckets": args.burst,
            "quota": args.quota,
            "messages": args.messages,
            "latency_ms": args.latency,
            "foreign": args.foreign,
            "foreign_buckets": args.foreign_burst,
            "foreign_seconds": args.foreign_seconds,
            "foreign_backlog": args.foreign_backlog,
            "foreign_attempts": args.foreign_attempts,
            "repeat": args.repeat,
            "burst_messages": args.burst_messages,
            "batch_size": BATCH_SIZE,
            "max_receive_count": MAX_RECEIVE_COUNT,
            "lambda_cpu": {
                "asked": args.lambda_cpu,
                "applied": any(cpu_settings),
                "settings": cpu_settings,
                "reason": reason or ("off as asked" if not any(cpu_settings) else None),
                "period_us": period,
                "quota_us": int(period * LAMBDA_MEMORY_MB / FULL_VCPU_MB),
            },
        },
        "drains": [],
        "bursts": [],
    }
    emulator = Emulator(args.emulator, seed_path)
    moto = Moto(args.moto)
    tables = Moto(args.moto)
    try:
        ctx = Context(args, emulator, moto, tables, entities, seed)
        plan = []
        for mode in modes:
            for cpu in cpu_settings:
                if not args.no_drains:
                    plan += [("drain", mode, n, b, cpu, 0.0) for n in args.instances for b in args.burst]
                    if args.foreign:
                        plan += [
                            ("drain", mode, n, b, cpu, args.foreign) for n in args.instances for b in args.foreign_burst
                        ]
                if not args.no_bursts:
                    plan += [("burst", mode, n, args.burst[0], cpu, 0.0) for n in args.instances]
        plan = [step for step in plan for _ in range(args.repeat)]
        for i, (kind, mode, n, b, cpu, foreign) in enumerate(plan):
            label = f"{kind} {mode}, {n} instance(s), bucket {b:g}, CPU {cpu_label(cpu)}" + (
                f", foreign {foreign:g}" if foreign else ""
            )
            print(f"  [{i + 1}/{len(plan)}] {label} ...", file=sys.stderr, flush=True)
            if kind == "drain":
                r = drain(ctx, mode, n, b, cpu, foreign)
                results["drains"].append(r)
                summary = {k: r.get(k) for k in ("quota_fraction", "throttled", "dead_letters", "elapsed_s")}
                if foreign:
                    summary["foreign_phase"] = r.get("foreign_phase")
            else:
                r = burst_to_idle(ctx, mode, n, b, cpu)
                results["bursts"].append(r)
                summary = {k: r.get(k) for k in ("median_ms", "p99_ms", "throttled", "dead_letters")}
            print(f"      {json.dumps(summary, default=str)}", file=sys.stderr, flush=True)
    finally:
        moto.stop()
        tables.stop()
        emulator.stop()

    results["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results["table"] = table(results)
    report(results, args.out, f"Load average after: {results['load_after']}.")
    return 0


def report(results: dict, out: str, load: str):
    """The JSON in `out`; the machine, the table and `load` on stdout."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(results, f, indent=2, default=str)
    m = results["machine"]
    print()
    print(f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']} {m['arch']}; Python {m['python']}.")
    print()
    print(results["table"])
    print()
    print(f"{load} JSON: {out}")


def main_scaled(args, scenarios: list[str]) -> int:
    import scaled

    args.mapping = args.mapping or "lambda"
    reason = CpuGroup.check()
    if args.lambda_cpu == "on" and reason:
        sys.exit(f"--lambda-cpu on: {reason}")
    args.cpu_limit = args.lambda_cpu in ("on", "auto", "both") and reason is None
    os.makedirs(args.logs, exist_ok=True)
    moto = Moto(args.moto)
    tables = Moto(args.moto)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    try:
        progress = lambda line: print(f"  {line}", file=sys.stderr, flush=True)  # noqa: E731
        results = scaled.run(args, moto, tables, scenarios, progress)
    finally:
        moto.stop()
        tables.stop()
    results["machine"] = machine()
    results["load_before"] = load
    results["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results["table"] = scaled.table(results)
    report(results, args.out, f"Load average before: {load}; after: {results['load_after']}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
