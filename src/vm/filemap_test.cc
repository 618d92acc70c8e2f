// File-backed mappings: shared vs private, the page cache, dirty tracking
// and writeback, truncate.
#include <gtest/gtest.h>

#include "pinmm/base/rcu.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

using testing::page_at;
using testing::pte_at;
using testing::read_byte;
using testing::VmMachine;

VirtAddr map_file(Mm& mm, std::shared_ptr<File> file, uint64_t len, int flags,
                  int prot = PROT_READ | PROT_WRITE, uint64_t offset = 0) {
  auto r = vm_mmap(mm, VirtAddr(0), len, prot, flags, std::move(file), offset);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().name());
  return r.ok() ? *r : VirtAddr(0);
}

std::string read_file(File& f, uint64_t off, size_t n) {
  std::string s(n, '\0');
  EXPECT_TRUE(f.pread(std::as_writable_bytes(std::span(s)), off).ok());
  return s;
}

void write_file(File& f, uint64_t off, std::string_view data) {
  ASSERT_TRUE(f.pwrite(std::as_bytes(std::span(data)), off).ok());
}

TEST(FileMapping, SharedTmpfsWritesReachTheFileAndOtherMappings) {
  VmMachine m;
  auto file = File::create(m.vm, FsType::kTmpfs, "memfd:test", 4 * PAGE_SIZE);
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_file(*mm, file, 4 * PAGE_SIZE, MAP_SHARED);
  const VirtAddr b = map_file(*mm, file, 4 * PAGE_SIZE, MAP_SHARED);
  ASSERT_TRUE(write_user<char>(*mm, a + PAGE_SIZE + 3, 'x').ok());
  EXPECT_EQ(read_byte(*mm, b + PAGE_SIZE + 3), 'x');
  EXPECT_EQ(read_file(*file, PAGE_SIZE + 3, 1), "x");
  EXPECT_EQ(page_at(*mm, a + PAGE_SIZE), page_at(*mm, b + PAGE_SIZE));
  Folio* folio = page_folio(page_at(*mm, a + PAGE_SIZE));
  EXPECT_FALSE(folio_test_anon(folio));
  EXPECT_TRUE(folio_test_swapbacked(folio));  // shmem
  EXPECT_EQ(folio_mapcount(folio), 2);
  lru_add_drain_all(*m.ms);
  EXPECT_EQ(folio_ref_count(folio), 1 + 2);  // the cache and two mappings
  EXPECT_EQ(mm->get_mm_counter(MM_SHMEMPAGES), 2);
  EXPECT_EQ(m.ms->vmstat()[NR_SHMEM], 1);
  EXPECT_EQ(m.ms->vmstat()[NR_FILE_MAPPED], 1);
  // tmpfs needs no write notification: the shared PTE is writable at once.
  EXPECT_TRUE(pte_write(pte_at(*mm, b + PAGE_SIZE)));
  EXPECT_VM_VALID(m.vm);
}

TEST(FileMapping, PrivateMappingCopiesOnWrite) {
  VmMachine m;
  auto file = File::create(m.vm, FsType::kTmpfs, "data", 2 * PAGE_SIZE);
  write_file(*file, 0, "file data");
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr p = map_file(*mm, file, 2 * PAGE_SIZE, MAP_PRIVATE);
  EXPECT_EQ(read_byte(*mm, p), 'f');
  Page* cache_page = page_at(*mm, p);
  EXPECT_FALSE(folio_test_anon(page_folio(cache_page)));
  EXPECT_FALSE(pte_write(pte_at(*mm, p)));  // private: read-only until written
  ASSERT_TRUE(write_user<char>(*mm, p, 'F').ok());
  EXPECT_NE(page_at(*mm, p), cache_page);
  EXPECT_TRUE(folio_test_anon(page_folio(page_at(*mm, p))));
  EXPECT_EQ(read_file(*file, 0, 4), "file");  // the file is untouched
  EXPECT_EQ(read_byte(*mm, p + 1), 'i');      // the copy kept the rest
  // Writing a page never read: the fault copies straight from the file.
  write_file(*file, PAGE_SIZE, "second");
  ASSERT_TRUE(write_user<char>(*mm, p + PAGE_SIZE + 1, 'E').ok());
  EXPECT_EQ(read_byte(*mm, p + PAGE_SIZE), 's');
  EXPECT_EQ(read_file(*file, PAGE_SIZE, 6), "second");
  EXPECT_EQ(mm->get_mm_counter(MM_ANONPAGES), 2);
  EXPECT_EQ(mm->get_mm_counter(MM_SHMEMPAGES), 0);
  EXPECT_VM_VALID(m.vm);
}

TEST(FileMapping, ForkedChildFaultsFilePagesOnDemand) {
  VmMachine m;
  auto file = File::create(m.vm, FsType::kTmpfs, "shared", PAGE_SIZE);
  MmHandle parent = Mm::create(m.vm);
  const VirtAddr a = map_file(*parent, file, PAGE_SIZE, MAP_SHARED);
  ASSERT_TRUE(write_user<char>(*parent, a, 'p').ok());
  auto child = dup_mm(*parent);
  ASSERT_TRUE(child.ok());
  EXPECT_EQ(page_at(**child, a), nullptr);  // no anon pages: entries not copied
  EXPECT_EQ(read_byte(**child, a), 'p');
  ASSERT_TRUE(write_user<char>(**child, a, 'c').ok());
  EXPECT_EQ(read_byte(*parent, a), 'c');
  EXPECT_VM_VALID(m.vm);
}

TEST(FileMapping, Ext4SharedWritesAreTrackedAndWrittenBack) {
  VmMachine m;
  auto file = File::create(m.vm, FsType::kExt4, "/mnt/ext4/data", 2 * PAGE_SIZE);
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_file(*mm, file, 2 * PAGE_SIZE, MAP_SHARED);
  Vma* vma = nullptr;
  {
    ReadGuard g(mm->mmap_lock);
    vma = mm->vma_lookup(a);
    EXPECT_TRUE(vma_needs_dirty_tracking(vma));
  }
  const int64_t major0 = m.ms->vmstat()[PGMAJFAULT];
  EXPECT_EQ(read_byte(*mm, a), 0);
  EXPECT_EQ(m.ms->vmstat()[PGMAJFAULT], major0 + 1);  // read from "disk"
  EXPECT_FALSE(pte_write(pte_at(*mm, a)));            // write-notify: read-only until written
  const int64_t faults0 = m.ms->vmstat()[PGFAULT];
  ASSERT_TRUE(write_user<char>(*mm, a, 'd').ok());
  EXPECT_EQ(m.ms->vmstat()[PGFAULT], faults0 + 1);  // page_mkwrite fault
  Folio* folio = page_folio(page_at(*mm, a));
  EXPECT_TRUE(folio_test_dirty(folio));
  EXPECT_TRUE(pte_write(pte_at(*mm, a)));
  EXPECT_EQ(m.ms->vmstat()[NR_FILE_DIRTY], 1);

  EXPECT_EQ(file->writeback(), 1u);
  EXPECT_FALSE(folio_test_dirty(folio));
  EXPECT_FALSE(pte_write(pte_at(*mm, a)));  // cleaned and write-protected again
  EXPECT_EQ(m.ms->vmstat()[NR_FILE_DIRTY], 0);
  EXPECT_EQ(m.ms->vmstat()[NR_WRITTEN], 1);
  ASSERT_TRUE(write_user<char>(*mm, a, 'e').ok());  // faults again to dirty it
  EXPECT_EQ(m.ms->vmstat()[PGFAULT], faults0 + 2);
  EXPECT_TRUE(folio_test_dirty(folio));
  EXPECT_EQ(read_file(*file, 0, 1), "e");
  EXPECT_VM_VALID(m.vm);
}

TEST(FileMapping, TruncateUnmapsAndFreesThePages) {
  VmMachine m;
  auto file = File::create(m.vm, FsType::kTmpfs, "trunc", 4 * PAGE_SIZE);
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr shared = map_file(*mm, file, 4 * PAGE_SIZE, MAP_SHARED);
  const VirtAddr priv = map_file(*mm, file, 4 * PAGE_SIZE, MAP_PRIVATE);
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(write_user<char>(*mm, shared + i * PAGE_SIZE, 'a' + i).ok());
  ASSERT_TRUE(write_user<char>(*mm, priv + 3 * PAGE_SIZE, 'P').ok());  // a private COW copy
  EXPECT_EQ(m.ms->vmstat()[NR_SHMEM], 4);
  const int64_t free0 = m.free_pages();
  ASSERT_TRUE(file->truncate(PAGE_SIZE + 10).ok());
  lru_add_drain_all(*m.ms);
  EXPECT_EQ(m.ms->vmstat()[NR_SHMEM], 2);
  EXPECT_EQ(m.free_pages(), free0 + 2 + 1);  // two cache pages and the private copy
  EXPECT_EQ(read_byte(*mm, shared + PAGE_SIZE), 'b');
  EXPECT_EQ(read_byte(*mm, shared + PAGE_SIZE + 10), 0);  // the tail was zeroed
  // Beyond EOF: SIGBUS.
  EXPECT_EQ(read_user<char>(*mm, shared + 2 * PAGE_SIZE).error(), Errno(EFAULT));
  EXPECT_EQ(read_user<char>(*mm, priv + 3 * PAGE_SIZE).error(), Errno(EFAULT));
  EXPECT_VM_VALID(m.vm);
}

TEST(FileMapping, MapSharedOfReadOnlyMappingCannotBecomeWritable) {
  VmMachine m;
  auto file = File::create(m.vm, FsType::kTmpfs, "ro", PAGE_SIZE);
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_file(*mm, file, PAGE_SIZE, MAP_SHARED, PROT_READ);
  EXPECT_EQ(write_user<char>(*mm, a, 'x').error(), Errno(EFAULT));
  ASSERT_TRUE(do_mprotect(*mm, a, PAGE_SIZE, PROT_READ | PROT_WRITE).ok());  // VM_MAYWRITE is set
  ASSERT_TRUE(write_user<char>(*mm, a, 'x').ok());
  EXPECT_EQ(read_file(*file, 0, 1), "x");
  EXPECT_VM_VALID(m.vm);
}

TEST(FileMapping, FileGoesAwayWithItsLastMapping) {
  VmMachine m;
  const int64_t free0 = m.free_pages();
  {
    MmHandle mm = Mm::create(m.vm);
    auto file = File::create(m.vm, FsType::kTmpfs, "tmp", 8 * PAGE_SIZE);
    const VirtAddr a = map_file(*mm, file, 8 * PAGE_SIZE, MAP_SHARED);
    testing::fill_pages(*mm, a, 8 * PAGE_SIZE, 3);
  }
  lru_add_drain_all(*m.ms);
  rcu::barrier();
  EXPECT_EQ(m.free_pages(), free0);
  EXPECT_EQ(m.ms->vmstat()[NR_FILE_PAGES], 0);
  EXPECT_VM_VALID(m.vm);
}

}  // namespace
}  // namespace pinmm
