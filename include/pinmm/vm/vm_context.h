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
  void set_thp_use_zero_page(bool on) { thp_use_zero_page_.store(on, std::memory_order_relaxed); }

  // The huge zero folio (PMD-sized, zeroed), allocated on first use:
  // thp_zero_page_alloc / thp_zero_page_alloc_failed. nullptr if it could
  // not be allocated.
  Folio* huge_zero_folio() EXCLUDES(lock_);
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
  std::atomic<Folio*> huge_zero_{nullptr};
  std::atomic<int> next_mm_id_{1};
  std::atomic<uint64_t> next_ino_{1};
  std::vector<Mm*> mms_ GUARDED_BY(lock_);
  std::atomic<uint64_t> migration_waits_{0};
};

}  // namespace pinmm
