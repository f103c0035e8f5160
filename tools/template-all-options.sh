#!/usr/bin/env bash
# Writes a copy of template.yaml whose parameter defaults turn every optional part on
# (RuleTarget=Function, Webhook=Enabled, an AlarmTopicArn), so that `make validate` lints and
# scans the conditional resources too: checkov evaluates Conditions with the defaults and would
# otherwise never see them.
#
#   tools/template-all-options.sh OUTPUT_FILE
set -euo pipefail
out="${1:?usage: tools/template-all-options.sh OUTPUT_FILE}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p "$(dirname "$out")"
sed -e '/^  RuleTarget:$/,/Default:/ s/Default: Queue$/Default: Function/' \
    -e '/^  Webhook:$/,/Default:/ s/Default: Disabled$/Default: Enabled/' \
    -e '/^  AlarmTopicArn:$/,/Default:/ s/Default: ""$/Default: "arn:aws:sns:us-east-1:123456789012:alarms"/' \
    template.yaml >"$out"
# Every substitution must have happened, or the scan would silently cover less.
for want in 'Default: Function' 'Default: Enabled' 'Default: "arn:aws:sns:us-east-1:123456789012:alarms"'; do
  grep -qF "    $want" "$out" || { echo "template-all-options.sh: could not set '$want'" >&2; exit 1; }
done
