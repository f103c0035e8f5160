#!/usr/bin/env bash
# make marketplace-demo: the legacy-Solutions move (docs/marketplace-solutions.md), locally. The seed's
# migration is planned from the emulator's own state by `marketplace-solutions`, sent to the work queue
# (moto's SQS), and carried out by the worker (under cargo lambda watch; the queue's event source
# mapping played by tools/pump_once.py); then what changed is shown, and a second scan of the state
# after says what is left on the account and why. No AWS.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/demo-world.sh
source tools/demo-world.sh

plan_program
# The scan reads Partner Central through the SDK's endpoint setting, as the worker does.
export AWS_ENDPOINT_URL_PARTNERCENTRAL_SELLING="$EMULATOR"
PLAN="$WORK/legacy.jsonl"
AFTER="$WORK/legacy-after.jsonl"
rm -f "$PLAN" "$PLAN.sent" "$PLAN.scan-state.json" "$PLAN.scan-state.json.journal" "$AFTER" "$AFTER.scan-state.json" \
  "$AFTER.scan-state.json.journal"

bold "==> the emulator holds, before anything runs:"
show_state
echo "    its legacy solutions (ListSolutions) and their AWS Marketplace counterparts:"
python3 - "$EMULATOR" <<'EOF'
import json, sys, urllib.request
state = json.load(urllib.request.urlopen(sys.argv[1] + "/_emulator/state"))
for s in state["Solutions"]:
    if s["Catalog"] == "Sandbox":
        arn = s.get("AwsMarketplaceSolutionArn")
        print(f"      {s['Id']}  {arn.rsplit('/', 1)[-1] if arn else 'no counterpart'}")
EOF

echo
bold "==> marketplace-solutions --catalog Sandbox: the plan from the account's own state (5 reads/s)"
"$PLAN_BIN" marketplace-solutions --catalog Sandbox --out "$PLAN"
echo "    the plan, one replacement a line (opportunity: legacy solution -> counterpart):"
python3 - "$PLAN" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f"      {r['OpportunityIdentifier']}: {r['RelatedEntityIdentifier']} -> "
          f"{r['ReplaceWith']['RelatedEntityIdentifier'].rsplit('/', 1)[-1]}")
EOF

echo
send_plan "$PLAN"

echo
bold "==> AWS ends O3000002's review (approved)"
echo "    It was Submitted when planned: the stack holds a request under review until the review ends."
echo "    Here the review ends before the worker runs, so the demo does not wait for the stack's recheck."
http "$EMULATOR/_emulator/opportunities/Sandbox/O3000002/life-cycle" '{"ReviewStatus": "Approved"}'

echo
deliver

echo
bold "==> the emulator now holds (what changed: each legacy solution replaced by its counterpart):"
show_state
python3 - "$MOTO" "$DLQ_URL" <<'EOF'
import sys, boto3
sqs = boto3.client("sqs", endpoint_url=sys.argv[1])
depth = sqs.get_queue_attributes(QueueUrl=sys.argv[2], AttributeNames=["ApproximateNumberOfMessages"])
print(f"      dead-letter queue: {depth['Attributes']['ApproximateNumberOfMessages']} messages")
EOF

echo
bold "==> marketplace-solutions again, on the state after: nothing left to plan, and what is left and why"
"$PLAN_BIN" marketplace-solutions --catalog Sandbox --out "$AFTER"
echo
bold "==> done: every process started here is stopped on exit. Function logs: $WORK/function.log"
