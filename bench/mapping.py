"""Lambda's SQS event source mapping, as Lambda runs it, for the scaled scenarios (bench/scaled.py).

- `MaximumConcurrency` pollers on one queue, each invoking its own execution environment (a function
  process under its own Runtime API) with one batch at a time: with reserved concurrency equal to
  `MaximumConcurrency` (the template's), no invocation is throttled and none waits.
- A batch is up to `BatchSize` records; an idle poller invokes once it has a full batch or the
  batching window has passed since its first record.
- Each invocation's deadline is the function's timeout after it is handed over. An answer that has
  not arrived by then is a timeout: the batch fails whole and the environment is replaced (killed,
  and a new process started and initialised before its next invocation), as after a crash.
- The records the answer does not report failed are deleted. A failed record, or the whole batch
  when the invocation errs, times out or crashes, is left alone: it comes back when its visibility
  timeout runs out, and SQS (moto) counts the receive and moves it to the dead-letter queue past
  `maxReceiveCount`. A `ChangeMessageVisibility` by the function itself holds, as in SQS, and so
  does a message's `DelaySeconds` (moto's server keeps both); message attributes reach the function
  as Lambda gives them (a held message's hold travels in them).
- Polling is a short receive every `poll_interval_s`: moto's long poll does not wake when a message's
  visibility runs out, SQS's does.

`DeadLetters` watches the dead-letter queue: each message with the time it arrived, its `ErrorCode`
(the worker's own dead letters carry one, as Lambda's do; a redrive by SQS carries none).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from botocore.exceptions import ClientError

from driver import FunctionProcess, sqs_record


RECEIVING = threading.Lock()


@dataclass(frozen=True)
class MappingSettings:
    concurrency: int
    batch_size: int
    batching_window_s: float
    function_timeout_s: float
    poll_interval_s: float = 0.1


def failed_ids(received: list[dict], kind: str, ok, answer) -> set[str]:
    """The message ids Lambda takes as failed from an invocation's end (ReportBatchItemFailures):
    all of them after an error, a timeout or a crash, or an answer that names an empty, missing or
    unknown `itemIdentifier`; otherwise those named."""
    every = {m["MessageId"] for m in received}
    if kind != "answered" or not ok:
        return every
    if answer is None or answer == {} or (isinstance(answer, dict) and not answer.get("batchItemFailures")):
        return set()
    if not isinstance(answer, dict) or not isinstance(answer.get("batchItemFailures"), list):
        return every
    named = set()
    for failure in answer["batchItemFailures"]:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in every:
            return every
        named.add(identifier)
    return named


class Environment:
    """One execution environment: a function process, replaced after a timeout or a crash."""

    def __init__(self, start, fn: FunctionProcess | None = None, after_init=None):
        """`start(generation)` starts a function process (not waiting for its init); `fn`, one
        already started; `after_init(fn, generation)`, if given, runs once a process's init is over."""
        self.start, self.after_init = start, after_init
        self.generation = 0 if fn is None else 1
        self.fn = fn
        self.inits_ms: list[float] = []
        self.lock = threading.Lock()

    def ready(self) -> FunctionProcess:
        with self.lock:
            if self.fn is None:
                self.fn = self.start(self.generation)
                self.inits_ms.append(self.fn.wait_init())
                if self.after_init:
                    self.after_init(self.fn, self.generation)
                self.generation += 1
            return self.fn

    def replace(self):
        """Lambda stops a timed-out environment at once; the next invocation starts a new one."""
        if self.fn is not None:
            if self.fn.proc.poll() is None:
                self.fn.proc.kill()
            self.fn.stop()
            self.fn = None

    def close(self):
        if self.fn is not None:
            self.fn.stop()
            self.fn = None


class LambdaPoller(threading.Thread):
    def __init__(self, work, environment: Environment, settings: MappingSettings, stop: threading.Event):
        super().__init__(daemon=True)
        self.work, self.environment, self.settings, self.stop = work, environment, settings, stop
        self.invocations = self.records = self.failed_records = 0
        self.function_errors = self.timeouts = self.crashes = self.sqs_errors = 0
        self.last_success_at: float | None = None
        self.idle = True
        self.error: BaseException | None = None

    def run(self):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # after the Runtime API's threads
        try:
            while not self.stop.is_set():
                self.environment.ready()
                batch = self.gather()
                if batch:
                    self.invoke(batch)
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            self.error = error

    def gather(self) -> list[dict]:
        settings = self.settings
        batch: list[dict] = []
        first_at = None
        while not self.stop.is_set():
            got = self.receive(settings.batch_size - len(batch))
            batch += got
            now = time.monotonic()
            if got and first_at is None:
                first_at = now
            if len(batch) >= settings.batch_size:
                break
            if first_at is not None and now - first_at >= settings.batching_window_s:
                break
            self.idle = not batch
            wait = settings.poll_interval_s
            if first_at is not None:
                wait = min(wait, first_at + settings.batching_window_s - now)
            self.stop.wait(max(0.0, wait))
        if self.stop.is_set():
            return []  # a batch received and not handed over comes back after its visibility timeout
        self.idle = False
        return batch

    def receive(self, count: int) -> list[dict]:
        """One receive, one poller at a time: moto's server fails (500) when two receives find the
        same message past maxReceiveCount. An error is retried at the next poll, as Lambda's pollers
        retry theirs."""
        try:
            with RECEIVING:
                return self.work.receive(count)[1]
        except ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) < 500:
                raise
            self.sqs_errors += 1
            return []

    def invoke(self, received: list[dict]):
        fn = self.environment.ready()
        records = [
            sqs_record(m["Body"], m["MessageId"], m["ReceiptHandle"], m.get("Attributes"), m.get("MessageAttributes"))
            for m in received
        ]
        for record in records:
            record["eventSourceARN"] = self.work.queue_arn
        request_id = fn.api.enqueue({"Records": records})
        kind, ok, answer, _ = fn.api.outcome(request_id, alive=lambda: fn.proc.poll() is None)
        answered = time.monotonic()
        self.invocations += 1
        self.records += len(received)
        self.timeouts += kind == "timeout"
        self.crashes += kind == "crash"
        self.function_errors += kind == "answered" and not ok
        if kind != "answered":
            self.environment.replace()
        failed = failed_ids(received, kind, ok, answer)
        self.failed_records += len(failed)
        succeeded = [m for m in received if m["MessageId"] not in failed]
        if succeeded:
            self.work.mark_done([m["MessageId"] for m in succeeded], answered)
            self.last_success_at = answered
        for _ in range(3):
            try:
                self.work.delete(succeeded)
                break
            except ClientError as error:
                if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) < 500:
                    raise
                self.sqs_errors += 1


class EventSourceMapping:
    """The pollers of one mapping: `LambdaPoller`s, or stack.py's `Poller`s (failed records made
    visible again at once, no timeout enforced: the harness before 2026-12-05)."""

    def __init__(self, pollers: list, stop_event: threading.Event, work):
        self.pollers, self.stop_event, self.work = pollers, stop_event, work

    def start(self):
        for poller in self.pollers:
            poller.start()

    def check(self):
        for poller in self.pollers:
            if poller.error is not None:
                raise RuntimeError(f"a poller failed: {poller.error!r}") from poller.error

    def all_idle(self) -> bool:
        return all(p.idle for p in self.pollers)

    def stop(self):
        self.stop_event.set()
        self.work.changed()  # an idle `Poller` waits for it
        for poller in self.pollers:
            poller.join(timeout=90)

    def figures(self) -> dict:
        out = {}
        names = ("invocations", "records", "failed_records", "function_errors", "timeouts", "crashes", "sqs_errors")
        for name in names:
            out[name] = sum(getattr(p, name, 0) for p in self.pollers)
        out["invocations_per_instance"] = [p.invocations for p in self.pollers]
        out["environments_started"] = sum(p.environment.generation for p in self.pollers if hasattr(p, "environment"))
        return out


class DeadLetters(threading.Thread):
    """Takes every message off the dead-letter queue as it arrives, and keeps what it says."""

    def __init__(self, sqs, url: str, interval_s: float = 0.2):
        super().__init__(daemon=True)
        self.sqs, self.url, self.interval_s = sqs, url, interval_s
        self.stop = threading.Event()
        self.letters: list[dict] = []
        self.lock = threading.Lock()
        self.error: BaseException | None = None

    def run(self):
        try:
            while not self.stop.is_set():
                if not self.take():
                    self.stop.wait(self.interval_s)
            while self.take():
                pass
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            self.error = error

    def take(self) -> int:
        messages = self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        arrived = time.monotonic()
        with self.lock:
            for m in messages:
                attributes = {k: v.get("StringValue") for k, v in (m.get("MessageAttributes") or {}).items()}
                self.letters.append(
                    {
                        "body": m["Body"],
                        "seen_at": arrived,
                        "error_code": attributes.get("ErrorCode"),
                        "error_message": attributes.get("ErrorMessage"),
                        "sent_timestamp_ms": int(m.get("Attributes", {}).get("SentTimestamp", 0)),
                    }
                )
        if messages:
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            self.sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)
        return len(messages)

    def snapshot(self) -> list[dict]:
        with self.lock:
            return list(self.letters)

    def finish(self):
        self.stop.set()
        self.join(timeout=30)
