#include "pinmm/vm/mmu_notifier.h"

#include <algorithm>

#include "pinmm/base/check.h"
#include "pinmm/vm/mm.h"

namespace pinmm {

const char* mmu_notify_event_name(MmuNotifyEvent e) {
  switch (e) {
    case MMU_NOTIFY_UNMAP:
      return "unmap";
    case MMU_NOTIFY_CLEAR:
      return "clear";
    case MMU_NOTIFY_PROTECTION_VMA:
      return "protection_vma";
    case MMU_NOTIFY_PROTECTION_PAGE:
      return "protection_page";
    case MMU_NOTIFY_SOFT_DIRTY:
      return "soft_dirty";
    case MMU_NOTIFY_RELEASE:
      return "release";
    case MMU_NOTIFY_MIGRATE:
      return "migrate";
    case MMU_NOTIFY_EXCLUSIVE:
      return "exclusive";
  }
  return "?";
}

void MmuNotifierList::subscribe(MmuNotifierOps* ops) {
  MutexGuard g(lock_);
  subs_.push_back(ops);
}

void MmuNotifierList::unsubscribe(MmuNotifierOps* ops) {
  MutexGuard g(lock_);
  subs_.erase(std::remove(subs_.begin(), subs_.end(), ops), subs_.end());
}

bool MmuNotifierList::empty() const {
  MutexGuard g(lock_);
  return subs_.empty();
}

std::vector<MmuNotifierOps*> MmuNotifierList::snapshot() const {
  MutexGuard g(lock_);
  return subs_;
}

int MmuNotifierList::start(const MmuNotifierRange& range) {
  invalidations_.fetch_add(1, std::memory_order_relaxed);
  const auto subs = snapshot();
  for (size_t i = 0; i < subs.size(); ++i) {
    const int rc = subs[i]->invalidate_range_start(range);
    if (rc != 0) {
      MM_BUG_ON(mmu_notifier_range_blockable(range));  // only non-blockable ranges may fail
      // Subscribers that already started get their end call.
      for (size_t j = 0; j < i; ++j)
        subs[j]->invalidate_range_end(range);
      return rc;
    }
  }
  return 0;
}

void MmuNotifierList::end(const MmuNotifierRange& range) {
  for (MmuNotifierOps* ops : snapshot())
    ops->invalidate_range_end(range);
}

void MmuNotifierList::release(Mm& mm) {
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
