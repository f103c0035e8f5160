#!/usr/bin/env python3
"""Does moto's SQS do what Lambda's event source mapping relies on? bench/scaled.py runs `check`
before it measures, and stops if any answer is not SQS's; alone:

    .venv-bench/bin/python bench/moto_sqs.py --moto .venv/bin/moto_server

On a queue with a 1 s visibility timeout and a redrive after 2 receives:
- a received message stays invisible until its visibility runs out, and nothing makes it visible
  again (the mapping does not release a failed record);
- a `ChangeMessageVisibility` made by another client (the function itself, holding a record) holds
  it for the new timeout, counted from that call;
- the receive after the visibility runs out counts (`ApproximateReceiveCount` 2);
- past `maxReceiveCount`, the next receive moves it to the dead-letter queue with its body.

What moto does not do as SQS does, read in its source (moto 5.2.5, `sqs/models.py`) and allowed
for by bench/scaled.py: a message past the queue's retention period is not deleted but withheld, its
receive counted each time, so the redrive moves it in the end; a long poll does not wake when a
message's visibility runs out (the mapping polls every 0.1 s instead); visibility is counted in
whole seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))


class Unlike(AssertionError):
    """moto answered otherwise than SQS."""


def expect(condition: bool, what: str):
    if not condition:
        raise Unlike(what)


def receive(sqs, url: str) -> list[dict]:
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0).get(
        "Messages", []
    )


def check(sqs, function_sqs, tag: str) -> list[str]:
    """The checks above, on queues named after `tag`; `function_sqs` is another client, as the
    function's. Returns what was checked; raises `Unlike` at the first difference."""
    dlq = sqs.create_queue(QueueName=f"moto-check-{tag}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}
    url = sqs.create_queue(
        QueueName=f"moto-check-{tag}", Attributes={"VisibilityTimeout": "1", "RedrivePolicy": json.dumps(redrive)}
    )["QueueUrl"]
    done = []
    sqs.send_message(QueueUrl=url, MessageBody="record")
    first = receive(sqs, url)
    expect(len(first) == 1 and first[0]["Attributes"]["ApproximateReceiveCount"] == "1", f"first receive: {first}")
    expect(receive(sqs, url) == [], "a received message was visible again at once")
    done.append("a received message stays invisible")
    function_sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"], VisibilityTimeout=3)
    time.sleep(1.6)
    expect(receive(sqs, url) == [], "ChangeMessageVisibility by another client did not hold the message")
    done.append("ChangeMessageVisibility by the function holds it")
    second = []
    deadline = time.monotonic() + 4
    while not second and time.monotonic() < deadline:
        time.sleep(0.1)
        second = receive(sqs, url)
    expect(len(second) == 1, "the message did not come back after its visibility ran out")
    expect(second[0]["Attributes"]["ApproximateReceiveCount"] == "2", f"receive count: {second[0]['Attributes']}")
    done.append("it comes back after its visibility, its receive counted")
    time.sleep(1.2)
    expect(receive(sqs, url) == [], "a message past maxReceiveCount was delivered again")
    moved = receive(sqs, dlq)
    expect(len(moved) == 1 and moved[0]["Body"] == "record", f"the dead-letter queue holds {moved}")
    done.append("past maxReceiveCount the next receive moves it to the dead-letter queue")
    for queue in (url, dlq):
        sqs.delete_queue(QueueUrl=queue)
    return done


def clients(endpoint: str):
    import boto3

    make = dict(region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test", endpoint_url=endpoint)
    return boto3.client("sqs", **make), boto3.client("sqs", **make)


def main() -> int:
    from driver import Moto

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--moto", required=True, help="moto_server")
    args = parser.parse_args()
    moto = Moto(args.moto)
    try:
        for line in check(*clients(moto.endpoint), "alone"):
            print(f"as SQS: {line}")
    except Unlike as difference:
        print(f"NOT as SQS: {difference}")
        return 1
    finally:
        moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
