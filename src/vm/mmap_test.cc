// mmap/munmap/mprotect/madvise: placement, splitting and Linux's errnos.
#include <gtest/gtest.h>

#include "testing/vm.h"

namespace pinmm {
namespace {

using testing::map_anon;
using testing::read_byte;
using testing::VmMachine;

TEST(Mmap, ErrnosOfBadArguments) {
  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  const int rw = PROT_READ | PROT_WRITE;
  EXPECT_EQ(vm_mmap(*mm, VirtAddr(0), 0, rw, MAP_PRIVATE | MAP_ANONYMOUS).error(), Errno(EINVAL));
  EXPECT_EQ(vm_mmap(*mm, VirtAddr(0), 4096, rw, MAP_ANONYMOUS).error(),
            Errno(EINVAL));  // neither type
  EXPECT_EQ(vm_mmap(*mm, VirtAddr(0), 4096, rw, MAP_PRIVATE).error(), Errno(EBADF));  // no file
  EXPECT_EQ(
      vm_mmap(*mm, VirtAddr(0x1234), 4096, rw, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED).error(),
      Errno(EINVAL));
  EXPECT_EQ(vm_mmap(*mm, VirtAddr(0), uint64_t{1} << 50, rw, MAP_PRIVATE | MAP_ANONYMOUS).error(),
            Errno(ENOMEM));
  auto file = File::create(m.vm, FsType::kTmpfs, "f", 4096);
  EXPECT_EQ(vm_mmap(*mm, VirtAddr(0), 4096, rw, MAP_SHARED, file, 100).error(), Errno(EINVAL));
  EXPECT_EQ(vm_munmap(*mm, VirtAddr(0x1001), 4096).error(), Errno(EINVAL));
  EXPECT_EQ(vm_munmap(*mm, VirtAddr(0x10000), 0).error(), Errno(EINVAL));
  EXPECT_TRUE(vm_munmap(*mm, VirtAddr(0x10000), 4096).ok());  // a hole is fine
}

TEST(Mmap, PlacementHintsAndFixed) {
  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_anon(*mm, 3 * PAGE_SIZE);
  const VirtAddr b = map_anon(*mm, PAGE_SIZE);
  EXPECT_EQ(b + PAGE_SIZE, a);  // top-down
  auto hinted =
      vm_mmap(*mm, VirtAddr(0x40000000), PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
  ASSERT_TRUE(hinted.ok());
  EXPECT_EQ(*hinted, VirtAddr(0x40000000));
  EXPECT_EQ(vm_mmap(*mm, a, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE)
                .error(),
            Errno(EEXIST));
  ASSERT_TRUE(write_user<uint8_t>(*mm, a + PAGE_SIZE, 9).ok());
  // MAP_FIXED replaces the middle page: its old contents are gone.
  auto fixed = vm_mmap(*mm, a + PAGE_SIZE, PAGE_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(read_byte(*mm, a + PAGE_SIZE), 0);
  {
    ReadGuard g(mm->mmap_lock);
    EXPECT_EQ(mm->vmas_in_range(a, a + 3 * PAGE_SIZE).size(), 3u);  // split into three
  }
  EXPECT_VM_VALID(m.vm);
}

TEST(Mmap, MprotectErrnos) {
  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_anon(*mm, 2 * PAGE_SIZE);
  EXPECT_EQ(do_mprotect(*mm, a + 1, PAGE_SIZE, PROT_READ).error(), Errno(EINVAL));
  EXPECT_EQ(do_mprotect(*mm, a, PAGE_SIZE, 0x100).error(), Errno(EINVAL));
  EXPECT_EQ(do_mprotect(*mm, a, 3 * PAGE_SIZE, PROT_READ).error(),
            Errno(ENOMEM));  // runs off the end
  EXPECT_TRUE(do_mprotect(*mm, a, 0, PROT_READ).ok());
  ASSERT_TRUE(do_mprotect(*mm, a + PAGE_SIZE, PAGE_SIZE, PROT_READ).ok());
  ASSERT_TRUE(write_user<uint8_t>(*mm, a, 1).ok());
  EXPECT_EQ(write_user<uint8_t>(*mm, a + PAGE_SIZE, 1).error(), Errno(EFAULT));
  EXPECT_VM_VALID(m.vm);
}

TEST(Madvise, DontneedDropsAnonymousPages) {
  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_anon(*mm, 4 * PAGE_SIZE);
  testing::fill_pages(*mm, a, 4 * PAGE_SIZE, 0x77);
  ASSERT_TRUE(do_madvise(*mm, a + PAGE_SIZE, 2 * PAGE_SIZE, MADV_DONTNEED).ok());
  EXPECT_EQ(mm->get_mm_counter(MM_ANONPAGES), 2);
  EXPECT_EQ(read_byte(*mm, a), 0x77);
  EXPECT_EQ(read_byte(*mm, a + PAGE_SIZE), 0);  // zero-filled on the next touch
  EXPECT_EQ(do_madvise(*mm, a, PAGE_SIZE, 12345).error(), Errno(EINVAL));
  EXPECT_EQ(do_madvise(*mm, a + 8 * PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED).error(), Errno(ENOMEM));
  EXPECT_VM_VALID(m.vm);
}

TEST(Madvise, PopulateReadAndWrite) {
  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_anon(*mm, 8 * PAGE_SIZE);
  ASSERT_TRUE(do_madvise(*mm, a, 8 * PAGE_SIZE, MADV_POPULATE_READ).ok());
  EXPECT_EQ(mm->get_mm_counter(MM_ANONPAGES), 0);  // zero pages
  EXPECT_EQ(pte_pfn(testing::pte_at(*mm, a)), m.ms->zero_pfn());
  ASSERT_TRUE(do_madvise(*mm, a, 8 * PAGE_SIZE, MADV_POPULATE_WRITE).ok());
  EXPECT_EQ(mm->get_mm_counter(MM_ANONPAGES), 8);
  const VirtAddr ro = map_anon(*mm, PAGE_SIZE, PROT_READ);
  EXPECT_EQ(do_madvise(*mm, ro, PAGE_SIZE, MADV_POPULATE_WRITE).error(), Errno(EINVAL));
  EXPECT_EQ(do_madvise(*mm, VirtAddr(0x20000), PAGE_SIZE, MADV_POPULATE_READ).error(),
            Errno(ENOMEM));
  auto file = File::create(m.vm, FsType::kTmpfs, "small", PAGE_SIZE);
  auto f = vm_mmap(*mm, VirtAddr(0), 2 * PAGE_SIZE, PROT_READ, MAP_SHARED, file);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(do_madvise(*mm, *f, 2 * PAGE_SIZE, MADV_POPULATE_READ).error(),
            Errno(EFAULT));  // SIGBUS past EOF
  EXPECT_VM_VALID(m.vm);
}

TEST(Mmap, MapPopulateFaultsEverythingIn) {
  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  auto a = vm_mmap(*mm, VirtAddr(0), 16 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(mm->get_mm_counter(MM_ANONPAGES), 16);  // private writable: write-populated
  const int64_t faults = m.ms->vmstat()[PGFAULT];
  testing::fill_pages(*mm, *a, 16 * PAGE_SIZE, 1);
  EXPECT_EQ(m.ms->vmstat()[PGFAULT], faults);
  EXPECT_VM_VALID(m.vm);
}

}  // namespace
}  // namespace pinmm
