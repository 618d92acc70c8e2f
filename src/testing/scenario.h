// Test helpers for the scenario layer: run a scenario written inline and
// look at its outcome.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "pinmm/scenario/runner.h"
#include "pinmm/scenario/scenario.h"

namespace pinmm::testing {

// Parses and runs `yaml` (a ScenarioError fails the test by escaping it).
inline RunReport run_yaml(const std::string& yaml, const std::string& file = "test.yaml") {
  return run_scenario(parse_scenario(yaml, file));
}

// What did not hold, one line each: for a failure message.
inline std::string failures(const RunReport& r) {
  std::string out;
  for (const StepOutcome& o : r.steps) {
    if (!o.expectation_ok)
      out += "step " + o.id + " (" + o.kind + "): expected " + o.expectation + ", got " +
             std::to_string(o.err) + " / " + std::to_string(o.value) + ": " + o.detail + "\n";
  }
  for (const ExpectationOutcome& e : r.expectations) {
    if (!e.ok) out += e.what + ": " + e.detail + "\n";
  }
  return out;
}

// The message of the ScenarioError parsing `yaml` throws, as
// "line:column: message" ("" if it parses).
inline std::string parse_error(const std::string& yaml) {
  try {
    (void)parse_scenario(yaml, "t.yaml");
  } catch (const ScenarioError& e) {
    return std::to_string(e.pos().line) + ":" + std::to_string(e.pos().column) + ": " + e.message();
  }
  return "";
}

}  // namespace pinmm::testing
