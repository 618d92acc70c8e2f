// `pinmm run` and `pinmm scenarios`: the scenario runner's command line.
//
// pinmm run [FILE | --builtin NAME] [--seed N] [--json F] [--html F]
//           [--trace F] [--quiet] [--ignore-host-memory]
//   Runs a scenario file, or a built-in one ("default" when neither is
//   given). One line per step as it finishes: its id, result, wall time,
//   title and what it did; a failing step adds what was expected and who
//   pinned what. At the end: the counters that moved, every expectation
//   with its outcome, and where the report was written. Exit status 0 when
//   every expectation held, 1 when one did not, 2 for bad input (a
//   malformed scenario is reported as file:line:column: message).
// pinmm scenarios
//   Lists the built-in scenarios.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "pinmm/scenario/scenario.h"

namespace pinmm::cli {

class RunCommand {
 public:
  explicit RunCommand(CLI::App& app);
  bool parsed() const { return cmd_->parsed(); }
  int run();

 private:
  CLI::App* cmd_;
  std::string file_;
  std::string builtin_;
  std::optional<uint64_t> seed_;
  std::string json_;
  std::string html_;
  std::string trace_;
  bool quiet_ = false;
  bool ignore_host_memory_ = false;
};

// `pinmm scenarios`.
int list_scenarios();

// Reads and parses a scenario file. Throws ScenarioError (a file that
// cannot be read is one too, at FILE:0:0).
Scenario load_scenario_file(const std::string& path);

}  // namespace pinmm::cli
