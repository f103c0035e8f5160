#!/usr/bin/env bash
# make demo: both functions (the worker and the webhook) under cargo lambda's Runtime API emulator,
# fed every sample in events/, against the local Partner Central emulator and moto's SQS (the work
# queue and the dead-letter queue). No AWS. Prints, for each sample: its name, what it shows, the
# function's answer, and what the emulator now holds. Stops every process it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
# Where cargo builds (make exports it; CARGO_TARGET_DIR may put it outside the checkout).
TARGET_DIR="$(realpath -m "${TARGET_DIR:-${CARGO_TARGET_DIR:-target}}")"

VENV="$PWD/.venv"
export PATH="$VENV/bin:$PATH"
WORK=.demo
mkdir -p "$WORK"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# An HTTP request with python3 (a fresh machine may have no curl): GET url, or POST body to it. Any HTTP
# answer, an error status included, is success: it shows that the server is up.
http() { # url [body]
  python3 -c '
import sys, urllib.error, urllib.request
body = sys.argv[2].encode() if len(sys.argv) > 2 else None
try:
    urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=body), timeout=5).read()
except urllib.error.HTTPError:
    pass
' "$@" 2>/dev/null
}
wait_for() { # url, what, seconds
  for _ in $(seq 1 $(( $3 * 10 ))); do
    http "$1" && return 0
    sleep 0.1
  done
  echo "demo: $2 did not come up (see $WORK/*.log)" >&2
  exit 1
}
bold() { printf '\033[1m%s\033[0m\n' "$*"; }

bold "==> building the functions and the Partner Central emulator"
cargo build --quiet -p partner-central-emulator -p opportunity-disassociator

bold "==> starting the Partner Central emulator (seed: emulator/seed.json, quota 1 write/s)"
"$TARGET_DIR/debug/partner-central-emulator" --port 0 --seed emulator/seed.json >"$WORK/emulator.out" 2>"$WORK/emulator.log" &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q 'listening on' "$WORK/emulator.out" 2>/dev/null && break; sleep 0.1; done
EMULATOR=$(sed -n '/listening on /{s/.*listening on //p;q;}' "$WORK/emulator.out")
[ -n "$EMULATOR" ] || { echo "demo: the emulator did not start (see $WORK/emulator.log)" >&2; exit 1; }
echo "    $EMULATOR"

bold "==> starting moto's SQS with a work queue and its dead-letter queue"
MOTO_PORT=$(free_port)
moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
MOTO="http://127.0.0.1:$MOTO_PORT"
wait_for "$MOTO/moto-api/" "moto" 60
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
QUEUES=$(python3 - "$MOTO" <<'EOF'
import json, sys, boto3
sqs = boto3.client("sqs", endpoint_url=sys.argv[1])
dlq = sqs.create_queue(QueueName="opportunity-disassociator-demo-dlq")["QueueUrl"]
arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
work = sqs.create_queue(QueueName="opportunity-disassociator-demo-work",
                        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "3"})})["QueueUrl"]
print(dlq, work)
EOF
)
read -r DLQ_URL WORK_URL <<<"$QUEUES"
echo "    $MOTO (work queue $WORK_URL, dead-letter queue $DLQ_URL)"

bold "==> starting both functions under cargo lambda watch"
INVOKE_PORT=$(free_port)
cargo lambda watch --quiet --ignore-changes --invoke-address 127.0.0.1 --invoke-port "$INVOKE_PORT" \
  --env-var AWS_ENDPOINT_URL_PARTNERCENTRAL_SELLING="$EMULATOR" \
  --env-var AWS_ENDPOINT_URL_SQS="$MOTO" \
  --env-var AWS_ACCESS_KEY_ID=test --env-var AWS_SECRET_ACCESS_KEY=test --env-var AWS_REGION=us-east-1 \
  --env-var DEAD_LETTER_QUEUE_URL="$DLQ_URL" \
  --env-var ALLOWED_CATALOGS=Sandbox \
  --env-var PARTNER_CENTRAL_WRITES_PER_SECOND=0.9 \
  --env-var AWS_LAMBDA_LOG_FORMAT=JSON \
  --env-var WEBHOOK_SECRET=demo-webhook-secret \
  --env-var WORK_QUEUE_URL="$WORK_URL" \
  >"$WORK/function.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$INVOKE_PORT/" "cargo lambda watch" 300
echo "    invoke port $INVOKE_PORT; function logs in $WORK/function.log"

rm -f "$WORK/state.json"
show_state() { python3 tools/show_state.py "$EMULATOR" "$WORK/state.json"; }

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
