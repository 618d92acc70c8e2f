// The non-pinning THP cases of the kernel selftest cow.c: a THP mapped by a
// PMD, PTE-mapped, reduced to a single PTE, and partially shared with an
// earlier child, each COWed in the parent and in the child, with and without
// the mprotect() round trip that lets the kernel map exclusive pages
// writable early. Like cow.c, a case passes when neither side ever sees the
// other's writes. (cow.c's swapout and partial-mremap variants need swap and
// mremap, which pinmm does not model.)
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pinmm/base/rcu.h"
#include "testing/cow.h"

namespace pinmm {
namespace {

using testing::overwrite;
using testing::page_at;
using testing::prepare_thp;
using testing::Region;
using testing::run_name;
using testing::snapshot;
using testing::ThpRun;
using testing::VmMachine;

void mprotect_round_trip(Mm& mm, Region r) {
  ASSERT_TRUE(do_mprotect(mm, r.mem, r.size, PROT_READ).ok());
  ASSERT_TRUE(do_mprotect(mm, r.mem, r.size, PROT_READ | PROT_WRITE).ok());
}

struct CowCase {
  ThpRun run;
  bool mprotect;
};

class ThpCow : public ::testing::TestWithParam<CowCase> {
 protected:
  static MachineConfig machine() {
    MachineConfig c = MachineConfig::tiny(Bytes::MiB(64));
    c.thp = ThpMode::kAlways;
    return c;
  }

  // Fork, let `writer` overwrite the region, and check that `reader` still
  // sees what it saw before; then tear everything down and check that no
  // page or page table leaked.
  void run_cow(bool write_in_parent) {
    VmMachine m(machine());
    const int64_t free0 = m.free_pages();
    {
      MmHandle parent = Mm::create(m.vm);
      const Region r = prepare_thp(*parent, GetParam().run);
      ASSERT_FALSE(HasFailure());
      EXPECT_EQ(folio_order(page_folio(page_at(*parent, r.mem))), HPAGE_PMD_ORDER);
      auto child = dup_mm(*parent);
      ASSERT_TRUE(child.ok());
      Mm& writer = write_in_parent ? *parent : **child;
      Mm& reader = write_in_parent ? **child : *parent;
      const std::vector<std::byte> before = snapshot(reader, r);
      EXPECT_EQ(before, snapshot(writer, r));
      if (GetParam().mprotect) mprotect_round_trip(writer, r);
      overwrite(writer, r);
      EXPECT_VM_VALID(m.vm);
      EXPECT_EQ(snapshot(reader, r), before) << "the writer's data leaked into the reader";
      EXPECT_EQ(snapshot(writer, r), std::vector<std::byte>(r.size, std::byte{0xff}));
    }
    lru_add_drain_all(*m.ms);
    rcu::barrier();
    EXPECT_EQ(m.free_pages(), free0);
    EXPECT_VM_VALID(m.vm);
  }
};

TEST_P(ThpCow, CowInParent) { run_cow(/*write_in_parent=*/true); }
TEST_P(ThpCow, CowInChild) { run_cow(/*write_in_parent=*/false); }

INSTANTIATE_TEST_SUITE_P(
    CowC, ThpCow,
    ::testing::Values(CowCase{ThpRun::kPmd, false}, CowCase{ThpRun::kPmd, true},
                      CowCase{ThpRun::kPte, false}, CowCase{ThpRun::kPte, true},
                      CowCase{ThpRun::kSinglePte, false}, CowCase{ThpRun::kSinglePte, true},
                      CowCase{ThpRun::kPartialShared, false},
                      CowCase{ThpRun::kPartialShared, true}),
    [](const ::testing::TestParamInfo<CowCase>& param_info) {
      return run_name(param_info.param.run) + (param_info.param.mprotect ? "Mprotect" : "");
    });

}  // namespace
}  // namespace pinmm
