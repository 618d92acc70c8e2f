// FOLL_* values, is_valid_gup_args and check_vma_flags, table by table
// (KERNEL-SPEC 1.1-1.4).
#include <gtest/gtest.h>

#include <tuple>
#include <vector>

#include "pinmm/gup/flags.h"
#include "pinmm/vm/device_map.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

TEST(FollFlags, KernelValues) {
  EXPECT_EQ(raw(FOLL_WRITE), 0x1u);
  EXPECT_EQ(raw(FOLL_GET), 0x2u);
  EXPECT_EQ(raw(FOLL_LONGTERM), 0x100u);
  EXPECT_EQ(raw(FOLL_PCI_P2PDMA), 0x400u);
  EXPECT_EQ(raw(FOLL_HONOR_NUMA_FAULT), 0x1000u);
  EXPECT_EQ(raw(FOLL_TOUCH), 1u << 16);
  EXPECT_EQ(raw(FOLL_PIN), 1u << 19);
  EXPECT_EQ(raw(FOLL_MADV_POPULATE), 1u << 22);
  EXPECT_EQ(foll_flags_to_string(FOLL_WRITE | FOLL_PIN | FOLL_LONGTERM),
            "FOLL_WRITE|FOLL_LONGTERM|FOLL_PIN");
  EXPECT_EQ(foll_flags_to_string(FOLL_NONE), "0");
}

// KERNEL-SPEC 1.3, row by row.
TEST(IsValidGupArgs, Table) {
  const int one = 1, two = 2;
  struct Row {
    const char* what;
    bool has_pages;
    const int* locked;
    Foll flags;
    Foll to_set;
    bool valid;
  };
  const std::vector<Row> rows = {
      {"plain get", true, nullptr, FOLL_WRITE, FOLL_GET | FOLL_TOUCH, true},
      {"internal flag from the caller", true, nullptr, FOLL_PIN, FOLL_NONE, false},
      {"FOLL_TOUCH from the caller", true, nullptr, FOLL_TOUCH, FOLL_GET, false},
      {"locked must be 1", true, &two, FOLL_NONE, FOLL_PIN, false},
      {"locked 1 is fine", true, &one, FOLL_NONE, FOLL_PIN, true},
      {"GET and PIN", true, nullptr, FOLL_GET, FOLL_PIN, false},
      {"LONGTERM without PIN", true, nullptr, FOLL_LONGTERM, FOLL_GET, false},
      {"LONGTERM without anything", false, nullptr, FOLL_LONGTERM, FOLL_NONE, false},
      {"PIN without pages", false, nullptr, FOLL_NONE, FOLL_PIN, false},
      {"GET without pages", false, nullptr, FOLL_NONE, FOLL_GET, false},
      {"no pages, no refs", false, nullptr, FOLL_WRITE, FOLL_TOUCH, true},
      {"LONGTERM with P2PDMA", true, nullptr, FOLL_LONGTERM | FOLL_PCI_P2PDMA, FOLL_PIN, false},
      {"LONGTERM pin", true, nullptr, FOLL_LONGTERM | FOLL_WRITE, FOLL_PIN, true},
  };
  for (const Row& r : rows) {
    Foll out = FOLL_NONE;
    EXPECT_EQ(is_valid_gup_args(r.has_pages, r.locked, &out, r.flags, r.to_set), r.valid) << r.what;
  }
  Foll out = FOLL_NONE;
  ASSERT_TRUE(is_valid_gup_args(true, &one, &out, FOLL_WRITE, FOLL_PIN | FOLL_TOUCH));
  EXPECT_EQ(out, FOLL_WRITE | FOLL_PIN | FOLL_TOUCH | FOLL_UNLOCKABLE);
}

TEST(GupFastAllowedFlags, ExactlyTheKernelSet) {
  for (Foll f : {FOLL_ANON, FOLL_NOWAIT, FOLL_HWPOISON, FOLL_INTERRUPTIBLE, FOLL_DUMP,
                 FOLL_SPLIT_PMD, FOLL_TOUCH, FOLL_REMOTE, FOLL_UNLOCKABLE})
    EXPECT_FALSE(any(f & GUP_FAST_ALLOWED_FLAGS)) << foll_flags_to_string(f);
  for (Foll f : {FOLL_WRITE, FOLL_LONGTERM, FOLL_FORCE, FOLL_PIN, FOLL_GET, FOLL_FAST_ONLY,
                 FOLL_NOFAULT, FOLL_PCI_P2PDMA, FOLL_HONOR_NUMA_FAULT})
    EXPECT_TRUE(any(f & GUP_FAST_ALLOWED_FLAGS)) << foll_flags_to_string(f);
}

// KERNEL-SPEC 1.4 against real VMAs of each kind.
class CheckVmaFlags : public ::testing::Test {
 protected:
  CheckVmaFlags() : m(with_hugepages()), mm(Mm::create(m.vm)) {}
  static MachineConfig with_hugepages() {
    MachineConfig c = MachineConfig::tiny(Bytes::MiB(32));
    c.hugepages.push_back({Bytes::MiB(2), 2, std::nullopt});
    return c;
  }
  const Vma* map(int prot, int flags, std::shared_ptr<File> file = nullptr,
                 uint64_t len = PAGE_SIZE) {
    auto a = vm_mmap(*mm, VirtAddr(0), len, prot, flags, std::move(file));
    EXPECT_TRUE(a.ok()) << (a.ok() ? "" : a.error().name());
    return a.ok() ? mm->vma_lookup(*a) : nullptr;
  }
  testing::VmMachine m;
  MmHandle mm;
};

TEST_F(CheckVmaFlags, Table) {
  constexpr int kRw = PROT_READ | PROT_WRITE;
  const Vma* anon_rw = map(kRw, MAP_PRIVATE | MAP_ANONYMOUS);
  const Vma* anon_ro = map(PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
  const Vma* anon_none = map(PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS);
  const Vma* shmem_rw = map(kRw, MAP_SHARED | MAP_ANONYMOUS);
  const Vma* shmem_ro = map(PROT_READ, MAP_SHARED | MAP_ANONYMOUS);
  auto ext4 = File::create(m.vm, FsType::kExt4, "data", PAGE_SIZE);
  const Vma* ext4_shared_rw = map(kRw, MAP_SHARED, ext4);
  const Vma* ext4_private_rw = map(kRw, MAP_PRIVATE, ext4);
  auto tmp = File::create(m.vm, FsType::kTmpfs, "tmp", PAGE_SIZE);
  const Vma* tmpfs_shared_rw = map(kRw, MAP_SHARED, tmp);
  auto dev = File::create_device(m.vm, "pfnmap", [](Vma& vma) -> Result<void> {
    return remap_pfn_range(vma, vma.vm_start, Pfn(16), PAGE_SIZE);
  });
  const Vma* pfnmap = map(kRw, MAP_SHARED, dev);
  const Vma* huge_ro =
      map(PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, nullptr, HPAGE_PMD_SIZE);
  ASSERT_TRUE(anon_rw && anon_ro && anon_none && shmem_rw && shmem_ro && ext4_shared_rw &&
              ext4_private_rw && tmpfs_shared_rw && pfnmap && huge_ro);

  const Foll W = FOLL_WRITE, LT_PIN = FOLL_PIN | FOLL_LONGTERM;
  const std::vector<std::tuple<const char*, const Vma*, Foll, int>> rows = {
      {"VM_IO|VM_PFNMAP", pfnmap, FOLL_NONE, -EFAULT},
      {"FOLL_ANON on shmem", shmem_rw, FOLL_ANON, -EFAULT},
      {"FOLL_ANON on anon", anon_rw, FOLL_ANON, 0},
      {"long-term writable pin of a written-back file", ext4_shared_rw, W | LT_PIN, -EFAULT},
      {"... short-term is fine", ext4_shared_rw, W | FOLL_PIN, 0},
      {"... read-only long-term is fine", ext4_shared_rw, LT_PIN, 0},
      {"... private mapping is fine", ext4_private_rw, W | LT_PIN, 0},
      {"long-term writable pin of tmpfs", tmpfs_shared_rw, W | LT_PIN, 0},
      {"long-term writable pin of shmem", shmem_rw, W | LT_PIN, 0},
      {"write to read-only", anon_ro, W, -EFAULT},
      {"FOLL_FORCE write to private read-only", anon_ro, W | FOLL_FORCE, 0},
      {"FOLL_FORCE write to shared read-only", shmem_ro, W | FOLL_FORCE, -EFAULT},
      {"read of PROT_NONE", anon_none, FOLL_NONE, -EFAULT},
      {"FOLL_FORCE read of PROT_NONE (VM_MAYREAD)", anon_none, FOLL_FORCE, 0},
      {"plain read", anon_ro, FOLL_NONE, 0},
      {"FOLL_SPLIT_PMD on hugetlb", huge_ro, FOLL_SPLIT_PMD, -EOPNOTSUPP},
      {"FOLL_SPLIT_PMD on anon", anon_rw, FOLL_SPLIT_PMD, 0},
      {"FOLL_FORCE write to read-only hugetlb", huge_ro, W | FOLL_FORCE, -EFAULT},
      {"read of hugetlb", huge_ro, FOLL_NONE, 0},
  };
  for (const auto& [what, vma, flags, expect] : rows)
    EXPECT_EQ(check_vma_flags(vma, flags), expect) << what;
}

}  // namespace
}  // namespace pinmm
