// The kernel selftest gup_longterm.c (KERNEL-SPEC 10.2): long-term pins via
// PIN_LONGTERM_TEST_START of a one-page file mapping, R/W and R/O, GUP and
// GUP-fast, MAP_SHARED and MAP_PRIVATE, on a memfd (tmpfs), a tmpfile on a
// disk file system (ext4: Debian's /tmp and test directories) and a
// hugetlb memfd (2 MiB; the 1 GiB size is left out to keep the run short).
// Expected: R/W long-term pins of shared mappings work only on tmpfs and
// hugetlbfs and fail with EFAULT elsewhere; everything else works.
// The two io_uring cases (register_buffers pins with pin_user_pages_fast
// FOLL_WRITE | FOLL_LONGTERM) are cases 2 and 6 again without an io_uring
// model, so they are not repeated.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pinmm/base/task.h"
#include "pinmm/gup/gup_test_module.h"
#include "pinmm/phys/hugetlb.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

enum class Backing { kMemfd, kTmpfileExt4, kMemfdHugetlb };
enum class PinType { kRw, kRwFast, kRo, kRoFast };

struct Cell {
  Backing backing;
  PinType type;
  bool shared;
};

std::string cell_name(const ::testing::TestParamInfo<Cell>& info) {
  static const char* const kBacking[] = {"Memfd", "TmpfileExt4", "MemfdHugetlb2M"};
  static const char* const kType[] = {"RwPin", "RwFastPin", "RoPin", "RoFastPin"};
  return std::string(kBacking[static_cast<int>(info.param.backing)]) +
         kType[static_cast<int>(info.param.type)] + (info.param.shared ? "Shared" : "Private");
}

class GupLongtermMatrix : public ::testing::TestWithParam<Cell> {
 protected:
  GupLongtermMatrix() : m(config()), mm(Mm::create(m.vm)) { current().set_mm(mm.get()); }
  ~GupLongtermMatrix() override { current().set_mm(nullptr); }
  // Page-cache pages land in ZONE_MOVABLE first, so successful pins of
  // shared tmpfs pages also exercise the migration before the pin.
  static MachineConfig config() {
    MachineConfig c = MachineConfig::tiny(Bytes::MiB(64), Bytes::MiB(16));
    c.thp = ThpMode::kAlways;
    c.hugepages.push_back({Bytes::MiB(2), 4, std::nullopt});
    return c;
  }
  // memfd_create / tmpfile, ftruncate and fallocate.
  std::shared_ptr<File> backing_file(Backing b, uint64_t size) {
    const FsType type = b == Backing::kMemfd         ? FsType::kTmpfs
                        : b == Backing::kTmpfileExt4 ? FsType::kExt4
                                                     : FsType::kHugetlbfs;
    auto file = File::create(m.vm, type, "test", 0);
    EXPECT_TRUE(file->truncate(size).ok());
    if (type == FsType::kExt4) {
      const std::vector<std::byte> zeros(size);
      EXPECT_TRUE(file->pwrite(zeros, 0).ok());
    } else {
      auto folio = memfd_alloc_folio(*file, 0);
      EXPECT_TRUE(folio.ok());
      if (folio.ok()) folio_put(*folio);
    }
    return file;
  }
  testing::VmMachine m;
  MmHandle mm;
};

TEST_P(GupLongtermMatrix, LongtermPinOutcome) {
  const Cell c = GetParam();
  const uint64_t size = c.backing == Backing::kMemfdHugetlb ? HPAGE_PMD_SIZE : PAGE_SIZE;
  auto file = backing_file(c.backing, size);
  auto mem = vm_mmap(*mm, VirtAddr(0), size, PROT_READ | PROT_WRITE,
                     c.shared ? MAP_SHARED : MAP_PRIVATE, file);
  ASSERT_TRUE(mem.ok());
  // Fault in, so that GUP-fast can pin directly.
  ASSERT_TRUE(copy_to_user(*mm, *mem, std::vector<std::byte>(size)).ok());
  const bool rw = c.type == PinType::kRw || c.type == PinType::kRwFast;
  const bool fast = c.type == PinType::kRwFast || c.type == PinType::kRoFast;
  if (!rw) {
    ASSERT_TRUE(do_mprotect(*mm, *mem, size, PROT_READ).ok());
  }

  const bool should_work = !c.shared || !rw || c.backing != Backing::kTmpfileExt4;
  PinLongtermTest pin;
  uint32_t flags = fast ? PIN_LONGTERM_TEST_FLAG_USE_FAST : 0;
  if (rw) flags |= PIN_LONGTERM_TEST_FLAG_USE_WRITE;
  const int ret = pin.start({mem->value(), size, flags});
  if (!should_work) {
    EXPECT_EQ(ret, -EFAULT) << "should have failed";
  } else {
    ASSERT_EQ(ret, 0) << "should have worked";
    Folio* pinned = page_folio(testing::page_at(*mm, *mem));
    EXPECT_TRUE(folio_maybe_dma_pinned(pinned));
    EXPECT_TRUE(folio_is_longterm_pinnable(pinned));
    // A private mapping pins its own anonymous copy, never the file's page.
    EXPECT_EQ(folio_test_anon(pinned), !c.shared);
    pin.stop();
  }
  EXPECT_EQ(m.ms->node(0).stats().get(NR_FOLL_PIN_ACQUIRED),
            m.ms->node(0).stats().get(NR_FOLL_PIN_RELEASED));
  EXPECT_TRUE(vm_munmap(*mm, *mem, size).ok());
  EXPECT_VM_VALID(m.vm);
}

std::vector<Cell> all_cells() {
  std::vector<Cell> cells;
  for (Backing b : {Backing::kMemfd, Backing::kTmpfileExt4, Backing::kMemfdHugetlb}) {
    for (bool shared : {true, false}) {
      for (PinType t : {PinType::kRw, PinType::kRwFast, PinType::kRo, PinType::kRoFast})
        cells.push_back({b, t, shared});
    }
  }
  return cells;
}

INSTANTIATE_TEST_SUITE_P(GupLongterm, GupLongtermMatrix, ::testing::ValuesIn(all_cells()),
                         cell_name);

}  // namespace
}  // namespace pinmm
