// GUP-fast (KERNEL-SPEC 3.5, 4.1, 4.3) and its merging with the slow path.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "pinmm/base/task.h"
#include "pinmm/gup/gup.h"
#include "pinmm/gup/pin.h"
#include "pinmm/migrate/move_pages.h"
#include "testing/concurrency.h"
#include "testing/migrate.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

class GupFast : public ::testing::Test {
 protected:
  explicit GupFast(Bytes movable = Bytes(0)) : m(config(movable)), mm(Mm::create(m.vm)) {
    current().set_mm(mm.get());
  }
  ~GupFast() override { current().set_mm(nullptr); }
  static MachineConfig config(Bytes movable) {
    MachineConfig c = MachineConfig::tiny(Bytes::MiB(32), movable);
    c.thp = ThpMode::kAlways;
    return c;
  }
  VirtAddr populated(uint64_t n) {
    const VirtAddr a = testing::map_anon(*mm, n * PAGE_SIZE);
    testing::fill_pages(*mm, a, n * PAGE_SIZE, 3);
    lru_add_drain_all(*m.ms);
    return a;
  }
  int64_t acquired() { return m.ms->node(0).stats().get(NR_FOLL_PIN_ACQUIRED); }
  int64_t faults() { return m.ms->vmstat()[PGFAULT]; }
  testing::VmMachine m;
  MmHandle mm;
};

TEST_F(GupFast, PinsMappedPagesWithoutTheSlowPath) {
  const VirtAddr a = populated(8);
  std::vector<Page*> pages(8);
  // No mmap lock held: the fast path needs none, and this range needs no
  // fallback (which would take it).
  EXPECT_EQ(pin_user_pages_fast(a.value(), 8, FOLL_WRITE, pages.data()), 8);
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(pages[i], testing::page_at(*mm, a + i * PAGE_SIZE));
    EXPECT_TRUE(folio_test_referenced(page_folio(pages[i])));
  }
  EXPECT_TRUE(mm->test_flag(MMF_HAS_PINNED));
  EXPECT_EQ(acquired(), 8);
  unpin_user_pages(pages);
}

TEST_F(GupFast, FallsBackForWhatIsNotMapped) {
  const VirtAddr a = testing::map_anon(*mm, 4 * PAGE_SIZE);
  testing::fill_pages(*mm, a, 2 * PAGE_SIZE, 3);  // the second half stays unmapped
  std::vector<Page*> pages(4);
  const int64_t f0 = faults();
  EXPECT_EQ(get_user_pages_fast(a.value(), 4, FOLL_WRITE, pages.data()), 4);
  EXPECT_EQ(faults() - f0, 2);  // only the unmapped half was faulted
  for (Page* p : pages)
    put_page(p);
  // FOLL_FAST_ONLY: the mapped prefix, never the slow path.
  const VirtAddr c = testing::map_anon(*mm, 2 * PAGE_SIZE);
  EXPECT_EQ(get_user_pages_fast_only(c.value(), 2, FOLL_WRITE, pages.data()), 0);
}

TEST_F(GupFast, ArgumentAndRangeErrors) {
  const VirtAddr a = populated(1);
  Page* page = nullptr;
  for (Foll bad : {FOLL_ANON, FOLL_NOWAIT, FOLL_HWPOISON, FOLL_INTERRUPTIBLE, FOLL_DUMP})
    EXPECT_EQ(get_user_pages_fast(a.value(), 1, bad, &page), -EINVAL) << foll_flags_to_string(bad);
  EXPECT_EQ(pin_user_pages_fast(a.value(), 1, FOLL_GET, &page), -EINVAL);
  EXPECT_EQ(get_user_pages_fast(a.value(), 1, FOLL_LONGTERM, &page), -EINVAL);
  EXPECT_EQ(get_user_pages_fast(~0ul - PAGE_SIZE, 4, FOLL_NONE, &page), -EOVERFLOW);
  EXPECT_EQ(get_user_pages_fast(TASK_SIZE, 1, FOLL_NONE, &page), -EFAULT);
  // get_user_pages_fast_only is not "0..n only": range checks come first.
  EXPECT_EQ(get_user_pages_fast_only(TASK_SIZE, 1, FOLL_NONE, &page), -EFAULT);
}

TEST_F(GupFast, SlowPathErrorIsHiddenBehindAFastPrefix) {
  const VirtAddr a = populated(2);
  ASSERT_TRUE(vm_munmap(*mm, a + PAGE_SIZE, PAGE_SIZE).ok());
  std::vector<Page*> pages(2);
  EXPECT_EQ(pin_user_pages_fast(a.value(), 2, FOLL_WRITE, pages.data()), 1);
  unpin_user_page(pages[0]);
  EXPECT_EQ(pin_user_pages_fast((a + PAGE_SIZE).value(), 1, FOLL_WRITE, pages.data()), -EFAULT);
}

TEST_F(GupFast, ForkInProgressSendsPinsToTheSlowPath) {
  const VirtAddr a = populated(1);
  Page* page = nullptr;
  mm->write_protect_seq.write_begin();  // as fork does while write-protecting
  EXPECT_EQ(pin_user_pages_fast(a.value(), 1, FOLL_WRITE | FOLL_FAST_ONLY, &page), -EINVAL);
  EXPECT_EQ(get_user_pages_fast_only(a.value(), 1, FOLL_WRITE, &page), 1);  // GET is not guarded
  put_page(page);
  mm->write_protect_seq.write_end();
  EXPECT_EQ(pin_user_pages_fast(a.value(), 1, FOLL_WRITE, &page), 1);
  unpin_user_page(page);
}

TEST_F(GupFast, ReadOnlyPinOfASharedAnonPageFallsBackAndUnshares) {
  const VirtAddr a = populated(1);
  auto child = dup_mm(*mm);
  ASSERT_TRUE(child.ok());
  Page* shared = testing::page_at(*mm, a);
  Page* page = nullptr;
  EXPECT_EQ(pin_user_pages_fast(a.value(), 1, FOLL_NONE, &page), 1);
  EXPECT_NE(page, shared);
  EXPECT_TRUE(PageAnonExclusive(page));
  unpin_user_page(page);
  EXPECT_VM_VALID(m.vm);
}

TEST_F(GupFast, LongtermWritablePinOfAWrittenBackFileIsRefused) {
  auto ext4 = File::create(m.vm, FsType::kExt4, "data", PAGE_SIZE);
  auto tmp = File::create(m.vm, FsType::kTmpfs, "tmp", PAGE_SIZE);
  auto e = vm_mmap(*mm, VirtAddr(0), PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, ext4);
  auto t = vm_mmap(*mm, VirtAddr(0), PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, tmp);
  ASSERT_TRUE(e.ok() && t.ok());
  ASSERT_TRUE(write_user<uint8_t>(*mm, *e, 1).ok());
  ASSERT_TRUE(write_user<uint8_t>(*mm, *t, 1).ok());
  Page* page = nullptr;
  EXPECT_EQ(pin_user_pages_fast(e->value(), 1, FOLL_WRITE | FOLL_LONGTERM, &page), -EFAULT);
  EXPECT_EQ(pin_user_pages_fast(t->value(), 1, FOLL_WRITE | FOLL_LONGTERM, &page), 1);
  unpin_user_page(page);
  EXPECT_EQ(pin_user_pages_fast(e->value(), 1, FOLL_WRITE, &page), 1);  // short-term is fine
  unpin_user_page(page);
}

TEST_F(GupFast, ThpIsOneGrabForAllItsPages) {
  const VirtAddr raw = testing::map_anon(*mm, 2 * HPAGE_PMD_SIZE);
  const VirtAddr h((raw.value() + HPAGE_PMD_SIZE - 1) & HPAGE_PMD_MASK);
  ASSERT_TRUE(write_user<uint8_t>(*mm, h, 1).ok());
  lru_add_drain_all(*m.ms);
  std::vector<Page*> pages(100);
  EXPECT_EQ(pin_user_pages_fast((h + 10 * PAGE_SIZE).value(), 100, FOLL_WRITE, pages.data()), 100);
  Folio* f = page_folio(pages[0]);
  EXPECT_EQ(folio_pincount(f), 100);
  EXPECT_EQ(pages[99], folio_page(f, 109));
  unpin_user_pages(pages);
  EXPECT_EQ(folio_ref_count(f), 1);
}

class GupFastMovable : public GupFast {
 protected:
  GupFastMovable() : GupFast(Bytes::MiB(16)) {}
};

// KERNEL-SPEC 4.3: the fast grab refuses a folio that may not be pinned
// long-term, and the slow path it falls back to migrates it.
TEST_F(GupFastMovable, LongtermPinOfMovableMemoryMigratesThroughTheSlowPath) {
  const VirtAddr a = populated(4);
  ASSERT_EQ(page_zone(testing::page_at(*mm, a))->type(), ZONE_MOVABLE);
  std::vector<Page*> pages(4);
  EXPECT_EQ(pin_user_pages_fast(a.value(), 4, FOLL_WRITE | FOLL_LONGTERM, pages.data()), 4);
  for (Page* p : pages)
    EXPECT_TRUE(folio_is_longterm_pinnable(page_folio(p)));
  EXPECT_EQ(m.ms->events().get(PGMIGRATE_SUCCESS), 4);
  unpin_user_pages(pages);
  EXPECT_EQ(get_user_pages_fast_only(a.value(), 1, FOLL_WRITE, pages.data()), 1);
  put_page(pages[0]);
}

// Fast and slow paths return the same pages for the same request, and
// unpinning restores every count.
RC_GTEST_FIXTURE_PROP(GupFast, FastAndSlowAgree, ()) {
  const auto n = *rc::gen::inRange<uint64_t>(1, 24);
  const auto populate = *rc::gen::container<std::vector<bool>>(n, rc::gen::arbitrary<bool>());
  const bool write = *rc::gen::arbitrary<bool>();
  const VirtAddr a = testing::map_anon(*mm, n * PAGE_SIZE);
  for (uint64_t i = 0; i < n; ++i)
    if (populate[i]) RC_ASSERT(write_user<uint8_t>(*mm, a + i * PAGE_SIZE, 1).ok());
  lru_add_drain_all(*m.ms);
  const Foll flags = write ? FOLL_WRITE : FOLL_NONE;
  std::vector<Page*> fast(n), slow(n);
  const int64_t acq0 = acquired();
  RC_ASSERT(pin_user_pages_fast(a.value(), n, flags, fast.data()) == static_cast<long>(n));
  mm->mmap_lock.down_read();
  const long r = pin_user_pages(a.value(), n, flags, slow.data());
  mm->mmap_lock.up_read();
  RC_ASSERT(r == static_cast<long>(n));
  RC_ASSERT(fast == slow);
  const int64_t rel0 = m.ms->node(0).stats().get(NR_FOLL_PIN_RELEASED);
  unpin_user_pages(fast);
  unpin_user_pages(slow);
  lru_add_drain_all(*m.ms);  // pages the fallback faulted in sat in a batch
  for (Page* p : fast) {
    if (p == m.ms->zero_page()) continue;
    RC_ASSERT(folio_ref_count(page_folio(p)) == 1);
  }
  RC_ASSERT(m.ms->node(0).stats().get(NR_FOLL_PIN_RELEASED) - rel0 == acquired() - acq0);
  RC_ASSERT(vm_munmap(*mm, a, n * PAGE_SIZE).ok());
}

// pin_user_pages_fast racing with munmap: a pin either lands on a page that
// stays allocated until unpinned, or fails; never on a freed frame. Each
// round's mapping is pinned at least once before its munmap starts; the
// pinner's later attempts race with the munmap (the lockless walk, and the
// slow path it falls back to under the mmap lock). FOLL_FAST_ONLY is not
// for pin_user_pages_fast: it is an internal flag (-EINVAL), which an
// earlier version of this test passed and so never pinned anything.
TEST_F(GupFast, ConcurrentPinRacesWithMunmap) {
  constexpr uint64_t kPages = 8;
  constexpr uint64_t kRounds = 200;
  // The main thread publishes round r's address, then r; the pinner reads
  // r, then the address (which cannot change until it reports r).
  std::atomic<uint64_t> addr{0}, round_published{0}, round_attempted{0};
  std::atomic<int> pinned{0}, bad{0};
  testing::ScopedThreads threads;
  threads.spawn([&](std::stop_token stop) {
    current().set_mm(mm.get());
    std::vector<Page*> pages(kPages);
    while (!stop.stop_requested()) {
      const uint64_t round = round_published.load(std::memory_order_acquire);
      if (round == 0) {
        std::this_thread::yield();
        continue;
      }
      const uint64_t a = addr.load(std::memory_order_relaxed);
      const long n = pin_user_pages_fast(a, kPages, FOLL_WRITE, pages.data());
      for (long i = 0; i < n; ++i) {
        // What a device about to DMA relies on: the frame is still a live,
        // pinned page, not back in the allocator.
        if (pages[i]->refcount() < GUP_PIN_COUNTING_BIAS || PageBuddy(pages[i])) bad++;
      }
      unpin_user_pages(std::span<Page* const>(pages.data(), static_cast<size_t>(std::max(n, 0L))));
      if (n > 0) pinned.fetch_add(1);
      round_attempted.store(round, std::memory_order_release);
    }
    current().set_mm(nullptr);
  });
  for (uint64_t round = 1; round <= kRounds; ++round) {
    const VirtAddr a = testing::map_anon(*mm, kPages * PAGE_SIZE);
    testing::fill_pages(*mm, a, kPages * PAGE_SIZE, 1);
    addr.store(a.value(), std::memory_order_relaxed);
    round_published.store(round, std::memory_order_release);
    ASSERT_TRUE(testing::wait_until([&] { return round_attempted.load() == round; }))
        << "the pinner stalled in round " << round;
    ASSERT_TRUE(vm_munmap(*mm, a, kPages * PAGE_SIZE).ok());
  }
  threads.stop_and_join();
  EXPECT_EQ(bad.load(), 0) << "a pin landed on a freed frame";
  EXPECT_GE(pinned.load(), static_cast<int>(kRounds)) << "each round pinned before its munmap";
  RecordProperty("pins", pinned.load());
  lru_add_drain_all(*m.ms);
  EXPECT_EQ(m.ms->node(0).stats().get(NR_FOLL_PIN_ACQUIRED),
            m.ms->node(0).stats().get(NR_FOLL_PIN_RELEASED));
  // validate_vm waits for the RCU-deferred page-table frees of the munmaps.
  EXPECT_VM_VALID(m.vm);
}

// What a device does with a pinned page: a DMA write straight into its
// frame, bypassing the page tables.
void dma_write(const MemorySystem& ms, const Page* page, uint64_t offset, uint64_t value) {
  std::memcpy(ms.frames().frame(ms.page_to_pfn(page)) + offset, &value, sizeof(value));
}

uint64_t stamp(uint64_t round, uint64_t page) { return (round << 16) | page; }

// A pinned page must stay where the process maps it while the pin is held:
// if pin_user_pages_fast ever returned a page that migration then moved, the
// device's write would land in the old frame and the CPU would not see it.
// One thread moves the pages between the two nodes, pass after pass; the
// other pins them (fast path, falling back where it meets migration
// entries) while a pass may be running, holds the pins across two whole
// passes, DMA-writes a stamp into each pinned frame and reads it back
// through the page tables, unpins, and lets two whole passes run without
// pins (so the pages really move between rounds).
TEST(GupFastConcurrent, ConcurrentPinRacesWithMigration) {
  constexpr uint64_t kPages = 16;
  testing::VmMachine m(testing::two_node_machine());
  MmHandle mm = Mm::create(m.vm);
  current().set_mm(mm.get());
  const VirtAddr a = testing::map_anon(*mm, kPages * PAGE_SIZE);
  ASSERT_EQ(do_madvise(*mm, a, kPages * PAGE_SIZE, MADV_NOHUGEPAGE).ok(), true);
  testing::fill_pages(*mm, a, kPages * PAGE_SIZE, 1);
  auto migrated = [&] { return m.ms->events().get(PGMIGRATE_SUCCESS); };
  const int64_t migrated0 = migrated();
  testing::Progress passes;
  std::atomic<int> failed_calls{0};
  testing::ScopedThreads threads;
  threads.spawn([&](std::stop_token stop) {
    current().set_mm(mm.get());
    std::vector<VirtAddr> addrs;
    for (uint64_t i = 0; i < kPages; ++i)
      addrs.push_back(a + i * PAGE_SIZE);
    std::vector<int> status(kPages);
    for (int round = 0; !stop.stop_requested(); ++round) {
      const std::vector<int> nodes(kPages, round % 2);
      if (!move_pages(*mm, addrs, nodes, status, MPOL_MF_MOVE).ok()) failed_calls++;
      passes.advance();
    }
    current().set_mm(nullptr);
  });
  std::vector<Page*> pages(kPages);
  int64_t checked = 0;
  for (uint64_t round = 1; round <= 100; ++round) {
    const long n = pin_user_pages_fast(a.value(), kPages, FOLL_WRITE, pages.data());
    ASSERT_EQ(n, static_cast<long>(kPages));
    // Hold the pins across at least one whole move_pages pass.
    ASSERT_TRUE(passes.wait_for(passes.get() + 2)) << "the migrator stalled";
    for (uint64_t i = 0; i < kPages; ++i)
      dma_write(*m.ms, pages[i], 8, stamp(round, i));
    for (uint64_t i = 0; i < kPages; ++i) {
      auto v = read_user<uint64_t>(*mm, a + i * PAGE_SIZE + 8);
      ASSERT_TRUE(v.ok());
      ASSERT_EQ(*v, stamp(round, i)) << "the DMA write through the pin was lost, page " << i;
      ++checked;
    }
    unpin_user_pages(pages);
    // Two whole passes without pins: one of them targets the other node.
    ASSERT_TRUE(passes.wait_for(passes.get() + 3)) << "the migrator stalled";
  }
  threads.stop_and_join();
  EXPECT_EQ(failed_calls.load(), 0);
  EXPECT_GE(migrated() - migrated0, 100 * static_cast<int64_t>(kPages))
      << "every round's unpinned passes move the pages";
  RecordProperty("pages_moved", static_cast<int>(migrated() - migrated0));
  RecordProperty("pages_checked", static_cast<int>(checked));
  lru_add_drain_all(*m.ms);
  EXPECT_EQ(m.ms->node(0).stats().get(NR_FOLL_PIN_ACQUIRED) +
                m.ms->node(1).stats().get(NR_FOLL_PIN_ACQUIRED),
            m.ms->node(0).stats().get(NR_FOLL_PIN_RELEASED) +
                m.ms->node(1).stats().get(NR_FOLL_PIN_RELEASED));
  EXPECT_VM_VALID(m.vm);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
  current().set_mm(nullptr);
}

// KERNEL-SPEC 3.5 and 12.7, 12.9: a pin taken while another thread forks
// must keep the pinned page with the parent. If GUP-fast pinned a page that
// fork had just write-protected and shared, the parent's next write would
// COW away from it and the device's write through the pin would be lost.
// The pinner pins, holds the pins across a whole fork, writes through its
// own page tables (COW if the page were shared), DMA-writes through the pin
// and reads the DMA back; the forker forks and lets each child write before
// it exits. Pins taken while a fork runs meet write_protect_seq.
TEST_F(GupFast, ConcurrentPinRacesWithFork) {
  constexpr uint64_t kPages = 8;
  const VirtAddr a = testing::map_anon(*mm, kPages * PAGE_SIZE);
  ASSERT_EQ(do_madvise(*mm, a, kPages * PAGE_SIZE, MADV_NOHUGEPAGE).ok(), true);
  testing::fill_pages(*mm, a, kPages * PAGE_SIZE, 1);
  testing::Progress forks;
  std::atomic<int> bad_forks{0};
  // Fork copies a maybe-pinned page while the parent's other threads may
  // write it, so the child gets whatever bytes were there: a race the
  // kernel leaves to user space, and a real data race on the frame here.
  // The pinner's CPU and DMA phase therefore excludes forks; the pin calls
  // and the pins' lifetime do not.
  std::mutex cpu_phase;
  testing::ScopedThreads threads;
  threads.spawn([&](std::stop_token stop) {
    while (!stop.stop_requested()) {
      std::unique_lock<std::mutex> no_cpu_access(cpu_phase);
      auto child = dup_mm(*mm);
      no_cpu_access.unlock();
      if (!child.ok() || !write_user<uint64_t>(**child, a, 0xc0ffee).ok()) bad_forks++;
      forks.advance();
    }
  });
  std::vector<Page*> pages(kPages);
  for (uint64_t round = 1; round <= 100; ++round) {
    const long n = pin_user_pages_fast(a.value(), kPages, FOLL_WRITE, pages.data());
    ASSERT_EQ(n, static_cast<long>(kPages));
    // Hold the pins across at least one whole fork.
    ASSERT_TRUE(forks.wait_for(forks.get() + 2)) << "the forker stalled";
    std::lock_guard<std::mutex> no_fork(cpu_phase);
    for (uint64_t i = 0; i < kPages; ++i) {
      ASSERT_TRUE(write_user<uint64_t>(*mm, a + i * PAGE_SIZE, round).ok());
      dma_write(*m.ms, pages[i], 8, stamp(round, i));
    }
    for (uint64_t i = 0; i < kPages; ++i) {
      auto v = read_user<uint64_t>(*mm, a + i * PAGE_SIZE + 8);
      ASSERT_TRUE(v.ok());
      ASSERT_EQ(*v, stamp(round, i)) << "the pinned page left the parent, page " << i;
    }
    unpin_user_pages(pages);
  }
  threads.stop_and_join();
  EXPECT_EQ(bad_forks.load(), 0);
  RecordProperty("forks", static_cast<int>(forks.get()));
  lru_add_drain_all(*m.ms);
  EXPECT_EQ(acquired(), m.ms->node(0).stats().get(NR_FOLL_PIN_RELEASED));
  EXPECT_VM_VALID(m.vm);
}

}  // namespace
}  // namespace pinmm
