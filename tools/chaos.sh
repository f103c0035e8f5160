#!/usr/bin/env bash
# The long chaos run: 10,000 requests and the malformed corpus through moto's SQS (redrive after 3
# receives) into the release-built function, while the emulator injects 20% throttling, 5% 5xx,
# 2% dropped connections and 1% calls slower than the read timeout. Prints the counts; fails if
# anything is lost, disassociated twice, or a malformed event is not dead-lettered with its reason.
# (The 1,000-request version is part of `make test`.)
#
#   CHAOS_SEED   fixes the emulator's fault draws (the run prints the one it used)
#
# Needs moto's server: MOTO_SERVER (the Makefile sets it), else .venv/bin/moto_server.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export MOTO_SERVER="${MOTO_SERVER:-$PWD/.venv/bin/moto_server}"
started=$SECONDS
cargo test --release --test it end_to_end_chaos -- --ignored --nocapture --test-threads 1
echo "chaos: done in $((SECONDS - started)) s (build included)"
