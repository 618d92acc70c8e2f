// The kernel's hmm-tests (tools/testing/selftests/mm/hmm-tests.c,
// KERNEL-SPEC 10.3) against dmirror, for device-private and device-coherent
// memory, with the expected results listed there.
#include "pinmm/devices/dmirror.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "pinmm/base/task.h"
#include "pinmm/gup/flags.h"
#include "pinmm/gup/gup.h"
#include "pinmm/gup/gup_test_module.h"
#include "pinmm/gup/pin.h"
#include "pinmm/phys/pin_owners.h"
#include "pinmm/vm/device_map.h"
#include "testing/migrate.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

using testing::map_anon;
using testing::page_at;

constexpr uint64_t kNpages = 1024;  // HMM_BUFFER_SIZE / 4 KiB

MachineConfig hmm_machine() {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(96));
  c.device_space = Bytes::MiB(48);
  c.thp = ThpMode::kMadvise;
  c.hugepages.push_back({Bytes::MiB(2), 4, std::nullopt});
  return c;
}

// A test buffer: the host side of cmd.ptr.
struct Buffer {
  explicit Buffer(uint64_t pages) : bytes(pages * PAGE_SIZE) {}
  int* ints() { return reinterpret_cast<int*>(bytes.data()); }
  size_t nr_ints() const { return bytes.size() / sizeof(int); }
  std::vector<std::byte> bytes;
};

class HmmTests : public ::testing::TestWithParam<DmirrorMemory> {
 protected:
  HmmTests() : m(hmm_machine()), mm(Mm::create(m.vm)) {
    current().set_mm(mm.get());
    dev0 = std::make_unique<DmirrorDevice>(*m.ms, GetParam(), 0);
    dev1 = std::make_unique<DmirrorDevice>(*m.ms, GetParam(), 1);
    fd0 = std::make_unique<Dmirror>(*dev0, *mm);
    fd1 = std::make_unique<Dmirror>(*dev1, *mm);
  }
  ~HmmTests() override {
    fd0.reset();
    fd1.reset();
    dev0.reset();
    dev1.reset();
    mm.reset();
    current().set_mm(nullptr);
  }
  bool is_private() const { return GetParam() == DmirrorMemory::kPrivate; }

  // hmm_dmirror_cmd: one ioctl over `npages` at addr with `buf`.
  int cmd(Dmirror& fd, unsigned op, VirtAddr addr, uint64_t npages, Buffer& buf,
          HmmDmirrorCmd* out = nullptr) {
    HmmDmirrorCmd c;
    c.addr = addr.value();
    c.ptr = buf.bytes.data();
    c.npages = npages;
    const int rc = fd.ioctl(op, &c);
    if (out != nullptr) *out = c;
    return rc;
  }
  // Writes i to every int of the CPU buffer.
  void cpu_fill(Mm& target, VirtAddr a, uint64_t npages, int base = 0) {
    std::vector<int> v(npages * PAGE_SIZE / sizeof(int));
    for (size_t i = 0; i < v.size(); ++i)
      v[i] = base + static_cast<int>(i);
    ASSERT_TRUE(copy_to_user(target, a, std::as_bytes(std::span(v))).ok());
  }
  std::vector<int> cpu_read(Mm& target, VirtAddr a, uint64_t npages) {
    std::vector<int> v(npages * PAGE_SIZE / sizeof(int));
    EXPECT_TRUE(copy_from_user(target, std::as_writable_bytes(std::span(v)), a).ok());
    return v;
  }
  void expect_ints(const int* p, size_t n, int base = 0) {
    for (size_t i = 0; i < n; ++i)
      ASSERT_EQ(p[i], base + static_cast<int>(i)) << "int " << i;
  }
  void expect_all_valid() {
    EXPECT_VM_VALID(m.vm);
    EXPECT_VALID(*m.ms);
    EXPECT_VALID(*dev0);
    EXPECT_VALID(*dev1);
  }

  testing::VmMachine m;
  MmHandle mm;
  std::unique_ptr<DmirrorDevice> dev0, dev1;
  std::unique_ptr<Dmirror> fd0, fd1;
};

INSTANTIATE_TEST_SUITE_P(Hmm, HmmTests,
                         ::testing::Values(DmirrorMemory::kPrivate, DmirrorMemory::kCoherent),
                         [](const auto& param_info) {
                           return param_info.param == DmirrorMemory::kPrivate ? "device_private"
                                                                              : "device_coherent";
                         });

TEST_P(HmmTests, OpenClose) {
  EXPECT_TRUE(fd0->ok());
  EXPECT_EQ(dev0->nr_chunks(), 1u);
}

// anon_read: page 0 left empty, page 1 the zero page (CPU read), the rest i;
// R/O. One fault round covers everything.
TEST_P(HmmTests, AnonRead) {
  const VirtAddr a = map_anon(*mm, kNpages * PAGE_SIZE);
  cpu_fill(*mm, a, kNpages);
  ASSERT_TRUE(do_madvise(*mm, a, 2 * PAGE_SIZE, MADV_DONTNEED).ok());
  EXPECT_EQ(testing::read_byte(*mm, a + PAGE_SIZE), 0);  // the zero page
  ASSERT_TRUE(do_mprotect(*mm, a, kNpages * PAGE_SIZE, PROT_READ).ok());
  Buffer buf(kNpages);
  HmmDmirrorCmd c;
  ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_READ, a, kNpages, buf, &c), 0);
  EXPECT_EQ(c.cpages, kNpages);
  EXPECT_EQ(c.faults, 1u);
  const int* p = buf.ints();
  const size_t two_pages = 2 * PAGE_SIZE / sizeof(int);
  for (size_t i = 0; i < two_pages; ++i)
    ASSERT_EQ(p[i], 0) << i;
  for (size_t i = two_pages; i < buf.nr_ints(); ++i)
    ASSERT_EQ(p[i], static_cast<int>(i)) << i;
  expect_all_valid();
}

// anon_read_prot: PROT_NONE memory cannot be read; the buffer is untouched.
TEST_P(HmmTests, AnonReadProt) {
  const VirtAddr a = map_anon(*mm, kNpages * PAGE_SIZE);
  cpu_fill(*mm, a, kNpages);
  ASSERT_TRUE(do_mprotect(*mm, a, kNpages * PAGE_SIZE, PROT_NONE).ok());
  Buffer buf(kNpages);
  std::fill(buf.ints(), buf.ints() + buf.nr_ints(), -1);
  EXPECT_EQ(cmd(*fd0, HMM_DMIRROR_READ, a, kNpages, buf), -EFAULT);
  for (size_t i = 0; i < buf.nr_ints(); ++i)
    ASSERT_EQ(buf.ints()[i], -1);
  expect_all_valid();
}

// anon_write: the device writes, the CPU sees it.
TEST_P(HmmTests, AnonWrite) {
  const VirtAddr a = map_anon(*mm, kNpages * PAGE_SIZE);
  Buffer buf(kNpages);
  expect_ints(buf.ints(), 0);
  for (size_t i = 0; i < buf.nr_ints(); ++i)
    buf.ints()[i] = static_cast<int>(i);
  HmmDmirrorCmd c;
  ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_WRITE, a, kNpages, buf, &c), 0);
  EXPECT_EQ(c.cpages, kNpages);
  EXPECT_EQ(c.faults, 1u);
  const auto v = cpu_read(*mm, a, kNpages);
  expect_ints(v.data(), v.size());
  expect_all_valid();
}

// anon_write_prot: a read maps the zero page; after mprotect R/O a write is
// -EPERM and memory stays zero; after RW the write replaces the zero page.
TEST_P(HmmTests, AnonWriteProt) {
  const VirtAddr a = map_anon(*mm, PAGE_SIZE, PROT_READ);
  Buffer buf(1);
  HmmDmirrorCmd c;
  ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_READ, a, 1, buf, &c), 0);
  EXPECT_EQ(c.cpages, 1u);
  EXPECT_EQ(c.faults, 1u);
  EXPECT_EQ(buf.ints()[0], 0);
  for (size_t i = 0; i < buf.nr_ints(); ++i)
    buf.ints()[i] = static_cast<int>(i);
  EXPECT_EQ(cmd(*fd0, HMM_DMIRROR_WRITE, a, 1, buf), -EPERM);
  EXPECT_EQ(cpu_read(*mm, a, 1)[1], 0);
  ASSERT_TRUE(do_mprotect(*mm, a, PAGE_SIZE, PROT_READ | PROT_WRITE).ok());
  ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_WRITE, a, 1, buf, &c), 0);
  EXPECT_EQ(c.cpages, 1u);
  EXPECT_EQ(c.faults, 1u);
  const auto v = cpu_read(*mm, a, 1);
  expect_ints(v.data(), v.size());
  expect_all_valid();
}

// anon_write_child / anon_write_child_shared: after fork the child's
// mirror writes; a private mapping keeps the parent's data (COW), a shared
// one shows the child's.
TEST_P(HmmTests, AnonWriteChild) {
  for (const bool shared : {false, true}) {
    SCOPED_TRACE(shared ? "MAP_SHARED" : "MAP_PRIVATE");
    const VirtAddr a = map_anon(*mm, kNpages * PAGE_SIZE, PROT_READ | PROT_WRITE,
                                shared ? MAP_SHARED : MAP_PRIVATE);
    cpu_fill(*mm, a, kNpages);
    auto child = dup_mm(*mm);
    ASSERT_TRUE(child.ok());
    {
      Dmirror cfd(*dev0, **child);
      Buffer buf(kNpages);
      for (size_t i = 0; i < buf.nr_ints(); ++i)
        buf.ints()[i] = -static_cast<int>(i);
      HmmDmirrorCmd c;
      ASSERT_EQ(cmd(cfd, HMM_DMIRROR_WRITE, a, kNpages, buf, &c), 0);
      EXPECT_EQ(c.cpages, kNpages);
      EXPECT_EQ(c.faults, 1u);
      const auto cv = cpu_read(**child, a, kNpages);
      for (size_t i = 0; i < cv.size(); ++i)
        ASSERT_EQ(cv[i], -static_cast<int>(i));
    }
    child->reset();
    const auto pv = cpu_read(*mm, a, kNpages);
    for (size_t i = 0; i < pv.size(); ++i)
      ASSERT_EQ(pv[i], shared ? -static_cast<int>(i) : static_cast<int>(i)) << i;
    ASSERT_TRUE(vm_munmap(*mm, a, kNpages * PAGE_SIZE).ok());
  }
  expect_all_valid();
}

// anon_write_huge: a THP is written through the mirror.
TEST_P(HmmTests, AnonWriteHuge) {
  const VirtAddr raw = map_anon(*mm, 2 * HPAGE_PMD_SIZE);
  const VirtAddr a(raw.value() + HPAGE_PMD_SIZE - raw.value() % HPAGE_PMD_SIZE);
  ASSERT_TRUE(do_madvise(*mm, a, HPAGE_PMD_SIZE, MADV_HUGEPAGE).ok());
  const uint64_t n = HPAGE_PMD_NR;
  Buffer buf(n);
  for (size_t i = 0; i < buf.nr_ints(); ++i)
    buf.ints()[i] = static_cast<int>(i);
  ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_WRITE, a, n, buf), 0);
  EXPECT_TRUE(pmd_leaf(testing::pmd_at(*mm, a))) << "written through a THP";
  const auto v = cpu_read(*mm, a, n);
  expect_ints(v.data(), v.size());
  expect_all_valid();
}

// anon_write_hugetlbfs.
TEST_P(HmmTests, AnonWriteHugetlbfs) {
  auto r = vm_mmap(*mm, VirtAddr(0), HPAGE_PMD_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
  ASSERT_TRUE(r.ok());
  Buffer buf(HPAGE_PMD_NR);
  for (size_t i = 0; i < buf.nr_ints(); ++i)
    buf.ints()[i] = static_cast<int>(i);
  ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_WRITE, *r, HPAGE_PMD_NR, buf), 0);
  const auto v = cpu_read(*mm, *r, HPAGE_PMD_NR);
  expect_ints(v.data(), v.size());
  expect_all_valid();
}

// file_read / file_write: a shared file mapping, read and written by the
// device; the writes reach the page cache (pread sees them).
TEST_P(HmmTests, FileReadAndWrite) {
  auto file = File::create(m.vm, FsType::kExt4, "hmm", 0);
  std::vector<int> data(kNpages * PAGE_SIZE / sizeof(int));
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<int>(i);
  ASSERT_TRUE(file->pwrite(std::as_bytes(std::span(data)), 0).ok());
  auto r =
      vm_mmap(*mm, VirtAddr(0), kNpages * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, file, 0);
  ASSERT_TRUE(r.ok());
  Buffer buf(kNpages);
  HmmDmirrorCmd c;
  ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_READ, *r, kNpages, buf, &c), 0);
  EXPECT_EQ(c.cpages, kNpages);
  EXPECT_EQ(c.faults, 1u);
  expect_ints(buf.ints(), buf.nr_ints());
  for (size_t i = 0; i < buf.nr_ints(); ++i)
    buf.ints()[i] = -static_cast<int>(i);
  ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_WRITE, *r, kNpages, buf, &c), 0);
  EXPECT_EQ(c.cpages, kNpages);
  EXPECT_EQ(c.faults, 1u) << "read-only entries are upgraded in one fault round";
  const auto v = cpu_read(*mm, *r, kNpages);
  std::vector<int> on_file(data.size());
  ASSERT_TRUE(file->pread(std::as_writable_bytes(std::span(on_file)), 0).ok());
  for (size_t i = 0; i < v.size(); ++i) {
    ASSERT_EQ(v[i], -static_cast<int>(i));
    ASSERT_EQ(on_file[i], -static_cast<int>(i));
  }
  expect_all_valid();
}

// migrate: private anon memory moves to the device; the device reads it
// back; the CPU sees it again (private: through migrate_to_ram).
TEST_P(HmmTests, Migrate) {
  const VirtAddr a = map_anon(*mm, kNpages * PAGE_SIZE);
  cpu_fill(*mm, a, kNpages);
  Buffer buf(kNpages);
  HmmDmirrorCmd c;
  ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_MIGRATE_TO_DEV, a, kNpages, buf, &c), 0);
  EXPECT_EQ(c.cpages, kNpages);
  expect_ints(buf.ints(), buf.nr_ints());
  if (is_private()) {
    const pte_t pte = testing::pte_at(*mm, a);
    ASSERT_TRUE(is_swap_pte(pte) && is_device_private_entry(pte_to_swp_entry(pte)));
  } else {
    Page* p = page_at(*mm, a);
    ASSERT_TRUE(p != nullptr && is_device_coherent_page(p));
  }
  EXPECT_EQ(dev0->nr_allocated(), kNpages);
  expect_all_valid();
  const auto v = cpu_read(*mm, a, kNpages);
  expect_ints(v.data(), v.size());
  if (is_private()) {
    EXPECT_FALSE(is_zone_device_page(page_at(*mm, a))) << "faulted back to RAM";
  }
  expect_all_valid();
}

// migrate_file_private: a MAP_PRIVATE file mapping whose pages were
// written (COWed to anon) migrates whole.
TEST_P(HmmTests, MigrateFilePrivate) {
  auto file = File::create(m.vm, FsType::kTmpfs, "hmm", kNpages * PAGE_SIZE);
  auto r =
      vm_mmap(*mm, VirtAddr(0), kNpages * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, file, 0);
  ASSERT_TRUE(r.ok());
  cpu_fill(*mm, *r, kNpages);
  Buffer buf(kNpages);
  HmmDmirrorCmd c;
  ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_MIGRATE_TO_DEV, *r, kNpages, buf, &c), 0);
  EXPECT_EQ(c.cpages, kNpages);
  expect_ints(buf.ints(), buf.nr_ints());
  const auto v = cpu_read(*mm, *r, kNpages);
  expect_ints(v.data(), v.size());
  expect_all_valid();
}

// migrate_fault / migrate_multiple: migrate, let the CPU fault half back
// (coherent: migrate back explicitly), migrate again; data intact.
TEST_P(HmmTests, MigrateFaultAndMultiple) {
  const VirtAddr a = map_anon(*mm, kNpages * PAGE_SIZE);
  for (int round = 0; round < 10; ++round) {
    SCOPED_TRACE(round);
    cpu_fill(*mm, a, kNpages, round);
    Buffer buf(kNpages);
    HmmDmirrorCmd c;
    ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_MIGRATE_TO_DEV, a, kNpages, buf, &c), 0);
    ASSERT_EQ(c.cpages, kNpages);
    expect_ints(buf.ints(), buf.nr_ints(), round);
    if (is_private()) {
      const auto half = cpu_read(*mm, a, kNpages / 2);  // faults half back
      expect_ints(half.data(), half.size(), round);
    } else {
      ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_MIGRATE_TO_SYS, a, kNpages, buf, &c), 0);
      ASSERT_EQ(c.cpages, kNpages);
    }
    const auto v = cpu_read(*mm, a, kNpages);
    expect_ints(v.data(), v.size(), round);
  }
  expect_all_valid();
}

// migrate_release: the device gives its memory back (RELEASE evicts every
// chunk); the data is back in RAM.
TEST_P(HmmTests, MigrateRelease) {
  const VirtAddr a = map_anon(*mm, kNpages * PAGE_SIZE);
  cpu_fill(*mm, a, kNpages);
  Buffer buf(kNpages);
  HmmDmirrorCmd c;
  ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_MIGRATE_TO_DEV, a, kNpages, buf, &c), 0);
  ASSERT_EQ(c.cpages, kNpages);
  ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_RELEASE, a, kNpages, buf), 0);
  EXPECT_EQ(dev0->nr_chunks(), 0u);
  EXPECT_FALSE(is_zone_device_page(page_at(*mm, a)));
  const auto v = cpu_read(*mm, a, kNpages);
  expect_ints(v.data(), v.size());
  expect_all_valid();
}

// Closing the mirror evicts its device memory to RAM with __GFP_NOFAIL:
// allocation failures injected meanwhile cannot leave a page behind in the
// device, pointing at a mirror that is gone (the ops fuzzer found a fault
// on such a page calling into the freed mirror).
TEST_P(HmmTests, CloseEvictsEvenWhenAllocationsFail) {
  const VirtAddr a = map_anon(*mm, 16 * PAGE_SIZE);
  cpu_fill(*mm, a, 16);
  Buffer buf(16);
  HmmDmirrorCmd c;
  ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_MIGRATE_TO_DEV, a, 16, buf, &c), 0);
  ASSERT_EQ(c.cpages, 16u);
  m.ms->injector().fail_always(inject_point::kAllocPages);
  fd0.reset();
  m.ms->injector().clear_all();
  for (uint64_t i = 0; i < 16; ++i)
    EXPECT_FALSE(is_zone_device_page(page_at(*mm, a + i * PAGE_SIZE))) << "page " << i;
  const auto v = cpu_read(*mm, a, 16);
  expect_ints(v.data(), v.size());
  expect_all_valid();
}

// A CPU fault on a device-private page whose migration back to RAM cannot
// get a page answers VM_FAULT_OOM, as lib/test_hmm.c's does: GUP and the
// CPU access fail with ENOMEM instead of retrying forever (pinmm stress
// found a long-term pin spinning in __get_user_pages, the pin scope keeping
// it out of the free movable memory), and nothing stays collected.
TEST_P(HmmTests, AFaultBackWithoutMemoryIsOom) {
  if (!is_private()) GTEST_SKIP() << "the CPU maps coherent memory directly";
  const VirtAddr a = map_anon(*mm, 4 * PAGE_SIZE);
  cpu_fill(*mm, a, 4);
  Buffer buf(4);
  HmmDmirrorCmd c;
  ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_MIGRATE_TO_DEV, a, 4, buf, &c), 0);
  ASSERT_EQ(c.cpages, 4u);
  m.ms->injector().fail_always(inject_point::kAllocPages);
  Page* page = nullptr;
  {
    ReadGuard g(mm->mmap_lock);
    EXPECT_EQ(pin_user_pages_remote(*mm, a.value(), 1, FOLL_WRITE | FOLL_LONGTERM, &page, nullptr),
              -ENOMEM);
  }
  EXPECT_EQ(read_user<int>(*mm, a + PAGE_SIZE).error(), Errno(ENOMEM));
  m.ms->injector().clear_all();
  const pte_t pte = testing::pte_at(*mm, a);
  EXPECT_TRUE(is_swap_pte(pte) && is_device_private_entry(pte_to_swp_entry(pte)))
      << "still in the device, no migration entry left";
  expect_all_valid();
  const auto v = cpu_read(*mm, a, 4);
  expect_ints(v.data(), v.size());
  expect_all_valid();
}

// migrate_shared: shared memory is not migrated.
TEST_P(HmmTests, MigrateShared) {
  const VirtAddr a = map_anon(*mm, kNpages * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED);
  cpu_fill(*mm, a, kNpages);
  Buffer buf(kNpages);
  EXPECT_EQ(cmd(*fd0, HMM_DMIRROR_MIGRATE_TO_DEV, a, kNpages, buf), -ENOENT);
  const auto v = cpu_read(*mm, a, kNpages);
  expect_ints(v.data(), v.size());
  expect_all_valid();
}

// migrate_mixed (hmm2): PROT_NONE pages cannot migrate; a hole inside the
// range is -EINVAL; zero, R/O and RW pages migrate to dev1; dev0 then
// cannot take dev1's page.
TEST_P(HmmTests, MigrateMixed) {
  const VirtAddr a = map_anon(*mm, 6 * PAGE_SIZE, PROT_NONE);
  Buffer buf(6);
  EXPECT_EQ(cmd(*fd1, HMM_DMIRROR_MIGRATE_TO_DEV, a, 6, buf), -EINVAL);
  ASSERT_TRUE(vm_munmap(*mm, a + PAGE_SIZE, PAGE_SIZE).ok());
  EXPECT_EQ(cmd(*fd1, HMM_DMIRROR_MIGRATE_TO_DEV, a, 3, buf), -EINVAL);
  ASSERT_TRUE(do_mprotect(*mm, a + 2 * PAGE_SIZE, PAGE_SIZE, PROT_READ).ok());
  EXPECT_EQ(testing::read_byte(*mm, a + 2 * PAGE_SIZE), 0);  // the zero page
  ASSERT_TRUE(do_mprotect(*mm, a + 3 * PAGE_SIZE, 3 * PAGE_SIZE, PROT_READ | PROT_WRITE).ok());
  cpu_fill(*mm, a + 3 * PAGE_SIZE, 3);
  ASSERT_TRUE(do_mprotect(*mm, a + 3 * PAGE_SIZE, PAGE_SIZE, PROT_READ).ok());
  HmmDmirrorCmd c;
  ASSERT_EQ(cmd(*fd1, HMM_DMIRROR_MIGRATE_TO_DEV, a + 2 * PAGE_SIZE, 4, buf, &c), 0);
  EXPECT_EQ(c.cpages, 4u);
  EXPECT_EQ(cmd(*fd0, HMM_DMIRROR_MIGRATE_TO_DEV, a + 5 * PAGE_SIZE, 1, buf), -ENOENT);
  const auto v = cpu_read(*mm, a + 3 * PAGE_SIZE, 3);
  expect_ints(v.data(), v.size());
  expect_all_valid();
}

// anon_read_multiple: ten buffers, each read once.
TEST_P(HmmTests, AnonReadMultiple) {
  for (int round = 0; round < 10; ++round) {
    const VirtAddr a = map_anon(*mm, kNpages * PAGE_SIZE);
    cpu_fill(*mm, a, kNpages, round);
    Buffer buf(kNpages);
    HmmDmirrorCmd c;
    ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_READ, a, kNpages, buf, &c), 0);
    EXPECT_EQ(c.cpages, kNpages);
    EXPECT_EQ(c.faults, 1u);
    expect_ints(buf.ints(), buf.nr_ints(), round);
    ASSERT_TRUE(vm_munmap(*mm, a, kNpages * PAGE_SIZE).ok());
  }
  EXPECT_EQ(fd0->nr_mirrored(), 0u) << "every munmap invalidated the mirror";
  expect_all_valid();
}

// mixedmap: the device file itself mapped (vm_insert_page, VM_MIXEDMAP).
TEST_P(HmmTests, Mixedmap) {
  Page* page = alloc_pages(*m.ms, GFP_KERNEL | __GFP_ZERO, Order(0));
  ASSERT_NE(page, nullptr);
  auto file = File::create_device(
      m.vm, "hmm_dmirror0", [page](Vma& vma) { return vm_insert_page(vma, vma.vm_start, page); });
  auto r = vm_mmap(*mm, VirtAddr(0), PAGE_SIZE, PROT_READ, MAP_PRIVATE, file, 0);
  ASSERT_TRUE(r.ok());
  put_page(page);  // the mapping holds it now
  uint8_t perm[1] = {0xaa};
  HmmDmirrorCmd c;
  c.addr = r->value();
  c.ptr = perm;
  c.npages = 1;
  ASSERT_EQ(fd0->ioctl(HMM_DMIRROR_SNAPSHOT, &c), 0);
  EXPECT_EQ(perm[0], HMM_DMIRROR_PROT_READ);
  expect_all_valid();
}

// snapshot (hmm2): what the CPU mapping of each page looks like to dev0.
TEST_P(HmmTests, Snapshot) {
  const VirtAddr a = map_anon(*mm, 7 * PAGE_SIZE, PROT_NONE);
  ASSERT_TRUE(vm_munmap(*mm, a + PAGE_SIZE, PAGE_SIZE).ok());
  ASSERT_TRUE(do_mprotect(*mm, a + 2 * PAGE_SIZE, PAGE_SIZE, PROT_READ).ok());
  EXPECT_EQ(testing::read_byte(*mm, a + 2 * PAGE_SIZE), 0);
  ASSERT_TRUE(do_mprotect(*mm, a + 3 * PAGE_SIZE, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE).ok());
  cpu_fill(*mm, a + 3 * PAGE_SIZE, 4);
  ASSERT_TRUE(do_mprotect(*mm, a + 3 * PAGE_SIZE, PAGE_SIZE, PROT_READ).ok());
  Buffer buf(1);
  HmmDmirrorCmd c;
  ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_MIGRATE_TO_DEV, a + 5 * PAGE_SIZE, 1, buf, &c), 0);
  EXPECT_EQ(c.cpages, 1u);
  ASSERT_EQ(cmd(*fd1, HMM_DMIRROR_MIGRATE_TO_DEV, a + 6 * PAGE_SIZE, 1, buf, &c), 0);
  EXPECT_EQ(c.cpages, 1u);
  uint8_t perm[7];
  std::memset(perm, 0xaa, sizeof perm);
  c = HmmDmirrorCmd{};
  c.addr = a.value();
  c.ptr = perm;
  c.npages = 7;
  ASSERT_EQ(fd0->ioctl(HMM_DMIRROR_SNAPSHOT, &c), 0);
  EXPECT_EQ(c.cpages, 7u);
  EXPECT_EQ(perm[0], HMM_DMIRROR_PROT_ERROR);
  EXPECT_EQ(perm[1], HMM_DMIRROR_PROT_ERROR);
  EXPECT_EQ(perm[2], HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ);
  EXPECT_EQ(perm[3], HMM_DMIRROR_PROT_READ);
  EXPECT_EQ(perm[4], HMM_DMIRROR_PROT_WRITE);
  if (is_private()) {
    EXPECT_EQ(perm[5], HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE);
    EXPECT_EQ(perm[6], HMM_DMIRROR_PROT_NONE) << "another device's private page is not visible";
  } else {
    EXPECT_EQ(perm[5], HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE);
    EXPECT_EQ(perm[6], HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE | HMM_DMIRROR_PROT_WRITE);
  }
  expect_all_valid();
}

// compound: a hugetlb mapping is reported with the PMD order, R/W then R/O.
TEST_P(HmmTests, Compound) {
  auto r = vm_mmap(*mm, VirtAddr(0), HPAGE_PMD_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
  ASSERT_TRUE(r.ok());
  cpu_fill(*mm, *r, HPAGE_PMD_NR);
  std::vector<uint8_t> perm(HPAGE_PMD_NR);
  HmmDmirrorCmd c;
  c.addr = r->value();
  c.ptr = perm.data();
  c.npages = HPAGE_PMD_NR;
  ASSERT_EQ(fd0->ioctl(HMM_DMIRROR_SNAPSHOT, &c), 0);
  for (uint8_t p : perm)
    ASSERT_EQ(p, HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD);
  ASSERT_TRUE(do_mprotect(*mm, *r, HPAGE_PMD_SIZE, PROT_READ).ok());
  ASSERT_EQ(fd0->ioctl(HMM_DMIRROR_SNAPSHOT, &c), 0);
  for (uint8_t p : perm)
    ASSERT_EQ(p, HMM_DMIRROR_PROT_READ | HMM_DMIRROR_PROT_PMD);
  expect_all_valid();
}

// double_map (hmm2): both devices read R/O memory; dev1 takes it; dev0
// still reads it (private: faulting it back to RAM).
TEST_P(HmmTests, DoubleMap) {
  const VirtAddr a = map_anon(*mm, 6 * PAGE_SIZE);
  cpu_fill(*mm, a, 6);
  ASSERT_TRUE(do_mprotect(*mm, a, 6 * PAGE_SIZE, PROT_READ).ok());
  Buffer buf(6);
  HmmDmirrorCmd c;
  for (Dmirror* fd : {fd0.get(), fd1.get()}) {
    ASSERT_EQ(cmd(*fd, HMM_DMIRROR_READ, a, 6, buf, &c), 0);
    EXPECT_EQ(c.cpages, 6u);
    EXPECT_EQ(c.faults, 1u);
    expect_ints(buf.ints(), buf.nr_ints());
  }
  ASSERT_EQ(cmd(*fd1, HMM_DMIRROR_MIGRATE_TO_DEV, a, 6, buf, &c), 0);
  EXPECT_EQ(c.cpages, 6u);
  ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_READ, a, 6, buf, &c), 0);
  EXPECT_EQ(c.cpages, 6u);
  EXPECT_EQ(c.faults, 1u);
  expect_ints(buf.ints(), buf.nr_ints());
  expect_all_valid();
}

// exclusive: atomic access, then the CPU reads: exclusivity is revoked.
TEST_P(HmmTests, Exclusive) {
  const VirtAddr a = map_anon(*mm, kNpages * PAGE_SIZE);
  cpu_fill(*mm, a, kNpages);
  Buffer buf(kNpages);
  HmmDmirrorCmd c;
  ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_EXCLUSIVE, a, kNpages, buf, &c), 0);
  EXPECT_EQ(c.cpages, kNpages);
  expect_ints(buf.ints(), buf.nr_ints());
  EXPECT_TRUE(is_device_exclusive_entry(pte_to_swp_entry(testing::pte_at(*mm, a))));
  EXPECT_EQ(cmd(*fd0, HMM_DMIRROR_CHECK_EXCLUSIVE, a, kNpages, buf), -EPERM);
  expect_all_valid();
  const auto v = cpu_read(*mm, a, kNpages);
  for (size_t i = 0; i < v.size(); ++i)
    ASSERT_EQ(v[i], static_cast<int>(i));
  EXPECT_EQ(cmd(*fd0, HMM_DMIRROR_CHECK_EXCLUSIVE, a, kNpages, buf), 0);
  expect_all_valid();
}

// exclusive_mprotect: after mprotect R/O the device cannot write.
TEST_P(HmmTests, ExclusiveMprotect) {
  const VirtAddr a = map_anon(*mm, kNpages * PAGE_SIZE);
  cpu_fill(*mm, a, kNpages);
  Buffer buf(kNpages);
  ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_EXCLUSIVE, a, kNpages, buf), 0);
  ASSERT_TRUE(do_mprotect(*mm, a, kNpages * PAGE_SIZE, PROT_READ).ok());
  EXPECT_EQ(cmd(*fd0, HMM_DMIRROR_WRITE, a, kNpages, buf), -EPERM);
  expect_all_valid();
}

// exclusive_cow: exclusive, then fork; each process increments its ints
// and sees only its own.
TEST_P(HmmTests, ExclusiveCow) {
  const VirtAddr a = map_anon(*mm, kNpages * PAGE_SIZE);
  cpu_fill(*mm, a, kNpages);
  Buffer buf(kNpages);
  ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_EXCLUSIVE, a, kNpages, buf), 0);
  auto child = dup_mm(*mm);
  ASSERT_TRUE(child.ok());
  cpu_fill(*mm, a, kNpages, 1);
  cpu_fill(**child, a, kNpages, 2);
  const auto pv = cpu_read(*mm, a, kNpages);
  const auto cv = cpu_read(**child, a, kNpages);
  expect_ints(pv.data(), pv.size(), 1);
  expect_ints(cv.data(), cv.size(), 2);
  child->reset();
  expect_all_valid();
}

// hmm_gup_test: four device pages, then GUP_BASIC, GUP_FAST, PIN_FAST
// LONGTERM and PIN_LONGTERM, each FOLL_WRITE. Device-private pages come
// back to RAM on the faults; coherent ones stay for the short-term calls and
// are migrated by the long-term pins.
TEST_P(HmmTests, HmmGupTest) {
  const VirtAddr a = map_anon(*mm, 4 * PAGE_SIZE);
  cpu_fill(*mm, a, 4);
  Buffer buf(4);
  HmmDmirrorCmd c;
  ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_MIGRATE_TO_DEV, a, 4, buf, &c), 0);
  ASSERT_EQ(c.cpages, 4u);
  const struct {
    GupTestCmd op;
    uint32_t flags;
  } calls[] = {
      {GupTestCmd::GUP_BASIC_TEST, static_cast<uint32_t>(FOLL_WRITE)},
      {GupTestCmd::GUP_FAST_BENCHMARK, static_cast<uint32_t>(FOLL_WRITE)},
      {GupTestCmd::PIN_FAST_BENCHMARK, static_cast<uint32_t>(FOLL_WRITE | FOLL_LONGTERM)},
      {GupTestCmd::PIN_LONGTERM_BENCHMARK, static_cast<uint32_t>(FOLL_WRITE)},
  };
  for (int i = 0; i < 4; ++i) {
    GupTest g;
    g.addr = (a + i * PAGE_SIZE).value();
    g.size = PAGE_SIZE;
    g.nr_pages_per_call = 1;
    g.gup_flags = calls[i].flags;
    ASSERT_EQ(gup_test_ioctl(static_cast<uint32_t>(calls[i].op), g), 0) << i;
  }
  uint8_t perm[4];
  c = HmmDmirrorCmd{};
  c.addr = a.value();
  c.ptr = perm;
  c.npages = 4;
  ASSERT_EQ(fd0->ioctl(HMM_DMIRROR_SNAPSHOT, &c), 0);
  if (is_private()) {
    for (uint8_t p : perm)
      EXPECT_EQ(p, HMM_DMIRROR_PROT_WRITE);
  } else {
    EXPECT_EQ(perm[0], HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE);
    EXPECT_EQ(perm[1], HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL | HMM_DMIRROR_PROT_WRITE);
    EXPECT_EQ(perm[2], HMM_DMIRROR_PROT_WRITE);
    EXPECT_EQ(perm[3], HMM_DMIRROR_PROT_WRITE);
  }
  const auto v = cpu_read(*mm, a, 4);
  expect_ints(v.data(), v.size());
  expect_all_valid();
}

// A long-term pin over RAM pages and device-coherent pages, one of which
// cannot leave the device (someone holds a reference): the coherent
// migration fails, the pin fails with -EBUSY, and nothing keeps a pin,
// neither the RAM pages nor the other device pages (KERNEL-SPEC 5).
// Device-coherent memory only (device-private pages are faulted back to
// RAM, never pinned where they are).
class HmmCoherent : public HmmTests {};
INSTANTIATE_TEST_SUITE_P(Hmm, HmmCoherent, ::testing::Values(DmirrorMemory::kCoherent),
                         [](const auto&) { return "device_coherent"; });

TEST_P(HmmCoherent, LongtermPinFailingOnCoherentMemoryDropsEveryPin) {
  const VirtAddr a = map_anon(*mm, 4 * PAGE_SIZE);
  cpu_fill(*mm, a, 4);
  Buffer buf(2);
  HmmDmirrorCmd c;
  ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_MIGRATE_TO_DEV, a + 2 * PAGE_SIZE, 2, buf, &c), 0);
  ASSERT_EQ(c.cpages, 2u);
  Page* stuck = page_at(*mm, a + 3 * PAGE_SIZE);
  ASSERT_TRUE(is_device_coherent_page(stuck));
  get_page(stuck);  // someone else's reference: this page cannot move
  const int64_t acquired0 = m.ms->vmstat()[NR_FOLL_PIN_ACQUIRED];
  const int64_t released0 = m.ms->vmstat()[NR_FOLL_PIN_RELEASED];
  std::vector<Page*> pages(4);
  {
    ReadGuard g(mm->mmap_lock);
    EXPECT_EQ(pin_user_pages(a.value(), 4, FOLL_WRITE | FOLL_LONGTERM, pages.data()), -EBUSY);
  }
  for (uint64_t i = 0; i < 4; ++i) {
    Page* p = page_at(*mm, a + i * PAGE_SIZE);
    ASSERT_NE(p, nullptr) << i;
    EXPECT_FALSE(folio_maybe_dma_pinned(page_folio(p))) << "page " << i << " kept a pin";
  }
  EXPECT_EQ(m.ms->vmstat()[NR_FOLL_PIN_ACQUIRED] - acquired0,
            m.ms->vmstat()[NR_FOLL_PIN_RELEASED] - released0);
  EXPECT_EQ(m.ms->pin_owners().nr_folios(), 0u);
  put_page(stuck);
  const auto v = cpu_read(*mm, a, 4);
  expect_ints(v.data(), v.size());
  expect_all_valid();
}

// hmm_cow_in_device: device pages, fork, the parent writes: it gets
// system-RAM copies.
TEST_P(HmmTests, CowInDevice) {
  const VirtAddr a = map_anon(*mm, 4 * PAGE_SIZE);
  cpu_fill(*mm, a, 4);
  Buffer buf(4);
  HmmDmirrorCmd c;
  ASSERT_EQ(cmd(*fd0, HMM_DMIRROR_MIGRATE_TO_DEV, a, 4, buf, &c), 0);
  ASSERT_EQ(c.cpages, 4u);
  auto child = dup_mm(*mm);
  ASSERT_TRUE(child.ok());
  cpu_fill(*mm, a, 4, 7);
  uint8_t perm[4];
  c = HmmDmirrorCmd{};
  c.addr = a.value();
  c.ptr = perm;
  c.npages = 4;
  ASSERT_EQ(fd0->ioctl(HMM_DMIRROR_SNAPSHOT, &c), 0);
  for (uint8_t p : perm)
    EXPECT_EQ(p, HMM_DMIRROR_PROT_WRITE);
  const auto cv = cpu_read(**child, a, 4);
  expect_ints(cv.data(), cv.size());
  child->reset();
  expect_all_valid();
}

// Argument checks of the ioctl entry.
TEST_P(HmmTests, BadCommands) {
  Buffer buf(1);
  EXPECT_EQ(cmd(*fd0, HMM_DMIRROR_READ, VirtAddr(0x1001), 1, buf), -EINVAL);
  EXPECT_EQ(cmd(*fd0, HMM_DMIRROR_READ, VirtAddr(0x1000), 0, buf), -EINVAL);
  EXPECT_EQ(cmd(*fd0, 99, VirtAddr(0x1000), 1, buf), -EINVAL);
  EXPECT_EQ(cmd(*fd0, HMM_DMIRROR_READ, VirtAddr(0x1000), 1, buf), -EFAULT) << "no VMA";
}

// anon_teardown: a read in one thread while another munmaps; the read
// either succeeds with correct data or fails, and nothing breaks.
TEST_P(HmmTests, ConcurrentAnonTeardown) {
  for (int round = 0; round < 20; ++round) {
    const VirtAddr a = map_anon(*mm, kNpages * PAGE_SIZE);
    cpu_fill(*mm, a, kNpages, round);
    std::thread t([&] {
      current().set_mm(mm.get());
      std::this_thread::sleep_for(std::chrono::microseconds(50 * round));
      EXPECT_TRUE(vm_munmap(*mm, a + kNpages / 2 * PAGE_SIZE, kNpages / 2 * PAGE_SIZE).ok());
    });
    Buffer buf(kNpages);
    if (cmd(*fd0, HMM_DMIRROR_READ, a, kNpages, buf) == 0)
      expect_ints(buf.ints(), buf.nr_ints(), round);
    t.join();
    ASSERT_TRUE(vm_munmap(*mm, a, kNpages * PAGE_SIZE).ok());
  }
  expect_all_valid();
}

}  // namespace
}  // namespace pinmm
