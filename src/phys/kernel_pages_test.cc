#include "pinmm/phys/kernel_pages.h"

#include <gtest/gtest.h>

#include "pinmm/phys/pageblock.h"
#include "testing/machines.h"

namespace pinmm {
namespace {

using testing::boot_tiny;

TEST(KernelPages, OwnerTagsAndSlabCounters) {
  auto ms = boot_tiny(Bytes::MiB(8), Bytes::MiB(4));
  Page* a = kmalloc_pages(*ms, Order(0), "nvme-queue");
  Page* b = kmalloc_pages(*ms, Order(2), "dentry-cache", GFP_KERNEL | __GFP_RECLAIMABLE);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(PageSlab(a));
  EXPECT_EQ(page_zone(a)->type(), ZONE_NORMAL);
  EXPECT_EQ(get_pageblock_migratetype(a), MIGRATE_UNMOVABLE);
  EXPECT_EQ(get_pageblock_migratetype(b), MIGRATE_RECLAIMABLE);
  EXPECT_EQ(kernel_page_owner(a), "nvme-queue");
  EXPECT_EQ(kernel_page_owner(b + 3), "dentry-cache");  // any page of the allocation
  EXPECT_EQ(ms->vmstat()[NR_SLAB_UNRECLAIMABLE], 1);
  EXPECT_EQ(ms->vmstat()[NR_SLAB_RECLAIMABLE], 4);
  kfree_pages(a);
  kfree_pages(b);
  EXPECT_EQ(kernel_page_owner(a), "");
  EXPECT_EQ(ms->vmstat()[NR_SLAB_UNRECLAIMABLE], 0);
  EXPECT_EQ(ms->vmstat()[NR_SLAB_RECLAIMABLE], 0);
  EXPECT_VALID(*ms);
}

TEST(KernelPages, MovableKernelMemoryIsRefused) {
  auto ms = boot_tiny(Bytes::MiB(4));
  const uint64_t warns = mm_warn_count();
  EXPECT_EQ(kmalloc_pages(*ms, Order(0), "bad", GFP_HIGHUSER_MOVABLE), nullptr);
  EXPECT_EQ(mm_warn_count(), warns + 1);
  ms->injector().fail_once(inject_point::kKmallocPages);
  EXPECT_EQ(kmalloc_pages(*ms, Order(0), "x"), nullptr);
  Page* p = kmalloc_pages(*ms, Order(0), "x");
  EXPECT_NE(p, nullptr);
  kfree_pages(p);
}

}  // namespace
}  // namespace pinmm
