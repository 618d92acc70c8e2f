#include "pinmm/phys/page_alloc.h"

#include <gtest/gtest.h>

#include <vector>

#include "pinmm/base/task.h"
#include "pinmm/phys/pageblock.h"
#include "testing/machines.h"

namespace pinmm {
namespace {

using testing::boot;
using testing::boot_tiny;
using testing::buddyinfo;
using testing::free_of_type;

using Orders = std::array<uint64_t, NR_PAGE_ORDERS>;

TEST(PageAlloc, BootFreesEverythingInMaxOrderBlocks) {
  auto ms = boot_tiny(Bytes::MiB(16));  // 4096 pages: four order-10 blocks
  const Zone& z = ms->zone(0, ZONE_NORMAL);
  EXPECT_EQ(buddyinfo(z), (Orders{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4}));
  EXPECT_EQ(z.managed_pages(), 4096u);
  EXPECT_EQ(z.present_pages(), 4096u);
  EXPECT_EQ(z.stats().get(NR_FREE_PAGES), 4096);
  EXPECT_EQ(free_of_type(z, MIGRATE_MOVABLE, 10), 4u);  // memmap_init makes every block movable
  EXPECT_EQ(ms->vmstat()[PGFREE], 4096);                // boot frees count as pgfree
  EXPECT_VALID(*ms);
}

TEST(PageAlloc, SplittingLeavesOneBlockPerOrder) {
  auto ms = boot_tiny(Bytes::MiB(16));
  const Zone& z = ms->zone(0, ZONE_NORMAL);
  Page* p = alloc_pages(*ms, GFP_HIGHUSER_MOVABLE, Order(0));
  ASSERT_NE(p, nullptr);
  // expand(): the order-10 block at pfn 0 splits into one free block of
  // each order 0..9 above the allocated page.
  EXPECT_EQ(page_to_pfn(p), Pfn(0));
  EXPECT_EQ(buddyinfo(z), (Orders{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3}));
  EXPECT_EQ(page_count(p), 1);
  EXPECT_EQ(z.stats().get(NR_FREE_PAGES), 4095);
  EXPECT_VALID(*ms);
  free_page(p);
  EXPECT_EQ(buddyinfo(z), (Orders{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4}));
  EXPECT_EQ(z.stats().get(NR_FREE_PAGES), 4096);
  EXPECT_VALID(*ms);
}

TEST(PageAlloc, BuddiesMergeWhateverTheFreeOrder) {
  auto ms = boot_tiny(Bytes::MiB(4));
  const Zone& z = ms->zone(0, ZONE_NORMAL);
  std::vector<Page*> pages;
  for (int i = 0; i < 1024; ++i) {
    Page* p = alloc_pages(*ms, GFP_KERNEL, Order(0));
    ASSERT_NE(p, nullptr);
    pages.push_back(p);
  }
  EXPECT_EQ(alloc_pages(*ms, GFP_KERNEL, Order(0)), nullptr);  // min_free_kbytes 0: all 1024 went
  EXPECT_EQ(z.stats().get(NR_FREE_PAGES), 0);
  // Free every other page, then the rest: nothing merges until the end.
  for (size_t i = 0; i < pages.size(); i += 2)
    free_page(pages[i]);
  EXPECT_EQ(buddyinfo(z)[0], 512u);
  for (size_t i = 1; i < pages.size(); i += 2)
    free_page(pages[i]);
  EXPECT_EQ(buddyinfo(z), (Orders{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
  EXPECT_VALID(*ms);
}

TEST(PageAlloc, LargeAllocationsAreFolios) {
  auto ms = boot_tiny(Bytes::MiB(8));
  Folio* f = folio_alloc(*ms, GFP_HIGHUSER_MOVABLE, Order(9));
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(folio_test_large(f));
  EXPECT_EQ(folio_order(f), 9u);
  EXPECT_EQ(folio_nr_pages(f), 512u);
  EXPECT_EQ(folio_ref_count(f), 1);
  EXPECT_EQ(folio_pincount(f), 0);
  EXPECT_EQ(page_folio(folio_page(f, 300)), f);
  EXPECT_TRUE(folio_page(f, 300)->is_tail());
  EXPECT_EQ(page_count(folio_page(f, 300)), 1);  // a tail reports its folio's count
  EXPECT_VALID(*ms);
  folio_put(f);
  EXPECT_EQ(buddyinfo(ms->zone(0, ZONE_NORMAL))[10], 2u);
  EXPECT_FALSE(ms->pfn_to_page(Pfn(300))->is_tail());
  EXPECT_VALID(*ms);
}

TEST(PageAlloc, OrderAboveMaxWarnsAndFails) {
  auto ms = boot_tiny(Bytes::MiB(8));
  const uint64_t warns = mm_warn_count();
  EXPECT_EQ(alloc_pages(*ms, GFP_KERNEL, Order(11)), nullptr);
  EXPECT_EQ(mm_warn_count(), warns + 1);
}

// fail_page_alloc never fails a __GFP_NOFAIL request (should_fail_alloc_page).
TEST(PageAlloc, InjectedFailuresSpareNofailRequests) {
  auto ms = boot_tiny(Bytes::MiB(8));
  ms->injector().fail_always(inject_point::kAllocPages);
  EXPECT_EQ(alloc_pages(*ms, GFP_KERNEL, Order(0)), nullptr);
  Page* page = alloc_pages(*ms, GFP_KERNEL | __GFP_NOFAIL, Order(0));
  ASSERT_NE(page, nullptr);
  EXPECT_EQ(ms->injector().failures(inject_point::kAllocPages), 1u);
  ms->injector().clear_all();
  free_page(page);
  EXPECT_VALID(*ms);
}

// ---- fallback and stealing (mm/page_alloc.c fallbacks[] and __rmqueue) ----

TEST(PageAlloc, UnmovableClaimsAWholeMovableBlock) {
  auto ms = boot_tiny(Bytes::MiB(8));
  const Zone& z = ms->zone(0, ZONE_NORMAL);
  ms->tracer().enable(TraceEvent::mm_page_alloc_extfrag);
  Page* p = alloc_pages(*ms, GFP_KERNEL, Order(0));
  ASSERT_NE(p, nullptr);
  // No unmovable free page existed: the largest movable block (order 10,
  // two pageblocks) changed ownership and was split on the unmovable lists.
  EXPECT_EQ(page_to_pfn(p), Pfn(0));
  EXPECT_EQ(get_pageblock_migratetype(ms->pfn_to_page(Pfn(0))), MIGRATE_UNMOVABLE);
  EXPECT_EQ(get_pageblock_migratetype(ms->pfn_to_page(Pfn(512))), MIGRATE_UNMOVABLE);
  EXPECT_EQ(get_pageblock_migratetype(ms->pfn_to_page(Pfn(1024))), MIGRATE_MOVABLE);
  for (unsigned o = 0; o < 10; ++o)
    EXPECT_EQ(free_of_type(z, MIGRATE_UNMOVABLE, o), 1u) << o;
  EXPECT_EQ(free_of_type(z, MIGRATE_MOVABLE, 10), 1u);
  const auto recs = ms->tracer().records();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].text,
            "page=ffffea0000000000 pfn=0x0 alloc_order=0 fallback_order=10 pageblock_order=9 "
            "alloc_migratetype=0 fallback_migratetype=1 fragmenting=0 change_ownership=1");
  free_page(p);
  EXPECT_VALID(*ms);
}

TEST(PageAlloc, FallbackOrderPrefersReclaimableForUnmovable) {
  auto ms = boot_tiny(Bytes::MiB(8));  // two order-10 blocks
  // A reclaimable allocation claims block 0; freed, block 0 stays reclaimable.
  Page* r = alloc_pages(*ms, GFP_KERNEL | __GFP_RECLAIMABLE, Order(0));
  ASSERT_EQ(page_to_pfn(r), Pfn(0));
  free_page(r);
  ASSERT_EQ(get_pageblock_migratetype(ms->pfn_to_page(Pfn(0))), MIGRATE_RECLAIMABLE);
  // fallbacks[UNMOVABLE] = {RECLAIMABLE, MOVABLE}: the reclaimable block wins.
  Page* u = alloc_pages(*ms, GFP_KERNEL, Order(0));
  EXPECT_EQ(page_to_pfn(u), Pfn(0));
  EXPECT_EQ(get_pageblock_migratetype(ms->pfn_to_page(Pfn(0))), MIGRATE_UNMOVABLE);
  EXPECT_EQ(get_pageblock_migratetype(ms->pfn_to_page(Pfn(1024))), MIGRATE_MOVABLE);
  free_page(u);
  EXPECT_VALID(*ms);
}

TEST(PageAlloc, FallbackOrderPrefersReclaimableForMovable) {
  auto ms = boot_tiny(Bytes::MiB(8));
  // Block 0 becomes unmovable, block 1 reclaimable; both free again.
  Page* u = alloc_pages(*ms, GFP_KERNEL, Order(0));
  Page* r = alloc_pages(*ms, GFP_KERNEL | __GFP_RECLAIMABLE, Order(10));
  ASSERT_EQ(page_to_pfn(u), Pfn(0));
  ASSERT_EQ(page_to_pfn(r), Pfn(1024));
  free_page(u);
  __free_pages(r, Order(10));
  // fallbacks[MOVABLE] = {RECLAIMABLE, UNMOVABLE}.
  Page* m = alloc_pages(*ms, GFP_HIGHUSER_MOVABLE, Order(0));
  EXPECT_EQ(page_to_pfn(m), Pfn(1024));
  EXPECT_EQ(get_pageblock_migratetype(ms->pfn_to_page(Pfn(1024))), MIGRATE_MOVABLE);
  free_page(m);
  EXPECT_VALID(*ms);
}

TEST(PageAlloc, SmallMovableFallbackStealsOnePageWithoutClaiming) {
  auto ms = boot_tiny(Bytes::MiB(4));                // one order-10 block: pageblocks 0 and 1
  Page* a = alloc_pages(*ms, GFP_KERNEL, Order(0));  // claims both pageblocks as unmovable
  Page* b = alloc_pages(*ms, GFP_KERNEL, Order(9));  // pageblock 1
  Page* c = alloc_pages(*ms, GFP_KERNEL, Order(8));  // pfn 256..511
  ASSERT_EQ(page_to_pfn(a), Pfn(0));
  ASSERT_EQ(page_to_pfn(b), Pfn(512));
  ASSERT_EQ(page_to_pfn(c), Pfn(256));
  // Pageblock 0 now has 255 free pages: fewer than half, so a movable
  // request cannot claim it and steals a single page instead.
  ms->tracer().enable(TraceEvent::mm_page_alloc_extfrag);
  Page* m = alloc_pages(*ms, GFP_HIGHUSER_MOVABLE, Order(0));
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(page_to_pfn(m), Pfn(1));
  EXPECT_EQ(get_pageblock_migratetype(ms->pfn_to_page(Pfn(0))), MIGRATE_UNMOVABLE);
  const auto recs = ms->tracer().records();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_NE(recs[0].text.find("alloc_order=0 fallback_order=0"), std::string::npos);
  EXPECT_NE(recs[0].text.find("fragmenting=1 change_ownership=0"), std::string::npos);
  for (Page* p : {m, a})
    free_page(p);
  __free_pages(b, Order(9));
  __free_pages(c, Order(8));
  EXPECT_VALID(*ms);
}

TEST(PageAlloc, MovableClaimsAHalfFreeUnmovableBlock) {
  auto ms = boot_tiny(Bytes::MiB(4));
  Page* a = alloc_pages(*ms, GFP_KERNEL, Order(0));
  Page* b = alloc_pages(*ms, GFP_KERNEL, Order(9));
  // Pageblock 0 has 511 free pages: a movable request claims the block.
  Page* m = alloc_pages(*ms, GFP_HIGHUSER_MOVABLE, Order(0));
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(get_pageblock_migratetype(ms->pfn_to_page(Pfn(0))), MIGRATE_MOVABLE);
  EXPECT_EQ(get_pageblock_migratetype(ms->pfn_to_page(Pfn(512))), MIGRATE_UNMOVABLE);
  free_page(a);
  free_page(m);
  __free_pages(b, Order(9));
  EXPECT_VALID(*ms);
}

// ---- CMA ----

MachineConfig with_cma(Bytes memory, Bytes cma) {
  MachineConfig c = MachineConfig::tiny(memory);
  c.cma.push_back({"reserved", cma, 0});
  return c;
}

TEST(PageAlloc, CmaAreaIsFreeInCmaPageblocks) {
  auto ms = boot(with_cma(Bytes::MiB(16), Bytes::MiB(4)));
  const Zone& z = ms->zone(0, ZONE_NORMAL);
  ASSERT_EQ(ms->cma_reservations().size(), 1u);
  EXPECT_EQ(ms->cma_reservations()[0].base_pfn, Pfn(0));  // bottom-up at the node start
  EXPECT_EQ(z.cma_pages(), 1024u);
  EXPECT_EQ(z.stats().get(NR_FREE_CMA_PAGES), 1024);
  EXPECT_EQ(free_of_type(z, MIGRATE_CMA, 10), 1u);
  EXPECT_EQ(free_of_type(z, MIGRATE_MOVABLE, 10), 3u);
  EXPECT_VALID(*ms);
}

TEST(PageAlloc, MovableUsesCmaOnlyWhenMoreThanHalfOfFreeMemoryIsCma) {
  // 1024 of 4096 free pages are CMA: not more than half, normal lists first.
  auto small_cma = boot(with_cma(Bytes::MiB(16), Bytes::MiB(4)));
  Page* p = alloc_pages(*small_cma, GFP_HIGHUSER_MOVABLE, Order(0));
  EXPECT_EQ(get_pageblock_migratetype(p), MIGRATE_MOVABLE);
  EXPECT_EQ(page_to_pfn(p), Pfn(1024));
  free_page(p);

  // 1536 of 2048 free pages are CMA: more than half, CMA first (its
  // smallest free block: the order-9 block at pfn 1024).
  auto big_cma = boot(with_cma(Bytes::MiB(8), Bytes::MiB(6)));
  Page* q = alloc_pages(*big_cma, GFP_HIGHUSER_MOVABLE, Order(0));
  EXPECT_EQ(get_pageblock_migratetype(q), MIGRATE_CMA);
  EXPECT_EQ(page_to_pfn(q), Pfn(1024));
  free_page(q);
  EXPECT_VALID(*big_cma);
}

TEST(PageAlloc, MovableFallsBackToCmaWhenNormalListsRunDry) {
  auto ms = boot(with_cma(Bytes::MiB(16), Bytes::MiB(4)));
  std::vector<Page*> got;
  for (int i = 0; i < 3; ++i)
    got.push_back(alloc_pages(*ms, GFP_HIGHUSER_MOVABLE, Order(10)));
  for (Page* p : got)
    ASSERT_NE(p, nullptr);
  for (Page* p : got)
    EXPECT_EQ(get_pageblock_migratetype(p), MIGRATE_MOVABLE);
  Page* last = alloc_pages(*ms, GFP_HIGHUSER_MOVABLE, Order(0));
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(get_pageblock_migratetype(last), MIGRATE_CMA);
  free_page(last);
  for (Page* p : got)
    __free_pages(p, Order(10));
  EXPECT_VALID(*ms);
}

TEST(PageAlloc, OnlyMovableAllocationsMayUseCma) {
  auto ms = boot(with_cma(Bytes::MiB(8), Bytes::MiB(6)));
  // 512 non-CMA pages: an unmovable request gets exactly those, then fails
  // although 1536 CMA pages are free.
  std::vector<Page*> got;
  while (Page* p = alloc_pages(*ms, GFP_KERNEL, Order(0))) {
    EXPECT_NE(get_pageblock_migratetype(p), MIGRATE_CMA);
    got.push_back(p);
  }
  EXPECT_EQ(got.size(), 512u);
  EXPECT_EQ(ms->zone(0, ZONE_NORMAL).stats().get(NR_FREE_CMA_PAGES), 1536);
  for (Page* p : got)
    free_page(p);
  EXPECT_VALID(*ms);
}

TEST(PageAlloc, MemallocPinScopeAvoidsCmaAndZoneMovable) {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(16), Bytes::MiB(8));
  c.cma.push_back({"reserved", Bytes::MiB(6), 0});
  auto ms = boot(c);
  Task t(10, "pinner");
  CurrentTask scope(t);
  Page* normal = alloc_pages(*ms, GFP_HIGHUSER_MOVABLE, Order(0));
  EXPECT_EQ(page_zone(normal)->type(), ZONE_MOVABLE);
  const unsigned saved = memalloc_pin_save();
  Page* pinned = alloc_pages(*ms, GFP_HIGHUSER_MOVABLE, Order(0));
  memalloc_pin_restore(saved);
  ASSERT_NE(pinned, nullptr);
  EXPECT_EQ(page_zone(pinned)->type(), ZONE_NORMAL);
  EXPECT_EQ(get_pageblock_migratetype(pinned), MIGRATE_UNMOVABLE);  // lost __GFP_MOVABLE
  EXPECT_TRUE(folio_is_longterm_pinnable(page_folio(pinned)));
  EXPECT_FALSE(folio_is_longterm_pinnable(page_folio(normal)));
  free_page(normal);
  free_page(pinned);
  EXPECT_VALID(*ms);
}

// ---- zones and nodes ----

TEST(PageAlloc, GfpDecidesTheZone) {
  auto ms = boot_tiny(Bytes::MiB(8), Bytes::MiB(4));
  Page* user_movable = alloc_pages(*ms, GFP_HIGHUSER_MOVABLE, Order(0));
  Page* kernel = alloc_pages(*ms, GFP_KERNEL, Order(0));
  Page* movable_no_highmem = alloc_pages(*ms, GFP_USER | __GFP_MOVABLE, Order(0));
  EXPECT_EQ(page_zone(user_movable)->type(), ZONE_MOVABLE);
  EXPECT_EQ(page_zone(kernel)->type(), ZONE_NORMAL);
  EXPECT_EQ(page_zone(movable_no_highmem)->type(), ZONE_NORMAL);
  EXPECT_EQ(ms->vmstat()[PGALLOC_MOVABLE], 1);
  EXPECT_EQ(ms->vmstat()[PGALLOC_NORMAL], 2);
  for (Page* p : {user_movable, kernel, movable_no_highmem})
    free_page(p);
  EXPECT_VALID(*ms);
}

TEST(PageAlloc, KernelAllocationsNeverUseZoneMovable) {
  auto ms = boot_tiny(Bytes::MiB(8), Bytes::MiB(4));
  std::vector<Page*> got;
  while (Page* p = alloc_pages(*ms, GFP_KERNEL, Order(0)))
    got.push_back(p);
  EXPECT_EQ(got.size(), 1024u);
  EXPECT_EQ(ms->zone(0, ZONE_MOVABLE).stats().get(NR_FREE_PAGES), 1024);
  for (Page* p : got)
    free_page(p);
}

TEST(PageAlloc, LowmemReserveProtectsNormalFromMovableFallback) {
  auto ms = boot_tiny(Bytes::MiB(8), Bytes::MiB(4));
  const Zone& normal = ms->zone(0, ZONE_NORMAL);
  EXPECT_EQ(normal.lowmem_reserve(ZONE_MOVABLE), 1024u / 32);
  // ZONE_MOVABLE's min watermark is never below SWAP_CLUSTER_MAX (32).
  EXPECT_EQ(ms->zone(0, ZONE_MOVABLE).wmark(WMARK_MIN), 32u);
  std::vector<Page*> got;
  while (Page* p = alloc_pages(*ms, GFP_HIGHUSER_MOVABLE, Order(0)))
    got.push_back(p);
  // Movable pages down to the movable zone's min (32), then normal pages
  // down to normal's min (0) plus its reserve against movable requests (32).
  EXPECT_EQ(got.size(), (1024u - 32u) + (1024u - 32u));
  EXPECT_EQ(ms->zone(0, ZONE_MOVABLE).stats().get(NR_FREE_PAGES), 32);
  EXPECT_EQ(normal.stats().get(NR_FREE_PAGES), 32);
  // A kernel request may use those 32 (its own zone has no reserve).
  Page* k = alloc_pages(*ms, GFP_KERNEL, Order(0));
  EXPECT_NE(k, nullptr);
  got.push_back(k);
  for (Page* p : got)
    free_page(p);
  EXPECT_VALID(*ms);
}

MachineConfig with_min_free(uint64_t kbytes) {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(8));
  c.min_free_kbytes = kbytes;
  return c;
}

uint64_t allocate_all(MemorySystem& ms, Gfp gfp, std::vector<Page*>& got) {
  uint64_t n = 0;
  while (Page* p = alloc_pages(ms, gfp, Order(0))) {
    got.push_back(p);
    ++n;
  }
  return n;
}

TEST(PageAlloc, WatermarksStopAllocationsAtTheMinimum) {
  auto ms = boot(with_min_free(400));  // 100 pages
  const Zone& z = ms->zone(0, ZONE_NORMAL);
  EXPECT_EQ(z.wmark(WMARK_MIN), 100u);
  EXPECT_EQ(z.wmark(WMARK_LOW), 125u);  // min + max(min/4, 0.1% of 2048)
  EXPECT_EQ(z.wmark(WMARK_HIGH), 150u);
  std::vector<Page*> got;
  EXPECT_EQ(allocate_all(*ms, GFP_KERNEL, got), 2048u - 100u);
  // __GFP_HIGH may dip to half of min.
  EXPECT_EQ(allocate_all(*ms, GFP_KERNEL | __GFP_HIGH, got), 50u);
  // GFP_ATOMIC (high, cannot block) a further quarter of that.
  EXPECT_EQ(allocate_all(*ms, GFP_ATOMIC, got), 12u);
  // PF_MEMALLOC ignores watermarks.
  const unsigned saved = memalloc_noreclaim_save();
  EXPECT_EQ(allocate_all(*ms, GFP_KERNEL, got), 38u);
  memalloc_noreclaim_restore(saved);
  EXPECT_EQ(z.stats().get(NR_FREE_PAGES), 0);
  for (Page* p : got)
    free_page(p);
  EXPECT_VALID(*ms);
}

TEST(PageAlloc, NodesAndNumaCounters) {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(4));
  c.nodes.push_back({Bytes::MiB(4), Bytes(0)});
  auto ms = boot(c);
  Task t(5, "numa");
  CurrentTask scope(t);
  t.set_cpu(0, 0);
  Page* local = alloc_pages(*ms, GFP_KERNEL, Order(0));
  EXPECT_EQ(page_to_nid(local), 0);
  Page* remote = alloc_pages_node(*ms, 1, GFP_KERNEL, Order(0));
  EXPECT_EQ(page_to_nid(remote), 1);
  auto s = ms->vmstat();
  EXPECT_EQ(s[NUMA_HIT], 2);
  EXPECT_EQ(s[NUMA_LOCAL], 1);
  EXPECT_EQ(s[NUMA_OTHER], 1);
  // Fill node 1; __GFP_THISNODE then fails, a plain request falls back.
  std::vector<Page*> got{local, remote};
  while (Page* p = alloc_pages_node(*ms, 1, GFP_KERNEL | __GFP_THISNODE, Order(0)))
    got.push_back(p);
  EXPECT_EQ(ms->zone(1, ZONE_NORMAL).stats().get(NR_FREE_PAGES), 0);
  Page* fallback = alloc_pages_node(*ms, 1, GFP_KERNEL, Order(0));
  ASSERT_NE(fallback, nullptr);
  EXPECT_EQ(page_to_nid(fallback), 0);
  got.push_back(fallback);
  s = ms->vmstat();
  EXPECT_EQ(s[NUMA_MISS], 1);
  EXPECT_EQ(s[NUMA_FOREIGN], 1);
  EXPECT_EQ(ms->zone(0, ZONE_NORMAL).numa_events().get(NUMA_MISS), 1);
  EXPECT_EQ(ms->zone(1, ZONE_NORMAL).numa_events().get(NUMA_FOREIGN), 1);
  for (Page* p : got)
    free_page(p);
  EXPECT_VALID(*ms);
}

// ---- contents ----

TEST(PageAlloc, GfpZeroZeroesTheFrames) {
  auto ms = boot_tiny(Bytes::MiB(4));
  Page* p = alloc_pages(*ms, GFP_KERNEL, Order(1));
  std::memset(ms->frames().frame(page_to_pfn(p)), 0x5a, 2 * PAGE_SIZE);
  __free_pages(p, Order(1));
  Page* q = alloc_pages(*ms, GFP_KERNEL | __GFP_ZERO, Order(1));
  ASSERT_EQ(q, p);  // the same block comes back first (LIFO)
  const auto* bytes = reinterpret_cast<const uint8_t*>(ms->frames().frame(page_to_pfn(q)));
  for (uint64_t i = 0; i < 2 * PAGE_SIZE; ++i)
    ASSERT_EQ(bytes[i], 0) << i;
  __free_pages(q, Order(1));
}

TEST(PageAllocDeathTest, WriteAfterFreeIsCaughtInDebugBuilds) {
  if (!kPinmmDebug) GTEST_SKIP() << "frame poisoning is a debug-build check";
  EXPECT_DEATH(
      {
        auto ms = boot_tiny(Bytes::MiB(4));
        Page* p = alloc_pages(*ms, GFP_KERNEL, Order(0));
        std::byte* frame = ms->frames().frame(page_to_pfn(p));
        free_page(p);
        frame[100] = std::byte{1};  // a stale DMA into a freed frame
        (void)alloc_pages(*ms, GFP_KERNEL, Order(0));
      },
      "BUG");
}

TEST(PageAllocDeathTest, DoubleFreeIsABug) {
  EXPECT_DEATH(
      {
        auto ms = boot_tiny(Bytes::MiB(4));
        Page* p = alloc_pages(*ms, GFP_KERNEL, Order(0));
        free_page(p);
        free_page(p);
      },
      "BUG");
}

TEST(PageAlloc, InjectedFailures) {
  auto ms = boot_tiny(Bytes::MiB(4));
  ms->injector().fail_nth(inject_point::kAllocPages, 2);
  Page* a = alloc_pages(*ms, GFP_KERNEL, Order(0));
  EXPECT_NE(a, nullptr);
  EXPECT_EQ(alloc_pages(*ms, GFP_KERNEL, Order(0)), nullptr);
  Page* c = alloc_pages(*ms, GFP_KERNEL, Order(0));
  EXPECT_NE(c, nullptr);
  ms->injector().fail_once(inject_point::kAllocPagesMovable);
  Page* unmovable = alloc_pages(*ms, GFP_KERNEL, Order(0));
  EXPECT_NE(unmovable, nullptr);
  EXPECT_EQ(alloc_pages(*ms, GFP_HIGHUSER_MOVABLE, Order(0)), nullptr);
  for (Page* p : {a, c, unmovable})
    free_page(p);
  EXPECT_VALID(*ms);
}

TEST(PageAlloc, TraceEventsInFtraceFormat) {
  auto ms = boot_tiny(Bytes::MiB(4));
  ms->tracer().enable(TraceEvent::mm_page_alloc);
  ms->tracer().enable(TraceEvent::mm_page_free);
  Page* p = alloc_pages(*ms, GFP_HIGHUSER_MOVABLE | __GFP_ZERO, Order(0));
  free_page(p);
  const auto recs = ms->tracer().records();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].text,
            "page=ffffea0000000000 pfn=0x0 order=0 migratetype=1 "
            "gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_ZERO");
  EXPECT_EQ(recs[1].text, "page=ffffea0000000000 pfn=0x0 order=0");
}

}  // namespace
}  // namespace pinmm

namespace pinmm {
namespace {

using testing::boot_tiny;
using testing::free_of_type;

TEST(PageIsolation, IsolatedFreePagesAreNeverAllocated) {
  auto ms = boot_tiny(Bytes::MiB(8));  // order-10 blocks at pfn 0 and 1024
  Zone& z = ms->zone(0, ZONE_NORMAL);
  // Isolate pageblock 1 (pfn 512): the order-10 buddy at 0 straddles it and
  // is split, so only its upper half moves to the isolate list.
  ASSERT_TRUE(z.isolate_pageblock(Pfn(512)));
  EXPECT_FALSE(z.isolate_pageblock(Pfn(600)));  // already isolated
  EXPECT_EQ(get_pageblock_migratetype(ms->pfn_to_page(Pfn(512))), MIGRATE_ISOLATE);
  EXPECT_EQ(get_pageblock_migratetype(ms->pfn_to_page(Pfn(0))), MIGRATE_MOVABLE);
  EXPECT_EQ(free_of_type(z, MIGRATE_ISOLATE, 9), 1u);
  EXPECT_EQ(free_of_type(z, MIGRATE_MOVABLE, 9), 1u);
  EXPECT_EQ(free_of_type(z, MIGRATE_MOVABLE, 10), 1u);
  EXPECT_EQ(z.stats().get(NR_FREE_PAGES), 2048 - 512);  // isolated pages are not free to use
  EXPECT_VALID(*ms);

  std::vector<Page*> got;
  while (Page* p = alloc_pages(*ms, GFP_HIGHUSER_MOVABLE, Order(0))) {
    EXPECT_NE(get_pageblock_migratetype(p), MIGRATE_ISOLATE);
    got.push_back(p);
  }
  EXPECT_EQ(got.size(), 2048u - 512u);
  // A page freed into an isolated block lands on the isolate list.
  Page* in_isolated = nullptr;
  for (Page* p : got) {
    if (page_to_pfn(p) < Pfn(512)) in_isolated = p;
  }
  ASSERT_NE(in_isolated, nullptr);
  EXPECT_VALID(*ms);

  z.unisolate_pageblock(Pfn(512), MIGRATE_MOVABLE);
  EXPECT_EQ(z.stats().get(NR_FREE_PAGES), 512);
  for (Page* p : got)
    free_page(p);
  EXPECT_EQ(buddyinfo(z)[10], 2u);  // everything merged back
  EXPECT_VALID(*ms);
}

TEST(PageIsolation, FreeingIntoAnIsolatedBlockDoesNotCountAsFree) {
  auto ms = boot_tiny(Bytes::MiB(4));
  Zone& z = ms->zone(0, ZONE_NORMAL);
  Page* p = alloc_pages(*ms, GFP_HIGHUSER_MOVABLE, Order(0));  // pfn 0, block 0
  ASSERT_TRUE(z.isolate_pageblock(Pfn(0)));
  const int64_t free_before = z.stats().get(NR_FREE_PAGES);
  free_page(p);
  EXPECT_EQ(z.stats().get(NR_FREE_PAGES), free_before);
  // It merged with the isolated block's other free pages: pageblock 0 is one
  // free order-9 block on the isolate list (isolated blocks never merge with
  // their movable neighbour).
  EXPECT_EQ(free_of_type(z, MIGRATE_ISOLATE, 9), 1u);
  EXPECT_VALID(*ms);
  z.unisolate_pageblock(Pfn(0), MIGRATE_MOVABLE);
  EXPECT_EQ(buddyinfo(z)[10], 1u);
  EXPECT_VALID(*ms);
}

}  // namespace
}  // namespace pinmm
