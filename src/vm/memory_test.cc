// Faults, the zero page, COW and unmapping of anonymous memory.
#include <gtest/gtest.h>

#include "pinmm/base/rcu.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

using testing::fill_pages;
using testing::map_anon;
using testing::page_at;
using testing::pte_at;
using testing::read_byte;
using testing::VmMachine;

TEST(AnonFault, ReadMapsTheZeroPageWriteAllocates) {
  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_anon(*mm, 4 * PAGE_SIZE);
  const int64_t free0 = m.free_pages();
  EXPECT_EQ(read_byte(*mm, a), 0);
  const pte_t zero = pte_at(*mm, a);
  EXPECT_TRUE(pte_present(zero));
  EXPECT_FALSE(pte_write(zero));
  EXPECT_TRUE(pte_special(zero));
  EXPECT_EQ(pte_pfn(zero), m.ms->zero_pfn());
  EXPECT_EQ(mm->get_mm_counter(MM_ANONPAGES), 0);
  EXPECT_EQ(folio_ref_count(page_folio(m.ms->zero_page())), 1);  // never counted

  ASSERT_TRUE(write_user<uint32_t>(*mm, a, 0xdeadbeef).ok());
  const pte_t pte = pte_at(*mm, a);
  EXPECT_TRUE(pte_write(pte) && pte_dirty(pte) && pte_young(pte));
  EXPECT_NE(pte_pfn(pte), m.ms->zero_pfn());
  Page* page = page_at(*mm, a);
  Folio* folio = page_folio(page);
  EXPECT_TRUE(folio_test_anon(folio));
  EXPECT_TRUE(PageAnonExclusive(page));
  EXPECT_EQ(folio_mapcount(folio), 1);
  EXPECT_EQ(mm->get_mm_counter(MM_ANONPAGES), 1);
  EXPECT_EQ(m.ms->vmstat()[NR_ANON_MAPPED], 1);
  EXPECT_EQ(*read_user<uint32_t>(*mm, a), 0xdeadbeefu);
  lru_add_drain_all(*m.ms);
  EXPECT_EQ(folio_ref_count(folio), 1);
  EXPECT_TRUE(folio_test_lru(folio));
  // One page of data plus the page tables (PUD, PMD, PTE).
  EXPECT_EQ(free0 - m.free_pages(), 1 + 3);
  EXPECT_VM_VALID(m.vm);
}

TEST(AnonFault, MunmapFreesPagesAndPageTables) {
  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  const int64_t free0 = m.free_pages();
  const int64_t tables0 = m.ms->vmstat()[NR_PAGETABLE];
  const VirtAddr a = map_anon(*mm, 64 * PAGE_SIZE);
  fill_pages(*mm, a, 64 * PAGE_SIZE, 7);
  EXPECT_EQ(mm->get_mm_counter(MM_ANONPAGES), 64);
  EXPECT_EQ(m.ms->vmstat()[NR_PAGETABLE], tables0 + 3);
  ASSERT_TRUE(vm_munmap(*mm, a, 64 * PAGE_SIZE).ok());
  EXPECT_EQ(mm->get_mm_counter(MM_ANONPAGES), 0);
  lru_add_drain_all(*m.ms);
  rcu::barrier();
  EXPECT_EQ(m.ms->vmstat()[NR_PAGETABLE], tables0);
  EXPECT_EQ(m.free_pages(), free0);
  EXPECT_EQ(read_user<uint8_t>(*mm, a).error(), Errno(EFAULT));
  EXPECT_VM_VALID(m.vm);
}

TEST(AnonFault, ExitReturnsEverything) {
  VmMachine m;
  const int64_t free0 = m.free_pages();
  {
    MmHandle mm = Mm::create(m.vm);
    const VirtAddr a = map_anon(*mm, 300 * PAGE_SIZE);
    fill_pages(*mm, a, 300 * PAGE_SIZE, 1);
    const VirtAddr b = map_anon(*mm, 5 * PAGE_SIZE, PROT_READ);
    EXPECT_EQ(read_byte(*mm, b), 0);
  }
  lru_add_drain_all(*m.ms);
  rcu::barrier();
  EXPECT_EQ(m.free_pages(), free0);
  EXPECT_EQ(m.ms->vmstat()[NR_PAGETABLE], 0);
  EXPECT_VM_VALID(m.vm);
}

TEST(AnonFault, PermissionsAndHoles) {
  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr ro = map_anon(*mm, PAGE_SIZE, PROT_READ);
  const VirtAddr none = map_anon(*mm, PAGE_SIZE, PROT_NONE);
  EXPECT_EQ(write_user<uint8_t>(*mm, ro, 1).error(), Errno(EFAULT));
  EXPECT_EQ(read_user<uint8_t>(*mm, none).error(), Errno(EFAULT));
  EXPECT_EQ(read_user<uint8_t>(*mm, VirtAddr(0x1000)).error(), Errno(EFAULT));
  EXPECT_VM_VALID(m.vm);
}

TEST(AnonFault, FaultCountersFollowTheKernel) {
  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_anon(*mm, 2 * PAGE_SIZE);
  const int64_t faults0 = m.ms->vmstat()[PGFAULT];
  ASSERT_TRUE(write_user<uint8_t>(*mm, a, 1).ok());              // fault: allocate
  ASSERT_TRUE(write_user<uint8_t>(*mm, a, 2).ok());              // no fault: writable already
  EXPECT_EQ(read_byte(*mm, a + PAGE_SIZE), 0);                   // fault: zero page
  ASSERT_TRUE(write_user<uint8_t>(*mm, a + PAGE_SIZE, 3).ok());  // fault: COW from the zero page
  EXPECT_EQ(m.ms->vmstat()[PGFAULT] - faults0, 3);
  EXPECT_VM_VALID(m.vm);
}

// ---- fork and COW (the non-pinning cases of cow.c) ----

TEST(Cow, BasicCowAfterForkNoLeakEitherWay) {
  VmMachine m;
  MmHandle parent = Mm::create(m.vm);
  const VirtAddr a = map_anon(*parent, 2 * PAGE_SIZE);
  fill_pages(*parent, a, 2 * PAGE_SIZE, 0x11);
  auto child = dup_mm(*parent);
  ASSERT_TRUE(child.ok());
  Page* shared = page_at(*parent, a);
  EXPECT_EQ(page_at(**child, a), shared);
  EXPECT_FALSE(PageAnonExclusive(shared));  // fork shared it
  EXPECT_EQ(folio_mapcount(page_folio(shared)), 2);
  EXPECT_FALSE(pte_write(pte_at(*parent, a)));
  EXPECT_VM_VALID(m.vm);

  // The child writes: it gets a copy; the parent still sees its data.
  ASSERT_TRUE(write_user<uint8_t>(**child, a, 0x22).ok());
  EXPECT_NE(page_at(**child, a), shared);
  EXPECT_EQ(read_byte(*parent, a), 0x11);
  EXPECT_EQ(read_byte(**child, a), 0x22);
  // The parent writes the other page: a copy too (the child still maps it).
  ASSERT_TRUE(write_user<uint8_t>(*parent, a + PAGE_SIZE, 0x33).ok());
  EXPECT_EQ(read_byte(**child, a + PAGE_SIZE), 0x11);
  // Now the parent is the only mapper of the first page: writing reuses it.
  const int64_t reuse0 = m.ms->vmstat()[PGREUSE];
  ASSERT_TRUE(write_user<uint8_t>(*parent, a, 0x44).ok());
  EXPECT_EQ(page_at(*parent, a), shared);
  EXPECT_EQ(m.ms->vmstat()[PGREUSE], reuse0 + 1);
  EXPECT_TRUE(PageAnonExclusive(shared));
  EXPECT_EQ(read_byte(**child, a), 0x22);
  EXPECT_VM_VALID(m.vm);
}

TEST(Cow, MprotectOptimizationMakesExclusivePagesWritable) {
  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_anon(*mm, PAGE_SIZE);
  ASSERT_TRUE(write_user<uint8_t>(*mm, a, 1).ok());
  ASSERT_TRUE(do_mprotect(*mm, a, PAGE_SIZE, PROT_READ).ok());
  EXPECT_FALSE(pte_write(pte_at(*mm, a)));
  ASSERT_TRUE(do_mprotect(*mm, a, PAGE_SIZE, PROT_READ | PROT_WRITE).ok());
  // An exclusive anon page becomes writable at once: no fault on the write.
  EXPECT_TRUE(pte_write(pte_at(*mm, a)));
  const int64_t faults0 = m.ms->vmstat()[PGFAULT];
  ASSERT_TRUE(write_user<uint8_t>(*mm, a, 2).ok());
  EXPECT_EQ(m.ms->vmstat()[PGFAULT], faults0);
  EXPECT_VM_VALID(m.vm);
}

TEST(Cow, MprotectOptimizationAfterForkStillCows) {
  VmMachine m;
  MmHandle parent = Mm::create(m.vm);
  const VirtAddr a = map_anon(*parent, PAGE_SIZE);
  ASSERT_TRUE(write_user<uint8_t>(*parent, a, 1).ok());
  auto child = dup_mm(*parent);
  ASSERT_TRUE(child.ok());
  ASSERT_TRUE(do_mprotect(*parent, a, PAGE_SIZE, PROT_READ).ok());
  ASSERT_TRUE(do_mprotect(*parent, a, PAGE_SIZE, PROT_READ | PROT_WRITE).ok());
  EXPECT_FALSE(pte_write(pte_at(*parent, a)));  // shared: must not become writable
  ASSERT_TRUE(write_user<uint8_t>(*parent, a, 2).ok());
  EXPECT_EQ(read_byte(**child, a), 1);
  EXPECT_VM_VALID(m.vm);
}

TEST(Cow, ZeroPageSurvivesFork) {
  VmMachine m;
  MmHandle parent = Mm::create(m.vm);
  const VirtAddr a = map_anon(*parent, PAGE_SIZE);
  EXPECT_EQ(read_byte(*parent, a), 0);  // zero page... but no anon_vma: not copied
  ASSERT_TRUE(write_user<uint8_t>(*parent, a + 0, 9).ok());
  const VirtAddr b = map_anon(*parent, PAGE_SIZE);
  EXPECT_EQ(read_byte(*parent, b), 0);
  auto child = dup_mm(*parent);
  ASSERT_TRUE(child.ok());
  EXPECT_EQ(read_byte(**child, b), 0);
  ASSERT_TRUE(write_user<uint8_t>(**child, b, 5).ok());
  EXPECT_EQ(read_byte(*parent, b), 0);
  EXPECT_EQ(read_byte(**child, a), 9);
  EXPECT_VM_VALID(m.vm);
}

TEST(Cow, ChildExitMakesParentPagesReusable) {
  VmMachine m;
  MmHandle parent = Mm::create(m.vm);
  const VirtAddr a = map_anon(*parent, PAGE_SIZE);
  ASSERT_TRUE(write_user<uint8_t>(*parent, a, 1).ok());
  Page* page = page_at(*parent, a);
  {
    auto child = dup_mm(*parent);
    ASSERT_TRUE(child.ok());
  }
  // Previously shared, now mapped once: the write fault reuses the page.
  ASSERT_TRUE(write_user<uint8_t>(*parent, a, 2).ok());
  EXPECT_EQ(page_at(*parent, a), page);
  EXPECT_VM_VALID(m.vm);
}

TEST(Cow, ForkOfSharedAnonShares) {
  VmMachine m;
  MmHandle parent = Mm::create(m.vm);
  const VirtAddr a = map_anon(*parent, 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED);
  ASSERT_TRUE(write_user<uint8_t>(*parent, a, 1).ok());
  auto child = dup_mm(*parent);
  ASSERT_TRUE(child.ok());
  ASSERT_TRUE(write_user<uint8_t>(**child, a, 2).ok());
  ASSERT_TRUE(write_user<uint8_t>(**child, a + PAGE_SIZE, 3).ok());
  EXPECT_EQ(read_byte(*parent, a), 2);
  EXPECT_EQ(read_byte(*parent, a + PAGE_SIZE), 3);
  EXPECT_EQ(m.ms->vmstat()[NR_SHMEM], 2);
  EXPECT_VM_VALID(m.vm);
}

}  // namespace
}  // namespace pinmm
