#!/usr/bin/env bash
# The HTML report in a real browser: headless Chromium loads the page that
# `pinmm run --html` wrote for a built-in scenario, and the test checks that
# it renders (a screenshot of it is produced), that the browser logged no
# console message or script error, and that the rendered DOM shows one
# memory-map SVG per snapshot with a tooltip per pageblock.
# Usage: html_report_test.sh PATH_TO_PINMM
set -u
pinmm=$1
chromium=$(command -v chromium || command -v chromium-browser || true)
if [[ -z "$chromium" ]]; then
  echo "FAIL: chromium is not installed (scripts/deps.sh installs it)"
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

for scenario in default longterm-off; do
  page="$tmp/$scenario.html"
  if ! "$pinmm" run --builtin "$scenario" --quiet --html "$page" --json "$tmp/$scenario.json"; then
    fail "$scenario: pinmm run failed"
    continue
  fi
  snapshots=$(grep -o '"label":' "$tmp/$scenario.json" | wc -l)
  # Chromium as root needs --no-sandbox; its own stderr chatter (dbus) is
  # not the page's, so only console and script messages count.
  flags=(--headless --no-sandbox --disable-gpu --enable-logging=stderr --v=0)
  if ! timeout 120 "$chromium" "${flags[@]}" --dump-dom "file://$page" >"$tmp/dom" 2>"$tmp/log"; then
    fail "$scenario: chromium --dump-dom failed"; head -5 "$tmp/log"; continue
  fi
  if grep -Eiq 'CONSOLE|Uncaught|SyntaxError' "$tmp/log"; then
    fail "$scenario: the page logged console messages"; grep -Ei 'CONSOLE|Uncaught' "$tmp/log" | head -5
  fi
  maps=$(grep -o '<svg class="memmap"' "$tmp/dom" | wc -l)
  [[ $maps -eq $snapshots && $maps -gt 0 ]] || fail "$scenario: $maps memory maps rendered for $snapshots snapshots"
  grep -q '<title>PFN 0x' "$tmp/dom" || fail "$scenario: no pageblock tooltips"
  grep -q 'Counters over the steps' "$tmp/dom" || fail "$scenario: no counter charts"
  if [[ $scenario == longterm-off ]]; then
    grep -q "pinned by device 'rdma0' \[mr1\]" "$tmp/dom" || fail "$scenario: the pinner is not named in the map"
    grep -q "device 'rdma0' \[mr1\]" <(sed -n '/Who pins what/,$p' "$tmp/dom") || fail "$scenario: no who-pins report"
  fi
  timeout 120 "$chromium" "${flags[@]}" --screenshot="$tmp/shot.png" --window-size=1280,2000 \
    "file://$page" >/dev/null 2>&1
  size=$(stat -c %s "$tmp/shot.png" 2>/dev/null || echo 0)
  [[ $size -gt 20000 ]] || fail "$scenario: the screenshot is $size bytes"
  [[ $failures -eq 0 ]] && echo "ok   $scenario: $maps memory maps, no console messages, screenshot $size bytes"
done
exit $((failures != 0))
