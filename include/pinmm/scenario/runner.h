// Running a scenario: boot its machine, create its processes and devices,
// carry out the steps, keep a data oracle, check the expectations.
//
// Steps run one after another on the calling thread, except the members of
// a `concurrent` group, which run at once on threads of their own. Every
// process is a Task (its pid, comm and mm) that the runner acts as while it
// works on that process's memory; pins record it (or the named device) as
// owner.
//
// The data oracle: each page of each mapping has an expected first word
// (0 until written). write steps, DMA and device writes store stamps
// derived from the seed and a global write counter, fork copies private
// mappings' expectations and shares shared ones, munmap forgets pages,
// MADV_DONTNEED zeroes private ones. read steps and `no_data_lost` compare
// what the CPU sees with it.
//
// Determinism: with no concurrent groups the outcome depends only on the
// scenario and the seed; wall-clock figures are kept apart (StepOutcome::
// elapsed_ns, RunReport::total_ns) so reports can put them under `timing`.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "pinmm/phys/memory_map.h"
#include "pinmm/scenario/scenario.h"

namespace pinmm {

// A vmstat counter that changed during a step: name, before, after.
struct CounterChange {
  std::string name;
  int64_t before = 0;
  int64_t after = 0;
};

struct ExpectationOutcome {
  std::string what;  // "pgmigrate_success >= 1", "no data lost", "step 4 result" …
  SourcePos pos;
  bool ok = true;
  std::string detail;  // the value found, or what went wrong
};

struct StepOutcome {
  std::string id;    // "3", or "5.2" for the second member of group 5 (1-based)
  std::string kind;  // the step kind's YAML key: "pin", "offline" …
  std::string title;
  int err = 0;        // 0 or a positive errno
  int64_t value = 0;  // what the step counts (pages pinned, migrated, …; 0 if nothing)
  std::string detail;
  bool expectation_ok = true;  // result, value and every check as expected
  std::string expectation;     // what was expected, when the step had an expect:
  // The checks of the step's expect: (counters, zones, blocks,
  // no_data_lost), right after it.
  std::vector<ExpectationOutcome> checks;
  std::vector<CounterChange> counters;
  std::vector<std::string> blockers;  // who held what, when the step failed on pins
  // The chart counters (kChartCounters) after the step, for the HTML report.
  std::vector<int64_t> levels;
  uint64_t elapsed_ns = 0;  // wall clock: a timing, not part of the outcome
};

// The /proc/vmstat counters the HTML report charts over the steps.
inline constexpr const char* kChartCounters[] = {
    "nr_free_pages",     "nr_anon_pages",  "nr_foll_pin_acquired", "nr_foll_pin_released",
    "pgmigrate_success", "pgmigrate_fail", "nr_free_cma",          "nr_slab_unreclaimable",
};

struct SnapshotRecord {
  std::string label;
  std::string after_step;  // the id of the step that took it
  PhysMemoryMap map;
  // Per pageblock of `map` (same index): who pins its pages, "" if nobody
  // ("device 'rdma0' [mr1]; task 100 'app' [O_DIRECT read]").
  std::vector<std::string> pinners;
};

struct RunReport {
  std::string scenario;
  std::string description;
  std::string file;
  uint64_t seed = 0;
  MachineConfig machine;
  std::vector<StepOutcome> steps;
  std::vector<SnapshotRecord> snapshots;
  std::vector<ExpectationOutcome> expectations;
  std::vector<CounterChange> counters;  // over the whole run
  std::vector<int64_t> start_levels;    // the chart counters at boot
  bool passed = true;
  uint64_t total_ns = 0;   // wall clock
  std::string trace_text;  // ftrace text of the run, with RunOptions::trace
};

struct RunOptions {
  std::optional<uint64_t> seed;  // overrides the scenario's
  // Called after each step (from the thread that ran it; group members are
  // reported after the group finishes, in order).
  std::function<void(const StepOutcome&)> on_step;
  // Called as a step starts (from the thread that runs it), with its id
  // and title: what a progress display shows while the step runs.
  std::function<void(const std::string& id, const std::string& title)> on_step_start;
  // Record every trace event of the run (mm_page_alloc, mm_migrate_pages …)
  // into RunReport::trace_text.
  bool trace = false;
};

// Runs the scenario. A machine that fails to boot is a ScenarioError at
// the file's machine section (exit status 2 for the CLI).
RunReport run_scenario(const Scenario& scenario, const RunOptions& options = {});

}  // namespace pinmm
