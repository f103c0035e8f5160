#!/usr/bin/env bash
# Supply-chain checks with cargo-deny (policy: deny.toml).
#
# - licenses, bans, sources: always. They need only the crate graph (cargo metadata), so they run
#   offline once the crates are downloaded.
# - advisories: the RustSec database is a git repository on github.com, not on a package registry.
#   It is fetched when github.com is reachable; failing that, a copy fetched earlier is used (and
#   its age printed); failing that, the check is skipped with a notice. DENY_ADVISORIES=require
#   turns the skip into a failure (for a CI that has the network).
#
# cargo-deny is installed (pinned, `cargo install --locked`, about 8.5 minutes on 2 cores) if missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=0.20.2
if ! installed="$(cargo deny --version 2>/dev/null)"; then
  echo "==> cargo install cargo-deny --version $version --locked"
  cargo install cargo-deny --version "$version" --locked
elif [[ "$installed" != "cargo-deny $version" ]]; then
  echo "note: $installed is installed; deny.toml is written for cargo-deny $version" >&2
fi

echo "==> cargo deny check licenses bans sources"
cargo deny check --hide-inclusion-graph licenses bans sources

db_home="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
has_db() { compgen -G "$db_home/*/crates" >/dev/null; }

echo "==> cargo deny check advisories"
if cargo deny fetch db >/dev/null 2>&1; then
  cargo deny --offline check --hide-inclusion-graph advisories
elif has_db; then
  newest="$(ls -td "$db_home"/*/ | sed -n 1p)"
  fetched="$(git -C "$newest" log -1 --format=%cs 2>/dev/null || echo 'an unknown date')"
  echo "warning: the advisory database could not be updated; checking against the copy of $fetched" >&2
  cargo deny --offline check --hide-inclusion-graph advisories
elif [[ "${DENY_ADVISORIES:-}" == require ]]; then
  echo "error: the RustSec advisory database (https://github.com/RustSec/advisory-db) cannot be fetched" >&2
  exit 1
else
  echo "advisories: SKIPPED - the RustSec advisory database lives on github.com, which is not reachable" \
    "from here. Run 'cargo deny check advisories' where it is (or set DENY_ADVISORIES=require in such a CI)."
fi
