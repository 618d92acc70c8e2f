// The built-in job `pinmm run` performs until the scenario runner (issue #8)
// exists: it boots a machine and exercises the physical and vm layers.
#pragma once

#include <cstdint>

#include "pinmm/phys/config.h"

namespace pinmm::cli {

// Returns the process exit status: 0 when every check held, 1 otherwise.
int run_foundation_demo(const MachineConfig& config, uint64_t seed, bool quiet);

}  // namespace pinmm::cli
