// `pinmm demo`: the Foundation demo. It boots a machine from the command
// line's options and exercises the physical, vm, gup, hotplug and CMA
// layers with a fixed script (scenarios are `pinmm run`'s).
#pragma once

#include <cstdint>

#include "pinmm/phys/config.h"

namespace pinmm::cli {

// Returns the process exit status: 0 when every check held, 1 otherwise.
int run_foundation_demo(const MachineConfig& config, uint64_t seed, bool quiet);

}  // namespace pinmm::cli
