#!/usr/bin/env bash
# Fuzzes the worker's inbound-event decoder: any bytes -> the payload -> worker::inbound::classify (fuzz/).
#
#   FUZZ_SECONDS   how long to run (default 60)
#   FUZZ_TARGET    the cargo-fuzz target (default classify)
#
# Needs the nightly toolchain (`rustup toolchain install nightly`); cargo-fuzz is installed if
# missing. The first build compiles the whole dependency tree with the address sanitizer (about 15
# minutes on 2 cores). The corpus grows in fuzz/corpus/<target> (git-ignored) and starts from the
# malformed events of tests/malformed; a crash leaves its input in fuzz/artifacts/<target> and fails
# the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${FUZZ_SECONDS:-60}"
target="${FUZZ_TARGET:-classify}"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "make fuzz: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> cargo install cargo-fuzz --locked"
  cargo install cargo-fuzz --locked
fi

corpus="fuzz/corpus/$target"
mkdir -p "$corpus"
cd fuzz
echo "==> cargo +nightly fuzz run $target ($seconds s)"
# New inputs go to the first corpus directory; tests/malformed only seeds it.
cargo +nightly fuzz run "$target" "corpus/$target" ../tests/malformed -- \
  -max_total_time="$seconds" -print_final_stats=1
