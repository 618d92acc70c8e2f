// Shared set-up for the benchmarks.
#pragma once

#include <sys/mman.h>

#include <memory>

#include "pinmm/phys/memory_system.h"

namespace pinmm::bench {

// Boots `config` and has the host back all simulated RAM now, so timings are
// the simulator's and not the host kernel's first-touch faults (contents are
// unchanged: untouched host memory reads as zeros either way).
inline void prefault(const MemorySystem& ms) {
  const FrameStore& frames = ms.frames();
  (void)::madvise(frames.frame(Pfn(0)), frames.nr_pfns() << PAGE_SHIFT, MADV_POPULATE_WRITE);
}

// For the benchmarks of one layer: the physical machine alone.
inline std::unique_ptr<MemorySystem> boot_prefaulted(const MachineConfig& config) {
  auto ms = std::move(MemorySystem::create(config)).value();
  prefault(*ms);
  return ms;
}

}  // namespace pinmm::bench
