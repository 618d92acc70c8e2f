// hugetlb mappings: pool pages, private COW, shared page cache, fork,
// reservations, PUD-level leaves.
#include <gtest/gtest.h>

#include "pinmm/base/rcu.h"
#include "pinmm/phys/hugetlb.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

using testing::pmd_at;
using testing::read_byte;
using testing::VmMachine;

MachineConfig hugetlb_machine(uint64_t pages_2m, uint64_t pages_1g = 0) {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(64));
  if (pages_1g != 0) {
    c = MachineConfig::tiny(Bytes::GiB(3));
    c.hugepages.push_back({Bytes::GiB(1), pages_1g, std::nullopt});
  }
  c.hugepages.push_back({Bytes::MiB(2), pages_2m, std::nullopt});
  return c;
}

HstateCounts pool(const VmMachine& m, unsigned index = HugetlbPools::kPmdIndex) {
  return m.ms->hugetlb().counts(index);
}

TEST(HugetlbVm, PrivateMappingReservesFaultsAndReleases) {
  VmMachine m(hugetlb_machine(4));
  MmHandle mm = Mm::create(m.vm);
  auto a = vm_mmap(*mm, VirtAddr(0), 2 * HPAGE_PMD_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->value() % HPAGE_PMD_SIZE, 0u);
  EXPECT_EQ(pool(m).resv_huge_pages, 2u);
  EXPECT_EQ(pool(m).free_huge_pages, 4u);
  ASSERT_TRUE(write_user<uint32_t>(*mm, *a + 12345, 0xabcd).ok());
  const pmd_t pmd = pmd_at(*mm, *a);
  ASSERT_TRUE(pmd_leaf(pmd));
  EXPECT_TRUE(pmd_write(pmd));
  Folio* folio = page_folio(m.ms->pfn_to_page(pmd_pfn(pmd)));
  EXPECT_TRUE(folio_test_hugetlb(folio));
  EXPECT_TRUE(folio_test_anon(folio));
  EXPECT_EQ(folio_entire_mapcount(folio), 1);
  EXPECT_EQ(pool(m).free_huge_pages, 3u);
  EXPECT_EQ(pool(m).resv_huge_pages, 1u);  // one reservation consumed
  EXPECT_EQ(*read_user<uint32_t>(*mm, *a + 12345), 0xabcdu);
  EXPECT_VM_VALID(m.vm);
  ASSERT_TRUE(vm_munmap(*mm, *a, 2 * HPAGE_PMD_SIZE).ok());
  EXPECT_EQ(pool(m).free_huge_pages, 4u);
  EXPECT_EQ(pool(m).resv_huge_pages, 0u);
  EXPECT_VM_VALID(m.vm);
}

TEST(HugetlbVm, MmapFailsWhenThePoolCannotBackIt) {
  VmMachine m(hugetlb_machine(2));
  MmHandle mm = Mm::create(m.vm);
  EXPECT_EQ(vm_mmap(*mm, VirtAddr(0), 3 * HPAGE_PMD_SIZE, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB)
                .error(),
            Errno(ENOMEM));
  // MAP_NORESERVE maps anyway; the fault that finds no page gets SIGBUS.
  auto a = vm_mmap(*mm, VirtAddr(0), 3 * HPAGE_PMD_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_NORESERVE);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(write_user<uint8_t>(*mm, *a, 1).ok());
  ASSERT_TRUE(write_user<uint8_t>(*mm, *a + HPAGE_PMD_SIZE, 1).ok());
  EXPECT_EQ(write_user<uint8_t>(*mm, *a + 2 * HPAGE_PMD_SIZE, 1).error(), Errno(EFAULT));
  EXPECT_VM_VALID(m.vm);
}

TEST(HugetlbVm, ForkCopiesOnWrite) {
  VmMachine m(hugetlb_machine(4));
  MmHandle parent = Mm::create(m.vm);
  auto a = vm_mmap(*parent, VirtAddr(0), HPAGE_PMD_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(write_user<uint8_t>(*parent, *a + 7, 0x11).ok());
  auto child = dup_mm(*parent);
  ASSERT_TRUE(child.ok());
  Folio* folio = page_folio(m.ms->pfn_to_page(pmd_pfn(pmd_at(*parent, *a))));
  EXPECT_EQ(folio_entire_mapcount(folio), 2);
  EXPECT_FALSE(PageAnonExclusive(&folio->page));
  EXPECT_FALSE(pmd_write(pmd_at(*parent, *a)));
  ASSERT_TRUE(write_user<uint8_t>(**child, *a + 7, 0x22).ok());
  EXPECT_EQ(read_byte(*parent, *a + 7), 0x11);
  EXPECT_EQ(read_byte(**child, *a + 7), 0x22);
  EXPECT_EQ(pool(m).free_huge_pages, 2u);
  // The parent is now the only mapper: its write reuses the page.
  ASSERT_TRUE(write_user<uint8_t>(*parent, *a + 7, 0x33).ok());
  EXPECT_EQ(page_folio(m.ms->pfn_to_page(pmd_pfn(pmd_at(*parent, *a)))), folio);
  EXPECT_VM_VALID(m.vm);
}

TEST(HugetlbVm, SharedHugetlbfsFileIsShared) {
  VmMachine m(hugetlb_machine(4));
  auto file = File::create(m.vm, FsType::kHugetlbfs, "/dev/hugepages/buf", 2 * HPAGE_PMD_SIZE);
  MmHandle mm = Mm::create(m.vm);
  auto a = vm_mmap(*mm, VirtAddr(0), 2 * HPAGE_PMD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, file);
  auto b = vm_mmap(*mm, VirtAddr(0), 2 * HPAGE_PMD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, file);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(pool(m).resv_huge_pages, 4u);
  ASSERT_TRUE(write_user<uint8_t>(*mm, *a + HPAGE_PMD_SIZE + 1, 0x5a).ok());
  EXPECT_EQ(read_byte(*mm, *b + HPAGE_PMD_SIZE + 1), 0x5a);
  auto child = dup_mm(*mm);
  ASSERT_TRUE(child.ok());
  ASSERT_TRUE(write_user<uint8_t>(**child, *a + HPAGE_PMD_SIZE + 2, 0x6b).ok());
  EXPECT_EQ(read_byte(*mm, *b + HPAGE_PMD_SIZE + 2), 0x6b);
  EXPECT_EQ(pool(m).free_huge_pages, 3u);
  EXPECT_VM_VALID(m.vm);
  EXPECT_EQ(vm_mmap(*mm, VirtAddr(0x1000), HPAGE_PMD_SIZE, PROT_READ, MAP_SHARED | MAP_FIXED, file)
                .error(),
            Errno(EINVAL));  // not huge-page aligned
}

TEST(HugetlbVm, GiganticPagesMapAtPudLevel) {
  VmMachine m(hugetlb_machine(0, 1));
  MmHandle mm = Mm::create(m.vm);
  auto a = vm_mmap(*mm, VirtAddr(0), PUD_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (30 << 26));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->value() % PUD_SIZE, 0u);
  ASSERT_TRUE(write_user<uint64_t>(*mm, *a + 700 * PAGE_SIZE, 77).ok());
  pud_t* pud = pud_offset(*mm, *a);
  ASSERT_NE(pud, nullptr);
  EXPECT_TRUE(pud_leaf(pudp_get(pud)));
  EXPECT_EQ(pool(m, HugetlbPools::kPudIndex).free_huge_pages, 0u);
  EXPECT_EQ(*read_user<uint64_t>(*mm, *a + 700 * PAGE_SIZE), 77u);
  EXPECT_VM_VALID(m.vm);
  ASSERT_TRUE(vm_munmap(*mm, *a, PUD_SIZE).ok());
  EXPECT_EQ(pool(m, HugetlbPools::kPudIndex).free_huge_pages, 1u);
  EXPECT_VM_VALID(m.vm);
}

}  // namespace
}  // namespace pinmm
