#include "pinmm/vm/vm_context.h"

#include "pinmm/base/check.h"
#include "pinmm/phys/page_alloc.h"
#include "pinmm/vm/mm.h"

namespace pinmm {

VmContext::VmContext(MemorySystem& ms) : ms_(ms), thp_enabled_(ms.config().thp) {}

VmContext::~VmContext() {
  // Every mm is gone: only the cache's reference is left.
  if (Folio* f = huge_zero_.load(std::memory_order_acquire)) folio_put(f);
}

bool VmContext::get_huge_zero_folio() {
  int r = huge_zero_refcount_.load(std::memory_order_acquire);
  while (r != 0) {  // atomic_inc_not_zero
    if (huge_zero_refcount_.compare_exchange_weak(r, r + 1, std::memory_order_acq_rel)) return true;
  }
  // Allocate outside any lock, then install; the loser of a race frees its
  // copy and tries again. ((GFP_TRANSHUGE | __GFP_ZERO) & ~__GFP_MOVABLE:
  // it is never migrated.)
  Folio* f =
      folio_alloc(ms_, (GFP_TRANSHUGE | __GFP_ZERO) & ~__GFP_MOVABLE, Order(HPAGE_PMD_ORDER));
  if (f == nullptr) {
    ms_.events().inc(THP_ZERO_PAGE_ALLOC_FAILED);
    return false;
  }
  Folio* expected = nullptr;
  if (!huge_zero_.compare_exchange_strong(expected, f, std::memory_order_acq_rel)) {
    folio_put(f);
    return get_huge_zero_folio();
  }
  // One reference for the caller, one for the shrinker.
  huge_zero_refcount_.store(2, std::memory_order_release);
  ms_.events().inc(THP_ZERO_PAGE_ALLOC);
  return true;
}

void VmContext::put_huge_zero_folio() {
  // Only the shrinker drops the cache's reference.
  MM_BUG_ON(huge_zero_refcount_.fetch_sub(1, std::memory_order_acq_rel) <= 1);
}

Folio* VmContext::mm_get_huge_zero_folio(Mm& mm) {
  if (mm.test_flag(MMF_HUGE_ZERO_PAGE)) return huge_zero_.load(std::memory_order_acquire);
  if (!get_huge_zero_folio()) return nullptr;
  if (mm.test_and_set_flag(MMF_HUGE_ZERO_PAGE)) put_huge_zero_folio();
  return huge_zero_.load(std::memory_order_acquire);
}

void VmContext::mm_put_huge_zero_folio(Mm& mm) {
  if (mm.test_flag(MMF_HUGE_ZERO_PAGE)) put_huge_zero_folio();
}

uint64_t VmContext::shrink_huge_zero_folio() {
  int one = 1;
  if (!huge_zero_refcount_.compare_exchange_strong(one, 0, std::memory_order_acq_rel)) return 0;
  Folio* f = huge_zero_.exchange(nullptr, std::memory_order_acq_rel);
  folio_put(f);
  return HPAGE_PMD_NR;
}

void VmContext::register_mm(Mm* mm) {
  MutexGuard g(lock_);
  mms_.push_back(mm);
}

void VmContext::unregister_mm(Mm* mm) {
  MutexGuard g(lock_);
  std::erase(mms_, mm);
}

std::vector<Mm*> VmContext::mms() const {
  MutexGuard g(lock_);
  return mms_;
}

}  // namespace pinmm
