// migrate_vma_setup/pages/finalize (KERNEL-SPEC 9.6) with system-RAM
// destinations: the argument checks, what collection takes and skips, the
// reference check, hole filling, THP splitting and the restore paths.
// Device memory (private and coherent) is covered by devices/dmirror_test.cc.
#include "pinmm/migrate/migrate_device.h"

#include <gtest/gtest.h>

#include <vector>

#include "pinmm/phys/folio_lock.h"
#include "testing/migrate.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

using testing::map_anon;
using testing::page_at;

class MigrateVmaTest : public ::testing::Test {
 protected:
  MigrateVmaTest() : m(config()), mm(Mm::create(m.vm)) { current().set_mm(mm.get()); }
  ~MigrateVmaTest() override { current().set_mm(nullptr); }
  static MachineConfig config() {
    MachineConfig c = testing::two_node_machine();
    c.thp = ThpMode::kMadvise;
    return c;
  }

  // setup over [a, a + n pages) of the VMA at a.
  int setup(VirtAddr a, uint64_t n, unsigned flags = MIGRATE_VMA_SELECT_SYSTEM) {
    src.assign(n, ~uint64_t{0});
    dst.assign(n, ~uint64_t{0});
    args = MigrateVma{};
    ReadGuard g(mm->mmap_lock);
    args.vma = mm->vma_lookup(a);
    args.src = src.data();
    args.dst = dst.data();
    args.start = a;
    args.end = a + n * PAGE_SIZE;
    args.flags = flags;
    return migrate_vma_setup(&args);
  }
  // The driver's step with RAM pages on node 1: copy each migrating page.
  void alloc_and_copy() {
    for (uint64_t i = 0; i < args.npages; ++i) {
      if (!(src[i] & MIGRATE_PFN_MIGRATE)) continue;
      Folio* f = folio_alloc(*m.ms, GFP_HIGHUSER_MOVABLE | __GFP_THISNODE, Order(0), 1);
      ASSERT_NE(f, nullptr);
      ASSERT_TRUE(folio_trylock(f));
      if (Page* s = migrate_pfn_to_page(*m.ms, src[i]); s != nullptr) {
        m.ms->frames().copy(folio_pfn(f), page_to_pfn(s), PageCount(1));
      } else {
        m.ms->frames().zero(folio_pfn(f), PageCount(1));
      }
      dst[i] = migrate_pfn(folio_pfn(f)) | (src[i] & MIGRATE_PFN_WRITE);
    }
  }
  void commit() {
    ReadGuard g(mm->mmap_lock);
    migrate_vma_pages(&args);
    migrate_vma_finalize(&args);
  }
  int nid_at(VirtAddr a) { return folio_nid(page_folio(page_at(*mm, a))); }

  testing::VmMachine m;
  MmHandle mm;
  std::vector<uint64_t> src, dst;
  MigrateVma args;
};

TEST_F(MigrateVmaTest, ArgumentChecks) {
  const VirtAddr a = map_anon(*mm, 4 * PAGE_SIZE);
  EXPECT_EQ(setup(a, 0), -EINVAL) << "empty range";
  EXPECT_EQ(setup(a, 5), -EINVAL) << "end past the VMA";
  src.assign(4, 0);
  dst.assign(4, 0);
  {
    ReadGuard g(mm->mmap_lock);
    MigrateVma bad;
    bad.start = a;
    bad.end = a + PAGE_SIZE;
    bad.src = src.data();
    bad.dst = dst.data();
    EXPECT_EQ(migrate_vma_setup(&bad), -EINVAL) << "no VMA";
    bad.vma = mm->vma_lookup(a);
    bad.dst = nullptr;
    EXPECT_EQ(migrate_vma_setup(&bad), -EINVAL) << "no dst";
    bad.dst = dst.data();
    bad.fault_page = m.ms->pfn_to_page(m.ms->zero_pfn());
    EXPECT_EQ(migrate_vma_setup(&bad), -EINVAL) << "fault_page not device-private";
  }
  auto huge = File::create(m.vm, FsType::kHugetlbfs, "h", HPAGE_PMD_SIZE);
  auto h = vm_mmap(*mm, VirtAddr(0), HPAGE_PMD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, huge);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(setup(*h, 1), -EINVAL) << "hugetlb VMA";
  EXPECT_VM_VALID(m.vm);
}

// Holes and the zero page of an anonymous VMA are MIGRATE entries without a
// PFN (and get new pages); present pages carry their PFN and WRITE; every
// dst entry starts at 0.
TEST_F(MigrateVmaTest, CollectsHolesZeroPageAndPresentPages) {
  const VirtAddr a = map_anon(*mm, 4 * PAGE_SIZE);
  ASSERT_TRUE(write_user<uint64_t>(*mm, a + 2 * PAGE_SIZE, 22).ok());
  ASSERT_TRUE(write_user<uint64_t>(*mm, a + 3 * PAGE_SIZE, 33).ok());
  EXPECT_EQ(testing::read_byte(*mm, a + PAGE_SIZE), 0);  // the zero page
  const Pfn p2 = page_to_pfn(page_at(*mm, a + 2 * PAGE_SIZE));
  ASSERT_EQ(setup(a, 4), 0);
  EXPECT_EQ(args.npages, 4u);
  EXPECT_EQ(args.cpages, 4u);
  EXPECT_EQ(src[0], MIGRATE_PFN_MIGRATE);
  EXPECT_EQ(src[1], MIGRATE_PFN_MIGRATE);
  EXPECT_EQ(src[2] & ~MIGRATE_PFN_ANON_HELD,
            migrate_pfn(p2) | MIGRATE_PFN_MIGRATE | MIGRATE_PFN_WRITE);
  for (uint64_t d : dst)
    EXPECT_EQ(d, 0u);
  const pte_t pte = testing::pte_at(*mm, a + 2 * PAGE_SIZE);
  EXPECT_TRUE(is_swap_pte(pte) && is_writable_migration_entry(pte_to_swp_entry(pte)));
  alloc_and_copy();
  commit();
  for (uint64_t i = 0; i < 4; ++i)
    EXPECT_EQ(nid_at(a + i * PAGE_SIZE), 1) << i;
  EXPECT_EQ(*read_user<uint64_t>(*mm, a + 2 * PAGE_SIZE), 22u);
  EXPECT_EQ(*read_user<uint64_t>(*mm, a + 3 * PAGE_SIZE), 33u);
  EXPECT_EQ(*read_user<uint64_t>(*mm, a), 0u);
  EXPECT_TRUE(pte_write(testing::pte_at(*mm, a))) << "a new page in a writable VMA";
  EXPECT_ALL_LAYERS_VALID(m.vm);
}

// Without SELECT_SYSTEM nothing present is taken; holes in a file VMA are
// not MIGRATE.
TEST_F(MigrateVmaTest, SelectionAndFileHoles) {
  const VirtAddr a = testing::map_pattern(*mm, 2, 1);
  ASSERT_EQ(setup(a, 2, MIGRATE_VMA_SELECT_DEVICE_PRIVATE), 0);
  EXPECT_EQ(args.cpages, 0u);
  EXPECT_EQ(src[0], 0u);
  commit();
  auto file = File::create(m.vm, FsType::kTmpfs, "f", 2 * PAGE_SIZE);
  auto f = vm_mmap(*mm, VirtAddr(0), 2 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, file);
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(setup(*f, 2), 0);
  EXPECT_EQ(args.cpages, 0u);
  EXPECT_EQ(src[0], 0u) << "no new pages in a file VMA";
  commit();
  testing::expect_pattern(*mm, a, 2, 1);
  EXPECT_ALL_LAYERS_VALID(m.vm);
}

// A page with an unexpected reference (a GUP pin, here an extra get) is
// restored by the unmap step: mapped again, src 0, not migrated.
TEST_F(MigrateVmaTest, ExtraReferenceIsRestored) {
  const VirtAddr a = testing::map_pattern(*mm, 2, 2);
  Folio* held = page_folio(page_at(*mm, a));
  folio_get(held);
  ASSERT_EQ(setup(a, 2), 0);
  EXPECT_EQ(args.cpages, 1u);
  EXPECT_EQ(src[0], 0u);
  EXPECT_TRUE(pte_present(testing::pte_at(*mm, a))) << "restored";
  EXPECT_NE(src[1] & MIGRATE_PFN_MIGRATE, 0u);
  alloc_and_copy();
  commit();
  EXPECT_EQ(page_folio(page_at(*mm, a)), held);
  EXPECT_EQ(nid_at(a + PAGE_SIZE), 1);
  folio_put(held);
  testing::expect_pattern(*mm, a, 2, 2);
  EXPECT_ALL_LAYERS_VALID(m.vm);
}

// Leaving dst 0 skips a page; pages() clears its MIGRATE and finalize maps
// the source again.
TEST_F(MigrateVmaTest, DriverMaySkipPages) {
  const VirtAddr a = testing::map_pattern(*mm, 3, 3);
  ASSERT_EQ(setup(a, 3), 0);
  alloc_and_copy();
  Folio* unused = page_folio(migrate_pfn_to_page(*m.ms, dst[1]));
  folio_unlock(unused);
  folio_put(unused);
  dst[1] = 0;
  {
    ReadGuard g(mm->mmap_lock);
    migrate_vma_pages(&args);
    EXPECT_EQ(src[1] & MIGRATE_PFN_MIGRATE, 0u);
    EXPECT_NE(src[0] & MIGRATE_PFN_MIGRATE, 0u);
    migrate_vma_finalize(&args);
  }
  EXPECT_EQ(nid_at(a), 1);
  EXPECT_EQ(nid_at(a + PAGE_SIZE), 0);
  EXPECT_EQ(nid_at(a + 2 * PAGE_SIZE), 1);
  testing::expect_pattern(*mm, a, 3, 3);
  EXPECT_ALL_LAYERS_VALID(m.vm);
}

// A PMD-mapped THP is split first, then its pages migrate one by one; the
// range is trimmed to the entries filled.
TEST_F(MigrateVmaTest, SplitsAThpFirst) {
  const VirtAddr raw = map_anon(*mm, 2 * HPAGE_PMD_SIZE);
  const VirtAddr a((raw.value() + HPAGE_PMD_SIZE - 1) & HPAGE_PMD_MASK);
  ASSERT_TRUE(do_madvise(*mm, a, HPAGE_PMD_SIZE, MADV_HUGEPAGE).ok());
  ASSERT_TRUE(write_user<uint64_t>(*mm, a + 5 * PAGE_SIZE, 55).ok());
  ASSERT_TRUE(pmd_leaf(testing::pmd_at(*mm, a)));
  ASSERT_EQ(setup(a, 8), 0);
  EXPECT_FALSE(pmd_leaf(testing::pmd_at(*mm, a)));
  EXPECT_EQ(args.cpages, 8u);
  EXPECT_EQ(args.end, a + 8 * PAGE_SIZE);
  alloc_and_copy();
  commit();
  EXPECT_EQ(nid_at(a + 5 * PAGE_SIZE), 1);
  EXPECT_EQ(*read_user<uint64_t>(*mm, a + 5 * PAGE_SIZE), 55u);
  EXPECT_EQ(nid_at(a + 9 * PAGE_SIZE), 0) << "outside the range";
  EXPECT_ALL_LAYERS_VALID(m.vm);
}

// A THP mapped by PTEs (mprotect split its PMD, not the folio) stays where
// it is, as Linux's collection skips PTE-mapped compound pages: no entry,
// no migration entry left in its PTEs, nothing locked.
TEST_F(MigrateVmaTest, APteMappedThpIsSkipped) {
  const VirtAddr raw = map_anon(*mm, 2 * HPAGE_PMD_SIZE);
  const VirtAddr a((raw.value() + HPAGE_PMD_SIZE - 1) & HPAGE_PMD_MASK);
  ASSERT_TRUE(do_madvise(*mm, a, HPAGE_PMD_SIZE, MADV_HUGEPAGE).ok());
  ASSERT_TRUE(write_user<uint64_t>(*mm, a, 66).ok());
  ASSERT_TRUE(pmd_leaf(testing::pmd_at(*mm, a)));
  ASSERT_TRUE(do_mprotect(*mm, a + PAGE_SIZE, PAGE_SIZE, PROT_READ).ok());
  ASSERT_FALSE(pmd_leaf(testing::pmd_at(*mm, a)));
  Folio* thp = page_folio(page_at(*mm, a));
  ASSERT_TRUE(folio_test_large(thp));
  ASSERT_EQ(setup(a, 1), 0);
  EXPECT_EQ(src[0], 0u);
  EXPECT_EQ(args.cpages, 0u);
  EXPECT_TRUE(pte_present(testing::pte_at(*mm, a)));
  EXPECT_FALSE(folio_test_locked(thp));
  commit();
  EXPECT_EQ(page_folio(page_at(*mm, a)), thp);
  EXPECT_EQ(*read_user<uint64_t>(*mm, a), 66u);
  EXPECT_ALL_LAYERS_VALID(m.vm);
}

// A page whose folio lock is held elsewhere is skipped at collection.
TEST_F(MigrateVmaTest, LockedFolioIsSkipped) {
  const VirtAddr a = testing::map_pattern(*mm, 1, 4);
  Folio* f = page_folio(page_at(*mm, a));
  folio_lock(f);
  ASSERT_EQ(setup(a, 1), 0);
  EXPECT_EQ(src[0], 0u);
  EXPECT_EQ(args.cpages, 0u);
  commit();
  folio_unlock(f);
  testing::expect_pattern(*mm, a, 1, 4);
  EXPECT_ALL_LAYERS_VALID(m.vm);
}

}  // namespace
}  // namespace pinmm
