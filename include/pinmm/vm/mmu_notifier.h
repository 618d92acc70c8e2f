// MMU notifiers: who must hear about page-table changes.
//
// Linux counterpart: include/linux/mmu_notifier.h. Every page-table change in
// vm/ (and later migrate/, hotplug/) is bracketed by
// mmu_notifier_invalidate_range_start/end with a range and an event, and an
// exiting mm calls release. Subscribers implement MmuNotifierOps; HMM's
// interval notifiers (hmm/) are one. A start callback may refuse (-EAGAIN)
// only for a non-blockable range; then that range has no end call.
//
// Thread safety: subscriptions are kept under a leaf lock and copied out
// before callbacks run, so a callback may take its own locks (never the
// page-table locks: callers hold no PTL across start/end). Registration
// during a callback waits for nothing; removal returns after callbacks in
// flight on other threads have finished with the subscriber.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "pinmm/base/locks.h"
#include "pinmm/base/types.h"

namespace pinmm {

class Mm;

enum MmuNotifyEvent : uint8_t {
  MMU_NOTIFY_UNMAP = 0,
  MMU_NOTIFY_CLEAR = 1,
  MMU_NOTIFY_PROTECTION_VMA = 2,
  MMU_NOTIFY_PROTECTION_PAGE = 3,
  MMU_NOTIFY_SOFT_DIRTY = 4,
  MMU_NOTIFY_RELEASE = 5,
  MMU_NOTIFY_MIGRATE = 6,
  MMU_NOTIFY_EXCLUSIVE = 7,
};
const char* mmu_notify_event_name(MmuNotifyEvent e);

inline constexpr unsigned MMU_NOTIFIER_RANGE_BLOCKABLE = 1u << 0;

struct MmuNotifierRange {
  Mm* mm = nullptr;
  VirtAddr start;
  VirtAddr end;  // exclusive
  unsigned flags = MMU_NOTIFIER_RANGE_BLOCKABLE;
  MmuNotifyEvent event = MMU_NOTIFY_UNMAP;
  const void* owner = nullptr;  // for MMU_NOTIFY_MIGRATE / EXCLUSIVE
};

inline bool mmu_notifier_range_blockable(const MmuNotifierRange& r) {
  return r.flags & MMU_NOTIFIER_RANGE_BLOCKABLE;
}

class MmuNotifierOps {
 public:
  virtual ~MmuNotifierOps() = default;
  // 0, or -EAGAIN (only when the range is not blockable).
  virtual int invalidate_range_start(const MmuNotifierRange& range) = 0;
  virtual void invalidate_range_end(const MmuNotifierRange& range) { (void)range; }
  // The mm is going away: every mapping is about to be torn down.
  virtual void release(Mm& mm) { (void)mm; }
};

// The subscribers of one mm.
class MmuNotifierList {
 public:
  void subscribe(MmuNotifierOps* ops) EXCLUDES(lock_);
  void unsubscribe(MmuNotifierOps* ops) EXCLUDES(lock_);
  bool empty() const EXCLUDES(lock_);

  int start(const MmuNotifierRange& range) EXCLUDES(lock_);
  void end(const MmuNotifierRange& range) EXCLUDES(lock_);
  void release(Mm& mm) EXCLUDES(lock_);

  // Notifications so far, for tests and reports.
  uint64_t nr_invalidations() const { return invalidations_.load(std::memory_order_relaxed); }

 private:
  std::vector<MmuNotifierOps*> snapshot() const EXCLUDES(lock_);

  mutable Mutex lock_{LockRank::kLeaf};
  std::vector<MmuNotifierOps*> subs_ GUARDED_BY(lock_);
  std::atomic<uint64_t> invalidations_{0};
};

// The calls core mm makes. The blocking start cannot fail.
void mmu_notifier_invalidate_range_start(const MmuNotifierRange& range);
int mmu_notifier_invalidate_range_start_nonblock(const MmuNotifierRange& range);
void mmu_notifier_invalidate_range_end(const MmuNotifierRange& range);

}  // namespace pinmm
