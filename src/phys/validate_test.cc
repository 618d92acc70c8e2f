// validate() must notice broken state: each test breaks one invariant on
// purpose and checks the report names it.
#include <gtest/gtest.h>

#include "pinmm/phys/page_alloc.h"
#include "pinmm/phys/pageblock.h"
#include "testing/machines.h"

namespace pinmm {
namespace {

using testing::boot_tiny;

bool mentions(const ValidationReport& r, const std::string& needle) {
  for (const auto& p : r.problems()) {
    if (p.find(needle) != std::string::npos) return true;
  }
  return false;
}

TEST(Validate, DetectsALeakedPage) {
  auto ms = boot_tiny(Bytes::MiB(4));
  Page* p = alloc_pages(*ms, GFP_KERNEL, Order(0));
  EXPECT_TRUE(ms->validate().ok());
  folio_set_count(page_folio(p), 0);  // the reference vanished without a free
  const auto r = ms->validate();
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(mentions(r, "leaked")) << r.to_string();
  folio_set_count(page_folio(p), 1);
  free_page(p);
  EXPECT_TRUE(ms->validate().ok());
}

TEST(Validate, DetectsCounterDrift) {
  auto ms = boot_tiny(Bytes::MiB(4));
  ms->zone(0, ZONE_NORMAL).stats().add(NR_FREE_PAGES, 3);
  const auto r = ms->validate();
  EXPECT_TRUE(mentions(r, "nr_free_pages says 1027")) << r.to_string();
  ms->zone(0, ZONE_NORMAL).stats().add(NR_FREE_PAGES, -3);
  EXPECT_TRUE(ms->validate().ok());
}

TEST(Validate, DetectsAFreeBlockOnTheWrongList) {
  auto ms = boot_tiny(Bytes::MiB(4));
  // Retype the pageblocks under a free block without moving it.
  ms->pageblock_flags().set(Pfn(0), MIGRATE_UNMOVABLE);
  const auto r = ms->validate();
  EXPECT_TRUE(mentions(r, "sits on the Movable list but pageblock 0x0 is Unmovable"))
      << r.to_string();
  ms->pageblock_flags().set(Pfn(0), MIGRATE_MOVABLE);
  EXPECT_TRUE(ms->validate().ok());
}

TEST(Validate, DetectsStrayCmaPageblocks) {
  auto ms = boot_tiny(Bytes::MiB(8));
  Page* p = alloc_pages(*ms, GFP_KERNEL, Order(10));  // pageblocks 0-1, allocated
  ms->pageblock_flags().set(Pfn(0), MIGRATE_CMA);
  EXPECT_TRUE(mentions(ms->validate(), "is CMA outside every CMA area"));
  ms->pageblock_flags().set(Pfn(0), MIGRATE_UNMOVABLE);
  __free_pages(p, Order(10));
  EXPECT_TRUE(ms->validate().ok());
}

}  // namespace
}  // namespace pinmm
