#!/usr/bin/env bash
# How long `cargo test --workspace` takes a developer, at a commit: cold (the package rebuilt after
# `cargo clean -p opportunity-disassociator`, its dependencies already built) and warm (one file under
# src/ touched). Wall and CPU seconds, each the median of RUNS runs; figures go to bench/README.md.
#
#   bash bench/test-times.sh [REV ...]      default: HEAD. RUNS (default 1) runs of each.
#
# Each REV is checked out in a worktree of its own under the target folder, built in a target folder
# of its own (so no two revisions share build outputs), and its dependencies built once before the
# timed runs. MOTO_SERVER as for the tests (default .venv/bin/moto_server). Needs a quiet machine:
# anything else running shows in the wall times.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target="$(realpath -m "${TARGET_DIR:-${CARGO_TARGET_DIR:-target}}")"
export MOTO_SERVER="${MOTO_SERVER:-$root/.venv/bin/moto_server}"
runs="${RUNS:-1}"
revs=("$@")
[[ ${#revs[@]} -gt 0 ]] || revs=(HEAD)

median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# One timed `cargo test --workspace` in $1 with target $2: prints "wall cpu".
timed() {
  local out
  out="$(mktemp)"
  (cd "$1" && CARGO_TARGET_DIR="$2" /usr/bin/time -f '%e %U %S' -o "$out" cargo test --workspace --quiet >/dev/null 2>&1) \
    || { echo "cargo test --workspace failed in $1" >&2; rm -f "$out"; return 1; }
  awk '{printf "%s %.2f\n", $1, $2 + $3}' "$out"
  rm -f "$out"
}

for rev in "${revs[@]}"; do
  commit="$(git rev-parse --short "$rev")"
  tree="$target/test-times/tree-$commit"
  build="$target/test-times/target-$commit"
  [[ -d "$tree" ]] || git worktree add --quiet --detach "$tree" "$commit"
  echo "==> $commit: building the dependencies and the tests once"
  (cd "$tree" && CARGO_TARGET_DIR="$build" cargo test --workspace --no-run --quiet >/dev/null 2>&1)
  cold=() warm=()
  for _ in $(seq "$runs"); do
    (cd "$tree" && CARGO_TARGET_DIR="$build" cargo clean --quiet -p opportunity-disassociator)
    cold+=("$(timed "$tree" "$build")")
    touch "$tree/src/lib.rs"
    warm+=("$(timed "$tree" "$build")")
  done
  printf '%s: cold %s s wall, %s s CPU; warm %s s wall, %s s CPU (median of %s)\n' \
    "$commit" \
    "$(printf '%s\n' "${cold[@]}" | cut -d' ' -f1 | median)" "$(printf '%s\n' "${cold[@]}" | cut -d' ' -f2 | median)" \
    "$(printf '%s\n' "${warm[@]}" | cut -d' ' -f1 | median)" "$(printf '%s\n' "${warm[@]}" | cut -d' ' -f2 | median)" \
    "$runs"
  git worktree remove --force "$tree"
done
