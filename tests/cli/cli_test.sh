#!/usr/bin/env bash
# The pinmm command line: outputs, exit codes and error messages.
# Usage: cli_test.sh PATH_TO_PINMM
set -u
pinmm=$1
failures=0

# expect NAME RC PATTERN -- ARGS...: runs pinmm ARGS, checks the exit status
# and that stdout+stderr match the extended regex PATTERN.
expect() {
  local name=$1 want_rc=$2 pattern=$3
  shift 4
  local out rc
  out=$("$pinmm" "$@" 2>&1)
  rc=$?
  if [[ $rc -ne $want_rc ]]; then
    echo "FAIL $name: exit status $rc, expected $want_rc"; echo "$out" | head -20; failures=$((failures + 1)); return
  fi
  if ! grep -Eq -- "$pattern" <<<"$out"; then
    echo "FAIL $name: output does not match /$pattern/"; echo "$out" | head -20; failures=$((failures + 1)); return
  fi
  echo "ok   $name"
}

# expect_lines NAME COUNT PATTERN -- ARGS...: exit status 0 and exactly
# COUNT output lines matching PATTERN.
expect_lines() {
  local name=$1 want=$2 pattern=$3
  shift 4
  local out rc n
  out=$("$pinmm" "$@" 2>&1)
  rc=$?
  n=$(grep -Ec -- "$pattern" <<<"$out")
  if [[ $rc -ne 0 || $n -ne $want ]]; then
    echo "FAIL $name: exit status $rc, $n line(s) match /$pattern/, expected $want"
    echo "$out" | head -20; failures=$((failures + 1)); return
  fi
  echo "ok   $name"
}

expect version 0 '^pinmm [0-9]+\.[0-9]+\.[0-9]+$' -- --version
# The Foundation machine: 4GiB, 2GiB movable, 256MiB CMA. Normal has
# 507904 free pages (496 order-10 blocks), Movable 524288 (512 blocks).
expect buddyinfo 0 '^Node 0, zone   Normal( +0){10} +496 $' -- dump buddyinfo
expect buddyinfo-movable 0 '^Node 0, zone  Movable( +0){10} +512 $' -- dump buddyinfo
expect zoneinfo-watermarks 0 'min      5632' -- dump zoneinfo
expect zoneinfo-protection 0 'protection: \(0, 16384, 16384\)' -- dump zoneinfo
expect pagetypeinfo-cma-blocks 0 '^Node 0, zone   Normal +0 +896 +0 +0 +128 +0 $' -- dump pagetypeinfo
expect pagetypeinfo-two-nodes 0 'Node    1, zone  Movable, type      Movable' -- dump pagetypeinfo --nodes 2 --cma none
expect vmstat 0 '^nr_free_cma 0$' -- dump vmstat --memory 1GiB --movable 0 --cma none
expect hugepages 0 '^htlb_buddy_alloc_success 4$' -- dump vmstat --memory 1GiB --movable 0 --cma none --hugepages 2MiB:4
expect foundation 0 "PASS: scenario 'foundation' held every expectation" -- run --builtin foundation
expect policies 0 'alloc_migration_target' -- policies
expect policies-longterm 0 '^  in-place +FOLL_LONGTERM pins memory where it lies' -- policies
expect policies-online 0 '^  auto-movable ' -- policies
expect policies-offline 0 '^  bounded ' -- policies
expect inject-points 0 '^migrate\.move_folio +fail +migrate +moving a folio fails' -- inject-points
# The foundation built-in (once `pinmm demo`): the O_DIRECT pin stops the
# offlining and is named; the long-term pins were migrated first; every
# block offlines after the unpin; CMA is allocated whole.
foundation=$("$pinmm" run --builtin foundation 2>&1)
expect_in() {  # NAME PATTERN: the foundation run's output matches PATTERN
  if grep -Eq -- "$2" <<<"$foundation"; then echo "ok   $1"; else
    echo "FAIL $1: the foundation run does not match /$2/"; failures=$((failures + 1)); fi
}
expect_in foundation-who-pins "who pins: +pfn 0x[0-9a-f]+ .*task [0-9]+ 'p2' \\[O_DIRECT read\\] x1 via pin_user_pages_remote"
expect_in foundation-offline-after-unpin 'now every movable block goes offline: [0-9]+ blocks offline'
expect_in foundation-cma "a driver allocates the whole CMA area: 16384 pages of 'reserved'"
# sysfs and the memory map.
expect memory-blocks 0 '^memory3 phys_index=00000003 state=online valid_zones=Movable node=0$' \
  -- dump memory-blocks --memory 512MiB --movable 256MiB --cma none
expect memory-blocks-size 0 '^block_size_bytes=8000000$' -- dump memory-blocks
expect cma-sysfs 0 '^cma/reserved base_pfn=0x0 count=16384 used=0 ' -- dump cma --memory 1GiB --movable 0 --cma 64MiB
expect memmap 0 '^memory2 +node 0 Movable +pfn +0x10000 \.{64}$' \
  -- dump memmap --memory 512MiB --movable 256MiB --cma none
expect memmap-legend 0 'legend: \. free, m movable, U unmovable' -- dump memmap --memory 512MiB --movable 256MiB --cma none
expect run-quiet 0 '^$' -- run --builtin foundation --quiet
# gup-test: gup_test's lines, one per repeat (and thread).
expect gup-test-default 0 '^GUP_FAST_BENCHMARK: Time: get:[0-9]+ put:[0-9]+ us$' -- gup-test -m 4
expect_lines gup-test-repeats 3 '^PIN_FAST_BENCHMARK: Time: get:[0-9]+ put:[0-9]+ us$' \
  -- gup-test -m 4 -a -r 3 -n 512 --quiet
expect gup-test-longterm-movable 0 '^PIN_LONGTERM_BENCHMARK: Time: get:[0-9]+ put:[0-9]+ us$' \
  -- gup-test -m 4 -L --movable -n 123
expect gup-test-hugetlb-shared 0 '^PIN_BASIC_TEST: done$' -- gup-test -m 4 -b -H -S -W
expect_lines gup-test-threads 2 '^GUP_BASIC_TEST: done$' -- gup-test -m 4 -U -j 2 --quiet
expect gup-test-dump 0 'page #19, starting from user virt addr' -- gup-test -m 4 -ct -F 0x1 0 19 0x1000
expect gup-test-later-wins 0 '^GUP_BASIC_TEST: done$' -- gup-test -m 4 -a -U
# -z adds gup_test's stale FOLL_TOUCH (0x2, FOLL_GET in 6.x): every call is
# invalid, so nothing is walked, as on Linux.
expect gup-test-stale-touch 0 'truncated \(size: 0\)' -- gup-test -m 4 -a -z
expect gup-test-bad-size 2 '-m: 0 MiB is not a buffer size' -- gup-test -m 0
expect gup-test-bad-flags 2 "-F: 'zz' is not a 32-bit flags word" -- gup-test -F zz
expect gup-test-internal-flags 2 '-F 0xffffffff: .*FOLL_PIN.* cannot be passed by a caller.*EINVAL' \
  -- gup-test -m 4 -F 0xffffffff
expect gup-test-too-big-for-host 2 'needs [0-9.]+ GiB of host memory, more than the [0-9.]+ GiB this host has' \
  -- gup-test -m 65536
expect gup-test-bad-threads 2 '-j: 0 threads' -- gup-test -j 0

# Bad input: a message and exit status 2.
expect bad-size 2 "--memory: '4X' is not a size" -- dump buddyinfo --memory 4X
expect bad-machine 2 'node 0 memory 100MiB is not a multiple of the memory block size 128MiB' \
  -- dump buddyinfo --memory 100MiB --movable 0 --cma none
expect bad-cma 2 'do not fit in node 0' -- dump buddyinfo --memory 1GiB --movable 512MiB --cma 1GiB
expect bad-hugepages 2 'expected SIZE:COUNT' -- dump buddyinfo --hugepages 2MiB
expect bad-hugepages-count 2 "--hugepages 2MiB:-1: '-1' is not a count of pages" -- dump buddyinfo --hugepages 2MiB:-1
# A pool larger than memory fills every node and stops (boot used to spin).
expect hugepages-huge-count 0 '^HugePages|^htlb_buddy_alloc_success [0-9]+$' \
  -- dump vmstat --memory 1GiB --movable 0 --cma none --nodes 2 --hugepages 2MiB:18446744073709551615
expect bad-min-free 2 'min-free-kbytes' -- dump zoneinfo --min-free-kbytes -1
expect too-big-for-host 2 '--memory 4TiB needs [0-9.]+ GiB of host memory, more than the' \
  -- dump zoneinfo --memory 4TiB --movable 0 --cma none
expect bad-dump 2 'not in \{buddyinfo,pagetypeinfo,zoneinfo,vmstat,memory-blocks,cma,memmap\}' -- dump meminfo
expect bad-hotplug-space 2 'hot-add space 3MiB is not a multiple of the memory block size 128MiB' \
  -- dump memory-blocks --hotplug-space 3MiB
expect bad-device-space 2 'device space 3MiB is not a multiple of the section size 128MiB' \
  -- dump memory-blocks --device-space 3MiB
expect bad-online-policy 2 'online-policy' -- dump memory-blocks --online-policy sometimes
expect bad-longterm-policy 2 'longterm-pin-policy' -- dump vmstat --longterm-pin-policy never
expect no-demo 2 'A subcommand is required' -- demo  # the demo is the built-in 'foundation' now
expect unknown-option 2 'no-such-option' -- dump buddyinfo --no-such-option
expect no-command 2 'A subcommand is required' --

# Scenarios (docs/scenarios.md): the built-in default passes; a file that
# expects the wrong thing exits 1 naming it; a malformed one exits 2 with
# file:line:column.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
expect scenarios 0 '^default +RDMA long-term pins' -- scenarios
expect help 0 'run +Run a scenario' -- help
expect run-default 0 "^PASS: scenario 'default' held every expectation" -- run
expect run-default-offline 0 'every movable memory block goes offline: 4 blocks offline' -- run
expect run-json 0 "^report: $tmp/cow.json" -- run --builtin cow-and-pins --json "$tmp/cow.json"
expect run-json-content 0 '"scenario": "cow-and-pins"' -- run --builtin cow-and-pins --quiet --json /dev/stdout
expect run-longterm-off 0 "who pins: .*device 'rdma0' \[mr1\]" -- run --builtin longterm-off
expect run-bad-builtin 2 "no built-in scenario 'nope'" -- run --builtin nope
expect run-empty-builtin 2 "--builtin needs a name" -- run --builtin ''
expect run-negative-seed 2 'seed' -- run --seed -1
printf 'scenario: big\nmachine: {memory: 4TiB, movable: 0}\nsteps: []\n' >"$tmp/big.yaml"
expect run-too-big-for-host 2 "$tmp/big.yaml:2:19: the scenario's machine needs [0-9.]+ GiB of host memory" \
  -- run "$tmp/big.yaml"
printf 'scenario: twice\nscenario: again\nmachine: {memory: 256MiB}\nsteps: []\n' >"$tmp/twice.yaml"
expect run-duplicate-key 2 "$tmp/twice.yaml:2:1: 'scenario' appears twice in the scenario" -- run "$tmp/twice.yaml"
printf 'scenario: x\nmachine: {memory: 256MiB}\n\001\000\377steps: []\n' >"$tmp/binary.yaml"
expect run-binary-file 2 "$tmp/binary.yaml:3:2: not a text file: a NUL byte" -- run "$tmp/binary.yaml"
expect run-missing-file 2 "$tmp/none.yaml:0:0: cannot read the file" -- run "$tmp/none.yaml"
printf 'scenario: bad\nmachine: {memory: 12XB}\nsteps: []\n' >"$tmp/bad.yaml"
expect run-bad-file 2 "^pinmm: error: $tmp/bad.yaml:2:19: 'memory': '12XB' is not a size" -- run "$tmp/bad.yaml"
printf 'scenario: wrong\nmachine: {memory: 256MiB, block_size: 128MiB}\nprocesses: [{name: p, mappings: [{name: m, size: 64KiB}]}]\nsteps:\n  - write: {mapping: p.m}\n    expect: {result: ok, value: 3}\n' >"$tmp/wrong.yaml"
expect run-wrong-expectation 1 'FAILED: expected ok, value 3, got ok, value 16' -- run "$tmp/wrong.yaml"
examples=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../examples" && pwd)
expect example-tour 0 "^PASS: scenario 'tour' held every expectation" -- run "$examples/tour.yaml"
expect dump-scenario 0 '^Node 0, zone   Normal' -- dump buddyinfo --scenario "$tmp/wrong.yaml"

if [[ $failures -ne 0 ]]; then
  echo "$failures CLI check(s) failed"
  exit 1
fi
