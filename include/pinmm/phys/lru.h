// LRU lists and the per-CPU LRU add batches.
//
// Linux counterpart: struct lruvec in pglist_data (include/linux/mmzone.h),
// the LRU half of mm/swap.c (folio_add_lru, lru_add_drain,
// lru_add_drain_all, lru_cache_disable, folio_mark_accessed) and
// folio_isolate_lru/folio_putback_lru from mm/vmscan.c. They live in phys/
// (DESIGN.md puts them in vm/) because the last folio_put must take a folio
// off its LRU list, and freeing is phys/'s business.
//
// A folio added with folio_add_lru() first sits in the current CPU's batch
// with an extra reference, and reaches its LRU list (PG_lru set) when the
// batch is drained: when it fills (31 folios), when a large folio is added,
// while LRU caching is disabled, or by lru_add_drain*(). That transient
// reference is what makes migration's expected-refcount check fail until
// someone drains.
//
// Aging is simplified: folio_mark_accessed() sets PG_referenced, a second
// call activates the folio (moves it to the active list); there is no
// reclaim to deactivate.
//
// Thread safety: each node's lists are guarded by its lru_lock; each CPU's
// batch by its own lock (taken before any lru_lock). PG_lru changes only
// under the lru_lock.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "pinmm/base/list.h"
#include "pinmm/base/locks.h"
#include "pinmm/phys/page.h"

namespace pinmm {

class MemorySystem;

enum LruList : uint8_t {
  LRU_INACTIVE_ANON,
  LRU_ACTIVE_ANON,
  LRU_INACTIVE_FILE,
  LRU_ACTIVE_FILE,
  LRU_UNEVICTABLE,
  NR_LRU_LISTS
};

const char* lru_list_name(LruList l);

// The LRU lists of one node.
struct LruVec {
  LruVec();
  mutable SpinLock lru_lock{LockRank::kLruLock};
  std::array<ListHead, NR_LRU_LISTS> lists GUARDED_BY(lru_lock);
  std::array<uint64_t, NR_LRU_LISTS> nr_folios GUARDED_BY(lru_lock){};
};

// One CPU's batch of folios waiting to be added to their LRU lists.
struct LruAddBatch {
  static constexpr unsigned kSize = 31;  // FOLIO_BATCH_SIZE
  mutable SpinLock lock{LockRank::kLruBatch};
  std::array<Folio*, kSize> folios GUARDED_BY(lock){};
  unsigned nr GUARDED_BY(lock) = 0;
};

// The list a folio belongs on, from its flags.
LruList folio_lru_list(const Folio* folio);

// Queues a folio (refcount held by the caller, not on an LRU) for its LRU
// list via the current CPU's batch; the batch holds its own reference.
void folio_add_lru(Folio* folio);
// Drains the current CPU's batch (the current Task's CPU).
void lru_add_drain(MemorySystem& ms);
void lru_add_drain_cpu(MemorySystem& ms, int cpu);
void lru_add_drain_all(MemorySystem& ms);
// While disabled (counted), folio_add_lru() adds directly and the batches are
// drained once when disabling starts.
void lru_cache_disable(MemorySystem& ms);
void lru_cache_enable(MemorySystem& ms);

// Takes a folio off its LRU list for migration. The caller holds a
// reference; on success the folio has PG_lru clear and one more reference
// (the isolation's). False if it is not on an LRU list (e.g. still in a
// batch).
bool folio_isolate_lru(Folio* folio);
// Puts an isolated folio back on its LRU list and drops the isolation
// reference.
void folio_putback_lru(Folio* folio);

// Access tracking: referenced, then active.
void folio_mark_accessed(Folio* folio);

// The end of a folio's life: off its LRU list if it is on one (the
// __page_cache_release step of the last folio_put).
void folio_lru_release(Folio* folio);

}  // namespace pinmm
