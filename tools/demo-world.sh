# The local world the demos run in, sourced by tools/demo.sh, tools/plan-demo.sh and
# tools/marketplace-demo.sh from the checkout's root: the Partner Central emulator, moto's SQS with a
# work queue and its dead-letter queue, and both functions under cargo lambda watch. Sets EMULATOR,
# MOTO, WORK_URL, DLQ_URL, INVOKE_PORT and WORK (the scratch folder, .demo/), and the helpers http,
# wait_for, bold, show_state, plan_program, send_plan, deliver and watch_functions. Every process it
# starts is stopped on exit, by PID. VENV may name the tool venv (default .venv/).
# Where cargo builds (make exports it; CARGO_TARGET_DIR may put it outside the checkout).
TARGET_DIR="$(realpath -m "${TARGET_DIR:-${CARGO_TARGET_DIR:-target}}")"

VENV="${VENV:-$PWD/.venv}"
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
# What the emulator holds: every opportunity the first time, then what changed (tools/show_state.py).
show_state() { python3 tools/show_state.py "$EMULATOR" "$WORK/state.json"; }
rm -f "$WORK/state.json"
# Builds opportunity-disassociator-plan (its own package: profiles and SSO stay out of the functions)
# and sets PLAN_BIN; the program reaches moto's SQS as it would reach AWS's, through the SDK's endpoint.
plan_program() {
  bold "==> building opportunity-disassociator-plan"
  cargo build --quiet -p opportunity-disassociator-plan
  PLAN_BIN="$TARGET_DIR/debug/opportunity-disassociator-plan"
  export AWS_ENDPOINT_URL_SQS="$MOTO"
}
# A plan dry-run, then sent to the work queue, as docs/bulk.md does it.
send_plan() { # plan
  bold "==> send --dry-run: what would be sent, and the queue's bound; nothing sent"
  "$PLAN_BIN" send "$1" --queue-url "$WORK_URL" --dry-run --out /dev/null
  echo
  bold "==> send"
  "$PLAN_BIN" send "$1" --queue-url "$WORK_URL"
}
# The work queue's event source mapping, played by tools/pump_once.py until the queue is empty.
deliver() {
  bold "==> the event source mapping delivers the work queue to the worker, a batch at a time"
  for _ in $(seq 1 10); do
    pass=$(python3 tools/pump_once.py "$MOTO" "$WORK_URL" "$INVOKE_PORT" "$WORK/work-queue-batch.json")
    echo "$pass" | cut -c1-200
    case "$pass" in *"the work queue is empty"*) break ;; esac
  done
}

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

# Both functions under cargo lambda watch (its Runtime API emulator) on a free port, with the demo's
# settings and any more given as `--env-var NAME=VALUE`; logs appended to $WORK/function.log. Sets
# WATCH_PORT.
watch_functions() { # [--env-var NAME=VALUE]...
  WATCH_PORT=$(free_port)
  cargo lambda watch --quiet --ignore-changes --invoke-address 127.0.0.1 --invoke-port "$WATCH_PORT" \
    --env-var AWS_ENDPOINT_URL_PARTNERCENTRAL_SELLING="$EMULATOR" \
    --env-var AWS_ENDPOINT_URL_SQS="$MOTO" \
    --env-var AWS_ACCESS_KEY_ID=test --env-var AWS_SECRET_ACCESS_KEY=test --env-var AWS_REGION=us-east-1 \
    --env-var DEAD_LETTER_QUEUE_URL="$DLQ_URL" \
    --env-var ALLOWED_CATALOGS=Sandbox \
    --env-var PARTNER_CENTRAL_WRITES_PER_SECOND=0.9 \
    --env-var AWS_LAMBDA_LOG_FORMAT=JSON \
    --env-var WEBHOOK_SECRET=demo-webhook-secret \
    --env-var WORK_QUEUE_URL="$WORK_URL" \
    --env-var REVIEW_RECHECK_SECONDS=2 \
    "$@" >>"$WORK/function.log" 2>&1 &
  PIDS+=($!)
  wait_for "http://127.0.0.1:$WATCH_PORT/" "cargo lambda watch" 300
}

bold "==> starting both functions under cargo lambda watch"
rm -f "$WORK/function.log"
watch_functions
INVOKE_PORT=$WATCH_PORT
echo "    invoke port $INVOKE_PORT; function logs in $WORK/function.log"
