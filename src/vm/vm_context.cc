#include "pinmm/vm/vm_context.h"

#include "pinmm/phys/page_alloc.h"

namespace pinmm {

VmContext::VmContext(MemorySystem& ms) : ms_(ms), thp_enabled_(ms.config().thp) {}

VmContext::~VmContext() {
  if (Folio* f = huge_zero_.load(std::memory_order_acquire)) folio_put(f);
}

Folio* VmContext::huge_zero_folio() {
  if (Folio* f = huge_zero_.load(std::memory_order_acquire)) return f;
  // Allocate outside any lock, then install; the loser of a race frees its copy.
  // ((GFP_TRANSHUGE | __GFP_ZERO) & ~__GFP_MOVABLE: it is never migrated.)
  Folio* f =
      folio_alloc(ms_, (GFP_TRANSHUGE | __GFP_ZERO) & ~__GFP_MOVABLE, Order(HPAGE_PMD_ORDER));
  if (f == nullptr) {
    ms_.events().inc(THP_ZERO_PAGE_ALLOC_FAILED);
    return nullptr;
  }
  Folio* expected = nullptr;
  if (!huge_zero_.compare_exchange_strong(expected, f, std::memory_order_acq_rel)) {
    folio_put(f);
    return expected;
  }
  ms_.events().inc(THP_ZERO_PAGE_ALLOC);
  return f;
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
