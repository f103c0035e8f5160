"""The function our users would otherwise write: the same job, done the usual way in Python.

boto3's `partnercentral-selling` client, created once at import (so init pays for it, as the Lambda
docs recommend), with boto3's default retry configuration: botocore 1.44 defaults to the `standard`
retry mode (3 attempts, exponential backoff with jitter, throttling retried). Powertools'
`BatchProcessor` turns the SQS batch into a partial batch response: a record whose call raises is
reported failed and comes back; the others are deleted.

No pacing: that is the usual way, and why this function's backlog drain is throttled. The endpoint,
region and credentials come from the environment (`AWS_ENDPOINT_URL_PARTNERCENTRAL_SELLING`,
`AWS_REGION`, `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`), as for the Rust function.
"""

import json

import boto3
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

client = boto3.client("partnercentral-selling")
processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    """One message body is the `DisassociateOpportunity` request document, passed as is."""
    document = json.loads(record.body)
    client.disassociate_opportunity(**document)


def lambda_handler(event, context):
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
