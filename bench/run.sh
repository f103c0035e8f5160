#!/usr/bin/env bash
# The benchmark (`make bench`): this function, the bare lambda_runtime floor and the Python peer, side
# by side under one Runtime API, against the Partner Central emulator. See bench/README.md.
#
#   bash bench/run.sh [driver options]      e.g. --runs 3, --messages 200, --no-drain, --only rust floor
#
# Steps: release builds (host); the arm64 zips (cargo lambda; the first arm64 build takes ~9 minutes,
# later ones reuse it; BENCH_ZIP=0 skips the build and reports the zips already there); criterion's
# decode benchmark; the bench venv (.venv-bench/, pinned); then bench/driver.py, which prints the
# table and writes bench/results/latest.json; then bench/stack.py (several instances, one account's
# quota), which prints its table and writes bench/results/stack.json; then its scaled-time scenarios
# (the day's write budget, the review), into bench/results/scaled.json.
# Environment: PYTHON (default python3), MOTO_SERVER (default .venv/bin/moto_server, as make sets it),
# BENCH_STACK=0 skips the stack scenario, BENCH_STACK_ARGS passes options to it (e.g. "--quick");
# BENCH_SCALED=0 skips the scaled-time scenarios, BENCH_SCALED_ARGS passes options to them.
# BENCH_POISONED=0 skips the poisoned write-slots table (bench/write_slots_poisoned.py).
# BENCH_SCAN=0 skips the legacy-Solutions scan (bench/scan.py), BENCH_SCAN_ARGS passes options to it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
start=$SECONDS
# Where cargo builds (make exports it; CARGO_TARGET_DIR may put it outside the checkout).
target="$(realpath -m "${TARGET_DIR:-${CARGO_TARGET_DIR:-target}}")"

echo "==> release builds: the function, the emulator, the SDK floor, the floor"
# Each alone: built together, they would share their dependencies' features (the emulator's tokio
# brings its signal driver, a socket pair at every start), and the function would not be the one
# cargo lambda packages, nor a floor a floor.
for package in opportunity-disassociator partner-central-emulator bench-sdk-floor bench-floor; do
  cargo build --release --quiet -p "$package"
done

mkdir -p bench/results
if [[ "${BENCH_ZIP:-1}" != 0 ]]; then
  echo "==> arm64 zips (cargo lambda)"
  make --no-print-directory package >/dev/null
  cargo lambda build --release --arm64 --output-format zip --package bench-floor --bin bench-floor \
    --lambda-dir "$target/lambda" >/dev/null 2>&1 \
    || echo "    (the floor's zip could not be built; its size is left out)"
else
  echo "==> arm64 zips: not built (BENCH_ZIP=0); sizes of the ones in $target/lambda, if any"
fi
zips=(--zip "rust=$target/lambda/opportunity-disassociator/bootstrap.zip")
zips+=(--zip "webhook=$target/lambda/opportunity-disassociator-webhook/bootstrap.zip")
zips+=(--zip "floor=$target/lambda/bench-floor/bootstrap.zip")

echo "==> cargo bench --bench decode (criterion)"
cargo bench --quiet --bench decode -- --warm-up-time 1 --measurement-time 3 >bench/results/decode.txt 2>&1 \
  || { cat bench/results/decode.txt; exit 1; }

# The bench venv: rebuilt only when bench/requirements.txt or the interpreter changes.
venv=.venv-bench
python="${PYTHON:-python3}"
key="$({ "$python" -c 'import sys, platform; print(sys.version, platform.machine())'; cat bench/requirements.txt; } \
  | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$venv/.stamp" || "$(cat "$venv/.stamp")" != "$key" ]]; then
  echo "==> $venv from bench/requirements.txt"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
    "$venv/bin/python" -m pip install --quiet --progress-bar off --only-binary=:all: -r bench/requirements.txt
  echo "$key" >"$venv/.stamp"
fi

echo "==> from-csv: 100,000 rows, time and peak memory (bench/plan_csv.py)"
cargo build --release --quiet -p opportunity-disassociator-plan
"$python" bench/plan_csv.py --bin "$target/release/opportunity-disassociator-plan" --out bench/results/plan.json
if [[ "${BENCH_SCAN:-1}" == 0 ]]; then
  echo "==> marketplace-solutions scan: skipped (BENCH_SCAN=0)"
else
  echo "==> marketplace-solutions: 10,000 opportunities, read rate and peak memory (bench/scan.py, a few minutes)"
  # shellcheck disable=SC2086 # BENCH_SCAN_ARGS is a list of options
  "$python" bench/scan.py --bin "$target/release/opportunity-disassociator-plan" \
    --emulator "$target/release/partner-central-emulator" --out bench/results/scan.json ${BENCH_SCAN_ARGS:-}
fi

moto="${MOTO_SERVER:-$root/.venv/bin/moto_server}"
moto_args=(--moto "$moto")
if [[ ! -x "$moto" ]]; then
  echo "    moto_server not found at $moto (run through make, or set MOTO_SERVER): no backlog drain"
  moto_args=()
fi

rm -rf bench/results/logs
echo "==> measuring (a few minutes)"
"$venv/bin/python" bench/driver.py \
  --rust "$target"/release/opportunity-disassociator \
  --floor "$target"/release/bench-floor \
  --sdk-floor "$target"/release/bench-sdk-floor \
  --emulator "$target"/release/partner-central-emulator \
  --peer bench/peer \
  --python "$root/$venv/bin/python" \
  "${moto_args[@]}" "${zips[@]}" --criterion "$target/criterion/decode" \
  --out bench/results/latest.json \
  --logs bench/results/logs \
  "$@"

if [[ "${BENCH_STACK:-1}" == 0 ]]; then
  echo "==> stack scenario: skipped (BENCH_STACK=0)"
elif [[ -x "$moto" ]]; then
  echo "==> stack scenario: several instances, one account's write quota (bench/stack.py)"
  # shellcheck disable=SC2086 # BENCH_STACK_ARGS is a list of options
  "$venv/bin/python" bench/stack.py \
    --rust "$target"/release/opportunity-disassociator \
    --emulator "$target"/release/partner-central-emulator \
    --moto "$moto" \
    --out bench/results/stack.json \
    --logs bench/results/logs/stack \
    ${BENCH_STACK_ARGS:-}
else
  echo "==> stack scenario: skipped (no moto_server)"
fi
if [[ "${BENCH_SCALED:-1}" != 0 && -x "$moto" ]]; then
  echo "==> scaled time: the day's write budget, the review (bench/stack.py --scenario budget,review)"
  # shellcheck disable=SC2086 # BENCH_SCALED_ARGS is a list of options
  "$venv/bin/python" bench/stack.py --scenario budget,review \
    --rust "$target"/release/opportunity-disassociator --emulator "$target"/release/partner-central-emulator \
    --moto "$moto" --out bench/results/scaled.json --logs bench/results/logs/scaled ${BENCH_SCALED_ARGS:-}
fi
if [[ "${BENCH_POISONED:-1}" == 0 ]]; then
  echo "==> poisoned write-slots table: skipped (BENCH_POISONED=0)"
elif [[ -x "$moto" ]]; then
  echo "==> poisoned write-slots table and wrong clocks (bench/write_slots_poisoned.py)"
  clocks=none
  if compgen -G "/usr/lib/*/faketime/libfaketimeMT.so.1" > /dev/null; then
    clocks=none,ahead,behind
  else
    echo "    libfaketime not installed (apt-get install faketime): the rows with a wrong clock are left out"
  fi
  "$venv/bin/python" bench/write_slots_poisoned.py \
    --rust "$target"/release/opportunity-disassociator \
    --emulator "$target"/release/partner-central-emulator \
    --moto "$moto" \
    --clocks "$clocks" \
    --out bench/results/write_slots_poisoned.json \
    --logs bench/results/logs/poisoned
else
  echo "==> poisoned write-slots table: skipped (no moto_server)"
fi
echo "==> bench done in $((SECONDS - start)) s"
