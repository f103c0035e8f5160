#!/usr/bin/env bash
# Creates (or keeps) a pinned Python virtual environment for the project's tools.
#
#   tools/venv.sh            -> .venv/          from tools/requirements.txt + tools/constraints.txt
#                               (cargo-lambda, ziglang, moto[server], aws-sam-cli, cfn-lint, awscli)
#   tools/venv.sh checkov    -> .venv-checkov/  from tools/requirements-checkov.txt + constraints
#                               (checkov's dependencies clash with aws-sam-cli's: its own venv)
#
# Idempotent: the venv holds a stamp file with a hash of the pinned files, this script and the
# interpreter's version. When the hash matches, nothing is done (the stamp is touched so make sees
# it as fresh); when it differs, the venv is rebuilt from scratch. The stamp is written last, so an
# interrupted install is redone on the next run. Installs come from PyPI only.
#
# Environment: PYTHON (default python3, must be >= 3.9), VENV_DIR (override the target folder).
set -euo pipefail

kind="${1:-main}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

case "$kind" in
  main)
    venv="${VENV_DIR:-.venv}"
    requirements=tools/requirements.txt
    constraints=tools/constraints.txt
    ;;
  checkov)
    venv="${VENV_DIR:-.venv-checkov}"
    requirements=tools/requirements-checkov.txt
    constraints=tools/constraints-checkov.txt
    ;;
  *)
    echo "usage: tools/venv.sh [main|checkov]" >&2
    exit 2
    ;;
esac
# VENV_DIR may be relative (to the checkout) or absolute (the Makefile's VENV).
case "$venv" in
  /*) ;;
  *) venv="$root/$venv" ;;
esac

# Never build a venv with a project venv's own interpreter (make puts .venv/bin first on PATH, and
# that venv may be the one about to be removed): drop the project's venvs, and this one wherever it
# is, from PATH.
clean_path=""
IFS=: read -ra path_parts <<<"$PATH"
for part in "${path_parts[@]}"; do
  case "$part" in
    "$root"/.venv* | "$venv"/*) ;;
    *) clean_path="${clean_path:+$clean_path:}$part" ;;
  esac
done
export PATH="$clean_path"
unset VIRTUAL_ENV

python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
  echo "venv.sh: $python not found (set PYTHON to a CPython >= 3.9)" >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)'; then
  echo "venv.sh: $python is $("$python" -V 2>&1); the tools need CPython >= 3.9" >&2
  exit 1
fi

stamp="$venv/.tools-stamp"
key="$(
  {
    "$python" -c 'import sys, platform; print(sys.version, platform.machine())'
    cat "$requirements" "$constraints" "tools/venv.sh"
  } | sha256sum | cut -d' ' -f1
)"

# One installer at a time (make -j, or two shells): lock the (read-only) requirements file.
exec 9<"$requirements"
flock 9

if [[ -f "$stamp" && "$(cat "$stamp")" == "$key" ]]; then
  touch "$stamp"
  exit 0
fi

echo "==> creating $venv from $requirements (pinned; takes 1-2 minutes)"
start=$SECONDS
rm -rf "$venv"
"$python" -m venv "$venv"
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
  "$venv/bin/python" -m pip install --quiet --progress-bar off \
  --requirement "$requirements" --constraint "$constraints"

# Check that what was installed runs, with the venv first on PATH as make puts it.
export PATH="$venv/bin:$PATH"
case "$kind" in
  main)
    cargo lambda --version >/dev/null
    python3 -m ziglang version >/dev/null
    sam --version >/dev/null
    cfn-lint --version >/dev/null
    test -x "$venv/bin/moto_server"
    aws --version >/dev/null
    # The emulator's CLI test needs a model with ListSolutions' AwsMarketplaceSolutionArn (the
    # CLI carries its own botocore).
    "$venv/bin/python" -c "
from awscli.botocore.session import Session
model = Session().get_service_model('partnercentral-selling')
assert 'AwsMarketplaceSolutionArn' in model.shape_for('SolutionBase').members
assert 'AwsMarketplaceSolutionArn' in model.operation_model('ListSolutions').input_shape.members
"
    ;;
  checkov)
    checkov --version >/dev/null
    ;;
esac

echo "$key" >"$stamp"
echo "==> $venv ready in $((SECONDS - start)) s"
