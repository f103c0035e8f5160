#!/usr/bin/env python3
"""Does moto's server serve what a shared write limiter on a DynamoDB item needs, and how fast?

Starts `--moto` (moto_server) on loopback and checks, with boto3's DynamoDB client:

- CreateTable (partition key `pk`, type S, PAY_PER_REQUEST), as bench/stack.py creates it;
- UpdateItem with `ConditionExpression` `attribute_not_exists(pk) OR next_slot <= :start`,
  `ReturnValues=ALL_NEW`: the first call on a missing item, a later one whose condition holds;
- the same with `ReturnValuesOnConditionCheckFailure=ALL_OLD` when the condition fails: is the
  answer a ConditionalCheckFailedException, and does it carry the old item (`Item`)?
- the time of one such UpdateItem (condition holding), over `--calls` calls on one keep-alive
  connection: median and p99; then the same from `--clients` threads at once on the one item (as
  that many instances would call it), each its own client.

moto runs niced, as in bench/stack.py and bench/driver.py.

    .venv-bench/bin/python bench/moto_dynamodb.py --moto .venv/bin/moto_server [--calls 300] [--clients 5]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import math
import statistics
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))
from driver import Moto  # noqa: E402

TABLE = "bench-write-slots"
CONDITION = "attribute_not_exists(pk) OR next_slot <= :start"


def summary(times: list[float]) -> dict:
    times = sorted(times)
    return {
        "calls": len(times),
        "median": round(statistics.median(times), 3),
        "p99": round(times[min(len(times) - 1, math.ceil(0.99 * len(times)) - 1)], 3),
        "max": round(times[-1], 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--moto", required=True, help="moto_server")
    parser.add_argument("--calls", type=int, default=300, help="timed UpdateItem calls")
    parser.add_argument("--clients", type=int, default=5, help="threads calling at once, in the second round")
    args = parser.parse_args()

    import boto3
    from botocore.exceptions import ClientError

    moto = Moto(args.moto)
    findings: dict = {}
    try:
        def client():
            return boto3.client(
                "dynamodb",
                endpoint_url=moto.endpoint,
                region_name="us-east-1",
                aws_access_key_id="test",
                aws_secret_access_key="test",
            )

        ddb = client()
        ddb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        status = ddb.describe_table(TableName=TABLE)["Table"]["TableStatus"]
        findings["create_table"] = {"ok": True, "status": status}

        def take(start: int, next_slot: int, old: bool = True, ddb=ddb):
            extra = {"ReturnValuesOnConditionCheckFailure": "ALL_OLD"} if old else {}
            return ddb.update_item(
                TableName=TABLE,
                Key={"pk": {"S": "account"}},
                UpdateExpression="SET next_slot = :next",
                ConditionExpression=CONDITION,
                ExpressionAttributeValues={":start": {"N": str(start)}, ":next": {"N": str(next_slot)}},
                ReturnValues="ALL_NEW",
                **extra,
            )

        first = take(1000, 1100)
        findings["update_missing_item"] = {"ok": True, "Attributes": first.get("Attributes")}
        later = take(1100, 1200)
        findings["update_condition_holds"] = {"ok": True, "Attributes": later.get("Attributes")}
        for old in (True, False):
            name = "update_condition_fails" + ("_all_old" if old else "_no_return_values")
            try:
                take(1150, 1250, old)
                findings[name] = {"ok": False, "note": "the condition should have failed"}
            except ClientError as error:
                response = error.response
                findings[name] = {
                    "code": response.get("Error", {}).get("Code"),
                    "http_status": response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
                    "Item": response.get("Item"),
                }

        times = []
        start = 1200
        for _ in range(args.calls + 10):
            began = time.perf_counter_ns()
            take(start, start + 100)
            times.append((time.perf_counter_ns() - began) / 1e6)
            start += 100
        findings["update_item_ms"] = summary(times[10:])

        # Several callers at once on the one item, each asking for a later slot than any before it;
        # two asking at once may land out of order, and the later-landing one then fails its
        # condition: both are timed, the failures counted.
        slots = itertools.count(start)
        failures = [0]
        clients = [client() for _ in range(args.clients)]

        def caller(ddb):
            out = []
            for _ in range(args.calls // args.clients + 2):
                slot = next(slots) * 100
                began = time.perf_counter_ns()
                try:
                    take(slot, slot + 1, ddb=ddb)
                except ClientError as error:
                    if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                        raise
                    failures[0] += 1
                out.append((time.perf_counter_ns() - began) / 1e6)
            return out[2:]

        with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
            rounds = list(pool.map(caller, clients))
        findings[f"update_item_ms_{args.clients}_clients_at_once"] = dict(
            summary([t for r in rounds for t in r]), condition_failures=failures[0]
        )
    finally:
        moto.stop()
    print(json.dumps(findings, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
