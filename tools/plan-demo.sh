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

plan_program
PLAN="$WORK/bulk.jsonl"
rm -f "$PLAN" "$PLAN.sent"

bold "==> the emulator holds, before anything runs:"
show_state

echo
bold "==> from-csv examples/bulk-export.csv (a spreadsheet's export: CRLF, quoted fields, a repeated row)"
"$PLAN_BIN" from-csv examples/bulk-export.csv --out "$PLAN"
echo "    the plan, one request document a line:"
sed 's/^/      /' "$PLAN"

echo
send_plan "$PLAN"

echo
deliver

echo
bold "==> the emulator now holds:"
show_state

echo
bold "==> send again: the state file beside the plan says everything was sent"
"$PLAN_BIN" send "$PLAN" --queue-url "$WORK_URL"
echo
bold "==> done: every process started here is stopped on exit. Function logs: $WORK/function.log"
