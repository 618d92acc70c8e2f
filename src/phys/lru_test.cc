#include "pinmm/phys/lru.h"

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <thread>
#include <vector>

#include "pinmm/base/task.h"
#include "pinmm/phys/page_alloc.h"
#include "testing/machines.h"

namespace pinmm {
namespace {

using testing::boot_tiny;

Folio* anon_folio(MemorySystem& ms, unsigned order = 0) {
  Folio* f = folio_alloc(ms, GFP_HIGHUSER_MOVABLE, Order(order));
  folio_set_swapbacked(f);  // anonymous memory lives on the anon lists
  return f;
}

TEST(Lru, BatchHoldsAReferenceUntilDrained) {
  auto ms = boot_tiny(Bytes::MiB(4));
  Folio* f = anon_folio(*ms);
  folio_add_lru(f);
  EXPECT_EQ(folio_ref_count(f), 2);  // ours and the batch's
  EXPECT_FALSE(folio_test_lru(f));
  EXPECT_FALSE(folio_isolate_lru(f));  // not on a list yet
  lru_add_drain(*ms);
  EXPECT_EQ(folio_ref_count(f), 1);
  EXPECT_TRUE(folio_test_lru(f));
  EXPECT_EQ(ms->vmstat()[NR_INACTIVE_ANON], 1);
  EXPECT_EQ(ms->vmstat()[NR_ZONE_INACTIVE_ANON], 1);
  EXPECT_VALID(*ms);
  folio_put(f);  // the last put takes it off the list
  EXPECT_EQ(ms->vmstat()[NR_INACTIVE_ANON], 0);
  EXPECT_VALID(*ms);
}

TEST(Lru, BatchDrainsWhenFullAndForLargeFolios) {
  auto ms = boot_tiny(Bytes::MiB(4));
  std::vector<Folio*> folios;
  for (unsigned i = 0; i < LruAddBatch::kSize - 1; ++i) {
    folios.push_back(anon_folio(*ms));
    folio_add_lru(folios.back());
  }
  EXPECT_EQ(ms->vmstat()[NR_INACTIVE_ANON], 0);
  folios.push_back(anon_folio(*ms));
  folio_add_lru(folios.back());  // the 31st fills the batch
  EXPECT_EQ(ms->vmstat()[NR_INACTIVE_ANON], 31);
  Folio* large = anon_folio(*ms, 2);
  folio_add_lru(large);  // large folios drain at once
  EXPECT_TRUE(folio_test_lru(large));
  EXPECT_EQ(ms->vmstat()[NR_INACTIVE_ANON], 35);
  EXPECT_VALID(*ms);
  for (Folio* f : folios)
    folio_put(f);
  folio_put(large);
  EXPECT_EQ(ms->vmstat()[NR_INACTIVE_ANON], 0);
}

TEST(Lru, DrainAllReachesEveryCpu) {
  auto ms = boot_tiny(Bytes::MiB(4));
  Task t(1, "cpu1");
  Folio* f = anon_folio(*ms);
  {
    CurrentTask scope(t);
    t.set_cpu(1, 0);
    folio_add_lru(f);
  }
  lru_add_drain(*ms);  // this thread's CPU 0: nothing there
  EXPECT_FALSE(folio_test_lru(f));
  lru_add_drain_all(*ms);
  EXPECT_TRUE(folio_test_lru(f));
  folio_put(f);
}

TEST(Lru, IsolateAndPutback) {
  auto ms = boot_tiny(Bytes::MiB(4));
  Folio* f = anon_folio(*ms);
  folio_add_lru(f);
  lru_add_drain(*ms);
  ASSERT_TRUE(folio_isolate_lru(f));
  EXPECT_FALSE(folio_test_lru(f));
  EXPECT_EQ(folio_ref_count(f), 2);  // the isolation's reference
  EXPECT_FALSE(folio_isolate_lru(f));
  EXPECT_EQ(ms->vmstat()[NR_INACTIVE_ANON], 0);
  folio_putback_lru(f);
  EXPECT_TRUE(folio_test_lru(f));
  EXPECT_EQ(folio_ref_count(f), 1);
  EXPECT_VALID(*ms);
  folio_put(f);
}

TEST(Lru, DisabledCacheAddsDirectly) {
  auto ms = boot_tiny(Bytes::MiB(4));
  Folio* queued = anon_folio(*ms);
  folio_add_lru(queued);
  lru_cache_disable(*ms);  // drains what was queued
  EXPECT_TRUE(folio_test_lru(queued));
  Folio* f = anon_folio(*ms);
  folio_add_lru(f);
  EXPECT_TRUE(folio_test_lru(f));
  lru_cache_enable(*ms);
  folio_put(f);
  folio_put(queued);
}

TEST(Lru, SecondAccessActivates) {
  auto ms = boot_tiny(Bytes::MiB(4));
  Folio* f = folio_alloc(*ms, GFP_HIGHUSER_MOVABLE, Order(0));  // not swapbacked: file lists
  folio_add_lru(f);
  lru_add_drain(*ms);
  folio_mark_accessed(f);
  EXPECT_EQ(folio_lru_list(f), LRU_INACTIVE_FILE);
  folio_mark_accessed(f);
  EXPECT_EQ(folio_lru_list(f), LRU_ACTIVE_FILE);
  EXPECT_EQ(ms->vmstat()[NR_ACTIVE_FILE], 1);
  EXPECT_EQ(ms->vmstat()[PGACTIVATE], 1);
  EXPECT_VALID(*ms);
  folio_put(f);
  EXPECT_EQ(ms->vmstat()[NR_ACTIVE_FILE], 0);
}

// A folio neither on an LRU list nor in this CPU's batch (isolated, or
// never on an LRU, like the huge zero folio) is not activated: the kernel's
// __lru_cache_activate_folio only looks in the batch. Only a folio found
// there is marked active, to land on the active list at the drain. (pinmm
// used to set PG_active on any folio off the LRU, so a freed huge zero
// folio carried PG_active into the allocator; found by pinmm stress.)
TEST(Lru, SecondAccessOffTheLruActivatesOnlyABatchedFolio) {
  auto ms = boot_tiny(Bytes::MiB(4));
  Folio* off = folio_alloc(*ms, GFP_HIGHUSER_MOVABLE, Order(0));  // on no list, in no batch
  folio_mark_accessed(off);
  folio_mark_accessed(off);
  EXPECT_FALSE(folio_test_active(off));
  EXPECT_EQ(ms->vmstat()[PGACTIVATE], 0);
  folio_put(off);  // would trip the free-time flag check if it were active

  Folio* batched = folio_alloc(*ms, GFP_HIGHUSER_MOVABLE, Order(0));
  folio_add_lru(batched);  // sits in this CPU's batch
  folio_mark_accessed(batched);
  folio_mark_accessed(batched);
  EXPECT_TRUE(folio_test_active(batched));
  lru_add_drain(*ms);
  EXPECT_EQ(folio_lru_list(batched), LRU_ACTIVE_FILE);
  EXPECT_EQ(ms->vmstat()[PGACTIVATE], 0) << "only lru_activate counts";
  EXPECT_VALID(*ms);
  folio_put(batched);
}

// Threads on two CPUs add folios, drain each other, isolate, put back and
// free. Runs under ThreadSanitizer; validate() checks lists and counters.
TEST(LruConcurrent, AddDrainIsolateFree) {
  auto ms = boot_tiny(Bytes::MiB(8));
  constexpr int kThreads = 2, kRounds = 400;
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Task task(100 + t, "lru");
      CurrentTask scope(task);
      task.set_cpu(t, 0);
      start.arrive_and_wait();
      std::vector<Folio*> mine;
      for (int i = 0; i < kRounds; ++i) {
        Folio* f = anon_folio(*ms);
        ASSERT_NE(f, nullptr);
        folio_add_lru(f);
        mine.push_back(f);
        if (i % 7 == 0) lru_add_drain_all(*ms);
        if (i % 5 == 0 && folio_isolate_lru(mine.front())) folio_putback_lru(mine.front());
        if (mine.size() > 40) {
          folio_put(mine.front());
          mine.erase(mine.begin());
        }
      }
      for (Folio* f : mine)
        folio_put(f);
    });
  }
  for (auto& th : threads)
    th.join();
  lru_add_drain_all(*ms);
  EXPECT_VALID(*ms);
  EXPECT_EQ(ms->vmstat()[NR_INACTIVE_ANON], 0);
  EXPECT_EQ(ms->zone(0, ZONE_NORMAL).stats().get(NR_FREE_PAGES), 2048);
}

}  // namespace
}  // namespace pinmm
