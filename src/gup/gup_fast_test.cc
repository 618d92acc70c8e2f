// GUP-fast (KERNEL-SPEC 3.5, 4.1, 4.3) and its merging with the slow path.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "pinmm/base/task.h"
#include "pinmm/gup/gup.h"
#include "pinmm/gup/pin.h"
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
// stays allocated until unpinned, or fails; never on a freed frame.
TEST_F(GupFast, ConcurrentPinRacesWithMunmap) {
  constexpr uint64_t kPages = 8;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> addr{0};
  std::atomic<int> pinned{0};
  std::thread pinner([&] {
    current().set_mm(mm.get());
    std::vector<Page*> pages(kPages);
    while (!stop.load()) {
      const uint64_t a = addr.load();
      if (a == 0) continue;
      const long n = pin_user_pages_fast(a, kPages, FOLL_WRITE | FOLL_FAST_ONLY, pages.data());
      if (n == -EINVAL) continue;
      for (long i = 0; i < n; ++i) {
        // What a device about to DMA relies on: the frame is still a live,
        // pinned page, not back in the allocator.
        ASSERT_GE(pages[i]->refcount(), GUP_PIN_COUNTING_BIAS);
        ASSERT_FALSE(PageBuddy(pages[i]));
      }
      unpin_user_pages(std::span<Page* const>(pages.data(), static_cast<size_t>(std::max(n, 0L))));
      if (n > 0) pinned.fetch_add(1);
    }
    current().set_mm(nullptr);
  });
  for (int round = 0; round < 200; ++round) {
    const VirtAddr a = testing::map_anon(*mm, kPages * PAGE_SIZE);
    testing::fill_pages(*mm, a, kPages * PAGE_SIZE, 1);
    addr = a.value();
    std::this_thread::yield();
    ASSERT_TRUE(vm_munmap(*mm, a, kPages * PAGE_SIZE).ok());
  }
  stop = true;
  pinner.join();
  lru_add_drain_all(*m.ms);
  EXPECT_EQ(m.ms->node(0).stats().get(NR_FOLL_PIN_ACQUIRED),
            m.ms->node(0).stats().get(NR_FOLL_PIN_RELEASED));
  // validate_vm waits for the RCU-deferred page-table frees of the munmaps.
  EXPECT_VM_VALID(m.vm);
}

}  // namespace
}  // namespace pinmm
