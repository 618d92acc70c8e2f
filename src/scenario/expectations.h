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

// The scenario's expect: section.
void parse_expectations(ScenarioReader& r, const YAML::Node& n, Expectations& e);
// A step's expect: section (a mapping): result, value and the checks of
// the scenario's section except no_pages_leaked.
StepExpect parse_step_expect(ScenarioReader& r, const YAML::Node& n);

bool compare(int64_t found, CompareOp op, int64_t want);

// The checks of `e` that look at the running machine: counters (delta:
// names against `baseline`, vmstat at boot or before the step), zones,
// block states, no_data_lost. no_pages_leaked is the runner's, after
// teardown.
std::vector<ExpectationOutcome> check_expectations(ScenarioRun& run, const Expectations& e,
                                                   const VmStat& baseline);

}  // namespace pinmm
