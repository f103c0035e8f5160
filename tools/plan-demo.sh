#!/usr/bin/env bash
# make plan-demo: the bulk path (docs/bulk.md), locally. examples/bulk-export.csv is planned with
# opportunity-disassociator-plan, dry-run and sent to the work queue (moto's SQS); the queue's event
# source mapping is played by tools/pump_once.py until the queue is empty, so the worker (under cargo
# lambda watch) carries every request out against the Partner Central emulator, whose state is shown
# before and after. A second send shows that a rerun sends nothing twice. No AWS.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/demo-world.sh
source tools/demo-world.sh

bold "==> building opportunity-disassociator-plan (its own package: profiles and SSO stay out of the functions)"
cargo build --quiet -p opportunity-disassociator-plan
PLAN_BIN="$TARGET_DIR/debug/opportunity-disassociator-plan"
# The program reaches moto's SQS as it would reach AWS's, through the SDK's endpoint setting.
export AWS_ENDPOINT_URL_SQS="$MOTO"
PLAN="$WORK/bulk.jsonl"
rm -f "$PLAN" "$PLAN.sent" "$WORK/state.json"
show_state() { python3 tools/show_state.py "$EMULATOR" "$WORK/state.json"; }

bold "==> the emulator holds, before anything runs:"
show_state

echo
bold "==> from-csv examples/bulk-export.csv (a spreadsheet's export: CRLF, quoted fields, a repeated row)"
"$PLAN_BIN" from-csv examples/bulk-export.csv --out "$PLAN"
echo "    the plan, one request document a line:"
sed 's/^/      /' "$PLAN"

echo
bold "==> send --dry-run: what would be sent, and the queue's bound; nothing sent"
"$PLAN_BIN" send "$PLAN" --queue-url "$WORK_URL" --dry-run --out /dev/null

echo
bold "==> send"
"$PLAN_BIN" send "$PLAN" --queue-url "$WORK_URL"

echo
bold "==> the event source mapping delivers the work queue to the worker, a batch at a time"
for _ in $(seq 1 10); do
  pass=$(python3 tools/pump_once.py "$MOTO" "$WORK_URL" "$INVOKE_PORT" "$WORK/work-queue-batch.json")
  echo "$pass" | cut -c1-200
  case "$pass" in *"the work queue is empty"*) break ;; esac
done

echo
bold "==> the emulator now holds:"
show_state

echo
bold "==> send again: the state file beside the plan says everything was sent"
"$PLAN_BIN" send "$PLAN" --queue-url "$WORK_URL"
echo
bold "==> done: every process started here is stopped on exit. Function logs: $WORK/function.log"
