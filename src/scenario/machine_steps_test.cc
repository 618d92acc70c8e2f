// Machine steps (machine_steps.cc): offline and online, hot_add, CMA and
// kernel allocations, snapshots.
#include <gtest/gtest.h>

#include "testing/scenario.h"

namespace pinmm {
namespace {

using testing::failures;
using testing::parse_error;
using testing::run_yaml;

// Four 128 MiB blocks: 0 and 1 ZONE_NORMAL, 2 and 3 ZONE_MOVABLE; room
// for one hot-added block; an 8 MiB CMA area.
constexpr const char* kMachine =
    "scenario: machine\n"                                                           // 1
    "machine: {memory: 512MiB, movable: 256MiB, block_size: 128MiB, thp: never,\n"  // 2
    "          hotplug_space: 128MiB, cma: [{name: c, size: 8MiB}]}\n"              // 3
    "processes: [{name: p, mappings: [{name: m, size: 64KiB}]}]\n"                  // 4
    "steps:\n";                                                                     // 5

// Offlining the movable blocks migrates what they hold and leaves them
// offline; online brings them back. The process's 16 pages move twice:
// out of block 2 into block 3, still online then, and out of block 3.
TEST(MachineSteps, OfflineAndOnlineTheMovableZone) {
  const RunReport r =
      run_yaml(std::string(kMachine) +
               "  - write: {mapping: p.m}\n"
               "  - offline: {blocks: movable}\n"
               "    expect: {value: 2}\n"
               "  - read: {mapping: p.m}\n"
               "  - online: {blocks: offline}\n"
               "    expect: {value: 2}\n"
               "  - offline: {blocks: movable, last: 1}\n"
               "    expect: {value: 1}\n"
               "expect:\n"
               "  no_data_lost: true\n"
               "  no_pages_leaked: true\n"
               "  blocks: [{blocks: [3], state: offline}, {blocks: [2], state: online}]\n");
  EXPECT_TRUE(r.passed) << failures(r);
  EXPECT_EQ(r.steps[1].detail, "2 blocks offline, 32 pages migrated");
  EXPECT_EQ(r.steps[3].detail, "2 blocks online_movable");
}

// A block id that does not exist is ENOENT (there is no memory9/state
// to write); a zone with no blocks to online is nothing to do.
TEST(MachineSteps, BlockSelectionsThatNameNothing) {
  const RunReport r = run_yaml(std::string(kMachine) +
                               "  - offline: {blocks: [9]}\n"
                               "    expect: ENOENT\n"
                               "  - online: {blocks: offline}\n"
                               "    expect: {value: 0}\n");
  EXPECT_TRUE(r.passed) << failures(r);
  EXPECT_EQ(r.steps[0].detail, "memory9: ENOENT (0 blocks offlined before it)");
  EXPECT_EQ(r.steps[1].detail, "no offline blocks");
}

// With the in-place policy a long-term pin stays in ZONE_MOVABLE and
// offlining gives up after its retries with EBUSY, naming the pinner.
TEST(MachineSteps, AnInPlaceLongtermPinBlocksOffline) {
  const RunReport r = run_yaml(
      "scenario: blocked\n"
      "machine: {memory: 512MiB, movable: 256MiB, block_size: 128MiB, thp: never,\n"
      "          longterm_pin_policy: in-place}\n"
      "processes: [{name: p, mappings: [{name: m, size: 64KiB}]}]\n"
      "steps:\n"
      "  - pin: {mapping: p.m, as: x, longterm: true, label: vfio}\n"
      "  - offline: {blocks: movable, retries: 3}\n"
      "    expect: EBUSY\n"
      "expect: {no_pages_leaked: true}\n");
  EXPECT_TRUE(r.passed) << failures(r);
  ASSERT_FALSE(r.steps[1].blockers.empty());
  bool named = false;
  for (const std::string& line : r.steps[1].blockers)
    named |= line.find("vfio") != std::string::npos;
  EXPECT_TRUE(named) << r.steps[1].blockers[0];
}

// hot_add's value is the pages added; the new block comes up offline
// (memhp_default_state) and onlines like any other. A DIMM beyond the
// hot-plug space is E2BIG, as register_memory_resource answers a range
// mhp_range_allowed() refuses.
TEST(MachineSteps, HotAddThenOnline) {
  const RunReport r = run_yaml(std::string(kMachine) +
                               "  - hot_add: {size: 128MiB}\n"
                               "    expect: {value: 32768}\n"
                               "  - online: {blocks: offline}\n"
                               "    expect: {value: 1}\n"
                               "  - hot_add: {size: 128MiB}\n"
                               "    expect: E2BIG\n"
                               "expect: {blocks: [{blocks: [4], state: online}]}\n");
  EXPECT_TRUE(r.passed) << failures(r);
  EXPECT_EQ(r.steps[0].detail.substr(0, 23), "128MiB added at pfn 0x2");
}

// cma_alloc of the whole area (2048 pages) and of part of it; releasing
// a handle twice finds nothing the second time. (The built-in cma-vs-pins
// has pins blocking it.)
TEST(MachineSteps, CmaAllocAndRelease) {
  const RunReport r = run_yaml(std::string(kMachine) +
                               "  - cma_alloc: {area: c, count: all, as: all}\n"
                               "    expect: {value: 2048}\n"
                               "  - cma_release: {alloc: all}\n"
                               "    expect: {value: 2048}\n"
                               "  - cma_alloc: {area: c, count: 16, as: some}\n"
                               "  - cma_release: {alloc: some}\n"
                               "  - cma_release: {alloc: some}\n"
                               "    expect: ENOENT\n"
                               "expect: {no_pages_leaked: true, counters: {nr_free_cma: 2048}}\n");
  EXPECT_TRUE(r.passed) << failures(r);
  EXPECT_EQ(r.steps[4].detail, "not allocated");
}

// kernel_alloc takes unmovable pages (a power of two); kernel_free gives
// them back.
TEST(MachineSteps, KernelAllocAndFree) {
  const RunReport r = run_yaml(std::string(kMachine) +
                               "  - kernel_alloc: {size: 2MiB, as: k, label: net-rx}\n"
                               "    expect: {value: 512}\n"
                               "  - snapshot: {label: with k}\n"
                               "  - kernel_free: {alloc: k}\n"
                               "  - snapshot: {}\n"
                               "expect: {no_pages_leaked: true}\n");
  EXPECT_TRUE(r.passed) << failures(r);
  EXPECT_NE(r.steps[0].detail.find("512 unmovable pages at pfn"), std::string::npos);
  ASSERT_EQ(r.snapshots.size(), 2u);
  EXPECT_EQ(r.snapshots[0].label, "with k");
  EXPECT_EQ(r.snapshots[0].after_step, "2");
  EXPECT_EQ(r.snapshots[1].label, "snapshot 1");  // the first one without a label
  EXPECT_GE(r.snapshots[0].map.count(PageblockState::kUnmovable),
            r.snapshots[1].map.count(PageblockState::kUnmovable) + 1);
}

TEST(MachineSteps, ParseChecksTheMachine) {
  const std::string h = kMachine;
  EXPECT_EQ(parse_error(h + "  - cma_alloc: {area: d, as: x}\n"), "6:23: no CMA area 'd'");
  EXPECT_EQ(parse_error(h + "  - cma_alloc: {area: c, count: 0, as: x}\n"),
            "6:33: 'count' is a number of pages, or 'all'");
  EXPECT_EQ(parse_error(h + "  - kernel_alloc: {size: 12KiB, as: k}\n"),
            "6:26: a kernel allocation is a power of two between 4KiB and 4MiB");
  EXPECT_EQ(parse_error(h + "  - offline: {blocks: [1], last: 1}\n"),
            "6:34: 'last' applies to a zone's blocks, not a list");
  EXPECT_EQ(parse_error(h + "  - online: {blocks: movable, zone: online_dma}\n"),
            "6:37: 'zone' must be one of online, online_movable, online_kernel; not 'online_dma'");
  EXPECT_EQ(parse_error(h + "  - hot_add: {size: 128MiB, node: 1}\n"),
            "6:35: 'node' must be between 0 and 0");
}

}  // namespace
}  // namespace pinmm
