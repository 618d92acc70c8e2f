#include "pinmm/phys/page.h"

#include <gtest/gtest.h>

#include "pinmm/phys/folio_lock.h"
#include "pinmm/phys/page_alloc.h"
#include "testing/machines.h"

namespace pinmm {
namespace {

using testing::boot_tiny;

TEST(Page, DescriptorLayout) {
  EXPECT_EQ(sizeof(Page), 64u);
  EXPECT_EQ(alignof(Page), 16u);
  EXPECT_EQ(PG_locked, 0);
  EXPECT_EQ(PG_head, 6);
  EXPECT_EQ(PG_waiters, 7);
  EXPECT_EQ(PG_anon_exclusive, PG_owner_2);
}

TEST(Page, RefcountPrimitives) {
  auto ms = boot_tiny(Bytes::MiB(4));
  Folio* f = folio_alloc(*ms, GFP_KERNEL, Order(0));
  ASSERT_NE(f, nullptr);
  folio_get(f);
  EXPECT_EQ(folio_ref_count(f), 2);
  EXPECT_FALSE(folio_ref_freeze(f, 1));  // wrong expectation: stays at 2
  EXPECT_EQ(folio_ref_count(f), 2);
  EXPECT_TRUE(folio_ref_freeze(f, 2));
  EXPECT_EQ(folio_ref_count(f), 0);
  EXPECT_FALSE(folio_try_get(f));  // frozen: add-unless-zero fails
  folio_ref_unfreeze(f, 1);
  EXPECT_TRUE(folio_try_get(f));
  EXPECT_EQ(folio_ref_count(f), 2);
  folio_put(f);
  folio_put(f);
  EXPECT_EQ(folio_ref_count(f), 0);
  EXPECT_TRUE(PageBuddy(&f->page));
  EXPECT_FALSE(folio_try_get(f));  // freed
}

TEST(Page, MaybeDmaPinnedRule) {
  auto ms = boot_tiny(Bytes::MiB(4));
  Folio* small = folio_alloc(*ms, GFP_KERNEL, Order(0));
  EXPECT_FALSE(folio_maybe_dma_pinned(small));
  folio_ref_add(small, GUP_PIN_COUNTING_BIAS);  // one FOLL_PIN
  EXPECT_EQ(folio_ref_count(small), 1025);
  EXPECT_TRUE(folio_maybe_dma_pinned(small));
  folio_ref_add(small, -GUP_PIN_COUNTING_BIAS);
  folio_ref_add(small, 1023);  // 1024 plain references: a false positive, as in Linux
  EXPECT_TRUE(folio_maybe_dma_pinned(small));
  folio_ref_add(small, -1023);
  // An overflowed (negative) count still reads as pinned: unsigned compare.
  folio_set_count(small, -5);
  EXPECT_TRUE(folio_maybe_dma_pinned(small));
  folio_set_count(small, 1);
  folio_put(small);

  Folio* large = folio_alloc(*ms, GFP_KERNEL, Order(2));
  folio_ref_add(large, 2000);
  EXPECT_FALSE(folio_maybe_dma_pinned(large));  // exact: pincount decides
  folio_pincount_add(large, 1);
  EXPECT_TRUE(folio_maybe_dma_pinned(large));
  folio_pincount_add(large, -1);
  folio_ref_add(large, -2000);
  folio_put(large);
  EXPECT_VALID(*ms);
}

TEST(Page, DumpPageDescribesState) {
  auto ms = boot_tiny(Bytes::MiB(4));
  Folio* f = folio_alloc(*ms, GFP_KERNEL, Order(1));
  folio_set_dirty(f);
  const std::string d = mm_describe(folio_page(f, 1));
  EXPECT_NE(d.find("refcount:1 mapcount:0"), std::string::npos) << d;
  EXPECT_NE(d.find("pfn:0x1"), std::string::npos) << d;
  EXPECT_NE(d.find("head: pfn:0x0 order:1"), std::string::npos) << d;
  EXPECT_NE(mm_describe(f).find("flags: 0x50(dirty|head)"), std::string::npos) << mm_describe(f);
  folio_clear_dirty(f);
  folio_put(f);
}

TEST(PageDeathTest, RefcountUnderflowIsABug) {
  EXPECT_DEATH(
      {
        auto ms = boot_tiny(Bytes::MiB(4));
        Folio* f = folio_alloc(*ms, GFP_KERNEL, Order(0));
        folio_put_refs(f, 2);
      },
      "BUG");
}

TEST(PageDeathTest, FreeingAPageWithStateIsABug) {
  EXPECT_DEATH(
      {
        auto ms = boot_tiny(Bytes::MiB(4));
        Folio* f = folio_alloc(*ms, GFP_KERNEL, Order(0));
        folio_lock(f);  // freed while still locked
        folio_put(f);
      },
      "BUG");
}

}  // namespace
}  // namespace pinmm
