// The TLB model: what a TLB shootdown guarantees, and mmu_gather.
//
// Linux counterpart: flush_tlb_range/flush_tlb_mm with their IPIs, and
// struct mmu_gather (include/asm-generic/tlb.h). A CPU access in pinmm
// (vm/access.h) holds its translation for the length of the copy, as a CPU
// holds a TLB entry; a flush returns only when every access that may have
// used the old translation has finished, as a shootdown IPI returns only
// when every CPU has acknowledged. So after "clear the entry, flush", no
// access can still write the old frame: migration copies only after that,
// and freed pages are freed only after that (MmuGather).
//
// Thread safety (an SRCU-like scheme): an access reads the epoch, counts
// itself in that epoch's slot, re-checks the epoch (retrying if a flush
// moved it), and uncounts itself when done. A flush, serialised by its lock,
// advances the epoch and waits for the previous slot to drain. The seq_cst
// operations order "entry cleared" before "epoch advanced" before "the
// access read the epoch" before "the access read the entry".
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <utility>
#include <vector>

#include "pinmm/base/locks.h"
#include "pinmm/base/trace.h"
#include "pinmm/phys/page.h"

namespace pinmm {

class Mm;

class TlbModel {
 public:
  // Flushes are reported as tlb_flush events to `tracer` if given.
  explicit TlbModel(Tracer* tracer = nullptr) : tracer_(tracer) {}

  // An access in flight (RAII).
  class Access {
   public:
    explicit Access(TlbModel& tlb);
    ~Access();
    Access(const Access&) = delete;
    Access& operator=(const Access&) = delete;

   private:
    TlbModel& tlb_;
    unsigned slot_;
  };

  // Waits until no access that may hold a translation from before the call
  // is in flight. Callable with page-table locks held (accesses never wait
  // for locks).
  void flush() EXCLUDES(flush_lock_);
  uint64_t nr_flushes() const { return flushes_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> epoch_{0};
  std::array<std::atomic<int64_t>, 2> active_{};
  std::atomic<uint64_t> flushes_{0};
  Mutex flush_lock_{LockRank::kLeaf};
  Tracer* const tracer_;
};

// Batches the teardown of mappings: entries are cleared first, references
// dropped and page tables freed only after one TLB flush (tlb_finish_mmu).
class MmuGather {
 public:
  explicit MmuGather(Mm& mm) : mm_(mm) {}
  ~MmuGather() { finish(); }
  MmuGather(const MmuGather&) = delete;
  MmuGather& operator=(const MmuGather&) = delete;

  // Drops `refs` references to `folio` after the flush.
  void remove_folio(Folio* folio, int refs = 1) { folios_.emplace_back(folio, refs); }
  // Frees a table page (through RCU) after the flush.
  void remove_table(Page* table) { tables_.push_back(table); }
  // A range's entries changed: a flush is due before finish() returns.
  void need_flush() { need_flush_ = true; }
  void finish();

 private:
  Mm& mm_;
  bool need_flush_ = false;
  std::vector<std::pair<Folio*, int>> folios_;
  std::vector<Page*> tables_;
};

}  // namespace pinmm
