#!/usr/bin/env python3
"""The benchmark driver: the Rust function, the Python peer, the SDK floor and the bare floor, side by side.

Run it through `bench/run.sh` (`make bench`), which builds what it needs and gives it its paths.

Everything a function sees is served or started here, on loopback, the same for all four:

- a Lambda Runtime API (`/2018-06-01/runtime/...`), so the driver sees the moment of the first
  `/next` poll (the end of init), when it hands each event over, and when the answer comes back;
- the Partner Central emulator binary (`partner-central-emulator`), its latency and quotas set
  through its control endpoints (`POST /_emulator/faults`, `/_emulator/quotas`, `/_emulator/seed`);
- for the backlog drain, moto's SQS server and an SQS event source mapping in small (one invocation
  at a time; batches of up to 10, the next one received while the function works on this one;
  the records not reported failed deleted, the failed ones made visible again at once: a real
  mapping waits out the visibility timeout, the receive counts and so the redrive to the
  dead-letter queue are the same).

Arrivals (a `/next` poll, an answer) are timed by the kernel (SO_TIMESTAMPNS), not by when a Python
thread got to read them. Figures (each the median over `--runs` fresh processes):

- init: process start (just before exec) to the first `/next` poll;
- first invocation: `/next` answered to the answer received, one SQS record, its API call included;
- warm cost per record: the same, warm, one record per invocation (and per record in batches of
  10), at 0 ms and at 50 ms of API latency added by the emulator, and the CPU the process ran per
  such invocation (`/proc/<pid>/task/*/schedstat`: user and kernel, the loopback's network work
  included); for our function, the share of it spent in the API call, as its own `ApiLatency`
  metric (EMF lines in its output) times the call;
- peak RSS: `VmHWM` of the function's process after all of the above;
- the connection warm-up: the Rust function's cold start with `WARM_UP` on and off, over plain
  HTTP and over HTTPS (a second emulator with `--tls`, its certificate authority trusted through
  `SSL_CERT_FILE`), with the TLS handshakes the emulator saw during init and during the first
  invocation;
- backlog drain: N messages against the emulator's write quota, fraction of the quota achieved,
  throttled answers, dead letters.

Results: a table on stdout, and JSON in `--out`.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import concurrent.futures
import json
import os
import platform
import queue
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RUNTIME_PREFIX = "/2018-06-01/runtime/"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:bench"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:bench"
INVOKE_TIMEOUT_S = 60  # the template's function timeout
# Between warm invocations: more than the Rust function's pacing interval at its fastest setting
# (1000 writes/s), so that no warm record waits for a write slot and what is measured is its cost.
WARM_GAP_S = 0.005
# The functions measured, in the table's order, with their columns' titles.
FUNCTIONS = {
    "rust": "Rust (this function)",
    "python": "Python peer (boto3 + Powertools)",
    "sdk-floor": "SDK floor (runtime + one SDK call)",
    "floor": "bare lambda_runtime",
}
WARM_UP_KEYS = ("init_ms", "first_invocation_ms", "cold_start_ms", "init_reads")
HTTPS_KEYS = WARM_UP_KEYS + ("init_handshakes", "first_invocation_handshakes")


def now_ns() -> int:
    # The wall clock, as the kernel's receive timestamps below are on it.
    return time.time_ns()


# SO_TIMESTAMPNS: the kernel stamps each received packet with its arrival time, so a reply is timed
# when it arrived, not when a Python thread got round to reading it (after an idle wait, waking a
# thread here costs a few tenths of a millisecond: that is the harness, not the function).
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def arrival_ns(sock: socket.socket) -> int | None:
    """Waits for data on `sock` without consuming it; its kernel arrival time (None at EOF)."""
    data, ancillary, _, _ = sock.recvmsg(1, 64, socket.MSG_PEEK)
    if not data:
        return None
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
            seconds, nanos = struct.unpack("qq", payload[:16])
            return seconds * 1_000_000_000 + nanos
    return now_ns()


def ms(ns: float) -> float:
    return ns / 1e6


def terminate(proc: subprocess.Popen):
    """SIGTERM, and SIGKILL after 5 s."""
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()


def williams(n: int) -> list[list[int]]:
    """The orders of a Williams design for `n` items: over all of them, each item comes right after
    each other item equally often (once for an even `n`, in `n` orders; twice for an odd one, in 2n)."""
    first, low, high = [0], 1, n - 1
    while len(first) < n:
        first.append(low)
        low += 1
        if len(first) < n:
            first.append(high)
            high -= 1
    orders = [[(item + shift) % n for item in first] for shift in range(n)]
    return orders if n % 2 == 0 else orders + [list(reversed(o)) for o in orders]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def most(values):
    values = [v for v in values if v is not None]
    return max(values) if values else None


# ------------------------------------------------------------------------------------ Runtime API


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a function stopped mid-poll resets its connection: expected, not news


class RuntimeApi:
    """A Lambda Runtime API for one function process. `invoke` hands an event over and waits."""

    def __init__(self, timeout_s: float = INVOKE_TIMEOUT_S):
        """`timeout_s`: the function's timeout; each invocation's deadline is that long after it is
        handed over, as Lambda counts it."""
        self.timeout_s = timeout_s
        self.pending: queue.Queue = queue.Queue()
        self.first_poll_ns: int | None = None
        self.first_poll = threading.Event()
        self.lock = threading.Lock()
        self.sent_ns: dict[str, int] = {}
        self.answers: dict[str, tuple[bool, bytes, int]] = {}
        self.answered = threading.Condition(self.lock)
        self.init_error: bytes | None = None
        self.closed = False
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                self.connection.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)

            def handle_one_request(self):
                try:
                    self.arrived = arrival_ns(self.connection)
                except OSError:
                    self.arrived = None
                if self.arrived is None:
                    self.close_connection = True
                    return
                super().handle_one_request()

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None):
                # One write for status line, headers and body: no Nagle/delayed-ACK stalls.
                lines = [f"HTTP/1.1 {status} {'OK' if status < 300 else 'Error'}"]
                for key, value in (headers or {}).items():
                    lines.append(f"{key}: {value}")
                lines.append("Content-Type: application/json")
                lines.append(f"Content-Length: {len(body)}")
                head = ("\r\n".join(lines) + "\r\n\r\n").encode()
                self.wfile.write(head + body)

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def do_GET(self):
                if self.path != RUNTIME_PREFIX + "invocation/next":
                    return self._reply(404, b"{}")
                if api.first_poll_ns is None:
                    api.first_poll_ns = self.arrived
                    api.first_poll.set()
                while True:
                    try:
                        request_id, payload = api.pending.get(timeout=0.5)
                        break
                    except queue.Empty:
                        if api.closed:
                            return self._reply(410, b"{}")
                sent = now_ns()
                deadline_ms = sent // 1_000_000 + int(api.timeout_s * 1000)
                headers = {
                    "Lambda-Runtime-Aws-Request-Id": request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
                }
                with api.lock:
                    api.sent_ns[request_id] = sent
                    api.answered.notify_all()
                self._reply(200, payload, headers)

            def do_POST(self):
                body = self._body()
                received = self.arrived
                parts = self.path[len(RUNTIME_PREFIX):].split("/")
                if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    with api.lock:
                        api.answers[parts[1]] = (parts[2] == "response", body, received)
                        api.answered.notify_all()
                elif parts == ["init", "error"]:
                    api.init_error = body
                    api.first_poll.set()
                self._reply(202, b'{"status":"OK"}')

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def enqueue(self, payload: dict) -> str:
        request_id = str(uuid.uuid4())
        self.pending.put((request_id, json.dumps(payload).encode()))
        return request_id

    def wait(self, request_id: str, timeout: float = INVOKE_TIMEOUT_S + 5):
        """(ok, answer, duration_ms) of an enqueued invocation."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while request_id not in self.answers:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no answer to {request_id} within {timeout} s")
                self.answered.wait(left)
            ok, body, received = self.answers.pop(request_id)
            sent = self.sent_ns.pop(request_id)
        try:
            answer = json.loads(body) if body else None
        except ValueError:
            answer = body.decode(errors="replace")
        return ok, answer, ms(received - sent)

    def invoke(self, payload: dict):
        return self.wait(self.enqueue(payload))

    def outcome(self, request_id: str, alive, grace_s: float = 0.05):
        """How an enqueued invocation ended, as Lambda judges it: ("answered", ok, answer, ms) when
        its answer arrived by the deadline, ("timeout", None, None, ms) when not (an answer after
        the deadline is refused), ("crash", None, None, ms) when `alive()` turned false first. The
        deadline is waited out `grace_s` longer, for this harness's threads to wake."""
        timeout_ns = int(self.timeout_s * 1e9)
        with self.lock:
            while True:
                sent = self.sent_ns.get(request_id)
                if request_id in self.answers:
                    ok, body, received = self.answers.pop(request_id)
                    self.sent_ns.pop(request_id)
                    if received - sent > timeout_ns:
                        return "timeout", None, None, ms(received - sent)
                    try:
                        answer = json.loads(body) if body else None
                    except ValueError:
                        answer = body.decode(errors="replace")
                    return "answered", ok, answer, ms(received - sent)
                if not alive():
                    return "crash", None, None, ms(now_ns() - sent) if sent else 0.0
                if sent is not None and now_ns() - sent > timeout_ns + grace_s * 1e9:
                    self.sent_ns.pop(request_id)
                    return "timeout", None, None, ms(now_ns() - sent)
                self.answered.wait(0.05)

    def close(self):
        self.closed = True
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------------ emulator


class Emulator:
    def __init__(self, binary: str, seed_path: str, ca_file: str | None = None, on_line=None):
        """With `ca_file`, the emulator serves HTTPS and writes its certificate authority there. With
        `on_line`, each line of its per-request log is given to it with the time it was read
        (`time.monotonic()`)."""
        log = os.environ.get("BENCH_EMULATOR_LOG")  # the emulator's per-request log, for debugging
        self.tls = None
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--no-quotas", "--seed", seed_path]
            + (["--tls", ca_file] if ca_file else [])
            + ([] if log or on_line else ["--quiet"]),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if on_line else open(log, "w") if log else subprocess.DEVNULL,
            text=True,
        )
        if on_line:
            threading.Thread(target=self._read_log, args=(on_line,), daemon=True).start()
        line = self.proc.stdout.readline().strip()
        prefix = "partner-central-emulator listening on "
        if not line.startswith(prefix):
            raise RuntimeError(f"the emulator did not start: {line!r}")
        self.endpoint = line[len(prefix):]
        # One keep-alive connection for the control calls: over HTTPS its one handshake comes before
        # the first reset, which zeroes the emulator's counters, so the counts are the function's.
        host, port = self.endpoint.split("://")[1].rsplit(":", 1)
        if ca_file:
            self.tls = ssl.create_default_context(cafile=ca_file)
            self.connection = http.client.HTTPSConnection(host, int(port), timeout=30, context=self.tls)
        else:
            self.connection = http.client.HTTPConnection(host, int(port), timeout=30)

    def _read_log(self, on_line):
        for line in self.proc.stderr:
            on_line(time.monotonic(), line)

    def control(self, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        self.connection.request(
            "GET" if body is None else "POST",
            "/_emulator/" + path,
            body=data,
            headers={"Content-Type": "application/json"},
        )
        response = self.connection.getresponse()
        answer = response.read()
        if response.status != 200:
            raise RuntimeError(f"emulator control {path}: {response.status} {answer!r}")
        return json.loads(answer)

    def reset(self, seed: dict, latency_ms: int = 0, write=None, read=None):
        """A fresh seed (which also zeroes every counter), the latency, and the quotas (None: unlimited)."""
        self.control("seed", seed)
        self.control("faults", {"LatencyMs": latency_ms})
        self.control("quotas", {"Write": write, "Read": read})

    def latency(self, latency_ms: int):
        self.control("faults", {"LatencyMs": latency_ms})

    def probe(self, latency_ms: int, samples: int = 50) -> tuple[float, float]:
        """The API latency as the emulator delivers it (its timer rounds the added latency up): the
        median round trip of one SigV4-signed GetOpportunity, signed once and replayed over one
        keep-alive connection, timed from the send to the answer's arrival in the kernel, so that
        next to nothing but the service's own time is measured. Also how long this thread took to
        run once the answer had arrived: waking a process that has been waiting (idle) that long."""
        from urllib.parse import urlsplit

        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        self.latency(latency_ms)
        body = json.dumps({"Catalog": "Sandbox", "Identifier": "O5000000"}).encode()
        request = AWSRequest(
            method="POST",
            url=self.endpoint + "/",
            data=body,
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": "AWSPartnerCentralSelling.GetOpportunity",
            },
        )
        SigV4Auth(Credentials("test", "test"), "partnercentral-selling", "us-east-1").add_auth(request)
        headers = dict(request.headers.items())
        url = urlsplit(self.endpoint)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        raw = (
            f"POST / HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Length: {len(body)}\r\n{head}\r\n"
        ).encode() + body
        connection = socket.create_connection((url.hostname, url.port), timeout=30)
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        reader = connection.makefile("rb")
        times, wakes = [], []
        try:
            for _ in range(samples + 5):
                started = now_ns()
                connection.sendall(raw)
                arrived = arrival_ns(connection)
                wakes.append(ms(now_ns() - arrived))
                status = reader.readline()
                length = 0
                while (line := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                reader.read(length)
                if not status.split()[1:2] == [b"200"]:
                    raise RuntimeError(f"latency probe answered {status!r}")
                times.append(ms(arrived - started))
                time.sleep(WARM_GAP_S)
        finally:
            reader.close()
            connection.close()
        return statistics.median(times[5:]), statistics.median(wakes[5:])

    def disassociate_counters(self) -> dict:
        operations = self.control("state").get("Operations", {})
        return operations.get("DisassociateOpportunity", {})

    def stop(self):
        self.connection.close()
        terminate(self.proc)


class Entities:
    """Fresh (opportunity, solution) pairs: every record disassociates an entity still associated,
    so every record costs exactly one DisassociateOpportunity call."""

    PER_OPPORTUNITY = 10

    def __init__(self, count: int):
        opportunities = (count + self.PER_OPPORTUNITY - 1) // self.PER_OPPORTUNITY
        self.pairs = []
        self.seed = {"Opportunities": []}
        for o in range(opportunities):
            opportunity = f"O5{o:06d}"
            solutions = [f"S-5{o:06d}{s:02d}" for s in range(self.PER_OPPORTUNITY)]
            self.seed["Opportunities"].append(
                {"Catalog": "Sandbox", "Id": opportunity, "RelatedEntityIdentifiers": {"Solutions": solutions}}
            )
            self.pairs.extend((opportunity, s) for s in solutions)
        self.next = 0

    def rewind(self):
        self.next = 0

    def document(self) -> dict:
        opportunity, solution = self.pairs[self.next]
        self.next += 1
        return {
            "Catalog": "Sandbox",
            "OpportunityIdentifier": opportunity,
            "RelatedEntityType": "Solutions",
            "RelatedEntityIdentifier": solution,
        }


def lambda_message_attributes(attributes: dict | None) -> dict:
    """A received message's attributes (boto3's shape) as Lambda's event source mapping gives them."""
    out = {}
    for name, a in (attributes or {}).items():
        binary = a.get("BinaryValue")
        out[name] = {
            "stringValue": a.get("StringValue"),
            "binaryValue": base64.b64encode(binary).decode() if binary is not None else None,
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": a["DataType"],
        }
    return out


def sqs_record(
    body: str, message_id: str | None = None, receipt: str | None = None, attributes=None, message_attributes=None
) -> dict:
    """An SQS message as Lambda's event source mapping delivers it (`message_attributes` in boto3's shape)."""
    millis = str(int(time.time() * 1000))
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": receipt or "bench",
        "body": body,
        "attributes": attributes
        or {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": millis,
            "SenderId": "123456789012",
            "ApproximateFirstReceiveTimestamp": millis,
        },
        "messageAttributes": lambda_message_attributes(message_attributes),
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": "us-east-1",
    }


def sqs_event(entities: Entities, size: int) -> dict:
    return {"Records": [sqs_record(json.dumps(entities.document())) for _ in range(size)]}


# ------------------------------------------------------------------------------------ functions


class FunctionProcess:
    """One function process under its own Runtime API."""

    def __init__(self, kind: dict, endpoint: str, env: dict, log_path: str, timeout_s: float = INVOKE_TIMEOUT_S):
        self.kind = kind
        self.api = RuntimeApi(timeout_s)
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "AWS_LAMBDA_FUNCTION_NAME": "bench-" + kind["name"],
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench-" + kind["name"],
            "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_ENDPOINT_URL_PARTNERCENTRAL_SELLING": endpoint,
        }
        full_env.update(kind.get("env", {}))
        full_env.update(env)
        self.log = open(log_path, "ab")
        self.started_ns = now_ns()
        self.proc = subprocess.Popen(
            kind["command"],
            env=full_env,
            cwd=kind.get("cwd"),
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_init(self, timeout: float = 60) -> float:
        if not self.api.first_poll.wait(timeout):
            raise TimeoutError(f"{self.kind['name']}: no /next poll within {timeout} s")
        if self.api.init_error is not None:
            raise RuntimeError(f"{self.kind['name']}: init error {self.api.init_error!r}")
        return ms(self.api.first_poll_ns - self.started_ns)

    def cpu_ns(self) -> int | None:
        """CPU time the process's threads have run so far, user and kernel, in ns (the sum of
        `/proc/<pid>/task/*/schedstat`)."""
        try:
            total = 0
            for task in os.listdir(f"/proc/{self.proc.pid}/task"):
                with open(f"/proc/{self.proc.pid}/task/{task}/schedstat") as schedstat:
                    total += int(schedstat.read().split()[0])
            return total
        except (OSError, ValueError, IndexError):
            return None

    def log_size(self) -> int:
        self.log.flush()
        return os.fstat(self.log.fileno()).st_size

    def api_latencies_ms(self, since: int) -> list[float]:
        """The `ApiLatency` values of the EMF lines the function has written since the log was
        `since` bytes long (our function's; other functions write none)."""
        with open(self.log.name, "rb") as log:
            log.seek(since)
            lines = log.read().splitlines()
        values = []
        for line in lines:
            if b'"ApiLatency"' not in line:
                continue
            try:
                values.extend(float(v) for v in json.loads(line).get("ApiLatency", []))
            except (ValueError, TypeError, AttributeError):
                continue
        return values

    def peak_rss_mib(self) -> float | None:
        try:
            with open(f"/proc/{self.proc.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def stop(self):
        self.api.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def failures_of(kind: dict, ok: bool, answer) -> int:
    """Records the function did not complete (a function error fails them all)."""
    if not ok:
        return -1
    if kind["name"] == "floor" or not isinstance(answer, dict):
        return 0
    return len(answer.get("batchItemFailures") or [])


def measure_run(kind: dict, emulator: Emulator, entities: Entities, args, log_path: str, warm: bool) -> dict:
    """One fresh process: init, first invocation, then (when `warm`) the warm figures and peak RSS.
    Against an HTTPS emulator, the first event is handed over only once init is over and the
    emulator's TLS handshakes have been counted, so that those of init and of the first invocation
    are told apart."""
    entities.rewind()
    emulator.reset(entities.seed)
    result: dict = {"errors": 0}
    fn = FunctionProcess(kind, emulator.endpoint, {}, log_path)
    try:
        if emulator.tls:
            result["init_ms"] = fn.wait_init()
            result["init_handshakes"] = emulator.control("state").get("TlsHandshakes")
            first_id = fn.api.enqueue(sqs_event(entities, 1))
        else:
            # The first event waits in the queue, so the first poll is answered at once.
            first_id = fn.api.enqueue(sqs_event(entities, 1))
            result["init_ms"] = fn.wait_init()
        ok, answer, duration = fn.api.wait(first_id)
        result["errors"] += failures_of(kind, ok, answer) != 0
        result["first_invocation_ms"] = duration
        result["cold_start_ms"] = result["init_ms"] + duration
        # The warm-up's read (GetOpportunity) during init, seen by the emulator: 1 with it, 0 without.
        state = emulator.control("state")
        result["init_reads"] = state.get("Operations", {}).get("GetOpportunity", {}).get("Calls", 0)
        if emulator.tls:
            result["first_invocation_handshakes"] = state.get("TlsHandshakes") - result["init_handshakes"]
        if not warm:
            return result
        for latency in args.latencies:
            emulator.latency(latency)
            for _ in range(args.warmup_invocations):
                fn.api.invoke(sqs_event(entities, 1))
                time.sleep(WARM_GAP_S)
            singles, per_record = [], []
            cpu_before, log_before = fn.cpu_ns(), fn.log_size()
            for _ in range(args.warm_invocations):
                ok, answer, duration = fn.api.invoke(sqs_event(entities, 1))
                result["errors"] += failures_of(kind, ok, answer) != 0
                singles.append(duration)
                time.sleep(WARM_GAP_S)
            cpu_after = fn.cpu_ns()
            # Our function times each API call itself (its ApiLatency metric, written before it answers).
            calls = fn.api_latencies_ms(log_before)
            if calls:
                result[f"warm_call_ms@{latency}"] = median(calls)
            if None not in (cpu_before, cpu_after) and args.warm_invocations:
                result[f"warm_cpu_ms@{latency}"] = ms(cpu_after - cpu_before) / args.warm_invocations
            for _ in range(args.warm_batches):
                ok, answer, duration = fn.api.invoke(sqs_event(entities, 10))
                result["errors"] += failures_of(kind, ok, answer) != 0
                per_record.append(duration / 10)
                time.sleep(WARM_GAP_S)
            result[f"warm_record_ms@{latency}"] = median(singles)
            result[f"warm_batch10_per_record_ms@{latency}"] = median(per_record)
        result["peak_rss_mib"] = fn.peak_rss_mib()
        return result
    finally:
        fn.stop()


# ------------------------------------------------------------------------------------ backlog


def drain(kind: dict, emulator: Emulator, sqs, entities: Entities, args, log_path: str) -> dict:
    """A backlog of `--messages` in a queue with a dead-letter queue (maxReceiveCount 3), drained one
    invocation at a time against the emulator's write quota."""
    tag = f"{kind['name']}-{uuid.uuid4().hex[:8]}"
    dlq_url = sqs.create_queue(QueueName=f"bench-{tag}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    work_url = sqs.create_queue(
        QueueName=f"bench-{tag}",
        Attributes={
            "VisibilityTimeout": "360",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}),
        },
    )["QueueUrl"]
    work_arn = sqs.get_queue_attributes(QueueUrl=work_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    entities.rewind()
    bodies = [json.dumps(entities.document()) for _ in range(args.messages)]
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start:start + 10])]
        sqs.send_message_batch(QueueUrl=work_url, Entries=entries)

    write = {"Rate": args.quota, "Burst": args.burst}
    emulator.reset(entities.seed, latency_ms=args.drain_latency, write=write, read={"Rate": 10.0, "Burst": 10.0})
    fn = FunctionProcess(kind, emulator.endpoint, kind.get("drain_env", {}), log_path)
    invocations = function_errors = 0
    def receive():
        return sqs.receive_message(
            QueueUrl=work_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])

    def depth() -> int:
        attributes = sqs.get_queue_attributes(
            QueueUrl=work_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())

    def settle(received, ok, answer):
        """Deletes what succeeded, makes the failed records visible again at once."""
        if ok and isinstance(answer, dict):
            failed = {f.get("itemIdentifier") for f in answer.get("batchItemFailures") or []}
        else:
            failed = {m["MessageId"] for m in received}
        release = [m for m in received if m["MessageId"] in failed]
        done = [m for m in received if m["MessageId"] not in failed]
        if done:
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)]
            sqs.delete_message_batch(QueueUrl=work_url, Entries=entries)
        if release:
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(release)
            ]
            sqs.change_message_visibility_batch(QueueUrl=work_url, Entries=entries)

    # Like Lambda's mapping, polling runs apart from invoking: the next batch is received while the
    # function works on this one, and this one is settled in the background; still one invocation
    # at a time (one poller's worth of concurrency, as a function with reserved concurrency 1).
    # The SQS calls' threads are niced too (boto3 parsing is CPU): the Runtime API threads come first.
    pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=2, initializer=lambda: os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    )
    try:
        fn.wait_init()
        started = time.monotonic()
        stopped_by_cap = False
        settling = None
        next_batch = pool.submit(receive)
        while True:
            if time.monotonic() - started > args.drain_cap:
                stopped_by_cap = True
                break
            received = next_batch.result()
            if not received:
                if settling is not None:
                    settling.result()
                    settling = None
                if depth() == 0:
                    break
                time.sleep(0.02)
                next_batch = pool.submit(receive)
                continue
            records = [
                sqs_record(m["Body"], m["MessageId"], m["ReceiptHandle"], m.get("Attributes")) for m in received
            ]
            for record in records:
                record["eventSourceARN"] = work_arn
            request_id = fn.api.enqueue({"Records": records})
            if settling is not None:
                settling.result()
            next_batch = pool.submit(receive)
            ok, answer, _ = fn.api.wait(request_id)
            invocations += 1
            function_errors += not ok
            settling = pool.submit(settle, received, ok, answer)
        if settling is not None:
            settling.result()
        elapsed = time.monotonic() - started
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        fn.stop()
    counters = emulator.disassociate_counters()
    dead = int(
        sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
            "ApproximateNumberOfMessages"
        ]
    )
    left = sum(
        int(v)
        for v in sqs.get_queue_attributes(
            QueueUrl=work_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"].values()
    )
    successes = counters.get("Successes", 0)
    return {
        "messages": args.messages,
        "elapsed_s": elapsed,
        "stopped_by_cap": stopped_by_cap,
        "invocations": invocations,
        "function_errors": function_errors,
        "calls": counters.get("Calls", 0),
        "successful_writes": successes,
        "throttled": counters.get("QuotaThrottled", 0),
        "dead_letters": dead,
        "left_in_queue": left,
        "quota_fraction": successes / (elapsed * args.quota) if elapsed > 0 else None,
    }


class Moto:
    def __init__(self, binary: str):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        # Niced: moto stands in for a remote service, and its CPU (it is busy Python) should not
        # delay the emulator's and the function's timing on a small machine. Through
        # tools/moto_server.py, by the venv's Python beside moto_server: writes to a DynamoDB item in
        # turn, as DynamoDB makes them.
        python = os.path.join(os.path.dirname(binary), "python")
        launcher = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "moto_server.py")
        self.proc = subprocess.Popen(
            [python, launcher, "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: os.nice(10),
        )
        self.endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("moto_server did not start")
                time.sleep(0.1)
        import boto3  # the bench venv's; only the drain needs it

        self.sqs = boto3.client(
            "sqs",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def stop(self):
        terminate(self.proc)


# ------------------------------------------------------------------------------------ report


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = None
    try:
        with open("/proc/meminfo") as info:
            memory = round(int(info.readline().split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass

    def version(command):
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            return None

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory,
        "kernel": platform.release(),
        "arch": platform.machine(),
        "python": platform.python_version(),
        "rustc": version(["rustc", "--version"]),
    }


def fmt(value, digits=1, suffix=""):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return f"{value}{suffix}"


def table(results: dict) -> str:
    fns = results["functions"]
    names = [n for n in FUNCTIONS if n in fns]
    rows = [
        ("init (process start to first /next)", "init_ms", 2, " ms"),
        ("first invocation (1 record, its API call)", "first_invocation_ms", 2, " ms"),
        ("cold start (init + first invocation)", "cold_start_ms", 2, " ms"),
        ("  same, times the bare lambda_runtime's", "cold_ratio", 2, "x"),
    ]
    probe = results.get("api_latency_ms", {})
    for latency in results["config"]["latencies_ms"]:
        delivered = probe.get(str(latency))
        rows.append((f"warm, 1 record, API latency {latency} ms", f"warm_record_ms@{latency}", 2, " ms"))
        label = f"  same, above the API latency as delivered ({fmt(delivered, 2, ' ms')})"
        rows.append((label, f"over@{latency}", 2, " ms"))
        label = "    of which inside the API call (the function's own ApiLatency metric)"
        rows.append((label, f"call@{latency}", 2, " ms"))
        rows.append(("  same, less the floor's Runtime API round trip", f"net@{latency}", 2, " ms"))
        rows.append(("  CPU the process ran per such invocation (user + kernel)", f"warm_cpu_ms@{latency}", 2, " ms"))
        wake = results.get("wake_up_after_wait_ms", {}).get(str(latency))
        rows.append((f"  (waking a process after this wait takes {fmt(wake, 2, ' ms')} here)", None, 2, " ms"))
        label = f"warm, per record in batches of 10, latency {latency} ms"
        rows.append((label, f"warm_batch10_per_record_ms@{latency}", 2, " ms"))
    rows.append(("peak RSS (VmHWM)", "peak_rss_mib", 1, " MiB"))
    # A call that failed fast would pass for a fast one: the invocations with a failed record, in all runs.
    rows.append(("invocations with a failed record (all runs; should be 0)", "errors", 0, ""))
    out = ["| | " + " | ".join(FUNCTIONS[n] for n in names) + " |", "|---|" + "---:|" * len(names)]
    for label, key, digits, suffix in rows:
        if key is None:
            out.append(f"| {label} |" + " |" * len(names))
            continue
        cells = []
        for n in names:
            if key == "cold_ratio":
                value, floor = fns[n].get("cold_start_ms"), fns.get("floor", {}).get("cold_start_ms")
                known = n != "floor" and None not in (value, floor)
                cells.append(fmt(value / floor, digits, suffix) if known else "-")
            elif key.startswith(("over@", "net@", "call@")):
                # Above the delivered latency: the invocation's duration (less the floor's, for
                # net@), or the API call's as the function timed it (call@).
                kind, latency = key.split("@")
                measured = "warm_call_ms" if kind == "call" else "warm_record_ms"
                value, delivered = fns[n].get(f"{measured}@{latency}"), probe.get(latency)
                floor = fns.get("floor", {}).get(f"warm_record_ms@{latency}") if kind == "net" else 0.0
                known = n != "floor" and None not in (value, delivered, floor)
                cells.append(fmt(value - delivered - floor, digits, suffix) if known else "-")
            else:
                cells.append(fmt(fns[n].get(key), digits, suffix))
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    zips = results.get("zip", {})
    out.append(
        "| arm64 zip | "
        + " | ".join(
            fmt(zips.get(n, {}).get("mib"), 2, " MiB") if zips.get(n) else "-" for n in names
        )
        + " |"
    )
    if zips.get("webhook"):
        out.append(f"| arm64 zip, the webhook function | {fmt(zips['webhook']['mib'], 2, ' MiB')} |" + " |" * (len(names) - 1))
    drains = results.get("drain", {})
    if drains:
        cfg = results["config"]
        out.append("")
        out.append(
            f"Backlog drain: {cfg['messages']} messages, write quota {cfg['quota']}/s burst {cfg['burst']:g}, "
            f"API latency {cfg['drain_latency_ms']} ms, batch size 10, one invocation at a time, maxReceiveCount 3"
        )
        out.append("")
        dnames = [n for n in ("rust", "python") if n in drains]
        out.append("| | " + " | ".join(FUNCTIONS[n] for n in dnames) + " |")
        out.append("|---|" + "---:|" * len(dnames))
        drows = [
            ("fraction of the quota achieved", lambda d: fmt(100 * d["quota_fraction"], 1, " %")),
            ("successful writes", lambda d: fmt(d["successful_writes"])),
            ("elapsed", lambda d: fmt(d["elapsed_s"], 1, " s") + (" (cap)" if d["stopped_by_cap"] else "")),
            ("throttled answers", lambda d: fmt(d["throttled"])),
            ("dead letters", lambda d: fmt(d["dead_letters"])),
            ("left in the queue", lambda d: fmt(d["left_in_queue"])),
            ("invocations", lambda d: fmt(d["invocations"])),
        ]
        for label, get in drows:
            out.append(f"| {label} | " + " | ".join(get(drains[n]) for n in dnames) + " |")
    decode = results.get("decode_us")
    if decode:
        out.append("")
        out.append("Decoding and validating one event (`cargo bench --bench decode`, criterion, median):")
        out.append("")
        out.append("| event | time |")
        out.append("|---|---:|")
        for name, micros in decode.items():
            out.append(f"| {name} | {micros:.2f} µs |")
    cold = (
        ("init", "init_ms", 2, " ms"),
        ("first invocation", "first_invocation_ms", 2, " ms"),
        ("cold start", "cold_start_ms", 2, " ms"),
    )
    on_off_table(
        out,
        results.get("warm_up"),
        "Connection warm-up during init (Rust function, API latency 0 ms):",
        cold + (("GetOpportunity calls during init (emulator)", "init_reads", 0, ""),),
    )
    on_off_table(
        out,
        results.get("https_warm_up"),
        "The same over HTTPS (the emulator with `--tls`, its certificate authority trusted through "
        "`SSL_CERT_FILE`; the first event handed over once init is over):",
        cold
        + (
            ("TLS handshakes during init (emulator; the most in any run)", "init_handshakes", 0, ""),
            ("TLS handshakes during the first invocation (the most in any run)", "first_invocation_handshakes", 0, ""),
        ),
    )
    return "\n".join(out)


def on_off_table(out: list, figures: dict | None, title: str, rows) -> None:
    """A table of the Rust function's figures with `WARM_UP` on and off, when they were measured."""
    if not figures:
        return
    out += ["", title, "", "| | WARM_UP=true (default) | WARM_UP=false |", "|---|---:|---:|"]
    for label, key, digits, suffix in rows:
        on, off = (fmt(figures[k].get(key), digits, suffix) for k in ("on", "off"))
        out.append(f"| {label} | {on} | {off} |")


def targets(results: dict) -> dict:
    fns, drains, zips = results["functions"], results.get("drain", {}), results.get("zip", {})
    rust, python, floor = fns.get("rust", {}), fns.get("python", {}), fns.get("floor", {})
    sdk_floor = fns.get("sdk-floor", {})
    delivered_at = results.get("api_latency_ms", {})
    checks = {}

    def check(name, value, limit, ok):
        checks[name] = {"value": value, "limit": limit, "met": bool(ok) if value is not None else None}

    if rust.get("cold_start_ms") and floor.get("cold_start_ms"):
        ratio = rust["cold_start_ms"] / floor["cold_start_ms"]
        check("cold start / floor's", round(ratio, 2), "<= 2", ratio <= 2)
    # The SDK floor against the same limits: whether any function making the call through the SDK
    # meets them on this machine, before a line of the function's own.
    if sdk_floor.get("cold_start_ms") and floor.get("cold_start_ms"):
        ratio = sdk_floor["cold_start_ms"] / floor["cold_start_ms"]
        check("  the SDK floor's cold start / floor's", round(ratio, 2), "<= 2", ratio <= 2)
    if rust.get("cold_start_ms") and python.get("cold_start_ms"):
        ratio = python["cold_start_ms"] / rust["cold_start_ms"]
        check("Python peer's cold start / ours", round(ratio, 1), ">= 25", ratio >= 25)
    if rust.get("peak_rss_mib") and python.get("peak_rss_mib"):
        ratio = rust["peak_rss_mib"] / python["peak_rss_mib"]
        check("peak RSS / Python peer's", round(ratio, 2), "<= 0.5", ratio <= 0.5)
    for latency in results["config"]["latencies_ms"]:
        value, delivered = rust.get(f"warm_record_ms@{latency}"), delivered_at.get(str(latency))
        if value is not None and delivered is not None:
            over = value - delivered
            check(f"warm per record above the API latency ({latency} ms)", round(over, 3), "<= 0.5 ms", over <= 0.5)
            round_trip = floor.get(f"warm_record_ms@{latency}")
            if round_trip is not None:
                net = over - round_trip
                label = f"  same, less the floor's Runtime API round trip ({latency} ms)"
                check(label, round(net, 3), "<= 0.5 ms", net <= 0.5)
                wake = results.get("wake_up_after_wait_ms", {}).get(str(latency))
                if wake is not None:
                    rest = net - wake
                    check(
                        f"  same, less that and one wake-up after the wait ({latency} ms)",
                        round(rest, 3),
                        "<= 0.5 ms",
                        rest <= 0.5,
                    )
        value = sdk_floor.get(f"warm_record_ms@{latency}")
        if value is not None and delivered is not None:
            over = value - delivered
            label = f"  the SDK floor's, above the API latency ({latency} ms)"
            check(label, round(over, 3), "<= 0.5 ms", over <= 0.5)
    if "rust" in drains:
        d = drains["rust"]
        check("backlog drain, fraction of quota", round(d["quota_fraction"], 3), ">= 0.9", d["quota_fraction"] >= 0.9)
        check("backlog drain, dead letters", d["dead_letters"], "0", d["dead_letters"] == 0)
    if zips.get("rust"):
        check("arm64 zip", zips["rust"]["mib"], "<= 5 MiB", zips["rust"]["mib"] <= 5)
    https = results.get("https_warm_up", {}).get("on", {})
    if https.get("first_invocation_handshakes") is not None:
        handshakes = https["first_invocation_handshakes"]
        check("TLS handshakes during the first invocation (HTTPS)", handshakes, "0", handshakes == 0)
    return checks


# ------------------------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rust", required=True, help="the function's release binary")
    parser.add_argument("--floor", required=True, help="the bare lambda_runtime binary")
    parser.add_argument("--sdk-floor", help="the SDK floor's binary (lambda_runtime and one SDK call per record)")
    parser.add_argument("--peer", required=True, help="the Python peer's folder (app.py)")
    parser.add_argument("--python", default=sys.executable, help="the bench venv's interpreter")
    parser.add_argument("--emulator", required=True, help="partner-central-emulator binary")
    parser.add_argument("--moto", help="moto_server (the backlog drain is skipped without it)")
    parser.add_argument("--zip", action="append", default=[], metavar="NAME=PATH", help="an arm64 zip to report")
    parser.add_argument("--criterion", help="criterion's output folder of `cargo bench --bench decode`")
    runs_help = "the orders balance over every 4 runs (four functions; 6 for three)"
    parser.add_argument("--runs", type=int, default=8, help=runs_help)
    parser.add_argument("--latencies", type=int, nargs="+", default=[0, 50])
    parser.add_argument("--warmup-invocations", type=int, default=5, help="discarded, per latency")
    parser.add_argument("--warm-invocations", type=int, default=20, help="one record each, per latency")
    parser.add_argument("--warm-batches", type=int, default=5, help="ten records each, per latency")
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--quota", type=float, default=10.0, help="emulator write quota, per second")
    # A bucket of 1: no burst at all, the strictest reading of "10 writes per second". The emulator
    # takes its token as a request arrives, before its added latency.
    parser.add_argument("--burst", type=float, default=1.0, help="emulator write bucket size")
    parser.add_argument("--pace", type=float, default=9.5, help="our PARTNER_CENTRAL_WRITES_PER_SECOND")
    parser.add_argument("--drain-latency", type=int, default=50, help="API latency during the drain, ms")
    parser.add_argument("--drain-cap", type=float, default=120, help="seconds before a drain is stopped")
    parser.add_argument("--only", nargs="+", choices=list(FUNCTIONS), default=None)
    parser.add_argument("--no-drain", action="store_true")
    parser.add_argument("--out", required=True, help="where the JSON goes")
    parser.add_argument("--logs", required=True, help="a folder for the functions' output")
    args = parser.parse_args()

    os.makedirs(args.logs, exist_ok=True)
    # The Rust function paces its writes; for the warm figures its pace is raised out of the way
    # (quotas are off then) so that what is measured is the cost of a record, not the pacing.
    # It runs as deployed, with a dead-letter queue set (the template always sets one). No record of
    # the bench fails for good, so nothing is sent there: the address is a closed port, and a dead
    # letter tried there would fail, leave its record failed and show in the figures.
    rust_env = {
        "PARTNER_CENTRAL_WRITES_PER_SECOND": "1000",
        "DEAD_LETTER_QUEUE_URL": "http://127.0.0.1:9/000000000000/bench-dead-letters",
    }
    kinds = {
        "rust": {
            "name": "rust",
            "command": [args.rust],
            "env": rust_env,
            "drain_env": {"PARTNER_CENTRAL_WRITES_PER_SECOND": str(args.pace)},
        },
        "python": {
            "name": "python",
            "command": [args.python, "-m", "awslambdaric", "app.lambda_handler"],
            "cwd": args.peer,
        },
        "floor": {"name": "floor", "command": [args.floor]},
        "sdk-floor": {"name": "sdk-floor", "command": [args.sdk_floor]},
    }
    selected = args.only or ["rust", "python", "floor"] + (["sdk-floor"] if args.sdk_floor else [])
    if "sdk-floor" in selected and not args.sdk_floor:
        parser.error("--only sdk-floor needs --sdk-floor")
    rust_off = dict(kinds["rust"], name="rust-no-warm-up", env=dict(rust_env, WARM_UP="false"))
    ca_file = os.path.join(args.logs, "emulator-ca.pem")
    https_kinds = {
        "on": dict(kinds["rust"], name="rust-https", env=dict(rust_env, SSL_CERT_FILE=ca_file)),
        "off": dict(
            kinds["rust"], name="rust-https-no-warm-up", env=dict(rust_env, SSL_CERT_FILE=ca_file, WARM_UP="false")
        ),
    }

    per_run = 1 + len(args.latencies) * (args.warmup_invocations + args.warm_invocations + 10 * args.warm_batches)
    entities = Entities(max(per_run, args.messages))
    seed_path = os.path.join(args.logs, "seed.json")
    with open(seed_path, "w") as f:
        json.dump(entities.seed, f)

    results = {
        "machine": machine(),
        "config": {
            "runs": args.runs,
            "latencies_ms": args.latencies,
            "warm_invocations": args.warm_invocations,
            "warm_batches": args.warm_batches,
            "messages": args.messages,
            "quota": args.quota,
            "burst": args.burst,
            "pace": args.pace,
            "drain_latency_ms": args.drain_latency,
            "function_memory_mb": 128,
            "concurrent_invocations": 1,
            "python_retry_mode": "standard (botocore 1.44 default: 3 attempts, exponential backoff with jitter)",
        },
        "functions": {},
        "runs": {},
    }
    emulator = Emulator(args.emulator, seed_path)
    https_emulator = None
    try:
        if "rust" in selected and args.runs:
            https_emulator = Emulator(args.emulator, seed_path, ca_file)
        order = [n for n in ("floor", "sdk-floor", "rust", "python") if n in selected]
        # One discarded round first: page cache, Python's bytecode cache, the emulator's first answers.
        for name in order if args.runs else []:
            measure_run(kinds[name], emulator, entities, args, os.path.join(args.logs, f"{name}.log"), warm=False)
        emulator.reset(entities.seed)
        probes = {str(latency): emulator.probe(latency) for latency in args.latencies} if args.runs else {}
        results["api_latency_ms"] = {latency: delivered for latency, (delivered, _) in probes.items()}
        results["wake_up_after_wait_ms"] = {latency: wake for latency, (_, wake) in probes.items()}
        print(f"  API latency as delivered, wake-up after it: {probes}", file=sys.stderr, flush=True)
        raw: dict[str, list] = {n: [] for n in order}
        orders = williams(len(order))
        if "rust" in selected:
            raw["rust-no-warm-up"] = []
            for kind in https_kinds.values():
                raw[kind["name"]] = []
        for run in range(args.runs):
            # Interleaved, so that a slow moment of the machine touches every function alike, in the
            # orders of a Williams design, so that each follows each of the others equally often
            # (what ran just before, the Python peer above all, leaves the caches and the machine
            # changed): a plain rotation keeps putting the same function right after the peer.
            for name in (order[i] for i in orders[run % len(orders)]):
                log = os.path.join(args.logs, f"{name}.log")
                raw[name].append(measure_run(kinds[name], emulator, entities, args, log, warm=True))
                print(f"  run {run + 1}/{args.runs} {name}: {short(raw[name][-1])}", file=sys.stderr, flush=True)
            if "rust" in selected:
                log = os.path.join(args.logs, "rust-no-warm-up.log")
                raw["rust-no-warm-up"].append(measure_run(rust_off, emulator, entities, args, log, warm=False))
                print(
                    f"  run {run + 1}/{args.runs} rust, WARM_UP=false: {short(raw['rust-no-warm-up'][-1])}",
                    file=sys.stderr,
                    flush=True,
                )
                for setting, kind in https_kinds.items():
                    log = os.path.join(args.logs, f"{kind['name']}.log")
                    raw[kind["name"]].append(measure_run(kind, https_emulator, entities, args, log, warm=False))
                    print(
                        f"  run {run + 1}/{args.runs} rust over HTTPS, WARM_UP {setting}: {short(raw[kind['name']][-1])}",
                        file=sys.stderr,
                        flush=True,
                    )
        for name, runs in raw.items():
            keys = sorted({k for r in runs for k in r})
            summary = {k: median([r.get(k) for r in runs]) for k in keys if k != "errors"}
            summary["errors"] = sum(r.get("errors", 0) for r in runs)
            results["runs"][name] = runs
            if name == "rust-no-warm-up" or name.startswith("rust-https"):
                continue
            results["functions"][name] = summary
        if "rust" in selected and args.runs:
            results["warm_up"] = {
                "on": {k: results["functions"]["rust"].get(k) for k in WARM_UP_KEYS},
                "off": {k: median([r.get(k) for r in raw["rust-no-warm-up"]]) for k in WARM_UP_KEYS},
            }
            # Handshakes: the most any run made (the target is none in any first invocation).
            results["https_warm_up"] = {
                setting: {
                    k: (most if k.endswith("handshakes") else median)([r.get(k) for r in raw[kind["name"]]])
                    for k in HTTPS_KEYS
                }
                for setting, kind in https_kinds.items()
            }

        if args.moto and not args.no_drain:
            moto = Moto(args.moto)
            try:
                results["drain"] = {}
                for name in [n for n in ("rust", "python") if n in selected]:
                    print(f"  backlog drain: {name} ...", file=sys.stderr, flush=True)
                    log = os.path.join(args.logs, f"{name}-drain.log")
                    results["drain"][name] = drain(kinds[name], emulator, moto.sqs, entities, args, log)
                    print(f"  backlog drain: {name}: {results['drain'][name]}", file=sys.stderr, flush=True)
            finally:
                moto.stop()
    finally:
        emulator.stop()
        if https_emulator:
            https_emulator.stop()

    results["zip"] = {}
    for item in args.zip:
        name, _, path = item.partition("=")
        if os.path.exists(path):
            size = os.path.getsize(path)
            results["zip"][name] = {"path": path, "bytes": size, "mib": round(size / 1048576, 2)}
    if args.criterion and os.path.isdir(args.criterion):
        results["decode_us"] = {}
        for name in sorted(os.listdir(args.criterion)):
            estimates = os.path.join(args.criterion, name, "new", "estimates.json")
            if os.path.exists(estimates):
                with open(estimates) as f:
                    results["decode_us"][name] = json.load(f)["median"]["point_estimate"] / 1000
    results["targets"] = targets(results)
    results["table"] = table(results)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    m = results["machine"]
    print()
    print(
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']} {m['arch']}; "
        f"Python {m['python']}; {m['rustc']}. Medians of {args.runs} runs."
    )
    print()
    print(results["table"])
    print()
    print("Targets:")
    for name, c in results["targets"].items():
        state = {True: "met", False: "NOT met", None: "-"}[c["met"]]
        print(f"  {name}: {c['value']} (target {c['limit']}): {state}")
    print()
    print(f"JSON: {args.out}")
    return 0


def short(result: dict) -> str:
    keys = ("init_ms", "first_invocation_ms", "peak_rss_mib", "init_reads", "init_handshakes")
    keys += ("first_invocation_handshakes", "errors")
    return ", ".join(f"{k}={fmt(result.get(k), 2)}" for k in keys if k in result)


if __name__ == "__main__":
    sys.exit(main())
