// Migration entries: unmapping a folio for migration and mapping it again.
//
// Linux counterpart: try_to_migrate()/try_to_migrate_one() (mm/rmap.c),
// remove_migration_ptes() (mm/migrate.c), set_pmd_migration_entry() and
// remove_migration_pmd() (mm/huge_memory.c), and the deferred TLB flush of
// struct tlbflush_unmap_batch. They live in vm/ because they are rmap walks
// over page tables; migrate/ (and a THP split) call them.
//
// try_to_migrate replaces every present entry that maps the folio with a
// migration entry (KERNEL-SPEC 6.3): WRITE if the entry was writable, else
// READ_EXCLUSIVE if the page was PageAnonExclusive, else READ, carrying the
// young and dirty bits. The entry holds neither a mapcount nor a reference:
// both are dropped when it is installed. A dirty entry marks the folio
// dirty. An exclusive anonymous page can only become shared (so that the
// entry can be restored later) if the folio may not be DMA-pinned; when it
// may be, the entry is restored and the walk stops, leaving the folio
// mapped: the caller sees folio_mapped() and fails with -EAGAIN. RSS
// counters are unchanged: a migration entry still counts as the page.
//
// remove_migration_ptes(src, dst) turns the migration entries for src into
// mappings of the corresponding pages of dst, each with a reference and a
// mapcount on dst: writable iff the entry was WRITE, PageAnonExclusive iff
// it was not plain READ, old unless young, dirty only if the entry and the
// folio are. remove_migration_ptes(src, src) undoes an unmap.
//
// Thread safety: the caller holds the folio lock of src (and of dst), so
// faults that find a migration entry sleep in migration_entry_wait until
// the caller unlocks src. Each entry changes under its page-table lock.
// Anonymous folios: the caller holds a reference on the AnonVma
// (folio_get_anon_vma) so the walk that restores the entries still works
// after every VMA has been unmapped.
#pragma once

#include <vector>

#include "pinmm/phys/page.h"

namespace pinmm {

class AnonVma;
class Mm;

// TLB flushes deferred by try_to_migrate(TTU_BATCH_FLUSH), done at once by
// flush() (try_to_unmap_flush). Holds an mm_count reference on each Mm.
class TlbFlushBatch {
 public:
  TlbFlushBatch() = default;
  ~TlbFlushBatch() { flush(); }
  TlbFlushBatch(const TlbFlushBatch&) = delete;
  TlbFlushBatch& operator=(const TlbFlushBatch&) = delete;

  void add(Mm& mm);
  // Flushes the TLB of every Mm added since the last flush.
  void flush();

 private:
  std::vector<Mm*> mms_;
};

enum TtuFlags : unsigned {
  TTU_NONE = 0,
  TTU_SPLIT_HUGE_PMD = 1u << 2,  // split PMD mappings to PTEs first (THP split)
  TTU_BATCH_FLUSH = 1u << 5,     // defer TLB flushes to the TlbFlushBatch
};

// Unmaps the locked folio, installing migration entries (see above). With
// TTU_BATCH_FLUSH, flushes are added to `batch` (required then) and the
// caller must flush before reading the folio's contents.
void try_to_migrate(Folio* folio, unsigned ttu_flags, TlbFlushBatch* batch = nullptr);

// Maps dst where migration entries for src are (see above).
void remove_migration_ptes(Folio* src, Folio* dst);

// folio_get_anon_vma: a reference on a mapped anonymous folio's AnonVma,
// or nullptr (not anonymous, or no longer mapped). Drop it with
// AnonVma::put().
AnonVma* folio_get_anon_vma(const Folio* folio);

}  // namespace pinmm
