// A scenario's `expect:` section: reading it, and checking it at the end
// of a run.
#pragma once

#include <cstdint>
#include <vector>

#include "pinmm/base/counters.h"
#include "pinmm/scenario/runner.h"
#include "reader.h"

namespace pinmm {

class ScenarioRun;

void parse_expectations(ScenarioReader& r, const YAML::Node& n, Expectations& e);

bool compare(int64_t found, CompareOp op, int64_t want);

// The checks that look at the run before teardown: counters (`start` is
// vmstat at boot, for delta: names), zones, block states, no_data_lost.
std::vector<ExpectationOutcome> check_expectations(ScenarioRun& run, const VmStat& start);

}  // namespace pinmm
