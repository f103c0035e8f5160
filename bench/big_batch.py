#!/usr/bin/env python3
"""How long before its deadline the worker answers a big SQS batch whose dead letters never go out.

Every record is invalid (its body is not JSON), so each is dead-lettered at once, and the dead-letter
queue is a loopback server that accepts connections and never answers: at the end of dead letters
every send is still pending, and all that follows (giving them up, a log line per record, the answer)
must fit in the time the function keeps back for the answer. The figure is the margin: the deadline
less the moment the answer arrived (negative: late, which Lambda would take for a timeout).

Python's standard library only. The release worker binary is run under a Runtime API served here:

    cargo build --release --bin opportunity-disassociator
    python3 bench/big_batch.py --binary "$CARGO_TARGET_DIR/release/opportunity-disassociator" \\
        --records 1000 5000 10000 --runs 3 [--cpu-quota 7236]

`--cpu-quota` runs the function in a cgroup v1 CPU group with that quota per 100 ms period (7236 is
128 MB's share of a vCPU, 128/1769), made under /sys/fs/cgroup/cpu and removed afterwards (root).

The deadline is, by default, 1.5 s (`--lead`) after the function's end of dead letters (read from
src/worker/deadline.rs): late enough for the sends to have started, early enough that few have yet
ended by the dead-letter client's own timeouts (2 s an attempt).
"""

import argparse
import json
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CGROUP = "/sys/fs/cgroup/cpu/big-batch-bench"


def answer_reserve_ms(records: int) -> float:
    """The function's answer reserve for `records` records, from its own source."""
    text = open(os.path.join(ROOT, "src/worker/deadline.rs")).read()

    def constant(name: str) -> float:
        value, unit = re.search(rf"const {name}: Duration = Duration::from_(\w+)\((\d+)\)", text).group(2, 1)
        return int(value) * {"secs": 1000, "millis": 1, "micros": 0.001}[unit]

    return constant("ANSWER_BASE") + constant("ANSWER_PER_RECORD") * records


class SilentServer:
    """Accepts every connection and never reads or answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4096)
        self.held = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(connection)

    @property
    def endpoint(self) -> str:
        return "http://127.0.0.1:%d" % self.sock.getsockname()[1]


class RuntimeApi:
    """One invocation: handed out on the first `/next`, its answer timed on arrival."""

    def __init__(self, event: bytes, deadline_after_s: float):
        self.event, self.deadline_after_s = event, deadline_after_s
        self.handed_out = threading.Event()
        self.answered = threading.Event()
        self.deadline_ms = self.answer_ms = self.handed_ms = None
        self.answer = None
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if not self.path.endswith("/invocation/next"):
                    return self._reply(404, b"")
                if api.handed_out.is_set():
                    time.sleep(3600)  # No second event: the function waits, as between invocations.
                api.handed_ms = time.time() * 1000
                api.deadline_ms = int(api.handed_ms + api.deadline_after_s * 1000)
                api.handed_out.set()
                self._reply(200, api.event, {
                    "Lambda-Runtime-Aws-Request-Id": "big-batch-1",
                    "Lambda-Runtime-Deadline-Ms": str(api.deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:bench",
                })

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if "/response" in self.path or "/error" in self.path:
                    api.answer_ms = time.time() * 1000
                    api.answer = body
                    api.answered.set()
                self._reply(202, b'{"status":"OK"}')

            def _reply(self, status, body, headers=None):
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return "127.0.0.1:%d" % self.server.server_address[1]


def cpu_ms(pid: int) -> float:
    """The CPU time the process has run so far, all threads, user and kernel."""
    total = 0
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, task)) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total / 1e6


def sqs_event(records: int) -> bytes:
    record = {
        "messageId": None, "receiptHandle": "rh", "body": "not json",
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764000000000"},
        "messageAttributes": {}, "md5OfBody": "x", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:work", "awsRegion": "us-east-1",
    }
    return json.dumps({"Records": [dict(record, messageId="m-%d" % i) for i in range(records)]}).encode()


def cgroup(quota_us: int) -> str:
    os.makedirs(CGROUP, exist_ok=True)
    with open(os.path.join(CGROUP, "cpu.cfs_period_us"), "w") as f:
        f.write("100000")
    with open(os.path.join(CGROUP, "cpu.cfs_quota_us"), "w") as f:
        f.write(str(quota_us))
    return CGROUP


def run(binary: str, records: int, deadline_after_s: float, quota_us, log_level: str = "INFO"):
    silent = SilentServer()
    api = RuntimeApi(sqs_event(records), deadline_after_s)
    env = {
        "PATH": os.environ.get("PATH", ""), "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_SQS": silent.endpoint, "DEAD_LETTER_QUEUE_URL": silent.endpoint + "/123456789012/dlq",
        "AWS_LAMBDA_LOG_LEVEL": log_level, "WARM_UP": "false",
    }
    process = subprocess.Popen([binary], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    if quota_us:
        with open(os.path.join(cgroup(quota_us), "cgroup.procs"), "w") as f:
            f.write(str(process.pid))
    lines = {"given_up": 0, "send_failed": 0, "total": 0}

    def read():
        # A consumer like Lambda's log pipe: every line read as it comes.
        for line in process.stdout:
            lines["total"] += 1
            if b"before the invocation's deadline" in line:
                lines["given_up"] += 1
            elif b"not dead-lettered, delivered again" in line:
                lines["send_failed"] += 1
                lines.setdefault("send_failed_sample", line.decode(errors="replace")[-300:].strip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    cpu = {}

    def at_letters_end():
        api.handed_out.wait()
        time.sleep(max(0.0, (api.deadline_ms - answer_reserve_ms(records)) / 1000 - time.time()))
        cpu["letters_end"] = cpu_ms(process.pid)

    threading.Thread(target=at_letters_end, daemon=True).start()
    try:
        api.handed_out.wait(60)
        cpu["handed_out"] = cpu_ms(process.pid)
        if not api.answered.wait(deadline_after_s + 120):
            raise SystemExit("no answer within the deadline + 120 s")
        cpu["answer"] = cpu_ms(process.pid)
        time.sleep(0.5)
        failures = len(json.loads(api.answer).get("batchItemFailures", []))
    finally:
        process.kill()
        process.wait()
        silent.sock.close()
        for connection in silent.held:
            connection.close()
        api.server.shutdown()
    reader.join(timeout=5)
    return {
        "records": records, "deadline_s": deadline_after_s,
        "margin_ms": api.deadline_ms - api.answer_ms, "answered_after_ms": api.answer_ms - api.handed_ms,
        "reported_failed": failures, **lines,
        # CPU the function ran from the event to the end of dead letters, and from then to the answer.
        "cpu_ms_to_letters_end": round(cpu.get("letters_end", float("nan")) - cpu["handed_out"], 1),
        "cpu_ms_after_letters_end": round(cpu["answer"] - cpu.get("letters_end", float("nan")), 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True, help="the release worker binary")
    parser.add_argument("--records", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--deadline", type=float, help="seconds from the event to its deadline")
    parser.add_argument("--lead", type=float, default=1.5,
                        help="seconds from the event to the function's end of dead letters (default 1.5)")
    parser.add_argument("--cpu-quota", type=int, help="cgroup v1 cfs_quota_us per 100000 us period")
    parser.add_argument("--log-level", default="INFO", help="AWS_LAMBDA_LOG_LEVEL (ERROR: no record lines)")
    args = parser.parse_args()
    # One connection per pending dead letter: more than Lambda's 1,024 descriptors, on purpose, so
    # that every send is pending at the end of dead letters (the worst case for the answer).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        for records in args.records:
            deadline = args.deadline or round(answer_reserve_ms(records) / 1000 + args.lead, 3)
            for _ in range(args.runs):
                print(json.dumps(run(args.binary, records, deadline, args.cpu_quota, args.log_level)), flush=True)
    finally:
        if args.cpu_quota and os.path.isdir(CGROUP):
            os.rmdir(CGROUP)


if __name__ == "__main__":
    sys.exit(main())
