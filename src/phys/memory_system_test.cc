#include "pinmm/phys/memory_system.h"

#include <gtest/gtest.h>

#include <cmath>

#include "pinmm/phys/hugetlb.h"
#include "testing/machines.h"

namespace pinmm {
namespace {

using testing::boot;

// The machine of the Foundation issue: 4 GiB, 2 GiB movable, 256 MiB CMA,
// one node, Debian's THP default. Expected values follow the kernel's
// formulas by hand (mm/page_alloc.c, mm/khugepaged.c):
//   memmap      1048576 pages * 64 B / 4 KiB                 = 16384 pages reserved
//   Normal      present 524288, managed 524288 - 16384       = 507904, cma 65536
//   min_free    sqrt(507904 * 4 * 16) = 5701 KiB; THP raises it to
//               (512*1*2 + 512*1*9) pages = 5632 pages       = 22528 KiB
//   Normal      min 5632, low/high/promo + max(5632/4, 507904/1000) = 7040/8448/9856
//   Movable     tmp = 5632 * 524288 / 507904 = 5813; min clamp(512, 32, 128) = 128;
//               low/high/promo + max(5813/4, 524) = 1581/3034/4487
//   protection  Normal against Movable: 524288 / 32          = 16384
MachineConfig foundation_machine() {
  MachineConfig c = MachineConfig::uniform(Bytes::GiB(4), 1, Bytes::GiB(2));
  c.cma.push_back({"reserved", Bytes::MiB(256), 0});
  return c;
}

TEST(MemorySystem, FourGigMachineLayoutMatchesLinuxFormulas) {
  auto ms = boot(foundation_machine());
  ASSERT_NE(ms, nullptr);
  const Zone& normal = ms->zone(0, ZONE_NORMAL);
  const Zone& movable = ms->zone(0, ZONE_MOVABLE);
  EXPECT_EQ(normal.zone_start_pfn(), Pfn(0));
  EXPECT_EQ(normal.spanned_pages(), 524288u);
  EXPECT_EQ(normal.present_pages(), 524288u);
  EXPECT_EQ(normal.managed_pages(), 507904u);
  EXPECT_EQ(normal.cma_pages(), 65536u);
  EXPECT_EQ(movable.zone_start_pfn(), Pfn(524288));
  EXPECT_EQ(movable.present_pages(), 524288u);
  EXPECT_EQ(movable.managed_pages(), 524288u);
  EXPECT_EQ(ms->min_free_kbytes(), 22528u);
  EXPECT_EQ(normal.wmark(WMARK_MIN), 5632u);
  EXPECT_EQ(normal.wmark(WMARK_LOW), 7040u);
  EXPECT_EQ(normal.wmark(WMARK_HIGH), 8448u);
  EXPECT_EQ(normal.wmark(WMARK_PROMO), 9856u);
  EXPECT_EQ(movable.wmark(WMARK_MIN), 128u);
  EXPECT_EQ(movable.wmark(WMARK_LOW), 1581u);
  EXPECT_EQ(movable.wmark(WMARK_HIGH), 3034u);
  EXPECT_EQ(movable.wmark(WMARK_PROMO), 4487u);
  EXPECT_EQ(normal.lowmem_reserve(ZONE_MOVABLE), 16384u);
  EXPECT_EQ(normal.lowmem_reserve(ZONE_DEVICE), 16384u);
  EXPECT_EQ(movable.lowmem_reserve(ZONE_DEVICE), 0u);
  const VmStat s = ms->vmstat();
  EXPECT_EQ(s[NR_FREE_PAGES], 507904 + 524288);
  EXPECT_EQ(s[NR_FREE_CMA_PAGES], 65536);
  EXPECT_EQ(s[NR_MEMMAP_BOOT_PAGES], 16384);
  EXPECT_EQ(ms->memory_blocks().size(), 32u);  // 128 MiB blocks
  EXPECT_EQ(ms->memory_blocks()[15].zone, ZONE_NORMAL);
  EXPECT_EQ(ms->memory_blocks()[16].zone, ZONE_MOVABLE);
  EXPECT_VALID(*ms);
}

// THP's recommended min_free_kbytes scales with the kernel zones: Linux 6.12
// (oracle: tools/oracle/proc_formats.c, 4 GiB, movablecore=2G) reported
// 45056 KiB with two populated kernel zones (DMA and DMA32):
// (512*2*2 + 512*2*9) pages * 4. Two nodes give pinmm two kernel zones.
TEST(MemorySystem, ThpMinFreeKbytesScalesWithKernelZones) {
  auto ms = boot(MachineConfig::uniform(Bytes::GiB(8), 2, Bytes(0)));
  EXPECT_EQ(ms->min_free_kbytes(), 45056u);
  MachineConfig never = MachineConfig::uniform(Bytes::GiB(8), 2, Bytes(0));
  never.thp = ThpMode::kNever;
  // Without THP: sqrt(lowmem_kb * 16) over both nodes' managed kernel pages.
  auto plain = boot(never);
  const uint64_t lowmem_kb =
      (ms->zone(0, ZONE_NORMAL).managed_pages() + ms->zone(1, ZONE_NORMAL).managed_pages()) * 4;
  EXPECT_EQ(plain->min_free_kbytes(),
            static_cast<uint64_t>(std::sqrt(static_cast<double>(lowmem_kb * 16))));
}

TEST(MemorySystem, MovablecoreSpreadsKernelMemoryEvenly) {
  const MachineConfig c = MachineConfig::uniform(Bytes::GiB(4), 2, Bytes::GiB(1));
  ASSERT_EQ(c.nodes.size(), 2u);
  for (const NodeConfig& n : c.nodes) {
    EXPECT_EQ(n.memory, Bytes::GiB(2));
    EXPECT_EQ(n.movable, Bytes::MiB(512));  // kernelcore 3 GiB / 2 = 1.5 GiB per node
  }
  auto ms = boot(c);
  EXPECT_EQ(ms->zone(1, ZONE_NORMAL).zone_start_pfn(), Pfn(524288));
  EXPECT_EQ(ms->zone(1, ZONE_MOVABLE).zone_start_pfn(), Pfn(524288 + 393216));
  EXPECT_EQ(ms->node(1).zonelist(true).size(), 4u);
  EXPECT_EQ(ms->node(1).zonelist(true)[0], &ms->zone(1, ZONE_MOVABLE));
  EXPECT_EQ(ms->node(1).zonelist(true)[2], &ms->zone(0, ZONE_MOVABLE));
  EXPECT_EQ(ms->cpu_to_node(0), 0);
  EXPECT_EQ(ms->cpu_to_node(1), 1);
  EXPECT_VALID(*ms);
}

TEST(MemorySystem, ManyMachinesCoexist) {
  auto a = boot(MachineConfig::tiny(Bytes::MiB(4)));
  auto b = boot(MachineConfig::tiny(Bytes::MiB(8)));
  EXPECT_EQ(page_zone(a->pfn_to_page(Pfn(5)))->managed_pages(), 1024u);
  EXPECT_EQ(page_zone(b->pfn_to_page(Pfn(5)))->managed_pages(), 2048u);
  EXPECT_EQ(&page_memory_system(b->pfn_to_page(Pfn(5))), b.get());
}

TEST(MemorySystem, ConfigCheckNamesEveryProblem) {
  MachineConfig c;
  EXPECT_EQ(c.check(), std::vector<std::string>{"the machine needs at least one node"});

  c = MachineConfig::tiny(Bytes::MiB(5));
  auto errs = c.check();
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0], "node 0 memory 5MiB is not a multiple of the memory block size 2MiB");

  c = MachineConfig::tiny(Bytes::MiB(8), Bytes::MiB(8));
  errs = c.check();
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0], "node 0 needs kernel (ZONE_NORMAL) memory: it cannot be all movable");

  c = MachineConfig::tiny(Bytes::MiB(8));
  c.cma.push_back({"a", Bytes::MiB(16), 0});
  c.cma.push_back({"a", Bytes::MiB(3), 2});
  errs = c.check();
  EXPECT_EQ(errs.size(), 4u);  // duplicate name, bad size, no node 2, does not fit
  EXPECT_EQ(MemorySystem::create(c).error(), Errno(EINVAL));

  c = MachineConfig::tiny(Bytes::MiB(8));
  c.section_size = Bytes::MiB(3);
  c.hugepages.push_back({Bytes::MiB(4), 1, std::nullopt});
  EXPECT_EQ(c.check().size(), 3u);  // section size, block vs section, hugepage size
}

TEST(MemorySystem, HugetlbBootPools) {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(16));
  c.hugepages.push_back({Bytes::MiB(2), 3, std::nullopt});
  auto ms = boot(c);
  const HstateCounts h = ms->hugetlb().counts(HugetlbPools::kPmdIndex);
  EXPECT_EQ(h.nr_huge_pages, 3u);
  EXPECT_EQ(h.free_huge_pages, 3u);
  EXPECT_EQ(ms->vmstat()[HTLB_BUDDY_PGALLOC], 3);
  EXPECT_EQ(ms->zone(0, ZONE_NORMAL).stats().get(NR_FREE_PAGES), 4096 - 3 * 512);
  EXPECT_VALID(*ms);

  Folio* f = ms->hugetlb().dequeue_hugetlb_folio_nodemask(
      ms->hugetlb().hstate(HugetlbPools::kPmdIndex), 0);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(folio_ref_count(f), 1);
  EXPECT_TRUE(folio_test_hugetlb(f));
  EXPECT_EQ(folio_order(f), 9u);
  EXPECT_EQ(ms->hugetlb().counts(HugetlbPools::kPmdIndex).free_huge_pages, 2u);
  EXPECT_VALID(*ms);
  folio_put(f);  // back to the pool, not to the buddy allocator
  EXPECT_EQ(ms->hugetlb().counts(HugetlbPools::kPmdIndex).free_huge_pages, 3u);
  EXPECT_EQ(ms->zone(0, ZONE_NORMAL).stats().get(NR_FREE_PAGES), 4096 - 3 * 512);
  EXPECT_VALID(*ms);
}

TEST(MemorySystem, HugetlbPoolSmallerThanAskedWhenMemoryRunsOut) {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(8));
  c.hugepages.push_back({Bytes::MiB(2), 10, std::nullopt});
  auto ms = boot(c);
  // Boot-time pools are filled before userspace sets vm.min_free_kbytes, so
  // the computed minimum (128 KiB = 32 pages) still guards the last 2 MiB:
  // 3 of 4 possible pages. The pool stops growing at the first page no
  // node can give (alloc_pool_huge_folio tries each node once, then the
  // boot loop gives up): one failed attempt, not one per missing page.
  EXPECT_EQ(ms->hugetlb().counts(HugetlbPools::kPmdIndex).nr_huge_pages, 3u);
  EXPECT_EQ(ms->vmstat()[HTLB_BUDDY_PGALLOC_FAIL], 1);
  EXPECT_EQ(ms->min_free_kbytes(), 0u);  // the user's setting applies afterwards
  EXPECT_VALID(*ms);
}

// A count no machine can hold (what `--hugepages 2MiB:-1` used to become)
// fills every node and stops: boot returns instead of trying 2^64 times.
TEST(MemorySystem, AHugePoolCountStopsWhenEveryNodeIsFull) {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(8));
  c.nodes.push_back({Bytes::MiB(8), Bytes(0)});
  c.hugepages.push_back({Bytes::MiB(2), UINT64_MAX, std::nullopt});
  auto ms = boot(c);
  ASSERT_NE(ms, nullptr);
  EXPECT_EQ(ms->hugetlb().counts(HugetlbPools::kPmdIndex).nr_huge_pages, 6u);
  EXPECT_EQ(ms->vmstat()[HTLB_BUDDY_PGALLOC_FAIL], 2) << "one try on each node, then stop";
  EXPECT_VALID(*ms);
}

TEST(MemorySystem, GiganticPagesComeFromBootMemoryBelowTheMemmap) {
  MachineConfig c = MachineConfig::uniform(Bytes::GiB(4), 1, Bytes::GiB(1));
  c.hugepages.push_back({Bytes::GiB(1), 1, std::nullopt});
  auto ms = boot(c);
  const HstateCounts h = ms->hugetlb().counts(HugetlbPools::kPudIndex);
  EXPECT_EQ(h.nr_huge_pages, 1u);
  Folio* f = ms->hugetlb().dequeue_hugetlb_folio_nodemask(
      ms->hugetlb().hstate(HugetlbPools::kPudIndex), NUMA_NO_NODE);
  ASSERT_NE(f, nullptr);
  // Kernel part: 3 GiB; memmap 64 MiB at its top; the 1 GiB page is the
  // highest 1 GiB-aligned range below that: [1 GiB, 2 GiB).
  EXPECT_EQ(folio_pfn(f), Pfn(262144));
  EXPECT_EQ(folio_order(f), 18u);
  EXPECT_EQ(ms->zone(0, ZONE_NORMAL).managed_pages(),
            786432u - 16384u);  // hugetlb pages are managed
  folio_put(f);
  EXPECT_VALID(*ms);
}

}  // namespace
}  // namespace pinmm
