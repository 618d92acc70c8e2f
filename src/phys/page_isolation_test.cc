// Page isolation (mm/page_isolation.c; KERNEL-SPEC 7.2 step 3, 8.3 step 2):
// which blocks isolate, what stays busy, and that failures undo themselves.
#include "pinmm/phys/page_isolation.h"

#include <gtest/gtest.h>

#include "pinmm/phys/gfp.h"
#include "pinmm/phys/hugetlb.h"
#include "pinmm/phys/kernel_pages.h"
#include "pinmm/phys/page_alloc.h"
#include "pinmm/phys/pageblock.h"
#include "testing/machines.h"

namespace pinmm {
namespace {

// 16 MiB: ZONE_NORMAL [0, 8 MiB) with a 2 MiB CMA area at its start, and
// ZONE_MOVABLE [8, 16 MiB).
class PageIsolationRange : public ::testing::Test {
 protected:
  PageIsolationRange() {
    MachineConfig c = MachineConfig::tiny(Bytes::MiB(16), Bytes::MiB(8));
    c.cma.push_back({"reserved", Bytes::MiB(2), 0});
    ms = testing::boot(c);
  }
  uint64_t isolated_blocks(ZoneType t) {
    Zone& z = ms->zone(0, t);
    SpinGuard g(z.lock);
    return z.nr_isolate_pageblock();
  }
  static constexpr uint64_t kBlock = pageblock_nr_pages;
  Pfn cma_start() { return ms->cma_reservations()[0].base_pfn; }
  // A free pageblock of ZONE_NORMAL outside the CMA area.
  Pfn normal_block() { return cma_start() + PageCount(2 * kBlock); }
  Pfn movable_block() { return Pfn(ms->max_pfn().value() - 2 * kBlock); }
  std::unique_ptr<MemorySystem> ms;
};

TEST_F(PageIsolationRange, FreeBlocksIsolateAndPassTheTest) {
  const Pfn s = normal_block();
  const Pfn e = s + PageCount(kBlock);
  ASSERT_EQ(start_isolate_page_range(*ms, s, e, MIGRATE_MOVABLE, MEMORY_OFFLINE), 0);
  EXPECT_EQ(ms->pageblock_flags().get(s), MIGRATE_ISOLATE);
  EXPECT_EQ(isolated_blocks(ZONE_NORMAL), 1u);
  // An isolated block's free pages are out of the allocator's reach.
  ms->tracer().enable(TraceEvent::test_pages_isolated);
  EXPECT_EQ(test_pages_isolated(*ms, s, e, MEMORY_OFFLINE), 0);
  const auto records = ms->tracer().records();
  ASSERT_FALSE(records.empty());
  EXPECT_EQ(records.back().text,
            fmt::format("start_pfn={:#x} end_pfn={:#x} fin_pfn={:#x} ret=success", s.value(),
                        e.value(), e.value()));
  // Isolating it again is -EBUSY.
  EXPECT_EQ(start_isolate_page_range(*ms, s, e, MIGRATE_MOVABLE, 0), -EBUSY);
  undo_isolate_page_range(*ms, s, e, MIGRATE_MOVABLE);
  EXPECT_EQ(ms->pageblock_flags().get(s), MIGRATE_MOVABLE);
  EXPECT_EQ(isolated_blocks(ZONE_NORMAL), 0u);
  EXPECT_VALID(*ms);
}

TEST_F(PageIsolationRange, AnUnmovableKernelPageRefusesAndUndoesTheRest) {
  // Fill ZONE_NORMAL's free memory with kernel pages until one lands in the
  // second of two blocks we then try to isolate.
  std::vector<Page*> kernel;
  const Pfn s = normal_block();
  const Pfn e = s + PageCount(2 * kBlock);
  Page* victim = nullptr;
  while (victim == nullptr) {
    Page* p = kmalloc_pages(*ms, Order(0), "test-driver");
    ASSERT_NE(p, nullptr);
    kernel.push_back(p);
    const Pfn pfn = ms->page_to_pfn(p);
    if (pfn >= s + PageCount(kBlock) && pfn < e) victim = p;
  }
  Pfn refused{0};
  EXPECT_EQ(start_isolate_page_range(*ms, s, e, MIGRATE_MOVABLE, MEMORY_OFFLINE, &refused), -EBUSY);
  EXPECT_GE(refused, s);
  EXPECT_LT(refused, e);
  EXPECT_EQ(kernel_page_owner(ms->pfn_to_page(refused)), "test-driver");
  EXPECT_EQ(isolated_blocks(ZONE_NORMAL), 0u) << "the first block was not given back";
  EXPECT_NE(ms->pageblock_flags().get(s), MIGRATE_ISOLATE);
  for (Page* p : kernel)
    kfree_pages(p);
  EXPECT_VALID(*ms);
}

TEST_F(PageIsolationRange, ZoneMovableAssumesMovableButTheTestSeesBusyPages) {
  // A page in use in ZONE_MOVABLE (it could be pinned): isolation succeeds,
  // but the page is not free, so test_pages_isolated names it.
  Page* page = alloc_pages(*ms, GFP_HIGHUSER_MOVABLE, Order(0));
  ASSERT_NE(page, nullptr);
  const Pfn pfn = ms->page_to_pfn(page);
  ASSERT_EQ(page_zone(page)->type(), ZONE_MOVABLE);
  const Pfn s = pageblock_start_pfn(pfn);
  const Pfn e = s + PageCount(kBlock);
  ASSERT_EQ(start_isolate_page_range(*ms, s, e, MIGRATE_MOVABLE, MEMORY_OFFLINE), 0);
  Pfn busy{0};
  EXPECT_EQ(test_pages_isolated(*ms, s, e, MEMORY_OFFLINE, &busy), -EBUSY);
  EXPECT_EQ(busy, pfn);
  // Once it is freed (onto the isolated list), the range is clear.
  free_page(page);
  EXPECT_EQ(test_pages_isolated(*ms, s, e, MEMORY_OFFLINE), 0);
  undo_isolate_page_range(*ms, s, e, MIGRATE_MOVABLE);
  EXPECT_VALID(*ms);
}

TEST_F(PageIsolationRange, CmaBlocksIsolateOnlyForCma) {
  const Pfn s = cma_start();
  const Pfn e = s + PageCount(kBlock);
  ASSERT_EQ(ms->pageblock_flags().get(s), MIGRATE_CMA);
  Pfn refused{0};
  EXPECT_EQ(start_isolate_page_range(*ms, s, e, MIGRATE_MOVABLE, MEMORY_OFFLINE, &refused), -EBUSY);
  EXPECT_EQ(refused, s);
  ASSERT_EQ(start_isolate_page_range(*ms, s, e, MIGRATE_CMA, 0), 0);
  EXPECT_EQ(test_pages_isolated(*ms, s, e, 0), 0);
  undo_isolate_page_range(*ms, s, e, MIGRATE_CMA);
  EXPECT_EQ(ms->pageblock_flags().get(s), MIGRATE_CMA);
  EXPECT_VALID(*ms);
}

// has_unmovable_pages: a hugetlb folio in a kernel zone is movable (both
// sizes support migration), so its block isolates; a free pool folio is
// not a buddy page, so the range stays busy until it is dissolved.
TEST(PageIsolationHugetlb, AFreePoolFolioIsolatesAndClearsOnceDissolved) {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(16));
  c.hugepages.push_back({Bytes::MiB(2), 1, 0});
  auto ms = testing::boot(c);
  ASSERT_EQ(ms->hugetlb().counts(HugetlbPools::kPmdIndex).free_huge_pages, 1u);
  Pfn head{0};
  for (Pfn pfn{0}; pfn < ms->max_pfn(); pfn += PageCount(pageblock_nr_pages)) {
    if (folio_test_hugetlb(page_folio(ms->pfn_to_page(pfn)))) head = pfn;
  }
  ASSERT_EQ(page_zone(ms->pfn_to_page(head))->type(), ZONE_NORMAL);
  const Pfn end = head + PageCount(pageblock_nr_pages);
  ASSERT_EQ(start_isolate_page_range(*ms, head, end, MIGRATE_MOVABLE, MEMORY_OFFLINE), 0);
  Pfn busy{0};
  EXPECT_EQ(test_pages_isolated(*ms, head, end, MEMORY_OFFLINE, &busy), -EBUSY);
  EXPECT_EQ(busy, head);
  EXPECT_EQ(ms->hugetlb().dissolve_free_hugetlb_folios(head, end), 0);
  EXPECT_EQ(ms->hugetlb().counts(HugetlbPools::kPmdIndex).nr_huge_pages, 0u);
  EXPECT_EQ(test_pages_isolated(*ms, head, end, MEMORY_OFFLINE), 0);
  undo_isolate_page_range(*ms, head, end, MIGRATE_MOVABLE);
  EXPECT_VALID(*ms);
}

// dissolve_free_hugetlb_folio refuses a folio in use and one the pool has
// reserved.
TEST(PageIsolationHugetlb, DissolveRefusesUsedAndReservedFolios) {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(16));
  c.hugepages.push_back({Bytes::MiB(2), 1, 0});
  auto ms = testing::boot(c);
  Hstate& h = ms->hugetlb().hstate(HugetlbPools::kPmdIndex);
  Folio* folio = ms->hugetlb().dequeue_hugetlb_folio_nodemask(h, 0);
  ASSERT_NE(folio, nullptr);
  EXPECT_EQ(ms->hugetlb().dissolve_free_hugetlb_folio(folio), -EBUSY);
  folio_put(folio);  // back to the pool
  {
    MutexGuard g(ms->hugetlb().hugetlb_lock);
    h.resv_huge_pages = 1;
  }
  EXPECT_EQ(ms->hugetlb().dissolve_free_hugetlb_folio(folio), -EBUSY);
  {
    MutexGuard g(ms->hugetlb().hugetlb_lock);
    h.resv_huge_pages = 0;
  }
  EXPECT_EQ(ms->hugetlb().dissolve_free_hugetlb_folio(folio), 0);
  EXPECT_EQ(ms->hugetlb().dissolve_free_hugetlb_folio(folio), 0) << "no longer hugetlb";
  EXPECT_VALID(*ms);
}

TEST_F(PageIsolationRange, ATestOfANonIsolatedBlockFailsAtItsStart) {
  const Pfn s = movable_block();
  Pfn busy{0};
  EXPECT_EQ(test_pages_isolated(*ms, s, s + PageCount(kBlock), 0, &busy), -EBUSY);
  EXPECT_EQ(busy, s);
}

}  // namespace
}  // namespace pinmm
