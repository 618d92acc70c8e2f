// The reference-counting model of KERNEL-SPEC 3 and the release APIs of 2.5,
// checked against the worked examples of 3.8.
#include <gtest/gtest.h>

#include <array>
#include <thread>

#include "pinmm/gup/pin.h"
#include "pinmm/phys/folio_lock.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

class Pin : public ::testing::Test {
 protected:
  Pin() : m(config()), mm(Mm::create(m.vm)) {}
  static MachineConfig config() {
    MachineConfig c = MachineConfig::tiny(Bytes::MiB(32), Bytes::MiB(8));
    c.thp = ThpMode::kAlways;
    return c;
  }
  int64_t acquired() { return m.ms->node(0).stats().get(NR_FOLL_PIN_ACQUIRED); }
  int64_t released() { return m.ms->node(0).stats().get(NR_FOLL_PIN_RELEASED); }
  // A private anonymous small folio, mapped once, on the LRU.
  Folio* small_folio() {
    const VirtAddr a = testing::map_anon(*mm, PAGE_SIZE);
    testing::fill_pages(*mm, a, PAGE_SIZE, 1);
    lru_add_drain_all(*m.ms);
    return page_folio(testing::page_at(*mm, a));
  }
  // A PMD-mapped anonymous THP.
  Folio* thp(VirtAddr* at = nullptr) {
    const VirtAddr raw = testing::map_anon(*mm, 2 * HPAGE_PMD_SIZE);
    const VirtAddr h((raw.value() + HPAGE_PMD_SIZE - 1) & HPAGE_PMD_MASK);
    EXPECT_TRUE(write_user<uint8_t>(*mm, h, 1).ok());
    EXPECT_TRUE(pmd_leaf(testing::pmd_at(*mm, h)));
    lru_add_drain_all(*m.ms);
    if (at != nullptr) *at = h;
    return page_folio(testing::page_at(*mm, h));
  }
  testing::VmMachine m;
  MmHandle mm;
};

// KERNEL-SPEC 3.8, the small-folio rows.
TEST_F(Pin, SmallFolioWorkedExample) {
  Folio* f = small_folio();
  EXPECT_EQ(folio_ref_count(f), 1);
  EXPECT_FALSE(folio_maybe_dma_pinned(f));
  ASSERT_EQ(try_grab_folio(f, 1, FOLL_GET), 0);
  EXPECT_EQ(folio_ref_count(f), 2);
  EXPECT_FALSE(folio_maybe_dma_pinned(f));
  gup_put_folio(f, 1, FOLL_GET);
  ASSERT_EQ(try_grab_folio(f, 1, FOLL_PIN), 0);
  EXPECT_EQ(folio_ref_count(f), 1025);
  EXPECT_TRUE(folio_maybe_dma_pinned(f));
  ASSERT_EQ(try_grab_folio(f, 1, FOLL_PIN), 0);
  EXPECT_EQ(folio_ref_count(f), 2049);
  EXPECT_EQ(acquired(), 2);
  unpin_user_page(&f->page);
  unpin_user_page(&f->page);
  EXPECT_EQ(folio_ref_count(f), 1);
  EXPECT_EQ(released(), 2);
  EXPECT_FALSE(folio_maybe_dma_pinned(f));
}

// KERNEL-SPEC 3.8, the THP rows.
TEST_F(Pin, ThpWorkedExample) {
  Folio* f = thp();
  EXPECT_EQ(folio_ref_count(f), 1);
  EXPECT_EQ(folio_entire_mapcount(f), 1);
  ASSERT_EQ(try_grab_folio(f, HPAGE_PMD_NR, FOLL_PIN), 0);
  EXPECT_EQ(folio_ref_count(f), 513);
  EXPECT_EQ(folio_pincount(f), 512);
  EXPECT_TRUE(folio_maybe_dma_pinned(f));
  unpin_user_page(folio_page(f, 7));
  EXPECT_EQ(folio_ref_count(f), 512);
  EXPECT_EQ(folio_pincount(f), 511);
  unpin_user_folio(f, 511);
  EXPECT_EQ(folio_ref_count(f), 1);
  EXPECT_EQ(folio_pincount(f), 0);
  EXPECT_EQ(acquired(), 512);
  EXPECT_EQ(released(), 512);
}

TEST_F(Pin, ZeroPageIsNeverCounted) {
  Folio* zero = page_folio(m.ms->zero_page());
  const int ref = folio_ref_count(zero);
  ASSERT_EQ(try_grab_folio(zero, 3, FOLL_PIN), 0);
  EXPECT_EQ(try_grab_folio_fast(m.ms->zero_page(), 1, FOLL_PIN), zero);
  folio_add_pin(zero);
  EXPECT_EQ(folio_ref_count(zero), ref);
  unpin_user_page(m.ms->zero_page());
  EXPECT_EQ(folio_ref_count(zero), ref);
  EXPECT_EQ(acquired(), 0);
  EXPECT_EQ(released(), 0);
}

TEST_F(Pin, FolioAddPinCountsNoStatistic) {
  Folio* f = small_folio();
  ASSERT_EQ(try_grab_folio(f, 1, FOLL_PIN), 0);
  folio_add_pin(f);
  EXPECT_EQ(folio_ref_count(f), 1 + 2 * GUP_PIN_COUNTING_BIAS);
  EXPECT_EQ(acquired(), 1);  // as the kernel: folio_add_pin does not count
  unpin_folio(f);
  unpin_folio(f);
  EXPECT_EQ(released(), 2);
  EXPECT_EQ(folio_ref_count(f), 1);
}

TEST_F(Pin, UnpinUserPagesGroupsFolioRunsAndSkipsNulls) {
  VirtAddr h;
  Folio* big = thp(&h);
  Folio* small = small_folio();
  std::array<Page*, 6> pages{folio_page(big, 0), folio_page(big, 1), nullptr,
                             &small->page,       folio_page(big, 9), folio_page(big, 10)};
  ASSERT_EQ(try_grab_folio(big, 4, FOLL_PIN), 0);
  ASSERT_EQ(try_grab_folio(small, 1, FOLL_PIN), 0);
  unpin_user_pages_dirty_lock(pages, true);
  EXPECT_EQ(folio_ref_count(big), 1);
  EXPECT_EQ(folio_pincount(big), 0);
  EXPECT_EQ(folio_ref_count(small), 1);
  EXPECT_TRUE(folio_test_dirty(big));
  EXPECT_TRUE(folio_test_dirty(small));
  EXPECT_EQ(released(), 5);
}

TEST_F(Pin, UnpinRangeCrossesFolios) {
  VirtAddr h;
  Folio* big = thp(&h);
  ASSERT_EQ(try_grab_folio(big, 3, FOLL_PIN), 0);
  unpin_user_page_range_dirty_lock(folio_page(big, 509), 3, false);
  EXPECT_EQ(folio_pincount(big), 0);
  EXPECT_EQ(folio_ref_count(big), 1);
  EXPECT_FALSE(folio_test_dirty(big));
}

TEST_F(Pin, FastGrabFailsOnAFrozenFolio) {
  Folio* f = small_folio();
  ASSERT_TRUE(folio_ref_freeze(f, 1));
  EXPECT_EQ(try_grab_folio_fast(&f->page, 1, FOLL_PIN), nullptr);
  EXPECT_EQ(try_grab_folio_fast(&f->page, 1, FOLL_GET), nullptr);
  folio_ref_unfreeze(f, 1);
  EXPECT_EQ(try_grab_folio_fast(&f->page, 1, FOLL_GET), f);
  EXPECT_EQ(folio_ref_count(f), 2);
  gup_put_folio(f, 1, FOLL_GET);
  EXPECT_EQ(try_grab_folio_fast(&f->page, 1, FOLL_NONE), nullptr);  // neither GET nor PIN
}

// KERNEL-SPEC 4.3 / 12.5: only the fast grab refuses a folio that may not
// be pinned long-term; the slow grab pins it and the caller migrates.
TEST_F(Pin, OnlyTheFastGrabChecksLongtermPinnability) {
  Folio* f = small_folio();
  ASSERT_EQ(folio_zone(f)->type(), ZONE_MOVABLE);  // user memory prefers ZONE_MOVABLE
  ASSERT_FALSE(folio_is_longterm_pinnable(f));
  EXPECT_EQ(try_grab_folio_fast(&f->page, 1, FOLL_PIN | FOLL_LONGTERM), nullptr);
  EXPECT_EQ(folio_ref_count(f), 1);
  EXPECT_EQ(acquired(), 0);
  EXPECT_EQ(try_grab_folio(f, 1, FOLL_PIN | FOLL_LONGTERM), 0);
  EXPECT_EQ(folio_ref_count(f), 1025);
  unpin_user_page(&f->page);
  EXPECT_EQ(try_grab_folio_fast(&f->page, 1, FOLL_PIN), f);  // short-term: fine
  unpin_user_page(&f->page);
}

TEST_F(Pin, SlowGrabOfAFreedFolioIsAnError) {
  Page* p = alloc_pages(*m.ms, GFP_KERNEL, Order(0));
  Folio* f = page_folio(p);
  ASSERT_TRUE(folio_ref_freeze(f, 1));
  EXPECT_EQ(try_grab_folio(f, 1, FOLL_PIN), -ENOMEM);
  folio_ref_unfreeze(f, 1);
  put_page(p);
}

// A GUP-fast grab racing with the folio's last put either gets its
// references on the live folio or fails; it never resurrects a freed one.
TEST_F(Pin, ConcurrentFastGrabRacesWithFree) {
  for (int round = 0; round < 200; ++round) {
    Page* p = alloc_pages(*m.ms, GFP_HIGHUSER_MOVABLE, Order(0));
    Folio* f = page_folio(p);
    std::atomic<bool> go{false};
    Folio* grabbed = nullptr;
    std::thread t([&] {
      while (!go.load())
        std::this_thread::yield();
      grabbed = try_grab_folio_fast(p, 1, FOLL_PIN);
    });
    go = true;
    put_page(p);  // the allocation's reference: the folio may be freed now
    t.join();
    if (grabbed != nullptr) {
      // The grab won: the folio stayed alive until the unpin frees it.
      EXPECT_EQ(grabbed, f);
      unpin_user_page(p);
    }
    EXPECT_EQ(p->refcount(), 0);
  }
}

}  // namespace
}  // namespace pinmm
