// Device files: a driver's mmap handler with remap_pfn_range (VM_IO |
// VM_PFNMAP) and vm_insert_page (VM_MIXEDMAP), and MADV_DONTFORK/DOFORK.
#include <gtest/gtest.h>

#include <cstring>

#include "pinmm/base/rcu.h"
#include "pinmm/vm/device_map.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

using testing::map_anon;
using testing::pte_at;
using testing::read_byte;
using testing::VmMachine;

constexpr int kRw = PROT_READ | PROT_WRITE;

// A driver buffer of 2^order kernel pages, filled with `fill`.
struct DriverBuffer {
  DriverBuffer(MemorySystem& memory, Order buffer_order, uint8_t fill)
      : ms(memory), order(buffer_order) {
    page = alloc_pages(ms, GFP_KERNEL, order);
    EXPECT_NE(page, nullptr);
    std::memset(bytes(), fill, (uint64_t{1} << order.value()) * PAGE_SIZE);
  }
  ~DriverBuffer() { __free_pages(page, order); }
  Pfn pfn() const { return ms.page_to_pfn(page); }
  std::byte* bytes() const { return ms.frames().frame(pfn()); }

  MemorySystem& ms;
  Order order;
  Page* page;
};

std::shared_ptr<File> remapping_device(VmContext& vm, Pfn pfn) {
  return File::create_device(vm, "buf", [pfn](Vma& vma) {
    return remap_pfn_range(vma, vma.vm_start, pfn + PageCount(vma.vm_pgoff), vma.size());
  });
}

TEST(PfnMap, SharedMappingIsSpecialAndUncounted) {
  VmMachine m;
  const int64_t free0 = m.free_pages();
  {
    DriverBuffer buf(*m.ms, Order(2), 0x3c);
    MmHandle mm = Mm::create(m.vm);
    auto a = vm_mmap(*mm, VirtAddr(0), 4 * PAGE_SIZE, kRw, MAP_SHARED,
                     remapping_device(m.vm, buf.pfn()));
    ASSERT_TRUE(a.ok());
    const VmFlags flags = mm->vma_lookup(*a)->vm_flags;
    EXPECT_EQ(flags & (VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP),
              VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
    const pte_t pte = pte_at(*mm, *a + 2 * PAGE_SIZE);
    EXPECT_TRUE(pte_special(pte));
    EXPECT_EQ(pte_pfn(pte), buf.pfn() + PageCount(2));
    EXPECT_EQ(vm_normal_page(mm->vma_lookup(*a), *a, pte), nullptr);
    // The CPU reaches the driver's bytes both ways; nothing is counted.
    EXPECT_EQ(read_byte(*mm, *a + 3 * PAGE_SIZE + 5), 0x3c);
    ASSERT_TRUE(write_user<uint8_t>(*mm, *a + PAGE_SIZE, 0x99).ok());
    EXPECT_EQ(buf.bytes()[PAGE_SIZE], std::byte{0x99});
    EXPECT_EQ(folio_ref_count(page_folio(buf.page)), 1);
    EXPECT_EQ(folio_mapcount(page_folio(buf.page)), 0);
    EXPECT_EQ(mm->get_mm_counter(MM_FILEPAGES), 0);
    // fork copies the PFN map (it cannot be faulted in again).
    auto child = dup_mm(*mm);
    ASSERT_TRUE(child.ok());
    EXPECT_EQ(read_byte(**child, *a + PAGE_SIZE), 0x99);
    EXPECT_VM_VALID(m.vm);
    // GUP-style walkers see VM_IO/VM_PFNMAP; populate refuses.
    EXPECT_EQ(do_madvise(*mm, *a, PAGE_SIZE, MADV_POPULATE_READ).error(), Errno(EINVAL));
    ASSERT_TRUE(vm_munmap(*mm, *a, 4 * PAGE_SIZE).ok());
    EXPECT_EQ(folio_ref_count(page_folio(buf.page)), 1);
    EXPECT_VM_VALID(m.vm);
  }
  rcu::barrier();
  EXPECT_EQ(m.free_pages(), free0);
}

TEST(PfnMap, PrivateMappingCopiesOnWriteAndLeavesTheDeviceAlone) {
  VmMachine m;
  DriverBuffer buf(*m.ms, Order(1), 0x11);
  MmHandle mm = Mm::create(m.vm);
  auto a =
      vm_mmap(*mm, VirtAddr(0), 2 * PAGE_SIZE, kRw, MAP_PRIVATE, remapping_device(m.vm, buf.pfn()));
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(pte_write(pte_at(*mm, *a)));  // COW mapping: read-only until written
  ASSERT_TRUE(write_user<uint8_t>(*mm, *a + 7, 0x22).ok());
  EXPECT_FALSE(pte_special(pte_at(*mm, *a)));  // now an anonymous copy
  EXPECT_EQ(mm->get_mm_counter(MM_ANONPAGES), 1);
  EXPECT_EQ(read_byte(*mm, *a + 7), 0x22);
  EXPECT_EQ(read_byte(*mm, *a + 8), 0x11);  // copied from the device page
  EXPECT_EQ(buf.bytes()[7], std::byte{0x11});
  EXPECT_VM_VALID(m.vm);
}

TEST(PfnMap, HandlerErrorsFailTheMmapAndLeaveNothing) {
  VmMachine m;
  DriverBuffer buf(*m.ms, Order(1), 0);
  MmHandle mm = Mm::create(m.vm);
  // A COW mapping must be remapped whole.
  auto half = File::create_device(m.vm, "half", [&](Vma& vma) {
    return remap_pfn_range(vma, vma.vm_start, buf.pfn(), PAGE_SIZE);
  });
  EXPECT_EQ(vm_mmap(*mm, VirtAddr(0), 2 * PAGE_SIZE, kRw, MAP_PRIVATE, half).error(),
            Errno(EINVAL));
  EXPECT_TRUE(mm->all_vmas().empty());
  // A shared one may be partial; the rest faults with SIGBUS.
  auto a = vm_mmap(*mm, VirtAddr(0), 2 * PAGE_SIZE, kRw, MAP_SHARED, half);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(read_byte(*mm, *a), 0);
  EXPECT_EQ(read_user<uint8_t>(*mm, *a + PAGE_SIZE).error(), Errno(EFAULT));
  // Remapping over an existing entry, PFNs beyond RAM, a misaligned range.
  auto twice = File::create_device(m.vm, "twice", [&](Vma& vma) -> Result<void> {
    TRY(remap_pfn_range(vma, vma.vm_start, buf.pfn(), PAGE_SIZE));
    return remap_pfn_range(vma, vma.vm_start, buf.pfn(), PAGE_SIZE);
  });
  EXPECT_EQ(vm_mmap(*mm, VirtAddr(0), PAGE_SIZE, kRw, MAP_SHARED, twice).error(), Errno(EBUSY));
  auto beyond = File::create_device(m.vm, "beyond", [&](Vma& vma) {
    return remap_pfn_range(vma, vma.vm_start, m.ms->max_pfn(), PAGE_SIZE);
  });
  EXPECT_EQ(vm_mmap(*mm, VirtAddr(0), PAGE_SIZE, kRw, MAP_SHARED, beyond).error(), Errno(EINVAL));
  auto crooked = File::create_device(m.vm, "crooked", [&](Vma& vma) {
    return remap_pfn_range(vma, vma.vm_start + 1, buf.pfn(), PAGE_SIZE);
  });
  EXPECT_EQ(vm_mmap(*mm, VirtAddr(0), PAGE_SIZE, kRw, MAP_SHARED, crooked).error(), Errno(EINVAL));
  auto no_mmap = File::create_device(m.vm, "no_mmap", nullptr);
  EXPECT_EQ(vm_mmap(*mm, VirtAddr(0), PAGE_SIZE, kRw, MAP_SHARED, no_mmap).error(), Errno(ENODEV));
  EXPECT_EQ(mm->all_vmas().size(), 1u);  // only the partial shared one
  EXPECT_EQ(no_mmap->pread(std::span<std::byte>(), 0).error(), Errno(EINVAL));
  EXPECT_EQ(no_mmap->truncate(0).error(), Errno(EINVAL));
  EXPECT_VM_VALID(m.vm);
}

TEST(MixedMap, InsertedPagesAreReferencedAndMapped) {
  VmMachine m;
  const int64_t free0 = m.free_pages();
  {
    Page* page = alloc_pages(*m.ms, GFP_KERNEL, Order(0));
    ASSERT_NE(page, nullptr);
    std::memset(m.ms->frames().frame(m.ms->page_to_pfn(page)), 0x5e, PAGE_SIZE);
    auto dev = File::create_device(
        m.vm, "mixed", [page](Vma& vma) { return vm_insert_page(vma, vma.vm_start, page); });
    MmHandle mm = Mm::create(m.vm);
    auto a = vm_mmap(*mm, VirtAddr(0), PAGE_SIZE, kRw, MAP_SHARED, dev);
    ASSERT_TRUE(a.ok());
    EXPECT_TRUE(any(mm->vma_lookup(*a)->vm_flags & VM_MIXEDMAP));
    EXPECT_FALSE(any(mm->vma_lookup(*a)->vm_flags & VM_PFNMAP));
    Folio* folio = page_folio(page);
    EXPECT_EQ(folio_ref_count(folio), 2);
    EXPECT_EQ(folio_mapcount(folio), 1);
    EXPECT_EQ(mm->get_mm_counter(MM_FILEPAGES), 1);
    EXPECT_EQ(m.ms->vmstat()[NR_FILE_MAPPED], 1);
    EXPECT_EQ(read_byte(*mm, *a + 100), 0x5e);
    auto child = dup_mm(*mm);
    ASSERT_TRUE(child.ok());
    EXPECT_EQ(folio_ref_count(folio), 3);
    EXPECT_EQ(folio_mapcount(folio), 2);
    EXPECT_VM_VALID(m.vm);
    child->reset();
    ASSERT_TRUE(vm_munmap(*mm, *a, PAGE_SIZE).ok());
    EXPECT_EQ(folio_ref_count(folio), 1);
    EXPECT_EQ(m.ms->vmstat()[NR_FILE_MAPPED], 0);
    EXPECT_VM_VALID(m.vm);
    free_page(page);
  }
  rcu::barrier();
  EXPECT_EQ(m.free_pages(), free0);
}

TEST(MixedMap, InsertErrors) {
  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr anon = map_anon(*mm, PAGE_SIZE);
  ASSERT_TRUE(write_user<uint8_t>(*mm, anon, 1).ok());
  Page* anon_page = testing::page_at(*mm, anon);
  Page* page = alloc_pages(*m.ms, GFP_KERNEL, Order(0));
  ASSERT_NE(page, nullptr);
  Errno outside{0}, anon_err{0}, busy{0};
  auto dev = File::create_device(m.vm, "mixed", [&](Vma& vma) -> Result<void> {
    outside = vm_insert_page(vma, vma.vm_end, page).error();
    anon_err = vm_insert_page(vma, vma.vm_start, anon_page).error();
    TRY(vm_insert_page(vma, vma.vm_start, page));
    busy = vm_insert_page(vma, vma.vm_start, page).error();
    return Result<void>{};
  });
  auto a = vm_mmap(*mm, VirtAddr(0), PAGE_SIZE, PROT_READ, MAP_SHARED, dev);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(outside, Errno(EFAULT));
  EXPECT_EQ(anon_err, Errno(EINVAL));
  EXPECT_EQ(busy, Errno(EBUSY));
  EXPECT_EQ(folio_ref_count(page_folio(page)), 2);
  ASSERT_TRUE(vm_munmap(*mm, *a, PAGE_SIZE).ok());
  free_page(page);
  EXPECT_VM_VALID(m.vm);
}

TEST(Madvise, DontforkKeepsTheRangeOutOfTheChild) {
  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_anon(*mm, 4 * PAGE_SIZE);
  testing::fill_pages(*mm, a, 4 * PAGE_SIZE, 0x44);
  ASSERT_TRUE(do_madvise(*mm, a + PAGE_SIZE, 2 * PAGE_SIZE, MADV_DONTFORK).ok());
  EXPECT_EQ(mm->all_vmas().size(), 3u);
  {
    auto child = dup_mm(*mm);
    ASSERT_TRUE(child.ok());
    EXPECT_EQ(read_byte(**child, a), 0x44);
    EXPECT_EQ(read_user<uint8_t>(**child, a + PAGE_SIZE).error(), Errno(EFAULT));
    EXPECT_EQ(read_byte(**child, a + 3 * PAGE_SIZE), 0x44);
    EXPECT_EQ((*child)->get_mm_counter(MM_ANONPAGES), 2);
  }
  // The pages the child never saw stay exclusive: no COW on write.
  Page* kept = testing::page_at(*mm, a + PAGE_SIZE);
  EXPECT_TRUE(PageAnonExclusive(kept));
  ASSERT_TRUE(do_madvise(*mm, a, 4 * PAGE_SIZE, MADV_DOFORK).ok());
  auto child = dup_mm(*mm);
  ASSERT_TRUE(child.ok());
  EXPECT_EQ(read_byte(**child, a + PAGE_SIZE), 0x44);
  // Holes: the mapped parts are advised, then ENOMEM.
  const VirtAddr b(0x10000000);
  ASSERT_TRUE(vm_mmap(*mm, b, PAGE_SIZE, kRw, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED).ok());
  EXPECT_EQ(do_madvise(*mm, b, 2 * PAGE_SIZE, MADV_DONTFORK).error(), Errno(ENOMEM));
  EXPECT_TRUE(any(mm->vma_lookup(b)->vm_flags & VM_DONTCOPY));
  EXPECT_VM_VALID(m.vm);
}

TEST(Madvise, DoforkOfAnIoMappingIsRefused) {
  VmMachine m;
  DriverBuffer buf(*m.ms, Order(0), 0);
  MmHandle mm = Mm::create(m.vm);
  auto a = vm_mmap(*mm, VirtAddr(0), PAGE_SIZE, kRw, MAP_SHARED, remapping_device(m.vm, buf.pfn()));
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(do_madvise(*mm, *a, PAGE_SIZE, MADV_DONTFORK).ok());
  EXPECT_EQ(do_madvise(*mm, *a, PAGE_SIZE, MADV_DOFORK).error(), Errno(EINVAL));
  ASSERT_TRUE(vm_munmap(*mm, *a, PAGE_SIZE).ok());
}

}  // namespace
}  // namespace pinmm
