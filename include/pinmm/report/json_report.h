// The JSON report of a scenario run.
//
// Layout (docs/scenarios.md): scenario, description, file, seed, passed;
// machine (nodes, sizes, CMA areas, hugetlb pools, policies); steps, each
// with id, kind, title, result ("ok" or an errno name), value, detail,
// expectation, counters ({name: [before, after]} for the vmstat lines that
// changed), blockers, and {"timing": {"ns": …}}; snapshots (label, the step
// after which, per-state pageblock counts and every pageblock: pfn, node,
// zone, migratetype, state and page counts); expectations (what, where,
// ok, detail); counters over the whole run; and a top-level "timing".
//
// Every wall-clock figure is under a key named "timing", and nothing else
// in the report depends on time, so two runs of one scenario with one seed
// (and no concurrent groups) give identical JSON once "timing" keys are
// dropped.
#pragma once

#include <string>

#include "pinmm/scenario/runner.h"

namespace pinmm {

// Pretty-printed with two-space indentation, keys in a fixed order.
std::string scenario_report_json(const RunReport& report);

}  // namespace pinmm
