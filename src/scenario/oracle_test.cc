// The data oracle (oracle.h): stamps, what fork does to expectations, and
// verify() against real pages of a real mm.
#include "oracle.h"

#include <gtest/gtest.h>

#include <set>

#include "pinmm/scenario/scenario.h"
#include "pinmm/vm/access.h"
#include "pinmm/vm/mmap.h"
#include "run.h"

namespace pinmm {
namespace {

TEST(Oracle, StampsAreDistinctNonZeroAndFollowTheSeed) {
  Stamps a(7), b(7), c(8);
  std::set<uint64_t> seen;
  for (uint64_t i = 0; i < 1000; ++i) {
    const uint64_t v = a.next(i % 16);
    EXPECT_NE(v, 0u);
    EXPECT_TRUE(seen.insert(v).second) << "stamp " << i << " repeats";
    EXPECT_EQ(b.next(i % 16), v);
  }
  EXPECT_NE(c.next(0), Stamps(7).next(0));
}

TEST(Oracle, ForkCopiesPrivateAndSharesSharedExpectations) {
  Mapping priv(MappingKind::kAnon, VirtAddr(0x10000), 4);
  Mapping shm(MappingKind::kShmem, VirtAddr(0x20000), 4);
  Mapping priv_child = priv.fork(), shm_child = shm.fork();
  (*priv_child.expect)[1] = 5;
  (*shm_child.expect)[1] = 6;
  EXPECT_EQ((*priv.expect)[1], 0u);
  EXPECT_EQ((*shm.expect)[1], 6u);
  EXPECT_FALSE(priv.shared());
  EXPECT_TRUE(shm.shared());
  EXPECT_TRUE(Mapping(MappingKind::kFile, VirtAddr(0), 1).shared());
  EXPECT_FALSE(Mapping(MappingKind::kFilePrivate, VirtAddr(0), 1).shared());
}

class OracleVerify : public ::testing::Test {
 protected:
  void SetUp() override {
    scenario_ = parse_scenario(
        "scenario: v\nmachine: {memory: 128MiB, block_size: 128MiB}\nsteps: []\n", "v.yaml");
    run_ = std::make_unique<ScenarioRun>(scenario_, 1);
    proc_.task = std::make_unique<Task>(100, "p");
    proc_.mm = Mm::create(run_->vm());
    proc_.task->set_mm(proc_.mm.get());
    CurrentTask current(*proc_.task);
    auto addr = vm_mmap(*proc_.mm, VirtAddr(0), 8 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS);
    ASSERT_TRUE(addr.ok());
    proc_.maps.emplace("m", Mapping(MappingKind::kAnon, *addr, 8));
    map_ = &proc_.maps.at("m");
  }
  void TearDown() override {
    CurrentTask current(*proc_.task);
    proc_.mm.reset();
  }
  void write(uint64_t page, uint64_t v) {
    CurrentTask current(*proc_.task);
    ASSERT_TRUE(write_user<uint64_t>(*proc_.mm, map_->addr + page * PAGE_SIZE, v).ok());
  }

  Scenario scenario_;
  std::unique_ptr<ScenarioRun> run_;
  Process proc_;
  Mapping* map_ = nullptr;
};

TEST_F(OracleVerify, NeverWrittenPagesReadAsZero) {
  const StepResult r = verify(Target{&proc_, map_, 0, 8}, Unmapped::kFault);
  EXPECT_EQ(r.err, 0);
  EXPECT_EQ(r.value, 8);
  EXPECT_EQ(r.detail, "8 pages read and verified");
}

TEST_F(OracleVerify, APageThatDiffersIsEio) {
  write(2, 0x1234);
  (*map_->expect)[2] = 0x1234;
  write(5, 0x99);  // the oracle still expects 0
  const StepResult r = verify(Target{&proc_, map_, 0, 8}, Unmapped::kFault);
  EXPECT_EQ(r.err, EIO);
  EXPECT_EQ(r.detail, "1 pages lost their data; page 5: expected 0x0, found 0x99");
  EXPECT_EQ(verify(Target{&proc_, map_, 0, 5}, Unmapped::kFault).err, 0);
}

TEST_F(OracleVerify, AnUnmappedPageFaultsOrIsSkipped) {
  {
    CurrentTask current(*proc_.task);
    ASSERT_TRUE(vm_munmap(*proc_.mm, map_->addr + 3 * PAGE_SIZE, PAGE_SIZE).ok());
  }
  map_->mapped[3] = false;
  const StepResult fault = verify(Target{&proc_, map_, 0, 8}, Unmapped::kFault);
  EXPECT_EQ(fault.err, EFAULT);
  EXPECT_EQ(fault.value, 3);
  EXPECT_EQ(fault.detail, "reading page 3 (3 pages verified before it)");
  const StepResult skip = verify(Target{&proc_, map_, 0, 8}, Unmapped::kSkip);
  EXPECT_EQ(skip.err, 0);
  EXPECT_EQ(skip.value, 7);
}

}  // namespace
}  // namespace pinmm
