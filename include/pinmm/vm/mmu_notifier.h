// MMU notifiers: who must hear about page-table changes.
//
// Linux counterpart: include/linux/mmu_notifier.h and mm/mmu_notifier.c.
// Every page-table change in vm/ (and migrate/, hotplug/) is bracketed by
// mmu_notifier_invalidate_range_start/end with a range and an event, and an
// exiting mm calls release. Two kinds of subscribers hear them:
//
// - Classic subscribers (MmuNotifierOps): start/end/release callbacks. A
//   start callback may refuse (-EAGAIN) only for a non-blockable range; then
//   that range has no end call.
// - Interval subscribers (MmuIntervalNotifier, KERNEL-SPEC 9.3), what HMM
//   mirrors use: each covers [start, last] and is told only of
//   invalidations that intersect it. The per-mm invalidate_seq starts at 2
//   and is even while idle; an invalidation that meets a subscription makes
//   it odd ("invalidating", the set of subscriptions frozen) and hands the
//   callback that odd cur_seq, which the callback stores with
//   mmu_interval_set_seq() under its driver lock; the last end of
//   overlapping invalidations makes it even again, applies the inserts and
//   removals deferred meanwhile, and wakes waiters. A reader brackets its
//   lookup with mmu_interval_read_begin() (which sleeps while an
//   invalidation covering it is in flight) and, under its driver lock,
//   mmu_interval_read_retry().
//
// Thread safety: classic subscriptions are kept under a leaf lock and copied
// out before callbacks run, so a callback may take its own locks (never the
// page-table locks: callers hold no PTL across start/end). The interval
// state is guarded by its own leaf lock (subscriptions->lock); callbacks run
// without it, over the subscriptions collected at start (the set cannot
// change while invalidate_seq is odd). Removal returns after callbacks in
// flight on other threads have finished with the subscriber.
#pragma once

#include <atomic>
#include <condition_variable>
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

class MmuIntervalNotifier;

// struct mmu_interval_notifier_ops.
class MmuIntervalNotifierOps {
 public:
  virtual ~MmuIntervalNotifierOps() = default;
  // An invalidation intersects the subscription. The callback must take the
  // driver lock its readers use for mmu_interval_read_retry(), call
  // mmu_interval_set_seq(sub, cur_seq), stop using the range, and return
  // true. false only when the range is not blockable and it would have to
  // sleep (then the invalidation fails with -EAGAIN).
  virtual bool invalidate(MmuIntervalNotifier* sub, const MmuNotifierRange& range,
                          uint64_t cur_seq) = 0;
};

// struct mmu_interval_notifier: one subscription, owned by its driver.
class MmuIntervalNotifier {
 public:
  MmuIntervalNotifier() = default;
  MmuIntervalNotifier(const MmuIntervalNotifier&) = delete;
  MmuIntervalNotifier& operator=(const MmuIntervalNotifier&) = delete;

  Mm* mm() const { return mm_; }  // nullptr until inserted, and after removal
  uint64_t start() const { return start_; }
  uint64_t last() const { return last_; }  // inclusive
  // The sequence the last invalidate callback stored (relaxed; the driver
  // lock orders it against read_retry).
  uint64_t invalidate_seq() const { return invalidate_seq_.load(std::memory_order_relaxed); }

 private:
  friend class MmuNotifierList;
  friend void mmu_interval_set_seq(MmuIntervalNotifier* sub, uint64_t cur_seq);
  friend bool mmu_interval_read_retry(MmuIntervalNotifier* sub, uint64_t seq);
  friend bool mmu_interval_check_retry(MmuIntervalNotifier* sub, uint64_t seq);

  Mm* mm_ = nullptr;
  MmuIntervalNotifierOps* ops_ = nullptr;
  uint64_t start_ = 0;
  uint64_t last_ = 0;
  bool in_tree_ = false;   // in the subscription set (else pending insert)
  bool deferred_ = false;  // on the deferred list
  std::atomic<uint64_t> invalidate_seq_{0};
};

// The subscribers of one mm (struct mmu_notifier_subscriptions).
class MmuNotifierList {
 public:
  MmuNotifierList() = default;
  MmuNotifierList(const MmuNotifierList&) = delete;
  MmuNotifierList& operator=(const MmuNotifierList&) = delete;

  void subscribe(MmuNotifierOps* ops) EXCLUDES(lock_);
  bool empty() const EXCLUDES(lock_);

  int start(const MmuNotifierRange& range) EXCLUDES(lock_, itree_lock_);
  void end(const MmuNotifierRange& range) EXCLUDES(lock_, itree_lock_);
  void release(Mm& mm) EXCLUDES(lock_, itree_lock_);

  // ---- interval subscriptions (see the top of this file) ----
  // mmu_interval_notifier_insert; -EOVERFLOW for length 0 or an interval
  // past the end of the address space, -EINVAL if the mm has no users.
  int __mmu_interval_notifier_insert(MmuIntervalNotifier* sub, Mm& mm, uint64_t start,
                                     uint64_t length, MmuIntervalNotifierOps* ops)
      EXCLUDES(itree_lock_);
  // mmu_interval_notifier_remove: may sleep until an invalidation in flight
  // ends; no callback runs on `sub` afterwards. Not from a callback.
  void interval_remove(MmuIntervalNotifier* sub) EXCLUDES(itree_lock_);
  uint64_t interval_read_begin(MmuIntervalNotifier* sub) EXCLUDES(itree_lock_);
  // The mm's invalidate_seq (even while idle; starts at 2).
  uint64_t invalidate_seq() const EXCLUDES(itree_lock_);

  // Notifications so far, for tests and reports.
  uint64_t nr_invalidations() const { return invalidations_.load(std::memory_order_relaxed); }

 private:
  std::vector<MmuNotifierOps*> snapshot() const EXCLUDES(lock_);
  // mn_itree_invalidate: counts the invalidation as active and calls the
  // intersecting subscriptions; 0, or -EAGAIN when a callback refused a
  // non-blockable range (its inv_end already done).
  int mn_itree_invalidate(const MmuNotifierRange& range) EXCLUDES(itree_lock_);
  // mn_itree_inv_start_range: the intersecting subscriptions and cur_seq.
  std::vector<MmuIntervalNotifier*> mn_itree_inv_start_range(const MmuNotifierRange& range,
                                                             uint64_t* cur_seq)
      EXCLUDES(itree_lock_);
  // mn_itree_inv_end: the invalidation is over.
  void mn_itree_inv_end() EXCLUDES(itree_lock_);
  bool itree_is_invalidating() const REQUIRES(itree_lock_) { return invalidate_seq_ & 1; }

  mutable Mutex lock_{LockRank::kLeaf};
  std::vector<MmuNotifierOps*> subs_ GUARDED_BY(lock_);
  std::atomic<uint64_t> invalidations_{0};

  // Interval state. Subscriptions are few per mm, so the "interval tree" is
  // a vector searched linearly.
  mutable Mutex itree_lock_{LockRank::kLeaf};
  std::atomic<bool> has_itree_{false};
  uint64_t invalidate_seq_ GUARDED_BY(itree_lock_) = 2;
  // Changed by every start and end; read under itree_lock_ (seq_cst, see
  // mn_itree_invalidate).
  std::atomic<uint64_t> active_invalidate_ranges_{0};
  std::vector<MmuIntervalNotifier*> itree_ GUARDED_BY(itree_lock_);
  std::vector<MmuIntervalNotifier*> deferred_ GUARDED_BY(itree_lock_);
  std::condition_variable_any wq_;
};

// The driver-facing calls (include/linux/mmu_notifier.h).
int mmu_interval_notifier_insert(MmuIntervalNotifier* sub, Mm& mm, uint64_t start, uint64_t length,
                                 MmuIntervalNotifierOps* ops);
void mmu_interval_notifier_remove(MmuIntervalNotifier* sub);
uint64_t mmu_interval_read_begin(MmuIntervalNotifier* sub);
// Called by the invalidate callback, under the driver lock.
inline void mmu_interval_set_seq(MmuIntervalNotifier* sub, uint64_t cur_seq) {
  sub->invalidate_seq_.store(cur_seq, std::memory_order_relaxed);
}
// Under the driver lock: true if an invalidation ran since read_begin.
inline bool mmu_interval_read_retry(MmuIntervalNotifier* sub, uint64_t seq) {
  return sub->invalidate_seq_.load(std::memory_order_relaxed) != seq;
}
// Without the lock: true is reliable, false only a hint.
inline bool mmu_interval_check_retry(MmuIntervalNotifier* sub, uint64_t seq) {
  return sub->invalidate_seq_.load(std::memory_order_relaxed) != seq;
}

// The calls core mm makes. The blocking start cannot fail.
void mmu_notifier_invalidate_range_start(const MmuNotifierRange& range);
int mmu_notifier_invalidate_range_start_nonblock(const MmuNotifierRange& range);
void mmu_notifier_invalidate_range_end(const MmuNotifierRange& range);

}  // namespace pinmm
