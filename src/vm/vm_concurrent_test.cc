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
#include "testing/concurrency.h"
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
//
// The order is fixed each round: the walker is inside rmap_walk (between
// finding the VMA and locking its PTE table) before munmap starts.
TEST(VmConcurrent, RmapWalksRaceWithMunmap) {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(64));
  VmMachine m(c);
  MmHandle mm = Mm::create(m.vm);
  constexpr uint64_t kPages = 32;
  constexpr uint64_t kRounds = 200;
  std::mutex published_lock;
  std::vector<Folio*> published;  // one reference each, the walker's to drop
  std::atomic<uint64_t> walks{0}, entries{0};
  testing::Progress in_walk;  // batches whose first walk reached the window
  testing::ScopedThreads threads;
  threads.spawn([&](std::stop_token stop) {
    while (!stop.stop_requested()) {
      std::vector<Folio*> batch;
      {
        std::lock_guard<std::mutex> g(published_lock);
        batch.swap(published);
      }
      if (batch.empty()) {
        std::this_thread::yield();
        continue;
      }
      bool first = true;
      for (Folio* folio : batch) {
        // As migration does: keep the AnonVma alive (only a mapped folio's
        // can be taken), then walk.
        if (AnonVma* av = folio_get_anon_vma(folio)) {
          rmap_walk(folio, [&](Vma* vma, VirtAddr) {
            if (first) {
              // In the window: let munmap start, and widen the window so
              // that it reaches the anon_vma before we lock the PTE table.
              first = false;
              in_walk.advance();
              std::this_thread::sleep_for(std::chrono::microseconds(500));
            }
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
  for (uint64_t round = 0; round < kRounds; ++round) {
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
    // Every page is mapped until the munmap below, so the walker's first
    // folio_get_anon_vma succeeds and it enters the window.
    ASSERT_TRUE(in_walk.wait_for(round + 1)) << "the walker never reached round " << round;
    ASSERT_TRUE(vm_munmap(*mm, a, kPages * PAGE_SIZE).ok());
  }
  threads.stop_and_join();
  for (Folio* folio : published)
    folio_put(folio);
  RecordProperty("walks", static_cast<int>(walks.load()));
  RecordProperty("entries_found", static_cast<int>(entries.load()));
  EXPECT_GE(walks.load(), kRounds);
  lru_add_drain_all(*m.ms);
  EXPECT_VM_VALID(m.vm);
}

// An rmap walk (under the anon_vma lock) reads a VMA's bounds while
// mprotect splits it (under the mmap lock): the split must change the
// bounds under the anon_vma lock, as vma_prepare takes it, or the walker
// reads a torn VMA (ThreadSanitizer reported it from pinmm stress: an
// offline's migration walking rmap while munmap split a VMA). The walker
// provably walks during every round of splits.
TEST(VmConcurrent, RmapWalksRaceWithVmaSplits) {
  VmMachine m(MachineConfig::tiny(Bytes::MiB(32)));
  MmHandle mm = Mm::create(m.vm);
  constexpr uint64_t kPages = 32;
  const VirtAddr a = testing::map_anon(*mm, kPages * PAGE_SIZE);
  testing::fill_pages(*mm, a, kPages * PAGE_SIZE, 7);
  std::vector<Folio*> folios;
  for (uint64_t i = 0; i < kPages; ++i) {
    Folio* f = page_folio(testing::page_at(*mm, a + i * PAGE_SIZE));
    folio_get(f);
    folios.push_back(f);
  }
  testing::Progress walks;
  std::atomic<uint64_t> found{0};
  {
    testing::ScopedThreads threads;
    threads.spawn([&](std::stop_token stop) {
      while (!stop.stop_requested()) {
        for (Folio* f : folios) {
          if (AnonVma* av = folio_get_anon_vma(f)) {
            rmap_walk(f, [&](Vma* vma, VirtAddr) {
              page_vma_mapped_walk(f, vma, /*migration=*/false, [&](PageVmaMapped&) {
                found++;
                return true;
              });
              return true;
            });
            av->put();
          }
        }
        walks.advance();
      }
    });
    for (uint64_t round = 0; round < kPages; ++round) {
      ASSERT_TRUE(walks.wait_for(walks.get() + 1)) << "the walker stalled";
      // Read-only and back: two splits around page `round`, every round.
      const VirtAddr p = a + round * PAGE_SIZE;
      ASSERT_TRUE(do_mprotect(*mm, p, PAGE_SIZE, PROT_READ).ok());
      ASSERT_TRUE(do_mprotect(*mm, p, PAGE_SIZE, PROT_READ | PROT_WRITE).ok());
    }
  }
  EXPECT_GT(found.load(), 0u);
  for (Folio* f : folios)
    folio_put(f);
  for (uint64_t i = 0; i < kPages; ++i)
    EXPECT_EQ(testing::read_byte(*mm, a + i * PAGE_SIZE), 7);
  EXPECT_VM_VALID(m.vm);
}

// Two threads fault the first pages of one fresh anonymous VMA at once,
// both under the mmap read lock: both find no anon_vma, both allocate one,
// and only one may be installed (__anon_vma_prepare rechecks under
// mm->page_table_lock and frees the loser's). The window between the check
// and the install is held open until both faults are in it. Found by
// GupFast.ConcurrentPinRacesWithMunmap under LeakSanitizer: the loser's
// AnonVma leaked.
TEST(VmConcurrent, RacingFirstFaultsShareOneAnonVma) {
  VmMachine m(MachineConfig::tiny(Bytes::MiB(16)));
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = testing::map_anon(*mm, 2 * PAGE_SIZE);
  std::barrier both_in_window(2);
  m.ms->injector().on_hit(inject_point_vm::kAnonVmaPrepare,
                          [&] { both_in_window.arrive_and_wait(); });
  {
    testing::ScopedThreads threads;
    for (uint64_t i = 0; i < 2; ++i) {
      threads.spawn([&, i](std::stop_token) {
        EXPECT_TRUE(write_user<uint64_t>(*mm, a + i * PAGE_SIZE, i + 1).ok());
      });
    }
  }
  m.ms->injector().clear_all();
  EXPECT_EQ(m.ms->injector().hits(inject_point_vm::kAnonVmaPrepare), 0u) << "cleared";
  {
    ReadGuard g(mm->mmap_lock);
    Vma* vma = mm->find_vma(a);
    ASSERT_NE(vma, nullptr);
    ASSERT_NE(vma->anon_vma, nullptr);
    for (uint64_t i = 0; i < 2; ++i) {
      EXPECT_EQ(folio_anon_vma(page_folio(testing::page_at(*mm, a + i * PAGE_SIZE))), vma->anon_vma)
          << "page " << i;
    }
    ReadGuard av(vma->anon_vma->rwsem);
    EXPECT_EQ(vma->anon_vma->vmas.size(), 1u);
  }
  for (uint64_t i = 0; i < 2; ++i)
    EXPECT_EQ(*read_user<uint64_t>(*mm, a + i * PAGE_SIZE), i + 1);
  ASSERT_TRUE(vm_munmap(*mm, a, 2 * PAGE_SIZE).ok());
  EXPECT_VM_VALID(m.vm);
}

}  // namespace
}  // namespace pinmm
