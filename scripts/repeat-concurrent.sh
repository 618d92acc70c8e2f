#!/usr/bin/env bash
# Runs every concurrency test (ctest -R Concurrent) N times in a row while
# both cores are kept busy by other test binaries of the same build, the
# way a loaded CI machine runs them. A test that depends on timing shows up
# here, not in CI.
# Usage: scripts/repeat-concurrent.sh BUILD_DIR [N] [CTEST_REGEX]
set -u
build=${1:?usage: $0 BUILD_DIR [N] [REGEX]}
n=${2:-50}
regex=${3:-Concurrent}
cd "$build" || exit 2
# The load: two loops of whole test binaries (not the concurrency tests).
load() {
  while true; do
    ./phys_tests --gtest_filter='-*Concurrent*' >/dev/null 2>&1
    ./vm_tests --gtest_filter='-*Concurrent*' >/dev/null 2>&1
  done
}
load & l1=$!
load & l2=$!
trap 'kill $l1 $l2 2>/dev/null; pkill -P $l1 2>/dev/null; pkill -P $l2 2>/dev/null' EXIT
start=$(date +%s)
ctest -R "$regex" --repeat until-fail:"$n" -j2 --output-on-failure
rc=$?
echo "repeat-concurrent: $n repeats of /$regex/ under load in $(( $(date +%s) - start )) s, ctest status $rc"
exit $rc
