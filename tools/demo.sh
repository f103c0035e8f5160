#!/usr/bin/env bash
# make demo: both functions (the worker and the webhook) under cargo lambda's Runtime API emulator,
# fed every sample in events/, against the local Partner Central emulator and moto's SQS (the work
# queue and the dead-letter queue). No AWS. Prints, for each sample: its name, what it shows, the
# function's answer, and what the emulator now holds. Stops every process it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/demo-world.sh
source tools/demo-world.sh

describe() {
  case "$1" in
    direct.json) echo "direct invocation (aws lambda invoke, Step Functions): remove the AwsProducts entry AmazonEC2 from O1234567" ;;
    direct-already-disassociated.json) echo "direct: S-0000009 is not on O1234567; the service says not found, GetOpportunity confirms it is gone: success, so redelivery is idempotent" ;;
    direct-invalid.json) echo "direct, invalid: the function names each bad member and makes no call" ;;
    direct-last-solution.json) echo "direct: remove S-4000001, the last solution of the approved O4000001, first (the wrong order for a replacement): refused, nothing changes, and the reason suggests ReplaceWith" ;;
    replace-solution.json) echo "EventBridge: replace O4000001's legacy solution S-4000001 by a Marketplace solution (ReplaceWith): associated first, then S-4000001 disassociated, so the opportunity always keeps a solution" ;;
    replace-offer.json) echo "direct: replace O4000002's offer by another; an opportunity holds one offer at most, so the old one is disassociated first, then the new one associated" ;;
    replace-refused.json) echo "SQS: replace O4000004's legacy solution by an eleventh Marketplace solution: the association is refused for the limit of 10, nothing is removed, and the request is dead-lettered with the step that failed" ;;
    eventbridge.json) echo "EventBridge event whose detail is the request: remove solution S-0000001 from O1234567" ;;
    eventbridge-throttled.json) echo "EventBridge event while the emulator throttles every call (fault injected for this sample): a function error, so Lambda's async retry brings it back" ;;
    marketplace-offer.json) echo "direct: remove a Marketplace offer (ARN identifier) from O1234567" ;;
    sqs-eventbridge-record.json) echo "SQS record carrying an EventBridge event (rule -> queue -> function)" ;;
    sqs-mixed-batch.json) echo "SQS batch: 1 valid, 2 malformed, 1 production-catalog request (not allowed here), 1 unknown opportunity; the bad ones go to the dead-letter queue with their reason" ;;
    sqs-fifo-batch.json) echo "FIFO batch, one message group, in order; the middle one breaks a business rule (last solution of a submitted opportunity) and is dead-lettered" ;;
    webhook-*) echo "signed CRM webhook, to the webhook function (its Function URL): re-signed now with the documented demo secret, queued to the work queue" ;;
    *) echo "sample event" ;;
  esac
}

bold "==> the emulator holds, before anything runs:"
show_state

for file in events/*.json; do
  name=$(basename "$file")
  data="$file"
  echo
  bold "==> $name"
  echo "    $(describe "$name")"
  case "$name" in
    eventbridge-throttled.json) http "$EMULATOR/_emulator/faults" '{"ThrottleRate": 1.0}' ;;
    webhook-*)
      if [ -x tools/sign-webhook ]; then
        data="$WORK/$name"
        tools/sign-webhook --secret demo-webhook-secret --event "$file" >"$data"
      fi
      ;;
  esac
  function=opportunity-disassociator
  case "$name" in webhook-*) function=opportunity-disassociator-webhook ;; esac
  set +e
  answer=$(cargo lambda invoke "$function" --invoke-address 127.0.0.1 --invoke-port "$INVOKE_PORT" --data-file "$data" 2>&1 \
    | grep -v -e 'Was this behavior unexpected' -e 'Start a thread in' -e '^\s*$')
  status=$?
  set -e
  http "$EMULATOR/_emulator/faults" '{}'
  if [ $status -eq 0 ]; then echo "    answer: $answer"; else echo "    function error: $answer"; fi
  case "$name" in
    webhook-*)
      echo "    then the queue's event source mapping delivers it to the worker:"
      python3 tools/pump_once.py "$MOTO" "$WORK_URL" "$INVOKE_PORT" "$WORK/work-queue-batch.json"
      ;;
  esac
  echo "    the emulator now holds:"
  show_state
done

echo
bold "==> a request held while AWS reviews the opportunity, and done once the review ends"
echo "    direct: replace O3000002's legacy solution S-3000002 by a Marketplace solution while O3000002 is"
echo "    Submitted: the read shows the review, so nothing is written; the request waits in the work queue"
echo "    (docs/holds.md) and is tried again every REVIEW_RECHECK_SECONDS (2 s here)"
held_request="$WORK/held-review.json"
cat >"$held_request" <<'EOF'
{"Catalog": "Sandbox", "OpportunityIdentifier": "O3000002", "RelatedEntityType": "Solutions",
 "RelatedEntityIdentifier": "S-3000002", "ReplaceWith": {"RelatedEntityType": "AwsMarketplaceSolutions",
 "RelatedEntityIdentifier": "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-review"}}
EOF
answer=$(cargo lambda invoke opportunity-disassociator --invoke-address 127.0.0.1 --invoke-port "$INVOKE_PORT" \
  --data-file "$held_request" 2>&1 | grep -v -e 'Was this behavior unexpected' -e 'Start a thread in' -e '^\s*$')
echo "    answer: $answer"
outcomes() { grep -c "\"outcome\":\"$1\"" "$WORK/function.log" || true; }
# Lambda's mapping, one pass at a time, until the worker logs one more `$1` outcome (at most 30 s).
pump_until() {
  local before
  before=$(outcomes "$1")
  for _ in $(seq 1 60); do
    python3 tools/pump_once.py "$MOTO" "$WORK_URL" "$INVOKE_PORT" "$WORK/work-queue-batch.json" | grep -v 'is empty' || true
    [ "$(outcomes "$1")" -gt "$before" ] && return 0
    sleep 0.5
  done
  echo "demo: no '$1' outcome within 30 s (see $WORK/function.log)" >&2
  exit 1
}
echo "    the recheck, while still Submitted: held again"
pump_until held
http "$EMULATOR/_emulator/opportunities/Sandbox/O3000002/life-cycle" '{"ReviewStatus": "Approved"}'
echo "    AWS approves O3000002; the next recheck replaces the solution:"
pump_until replaced
echo "    the emulator now holds:"
show_state

echo
bold "==> the dead-letter queue: each rejected request, body unchanged, with its reason"
python3 - "$MOTO" "$DLQ_URL" <<'EOF'
import sys, boto3
sqs = boto3.client("sqs", endpoint_url=sys.argv[1])
seen = 0
while True:
    got = sqs.receive_message(QueueUrl=sys.argv[2], MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get("Messages", [])
    if not got:
        break
    for m in got:
        seen += 1
        attrs = {k: v.get("StringValue") for k, v in m.get("MessageAttributes", {}).items()}
        body = m["Body"] if len(m["Body"]) <= 100 else m["Body"][:100] + "..."
        print(f"    {attrs.get('ErrorCode')}: {attrs.get('ErrorMessage')}")
        print(f"      body: {body}")
        sqs.delete_message(QueueUrl=sys.argv[2], ReceiptHandle=m["ReceiptHandle"])
print(f"    {seen} dead letter(s)")
EOF
echo
bold "==> done: every process started here is stopped on exit. Function logs (JSON lines, with EMF metrics): $WORK/function.log"
