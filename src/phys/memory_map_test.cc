// The physical memory map snapshot: each pageblock's counts and state.
#include "pinmm/phys/memory_map.h"

#include <gtest/gtest.h>

#include "pinmm/phys/kernel_pages.h"
#include "pinmm/phys/page_alloc.h"
#include "pinmm/phys/page_isolation.h"
#include "pinmm/phys/pin_owners.h"
#include "testing/machines.h"

namespace pinmm {
namespace {

const PageblockInfo& block_at(const PhysMemoryMap& map, Pfn pfn) {
  const Pfn start = pageblock_start_pfn(pfn);
  for (const PageblockInfo& b : map.blocks) {
    if (b.start == start) return b;
  }
  static const PageblockInfo none;
  return none;
}

TEST(MemoryMap, FreshMachineIsFreeButForItsReservations) {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(16), Bytes::MiB(4));
  auto ms = testing::boot(c);
  const PhysMemoryMap map = snapshot_memory_map(*ms);
  ASSERT_EQ(map.blocks.size(), 8u);
  EXPECT_EQ(map.count(PageblockState::kFree), 8u);
  EXPECT_EQ(map.blocks[0].free, pageblock_nr_pages);
  EXPECT_EQ(map.blocks[7].zone, ZONE_MOVABLE);
  EXPECT_EQ(map.blocks[5].zone, ZONE_NORMAL);
  EXPECT_EQ(snapshot_memory_map(*ms), map) << "a snapshot of an idle machine is repeatable";
}

TEST(MemoryMap, KindsOfPagesAndTheStateThatSumsUpABlock) {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(16), Bytes::MiB(4));
  auto ms = testing::boot(c);
  Page* kernel = kmalloc_pages(*ms, Order(0), "driver");
  ASSERT_NE(kernel, nullptr);
  Page* user = alloc_pages(*ms, GFP_HIGHUSER_MOVABLE, Order(0));
  ASSERT_NE(user, nullptr);
  ASSERT_EQ(page_zone(user)->type(), ZONE_MOVABLE);
  // A user page counts as movable when it looks like user memory.
  user->set_mapping(PAGE_MAPPING_ANON);
  PhysMemoryMap map = snapshot_memory_map(*ms);
  EXPECT_EQ(block_at(map, ms->page_to_pfn(kernel)).state, PageblockState::kUnmovable);
  EXPECT_EQ(block_at(map, ms->page_to_pfn(kernel)).unmovable, 1u);
  EXPECT_EQ(block_at(map, ms->page_to_pfn(user)).state, PageblockState::kMovable);
  EXPECT_EQ(block_at(map, ms->page_to_pfn(user)).movable, 1u);
  EXPECT_EQ(block_at(map, ms->page_to_pfn(user)).free, pageblock_nr_pages - 1);

  // A pin (the bias on a small folio) makes the block pinned; a record
  // saying FOLL_LONGTERM makes it long-term pinned.
  folio_ref_add(page_folio(user), GUP_PIN_COUNTING_BIAS);
  map = snapshot_memory_map(*ms);
  EXPECT_EQ(block_at(map, ms->page_to_pfn(user)).state, PageblockState::kPinned);
  ms->pin_owners().record(std::span<Page* const>(&user, 1), "pin_user_pages", /*longterm=*/true);
  map = snapshot_memory_map(*ms);
  EXPECT_EQ(block_at(map, ms->page_to_pfn(user)).state, PageblockState::kLongtermPinned);
  EXPECT_EQ(block_at(map, ms->page_to_pfn(user)).longterm_pinned, 1u);
  ms->pin_owners().release(page_folio(user), 1);
  EXPECT_FALSE(folio_ref_sub_and_test(page_folio(user), GUP_PIN_COUNTING_BIAS));

  // Isolation outranks the rest.
  const Pfn b = pageblock_start_pfn(ms->page_to_pfn(user));
  ASSERT_EQ(start_isolate_page_range(*ms, b, b + PageCount(pageblock_nr_pages), MIGRATE_MOVABLE,
                                     MEMORY_OFFLINE),
            0);
  map = snapshot_memory_map(*ms);
  EXPECT_EQ(block_at(map, b).state, PageblockState::kIsolated);
  const std::string text = format_memory_map(*ms, map);
  EXPECT_NE(text.find("legend: . free, m movable, U unmovable, p pinned, L long-term pinned, "
                      "I isolated, o offline, D device"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("isolated 1"), std::string::npos) << text;
  undo_isolate_page_range(*ms, b, b + PageCount(pageblock_nr_pages), MIGRATE_MOVABLE);
  user->set_mapping(0);
  free_page(user);
  kfree_pages(kernel);
  EXPECT_VALID(*ms);
}

}  // namespace
}  // namespace pinmm
