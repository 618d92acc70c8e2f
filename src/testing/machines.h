// Test helpers: boot small machines and look at their free lists.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "pinmm/phys/memory_system.h"

namespace pinmm::testing {

// Boots `config` or fails the test.
inline std::unique_ptr<MemorySystem> boot(const MachineConfig& config) {
  auto ms = MemorySystem::create(config);
  EXPECT_TRUE(ms.ok()) << "boot failed";
  return ms.ok() ? std::move(ms).value() : nullptr;
}

inline std::unique_ptr<MemorySystem> boot_tiny(Bytes memory, Bytes movable = Bytes(0)) {
  return boot(MachineConfig::tiny(memory, movable));
}

// nr_free per order of one zone (buddyinfo's numbers).
inline std::array<uint64_t, NR_PAGE_ORDERS> buddyinfo(const Zone& z) {
  return z.free_counts().nr_free;
}

inline uint64_t free_of_type(const Zone& z, MigrateType mt, unsigned order) {
  return z.free_counts().per_type[mt][order];
}

#define EXPECT_VALID(ms)                              \
  do {                                                \
    const auto report_ = (ms).validate();             \
    EXPECT_TRUE(report_.ok()) << report_.to_string(); \
  } while (0)

}  // namespace pinmm::testing
