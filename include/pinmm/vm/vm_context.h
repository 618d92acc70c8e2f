// VmContext: the machine-wide state of the vm layer.
//
// Linux counterpart: the globals of mm/ above the page allocator: the THP
// sysfs knobs (/sys/kernel/mm/transparent_hugepage/{enabled,use_zero_page}),
// the huge zero folio, the mm id counter. One VmContext per MemorySystem;
// every Mm of that machine refers to it.
//
// Thread safety: the knobs are atomics; the huge zero folio is created once
// under a leaf lock and never freed before the context.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "pinmm/base/locks.h"
#include "pinmm/phys/config.h"
#include "pinmm/phys/memory_system.h"

namespace pinmm {

class Mm;

class VmContext {
 public:
  explicit VmContext(MemorySystem& ms);
  ~VmContext();
  VmContext(const VmContext&) = delete;
  VmContext& operator=(const VmContext&) = delete;

  MemorySystem& ms() const { return ms_; }

  // transparent_hugepage/enabled and use_zero_page.
  ThpMode thp_enabled() const { return thp_enabled_.load(std::memory_order_relaxed); }
  void set_thp_enabled(ThpMode m) { thp_enabled_.store(m, std::memory_order_relaxed); }
  bool thp_use_zero_page() const { return thp_use_zero_page_.load(std::memory_order_relaxed); }

  // The huge zero folio (PMD-sized, zeroed), as mm/huge_memory.c keeps
  // it: allocated on first use (thp_zero_page_alloc /
  // thp_zero_page_alloc_failed) with a reference count of its own, one
  // reference for the cache and one for each mm that maps it
  // (MMF_HUGE_ZERO_PAGE, dropped when the mm goes). mm_get_huge_zero_folio
  // returns it with the mm's reference taken, or nullptr if it could not be
  // allocated. The shrinker frees it once only the cache holds it.
  Folio* mm_get_huge_zero_folio(Mm& mm);
  void mm_put_huge_zero_folio(Mm& mm);
  // shrink_huge_zero_page_scan: frees the folio if no mm holds it; the
  // pages freed (HPAGE_PMD_NR or 0). What memory pressure or drop_caches
  // does; audits call it before counting pages in use.
  uint64_t shrink_huge_zero_folio();
  bool is_huge_zero_folio(const Folio* folio) const {
    return folio != nullptr && folio == huge_zero_.load(std::memory_order_acquire);
  }

  int next_mm_id() { return next_mm_id_.fetch_add(1, std::memory_order_relaxed); }
  // Inode numbers for new files (shown by the filemap trace events).
  uint64_t next_ino() { return next_ino_.fetch_add(1, std::memory_order_relaxed); }

  // Every live Mm of this machine, for validation and reports.
  void register_mm(Mm* mm) EXCLUDES(lock_);
  void unregister_mm(Mm* mm) EXCLUDES(lock_);
  std::vector<Mm*> mms() const EXCLUDES(lock_);

  // Faults that found a migration entry and waited for the migration.
  void count_migration_wait() { migration_waits_.fetch_add(1, std::memory_order_relaxed); }
  uint64_t migration_waits() const { return migration_waits_.load(std::memory_order_relaxed); }

 private:
  MemorySystem& ms_;
  std::atomic<ThpMode> thp_enabled_;
  std::atomic<bool> thp_use_zero_page_{true};
  mutable Mutex lock_{LockRank::kLeaf};
  // Which folio, and who holds it: 0 when there is none, else the cache's
  // reference plus one per mm with MMF_HUGE_ZERO_PAGE (huge_zero_refcount).
  bool get_huge_zero_folio();
  void put_huge_zero_folio();
  std::atomic<Folio*> huge_zero_{nullptr};
  std::atomic<int> huge_zero_refcount_{0};
  std::atomic<int> next_mm_id_{1};
  std::atomic<uint64_t> next_ino_{1};
  std::vector<Mm*> mms_ GUARDED_BY(lock_);
  std::atomic<uint64_t> migration_waits_{0};
};

}  // namespace pinmm
