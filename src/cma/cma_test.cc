// CMA and alloc_contig_range (KERNEL-SPEC 8): free, movable-occupied,
// pinned and unmovable ranges; alignment and the bitmap; counters and
// trace events; concurrent allocation against page faults.
#include "pinmm/cma/cma.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "pinmm/base/task.h"
#include "pinmm/gup/gup.h"
#include "pinmm/gup/pin.h"
#include "pinmm/phys/kernel_pages.h"
#include "pinmm/phys/page_isolation.h"
#include "pinmm/phys/pin_owners.h"
#include "testing/concurrency.h"
#include "testing/migrate.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

constexpr uint64_t kBlock = pageblock_nr_pages;

// 16 MiB, one zone, with a 10 MiB CMA area: free CMA pages are more than
// half of the zone's free pages, so movable allocations take CMA first
// (the balancing rule) and user memory lands in the area.
MachineConfig cma_machine(unsigned order_per_bit = 0) {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(16));
  c.cma.push_back({"reserved", Bytes::MiB(10), 0, order_per_bit});
  return c;
}

class CmaTest : public ::testing::Test {
 protected:
  explicit CmaTest(MachineConfig c = cma_machine())
      : m(std::move(c)), cma(*m.ms), mm(Mm::create(m.vm)) {
    current().set_mm(mm.get());
    area = cma.find("reserved");
  }
  ~CmaTest() override { current().set_mm(nullptr); }

  Pfn area_end() const { return area->base_pfn() + PageCount(area->count()); }
  bool in_area(const Page* p) const {
    const Pfn pfn = m.ms->page_to_pfn(p);
    return pfn >= area->base_pfn() && pfn < area_end();
  }
  VirtAddr populate(uint64_t pages, uint64_t seed) {
    return testing::map_pattern(*mm, pages, seed);
  }
  void expect_pattern(VirtAddr a, uint64_t pages, uint64_t seed) {
    testing::expect_pattern(*mm, a, pages, seed);
  }
  void expect_all_valid() {
    EXPECT_ALL_LAYERS_VALID(m.vm);
    const auto r = cma.validate();
    EXPECT_TRUE(r.ok()) << r.to_string();
  }
  int64_t event(VmEventItem e) const { return m.ms->vmstat()[e]; }

  testing::VmMachine m;
  CmaAreas cma;
  Cma* area = nullptr;
  MmHandle mm;
};

TEST_F(CmaTest, AreasComeFromTheBootReservations) {
  ASSERT_NE(area, nullptr);
  EXPECT_EQ(cma.size(), 1u);
  EXPECT_EQ(area->count(), Bytes::MiB(10).pages().value());
  EXPECT_EQ(area->size(), Bytes::MiB(10).value());
  EXPECT_EQ(area->base_pfn(), m.ms->cma_reservations()[0].base_pfn);
  EXPECT_EQ(area->used_pages(), 0u);
  EXPECT_EQ(area->largest_free_pages(), area->count());
  EXPECT_EQ(cma.find("nope"), nullptr);
  expect_all_valid();
}

// A free range: the pages are the caller's, counted, traced, and come back.
TEST_F(CmaTest, FreeRangeIsAllocatedAndReleased) {
  m.ms->tracer().enable(TraceEvent::cma_alloc_start);
  m.ms->tracer().enable(TraceEvent::cma_alloc_finish);
  m.ms->tracer().enable(TraceEvent::cma_release);
  const int64_t free0 = m.ms->vmstat()[NR_FREE_PAGES];
  const int64_t cma_free0 = m.ms->vmstat()[NR_FREE_CMA_PAGES];
  Page* page = cma.cma_alloc(area, kBlock, 0, false);
  ASSERT_NE(page, nullptr);
  EXPECT_EQ(m.ms->page_to_pfn(page), area->base_pfn()) << "the first free slot";
  for (uint64_t i = 0; i < kBlock; ++i) {
    EXPECT_EQ(page[i].refcount(), 1);
    EXPECT_FALSE(PageBuddy(&page[i]));
  }
  EXPECT_EQ(m.ms->vmstat()[NR_FREE_PAGES], free0 - static_cast<int64_t>(kBlock));
  EXPECT_EQ(m.ms->vmstat()[NR_FREE_CMA_PAGES], cma_free0 - static_cast<int64_t>(kBlock));
  EXPECT_EQ(event(CMA_ALLOC_SUCCESS), 1);
  EXPECT_EQ(event(CMA_ALLOC_FAIL), 0);
  EXPECT_EQ(area->used_pages(), kBlock);
  EXPECT_EQ(area->stats(), (CmaAreaStats{kBlock, 0, 0}));
  expect_all_valid();

  EXPECT_TRUE(cma.cma_release(area, page, kBlock));
  EXPECT_EQ(m.ms->vmstat()[NR_FREE_PAGES], free0);
  EXPECT_EQ(area->used_pages(), 0u);
  EXPECT_EQ(area->stats(), (CmaAreaStats{kBlock, 0, kBlock}));
  const auto recs = m.ms->tracer().records();
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].text, fmt::format("name=reserved count={} align=0", kBlock));
  EXPECT_EQ(recs[1].text,
            fmt::format("name=reserved pfn={:#x} page={:016x} count={} align=0 errorno=0",
                        area->base_pfn().value(), page_vmemmap_address(page), kBlock));
  EXPECT_EQ(recs[2].text,
            fmt::format("name=reserved pfn={:#x} page={:016x} count={}", area->base_pfn().value(),
                        page_vmemmap_address(page), kBlock));
  // And again.
  Page* again = cma.cma_alloc(area, kBlock, 0, false);
  EXPECT_EQ(again, page);
  EXPECT_TRUE(cma.cma_release(area, again, kBlock));
  expect_all_valid();
}

// KERNEL-SPEC 8.2 step 1: nothing for a null area, count 0 or a count
// larger than the area, and nothing counted either; release checks the
// pages belong to the area.
TEST_F(CmaTest, RejectedRequestsCountNothing) {
  EXPECT_EQ(cma.cma_alloc(nullptr, 1, 0, false), nullptr);
  EXPECT_EQ(cma.cma_alloc(area, 0, 0, false), nullptr);
  EXPECT_EQ(cma.cma_alloc(area, area->count() + 1, 0, false), nullptr);
  EXPECT_EQ(event(CMA_ALLOC_SUCCESS), 0);
  EXPECT_EQ(event(CMA_ALLOC_FAIL), 0);
  Page* outside = m.ms->pfn_to_page(area_end());
  EXPECT_FALSE(cma.cma_release(area, outside, 1));
  EXPECT_FALSE(cma.cma_release(area, nullptr, 1));
  EXPECT_FALSE(cma.cma_release(nullptr, outside, 1));
}

// Alignment: `align` is an order; slots follow each other in the bitmap.
TEST_F(CmaTest, AllocationsAreAlignedAndTakeTheNextFreeSlot) {
  Page* a = cma.cma_alloc(area, 3, 0, false);
  Page* b = cma.cma_alloc(area, 16, 4, false);
  Page* c = cma.cma_alloc(area, 1, 0, false);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(m.ms->page_to_pfn(a), area->base_pfn());
  EXPECT_EQ(m.ms->page_to_pfn(b).value() % 16, 0u);
  EXPECT_EQ(m.ms->page_to_pfn(b), area->base_pfn() + PageCount(16));
  EXPECT_EQ(m.ms->page_to_pfn(c), area->base_pfn() + PageCount(3)) << "the hole before b";
  EXPECT_EQ(area->used_pages(), 20u);
  expect_all_valid();
  EXPECT_TRUE(cma.cma_release(area, b, 16));
  EXPECT_TRUE(cma.cma_release(area, a, 3));
  EXPECT_TRUE(cma.cma_release(area, c, 1));
  expect_all_valid();
}

// order_per_bit: a bit stands for 2^order_per_bit pages, so a request
// takes whole bits.
TEST(CmaOrderPerBit, RequestsRoundUpToWholeBits) {
  testing::VmMachine m(cma_machine(/*order_per_bit=*/2));
  CmaAreas cma(*m.ms);
  Cma* area = cma.find("reserved");
  Page* a = cma.cma_alloc(area, 3, 0, false);
  Page* b = cma.cma_alloc(area, 1, 0, false);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(m.ms->page_to_pfn(b), area->base_pfn() + PageCount(4));
  EXPECT_EQ(area->used_pages(), 8u);
  EXPECT_TRUE(cma.validate().ok());
  EXPECT_TRUE(cma.cma_release(area, a, 3));
  EXPECT_TRUE(cma.cma_release(area, b, 1));
  EXPECT_EQ(area->used_pages(), 0u);
}

// A movable-occupied range: the user pages migrate out (MR_CONTIG_RANGE)
// and keep their contents.
TEST_F(CmaTest, MovableOccupantsMigrateOut) {
  const VirtAddr a = populate(600, 1);
  uint64_t inside = 0;
  for (uint64_t i = 0; i < 600; ++i)
    inside += in_area(testing::page_at(*mm, a + i * PAGE_SIZE)) ? 1 : 0;
  ASSERT_GT(inside, 500u) << "the balancing rule put user memory in CMA";
  m.ms->tracer().enable(TraceEvent::mm_alloc_contig_migrate_range_info);
  const int64_t migrated0 = event(PGMIGRATE_SUCCESS);
  CmaAllocResult res;
  Page* page = cma.cma_alloc(area, area->count(), 0, false, &res);
  ASSERT_NE(page, nullptr) << res.err;
  EXPECT_EQ(event(PGMIGRATE_SUCCESS) - migrated0, static_cast<int64_t>(inside));
  for (uint64_t i = 0; i < 600; ++i)
    EXPECT_FALSE(in_area(testing::page_at(*mm, a + i * PAGE_SIZE)));
  expect_pattern(a, 600, 1);
  const auto recs = m.ms->tracer().records();
  ASSERT_FALSE(recs.empty());
  EXPECT_NE(recs[0].text.find(fmt::format("start={:#x} end={:#x} migratetype=4 nr_migrated={}",
                                          area->base_pfn().value(), area_end().value(), inside)),
            std::string::npos)
      << recs[0].text;
  expect_all_valid();
  EXPECT_TRUE(cma.cma_release(area, page, area->count()));
  expect_all_valid();
}

// A pinned page: isolation succeeds but migration keeps failing, so the
// slot is -EBUSY after 5 tries; cma_alloc moves on to the next aligned slot,
// and the whole area cannot be had. The result names the pin's owner.
TEST_F(CmaTest, PinnedPageMakesItsSlotBusyAndCmaAllocMovesOn) {
  const VirtAddr a = populate(8, 2);
  Page* pinned = nullptr;
  {
    PinOwnerScope owner(PinOwnerKind::kDevice, "camera0", "frame-buffer");
    ASSERT_EQ(pin_user_pages_fast(a.value(), 1, FOLL_WRITE, &pinned), 1);
  }
  ASSERT_TRUE(in_area(pinned));
  const Pfn pinned_pfn = m.ms->page_to_pfn(pinned);
  const uint64_t slot = (pinned_pfn - area->base_pfn()).value() / kBlock;

  CmaAllocResult res;
  EXPECT_EQ(cma.cma_alloc(area, area->count(), 0, false, &res), nullptr);
  EXPECT_EQ(res.err, -EBUSY);
  EXPECT_EQ(event(CMA_ALLOC_FAIL), 1);
  EXPECT_EQ(area->stats().alloc_pages_fail, area->count());
  EXPECT_EQ(area->used_pages(), 0u) << "a failed slot is given back";
  ASSERT_FALSE(res.blocked.blockers.empty());
  const PageBlocker& b = res.blocked.blockers.front();
  EXPECT_EQ(b.pfn, pinned_pfn);
  EXPECT_EQ(b.reason, BlockReason::kPinned);
  ASSERT_EQ(b.owners.size(), 1u);
  EXPECT_EQ(b.owners[0].name, "camera0");
  EXPECT_EQ(b.owners[0].label, "frame-buffer");
  BlockedOperation last;
  ASSERT_TRUE(m.ms->blocker_log().last(&last));
  EXPECT_EQ(last.operation, "cma_alloc");
  expect_all_valid();

  // Pageblock-sized requests: every slot but the pinned one can be had;
  // the call that meets the pinned slot skips it (cma_alloc_busy_retry),
  // and so does the last, failing call, which starts over from the front.
  const uint64_t nslots = area->count() / kBlock;
  std::vector<Page*> got;
  uint64_t busy = 0;
  for (;;) {
    Page* p = cma.cma_alloc(area, kBlock, pageblock_order, false, &res);
    busy += res.busy_retries;
    if (p == nullptr) break;
    EXPECT_NE((m.ms->page_to_pfn(p) - area->base_pfn()).value() / kBlock, slot);
    got.push_back(p);
  }
  EXPECT_EQ(got.size(), nslots - 1);
  EXPECT_EQ(busy, slot + 1 < nslots ? 2u : 1u);
  for (Page* p : got)
    EXPECT_TRUE(cma.cma_release(area, p, kBlock));

  unpin_user_page(pinned);
  Page* all = cma.cma_alloc(area, area->count(), 0, false);
  ASSERT_NE(all, nullptr);
  expect_pattern(a, 8, 2);
  EXPECT_TRUE(cma.cma_release(area, all, area->count()));
  expect_all_valid();
}

// A long-term pin migrates its pages out of CMA first (KERNEL-SPEC 5), so
// the area stays allocatable; with the policy off the pin blocks it.
TEST_F(CmaTest, LongtermPinsLeaveTheAreaAllocatable) {
  const VirtAddr a = populate(32, 3);
  std::vector<Page*> pages(32);
  ASSERT_EQ(pin_user_pages_fast(a.value(), 32, FOLL_WRITE | FOLL_LONGTERM, pages.data()), 32);
  for (Page* p : pages)
    EXPECT_FALSE(in_area(p));
  Page* all = cma.cma_alloc(area, area->count(), 0, false);
  ASSERT_NE(all, nullptr);
  EXPECT_TRUE(cma.cma_release(area, all, area->count()));
  unpin_user_pages(pages);

  m.ms->set_longterm_pin_policy(LongtermPinPolicy::kInPlace);
  const VirtAddr b = populate(4, 4);
  Page* page = nullptr;
  ASSERT_EQ(pin_user_pages_fast(b.value(), 1, FOLL_WRITE | FOLL_LONGTERM, &page), 1);
  ASSERT_TRUE(in_area(page));
  CmaAllocResult res;
  EXPECT_EQ(cma.cma_alloc(area, area->count(), 0, false, &res), nullptr);
  ASSERT_FALSE(res.blocked.blockers.empty());
  EXPECT_TRUE(res.blocked.blockers[0].owners.at(0).longterm);
  unpin_user_page(page);
  expect_all_valid();
}

// An unmovable kernel page in a MIGRATE_MOVABLE range refuses isolation at
// once (alloc_contig_range as alloc_contig_pages uses it), naming its owner.
TEST_F(CmaTest, UnmovableRangeIsRefusedAtIsolation) {
  std::vector<Page*> kernel;
  Page* k = nullptr;
  while (k == nullptr) {
    Page* p = kmalloc_pages(*m.ms, Order(0), "gpu-ring");
    ASSERT_NE(p, nullptr);
    const Pfn block = pageblock_start_pfn(m.ms->page_to_pfn(p));
    SpinGuard g(page_zone(p)->lock);
    if (has_unmovable_pages(*m.ms, block, block + PageCount(kBlock), MIGRATE_MOVABLE, 0) == p) {
      k = p;
    } else {
      kernel.push_back(p);
    }
  }
  ASSERT_FALSE(in_area(k)) << "kernel memory never comes from CMA";
  const Pfn block = pageblock_start_pfn(m.ms->page_to_pfn(k));
  BlockedOperation op;
  EXPECT_EQ(
      alloc_contig_range(*m.ms, block, block + PageCount(kBlock), MIGRATE_MOVABLE, GFP_KERNEL, &op),
      -EBUSY);
  ASSERT_EQ(op.blockers.size(), 1u);
  EXPECT_EQ(op.blockers[0].reason, BlockReason::kUnmovable);
  EXPECT_EQ(op.blockers[0].kernel_owner, "gpu-ring");
  EXPECT_NE(m.ms->pageblock_flags().get(block), MIGRATE_ISOLATE);
  kfree_pages(k);
  for (Page* p : kernel)
    kfree_pages(p);
  expect_all_valid();
}

// __alloc_contig_verify_gfp_mask, __GFP_COMP, unaligned ranges and
// alloc_contig_pages.
TEST_F(CmaTest, AllocContigRangeFlagsAndShapes) {
  const Pfn s = area->base_pfn();
  EXPECT_EQ(alloc_contig_range(*m.ms, s, s + PageCount(8), MIGRATE_CMA, GFP_KERNEL | __GFP_NOFAIL),
            -EINVAL);
  EXPECT_EQ(alloc_contig_range(*m.ms, s, s, MIGRATE_CMA, GFP_KERNEL), -EINVAL);
  // Placement hints are ignored, not refused.
  ASSERT_EQ(alloc_contig_range(*m.ms, s, s + PageCount(kBlock), MIGRATE_CMA,
                               GFP_HIGHUSER_MOVABLE | __GFP_COMP),
            0);
  Folio* folio = page_folio(m.ms->pfn_to_page(s));
  EXPECT_TRUE(folio_test_large(folio));
  EXPECT_EQ(folio_order(folio), pageblock_order);
  free_contig_range(*m.ms, s, PageCount(kBlock));
  // An unaligned range inside one pageblock: the buddy around it is split
  // and what is outside goes back.
  const int64_t free0 = m.ms->vmstat()[NR_FREE_PAGES];
  ASSERT_EQ(alloc_contig_range(*m.ms, s + PageCount(5), s + PageCount(12), MIGRATE_CMA,
                               GFP_KERNEL | __GFP_ZERO),
            0);
  EXPECT_EQ(m.ms->vmstat()[NR_FREE_PAGES], free0 - 7);
  EXPECT_EQ(m.ms->pfn_to_page(s + PageCount(4))->refcount(), 0);
  EXPECT_EQ(m.ms->pfn_to_page(s + PageCount(5))->refcount(), 1);
  free_contig_range(*m.ms, s + PageCount(5), PageCount(7));
  EXPECT_EQ(m.ms->vmstat()[NR_FREE_PAGES], free0);
  expect_all_valid();
  Page* p = alloc_contig_pages(*m.ms, PageCount(kBlock), GFP_KERNEL, 0);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(m.ms->page_to_pfn(p).value() % kBlock, 0u);
  free_contig_range(*m.ms, m.ms->page_to_pfn(p), PageCount(kBlock));
  expect_all_valid();
}

// Concurrency under ThreadSanitizer: threads fault in and rewrite anonymous
// memory (movable allocations that land in CMA) while the main thread
// allocates and releases CMA ranges; no write is lost, every invariant
// holds afterwards.
TEST_F(CmaTest, ConcurrentCmaAllocAgainstPageFaults) {
  constexpr int kWorkers = 2;
  constexpr uint64_t kPages = 256;
  std::atomic<uint64_t> rounds{0};
  std::atomic<int> bad{0};
  testing::ScopedThreads workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.spawn([&, w](std::stop_token stop) {
      current().set_mm(mm.get());
      for (uint64_t r = 1; !stop.stop_requested(); ++r) {
        // Map, fault in, check, unmap: a steady stream of movable
        // allocations and frees.
        auto a = vm_mmap(*mm, VirtAddr(0), kPages * PAGE_SIZE, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS);
        if (!a.ok()) {
          bad++;
          continue;
        }
        for (uint64_t i = 0; i < kPages; ++i)
          if (!write_user<uint64_t>(*mm, *a + i * PAGE_SIZE, (r << 20) | (w << 16) | i).ok()) bad++;
        for (uint64_t i = 0; i < kPages; ++i) {
          auto v = read_user<uint64_t>(*mm, *a + i * PAGE_SIZE);
          EXPECT_TRUE(v.ok() && *v == ((r << 20) | (w << 16) | i))
              << "worker " << w << " page " << i;
        }
        if (!vm_munmap(*mm, *a, kPages * PAGE_SIZE).ok()) bad++;
        rounds++;
      }
      current().set_mm(nullptr);
    });
  }
  // At least 60 allocations, and until the workers have done 20 rounds and
  // an allocation succeeded.
  int got = 0;
  const uint64_t tries = testing::repeat_until(
      60, [&] { return rounds.load() >= 20 && got > 0; },
      [&](uint64_t i) {
        const uint64_t count = kBlock * (1 + i % 3);
        if (Page* p = cma.cma_alloc(area, count, pageblock_order, true)) {
          ++got;
          EXPECT_TRUE(cma.cma_release(area, p, count));
        }
      });
  workers.stop_and_join();
  ASSERT_NE(tries, 0u) << "no allocation succeeded before the hang bound";
  EXPECT_EQ(bad.load(), 0);
  RecordProperty("allocations", got);
  RecordProperty("rounds", static_cast<int>(rounds.load()));
  lru_add_drain_all(*m.ms);
  expect_all_valid();
}

}  // namespace
}  // namespace pinmm
