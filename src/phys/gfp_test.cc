#include "pinmm/phys/gfp.h"

#include <gtest/gtest.h>

#include "pinmm/base/task.h"

namespace pinmm {
namespace {

TEST(Gfp, KernelBitValues) {
  // include/linux/gfp_types.h, 6.12 (no KASAN_HW_TAGS, no LOCKDEP).
  EXPECT_EQ(raw(__GFP_MOVABLE), 0x08u);
  EXPECT_EQ(raw(__GFP_ZERO), 0x100u);
  EXPECT_EQ(raw(__GFP_COMP), 0x40000u);
  EXPECT_EQ(raw(__GFP_THISNODE), 0x200000u);
  EXPECT_EQ(raw(GFP_KERNEL), 0xcc0u);
  EXPECT_EQ(raw(GFP_USER), 0x100cc0u);
  EXPECT_EQ(raw(GFP_HIGHUSER_MOVABLE), 0x100ccau);
  EXPECT_EQ(raw(GFP_TRANSHUGE), 0x1c2ccau & ~raw(__GFP_KSWAPD_RECLAIM));
}

TEST(Gfp, ZoneAndMigratetype) {
  EXPECT_EQ(gfp_zone(GFP_KERNEL), ZONE_NORMAL);
  EXPECT_EQ(gfp_zone(GFP_HIGHUSER_MOVABLE), ZONE_MOVABLE);
  EXPECT_EQ(gfp_zone(GFP_USER | __GFP_MOVABLE), ZONE_NORMAL);
  EXPECT_EQ(gfp_zone(GFP_HIGHUSER), ZONE_NORMAL);
  EXPECT_EQ(gfp_migratetype(GFP_KERNEL), MIGRATE_UNMOVABLE);
  EXPECT_EQ(gfp_migratetype(GFP_KERNEL | __GFP_RECLAIMABLE), MIGRATE_RECLAIMABLE);
  EXPECT_EQ(gfp_migratetype(GFP_HIGHUSER_MOVABLE), MIGRATE_MOVABLE);
}

TEST(Gfp, MemallocScopesStripFlags) {
  Task t(1, "t");
  CurrentTask scope(t);
  EXPECT_EQ(current_gfp_context(GFP_HIGHUSER_MOVABLE), GFP_HIGHUSER_MOVABLE);
  const unsigned saved = memalloc_pin_save();
  EXPECT_EQ(current_gfp_context(GFP_HIGHUSER_MOVABLE), GFP_HIGHUSER);
  EXPECT_EQ(gfp_zone(current_gfp_context(GFP_TRANSHUGE)), ZONE_NORMAL);
  memalloc_pin_restore(saved);
  t.set_flags(PF_MEMALLOC_NOIO);
  EXPECT_EQ(current_gfp_context(GFP_KERNEL), GFP_NOIO);
  t.clear_flags(PF_MEMALLOC_NOIO);
  t.set_flags(PF_MEMALLOC_NOFS);
  EXPECT_EQ(current_gfp_context(GFP_KERNEL), GFP_NOFS);
}

TEST(Gfp, PrintsLikeShowGfpFlags) {
  EXPECT_EQ(gfp_to_string(GFP_KERNEL), "GFP_KERNEL");
  EXPECT_EQ(gfp_to_string(GFP_HIGHUSER_MOVABLE | __GFP_ZERO), "GFP_HIGHUSER_MOVABLE|__GFP_ZERO");
  EXPECT_EQ(gfp_to_string(GFP_TRANSHUGE), "GFP_TRANSHUGE");
  EXPECT_EQ(gfp_to_string(GFP_ATOMIC | __GFP_NOWARN), "GFP_ATOMIC|__GFP_NOWARN");
  EXPECT_EQ(gfp_to_string(GFP_NONE), "none");
  EXPECT_EQ(gfp_to_string(Gfp{1u << 9}), "0x200");
}

}  // namespace
}  // namespace pinmm
