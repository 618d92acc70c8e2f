#include "pinmm/vm/tlb.h"

#include <thread>

#include "pinmm/base/trace.h"
#include "pinmm/vm/mm.h"

namespace pinmm {

TlbModel::Access::Access(TlbModel& tlb) : tlb_(tlb) {
  for (;;) {
    const uint64_t e = tlb_.epoch_.load(std::memory_order_seq_cst);
    slot_ = static_cast<unsigned>(e & 1);
    tlb_.active_[slot_].fetch_add(1, std::memory_order_seq_cst);
    // A flush that advanced the epoch after our read may already be waiting
    // on the other slot: count ourselves in the current one instead.
    if (tlb_.epoch_.load(std::memory_order_seq_cst) == e) return;
    tlb_.active_[slot_].fetch_sub(1, std::memory_order_seq_cst);
  }
}

TlbModel::Access::~Access() { tlb_.active_[slot_].fetch_sub(1, std::memory_order_seq_cst); }

void TlbModel::flush() {
  {
    MutexGuard g(flush_lock_);
    const uint64_t old = epoch_.fetch_add(1, std::memory_order_seq_cst);
    const unsigned slot = static_cast<unsigned>(old & 1);
    while (active_[slot].load(std::memory_order_seq_cst) != 0)
      std::this_thread::yield();
    flushes_.fetch_add(1, std::memory_order_relaxed);
  }
  // A whole-mm shootdown: pages is TLB_FLUSH_ALL (-1), reason
  // TLB_REMOTE_SHOOTDOWN (1).
  if (tracer_ != nullptr) PINMM_TRACE(*tracer_, tlb_flush, "pages:-1 reason:remote shootdown (1)");
}

void MmuGather::finish() {
  if (need_flush_ || !folios_.empty() || !tables_.empty()) mm_.tlb().flush();
  need_flush_ = false;
  for (auto& [folio, refs] : folios_)
    folio_put_refs(folio, refs);
  folios_.clear();
  for (Page* t : tables_)
    pagetable_free_rcu(t);
  tables_.clear();
}

}  // namespace pinmm
