// Faults, munmap and fork racing on one mm. Runs under ThreadSanitizer.
// The writer stamps every page it owns with (round, page) and checks the
// stamps it reads; afterwards every page must hold its last stamp: a lost or
// misdirected write (a COW that copied too early, a flush that did not wait)
// shows up as a wrong stamp.
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "pinmm/vm/migrate_entries.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

using testing::VmMachine;

TEST(VmConcurrent, FaultsMunmapAndForkOnOneMm) {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(64));
  c.thp = ThpMode::kAlways;
  VmMachine m(c);
  MmHandle mm = Mm::create(m.vm);
  constexpr uint64_t kPages = 64;
  // The writer goes on until the others have interleaved enough (or a cap).
  constexpr uint64_t kMinRounds = 50, kMaxRounds = 5000;
  constexpr int kMinForks = 40, kMinRemaps = 20;
  std::atomic<uint64_t> last_round{0};
  auto region = vm_mmap(*mm, VirtAddr(0), kPages * PAGE_SIZE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS);
  ASSERT_TRUE(region.ok());
  const VirtAddr base = *region;
  std::atomic<int> bad{0};
  std::atomic<bool> writer_done{false};
  std::atomic<int> forks{0}, remaps{0};
  std::barrier start(3);

  auto stamp = [](uint64_t round, uint64_t page) { return (round << 32) | page; };

  // The writer: every round, stamp every page, then read them all back.
  std::thread writer([&] {
    start.arrive_and_wait();
    for (uint64_t round = 1; round <= kMaxRounds; ++round) {
      for (uint64_t p = 0; p < kPages; ++p) {
        if (!write_user<uint64_t>(*mm, base + p * PAGE_SIZE, stamp(round, p)).ok()) bad++;
      }
      for (uint64_t p = 0; p < kPages; ++p) {
        auto v = read_user<uint64_t>(*mm, base + p * PAGE_SIZE);
        if (!v.ok() || *v != stamp(round, p)) bad++;
      }
      last_round = round;
      if (round >= kMinRounds && forks.load() >= kMinForks && remaps.load() >= kMinRemaps) break;
    }
    writer_done = true;
  });

  // The mapper: maps, touches and unmaps other memory (page tables come and
  // go in the same mm), including a THP-sized region partially unmapped.
  std::thread mapper([&] {
    start.arrive_and_wait();
    while (!writer_done.load()) {
      auto r = vm_mmap(*mm, VirtAddr(0), 2 * HPAGE_PMD_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS);
      if (!r.ok()) {
        bad++;
        break;
      }
      for (uint64_t off = 0; off < 2 * HPAGE_PMD_SIZE; off += 64 * PAGE_SIZE) {
        if (!write_user<uint8_t>(*mm, *r + off, 1).ok()) bad++;
      }
      (void)vm_munmap(*mm, *r + PAGE_SIZE * 3, HPAGE_PMD_SIZE);
      (void)vm_munmap(*mm, *r, 2 * HPAGE_PMD_SIZE);
      remaps++;
    }
  });

  // The forker: forks (write-protecting the writer's pages) and lets the
  // child touch and exit, so the writer keeps hitting COW and reuse.
  std::thread forker([&] {
    start.arrive_and_wait();
    while (!writer_done.load()) {
      auto child = dup_mm(*mm);
      if (!child.ok()) {
        bad++;
        break;
      }
      (void)write_user<uint64_t>(**child, base, 0xc0ffee);
      forks++;
    }
  });

  writer.join();
  mapper.join();
  forker.join();
  EXPECT_EQ(bad.load(), 0);
  RecordProperty("forks", forks.load());
  RecordProperty("remaps", remaps.load());
  for (uint64_t p = 0; p < kPages; ++p) {
    EXPECT_EQ(*read_user<uint64_t>(*mm, base + p * PAGE_SIZE), stamp(last_round.load(), p))
        << "page " << p;
  }
  lru_add_drain_all(*m.ms);
  EXPECT_VM_VALID(m.vm);
}

// An rmap walk (what migration, offlining and CMA do to every folio they
// move) racing with munmap of the folios' range: munmap must hide the VMAs
// from rmap before it frees their page tables (free_pgtables unlinks the
// anon_vma first), or a walker holding the anon_vma lock locks a PTE table
// that is already gone. Found by CmaTest.ConcurrentCmaAllocAgainstPageFaults
// under ASan (heap-use-after-free of a split PTE lock).
TEST(VmConcurrent, RmapWalksRaceWithMunmap) {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(64));
  VmMachine m(c);
  MmHandle mm = Mm::create(m.vm);
  constexpr uint64_t kPages = 32;
  constexpr int kRounds = 300;
  std::mutex published_lock;
  std::vector<Folio*> published;  // one reference each, the walker's to drop
  std::atomic<bool> done{false};
  std::atomic<uint64_t> walks{0}, entries{0};

  std::thread walker([&] {
    while (!done.load()) {
      std::vector<Folio*> batch;
      {
        std::lock_guard<std::mutex> g(published_lock);
        batch.swap(published);
      }
      bool first = true;
      for (Folio* folio : batch) {
        // As migration does: keep the AnonVma alive (only a mapped folio's
        // can be taken), then walk.
        if (AnonVma* av = folio_get_anon_vma(folio)) {
          rmap_walk(folio, [&](Vma* vma, VirtAddr) {
            // Widen the window between finding the VMA and locking its PTE
            // table, once per batch: a munmap meanwhile must wait for us.
            if (first) std::this_thread::sleep_for(std::chrono::microseconds(500));
            first = false;
            page_vma_mapped_walk(folio, vma, /*migration=*/false, [&](PageVmaMapped&) {
              entries++;
              return true;
            });
            return true;
          });
          av->put();
          walks++;
        }
        folio_put(folio);
      }
    }
  });
  for (int round = 0; round < kRounds; ++round) {
    const VirtAddr a = testing::map_anon(*mm, kPages * PAGE_SIZE);
    testing::fill_pages(*mm, a, kPages * PAGE_SIZE, static_cast<uint8_t>(round));
    {
      std::lock_guard<std::mutex> g(published_lock);
      for (uint64_t i = 0; i < kPages; ++i) {
        Folio* folio = page_folio(testing::page_at(*mm, a + i * PAGE_SIZE));
        folio_get(folio);
        published.push_back(folio);
      }
    }
    std::this_thread::yield();
    ASSERT_TRUE(vm_munmap(*mm, a, kPages * PAGE_SIZE).ok());
  }
  done = true;
  walker.join();
  for (Folio* folio : published)
    folio_put(folio);
  RecordProperty("walks", static_cast<int>(walks.load()));
  RecordProperty("entries_found", static_cast<int>(entries.load()));
  EXPECT_GT(walks.load(), 0u);
  lru_add_drain_all(*m.ms);
  EXPECT_VM_VALID(m.vm);
}

}  // namespace
}  // namespace pinmm
