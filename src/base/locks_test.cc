#include "pinmm/base/locks.h"

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <thread>
#include <vector>

#include "pinmm/base/check.h"
#include "pinmm/base/task.h"

namespace pinmm {
namespace {

TEST(Locks, MutexAndSpinLockBasics) {
  Mutex m(LockRank::kLeaf);
  SpinLock s(LockRank::kZoneLock);
  {
    MutexGuard g(m);
    m.assert_held();
    EXPECT_FALSE(m.try_lock());
  }
  EXPECT_TRUE(m.try_lock());
  m.unlock();
  {
    SpinGuard g(s);
    s.assert_held();
    EXPECT_TRUE(s.debug_is_locked());
  }
  EXPECT_FALSE(s.debug_is_locked());
}

TEST(Locks, RwSemReadersShareWritersExclude) {
  RwSem sem(LockRank::kMmapLock);
  sem.down_read();
  ASSERT_TRUE(sem.down_read_trylock());  // a second reader is fine
  sem.up_read();
  EXPECT_FALSE(sem.down_write_trylock());
  sem.up_read();
  EXPECT_TRUE(sem.down_write_trylock());
  EXPECT_TRUE(sem.debug_is_write_locked());
  EXPECT_FALSE(sem.down_read_trylock());
  sem.up_write();
}

TEST(Locks, KillableAcquisitionGivesUpOnFatalSignal) {
  RwSem sem(LockRank::kMmapLock);
  sem.down_write();
  std::atomic<int> outcome{-1};
  Task victim(7, "victim");
  std::thread t([&] {
    CurrentTask scope(victim);
    if (sem.down_read_killable()) {
      outcome = 1;
      sem.up_read();
    } else {
      outcome = 0;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  victim.send_signal(Signal::kKill);
  t.join();
  EXPECT_EQ(outcome.load(), 0);
  sem.up_write();
  // A plain (non-fatal) signal does not interrupt a killable acquisition.
  Task other(8, "other");
  CurrentTask scope(other);
  other.send_signal(Signal::kInterrupt);
  ASSERT_TRUE(sem.down_write_killable());
  sem.up_write();
}

TEST(Locks, GuardedDataIsReachedOnlyUnderItsLock) {
  Guarded<std::vector<int>> list(LockRank::kLeaf);
  list.with([](std::vector<int>& v) { v.push_back(1); });
  const size_t n = list.with([](std::vector<int>& v) { return v.size(); });
  EXPECT_EQ(n, 1u);
}

TEST(LocksDeathTest, LockOrderInversionAbortsInDebugBuilds) {
  if (!kPinmmDebug) GTEST_SKIP() << "lock ranks are checked in debug builds";
  Mutex outer(LockRank::kMmapLock);
  SpinLock inner(LockRank::kZoneLock);
  EXPECT_DEATH(
      {
        SpinGuard a(inner);
        MutexGuard b(outer);  // mmap_lock after zone_lock: inversion
      },
      "lock order inversion.*mmap_lock.*zone_lock");
  SpinLock same_rank(LockRank::kZoneLock);
  EXPECT_DEATH(
      {
        SpinGuard a(inner);
        SpinGuard b(same_rank);
      },
      "same-rank nesting");
}

TEST(Locks, TrylockAndNestedAreExemptFromRankChecks) {
  Mutex outer(LockRank::kMmapLock);
  SpinLock a(LockRank::kZoneLock), b(LockRank::kZoneLock);
  SpinGuard ga(a);
  ASSERT_TRUE(outer.try_lock());  // inversion by trylock cannot deadlock
  outer.unlock();
  b.lock_nested();
  b.unlock();
}

// Writers increment two counters under the write lock; readers check that
// they are always equal under the read lock. Runs under ThreadSanitizer.
TEST(LocksConcurrent, RwSemKeepsInvariantUnderContention) {
  RwSem sem(LockRank::kMmapLock);
  int64_t a = 0, b = 0;
  std::atomic<bool> broken{false};
  constexpr int kThreads = 4, kRounds = 2000;
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kRounds; ++i) {
        if ((i + t) % 3 == 0) {
          WriteGuard g(sem);
          ++a;
          ++b;
        } else {
          ReadGuard g(sem);
          if (a != b) broken = true;
        }
      }
    });
  }
  for (auto& th : threads)
    th.join();
  EXPECT_FALSE(broken.load());
  EXPECT_EQ(a, b);
  int64_t expected = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kRounds; ++i)
      expected += ((i + t) % 3 == 0);
  }
  EXPECT_EQ(a, expected);
}

TEST(LocksConcurrent, SpinLockCountsExactly) {
  SpinLock s(LockRank::kZoneLock);
  int64_t counter = 0;
  constexpr int kThreads = 4, kRounds = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        SpinGuard g(s);
        ++counter;
      }
    });
  }
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(counter, int64_t{kThreads} * kRounds);
}

}  // namespace
}  // namespace pinmm
