// Test helpers for the vm layer: a small machine with a VmContext, and
// short-hand for mapping, touching and checking memory.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "pinmm/phys/page_alloc.h"
#include "pinmm/vm/access.h"
#include "pinmm/vm/fault.h"
#include "pinmm/vm/filemap.h"
#include "pinmm/vm/mmap.h"
#include "pinmm/vm/rmap.h"
#include "pinmm/vm/validate.h"
#include "pinmm/vm/walk.h"
#include "testing/machines.h"

namespace pinmm::testing {

struct VmMachine {
  explicit VmMachine(MachineConfig config) : ms(boot(config)), vm(*ms) {}
  explicit VmMachine(Bytes memory = Bytes::MiB(32)) : VmMachine(MachineConfig::tiny(memory)) {}

  std::unique_ptr<MemorySystem> ms;
  VmContext vm;

  int64_t free_pages() const { return ms->vmstat()[NR_FREE_PAGES]; }
};

inline VirtAddr map_anon(Mm& mm, uint64_t len, int prot = PROT_READ | PROT_WRITE,
                         int flags = MAP_PRIVATE) {
  auto r = vm_mmap(mm, VirtAddr(0), len, prot, flags | MAP_ANONYMOUS);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().name());
  return r.ok() ? *r : VirtAddr(0);
}

// Writes one byte of `value` at the start of every page in [addr, addr+len).
inline void fill_pages(Mm& mm, VirtAddr addr, uint64_t len, uint8_t value) {
  for (uint64_t off = 0; off < len; off += PAGE_SIZE) {
    ASSERT_TRUE(write_user<uint8_t>(mm, addr + off, value).ok()) << "at offset " << off;
  }
}

// Small-page anonymous memory whose page i holds the word seed * 100000 + i
// at its start, faulted in and off the per-CPU LRU batches.
inline VirtAddr map_pattern(Mm& mm, uint64_t pages, uint64_t seed) {
  const VirtAddr a = map_anon(mm, pages * PAGE_SIZE);
  EXPECT_TRUE(do_madvise(mm, a, pages * PAGE_SIZE, MADV_NOHUGEPAGE).ok());
  for (uint64_t i = 0; i < pages; ++i)
    EXPECT_TRUE(write_user<uint64_t>(mm, a + i * PAGE_SIZE, seed * 100000 + i).ok());
  lru_add_drain_all(mm.ms());
  return a;
}

// Checks the words map_pattern wrote.
inline void expect_pattern(Mm& mm, VirtAddr a, uint64_t pages, uint64_t seed) {
  for (uint64_t i = 0; i < pages; ++i) {
    auto v = read_user<uint64_t>(mm, a + i * PAGE_SIZE);
    ASSERT_TRUE(v.ok());
    ASSERT_EQ(*v, seed * 100000 + i) << "page " << i;
  }
}

inline uint8_t read_byte(Mm& mm, VirtAddr addr) {
  auto r = read_user<uint8_t>(mm, addr);
  EXPECT_TRUE(r.ok());
  return r.ok() ? *r : 0xff;
}

// The present PTE at addr (0 if none), read without locks at a quiet point.
inline pte_t pte_at(Mm& mm, VirtAddr addr) {
  pmd_t* pmd = pmd_offset(mm, addr);
  if (pmd == nullptr) return pte_t{0};
  const pmd_t v = pmdp_get(pmd);
  if (!pmd_is_table(v)) return pte_t{0};
  return ptep_get(pte_offset_map(mm, v, addr));
}

inline pmd_t pmd_at(Mm& mm, VirtAddr addr) {
  pmd_t* pmd = pmd_offset(mm, addr);
  return pmd == nullptr ? pmd_t{0} : pmdp_get(pmd);
}

// The page mapped at addr (PTE or PMD leaf), or nullptr.
inline Page* page_at(Mm& mm, VirtAddr addr) {
  const pmd_t pmd = pmd_at(mm, addr);
  if (pmd_leaf(pmd))
    return mm.ms().pfn_to_page(pmd_pfn(pmd) + PageCount((addr.value() % PMD_SIZE) >> PAGE_SHIFT));
  const pte_t pte = pte_at(mm, addr);
  if (!(pte.val & _PAGE_PRESENT)) return nullptr;
  return mm.ms().pfn_to_page(pte_pfn(pte));
}

#define EXPECT_VM_VALID(vm)                           \
  do {                                                \
    const auto report_ = ::pinmm::validate_vm(vm);    \
    EXPECT_TRUE(report_.ok()) << report_.to_string(); \
  } while (0)

}  // namespace pinmm::testing
