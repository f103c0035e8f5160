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
    sqs-rejected.json) echo "SQS: replace the legacy solution of O3000004, which AWS's review rejected: the read before the writes shows it read-only, so nothing is written and the request is dead-lettered at once (OpportunityRejected)" ;;
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
# Lambda's mapping, one pass at a time, to the functions at port $3 (the demo's by default), until the
# worker has logged $2 more `$1` outcomes (1 by default), at most $4 seconds (30 by default).
pump_until() { # outcome [more [port [seconds]]]
  local target end
  target=$(( $(outcomes "$1") + ${2:-1} ))
  end=$(( SECONDS + ${4:-30} ))
  while [ "$SECONDS" -lt "$end" ]; do
    python3 tools/pump_once.py "$MOTO" "$WORK_URL" "${3:-$INVOKE_PORT}" "$WORK/work-queue-batch.json" | grep -v 'is empty' || true
    [ "$(outcomes "$1")" -ge "$target" ] && return 0
    sleep 0.5
  done
  echo "demo: fewer than ${2:-1} more '$1' outcome(s) within ${4:-30} s (see $WORK/function.log)" >&2
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
bold "==> requests held for the day's write budget, and done once the window frees"
# A day scaled down to seconds: the worker (a second cargo lambda watch, for this step only) and the
# emulator both allow BUDGET writes in any WINDOW seconds.
BUDGET=3 WINDOW=15 SENT=5
echo "    direct: remove five of O4000004's Marketplace solutions with a budget of $BUDGET writes per $WINDOW s"
echo "    (ACCOUNT_WRITES_PER_DAY, WRITE_BUDGET_WINDOW_SECONDS; the emulator's daily quota the same):"
echo "    the first $BUDGET are done, the rest are answered held with the time they come back, and wait in"
echo "    the work queue (docs/holds.md); the mapping delivers them when due, and the worker does them"
http "$EMULATOR/_emulator/daily-quotas" \
  "{\"Write\": {\"Cap\": $BUDGET, \"WindowSeconds\": $WINDOW}, \"Read\": {\"Cap\": 100000, \"WindowSeconds\": 86400}}"
# This step's worker paces alone, unaware of the other worker's last write a moment ago: the
# per-second buckets start full (the same quotas), as if that write were a second old.
http "$EMULATOR/_emulator/quotas" '{"Write": {"Rate": 1.0, "Burst": 1.0}, "Read": {"Rate": 10.0, "Burst": 10.0}}'
watch_functions --env-var ACCOUNT_WRITES_PER_DAY="$BUDGET" --env-var WRITE_BUDGET_WINDOW_SECONDS="$WINDOW"
budget_port=$WATCH_PORT
daily_use() {
  python3 - "$EMULATOR" <<'PY'
import json, sys, urllib.request
get = lambda path: json.load(urllib.request.urlopen(sys.argv[1] + path, timeout=5))
use = get("/_emulator/daily-use")["Write"]
refused = sum(op["DailyQuotaThrottled"] for op in get("/_emulator/state")["Operations"].values())
print(f"    the emulator's write window: {use['Used']} used, {use['Left']} left of {use['Cap']} per"
      f" {use['WindowSeconds']:g} s; calls refused by the daily quota: {refused}")
PY
}
done_before=$(outcomes disassociated)
start=$EPOCHREALTIME
for n in $(seq 1 "$SENT"); do
  request="$WORK/held-budget-$n.json"
  printf '{"Catalog": "Sandbox", "OpportunityIdentifier": "O4000004", "RelatedEntityType": "AwsMarketplaceSolutions",
 "RelatedEntityIdentifier": "arn:aws:aws-marketplace:us-east-1:123456789012:AWSMarketplace/Solution/sol-%02d"}\n' "$n" >"$request"
  answer=$(cargo lambda invoke opportunity-disassociator --invoke-address 127.0.0.1 --invoke-port "$budget_port" \
    --data-file "$request" 2>&1 | grep -v -e 'Was this behavior unexpected' -e 'Start a thread in' -e '^\s*$')
  python3 - "$answer" <<'PY'
import json, sys, time
try:
    answer = json.loads(sys.argv[1])
except ValueError:
    sys.exit("    function error: " + sys.argv[1])
entity = answer["request"]["RelatedEntityIdentifier"].rsplit("/", 1)[-1]
if answer["outcome"] == "held":
    back = answer["holdUntil"] / 1000
    at = time.strftime("%H:%M:%S", time.gmtime(back))
    print(f"    {entity}: outcome held, heldFor {answer['heldFor']}, queued {json.dumps(answer['queued'])}:"
          f" back at {at} UTC, in {back - time.time():.1f} s")
else:
    print(f"    {entity}: outcome {answer['outcome']}")
PY
done
daily_use
echo "    the worker's log says of the held ones:"
python3 - "$WORK/function.log" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    if '"held_for":"budget"' in line:
        entry = json.loads(line)
        fields = entry.get("fields", entry)
        level, outcome, cause, message = (entry.get("level"), fields.get("outcome"), fields.get("held_for"),
                                          fields.get("message"))
        print(f"      {level} outcome={outcome} held_for={cause}: {message}")
PY
echo "    the mapping's passes, until the worker has done all $SENT (at most 60 s):"
pump_until disassociated $(( SENT - ($(outcomes disassociated) - done_before) )) "$budget_port" 60
awk -v start="$start" -v end="$EPOCHREALTIME" -v sent="$SENT" \
  'BEGIN { printf "    all %d done, the last %.1f s after the first request; no redrive, no retry by hand\n", sent, end - start }'
daily_use
http "$EMULATOR/_emulator/daily-quotas" \
  '{"Write": {"Cap": 10000, "WindowSeconds": 86400}, "Read": {"Cap": 100000, "WindowSeconds": 86400}}'
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
