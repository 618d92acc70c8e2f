#include "pinmm/report/proc.h"

#include <gtest/gtest.h>

#include "pinmm/phys/page_alloc.h"
#include "testing/machines.h"

namespace pinmm {
namespace {

using testing::boot;

MachineConfig small_machine() {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(16), Bytes::MiB(8));
  c.cma.push_back({"reserved", Bytes::MiB(4), 0});
  return c;
}

TEST(Proc, BuddyinfoLayout) {
  auto ms = boot(small_machine());
  EXPECT_EQ(proc_buddyinfo(*ms),
            "Node 0, zone   Normal      0      0      0      0      0      0      0      0      0  "
            "    0      2 \n"
            "Node 0, zone  Movable      0      0      0      0      0      0      0      0      0  "
            "    0      2 \n");
  Page* p = alloc_pages(*ms, GFP_KERNEL, Order(0));
  const std::string first_line =
      "Node 0, zone   Normal      1      1      1      1      1      1      1      1      1      1 "
      "     1 \n";
  EXPECT_EQ(proc_buddyinfo(*ms).substr(0, first_line.size()), first_line);
  free_page(p);
}

TEST(Proc, PagetypeinfoLayout) {
  auto ms = boot(small_machine());
  const std::string text = proc_pagetypeinfo(*ms);
  const std::string expected_head =
      "Page block order: 9\n"
      "Pages per block:  512\n"
      "\n"
      "Free pages count per migrate type at order       0      1      2      3      4      5      "
      "6      7      8      9     10 \n"
      "Node    0, zone   Normal, type    Unmovable      0      0      0      0      0      0      "
      "0      0      0      0      0 \n"
      "Node    0, zone   Normal, type      Movable      0      0      0      0      0      0      "
      "0      0      0      0      1 \n"
      "Node    0, zone   Normal, type  Reclaimable      0      0      0      0      0      0      "
      "0      0      0      0      0 \n"
      "Node    0, zone   Normal, type   HighAtomic      0      0      0      0      0      0      "
      "0      0      0      0      0 \n"
      "Node    0, zone   Normal, type          CMA      0      0      0      0      0      0      "
      "0      0      0      0      1 \n"
      "Node    0, zone   Normal, type      Isolate      0      0      0      0      0      0      "
      "0      0      0      0      0 \n";
  EXPECT_EQ(text.substr(0, expected_head.size()), expected_head);
  const std::string expected_blocks =
      "\nNumber of blocks type     Unmovable      Movable  Reclaimable   HighAtomic          CMA   "
      "   Isolate \n"
      "Node 0, zone   Normal            0            2            0            0            2      "
      "      0 \n"
      "Node 0, zone  Movable            0            4            0            0            0      "
      "      0 \n";
  EXPECT_NE(text.find(expected_blocks), std::string::npos) << text;
}

// Layouts checked against Linux 6.12.117 (oracle: tools/oracle/proc_formats.c):
// e.g. "  pages free     3712", "        protection: (0, 2990, 2990, 3897, 3897)",
// "  vm stats threshold: 4", "  start_pfn:           1", and an unpopulated
// zone ending right after its protection line.
TEST(Proc, ZoneinfoLayout) {
  auto ms = boot(small_machine());
  const std::string text = proc_zoneinfo(*ms);
  EXPECT_EQ(text.rfind("Node 0, zone   Normal\n  per-node stats\n      nr_inactive_anon 0\n", 0),
            0u)
      << text;
  EXPECT_NE(text.find("\n  pages free     2048\n        boost    0\n        min      0\n"),
            std::string::npos);
  EXPECT_NE(
      text.find(
          "\n        cma      1024\n        protection: (0, 64, 64)\n      nr_free_pages 2048\n"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("\n      nr_free_cma  1024\n"), std::string::npos);
  EXPECT_NE(text.find("\n  pagesets\n    cpu: 0\n              count: 0\n              high:  0\n"
                      "              batch: 1\n  vm stats threshold: 0\n    cpu: 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("\n  node_unreclaimable:  0\n  start_pfn:           2048\n"),
            std::string::npos);
  // Movable is not the node's first populated zone: no per-node stats.
  EXPECT_EQ(text.find("Node 0, zone  Movable\n  per-node"), std::string::npos);
  // An unpopulated zone ends after its protection line.
  EXPECT_NE(text.find("Node 0, zone   Device\n  pages free     0\n"), std::string::npos);
  EXPECT_TRUE(text.ends_with("        protection: (0, 0, 0)\n")) << text;
}

TEST(Proc, VmstatLayout) {
  auto ms = boot(small_machine());
  const std::string text = proc_vmstat(*ms);
  EXPECT_EQ(text.rfind("nr_free_pages 4096\nnr_zone_inactive_anon 0\n", 0), 0u);
  EXPECT_NE(text.find("\nnr_free_cma 1024\n"), std::string::npos);
  EXPECT_NE(text.find("\nnr_foll_pin_acquired 0\nnr_foll_pin_released 0\n"), std::string::npos);
  EXPECT_NE(text.find("\npgfree 4096\n"), std::string::npos);
  EXPECT_TRUE(text.ends_with("thp_zero_page_alloc_failed 0\n"));
}

}  // namespace
}  // namespace pinmm
