"""One pass of an SQS event source mapping, as Lambda runs it: receive a batch from the work queue,
invoke the function (through cargo lambda's invoke port) with it, and delete the records the answer
does not report failed. A failed record is left alone: it comes back when its visibility runs out
(the queue's timeout, or the function's own ChangeMessageVisibility, docs/holds.md).

usage: pump_once.py SQS_ENDPOINT QUEUE_URL INVOKE_PORT EVENT_FILE
"""
import json
import subprocess
import sys

import boto3

endpoint, queue_url, invoke_port, event_file = sys.argv[1:5]
sqs = boto3.client("sqs", endpoint_url=endpoint)
arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
messages = sqs.receive_message(
    QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
).get("Messages", [])
if not messages:
    print("    the work queue is empty")
    sys.exit(0)
records = [
    {
        "messageId": m["MessageId"],
        "receiptHandle": m["ReceiptHandle"],
        "body": m["Body"],
        "attributes": m.get("Attributes", {}),
        # A held message's hold travels in its attributes: given as Lambda gives them.
        "messageAttributes": {
            name: {"stringValue": a.get("StringValue"), "stringListValues": [], "binaryListValues": [],
                   "dataType": a["DataType"]}
            for name, a in m.get("MessageAttributes", {}).items()
        },
        "md5OfBody": m["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": "us-east-1",
    }
    for m in messages
]
with open(event_file, "w") as f:
    json.dump({"Records": records}, f)
print(f"    the work queue gave a batch of {len(records)}: {', '.join(m['Body'] for m in messages)}")
done = subprocess.run(
    ["cargo", "lambda", "invoke", "opportunity-disassociator", "--invoke-address", "127.0.0.1",
     "--invoke-port", invoke_port, "--data-file", event_file],
    capture_output=True, text=True,
)
print(f"    answer: {done.stdout.strip() or done.stderr.strip()}")
failed = set()
if done.returncode == 0:
    failed = {f["itemIdentifier"] for f in json.loads(done.stdout).get("batchItemFailures", [])}
else:
    failed = {m["MessageId"] for m in messages}
for m in messages:
    if m["MessageId"] not in failed:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
