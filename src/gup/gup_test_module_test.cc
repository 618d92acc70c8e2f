// The gup_test module (KERNEL-SPEC 10.1): the benchmark loop's chunking and
// truncation, each command's entry point and release, the dump test, and the
// PIN_LONGTERM_TEST_* state.
#include "pinmm/gup/gup_test_module.h"

#include <gtest/gtest.h>

#include <vector>

#include "pinmm/base/task.h"
#include "pinmm/gup/flags.h"
#include "pinmm/phys/pin_owners.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

class GupTestModule : public ::testing::Test {
 protected:
  GupTestModule() : m(config()), mm(Mm::create(m.vm)) { current().set_mm(mm.get()); }
  ~GupTestModule() override { current().set_mm(nullptr); }
  // 64 MiB, 16 MiB of it ZONE_MOVABLE (where user memory goes first).
  static MachineConfig config() {
    MachineConfig c = MachineConfig::tiny(Bytes::MiB(64), Bytes::MiB(16));
    c.thp = ThpMode::kNever;
    return c;
  }
  VirtAddr populated(uint64_t n) {
    const VirtAddr a = testing::map_anon(*mm, n * PAGE_SIZE);
    testing::fill_pages(*mm, a, n * PAGE_SIZE, 7);
    lru_add_drain_all(*m.ms);
    return a;
  }
  GupTest args(VirtAddr a, uint64_t pages, uint32_t per_call) {
    GupTest g;
    g.addr = a.value();
    g.size = pages * PAGE_SIZE;
    g.nr_pages_per_call = per_call;
    g.gup_flags = static_cast<uint32_t>(FOLL_WRITE);
    return g;
  }
  int64_t node_stat(NodeStatItem i) { return m.ms->node(0).stats().get(i); }
  testing::VmMachine m;
  MmHandle mm;
};

TEST_F(GupTestModule, EveryCommandWalksTheWholeRangeAndReleasesIt) {
  const VirtAddr a = populated(64);
  for (uint32_t cmd = 1; cmd <= 6; ++cmd) {
    for (uint32_t per_call : {1u, 7u, 16u, 512u}) {
      GupTest g = args(a, 64, per_call);
      std::string log;
      ASSERT_EQ(gup_test_ioctl(cmd, g, &log), 0) << cmd;
      EXPECT_EQ(g.size, 64 * PAGE_SIZE) << gup_test_cmd_name(GupTestCmd(cmd)) << " n=" << per_call;
      EXPECT_TRUE(log.empty()) << log;
    }
  }
  EXPECT_EQ(node_stat(NR_FOLL_PIN_ACQUIRED), node_stat(NR_FOLL_PIN_RELEASED));
  EXPECT_EQ(m.ms->pin_owners().nr_folios(), 0u);
  EXPECT_VM_VALID(m.vm);
}

TEST_F(GupTestModule, UnknownCommandsAreEinval) {
  const VirtAddr a = populated(1);
  GupTest g = args(a, 1, 1);
  EXPECT_EQ(gup_test_ioctl(0, g), -EINVAL);
  EXPECT_EQ(gup_test_ioctl(7, g), -EINVAL);
  EXPECT_STREQ(gup_test_cmd_name(GupTestCmd(9)), "Unknown command");
}

TEST_F(GupTestModule, AShortChunkEndsTheWalkAndTruncatesTheSize) {
  const VirtAddr a = populated(32);
  ASSERT_TRUE(vm_munmap(*mm, a + 20 * PAGE_SIZE, 12 * PAGE_SIZE).ok());
  // Chunks of 8: pages 16..23 return 4, which stops the loop after them.
  GupTest g = args(a, 32, 8);
  ASSERT_EQ(gup_test_ioctl(static_cast<uint32_t>(GupTestCmd::PIN_FAST_BENCHMARK), g), 0);
  EXPECT_EQ(g.size, 24 * PAGE_SIZE);
  // A chunk that fails outright ends it where it started.
  g = args(a + 20 * PAGE_SIZE, 4, 1);
  ASSERT_EQ(gup_test_ioctl(static_cast<uint32_t>(GupTestCmd::GUP_BASIC_TEST), g), 0);
  EXPECT_EQ(g.size, 0u);
  EXPECT_EQ(node_stat(NR_FOLL_PIN_ACQUIRED), node_stat(NR_FOLL_PIN_RELEASED));
}

TEST_F(GupTestModule, LongtermBenchmarkMigratesOutOfZoneMovableFirst) {
  const VirtAddr a = populated(16);
  ASSERT_EQ(page_zone(testing::page_at(*mm, a))->type(), ZONE_MOVABLE);
  GupTest g = args(a, 16, 16);
  std::string log;
  ASSERT_EQ(gup_test_ioctl(static_cast<uint32_t>(GupTestCmd::PIN_LONGTERM_BENCHMARK), g, &log), 0);
  EXPECT_TRUE(log.empty()) << log;
  EXPECT_EQ(m.ms->events().get(PGMIGRATE_SUCCESS), 16);
  EXPECT_EQ(page_zone(testing::page_at(*mm, a))->type(), ZONE_NORMAL);
}

TEST_F(GupTestModule, DumpZeroesOutOfRangeIndexesAndDumpsTheRest) {
  const VirtAddr a = populated(4);
  GupTest g = args(a, 4, 1);
  g.which_pages = {1, 4, 5, 0, 0, 0, 0, 0};  // pages 0 and 3; 4 is out of range
  g.test_flags = GUP_TEST_FLAG_DUMP_PAGES_USE_PIN;
  std::string log;
  ASSERT_EQ(gup_test_ioctl(static_cast<uint32_t>(GupTestCmd::DUMP_USER_PAGES_TEST), g, &log), 0);
  EXPECT_EQ(g.which_pages[2], 0u);
  EXPECT_NE(log.find("ZEROING due to out of range: .which_pages[2]: 5"), std::string::npos) << log;
  EXPECT_NE(log.find(fmt::format("---- page #0, starting from user virt addr: {:#x}", a.value())),
            std::string::npos);
  EXPECT_NE(log.find("---- page #3,"), std::string::npos);
  EXPECT_EQ(log.find("---- page #4,"), std::string::npos);
  EXPECT_NE(log.find("page dumped because: gup_test: dump_pages() test"), std::string::npos);
  EXPECT_EQ(node_stat(NR_FOLL_PIN_ACQUIRED), 4);
  EXPECT_EQ(node_stat(NR_FOLL_PIN_RELEASED), 4);
}

TEST_F(GupTestModule, ZeroPagePinsAreReportedAsTheKernelDoes) {
  // Read-only pins of never-written private memory pin the shared zero
  // page, which is never counted: verify_dma_pinned warns, as in Linux.
  const VirtAddr a = testing::map_anon(*mm, PAGE_SIZE);
  ASSERT_EQ(testing::read_byte(*mm, a), 0);
  GupTest g = args(a, 1, 1);
  g.gup_flags = 0;
  std::string log;
  ASSERT_EQ(gup_test_ioctl(static_cast<uint32_t>(GupTestCmd::PIN_FAST_BENCHMARK), g, &log), 0);
  EXPECT_NE(log.find("pages[0] is NOT dma-pinned"), std::string::npos) << log;
}

TEST_F(GupTestModule, PinLongtermTestArgumentRules) {
  const VirtAddr a = populated(4);
  PinLongtermTest t;
  EXPECT_EQ(t.start({a.value(), 4 * PAGE_SIZE, 4}), -EINVAL);      // unknown flag
  EXPECT_EQ(t.start({a.value() + 1, 4 * PAGE_SIZE, 0}), -EINVAL);  // unaligned addr
  EXPECT_EQ(t.start({a.value(), 4 * PAGE_SIZE + 8, 0}), -EINVAL);  // unaligned size
  EXPECT_EQ(t.start({a.value(), 0, 0}), -EINVAL);                  // empty
  EXPECT_EQ(t.start({a.value(), uint64_t{1} << 63, 0}), -EINVAL);  // beyond LONG_MAX
  std::vector<std::byte> buf(4 * PAGE_SIZE);
  EXPECT_EQ(t.read(buf), -EINVAL);  // nothing pinned
  ASSERT_EQ(t.start({a.value(), 4 * PAGE_SIZE, PIN_LONGTERM_TEST_FLAG_USE_WRITE}), 0);
  EXPECT_EQ(t.start({a.value(), 4 * PAGE_SIZE, 0}), -EINVAL);  // already active
  t.stop();
  EXPECT_EQ(node_stat(NR_FOLL_PIN_ACQUIRED), node_stat(NR_FOLL_PIN_RELEASED));
}

TEST_F(GupTestModule, PinLongtermTestReadsThroughThePinsAfterMigration) {
  for (uint32_t fast : {0u, PIN_LONGTERM_TEST_FLAG_USE_FAST}) {
    const VirtAddr a = populated(4);
    ASSERT_TRUE(write_user<uint32_t>(*mm, a + 2 * PAGE_SIZE + 8, 0xfeedbeef).ok());
    PinLongtermTest t;
    ASSERT_EQ(t.start({a.value(), 4 * PAGE_SIZE, fast | PIN_LONGTERM_TEST_FLAG_USE_WRITE}), 0);
    EXPECT_EQ(page_zone(testing::page_at(*mm, a))->type(), ZONE_NORMAL);
    // Written through the page table after pinning: visible through the pin.
    ASSERT_TRUE(write_user<uint8_t>(*mm, a + 3 * PAGE_SIZE, 0x5a).ok());
    std::vector<std::byte> buf(4 * PAGE_SIZE);
    EXPECT_EQ(t.read(std::span<std::byte>(buf).first(PAGE_SIZE)), -EFAULT);
    ASSERT_EQ(t.read(buf), 0);
    uint32_t word = 0;
    std::memcpy(&word, buf.data() + 2 * PAGE_SIZE + 8, sizeof(word));
    EXPECT_EQ(word, 0xfeedbeefu);
    EXPECT_EQ(static_cast<uint8_t>(buf[3 * PAGE_SIZE]), 0x5a);
    EXPECT_EQ(static_cast<uint8_t>(buf[0]), 7);
    // Destroying the test (closing the file) unpins.
  }
  EXPECT_EQ(node_stat(NR_FOLL_PIN_ACQUIRED), node_stat(NR_FOLL_PIN_RELEASED));
  EXPECT_VM_VALID(m.vm);
}

}  // namespace
}  // namespace pinmm
