#!/usr/bin/env bash
# Renders a `cambox eval` report.html with headless Chromium and saves a PNG screenshot,
# to check that the page renders offline (no external resources) and looks right.
#
# Usage: scripts/dev/report_screenshot.sh EVAL_DIR/report.html [OUT.png] [WIDTHxHEIGHT]
# Installs Debian's chromium when it is missing (needs root and apt).
set -euo pipefail

report=${1:?usage: $0 REPORT.html [OUT.png] [WIDTHxHEIGHT]}
out=${2:-${report%.html}.png}
size=${3:-1280x2000}
[[ -f $report ]] || { echo "no such file: $report" >&2; exit 1; }

browser=$(command -v chromium || command -v chromium-browser || true)
if [[ -z $browser ]]; then
    echo "installing Debian's chromium ..." >&2
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
    browser=$(command -v chromium)
fi

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
abs_report=$(cd "$(dirname "$report")" && pwd)/$(basename "$report")
abs_out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
rm -f "$abs_out"
# No network: the page must not need it.
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
    --user-data-dir="$profile" --window-size="${size/x/,}" \
    --screenshot="$abs_out" "file://$abs_report" >/dev/null 2>&1 || true
[[ -s $abs_out ]] || { echo "chromium wrote no screenshot" >&2; exit 1; }
echo "$abs_out"
