// MMU interval notifiers (KERNEL-SPEC 9.3): the sequence protocol, deferred
// insertion and removal, non-blockable refusal, release at teardown, and the
// reader/invalidator protocol under concurrency.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "pinmm/vm/mmu_notifier.h"
#include "testing/concurrency.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

using std::chrono::milliseconds;

// A driver as lib/test_hmm.c writes one: the invalidate callback takes the
// driver lock, sets the sequence, "tears down" (counts) and returns true;
// for a non-blockable range it may refuse.
class Driver : public MmuIntervalNotifierOps {
 public:
  bool invalidate(MmuIntervalNotifier* sub, const MmuNotifierRange& range,
                  uint64_t cur_seq) override {
    if (!mmu_notifier_range_blockable(range) && refuse_nonblock) return false;
    std::lock_guard<std::mutex> g(lock);
    mmu_interval_set_seq(sub, cur_seq);
    seqs.push_back(cur_seq);
    events.push_back(range.event);
    ranges.emplace_back(range.start.value(), range.end.value());
    generation.fetch_add(1, std::memory_order_relaxed);
    if (hold != nullptr) {
      held.store(true);
      while (hold->load())
        std::this_thread::yield();
    }
    return true;
  }
  std::mutex lock;
  std::vector<uint64_t> seqs;
  std::vector<MmuNotifyEvent> events;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  std::atomic<uint64_t> generation{0};
  bool refuse_nonblock = false;
  std::atomic<bool>* hold = nullptr;  // while *hold, the callback waits
  std::atomic<bool> held{false};
};

// A subscription removed when it goes out of scope (if it was inserted).
struct ScopedSub : MmuIntervalNotifier {
  ~ScopedSub() {
    if (mm() != nullptr) mmu_interval_notifier_remove(this);
  }
};

class IntervalNotifier : public ::testing::Test {
 protected:
  IntervalNotifier() : mm(Mm::create(m.vm)) {}
  int insert(ScopedSub& sub, VirtAddr start, uint64_t len) {
    return mmu_interval_notifier_insert(&sub, *mm, start.value(), len, &driver);
  }
  uint64_t global() { return mm->notifiers().invalidate_seq(); }
  // An invalidation of [a, a + PAGE_SIZE) in another thread, returned once
  // its callback is running and waiting for `hold` to clear.
  std::thread invalidate_held(VirtAddr a, std::atomic<bool>& hold) {
    driver.hold = &hold;
    std::thread t([this, a] {
      mmu_notifier_invalidate_range_start(range(a, PAGE_SIZE));
      mmu_notifier_invalidate_range_end(range(a, PAGE_SIZE));
    });
    while (!driver.held.load())
      std::this_thread::yield();
    return t;
  }
  MmuNotifierRange range(VirtAddr s, uint64_t len, unsigned flags = MMU_NOTIFIER_RANGE_BLOCKABLE) {
    return {mm.get(), s, s + len, flags, MMU_NOTIFY_CLEAR, nullptr};
  }

  testing::VmMachine m;
  MmHandle mm;
  Driver driver;
};

TEST_F(IntervalNotifier, SequenceStartsAtTwoAndANewSubscriptionSitsJustBelow) {
  EXPECT_EQ(global(), 2u);
  ScopedSub sub;
  ASSERT_EQ(insert(sub, VirtAddr(0x100000), 0x10000), 0);
  EXPECT_EQ(sub.start(), 0x100000u);
  EXPECT_EQ(sub.last(), 0x10ffffu);
  EXPECT_EQ(sub.invalidate_seq(), 1u) << "global - 1: odd, never the idle value";
  const uint64_t seq = mmu_interval_read_begin(&sub);  // does not wait
  EXPECT_EQ(seq, 1u);
  EXPECT_FALSE(mmu_interval_read_retry(&sub, seq));
}

TEST_F(IntervalNotifier, AnIntersectingInvalidationGoesOddAndTheCallbackStoresIt) {
  const VirtAddr a = testing::map_anon(*mm, 16 * PAGE_SIZE);
  testing::fill_pages(*mm, a, 16 * PAGE_SIZE, 1);
  ScopedSub sub;
  ASSERT_EQ(insert(sub, a, 16 * PAGE_SIZE), 0);
  const uint64_t seq = mmu_interval_read_begin(&sub);
  ASSERT_TRUE(do_madvise(*mm, a + 4 * PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED).ok());
  ASSERT_EQ(driver.seqs.size(), 1u);
  EXPECT_EQ(driver.seqs[0], 3u) << "2 | 1";
  EXPECT_EQ(driver.ranges[0],
            std::make_pair((a + 4 * PAGE_SIZE).value(), (a + 5 * PAGE_SIZE).value()));
  EXPECT_EQ(global(), 4u) << "the end made it even again";
  EXPECT_TRUE(mmu_interval_read_retry(&sub, seq));
  EXPECT_TRUE(mmu_interval_check_retry(&sub, seq));
  const uint64_t again = mmu_interval_read_begin(&sub);
  EXPECT_EQ(again, 3u);
  EXPECT_FALSE(mmu_interval_read_retry(&sub, again));
}

TEST_F(IntervalNotifier, AnInvalidationElsewhereIsNotSeenAndLeavesTheSequenceEven) {
  const VirtAddr a = testing::map_anon(*mm, 4 * PAGE_SIZE);
  const VirtAddr b = testing::map_anon(*mm, 4 * PAGE_SIZE);
  testing::fill_pages(*mm, b, 4 * PAGE_SIZE, 1);
  ScopedSub sub;
  ASSERT_EQ(insert(sub, a, 4 * PAGE_SIZE), 0);
  ASSERT_TRUE(vm_munmap(*mm, b, 4 * PAGE_SIZE).ok());
  EXPECT_TRUE(driver.seqs.empty());
  EXPECT_EQ(global(), 2u);
  // The range end is exclusive, the subscription's last inclusive.
  const int rc = mmu_notifier_invalidate_range_start_nonblock(
      range(VirtAddr(a.value() - PAGE_SIZE), PAGE_SIZE));
  ASSERT_EQ(rc, 0);
  mmu_notifier_invalidate_range_end(range(VirtAddr(a.value() - PAGE_SIZE), PAGE_SIZE));
  EXPECT_TRUE(driver.seqs.empty());
  mmu_notifier_invalidate_range_start(range(VirtAddr((a + 4 * PAGE_SIZE).value() - 1), 1));
  mmu_notifier_invalidate_range_end(range(VirtAddr((a + 4 * PAGE_SIZE).value() - 1), 1));
  EXPECT_EQ(driver.seqs.size(), 1u);
}

// mmu_interval_read_begin sleeps while an invalidation covering the
// subscription is between start and end.
TEST_F(IntervalNotifier, ReadBeginWaitsForAnInvalidationInFlight) {
  ScopedSub sub;
  const VirtAddr a(0x200000);
  ASSERT_EQ(insert(sub, a, PAGE_SIZE), 0);
  std::atomic<bool> hold{true};
  std::thread inval = invalidate_held(a, hold);
  // The callback has stored the odd cur_seq: a reader now matches the
  // global value and must wait for the end.
  EXPECT_EQ(sub.invalidate_seq(), global());
  std::atomic<bool> returned{false};
  uint64_t seq = 0;
  std::thread reader([&] {
    seq = mmu_interval_read_begin(&sub);
    returned = true;
  });
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_FALSE(returned.load()) << "read_begin returned during the invalidation";
  hold = false;
  inval.join();
  reader.join();
  EXPECT_TRUE(returned.load());
  EXPECT_EQ(seq, 3u);
  EXPECT_EQ(global(), 4u);
  driver.hold = nullptr;
}

// Insertion while an invalidation is in flight: while the set is frozen
// (odd) the insert is deferred to the end and the subscription starts at
// the global value, so its first read_begin waits; while an invalidation
// that met nobody is active, the insert makes the sequence odd itself.
TEST_F(IntervalNotifier, InsertsDuringAnInvalidationAreDeferredOrForceOdd) {
  ScopedSub first;
  const VirtAddr a(0x400000);
  ASSERT_EQ(insert(first, a, PAGE_SIZE), 0);
  mmu_notifier_invalidate_range_start(range(a, PAGE_SIZE));  // frozen: 3
  ScopedSub late;
  ASSERT_EQ(insert(late, a, PAGE_SIZE), 0);
  EXPECT_EQ(late.invalidate_seq(), 3u);
  mmu_notifier_invalidate_range_end(range(a, PAGE_SIZE));  // 4, late goes in
  EXPECT_EQ(global(), 4u);
  const uint64_t calls = driver.seqs.size();
  mmu_notifier_invalidate_range_start(range(a, PAGE_SIZE));
  mmu_notifier_invalidate_range_end(range(a, PAGE_SIZE));
  EXPECT_EQ(driver.seqs.size(), calls + 2) << "both subscriptions are in the set now";

  // Active but meeting nobody: the insert itself makes the sequence odd.
  const VirtAddr elsewhere(0x800000);
  mmu_notifier_invalidate_range_start(range(elsewhere, PAGE_SIZE));
  EXPECT_EQ(global(), 6u);
  ScopedSub during;
  ASSERT_EQ(insert(during, elsewhere + PAGE_SIZE, PAGE_SIZE), 0);
  EXPECT_EQ(global(), 7u);
  EXPECT_EQ(during.invalidate_seq(), 7u);
  mmu_notifier_invalidate_range_end(range(elsewhere, PAGE_SIZE));
  EXPECT_EQ(global(), 8u);
  EXPECT_FALSE(mmu_interval_read_retry(&during, mmu_interval_read_begin(&during)));
}

// Removal while the set is frozen waits for the end; no callback runs on the
// subscription afterwards.
TEST_F(IntervalNotifier, RemoveWaitsForTheInvalidationInFlight) {
  auto* sub = new MmuIntervalNotifier;
  const VirtAddr a(0x600000);
  ASSERT_EQ(mmu_interval_notifier_insert(sub, *mm, a.value(), PAGE_SIZE, &driver), 0);
  std::atomic<bool> hold{true};
  std::thread inval = invalidate_held(a, hold);
  std::atomic<bool> removed{false};
  std::thread remover([&] {
    mmu_interval_notifier_remove(sub);
    removed = true;
  });
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_FALSE(removed.load());
  hold = false;
  inval.join();
  remover.join();
  delete sub;
  driver.hold = nullptr;
  const uint64_t calls = driver.seqs.size();
  mmu_notifier_invalidate_range_start(range(a, PAGE_SIZE));
  mmu_notifier_invalidate_range_end(range(a, PAGE_SIZE));
  EXPECT_EQ(driver.seqs.size(), calls);
}

TEST_F(IntervalNotifier, InsertArgumentErrors) {
  ScopedSub sub;
  EXPECT_EQ(mmu_interval_notifier_insert(&sub, *mm, 0x1000, 0, &driver), -EOVERFLOW);
  EXPECT_EQ(mmu_interval_notifier_insert(&sub, *mm, ~uint64_t{0} - 10, 100, &driver), -EOVERFLOW);
  EXPECT_EQ(mmu_interval_notifier_insert(&sub, *mm, ~uint64_t{0} - 99, 100, &driver), 0)
      << "up to the last address is fine";
  mmu_interval_notifier_remove(&sub);
}

// A callback may refuse only a non-blockable range; the start then fails
// with -EAGAIN, has no end, and the sequence is even again.
TEST_F(IntervalNotifier, NonBlockableRangeMayBeRefused) {
  ScopedSub sub;
  const VirtAddr a(0x700000);
  ASSERT_EQ(insert(sub, a, PAGE_SIZE), 0);
  driver.refuse_nonblock = true;
  EXPECT_EQ(mmu_notifier_invalidate_range_start_nonblock(range(a, PAGE_SIZE, 0)), -EAGAIN);
  EXPECT_EQ(global(), 4u);
  EXPECT_TRUE(driver.seqs.empty());
  EXPECT_EQ(mmu_notifier_invalidate_range_start_nonblock(range(a, PAGE_SIZE)), 0);
  mmu_notifier_invalidate_range_end(range(a, PAGE_SIZE));
  EXPECT_EQ(driver.seqs.size(), 1u);
}

// At mm teardown every subscription hears one blockable MMU_NOTIFY_RELEASE
// over the whole address space.
TEST(IntervalNotifierRelease, TeardownSendsRelease) {
  testing::VmMachine m;
  Driver driver;
  ScopedSub sub;
  {
    MmHandle mm = Mm::create(m.vm);
    mm->mmgrab();  // keep the structure for the removal below
    ASSERT_EQ(mmu_interval_notifier_insert(&sub, *mm, 0x10000, PAGE_SIZE, &driver), 0);
    Mm* raw = mm.get();
    mm.reset();  // exit_mmap
    ASSERT_EQ(driver.events.size(), 1u);
    EXPECT_EQ(driver.events[0], MMU_NOTIFY_RELEASE);
    EXPECT_EQ(driver.ranges[0], std::make_pair(uint64_t{0}, ~uint64_t{0}));
    MmuIntervalNotifier refused;
    EXPECT_EQ(mmu_interval_notifier_insert(&refused, *raw, 0, 1, &driver), -EINVAL)
        << "an mm without users takes no subscription";
    mmu_interval_notifier_remove(&sub);
    raw->mmdrop();
  }
}

// The protocol under concurrency: readers loop read_begin / look up /
// driver lock + read_retry while another thread maps, mprotects and zaps
// the range. A lookup that passes read_retry must never have had an
// invalidation since read_begin (the callback bumps a generation under the
// same lock). The invalidations go on until both outcomes were seen: a
// lookup that passed and one that had to retry.
TEST_F(IntervalNotifier, ConcurrentReadersNeverMissAnInvalidation) {
  constexpr uint64_t kPages = 16;
  const VirtAddr a = testing::map_anon(*mm, kPages * PAGE_SIZE);
  ScopedSub sub;
  ASSERT_EQ(insert(sub, a, kPages * PAGE_SIZE), 0);
  std::atomic<uint64_t> passes{0}, retries{0};
  testing::ScopedThreads readers;
  for (int r = 0; r < 2; ++r) {
    readers.spawn([&](std::stop_token stop) {
      while (!stop.stop_requested()) {
        const uint64_t seq = mmu_interval_read_begin(&sub);
        const uint64_t gen0 = driver.generation.load(std::memory_order_relaxed);
        std::this_thread::yield();  // the "lookup"
        std::lock_guard<std::mutex> g(driver.lock);
        if (mmu_interval_read_retry(&sub, seq)) {
          retries++;
          continue;
        }
        // Same lock as the callback: no callback ran since read_begin, so
        // the generation can have moved only before it.
        ASSERT_EQ(driver.generation.load(std::memory_order_relaxed), gen0)
            << "read_retry passed after an invalidation";
        passes++;
      }
    });
  }
  const uint64_t rounds = testing::repeat_until(
      200, [&] { return passes.load() > 0 && retries.load() > 0; },
      [&](uint64_t round) {
        testing::fill_pages(*mm, a, kPages * PAGE_SIZE, static_cast<uint8_t>(round));
        ASSERT_TRUE(do_mprotect(*mm, a, kPages * PAGE_SIZE, PROT_READ).ok());
        ASSERT_TRUE(do_mprotect(*mm, a, kPages * PAGE_SIZE, PROT_READ | PROT_WRITE).ok());
        ASSERT_TRUE(do_madvise(*mm, a, kPages * PAGE_SIZE, MADV_DONTNEED).ok());
      });
  readers.stop_and_join();
  EXPECT_NE(rounds, 0u) << "no lookup passed or none retried before the hang bound";
  RecordProperty("passes", static_cast<int>(passes.load()));
  RecordProperty("retries", static_cast<int>(retries.load()));
  EXPECT_EQ(global() % 2, 0u);
}

}  // namespace
}  // namespace pinmm
