// Test helpers for the kernel selftest cow.c's setups: the THP variants of
// do_run_with_thp() and byte-level snapshots of a region.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "testing/vm.h"

namespace pinmm::testing {

enum class ThpRun { kPmd, kPte, kSinglePte, kPartialShared };

inline std::string run_name(ThpRun run) {
  switch (run) {
    case ThpRun::kPmd:
      return "Pmd";
    case ThpRun::kPte:
      return "Pte";
    case ThpRun::kSinglePte:
      return "SinglePte";
    case ThpRun::kPartialShared:
      return "PartialShared";
  }
  return "?";
}

struct Region {
  VirtAddr mem;
  uint64_t size;
};

inline std::vector<std::byte> pattern(uint64_t size) {
  std::vector<std::byte> bytes(size);
  for (uint64_t i = 0; i < size; ++i)
    bytes[i] = std::byte(static_cast<uint8_t>(i * 7 + (i >> 12)));
  return bytes;
}

inline std::vector<std::byte> snapshot(Mm& mm, Region r) {
  std::vector<std::byte> bytes(r.size);
  EXPECT_TRUE(copy_from_user(mm, bytes, r.mem).ok());
  return bytes;
}

inline void overwrite(Mm& mm, Region r) {
  const std::vector<std::byte> ff(r.size, std::byte{0xff});
  ASSERT_TRUE(copy_to_user(mm, r.mem, ff).ok());
}

// Sets up the THP the way cow.c's do_run_with_thp() does for `run`.
inline Region prepare_thp(Mm& mm, ThpRun run) {
  const VirtAddr mem = map_anon(mm, HPAGE_PMD_SIZE);
  EXPECT_TRUE(copy_to_user(mm, mem, pattern(HPAGE_PMD_SIZE)).ok());
  EXPECT_TRUE(pmd_leaf(pmd_at(mm, mem))) << "no THP to test with";
  if (run == ThpRun::kPmd) return {mem, HPAGE_PMD_SIZE};
  // PTE-map it: mprotect() of one subpage splits the PMD.
  EXPECT_TRUE(do_mprotect(mm, mem + PAGE_SIZE, PAGE_SIZE, PROT_READ).ok());
  EXPECT_TRUE(do_mprotect(mm, mem + PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_WRITE).ok());
  EXPECT_FALSE(pmd_leaf(pmd_at(mm, mem)));
  const uint64_t rest = HPAGE_PMD_SIZE - PAGE_SIZE;
  switch (run) {
    case ThpRun::kSinglePte:
      EXPECT_TRUE(do_madvise(mm, mem + PAGE_SIZE, rest, MADV_DONTNEED).ok());
      return {mem, PAGE_SIZE};
    case ThpRun::kPartialShared: {
      // Share only the first page with a child that exits at once, so the
      // rest of the THP was never shared.
      EXPECT_TRUE(do_madvise(mm, mem + PAGE_SIZE, rest, MADV_DONTFORK).ok());
      EXPECT_TRUE(dup_mm(mm).ok());
      EXPECT_TRUE(do_madvise(mm, mem + PAGE_SIZE, rest, MADV_DOFORK).ok());
      return {mem, HPAGE_PMD_SIZE};
    }
    default:
      return {mem, HPAGE_PMD_SIZE};
  }
}

}  // namespace pinmm::testing
