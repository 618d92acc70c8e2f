// walk_page_range and walk_page_range_novma (mm/pagewalk.c): which
// callback sees which part of a range, hole depths, the walk actions, a
// test_walk that skips, errors that stop the walk, hugetlb entries, and a
// walk without VMAs finding what no VMA covers.
#include "pinmm/vm/pagewalk.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "pinmm/vm/mmap.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

using testing::map_anon;
using testing::VmMachine;

// What the callbacks saw, in order.
struct Seen {
  std::vector<std::string> events;
  uint64_t ptes = 0;           // pte_entry calls
  uint64_t present_ptes = 0;   // ... of them, present entries
  int fail_at_pte = -1;        // pte_entry returns -EIO on this call
  bool skip_vmas = false;      // test_walk skips every VMA
  bool continue_pmds = false;  // pmd_entry answers ACTION_CONTINUE
};

Seen& seen(MmWalk* walk) { return *static_cast<Seen*>(walk->priv); }

int record_hole(VirtAddr addr, VirtAddr next, int depth, MmWalk* walk) {
  seen(walk).events.push_back(fmt::format("hole {:#x}-{:#x} depth {}{}", addr.value(), next.value(),
                                          depth, walk->vma ? "" : " no-vma"));
  return 0;
}

int record_pmd(pmd_t*, VirtAddr addr, VirtAddr next, MmWalk* walk) {
  seen(walk).events.push_back(fmt::format("pmd {:#x}-{:#x}", addr.value(), next.value()));
  if (seen(walk).continue_pmds) walk->action = ACTION_CONTINUE;
  return 0;
}

int record_pte(pte_t* pte, VirtAddr, VirtAddr, MmWalk* walk) {
  Seen& s = seen(walk);
  if (static_cast<int>(s.ptes) == s.fail_at_pte) return -EIO;
  ++s.ptes;
  if (pte_present(ptep_get(pte))) ++s.present_ptes;
  return 0;
}

int record_test(VirtAddr addr, VirtAddr next, MmWalk* walk) {
  seen(walk).events.push_back(fmt::format("test {:#x}-{:#x}", addr.value(), next.value()));
  return seen(walk).skip_vmas ? 1 : 0;
}

int record_hugetlb(pte_t*, uint64_t hmask, VirtAddr addr, VirtAddr next, MmWalk* walk) {
  seen(walk).events.push_back(
      fmt::format("hugetlb {:#x}-{:#x} hmask {:#x}", addr.value(), next.value(), hmask));
  return 0;
}

constexpr MmWalkOps kAll{
    .pmd_entry = record_pmd,
    .pte_entry = record_pte,
    .pte_hole = record_hole,
    .hugetlb_entry = record_hugetlb,
    .test_walk = record_test,
};

class PageWalk : public ::testing::Test {
 protected:
  int walk(VirtAddr start, VirtAddr end, const MmWalkOps& ops = kAll) {
    ReadGuard g(mm->mmap_lock);
    return walk_page_range(*mm, start, end, &ops, &s);
  }
  // A fixed anonymous mapping of `pages` at a.
  void map_at(VirtAddr a, uint64_t pages) {
    ASSERT_TRUE(vm_mmap(*mm, a, pages * PAGE_SIZE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
                    .ok());
  }

  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  Seen s;
};

// An untouched mapping has no PUD table: one hole at depth 0 (the PGD
// entry is empty) for the VMA's part of the range; the gap after the VMA
// is a hole with no VMA.
TEST_F(PageWalk, EmptyTablesAndGapsAreHoles) {
  const VirtAddr a{0x4000000000};  // its own PGD entry
  map_at(a, 4);
  EXPECT_EQ(walk(a, a + 8 * PAGE_SIZE), 0);
  EXPECT_EQ(s.events, (std::vector<std::string>{
                          "test 0x4000000000-0x4000004000",
                          "hole 0x4000000000-0x4000004000 depth 0",
                          "hole 0x4000004000-0x4000008000 depth -1 no-vma",
                      }));
  EXPECT_EQ(s.ptes, 0u);
}

// Once a page is faulted, the walk descends: pmd_entry for the PMD, then
// pte_entry for every PTE of the range (empty ones too) under the lock.
TEST_F(PageWalk, PteEntrySeesEveryPteOfTheRange) {
  const VirtAddr a{0x4000000000};
  map_at(a, 8);
  ASSERT_TRUE(write_user<uint8_t>(*mm, a + 2 * PAGE_SIZE, 1).ok());
  ASSERT_TRUE(write_user<uint8_t>(*mm, a + 5 * PAGE_SIZE, 1).ok());
  EXPECT_EQ(walk(a, a + 8 * PAGE_SIZE), 0);
  EXPECT_EQ(s.events, (std::vector<std::string>{"test 0x4000000000-0x4000008000",
                                                "pmd 0x4000000000-0x4000008000"}));
  EXPECT_EQ(s.ptes, 8u);
  EXPECT_EQ(s.present_ptes, 2u);
}

// The range is cut at each level's boundaries: a range across a PMD
// boundary gets two pmd_entry calls, and an empty PMD in between is a hole
// at depth 3.
TEST_F(PageWalk, LevelsSplitTheRangeAtTheirBoundaries) {
  const VirtAddr a{0x4000000000 + PMD_SIZE - 2 * PAGE_SIZE};
  map_at(a, 4 + PTRS_PER_TABLE);
  ASSERT_TRUE(write_user<uint8_t>(*mm, a, 1).ok());
  ASSERT_TRUE(write_user<uint8_t>(*mm, a + 2 * PAGE_SIZE + PMD_SIZE, 1).ok());
  EXPECT_EQ(walk(a, a + (4 + PTRS_PER_TABLE) * PAGE_SIZE), 0);
  EXPECT_EQ(s.events, (std::vector<std::string>{
                          "test 0x40001fe000-0x4000402000",
                          "pmd 0x40001fe000-0x4000200000",
                          "hole 0x4000200000-0x4000400000 depth 3",
                          "pmd 0x4000400000-0x4000402000",
                      }));
  EXPECT_EQ(s.ptes, 4u);
  EXPECT_EQ(s.present_ptes, 2u);
}

TEST_F(PageWalk, ActionContinueSkipsTheSubtree) {
  const VirtAddr a{0x4000000000};
  map_at(a, 4);
  ASSERT_TRUE(write_user<uint8_t>(*mm, a, 1).ok());
  s.continue_pmds = true;
  EXPECT_EQ(walk(a, a + 4 * PAGE_SIZE), 0);
  EXPECT_EQ(s.ptes, 0u);
}

// test_walk's positive answer skips the VMA and is no error.
TEST_F(PageWalk, TestWalkSkipsVmas) {
  const VirtAddr a{0x4000000000};
  map_at(a, 4);
  ASSERT_TRUE(write_user<uint8_t>(*mm, a, 1).ok());
  s.skip_vmas = true;
  EXPECT_EQ(walk(a, a + 4 * PAGE_SIZE), 0);
  EXPECT_EQ(s.events, (std::vector<std::string>{"test 0x4000000000-0x4000004000"}));
  EXPECT_EQ(s.ptes, 0u);
}

// A callback's error stops the walk and is what the walk returns.
TEST_F(PageWalk, AnErrorStopsTheWalk) {
  const VirtAddr a{0x4000000000};
  map_at(a, 8);
  ASSERT_TRUE(write_user<uint8_t>(*mm, a, 1).ok());
  s.fail_at_pte = 3;
  EXPECT_EQ(walk(a, a + 8 * PAGE_SIZE), -EIO);
  EXPECT_EQ(s.ptes, 3u);
  EXPECT_EQ(walk(a + PAGE_SIZE, a + PAGE_SIZE), -EINVAL) << "an empty range";
}

// A hugetlb VMA goes to hugetlb_entry per huge page whose table exists;
// the walk never descends into it.
TEST_F(PageWalk, HugetlbVmasGoToHugetlbEntry) {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(64));
  c.hugepages.push_back({Bytes::MiB(2), 2, std::nullopt});
  VmMachine hm(c);
  MmHandle hmm = Mm::create(hm.vm);
  auto file = File::create(hm.vm, FsType::kHugetlbfs, "huge", 2 * HPAGE_PMD_SIZE);
  auto h = vm_mmap(*hmm, VirtAddr(0), 2 * HPAGE_PMD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, file);
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE(write_user<uint8_t>(*hmm, *h, 1).ok());
  ReadGuard g(hmm->mmap_lock);
  EXPECT_EQ(walk_page_range(*hmm, *h + PAGE_SIZE, *h + 2 * HPAGE_PMD_SIZE, &kAll, &s), 0);
  const uint64_t base = h->value();
  EXPECT_EQ(s.events, (std::vector<std::string>{
                          fmt::format("test {:#x}-{:#x}", base + PAGE_SIZE, base + 2 * PMD_SIZE),
                          fmt::format("hugetlb {:#x}-{:#x} hmask {:#x}", base + PAGE_SIZE,
                                      base + PMD_SIZE, ~(PMD_SIZE - 1)),
                          fmt::format("hugetlb {:#x}-{:#x} hmask {:#x}", base + PMD_SIZE,
                                      base + 2 * PMD_SIZE, ~(PMD_SIZE - 1)),
                      }));
  EXPECT_EQ(s.ptes, 0u);
}

// walk_page_range_novma sees the tables whatever the VMAs: an entry left
// where no VMA is (planted here) is found; walk_page_range reports that
// range as a gap.
TEST_F(PageWalk, NovmaWalksFindEntriesNoVmaCovers) {
  const VirtAddr a{0x4000000000};
  map_at(a, 2);
  ASSERT_TRUE(write_user<uint8_t>(*mm, a, 1).ok());
  ASSERT_TRUE(vm_munmap(*mm, a + PAGE_SIZE, PAGE_SIZE).ok());
  pte_t* stray = pte_offset_map(*mm, pmdp_get(pmd_offset(*mm, a)), a + PAGE_SIZE);
  const pte_t zero = pte_mkspecial(pfn_pte(m.ms->zero_pfn(), pgprot_t{_PAGE_PRESENT | _PAGE_USER}));
  set_pte(stray, zero);
  {
    ReadGuard g(mm->mmap_lock);
    constexpr MmWalkOps ptes_only{.pte_entry = record_pte};
    EXPECT_EQ(walk_page_range_novma(*mm, a, a + 2 * PAGE_SIZE, &ptes_only, &s), 0);
  }
  EXPECT_EQ(s.present_ptes, 2u);
  s = Seen{};
  EXPECT_EQ(walk(a, a + 2 * PAGE_SIZE), 0);
  EXPECT_EQ(s.present_ptes, 1u);
  EXPECT_EQ(s.events.back(), "hole 0x4000001000-0x4000002000 depth -1 no-vma");
  set_pte(stray, pte_t{0});
  EXPECT_VM_VALID(m.vm);
}

}  // namespace
}  // namespace pinmm
