#include "pinmm/base/counters.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace pinmm {
namespace {

TEST(Counters, NamesFollowProcVmstat) {
  EXPECT_STREQ(vmstat_name(NR_FREE_PAGES), "nr_free_pages");
  EXPECT_STREQ(vmstat_name(NR_FREE_CMA_PAGES), "nr_free_cma");
  EXPECT_STREQ(vmstat_name(NUMA_INTERLEAVE_HIT), "numa_interleave");
  EXPECT_STREQ(vmstat_name(NR_ANON_MAPPED), "nr_anon_pages");
  EXPECT_STREQ(vmstat_name(NR_FILE_MAPPED), "nr_mapped");
  EXPECT_STREQ(vmstat_name(NR_FOLL_PIN_ACQUIRED), "nr_foll_pin_acquired");
  EXPECT_STREQ(vmstat_name(NR_FOLL_PIN_RELEASED), "nr_foll_pin_released");
  EXPECT_STREQ(vmstat_name(NR_PAGETABLE), "nr_page_table_pages");
  EXPECT_STREQ(vmstat_name(NR_ANON_THPS), "nr_anon_transparent_hugepages");
  EXPECT_STREQ(vmstat_name(PGMIGRATE_SUCCESS), "pgmigrate_success");
  EXPECT_STREQ(vmstat_name(HTLB_BUDDY_PGALLOC), "htlb_buddy_alloc_success");
  EXPECT_STREQ(vmstat_name(CMA_ALLOC_FAIL), "cma_alloc_fail");
}

TEST(Counters, SnapshotLinesAreUniqueAndInKernelOrder) {
  VmStat s;
  s.zone[NR_FREE_PAGES] = 10;
  s.node[NR_ANON_THPS] = 1024;  // pages; printed in THP units
  s.events[PGFREE] = 3;
  const auto lines = s.lines(512);
  std::set<std::string> names;
  for (const auto& [n, v] : lines)
    names.insert(std::string(n));
  EXPECT_EQ(names.size(), lines.size());
  EXPECT_EQ(lines.front().first, "nr_free_pages");
  EXPECT_EQ(lines.front().second, 10);
  EXPECT_EQ(s.by_name("nr_anon_transparent_hugepages", 512), 2);
  EXPECT_EQ(s.by_name("pgfree", 512), 3);
  EXPECT_FALSE(s.by_name("no_such_counter", 512));
  EXPECT_EQ(s[PGFREE], 3);
}

TEST(Counters, AtomicCountersAddAndSnapshot) {
  ZoneStats z;
  z.add(NR_FREE_PAGES, 512);
  z.add(NR_FREE_PAGES, -12);
  z.inc(NR_MLOCK);
  EXPECT_EQ(z.get(NR_FREE_PAGES), 500);
  const auto snap = z.snapshot();
  EXPECT_EQ(snap[NR_MLOCK], 1);
  VmStat a, b;
  a.zone = snap;
  b.zone = snap;
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace pinmm
