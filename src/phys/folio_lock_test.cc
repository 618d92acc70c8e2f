#include "pinmm/phys/folio_lock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <thread>
#include <vector>

#include "pinmm/phys/page_alloc.h"
#include "testing/machines.h"

namespace pinmm {
namespace {

using testing::boot_tiny;

TEST(FolioLock, TrylockAndUnlock) {
  auto ms = boot_tiny(Bytes::MiB(4));
  Folio* f = folio_alloc(*ms, GFP_KERNEL, Order(0));
  EXPECT_TRUE(folio_trylock(f));
  EXPECT_TRUE(folio_test_locked(f));
  EXPECT_FALSE(folio_trylock(f));
  folio_unlock(f);
  EXPECT_FALSE(folio_test_locked(f));
  folio_put(f);
}

TEST(FolioLock, WaiterSleepsUntilUnlockWithoutAReference) {
  auto ms = boot_tiny(Bytes::MiB(4));
  Folio* f = folio_alloc(*ms, GFP_KERNEL, Order(0));
  folio_lock(f);
  std::atomic<bool> queued{false}, woke{false};
  std::thread waiter([&] {
    // The unlock callback runs once the waiter is queued: where
    // migration_entry_wait drops the page-table lock.
    ms->wait_table().wait_bit(f, PG_locked, [&] { queued = true; });
    woke = true;
  });
  while (!queued)
    std::this_thread::yield();
  EXPECT_EQ(folio_ref_count(f), 1);  // the waiter holds no reference
  EXPECT_TRUE(f->page.test(PG_waiters));
  EXPECT_FALSE(woke.load());
  folio_unlock(f);
  waiter.join();
  EXPECT_TRUE(woke.load());
  EXPECT_FALSE(f->page.test(PG_waiters));  // the last waiter left
  folio_put(f);
}

TEST(FolioLock, WaitOnAClearBitRunsUnlockAndReturns) {
  auto ms = boot_tiny(Bytes::MiB(4));
  Folio* f = folio_alloc(*ms, GFP_KERNEL, Order(0));
  bool unlocked = false;
  ms->wait_table().wait_bit(f, PG_locked, [&] { unlocked = true; });
  EXPECT_TRUE(unlocked);
  folio_put(f);
}

TEST(FolioLock, WritebackWaiters) {
  auto ms = boot_tiny(Bytes::MiB(4));
  Folio* f = folio_alloc(*ms, GFP_KERNEL, Order(0));
  folio_set_writeback(f);
  std::thread waiter([&] { folio_wait_writeback(f); });
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  folio_end_writeback(f);
  waiter.join();
  EXPECT_FALSE(folio_test_writeback(f));
  folio_put(f);
}

// Threads take the folio lock in turn and increment a counter it protects;
// others wait on the lock bit meanwhile. Runs under ThreadSanitizer.
TEST(FolioLockConcurrent, MutualExclusionAndNoLostWakeups) {
  auto ms = boot_tiny(Bytes::MiB(4));
  Folio* f = folio_alloc(*ms, GFP_KERNEL, Order(0));
  constexpr int kThreads = 4, kRounds = 500;
  int64_t counter = 0;
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (int i = 0; i < kRounds; ++i) {
        folio_lock(f);
        ++counter;
        folio_unlock(f);
        if (i % 16 == 0) folio_wait_locked(f);
      }
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(counter, int64_t{kThreads} * kRounds);
  EXPECT_FALSE(folio_test_locked(f));
  folio_put(f);
}

}  // namespace
}  // namespace pinmm
