// gpu: mirrored access without pins, hot ranges migrated to device-private
// memory, CPU faults bringing them back; and a GPU writing while the CPU
// faults, migrates and mprotects the same memory.
#include "pinmm/devices/gpu.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "pinmm/gup/gup.h"
#include "pinmm/migrate/move_pages.h"
#include "testing/concurrency.h"
#include "testing/migrate.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

constexpr uint64_t kRange = HPAGE_PMD_SIZE;
constexpr uint64_t kRangePages = kRange / PAGE_SIZE;

MachineConfig gpu_machine() {
  MachineConfig c = testing::two_node_machine();
  c.device_space = Bytes::MiB(16);
  c.section_size = Bytes::MiB(2);
  return c;
}

class GpuTest : public ::testing::Test {
 protected:
  GpuTest() : m(gpu_machine()), mm(Mm::create(m.vm)) { current().set_mm(mm.get()); }
  ~GpuTest() override { current().set_mm(nullptr); }

  bool device_private_at(VirtAddr a) {
    const pte_t pte = testing::pte_at(*mm, a);
    return is_swap_pte(pte) && is_device_private_entry(pte_to_swp_entry(pte));
  }

  testing::VmMachine m;
  MmHandle mm;
};

TEST_F(GpuTest, ColdRangesAreMirroredHotOnesMigrateInAndFaultBack) {
  const VirtAddr raw = testing::map_anon(*mm, 3 * kRange);
  const VirtAddr a(raw.value() + kRange - raw.value() % kRange);
  ASSERT_TRUE(do_madvise(*mm, a, 2 * kRange, MADV_NOHUGEPAGE).ok());
  for (uint64_t i = 0; i < 2 * kRangePages; ++i)
    ASSERT_TRUE(write_user<uint64_t>(*mm, a + i * PAGE_SIZE, i).ok());
  GpuOptions opt;
  opt.hot_threshold = 3;
  Gpu gpu(*m.ms, *mm, "gpu0", opt);
  std::vector<std::byte> buf(kRange);
  // Two reads of range 0: mirrored, nothing pinned, nothing moved.
  for (int i = 0; i < 2; ++i)
    ASSERT_EQ(gpu.read(a, buf), 0);
  EXPECT_EQ(gpu.stats().ranges_migrated, 0u);
  EXPECT_EQ(gpu.stats().mirror_faults, 1u) << "the mirror was filled once";
  for (uint64_t i = 0; i < kRangePages; ++i)
    ASSERT_FALSE(folio_maybe_dma_pinned(page_folio(testing::page_at(*mm, a + i * PAGE_SIZE))));
  // The third access makes it hot: it moves in; range 1 stays.
  ASSERT_EQ(gpu.read(a, buf), 0);
  EXPECT_EQ(gpu.stats().ranges_migrated, 1u);
  EXPECT_EQ(gpu.stats().pages_migrated, kRangePages);
  EXPECT_EQ(gpu.resident_pages(), kRangePages);
  EXPECT_TRUE(device_private_at(a));
  EXPECT_FALSE(device_private_at(a + kRange));
  uint64_t v = 0;
  std::memcpy(&v, buf.data() + 7 * PAGE_SIZE, sizeof v);
  EXPECT_EQ(v, 7u);
  // The GPU writes into device memory; the CPU faults the page back and
  // sees it.
  const uint64_t stamp = 0xabcdef;
  std::vector<std::byte> page(PAGE_SIZE);
  std::memcpy(page.data(), &stamp, sizeof stamp);
  ASSERT_EQ(gpu.write(a + 5 * PAGE_SIZE, page), 0);
  EXPECT_EQ(*read_user<uint64_t>(*mm, a + 5 * PAGE_SIZE), stamp);
  EXPECT_FALSE(device_private_at(a + 5 * PAGE_SIZE));
  EXPECT_EQ(gpu.resident_pages(), kRangePages - 1);
  for (uint64_t i = kRangePages; i < 2 * kRangePages; ++i)
    ASSERT_EQ(*read_user<uint64_t>(*mm, a + i * PAGE_SIZE), i);
  EXPECT_EQ(gpu.write(VirtAddr(0x1000), page), -EFAULT);
  EXPECT_EQ(gpu.read(a + 1, buf), -EINVAL);
  EXPECT_ALL_LAYERS_VALID(m.vm);
}

// The GPU stamps every page of a range, round after round, while another
// CPU thread reads the range (faulting device pages back), move_pages it
// between the nodes and mprotects it read-only and back. The mirror must
// never write a page the CPU has unmapped: after each round the CPU sees
// that round's stamp everywhere (a write through a stale entry would land
// in a page that is no longer mapped).
TEST_F(GpuTest, ConcurrentGpuWritesWhileCpuFaultsMigratesAndMprotects) {
  constexpr uint64_t kPages = 64;
  const VirtAddr a = testing::map_pattern(*mm, kPages, 4);
  GpuOptions opt;
  opt.hot_threshold = 2;
  opt.range_size = kPages * PAGE_SIZE;
  Gpu gpu(*m.ms, *mm, "gpu0", opt);
  testing::ScopedThreads threads;
  threads.spawn([&](std::stop_token stop) {
    current().set_mm(mm.get());
    std::vector<VirtAddr> pages;
    for (uint64_t i = 0; i < kPages; i += 4)
      pages.push_back(a + i * PAGE_SIZE);
    std::vector<int> status(pages.size());
    for (int step = 0; !stop.stop_requested(); ++step) {
      switch (step % 3) {
        case 0:
          // Fault device pages back without touching their bytes (a CPU
          // read racing the GPU's write would be a data race of the test's
          // own making): GUP faults and the fault migrates to RAM.
          for (VirtAddr p : pages) {
            Page* page = nullptr;
            ReadGuard g(mm->mmap_lock);
            if (get_user_pages_remote(*mm, p.value(), 1, FOLL_NONE, &page, nullptr) == 1)
              put_page(page);
          }
          break;
        case 1: {
          std::vector<int> nodes(pages.size(), step % 2);
          (void)move_pages(*mm, pages, nodes, status, MPOL_MF_MOVE);
          break;
        }
        default:
          (void)do_mprotect(*mm, a, kPages * PAGE_SIZE, PROT_READ);
          (void)do_mprotect(*mm, a, kPages * PAGE_SIZE, PROT_READ | PROT_WRITE);
          break;
      }
    }
  });
  std::vector<std::byte> buf(kPages * PAGE_SIZE);
  constexpr uint64_t kRounds = 150;
  for (uint64_t round = 1; round <= kRounds; ++round) {
    for (uint64_t i = 0; i < kPages; ++i) {
      const uint64_t v = (round << 32) | i;
      std::memcpy(buf.data() + i * PAGE_SIZE, &v, sizeof v);
    }
    // -EPERM while the CPU has the range read-only (some pages may have
    // been written already), -EFAULT when pages a concurrent migration held
    // stayed read-only device pages through the GPU's retries: the round
    // is written again.
    int rc = 0;
    ASSERT_TRUE(testing::wait_until([&] {
      rc = gpu.write(a, buf);
      return rc != -EPERM && rc != -EFAULT;
    })) << "the write never went through, last "
        << rc;
    ASSERT_EQ(rc, 0);
    // The data oracle: the CPU sees this round's stamp in every page (a
    // write through a stale mirror entry would leave the previous one).
    for (uint64_t i = 0; i < kPages; ++i)
      ASSERT_EQ(*read_user<uint64_t>(*mm, a + i * PAGE_SIZE), (round << 32) | i)
          << "round " << round << " page " << i;
  }
  threads.stop_and_join();
  for (uint64_t i = 0; i < kPages; ++i)
    ASSERT_EQ(*read_user<uint64_t>(*mm, a + i * PAGE_SIZE), (kRounds << 32) | i) << "page " << i;
  EXPECT_GT(gpu.stats().ranges_migrated, 0u);
  EXPECT_ALL_LAYERS_VALID(m.vm);
}

}  // namespace
}  // namespace pinmm
