// ZONE_DEVICE pagemaps (KERNEL-SPEC 9.4): registration rules, the pages'
// initial state, handing pages out and getting them back, and the live
// reference that fails while the pagemap is being torn down.
#include "pinmm/hmm/memremap.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "pinmm/phys/folio_lock.h"
#include "testing/machines.h"

namespace pinmm {
namespace {

std::atomic<int> g_freed{0};
void count_free(Page*) { g_freed++; }
uint32_t no_migrate(VmFaultInfo&) { return 0; }
const DevPagemapOps kOps{count_free, no_migrate};
const DevPagemapOps kNoMigrate{count_free, nullptr};
const int kOwner = 0;

class Memremap : public ::testing::Test {
 protected:
  Memremap() {
    MachineConfig c = MachineConfig::tiny(Bytes::MiB(16));
    c.nodes.push_back({Bytes::MiB(16), Bytes(0)});
    c.device_space = Bytes::MiB(8);  // four 2 MiB sections
    ms = testing::boot(c);
    g_freed = 0;
  }
  // A device-private pagemap as a driver fills it in (DevPagemap is a
  // registration object: not copyable).
  static void make_private(DevPagemap& p) {
    p.type = MEMORY_DEVICE_PRIVATE;
    p.ops = &kOps;
    p.owner = &kOwner;
  }
  std::unique_ptr<MemorySystem> ms;
};

TEST_F(Memremap, RegistrationRulesPerType) {
  DevPagemap p;
  make_private(p);
  EXPECT_EQ(memremap_pages(*ms, &p, 0, PageCount(0)).error(), Errno(EINVAL));
  p.owner = nullptr;
  EXPECT_EQ(memremap_pages(*ms, &p, 0, PageCount(512)).error(), Errno(EINVAL)) << "no owner";
  make_private(p);
  p.ops = &kNoMigrate;
  EXPECT_EQ(memremap_pages(*ms, &p, 0, PageCount(512)).error(), Errno(EINVAL))
      << "private memory needs migrate_to_ram";
  DevPagemap coherent;
  coherent.type = MEMORY_DEVICE_COHERENT;
  coherent.ops = &kNoMigrate;
  EXPECT_EQ(memremap_pages(*ms, &coherent, 0, PageCount(512)).error(), Errno(EINVAL))
      << "coherent memory needs an owner";
  coherent.owner = &kOwner;
  auto c = memremap_pages(*ms, &coherent, 1, PageCount(512));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(coherent.nid, 1);
  DevPagemap bad;
  make_private(bad);
  bad.type = static_cast<MemoryType>(0);
  EXPECT_EQ(memremap_pages(*ms, &bad, 0, PageCount(1)).error(), Errno(EINVAL));
  make_private(p);
  EXPECT_EQ(memremap_pages(*ms, &p, 2, PageCount(1)).error(), Errno(EINVAL)) << "no node 2";
  // 6 MiB left: 3 sections; a request for 7 MiB does not fit.
  EXPECT_EQ(memremap_pages(*ms, &p, 0, Bytes::MiB(7).pages()).error(), Errno(ENOMEM));
  memunmap_pages(*ms, &coherent);
  EXPECT_VALID(*ms);
}

TEST_F(Memremap, PagesStartFreeInZoneDeviceAndComeBackThroughPageFree) {
  DevPagemap p;
  make_private(p);
  auto start = memremap_pages(*ms, &p, 0, PageCount(600));
  ASSERT_TRUE(start.ok());
  EXPECT_EQ(*start, ms->device_start_pfn());
  EXPECT_EQ(p.nr, PageCount(600));
  Page* page = ms->pfn_to_page(*start + PageCount(5));
  EXPECT_TRUE(ms->pfn_valid(*start));
  EXPECT_EQ(ms->pfn_to_online_page(*start), nullptr) << "device memory is never online";
  EXPECT_TRUE(is_zone_device_page(page));
  EXPECT_TRUE(is_device_private_page(page));
  EXPECT_EQ(page_pgmap(page), &p);
  EXPECT_EQ(page->refcount(), 0);
  EXPECT_EQ(ms->zone(0, ZONE_DEVICE).present_pages(), 0u) << "never counted as present";
  EXPECT_TRUE(ms->zone(0, ZONE_DEVICE).zone_spans_pfn(*start));

  zone_device_page_init(page);
  EXPECT_EQ(page->refcount(), 1);
  EXPECT_TRUE(folio_test_locked(page_folio(page)));
  EXPECT_EQ(p.ref.count(), 2) << "the registration's and the page's";
  folio_unlock(page_folio(page));
  put_page(page);
  EXPECT_EQ(g_freed.load(), 1);
  EXPECT_EQ(page->refcount(), 0) << "free again, for the driver to hand out";
  EXPECT_EQ(p.ref.count(), 1);
  memunmap_pages(*ms, &p);
  EXPECT_FALSE(ms->pfn_valid(*start));
  EXPECT_VALID(*ms);
}

TEST_F(Memremap, GenericPagesIdleAtOne) {
  DevPagemap p;
  p.type = MEMORY_DEVICE_GENERIC;
  auto start = memremap_pages(*ms, &p, 0, PageCount(4));
  ASSERT_TRUE(start.ok());
  Page* page = ms->pfn_to_page(*start);
  EXPECT_EQ(page->refcount(), 1);
  get_page(page);
  put_page(page);
  put_page(page);  // the last reference: back to idle
  EXPECT_EQ(page->refcount(), 1);
  memunmap_pages(*ms, &p);
}

// get_dev_pagemap's live reference: a lookup holds one; the cached pagemap
// is returned as is when it covers the PFN (only its range is compared),
// otherwise dropped; once teardown starts, lookups fail, and the teardown
// waits for the last page and lookup.
TEST_F(Memremap, ConcurrentTeardownWaitsAndLookupsFail) {
  DevPagemap a, b;
  make_private(a);
  make_private(b);
  const Pfn sa = *memremap_pages(*ms, &a, 0, PageCount(512));
  const Pfn sb = *memremap_pages(*ms, &b, 0, PageCount(512));
  EXPECT_EQ(get_dev_pagemap(*ms, Pfn(0)), nullptr) << "RAM has no pagemap";
  DevPagemap* got = get_dev_pagemap(*ms, sa + PageCount(3));
  ASSERT_EQ(got, &a);
  EXPECT_EQ(a.ref.count(), 2);
  EXPECT_EQ(get_dev_pagemap(*ms, sa + PageCount(4), got), &a) << "cached";
  EXPECT_EQ(a.ref.count(), 2) << "a cache hit takes nothing";
  got = get_dev_pagemap(*ms, sb, got);
  EXPECT_EQ(got, &b);
  EXPECT_EQ(a.ref.count(), 1) << "the miss dropped the cached reference";
  put_dev_pagemap(got);
  put_dev_pagemap(nullptr);

  // A page in use and a lookup hold b up.
  Page* page = ms->pfn_to_page(sb);
  zone_device_page_init(page);
  folio_unlock(page_folio(page));
  DevPagemap* held = get_dev_pagemap(*ms, sb + PageCount(1));
  ASSERT_EQ(held, &b);
  std::atomic<bool> done{false};
  std::thread teardown([&] {
    memunmap_pages(*ms, &b);
    done = true;
  });
  while (!b.ref.dying())
    std::this_thread::yield();
  EXPECT_EQ(get_dev_pagemap(*ms, sb + PageCount(2)), nullptr) << "no new references while dying";
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_FALSE(done.load()) << "the teardown must wait for the page and the lookup";
  put_dev_pagemap(held);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_FALSE(done.load()) << "the page still holds it";
  put_page(page);
  teardown.join();
  EXPECT_TRUE(done.load());
  EXPECT_EQ(b.ref.count(), 0);
  memunmap_pages(*ms, &a);
  EXPECT_VALID(*ms);
}

}  // namespace
}  // namespace pinmm
