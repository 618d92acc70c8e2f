// Transparent huge pages: PMD faults, the huge zero folio, COW after fork,
// partial unmapping and splitting (the THP variants of cow.c).
#include <gtest/gtest.h>

#include <vector>

#include "pinmm/base/rcu.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

using testing::map_anon;
using testing::page_at;
using testing::pmd_at;
using testing::pte_at;
using testing::read_byte;
using testing::VmMachine;

MachineConfig thp_machine() {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(64));
  c.thp = ThpMode::kAlways;
  return c;
}

TEST(Thp, WriteFaultMapsAPmd) {
  VmMachine m(thp_machine());
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_anon(*mm, 4 * HPAGE_PMD_SIZE);
  EXPECT_EQ(a.value() % HPAGE_PMD_SIZE, 0u);  // 2 MiB multiples are THP-aligned
  ASSERT_TRUE(write_user<uint64_t>(*mm, a + 5 * PAGE_SIZE, 42).ok());
  const pmd_t pmd = pmd_at(*mm, a);
  ASSERT_TRUE(pmd_leaf(pmd));
  EXPECT_TRUE(pmd_write(pmd) && pmd_dirty(pmd));
  Folio* folio = page_folio(page_at(*mm, a));
  EXPECT_EQ(folio_order(folio), HPAGE_PMD_ORDER);
  EXPECT_EQ(folio_entire_mapcount(folio), 1);
  EXPECT_EQ(folio_ref_count(folio), 1);
  EXPECT_TRUE(PageAnonExclusive(&folio->page));
  EXPECT_EQ(mm->get_mm_counter(MM_ANONPAGES), 512);
  const VmStat s = m.ms->vmstat();
  EXPECT_EQ(s[THP_FAULT_ALLOC], 1);
  EXPECT_EQ(s.by_name("nr_anon_transparent_hugepages", HPAGE_PMD_NR), 1);
  EXPECT_EQ(s[NR_ANON_MAPPED], 512);
  EXPECT_EQ(*read_user<uint64_t>(*mm, a + 5 * PAGE_SIZE), 42u);
  EXPECT_VM_VALID(m.vm);
}

// A page table page may have been an anonymous page before, whose index
// (its linear page index) outlives the free. A PMD table's index is the
// head of its deposited PTE tables (the kernel's pmd_huge_pte, cleared by
// the PMD table constructor): a stale one made the chain run into a user
// address (found by pinmm stress: validate_vm walked it).
TEST(Thp, APmdTableStartsWithNoDepositedTables) {
  VmMachine m(thp_machine());
  std::vector<Page*> recycled;
  for (int i = 0; i < 4; ++i) {
    Page* p = alloc_pages(*m.ms, GFP_KERNEL_ACCOUNT, Order(0));  // what page tables get
    ASSERT_NE(p, nullptr);
    p->set_index(0x7efffffde);  // what an anonymous page at 0x7efffffde000 leaves
    recycled.push_back(p);
  }
  for (Page* p : recycled)
    __free_pages(p, Order(0));
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_anon(*mm, 2 * HPAGE_PMD_SIZE);
  ASSERT_TRUE(write_user<uint64_t>(*mm, a, 42).ok());
  ASSERT_TRUE(pmd_leaf(pmd_at(*mm, a)));
  EXPECT_VM_VALID(m.vm);
}

// The huge zero folio is a cache with users (mm/huge_memory.c): each mm
// that maps it holds a reference until it exits, and the shrinker frees it
// only once nobody maps it; the next read fault allocates it again.
TEST(Thp, TheHugeZeroFolioGoesWhenNoMmMapsIt) {
  VmMachine m(thp_machine());
  const int64_t free0 = m.free_pages();
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_anon(*mm, 2 * HPAGE_PMD_SIZE, PROT_READ);
  EXPECT_EQ(read_byte(*mm, a), 0);
  ASSERT_TRUE(m.vm.is_huge_zero_folio(page_folio(page_at(*mm, a))));
  EXPECT_TRUE(mm->test_flag(MMF_HUGE_ZERO_PAGE));
  auto child = dup_mm(*mm);
  ASSERT_TRUE(child.ok());
  EXPECT_TRUE((*child)->test_flag(MMF_HUGE_ZERO_PAGE)) << "copy_huge_pmd took the child's";
  EXPECT_EQ(m.vm.shrink_huge_zero_folio(), 0u) << "two mms map it";
  mm.reset();
  EXPECT_EQ(m.vm.shrink_huge_zero_folio(), 0u) << "the child still maps it";
  child->reset();
  rcu::barrier();  // page tables freed through RCU
  EXPECT_EQ(m.free_pages(), free0 - static_cast<int64_t>(HPAGE_PMD_NR)) << "the cache holds it";
  EXPECT_EQ(m.vm.shrink_huge_zero_folio(), HPAGE_PMD_NR);
  EXPECT_EQ(m.vm.shrink_huge_zero_folio(), 0u);
  lru_add_drain_all(*m.ms);
  EXPECT_EQ(m.free_pages(), free0);
  // Allocated again on the next use.
  MmHandle again = Mm::create(m.vm);
  const VirtAddr b = map_anon(*again, 2 * HPAGE_PMD_SIZE, PROT_READ);
  EXPECT_EQ(read_byte(*again, b), 0);
  EXPECT_EQ(m.ms->vmstat()[THP_ZERO_PAGE_ALLOC], 2);
  EXPECT_VM_VALID(m.vm);
}

TEST(Thp, ReadFaultMapsTheHugeZeroFolioThenCows) {
  VmMachine m(thp_machine());
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_anon(*mm, HPAGE_PMD_SIZE);
  EXPECT_EQ(read_byte(*mm, a + 100), 0);
  const pmd_t pmd = pmd_at(*mm, a);
  ASSERT_TRUE(pmd_leaf(pmd));
  EXPECT_FALSE(pmd_write(pmd));
  EXPECT_TRUE(m.vm.is_huge_zero_folio(page_folio(m.ms->pfn_to_page(pmd_pfn(pmd)))));
  EXPECT_EQ(m.ms->vmstat()[THP_ZERO_PAGE_ALLOC], 1);
  EXPECT_EQ(mm->get_mm_counter(MM_ANONPAGES), 0);
  // A write splits the huge zero PMD into zero-page PTEs and COWs one page.
  ASSERT_TRUE(write_user<uint8_t>(*mm, a + PAGE_SIZE, 7).ok());
  EXPECT_FALSE(pmd_leaf(pmd_at(*mm, a)));
  EXPECT_EQ(pte_pfn(pte_at(*mm, a)), m.ms->zero_pfn());
  EXPECT_EQ(mm->get_mm_counter(MM_ANONPAGES), 1);
  EXPECT_EQ(read_byte(*mm, a + PAGE_SIZE), 7);
  EXPECT_VM_VALID(m.vm);
}

TEST(Thp, NeverModeAndNoHugepageAdviceUseSmallPages) {
  VmMachine m(thp_machine());
  m.vm.set_thp_enabled(ThpMode::kMadvise);
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_anon(*mm, 2 * HPAGE_PMD_SIZE);
  ASSERT_TRUE(write_user<uint8_t>(*mm, a, 1).ok());
  EXPECT_FALSE(pmd_leaf(pmd_at(*mm, a)));  // madvise mode without advice
  ASSERT_TRUE(do_madvise(*mm, a + HPAGE_PMD_SIZE, HPAGE_PMD_SIZE, MADV_HUGEPAGE).ok());
  ASSERT_TRUE(write_user<uint8_t>(*mm, a + HPAGE_PMD_SIZE, 1).ok());
  EXPECT_TRUE(pmd_leaf(pmd_at(*mm, a + HPAGE_PMD_SIZE)));
  EXPECT_EQ(mm->vma_lookup(a + HPAGE_PMD_SIZE) != mm->vma_lookup(a), true);  // advice split the VMA
  EXPECT_VM_VALID(m.vm);
}

TEST(Thp, ForkSharesThenCowSplitsThePmd) {
  VmMachine m(thp_machine());
  MmHandle parent = Mm::create(m.vm);
  const VirtAddr a = map_anon(*parent, HPAGE_PMD_SIZE);
  for (uint64_t off = 0; off < HPAGE_PMD_SIZE; off += PAGE_SIZE) {
    ASSERT_TRUE(
        write_user<uint8_t>(*parent, a + off, static_cast<uint8_t>(off >> PAGE_SHIFT)).ok());
  }
  auto child = dup_mm(*parent);
  ASSERT_TRUE(child.ok());
  Folio* folio = page_folio(page_at(*parent, a));
  EXPECT_EQ(folio_entire_mapcount(folio), 2);
  EXPECT_FALSE(PageAnonExclusive(&folio->page));
  EXPECT_FALSE(pmd_write(pmd_at(*parent, a)));
  EXPECT_VM_VALID(m.vm);
  // The child writes one page: its PMD is split, that page copied.
  ASSERT_TRUE(write_user<uint8_t>(**child, a + 3 * PAGE_SIZE, 0xff).ok());
  EXPECT_FALSE(pmd_leaf(pmd_at(**child, a)));
  EXPECT_TRUE(pmd_leaf(pmd_at(*parent, a)));
  EXPECT_EQ(read_byte(*parent, a + 3 * PAGE_SIZE), 3);
  EXPECT_EQ(read_byte(**child, a + 3 * PAGE_SIZE), 0xff);
  EXPECT_EQ(read_byte(**child, a + 4 * PAGE_SIZE), 4);
  EXPECT_EQ(m.ms->vmstat()[THP_SPLIT_PMD], 1);
  EXPECT_VM_VALID(m.vm);
  // The parent writes: it still shares the folio with the child's PTEs.
  ASSERT_TRUE(write_user<uint8_t>(*parent, a, 0xee).ok());
  EXPECT_EQ(read_byte(**child, a), 0);
  EXPECT_VM_VALID(m.vm);
}

// Fork under each single allocation failure, in turn: it fails with
// ENOMEM (copy_huge_pmd's deposit table too: copy_pmd_range gives up, it
// does not copy the PTEs of a PMD that is still huge) or succeeds, and the
// parent's THP and data are untouched either way.
TEST(Thp, ForkSurvivesEveryAllocationFailure) {
  VmMachine m(thp_machine());
  MmHandle parent = Mm::create(m.vm);
  const VirtAddr a = map_anon(*parent, HPAGE_PMD_SIZE);
  testing::fill_pages(*parent, a, HPAGE_PMD_SIZE, 5);
  ASSERT_TRUE(pmd_leaf(pmd_at(*parent, a)));
  int failed = 0;
  for (uint64_t nth = 1; nth <= 8; ++nth) {
    SCOPED_TRACE(nth);
    m.ms->injector().fail_nth(inject_point::kAllocPages, nth);
    auto child = dup_mm(*parent);
    const bool injected = m.ms->injector().failures(inject_point::kAllocPages) > 0;
    m.ms->injector().clear_all();
    if (injected) {
      ++failed;
      ASSERT_FALSE(child.ok());
      EXPECT_EQ(child.error(), Errno(ENOMEM));
    } else {
      ASSERT_TRUE(child.ok());
      EXPECT_EQ(read_byte(**child, a + 7 * PAGE_SIZE), 5);
    }
    EXPECT_TRUE(pmd_leaf(pmd_at(*parent, a)));
    EXPECT_EQ(read_byte(*parent, a + 9 * PAGE_SIZE), 5);
    EXPECT_VM_VALID(m.vm);
  }
  EXPECT_GE(failed, 3) << "the child's PGD, PMD table and deposit table at least";
}

TEST(Thp, ExclusiveThpIsReusedOnWriteAfterChildExit) {
  VmMachine m(thp_machine());
  MmHandle parent = Mm::create(m.vm);
  const VirtAddr a = map_anon(*parent, HPAGE_PMD_SIZE);
  ASSERT_TRUE(write_user<uint8_t>(*parent, a, 1).ok());
  Folio* folio = page_folio(page_at(*parent, a));
  {
    auto child = dup_mm(*parent);
    ASSERT_TRUE(child.ok());
  }
  ASSERT_TRUE(write_user<uint8_t>(*parent, a, 2).ok());
  EXPECT_TRUE(pmd_leaf(pmd_at(*parent, a)));
  EXPECT_EQ(page_folio(page_at(*parent, a)), folio);
  EXPECT_TRUE(PageAnonExclusive(&folio->page));
  EXPECT_VM_VALID(m.vm);
}

TEST(Thp, MunmapOfHalfAThpSplitsAndDefersTheFolioSplit) {
  VmMachine m(thp_machine());
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_anon(*mm, HPAGE_PMD_SIZE);
  for (uint64_t off = 0; off < HPAGE_PMD_SIZE; off += PAGE_SIZE) {
    ASSERT_TRUE(write_user<uint8_t>(*mm, a + off, 0x5a).ok());
  }
  Folio* folio = page_folio(page_at(*mm, a));
  ASSERT_TRUE(vm_munmap(*mm, a + HPAGE_PMD_SIZE / 2, HPAGE_PMD_SIZE / 2).ok());
  EXPECT_FALSE(pmd_leaf(pmd_at(*mm, a)));
  EXPECT_EQ(folio_nr_pages_mapped(folio), 256);
  EXPECT_EQ(folio_entire_mapcount(folio), 0);
  EXPECT_EQ(mm->get_mm_counter(MM_ANONPAGES), 256);
  const VmStat s = m.ms->vmstat();
  EXPECT_EQ(s[THP_DEFERRED_SPLIT_PAGE], 1);
  EXPECT_EQ(s[NR_ANON_MAPPED], 256);
  EXPECT_EQ(s.by_name("nr_anon_transparent_hugepages", HPAGE_PMD_NR), 0);
  EXPECT_EQ(read_byte(*mm, a + 100 * PAGE_SIZE), 0x5a);
  EXPECT_EQ(read_user<uint8_t>(*mm, a + 300 * PAGE_SIZE).error(), Errno(EFAULT));
  EXPECT_VM_VALID(m.vm);
  ASSERT_TRUE(vm_munmap(*mm, a, HPAGE_PMD_SIZE / 2).ok());
  lru_add_drain_all(*m.ms);
  rcu::barrier();
  EXPECT_EQ(m.ms->vmstat()[NR_ANON_MAPPED], 0);
  EXPECT_VM_VALID(m.vm);
}

TEST(Thp, MprotectOfPartOfAThpSplitsIt) {
  VmMachine m(thp_machine());
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_anon(*mm, HPAGE_PMD_SIZE);
  ASSERT_TRUE(write_user<uint8_t>(*mm, a, 1).ok());
  ASSERT_TRUE(do_mprotect(*mm, a, PAGE_SIZE, PROT_READ).ok());
  EXPECT_FALSE(pmd_leaf(pmd_at(*mm, a)));
  EXPECT_FALSE(pte_write(pte_at(*mm, a)));
  EXPECT_TRUE(pte_write(pte_at(*mm, a + PAGE_SIZE)));
  EXPECT_EQ(write_user<uint8_t>(*mm, a, 2).error(), Errno(EFAULT));
  ASSERT_TRUE(write_user<uint8_t>(*mm, a + PAGE_SIZE, 2).ok());
  EXPECT_VM_VALID(m.vm);
}

TEST(Thp, FallsBackToSmallPagesWhenNoHugePageIsFree) {
  MachineConfig c = thp_machine();
  VmMachine m(c);
  MmHandle mm = Mm::create(m.vm);
  m.ms->injector().fail_always(inject_point::kAllocPagesMovable);
  const VirtAddr a = map_anon(*mm, HPAGE_PMD_SIZE);
  // The THP allocation fails, then so does the small one: OOM.
  EXPECT_EQ(write_user<uint8_t>(*mm, a, 1).error(), Errno(ENOMEM));
  EXPECT_EQ(m.ms->vmstat()[THP_FAULT_FALLBACK], 1);
  m.ms->injector().clear_all();
  // A fresh PMD (the first one now has a PTE table, so no THP is tried
  // there): only the THP allocation fails, the fault falls back to 4 KiB.
  const VirtAddr b = map_anon(*mm, HPAGE_PMD_SIZE);
  m.ms->injector().fail_once(inject_point::kAllocPagesMovable);
  ASSERT_TRUE(write_user<uint8_t>(*mm, b, 1).ok());
  EXPECT_FALSE(pmd_leaf(pmd_at(*mm, b)));
  EXPECT_EQ(m.ms->vmstat()[THP_FAULT_FALLBACK], 2);
  EXPECT_EQ(mm->get_mm_counter(MM_ANONPAGES), 1);
  EXPECT_VM_VALID(m.vm);
}

}  // namespace
}  // namespace pinmm
