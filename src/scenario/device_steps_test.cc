// Pin and device steps (device_steps.cc): pins and their owners, RDMA
// registrations and DMA, O_DIRECT and HMM mirrors, with the data oracle
// following what the devices write.
#include <gtest/gtest.h>

#include "testing/scenario.h"

namespace pinmm {
namespace {

using testing::failures;
using testing::parse_error;
using testing::run_yaml;

// Half the memory is ZONE_MOVABLE, where user pages go first.
constexpr const char* kMachine =
    "scenario: devices\n"                                                           // 1
    "machine: {memory: 512MiB, movable: 256MiB, block_size: 128MiB, thp: never,\n"  // 2
    "          device_space: 128MiB}\n"                                             // 3
    "processes: [{name: p, mappings: [{name: m, size: 64KiB}]}]\n"                  // 4
    "devices:\n"                                                                    // 5
    "  - {name: nic, type: rdma_nic}\n"                                             // 6
    "  - {name: disk, type: direct_io}\n"                                           // 7
    "  - {name: mirror, type: dmirror}\n"                                           // 8
    "  - {name: gpu, type: gpu, hot_threshold: 1000}\n"                             // 9
    "steps:\n"                                                                      // 10
    "  - write: {mapping: p.m}\n";                                                  // 11

int64_t change(const StepOutcome& o, const std::string& counter) {
  for (const CounterChange& c : o.counters) {
    if (c.name == counter) return c.after - c.before;
  }
  return 0;
}

// A short-term pin leaves the pages in ZONE_MOVABLE; a long-term one
// migrates them out first (FOLL_LONGTERM's migrate-before-pin). Both count
// in nr_foll_pin_acquired; unpin releases them, and a second unpin of the
// same handle finds nothing.
TEST(DeviceSteps, PinsShortAndLongTerm) {
  const RunReport r = run_yaml(std::string(kMachine) +
                               "  - pin: {mapping: p.m, size: 32KiB, as: short}\n"
                               "  - pin: {mapping: p.m, offset: 32KiB, as: long, longterm: true}\n"
                               "  - unpin: {pin: short}\n"
                               "  - unpin: {pin: short}\n"
                               "    expect: ENOENT\n"
                               "expect: {no_data_lost: true, no_pages_leaked: true}\n");
  EXPECT_TRUE(r.passed) << failures(r);
  ASSERT_EQ(r.steps.size(), 5u);
  EXPECT_EQ(r.steps[1].detail, "8 pages pinned (8 in ZONE_MOVABLE)");
  EXPECT_EQ(change(r.steps[1], "nr_foll_pin_acquired"), 8);
  EXPECT_EQ(r.steps[2].detail, "8 pages pinned long-term (0 in ZONE_MOVABLE)");
  EXPECT_EQ(change(r.steps[2], "pgmigrate_success"), 8);
  EXPECT_EQ(r.steps[3].value, 8);
  EXPECT_EQ(change(r.steps[3], "nr_foll_pin_released"), 8);
  EXPECT_EQ(r.steps[4].detail, "not pinned (already unpinned)");
}

// A pin that outlives the run is not a leak when the scenario still holds
// its handle: the runner releases it at teardown.
TEST(DeviceSteps, APinHeldToTheEndIsAccountedAndReleased) {
  const RunReport r = run_yaml(std::string(kMachine) +
                               "  - pin: {mapping: p.m, as: kept, device: nic, label: vfio}\n"
                               "expect: {no_pages_leaked: true}\n");
  EXPECT_TRUE(r.passed) << failures(r);
  bool accounted = false;
  for (const ExpectationOutcome& e : r.expectations) {
    if (e.what == "no pins leaked") {
      accounted = e.ok;
      EXPECT_EQ(e.detail, "16 pins held by the scenario's pins and registrations, 16 recorded");
    }
  }
  EXPECT_TRUE(accounted);
}

// ib_umem_get pins long-term; DMA writes through the pins land in the
// process's pages (the CPU reads them back), and deregistration unpins.
TEST(DeviceSteps, RegisterDmaDeregister) {
  const RunReport r = run_yaml(std::string(kMachine) +
                               "  - register: {device: nic, mapping: p.m, size: 16KiB, as: mr}\n"
                               "  - dma: {region: mr, rounds: 3}\n"
                               "  - read: {mapping: p.m}\n"
                               "  - deregister: {region: mr}\n"
                               "  - dma: {region: mr}\n"
                               "    expect: ENOENT\n"
                               "expect: {no_data_lost: true, no_pages_leaked: true}\n");
  EXPECT_TRUE(r.passed) << failures(r);
  EXPECT_EQ(r.steps[1].detail, "nic registered 4 pages as 'mr' (long-term pinned)");
  EXPECT_EQ(r.steps[2].value, 12);
  EXPECT_EQ(r.steps[2].detail, "3 rounds of DMA over 4 pages");
  EXPECT_EQ(r.steps[4].value, 4);
  EXPECT_EQ(change(r.steps[4], "nr_foll_pin_released"), 4);
}

// O_DIRECT read fills memory (the CPU then reads what the disk wrote);
// O_DIRECT write checks what leaves memory.
TEST(DeviceSteps, DirectIoBothWays) {
  const RunReport r = run_yaml(std::string(kMachine) +
                               "  - direct_io: {device: disk, mapping: p.m, size: 8KiB}\n"
                               "  - read: {mapping: p.m}\n"
                               "  - direct_io: {device: disk, mapping: p.m, direction: write}\n"
                               "expect: {no_data_lost: true, no_pages_leaked: true}\n");
  EXPECT_TRUE(r.passed) << failures(r);
  EXPECT_EQ(r.steps[1].value, 2);
  EXPECT_EQ(r.steps[1].detail, "read 8192 bytes");
  EXPECT_EQ(r.steps[3].value, 16);
  EXPECT_EQ(r.steps[3].detail, "wrote 65536 bytes");
}

// A dmirror migrates the pages to device-private memory (cpages: 16);
// the CPU faults them back on its next access, data intact.
TEST(DeviceSteps, DmirrorMigratesAndTheCpuFaultsBack) {
  const RunReport r = run_yaml(std::string(kMachine) +
                               "  - mirror: {device: mirror, mapping: p.m, op: migrate_to_device}\n"
                               "  - mirror: {device: mirror, mapping: p.m, op: read}\n"
                               "  - read: {mapping: p.m}\n"
                               "  - mirror: {device: mirror, mapping: p.m, op: write}\n"
                               "  - read: {mapping: p.m}\n"
                               "expect: {no_data_lost: true, no_pages_leaked: true}\n");
  EXPECT_TRUE(r.passed) << failures(r);
  EXPECT_EQ(r.steps[1].value, 16);
  EXPECT_EQ(r.steps[1].detail, "mirror migrate_to_device: 16 pages");
}

// A gpu below its hot threshold reads and writes through its mirror, with
// nothing resident (the value).
TEST(DeviceSteps, GpuReadsAndWritesThroughItsMirror) {
  const RunReport r = run_yaml(std::string(kMachine) +
                               "  - mirror: {device: gpu, mapping: p.m, op: read}\n"
                               "  - mirror: {device: gpu, mapping: p.m, op: write}\n"
                               "  - read: {mapping: p.m}\n"
                               "  - exit: {process: p}\n"
                               "expect: {no_pages_leaked: true}\n");
  EXPECT_TRUE(r.passed) << failures(r);
  EXPECT_EQ(r.steps[1].value, 0);
  EXPECT_EQ(r.steps[1].detail, "gpu read: 16 pages");
}

TEST(DeviceSteps, ParseChecksDevicesAndHandles) {
  const std::string h = kMachine;
  EXPECT_EQ(parse_error(h + "  - register: {device: disk, mapping: p.m, as: r}\n"),
            "12:24: device 'disk' is a direct_io, which cannot do this");
  EXPECT_EQ(parse_error(h + "  - pin: {mapping: p.m, as: x, device: nope}\n"),
            "12:40: no device 'nope'");
  EXPECT_EQ(parse_error(h + "  - pin: {mapping: p.m, as: x}\n  - pin: {mapping: p.m, as: x}\n"),
            "13:29: 'x' is already defined");
  EXPECT_EQ(parse_error(h + "  - pin: {mapping: p.m, as: x}\n  - deregister: {region: x}\n"),
            "13:26: 'x' is a pin, not a region");
  EXPECT_EQ(parse_error(h + "  - mirror: {device: gpu, mapping: p.m, op: snapshot}\n"),
            "12:45: a gpu only reads and writes (it migrates on its own)");
  EXPECT_EQ(parse_error(h + "  - dma: {region: r}\n"),
            "12:19: no region 'r' defined before this step");
  EXPECT_EQ(parse_error(h + "  - direct_io: {device: disk, mapping: p.m, direction: up}\n"),
            "12:56: 'direction' must be one of read, write; not 'up'");
}

}  // namespace
}  // namespace pinmm
