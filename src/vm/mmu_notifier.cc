#include "pinmm/vm/mmu_notifier.h"

#include <algorithm>

#include "pinmm/base/check.h"
#include "pinmm/vm/mm.h"

namespace pinmm {

void MmuNotifierList::subscribe(MmuNotifierOps* ops) {
  MutexGuard g(lock_);
  subs_.push_back(ops);
}

bool MmuNotifierList::empty() const {
  MutexGuard g(lock_);
  return subs_.empty();
}

std::vector<MmuNotifierOps*> MmuNotifierList::snapshot() const {
  MutexGuard g(lock_);
  return subs_;
}

// ---- interval subscriptions (mm/mmu_notifier.c's itree half) ----

namespace {

bool intersects(const MmuIntervalNotifier* sub, const MmuNotifierRange& range) {
  // [start, end) against [sub.start, sub.last].
  return range.start.value() <= sub->last() && sub->start() < range.end.value();
}

}  // namespace

std::vector<MmuIntervalNotifier*> MmuNotifierList::mn_itree_inv_start_range(
    const MmuNotifierRange& range, uint64_t* cur_seq) {
  std::vector<MmuIntervalNotifier*> hit;
  MutexGuard g(itree_lock_);
  for (MmuIntervalNotifier* sub : itree_) {
    if (intersects(sub, range)) hit.push_back(sub);
  }
  // Odd: invalidating; the subscription set is frozen until the last end.
  if (!hit.empty()) invalidate_seq_ |= 1;
  *cur_seq = invalidate_seq_;
  return hit;
}

void MmuNotifierList::mn_itree_inv_end() {
  bool check = true;
  if (!has_itree_.load(std::memory_order_seq_cst)) {
    active_invalidate_ranges_.fetch_sub(1, std::memory_order_seq_cst);
    // A subscription inserted while we were active made the sequence odd on
    // our account; then we see has_itree_ here (seq_cst, as in
    // mn_itree_invalidate) and must end the invalidation ourselves.
    if (!has_itree_.load(std::memory_order_seq_cst)) return;
    check = false;
  }
  {
    MutexGuard g(itree_lock_);
    const uint64_t left =
        check ? active_invalidate_ranges_.fetch_sub(1, std::memory_order_seq_cst) - 1
              : active_invalidate_ranges_.load(std::memory_order_seq_cst);
    if (left != 0 || !itree_is_invalidating()) return;
    ++invalidate_seq_;  // even again
    // What insert and remove deferred while the set was frozen.
    for (MmuIntervalNotifier* sub : deferred_) {
      sub->deferred_ = false;
      if (!sub->in_tree_) {
        itree_.push_back(sub);
        sub->in_tree_ = true;
      } else {
        itree_.erase(std::remove(itree_.begin(), itree_.end(), sub), itree_.end());
        sub->in_tree_ = false;
      }
    }
    deferred_.clear();
  }
  wq_.notify_all();
}

int MmuNotifierList::mn_itree_invalidate(const MmuNotifierRange& range) {
  // Every invalidation counts as active, with interval subscriptions or not
  // (seq_cst, against __mmu_interval_notifier_insert's store to has_itree_ and load of this
  // count: one of the two sees the other, so a subscription inserted during
  // an invalidation that skipped the set is treated as covered).
  active_invalidate_ranges_.fetch_add(1, std::memory_order_seq_cst);
  if (!has_itree_.load(std::memory_order_seq_cst)) return 0;
  uint64_t cur_seq = 0;
  for (MmuIntervalNotifier* sub : mn_itree_inv_start_range(range, &cur_seq)) {
    if (sub->ops_->invalidate(sub, range, cur_seq)) continue;
    // Only a non-blockable range may be refused (the kernel WARNs otherwise
    // and goes on).
    if (MM_WARN_ON_ONCE(mmu_notifier_range_blockable(range))) continue;
    mn_itree_inv_end();  // the caller will not call end for this start
    return -EAGAIN;
  }
  return 0;
}

int MmuNotifierList::__mmu_interval_notifier_insert(MmuIntervalNotifier* sub, Mm& mm,
                                                    uint64_t start, uint64_t length,
                                                    MmuIntervalNotifierOps* ops) {
  uint64_t last = 0;
  if (length == 0 || __builtin_add_overflow(start, length - 1, &last)) return -EOVERFLOW;
  if (mm.users() <= 0) return -EINVAL;  // the kernel WARNs: the caller must hold mmget
  sub->mm_ = &mm;
  sub->ops_ = ops;
  sub->start_ = start;
  sub->last_ = last;
  sub->in_tree_ = false;
  sub->deferred_ = false;
  mm.mmgrab();  // dropped by interval_remove
  has_itree_.store(true, std::memory_order_seq_cst);
  MutexGuard g(itree_lock_);
  if (active_invalidate_ranges_.load(std::memory_order_seq_cst) != 0) {
    // An invalidation may cover the new range: assume it does.
    if (itree_is_invalidating()) {
      sub->deferred_ = true;
      deferred_.push_back(sub);
    } else {
      invalidate_seq_ |= 1;
      itree_.push_back(sub);
      sub->in_tree_ = true;
    }
    sub->invalidate_seq_.store(invalidate_seq_, std::memory_order_relaxed);
  } else {
    MM_WARN_ON_ONCE(itree_is_invalidating());
    // Odd and never the idle (even) value, so read_begin does not wait.
    sub->invalidate_seq_.store(invalidate_seq_ - 1, std::memory_order_relaxed);
    itree_.push_back(sub);
    sub->in_tree_ = true;
  }
  return 0;
}

void MmuNotifierList::interval_remove(MmuIntervalNotifier* sub) {
  Mm* mm = sub->mm_;
  {
    MutexGuard g(itree_lock_);
    uint64_t seq = 0;
    if (itree_is_invalidating()) {
      if (!sub->in_tree_) {
        // Inserted while frozen and not yet in the set: just forget it.
        deferred_.erase(std::remove(deferred_.begin(), deferred_.end(), sub), deferred_.end());
        sub->deferred_ = false;
      } else {
        sub->deferred_ = true;
        deferred_.push_back(sub);
        seq = invalidate_seq_;
      }
    } else {
      MM_WARN_ON_ONCE(!sub->in_tree_);
      itree_.erase(std::remove(itree_.begin(), itree_.end(), sub), itree_.end());
      sub->in_tree_ = false;
    }
    // Callbacks in flight may still use `sub` until the sequence moves on.
    if (seq != 0)
      wq_.wait(itree_lock_, [&]() REQUIRES(itree_lock_) { return invalidate_seq_ != seq; });
  }
  sub->mm_ = nullptr;
  mm->mmdrop();
}

uint64_t MmuNotifierList::interval_read_begin(MmuIntervalNotifier* sub) {
  MutexGuard g(itree_lock_);
  const uint64_t seq = sub->invalidate_seq_.load(std::memory_order_relaxed);
  // Equal to the (odd) global value: an invalidation covering this
  // subscription is between start and end. Wait for it to end; a later
  // read_retry may still fail, and that is the caller's loop.
  if (seq == invalidate_seq_)
    wq_.wait(itree_lock_, [&]() REQUIRES(itree_lock_) { return invalidate_seq_ != seq; });
  return seq;
}

uint64_t MmuNotifierList::invalidate_seq() const {
  MutexGuard g(itree_lock_);
  return invalidate_seq_;
}

int mmu_interval_notifier_insert(MmuIntervalNotifier* sub, Mm& mm, uint64_t start, uint64_t length,
                                 MmuIntervalNotifierOps* ops) {
  return mm.notifiers().__mmu_interval_notifier_insert(sub, mm, start, length, ops);
}

void mmu_interval_notifier_remove(MmuIntervalNotifier* sub) {
  sub->mm()->notifiers().interval_remove(sub);
}

uint64_t mmu_interval_read_begin(MmuIntervalNotifier* sub) {
  return sub->mm()->notifiers().interval_read_begin(sub);
}

// ---- the calls core mm makes ----

int MmuNotifierList::start(const MmuNotifierRange& range) {
  invalidations_.fetch_add(1, std::memory_order_relaxed);
  if (const int rc = mn_itree_invalidate(range); rc != 0) return rc;
  const auto subs = snapshot();
  for (size_t i = 0; i < subs.size(); ++i) {
    const int rc = subs[i]->invalidate_range_start(range);
    if (rc != 0) {
      MM_BUG_ON(mmu_notifier_range_blockable(range));  // only non-blockable ranges may fail
      // Subscribers that already started get their end call.
      for (size_t j = 0; j < i; ++j)
        subs[j]->invalidate_range_end(range);
      mn_itree_inv_end();
      return rc;
    }
  }
  return 0;
}

void MmuNotifierList::end(const MmuNotifierRange& range) {
  mn_itree_inv_end();
  for (MmuNotifierOps* ops : snapshot())
    ops->invalidate_range_end(range);
}

void MmuNotifierList::release(Mm& mm) {
  // mn_itree_release: one blockable MMU_NOTIFY_RELEASE over everything.
  const MmuNotifierRange range{
      &mm,    VirtAddr(0), VirtAddr(~uint64_t{0}), MMU_NOTIFIER_RANGE_BLOCKABLE, MMU_NOTIFY_RELEASE,
      nullptr};
  MM_WARN_ON_ONCE(mn_itree_invalidate(range) != 0);
  mn_itree_inv_end();
  for (MmuNotifierOps* ops : snapshot())
    ops->release(mm);
}

void mmu_notifier_invalidate_range_start(const MmuNotifierRange& range) {
  MM_BUG_ON(!mmu_notifier_range_blockable(range));
  MM_BUG_ON(range.mm->notifiers().start(range) != 0);
}

int mmu_notifier_invalidate_range_start_nonblock(const MmuNotifierRange& range) {
  return range.mm->notifiers().start(range);
}

void mmu_notifier_invalidate_range_end(const MmuNotifierRange& range) {
  range.mm->notifiers().end(range);
}

}  // namespace pinmm
