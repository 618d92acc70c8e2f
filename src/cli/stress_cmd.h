// `pinmm stress`: the stress mix (stress/stress.h) from the command line.
//
// pinmm stress [--seconds N] [--threads T] [--seed S] [--validate-every-ms M]
//              [--quiet] [machine options]
//   T threads run a seeded random mix for N seconds with every layer's
//   validate() at quiescent points and a full audit at the end. The last
//   line is exactly "stress: N ops in S s, V invariant violations, L lost
//   writes, P leaked pages"; the exit status is 0 only when V, L and P are
//   0 (1 otherwise, 2 for bad input). The default machine: 1 GiB on two
//   nodes, 512 MiB movable, a 64 MiB CMA area, 256 MiB of hot-add space and
//   128 MiB of device memory.
#pragma once

#include <cstdint>

#include <CLI/CLI.hpp>

#include "machine_options.h"

namespace pinmm::cli {

class StressCommand {
 public:
  explicit StressCommand(CLI::App& app);
  bool parsed() const { return cmd_->parsed(); }
  int run();

 private:
  CLI::App* cmd_;
  MachineOptions machine_;
  double seconds_ = 10;
  unsigned threads_ = 2;
  uint64_t seed_ = 1;
  unsigned validate_every_ms_ = 1000;
  bool quiet_ = false;
};

}  // namespace pinmm::cli
